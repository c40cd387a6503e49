//! `shmq._shmq`: the extension module under the `shmq` Python package.
//!
//! One class, [`Channel`]: the shmq handles of one process for a queue or
//! one pipe end, with the message framing that lets Python objects cross
//! (see [`Tag`]). The `multiprocessing` semantics (names, exceptions,
//! pickling to child processes, `JoinableQueue`'s counter) live in
//! `shmq/__init__.py`, which wraps a `Channel`.
//!
//! Blocking calls release the GIL and wait in slices of [`SLICE`], checking
//! for signals (Ctrl-C) between slices; a message that is ready is taken
//! with the GIL held and no slice at all.

mod gil;

use pyo3::exceptions::{PyEOFError, PyMemoryError, PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{IntoPyDict, PyByteArray, PyBytes, PyList, PyType};
use shmq::{Connection, OpenError, Queue, Receiver, RecvError, RecvGuard, SendError, Sender};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a blocking call waits with the GIL released before it checks
/// for signals and its deadline.
const SLICE: Duration = Duration::from_millis(50);

/// The first byte of every message: what the rest is.
///
/// ```text
/// b  a `bytes` object, its bytes             (put/send of exactly bytes)
/// a  a `bytearray`, its bytes
/// r  raw bytes from send_bytes                (recv() unpickles them)
/// p  a pickle (protocol 5), in-band only
/// P  a pickle with out-of-band buffers:
///    u32 n | u64 pickle length | n x u64 buffer length | pickle | pad | buffers
///    each buffer starting at a multiple of 16 bytes from the message start
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tag {
    Bytes = b'b' as isize,
    ByteArray = b'a' as isize,
    Raw = b'r' as isize,
    Pickle = b'p' as isize,
    OutOfBand = b'P' as isize,
}

impl Tag {
    /// A message's kind and the bytes after its kind byte.
    fn split(msg: &[u8]) -> PyResult<(Tag, &[u8])> {
        let (&t, data) = msg
            .split_first()
            .ok_or_else(|| PyOSError::new_err("empty message: not from shmq's Python package"))?;
        let tag = match t {
            b'b' => Tag::Bytes,
            b'a' => Tag::ByteArray,
            b'r' => Tag::Raw,
            b'p' => Tag::Pickle,
            b'P' => Tag::OutOfBand,
            t => {
                return Err(PyOSError::new_err(format!(
                    "message of unknown kind {t:#04x}: not from shmq's Python package"
                )))
            }
        };
        Ok((tag, data))
    }
}

/// Out-of-band buffers start at multiples of this from the message start.
const ALIGN: usize = 16;
static ZEROS: [u8; ALIGN] = [0; ALIGN];

static QUEUE_FULL: GILOnceCell<Py<PyType>> = GILOnceCell::new();
static QUEUE_EMPTY: GILOnceCell<Py<PyType>> = GILOnceCell::new();
static DUMPS: GILOnceCell<PyObject> = GILOnceCell::new();
static LOADS: GILOnceCell<PyObject> = GILOnceCell::new();

pyo3::create_exception!(
    _shmq,
    ShutDown,
    pyo3::exceptions::PyException,
    "Raised by put on a queue that was shut down, and by get once such a queue is empty."
);

/// A value moved into `gil::without_gil` and back on the same thread.
/// `without_gil` runs its closure on the calling thread (it only releases
/// the GIL), so a handle that is `Send` but not `Sync` may be used there by
/// reference: no second thread ever sees it.
struct SameThread<T>(T);
// SAFETY: see the type's docs: the value never leaves the calling thread.
unsafe impl<T> Send for SameThread<T> {}

/// What a process holds of a queue or pipe end.
enum Anchor {
    Queue(Queue),
    Pipe(Connection),
}

/// The open state of a [`Channel`]: the anchor, and handles to lend one at
/// a time to the threads that send or receive (a shmq handle is not
/// `Sync`; each blocked thread holds its own).
struct State {
    anchor: Anchor,
    senders: Vec<Sender>,
    receivers: Vec<Receiver>,
}

impl State {
    fn sender(&mut self) -> PyResult<Sender> {
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

    fn receiver(&mut self) -> PyResult<Receiver> {
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
struct Channel {
    state: Mutex<Option<State>>,
    is_pipe: bool,
    end: u16,
    readable: bool,
    writable: bool,
    max_message_size: usize,
    capacity: usize,
    maxsize: Option<usize>,
}

/// errno's `EMFILE` ("Too many open files").
const EMFILE: i32 = 24;

fn open_err(e: OpenError) -> PyErr {
    PyOSError::new_err(chain(&e))
}

/// An error and its causes, `"a: b: c"` (a Rust error says only itself in
/// its `Display`, its cause in `source`).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

fn send_err(e: SendError) -> PyErr {
    Python::with_gil(|py| match e {
        SendError::Full | SendError::Timeout => match QUEUE_FULL.import(py, "queue", "Full") {
            Ok(t) => PyErr::from_type(t.clone(), ()),
            Err(e) => e,
        },
        SendError::Closed => ShutDown::new_err("the queue or pipe was shut down"),
        SendError::TooLarge { len, max } => PyValueError::new_err(format!(
            "message of {len} bytes (pickled) is larger than this queue's largest, {max} \
             bytes: split the message"
        )),
        e @ SendError::OutOfMemory { .. } => PyMemoryError::new_err(e.to_string()),
        SendError::Disconnected => {
            PyOSError::new_err("the other end is gone: no process can receive (EPIPE)")
        }
        // As Python's `open` reports it: OSError with errno EMFILE.
        e @ SendError::TooManyOpenFiles => PyOSError::new_err((EMFILE, e.to_string())),
        e => PyOSError::new_err(e.to_string()),
    })
}

fn recv_err(e: RecvError, pipe: bool) -> PyErr {
    Python::with_gil(|py| match e {
        RecvError::Empty | RecvError::Timeout => match QUEUE_EMPTY.import(py, "queue", "Empty") {
            Ok(t) => PyErr::from_type(t.clone(), ()),
            Err(e) => e,
        },
        RecvError::Closed if pipe => PyEOFError::new_err(()),
        RecvError::Closed => ShutDown::new_err("the queue was shut down and is empty"),
        RecvError::Disconnected => PyEOFError::new_err(()),
        e @ RecvError::TooManyOpenFiles => PyOSError::new_err((EMFILE, e.to_string())),
        e => PyOSError::new_err(e.to_string()),
    })
}

/// A builder with the sizes Python gave (`None`: the defaults).
fn builder(capacity_bytes: Option<usize>, overflow_bytes: Option<u64>) -> shmq::Builder {
    let mut b = Queue::builder();
    if let Some(c) = capacity_bytes {
        b = b.capacity_bytes(c);
    }
    if let Some(o) = overflow_bytes {
        b = b.overflow_bytes(o);
    }
    b
}

fn closed() -> PyErr {
    PyOSError::new_err("handle is closed")
}

/// A deadline from Python's `block`/`timeout`: `None` waits for ever,
/// `Some(now)` not at all.
fn deadline(block: bool, timeout: Option<f64>) -> PyResult<Option<Instant>> {
    let now = Instant::now();
    Ok(match (block, timeout) {
        (false, _) => Some(now),
        (true, None) => None,
        (true, Some(t)) if t.is_nan() => return Err(PyValueError::new_err("timeout is NaN")),
        (true, Some(t)) if t <= 0.0 => Some(now),
        (true, Some(t)) => now.checked_add(Duration::from_secs_f64(t.min(1e9))),
    })
}

/// The next slice of a wait ending at `deadline`, or `None` once it passed.
fn slice(deadline: Option<Instant>) -> Option<Duration> {
    match deadline {
        None => Some(SLICE),
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            (!left.is_zero()).then(|| left.min(SLICE))
        }
    }
}

/// One part of a message being sent.
enum Part<'py> {
    /// An immutable `bytes` object, kept alive here.
    Bytes(Bound<'py, PyBytes>),
    /// An exported buffer (a `bytearray`, a numpy array's memory...).
    Buffer(pyo3::buffer::PyBuffer<u8>),
    /// Zeros, to align the next buffer.
    Pad(usize),
}

/// A message's bytes, borrowed from Python objects for one send.
struct Parts<'py> {
    head: Vec<u8>,
    body: Vec<Part<'py>>,
}

impl Parts<'_> {
    /// The message as slices, in order.
    fn slices(&self) -> PyResult<Vec<&[u8]>> {
        let mut v = Vec::with_capacity(self.body.len() + 1);
        v.push(&self.head[..]);
        for p in &self.body {
            v.push(match p {
                Part::Bytes(b) => b.as_bytes(),
                Part::Buffer(b) => buffer_bytes(b)?,
                Part::Pad(n) => &ZEROS[..*n],
            });
        }
        Ok(v)
    }
}

/// The bytes of a C-contiguous buffer `buf` holds.
fn buffer_bytes(buf: &pyo3::buffer::PyBuffer<u8>) -> PyResult<&[u8]> {
    if !buf.is_c_contiguous() {
        return Err(PyValueError::new_err("buffer is not contiguous"));
    }
    // SAFETY: an exported, C-contiguous buffer of `len_bytes` bytes at
    // `buf_ptr`, alive while `buf` (the export) is, which the returned
    // slice borrows; the exporter may not resize it meanwhile. Its contents
    // change under us only if another thread writes the object while we
    // copy, as with `os.write`.
    Ok(unsafe { std::slice::from_raw_parts(buf.buf_ptr() as *const u8, buf.len_bytes()) })
}

/// Frames `obj` as a message (see [`Tag`]); `raw` for `send_bytes`.
fn frame<'py>(obj: &Bound<'py, PyAny>, raw: bool) -> PyResult<Parts<'py>> {
    let py = obj.py();
    if let Ok(b) = obj.downcast_exact::<PyBytes>() {
        let tag = if raw { Tag::Raw } else { Tag::Bytes };
        return Ok(Parts {
            head: vec![tag as u8],
            body: vec![Part::Bytes(b.clone())],
        });
    }
    if raw || obj.is_exact_instance_of::<PyByteArray>() {
        let tag = if raw { Tag::Raw } else { Tag::ByteArray };
        let buf = pyo3::buffer::PyBuffer::<u8>::get(obj)?;
        return Ok(Parts {
            head: vec![tag as u8],
            body: vec![Part::Buffer(buf)],
        });
    }
    if obj.is_exact_instance_of::<pyo3::types::PyMemoryView>() {
        // Not picklable: sent as its bytes (it arrives as `bytes`), from a
        // byte view of it (`cast` needs it C-contiguous; else one copy).
        let bytes_view = match obj.call_method1("cast", ("B",)) {
            Ok(v) => v,
            Err(_) => obj.call_method0("tobytes")?,
        };
        let buf = pyo3::buffer::PyBuffer::<u8>::get(&bytes_view)?;
        return Ok(Parts {
            head: vec![Tag::Bytes as u8],
            body: vec![Part::Buffer(buf)],
        });
    }
    let buffers = PyList::empty(py);
    let dumps = DUMPS.import(py, "shmq", "_dumps")?;
    let kwargs = [("buffer_callback", buffers.getattr("append")?)].into_py_dict(py)?;
    let pickled = dumps
        .call((obj, 5), Some(&kwargs))?
        .downcast_into::<PyBytes>()?;
    if buffers.is_empty() {
        return Ok(Parts {
            head: vec![Tag::Pickle as u8],
            body: vec![Part::Bytes(pickled)],
        });
    }
    let mut exports = Vec::with_capacity(buffers.len());
    for b in buffers.iter() {
        // PickleBuffer.raw(): a contiguous one-dimensional byte view.
        let view = b.call_method0("raw")?;
        exports.push(pyo3::buffer::PyBuffer::<u8>::get(&view)?);
    }
    let mut head = vec![Tag::OutOfBand as u8];
    head.extend_from_slice(&(exports.len() as u32).to_le_bytes());
    head.extend_from_slice(&(pickled.as_bytes().len() as u64).to_le_bytes());
    for e in &exports {
        head.extend_from_slice(&(e.len_bytes() as u64).to_le_bytes());
    }
    let mut at = head.len() + pickled.as_bytes().len();
    let mut body = vec![Part::Bytes(pickled)];
    for e in exports {
        let pad = at.next_multiple_of(ALIGN) - at;
        at += pad + e.len_bytes();
        body.push(Part::Pad(pad));
        body.push(Part::Buffer(e));
    }
    Ok(Parts { head, body })
}

