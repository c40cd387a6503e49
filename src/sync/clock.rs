//! The clock, which loom does not have: under loom nothing times out and
//! nobody watches for dead peers.

use std::time::Instant;

/// Now, or `None` under loom.
#[inline]
pub(crate) fn now() -> Option<Instant> {
    #[cfg(not(loom))]
    return Some(Instant::now());
    #[cfg(loom)]
    None
}

/// Milliseconds of `CLOCK_MONOTONIC` (the same clock in every process of
/// the host), for the watcher's stamps; `None` under loom.
#[cfg(not(loom))]
pub(crate) fn now_ms() -> Option<u64> {
    let mut ts = nix::libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the kernel to fill in.
    let r = unsafe { nix::libc::clock_gettime(nix::libc::CLOCK_MONOTONIC, &mut ts) };
    (r == 0).then(|| ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000)
}

#[cfg(loom)]
pub(crate) fn now_ms() -> Option<u64> {
    None
}
