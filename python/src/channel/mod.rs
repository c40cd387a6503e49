//! [`Channel`]: the shmq handles of one process for a queue or one pipe
//! end, lent one at a time to the threads that send or receive, and the
//! Python methods of `shmq._shmq.Channel`.

pub(crate) mod view;

use crate::blocking::{deadline, poll_loop, send_loop, take};
use crate::errors::{closed, open_err, recv_err, send_err};
use crate::framing::{decode, frame, Parts, Tag};
use crate::prelude::*;
use view::{SharedView, ViewHold};

/// What a process holds of a queue or pipe end.
pub(crate) enum Anchor {
    Queue(Queue),
    Pipe(Connection),
}

/// The open state of a [`Channel`]: the anchor, and handles to lend one at
/// a time to the threads that send or receive (a shmq handle is not
/// `Sync`; each blocked thread holds its own).
pub(crate) struct State {
    pub(crate) anchor: Anchor,
    pub(crate) senders: Vec<Sender>,
    pub(crate) receivers: Vec<Receiver>,
}

impl State {
    pub(crate) fn sender(&mut self) -> PyResult<Sender> {
        if let Some(s) = self.senders.pop() {
            return Ok(s);
        }
        match &self.anchor {
            Anchor::Queue(q) => q.try_sender().map_err(send_err),
            Anchor::Pipe(c) => c
                .sender()
                .cloned()
                .ok_or_else(|| PyOSError::new_err("connection is read-only")),
        }
    }

    pub(crate) fn receiver(&mut self) -> PyResult<Receiver> {
        if let Some(r) = self.receivers.pop() {
            return Ok(r);
        }
        match &self.anchor {
            Anchor::Queue(q) => q.try_receiver().map_err(|e| recv_err(e, false)),
            Anchor::Pipe(c) => c
                .receiver()
                .cloned()
                .ok_or_else(|| PyOSError::new_err("connection is write-only")),
        }
    }
}

/// The handles of this process for one shmq queue or pipe end.
#[pyclass(module = "shmq._shmq", frozen)]
pub(crate) struct Channel {
    pub(crate) state: Mutex<Option<State>>,
    pub(crate) is_pipe: bool,
    pub(crate) end: u16,
    pub(crate) readable: bool,
    pub(crate) writable: bool,
    pub(crate) max_message_size: usize,
    pub(crate) capacity: usize,
    pub(crate) maxsize: Option<usize>,
}

/// A builder with the sizes Python gave (`None`: the defaults).
pub(crate) fn builder(capacity_bytes: Option<usize>, overflow_bytes: Option<u64>) -> shmq::Builder {
    let mut b = Queue::builder();
    if let Some(c) = capacity_bytes {
        b = b.capacity_bytes(c);
    }
    if let Some(o) = overflow_bytes {
        b = b.overflow_bytes(o);
    }
    b
}

impl Channel {
    pub(crate) fn new(anchor: Anchor) -> Self {
        let (is_pipe, end, max, cap, maxsize) = match &anchor {
            Anchor::Queue(q) => (false, 0, q.max_message_size(), q.capacity(), q.maxsize()),
            Anchor::Pipe(c) => (true, c.end(), c.max_message_size(), c.capacity(), None),
        };
        let (readable, writable) = match &anchor {
            Anchor::Queue(_) => (true, true),
            Anchor::Pipe(c) => (c.receiver().is_some(), c.sender().is_some()),
        };
        Channel {
            state: Mutex::new(Some(State {
                anchor,
                senders: Vec::new(),
                receivers: Vec::new(),
            })),
            is_pipe,
            end,
            readable,
            writable,
            max_message_size: max,
            capacity: cap,
            maxsize,
        }
    }

    pub(crate) fn with_state<R>(&self, f: impl FnOnce(&mut State) -> PyResult<R>) -> PyResult<R> {
        let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(g.as_mut().ok_or_else(closed)?)
    }

    pub(crate) fn give_back_sender(&self, s: Sender) {
        let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(st) = g.as_mut() {
            st.senders.push(s);
        }
    }

    pub(crate) fn give_back_receiver(&self, r: Receiver) {
        let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(st) = g.as_mut() {
            st.receivers.push(r);
        }
    }

    pub(crate) fn send_parts(
        &self,
        py: Python<'_>,
        parts: &Parts<'_>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let slices = parts.slices()?;
        let deadline = deadline(block, timeout)?;
        let tx = self.with_state(State::sender)?;
        let r = send_loop(self.is_pipe, py, &tx, &slices, deadline);
        self.give_back_sender(tx);
        r
    }

