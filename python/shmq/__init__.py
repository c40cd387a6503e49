"""shmq: ``multiprocessing.Queue``, ``SimpleQueue``, ``JoinableQueue`` and
``Pipe`` through a lock-free ring in shared memory.

Swap the import and keep the program::

    from shmq import Queue, Pipe      # was: from multiprocessing import ...

Same methods, arguments and exceptions as :mod:`multiprocessing`'s. Objects
are pickled as :mod:`multiprocessing` pickles them (its ``ForkingPickler``
reducers: a Connection, socket or Lock travels as it does there), with
protocol 5 (``bytes`` are sent as they are); their
out-of-band buffers (numpy arrays) are written straight into the ring. The
differences, each on purpose, are listed in ``docs/PYTHON.md``: a message
larger than half the ring (``capacity_bytes``, 1 MiB unless given) is
written to the queue's overflow area in the same shared memory, so ``put``
returns with every message already out of the process (none is lost if it
dies at once) and fails with ``MemoryError`` when memory runs out; ``put``
pickles at once, so an unpicklable object raises in the caller (no feeder
thread prints it later); ``shutdown()`` ends a queue for every process.
"""

from __future__ import annotations

import collections
import copyreg
import io
import os
import pickle
import queue as _queue
import select
import threading
import time
import weakref
from multiprocessing import context as _context
from multiprocessing import reduction as _reduction

from ._shmq import Channel as _Channel
from ._shmq import ShutDown

__all__ = [
    "Queue",
    "SimpleQueue",
    "JoinableQueue",
    "Pipe",
    "Connection",
    "Pool",
    "WorkerDied",
    "ShutDown",
]

Full = _queue.Full
Empty = _queue.Empty


# --- Pickling -------------------------------------------------------------


class _Pickler(pickle.Pickler):
    """``pickle`` with multiprocessing's reducers, as its ``ForkingPickler``
    has them (a Connection's fd, a socket, a Lock, ``shared_memory``),
    read through at each lookup: a reducer registered later counts, and no
    table is copied per message (``ForkingPickler`` copies one)."""

    dispatch_table = collections.ChainMap(
        _reduction.ForkingPickler._extra_reducers, copyreg.dispatch_table
    )


def _dumps(obj, protocol=5, buffer_callback=None):
    """What ``put`` and ``send`` write (called by the extension)."""
    f = io.BytesIO()
    _Pickler(f, protocol, buffer_callback=buffer_callback).dump(obj)
    return f.getvalue()


# --- Handing an end to another process ------------------------------------
#
# A pickled queue or pipe end is its memfd, passed as multiprocessing passes
# a Connection's fd (``reduction.DupFd``: with the child's other fds under
# spawn and forkserver, through the resource sharer otherwise). It also
# carries the write end of an ``os.pipe``: until the child attached
# (and closed it) or died, this process keeps its own handles of the end,
# even after ``close()``, so that the other side does not see the end gone
# (``EOFError``) in between: ``p.start(); child_conn.close();
# parent_conn.recv()`` waits for the child, as with multiprocessing.


class _Pending:
    __slots__ = ("ch", "popen", "r", "w", "seg")

    def __init__(self, ch, popen, r, w, seg):
        self.ch, self.popen, self.r, self.w, self.seg = ch, popen, r, w, seg


_lock = threading.Lock()
_pending: list = []
_to_release: set = set()
_watcher = None


def _handoff(ch):
    """Arguments a child needs to attach ``ch``: (segment fd, done fd)."""
    global _watcher
    popen = _context.get_spawning_popen()
    r, w = os.pipe()
    # A copy of the segment's fd for this hand-off alone: both ends of one
    # pipe share a segment, and spawn refuses an fd listed twice ("bad
    # value(s) in fds_to_keep").
    seg = os.dup(ch.fileno())
    fd = _reduction.DupFd(seg)
    done = _reduction.DupFd(w)
    # Under spawn/forkserver the fds go to the child at its launch: keep
    # ours until the child has a pid. Otherwise the sharer holds a copy now.
    ref = weakref.ref(popen) if popen is not None else None
    with _lock:
        _pending.append(_Pending(ch, ref, r, w, seg))
        if ref is None:
            os.close(w)
            os.close(seg)
            _pending[-1].w = None
            _pending[-1].seg = None
        if _watcher is None:
            _watcher = threading.Thread(target=_watch, name="shmq-handoff", daemon=True)
            _watcher.start()
    return fd, done


