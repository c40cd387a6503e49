//! Lanes and recovery: who holds each half-done step of the protocol, and
//! what a survivor does when the holder died.
//!
//! Every handle owns a lane (see `layout`). Three steps can be left half
//! done by a process killed between two instructions, and each leaves a note
//! in its lane for exactly as long as it is half done:
//!
//! | step (who)            | half done between                 | note              | a survivor, once the owner is dead            |
//! |-----------------------|-----------------------------------|-------------------|-----------------------------------------------|
//! | claim (sender)        | CAS of `tail` .. commit           | `intent`, `need`  | writes PADDING / SKIP over the claim (`recover_read`) |
//! | take (receiver)       | CAS of `read` .. TAKEN mark       | `intent`          | marks the record DONE (`recover_head`)        |
//! | hold (receiver)       | TAKEN mark .. release             | descriptor owner  | marks the record DONE (`recover_head`)        |
//! | head move (receiver)  | descriptor zeroed .. `head` stored | `moving`, `to`    | CASes `head` on (`recover_head`)              |
//!
//! A note is written before the step becomes visible (a Release CAS or
//! store publishes both) and cleared after it ends, so a survivor that finds
//! the ring stuck at a step and no *live* lane noting it knows the step's
//! owner is dead. Nothing here is on the fast path: `recover` makes system
//! calls (the liveness checks) and runs from blocking calls once per sleep
//! slice. Values read from lanes are untrusted and checked before use.

use super::*;
use crate::sync::alive;

/// A lane index meaning "none" (the handle could not get one, or has not
/// yet).
pub(crate) const NO_LANE: u16 = u16::MAX;

/// Lane `owner` role while a survivor frees the lane.
const ROLE_REAPING: u64 = 0xff;

/// Whether `a` is strictly before `b` in the wrapping `seq` space.
fn seq_behind(a: u64, b: u64) -> bool {
    (1..=SEQ_MASK / 2).contains(&seq_sub(b, a))
}

/// Whether `a` is strictly before `b` in the wrapping position space.
fn pos_behind(a: u64, b: u64) -> bool {
    (1..=POS_MASK / 2).contains(&pos_sub(b, a))
}

impl Ring {
    /// Lane `i`, if `i` names one.
    #[inline]
    pub(super) fn lane_opt(&self, i: u16) -> Option<&Lane> {
        // SAFETY: `i < LANES`, the length of the lane array.
        ((i as usize) < LANES).then(|| unsafe { &*self.lanes.as_ptr().add(i as usize) })
    }

