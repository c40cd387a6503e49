//! [`SharedView`]: a received message exported in place through the
//! buffer protocol (`Queue.get_view`), released whichever thread drops it.

use super::Channel;
use crate::prelude::*;

/// A message's payload in shared memory, exported through the buffer
/// protocol (`Queue.get_view`): the record stays taken, and its bytes
/// unchanged, until this object is gone, i.e. until every memoryview of it
/// is released, on whichever thread that happens.
#[pyclass(module = "shmq._shmq", frozen)]
pub(crate) struct SharedView {
    pub(crate) held: ViewHold,
    pub(crate) channel: Py<Channel>,
    /// Where the payload starts in the message (after the kind byte).
    pub(crate) start: usize,
}

/// A taken record and the receiving handle it was taken with, owned
/// together.
pub(crate) struct ViewHold {
    /// The record; borrows `rx`, so it is dropped first (see `Drop`).
    pub(crate) taken: Option<RecvGuard<'static>>,
    /// The handle the record was taken with, boxed so that its address
    /// stays put while `taken` borrows it.
    pub(crate) rx: Option<Box<Receiver>>,
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
    pub(crate) fn bytes(&self) -> &[u8] {
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
