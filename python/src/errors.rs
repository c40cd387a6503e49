//! shmq's errors as Python's: `queue.Full`/`queue.Empty`, `EOFError`,
//! `OSError` (with `EMFILE` where Python's own calls give it), `ShutDown`.

use crate::prelude::*;

pub(crate) static QUEUE_FULL: GILOnceCell<Py<PyType>> = GILOnceCell::new();
pub(crate) static QUEUE_EMPTY: GILOnceCell<Py<PyType>> = GILOnceCell::new();

pyo3::create_exception!(
    _shmq,
    ShutDown,
    pyo3::exceptions::PyException,
    "Raised by put on a queue that was shut down, and by get once such a queue is empty."
);

/// errno's `EMFILE` ("Too many open files").
pub(crate) const EMFILE: i32 = 24;

pub(crate) fn open_err(e: OpenError) -> PyErr {
    match e {
        OpenError::AlreadyExists(_) => pyo3::exceptions::PyFileExistsError::new_err(chain(&e)),
        OpenError::NotFound(_) => pyo3::exceptions::PyFileNotFoundError::new_err(chain(&e)),
        e => PyOSError::new_err(chain(&e)),
    }
}

/// An error and its causes, `"a: b: c"` (a Rust error says only itself in
/// its `Display`, its cause in `source`).
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

pub(crate) fn send_err(e: SendError) -> PyErr {
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

pub(crate) fn recv_err(e: RecvError, pipe: bool) -> PyErr {
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

pub(crate) fn closed() -> PyErr {
    PyOSError::new_err("handle is closed")
}
