//! Receiving: take the record at `read`, or wait for one.

use super::wait::Waiter;
use super::*;

impl Ring {
    /// Takes the next committed record, or fails at once.
    #[inline]
    pub(crate) fn try_recv(&self, lane: u16) -> Result<Claim, RecvError> {
        self.try_recv_inner(true, lane, ST_TAKEN)
    }

    /// `try_recv`, leased: the record is marked LEASED by `lane`, and goes
    /// back to the queue (RETURNED) if its holder dies or gives it back
    /// (see `returns`). Needs a lane (else `TooManyHandles`).
    ///
    /// The lane's `leasing` note is left as it is after the take: it only
    /// counts while it equals a set `intent`, and a stale one that a later
    /// plain take's intent matches (same lane, same `read`, nothing taken
    /// in between) only makes a survivor give back, rather than count
    /// delivered, a message whose taker died before it was handed out.
    pub(crate) fn try_recv_leased(&self, lane_idx: u16) -> Result<Claim, RecvError> {
        if self.lane_opt(lane_idx).is_none() {
            return Err(RecvError::TooManyHandles);
        }
        self.try_recv_inner(true, lane_idx, ST_LEASED)
    }

    /// `try_recv` without waking a sender waiting for `maxsize`: the caller
    /// owes a [`Ring::wake_senders`] (see [`Ring::take_ready`]).
    #[inline]
    pub(crate) fn try_recv_quiet(&self, lane: u16) -> Result<Claim, RecvError> {
        self.try_recv_inner(false, lane, ST_TAKEN)
    }

    /// A take that marks the record `held` (TAKEN, or LEASED).
    pub(super) fn try_recv_inner(
        &self,
        wake: bool,
        lane_idx: u16,
        held: u64,
    ) -> Result<Claim, RecvError> {
        // Relaxed: a hint (see `Control::returned`); the walk that follows
        // when it is non-zero loads it again with Acquire.
        if self.ctrl().returned.load(Ordering::Relaxed) != 0 {
            if let Some(got) = self.take_returned(lane_idx, held) {
                return got;
            }
        }
        let lane = self.lane_opt(lane_idx);
        // Whether our lane notes a take; an empty poll then writes nothing.
        let mut noted = None;
        // Relaxed: `read` is a ticket; the payload is published by the
        // descriptor, loaded with Acquire below.
        let mut r = self.ctrl().read.load(Ordering::Relaxed);
        loop {
            let c = Cursor::unpack(r);
            // SYNC: pairs with the producer's Release store of the descriptor
            // (`commit`): its payload is visible to us if we see COMMITTED.
            let w = self.desc(c.pos).load(Ordering::Acquire);
            let next = match self.next_read(c, w) {
                Ok(Some(next)) => next,
                Ok(None) => match self.read_moved(r, c) {
                    Ok(again) => {
                        r = again;
                        continue;
                    }
                    Err(e) => {
                        self.clear_intent(noted);
                        return Err(e);
                    }
                },
                Err(e) => {
                    self.clear_intent(noted);
                    return Err(e);
                }
            };
            if let Some(l) = lane {
                if held == ST_LEASED && mutant!("lease_unnoted", true, false) {
                    // Relaxed: published with the intent, by the Release
                    // CAS of `read` below.
                    l.leasing.store(r | INTENT_SET, Ordering::Relaxed);
                }
                self.note_take(l, r);
                noted = Some(l);
            }
            // Release (on success): a survivor that acquires this `read`
            // (`recover_head`) sees our intent. Otherwise uniqueness of the
            // take comes from the CAS itself; the data was acquired through
            // the descriptor.
            let took = mutant!(
                "take_by_store",
                self.ctrl().read.compare_exchange_weak(
                    r,
                    next.pack(),
                    Ordering::Release,
                    Ordering::Relaxed,
                ),
                {
                    self.ctrl().read.store(next.pack(), Ordering::Relaxed);
                    Ok(r)
                }
            );
            match took {
                Ok(_) if Desc::unpack(w).state == ST_COMMITTED => {
                    return self.hold(c, next, w, lane_idx, wake, held);
                }
                Ok(_) => {
                    self.pass(c, next, w, lane_idx)?;
                    self.clear_intent(noted.take());
                    r = next.pack();
                }
                Err(actual) => r = actual,
            }
        }
    }

