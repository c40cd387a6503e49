"""Single large messages between two processes: shmq.Queue and shmq.Pipe
against multiprocessing's, beside memcpy of the same size, in one run
(docs/BENCHMARKS.md, *Large messages*).

    python python/bench/large.py [--sizes 64,1024] [--markdown]

A child puts R messages of S MiB (bytes, or a numpy array) one after the
other; the parent gets each (a bytes object or an array of its own) and
checks its length. GB/s = R * S / (time from the child's first put to the
parent's last get), median of three runs. "get_view": the parent takes
each message in place (a memoryview in shared memory, no copy out). memcpy:
one copy of S MiB into a buffer already touched (numpy.copyto), the best of
five; "fresh" copies into new memory (numpy's, which asks for huge pages),
as a receiver that makes a new object must. The default ring (1 MiB) is
used throughout: every message goes through the overflow area.
"""

import argparse
import multiprocessing as mp
import statistics
import time

import shmq

try:
    import numpy as np
except ImportError:
    np = None

MiB = 1 << 20


def make(kind, size):
    if kind == "bytes":
        return b"\x5a" * size
    return np.full(size // 8, 3.0)


def length(x):
    return len(x) if isinstance(x, bytes) else x.nbytes


def sender(kind, size, reps, send, go):
    msg = make(kind, size)
    go.wait()
    for _ in range(reps):
        send(msg)


def run_once(transport, kind, size, reps):
    ctx = mp.get_context("fork")
    if transport == "shmq.Queue":
        q = shmq.Queue()
        send, recv = q.put, q.get
    elif transport == "shmq.Queue get_view":
        q = shmq.Queue()
        send, recv = q.put, q.get_view
    elif transport == "multiprocessing.Queue":
        q = ctx.Queue()
        send, recv = q.put, q.get
    elif transport == "shmq.Pipe":
        r, w = shmq.Pipe(duplex=False)
        send, recv = w.send, r.recv
    else:
        r, w = ctx.Pipe(duplex=False)
        send, recv = w.send, r.recv
    go = ctx.Event()
    p = ctx.Process(target=sender, args=(kind, size, reps, send, go))
    p.start()
    time.sleep(0.2)
    t0 = time.perf_counter()
    go.set()
    for _ in range(reps):
        m = recv()
        if isinstance(m, memoryview):
            # In place, in shared memory: a bytes message's frame (its kind
            # byte) and all, released at once.
            assert m.nbytes >= size, (transport, m.nbytes)
            m.release()
        else:
            assert length(m) == size, (transport, length(m))
        del m
    t = time.perf_counter() - t0
    p.join()
    return reps * size / t / 1e9


def memcpy(size):
    src = np.full(size // 8, 1.0)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    warm = []
    fresh = []
    for _ in range(5):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        warm.append(size / (time.perf_counter() - t0) / 1e9)
        t0 = time.perf_counter()
        x = src.copy()
        fresh.append(size / (time.perf_counter() - t0) / 1e9)
        del x
    return max(warm), max(fresh)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="64,1024", help="MiB, comma separated")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    kinds = ["bytes"] + (["numpy"] if np is not None else [])
    transports = [
        "shmq.Queue",
        "multiprocessing.Queue",
        "shmq.Pipe",
        "multiprocessing.Pipe",
        "shmq.Queue get_view",
    ]
    rows = []
    for mib in (int(s) for s in a.sizes.split(",")):
        size = mib * MiB
        reps = max(2, min(16, 1024 // mib))
        warm, fresh = memcpy(size) if np is not None else (float("nan"), float("nan"))
        for kind in kinds:
            got = {}
            for t in transports:
                got[t] = statistics.median(run_once(t, kind, size, reps) for _ in range(a.runs))
            rows.append((mib, kind, got, warm, fresh))
            if not a.markdown:
                print(
                    f"{mib} MiB {kind}: "
                    + ", ".join(f"{t} {v:.2f} GB/s" for t, v in got.items())
                    + f" | memcpy {warm:.2f} GB/s (fresh {fresh:.2f})",
                    flush=True,
                )
    if a.markdown:
        print(
            "| message | shmq.Queue | mp.Queue | shmq.Pipe | mp.Pipe | shmq.Queue, get_view "
            "| memcpy (warm / fresh) | shmq.Queue / mp.Queue | shmq.Pipe / mp.Pipe | get_view / memcpy |"
        )
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for mib, kind, g, warm, fresh in rows:
            q, mq, p, mpp, v = (g[t] for t in transports)
            print(
                f"| {mib} MiB {kind} | {q:.2f} GB/s | {mq:.2f} GB/s | {p:.2f} GB/s | {mpp:.2f} GB/s "
                f"| {v:.2f} GB/s | {warm:.2f} / {fresh:.2f} GB/s | {q / mq:.1f}x | {p / mpp:.1f}x | {v / warm:.2f}x |"
            )


if __name__ == "__main__":
    main()
