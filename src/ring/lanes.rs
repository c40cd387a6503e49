//! Lanes: every handle owns one (see `layout`), which says who holds each
//! half-done step of the protocol (a claim, a take, a hold, a move of
//! `head`) and whether its owner lives. Here: taking and giving back lanes
//! (`join`, `leave_lane`), the notes a handle leaves in its lane, counting
//! peers for `Disconnected`, and reaping the lanes of dead processes once
//! nothing they noted is unfinished (what a survivor does about those
//! steps is in `recover`).

use super::*;
use crate::sync::{lane_alive, my_pid, HoldError};

/// A lane index meaning "none" (the handle could not get one, or has not
/// yet).
pub(crate) const NO_LANE: u16 = u16::MAX;

/// Why a handle got no lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JoinError {
    /// Every lane is held by a live handle.
    Full,
    /// The lane's liveness lock could not be taken (no fd to spare, or
    /// the file cannot be opened again): no lane without one.
    Lock(HoldError),
}

/// Whose description holds a lane's liveness lock (see `sys::proc::Locks`).
#[derive(Clone, Copy)]
enum Holder {
    /// This process's own.
    Own,
    /// The one made for a child about to be forked.
    #[cfg_attr(loom, allow(dead_code))]
    Child,
    /// A hand-off description for a spawned child.
    #[cfg_attr(loom, allow(dead_code))]
    Fd(i32),
}

/// Whether `a` is strictly before `b` in the wrapping `seq` space.
pub(super) fn seq_behind(a: u64, b: u64) -> bool {
    (1..=SEQ_MASK / 2).contains(&seq_sub(b, a))
}

/// Whether `a` is strictly before `b` in the wrapping position space.
pub(super) fn pos_behind(a: u64, b: u64) -> bool {
    (1..=POS_MASK / 2).contains(&pos_sub(b, a))
}

impl Ring {
    /// The index of `lane` (one of ours), or [`NO_LANE`].
    pub(super) fn lane_index(&self, lane: Option<&Lane>) -> u16 {
        lane.map_or(NO_LANE, |l| {
            // Both point into the lane array: the offset is an index.
            ((l as *const Lane as usize - self.lanes.as_ptr() as usize) / LANE_LEN) as u16
        })
    }

    /// Lane `i`, if `i` names one.
    #[inline]
    pub(super) fn lane_opt(&self, i: u16) -> Option<&Lane> {
        // SAFETY: `i < LANES`, the length of the lane array.
        ((i as usize) < LANES).then(|| unsafe { &*self.lanes.as_ptr().add(i as usize) })
    }

    /// Every lane, with its index (a scan of the lane array).
    pub(super) fn lanes(&self) -> impl Iterator<Item = (usize, &Lane)> {
        (0..LANES).map(|i| (i, self.lane(i)))
    }

    pub(super) fn lane(&self, i: usize) -> &Lane {
        // SAFETY: the index is reduced modulo LANES, the array's length.
        unsafe { &*self.lanes.as_ptr().add(i % LANES) }
    }

    /// Drops a note of a claim or take that did not happen.
    #[inline]
    pub(super) fn clear_intent(&self, lane: Option<&Lane>) {
        if let Some(l) = lane {
            // Relaxed: the note named a CAS that failed or was never tried;
            // no survivor acts on it while we live.
            l.intent.store(0, Ordering::Relaxed);
        }
    }

    /// Notes a claim we are about to make by a CAS of `tail` from `t`:
    /// `pad` granules of padding, then `fp` of record.
    #[inline]
    pub(super) fn note_claim(&self, l: &Lane, t: u64, pad: u64, fp: u64) {
        // Relaxed: published by the Release CAS of `tail` (in `claim`).
        l.need.store(pad << 32 | fp, Ordering::Relaxed);
        l.intent.store(t | INTENT_SET, Ordering::Relaxed);
    }

    /// Notes a take we are about to make by a CAS of `read` from `r`.
    #[inline]
    pub(super) fn note_take(&self, l: &Lane, r: u64) {
        // Relaxed: published by the Release CAS of `read` (in
        // `try_recv_inner`).
        l.intent.store(r | INTENT_SET, Ordering::Relaxed);
    }

    /// Notes that we are moving `head` from `from` to `to`.
    #[inline]
    pub(super) fn note_move(&self, lane: Option<&Lane>, from: u64, to: u64) {
        if let Some(l) = lane.filter(|_| mutant!("move_unnoted", true, false)) {
            // Relaxed: published by the Release store (or CAS) that zeroes
            // the descriptor at `from`, which a survivor acquires.
            l.to.store(to, Ordering::Relaxed);
            l.moving.store(from << 1 | INTENT_SET, Ordering::Relaxed);
        }
    }

