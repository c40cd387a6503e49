//! Messages larger than the ring's largest record: written into a run of
//! the overflow area (see `overflow`), then sent as a small record that
//! refers to it.
//!
//! ```text
//! sender                                  receiver
//!   take a run (HELD by our lane)           take the record (as any)
//!   reserve its pages, copy the message     its kind is KIND_EXT: read the
//!   claim a ring record (waits for room,      ExtRef, check it, read the run
//!     as any send)                            in place
//!   write the ExtRef, link the run to       release: free the run (pages,
//!     the record's position                   then units), then the record
//!   commit (Release)
//! ```
//!
//! The copy happens before the claim, so a slow copy holds up nobody, and
//! `send` returns only once the record is committed: from then on the
//! message is in the segment, delivered even if the sender dies at once.
//! A send that fails (`Full`, `Closed`, a timeout) gives its run back.
//! What a death leaves (a HELD run, a LINKED run whose record was skipped
//! or whose holder died) is freed by [`Ring::sweep_overflow`].

use super::overflow::TakeError;
use super::send::{Bytes, Record};
use super::*;

/// The record of a message in the overflow area: its [`ExtRef`], and what
/// linking it needs.
#[derive(Clone, Copy)]
struct ExtRecord<'a> {
    area: &'a Overflow,
    r: ExtRef,
    held: u64,
}

impl Record for ExtRecord<'_> {
    fn len(self) -> usize {
        EXT_REF_LEN
    }

    unsafe fn write(self, ring: &Ring, rec: u64) -> u64 {
        // SAFETY: the caller's contract, as for the bytes of a message.
        unsafe { self.r.to_bytes().as_slice().write(ring, rec) };
        let linked = UnitOwner::Linked {
            ring: ring.index,
            pos: rec,
        };
        let link = mutant!("overflow_link_skipped", true, false);
        if link {
            self.area
                .link(self.r.first, self.r.len as usize, self.held, linked.pack());
        }
        KIND_EXT
    }
}

impl Ring {
    /// Sends a message larger than the ring's largest record through the
    /// overflow area: `wait` `None` is `try_send` (fail with `Full`),
    /// `Some((d, lanes))` a blocking send until `d` (as `send`).
    #[cold]
    pub(super) fn send_large(
        &self,
        cache: &SendCache,
        bytes: impl Bytes,
        wait: Option<(Option<Instant>, &dyn Relet)>,
        wake: bool,
    ) -> Result<(), SendError> {
        let len = bytes.len();
        let Some(area) = &self.overflow else {
            return Err(SendError::TooLarge {
                len,
                max: self.max_len,
            });
        };
        if len > area.max_len() {
            let max = area.max_len();
            return Err(SendError::TooLarge { len, max });
        }
        if self.is_closed() {
            // Known now: no need to take and fill a run to learn it.
            return Err(SendError::Closed);
        }
        let lane = cache.lane.get();
        let held = self.held_word(lane);
        let taken = match area.take(held, len) {
            // What the dead left may be in the way: sweep, then try again.
            Err(TakeError::AreaFull) if self.sweep_overflow(lane) > 0 => area.take(held, len),
            r => r,
        };
        let first = taken.map_err(|e| e.into_send_error(len))?;
        death_point!("run_taken", Ok(()));
        area.write(first, bytes);
        death_point!("run_written", Ok(()));
        let record = ExtRecord {
            area,
            r: ExtRef {
                first,
                len: len as u64,
            },
            held,
        };
        // A blocking send may sleep and wake with another lane of ours: the
        // run stays HELD by this one, which is ours as long as we live.
        let sent = match wait {
            None => self.try_send_record(cache, record, wake),
            Some((d, lanes)) => self.send_record(cache, record, d, lanes),
        };
        if sent.is_err() {
            area.free_run(first, len, held, true);
        }
        sent
    }

    /// The word that marks a unit HELD by lane `lane` of this ring.
    pub(super) fn held_word(&self, lane: u16) -> u64 {
        // Relaxed: our own lane's owner word, which only we change.
        let gen = self
            .lane_opt(lane)
            .map_or(0, |l| held_gen(l.owner.load(Ordering::Relaxed)));
        UnitOwner::Held {
            ring: self.index,
            lane,
            gen,
        }
        .pack()
    }

    /// We took the record `claim`, of kind `KIND_EXT`: read its
    /// reference, check it, and describe the message it refers to (the
    /// claim's `len` becomes the message's). A reference that is not one
    /// of this segment's runs is `Corrupted` (the record is released).
    #[cold]
    pub(super) fn hold_ext(&self, mut claim: Claim, lane: u16) -> Result<Claim, RecvError> {
        match (claim.len == EXT_REF_LEN, self.ext_ref(&claim)) {
            (true, Some(r)) => {
                claim.len = r.len as usize;
                Ok(claim)
            }
            _ => {
                self.release(claim, lane);
                Err(RecvError::Corrupted(
                    "a record refers to memory outside the overflow area",
                ))
            }
        }
    }

