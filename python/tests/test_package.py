"""What shmq adds to or changes from multiprocessing's queues: zero-copy
buffers, byte limits, Ctrl-C, the GIL, Pool initializers, shutdown, ends
sent through queues, and no files left in /dev/shm."""

import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

import shmq

np = pytest.importorskip("numpy")


def test_numpy_out_of_band_round_trip():
    q = shmq.Queue(capacity_bytes=8 << 20)
    for a in (
        np.arange(1 << 18, dtype=np.float64),
        np.arange(12, dtype=np.int16).reshape(3, 4),
        np.asfortranarray(np.arange(12.0).reshape(3, 4)),
        np.zeros(0, dtype=np.uint8),
    ):
        q.put(("tag", a, a))
        tag, b, c = q.get()
        assert tag == "tag" and b.dtype == a.dtype and b.shape == a.shape
        assert (b == a).all() and (c == a).all()
        assert b.flags["ALIGNED"]


def test_buffers_and_bytes_types():
    q = shmq.Queue()
    q.put(b"x" * 64)
    q.put(bytearray(b"ab"))
    # A memoryview (not picklable) is sent as its bytes, from its memory.
    q.put(memoryview(b"mv"))
    q.put(memoryview(np.arange(3, dtype=np.int32)))
    q.put(memoryview(np.arange(6, dtype=np.uint8))[::2])  # not contiguous
    assert q.get() == b"x" * 64
    got = q.get()
    assert type(got) is bytearray and got == b"ab"
    assert q.get() == b"mv"
    assert q.get() == np.arange(3, dtype=np.int32).tobytes()
    assert q.get() == bytes([0, 2, 4])
    q.put(b"raw")
    view = q.get_buffer()
    assert isinstance(view, memoryview) and view.tobytes() == b"raw"


def test_messages_of_any_size():
    # A 4 KiB ring: everything above 2 KiB goes through the overflow area.
    q = shmq.Queue(capacity_bytes=4096)
    assert q.max_message_size > 1 << 30
    big = b"x" * (8 << 20) + b"end"
    arr = np.arange(1 << 20, dtype=np.float64)
    q.put(big)
    q.put(arr)
    q.put(list(range(100_000)))
    q.put(b"small")
    assert q.get() == big
    assert np.array_equal(q.get(), arr)
    assert q.get() == list(range(100_000))
    assert q.get() == b"small"
    a, b = shmq.Pipe(capacity_bytes=4096)
    a.send_bytes(big)
    assert b.recv_bytes() == big
    b.send(arr)
    assert np.array_equal(a.recv(), arr)


def test_too_large_and_out_of_memory_say_what_to_do():
    q = shmq.Queue(capacity_bytes=4096, overflow_bytes=1 << 20)
    assert q.max_message_size == 1 << 20
    with pytest.raises(ValueError, match="larger than this queue's largest"):
        q.put(b"x" * (2 << 20))
    q.put(b"x" * (700 << 10))
    with pytest.raises(MemoryError, match="overflow_bytes"):
        q.put(b"y" * (700 << 10))
    assert len(q.get()) == 700 << 10
    q.put(b"y" * (700 << 10))
    assert q.get() == b"y" * (700 << 10)
    none = shmq.Queue(capacity_bytes=4096, overflow_bytes=0)
    assert none.max_message_size <= 2048
    with pytest.raises(ValueError):
        none.put(b"x" * 4096)


def _put_large_and_exit(q):
    q.put(b"z" * (32 << 20))
    os._exit(0)  # no flush, no feeder thread: the message is already out


def _put_a_megabyte(q):
    q.put("X" * 1000000)


def test_joining_a_putter_before_get_does_not_deadlock():
    # The "joining processes that use queues" program of multiprocessing's
    # docs, which deadlocks with multiprocessing.Queue (the child waits at
    # exit for its feeder thread to flush into a full pipe).
    ctx = multiprocessing.get_context("fork")
    q = shmq.Queue()
    p = ctx.Process(target=_put_a_megabyte, args=(q,))
    p.start()
    p.join(timeout=30)
    assert p.exitcode == 0
    assert q.get(timeout=10) == "X" * 1000000