def _attached(done):
    """In the child: the hand-off is over (the parent may let go)."""
    os.close(done.detach())


def _launched(p):
    if p.w is None:
        return False
    popen = p.popen() if p.popen is not None else None
    return popen is None or getattr(popen, "pid", None) is not None


def _watch():
    global _watcher
    while True:
        with _lock:
            if not _pending:
                _watcher = None
                return
            for p in _pending:
                if _launched(p):
                    os.close(p.w)
                    os.close(p.seg)
                    p.w = p.seg = None
            fds = [p.r for p in _pending if p.w is None]
        if fds:
            poller = select.poll()
            for fd in fds:
                poller.register(fd, select.POLLIN)
            ready = {fd for fd, _ in poller.poll(50)}
        else:
            time.sleep(0.05)
            ready = set()
        if not ready:
            continue
        finished = []
        with _lock:
            for p in list(_pending):
                if p.r in ready and not os.read(p.r, 64):
                    _pending.remove(p)
                    os.close(p.r)
                    finished.append(p.ch)
            for ch in finished:
                if ch in _to_release and not any(q.ch is ch for q in _pending):
                    _to_release.discard(ch)
                    ch.release()


def _release(ch):
    """``close()``: drop this process's handles, once no hand-off needs them."""
    with _lock:
        if any(p.ch is ch for p in _pending):
            _to_release.add(ch)
            return
    ch.release()


def _after_fork_in_child():
    # The parent's hand-offs are the parent's: a forked child holds no
    # watcher thread and must not keep the parent's ``done`` fds open.
    global _watcher, _lock
    _lock = threading.Lock()
    for p in _pending:
        for fd in (p.r, p.w, p.seg):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
    _pending.clear()
    for ch in _to_release:
        ch.release()
    _to_release.clear()
    _watcher = None


os.register_at_fork(after_in_child=_after_fork_in_child)


# --- Queues -----------------------------------------------------------------


def _queue_from(fd, done, cls, state):
    q = cls.__new__(cls)
    q._ch = _Channel.attach_queue(fd.detach())
    _attached(done)
    q._setstate(state)
    return q


