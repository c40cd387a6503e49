//! Pages of the overflow area: given to a message before it is written,
//! taken back when it is gone.
//!
//! A page of a shared-memory file that is first touched when memory (or a
//! tmpfs `size=`) is exhausted is a SIGBUS, and an anonymous memfd has no
//! size limit of its own, so the OOM killer comes first. So pages are
//! allocated before anything is written (`MADV_POPULATE_WRITE`, which also
//! maps them into this process: the copy that follows takes no page
//! faults), after checking that the machine and this cgroup have that much
//! memory available, and handed back with `MADV_REMOVE` (a hole punched in
//! the file), so that resident memory follows what is queued.

use nix::errno::Errno;
use nix::sys::mman::{madvise, MmapAdvise};
use std::ffi::c_void;
use std::ptr::NonNull;

/// Requests at least this large first check the memory available: below,
/// the check would cost more than it protects (a 4 MiB copy).
const CHECK_FROM: usize = 4 << 20;

/// Allocates and maps (writable) the pages of `[ptr, ptr + len)`, part of a
/// shared mapping: afterwards a write there cannot fault for want of memory.
/// On failure nothing stays allocated, and the error says why.
pub(crate) fn populate_write(ptr: NonNull<u8>, len: usize) -> Result<(), String> {
    if len == 0 {
        return Ok(());
    }
    if !may_have(len) {
        return Err(format!(
            "{len} bytes of shared memory needed, more than available"
        ));
    }
    let (start, span) = pages(ptr, len);
    // SAFETY: the range lies inside one of our shared mappings (the
    // caller's contract); populating changes no byte of it.
    match unsafe { madvise(start, span, MmapAdvise::MADV_POPULATE_WRITE) } {
        Ok(()) => Ok(()),
        Err(e) => {
            remove(ptr, len);
            Err(match e {
                // What populating reports for a page it could not have
                // (the SIGBUS an access would have raised).
                Errno::EFAULT | Errno::ENOMEM | Errno::ENOSPC => {
                    format!("{len} bytes of shared memory: {e}")
                }
                e => format!("madvise(MADV_POPULATE_WRITE): {e}"),
            })
        }
    }
}

/// Whether `len` bytes of memory may be had: no more than the machine and
/// this cgroup have available (asked only from [`CHECK_FROM`] up).
pub(crate) fn may_have(len: usize) -> bool {
    len < CHECK_FROM || !matches!(available(), Some(avail) if len as u64 > avail)
}

/// Gives the pages of `[ptr, ptr + len)` back to the system (their bytes
/// read as zero afterwards). Best effort: a failure leaves them resident.
pub(crate) fn remove(ptr: NonNull<u8>, len: usize) {
    if len == 0 {
        return;
    }
    let (start, span) = pages(ptr, len);
    // SAFETY: the caller owns the range (no one else reads or writes it
    // until it is given out again), so zeroing it loses nothing.
    let _ = unsafe { madvise(start, span, MmapAdvise::MADV_REMOVE) };
}

/// The page-aligned span covering `[ptr, ptr + len)`.
fn pages(ptr: NonNull<u8>, len: usize) -> (NonNull<c_void>, usize) {
    let page = 4096;
    let addr = ptr.as_ptr() as usize;
    let start = addr & !(page - 1);
    let end = (addr + len).next_multiple_of(page);
    let start = NonNull::new(start as *mut c_void).expect("a mapping is never at address 0");
    (start, end - start.as_ptr() as usize)
}

/// Bytes of memory this process may still have: the lesser of the
/// machine's available memory and its cgroup's headroom; `None` if unknown.
pub(crate) fn available() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok();
    let machine = meminfo.as_deref().and_then(|m| {
        let line = m.lines().find(|l| l.starts_with("MemAvailable:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    });
    let read = |f: &str| std::fs::read_to_string(format!("/sys/fs/cgroup/{f}")).ok();
    let cgroup = match (read("memory.max"), read("memory.current")) {
        (Some(max), Some(cur)) => {
            let (max, cur) = (
                max.trim().parse::<u64>().ok(),
                cur.trim().parse::<u64>().ok(),
            );
            max.zip(cur).map(|(m, c)| m.saturating_sub(c))
        }
        _ => None,
    };
    match (machine, cgroup) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The machine's memory in bytes (0 if unknown).
pub(crate) fn physical() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let (pages, size) = unsafe {
        (
            nix::libc::sysconf(nix::libc::_SC_PHYS_PAGES),
            nix::libc::sysconf(nix::libc::_SC_PAGESIZE),
        )
    };
    (pages.max(0) as u64).saturating_mul(size.max(0) as u64)
}
