# Tutorial 1: put, get and qsize, with a child process.
import time
from multiprocessing import Process, Queue


def f(q):
    q.put([42, None, "hello"])


if __name__ == "__main__":
    q = Queue()
    p = Process(target=f, args=(q,))
    p.start()
    print(q.get())
    p.join()
    for i in range(3):
        q.put(i)
    time.sleep(0.1)  # multiprocessing's feeder thread flushes meanwhile
    print("qsize", q.qsize(), "empty", q.empty())
    print([q.get() for _ in range(3)], "empty", q.empty())