    fn lane(&self, i: usize) -> &Lane {
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

    /// Whether the process owning lane `l` (owner word `owner`) may be alive.
    fn owner_alive(&self, l: &Lane, owner: u64) -> bool {
        // Relaxed: written before the owner's first step, which the caller
        // acquired; 0 (not yet written) reads as "alive".
        mutant!("recover_ignores_liveness", true, false)
            && alive(
                lane_pid(owner),
                l.start.load(Ordering::Relaxed),
                l.pidns.load(Ordering::Relaxed),
            )
    }

    /// Whether the note `note` that lane `l` held in `word` may still be
    /// its owner's to finish: the owner is alive, or the note has changed
    /// since (so someone alive is using the lane).
    fn note_live(&self, l: &Lane, owner: u64, word: &AtomicU64, note: u64) -> bool {
        // Acquire: as the first load of the note (see its callers).
        self.owner_alive(l, owner) || word.load(Ordering::Acquire) != note
    }

    /// Takes a free lane for a handle of `role` in process `me`; frees the
    /// lanes of dead processes first if none is free. `None`: all lanes are
    /// held by live handles.
    pub(crate) fn join(&self, role: u64, me: crate::sync::ProcId) -> Option<u16> {
        for round in 0..2 {
            // Even lanes first: the adjacent-line prefetcher pairs 64-byte
            // lines into 128-byte blocks, so two busy handles in lanes 2k
            // and 2k+1 would contend as if they shared a line (measured:
            // 64-byte one-way throughput fell to about a third). Up to 128
            // handles, none shares a block.
            for k in 0..LANES {
                let i = (2 * k) % LANES + (2 * k >= LANES) as usize;
                let l = self.lane(i);
                // Acquire pairs with the Release store that freed the lane:
                // the previous owner's last writes to it come before ours.
                if l.owner.load(Ordering::Relaxed) == 0
                    && l.owner
                        .compare_exchange(
                            0,
                            lane_owner(me.pid, role),
                            Ordering::Acquire,
                            Ordering::Relaxed,
                        )
                        .is_ok()
                {
                    // Relaxed: published by our first claim or take (Release).
                    l.intent.store(0, Ordering::Relaxed);
                    l.moving.store(0, Ordering::Relaxed);
                    l.start.store(me.start, Ordering::Relaxed);
                    l.pidns.store(me.pidns, Ordering::Relaxed);
                    // Relaxed: a count for liveness checks, not a publication.
                    self.ctrl()
                        .seen
                        .fetch_add(role_unit(role), Ordering::Relaxed);
                    self.ctrl()
                        .seen
                        .fetch_or(role_seen(role), Ordering::Relaxed);
                    return Some(i as u16);
                }
            }
            if round == 0 && self.reap() == 0 {
                break;
            }
        }
        None
    }

    /// Frees lane `i` of a handle of `role` that is going away (its steps
    /// are all finished), and wakes the other side so that it notices if
    /// this was the last of its peers.
    pub(crate) fn leave_lane(&self, i: u16, role: u64) {
        let Some(l) = self.lane_opt(i) else { return };
        self.free_lane(l, role);
        fence(Ordering::SeqCst);
        let ctrl = self.ctrl();
        self.wake_if_waiting(if role == ROLE_SENDER {
            &ctrl.recv_wait
        } else {
            &ctrl.send_wait
        });
    }

    fn free_lane(&self, l: &Lane, role: u64) {
        // Relaxed: published by the Release store of `owner` below.
        l.intent.store(0, Ordering::Relaxed);
        l.moving.store(0, Ordering::Relaxed);
        l.start.store(0, Ordering::Relaxed);
        l.pidns.store(0, Ordering::Relaxed);
        // Relaxed: see `register`.
        self.ctrl()
            .seen
            .fetch_sub(role_unit(role), Ordering::Relaxed);
        // SYNC: pairs with the Acquire CAS in `register`.
        l.owner.store(0, Ordering::Release);
    }

    /// The check a blocked call makes after each sleep: with `slice` (a
    /// whole sleep slice, or the deadline, passed) it first recovers what
    /// dead processes left half done and frees their lanes; then it says
    /// whether every peer of `role` (the other side) is gone.
    pub(super) fn peers_gone(&self, lane: u16, role: u64, slice: bool) -> bool {
        if slice {
            self.recover(lane);
            self.reap();
        }
        self.disconnected(role, slice)
    }

    /// Whether every peer of `role` is gone: some registered once and none
    /// is registered now, or (`slow`, which costs a liveness check per lane)
    /// none of those registered is alive.
    fn disconnected(&self, role: u64, slow: bool) -> bool {
        // Relaxed: a snapshot; a peer that registers after it is not missed
        // for long (the caller checks again after its next sleep).
        let w = self.ctrl().seen.load(Ordering::Relaxed);
        if w & role_seen(role) == 0 {
            return false;
        }
        if role_count(w, role) == 0 {
            return true;
        }
        slow && !(0..LANES).any(|i| {
            let l = self.lane(i);
            // Acquire: as in `any_live_lane`.
            let o = l.owner.load(Ordering::Acquire);
            lane_role(o) == role && self.owner_alive(l, o)
        })
    }

    /// Whether any lane is held by a live process (or one being set up).
    pub(crate) fn any_live_lane(&self) -> bool {
        (0..LANES).any(|i| {
            let l = self.lane(i);
            // Acquire pairs with the Release that freed a lane; a snapshot
            // otherwise (the answer can be stale the moment it is given).
            let o = l.owner.load(Ordering::Acquire);
            o != 0 && (lane_role(o) == ROLE_REAPING || self.owner_alive(l, o))
        })
    }

    /// Finishes or undoes what dead processes left half done where the ring
    /// is stuck (a claim at `read`, a take, hold or move at `head`), wakes
    /// whoever that unblocks. `lane` is the caller's (it may move `head`).
    /// Returns whether anything moved.
    pub(crate) fn recover(&self, lane: u16) -> bool {
        let mut any = self.recover_read();
        for _ in 0..LANES {
            if !self.recover_head(lane) {
                break;
            }
            any = true;
        }
        any
    }

    /// Whether `w` is a record a consumer may take at `pos`.
    fn ready(&self, w: u64, pos: u64) -> bool {
        let d = Desc::unpack(w);
        w != 0
            && d.tag == tag_of(pos, self.shift)
            && matches!(d.state, ST_COMMITTED | ST_PADDING | ST_SKIP)
    }

    /// A record is claimed at `read` and not committed: if its producer is
    /// dead, replace the claim by PADDING (its part before the end of the
    /// ring) or SKIP (the record), so that consumers pass it.
    pub(crate) fn recover_read(&self) -> bool {
        let ctrl = self.ctrl();
        // Acquire (both): whoever moved `tail` past `read` noted its claim
        // before its Release CAS.
        let r = Cursor::unpack(ctrl.read.load(Ordering::Acquire));
        let w = self.desc(r.pos).load(Ordering::Acquire);
        if self.ready(w, r.pos) {
            return false;
        }
        let t = Cursor::unpack(ctrl.tail.load(Ordering::Acquire));
        if t.pos == r.pos || seq_sub(t.seq, r.seq) == 0 {
            return false; // empty: nothing claimed
        }
        // Which lanes noted a claim of message `r.seq` that covers `read`?
        // The owner is one of them (a lane that lost the CAS for it may be
        // another); if any is alive, wait.
        let mut pick: Option<(u64, u64)> = None;
        for i in 0..LANES {
            let l = self.lane(i);
            // SYNC: Acquire pairs with the Release clear after a commit: a
            // cleared note means the commit is visible.
            let intent = l.intent.load(Ordering::Acquire);
            // Acquire: the owner word and the identity stored with it were
            // written before the owner's first claim, which we acquired.
            let owner = l.owner.load(Ordering::Acquire);
            if intent & INTENT_SET == 0 || lane_role(owner) != ROLE_SENDER {
                continue;
            }
            let ic = Cursor::unpack(intent);
            // Relaxed: written before the intent, which we acquired.
            let need = l.need.load(Ordering::Relaxed);
            let (pad, fp) = (need >> 32, need & 0xffff_ffff);
            let rec = pos_add(ic.pos, pad);
            let at_pad = pad > 0 && ic.pos == r.pos;
            if ic.seq != r.seq || !(at_pad || rec == r.pos) {
                continue;
            }
            if self.note_live(l, owner, &l.intent, intent) {
                return false;
            }
            // Untrusted: the note must describe a claim this ring allows.
            let sane = (1..=self.granules / 2).contains(&fp)
                && pad < self.granules
                && (pad == 0 || (ic.pos & self.mask) + pad == self.granules)
                && (rec & self.mask) + fp <= self.granules;
            let end = pos_add(rec, fp);
            if !sane || !self.starts_next(end, r.seq, t) {
                continue;
            }
            let (state, len) = if at_pad {
                (ST_PADDING, pad)
            } else {
                (ST_SKIP, fp)
            };
            let d = Desc::new(
                tag_of(r.pos, self.shift),
                state,
                (len as usize * GRANULE) as u32,
            );
            // Of several dead notes, the claim that ended soonest is the
            // owner's (a loser's end past it cannot start a record).
            let dist = pos_sub(end, r.pos);
            if pick.map_or(true, |(best, _)| dist < best) {
                pick = Some((dist, d.pack()));
            }
        }
        let Some((_, d)) = pick else { return false };
        // The owner is dead, so only survivors race here; the CAS lets one
        // of them win. Release: pairs with the consumers' Acquire load.
        if self
            .desc(r.pos)
            .compare_exchange(w, d, Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        self.wake_receivers();
        true
    }

    /// Whether a record may start at `end`, right after message `seq`: the
    /// next claim starts there (`tail`, a descriptor, or a lane's note say
    /// so).
    fn starts_next(&self, end: u64, seq: u64, t: Cursor) -> bool {
        let next = (seq + 1) & SEQ_MASK;
        if t.seq == next {
            return t.pos == end;
        }
        // Acquire (both): only values are compared; Acquire keeps these
        // loads from being satisfied earlier than the caller's loads of
        // `tail` and the notes it already made.
        if self.ready(self.desc(end).load(Ordering::Acquire), end) {
            return true;
        }
        (0..LANES).any(|i| {
            let intent = self.lane(i).intent.load(Ordering::Acquire);
            let ic = Cursor::unpack(intent);
            intent & INTENT_SET != 0 && ic.seq == next && ic.pos == end
        })
    }

    /// The oldest record (at `head`) is taken and stuck: if whoever holds
    /// it, or was moving `head` past it, is dead, mark it DONE (or finish the
    /// move) and move `head` on. `my` is the caller's lane.
    pub(crate) fn recover_head(&self, my: u16) -> bool {
        let ctrl = self.ctrl();
        let mine = self.lane_opt(my);
        // Acquire: a taker noted its take before its Release CAS of `read`.
        let h = ctrl.head.load(Ordering::Acquire);
        let r = Cursor::unpack(ctrl.read.load(Ordering::Acquire));
        let held = pos_sub(r.pos, h);
        if held == 0 || held > self.granules {
            return false;
        }
        // SYNC: Acquire pairs with the Release zeroing (after a mover's
        // note) and the Release store of DONE.
        let w = self.desc(h).load(Ordering::Acquire);
        if w == 0 {
            // A move of `head` half done: descriptor zeroed, `head` not yet
            // stored. Its mover noted where it goes.
            let mut to = None;
            for i in 0..LANES {
                let l = self.lane(i);
                // Acquire: the note was written before the Release zeroing
                // we acquired; the owner word before its first take.
                let mv = l.moving.load(Ordering::Acquire);
                let owner = l.owner.load(Ordering::Acquire);
                if mv != (h << 1 | INTENT_SET) || lane_role(owner) != ROLE_RECEIVER {
                    continue;
                }
                if self.note_live(l, owner, &l.moving, mv) {
                    return false;
                }
                // Relaxed: written before `moving`, which we acquired.
                let t = l.to.load(Ordering::Relaxed);
                if (1..=held).contains(&pos_sub(t, h)) {
                    to = Some(t);
                }
            }
            let Some(to) = to else { return false };
            // SYNC: Release as in `set_head`; the CAS makes sure `head` is
            // still where the dead mover left it.
            if ctrl
                .head
                .compare_exchange(h, to, Ordering::Release, Ordering::Relaxed)
                .is_err()
            {
                return false;
            }
            if crosses(h, to, HEAD_EPOCH_SHIFT) {
                self.bump_epoch();
            }
            self.advance(to, mine);
            self.wake_senders();
            return true;
        }
        let d = Desc::unpack(w);
        if d.tag != tag_of(h, self.shift) {
            return false;
        }
        let undo = match d.state {
            // Released; its releaser died before moving `head` (or is about
            // to): moving it is idempotent under `advance`'s CAS.
            ST_DONE => false,
            ST_TAKEN => {
                let l = self.lane(d.owner as usize);
                // Acquire: pairs with the Release that freed the lane.
                let owner = l.owner.load(Ordering::Acquire);
                // A lane freed or reused by another role: the holder is gone
                // (a leaked guard whose handle was dropped, or reaped).
                if lane_role(owner) == ROLE_RECEIVER && self.owner_alive(l, owner) {
                    return false;
                }
                true
            }
            // Taken (`read` is past it) but not marked TAKEN: the taker is
            // between its CAS and its mark (or its release of a padding).
            ST_COMMITTED | ST_PADDING | ST_SKIP => {
                let mut noted = false;
                for i in 0..LANES {
                    let l = self.lane(i);
                    // Acquire: a taker notes its take before its Release
                    // CAS of `read`, which we acquired above.
                    let intent = l.intent.load(Ordering::Acquire);
                    let owner = l.owner.load(Ordering::Acquire);
                    if intent & INTENT_SET == 0
                        || lane_role(owner) != ROLE_RECEIVER
                        || Cursor::unpack(intent).pos != h
                    {
                        continue;
                    }
                    if self.note_live(l, owner, &l.intent, intent) {
                        return false;
                    }
                    noted = true;
                }
                noted
            }
            _ => return false,
        };
        if undo {
            let done = Desc {
                state: ST_DONE,
                owner: 0,
                ..d
            };
            // Release: as a release's DONE store (the dead holder's reads
            // are over). The CAS lets one survivor win.
            if self
                .desc(h)
                .compare_exchange(w, done.pack(), Ordering::Release, Ordering::Relaxed)
                .is_err()
            {
                return false;
            }
        }
        fence(Ordering::SeqCst);
        let moved = self.advance(self.load_head_to_move(), mine);
        if moved {
            self.wake_senders();
        }
        moved
    }

    /// Frees the lanes of dead processes that hold nothing a survivor still
    /// needs. Returns how many it freed.
    pub(crate) fn reap(&self) -> usize {
        let mut n = 0;
        for i in 0..LANES {
            let l = self.lane(i);
            // Acquire: pairs with the Release that freed or filled the lane.
            let owner = l.owner.load(Ordering::Acquire);
            let role = lane_role(owner);
            if !(role == ROLE_SENDER || role == ROLE_RECEIVER)
                || self.owner_alive(l, owner)
                || !self.settled(i, l, role)
            {
                continue;
            }
            // Take the lane out of use while its fields are cleared, so that
            // nobody registers in it meanwhile. Acquire: as the load above.
            let reaping = lane_owner(lane_pid(owner), ROLE_REAPING);
            if l.owner
                .compare_exchange(owner, reaping, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                self.free_lane(l, role);
                n += 1;
            }
        }
        n
    }

    /// Whether dead lane `i` notes nothing unfinished: no claim that `read`
    /// has not passed, no take or move that `head` has not passed, and (a
    /// receiver) no TAKEN record it still holds.
    fn settled(&self, i: usize, l: &Lane, role: u64) -> bool {
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
        let mv = l.moving.load(Ordering::Acquire);
        if mv & INTENT_SET != 0 && !pos_behind((mv >> 1) & POS_MASK, head) {
            return false;
        }
        if role == ROLE_RECEIVER {
            let held = pos_sub(r.pos, head).min(self.granules);
            for k in 0..held {
                let p = pos_add(head, k);
                let d = Desc::unpack(self.desc(p).load(Ordering::Acquire));
                if d.state == ST_TAKEN && d.owner == i as u64 && d.tag == tag_of(p, self.shift) {
                    return false;
                }
            }
        }
        true
    }
}