    /// Whether the owner of lane `i` (owner word `owner`) may be alive:
    /// `false` only on the kernel's word (see `sys::proc`).
    pub(super) fn owner_alive(&self, i: usize, owner: u64) -> bool {
        mutant!("recover_ignores_liveness", true, false) && lane_alive(&self.locks, i, owner)
    }

    /// Whether the note `note` that lane `i` held in `word` may still be
    /// its owner's to finish: the owner is alive, or the note has changed
    /// since (so someone alive is using the lane).
    pub(super) fn note_live(&self, i: usize, owner: u64, word: &AtomicU64, note: u64) -> bool {
        // Acquire: as the first load of the note (see its callers).
        self.owner_alive(i, owner) || word.load(Ordering::Acquire) != note
    }

    /// Takes a free lane for a handle of `role` in process `pid`, with its
    /// liveness lock; if none is free, first recovers and frees the lanes
    /// of dead processes (without a lane of its own, so it moves no
    /// `head`).
    pub(crate) fn join(&self, role: u64, pid: u32) -> Result<u16, JoinError> {
        self.join_as(role, pid, Holder::Own)
    }

    /// As [`Ring::join`], for a child about to be forked: the lane's lock is
    /// taken on a page made for the child (see `Locks::fork_hold`), which
    /// only the child keeps after the fork.
    #[cfg(not(loom))]
    pub(crate) fn join_for_child(&self, role: u64, pid: u32) -> Result<u16, JoinError> {
        self.join_as(role, pid, Holder::Child)
    }

    /// As [`Ring::join`], in a spawned child before its `exec`: the lane's
    /// lock is taken on the hand-off description `fd`, and the lane marked
    /// for the child to give up when it attaches ([`Ring::adopt_handoff`]).
    #[cfg(not(loom))]
    pub(crate) fn join_handoff(&self, role: u64, pid: u32, fd: i32) -> Result<u16, JoinError> {
        self.join_as(role, pid, Holder::Fd(fd))
    }

    /// In a spawned child that attached: gives up the lanes taken for it
    /// before its `exec` (its own handles count now), and their locks on
    /// the hand-off description `fd`.
    #[cfg(not(loom))]
    pub(crate) fn adopt_handoff(&self, pid: u32, fd: i32) {
        let mut any = false;
        {
            let _serial = self.locks.serial();
            for (i, l) in self.lanes() {
                // Acquire: as in `reap`.
                let owner = l.owner.load(Ordering::Acquire);
                let role = lane_role(owner);
                // Relaxed: written before the owner word's Acquire CAS.
                if lane_pid(owner) != pid
                    || !matches!(role, ROLE_SENDER | ROLE_RECEIVER | ROLE_QUEUE)
                    || l.handoff.load(Ordering::Relaxed) != 1
                {
                    continue;
                }
                // Release: as in `leave_lane`.
                self.ctrl()
                    .seen
                    .fetch_sub(role_unit(role), Ordering::Release);
                self.free_lane(l, owner);
                self.locks.unhold_on(fd, i);
                any = true;
            }
        }
        if any {
            fence(Ordering::SeqCst);
            self.wake_if_waiting(&self.ctrl().recv_wait);
            self.wake_if_waiting(&self.ctrl().send_wait);
        }
    }

    /// This ring's liveness locks (for the fork handlers).
    #[cfg(not(loom))]
    pub(crate) fn locks(&self) -> &crate::sync::Locks {
        &self.locks
    }

    fn join_as(&self, role: u64, pid: u32, holder: Holder) -> Result<u16, JoinError> {
        let _serial = self.locks.serial();
        for round in 0..2 {
            // Even lanes first: the adjacent-line prefetcher pairs 64-byte
            // lines into 128-byte blocks, so two busy handles in lanes 2k
            // and 2k+1 would contend as if they shared a line (measured:
            // 64-byte one-way throughput fell to about a third). Up to 128
            // handles, none shares a block.
            for k in 0..LANES {
                let i = (2 * k) % LANES + (2 * k >= LANES) as usize;
                if self
                    .take_lane(i, role, pid, holder)
                    .map_err(JoinError::Lock)?
                {
                    return Ok(i as u16);
                }
            }
            // A spawned child before its `exec` (`Holder::Fd`) only looks:
            // recovery allocates, opens files and takes locks, none of it
            // async-signal-safe. With no lane free it takes none, and the
            // child counts from when it attaches.
            if round == 0 && !matches!(holder, Holder::Fd(_)) {
                self.recover(NO_LANE);
                self.release_dead_holds();
                if self.reap_serial() == 0 {
                    break;
                }
            }
        }
        Err(JoinError::Full)
    }