    /// Whether `w` is a record a consumer may take at `pos`.
    #[inline]
    pub(super) fn ready(&self, w: u64, pos: u64) -> bool {
        takeable(w, tag_of(pos, self.shift))
    }

    /// Where `read` goes once the record `w` at `c` is taken; `None` if
    /// nothing is ready there. `w` is untrusted: a peer may have written
    /// anything.
    #[inline]
    fn next_read(&self, c: Cursor, w: u64) -> Result<Option<Cursor>, RecvError> {
        if !self.ready(w, c.pos) {
            return Ok(None);
        }
        let d = Desc::unpack(w);
        let counted = d.state != ST_PADDING;
        let fp = footprint(d.len as usize);
        if (counted && d.len as usize > self.max_len) || (c.pos & self.mask) + fp > self.granules {
            return Err(RecvError::Corrupted("record length runs past the ring"));
        }
        Ok(Some(Cursor {
            seq: if counted {
                (c.seq + 1) & SEQ_MASK
            } else {
                c.seq
            },
            pos: pos_add(c.pos, fp),
            closed: false,
        }))
    }

    /// Nothing is ready at `read` (`r`, unpacked `c`): the `read` to try
    /// again from, if another consumer moved it; else `Empty`, or `Closed`
    /// once the ring is closed and drained.
    #[inline]
    fn read_moved(&self, r: u64, c: Cursor) -> Result<u64, RecvError> {
        // Relaxed: enough to see whether another consumer moved `read` (so
        // that what we loaded was written after its take): every store that
        // replaces a taken record's descriptor is a Release that follows
        // the CAS of `read` past it, and we loaded the descriptor with
        // Acquire, so that CAS is visible here.
        let ctrl = self.ctrl();
        let again = ctrl.read.load(Ordering::Relaxed);
        if again != r {
            return Ok(again);
        }
        // Relaxed: we only read the closed bit and the position; if no
        // record was claimed at or after `read` when `tail` was closed,
        // none ever will be.
        let t = Cursor::unpack(ctrl.tail.load(Ordering::Relaxed));
        if mutant!("try_recv_waits_for_commit", false, t.pos != c.pos) {
            // The break: wait for a claimed record's commit (as a bounded
            // queue with per-slot stamps may), instead of reporting Empty.
            spin_hint();
            return Ok(ctrl.read.load(Ordering::Relaxed));
        }
        let closed_and_drained = mutant!("recv_closed_early", t.pos == c.pos, true);
        Err(if t.closed && closed_and_drained {
            RecvError::Closed
        } else {
            RecvError::Empty
        })
    }

    /// We took the message `w` at `c` (moving `read` to `next`): mark it
    /// `held` (TAKEN, or LEASED) by our lane, clear our note, and hand it
    /// out.
    #[inline]
    fn hold(
        &self,
        c: Cursor,
        next: Cursor,
        w: u64,
        lane_idx: u16,
        wake: bool,
        held: u64,
    ) -> Result<Claim, RecvError> {
        death_point!("taken", Err(RecvError::Empty));
        let d = Desc::unpack(w);
        if let Some(l) = self.lane_opt(lane_idx) {
            let held = Desc {
                owner: lane_idx as u64,
                state: held,
                ..d
            };
            // SYNC: Release, though survivors read the owner only after
            // acquiring our cleared intent: this store replaces a taken
            // record's descriptor, so another consumer that loads it
            // (Acquire) at a stale `read` must then see our CAS of `read`
            // when it re-loads it, or it reports a spurious Empty (the
            // reasoning in `read_moved`; mutant `taken_relaxed`).
            let order = mutant!("taken_relaxed", Ordering::Release, Ordering::Relaxed);
            if mutant!("take_unmarked", true, false) {
                self.desc(c.pos).store(held.pack(), order);
            }
            // SYNC: Release pairs with a survivor's Acquire load of the
            // intent (`recover_head`): seeing it cleared, it sees TAKEN (and
            // the lane that holds it).
            l.intent.store(0, Ordering::Release);
        }
        if crosses(c.seq, next.seq, SEQ_EPOCH_SHIFT) {
            self.bump_epoch();
        }
        if wake && self.maxsize != UNBOUNDED && mutant!("no_maxsize_wake", true, false) {
            // Dekker with a sender waiting for `maxsize`.
            self.wake_senders();
        }
        let claim = Claim {
            pos: c.pos,
            len: d.len as usize,
            desc: w,
        };
        if d.owner == KIND_EXT {
            return self.hold_ext(claim, lane_idx);
        }
        Ok(claim)
    }

