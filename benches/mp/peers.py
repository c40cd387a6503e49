"""Python's multiprocessing.Queue and multiprocessing.Pipe, measured the way
shmq's multi-process benchmark measures everything else (it runs this script
when python3 is present and parses the lines it prints).

    python3 peers.py [--smoke]

Output, one result per line:
    rtt <mechanism> <size> <p50> <p90> <p99> <p99.9> <p99.99> <max>   (ns)
    tput <mechanism> <size> <messages> <seconds> <cpu seconds>
    pool mp.Pool <map|apply_async> <tasks> <seconds>
"""

import multiprocessing as mp
import os
import resource
import sys
import time

SMOKE = "--smoke" in sys.argv


def quantiles(samples):
    s = sorted(samples)
    n = len(s)
    out = []
    for q in (50.0, 90.0, 99.0, 99.9, 99.99):
        out.append(s[min(n - 1, int(q / 100.0 * n))])
    out.append(s[-1])
    return out


# ---------------------------------------------------------------- latency

def echo_queue(a, b, n):
    for _ in range(n):
        b.put(a.get())


def echo_pipe(conn, n):
    for _ in range(n):
        conn.send_bytes(conn.recv_bytes())


def rtt(kind, size, warm, n):
    msg = b"\x5a" * size
    if kind == "mp.Queue":
        a, b = mp.Queue(), mp.Queue()
        child = mp.Process(target=echo_queue, args=(a, b, warm + n))
        send, recv = a.put, b.get
    else:
        here, there = mp.Pipe()
        child = mp.Process(target=echo_pipe, args=(there, warm + n))
        send, recv = here.send_bytes, here.recv_bytes
    child.start()
    samples = []
    clock = time.perf_counter_ns
    for i in range(warm + n):
        t = clock()
        send(msg)
        recv()
        dt = clock() - t
        if i >= warm:
            samples.append(dt)
    child.join()
    print("rtt", kind, size, *quantiles(samples), flush=True)


# ------------------------------------------------------------- throughput

def produce_queue(q, msg, n):
    for _ in range(n):
        q.put(msg)
    q.put(None)


def produce_pipe(conn, msg, n):
    for _ in range(n):
        conn.send_bytes(msg)
    conn.send_bytes(b"")


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def tput(kind, size, n):
    msg = b"\x01" * size
    cpu0 = children_cpu() + sum(os.times()[:2])
    if kind == "mp.Queue":
        q = mp.Queue()
        child = mp.Process(target=produce_queue, args=(q, msg, n))
        t0 = time.perf_counter()
        child.start()
        got = 0
        while q.get() is not None:
            got += 1
    else:
        r, w = mp.Pipe(duplex=False)
        child = mp.Process(target=produce_pipe, args=(w, msg, n))
        t0 = time.perf_counter()
        child.start()
        got = 0
        while len(r.recv_bytes()) != 0:
            got += 1
    secs = time.perf_counter() - t0
    child.join()
    cpu = children_cpu() + sum(os.times()[:2]) - cpu0
    assert got == n, (got, n)
    print("tput", kind, size, got, f"{secs:.6f}", f"{cpu:.6f}", flush=True)


# ------------------------------------------------------------------- pool

def square(x):
    return x * x


def pool_bench(n_map, n_apply):
    # Pool(3), as the tutorial program and shmq's run (POOL_WORKERS).
    with mp.Pool(3) as pool:
        pool.map(square, range(1000))  # warm up
        t = time.perf_counter()
        out = pool.map(square, range(n_map))
        secs = time.perf_counter() - t
        assert len(out) == n_map
        print("pool", "mp.Pool", "map", n_map, f"{secs:.6f}", flush=True)
        t = time.perf_counter()
        rs = [pool.apply_async(square, (i,)) for i in range(n_apply)]
        for i, r in enumerate(rs):
            assert r.get() == i * i
        secs = time.perf_counter() - t
        print("pool", "mp.Pool", "apply_async", n_apply, f"{secs:.6f}", flush=True)


if __name__ == "__main__":
    mp.set_start_method("fork")
    lat_n = 500 if SMOKE else 20000
    for size in (64, 4096):
        for kind in ("mp.Pipe", "mp.Queue"):
            rtt(kind, size, lat_n // 10, lat_n)
    for size, n in ((64, 200000), (4096, 100000), (65536, 10000), (1 << 20, 1000)):
        for kind in ("mp.Pipe", "mp.Queue"):
            tput(kind, size, max(10, n // 100) if SMOKE else n)
    pool_bench(2000 if SMOKE else 400000, 500 if SMOKE else 40000)