class Queue:
    """``multiprocessing.Queue`` in shared memory.

    Unbounded, as ``multiprocessing.Queue`` is: ``put`` never waits for
    room unless ``maxsize`` (a number of messages) or ``max_bytes`` (bytes
    waiting) bounds it, and an item may be any size. Every item ``put``
    is in the queue's shared memory when ``put`` returns (no feeder
    thread: the producer may exit, or be killed, at once). The backlog
    lives in blocks of ``capacity_bytes`` (rounded up to a power of two,
    1 MiB by default; an item larger than half a block gets memory of its
    own) in the queue's overflow area of ``overflow_bytes`` (the machine's
    memory up to 64 GiB by default; address space, not memory): memory
    follows the backlog, and running out of it raises ``MemoryError``.
    ``overflow_bytes=0`` makes a queue of one ring of ``capacity_bytes``,
    bounded by its bytes, whose items are at most half of it.
    """

    def __init__(
        self,
        maxsize: int = 0,
        *,
        capacity_bytes: int | None = None,
        overflow_bytes: int | None = None,
        max_bytes: int | None = None,
        name: str | None = None,
        ctx=None,
    ):
        if maxsize < 0:
            maxsize = 0
        self._ch = _Channel.queue(maxsize, capacity_bytes, overflow_bytes, max_bytes, name)
        self._maxsize, self._closed = maxsize, False

    @staticmethod
    def open(name: str) -> "Queue":
        """Opens the named queue ``name``, made by another program (Rust's
        ``Queue::builder().create_named``, or ``Queue(name=...)``): for
        unrelated processes, and for ``shmq-bridge``, which carries a
        named queue between hosts (docs/DISTRIBUTED.md)."""
        q = Queue.__new__(Queue)
        q._ch = _Channel.open_queue(name)
        q._maxsize, q._closed = q._ch.maxsize or 0, False
        return q

    @staticmethod
    def unlink(name: str) -> None:
        """Removes a named queue's name (``/dev/shm/<name>``); processes
        that have it open keep it until they close it."""
        _Channel.unlink_queue(name)

    def _setstate(self, state):
        self._maxsize, self._closed = state[0], False

    def _getstate(self):
        return (self._maxsize, self._closed)

    def __reduce__(self):
        if self._closed:
            raise ValueError(f"Queue {self!r} is closed")
        fd, done = _handoff(self._ch)
        return (_queue_from, (fd, done, type(self), self._getstate()))

    def _check_closed(self):
        if self._closed:
            raise ValueError(f"Queue {self!r} is closed")

    #: Whether this process put on the queue (``close()`` then drops its
    #: handles; before, as ``multiprocessing``'s, it leaves ``empty()``,
    #: ``qsize()`` and ``full()`` working).
    _used = False

    def put(self, obj, block: bool = True, timeout: float | None = None) -> None:
        """Puts ``obj``, waiting while the queue is full (see ``queue.Queue.put``)."""
        if self._closed:
            raise ValueError(f"Queue {self!r} is closed")
        self._used = True
        self._ch.put(obj, block, timeout)

    def get(self, block: bool = True, timeout: float | None = None):
        """Removes and returns an object, waiting while the queue is empty."""
        if self._closed:
            raise ValueError(f"Queue {self!r} is closed")
        return self._ch.get(block, timeout)

    def put_nowait(self, obj) -> None:
        """``put(obj, False)``."""
        return self.put(obj, False)

    def get_nowait(self):
        """``get(False)``."""
        return self.get(False)

    def get_buffer(self, block: bool = True, timeout: float | None = None) -> memoryview:
        """Removes a message and returns its bytes as a ``memoryview`` (no
        unpickling): a ``bytes``, ``bytearray`` or ``memoryview`` put comes
        back as its bytes, anything else as its pickle. The view is of a
        private copy, not of the ring (see docs/PYTHON.md)."""
        self._check_closed()
        return memoryview(self._ch.get_payload(block, timeout))

    def get_view(self, block: bool = True, timeout: float | None = None) -> memoryview:
        """Removes a message and returns a read-only ``memoryview`` of its
        bytes where they lie, in shared memory: no copy at all. The message's
        space in the ring stays taken until the view (and every view or
        array made from it) is released: use ``with q.get_view() as v:``.
        A ``bytes``, ``bytearray`` or ``memoryview`` put: its bytes;
        anything else: its pickle."""
        self._check_closed()
        return memoryview(self._ch.get_view(block, timeout))

    def qsize(self) -> int:
        """Messages in the queue now, from every process (exact, not
        approximate as multiprocessing's)."""
        self._check_handle()
        return self._ch.qsize()

    def empty(self) -> bool:
        """Whether the queue is empty now."""
        self._check_handle()
        return self._ch.qsize() == 0

    def full(self) -> bool:
        """Whether the queue holds ``maxsize`` messages, or its bytes are used up."""
        self._check_handle()
        return self._ch.full()

    def _check_handle(self):
        if self._ch.released:
            raise OSError("handle is closed")

    def close(self) -> None:
        """This process will put and get no more. If it put anything, its
        handles are dropped now (``empty()`` and the like then raise
        ``OSError``, as ``multiprocessing``'s do once its feeder thread
        ran); if not, they stay until the object goes, and ``empty()``,
        ``qsize()`` and ``full()`` still answer, as there. Other processes
        keep the queue."""
        self._closed = True
        if self._used:
            _release(self._ch)

    def join_thread(self) -> None:
        """Nothing to join (no feeder thread): everything ``put`` returned
        from is in shared memory already. Must follow ``close()``."""
        assert self._closed, f"Queue {self!r} not closed"

    def cancel_join_thread(self) -> None:
        """Nothing to cancel (no feeder thread)."""

    def shutdown(self, immediate: bool = False) -> None:
        """Ends the queue for every process: ``put`` raises ``ShutDown``;
        ``get`` returns what is left, then raises ``ShutDown`` (Python
        3.13's ``queue.Queue.shutdown``; ``immediate`` is not supported)."""
        if immediate:
            raise NotImplementedError("shutdown(immediate=True): messages are drained first")
        self._ch.shutdown()

    @property
    def maxsize(self) -> int:
        return self._maxsize

    @property
    def max_message_size(self) -> int:
        """The largest message in bytes (pickled, plus one byte): the
        overflow area's size (memory may run out first: ``MemoryError``)."""
        return self._ch.max_message_size

    def __repr__(self):
        return f"<shmq.{type(self).__name__} maxsize={self._maxsize} capacity={self._ch.capacity}>"

    # multiprocessing.Queue is generic in typing stubs.
    def __class_getitem__(cls, item):
        return cls


