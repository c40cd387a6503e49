"""shmq's Python package against multiprocessing.Queue, multiprocessing.Pipe
and faster-fifo, measured in the same run (docs/BENCHMARKS.md, *Python*).

    python python/bench/bench.py [--quick] [--markdown]

Throughput: P producer processes put N messages in all, C consumer
processes get them; the time runs from the start signal to the last
consumer's end. Round trip: a 64 B bytes message sent to a child and
back, median of many. Fork start method (setup cost is not measured).
"""

import argparse
import multiprocessing as mp
import statistics
import sys
import time

import shmq

try:
    import numpy as np
except ImportError:
    np = None
try:
    import faster_fifo
except ImportError:
    faster_fifo = None

MiB = 1 << 20


def payloads():
    out = [
        ("64 B bytes", lambda: b"x" * 64, 64),
        ("small tuple", lambda: (1, 2.5, "three", None), 0),
        ("4 KiB bytes", lambda: b"x" * 4096, 4096),
        ("1 MiB bytes", lambda: b"x" * MiB, MiB),
    ]
    if np is not None:
        out.append(("1 MiB numpy", lambda: np.ones(MiB // 8), MiB))
    return out


class Peer:
    def __init__(self, name, make, duplex_only=False):
        self.name, self.make, self.duplex_only = name, make, duplex_only


def peers(big):
    cap = 64 * MiB if big else None
    out = [
        Peer("shmq.Queue", lambda: _QueuePair(shmq.Queue(capacity_bytes=cap))),
        Peer("multiprocessing.Queue", lambda: _QueuePair(mp.Queue())),
    ]
    if faster_fifo is not None:
        out.append(
            Peer("faster_fifo.Queue", lambda: _QueuePair(faster_fifo.Queue(max_size_bytes=cap or 10 * MiB)))
        )
    out.append(Peer("shmq.Pipe", lambda: _PipePair(*shmq.Pipe(duplex=False, capacity_bytes=cap)), True))
    out.append(Peer("multiprocessing.Pipe", lambda: _PipePair(*mp.Pipe(duplex=False)), True))
    return out


class _QueuePair:
    def __init__(self, q):
        self.put, self.get = q.put, q.get
        self.q = q

    def ends(self):
        return self.q, self.q


class _PipePair:
    def __init__(self, r, w):
        self.r, self.w = r, w

    def ends(self):
        return self.w, self.r


def _methods(end):
    """put and get of a queue or pipe end; faster-fifo's wait 10 s by default."""
    if faster_fifo is not None and isinstance(end, faster_fifo.Queue):
        return (lambda x: end.put(x, timeout=3600)), (lambda: end.get(timeout=3600))
    put = end.put if hasattr(end, "put") else getattr(end, "send", None)
    get = end.get if hasattr(end, "get") else getattr(end, "recv", None)
    return put, get


def _put_all(end, make, n, go):
    put = _methods(end)[0]
    obj = make()
    go.wait()
    for _ in range(n):
        put(obj)


def _get_all(end, n, done):
    get = _methods(end)[1]
    for _ in range(n):
        get()
    done.put(time.monotonic())


def throughput(peer, make, n, producers, consumers):
    ctx = mp.get_context("fork")
    pair = peer.make()
    tx, rx = pair.ends()
    go, done = ctx.Event(), ctx.Queue()
    ps = [ctx.Process(target=_put_all, args=(tx, make, n // producers, go)) for _ in range(producers)]
    cs = [ctx.Process(target=_get_all, args=(rx, n // consumers, done)) for _ in range(consumers)]
    for p in ps + cs:
        p.start()
    time.sleep(0.2)
    t0 = time.monotonic()
    go.set()
    end = max(done.get() for _ in cs)
    for p in ps + cs:
        p.join()
    return n / (end - t0)


def _echo(rx, tx, n):
    get, put = _methods(rx)[1], _methods(tx)[0]
    for _ in range(n):
        put(get())


def round_trip(kind, n):
    ctx = mp.get_context("fork")
    if kind == "shmq.Queue":
        a, b = shmq.Queue(), shmq.Queue()
        there, back, child = a, b, (a, b)
    elif kind == "multiprocessing.Queue":
        a, b = mp.Queue(), mp.Queue()
        there, back, child = a, b, (a, b)
    elif kind == "faster_fifo.Queue":
        a, b = faster_fifo.Queue(), faster_fifo.Queue()
        there, back, child = a, b, (a, b)
    elif kind == "shmq.Pipe":
        x, y = shmq.Pipe()
        there, back, child = x, x, (y, y)
    else:
        x, y = mp.Pipe()
        there, back, child = x, x, (y, y)
    p = ctx.Process(target=_echo, args=(child[0], child[1], n))
    p.start()
    put, get = _methods(there)[0], _methods(back)[1]
    msg = b"x" * 64
    lat = []
    for _ in range(n):
        t = time.perf_counter()
        put(msg)
        get()
        lat.append(time.perf_counter() - t)
    p.join()
    return statistics.median(lat[n // 10 :]) * 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="small counts (a smoke run)")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    scale = 0.02 if args.quick else 1.0
    rows = []
    for label, make, size in payloads():
        big = size >= MiB
        n_base = 2000 if big else (40_000 if size == 4096 else 200_000)
        n = max(40, int(n_base * scale)) // 4 * 4
        for producers, consumers in ((1, 1), (4, 4)):
            results = {}
            for peer in peers(big):
                if peer.duplex_only and producers > 1:
                    continue
                results[peer.name] = throughput(peer, make, n, producers, consumers)
            rows.append((label, f"{producers}x{consumers}", results, size))
            print(label, f"{producers}x{consumers}", {k: f"{v:,.0f}" for k, v in results.items()}, file=sys.stderr)
    rt_n = max(200, int(20_000 * scale))
    kinds = ["shmq.Queue", "multiprocessing.Queue"] + (["faster_fifo.Queue"] if faster_fifo else []) + [
        "shmq.Pipe",
        "multiprocessing.Pipe",
    ]
    rts = {k: round_trip(k, rt_n) for k in kinds}
    print("round trip", {k: f"{v:.1f} us" for k, v in rts.items()}, file=sys.stderr)
    if args.markdown:
        report(rows, rts)


def report(rows, rts):
    names = ["shmq.Queue", "multiprocessing.Queue", "faster_fifo.Queue", "shmq.Pipe", "multiprocessing.Pipe"]
    print("| message | procs | " + " | ".join(names) + " | shmq.Queue / mp.Queue | shmq.Queue / faster-fifo | shmq.Pipe / mp.Pipe |")
    print("|---|---|" + "---:|" * (len(names) + 3))
    for label, procs, res, size in rows:
        def cell(k):
            if k not in res:
                return "–"
            v = res[k]
            rate = f"{v/1e3:,.0f} k/s" if v >= 10_000 else f"{v:,.0f}/s"
            return rate + (f" ({v*size/1e9:.2f} GB/s)" if size >= 4096 else "")

        def ratio(a, b):
            return f"{res[a]/res[b]:.1f}×" if a in res and b in res else "–"

        print(
            f"| {label} | {procs} | "
            + " | ".join(cell(k) for k in names)
            + f" | {ratio('shmq.Queue', 'multiprocessing.Queue')} | {ratio('shmq.Queue', 'faster_fifo.Queue')}"
            + f" | {ratio('shmq.Pipe', 'multiprocessing.Pipe')} |"
        )
    print()
    print("| round trip, 64 B, p50 | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    print("| µs | " + " | ".join(f"{rts[k]:.1f}" if k in rts else "–" for k in names) + " |")
    q = rts["shmq.Queue"] / rts["multiprocessing.Queue"]
    p = rts["shmq.Pipe"] / rts["multiprocessing.Pipe"]
    print(f"\nshmq.Queue's round trip / multiprocessing.Queue's: {q:.2f}; shmq.Pipe's / multiprocessing.Pipe's: {p:.2f}")


if __name__ == "__main__":
    main()