/// Decodes one message for `recv`/`get` (`bytes_only`: for `recv_bytes`,
/// which returns the bytes `send_bytes` sent, or a pickle of the object).
fn decode(py: Python<'_>, msg: &[u8], bytes_only: bool) -> PyResult<PyObject> {
    let (tag, data) = Tag::split(msg)?;
    let obj = match (tag, bytes_only) {
        (Tag::Raw | Tag::Pickle, true) | (Tag::Bytes, false) => {
            return Ok(PyBytes::new(py, data).into_any().unbind())
        }
        (Tag::ByteArray, false) => return Ok(PyByteArray::new(py, data).into_any().unbind()),
        (Tag::Bytes, true) => PyBytes::new(py, data).into_any(),
        (Tag::ByteArray, true) => PyByteArray::new(py, data).into_any(),
        (Tag::Raw | Tag::Pickle, false) => loads_in_place(py, data)?,
        (Tag::OutOfBand, _) => loads_out_of_band(py, msg)?,
    };
    if bytes_only {
        let dumps = DUMPS.import(py, "shmq", "_dumps")?;
        Ok(dumps.call1((obj, 5))?.unbind())
    } else {
        Ok(obj.unbind())
    }
}

/// `pickle.loads` straight from the ring: a memoryview over `data`,
/// released before the record is.
fn loads_in_place<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    // SAFETY: `data` stays valid for this call (the caller holds the
    // record); the view is read-only and released below, before we return,
    // so no Python object keeps a pointer into the ring. An in-band pickle
    // copies what it reads into new objects.
    let view = unsafe {
        let p = pyo3::ffi::PyMemoryView_FromMemory(
            data.as_ptr() as *mut std::os::raw::c_char,
            data.len() as pyo3::ffi::Py_ssize_t,
            pyo3::ffi::PyBUF_READ,
        );
        Bound::from_owned_ptr_or_err(py, p)?
    };
    let r = LOADS.import(py, "pickle", "loads")?.call1((&view,));
    view.call_method0("release")?;
    r
}

