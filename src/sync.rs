//! The one door through which the ring protocol reaches atomics, payload
//! memory and futexes, so that `--cfg loom` can swap all of them for loom's
//! checked models (the pattern of tokio's `src/loom/mod.rs`).
//!
//! * Normal builds: std atomics; payload is raw shared memory; futex
//!   operations are the shared (not process-private) syscalls in
//!   [`crate::futex`].
//! * `cfg(loom)`: loom atomics; payload lives in loom `UnsafeCell`s, one per
//!   granule, so loom reports a data race when a consumer reads a payload that
//!   is not ordered after the producer's write; each futex word carries a loom
//!   mutex and condvar, so a lost wake-up shows as a deadlock.

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

use std::time::Instant;

/// A 32-bit word that threads or processes can sleep on.
#[cfg(not(loom))]
pub(crate) type FutexWord = AtomicU32;

/// A 32-bit word that loom threads can sleep on: the value plus the mutex and
/// condvar that model the kernel's futex hash bucket.
#[cfg(loom)]
pub(crate) struct FutexWord {
    value: AtomicU32,
    lock: loom::sync::Mutex<()>,
    cond: loom::sync::Condvar,
}

#[cfg(loom)]
impl FutexWord {
    pub(crate) fn new(v: u32) -> Self {
        Self {
            value: AtomicU32::new(v),
            lock: loom::sync::Mutex::new(()),
            cond: loom::sync::Condvar::new(),
        }
    }
}

#[cfg(loom)]
impl std::ops::Deref for FutexWord {
    type Target = AtomicU32;
    fn deref(&self) -> &AtomicU32 {
        &self.value
    }
}

/// Sleeps while `word` holds `expected`, until woken, until `until` (if any),
/// or spuriously. Contract of std's futex wrapper: returns `false` only when
/// it timed out; callers re-check their condition after every return.
#[cfg(not(loom))]
#[inline]
pub(crate) fn futex_wait(word: &FutexWord, expected: u32, until: Option<Instant>) -> bool {
    crate::futex::wait(word, expected, until)
}

/// Wakes every waiter on `word`.
#[cfg(not(loom))]
#[inline]
pub(crate) fn futex_wake_all(word: &FutexWord) {
    crate::futex::wake_all(word)
}

/// loom model of `FUTEX_WAIT`: the value check and the sleep are atomic with
/// respect to [`futex_wake_all`] because both hold the bucket lock. Deadlines
/// are ignored (loom has no clock): a model that relies on a timeout to make
/// progress deadlocks, which is what we want it to report.
#[cfg(loom)]
pub(crate) fn futex_wait(word: &FutexWord, expected: u32, _until: Option<Instant>) -> bool {
    let guard = word.lock.lock().unwrap();
    if word.value.load(Ordering::SeqCst) == expected {
        drop(word.cond.wait(guard).unwrap());
    }
    true
}

/// loom model of `FUTEX_WAKE(INT_MAX)`.
#[cfg(loom)]
pub(crate) fn futex_wake_all(word: &FutexWord) {
    let _guard = word.lock.lock().unwrap();
    word.cond.notify_all();
}

/// Busy-wait hint; under loom a yield so the model scheduler can run others.
#[inline]
pub(crate) fn spin_hint() {
    #[cfg(not(loom))]
    std::hint::spin_loop();
    #[cfg(loom)]
    loom::thread::yield_now();
}

/// Picks `$normal`, or `$broken` when built with `--cfg shmq_mutant="$name"`.
/// Mutants are deliberate protocol breaks that the loom models must catch
/// (docs/VERIFICATION.md lists them); they are off unless asked for.
macro_rules! mutant {
    ($name:literal, $normal:expr, $broken:expr) => {{
        #[cfg(shmq_mutant = $name)]
        let v = $broken;
        #[cfg(not(shmq_mutant = $name))]
        let v = $normal;
        v
    }};
}
pub(crate) use mutant;
