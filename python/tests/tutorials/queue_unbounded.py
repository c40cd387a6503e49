# The unbounded queue of every tutorial: a producer puts 20,000 ints and a
# 10 MiB bytes object into Queue() before anyone reads, then exits.
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