/// Unpickles a message with out-of-band buffers: one copy of the whole
/// message into a `bytearray`, buffers as views of it (a numpy array comes
/// back as an array over that copy).
fn loads_out_of_band<'py>(py: Python<'py>, msg: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    let bad = || PyOSError::new_err("malformed out-of-band message");
    let u64_at = |at: usize| -> PyResult<usize> {
        let b = msg.get(at..at + 8).ok_or_else(bad)?;
        Ok(u64::from_le_bytes(b.try_into().unwrap()) as usize)
    };
    let n = u32::from_le_bytes(msg.get(1..5).ok_or_else(bad)?.try_into().unwrap()) as usize;
    let plen = u64_at(5)?;
    let head = 13usize
        .checked_add(n.checked_mul(8).ok_or_else(bad)?)
        .ok_or_else(bad)?;
    let copy = PyByteArray::new(py, msg);
    let view = pyo3::types::PyMemoryView::from(&copy)?;
    let slice = |a: usize, b: usize| -> PyResult<Bound<'py, PyAny>> {
        if a > b || b > msg.len() {
            return Err(bad());
        }
        view.get_item(pyo3::types::PySlice::new(py, a as isize, b as isize, 1))
    };
    let pickled = slice(head, head.checked_add(plen).ok_or_else(bad)?)?;
    let mut at = head + plen;
    let bufs = PyList::empty(py);
    for i in 0..n {
        let len = u64_at(13 + 8 * i)?;
        at = at.next_multiple_of(ALIGN);
        let end = at.checked_add(len).ok_or_else(bad)?;
        bufs.append(slice(at, end)?)?;
        at = end;
    }
    let loads = LOADS.import(py, "pickle", "loads")?;
    let kwargs = [("buffers", bufs)].into_py_dict(py)?;
    loads.call((pickled,), Some(&kwargs))
}

