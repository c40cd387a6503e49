//! Message framing: the kind byte that lets Python objects cross (see
//! [`Tag`]), pickling with `multiprocessing`'s reducers, protocol-5
//! out-of-band buffers written straight into the ring, and unpickling
//! straight from it.

use crate::prelude::*;

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
pub(crate) enum Tag {
    Bytes = b'b' as isize,
    ByteArray = b'a' as isize,
    Raw = b'r' as isize,
    Pickle = b'p' as isize,
    OutOfBand = b'P' as isize,
}

impl Tag {
    /// A message's kind and the bytes after its kind byte.
    pub(crate) fn split(msg: &[u8]) -> PyResult<(Tag, &[u8])> {
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
pub(crate) const ALIGN: usize = 16;
pub(crate) static ZEROS: [u8; ALIGN] = [0; ALIGN];

pub(crate) static DUMPS: GILOnceCell<PyObject> = GILOnceCell::new();
pub(crate) static LOADS: GILOnceCell<PyObject> = GILOnceCell::new();

/// One part of a message being sent.
pub(crate) enum Part<'py> {
    /// An immutable `bytes` object, kept alive here.
    Bytes(Bound<'py, PyBytes>),
    /// An exported buffer (a `bytearray`, a numpy array's memory...).
    Buffer(pyo3::buffer::PyBuffer<u8>),
    /// Zeros, to align the next buffer.
    Pad(usize),
}

/// A message's bytes, borrowed from Python objects for one send.
pub(crate) struct Parts<'py> {
    pub(crate) head: Vec<u8>,
    pub(crate) body: Vec<Part<'py>>,
}

impl Parts<'_> {
    /// The message as slices, in order.
    pub(crate) fn slices(&self) -> PyResult<Vec<&[u8]>> {
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
pub(crate) fn buffer_bytes(buf: &pyo3::buffer::PyBuffer<u8>) -> PyResult<&[u8]> {
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
pub(crate) fn frame<'py>(obj: &Bound<'py, PyAny>, raw: bool) -> PyResult<Parts<'py>> {
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
pub(crate) fn decode(py: Python<'_>, msg: &[u8], bytes_only: bool) -> PyResult<PyObject> {
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
pub(crate) fn loads_in_place<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyAny>> {
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
pub(crate) fn loads_out_of_band<'py>(py: Python<'py>, msg: &[u8]) -> PyResult<Bound<'py, PyAny>> {
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
