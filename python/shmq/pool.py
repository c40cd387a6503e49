"""``shmq.Pool``: ``multiprocessing.Pool`` with its tasks and results in shmq
queues, and workers that die failing their task instead of hanging it.

It is CPython's own ``multiprocessing.pool.Pool`` (every method, argument,
chunking rule, callback and shutdown step is the standard library's), with
three parts replaced:

- the task and result queues are shmq queues (unbounded, in shared memory:
  the task feeder never blocks, a result is out of the worker when its
  ``put`` returns), and the pool's wake-up channel is a pipe of this
  process (no semaphore);
- each worker notes in a shared slot which task it runs. When a worker
  dies (killed, ``os._exit``, a crash in C code) in the middle of a task,
  that task fails with :class:`WorkerDied` and the worker is replaced;
  ``multiprocessing.Pool`` replaces the worker and waits for ever for the
  task's result;
- a worker that dies before it takes a task (its initializer raises, its
  module does not import) is replaced after a back-off (10 ms, doubling,
  at most 1 s); after :data:`START_FAILURES` such deaths in a row, while
  no worker has started, every pending task fails with :class:`WorkerDied`
  (``multiprocessing.Pool`` starts new workers without end, and ``apply``
  never returns).

A worker killed in the few instructions between taking a task from the
queue and noting it loses that task as ``multiprocessing.Pool`` would;
see docs/PYTHON.md.
"""

from __future__ import annotations

import os
import time
import weakref
from multiprocessing import pool as _mp_pool
from multiprocessing.pool import ApplyResult, IMapIterator, MapResult

import shmq

__all__ = ["Pool", "WorkerDied", "START_FAILURES"]

#: Deaths at start-up in a row, with no worker started, after which the
#: pending tasks fail.
START_FAILURES = 5

# A worker's slot: three int64s. The state, then the task it runs.
_STARTING, _IDLE, _RUNNING = 0, 1, 2
_SLOT = 3


class WorkerDied(RuntimeError):
    """The worker process running a task died before it returned a
    result, or workers keep dying before they take any task."""


class _Lost:
    """A result the pool writes for a task whose worker died (parent-side
    only, through the result queue, behind any result the worker wrote)."""

    def __init__(self, message):
        self.message = message


def _worker(inqueue, outqueue, initializer, initargs, maxtasks, wrap_exception, slots, index):
    """``multiprocessing.pool.worker``, noting each task in its slot."""
    base = index * _SLOT
    put = outqueue.put
    get = inqueue.get
    if initializer is not None:
        initializer(*initargs)
    slots[base] = _IDLE
    completed = 0
    while maxtasks is None or completed < maxtasks:
        try:
            task = get()
        except (EOFError, OSError):
            break
        if task is None:
            break
        job, i, func, args, kwds = task
        slots[base + 1] = job
        slots[base + 2] = i
        slots[base] = _RUNNING
        try:
            result = (True, func(*args, **kwds))
        except Exception as e:
            if wrap_exception and func is not _mp_pool._helper_reraises_exception:
                e = _mp_pool.ExceptionWithTraceback(e, e.__traceback__)
            result = (False, e)
        try:
            put((job, i, result))
        except Exception as e:
            put((job, i, (False, _mp_pool.MaybeEncodingError(e, result[1]))))
        slots[base] = _IDLE
        task = job = result = func = args = kwds = None
        completed += 1


class _Notifier:
    """The pool's wake-up channel (``_change_notifier``): a pipe of this
    process, as ``multiprocessing.connection.wait`` needs, and nothing a
    child inherits a use for."""

    def __init__(self):
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        self._reader = self

    def fileno(self):
        return self._r

    def put(self, _obj):
        os.write(self._w, b"!")

    def empty(self):
        try:
            b = os.read(self._r, 1)
        except BlockingIOError:
            return True
        # Not taken: empty() is followed by get() in the pool's loop.
        self._pending = b
        return False

    def get(self):
        if getattr(self, "_pending", None):
            self._pending = None
            return None
        os.read(self._r, 1)

    def __del__(self):
        for fd in (getattr(self, "_r", None), getattr(self, "_w", None)):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass


class _WhenClosing:
    """The pool cache's notifier: the base class wakes its worker handler
    each time the cache empties, which it needs only once the pool is
    closing (it then waits for the cache to drain). While the pool runs,
    that wake-up (a thread taking the GIL after every ``apply``) is
    skipped; ``close()`` and ``terminate()`` notify for themselves after
    changing the state, so no drain goes unseen."""

    def __init__(self, pool, notifier):
        self._pool = weakref.ref(pool)
        self._notifier = notifier

    def put(self, obj):
        pool = self._pool()
        if pool is None or pool._state != _mp_pool.RUN:
            self._notifier.put(obj)


class _Workers(list):
    """The pool's list of worker processes: the standard pool removes a
    worker that exited with ``del``, which is where we learn of it."""

    def __init__(self, pool):
        super().__init__()
        self._owner = pool

    def __delitem__(self, i):
        w = self[i]
        super().__delitem__(i)
        self._owner._worker_exited(w)


