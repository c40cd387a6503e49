# Tutorial 4: tasks fed to worker processes, results collected (the
# multiprocessing documentation's queue example).
import random
import time
from multiprocessing import Process, Queue, current_process


def worker(input, output):
    for func, args in iter(input.get, "STOP"):
        result = calculate(func, args)
        output.put(result)


def calculate(func, args):
    result = func(*args)
    return "%s says that %s%s = %s" % (current_process().name, func.__name__, args, result)


def mul(a, b):
    time.sleep(0.01 * random.random())
    return a * b


def plus(a, b):
    time.sleep(0.01 * random.random())
    return a + b


def strip_name(line):
    return line.split(" says that ", 1)[1]


if __name__ == "__main__":
    NUMBER_OF_PROCESSES = 4
    TASKS1 = [(mul, (i, 7)) for i in range(20)]
    TASKS2 = [(plus, (i, 8)) for i in range(10)]
    task_queue = Queue()
    done_queue = Queue()
    for task in TASKS1:
        task_queue.put(task)
    for i in range(NUMBER_OF_PROCESSES):
        Process(target=worker, args=(task_queue, done_queue)).start()
    print("Unordered results:")
    print("\n".join(sorted(strip_name(done_queue.get()) for _ in TASKS1)))
    for task in TASKS2:
        task_queue.put(task)
    print("\n".join(sorted(strip_name(done_queue.get()) for _ in TASKS2)))
    for i in range(NUMBER_OF_PROCESSES):
        task_queue.put("STOP")