    /// Takes one message and decodes it with `f` while the record is held.
    pub(crate) fn recv_with<R>(
        &self,
        py: Python<'_>,
        block: bool,
        timeout: Option<f64>,
        f: impl Fn(Python<'_>, &[u8]) -> PyResult<R>,
    ) -> PyResult<R> {
        let deadline = deadline(block, timeout)?;
        let rx = self.with_state(State::receiver)?;
        let r = match take(self.is_pipe, py, &rx, deadline) {
            Ok(g) => f(py, &g),
            Err(e) => Err(e),
        };
        self.give_back_receiver(rx);
        r
    }
}

#[pymethods]
impl Channel {
    /// A new anonymous queue (a sealed memfd): `maxsize` messages at most
    /// (0: no limit), unbounded in bytes (`max_bytes` None) or bounded to
    /// `max_bytes`, its messages in blocks of `capacity_bytes` (None:
    /// 1 MiB) in an overflow area of `overflow_bytes` (None: the machine's
    /// memory, up to 64 GiB). With `overflow_bytes` 0 there is no overflow
    /// area: the queue is its ring, bounded by its bytes.
    /// With a `name`, a named queue (POSIX shm, `/dev/shm/<name>`) that
    /// other programs open by it, and that stays until unlinked.
    #[staticmethod]
    #[pyo3(signature = (maxsize=0, capacity_bytes=None, overflow_bytes=None, max_bytes=None, name=None))]
    pub(crate) fn queue(
        maxsize: usize,
        capacity_bytes: Option<usize>,
        overflow_bytes: Option<u64>,
        max_bytes: Option<u64>,
        name: Option<&str>,
    ) -> PyResult<Self> {
        let mut b = builder(capacity_bytes, overflow_bytes);
        if maxsize > 0 {
            b = b.maxsize(maxsize);
        }
        b = match (overflow_bytes, max_bytes) {
            (Some(0), _) => b,
            (_, Some(n)) => b.max_bytes(n),
            (_, None) => b.unbounded(),
        };
        let q = match name {
            Some(n) => b.create_named(n),
            None => b.create(),
        };
        Ok(Channel::new(Anchor::Queue(q.map_err(open_err)?)))
    }

    /// Opens the named queue `name` (made by any program, Rust or Python).
    #[staticmethod]
    pub(crate) fn open_queue(name: &str) -> PyResult<Self> {
        Ok(Channel::new(Anchor::Queue(
            Queue::open(name).map_err(open_err)?,
        )))
    }

    /// Removes the name of a named queue (its users keep it until they
    /// close it).
    #[staticmethod]
    pub(crate) fn unlink_queue(name: &str) -> PyResult<()> {
        Queue::unlink(name).map_err(open_err)
    }

    /// A new anonymous pipe: its two ends (`duplex` false: reader, writer).
    #[staticmethod]
    #[pyo3(signature = (duplex=true, capacity_bytes=None, overflow_bytes=None))]
    pub(crate) fn pipe(
        duplex: bool,
        capacity_bytes: Option<usize>,
        overflow_bytes: Option<u64>,
    ) -> PyResult<(Self, Self)> {
        let b = builder(capacity_bytes, overflow_bytes);
        let (x, y) = if duplex {
            b.create_pipe_duplex().map_err(open_err)?
        } else {
            let (r, w) = b.create_pipe().map_err(open_err)?;
            (Connection::from(r), Connection::from(w))
        };
        Ok((Channel::new(Anchor::Pipe(x)), Channel::new(Anchor::Pipe(y))))
    }

