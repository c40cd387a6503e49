//! The overflow area: runs of units for messages too large for a ring
//! (see `layout::overflow` for the encodings).
//!
//! Every unit's state word names its owner, and ownership moves only by CAS
//! on that word, so each unit can be judged alone:
//!
//! ```text
//!  FREE --take (CAS, Acquire)--> HELD{ring, lane, gen}   a sender writes it
//!  HELD --link (before commit)--> LINKED{ring, pos}      the record at pos owns it
//!  LINKED --free (receiver, at release; pages first, then CAS, Release)--> FREE
//!  HELD --give back (the send failed)--> FREE
//! ```
//!
//! A run is freed by whoever ends the record that owns it, while it still
//! owns it, pages first: a hole is punched only in units nobody else can
//! have taken. What a dead process leaves is found by a sweep (see
//! [`Ring::sweep_overflow`]): a unit HELD by a lane whose owner is dead, or
//! whose lane changed hands since (positive evidence that the send it was
//! for is over), and a unit LINKED to a record that `head` has passed (the
//! record's receiver died before freeing it, or its sender died between
//! link and commit and the claim was skipped). The sweeper first adopts
//! the unit (CAS to HELD by its own lane), then punches, then frees, so
//! that two sweepers never punch a unit one of them already handed out.
//! Nothing here makes a system call; the pages come and go through
//! [`Payload`].

use super::*;
use crate::sync::NoMemory;

/// A view of a segment's overflow area (each ring of the segment has one).
pub(crate) struct Overflow {
    ctl: NonNull<OverflowCtl>,
    states: NonNull<AtomicU64>,
    data: Payload,
    units: u64,
    /// Granules per unit (`UNIT / GRANULE` in a segment; small under loom).
    unit_granules: u64,
}

// SAFETY: pointers into memory kept mapped by the ring's owner; every
// access is atomic or to a unit its caller owns by the protocol above.
unsafe impl Send for Overflow {}
// SAFETY: as above.
unsafe impl Sync for Overflow {}

/// Why no run could be taken.
#[derive(Debug)]
pub(crate) enum TakeError {
    /// Larger than the whole area, ever.
    TooLarge { max: usize },
    /// No run of free units that long now.
    AreaFull,
    /// No memory for its pages now.
    NoMemory,
}

impl Overflow {
    /// The area at `base` laid out as `og` says.
    ///
    /// # Safety
    /// `base` points to `og.len` bytes that stay mapped, readable and
    /// writable, for as long as the view is used, aligned to a page.
    #[cfg(not(loom))]
    pub(crate) unsafe fn from_raw(base: NonNull<u8>, og: &OverflowGeometry) -> Self {
        // SAFETY: the control words, states and units lie inside the area at
        // their aligned offsets (caller's contract, `OverflowGeometry`).
        unsafe {
            let p = base.as_ptr();
            Overflow {
                ctl: NonNull::new_unchecked(p.cast()),
                states: NonNull::new_unchecked(p.add(OVERFLOW_CTL_LEN).cast()),
                data: Payload::with_pages(NonNull::new_unchecked(p.add(og.data_off))),
                units: og.units,
                unit_granules: (UNIT / GRANULE) as u64,
            }
        }
    }

    /// A view over process-local memory (tests and loom models).
    #[cfg(any(test, loom))]
    pub(crate) fn from_heap(heap: &HeapOverflow) -> Self {
        Overflow {
            ctl: NonNull::from(&*heap.ctl),
            states: NonNull::new(heap.states.as_ptr() as *mut AtomicU64).unwrap(),
            data: heap.payload(),
            units: heap.states.len() as u64,
            unit_granules: heap.unit_granules,
        }
    }

    fn state(&self, i: u64) -> &AtomicU64 {
        debug_assert!(i < self.units);
        // SAFETY: callers pass `i < units`, the array's length.
        unsafe { &*self.states.as_ptr().add(i as usize) }
    }

    fn unit_bytes(&self) -> usize {
        (self.unit_granules as usize) * GRANULE
    }

    /// Units a message of `len` bytes takes (at least one).
    fn units_for(&self, len: usize) -> u64 {
        (len.max(1) as u64).div_ceil(self.unit_bytes() as u64)
    }

