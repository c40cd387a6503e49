# Tutorial 3: a producer and a consumer, ended by a sentinel.
from multiprocessing import Process, Queue

SENTINEL = None


def producer(q, n):
    for i in range(n):
        q.put(("item", i, i * i))
    q.put(SENTINEL)


def consumer(q, out):
    total = 0
    count = 0
    while True:
        item = q.get()
        if item is SENTINEL:
            break
        total += item[2]
        count += 1
    out.put((count, total))


if __name__ == "__main__":
    q, out = Queue(), Queue()
    c = Process(target=consumer, args=(q, out))
    p = Process(target=producer, args=(q, 10000))
    c.start()
    p.start()
    p.join()
    print("consumed", out.get())
    c.join()
