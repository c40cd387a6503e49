"""A backlog in one process: N small ints put, then got, on an unbounded
queue (shmq.Queue() against multiprocessing.Queue()), with the time and
the peak resident memory of each (docs/BENCHMARKS.md, *Unbounded queues*).

    python python/bench/backlog.py [--count 1000000] [--runs 3] [--markdown]

Each run is a fresh interpreter (so peak RSS is that run's alone): it makes
the queue, puts 0..N-1, then gets them all back and checks their sum.
Reported: median put time, get time and total over the runs, and the
peak RSS (``ru_maxrss``, shared memory the process touched included) less
the interpreter's RSS before the queue was made.
"""

import argparse
import json
import statistics
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
kind, n = sys.argv[1], int(sys.argv[2])
if kind == "shmq":
    import shmq
    make = shmq.Queue
else:
    import multiprocessing
    make = multiprocessing.Queue
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
q = make()
t0 = time.perf_counter()
for i in range(n):
    q.put(i)
t1 = time.perf_counter()
total = 0
for _ in range(n):
    total += q.get()
t2 = time.perf_counter()
assert total == n * (n - 1) // 2
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"put": t1 - t0, "get": t2 - t1, "peak_kib": peak - base}))
"""


def run(kind, n):
    out = subprocess.run(
        [sys.executable, "-c", CHILD, kind, str(n)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args()
    rows = {}
    for _ in range(a.runs):
        # Interleaved, so that both see the same machine.
        for kind in ("multiprocessing", "shmq"):
            rows.setdefault(kind, []).append(run(kind, a.count))
    med = {
        k: {f: statistics.median(r[f] for r in v) for f in ("put", "get", "peak_kib")}
        for k, v in rows.items()
    }
    mp, ours = med["multiprocessing"], med["shmq"]
    mp_total, our_total = mp["put"] + mp["get"], ours["put"] + ours["get"]
    if a.markdown:
        print("| queue | put (s) | get (s) | total (s) | peak RSS (MiB) |")
        print("|---|---:|---:|---:|---:|")
        for k, m in (("multiprocessing.Queue()", mp), ("shmq.Queue()", ours)):
            print(
                f"| {k} | {m['put']:.3f} | {m['get']:.3f} | {m['put'] + m['get']:.3f} "
                f"| {m['peak_kib'] / 1024:.1f} |"
            )
        print(
            f"\n{a.count:,} ints: shmq {mp_total / our_total:.2f}x faster, "
            f"peak memory {ours['peak_kib'] / max(mp['peak_kib'], 1):.2f}x multiprocessing's"
        )
    else:
        print(json.dumps({"median": med, "runs": rows}, indent=1))


if __name__ == "__main__":
    main()
