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
    crate::futex::wait(epoch_half(word), epoch, until)
}

/// Wakes every sleeper on `word`.
#[cfg(not(loom))]
#[inline]
pub(crate) fn futex_wake_all(word: &WaitWord) {
    crate::futex::wake_all(epoch_half(word))
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

/// Picks `$normal`, or, in a loom build run with `SHMQ_MUTANT=$name`,
/// `$broken`. Mutants are deliberate protocol breaks that the loom models
/// must catch (docs/VERIFICATION.md lists which model catches which;
/// `loom-tests/mutants.sh` checks it). Normal builds contain only `$normal`.
macro_rules! mutant {
    ($name:literal, $normal:expr, $broken:expr) => {{
        #[cfg(loom)]
        let v = if $crate::sync::mutant_on($name) {
            $broken
        } else {
            $normal
        };
        #[cfg(not(loom))]
        let v = $normal;
        v
    }};
}
pub(crate) use mutant;

/// Whether the loom build was asked (through `SHMQ_MUTANT`) to break the
/// protocol at `name`. Read once per process, outside loom's view.
#[cfg(loom)]
pub(crate) fn mutant_on(name: &str) -> bool {
    static CHOSEN: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    CHOSEN
        .get_or_init(|| std::env::var("SHMQ_MUTANT").ok())
        .as_deref()
        == Some(name)
}

/// Liveness locks of one ring's lanes (see `proc`). Normal builds: the
/// kernel's open-file-description locks on the segment's file.
#[cfg(not(loom))]
pub(crate) use crate::proc::Locks;

/// Whether the owner of lane `i`, whose owner word was `owner`, may still
/// be alive: `false` only on the kernel's word that nobody holds the lane's
/// lock (an owner without a lock, `LANE_NOLOCK`, is always alive).
#[cfg(not(loom))]
pub(crate) fn lane_alive(locks: &Locks, i: usize, owner: u64) -> bool {
    let alive = owner & crate::layout::LANE_NOLOCK != 0 || locks.held(i);
    // The kernel released a dead owner's lock after the owner's last store;
    // the fence keeps the caller's later loads of its notes after this
    // verdict.
    fence(Ordering::SeqCst);
    alive
}

/// The loom model of [`Locks`]: a lane's owner is alive unless its model
/// process was [`kill`]ed.
#[cfg(loom)]
pub(crate) struct Locks;

/// The loom model's [`crate::proc::Serial`]: nothing to hold.
#[cfg(loom)]
pub(crate) struct Serial;

#[cfg(loom)]
impl Locks {
    pub(crate) fn serial(&self) -> Serial {
        Serial
    }
    pub(crate) fn hold(&self, _i: usize) -> bool {
        true
    }
    pub(crate) fn unhold(&self, _i: usize) {}
    pub(crate) fn fork_hold(&self, _i: usize) -> bool {
        true
    }
    pub(crate) fn unhold_as(&self, _i: usize, _for_child: bool) {}
    pub(crate) fn hold_on(&self, _fd: i32, _i: usize) -> bool {
        true
    }
    pub(crate) fn unhold_on(&self, _fd: i32, _i: usize) {}
}

#[cfg(loom)]
pub(crate) fn lane_alive(_locks: &Locks, _i: usize, owner: u64) -> bool {
    let pid = crate::layout::lane_pid(owner);
    pid >= 64 || DEAD.load(Ordering::SeqCst) & (1 << pid) == 0
}

#[cfg(loom)]
loom::lazy_static! {
    /// Model "processes" (pids 1..64) that have died: bit `pid`.
    static ref DEAD: AtomicU64 = AtomicU64::new(0);
}

/// Marks model process `pid` dead (it has stopped at a death point).
#[cfg(loom)]
pub(crate) fn kill(pid: u32) {
    DEAD.fetch_or(1 << pid, Ordering::SeqCst);
}

#[cfg(loom)]
loom::thread_local! {
    /// The death point at which this loom thread's process dies, if any.
    static DIE_AT: std::cell::Cell<Option<&'static str>> = std::cell::Cell::new(None);
}

/// Makes the calling loom thread stop dead (return at once, leaving shared
/// state as a SIGKILL would) when it next reaches death point `at`.
#[cfg(loom)]
pub(crate) fn die_at(at: &'static str) {
    DIE_AT.with(|d| d.set(Some(at)));
}

/// Whether the calling loom thread dies here.
#[cfg(loom)]
pub(crate) fn dies_here(at: &str) -> bool {
    DIE_AT.with(|d| d.get() == Some(at))
}

/// A place where a process may be killed between two steps of the protocol.
/// Normal builds: nothing. loom builds: if the model chose this point for
/// the calling thread (`die_at`), return `$ret` at once, abandoning the
/// operation half done.
macro_rules! death_point {
    ($name:literal, $ret:expr) => {
        #[cfg(loom)]
        if $crate::sync::dies_here($name) {
            return $ret;
        }
    };
}
pub(crate) use death_point;

/// Milliseconds of `CLOCK_MONOTONIC` (the same clock in every process of
/// the host), for the watcher's stamps; `None` under loom, which has no
/// clock (nobody watches in the models).
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

/// The pid written into a lane this process reaps (reports only).
#[cfg(not(loom))]
pub(crate) fn my_pid() -> u32 {
    crate::proc::pid()
}

/// Under loom: model pid 0, which never dies.
#[cfg(loom)]
pub(crate) fn my_pid() -> u32 {
    0
}