    /// Takes lane `i` if it is free, with its liveness lock held by
    /// `holder`: `Ok(false)` if it is not free (its word, or its lock byte,
    /// which a live owner, a reaper or a reader's read lock holds); an
    /// error if no lock can be had at all. The caller holds
    /// `locks.serial()`.
    fn take_lane(&self, i: usize, role: u64, pid: u32, holder: Holder) -> Result<bool, HoldError> {
        let l = self.lane(i);
        // Relaxed: only a hint; the CAS below decides.
        let w = l.owner.load(Ordering::Relaxed);
        if w & LANE_USED != 0 {
            return Ok(false);
        }
        // The lock first: from the moment the lane is ours, a survivor must
        // find it held.
        let locked = match holder {
            Holder::Own => self.locks.hold(i),
            Holder::Child => self.locks.fork_hold(i),
            Holder::Fd(fd) => self
                .locks
                .hold_on(fd, i)
                .then_some(())
                .ok_or(HoldError::Taken),
        };
        match locked {
            Ok(()) => {}
            Err(HoldError::Taken) => return Ok(false),
            Err(e) => return Err(e),
        }
        // Acquire: pairs with the Release store that freed the lane: the
        // previous owner's last writes to it come before ours.
        let owner = lane_owner(w, pid, role, true);
        if l.owner
            .compare_exchange(w, owner, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            match holder {
                Holder::Own => self.locks.unhold(i),
                Holder::Child => self.locks.unhold_as(i, true),
                Holder::Fd(fd) => self.locks.unhold_on(fd, i),
            }
            return Ok(false);
        }
        // Relaxed: published by our first claim or take (Release).
        l.intent.store(0, Ordering::Relaxed);
        l.leasing.store(0, Ordering::Relaxed);
        l.moving.store(0, Ordering::Relaxed);
        l.handoff
            .store(matches!(holder, Holder::Fd(_)) as u64, Ordering::Relaxed);
        // Relaxed: a count for the disconnect check, not a publication.
        let seen = &self.ctrl().seen;
        seen.fetch_add(role_unit(role), Ordering::Relaxed);
        seen.fetch_or(role_seen(role), Ordering::Relaxed);
        Ok(true)
    }

    /// Frees lane `i` of a handle of `role` that is going away (its steps
    /// are all finished), and wakes the other side so that it notices if
    /// this was the last of its peers.
    pub(crate) fn leave_lane(&self, i: u16, role: u64) {
        let Some(l) = self.lane_opt(i) else { return };
        {
            let _serial = self.locks.serial();
            // Relaxed: our own lane's word, which only we change while it
            // is ours.
            let owner = l.owner.load(Ordering::Relaxed);
            // SYNC: Release pairs with the Acquire load in `disconnected`:
            // whoever sees this handle gone also sees everything it sent,
            // so it takes the last messages before it reports the end. (A
            // send's wake fence already orders its commit before this, but
            // a handle's last words must not depend on that.)
            self.ctrl()
                .seen
                .fetch_sub(role_unit(role), Ordering::Release);
            self.free_lane(l, owner);
            self.locks.unhold(i as usize);
        }
        fence(Ordering::SeqCst);
        let ctrl = self.ctrl();
        if !mutant!("leave_no_wake", true, false) {
            return;
        }
        if role != ROLE_RECEIVER {
            self.wake_if_waiting(&ctrl.recv_wait);
        }
        if role != ROLE_SENDER {
            self.wake_if_waiting(&ctrl.send_wait);
        }
    }

    /// Clears lane `l`'s notes and frees it (its word was `owner`).
    pub(super) fn free_lane(&self, l: &Lane, owner: u64) {
        // Relaxed: published by the Release store of `owner` below.
        l.intent.store(0, Ordering::Relaxed);
        l.leasing.store(0, Ordering::Relaxed);
        l.moving.store(0, Ordering::Relaxed);
        l.handoff.store(0, Ordering::Relaxed);
        // SYNC: pairs with the Acquire CAS in `join`.
        l.owner.store(lane_free(owner), Ordering::Release);
    }

    /// Whether every handle that could act as `peer` (sender or receiver;
    /// queue handles count as both) is gone: one registered once, and none
    /// is registered now. Dead processes' lanes count until the watcher
    /// reaps them (see [`Ring::scan`]).
    pub(super) fn disconnected(&self, peer: u64) -> bool {
        // SYNC: Acquire pairs with the Release decrement of a leaving (or
        // reaped) handle: its commits are visible to the caller's last
        // attempt. A snapshot otherwise; a peer that registers after it is
        // not missed for long (the caller checks again after its next sleep).
        // (Loom found the Relaxed load: mutant `disconnected_relaxed`.)
        let order = mutant!("disconnected_relaxed", Ordering::Acquire, Ordering::Relaxed);
        peers_all_gone(self.ctrl().seen.load(order), peer)
    }