class JoinableQueue(Queue):
    """``multiprocessing.JoinableQueue``: ``task_done()`` and ``join()``
    over a ``Queue``; the count of unfinished tasks is a
    ``multiprocessing`` semaphore, as in CPython."""

    def __init__(
        self,
        maxsize: int = 0,
        *,
        capacity_bytes: int | None = None,
        overflow_bytes: int | None = None,
        max_bytes: int | None = None,
        ctx=None,
    ):
        super().__init__(
            maxsize,
            capacity_bytes=capacity_bytes,
            overflow_bytes=overflow_bytes,
            max_bytes=max_bytes,
        )
        # Without a context, none: its semaphore and condition come from
        # the spawn context, whose locks go to children of every start
        # method (a fork child inherits them; a spawn or forkserver child
        # reopens them by name). The default context's, under a default of
        # fork, are unlinked at once and refuse a spawn child ("A SemLock
        # created in a fork context is being shared with a process in a
        # spawn context"), and shmq's queues have no start method.
        ctx = ctx or _context._default_context.get_context("spawn")
        self._unfinished_tasks = ctx.Semaphore(0)
        self._cond = ctx.Condition()

    def _setstate(self, state):
        super()._setstate(state[0])
        self._unfinished_tasks, self._cond = state[1]

    def __reduce__(self):
        # Its semaphore and condition pickle only for a child being started
        # (as CPython's JoinableQueue): refuse before handing anything off.
        _context.assert_spawning(self)
        return super().__reduce__()

    def _getstate(self):
        return (super()._getstate(), (self._unfinished_tasks, self._cond))

    def put(self, obj, block: bool = True, timeout: float | None = None) -> None:
        """Puts ``obj`` and counts one more unfinished task."""
        if self._closed:
            raise ValueError(f"Queue {self!r} is closed")
        self._used = True
        # Counted first: a consumer's task_done() may come before put returns.
        self._unfinished_tasks.release()
        try:
            self._ch.put(obj, block, timeout)
        except BaseException:
            with self._cond:
                self._unfinished_tasks.acquire(False)
                if self._unfinished_tasks._semlock._is_zero():
                    self._cond.notify_all()
            raise

    def task_done(self) -> None:
        """One task taken with ``get`` is done."""
        with self._cond:
            if not self._unfinished_tasks.acquire(False):
                raise ValueError("task_done() called too many times")
            if self._unfinished_tasks._semlock._is_zero():
                self._cond.notify_all()

    def join(self) -> None:
        """Waits until every task put has been marked done."""
        with self._cond:
            if not self._unfinished_tasks._semlock._is_zero():
                self._cond.wait()


class SimpleQueue:
    """``multiprocessing.SimpleQueue``: ``put``, ``get``, ``empty``, ``close``."""

    def __init__(
        self, *, capacity_bytes: int | None = None, overflow_bytes: int | None = None, ctx=None
    ):
        self._ch = _Channel.queue(0, capacity_bytes, overflow_bytes, None)

    def __reduce__(self):
        fd, done = _handoff(self._ch)
        return (_simple_from, (fd, done))

    def put(self, obj) -> None:
        """Puts ``obj`` (never waits: the queue is unbounded)."""
        self._ch.put(obj)

    def get(self):
        """Removes and returns an object, waiting for one."""
        return self._ch.get()

    def empty(self) -> bool:
        """Whether the queue is empty now."""
        return self._ch.qsize() == 0

    def close(self) -> None:
        """Drops this process's handles (twice is fine)."""
        _release(self._ch)

    def __repr__(self):
        return f"<shmq.SimpleQueue capacity={self._ch.capacity}>"

    def __class_getitem__(cls, item):
        return cls


