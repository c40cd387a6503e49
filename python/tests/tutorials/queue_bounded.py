# Tutorial 2: Queue(3): put blocks while the queue is full; put_nowait raises.
import queue
import time
from multiprocessing import Process, Queue


def slow_consumer(q):
    for _ in range(6):
        time.sleep(0.05)
        q.get()


if __name__ == "__main__":
    q = Queue(3)
    for i in range(3):
        q.put(i)
    print("full", q.full())
    try:
        q.put_nowait(3)
    except queue.Full:
        print("put_nowait raised queue.Full")
    try:
        q.put(3, timeout=0.1)
    except queue.Full:
        print("put with timeout raised queue.Full")
    p = Process(target=slow_consumer, args=(q,))
    p.start()
    t = time.monotonic()
    for i in range(3, 6):
        q.put(i)  # waits for the consumer
    print("blocked", time.monotonic() - t > 0.04)
    p.join()
    print("empty", q.empty())
