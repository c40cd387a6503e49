//! Payload memory: the data area of a ring, where records' bytes live.
//! Normal builds: raw shared memory. Under loom: one tracked cell per
//! granule, so loom flags a payload read that is not ordered after its
//! write (or a write not ordered after the previous lap's read).

use crate::layout::GRANULE;
use std::ptr::NonNull;

/// Pages could not be had for a message.
#[derive(Debug)]
pub(crate) struct NoMemory;

/// The payload area. Normal builds: raw shared memory.
#[cfg(not(loom))]
pub(crate) struct Payload {
    base: NonNull<u8>,
}

/// Whether [`Payload::reserve`] and [`Payload::unreserve`] act: on the
/// overflow area of a segment; not on heap memory (unit tests; loom never
/// acts).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pages {
    Shared,
    #[cfg_attr(not(any(test, loom)), allow(dead_code))]
    Heap,
}

#[cfg(not(loom))]
impl Payload {
    /// The area starting at `base`.
    ///
    /// # Safety
    /// `base` stays valid for the ring's whole data area while the payload
    /// is used (the ring's constructor contract).
    pub(crate) unsafe fn new(base: NonNull<u8>) -> Self {
        Payload { base }
    }

    /// Another view of the same area.
    #[cfg(test)]
    pub(crate) fn clone_view(&self) -> Payload {
        Payload { base: self.base }
    }

    fn at(&self, gran: u64) -> NonNull<u8> {
        // SAFETY: callers pass granules inside the area (their contract).
        unsafe { self.base.add(gran as usize * GRANULE) }
    }

    /// Word `i` from granule `gran`, as an atomic.
    ///
    /// # Safety
    /// The word lies inside the area, and that memory is only ever
    /// accessed atomically while the reference is used.
    pub(crate) unsafe fn atomic_u64(&self, gran: u64, i: u64) -> &super::AtomicU64 {
        // SAFETY: the caller's contract; granules are 64-byte aligned.
        unsafe {
            &*self
                .at(gran)
                .as_ptr()
                .cast::<super::AtomicU64>()
                .add(i as usize)
        }
    }

    /// Allocates the pages of `len` bytes from granule `gran` before they
    /// are written (see `sys::pages`).
    pub(crate) fn reserve(&self, pages: Pages, gran: u64, len: usize) -> Result<(), NoMemory> {
        if pages != Pages::Shared {
            return Ok(());
        }
        crate::sys::pages::populate_write(self.at(gran), len).map_err(|_| NoMemory)
    }

    /// Whether `len` bytes of pages may be had at all now (cheap to ask
    /// before looking for room for them).
    pub(crate) fn may_reserve(&self, pages: Pages, len: usize) -> bool {
        pages != Pages::Shared || crate::sys::pages::may_have(len)
    }

    /// Gives back the pages of `len` bytes from granule `gran`; the caller
    /// owns them and no longer needs their bytes.
    pub(crate) fn unreserve(&self, pages: Pages, gran: u64, len: usize) {
        if pages == Pages::Shared {
            crate::sys::pages::remove(self.at(gran), len)
        }
    }

    /// # Safety
    /// `[gran * GRANULE, gran * GRANULE + bytes.len())` lies inside the data
    /// area and is owned by the caller (claimed, not yet committed).
    #[inline]
    pub(crate) unsafe fn write(&self, gran: u64, bytes: &[u8]) {
        // SAFETY: the caller guarantees the range is in bounds and claimed,
        // so no other thread reads or writes it until our commit.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.base.as_ptr().add(gran as usize * GRANULE),
                bytes.len(),
            )
        }
    }

    /// Writes `parts` one after the other from granule `gran` (a gathered
    /// message: one copy of each part, no staging buffer).
    ///
    /// # Safety
    /// As [`Payload::write`], for the parts' total length.
    #[inline]
    pub(crate) unsafe fn write_parts(&self, gran: u64, parts: &[&[u8]]) {
        let mut at = gran as usize * GRANULE;
        for part in parts {
            // SAFETY: `[at, at + part.len())` lies inside the caller's
            // claimed range, which holds the parts' total length.
            unsafe {
                std::ptr::copy_nonoverlapping(part.as_ptr(), self.base.as_ptr().add(at), part.len())
            };
            at += part.len();
        }
    }

    /// Copies `out.len()` bytes from granule `gran` into `out`.
    ///
    /// # Safety
    /// As [`Payload::slice`].
    pub(crate) unsafe fn read(&self, gran: u64, out: &mut [u8]) {
        // SAFETY: the caller's contract.
        out.copy_from_slice(unsafe { self.slice(gran, out.len()) })
    }

    /// # Safety
    /// The range is in bounds and holds a record the caller has taken and
    /// not yet released; the slice must not outlive the release.
    #[inline]
    pub(crate) unsafe fn slice(&self, gran: u64, len: usize) -> &[u8] {
        // SAFETY: as above; a taken record is written by nobody until released.
        unsafe { std::slice::from_raw_parts(self.base.as_ptr().add(gran as usize * GRANULE), len) }
    }
}

