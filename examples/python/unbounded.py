# The Python program examples/unbounded.rs mirrors: the unbounded queue of
# every tutorial. A producer puts 20,000 ints and a 10 MiB bytes object into
# Queue() before anyone reads, then exits. With multiprocessing the parent
# must get everything before it joins the producer (the documented
# "joining processes that use queues" deadlock: the producer's feeder
# thread waits for a reader at exit); with `from shmq import Queue` the
# items are in shared memory when put returns, so the join may come first.
from multiprocessing import Process, Queue


def producer(q):
    for i in range(20_000):
        q.put(i)
    q.put(b"x" * (10 << 20))


if __name__ == "__main__":
    q = Queue()
    p = Process(target=producer, args=(q,))
    p.start()
    items = [q.get() for _ in range(20_000)]
    blob = q.get()
    p.join()
    print("got", len(items), "ints, sum", sum(items), "in order", items == list(range(20_000)))
    print("got a blob of", len(blob), "bytes")
    print("producer exit code", p.exitcode)
