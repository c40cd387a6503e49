//! The overflow area: runs of units for messages too large for a ring
//! (see `layout::overflow` for the encodings).
//!
//! Every unit's state word names its owner, and ownership moves only by CAS
//! on that word, so each unit can be judged alone:
//!
//! ```text
//!  FREE/WARM --take (CAS, AcqRel)--> HELD{ring, lane, gen}   a sender writes it
//!  HELD --link (before commit)--> LINKED{ring, pos}           the record at pos owns it
//!  LINKED --free (receiver, at release; CAS, Release)--> WARM, or pages
//!                                                        given back, then FREE
//!  HELD --give back (the send failed)--> as free
//!  WARM --trim (adopt, punch)--> FREE
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
use crate::sync::{now_ms, NoMemory, Pages};

/// A WARM unit unused this long (ms) is given back by the next sweep.
pub(crate) const WARM_MS: u64 = 100;

/// A view of a segment's overflow area (each ring of the segment has one).
pub(crate) struct Overflow {
    ctl: NonNull<OverflowCtl>,
    states: NonNull<AtomicU64>,
    data: Payload,
    /// Whether its pages are given and taken back (a segment's) or not
    /// (heap memory in unit tests).
    pages: Pages,
    units: u64,
    /// Granules per unit (`UNIT / GRANULE` in a segment; small under loom).
    unit_granules: u64,
    /// The block tables, one per ring, of `table_len` entries each
    /// (0: the rings are bounded).
    tables: NonNull<AtomicU64>,
    table_len: u64,
    /// Under loom, blocks' descriptors live here (one per granule of the
    /// area) rather than in the units, whose bytes are tracked cells.
    #[cfg(loom)]
    block_descs: NonNull<AtomicU64>,
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

impl TakeError {
    /// The error a send of `len` bytes reports for it.
    pub(crate) fn into_send_error(self, len: usize) -> SendError {
        match self {
            TakeError::TooLarge { max } => SendError::TooLarge { len, max },
            TakeError::AreaFull => SendError::OutOfMemory {
                len,
                area_full: true,
            },
            TakeError::NoMemory => SendError::OutOfMemory {
                len,
                area_full: false,
            },
        }
    }
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
                data: Payload::new(NonNull::new_unchecked(p.add(og.data_off))),
                pages: Pages::Shared,
                units: og.units,
                unit_granules: (UNIT / GRANULE) as u64,
                tables: NonNull::new_unchecked(p.add(og.tables_off).cast()),
                table_len: og.table_len,
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
            pages: if cfg!(loom) {
                Pages::Shared
            } else {
                Pages::Heap
            },
            units: heap.states.len() as u64,
            unit_granules: heap.unit_granules,
            tables: NonNull::new(heap.tables.as_ptr() as *mut AtomicU64).unwrap(),
            table_len: heap.tables.len() as u64 / 2,
            #[cfg(loom)]
            block_descs: NonNull::new(heap.block_descs.as_ptr() as *mut AtomicU64).unwrap(),
        }
    }

    /// Units in the area.
    pub(crate) fn units(&self) -> u64 {
        self.units
    }

    /// Ring `ring`'s block table and its length (a power of two; 0: none).
    pub(crate) fn table(&self, ring: u16) -> (NonNull<AtomicU64>, u64) {
        // SAFETY: ring `ring` (< 2) has its table at this offset from the
        // first (`OverflowGeometry`); with no tables the pointer is never
        // read (length 0).
        let t = unsafe { self.tables.add(ring as usize * self.table_len as usize) };
        (t, self.table_len)
    }

    /// Units a block of `granules` granules takes.
    pub(crate) fn block_units(&self, granules: u64) -> u64 {
        (block_bytes(granules) as u64).div_ceil(self.unit_bytes() as u64)
    }

    /// The payload granule where granule `o` of the block at unit `first`
    /// lies.
    #[inline]
    pub(crate) fn block_gran(&self, first: u64, o: u64) -> u64 {
        self.gran(first) + o
    }

    /// The units' payload memory.
    #[inline]
    pub(crate) fn data(&self) -> &Payload {
        &self.data
    }

    /// The descriptor of granule `o` of the block of `granules` granules
    /// at unit `first` (which the caller checked lies inside the area).
    #[inline]
    pub(crate) fn block_desc(&self, first: u64, granules: u64, o: u64) -> &AtomicU64 {
        debug_assert!(o < granules && first + self.block_units(granules) <= self.units);
        #[cfg(not(loom))]
        {
            // SAFETY: the block's descriptors follow its `granules` granules
            // of data inside its run, which lies inside the area (caller's
            // check); 8-byte aligned (a unit is page aligned, data a
            // multiple of 64 bytes); shared memory is only ever accessed
            // atomically there.
            unsafe { self.data.atomic_u64(self.gran(first) + granules, o) }
        }
        #[cfg(loom)]
        {
            let _ = granules;
            // SAFETY: one word per granule of the area; the block's
            // granules lie inside it.
            unsafe {
                &*self
                    .block_descs
                    .as_ptr()
                    .add((self.gran(first) + o) as usize)
            }
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
        if !self.data.may_reserve(self.pages, len) {
            return Err(TakeError::NoMemory);
        }
        // A run that is all WARM first (its pages are there: no page to
        // fault in and zero, which costs more than the copy), then any.
        let Some((first, all_warm)) = self
            .find(n, held, true)
            .or_else(|| self.find(n, held, false))
        else {
            return Err(TakeError::AreaFull);
        };
        // Relaxed: a bound for scans; a scan that misses a unit taken since
        // sees it at its next pass.
        self.ctl().high.fetch_max(first + n, Ordering::Relaxed);
        // A WARM unit's pages are there (kept by `free_run`): nothing to
        // reserve, and no page to zero.
        if !all_warm {
            if let Err(NoMemory) = self.data.reserve(self.pages, self.gran(first), len) {
                self.free_run(first, len, held, false);
                return Err(TakeError::NoMemory);
            }
        }
        Ok(first)
    }

    /// Takes the first run of `n` units free (`warm`: WARM) for `held`:
    /// its first unit and whether every unit came WARM.
    fn find(&self, n: u64, held: u64, warm: bool) -> Option<(u64, bool)> {
        let mut i = 0;
        loop {
            if n > self.units - i {
                return None;
            }
            // Relaxed: a bound for the search; no WARM unit lies past the
            // highest ever taken.
            if warm && i >= self.ctl().high.load(Ordering::Relaxed) {
                return None;
            }
            match self.take_at(i, n, held, warm) {
                Ok(all_warm) => return Some((i, all_warm)),
                Err(busy) => i = busy + 1,
            }
        }
    }

    /// Takes units `first..first + n` for `held`, all or none: whether
    /// every one came WARM (its pages there), or the first that was not
    /// free (or not WARM, if `warm`) (those taken before it given back,
    /// without pages, so that a WARM unit always has them).
    fn take_at(&self, first: u64, n: u64, held: u64, warm: bool) -> Result<bool, u64> {
        let mut all_warm = true;
        for j in first..first + n {
            // Relaxed: a look before the CAS, which orders.
            let w = self.state(j).load(Ordering::Relaxed);
            if warm && !is_warm(w) {
                if j > first {
                    // Back to WARM, pages kept: they were all WARM.
                    let now = unit_warm(now_ms().unwrap_or(0));
                    for k in first..j {
                        self.free_unit(k, held, now);
                    }
                }
                return Err(j);
            }
            // SYNC (on success): Acquire pairs with the Release CAS to FREE
            // or WARM in `free_unit`: the last owner's reads of the unit
            // (and its punching) happen-before our writes. Release pairs
            // with the Acquire load in `sweep`: a sweeper that sees our
            // HELD word sees our lane's owner word as taken (else it could
            // read the lane as free and judge us gone).
            let order = mutant!("overflow_take_relaxed", Ordering::AcqRel, Ordering::Relaxed);
            if !(w == UNIT_FREE || is_warm(w))
                || self
                    .state(j)
                    .compare_exchange(w, held, order, Ordering::Relaxed)
                    .is_err()
            {
                if j > first {
                    let bytes = (j - first) as usize * self.unit_bytes();
                    self.data.unreserve(self.pages, self.gran(first), bytes);
                }
                for k in first..j {
                    self.free_unit(k, held, UNIT_FREE);
                }
                return Err(j);
            }
            all_warm &= is_warm(w);
        }
        Ok(all_warm)
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

    /// Takes back the units of the run at `first` of `len` bytes that are
    /// still `from`, as `to` (a HELD word of the caller's lane), so that
    /// no sweep judges them while the caller frees them.
    pub(crate) fn adopt(&self, first: u64, len: usize, from: u64, to: u64) {
        for i in first..first + self.units_for(len) {
            // Acquire (on success): as the CAS in `take`: whoever used the
            // unit is done with it (the block's readers released their
            // records before `head` passed it).
            let _ = self
                .state(i)
                .compare_exchange(from, to, Ordering::Acquire, Ordering::Relaxed);
        }
    }

    /// Whether the unit at `first` (a checked `ExtRef`'s) is owned as
    /// `linked`, the record that refers to it.
    pub(crate) fn linked_to(&self, first: u64, linked: u64) -> bool {
        // Acquire: as new as the record's descriptor we acquired (the link
        // was made before its commit).
        first < self.units && self.state(first).load(Ordering::Acquire) == linked
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

    /// Copies the run out (loom builds: the tracked read).
    #[cfg(loom)]
    pub(crate) fn copy_out(&self, r: ExtRef, out: &mut Vec<u8>) {
        // SAFETY: in bounds (`valid`), and nobody writes a LINKED run.
        unsafe { self.data.copy_out(self.gran(r.first), r.len as usize, out) }
    }

    /// Frees the run at `first` of `len` bytes, owned as `owner`. Its
    /// pages are kept (WARM) while the warm units would not outnumber the
    /// units others use, or this run's own (so one run always may), so
    /// that a stream of large messages reuses pages already there: giving
    /// pages back and taking them again costs more than the copy, about
    /// 1 µs a page. Otherwise they are given back, with any warm ones
    /// beyond that number, so that memory follows what is queued; what
    /// stays warm is given back by the next sweep once it has been unused
    /// for [`WARM_MS`]. `pages` false: nothing was reserved (the run is
    /// freed without its pages).
    pub(crate) fn free_run(&self, first: u64, len: usize, owner: u64, pages: bool) {
        self.free_run_keeping(first, len, owner, pages, 1);
    }

    /// As [`Overflow::free_run`], keeping the pages of up to `keep` runs of
    /// this length WARM however few units others use: an unbounded ring
    /// keeps two blocks, so that a backlog swinging around a block's worth
    /// reuses pages rather than faulting in fresh ones each time.
    pub(crate) fn free_run_keeping(
        &self,
        first: u64,
        len: usize,
        owner: u64,
        pages: bool,
        keep: u64,
    ) {
        let n = self.units_for(len);
        // Relaxed: our own units; a unit another owner has is left alone.
        let ours = (first..first + n).all(|i| self.state(i).load(Ordering::Relaxed) == owner);
        if !(ours && pages) {
            for i in first..first + n {
                self.free_unit(i, owner, UNIT_FREE);
            }
            return;
        }
        let (in_use, warm) = self.census();
        let budget = in_use.saturating_sub(n).max(keep * n);
        if warm + n <= budget {
            let warm_word = unit_warm(now_ms().unwrap_or(0));
            for i in first..first + n {
                self.free_unit(i, owner, warm_word);
            }
            return;
        }
        self.data.unreserve(self.pages, self.gran(first), len);
        for i in first..first + n {
            self.free_unit(i, owner, UNIT_FREE);
        }
        if warm > budget {
            self.trim(|_| true, warm - budget, owner);
        }
    }

    /// Units in use (HELD or LINKED) and WARM, a snapshot.
    pub(crate) fn census(&self) -> (u64, u64) {
        // Relaxed (all): counts for a memory policy, not for ownership.
        let high = self.ctl().high.load(Ordering::Relaxed).min(self.units);
        let (mut in_use, mut warm) = (0, 0);
        for i in 0..high {
            match self.state(i).load(Ordering::Relaxed) {
                UNIT_FREE => {}
                w if is_warm(w) => warm += 1,
                _ => in_use += 1,
            }
        }
        (in_use, warm)
    }

    /// Gives back the pages of up to `k` WARM units that `old` picks (by
    /// their word), adopting each as `me` while it does (so that nobody
    /// takes it half punched). Returns how many.
    fn trim(&self, old: impl Fn(u64) -> bool, k: u64, me: u64) -> u64 {
        // Relaxed: as in `census`.
        let high = self.ctl().high.load(Ordering::Relaxed).min(self.units);
        let mut done = 0;
        for i in 0..high {
            if done == k {
                break;
            }
            // Relaxed: a look before the CAS, which orders.
            let w = self.state(i).load(Ordering::Relaxed);
            if is_warm(w) && old(w) && self.reclaim(i, w, me) {
                done += 1;
            }
        }
        done
    }

    /// Marks unit `i` free (`to`: FREE or WARM) if `owner` has it.
    fn free_unit(&self, i: u64, owner: u64, to: u64) -> bool {
        // SYNC: Release pairs with the Acquire CAS in `take`: our reads of
        // the unit happen-before the next owner's writes.
        let order = mutant!(
            "overflow_free_relaxed",
            Ordering::Release,
            Ordering::Relaxed
        );
        self.state(i)
            .compare_exchange(owner, to, order, Ordering::Relaxed)
            .is_ok()
    }

    /// Frees every unit of ring `ring` whose owner `gone` says is gone
    /// (see the module docs), adopting each first as `me` (a HELD word of
    /// the sweeper's own lane), and gives back the pages of units WARM for
    /// [`WARM_MS`] or more (all of them without a clock). Returns how many
    /// units it freed.
    pub(crate) fn sweep(&self, gone: impl Fn(UnitOwner) -> bool, me: u64) -> usize {
        let now = now_ms();
        let stale = |w: u64| {
            now.map_or(true, |now| {
                (now.wrapping_sub(warm_since(w)) & ((1 << 48) - 1)) >= WARM_MS
            })
        };
        if mutant!("sweep_keeps_warm", true, false) {
            self.trim(stale, u64::MAX, me);
        }
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
            if self.reclaim(i, w, me) {
                freed += 1;
            }
        }
        freed
    }

    /// Takes unit `i` from `w` (WARM, or an owner that is gone) as `me`,
    /// gives its pages back and frees it; `false` if it was no longer `w`.
    /// Adopting it first means nobody can take it while it is punched.
    fn reclaim(&self, i: u64, w: u64, me: u64) -> bool {
        // Acquire (on success): as the CAS in `take`: whoever had the unit
        // is done with it.
        let won = self
            .state(i)
            .compare_exchange(w, me, Ordering::Acquire, Ordering::Relaxed)
            .is_ok();
        if won {
            self.data
                .unreserve(self.pages, self.gran(i), self.unit_bytes());
            self.free_unit(i, me, UNIT_FREE);
        }
        won
    }
}

/// An overflow area in process-local memory (tests and loom models).
#[cfg(any(test, loom))]
pub(crate) struct HeapOverflow {
    ctl: Box<OverflowCtl>,
    states: Box<[AtomicU64]>,
    tables: Box<[AtomicU64]>,
    #[cfg(loom)]
    block_descs: Box<[AtomicU64]>,
    _data: HeapPayload,
    payload: Payload,
    unit_granules: u64,
}

#[cfg(any(test, loom))]
impl HeapOverflow {
    /// `units` free units of `unit_granules` granules each, and two block
    /// tables of `table_len` entries.
    pub(crate) fn new(units: u64, unit_granules: u64, table_len: u64) -> Self {
        let (data, payload) = HeapPayload::new(units * unit_granules);
        let words = |n: u64| (0..n).map(|_| AtomicU64::new(0)).collect();
        HeapOverflow {
            ctl: Box::new(OverflowCtl {
                high: AtomicU64::new(0),
            }),
            states: (0..units).map(|_| AtomicU64::new(UNIT_FREE)).collect(),
            tables: words(2 * table_len),
            #[cfg(loom)]
            block_descs: words(units * unit_granules),
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