    /// Attaches a queue from its fd; the channel takes the fd over.
    #[staticmethod]
    pub(crate) fn attach_queue(fd: i32) -> PyResult<Self> {
        // SAFETY: the caller hands over an fd it owns and will not use again.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Channel::new(Anchor::Queue(
            Queue::from_fd(fd).map_err(open_err)?,
        )))
    }

    /// Attaches end `end` of a pipe from its fd; the channel takes the fd over.
    #[staticmethod]
    pub(crate) fn attach_pipe(fd: i32, end: u16) -> PyResult<Self> {
        // SAFETY: as in `attach_queue`.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Channel::new(Anchor::Pipe(
            Connection::from_fd(fd, end).map_err(open_err)?,
        )))
    }

    /// The segment's fd (for pickling: duplicate it, do not close it).
    pub(crate) fn fileno(&self) -> PyResult<i32> {
        self.with_state(|st| {
            Ok(match &st.anchor {
                Anchor::Queue(q) => q.as_fd().as_raw_fd(),
                Anchor::Pipe(c) => c.as_fd().as_raw_fd(),
            })
        })
    }

    /// Which end of its pipe this is (0 for a queue).
    #[getter]
    pub(crate) fn end(&self) -> u16 {
        self.end
    }

    /// Whether this is a pipe end.
    #[getter]
    pub(crate) fn is_pipe(&self) -> bool {
        self.is_pipe
    }

    /// The largest message, in bytes, framing included.
    #[getter]
    pub(crate) fn max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// The ring's size in bytes.
    #[getter]
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// The message limit, or None.
    #[getter]
    pub(crate) fn maxsize(&self) -> Option<usize> {
        self.maxsize
    }

    /// Whether the end can receive (also after `release`).
    #[getter]
    pub(crate) fn readable(&self) -> bool {
        self.readable
    }

    /// Whether the end can send (also after `release`).
    #[getter]
    pub(crate) fn writable(&self) -> bool {
        self.writable
    }

    /// Sends `obj` (a `bytes` as is, anything else pickled with protocol 5,
    /// its out-of-band buffers written straight into the ring).
    #[pyo3(signature = (obj, block=true, timeout=None))]
    pub(crate) fn put(
        &self,
        py: Python<'_>,
        obj: &Bound<'_, PyAny>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let parts = frame(obj, false)?;
        self.send_parts(py, &parts, block, timeout)
    }

    /// Sends the bytes of a buffer as they are (`send_bytes`).
    #[pyo3(signature = (buf, block=true, timeout=None))]
    pub(crate) fn put_bytes(
        &self,
        py: Python<'_>,
        buf: &Bound<'_, PyAny>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let parts = frame(buf, true)?;
        self.send_parts(py, &parts, block, timeout)
    }

    /// Receives an object (as `put` sent it; `put_bytes`' bytes unpickled).
    #[pyo3(signature = (block=true, timeout=None))]
    pub(crate) fn get(
        &self,
        py: Python<'_>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<PyObject> {
        self.recv_with(py, block, timeout, |py, m| decode(py, m, false))
    }

    /// Receives a message's bytes (`put_bytes`' as sent; an object pickled).
    /// Longer than `maxlength`: `OSError`, the message dropped.
    #[pyo3(signature = (block=true, timeout=None, maxlength=None))]
    pub(crate) fn get_bytes(
        &self,
        py: Python<'_>,
        block: bool,
        timeout: Option<f64>,
        maxlength: Option<usize>,
    ) -> PyResult<PyObject> {
        let bytes = self.recv_with(py, block, timeout, |py, m| decode(py, m, true))?;
        match maxlength {
            Some(max) if bytes.bind(py).len()? > max => {
                Err(PyOSError::new_err("bad message length"))
            }
            _ => Ok(bytes),
        }
    }

    /// Receives a message and returns the bytes it carries: a `bytes`,
    /// `bytearray` or `memoryview` put as is, anything else as its pickle.
    #[pyo3(signature = (block=true, timeout=None))]
    pub(crate) fn get_payload(
        &self,
        py: Python<'_>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<PyObject> {
        self.recv_with(py, block, timeout, |py, m| match Tag::split(m)? {
            (Tag::Bytes | Tag::ByteArray | Tag::Raw, data) => {
                Ok(PyBytes::new(py, data).into_any().unbind())
            }
            _ => decode(py, m, true),
        })
    }

    /// Receives a message and returns its payload where it lies in shared
    /// memory (a `bytes`, `bytearray` or `memoryview` put: its bytes;
    /// anything else: its pickle, framed with its buffers if it had
    /// out-of-band ones), as an object with the buffer protocol.
    #[pyo3(signature = (block=true, timeout=None))]
    pub(crate) fn get_view(
        slf: &Bound<'_, Self>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<SharedView> {
        let py = slf.py();
        let this = slf.get();
        let deadline = deadline(block, timeout)?;
        let rx = Box::new(this.with_state(State::receiver)?);
        // SAFETY: the record borrows the boxed handle, whose heap address
        // does not change when the box moves into the view; the view drops
        // the record before the handle (`SharedView::drop`), so the
        // invented 'static never outlives what it borrows.
        let rx_ref: &'static Receiver = unsafe { &*(&*rx as *const Receiver) };
        let taken = match take(this.is_pipe, py, rx_ref, deadline) {
            Ok(t) => t,
            Err(e) => {
                this.give_back_receiver(*rx);
                return Err(e);
            }
        };
        let start = usize::from(!taken.is_empty());
        Ok(SharedView {
            held: ViewHold {
                taken: Some(taken),
                rx: Some(rx),
            },
            channel: slf.clone().unbind(),
            start,
        })
    }

    /// Receives a message's bytes into `buf` at `offset`; returns its
    /// length, or raises `multiprocessing.BufferTooShort` with the bytes.
    #[pyo3(signature = (buf, offset=0, block=true, timeout=None))]
    pub(crate) fn get_bytes_into(
        &self,
        py: Python<'_>,
        buf: &Bound<'_, PyAny>,
        offset: usize,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<usize> {
        let out = pyo3::buffer::PyBuffer::<u8>::get(buf)?;
        if out.readonly() || !out.is_c_contiguous() {
            return Err(PyValueError::new_err(
                "buffer must be writable and contiguous",
            ));
        }
        let size = out.len_bytes();
        if offset > size {
            return Err(PyValueError::new_err("offset too large"));
        }
        let obj = self.recv_with(py, block, timeout, |py, m| decode(py, m, true))?;
        let obj = obj.bind(py).downcast::<PyBytes>()?;
        let bytes = obj.as_bytes();
        if bytes.len() > size - offset {
            let too_short = py.import("multiprocessing")?.getattr("BufferTooShort")?;
            return Err(PyErr::from_type(
                too_short.downcast_into::<PyType>()?,
                (obj.clone().unbind(),),
            ));
        }
        // SAFETY: a writable, C-contiguous export of `size` bytes, alive
        // while `out` is; `offset + len <= size` was checked above.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                (out.buf_ptr() as *mut u8).add(offset),
                bytes.len(),
            )
        };
        Ok(bytes.len())
    }

    /// Whether a message is ready (or the other end is gone), waiting at
    /// most `timeout` (None: for ever); takes nothing.
    #[pyo3(signature = (timeout=0.0))]
    pub(crate) fn poll(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let deadline = deadline(true, timeout)?;
        let rx = self.with_state(State::receiver)?;
        let r = poll_loop(self.is_pipe, py, &rx, deadline);
        self.give_back_receiver(rx);
        r
    }

    /// Messages in the queue now (from any process).
    pub(crate) fn qsize(&self) -> PyResult<usize> {
        self.with_state(|st| {
            Ok(match &st.anchor {
                Anchor::Queue(q) => q.len(),
                Anchor::Pipe(c) => c.receiver().map_or(0, |r| r.len()),
            })
        })
    }

    /// Whether the queue holds `maxsize` messages (or its bytes are used up).
    pub(crate) fn full(&self) -> PyResult<bool> {
        self.with_state(|st| {
            Ok(match &st.anchor {
                Anchor::Queue(q) => q.is_full(),
                Anchor::Pipe(_) => false,
            })
        })
    }

    /// Closes the queue or pipe for every process: receivers drain what
    /// was sent, then get `ShutDown` (a pipe: `EOFError`); sends fail.
    pub(crate) fn shutdown(&self) -> PyResult<()> {
        self.with_state(|st| {
            match &st.anchor {
                Anchor::Queue(q) => q.close(),
                Anchor::Pipe(c) => c.close(),
            }
            Ok(())
        })
    }

    /// Whether `shutdown` was called (in any process).
    pub(crate) fn is_shutdown(&self) -> PyResult<bool> {
        self.with_state(|st| {
            Ok(match &st.anchor {
                Anchor::Queue(q) => q.is_closed(),
                Anchor::Pipe(c) => c.is_closed(),
            })
        })
    }

    /// Drops this process's handles (Python's `close()`); later calls raise
    /// `ValueError`, except `release` and `released`.
    pub(crate) fn release(&self) {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner()).take();
        drop(st);
    }

    /// Whether `release` was called.
    #[getter]
    pub(crate) fn released(&self) -> bool {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none()
    }

    fn __repr__(&self) -> String {
        format!(
            "<shmq._shmq.Channel {} capacity={} released={}>",
            if self.is_pipe { "pipe end" } else { "queue" },
            self.capacity,
            self.released()
        )
    }
}
