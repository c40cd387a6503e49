//! Receiving: take the record at `read`, or wait for one.

use super::*;

impl Ring {
    /// Takes the next committed record, or fails at once.
    #[inline]
    pub(crate) fn try_recv(&self, lane: u16) -> Result<Claim, RecvError> {
        self.try_recv_inner(true, lane)
    }

    /// `try_recv` without waking a sender waiting for `maxsize`: the caller
    /// owes a [`Ring::wake_senders`] (see [`Ring::take_ready`]).
    #[inline]
    pub(crate) fn try_recv_quiet(&self, lane: u16) -> Result<Claim, RecvError> {
        self.try_recv_inner(false, lane)
    }

    pub(super) fn try_recv_inner(&self, wake: bool, lane_idx: u16) -> Result<Claim, RecvError> {
        let ctrl = self.ctrl();
        let lane = self.lane_opt(lane_idx);
        // Whether our lane notes a take; an empty poll then writes nothing.
        let mut noted = None;
        // Relaxed: `read` is a ticket; the payload is published by the
        // descriptor, loaded with Acquire below.
        let mut r = ctrl.read.load(Ordering::Relaxed);
        loop {
            let c = Cursor::unpack(r);
            // SYNC: pairs with the producer's Release store of the descriptor
            // (commit): its payload is visible to us if we see COMMITTED.
            let w = self.desc(c.pos).load(Ordering::Acquire);
            let d = Desc::unpack(w);
            let ready = w != 0
                && d.tag == tag_of(c.pos, self.shift)
                && (d.state == ST_COMMITTED || d.state == ST_PADDING || d.state == ST_SKIP);
            if ready {
                let is_msg = d.state == ST_COMMITTED;
                let counted = is_msg || d.state == ST_SKIP;
                let fp = footprint(d.len as usize);
                // Untrusted: a peer may have written anything here.
                if (counted && d.len as usize > self.max_len)
                    || (c.pos & self.mask) + fp > self.granules
                {
                    self.clear_intent(noted);
                    return Err(RecvError::Corrupted("record length runs past the ring"));
                }
                let next = Cursor {
                    seq: if counted {
                        (c.seq + 1) & SEQ_MASK
                    } else {
                        c.seq
                    },
                    pos: pos_add(c.pos, fp),
                    closed: false,
                };
                if let Some(l) = lane {
                    // Relaxed: published by the Release CAS below.
                    l.intent.store(r | INTENT_SET, Ordering::Relaxed);
                    noted = Some(l);
                }
                // Release on success: a survivor that acquires this `read`
                // (`recover_head`) sees our intent. Otherwise uniqueness of
                // the take comes from the CAS itself; the data was acquired
                // through the descriptor.
                let took = mutant!(
                    "take_by_store",
                    ctrl.read.compare_exchange_weak(
                        r,
                        next.pack(),
                        Ordering::Release,
                        Ordering::Relaxed,
                    ),
                    {
                        ctrl.read.store(next.pack(), Ordering::Relaxed);
                        Ok(r)
                    }
                );
                match took {
                    Ok(_) if is_msg => {
                        death_point!("taken", Err(RecvError::Empty));
                        if let Some(l) = lane {
                            let held = Desc {
                                owner: lane_idx as u64,
                                state: ST_TAKEN,
                                ..d
                            };
                            // SYNC: Release, though survivors read the owner
                            // only after acquiring our cleared intent: this
                            // store replaces a taken record's descriptor, so
                            // another consumer that loads it (Acquire) at a
                            // stale `read` must then see our CAS of `read`
                            // when it re-loads it, or it reports a spurious
                            // Empty (the reasoning at "Nothing ready at
                            // `read`" below; mutant `taken_relaxed`).
                            let order =
                                mutant!("taken_relaxed", Ordering::Release, Ordering::Relaxed);
                            if mutant!("take_unmarked", true, false) {
                                self.desc(c.pos).store(held.pack(), order);
                            }
                            // SYNC: Release pairs with a survivor's Acquire
                            // load of the intent: seeing it cleared, it sees
                            // TAKEN (and the lane that holds it).
                            l.intent.store(0, Ordering::Release);
                        }
                        if crosses(c.seq, next.seq, SEQ_EPOCH_SHIFT) {
                            self.bump_epoch();
                        }
                        if wake
                            && self.maxsize != UNBOUNDED
                            && mutant!("no_maxsize_wake", true, false)
                        {
                            // Dekker with a sender waiting for `maxsize`.
                            self.wake_senders();
                        }
                        return Ok(Claim {
                            pos: c.pos,
                            len: d.len as usize,
                            desc: w,
                        });
                    }
                    Ok(_) => {
                        // Padding or a dead claim: nothing to hand out,
                        // release it at once.
                        if counted && crosses(c.seq, next.seq, SEQ_EPOCH_SHIFT) {
                            self.bump_epoch();
                        }
                        death_point!("taken", Err(RecvError::Empty));
                        self.release_at(c.pos, w, true, lane_idx);
                        self.clear_intent(noted.take());
                        r = next.pack();
                    }
                    Err(actual) => r = actual,
                }
                continue;
            }
            // Nothing ready at `read` -- unless another consumer moved it and
            // what we loaded was written after its take. Relaxed is enough:
            // every store that replaces a taken record's descriptor is a
            // Release that follows the CAS of `read` past it, and we loaded
            // the descriptor with Acquire, so that CAS is visible here.
            let again = ctrl.read.load(Ordering::Relaxed);
            if again != r {
                r = again;
                continue;
            }
            // Relaxed: we only read the closed bit and the position; if no
            // record was claimed at or after `read` when `tail` was closed,
            // none ever will be.
            let t = Cursor::unpack(ctrl.tail.load(Ordering::Relaxed));
            if mutant!("try_recv_waits_for_commit", false, t.pos != c.pos) {
                // The break: wait for a claimed record's commit (as a bounded
                // queue with per-slot stamps may), instead of reporting Empty.
                spin_hint();
                r = ctrl.read.load(Ordering::Relaxed);
                continue;
            }
            let closed_and_drained = mutant!("recv_closed_early", t.pos == c.pos, true);
            self.clear_intent(noted);
            return Err(if t.closed && closed_and_drained {
                RecvError::Closed
            } else {
                RecvError::Empty
            });
        }
    }

