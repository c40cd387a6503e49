//! The lanes of this process on one ring for one role, shared by every
//! handle of that role on one mapping: at most [`SLOTS`] of them, the
//! first taken with the first handle and kept until the last one drops
//! (so the process counts as a sender or a receiver exactly while it has
//! one), the others taken only when that many threads are inside an
//! operation at once, and only while the ring has lanes to spare. Each is
//! registered for forks as `handles::HandleLane`; an operation leases one
//! (see the parent module).

use super::{Leases, SLOTS};
use crate::handles::HandleLane;
use crate::ring::{JoinError, Relet, Ring};
use crate::sys::proc::{self, GenLock};
use std::cell::Cell;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Arc;

/// This process's lanes of one ring for one role (see the module docs).
pub(crate) struct LocalLanes {
    /// The slots, each with its registered lane once made (slot 0 always):
    /// set once, under `grow`, and freed by `drop` (not a `OnceLock`,
    /// whose set can be left half done by a parent's thread at a fork).
    slots: [AtomicPtr<HandleLane>; SLOTS],
    leases: Leases,
    /// Serialises making slots (a lock a forked child takes over).
    grow: GenLock,
    /// The ring, in the mapping that `_keep` holds.
    ring: *const Ring,
    role: u64,
    /// Whatever keeps the ring's mapping alive (the segment's `Shared`);
    /// dropped after the slots give their lanes back (declared last).
    _keep: Arc<dyn Send + Sync>,
}

// SAFETY: `ring` points into the mapping `_keep` holds, valid while this
// lives; the ring is shared memory used through atomics only, and every
// other field is `Send + Sync`.
unsafe impl Send for LocalLanes {}
// SAFETY: as above.
unsafe impl Sync for LocalLanes {}

impl LocalLanes {
    /// The lanes of role `role` on `ring` (in the mapping `keep` holds) for
    /// this process: registers slot 0 and takes its lane now if one is free
    /// (otherwise the first lease tries again and reports why it has none).
    pub(crate) fn new(keep: Arc<dyn Send + Sync>, ring: &Ring, role: u64) -> Self {
        let lanes = LocalLanes {
            slots: std::array::from_fn(|_| AtomicPtr::new(std::ptr::null_mut())),
            leases: Leases::new(),
            grow: GenLock::new(),
            ring,
            role,
            _keep: keep,
        };
        lanes.set(0, HandleLane::new(ring, role));
        lanes
    }

    /// Slot `s`'s lane, once made.
    #[inline]
    fn slot(&self, s: usize) -> Option<&HandleLane> {
        // SYNC: Acquire pairs with the Release store in `set`: the lane's
        // record is complete before anyone uses it.
        let p = self.slots[s].load(Ordering::Acquire);
        // SAFETY: a slot, once set, points to a live box until `drop`.
        (!p.is_null()).then(|| unsafe { &*p })
    }

    /// Makes slot `s` (empty) hold `h`. Under `grow`, or in `new`.
    fn set(&self, s: usize, h: HandleLane) {
        // SYNC: Release pairs with the Acquire load in `slot`.
        self.slots[s].store(Box::into_raw(Box::new(h)), Ordering::Release);
    }

    #[inline]
    pub(crate) fn ring(&self) -> &Ring {
        // SAFETY: see `ring`.
        unsafe { &*self.ring }
    }

    /// Makes sure this process counts on the ring in this role (slot 0 has
    /// a lane): the lane, or why there is none.
    pub(crate) fn count(&self) -> Result<u16, JoinError> {
        self.slot(0).map_or(Err(JoinError::Full), HandleLane::lane)
    }

