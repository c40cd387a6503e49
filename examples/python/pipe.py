# The Python program examples/pipe.rs mirrors: the `Pipe` example of
# Python's multiprocessing documentation, one way.
from multiprocessing import Pipe, Process


def f(conn):
    conn.send([42, None, "hello"])
    conn.close()


if __name__ == "__main__":
    reader, writer = Pipe(duplex=False)
    p = Process(target=f, args=(writer,))
    p.start()
    print(reader.recv())
    p.join()