def _simple_from(fd, done):
    q = SimpleQueue.__new__(SimpleQueue)
    q._ch = _Channel.attach_queue(fd.detach())
    _attached(done)
    return q


# --- Pipes ------------------------------------------------------------------


def Pipe(
    duplex: bool = True, *, capacity_bytes: int | None = None, overflow_bytes: int | None = None
):
    """``multiprocessing.Pipe``: two ``Connection`` ends; one-way
    (``duplex=False``): ``(reader, writer)``. Sizes as for ``Queue``."""
    a, b = _Channel.pipe(duplex, capacity_bytes, overflow_bytes)
    return Connection(a), Connection(b)


def _connection_from(fd, done, end):
    c = Connection(_Channel.attach_pipe(fd.detach(), end))
    _attached(done)
    return c


class Connection:
    """One end of a ``Pipe``, as ``multiprocessing.connection.Connection``."""

    def __init__(self, ch):
        self._ch = ch
        self._readable = ch.readable
        self._writable = ch.writable
        self._ready = None

    def __reduce__(self):
        self._check_closed()
        fd, done = _handoff(self._ch)
        return (_connection_from, (fd, done, self._ch.end))

    def _check_closed(self):
        if self._ch is None:
            raise OSError("handle is closed")

    def _check_readable(self):
        if not self._readable:
            raise OSError("connection is write-only")

    def _check_writable(self):
        if not self._writable:
            raise OSError("connection is read-only")

    @property
    def closed(self) -> bool:
        """True if the connection is closed."""
        return self._ch is None

    @property
    def readable(self) -> bool:
        """True if the connection is readable."""
        return self._readable

    @property
    def writable(self) -> bool:
        """True if the connection is writable."""
        return self._writable

    def send(self, obj) -> None:
        """Sends a picklable object (a ``bytes`` as it is)."""
        self._check_closed()
        self._check_writable()
        self._ch.put(obj)

    def recv(self):
        """Receives an object; ``EOFError`` once the other end is closed
        everywhere and nothing is left."""
        self._check_closed()
        self._check_readable()
        try:
            return self._ch.get()
        finally:
            self._consumed()

    def send_bytes(self, buf, offset: int = 0, size: int | None = None) -> None:
        """Sends the bytes of a bytes-like object, or of ``buf[offset:offset+size]``."""
        self._check_closed()
        self._check_writable()
        m = memoryview(buf)
        if m.itemsize > 1:
            m = m.cast("B")
        n = m.nbytes
        if offset < 0:
            raise ValueError("offset is negative")
        if n < offset:
            raise ValueError("buffer length < offset")
        if size is None:
            size = n - offset
        elif size < 0:
            raise ValueError("size is negative")
        elif offset + size > n:
            raise ValueError("buffer length < offset + size")
        if offset == 0 and size == n:
            self._ch.put_bytes(m if type(buf) is not bytes else buf)
        else:
            self._ch.put_bytes(m[offset : offset + size])

    def recv_bytes(self, maxlength: int | None = None) -> bytes:
        """Receives the bytes of one message (``send_bytes``'s, or an
        object's pickle)."""
        self._check_closed()
        self._check_readable()
        if maxlength is not None and maxlength < 0:
            raise ValueError("negative maxlength")
        try:
            return self._ch.get_bytes(True, None, maxlength)
        except OSError as e:
            if str(e) == "bad message length":
                self._writable = False
            raise
        finally:
            self._consumed()

    def recv_view(self) -> memoryview:
        """``recv_bytes`` without a copy: a read-only ``memoryview`` of the
        message in shared memory, whose space stays taken until the view is
        released (see ``Queue.get_view``)."""
        self._check_closed()
        self._check_readable()
        try:
            return memoryview(self._ch.get_view())
        finally:
            self._consumed()

    def recv_bytes_into(self, buf, offset: int = 0) -> int:
        """Receives one message's bytes into ``buf`` at ``offset``;
        ``multiprocessing.BufferTooShort`` (holding the bytes) if it does not fit."""
        self._check_closed()
        self._check_readable()
        with memoryview(buf) as m:
            if offset < 0:
                raise ValueError("negative offset")
            if offset > m.nbytes:
                raise ValueError("offset too large")
            try:
                return self._ch.get_bytes_into(m.cast("B"), offset)
            finally:
                self._consumed()

    def poll(self, timeout: float | None = 0.0) -> bool:
        """Whether there is anything to receive (or the end), waiting at
        most ``timeout`` seconds (``None``: for ever)."""
        self._check_closed()
        self._check_readable()
        return self._ch.poll(timeout)

    def fileno(self) -> int:
        """An fd that is readable while there is something to receive, for
        ``multiprocessing.connection.wait`` and ``select``: made on first
        call, marked at once if a message (or the end) is waiting then, and
        later by a thread of this process that watches the ring. ``wait()``
        asks for the fd each time, so it reports every connection that is
        ready when it is called, as with ``multiprocessing``."""
        self._check_closed()
        if self._ready is None or self._ready.pid != os.getpid():
            # A forked child inherits the object but not its thread.
            self._ready = _Readiness(self._ch)
        self._ready.refresh()
        return self._ready.fileno()

    def _consumed(self):
        if self._ready is not None:
            self._ready.consumed()

    def close(self) -> None:
        """Closes this process's end; the other side gets ``EOFError``
        once no process holds this end."""
        ch, self._ch = self._ch, None
        if ch is not None:
            if self._ready is not None:
                self._ready.stop()
                self._ready = None
            _release(ch)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        ready = getattr(self, "_ready", None)
        if ready is not None:
            ready.stop()

    def __repr__(self):
        state = "closed" if self._ch is None else f"end {self._ch.end}"
        return f"<shmq.Connection {state} readable={self._readable} writable={self._writable}>"