    /// We took padding or a dead claim `w` at `c`: nothing to hand out,
    /// release it at once.
    #[inline]
    fn pass(&self, c: Cursor, next: Cursor, w: u64, lane_idx: u16) -> Result<(), RecvError> {
        if crosses(c.seq, next.seq, SEQ_EPOCH_SHIFT) {
            self.bump_epoch();
        }
        death_point!("taken", Err(RecvError::Empty));
        self.release_at(c.pos, w, true, lane_idx);
        Ok(())
    }

    /// Blocking receive: wait as `wait` says, then sleep until a commit,
    /// `close`, or `deadline`.
    pub(crate) fn recv(
        &self,
        deadline: Option<Instant>,
        wait: &Backoff,
        lanes: &impl Relet,
    ) -> Result<Claim, RecvError> {
        match self.try_recv(lanes.lane()) {
            Err(RecvError::Empty) => self.recv_empty(deadline, wait, lanes),
            r => r,
        }
    }

    /// A blocking receive whose first attempt, made by the caller as
    /// `try_recv` makes it, found nothing: the rest of `recv`, without a
    /// second attempt at once (an empty take reads the producers' `tail`).
    pub(crate) fn recv_empty(
        &self,
        deadline: Option<Instant>,
        wait: &Backoff,
        lanes: &impl Relet,
    ) -> Result<Claim, RecvError> {
        let attempt = || match self.try_recv(lanes.lane()) {
            Err(RecvError::Empty) => None,
            r => Some(r),
        };
        self.block_receiver(deadline, wait, lanes, attempt)
    }

    /// [`Ring::recv_empty`] for a leased receive.
    pub(crate) fn recv_empty_leased(
        &self,
        deadline: Option<Instant>,
        wait: &Backoff,
        lanes: &impl Relet,
    ) -> Result<Claim, RecvError> {
        let attempt = || match self.try_recv_leased(lanes.lane()) {
            Err(RecvError::Empty) => None,
            r => Some(r),
        };
        self.block_receiver(deadline, wait, lanes, attempt)
    }

    /// Whether a record is ready at `read`, without taking it: `Ok(true)`
    /// (a take would find it, unless another consumer takes it first, or it
    /// is padding before a record not yet committed), `Ok(false)` (empty),
    /// or `Closed` once the ring is closed and drained.
    pub(crate) fn peek(&self) -> Result<bool, RecvError> {
        // Relaxed: a hint, as in `try_recv_inner`: a message given back
        // waits behind `read`.
        if self.ctrl().returned.load(Ordering::Relaxed) != 0 {
            return Ok(true);
        }
        // Relaxed: as in `try_recv_inner` (a ticket to look at).
        let mut r = self.ctrl().read.load(Ordering::Relaxed);
        loop {
            let c = Cursor::unpack(r);
            // SYNC: pairs with the producer's Release store of the
            // descriptor (`commit`), as in `try_recv_inner`; `next_read`
            // checks the length it carries.
            let w = self.desc(c.pos).load(Ordering::Acquire);
            match self.next_read(c, w) {
                Ok(Some(_)) => return Ok(true),
                Ok(None) => match self.read_moved(r, c) {
                    Ok(again) => r = again,
                    Err(RecvError::Empty) => return Ok(false),
                    Err(e) => return Err(e),
                },
                Err(e) => return Err(e),
            }
        }
    }