    /// The kind (0, or `KIND_EXT`) of the record of `len` bytes at `p`
    /// whose descriptor no longer says it (LEASED: its owner is the
    /// holder's lane): `KIND_EXT` exactly when it is an `ExtRef` to a run
    /// linked to this very record, which a message of the same bytes never
    /// is (a run is linked to one position of one lap). A leased record's
    /// run is freed only after its holder settled it (`settle`), so a
    /// record given back still has its run.
    pub(super) fn kind_of(&self, p: u64, len: u32) -> u64 {
        let Some(area) = &self.overflow else {
            return 0;
        };
        if len as usize != EXT_REF_LEN {
            return 0;
        }
        let record = Claim {
            pos: p,
            len: EXT_REF_LEN,
            desc: 0,
        };
        let linked = UnitOwner::Linked {
            ring: self.index,
            pos: p,
        };
        match self.ext_ref(&record) {
            Some(r) if area.linked_to(r.first, linked.pack()) => KIND_EXT,
            _ => 0,
        }
    }

    /// The reference in a held `KIND_EXT` record, if it names a run of
    /// this segment's overflow area (it is read from shared memory each
    /// time, and checked each time: a peer may have changed it).
    pub(super) fn ext_ref(&self, claim: &Claim) -> Option<ExtRef> {
        let area = self.overflow.as_ref()?;
        let mut b = [0u8; EXT_REF_LEN];
        self.read_record(claim, &mut b);
        ExtRef::from_bytes(&b).filter(|&r| area.valid(r))
    }

    /// The message of a held `KIND_EXT` record, in place; empty if its
    /// reference no longer names a run (a peer overwrote it since `hold`).
    #[cfg(not(loom))]
    #[cold]
    pub(super) fn ext_payload(&self, claim: &Claim) -> &[u8] {
        match (self.ext_ref(claim), &self.overflow) {
            // SAFETY: checked by `valid`; the run is the record's until it
            // is released (our caller's contract).
            (Some(r), Some(area)) => unsafe { area.slice(r) },
            _ => &[],
        }
    }

    /// Frees the run of a record we hold and are about to release.
    #[inline]
    pub(super) fn free_ext(&self, claim: &Claim) {
        if claim.is_ext() {
            self.free_ext_run(claim);
        }
    }

    #[cold]
    fn free_ext_run(&self, claim: &Claim) {
        if let (Some(r), Some(area)) = (self.ext_ref(claim), &self.overflow) {
            let linked = UnitOwner::Linked {
                ring: self.index,
                pos: claim.pos,
            };
            if mutant!("overflow_never_freed", true, false) {
                area.free_run(r.first, r.len as usize, linked.pack(), true);
            }
        }
    }

    /// Frees what dead processes left in the overflow area for this ring:
    /// runs HELD by a lane whose owner is dead or whose lane changed hands
    /// since, and runs LINKED to records behind `head` (see `overflow`).
    /// The caller's lane (`lane`) adopts each unit while it frees it; with
    /// no lane nothing is swept. Returns how many units it freed.
    pub(crate) fn sweep_overflow(&self, lane: u16) -> usize {
        let (Some(area), Some(mine)) = (&self.overflow, self.lane_opt(lane)) else {
            return 0;
        };
        // Relaxed: our own lane's owner word.
        let me = UnitOwner::Held {
            ring: self.index,
            lane,
            gen: held_gen(mine.owner.load(Ordering::Relaxed)),
        }
        .pack();
        // Acquire (in `load_head_to_move`): a record behind `head` was
        // released (or recovered) before it moved.
        let head = self.load_head_to_move();
        let gone = |owner: UnitOwner| match owner {
            UnitOwner::Held { ring, lane, gen } if ring == self.index => {
                let Some(l) = self.lane_opt(lane) else {
                    return false;
                };
                // Acquire: the owner word as new as the unit's HELD word
                // (see `Overflow::sweep`).
                let w = l.owner.load(Ordering::Acquire);
                lane_role(w) == 0
                    || held_gen(w) != gen
                    || mutant!(
                        "sweep_ignores_liveness",
                        mutant!(
                            "sweep_waits_for_reap",
                            !self.owner_alive(lane as usize, w),
                            false
                        ),
                        true
                    )
            }
            UnitOwner::Linked { ring, pos } if ring == self.index => mutant!(
                "sweep_ignores_head",
                mutant!("sweep_keeps_linked", lanes::pos_behind(pos, head), false),
                true
            ),
            _ => false,
        };
        area.sweep(gone, me)
    }

    /// Units of the overflow area in use (a snapshot; 0 without one).
    pub(crate) fn overflow_used(&self) -> u64 {
        self.overflow.as_ref().map_or(0, |a| a.census().0)
    }

    /// Units of the overflow area free with their pages kept (a snapshot).
    #[cfg(loom)]
    pub(crate) fn overflow_warm(&self) -> u64 {
        self.overflow.as_ref().map_or(0, |a| a.census().1)
    }

    /// The largest message: the overflow area's, or the ring's own.
    pub(crate) fn max_message(&self) -> usize {
        self.overflow
            .as_ref()
            .map_or(self.max_len, |a| a.max_len().max(self.max_len))
    }
}
