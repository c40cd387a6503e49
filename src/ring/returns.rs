//! Leased receives: a message given back goes back to the queue.
//!
//! A leased take marks its record LEASED by its lane instead of TAKEN.
//! Acknowledging it is an ordinary release. Giving it back (its holder
//! says so, or a survivor finds the holder dead) turns it RETURNED where it
//! lies, behind `read`, in one CAS; a receiver takes it again with one CAS
//! (RETURNED → TAKEN or LEASED by its lane), so a record is held by at most
//! one receiver at a time and by exactly one once taken:
//!
//! ```text
//!   COMMITTED --take--> LEASED{lane} --ack (release)--> DONE / 0
//!                          |   ^
//!   give back, or holder dead  |  take again (CAS)
//!                          v   |
//!                        RETURNED  (behind `read`; `head` cannot pass it)
//! ```
//!
//! Receivers find RETURNED records through `Control::returned`, a hint
//! that each take loads (Relaxed, one word of its own line, rarely
//! written): when it is not zero, the take walks `[head, read)` first, so a
//! message given back is delivered before those still queued. The hint is
//! raised (Release) after the RETURNED store and lowered by the taker after
//! its CAS, never below zero; a walk that covers the whole range and finds
//! nothing lowers it by one, by a CAS from the value it acquired before the
//! walk (so no record given back since was missed). A process that dies
//! between the RETURNED store and the raise leaves a record the hint
//! misses: the watcher's scan counts it (`return_dead_leases`).
//!
//! `maxsize` counts the messages between `read` and `tail`: a message given
//! back is not counted again (it was received once), though its room in the
//! ring stays taken until it is acknowledged.

use super::*;

impl Ring {
    /// Takes a RETURNED record for `lane_idx`, marking it `held` (TAKEN or
    /// LEASED); `None` if there is none (or no lane to hold it by).
    #[cold]
    #[inline(never)]
    pub(super) fn take_returned(
        &self,
        lane_idx: u16,
        held: u64,
    ) -> Option<Result<Claim, RecvError>> {
        self.lane_opt(lane_idx)?;
        let ctrl = self.ctrl();
        // SYNC: Acquire pairs with the Release raise in `count_returned`:
        // every RETURNED store the count includes is visible to the walk.
        let n = ctrl.returned.load(Ordering::Acquire);
        if n == 0 {
            return None;
        }
        // Acquire (both): as in `recover_head`.
        let mut p = ctrl.head.load(Ordering::Acquire);
        let r = Cursor::unpack(ctrl.read.load(Ordering::Acquire));
        let mut left = pos_sub(r.pos, p).min(self.room);
        while left > 0 {
            // SYNC: Acquire pairs with the giver's Release CAS to RETURNED
            // (the payload, committed before, is visible through it).
            let w = self.desc(p).load(Ordering::Acquire);
            let d = Desc::unpack(w);
            if w == 0 || d.tag != tag_of(p, self.shift) {
                return None; // `head` moved on under us: the walk is cut short
            }
            if d.state == ST_RETURNED {
                let mine = Desc {
                    owner: lane_idx as u64,
                    state: held,
                    ..d
                };
                // AcqRel: Acquire as the load above; Release as `hold`'s
                // mark (a stale `read` reload after it). The CAS gives the
                // record to one receiver.
                let took = mutant!(
                    "return_taken_by_store",
                    self.desc(p).compare_exchange(
                        w,
                        mine.pack(),
                        Ordering::AcqRel,
                        Ordering::Acquire
                    ),
                    {
                        self.desc(p).store(mine.pack(), Ordering::Release);
                        Ok(w)
                    }
                );
                if took.is_err() {
                    continue; // look at `p` again
                }
                self.uncount_returned();
                let claim = Claim {
                    pos: p,
                    len: d.len as usize,
                    desc: w,
                };
                if d.owner == KIND_EXT {
                    return Some(self.hold_ext(claim, lane_idx));
                }
                return Some(Ok(claim));
            }
            let fp = footprint(d.len as usize).min(left);
            p = pos_add(p, fp);
            left -= fp;
        }
        // A whole walk found none: each record the count included was taken
        // by a receiver that lowers it too, or the count was too high.
        // Relaxed: a hint; the CAS fails if anything was given back since.
        let _ = ctrl
            .returned
            .compare_exchange(n, n - 1, Ordering::Relaxed, Ordering::Relaxed);
        None
    }