impl Channel {
    fn new(anchor: Anchor) -> Self {
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

    fn with_state<R>(&self, f: impl FnOnce(&mut State) -> PyResult<R>) -> PyResult<R> {
        let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(g.as_mut().ok_or_else(closed)?)
    }

    fn give_back_sender(&self, s: Sender) {
        let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(st) = g.as_mut() {
            st.senders.push(s);
        }
    }

    fn give_back_receiver(&self, r: Receiver) {
        let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(st) = g.as_mut() {
            st.receivers.push(r);
        }
    }

    fn send_parts(
        &self,
        py: Python<'_>,
        parts: &Parts<'_>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let slices = parts.slices()?;
        let deadline = deadline(block, timeout)?;
        let tx = self.with_state(State::sender)?;
        let r = self.send_loop(py, &tx, &slices, deadline);
        self.give_back_sender(tx);
        r
    }

    fn send_loop(
        &self,
        py: Python<'_>,
        tx: &Sender,
        slices: &[&[u8]],
        deadline: Option<Instant>,
    ) -> PyResult<()> {
        match tx.try_send_vectored(slices) {
            Err(SendError::Full) => {}
            r => return r.map_err(send_err),
        }
        loop {
            let Some(s) = slice(deadline) else {
                return Err(send_err(SendError::Full));
            };
            let (txr, sl) = (SameThread(tx), SameThread(slices));
            let r = gil::without_gil(py, move || {
                let (tx, sl) = (txr, sl);
                SameThread(tx.0.send_vectored_timeout(sl.0, s))
            });
            match r.0 {
                Err(SendError::Timeout) => py.check_signals()?,
                Err(SendError::Disconnected) if !self.is_pipe => {
                    // As `take`: a full queue with no reader anywhere
                    // waits, as Python's would.
                    py.check_signals()?;
                    gil::without_gil(py, || std::thread::sleep(s.min(Duration::from_millis(10))));
                }
                r => return r.map_err(send_err),
            }
        }
    }

    /// Takes one message and decodes it with `f` while the record is held.
    fn recv_with<R>(
        &self,
        py: Python<'_>,
        block: bool,
        timeout: Option<f64>,
        f: impl Fn(Python<'_>, &[u8]) -> PyResult<R>,
    ) -> PyResult<R> {
        let deadline = deadline(block, timeout)?;
        let rx = self.with_state(State::receiver)?;
        let r = match self.take(py, &rx, deadline) {
            Ok(g) => f(py, &g),
            Err(e) => Err(e),
        };
        self.give_back_receiver(rx);
        r
    }

    /// Takes the next record for `rx`, waiting until `deadline`.
    fn take<'r>(
        &self,
        py: Python<'_>,
        rx: &'r Receiver,
        deadline: Option<Instant>,
    ) -> PyResult<RecvGuard<'r>> {
        match rx.try_recv() {
            Ok(g) => return Ok(g),
            Err(RecvError::Empty) => {}
            Err(e) => return Err(recv_err(e, self.is_pipe)),
        }
        loop {
            let Some(s) = slice(deadline) else {
                return Err(recv_err(RecvError::Empty, self.is_pipe));
            };
            let rxr = SameThread(rx);
            let r: SameThread<Result<RecvGuard<'r>, RecvError>> = gil::without_gil(py, move || {
                let rxr = rxr;
                SameThread(rxr.0.recv_timeout(s))
            });
            match r.0 {
                Ok(g) => return Ok(g),
                Err(RecvError::Timeout) => py.check_signals()?,
                Err(RecvError::Disconnected) if !self.is_pipe => {
                    // A queue never ends for `multiprocessing` users: with
                    // no handle left anywhere, wait as Python's would.
                    py.check_signals()?;
                    gil::without_gil(py, || std::thread::sleep(s.min(Duration::from_millis(10))));
                }
                Err(e) => return Err(recv_err(e, self.is_pipe)),
            }
        }
    }

    fn poll_loop(
        &self,
        py: Python<'_>,
        rx: &Receiver,
        deadline: Option<Instant>,
    ) -> PyResult<bool> {
        loop {
            let s = slice(deadline).unwrap_or(Duration::ZERO);
            let rxr = SameThread(rx);
            let r = gil::without_gil(py, move || {
                let rxr = rxr;
                SameThread(rxr.0.poll(s))
            });
            match r.0 {
                Ok(true) => return Ok(true),
                Ok(false) if slice(deadline).is_none() => return Ok(false),
                Ok(false) => py.check_signals()?,
                Err(RecvError::Disconnected | RecvError::Closed) if self.is_pipe => {
                    return Ok(true)
                }
                Err(RecvError::Disconnected) => {
                    // A queue: as `take`, no end.
                    py.check_signals()?;
                    if slice(deadline).is_none() {
                        return Ok(false);
                    }
                    gil::without_gil(py, || std::thread::sleep(s.min(Duration::from_millis(10))));
                }
                Err(e) => return Err(recv_err(e, self.is_pipe)),
            }
        }
    }
}

