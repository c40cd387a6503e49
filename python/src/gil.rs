//! Waiting with the GIL released, in a way that survives the interpreter's
//! exit.
//!
//! `Python::allow_threads` gives the GIL back by `PyEval_RestoreThread`.
//! While the interpreter finalizes, CPython before 3.14 ends any thread
//! that asks for the GIL there with `pthread_exit`: a forced unwind through
//! our frames, which PyO3's `catch_unwind` around every method stops and
//! does not resume, so the process aborts ("FATAL: exception not
//! rethrown", exit status 134). A daemon thread blocked in `Queue.get`, or
//! the thread behind `Connection.fileno()`, comes back from its wait slice
//! at exit and did exactly that. [`without_gil`] restores the thread
//! through a declaration that lets the unwind in, and a guard whose drop,
//! run by that unwind, parks the thread for good: the thread hangs, as
//! CPython 3.14 makes such threads do, and the process exits normally
//! (PyO3 does the same in its own `PyGILState_Ensure`).

use pyo3::ffi;
use pyo3::Python;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

mod raw {
    use pyo3::ffi::PyThreadState;
    extern "C-unwind" {
        /// CPython's, declared so that its `pthread_exit` may unwind into
        /// us (see the module docs).
        pub fn PyEval_RestoreThread(tstate: *mut PyThreadState);
    }
}

/// Parks the thread for ever when dropped: dropped only by the forced
/// unwind of a thread that CPython ends at exit.
pub(crate) struct HangAtExit;

impl Drop for HangAtExit {
    fn drop(&mut self) {
        loop {
            std::thread::park();
        }
    }
}

/// Runs `f` with the GIL released, as `Python::allow_threads` does, except
/// at interpreter exit (see the module docs). `F: Send` keeps Python
/// objects (which are not `Send` without the GIL's token) out of `f`, as
/// `allow_threads` does on stable Rust.
pub(crate) fn without_gil<T, F>(_py: Python<'_>, f: F) -> T
where
    F: Send + FnOnce() -> T,
    T: Send,
{
    // SAFETY: the `Python` token says this thread holds the GIL; the state
    // returned is restored below on every path (a panic in `f` is caught
    // first), so the thread holds the GIL again when we return.
    let state = unsafe { ffi::PyEval_SaveThread() };
    let r = catch_unwind(AssertUnwindSafe(f));
    let hang = HangAtExit;
    // SAFETY: `state` is this thread's, saved above. If CPython ends the
    // thread here (`pthread_exit` at exit), the unwind drops `hang`, which
    // never returns: nothing after this point runs on that path.
    unsafe { raw::PyEval_RestoreThread(state) };
    std::mem::forget(hang);
    match r {
        Ok(v) => v,
        Err(panic) => resume_unwind(panic),
    }
}

/// A value moved into `gil::without_gil` and back on the same thread.
/// `without_gil` runs its closure on the calling thread (it only releases
/// the GIL), so a handle that is `Send` but not `Sync` may be used there by
/// reference: no second thread ever sees it.
pub(crate) struct SameThread<T>(pub(crate) T);
// SAFETY: see the type's docs: the value never leaves the calling thread.
unsafe impl<T> Send for SameThread<T> {}
