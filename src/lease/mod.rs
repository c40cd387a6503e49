//! Leases: how the threads of one process share its few lanes of a ring.
//!
//! A lane says who holds each half-done step of the protocol (see
//! `ring::lanes`), so two threads must never use one at once; but it need
//! not belong to one handle. The lanes of this process on one ring, for one
//! role, are the *slots* of a `LocalLanes` (at most [`SLOTS`]); a handle
//! *owns* one slot at a time and keeps it across its operations, until
//! another handle of the process takes it over. Each operation *enters* the
//! slot (a store of its own busy mark and a load of the slot's owner: no
//! read-modify-write, no fence) and *leaves* it (a store); a blocked call
//! leaves for the length of each sleep.
//!
//! ```text
//!   handle H (mark m)                     a handle S taking H's slot over
//!   -----------------                     -------------------------------
//!   enter:  m.busy = 1                    under the process's slot lock:
//!           light barrier                   S.busy = 1, S.revoked = 0
//!           m.revoked == 0 ?  go on         m.revoked = 1
//!                   else m.busy = 0,      heavy barrier (membarrier)
//!                   find a slot           wait until m.busy == 0
//!   ... notes in the slot's lane ...      ... S's notes in the lane ...
//!   leave:  m.busy = 0 (Release)          leave: S.busy = 0
//! ```
//!
//! The barriers make a Dekker pair (see `sync::barrier`): either H's load
//! sees itself revoked (and H looks for another slot, having written
//! nothing), or S's wait sees H busy and lasts until H leaves, whose Release
//! store hands S the lane's notes as H left them. Both words of a mark
//! share one cache line that only its handle's operations touch, so the
//! fast path costs two stores and a load of a line the thread already
//! holds. A `busy` word is written by its own handle's thread only (a
//! handle is `Send`, not `Sync`), so no other thread's store can clear it
//! under its owner; S marks itself busy before H is revoked, so a third
//! handle that takes the slot from S while S still waits for H waits for
//! S, and so for H.
//!
//! Handles therefore cost no lane: a process holds at most [`SLOTS`] lanes
//! of a ring per role however many handles and threads it has; a handle
//! that finds its slot taken gets a free one, makes one (while the ring has
//! lanes to spare), or takes one over from a handle that is not inside an
//! operation (or, if all are, waits for one to leave). A forked child's
//! slots start over (see `local`).

#[cfg(not(loom))]
mod local;
#[cfg(not(loom))]
pub(crate) use local::{Entered, Lease, LocalLanes, Seat};

use crate::sync::{barrier, mutant, spin_hint, AtomicU32, Ordering};
use crossbeam_utils::CachePadded;

/// The most lanes a process holds of one ring for one role: how many of
/// its threads can be inside a send (or a receive) on that ring at once.
#[cfg(not(loom))]
pub(crate) const SLOTS: usize = 8;
/// Under loom: two.
#[cfg(loom)]
pub(crate) const SLOTS: usize = 2;

/// A handle's mark, one cache line that its operations alone touch:
/// `busy` while it is inside an operation with the lane of the slot it owns
/// (or checks whether it still owns one), written only by the thread using
/// the handle; `revoked` while it owns no slot (from the start, and once
/// another handle has taken its slot over), written under the slot lock.
pub(crate) struct Mark {
    words: CachePadded<MarkWords>,
}

struct MarkWords {
    busy: AtomicU32,
    revoked: AtomicU32,
}

impl Mark {
    /// Not busy, owning no slot.
    pub(crate) fn new() -> Self {
        Mark {
            words: CachePadded::new(MarkWords {
                busy: AtomicU32::new(0),
                revoked: AtomicU32::new(1),
            }),
        }
    }

    /// Enters the slot the handle owns, if it still owns one: `true`, and
    /// the slot's lane is ours until [`Mark::leave`]; `false`, and we wrote
    /// nothing.
    #[inline(always)]
    pub(crate) fn enter(&self) -> bool {
        let w = &*self.words;
        // Relaxed: ordered before the load of `revoked` by the barrier (the
        // light half of the pair with `wait_out`).
        w.busy.store(1, Ordering::Relaxed);
        if mutant!("enter_unbarriered", true, false) {
            barrier::light();
        }
        // Relaxed: `revoked` is set by a taker, with whom the barriers
        // order us (a Dekker pair); while it is clear, the lane's last user
        // was this handle, earlier in its own thread (or the one that took
        // it before `own`, whose end the lock and `wait_out` ordered
        // before our ownership).
        if mutant!(
            "enter_unchecked",
            w.revoked.load(Ordering::Relaxed) == 0,
            true
        ) {
            return true;
        }
        self.leave();
        false
    }

    /// The handle is done with its slot's lane (for now).
    #[inline(always)]
    pub(crate) fn leave(&self) {
        // SYNC: Release pairs with the Acquire load in `wait_out`: our notes
        // in the lane happen-before those of whoever takes it over.
        self.words.busy.store(0, Ordering::Release);
    }

    /// Whether the handle is inside an operation now (a hint for choosing
    /// whom to take a slot from).
    pub(crate) fn is_busy(&self) -> bool {
        // SeqCst, for the latest value: a taker polls it for an idle owner
        // (a slow path, where the cost does not matter), and a weaker load
        // may keep returning an older one (under loom, for ever).
        self.words.busy.load(Ordering::SeqCst) != 0
    }

    /// Makes the handle the owner of a slot, busy (so that a later taker
    /// waits for it). Under the slot lock, by the thread using the handle;
    /// follow with [`Mark::revoke`] of the previous owner, if there was one.
    pub(crate) fn own(&self) {
        let w = &*self.words;
        if mutant!("takeover_unmarked", true, false) {
            // Relaxed: the lock orders it before a later taker's load.
            w.busy.store(1, Ordering::Relaxed);
        }
        // Relaxed: read by this thread (program order) and by takers under
        // the lock.
        w.revoked.store(0, Ordering::Relaxed);
    }

    /// Takes the slot away from this handle (its previous owner), under the
    /// slot lock, after the taker's [`Mark::own`]; then wait it out with
    /// [`Mark::wait_out`] (the lock may be let go first).
    pub(crate) fn revoke(&self) {
        // Relaxed: ordered before our load of `busy` by the barrier.
        self.words.revoked.store(1, Ordering::Relaxed);
    }

    /// Waits until this handle, whose slot was just revoked, is out of it
    /// (the heavy half of the pair with `enter`).
    pub(crate) fn wait_out(&self) {
        if !barrier::heavy() {
            barrier::outwait();
        }
        if mutant!("takeover_no_wait", false, true) {
            return;
        }
        let mut spins = 0u32;
        // SeqCst (Acquire, and the latest value as in `is_busy`): pairs
        // with the Release store in `leave`.
        while self.words.busy.load(Ordering::SeqCst) != 0 {
            spins += 1;
            if spins < 64 {
                spin_hint();
            } else {
                #[cfg(not(loom))]
                std::thread::yield_now();
                #[cfg(loom)]
                spin_hint();
            }
        }
    }
}
