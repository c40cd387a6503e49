# The Python program examples/pipe_duplex.rs mirrors: two processes
# talking both ways over a duplex Pipe.
import multiprocessing, os, sys, time


def child(conn, parent_end):
    parent_end.close()  # else the parent's close() never reaches us (fork)
    print(f"child got: {conn.recv_bytes().decode()}")
    conn.send_bytes(f"hello from the child (pid {os.getpid()})".encode())
    echoed = 0
    try:
        while True:
            m = conn.recv_bytes()
            if m.startswith(b"add "):
                reply = str(sum(int(x) for x in m[4:].split())).encode()
            else:
                echoed += 1
                reply = m
            conn.send_bytes(reply)
    except EOFError:
        print(f"child: echoed {echoed} messages, then saw the parent close the pipe")


if __name__ == "__main__":
    trips = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    parent, child_end = multiprocessing.Pipe()
    p = multiprocessing.Process(target=child, args=(child_end, parent))
    p.start()
    child_end.close()
    parent.send_bytes(f"hello from the parent (pid {os.getpid()})".encode())
    print(f"parent got: {parent.recv_bytes().decode()}")
    for a, b in ((2, 3), (40, 2), (1 << 20, 1 << 20)):
        parent.send_bytes(f"add {a} {b}".encode())
        print(f"parent: add {a} {b} = {parent.recv_bytes().decode()}")
    msg = b"\x07" * 64
    t0 = time.time()
    for _ in range(trips):
        parent.send_bytes(msg)
        assert len(parent.recv_bytes()) == len(msg), "bad echo"
    us = (time.time() - t0) * 1e6 / trips
    print(f"parent: {trips} round trips of 64 bytes, {us:.2f} µs each on average")
    parent.close()
    p.join()
    sys.exit(p.exitcode)
