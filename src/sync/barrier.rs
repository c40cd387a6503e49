//! Asymmetric barriers for a Dekker pair whose two sides run at very
//! different rates (a handle entering its lease slot on every operation,
//! a thread that takes the slot away from it now and then; see `lease`):
//! the frequent side issues [`light`], the rare one [`heavy`], and
//! together they order each side's store before its load as two SeqCst
//! fences would.
//!
//! | build                        | `light`          | `heavy`                          |
//! |------------------------------|------------------|----------------------------------|
//! | `membarrier` registered      | a compiler fence | `membarrier(PRIVATE_EXPEDITED)`  |
//! | refused (old kernel, seccomp)| a compiler fence | none: [`heavy`] returns `false`, |
//! |                              |                  | and nothing is taken over        |
//! | loom                         | `fence(SeqCst)`  | `fence(SeqCst)`                  |
//!
//! Why a compiler fence suffices: `membarrier` runs a full barrier on
//! every thread of the process that is running at the time (and a thread
//! that is not has passed a context switch, itself a full barrier), so the
//! light side's store is either visible to the heavy side's load after the
//! call, or the light side's load comes after that barrier and sees the
//! heavy side's store (the argument of the kernel's `membarrier(2)` page
//! and of folly's `asymmetricHeavyBarrier`).

#[cfg(loom)]
use super::{fence, Ordering};
#[cfg(not(loom))]
use std::sync::atomic::compiler_fence;

#[cfg(not(loom))]
static PREPARED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// Registers `membarrier` for this process (the first time); call before
/// the first [`light`].
pub(crate) fn prepare() {
    #[cfg(not(loom))]
    PREPARED.get_or_init(crate::sys::barrier::register);
}

/// Whether [`heavy`] is available (`membarrier` registered): without it,
/// the light side is not ordered against anyone, so nothing may rely on it.
pub(crate) fn available() -> bool {
    #[cfg(not(loom))]
    return PREPARED.get() == Some(&true);
    #[cfg(loom)]
    true
}

/// The frequent side's barrier, between its store and its load.
#[inline(always)]
pub(crate) fn light() {
    #[cfg(not(loom))]
    compiler_fence(std::sync::atomic::Ordering::SeqCst);
    #[cfg(loom)]
    fence(Ordering::SeqCst);
}

/// The rare side's barrier, between its store and its load: `false` if
/// none can be had (see [`available`]), and then the caller must not act
/// as if the pair were ordered.
#[must_use]
pub(crate) fn heavy() -> bool {
    #[cfg(not(loom))]
    return available() && crate::sys::barrier::expedited();
    #[cfg(loom)]
    {
        fence(Ordering::SeqCst);
        true
    }
}

/// After [`heavy`] was refused although [`available`] said it would not be
/// (a seccomp filter installed since the registration): a light side that
/// stored before our store may still be about to load; it is a few
/// instructions from that load, which this outwaits by far. The one place
/// these barriers rest on timing (said in DESIGN.md).
pub(crate) fn outwait() {
    #[cfg(not(loom))]
    std::thread::sleep(std::time::Duration::from_millis(10));
}
