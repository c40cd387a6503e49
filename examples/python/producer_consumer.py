# The Python program examples/producer_consumer.rs mirrors.
import multiprocessing, os, sys, time


def consumer(q):
    n = 0
    for i in iter(q.get, None):
        assert i == n, f"out of order: got {i}, expected {n}"
        n += 1
    print(f"consumer (pid {os.getpid()}): received {n} messages in order, checksum ok")


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    q = multiprocessing.Queue(maxsize=1024)
    p = multiprocessing.Process(target=consumer, args=(q,))
    p.start()
    t0 = time.time()
    for i in range(count):
        q.put(i)
    q.put(None)
    secs = time.time() - t0
    print(f"producer (pid {os.getpid()}): sent {count} messages in {secs:.3f} s ({count / secs / 1e6:.2f} M msg/s)")
    p.join()
    sys.exit(p.exitcode)