    /// Leases a lane for one operation, trying the slot in `hint` first
    /// (and leaving there the one it got); the lane is kept in `lane` while
    /// the lease lives (and changed there by a sleep that gives it back).
    /// Waits while every slot is leased by other threads and no more may be
    /// made; an error only if this process has no lane of the ring in this
    /// role and can get none (the ring's lanes are all held, no fd).
    #[inline]
    pub(crate) fn lease<'a>(
        &'a self,
        hint: &'a Cell<u8>,
        lane: &'a Cell<u16>,
    ) -> Result<Lease<'a>, JoinError> {
        let gen = proc::fork_gen();
        let (s, l) = match self.take_laned(hint.get() as usize, gen) {
            Some(got) => got,
            None => self.lease_slow(gen)?,
        };
        hint.set(s as u8);
        lane.set(l);
        Ok(Lease {
            lanes: self,
            hint,
            lane,
            held: Cell::new(true),
        })
    }

    /// A lease that cannot fail, for a caller that knows this process holds
    /// a lane here (it releases a record one of them took): waits for one.
    pub(crate) fn lease_held<'a>(&'a self, hint: &'a Cell<u8>, lane: &'a Cell<u16>) -> Lease<'a> {
        let l = Lease {
            lanes: self,
            hint,
            lane,
            held: Cell::new(false),
        };
        l.resume();
        l
    }

    /// Leases a slot that holds a lane of this process, starting at slot
    /// `first`: the slot and its lane, or `None` if each is leased.
    #[inline]
    fn take_laned(&self, first: usize, gen: u64) -> Option<(usize, u16)> {
        if let Some(got) = self.take_slot(first, gen) {
            return Some(got);
        }
        (1..SLOTS).find_map(|k| self.take_slot((first + k) % SLOTS, gen))
    }

    /// Leases slot `s` if it is made, free and holds a lane of this process.
    #[inline]
    fn take_slot(&self, s: usize, gen: u64) -> Option<(usize, u16)> {
        let h = self.slot(s)?;
        if !self.leases.take(s, gen) {
            return None;
        }
        // Leased, so no other thread of ours changes its lane now.
        match h.current() {
            Some(l) => Some((s, l)),
            None => {
                // An orphan a fork left (its lane is taken in `lease_slow`).
                self.leases.give(s);
                None
            }
        }
    }

    /// Every slot with a lane is leased: make another (if the ring has
    /// lanes to spare), give a slot with none a lane (a forked child's
    /// copies), or wait for one.
    #[cold]
    fn lease_slow(&self, gen: u64) -> Result<(usize, u16), JoinError> {
        if let Some(got) = self.grow(gen) {
            return Ok(got);
        }
        let mut err = JoinError::Full;
        for (s, h) in self.made() {
            if h.current().is_some() || !self.leases.take(s, gen) {
                continue;
            }
            match h.lane() {
                Ok(l) => return Ok((s, l)),
                Err(e) => {
                    self.leases.give(s);
                    err = e;
                }
            }
        }
        if !self.made().any(|(_, h)| h.current().is_some()) {
            return Err(err);
        }
        // Slots with lanes never lose them while this lives (a fork's child
        // is the only other generation, and it has its own copy).
        Ok(self.leases.wait(|| self.take_laned(0, gen)))
    }

    /// Makes the next slot, with a lane, and leases it; `None` when every
    /// slot is made, the ring has no lanes to spare, or none is free.
    fn grow(&self, gen: u64) -> Option<(usize, u16)> {
        let _serial = self.grow.guard();
        let s = (0..SLOTS).find(|&s| self.slot(s).is_none())?;
        if !self.ring().lanes_to_spare() {
            return None;
        }
        let h = HandleLane::new(self.ring(), self.role);
        let Some(l) = h.current() else {
            h.release();
            return None;
        };
        self.set(s, h);
        // Nobody knew the slot before: the lease is ours.
        let took = self.leases.take(s, gen);
        debug_assert!(took);
        Some((s, l))
    }

    /// The slots made so far, with their index.
    fn made(&self) -> impl Iterator<Item = (usize, &HandleLane)> {
        (0..SLOTS).filter_map(|s| Some((s, self.slot(s)?)))
    }
}

impl Drop for LocalLanes {
    fn drop(&mut self) {
        // Slot 0 last: the process counts in this role until the end.
        for s in (0..SLOTS).rev() {
            let p = *self.slots[s].get_mut();
            if !p.is_null() {
                // SAFETY: set by `set` from a box, freed only here.
                let h = unsafe { Box::from_raw(p) };
                h.release();
            }
        }
    }
}

/// A lane leased for one operation (see [`LocalLanes::lease`]); given back
/// when dropped, and while the operation sleeps ([`Relet`]).
pub(crate) struct Lease<'a> {
    lanes: &'a LocalLanes,
    /// The slot leased (or last leased, while paused).
    hint: &'a Cell<u8>,
    lane: &'a Cell<u16>,
    held: Cell<bool>,
}

impl Lease<'_> {
    /// The lane leased.
    #[inline]
    pub(crate) fn get(&self) -> u16 {
        self.lane.get()
    }
}

impl Relet for Lease<'_> {
    #[inline]
    fn lane(&self) -> u16 {
        self.lane.get()
    }

    fn pause(&self) {
        if self.held.replace(false) {
            self.lanes.leases.give(self.hint.get() as usize);
        }
    }

    fn resume(&self) {
        if self.held.get() {
            return;
        }
        let lanes = self.lanes;
        let gen = proc::fork_gen();
        if let Some((s, l)) = lanes.take_laned(self.hint.get() as usize, gen) {
            self.hint.set(s as u8);
            self.lane.set(l);
            self.held.set(true);
            return;
        }
        if !lanes.made().any(|(_, h)| h.current().is_some()) {
            // Not reached: a caller resumes a lease it held (the slot keeps
            // its lane), or releases a record one of our lanes took. Were
            // it reached, the caller would go on with no lane (its steps
            // unnoted) rather than wait for ever.
            debug_assert!(false, "a lease resumed in a process with no lane");
            self.lane.set(crate::ring::NO_LANE);
            return;
        }
        let (s, l) = lanes.leases.wait(|| lanes.take_laned(0, gen));
        self.hint.set(s as u8);
        self.lane.set(l);
        self.held.set(true);
    }
}

impl Drop for Lease<'_> {
    #[inline]
    fn drop(&mut self) {
        self.pause();
    }
}
