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
use crate::sync::{lane_alive, my_pid, now_ms};

/// A lane index meaning "none" (the handle could not get one, or has not
/// yet).
pub(crate) const NO_LANE: u16 = u16::MAX;

/// How often the watcher scans (ms).
const SCAN_MS: u64 = SLEEP_SLICE.as_millis() as u64;
/// A watcher that has not scanned for this long (ms) is replaced.
const TAKEOVER_MS: u64 = LONG_SLICE.as_millis() as u64;
const MS_MASK: u64 = (1 << 48) - 1;

/// Whose description holds a lane's liveness lock (see `proc::Locks`).
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

    /// Whether the owner of lane `i` (owner word `owner`) may be alive:
    /// `false` only on the kernel's word (see `proc`).
    fn owner_alive(&self, i: usize, owner: u64) -> bool {
        mutant!("recover_ignores_liveness", true, false) && lane_alive(&self.locks, i, owner)
    }

    /// Whether the note `note` that lane `i` held in `word` may still be
    /// its owner's to finish: the owner is alive, or the note has changed
    /// since (so someone alive is using the lane).
    fn note_live(&self, i: usize, owner: u64, word: &AtomicU64, note: u64) -> bool {
        // Acquire: as the first load of the note (see its callers).
        self.owner_alive(i, owner) || word.load(Ordering::Acquire) != note
    }

    /// Takes a free lane for a handle of `role` in process `pid`, with its
    /// liveness lock; if none is free, first recovers and frees the lanes
    /// of dead processes (without a lane of its own, so it moves no
    /// `head`). `None`: every lane is held by a live handle.
    pub(crate) fn join(&self, role: u64, pid: u32) -> Option<u16> {
        self.join_as(role, pid, Holder::Own)
    }

    /// As [`Ring::join`], for a child about to be forked: the lane's lock is
    /// taken on the description made for the child (see
    /// `Locks::fork_hold`), which only the child keeps after the fork.
    #[cfg(not(loom))]
    pub(crate) fn join_for_child(&self, role: u64, pid: u32) -> Option<u16> {
        self.join_as(role, pid, Holder::Child)
    }

    /// As [`Ring::join`], in a spawned child before its `exec`: the lane's
    /// lock is taken on the hand-off description `fd`, and the lane marked
    /// for the child to give up when it attaches ([`Ring::adopt_handoff`]).
    #[cfg(not(loom))]
    pub(crate) fn join_handoff(&self, role: u64, pid: u32, fd: i32) -> Option<u16> {
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
            for i in 0..LANES {
                let l = self.lane(i);
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

    fn join_as(&self, role: u64, pid: u32, holder: Holder) -> Option<u16> {
        let _serial = self.locks.serial();
        for round in 0..2 {
            // Even lanes first: the adjacent-line prefetcher pairs 64-byte
            // lines into 128-byte blocks, so two busy handles in lanes 2k
            // and 2k+1 would contend as if they shared a line (measured:
            // 64-byte one-way throughput fell to about a third). Up to 128
            // handles, none shares a block.
            for k in 0..LANES {
                let i = (2 * k) % LANES + (2 * k >= LANES) as usize;
                let l = self.lane(i);
                // Relaxed: only a hint; the CAS below decides.
                let w = l.owner.load(Ordering::Relaxed);
                if w & LANE_USED != 0 {
                    continue;
                }
                // The lock first: from the moment the lane is ours, a
                // survivor must find it held.
                let locked = match holder {
                    Holder::Own => self.locks.hold(i),
                    Holder::Child => self.locks.fork_hold(i),
                    Holder::Fd(fd) => self.locks.hold_on(fd, i),
                };
                // Acquire pairs with the Release store that freed the lane:
                // the previous owner's last writes to it come before ours.
                if l.owner
                    .compare_exchange(
                        w,
                        lane_owner(w, pid, role, locked),
                        Ordering::Acquire,
                        Ordering::Relaxed,
                    )
                    .is_ok()
                {
                    // Relaxed: published by our first claim or take (Release).
                    l.intent.store(0, Ordering::Relaxed);
                    l.moving.store(0, Ordering::Relaxed);
                    l.handoff
                        .store(matches!(holder, Holder::Fd(_)) as u64, Ordering::Relaxed);
                    // Relaxed: a count for the disconnect check, not a
                    // publication.
                    let seen = &self.ctrl().seen;
                    seen.fetch_add(role_unit(role), Ordering::Relaxed);
                    seen.fetch_or(role_seen(role), Ordering::Relaxed);
                    return Some(i as u16);
                }
                if locked {
                    match holder {
                        Holder::Own => self.locks.unhold(i),
                        Holder::Child => self.locks.unhold_as(i, true),
                        Holder::Fd(fd) => self.locks.unhold_on(fd, i),
                    }
                }
            }
            if round == 0 {
                self.recover(NO_LANE);
                self.release_dead_holds();
                if self.reap_serial() == 0 {
                    break;
                }
            }
        }
        None
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
    fn free_lane(&self, l: &Lane, owner: u64) {
        // Relaxed: published by the Release store of `owner` below.
        l.intent.store(0, Ordering::Relaxed);
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

    /// Whether any lane is held by a live process.
    pub(crate) fn any_live_lane(&self) -> bool {
        (0..LANES).any(|i| {
            // Acquire pairs with the Release that freed a lane; a snapshot
            // otherwise (the answer can be stale the moment it is given).
            let o = self.lane(i).owner.load(Ordering::Acquire);
            matches!(lane_role(o), ROLE_SENDER | ROLE_RECEIVER | ROLE_QUEUE)
                && self.owner_alive(i, o)
        })
    }

    /// Whether the blocked waiter with lane `lane` is (or now becomes) the
    /// ring's watcher, and whether it should scan now. One waiter at a time
    /// watches and scans every [`SLEEP_SLICE`]; the others only replace a
    /// watcher that stopped scanning for [`LONG_SLICE`] (it returned, or
    /// died). Without a clock (loom) nobody watches.
    pub(super) fn watch(&self, lane: u16) -> (bool, bool) {
        let Some(now) = now_ms() else {
            return (false, false);
        };
        if lane as usize >= LANES {
            return (false, false);
        }
        let me = lane as u64 + 1;
        let word = &self.ctrl().watch;
        // Relaxed (all): the word elects a scanner; what a scan reads is
        // ordered by its own Acquire loads.
        let w = word.load(Ordering::Relaxed);
        let (who, at) = (w >> 48, w & MS_MASK);
        let since = now.wrapping_sub(at) & MS_MASK;
        if !(who == me || who == 0 || since >= TAKEOVER_MS) {
            return (false, false);
        }
        let scan = since >= SCAN_MS;
        let next = me << 48 | if scan { now & MS_MASK } else { at };
        if next != w
            && word
                .compare_exchange(w, next, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return (false, false);
        }
        (true, scan)
    }

    /// Gives up watching (the waiter with lane `lane` stops waiting).
    pub(super) fn unwatch(&self, lane: u16) {
        let word = &self.ctrl().watch;
        // Relaxed: as in `watch`.
        let w = word.load(Ordering::Relaxed);
        if w >> 48 == lane as u64 + 1 {
            let _ = word.compare_exchange(w, w & MS_MASK, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    /// The watcher's scan: recover what dead processes left half done, free
    /// their lanes, and if that leaves one side without peers, wake the
    /// other side's sleepers so that they see it. System calls: one
    /// `F_OFD_GETLK` per lane in use, at most.
    pub(super) fn scan(&self, lane: u16) {
        self.recover(lane);
        let freed = {
            let _serial = self.locks.serial();
            self.reap_serial()
        };
        if freed > 0 {
            fence(Ordering::SeqCst);
            self.wake_if_waiting(&self.ctrl().recv_wait);
            self.wake_if_waiting(&self.ctrl().send_wait);
        }
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
            if self.note_live(i, owner, &l.intent, intent) {
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
        if w == 0 && mine.is_some() {
            // A move of `head` half done: descriptor zeroed, `head` not yet
            // stored. Its mover noted where it goes.
            let mut to = None;
            for i in 0..LANES {
                let l = self.lane(i);
                // Acquire: the note was written before the Release zeroing
                // we acquired; the owner word before its first take.
                let mv = l.moving.load(Ordering::Acquire);
                let owner = l.owner.load(Ordering::Acquire);
                // Senders move `head` too, when their blocked calls recover.
                if mv != (h << 1 | INTENT_SET)
                    || !matches!(lane_role(owner), ROLE_RECEIVER | ROLE_SENDER)
                {
                    continue;
                }
                if self.note_live(i, owner, &l.moving, mv) {
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
        if w == 0 || d.tag != tag_of(h, self.shift) {
            return false;
        }
        let undo = match d.state {
            // Released; its releaser died before moving `head` (or is about
            // to): moving it is idempotent under `advance`'s CAS.
            ST_DONE => false,
            ST_TAKEN => {
                let i = d.owner as usize;
                // Acquire: pairs with the Release that freed the lane.
                let owner = self.lane(i).owner.load(Ordering::Acquire);
                // A lane freed or reused by another role: the holder is gone
                // (a leaked guard whose handle was dropped, or reaped).
                if lane_role(owner) == ROLE_RECEIVER && self.owner_alive(i, owner) {
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
                    if self.note_live(i, owner, &l.intent, intent) {
                        return false;
                    }
                    noted = true;
                }
                noted
            }
            _ => return false,
        };
        // Without a lane (`join` finding every lane taken) we only mark
        // records DONE: a `head` move we made could not be noted, so a
        // death in it could not be finished by others.
        if mine.is_none() && !undo {
            return false;
        }
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
        if mine.is_none() {
            self.wake_senders();
            return true;
        }
        fence(Ordering::SeqCst);
        let moved = self.advance(self.load_head_to_move(), mine);
        if moved {
            self.wake_senders();
        }
        moved
    }

    /// Marks DONE every record in `[head, read)` held (TAKEN) by a dead
    /// receiver, so that its lane is settled and can be reaped, without
    /// moving `head` (for a caller without a lane: `join` when every lane is
    /// taken). Whoever next releases or recovers at `head` moves it past
    /// them.
    fn release_dead_holds(&self) {
        let ctrl = self.ctrl();
        // Acquire: as in `recover_head`.
        let mut p = ctrl.head.load(Ordering::Acquire);
        let r = Cursor::unpack(ctrl.read.load(Ordering::Acquire));
        let mut left = pos_sub(r.pos, p).min(self.granules);
        while left > 0 {
            // Acquire: as in `recover_head`.
            let w = self.desc(p).load(Ordering::Acquire);
            let d = Desc::unpack(w);
            if w == 0 || d.tag != tag_of(p, self.shift) {
                return; // moved on under us, or not a record: stop
            }
            if d.state == ST_TAKEN {
                let i = d.owner as usize;
                // Acquire: pairs with the Release that freed the lane.
                let owner = self.lane(i).owner.load(Ordering::Acquire);
                if lane_role(owner) != ROLE_RECEIVER || !self.owner_alive(i, owner) {
                    let done = Desc {
                        state: ST_DONE,
                        owner: 0,
                        ..d
                    };
                    // Release: as a release's DONE store. The CAS fails if
                    // anything changed.
                    let _ = self.desc(p).compare_exchange(
                        w,
                        done.pack(),
                        Ordering::Release,
                        Ordering::Relaxed,
                    );
                }
            }
            let fp = footprint(d.len as usize).min(left);
            p = pos_add(p, fp);
            left -= fp;
        }
    }

    /// Frees the lanes of dead processes that hold nothing a survivor still
    /// needs. Returns how many it freed.
    #[cfg(loom)]
    pub(crate) fn reap(&self) -> usize {
        let _serial = self.locks.serial();
        self.reap_serial()
    }

    /// `reap`, for a caller that holds `locks.serial()`.
    fn reap_serial(&self) -> usize {
        let mut n = 0;
        for i in 0..LANES {
            let l = self.lane(i);
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
            let locked = self.locks.hold(i);
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
                    // Only the CAS that takes the lane from its dead owner
                    // uncounts it. Release: as in `leave_lane`, for the dead
                    // owner's commits, which our Acquire loads saw.
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
