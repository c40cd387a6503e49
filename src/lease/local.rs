//! The lanes of this process on one ring for one role, shared by every
//! handle of that role on one mapping: at most [`SLOTS`] of them, the
//! first taken with the first handle and kept until the last one drops
//! (so the process counts as a sender or a receiver exactly while it has
//! one), the others taken only when a handle finds every slot owned by
//! another handle that is inside an operation, or while the ring has lanes
//! to spare. Each lane is registered for forks as `handles::HandleLane`.
//! A handle's [`Seat`] remembers the slot it owns and enters it on every
//! operation (see the parent module); this module is its slow path.
//!
//! After a fork, the child's copy of the slots names owners that were the
//! parent's (the child's copies of those handles, and threads of the parent
//! that the child lacks): the child's first handle to come here makes every
//! slot free again, and the slots whose lanes the fork handler did not
//! replace with the child's own take a lane when next needed.

use super::{Mark, SLOTS};
use crate::handles::HandleLane;
use crate::ring::{JoinError, Relet, Ring, NO_LANE};
use crate::sync::barrier;
use crate::sys::proc::{self, GenLock};
use std::cell::{Cell, UnsafeCell};
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Arc;

/// A handle's identity among the slots: its mark, kept alive while a slot
/// names it as the owner (an `Arc`), so that a taker can wait on it.
pub(crate) struct Me {
    mark: Mark,
}

/// What the slot lock guards.
struct Owners {
    /// The owner of each slot.
    who: [Option<Arc<Me>>; SLOTS],
    /// The fork generation the slots were last made free in.
    gen: u64,
    /// Where the next search for a slot to take over starts.
    next: usize,
}

/// This process's lanes of one ring for one role (see the module docs).
pub(crate) struct LocalLanes {
    /// The slots' lanes, each registered once made (slot 0 always): set
    /// once, under `lock`, and freed by `drop`.
    lanes: [AtomicPtr<HandleLane>; SLOTS],
    /// Serialises every change of owner (a lock a forked child takes over).
    lock: GenLock,
    owners: UnsafeCell<Owners>,
    /// The ring, in the mapping that `_keep` holds.
    ring: *const Ring,
    role: u64,
    /// Whatever keeps the ring's mapping alive (the segment's `Shared`);
    /// dropped after the slots give their lanes back (declared last).
    _keep: Arc<dyn Send + Sync>,
}

// SAFETY: `ring` points into the mapping `_keep` holds, valid while this
// lives; the ring is shared memory used through atomics only; `owners` is
// used only under `lock`; every other field is `Send + Sync`.
unsafe impl Send for LocalLanes {}
// SAFETY: as above.
unsafe impl Sync for LocalLanes {}

/// Where a slot search ended.
enum Found {
    /// Ours, with nobody to wait for.
    Free(usize),
    /// Taken over from a handle whose mark we must wait out.
    From(usize, Arc<Me>),
}

impl LocalLanes {
    /// The lanes of role `role` on `ring` (in the mapping `keep` holds) for
    /// this process: registers slot 0 and takes its lane now if one is free
    /// (otherwise the first lease tries again and reports why it has none).
    pub(crate) fn new(keep: Arc<dyn Send + Sync>, ring: &Ring, role: u64) -> Self {
        barrier::prepare();
        let lanes = LocalLanes {
            lanes: std::array::from_fn(|_| AtomicPtr::new(std::ptr::null_mut())),
            lock: GenLock::new(),
            owners: UnsafeCell::new(Owners {
                who: std::array::from_fn(|_| None),
                gen: proc::fork_gen(),
                next: 0,
            }),
            ring,
            role,
            _keep: keep,
        };
        lanes.set(0, HandleLane::new(ring, role));
        lanes
    }