/// A message's payload in shared memory, exported through the buffer
/// protocol (`Queue.get_view`): the record stays taken, and its bytes
/// unchanged, until this object is gone, i.e. until every memoryview of it
/// is released, on whichever thread that happens.
#[pyclass(module = "shmq._shmq", frozen)]
struct SharedView {
    held: ViewHold,
    channel: Py<Channel>,
    /// Where the payload starts in the message (after the kind byte).
    start: usize,
}

/// A taken record and the receiving handle it was taken with, owned
/// together.
struct ViewHold {
    /// The record; borrows `rx`, so it is dropped first (see `Drop`).
    taken: Option<RecvGuard<'static>>,
    /// The handle the record was taken with, boxed so that its address
    /// stays put while `taken` borrows it.
    rx: Option<Box<Receiver>>,
}

// SAFETY: `taken` borrows only `*rx`, a receiver that `ViewHold` owns
// alone (lent by the channel's pool, given back only when the view drops):
// moving both to another thread moves every reference to that receiver
// with them, so the release when the view drops (wherever Python drops it:
// PyO3 skips `Drop` of an `unsendable` object dropped off its thread, which
// left the record taken for good) runs on a handle that no other thread
// uses.
unsafe impl Send for ViewHold {}
// SAFETY: through `&ViewHold` only the payload is read (`RecvGuard`'s
// `Deref`: the ring's atomics and the record's bytes, which nobody writes
// while it is taken); the receiver's cells are used only by `drop`, which
// has `&mut`.
unsafe impl Sync for ViewHold {}