/// The payload area under loom: one tracked cell per granule.
#[cfg(loom)]
pub(crate) struct Payload {
    cells: NonNull<Cell>,
}

#[cfg(loom)]
impl Payload {
    /// Another view of the same cells.
    pub(crate) fn clone_view(&self) -> Payload {
        Payload { cells: self.cells }
    }
    /// Under loom pages are always there.
    pub(crate) fn reserve(&self, _pages: Pages, _gran: u64, _len: usize) -> Result<(), NoMemory> {
        Ok(())
    }
    pub(crate) fn may_reserve(&self, _pages: Pages, _len: usize) -> bool {
        true
    }
    pub(crate) fn unreserve(&self, _pages: Pages, _gran: u64, _len: usize) {}
}

#[cfg(loom)]
type Cell = loom::cell::UnsafeCell<[u8; GRANULE]>;

#[cfg(loom)]
impl Payload {
    /// # Safety
    /// As [`Payload::write`] in normal builds.
    pub(crate) unsafe fn write(&self, gran: u64, bytes: &[u8]) {
        for (i, chunk) in bytes.chunks(GRANULE).enumerate() {
            // SAFETY: in bounds per the caller's contract.
            let cell = unsafe { &*self.cells.as_ptr().add(gran as usize + i) };
            // SAFETY: loom checks that this access is exclusive.
            cell.with_mut(|p| unsafe { (&mut *p)[..chunk.len()].copy_from_slice(chunk) });
        }
    }

    /// # Safety
    /// As [`Payload::write`] in normal builds, for the parts' total length.
    pub(crate) unsafe fn write_parts(&self, gran: u64, parts: &[&[u8]]) {
        // SAFETY: the caller's contract, for the joined bytes.
        unsafe { self.write(gran, &parts.concat()) }
    }

    /// Copies `out.len()` bytes from granule `gran` into `out`.
    ///
    /// # Safety
    /// As `slice` in normal builds.
    pub(crate) unsafe fn read(&self, gran: u64, out: &mut [u8]) {
        let mut v = Vec::new();
        // SAFETY: the caller's contract.
        unsafe { self.copy_out(gran, out.len(), &mut v) };
        out.copy_from_slice(&v);
    }

    /// Appends the `len` bytes at granule `gran` to `out` (the tracked read).
    ///
    /// # Safety
    /// As `slice` in normal builds.
    pub(crate) unsafe fn copy_out(&self, gran: u64, len: usize, out: &mut Vec<u8>) {
        let mut left = len;
        let mut g = gran as usize;
        while left > 0 {
            let n = left.min(GRANULE);
            // SAFETY: in bounds per the caller's contract.
            let cell = unsafe { &*self.cells.as_ptr().add(g) };
            // SAFETY: loom checks that no write races with this read.
            cell.with(|p| out.extend_from_slice(unsafe { &(&*p)[..n] }));
            left -= n;
            g += 1;
        }
    }
}

/// A payload area on the heap (rings for unit tests and loom models); the
/// ring keeps it alive while it uses the [`Payload`] over it.
#[cfg(any(test, loom))]
pub(crate) struct HeapPayload {
    #[cfg(not(loom))]
    _granules: Box<[AlignedGranule]>,
    #[cfg(loom)]
    _cells: Box<[Cell]>,
}

#[cfg(all(test, not(loom)))]
#[repr(C, align(64))]
struct AlignedGranule([u8; GRANULE]);

#[cfg(any(test, loom))]
impl HeapPayload {
    /// A zeroed area of `granules` granules, and the payload over it.
    pub(crate) fn new(granules: u64) -> (Self, Payload) {
        #[cfg(not(loom))]
        {
            let g: Box<[AlignedGranule]> = (0..granules)
                .map(|_| AlignedGranule([0; GRANULE]))
                .collect();
            let base = NonNull::new(g.as_ptr() as *mut u8).unwrap();
            (HeapPayload { _granules: g }, Payload { base })
        }
        #[cfg(loom)]
        {
            let c: Box<[Cell]> = (0..granules)
                .map(|_| loom::cell::UnsafeCell::new([0; GRANULE]))
                .collect();
            let cells = NonNull::new(c.as_ptr() as *mut Cell).unwrap();
            (HeapPayload { _cells: c }, Payload { cells })
        }
    }
}