    /// The largest message the area could ever hold.
    pub(crate) fn max_len(&self) -> usize {
        (self.units as usize).saturating_mul(self.unit_bytes())
    }

    /// Whether `r` names a run of this area (it came from shared memory).
    pub(crate) fn valid(&self, r: ExtRef) -> bool {
        let n = (r.len.max(1)).div_ceil(self.unit_bytes() as u64);
        r.len <= self.max_len() as u64 && r.first < self.units && n <= self.units - r.first
    }

    /// Takes the first run of free units that holds `len` bytes, marking
    /// each `held`, and gets its pages.
    pub(crate) fn take(&self, held: u64, len: usize) -> Result<u64, TakeError> {
        let n = self.units_for(len);
        if n > self.units {
            return Err(TakeError::TooLarge {
                max: self.max_len(),
            });
        }
        if !self.data.may_reserve(len) {
            return Err(TakeError::NoMemory);
        }
        let mut i = 0;
        let first = 'search: loop {
            if n > self.units - i {
                return Err(TakeError::AreaFull);
            }
            for j in i..i + n {
                // Relaxed: a look before the CAS, which orders.
                let free = self.state(j).load(Ordering::Relaxed) == UNIT_FREE;
                // SYNC (on success): Acquire pairs with the Release CAS to
                // FREE in `free_unit`: the last owner's reads of the unit
                // (and its punching) happen-before our writes. Release
                // pairs with the Acquire load in `sweep`: a sweeper that
                // sees our HELD word sees our lane's owner word as taken
                // (else it could read the lane as free and judge us gone).
                let order = mutant!("overflow_take_relaxed", Ordering::AcqRel, Ordering::Relaxed);
                if !free
                    || self
                        .state(j)
                        .compare_exchange(UNIT_FREE, held, order, Ordering::Relaxed)
                        .is_err()
                {
                    for k in i..j {
                        // Relaxed: we wrote nothing to these units.
                        self.state(k).store(UNIT_FREE, Ordering::Relaxed);
                    }
                    i = j + 1;
                    continue 'search;
                }
            }
            break i;
        };
        // Relaxed: a bound for scans; a scan that misses a unit taken since
        // sees it at its next pass.
        self.ctl().high.fetch_max(first + n, Ordering::Relaxed);
        if let Err(NoMemory) = self.data.reserve(self.gran(first), len) {
            self.free_run(first, len, held, false);
            return Err(TakeError::NoMemory);
        }
        Ok(first)
    }

    fn ctl(&self) -> &OverflowCtl {
        // SAFETY: valid for the view's lifetime (constructor contract).
        unsafe { self.ctl.as_ref() }
    }

    fn gran(&self, unit: u64) -> u64 {
        unit * self.unit_granules
    }

    /// Writes `bytes` into the run at `first` (ours: HELD).
    pub(crate) fn write(&self, first: u64, bytes: impl super::send::Bytes) {
        // SAFETY: the run holds `bytes.len()` bytes (taken for them) and is
        // ours alone while HELD.
        unsafe { bytes.write_to(&self.data, self.gran(first)) }
    }

    /// Hands the run at `first` from its sender (`held`) to the record it
    /// is about to commit (`linked`).
    pub(crate) fn link(&self, first: u64, len: usize, held: u64, linked: u64) {
        for i in first..first + self.units_for(len) {
            // Relaxed: published by the commit (a Release store) that
            // follows; a sweeper judges LINKED by `head`, which cannot pass
            // the record before that commit.
            let _ =
                self.state(i)
                    .compare_exchange(held, linked, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    /// The run of a record we hold (checked by [`Overflow::valid`]).
    ///
    /// # Safety
    /// The run is owned by a record the caller holds; the slice must be
    /// dropped before the run is freed.
    #[cfg(not(loom))]
    pub(crate) unsafe fn slice(&self, r: ExtRef) -> &[u8] {
        // SAFETY: in bounds (`valid`), and nobody writes a LINKED run.
        unsafe { self.data.slice(self.gran(r.first), r.len as usize) }
    }

    /// Maps a large run's pages into this process before it is read.
    pub(crate) fn prefetch(&self, r: ExtRef) {
        self.data.prefetch(self.gran(r.first), r.len as usize);
    }

    /// Copies the run out (loom builds: the tracked read).
    #[cfg(loom)]
    pub(crate) fn copy_out(&self, r: ExtRef, out: &mut Vec<u8>) {
        // SAFETY: in bounds (`valid`), and nobody writes a LINKED run.
        unsafe { self.data.copy_out(self.gran(r.first), r.len as usize, out) }
    }

    /// Frees the run at `first` of `len` bytes, owned as `owner`: its pages
    /// first (only units still `owner`'s), then each unit. `pages` false
    /// keeps them (nothing was reserved).
    pub(crate) fn free_run(&self, first: u64, len: usize, owner: u64, pages: bool) {
        let n = self.units_for(len);
        // Relaxed: our own units; a unit another owner has is left alone.
        let ours = |i: u64| self.state(i).load(Ordering::Relaxed) == owner;
        if pages && (first..first + n).all(ours) {
            self.data.unreserve(self.gran(first), len);
        }
        for i in first..first + n {
            self.free_unit(i, owner);
        }
    }

    /// Marks unit `i` FREE if `owner` has it.
    fn free_unit(&self, i: u64, owner: u64) -> bool {
        // SYNC: Release pairs with the Acquire CAS in `take`: our reads of
        // the unit happen-before the next owner's writes.
        let order = mutant!(
            "overflow_free_relaxed",
            Ordering::Release,
            Ordering::Relaxed
        );
        self.state(i)
            .compare_exchange(owner, UNIT_FREE, order, Ordering::Relaxed)
            .is_ok()
    }

    /// Frees every unit of ring `ring` whose owner `gone` says is gone
    /// (see the module docs), adopting each first as `me` (a HELD word of
    /// the sweeper's own lane). Returns how many it freed.
    pub(crate) fn sweep(&self, gone: impl Fn(UnitOwner) -> bool, me: u64) -> usize {
        // Relaxed: see `take`.
        let high = self.ctl().high.load(Ordering::Relaxed).min(self.units);
        let mut freed = 0;
        for i in 0..high {
            // SYNC: Acquire pairs with the AcqRel CAS in `take`: a HELD
            // word carries its lane's generation, and its taker stored
            // the lane's owner word before, which the judge then reads at
            // least as new.
            let w = self.state(i).load(Ordering::Acquire);
            let owner = UnitOwner::unpack(w);
            if matches!(owner, UnitOwner::Free | UnitOwner::Unknown) || !gone(owner) {
                continue;
            }
            // Acquire (on success): as the CAS in `take`: whoever had the
            // unit is done with it.
            if self
                .state(i)
                .compare_exchange(w, me, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                self.data.unreserve(self.gran(i), self.unit_bytes());
                self.free_unit(i, me);
                freed += 1;
            }
        }
        freed
    }

    /// Units not free (a snapshot, for diagnostics and tests).
    pub(crate) fn used(&self) -> u64 {
        // Relaxed (all): a snapshot.
        let high = self.ctl().high.load(Ordering::Relaxed).min(self.units);
        (0..high)
            .filter(|&i| self.state(i).load(Ordering::Relaxed) != UNIT_FREE)
            .count() as u64
    }
}

/// An overflow area in process-local memory (tests and loom models).
#[cfg(any(test, loom))]
pub(crate) struct HeapOverflow {
    ctl: Box<OverflowCtl>,
    states: Box<[AtomicU64]>,
    _data: HeapPayload,
    payload: Payload,
    unit_granules: u64,
}

#[cfg(any(test, loom))]
impl HeapOverflow {
    /// `units` free units of `unit_granules` granules each.
    pub(crate) fn new(units: u64, unit_granules: u64) -> Self {
        let (data, payload) = HeapPayload::new(units * unit_granules);
        HeapOverflow {
            ctl: Box::new(OverflowCtl {
                high: AtomicU64::new(0),
            }),
            states: (0..units).map(|_| AtomicU64::new(UNIT_FREE)).collect(),
            _data: data,
            payload,
            unit_granules,
        }
    }

    /// A view of its units (kept alive by `data`).
    fn payload(&self) -> Payload {
        self.payload.clone_view()
    }
}
