//! Recovery: what a survivor does when a peer died half way through a
//! step, and the watcher, the one blocked waiter that looks for such deaths.
//!
//! Every step is noted in a lane (see `layout`, and `lease`: the threads
//! of a process share its lanes of a ring, one operation at a time). Four steps can be left half
//! done by a process killed between two instructions, and each leaves a note
//! (in its lane, or for a hold in the descriptor) for exactly as long as it
//! is half done:
//!
//! | step (who)            | half done between                 | note              | a survivor, once the owner is dead            |
//! |-----------------------|-----------------------------------|-------------------|-----------------------------------------------|
//! | claim (sender)        | CAS of `tail` .. commit           | `intent`, `need`  | writes PADDING / SKIP over the claim (`recover_read`) |
//! | take (receiver)       | CAS of `read` .. TAKEN mark       | `intent`          | marks the record DONE (`recover_head`)        |
//! | hold (receiver)       | TAKEN mark .. release             | descriptor owner  | marks the record DONE (`recover_head`)        |
//! | head move (releaser)  | descriptor zeroed .. `head` stored | `moving`, `to`    | CASes `head` on (`finish_dead_move`)          |
//!
//! A note is written before the step becomes visible (a Release CAS or
//! store publishes both) and cleared after it ends, so a survivor that finds
//! the ring stuck at a step and no *live* lane noting it knows the step's
//! owner is dead. Nothing here is on the fast path: `recover` makes system
//! calls (the liveness checks) and runs from blocking calls once per sleep
//! slice. Values read from lanes are untrusted and checked before use.

use super::wait::SLEEP_SLICE;
use super::*;
use crate::sync::now_ms;

/// How often the watcher scans (ms).
const SCAN_MS: u64 = SLEEP_SLICE.as_millis() as u64;
/// A watcher that has not scanned for this long (ms) is replaced: two of
/// its slices, so a live watcher is not (it scans every slice; a second
/// scanner would only repeat its work), while one that died (or returned
/// without clearing) is replaced by the next waiter a commit or its own
/// slice wakes. (It was a long slice, 1 s: under churn, a killed watcher
/// left the ring stuck behind a dead claim for up to a second.)
const TAKEOVER_MS: u64 = 2 * SCAN_MS;
const MS_MASK: u64 = (1 << 48) - 1;

/// Who noted the take of a record `read` passed and nobody marked.
#[derive(Clone, Copy)]
enum Noted {
    /// No lane: not a take we can judge.
    Nobody,
    /// Dead lanes only; `leased` if one of them took it leased.
    Dead { leased: bool },
}

/// What a lane says about the claim stuck at `read` (see
/// [`Ring::claim_note`]).
enum ClaimNote {
    /// Nothing: no note, or one that does not describe this claim.
    None,
    /// A claim of it whose owner may be alive: wait.
    Live,
    /// A dead owner's claim ending `dist` granules past `read`; `desc`
    /// replaces it.
    Dead { dist: u64, desc: u64 },
}

