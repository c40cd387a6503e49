//! Releasing: give a taken record's space back, and move `head` on past
//! every released record, in order.

use super::*;

impl Ring {
    /// Gives a taken record's space back.
    pub(crate) fn release(&self, claim: Claim, lane: u16) {
        self.free_ext(&claim);
        death_point!("ext_freed", ());
        self.release_at(claim.pos, claim.desc, true, lane);
    }

    /// Releases the record at `pos` (committed as `w`); wakes senders if
    /// `wake` and `head` moved. Returns whether `head` moved. `lane` is the
    /// releaser's, where it records the `head` moves it makes.
    pub(super) fn release_at(&self, pos: u64, w: u64, wake: bool, lane_idx: u16) -> bool {
        let ctrl = self.ctrl();
        let d = Desc::unpack(w);
        let lane = self.lane_opt(lane_idx);
        // If `head` equals `pos` it is current: nobody but us can move it past
        // our record, which is not DONE.
        let moved = if self.load_head_to_move() == pos {
            // We hold the oldest record: reclaim it ourselves, no DONE step.
            // SYNC: Release pairs with the Acquire load of the descriptor in a
            // `try_recv` that finds it empty: our CAS of `read` past this
            // record then happens-before its re-load of `read`, so it cannot
            // report Empty from a stale `read`.
            let next = pos_add(pos, footprint(d.len as usize));
            self.note_move(lane, pos, next);
            let order = mutant!("clear_relaxed", Ordering::Release, Ordering::Relaxed);
            self.desc(pos).store(0, order);
            death_point!("zeroed", true);
            self.set_head(pos, next, lane);
            self.advance(next, lane);
            true
        } else {
            let done = Desc {
                state: ST_DONE,
                owner: 0,
                ..d
            };
            // SYNC: pairs with the Acquire load in `advance`; our payload
            // reads happen-before the reclaimer's Release store of `head`.
            let order = mutant!("done_relaxed", Ordering::Release, Ordering::Relaxed);
            self.desc(pos).store(done.pack(), order);
            // Dekker with `advance`: either we see `head == pos` below, or the
            // thread that stored it sees our DONE.
            fence(Ordering::SeqCst);
            let h = self.load_head_to_move();
            self.advance(h, lane)
        };
        if moved && wake {
            // `advance` ended with a SeqCst fence after the last `head`
            // store: Dekker with a sender's `register` + re-check.
            self.wake_if_waiting(&ctrl.send_wait);
        }
        moved
    }

    /// `head`, for a consumer that may move it on from the value it sees.
    #[inline]
    pub(super) fn load_head_to_move(&self) -> u64 {
        // SYNC: Acquire, not Relaxed, although only the value is used: our
        // `set_head` Release must carry every earlier reclaim to the
        // producers, and a Release store publishes only what happens-before
        // it. With Relaxed, a producer that acquires our `head` would not be
        // ordered after the previous mover's payload reads, and could
        // overwrite a record its consumer is still reading (loom found this;
        // mutant `head_move_relaxed`).
        let order = mutant!("head_move_relaxed", Ordering::Acquire, Ordering::Relaxed);
        self.ctrl().head.load(order)
    }

    /// Moves `head` from `old` to `new`; the caller is the one thread allowed
    /// to (it holds the record at `old`, or won its DONE descriptor). Its
    /// `lane` adopts the block `head` leaves, if any, while it frees it.
    #[inline]
    pub(super) fn set_head(&self, old: u64, new: u64, lane: Option<&Lane>) {
        if crosses(old, new, HEAD_EPOCH_SHIFT) {
            self.bump_epoch();
        }
        // SYNC: pairs with the producers' Acquire load in `load_head`: our
        // payload reads and the zeroed descriptors happen-before reuse.
        self.ctrl().head.store(new, Ordering::Release);
        if self.blocks.is_some() && crosses(old, new, self.shift) {
            self.end_block(old, self.held_word(self.lane_index(lane)));
        }
    }

    /// Moves `head` on from `cur` (a value of `head` we stored or saw) past
    /// every DONE record. Returns whether `head` moved. Each move is noted
    /// in `lane` while it is half done (descriptor zeroed, `head` not yet
    /// stored), and the note is cleared at the end.
    pub(super) fn advance(&self, mut cur: u64, lane: Option<&Lane>) -> bool {
        let mut moved = false;
        loop {
            fence(Ordering::SeqCst);
            let slot = self.desc(cur);
            // SYNC: pairs with the Release store of DONE in `release_at`.
            let w = slot.load(Ordering::Acquire);
            let d = Desc::unpack(w);
            if d.state != ST_DONE || d.tag != tag_of(cur, self.shift) {
                if let Some(l) = lane {
                    // Relaxed: a survivor only trusts a note whose `head`
                    // is still current, which it checks with a CAS.
                    l.moving.store(0, Ordering::Relaxed);
                }
                return moved;
            }
            let next = pos_add(cur, footprint(d.len as usize));
            self.note_move(lane, cur, next);
            // Release: as the zeroing store in `release_at`, for a
            // `try_recv` that finds the slot empty (the load above already
            // acquired). The CAS makes us the one thread that moves `head`
            // past this record (the tag rules out a DONE from another lap).
            let won = mutant!(
                "advance_by_store",
                slot.compare_exchange(w, 0, Ordering::Release, Ordering::Relaxed),
                {
                    slot.store(0, Ordering::Release);
                    Ok(w)
                }
            );
            if won.is_err() {
                continue; // re-reads the slot and stops (it is no longer DONE)
            }
            death_point!("zeroed", moved);
            self.set_head(cur, next, lane);
            cur = next;
            moved = true;
        }
    }
}
