# The Python program examples/workers.rs mirrors: a task queue, a result
# queue and N worker processes.
import multiprocessing, os, sys, time

TASKS, SPAN = 64, 20_000


def is_prime(n):
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    d = 3
    while d * d <= n:
        if n % d == 0:
            return False
        d += 2
    return True


def sieve_count(limit):
    composite = bytearray(limit)
    count = 0
    for i in range(2, limit):
        if not composite[i]:
            count += 1
            composite[i * i::i] = b"\x01" * len(range(i * i, limit, i))
    return count


def worker(tasks, results):
    for task_id, lo, hi in iter(tasks.get, None):
        results.put((task_id, os.getpid(), sum(1 for n in range(lo, hi) if is_prime(n))))


if __name__ == "__main__":
    workers = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    tasks, results = multiprocessing.Queue(), multiprocessing.Queue()
    t0 = time.time()
    ps = [multiprocessing.Process(target=worker, args=(tasks, results)) for _ in range(workers)]
    for p in ps:
        p.start()
    for i in range(TASKS):
        tasks.put((i, i * SPAN, (i + 1) * SPAN))
    for _ in ps:
        tasks.put(None)
    total, by_worker, seen = 0, {}, set()
    for _ in range(TASKS):
        task_id, pid, primes = results.get(timeout=30)
        assert task_id not in seen, f"task {task_id} answered twice"
        seen.add(task_id)
        total += primes
        by_worker[pid] = by_worker.get(pid, 0) + 1
    for p in ps:
        p.join()
        assert p.exitcode == 0, f"worker failed: {p.exitcode}"
    limit, secs = TASKS * SPAN, time.time() - t0
    check = sieve_count(limit)
    agrees = "agrees" if total == check else "DISAGREES"
    print(f"{workers} workers answered {TASKS} tasks in {secs:.3f} s: {total} primes below {limit} (sieve: {check}, {agrees})")
    for pid, n in sorted(by_worker.items()):
        print(f"  worker pid {pid}: {n} tasks")
    sys.exit(0 if total == check else 1)
