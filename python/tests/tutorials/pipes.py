# Tutorial 5: Pipe, duplex and one-way.
from multiprocessing import Pipe, Process


def child(conn):
    conn.send([42, None, "hello"])
    print("child got", conn.recv())
    conn.close()


def writer(w):
    for i in range(5):
        w.send_bytes(b"line %d" % i)
    w.close()


if __name__ == "__main__":
    parent_conn, child_conn = Pipe()
    p = Process(target=child, args=(child_conn,))
    p.start()
    child_conn.close()
    print(parent_conn.recv())
    parent_conn.send("thanks")
    p.join()
    try:
        parent_conn.recv()
    except EOFError:
        print("EOFError once the child's end is closed")

    reader, w = Pipe(duplex=False)
    p = Process(target=writer, args=(w,))
    p.start()
    w.close()
    while True:
        try:
            print(reader.recv_bytes().decode())
        except EOFError:
            break
    p.join()
    print("one-way pipe done")