    /// Blocking receive: wait as `wait` says, then sleep until a commit,
    /// `close`, or `deadline`.
    pub(crate) fn recv(
        &self,
        deadline: Option<Instant>,
        wait: &Backoff,
        lane: u16,
    ) -> Result<Claim, RecvError> {
        let attempt = || match self.try_recv(lane) {
            Err(RecvError::Empty) => None,
            r => Some(r),
        };
        match self.try_recv(lane) {
            Err(RecvError::Empty) => self
                .block(
                    &self.ctrl().recv_wait,
                    deadline,
                    wait,
                    lane,
                    ROLE_SENDER,
                    attempt,
                    || self.looks_ready(),
                    || Err(RecvError::Disconnected),
                )
                .unwrap_or(Err(RecvError::Timeout)),
            r => r,
        }
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
    }

    /// The payload of a taken record, in place.
    ///
    /// # Safety
    /// `claim` came from this ring's `try_recv`/`recv` and has not been
    /// released; the slice must be dropped before it is.
    #[cfg(not(loom))]
    #[inline]
    pub(crate) unsafe fn payload(&self, claim: &Claim) -> &[u8] {
        // SAFETY: a taken record is in bounds (checked in `try_recv`) and
        // nobody writes it until it is released (caller's contract).
        unsafe { self.data.slice(claim.pos & self.mask, claim.len) }
    }

    /// Copies a taken record's payload out (loom builds: the tracked read).
    #[cfg(loom)]
    pub(crate) fn copy_payload(&self, claim: &Claim, out: &mut Vec<u8>) {
        // SAFETY: in bounds, checked in `try_recv`.
        unsafe { self.data.copy_out(claim.pos & self.mask, claim.len, out) }
    }
}
