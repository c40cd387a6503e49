//! Two free functions over the Linux futex syscall (`wait`, `wake_all`), with the contract of
//! std's `sys/pal/unix/futex.rs` but without `FUTEX_PRIVATE_FLAG`: the word
//! lives in memory shared between processes, and a private futex is keyed by
//! (mm, address) so it could never wake a waiter in another process.

use nix::libc;
use std::time::Instant;

/// Waits while `*word == expected`, until woken, until `until` passes, or
/// spuriously (EINTR). Returns `false` only if the deadline passed. `word`
/// must point to 4 aligned bytes of mapped memory that stay mapped for the
/// call (here: half of an `AtomicU64`, which Rust code only ever accesses
/// whole; the kernel reads the half itself, atomically).
///
/// The kernel compares the value under its bucket lock, so a wake that comes
/// after the caller last changed the condition and before this call cannot be
/// lost: either the value differs (EAGAIN, return at once) or we are queued.
pub(crate) fn wait(word: *const u32, expected: u32, until: Option<Instant>) -> bool {
    let timeout = match until {
        None => None,
        Some(t) => {
            let now = Instant::now();
            if t <= now {
                return false;
            }
            let d = t - now;
            Some(libc::timespec {
                // Saturate: a deadline centuries away is "forever".
                tv_sec: d.as_secs().min(i64::MAX as u64 / 2) as libc::time_t,
                tv_nsec: d.subsec_nanos() as libc::c_long,
            })
        }
    };
    let ts_ptr = timeout
        .as_ref()
        .map_or(std::ptr::null(), |ts| ts as *const libc::timespec);
    // SAFETY: `word` is valid and aligned for the call (caller's contract);
    // FUTEX_WAIT only reads it, and faults on a bad address return EFAULT. The relative timeout (measured by the
    // kernel on CLOCK_MONOTONIC, like `Instant`) is a valid timespec or null.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word,
            libc::FUTEX_WAIT,
            expected,
            ts_ptr,
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    if r < 0 && nix::errno::Errno::last() == nix::errno::Errno::ETIMEDOUT {
        return false;
    }
    // Woken, EAGAIN (value changed), or EINTR: the caller re-checks.
    true
}

/// Wakes every waiter on `word`, in any process that maps it.
pub(crate) fn wake_all(word: *const u32) {
    // SAFETY: FUTEX_WAKE uses the address only as a key; it does not access
    // the memory.
    unsafe {
        libc::syscall(libc::SYS_futex, word, libc::FUTEX_WAKE, i32::MAX);
    }
}