    /// Slot `s`'s lane, once made.
    #[inline]
    fn lane_of(&self, s: usize) -> Option<&HandleLane> {
        // SYNC: Acquire pairs with the Release store in `set`: the lane's
        // record is complete before anyone uses it.
        let p = self.lanes[s].load(Ordering::Acquire);
        // SAFETY: a slot, once set, points to a live box until `drop`.
        (!p.is_null()).then(|| unsafe { &*p })
    }

    /// Makes slot `s` (empty) hold `h`. Under `lock`, or in `new`.
    fn set(&self, s: usize, h: HandleLane) {
        // SYNC: Release pairs with the Acquire load in `lane_of`.
        self.lanes[s].store(Box::into_raw(Box::new(h)), Ordering::Release);
    }

    #[inline]
    pub(crate) fn ring(&self) -> &Ring {
        // SAFETY: see `ring`.
        unsafe { &*self.ring }
    }

    /// Makes sure this process counts on the ring in this role (slot 0 has
    /// a lane): the lane, or why there is none.
    pub(crate) fn count(&self) -> Result<u16, JoinError> {
        self.lane_of(0)
            .map_or(Err(JoinError::Full), HandleLane::lane)
    }

    /// Runs `f` on the owners, under the slot lock, after making every slot
    /// free if the process forked since they were last looked at.
    fn with_owners<R>(&self, f: impl FnOnce(&mut Owners) -> R) -> R {
        let _serial = self.lock.guard();
        // SAFETY: we hold `lock`, so no other reference exists.
        let o = unsafe { &mut *self.owners.get() };
        let gen = proc::fork_gen();
        if o.gen != gen {
            // A forked child: the owners were the parent's (each handle's
            // seat sees the new generation and comes here before it enters).
            for who in o.who.iter_mut() {
                // Our copy of the count: the copies of the handles in this
                // memory hold theirs.
                *who = None;
            }
            o.gen = gen;
        }
        f(o)
    }

    /// The slow path of [`Seat::lease`]: a slot for `me`, entered (its mark
    /// busy), and its lane; waits while every slot is in use. An error
    /// only if this process has no lane of the ring in this role and can
    /// get none (the ring's lanes are all held, no fd).
    #[cold]
    fn acquire(&self, me: &Arc<Me>) -> Result<(usize, u16), JoinError> {
        let mut tries = 0u32;
        let s = loop {
            match self.with_owners(|o| self.find(o, me))? {
                Some(Found::Free(s)) => break s,
                Some(Found::From(s, old)) => {
                    old.mark.wait_out();
                    break s;
                }
                None => {
                    // Every slot's owner is inside an operation, and no
                    // lane may be added: wait for one to leave (a poll,
                    // since leaving signals nobody), without queueing
                    // behind a busy owner.
                    tries += 1;
                    if tries < 16 {
                        std::thread::yield_now();
                    } else {
                        let us = tries.min(64) as u64 * 16;
                        std::thread::sleep(std::time::Duration::from_micros(us));
                    }
                }
            }
        };
        // A slot found has a lane of this generation, kept while we live.
        let lane = self.lane_of(s).and_then(HandleLane::current);
        Ok((s, lane.unwrap_or(NO_LANE)))
    }