    /// Whether a process may take a further lane for a role it already
    /// holds one of (see `lease`): fewer than half the lanes are counted as
    /// held, so that the rest stay for processes that have none yet.
    pub(crate) fn lanes_to_spare(&self) -> bool {
        // Relaxed: a snapshot, to decide whether to ask; `join` decides.
        let w = self.ctrl().seen.load(Ordering::Relaxed);
        let held: u64 = [ROLE_SENDER, ROLE_RECEIVER, ROLE_QUEUE]
            .iter()
            .map(|&r| role_count(w, r))
            .sum();
        (held as usize) < LANES / 2
    }

    /// Whether any lane is held by a live process.
    pub(crate) fn any_live_lane(&self) -> bool {
        self.lanes().any(|(i, l)| {
            // Acquire: pairs with the Release that freed a lane; a snapshot
            // otherwise (the answer can be stale the moment it is given).
            let o = l.owner.load(Ordering::Acquire);
            matches!(lane_role(o), ROLE_SENDER | ROLE_RECEIVER | ROLE_QUEUE)
                && self.owner_alive(i, o)
        })
    }

    /// Frees the lanes of dead processes that hold nothing a survivor still
    /// needs. Returns how many it freed.
    #[cfg(loom)]
    pub(crate) fn reap(&self) -> usize {
        let _serial = self.locks.serial();
        self.reap_serial()
    }

    /// `reap`, for a caller that holds `locks.serial()`.
    pub(super) fn reap_serial(&self) -> usize {
        let mut n = 0;
        for (i, l) in self.lanes() {
            // Acquire: pairs with the Release that freed or filled the lane.
            let owner = l.owner.load(Ordering::Acquire);
            let role = lane_role(owner);
            // A reaper that died half way (REAPING, no lock) is finished
            // like any other dead owner; it had found the lane settled.
            if !matches!(
                role,
                ROLE_SENDER | ROLE_RECEIVER | ROLE_QUEUE | ROLE_REAPING
            ) || self.owner_alive(i, owner)
                || (role != ROLE_REAPING
                    && !mutant!("reap_unsettled", self.settled(i, l, role), true))
            {
                continue;
            }
            // Take the lane out of use while its fields are cleared, so that
            // nobody registers in it meanwhile; our lock on it says we are
            // alive while we do. The CAS (the generation is in the word)
            // fails if the lane changed hands since we judged it.
            let locked = self.locks.hold(i).is_ok();
            // Acquire: as the load above.
            if l.owner
                .compare_exchange(
                    owner,
                    lane_reaping(owner, my_pid()),
                    Ordering::Acquire,
                    Ordering::Relaxed,
                )
                .is_ok()
            {
                if role != ROLE_REAPING {
                    // Release: as in `leave_lane`, for the dead owner's
                    // commits, which our Acquire loads saw. Only the CAS that
                    // takes the lane from its dead owner uncounts it.
                    self.ctrl()
                        .seen
                        .fetch_sub(role_unit(role), Ordering::Release);
                }
                death_point!("reaping", n);
                self.free_lane(l, owner);
                n += 1;
            }
            if locked {
                self.locks.unhold(i);
            }
        }
        n
    }

    /// Whether dead lane `i` notes nothing unfinished: no claim that `read`
    /// has not passed, no take or move that `head` has not passed, and (a
    /// receiver) no TAKEN record it still holds.
    pub(super) fn settled(&self, i: usize, l: &Lane, role: u64) -> bool {
        let ctrl = self.ctrl();
        // Acquire (all): the lane's owner is dead, so its notes no longer
        // change; Acquire orders these loads after the liveness check and
        // makes the descriptors read below at least as new as `read`.
        let head = ctrl.head.load(Ordering::Acquire);
        let r = Cursor::unpack(ctrl.read.load(Ordering::Acquire));
        let intent = l.intent.load(Ordering::Acquire);
        if intent & INTENT_SET != 0 {
            let ic = Cursor::unpack(intent);
            let passed = if role == ROLE_SENDER {
                seq_behind(ic.seq, r.seq)
            } else {
                pos_behind(ic.pos, head)
            };
            if !passed {
                return false;
            }
        }
        // Acquire: as above.
        let mv = l.moving.load(Ordering::Acquire);
        if mv & INTENT_SET != 0 && !pos_behind((mv >> 1) & POS_MASK, head) {
            return false;
        }
        if role == ROLE_RECEIVER {
            let held = pos_sub(r.pos, head).min(self.room);
            for k in 0..held {
                let p = pos_add(head, k);
                // Acquire: as above.
                let d = Desc::unpack(self.desc(p).load(Ordering::Acquire));
                if matches!(d.state, ST_TAKEN | ST_LEASED)
                    && d.owner == i as u64
                    && d.tag == tag_of(p, self.shift)
                {
                    return false;
                }
            }
        }
        true
    }
}