impl SharedView {
    fn bytes(&self) -> &[u8] {
        self.held.taken.as_ref().map_or(&[], |g| &g[self.start..])
    }
}

impl Drop for SharedView {
    fn drop(&mut self) {
        // The record first: it borrows the handle.
        self.held.taken = None;
        if let Some(rx) = self.held.rx.take() {
            self.channel.get().give_back_receiver(*rx);
        }
    }
}

#[pymethods]
impl SharedView {
    /// Exports the payload, read-only.
    ///
    /// # Safety
    /// Called by CPython with a valid `view` to fill.
    unsafe fn __getbuffer__(
        slf: PyRef<'_, Self>,
        view: *mut pyo3::ffi::Py_buffer,
        flags: std::os::raw::c_int,
    ) -> PyResult<()> {
        if flags & pyo3::ffi::PyBUF_WRITABLE == pyo3::ffi::PyBUF_WRITABLE {
            return Err(pyo3::exceptions::PyBufferError::new_err(
                "a message in shared memory is read-only",
            ));
        }
        let (ptr, len) = {
            let b = slf.bytes();
            (b.as_ptr(), b.len())
        };
        let owner = slf.as_ptr();
        // SAFETY: `view` is CPython's to fill; the memory stays valid and
        // unchanged while the export lives, because the export holds a
        // reference to `owner` (set by FillInfo) and the record is released
        // only when `owner` is dropped.
        let r = unsafe {
            pyo3::ffi::PyBuffer_FillInfo(
                view,
                owner,
                ptr as *mut std::os::raw::c_void,
                len as pyo3::ffi::Py_ssize_t,
                1,
                flags,
            )
        };
        if r == -1 {
            return Err(PyErr::fetch(slf.py()));
        }
        Ok(())
    }