    /// Finds a slot for `me` and makes it the owner (busy), under the lock:
    /// `None` if every slot's owner is busy and no lane may be added.
    fn find(&self, o: &mut Owners, me: &Arc<Me>) -> Result<Option<Found>, JoinError> {
        let laned = |s: usize| self.lane_of(s).and_then(HandleLane::current).is_some();
        let own = |o: &mut Owners, s: usize| {
            me.mark.own();
            let old = o.who[s].replace(me.clone());
            let old = old.filter(|w| !Arc::ptr_eq(w, me));
            if let Some(w) = &old {
                w.mark.revoke();
            }
            old
        };
        // A free slot with a lane.
        if let Some(s) = (0..SLOTS).find(|&s| laned(s) && o.who[s].is_none()) {
            own(o, s);
            return Ok(Some(Found::Free(s)));
        }
        // Every slot with a lane is owned. Take one more lane if the ring
        // has lanes to spare, or if every owner is inside an operation (so
        // that a thread whose operation runs inside another one of its own,
        // a `send_batch` iterator that sends, does not wait for itself
        // while a lane is free).
        let idle = |o: &Owners, s: usize| o.who[s].as_ref().is_some_and(|w| !w.mark.is_busy());
        let busy = !(0..SLOTS).any(|s| laned(s) && idle(o, s));
        let any = (0..SLOTS).any(laned);
        let steal = barrier::available();
        let mut err = JoinError::Full;
        if !any || busy || !steal || self.ring().lanes_to_spare() {
            match self.grow(o) {
                Ok(Some(s)) => {
                    own(o, s);
                    return Ok(Some(Found::Free(s)));
                }
                Ok(None) => {}
                Err(e) => err = e,
            }
        }
        if !any || !steal {
            // Without `membarrier` no slot is ever taken over: a handle
            // keeps its slot until it drops, as a lane per handle.
            return Err(err);
        }
        // Take over a slot whose owner is not inside an operation (starting
        // where the last search ended); if every owner is, wait for one to
        // leave rather than queue behind it (a taker is busy while it waits
        // out the owner before it, so queues would chain).
        let Some(s) = (0..SLOTS)
            .map(|k| (o.next + k) % SLOTS)
            .find(|&s| laned(s) && idle(o, s))
        else {
            return Ok(None);
        };
        o.next = (s + 1) % SLOTS;
        Ok(Some(match own(o, s) {
            Some(old) => Found::From(s, old),
            None => Found::Free(s),
        }))
    }

    /// Gives a lane to a slot that has none: an orphan a fork left, or the
    /// next unmade slot. `Ok(None)` when every slot is made and has one.
    fn grow(&self, o: &Owners) -> Result<Option<usize>, JoinError> {
        for s in 0..SLOTS {
            match self.lane_of(s) {
                Some(h) if h.current().is_none() && o.who[s].is_none() => {
                    return h.lane().map(|_| Some(s));
                }
                Some(_) => {}
                None => {
                    let h = HandleLane::new(self.ring(), self.role);
                    if h.current().is_none() {
                        let e = h.lane().err().unwrap_or(JoinError::Full);
                        h.release();
                        return Err(e);
                    }
                    self.set(s, h);
                    return Ok(Some(s));
                }
            }
        }
        Ok(None)
    }

    /// `me` (a handle going away, not inside an operation) owns no slot any
    /// more.
    fn leave_slots(&self, me: &Arc<Me>) {
        self.with_owners(|o| {
            for who in o.who.iter_mut() {
                if who.as_ref().is_some_and(|w| Arc::ptr_eq(w, me)) {
                    *who = None;
                }
            }
        });
    }
}

impl Drop for LocalLanes {
    fn drop(&mut self) {
        // Slot 0 last: the process counts in this role until the end.
        for s in (0..SLOTS).rev() {
            let p = *self.lanes[s].get_mut();
            if !p.is_null() {
                // SAFETY: set by `set` from a box, freed only here.
                let h = unsafe { Box::from_raw(p) };
                h.release();
            }
        }
    }
}

/// A handle's place among its process's lanes of its ring and role: its
/// mark, and the lane of the slot it owns (if it still does).
pub(crate) struct Seat {
    lanes: Arc<LocalLanes>,
    me: Arc<Me>,
    /// `&me.mark`, fixed while `me` lives.
    mark: *const Mark,
    /// The lane of the slot last owned.
    lane: Cell<u16>,
    /// The fork generation that slot was owned in (0: none yet).
    gen: Cell<u64>,
}

// SAFETY: `mark` points into `me`, kept alive by the seat; the rest is
// `Send`. (Not `Sync`: the cells are the handle's thread's.)
unsafe impl Send for Seat {}