class _Readiness:
    """An ``os.pipe`` kept readable while a message (or the end) waits in
    a Connection: a thread polls the ring and writes one byte; receiving
    takes it back."""

    def __init__(self, ch):
        self._ch = ch
        self.pid = os.getpid()
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        self._signalled = False
        self._cond = threading.Condition()
        self._stopped = False
        threading.Thread(target=self._run, name="shmq-fileno", daemon=True).start()

    def fileno(self):
        return self._r

    def _run(self):
        while True:
            with self._cond:
                while self._signalled and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    break
            # A wait that a message ends at once; its timeout only bounds
            # how long a stopped watcher lives on.
            if self._ready_now(0.1):
                self._signal()
                if not self._ch.readable:
                    break
        os.close(self._w)

    def _ready_now(self, timeout):
        try:
            return self._ch.poll(timeout)
        except Exception:
            return True  # closed or broken: readable, recv tells why

    def _signal(self):
        # Checked again under the lock: the watcher's answer may be stale,
        # the message taken (and ``consumed`` run) since it looked, and a
        # byte written then would mark an empty connection for good.
        with self._cond:
            if not self._signalled and not self._stopped and self._ready_now(0):
                os.write(self._w, b"!")
                self._signalled = True

    def refresh(self):
        """Marks the fd at once if something is ready now."""
        if not self._signalled:
            self._signal()

    def consumed(self):
        """A receive is about to take the message the byte stood for."""
        with self._cond:
            if self._signalled:
                try:
                    os.read(self._r, 1)
                except BlockingIOError:
                    pass
                self._signalled = False
                self._cond.notify()

    def stop(self):
        with self._cond:
            self._stopped = True
            self._cond.notify()

    def __del__(self):
        try:
            os.close(self._r)
        except OSError:
            pass


from .pool import Pool, WorkerDied  # noqa: E402 (it uses the classes above)
