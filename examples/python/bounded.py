# The Python program examples/bounded.rs mirrors: Queue(3).
import multiprocessing, queue, time


def consumer(q):
    time.sleep(0.3)
    got = list(iter(q.get, None))
    print(f"consumer: got {got}, then the sentinel")
    assert got == [1, 2, 3, 4, 5], "items lost or out of order"


if __name__ == "__main__":
    q = multiprocessing.Queue(3)
    try:
        q.get_nowait()
    except queue.Empty:
        print("get_nowait on an empty queue: Empty")
    for i in (1, 2, 3):
        q.put(i)
        time.sleep(0.01)  # the feeder thread: qsize lags without it
        print(f"put({i}): ok, qsize {q.qsize()}")
    print(f"full: {q.full()}")
    try:
        q.put_nowait(4)
    except queue.Full:
        print("put_nowait(4): Full")
    t0 = time.time()
    try:
        q.put(4, timeout=0.1)
    except queue.Full:
        print(f"put(4, timeout=0.1): Full after {(time.time() - t0) * 1000:.0f} ms")
    p = multiprocessing.Process(target=consumer, args=(q,))
    p.start()
    t0 = time.time()
    q.put(4)
    print(f"put(4): blocked {(time.time() - t0) * 1000:.0f} ms, until the consumer took an item")
    q.put(5)
    q.put(None)
    print("producer: put 5 items and the sentinel")
    p.join()
