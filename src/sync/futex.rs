//! Wait words and the futex calls on them, and busy-wait hints.

use super::AtomicU64;
#[cfg(loom)]
use super::Ordering;
use std::time::Instant;

/// A 64-bit word packing a wake epoch (high 32 bits) and a count of
/// sleepers (low 32 bits), see [`crate::layout::WaitCell`]; threads and
/// processes sleep on its epoch half.
#[cfg(not(loom))]
pub(crate) type WaitWord = AtomicU64;

/// The loom model of [`WaitWord`]: the value plus the mutex and condvar that
/// model the kernel's futex hash bucket.
#[cfg(loom)]
pub(crate) struct WaitWord {
    value: AtomicU64,
    lock: loom::sync::Mutex<()>,
    cond: loom::sync::Condvar,
}

#[cfg(loom)]
impl WaitWord {
    pub(crate) fn new(v: u64) -> Self {
        Self {
            value: AtomicU64::new(v),
            lock: loom::sync::Mutex::new(()),
            cond: loom::sync::Condvar::new(),
        }
    }
}

#[cfg(loom)]
impl std::ops::Deref for WaitWord {
    type Target = AtomicU64;
    fn deref(&self) -> &AtomicU64 {
        &self.value
    }
}

/// The address of `word`'s epoch half: its high 32 bits.
#[cfg(not(loom))]
#[inline]
fn epoch_half(word: &WaitWord) -> *const u32 {
    let p = word.as_ptr() as *const u32;
    if cfg!(target_endian = "little") {
        p.wrapping_add(1)
    } else {
        p
    }
}

/// Sleeps while `word`'s epoch is `epoch`, until woken, until `until` (if
/// any), or spuriously. Contract of std's futex wrapper: returns `false`
/// only when it timed out; callers re-check their condition after every
/// return.
#[cfg(not(loom))]
#[inline]
pub(crate) fn futex_wait(word: &WaitWord, epoch: u32, until: Option<Instant>) -> bool {
    crate::sys::futex::wait(epoch_half(word), epoch, until)
}

/// Wakes every sleeper on `word`.
#[cfg(not(loom))]
#[inline]
pub(crate) fn futex_wake_all(word: &WaitWord) {
    crate::sys::futex::wake_all(epoch_half(word))
}

/// loom model of `FUTEX_WAIT` on the epoch half: the check and the sleep are
/// atomic with respect to [`futex_wake_all`] because both hold the bucket
/// lock. Deadlines are ignored (loom has no clock): a model that relies on
/// a timeout to make progress deadlocks, which is what we want it to report.
#[cfg(loom)]
pub(crate) fn futex_wait(word: &WaitWord, epoch: u32, _until: Option<Instant>) -> bool {
    count_wait();
    let guard = word.lock.lock().unwrap();
    if (word.value.load(Ordering::SeqCst) >> 32) as u32 == epoch {
        drop(word.cond.wait(guard).unwrap());
    }
    true
}

/// loom model of `FUTEX_WAKE(INT_MAX)`.
#[cfg(loom)]
pub(crate) fn futex_wake_all(word: &WaitWord) {
    let _guard = word.lock.lock().unwrap();
    word.cond.notify_all();
}

/// Busy-wait hint; under loom a yield so the model scheduler can run others.
#[inline]
pub(crate) fn spin_hint() {
    #[cfg(not(loom))]
    std::hint::spin_loop();
    #[cfg(loom)]
    {
        count_wait();
        loom::thread::yield_now();
    }
}

/// `n` busy-wait hints that loom does not see (nothing under loom): for a
/// pause whose yields would let the other model threads run first on every
/// schedule, hiding the ones in which the caller goes on before they act.
#[inline]
pub(crate) fn spin_unseen(n: u32) {
    #[cfg(not(loom))]
    for _ in 0..n {
        std::hint::spin_loop();
    }
    #[cfg(loom)]
    let _ = n;
}

#[cfg(loom)]
loom::thread_local! {
    /// Times this (loom) thread spun or slept waiting for another thread.
    static WAITS: std::cell::Cell<u64> = std::cell::Cell::new(0);
}

#[cfg(loom)]
fn count_wait() {
    WAITS.with(|w| w.set(w.get() + 1));
}

/// How many times the calling loom thread has spun or slept so far: the
/// models assert that `try_*` calls leave it unchanged.
#[cfg(loom)]
pub(crate) fn waits() -> u64 {
    WAITS.with(|w| w.get())
}
