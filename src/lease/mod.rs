//! Leases: how the threads of one process share its few lanes of a ring.
//!
//! A lane says who holds each half-done step of the protocol (see
//! `ring::lanes`), so two threads must never use one at once; but it need
//! not belong to one handle. The lanes of this process on one ring, for one
//! role, are *slots* of one [`Leases`]; every operation of every handle of
//! that role leases a slot for as long as it writes notes (a send, a take,
//! a release), and a blocked call gives its slot back while it sleeps:
//!
//! ```text
//!   slot word: 0, or the fork generation of a process that has not
//!   held it since (a copy a fork left)       free
//!              this process's generation     leased by one of its threads
//!
//!   take   CAS free -> gen (Acquire)         the lane's notes, as its last
//!                                            holder left them, are ours
//!   give   store 0 (Release), fence,         then wake the process's
//!          look at the wait cell             threads waiting for a slot
//!   wait   register in the wait cell, try    (Dekker with `give`: either
//!          every slot again, sleep            the waiter sees the slot
//!                                            free or the giver sees it
//!                                            counted and wakes it)
//! ```
//!
//! Handles therefore cost no lane: a process holds at most [`SLOTS`] lanes
//! of a ring per role however many handles and threads it has (its threads
//! wait for a slot when more of them than that are inside an operation at
//! once, as `multiprocessing.Queue.get` serialises its readers on a lock).
//! The lanes themselves are taken and given back by `local` (the process's
//! lanes of one ring), which owns a `Leases`. A forked child's copy of a
//! slot that a thread of the parent held reads as free (a generation that
//! is not the child's), since that thread does not exist in the child.

#[cfg(not(loom))]
mod local;
#[cfg(not(loom))]
pub(crate) use local::{Lease, LocalLanes};

use crate::layout::WaitCell;
use crate::sync::{fence, futex_wait, mutant, AtomicU64, Ordering};
use crossbeam_utils::CachePadded;

/// The most lanes a process holds of one ring for one role: how many of
/// its threads can be inside a send (or a receive) on that ring at once.
#[cfg(not(loom))]
pub(crate) const SLOTS: usize = 8;
/// Under loom: two, enough for a thread to wait for the other.
#[cfg(loom)]
pub(crate) const SLOTS: usize = 2;

/// The slot words of one (ring, role) in this process, and the cell its
/// threads sleep on while every slot is leased. Process-local memory.
pub(crate) struct Leases {
    slots: [CachePadded<AtomicU64>; SLOTS],
    wait: WaitCell,
}

impl Leases {
    /// Every slot free.
    pub(crate) fn new() -> Self {
        Leases {
            slots: std::array::from_fn(|_| CachePadded::new(AtomicU64::new(0))),
            wait: WaitCell::new(),
        }
    }

    /// Leases slot `s` for a thread of the process of generation `gen`, if
    /// no thread of it holds the slot.
    #[inline]
    pub(crate) fn take(&self, s: usize, gen: u64) -> bool {
        let w = &self.slots[s];
        // Relaxed: a hint; the CAS decides.
        let cur = w.load(Ordering::Relaxed);
        if cur == gen {
            return false;
        }
        if mutant!("lease_by_store", false, true) {
            // The break: a load and a store, so two threads that both saw
            // the slot free both take it.
            crate::sync::spin_hint();
            w.store(gen, Ordering::Relaxed);
            return true;
        }
        // SYNC: Acquire pairs with the Release store in `give`: the lane's
        // notes as the last holder left them happen-before our writes.
        // (Failure: Relaxed, nothing is read through a failed lease.)
        w.compare_exchange(cur, gen, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Gives slot `s` back, and wakes the threads of this process waiting
    /// for one.
    #[inline]
    pub(crate) fn give(&self, s: usize) {
        // SYNC: Release pairs with the Acquire CAS in `take`: our notes in
        // the lane happen-before the next holder's.
        self.slots[s].store(0, Ordering::Release);
        if mutant!("give_no_wake", false, true) {
            return;
        }
        // Dekker with `wait`'s register and re-try: either it sees the slot
        // free, or we see it counted.
        fence(Ordering::SeqCst);
        self.wait.wake_if_waiting();
    }

    /// Waits until `attempt` (which tries the slots) succeeds: tries, then
    /// registers as a sleeper, tries again, and sleeps until a slot is
    /// given back (at most 100 ms at a time, a safety net only: a give
    /// always wakes a registered waiter).
    pub(crate) fn wait<R>(&self, mut attempt: impl FnMut() -> Option<R>) -> R {
        loop {
            if let Some(r) = attempt() {
                return r;
            }
            let seen = if mutant!("lease_unregistered", false, true) {
                // The break: the epoch read without counting ourselves, so
                // a give in between wakes nobody.
                // Relaxed: as in `register`.
                crate::layout::wake_epoch(self.wait.word.load(Ordering::Relaxed))
            } else {
                self.wait.register()
            };
            if let Some(r) = attempt() {
                self.wait.leave(seen);
                return r;
            }
            let until = crate::sync::now().map(|t| t + std::time::Duration::from_millis(100));
            futex_wait(&self.wait.word, seen, until);
            self.wait.leave(seen);
        }
    }
}
