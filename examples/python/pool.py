# The Python program examples/pool.rs mirrors: Pool(3).
import multiprocessing, sys, time


def square(x):
    return x * x


if __name__ == "__main__":
    tasks = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    with multiprocessing.Pool(3) as pool:
        results = [pool.apply_async(square, (i,)) for i in range(10)]
        print("apply_async:", [r.get(timeout=10) for r in results])
        print("map:", pool.map(square, range(10)))
        print("imap_unordered:", sorted(pool.imap_unordered(square, range(10))))
        # (no task whose worker exits: Python's pool would wait for ever)
        t0 = time.time()
        pool.map(square, range(tasks))
        map_rate = tasks / (time.time() - t0)
        t0 = time.time()
        [r.get() for r in [pool.apply_async(square, (i,)) for i in range(tasks)]]
        apply_rate = tasks / (time.time() - t0)
        print(f"{tasks} trivial tasks: map {map_rate:.0f} tasks/s, apply_async {apply_rate:.0f} tasks/s")