    /// The payload's length.
    fn __len__(&self) -> usize {
        self.bytes().len()
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
    #[staticmethod]
    #[pyo3(signature = (maxsize=0, capacity_bytes=None, overflow_bytes=None, max_bytes=None))]
    fn queue(
        maxsize: usize,
        capacity_bytes: Option<usize>,
        overflow_bytes: Option<u64>,
        max_bytes: Option<u64>,
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
        Ok(Channel::new(Anchor::Queue(b.create().map_err(open_err)?)))
    }

    /// A new anonymous pipe: its two ends (`duplex` false: reader, writer).
    #[staticmethod]
    #[pyo3(signature = (duplex=true, capacity_bytes=None, overflow_bytes=None))]
    fn pipe(
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
    fn attach_queue(fd: i32) -> PyResult<Self> {
        // SAFETY: the caller hands over an fd it owns and will not use again.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Channel::new(Anchor::Queue(
            Queue::from_fd(fd).map_err(open_err)?,
        )))
    }

    /// Attaches end `end` of a pipe from its fd; the channel takes the fd over.
    #[staticmethod]
    fn attach_pipe(fd: i32, end: u16) -> PyResult<Self> {
        // SAFETY: as in `attach_queue`.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Channel::new(Anchor::Pipe(
            Connection::from_fd(fd, end).map_err(open_err)?,
        )))
    }

    /// The segment's fd (for pickling: duplicate it, do not close it).
    fn fileno(&self) -> PyResult<i32> {
        self.with_state(|st| {
            Ok(match &st.anchor {
                Anchor::Queue(q) => q.as_fd().as_raw_fd(),
                Anchor::Pipe(c) => c.as_fd().as_raw_fd(),
            })
        })
    }

    /// Which end of its pipe this is (0 for a queue).
    #[getter]
    fn end(&self) -> u16 {
        self.end
    }

    /// Whether this is a pipe end.
    #[getter]
    fn is_pipe(&self) -> bool {
        self.is_pipe
    }

    /// The largest message, in bytes, framing included.
    #[getter]
    fn max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// The ring's size in bytes.
    #[getter]
    fn capacity(&self) -> usize {
        self.capacity
    }

    /// The message limit, or None.
    #[getter]
    fn maxsize(&self) -> Option<usize> {
        self.maxsize
    }

    /// Whether the end can receive (also after `release`).
    #[getter]
    fn readable(&self) -> bool {
        self.readable
    }

    /// Whether the end can send (also after `release`).
    #[getter]
    fn writable(&self) -> bool {
        self.writable
    }

    /// Sends `obj` (a `bytes` as is, anything else pickled with protocol 5,
    /// its out-of-band buffers written straight into the ring).
    #[pyo3(signature = (obj, block=true, timeout=None))]
    fn put(
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
    fn put_bytes(
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
    fn get(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<PyObject> {
        self.recv_with(py, block, timeout, |py, m| decode(py, m, false))
    }

    /// Receives a message's bytes (`put_bytes`' as sent; an object pickled).
    /// Longer than `maxlength`: `OSError`, the message dropped.
    #[pyo3(signature = (block=true, timeout=None, maxlength=None))]
    fn get_bytes(
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
    fn get_payload(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<PyObject> {
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
    fn get_view(slf: &Bound<'_, Self>, block: bool, timeout: Option<f64>) -> PyResult<SharedView> {
        let py = slf.py();
        let this = slf.get();
        let deadline = deadline(block, timeout)?;
        let rx = Box::new(this.with_state(State::receiver)?);
        // SAFETY: the record borrows the boxed handle, whose heap address
        // does not change when the box moves into the view; the view drops
        // the record before the handle (`SharedView::drop`), so the
        // invented 'static never outlives what it borrows.
        let rx_ref: &'static Receiver = unsafe { &*(&*rx as *const Receiver) };
        let taken = match this.take(py, rx_ref, deadline) {
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
    fn get_bytes_into(
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
    fn poll(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let deadline = deadline(true, timeout)?;
        let rx = self.with_state(State::receiver)?;
        let r = self.poll_loop(py, &rx, deadline);
        self.give_back_receiver(rx);
        r
    }

    /// Messages in the queue now (from any process).
    fn qsize(&self) -> PyResult<usize> {
        self.with_state(|st| {
            Ok(match &st.anchor {
                Anchor::Queue(q) => q.len(),
                Anchor::Pipe(c) => c.receiver().map_or(0, |r| r.len()),
            })
        })
    }

    /// Whether the queue holds `maxsize` messages (or its bytes are used up).
    fn full(&self) -> PyResult<bool> {
        self.with_state(|st| {
            Ok(match &st.anchor {
                Anchor::Queue(q) => q.is_full(),
                Anchor::Pipe(_) => false,
            })
        })
    }

    /// Closes the queue or pipe for every process: receivers drain what
    /// was sent, then get `ShutDown` (a pipe: `EOFError`); sends fail.
    fn shutdown(&self) -> PyResult<()> {
        self.with_state(|st| {
            match &st.anchor {
                Anchor::Queue(q) => q.close(),
                Anchor::Pipe(c) => c.close(),
            }
            Ok(())
        })
    }

    /// Whether `shutdown` was called (in any process).
    fn is_shutdown(&self) -> PyResult<bool> {
        self.with_state(|st| {
            Ok(match &st.anchor {
                Anchor::Queue(q) => q.is_closed(),
                Anchor::Pipe(c) => c.is_closed(),
            })
        })
    }

    /// Drops this process's handles (Python's `close()`); later calls raise
    /// `ValueError`, except `release` and `released`.
    fn release(&self) {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner()).take();
        drop(st);
    }

    /// Whether `release` was called.
    #[getter]
    fn released(&self) -> bool {
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

/// The `shmq._shmq` module.
#[pymodule]
fn _shmq(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Channel>()?;
    m.add_class::<SharedView>()?;
    m.add("ShutDown", m.py().get_type::<ShutDown>())?;
    Ok(())
}
