"""shmq.Pool against multiprocessing.Pool (3 workers), and the cost of
making queues and pipes, measured in the same run (docs/BENCHMARKS.md,
*Pool, and making queues and pipes*).

    python python/bench/pool.py [--quick] [--runs 3] [--markdown]

Pool rows: ``map`` of N trivial tasks (default chunking), ``imap`` of M
tasks that each return 1 KiB, and K ``apply_async(...).get()`` round
trips one after another. Each run makes a fresh pool of each kind
(alternating which goes first) and times the call alone (the pool is made
and warmed up before). Create rows: ``Pipe()`` and ``Queue()`` made and
closed, per second. Reported: median seconds over the runs, the spread
(min-max) and shmq's speed-up (multiprocessing time / shmq time).
"""

import argparse
import multiprocessing as mp
import statistics
import time

import shmq


def trivial(x):
    return x


def kib(x):
    return b"x" * 1024


def time_pool(make, job, n):
    with make(3) as pool:
        pool.map(trivial, range(300))  # workers up and warm
        t = time.perf_counter()
        job(pool, n)
        return time.perf_counter() - t


def do_map(pool, n):
    assert len(pool.map(trivial, range(n))) == n


def do_imap(pool, n):
    got = 0
    for r in pool.imap(kib, range(n)):
        got += len(r)
    assert got == n * 1024


def do_apply(pool, n):
    for i in range(n):
        assert pool.apply_async(trivial, (i,)).get() == i


def time_make(make, n):
    t = time.perf_counter()
    for _ in range(n):
        x = make()
        for end in x if isinstance(x, tuple) else (x,):
            end.close()
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args()
    scale = 100 if a.quick else 1
    rows = [
        ("map, trivial tasks", do_map, 1_000_000 // scale),
        ("imap, 1 KiB results", do_imap, 100_000 // scale),
        ("apply_async round trips", do_apply, 10_000 // scale),
    ]
    out = []
    for name, job, n in rows:
        ours, theirs = [], []
        for r in range(a.runs):
            pair = [(ours, shmq.Pool), (theirs, mp.Pool)]
            for acc, make in pair if r % 2 == 0 else pair[::-1]:
                acc.append(time_pool(make, job, n))
        out.append((f"Pool(3): {name} ({n:,})", ours, theirs))
    n = 1000 // (10 if a.quick else 1)
    for name, ours_make, theirs_make in [
        ("Pipe() create+close", shmq.Pipe, mp.Pipe),
        ("Queue() create+close", shmq.Queue, mp.Queue),
    ]:
        ours, theirs = [], []
        for r in range(a.runs):
            ours.append(time_make(ours_make, n))
            theirs.append(time_make(theirs_make, n))
        out.append((f"{name} ({n:,})", ours, theirs))
    if a.markdown:
        print("| what | shmq s (min-max) | multiprocessing s (min-max) | speed-up |")
        print("| --- | --- | --- | --- |")
    for name, ours, theirs in out:
        mo, mt = statistics.median(ours), statistics.median(theirs)
        spread = lambda v: f"{min(v):.3f}-{max(v):.3f}"  # noqa: E731
        if a.markdown:
            print(f"| {name} | {mo:.3f} ({spread(ours)}) | {mt:.3f} ({spread(theirs)}) | {mt / mo:.2f}x |")
        else:
            print(f"{name:45} shmq {mo:8.3f} s  mp {mt:8.3f} s  {mt / mo:6.2f}x")


if __name__ == "__main__":
    main()
