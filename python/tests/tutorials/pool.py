# The Pool program of Python's multiprocessing documentation ("Using a pool
# of workers"), extended with the calls the tutorials teach next.
from multiprocessing import Pool, TimeoutError
import os
import time


def f(x):
    return x * x


def add(a, b):
    return a + b


if __name__ == "__main__":
    # start 3 worker processes
    with Pool(processes=3) as pool:
        # print "[0, 1, 4,..., 81]"
        print(pool.map(f, range(10)))

        # print same numbers in arbitrary order, sorted
        print(sorted(pool.imap_unordered(f, range(10))))

        # in order, in chunks of 3
        print(list(pool.imap(f, range(10), chunksize=3)))

        print(pool.starmap(add, [(1, 2), (3, 4)]))

        # evaluate "f(20)" asynchronously
        res = pool.apply_async(f, (20,))  # runs in *only* one process
        print(res.get(timeout=10))  # prints "400"

        # evaluate "os.getpid()" asynchronously
        res = pool.apply_async(os.getpid, ())  # runs in *only* one process
        print(res.get(timeout=10) != os.getpid())  # a worker's pid

        # launching multiple evaluations asynchronously *may* use more processes
        multiple_results = [pool.apply_async(os.getpid, ()) for i in range(4)]
        print(len([res.get(timeout=10) for res in multiple_results]))

        # make a single worker sleep for 2 secs
        res = pool.apply_async(time.sleep, (2,))
        try:
            print(res.get(timeout=0.5))
        except TimeoutError:
            print("We lacked patience and got a multiprocessing.TimeoutError")

        print("For the moment, the pool remains available for more work")

    # exiting the 'with'-block has stopped the pool
    print("Now the pool is closed and no longer available")