    /// Waits, as `recv` does, until `peek` finds a record (`Ok`), the ring
    /// is closed and drained (`Closed`), every sender is gone with nothing
    /// left (`Disconnected`), or `deadline` (`Timeout`); takes nothing.
    pub(crate) fn wait_ready(
        &self,
        deadline: Option<Instant>,
        wait: &Backoff,
        lanes: &dyn Relet,
    ) -> Result<(), RecvError> {
        let attempt = || match self.peek() {
            Ok(false) => None,
            Ok(true) => Some(Ok(())),
            Err(e) => Some(Err(e)),
        };
        match attempt() {
            Some(r) => r,
            None => self.block_receiver(deadline, wait, lanes, attempt),
        }
    }

    /// A receiver's wait in [`Ring::block`]: on `recv_wait`, until
    /// `attempt` is done, the senders are gone (`Disconnected`) or
    /// `deadline` passed (`Timeout`). Always inlined, so that `recv` keeps
    /// the shape it had before `poll` shared this (out of line, one
    /// interleaved sitting gave 0.47 M msg/s of 64 KiB against 0.57).
    #[inline(always)]
    fn block_receiver<T>(
        &self,
        deadline: Option<Instant>,
        wait: &Backoff,
        lanes: &dyn Relet,
        attempt: impl FnMut() -> Option<Result<T, RecvError>>,
    ) -> Result<T, RecvError> {
        self.block(
            Waiter {
                cell: &self.ctrl().recv_wait,
                deadline,
                backoff: wait,
                lanes,
                peer: ROLE_SENDER,
            },
            attempt,
            || self.looks_ready(),
            || Err(RecvError::Disconnected),
        )
        .unwrap_or(Err(RecvError::Timeout))
    }

    /// Whether something seems to be at `read`: a hint for a spinning
    /// receiver, which then tries a take. It loads no `tail` (an empty
    /// `try_recv` does, for the closed bit), so a receiver spinning on an
    /// empty ring leaves the producers' line alone: each such load would
    /// take it from a producer about to claim, and cost that producer's
    /// next CAS a transfer.
    #[inline]
    pub(super) fn looks_ready(&self) -> bool {
        // Relaxed (both): a hint; the take that follows loads them again
        // with the orderings it needs.
        let c = Cursor::unpack(self.ctrl().read.load(Ordering::Relaxed));
        self.desc(c.pos).load(Ordering::Relaxed) != 0
            || self.ctrl().returned.load(Ordering::Relaxed) != 0
    }

    /// The payload of a taken record, in place.
    ///
    /// # Safety
    /// `claim` came from this ring's `try_recv`/`recv` and has not been
    /// released; the slice must be dropped before it is.
    #[cfg(not(loom))]
    #[inline]
    pub(crate) unsafe fn payload(&self, claim: &Claim) -> &[u8] {
        if claim.is_ext() {
            return self.ext_payload(claim);
        }
        match self.data_at(claim.pos) {
            // SAFETY: a taken record is in bounds (checked in `try_recv`)
            // and nobody writes it until it is released (caller's contract).
            Some((data, gran)) => unsafe { data.slice(gran, claim.len) },
            None => &[],
        }
    }

    /// Copies a taken record's payload out (loom builds: the tracked read).
    #[cfg(loom)]
    pub(crate) fn copy_payload(&self, claim: &Claim, out: &mut Vec<u8>) {
        if let (true, Some(r), Some(area)) = (claim.is_ext(), self.ext_ref(claim), &self.overflow) {
            return area.copy_out(r, out);
        }
        if let Some((data, gran)) = self.data_at(claim.pos) {
            // SAFETY: in bounds, checked in `try_recv`.
            unsafe { data.copy_out(gran, claim.len, out) }
        }
    }

    /// Copies the first `out.len()` bytes of a taken record as it lies in
    /// the ring (at most a granule) into `out`.
    pub(super) fn read_record(&self, claim: &Claim, out: &mut [u8]) {
        debug_assert!(out.len() <= GRANULE);
        if let Some((data, gran)) = self.data_at(claim.pos) {
            // SAFETY: in bounds (a record takes at least a granule, checked
            // in `try_recv`), ours until released.
            unsafe { data.read(gran, out) }
        }
    }
}