def test_large_put_survives_the_putter_exiting_at_once():
    ctx = multiprocessing.get_context("fork")
    q = shmq.Queue()
    p = ctx.Process(target=_put_large_and_exit, args=(q,))
    p.start()
    p.join()
    assert q.get(timeout=10) == b"z" * (32 << 20)


def test_blocked_get_releases_the_gil():
    q = shmq.Queue()
    ticks = []
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(1)
            time.sleep(0.001)

    t = threading.Thread(target=ticker)
    t.start()
    with pytest.raises(shmq.Empty):
        q.get(timeout=0.3)
    stop.set()
    t.join()
    assert len(ticks) > 20


def test_threads_share_a_queue():
    q = shmq.Queue(maxsize=8)
    out = shmq.Queue()

    def consumer():
        for x in iter(q.get, None):
            out.put(x)

    ts = [threading.Thread(target=consumer) for _ in range(4)]
    for t in ts:
        t.start()
    for i in range(2000):
        q.put(i)
    for _ in ts:
        q.put(None)
    for t in ts:
        t.join()
    assert sorted(out.get() for _ in range(2000)) == list(range(2000))


CTRL_C = r"""
import shmq, sys
q = shmq.Queue()
print("ready", flush=True)
try:
    q.get()
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(0)
"""


CTRL_C_PUT = r"""
import shmq, sys
q = shmq.Queue(1)
q.put(0)
print("ready", flush=True)
try:
    q.put(1)
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(0)
"""