impl Ring {
    /// Whether the blocked waiter with lane `lane` is (or now becomes) the
    /// ring's watcher, and whether it should scan now. One waiter at a time
    /// watches and scans every [`SLEEP_SLICE`]; the others only replace a
    /// watcher that stopped scanning for [`TAKEOVER_MS`] (it returned, or
    /// died), when they wake (a commit, or their
    /// [`LONG_SLICE`](super::wait::LONG_SLICE)). Without a clock (loom)
    /// nobody watches.
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
    /// their lanes and what they left in the overflow area, and if that
    /// leaves one side without peers, wake the other side's sleepers so
    /// that they see it. System calls: one `F_OFD_GETLK` per lane in use,
    /// at most, and one per overflow unit a dead sender held.
    pub(super) fn scan(&self, lane: u16) {
        self.recover(lane);
        let freed = {
            let _serial = self.locks.serial();
            self.reap_serial()
        };
        self.sweep_overflow(lane);
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
        any |= self.return_dead_leases();
        for _ in 0..LANES {
            if !self.recover_head(lane) {
                break;
            }
            any = true;
        }
        any
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
        // another); if any is alive, wait. Of several dead notes, the claim
        // that ended soonest is the owner's (a loser's end past it cannot
        // start a record).
        let mut pick: Option<(u64, u64)> = None;
        for (i, l) in self.lanes() {
            match self.claim_note(i, l, r, t) {
                ClaimNote::Live => return false,
                ClaimNote::Dead { dist, desc } if pick.map_or(true, |(best, _)| dist < best) => {
                    pick = Some((dist, desc))
                }
                _ => {}
            }
        }
        let Some((_, d)) = pick else { return false };
        // Release: pairs with the consumers' Acquire load of the
        // descriptor. The owner is dead, so only survivors race here; the
        // CAS lets one of them win.
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

    /// What lane `i` (`l`) says about a claim stuck at `read` (`r`), `tail`
    /// being `t`: nothing, a live claim of it, or a dead one (how far it
    /// ends past `read`, and the descriptor that replaces it).
    fn claim_note(&self, i: usize, l: &Lane, r: Cursor, t: Cursor) -> ClaimNote {
        // SYNC: Acquire pairs with the Release clear after a commit
        // (`commit`): a cleared note means the commit is visible.
        let intent = l.intent.load(Ordering::Acquire);
        // Acquire: the owner word and the identity stored with it were
        // written before the owner's first claim, which we acquired.
        let owner = l.owner.load(Ordering::Acquire);
        if intent & INTENT_SET == 0 || lane_role(owner) != ROLE_SENDER {
            return ClaimNote::None;
        }
        let ic = Cursor::unpack(intent);
        // Relaxed: written before the intent, which we acquired.
        let need = l.need.load(Ordering::Relaxed);
        let (pad, fp) = (need >> 32, need & 0xffff_ffff);
        let rec = pos_add(ic.pos, pad);
        let at_pad = pad > 0 && ic.pos == r.pos;
        if ic.seq != r.seq || !(at_pad || rec == r.pos) {
            return ClaimNote::None;
        }
        if self.note_live(i, owner, &l.intent, intent) {
            return ClaimNote::Live;
        }
        // Untrusted: the note must describe a claim this ring allows.
        let sane = (1..=self.granules / 2).contains(&fp)
            && pad < self.granules
            && (pad == 0 || (ic.pos & self.mask) + pad == self.granules)
            && (rec & self.mask) + fp <= self.granules;
        let end = pos_add(rec, fp);
        if !sane || !self.starts_next(end, r.seq, t) {
            return ClaimNote::None;
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
        ClaimNote::Dead {
            dist: pos_sub(end, r.pos),
            desc: d.pack(),
        }
    }

    /// Whether a record may start at `end`, right after message `seq`: the
    /// next claim starts there (`tail`, a descriptor, or a lane's note say
    /// so).
    pub(super) fn starts_next(&self, end: u64, seq: u64, t: Cursor) -> bool {
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
        self.lanes().any(|(_, l)| {
            let intent = l.intent.load(Ordering::Acquire);
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
        if held == 0 || held > self.room {
            return false;
        }
        // SYNC: Acquire pairs with the Release zeroing (after a mover's
        // note, in `release_at` and `advance`) and the Release store of
        // DONE.
        let w = self.desc(h).load(Ordering::Acquire);
        if let (0, Some(mine)) = (w, mine) {
            return self.finish_dead_move(h, held, mine);
        }
        let d = Desc::unpack(w);
        if w == 0 || d.tag != tag_of(h, self.shift) {
            return false;
        }
        let undo = match d.state {
            // Released; its releaser died before moving `head` (or is about
            // to): moving it is idempotent under `advance`'s CAS.
            ST_DONE => false,
            ST_TAKEN | ST_LEASED if self.holder_alive(d.owner as usize) => return false,
            ST_TAKEN => true,
            // A leased message whose holder died goes back to the queue.
            ST_LEASED => return self.return_record(h, w),
            // Taken (`read` is past it) but not marked TAKEN: the taker is
            // between its CAS and its mark (or its release of a padding).
            ST_COMMITTED | ST_PADDING | ST_SKIP => match self.take_note(h) {
                Some(Noted::Dead { leased: true }) if d.state == ST_COMMITTED => {
                    return self.return_record(h, w)
                }
                Some(Noted::Dead { .. }) => true,
                Some(Noted::Nobody) => false,
                None => return false,
            },
            _ => return false,
        };
        // Without a lane (`join` finding every lane taken) we only mark
        // records DONE: a `head` move we made could not be noted, so a
        // death in it could not be finished by others.
        if mine.is_none() && !undo {
            return false;
        }
        if undo && !self.mark_done(h, w) {
            return false;
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

    /// A move of `head` half done at `h`: descriptor zeroed, `head` not yet
    /// stored. Its mover noted where it goes; if the mover is dead, finish
    /// the move (and go on past what was released behind it).
    fn finish_dead_move(&self, h: u64, held: u64, mine: &Lane) -> bool {
        let mut to = None;
        for (i, l) in self.lanes() {
            // Acquire: the note was written before the Release zeroing we
            // acquired; the owner word before its first take.
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
        // SYNC: Release as in `set_head`; the CAS makes sure `head` is still
        // where the dead mover left it.
        if self
            .ctrl()
            .head
            .compare_exchange(h, to, Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        if crosses(h, to, HEAD_EPOCH_SHIFT) {
            self.bump_epoch();
        }
        self.advance(to, Some(mine));
        self.wake_senders();
        true
    }

    /// Whether the receiver in lane `i`, which holds a TAKEN record, may be
    /// alive. A lane freed or reused by another role: the holder is gone (a
    /// leaked guard whose handle was dropped, or reaped).
    pub(super) fn holder_alive(&self, i: usize) -> bool {
        // Acquire: pairs with the Release that freed the lane.
        let owner = self.lane(i).owner.load(Ordering::Acquire);
        lane_role(owner) == ROLE_RECEIVER && self.owner_alive(i, owner)
    }

    /// For a record at `head` that `read` has passed but nobody marked
    /// TAKEN: `None` if a live receiver notes the take (wait), else whether
    /// a dead one does, and whether its take was leased.
    fn take_note(&self, h: u64) -> Option<Noted> {
        let mut noted = Noted::Nobody;
        for (i, l) in self.lanes() {
            // Acquire: a taker notes its take before its Release CAS of
            // `read`, which our caller acquired.
            let intent = l.intent.load(Ordering::Acquire);
            let owner = l.owner.load(Ordering::Acquire);
            if intent & INTENT_SET == 0
                || lane_role(owner) != ROLE_RECEIVER
                || Cursor::unpack(intent).pos != h
            {
                continue;
            }
            if self.note_live(i, owner, &l.intent, intent) {
                return None;
            }
            // Relaxed: written before the intent, which we acquired.
            let leased = l.leasing.load(Ordering::Relaxed) == intent;
            noted = match noted {
                // Several dead lanes may note it (losers of the CAS); a
                // leased one among them may be the winner: give it back,
                // the safe side (delivered again, never lost).
                Noted::Dead { leased: was } => Noted::Dead {
                    leased: was || leased,
                },
                Noted::Nobody => Noted::Dead { leased },
            };
        }
        Some(noted)
    }

    /// Marks the record `w` at `p`, whose holder is dead, DONE; `false` if
    /// the descriptor changed meanwhile (another survivor won).
    pub(super) fn mark_done(&self, p: u64, w: u64) -> bool {
        let done = Desc {
            state: ST_DONE,
            owner: 0,
            ..Desc::unpack(w)
        };
        // Release: as a release's DONE store (the dead holder's reads are
        // over). The CAS lets one survivor win.
        self.desc(p)
            .compare_exchange(w, done.pack(), Ordering::Release, Ordering::Relaxed)
            .is_ok()
    }

    /// Marks DONE every record in `[head, read)` held (TAKEN) by a dead
    /// receiver, so that its lane is settled and can be reaped, without
    /// moving `head` (for a caller without a lane: `join` when every lane is
    /// taken). Whoever next releases or recovers at `head` moves it past
    /// them.
    pub(super) fn release_dead_holds(&self) {
        let ctrl = self.ctrl();
        // Acquire: as in `recover_head`.
        let mut p = ctrl.head.load(Ordering::Acquire);
        let r = Cursor::unpack(ctrl.read.load(Ordering::Acquire));
        let mut left = pos_sub(r.pos, p).min(self.room);
        while left > 0 {
            // Acquire: as in `recover_head`.
            let w = self.desc(p).load(Ordering::Acquire);
            let d = Desc::unpack(w);
            if w == 0 || d.tag != tag_of(p, self.shift) {
                return; // moved on under us, or not a record: stop
            }
            if d.state == ST_TAKEN && !self.holder_alive(d.owner as usize) {
                // Fails if anything changed.
                self.mark_done(p, w);
            }
            if d.state == ST_LEASED && !self.holder_alive(d.owner as usize) {
                // Fails if anything changed.
                self.return_record(p, w);
            }
            let fp = footprint(d.len as usize).min(left);
            p = pos_add(p, fp);
            left -= fp;
        }
    }
}
