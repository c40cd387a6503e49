//! Processes as the protocol sees them: whether a lane's owner may be
//! alive, and this process's pid.

#[cfg(not(loom))]
use super::fence;
#[cfg(loom)]
use super::AtomicU64;
use super::Ordering;

/// Liveness locks of one ring's lanes (see `sys::proc`). Normal builds: the
/// kernel's open-file-description locks on the segment's file.
#[cfg(not(loom))]
pub(crate) use crate::sys::proc::{HoldError, Locks};

/// The loom build's twin of `sys::proc::HoldError` (no model fails to
/// lock).
#[cfg(loom)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HoldError {
    /// Someone holds the lane's lock.
    Taken,
    /// No fd to spare.
    NoFds,
    /// No lock to be had.
    Unavailable,
}

/// Whether the owner of lane `i`, whose owner word was `owner`, may still
/// be alive: `false` only on the kernel's word that nobody holds the lane's
/// lock (an owner without a lock, `LANE_NOLOCK`, which no process of this
/// layout takes, is always alive).
#[cfg(not(loom))]
pub(crate) fn lane_alive(locks: &Locks, i: usize, owner: u64) -> bool {
    let alive = owner & crate::layout::LANE_NOLOCK != 0 || locks.held(i);
    // The kernel released a dead owner's lock after the owner's last store;
    // the fence keeps the caller's later loads of its notes after this
    // verdict.
    fence(Ordering::SeqCst);
    alive
}

/// The pid written into a lane this process reaps (reports only).
#[cfg(not(loom))]
pub(crate) fn my_pid() -> u32 {
    crate::sys::proc::pid()
}

/// The loom model of [`Locks`]: a lane's owner is alive unless its model
/// process was [`kill`]ed.
#[cfg(loom)]
pub(crate) struct Locks;

/// The loom model's `sys::proc::Serial`: nothing to hold.
#[cfg(loom)]
pub(crate) struct Serial;

#[cfg(loom)]
impl Locks {
    pub(crate) fn private() -> Self {
        Locks
    }
    pub(crate) fn serial(&self) -> Serial {
        Serial
    }
    pub(crate) fn hold(&self, _i: usize) -> Result<(), HoldError> {
        Ok(())
    }
    pub(crate) fn unhold(&self, _i: usize) {}
    pub(crate) fn fork_hold(&self, _i: usize) -> Result<(), HoldError> {
        Ok(())
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

/// Under loom: model pid 0, which never dies.
#[cfg(loom)]
pub(crate) fn my_pid() -> u32 {
    0
}
