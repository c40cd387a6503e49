//! `shmq._shmq`: the extension module under the `shmq` Python package.
//!
//! One class, [`Channel`](channel::Channel): the shmq handles of one
//! process for a queue or one pipe end, with the message framing that lets
//! Python objects cross (`framing`). The `multiprocessing` semantics
//! (names, exceptions, pickling to child processes, `JoinableQueue`'s
//! counter, the `Pool`) live in `shmq/`, which wraps a `Channel`.
//!
//! | module | concept |
//! | --- | --- |
//! | `channel` | the handles of a queue or pipe end, and `Channel`'s Python methods |
//! | `blocking` | waiting in slices with the GIL released, for signals and deadlines |
//! | `gil` | releasing the GIL so that a thread blocked at exit hangs instead of aborting |
//! | `framing` | the kind byte, pickles with `multiprocessing`'s reducers, out-of-band buffers |
//! | `channel::view` | a message exported in place (`get_view`), holding its channel's receiver |
//! | `errors` | shmq's errors as Python's exceptions |

mod blocking;
mod channel;
mod errors;
mod framing;
mod gil;

/// The outside names every module uses (each imports its siblings'
/// items by name).
mod prelude {
    pub(crate) use pyo3::exceptions::{PyEOFError, PyMemoryError, PyOSError, PyValueError};
    pub(crate) use pyo3::prelude::*;
    pub(crate) use pyo3::sync::GILOnceCell;
    pub(crate) use pyo3::types::{IntoPyDict, PyByteArray, PyBytes, PyList, PyType};
    pub(crate) use shmq::{
        Connection, OpenError, Queue, Receiver, RecvError, RecvGuard, SendError, Sender,
    };
    pub(crate) use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
    pub(crate) use std::sync::Mutex;
    pub(crate) use std::time::{Duration, Instant};
}

use channel::view::SharedView;
use channel::Channel;
use errors::ShutDown;
use prelude::*;

/// The `shmq._shmq` module.
#[pymodule]
fn _shmq(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Channel>()?;
    m.add_class::<SharedView>()?;
    m.add("ShutDown", m.py().get_type::<ShutDown>())?;
    Ok(())
}