    /// Acknowledges a record we took with a leased receive: LEASED by our
    /// lane becomes TAKEN by it, before the release frees its run (if in
    /// the overflow area) and its room. A death during that release is
    /// then a plain holder's (DONE): giving back a record whose run is
    /// already freed would hand out a reference to freed memory (a
    /// forwarder killed inside `ack` did, 6 runs of 37 of
    /// `tests/leases.rs`'s forwarder test).
    pub(crate) fn settle(&self, claim: &Claim) {
        // Relaxed: we wrote it, nobody else changes it while we live.
        let w = self.desc(claim.pos).load(Ordering::Relaxed);
        let d = Desc::unpack(w);
        if d.state == ST_LEASED && d.tag == Desc::unpack(claim.desc).tag {
            let taken = Desc {
                state: if mutant!("ack_unsettled", true, false) {
                    ST_TAKEN
                } else {
                    ST_LEASED
                },
                ..d
            };
            // Release: as `hold`'s mark (a consumer at a stale `read` that
            // acquires it must see `read` moved). A survivor that finds us
            // dead after this store marks the record DONE.
            self.desc(claim.pos).store(taken.pack(), Ordering::Release);
        }
    }

    /// Gives a record we took with a leased receive back to the queue.
    /// `false` if it is not LEASED as we left it (a peer wrote the
    /// descriptor): then it stays as it is.
    pub(crate) fn give_back(&self, claim: &Claim) -> bool {
        let d = Desc::unpack(claim.desc);
        // Relaxed: we wrote it (our LEASED mark), and nobody else changes
        // it while we live; the CAS below checks it.
        let w = self.desc(claim.pos).load(Ordering::Relaxed);
        let now = Desc::unpack(w);
        if now.state != ST_LEASED || now.tag != d.tag || now.len != d.len {
            return false;
        }
        self.return_record(claim.pos, w)
    }

    /// Turns the record `w` (LEASED, or COMMITTED behind `read` by a dead
    /// leased taker) at `p` RETURNED, counts it and wakes a receiver;
    /// `false` if the descriptor changed meanwhile.
    pub(super) fn return_record(&self, p: u64, w: u64) -> bool {
        let d = Desc::unpack(w);
        // The record's kind, as its COMMITTED descriptor had it: a LEASED
        // one's owner is the holder's lane, whose record kind is in the
        // ring record itself (an ExtRef is exactly `EXT_REF_LEN` bytes and
        // checked when taken again).
        let kind = if d.state == ST_COMMITTED {
            d.owner
        } else {
            self.kind_of(p, d.len)
        };
        let back = Desc {
            owner: kind,
            state: if mutant!("lease_done_on_death", true, false) {
                ST_RETURNED
            } else {
                ST_DONE
            },
            ..d
        };
        // Release: the holder's reads of the payload happen-before the next
        // taker's (it acquires this descriptor). The CAS lets one giver win.
        if self
            .desc(p)
            .compare_exchange(w, back.pack(), Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        if back.state == ST_RETURNED {
            self.count_returned();
        }
        true
    }

    /// Raises the hint after a RETURNED store and wakes a sleeping receiver.
    fn count_returned(&self) {
        if mutant!("return_uncounted", false, true) {
            return;
        }
        // SYNC: Release pairs with the Acquire load in `take_returned`: the
        // RETURNED store before it is visible to a walk that sees the count.
        self.ctrl().returned.fetch_add(1, Ordering::Release);
        // Dekker with a receiver's `register` + re-check (its take loads
        // the count): the fence is in `wake_receivers`.
        self.wake_receivers();
    }

    /// Lowers the hint after taking a RETURNED record, never below zero.
    fn uncount_returned(&self) {
        let c = &self.ctrl().returned;
        // Relaxed (all): a hint; the record was won by the descriptor CAS.
        let mut n = c.load(Ordering::Relaxed);
        while n > 0 {
            match c.compare_exchange_weak(n, n - 1, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return,
                Err(now) => n = now,
            }
        }
    }

    /// Gives back every record in `[head, read)` leased by a dead receiver,
    /// and counts a RETURNED record the hint misses (a giver that died
    /// before raising it). Run by the watcher's scan; moves no `head`.
    /// Returns whether anything was given back or counted.
    pub(crate) fn return_dead_leases(&self) -> bool {
        let ctrl = self.ctrl();
        // Acquire (both): as in `recover_head`.
        let mut p = ctrl.head.load(Ordering::Acquire);
        let r = Cursor::unpack(ctrl.read.load(Ordering::Acquire));
        let mut left = pos_sub(r.pos, p).min(self.room);
        let (mut any, mut returned) = (false, false);
        while left > 0 {
            // Acquire: as in `recover_head`.
            let w = self.desc(p).load(Ordering::Acquire);
            let d = Desc::unpack(w);
            if w == 0 || d.tag != tag_of(p, self.shift) {
                break; // moved on under us, or not a record: stop
            }
            if d.state == ST_LEASED && !self.holder_alive(d.owner as usize) {
                any |= self.return_record(p, w);
            }
            returned |= d.state == ST_RETURNED;
            let fp = footprint(d.len as usize).min(left);
            p = pos_add(p, fp);
            left -= fp;
        }
        // Relaxed: the raise below is the publication.
        if returned && ctrl.returned.load(Ordering::Relaxed) == 0 {
            self.count_returned();
            any = true;
        }
        any
    }
}