impl Seat {
    /// A handle's seat among `lanes` (it owns no slot until it enters).
    pub(crate) fn new(lanes: Arc<LocalLanes>) -> Self {
        let me = Arc::new(Me { mark: Mark::new() });
        Seat {
            mark: &me.mark,
            lanes,
            me,
            lane: Cell::new(NO_LANE),
            gen: Cell::new(0),
        }
    }

    /// This process's lanes of the handle's ring and role.
    pub(crate) fn lanes(&self) -> &LocalLanes {
        &self.lanes
    }

    #[inline(always)]
    fn mark(&self) -> &Mark {
        // SAFETY: see `Seat`.
        unsafe { &*self.mark }
    }

    /// Enters the slot the handle owns (fast path), or finds one, and puts
    /// its lane in `out`; or why this process has none. Leave with
    /// [`Seat::leave`] (or use [`Seat::enter`] / [`Seat::lease`]).
    #[inline(always)]
    fn enter_raw(&self, out: &Cell<u16>) -> Result<(), JoinError> {
        if !(self.gen.get() == proc::fork_gen() && self.mark().enter()) {
            self.enter_slow()?;
        }
        // Only when it changed: a store per operation to the caller's cell
        // (the handle's own struct) costs the one-way pair's throughput.
        let l = self.lane.get();
        if out.get() != l {
            out.set(l);
        }
        Ok(())
    }

    #[cold]
    #[inline(never)]
    fn enter_slow(&self) -> Result<(), JoinError> {
        let (_, l) = self.lanes.acquire(&self.me)?;
        self.lane.set(l);
        self.gen.set(proc::fork_gen());
        Ok(())
    }

    #[inline(always)]
    fn leave(&self) {
        self.mark().leave();
    }

    /// Enters a lane of this process for one operation that does not sleep,
    /// kept in `out` until the returned guard drops; or why this process
    /// has none.
    #[inline(always)]
    pub(crate) fn enter<'a>(&'a self, out: &Cell<u16>) -> Result<Entered<'a>, JoinError> {
        self.enter_raw(out)?;
        Ok(Entered(self))
    }

    /// Leases a lane of this process for one operation that may sleep (and
    /// gives the lane back while it does, see [`Relet`]), kept in `out`
    /// while the lease lives (and changed there by a sleep); or why this
    /// process has none.
    #[inline]
    pub(crate) fn lease<'a>(&'a self, out: &'a Cell<u16>) -> Result<Lease<'a>, JoinError> {
        self.enter_raw(out)?;
        Ok(Lease {
            seat: self,
            out,
            held: Cell::new(true),
        })
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.lanes.leave_slots(&self.me);
    }
}

/// A lane entered for one operation that does not sleep (see
/// [`Seat::enter`]); left when dropped.
pub(crate) struct Entered<'a>(&'a Seat);

impl Drop for Entered<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        self.0.leave();
    }
}

/// A lane leased for one operation (see [`Seat::lease`]); given back when
/// dropped, and while the operation sleeps ([`Relet`]).
pub(crate) struct Lease<'a> {
    seat: &'a Seat,
    out: &'a Cell<u16>,
    held: Cell<bool>,
}

impl Lease<'_> {
    /// The lane leased.
    #[inline]
    pub(crate) fn get(&self) -> u16 {
        self.out.get()
    }
}

impl Relet for Lease<'_> {
    #[inline]
    fn lane(&self) -> u16 {
        self.out.get()
    }

    fn pause(&self) {
        if self.held.replace(false) {
            self.seat.leave();
        }
    }

    fn resume(&self) {
        if self.held.get() {
            return;
        }
        // The process held a lane here when we leased, and its slots keep
        // their lanes in this generation: a slot can be found.
        if self.seat.enter_raw(self.out).is_err() {
            debug_assert!(false, "a lease resumed in a process with no lane");
            self.out.set(NO_LANE);
            return;
        }
        self.held.set(true);
    }
}

impl Drop for Lease<'_> {
    #[inline]
    fn drop(&mut self) {
        if self.held.get() {
            self.seat.leave();
        }
    }
}