@pytest.mark.parametrize("program", [CTRL_C, CTRL_C_PUT], ids=["get", "put"])
def test_ctrl_c_interrupts_a_blocked_call(program):
    p = subprocess.Popen([sys.executable, "-c", program], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    time.sleep(0.2)
    p.send_signal(signal.SIGINT)
    assert p.wait(timeout=10) == 0
    assert p.stdout.read().strip() == "interrupted"


_worker_q = None


def _init(q):
    global _worker_q
    _worker_q = q


def _square(x):
    _worker_q.put((os.getpid(), x * x))
    return x


def test_pool_initializer(ctx):
    q = shmq.Queue()
    with ctx.Pool(3, initializer=_init, initargs=(q,)) as pool:
        assert sorted(pool.map(_square, range(30))) == list(range(30))
    got = sorted(q.get(timeout=10)[1] for _ in range(30))
    assert got == [x * x for x in range(30)]


def _reply(inbox):
    conn = inbox.get()
    conn.send(("pong", os.getpid()))
    conn.close()


def test_ends_travel_through_a_queue(ctx):
    inbox = shmq.Queue()
    a, b = shmq.Pipe()
    p = ctx.Process(target=_reply, args=(inbox,))
    p.start()
    inbox.put(b)  # pickled outside spawning: the fd goes through the resource sharer
    b.close()
    assert a.recv()[0] == "pong"
    p.join()
    with pytest.raises(EOFError):
        a.recv()


def test_shutdown_drains_then_raises():
    q = shmq.Queue()
    q.put(1)
    q.shutdown()
    with pytest.raises(shmq.ShutDown):
        q.put(2)
    assert q.get() == 1
    with pytest.raises(shmq.ShutDown):
        q.get()


LEAK = r"""
import multiprocessing as mp, shmq
def f(q, c):
    q.put(1); c.send(2)
if __name__ == "__main__":
    for m in ("fork", "spawn", "forkserver"):
        ctx = mp.get_context(m)
        q = shmq.Queue(); a, b = shmq.Pipe(); s = shmq.SimpleQueue(); j = shmq.JoinableQueue()
        p = ctx.Process(target=f, args=(q, b)); p.start()
        assert q.get() == 1 and a.recv() == 2
        p.join()
    print("ok")
"""


def test_nothing_left_in_dev_shm(tmp_path):
    before = set(os.listdir("/dev/shm"))
    script = tmp_path / "leak.py"
    script.write_text(LEAK)
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert r.stdout.strip() == "ok", r.stderr
    new = {f for f in set(os.listdir("/dev/shm")) - before if not f.startswith(("sem.", "mp-"))}
    assert not new


def test_pickled_queue_outside_processes():
    import pickle

    q = shmq.Queue()
    q.put("before")
    q2 = pickle.loads(pickle.dumps(q))
    assert q2.get() == "before"
    q2.put("after")
    assert q.get() == "after"


def test_get_view_is_shared_memory_held_until_released():
    q = shmq.Queue(capacity_bytes=4096, max_bytes=4096)
    a = bytes(range(256)) * 6  # 1536 B
    q.put(a)
    v = q.get_view()
    assert v.readonly and v.tobytes() == a
    with pytest.raises(TypeError):
        v[0] = 1
    q.put(b"b" * 1536)
    # The viewed message's space is still taken: a third does not fit.
    with pytest.raises(shmq.Full):
        q.put(b"c" * 1536, timeout=0.1)
    arr = np.frombuffer(v, dtype=np.uint8)  # an array over the ring
    assert arr[255] == 255
    v.release()
    with pytest.raises(shmq.Full):
        q.put(b"c" * 1536, timeout=0.1)  # the array still holds it
    del arr
    q.put(b"c" * 1536, timeout=5)
    assert q.get() == b"b" * 1536
    with q.get_view() as v2:
        assert v2.tobytes() == b"c" * 1536
    q.put({"k": 1})
    with q.get_view() as v3:
        import pickle

        assert pickle.loads(v3) == {"k": 1}


def test_a_view_released_on_another_thread_gives_its_room_back():
    # A view taken on this thread and dropped on another (a worker thread
    # that consumed it): its record must be released there, or the ring,
    # which holds two such messages, wedges once it wraps.
    q = shmq.Queue(capacity_bytes=4096, max_bytes=4096)
    msg = b"v" * 1536
    for i in range(20):
        q.put(msg, timeout=5)
        held = [q.get_view()]
        t = threading.Thread(target=held.clear)
        t.start()
        t.join()
    q.put(msg, timeout=5)
    q.put(msg, timeout=5)
    assert q.get() == msg and q.get() == msg


def test_recv_view():
    a, b = shmq.Pipe()
    a.send_bytes(b"in place")
    with b.recv_view() as v:
        assert bytes(v) == b"in place"
    assert b.poll() is False


def _wait_in_child(r, out):
    from multiprocessing.connection import wait as mpwait

    out.put(mpwait([r], 10) == [r] and r.recv())


def test_wait_in_a_forked_child_after_the_parent_waited():
    r, w = shmq.Pipe(duplex=False)
    out = shmq.Queue()
    from multiprocessing.connection import wait as mpwait

    assert mpwait([r], 0.05) == []  # the parent's watcher thread exists now
    p = multiprocessing.get_context("fork").Process(target=_wait_in_child, args=(r, out))
    p.start()
    w.send("to the child")
    assert out.get(timeout=20) == "to the child"
    p.join()


def test_joinable_queue_pickles_only_to_a_starting_child():
    import pickle

    q = shmq.JoinableQueue()
    with pytest.raises(RuntimeError, match="inheritance"):
        pickle.dumps(q)
    q.put(1)  # nothing was handed off: close() lets go at once
    q.close()


def _joinable_child(q, out):
    out.put(q.get() + 1)
    q.task_done()


@pytest.mark.parametrize("method", ["spawn", "forkserver", "fork"])
def test_a_joinable_queue_has_no_start_method(method):
    # Made without a context in a program whose default start method is
    # fork, it goes to a child of any start method, as shmq's other queues
    # do. (Its semaphore came from the default context: under spawn and
    # forkserver, start() raised "A SemLock created in a fork context is
    # being shared with a process in a spawn context".)
    assert multiprocessing.get_start_method() == "fork"
    q, out = shmq.JoinableQueue(), shmq.Queue()
    p = multiprocessing.get_context(method).Process(target=_joinable_child, args=(q, out))
    p.start()
    q.put(41)
    assert out.get(timeout=60) == 42
    q.join()
    p.join(timeout=60)
    assert p.exitcode == 0
    q.close()


def _both_ends_child(a, b):
    a.send(b.recv() + 1)


@pytest.mark.parametrize("method", ["spawn", "forkserver", "fork"])
def test_both_ends_of_a_pipe_go_to_one_child(method):
    # Both ends share one segment; spawn refused its fd listed twice
    # ("ValueError: bad value(s) in fds_to_keep" at start()).
    a, b = shmq.Pipe()
    p = multiprocessing.get_context(method).Process(target=_both_ends_child, args=(a, b))
    p.start()
    a.send(41)
    p.join(timeout=60)
    assert p.exitcode == 0
    assert b.recv() == 42
    a.close()
    b.close()


def test_closing_a_watched_connection_stops_its_watcher_cleanly():
    # The fileno() watcher thread must end quietly when its end is closed
    # (it used to die on "handle is closed").
    errors = []
    old = threading.excepthook
    threading.excepthook = lambda args: errors.append(args.exc_value)
    try:
        for _ in range(20):
            a, b = shmq.Pipe()
            b.fileno()
            time.sleep(0.005)
            b.close()
        time.sleep(0.3)
    finally:
        threading.excepthook = old
    assert errors == []


def _fill_and_die(q):
    for i in range(20_000):
        q.put(i)
    q.put(b"x" * (10 << 20))
    os.kill(os.getpid(), signal.SIGKILL)


def test_queue_is_unbounded_and_put_is_in_shared_memory_when_it_returns():
    # multiprocessing.Queue buffers in the producer: killed right after its
    # puts, it delivers a fraction; joined before its items are read, it
    # blocks (the documented deadlock). Here the producer is SIGKILLed the
    # moment its last put returns, joined first, and everything arrives.
    q = shmq.Queue()
    p = multiprocessing.Process(target=_fill_and_die, args=(q,))
    p.start()
    p.join(timeout=60)
    assert p.exitcode == -signal.SIGKILL
    assert q.qsize() == 20_001
    assert [q.get(timeout=5) for _ in range(20_000)] == list(range(20_000))
    assert q.get(timeout=5) == b"x" * (10 << 20)
    for i in range(100_000):
        q.put_nowait(i)  # never Full
    assert q.qsize() == 100_000


def test_max_bytes_bounds_a_queue_by_bytes():
    q = shmq.Queue(max_bytes=64 << 10)
    n = 0
    with pytest.raises(shmq.Full):
        while True:
            q.put_nowait(b"y" * 1000)
            n += 1
    assert 50 <= n <= 64
    q.get()
    q.put(b"y" * 1000, timeout=5)


EXIT_WITH_WAITERS = """
import threading, time, multiprocessing.connection as mc, shmq
q = shmq.Queue()
threading.Thread(target=q.get, daemon=True).start()
a, b = shmq.Pipe()
a.send(1)
assert mc.wait([b], timeout=5) == [b]
time.sleep(0.1)
"""


def test_exit_with_a_blocked_daemon_thread_and_a_watched_connection():
    # At exit CPython (< 3.14) ends threads that take the GIL back with
    # pthread_exit; through PyO3's frames that aborted the process
    # ("FATAL: exception not rethrown", status 134) in most runs.
    for _ in range(6):
        r = subprocess.run(
            [sys.executable, "-c", EXIT_WITH_WAITERS], capture_output=True, timeout=60
        )
        assert r.returncode == 0, r.stderr.decode()


def _use_connection(q):
    conn = q.get(timeout=30)
    conn.send(("hello", os.getpid()))


def test_a_multiprocessing_connection_travels_in_a_message(ctx):
    # put pickles with multiprocessing's reducers: the fd travels (it used
    # to arrive as a bare number, and its collection closed whatever fd had
    # that number in the receiver).
    q = shmq.Queue()
    a, b = multiprocessing.Pipe()
    p = ctx.Process(target=_use_connection, args=(q,))
    p.start()
    q.put(b)
    assert a.poll(30)
    assert a.recv()[0] == "hello"
    p.join(30)
    assert p.exitcode == 0
    # The same in a pipe, inside this process.
    x, y = shmq.Pipe()
    x.send(b)
    c = y.recv()
    c.send("again")
    assert a.recv() == "again"


def test_a_reducer_registered_later_is_used():
    class Late:
        pass

    from multiprocessing.reduction import ForkingPickler

    ForkingPickler.register(Late, lambda obj: (str, ("reduced",)))
    q = shmq.Queue()
    q.put(Late())
    assert q.get() == "reduced"


def _exit_on(x):
    if x == 3:
        os._exit(7)
    return x * 10


def test_pool_task_whose_worker_dies_fails_and_the_pool_goes_on(ctx):
    # multiprocessing.Pool replaces the worker and waits for ever.
    with shmq.Pool(2, context=ctx) as pool:
        r = pool.apply_async(_exit_on, (3,))
        with pytest.raises(shmq.WorkerDied, match="exit code 7"):
            r.get(timeout=60)
        with pytest.raises(shmq.WorkerDied):
            pool.map(_exit_on, range(6), chunksize=1)
        it = pool.imap(_exit_on, [1, 3, 2])
        assert next(it) == 10
        with pytest.raises(shmq.WorkerDied):
            next(it)
        assert next(it) == 20
        assert pool.map(_exit_on, [1, 2, 4]) == [10, 20, 40]


def _failing_init():
    raise RuntimeError("initializer fails")


def test_pool_whose_workers_die_at_start_fails_its_tasks(ctx):
    with shmq.Pool(2, initializer=_failing_init, context=ctx) as pool:
        with pytest.raises(shmq.WorkerDied, match="before taking a task"):
            pool.apply(_exit_on, (1,))


def test_pool_apply_async_reports_an_unpicklable_argument_through_its_result():
    # As multiprocessing's feeder thread does: apply_async itself does not raise.
    with shmq.Pool(1) as pool:
        r = pool.apply_async(_exit_on, (threading.Lock(),))
        with pytest.raises(TypeError):
            r.get(timeout=30)
        assert pool.apply(_exit_on, (1,)) == 10


def test_pool_close_right_after_apply_async_still_runs_it():
    for _ in range(20):
        pool = shmq.Pool(2)
        results = [pool.apply_async(_exit_on, (i,)) for i in (1, 2)]
        pool.close()
        pool.join()
        assert [r.get(timeout=30) for r in results] == [10, 20]


def test_pool_remembers_few_delivered_map_chunks():
    # The map chunks it remembers (to drop a late death notice) are pruned
    # as maps finish, whether or not a worker ever dies.
    with shmq.Pool(1) as pool:
        for _ in range(5000):
            assert pool.map(_exit_on, [1]) == [10]
        assert len(pool._delivered) <= 4097


class _ScriptedChannel:
    """A stand-in for a Connection's channel: the watcher thread's poll
    (timeout > 0) answers True only when told, after the receive it raced
    with has run; ``poll(0)`` tells the truth."""

    readable = True

    def __init__(self):
        self.has_message = True
        self.watcher_polling = threading.Event()
        self.release_watcher = threading.Event()

    def poll(self, timeout):
        if timeout == 0:
            return self.has_message
        if self.release_watcher.is_set():
            time.sleep(timeout)
            return self.has_message
        self.watcher_polling.set()
        self.release_watcher.wait(10)
        return True  # what it saw before the receive


def test_readiness_not_left_marked_by_a_watcher_that_looked_before_a_receive():
    # The watcher saw a message; before it marked the fd, wait() marked it,
    # recv took the message and took the mark back. The watcher's late mark
    # left an empty connection readable for good (CI, test_wait_timeout).
    import select

    ch = _ScriptedChannel()
    ready = shmq._Readiness(ch)
    try:
        assert ch.watcher_polling.wait(10)
        ready.refresh()  # wait() finds the message
        assert select.select([ready.fileno()], [], [], 0)[0]
        ch.has_message = False  # recv takes it ...
        ready.consumed()  # ... and the mark
        ch.release_watcher.set()  # the watcher now acts on what it saw
        time.sleep(0.3)
        assert select.select([ready.fileno()], [], [], 0)[0] == []
    finally:
        ready.stop()


def _put_to_named(name):
    q = shmq.Queue.open(name)
    q.put({"from": os.getpid(), "big": b"x" * (3 << 20)})


def test_named_queue_opened_by_name_in_another_process():
    # What shmq-bridge attaches to (docs/DISTRIBUTED.md): a queue that an
    # unrelated process opens by its name, large items included.
    name = f"shmq-pytest-named-{os.getpid()}"
    q = shmq.Queue(name=name)
    try:
        assert os.path.exists(f"/dev/shm/{name}")
        p = multiprocessing.get_context("spawn").Process(target=_put_to_named, args=(name,))
        p.start()
        got = q.get(timeout=30)
        p.join(30)
        assert got["from"] == p.pid and got["big"] == b"x" * (3 << 20)
        with pytest.raises(FileExistsError):
            shmq.Queue(name=name)
    finally:
        shmq.Queue.unlink(name)
    assert not os.path.exists(f"/dev/shm/{name}")
    with pytest.raises(FileNotFoundError):
        shmq.Queue.open(name)