class Pool(_mp_pool.Pool):
    """A process pool; see the module docs and ``multiprocessing.Pool``.

    ``Pool(processes=None, initializer=None, initargs=(),
    maxtasksperchild=None, context=None)``; use it as ``multiprocessing``'s
    (``with shmq.Pool(3) as p: p.map(f, range(10))``).
    """

    def _setup_queues(self):
        self._inqueue = shmq.Queue()
        self._outqueue = shmq.Queue()
        self._quick_put = self._inqueue.put
        self._quick_get = self._next_result
        # Set up before the workers start (the base class starts them next).
        self._pool = _Workers(self)
        self._slots = None  # made by the first `Process`, for `_processes`
        self._start_failures = 0
        self._delivered = set()

    def _get_sentinels(self):
        # Called once, after the base class made its wake-up channel from
        # the context and before its threads start: ours replaces it (a
        # local pipe, see `_Notifier`; a context whose SimpleQueue is
        # shmq's would give one with no fd to wait on).
        self._change_notifier = _Notifier()
        self._cache.notifier = _WhenClosing(self, self._change_notifier)
        return [self._change_notifier._reader]

    @staticmethod
    def _help_stuff_finish(inqueue, task_handler, size):
        # The task queue is unbounded (the feeder never blocks on it); what
        # is still in it is dropped, as terminate() drops it.
        while True:
            try:
                inqueue.get_nowait()
            except shmq.Empty:
                return

    def Process(self, ctx, *args, **kwds):  # noqa: N802 (multiprocessing's name)
        """Starts a worker (called by the base class): ours, with a slot."""
        if self._start_failures:
            time.sleep(min(1.0, 0.01 * 2 ** (self._start_failures - 1)))
        if self._slots is None:
            # The base class has counted the workers by now.
            self._slots = ctx.RawArray("q", _SLOT * self._processes)
        used = {w._shmq_slot for w in self._pool}
        index = next(i for i in range(self._processes) if i not in used)
        self._slots[index * _SLOT] = _STARTING
        (inqueue, outqueue, initializer, initargs, maxtasks, wrap) = kwds["args"]
        kwds["target"] = _worker
        kwds["args"] = (inqueue, outqueue, initializer, initargs, maxtasks, wrap, self._slots, index)
        w = ctx.Process(*args, **kwds)
        w._shmq_slot = index
        return w

    def apply_async(self, func, args=(), kwds={}, callback=None, error_callback=None):
        """As ``multiprocessing.Pool.apply_async``; the task goes into the
        task queue from the calling thread (the base class hands it to its
        task-feeder thread first: a thread wake-up more per call, most of
        a round trip's time). The job is in the pool's cache before its
        task is in the queue, so a ``close()`` meanwhile still runs it."""
        self._check_running()
        result = ApplyResult(self, callback, error_callback)
        try:
            self._inqueue.put((result._job, 0, func, args, kwds))
        except Exception as e:
            # As the feeder thread reports it: through the result.
            result._set(0, (False, e))
        return result

    def _worker_exited(self, w):
        """A worker exited (the worker-handler thread, before it starts the
        replacement): fail the task it was running, if any."""
        base = w._shmq_slot * _SLOT
        state = self._slots[base]
        if state == _RUNNING:
            self._start_failures = 0
            job, i = self._slots[base + 1], self._slots[base + 2]
            msg = f"worker process {w.pid} died running this task (exit code {w.exitcode})"
            self._outqueue.put((job, i, _Lost(msg)))
        elif state == _STARTING:
            self._start_failures += 1
            started = any(self._slots[o._shmq_slot * _SLOT] != _STARTING for o in self._pool)
            if self._start_failures >= START_FAILURES and not started:
                msg = (
                    f"pool workers died before taking a task {self._start_failures} times in a "
                    f"row (last exit code {w.exitcode}): the initializer or the import of the "
                    "worker's module fails (see its traceback above)"
                )
                self._outqueue.put((-1, -1, _Lost(msg)))
        else:
            self._start_failures = 0

    def _next_result(self):
        """The result handler's ``get``: results as the workers wrote them,
        and a failure for each task whose worker died."""
        cache = self._cache
        while True:
            task = self._outqueue.get()
            if task is None:
                return task
            job, i, obj = task
            if obj.__class__ is not _Lost:
                r = cache.get(job)
                if r is not None and r.__class__ is MapResult:
                    # Map chunks: a death notice may follow the chunk's
                    # result (the worker died just after writing it).
                    if len(self._delivered) > 4096:
                        self._delivered = {k for k in self._delivered if k[0] in cache}
                    self._delivered.add((job, i))
                return task
            err = (False, WorkerDied(obj.message))
            if job == -1:
                # Workers die at start-up: everything pending fails.
                for r in list(cache.values()):
                    r._set(r._index if isinstance(r, IMapIterator) else 0, err)
                continue
            r = cache.get(job)
            if r is None or (job, i) in self._delivered:
                continue
            if isinstance(r, IMapIterator) and (i < r._index or i in r._unsorted):
                continue
            return (job, i, err)

