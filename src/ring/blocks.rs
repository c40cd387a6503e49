//! An unbounded ring: positions live in blocks of the overflow area,
//! allocated as `tail` reaches them and given back as `head` leaves them
//! (crossbeam-channel's `list` flavor, in shared memory).
//!
//! ```text
//!  positions   [ block b-1 ][  block b   ][ block b+1 ][ block b+2 ]
//!                 freed        head ...      ... tail     installed ahead
//!  table[b % n]  (0)          {b, run r}    {b+1, s}     {b+2, t}
//! ```
//!
//! The claim/commit/take/release protocol is the bounded ring's: only where
//! a position's descriptor and bytes lie changes (`Ring::desc`,
//! `Ring::data_at`). Three steps are new:
//!
//! * **Install** (producer, before its claim CAS): a claim may end in a
//!   block nobody has installed yet. The producer takes a run of units
//!   (HELD by its lane), zeroes the block's descriptors, links the run to
//!   the block's last position, and CASes the table entry from what it
//!   found (empty, or a block that `head` has passed) to `{b, run}` with
//!   Release. A producer that loses the CAS frees its run. Installing
//!   before the claim means that every position in `[head, tail)` lies in
//!   an installed block, and that a send that finds no memory fails
//!   before it has claimed anything.
//! * **End** (whoever moves `head` past a block's last record, right after
//!   its Release store of `head`): frees the block's run. Every record in
//!   it was released, and no producer can claim there again (positions
//!   only grow), so nobody reads or writes the run after this.
//! * **Sweep**: a run LINKED to a position behind `head` is ended by the
//!   sweep if its ender died (or it lost an install race and its producer
//!   died before freeing it): the same rule as a large message's run.
//!
//! A stale reader that loads an entry just before its block is freed and
//! reused reads descriptors that are zero or carry another block's tag, or
//! bytes of another message; it then fails its `read` CAS (the position is
//! behind `read`), so nothing it read is used.

use super::overflow::TakeError;
use super::*;

#[cfg(all(test, not(loom)))]
std::thread_local! {
    /// Unit tests: install blocks without zeroing their descriptors (a
    /// deliberate break, to see the test of it fail).
    pub(super) static SKIP_ZEROING: Cell<bool> = const { Cell::new(false) };
}

#[inline]
fn skip_zeroing() -> bool {
    #[cfg(all(test, not(loom)))]
    return SKIP_ZEROING.with(|s| s.get());
    #[cfg(not(all(test, not(loom))))]
    false
}

/// Blocks whose pages an unbounded ring keeps (WARM) when `head` leaves
/// them, however few are in use: a backlog that swings by a few blocks
/// reuses pages instead of faulting in fresh ones (about 1 ms a MiB with
/// the punching); the sweep gives them back once unused for
/// `overflow::WARM_MS`.
const KEEP_BLOCKS: u64 = 8;

/// The view of an unbounded ring's block table.
pub(crate) struct Blocks {
    table: NonNull<AtomicU64>,
    /// Entries minus one (a power of two minus one).
    mask: u64,
    /// Units per block.
    units: u64,
    /// What a descriptor outside every live block reads: zero (empty).
    /// Nothing is ever stored here by a ring that keeps the protocol.
    detached: Box<AtomicU64>,
}

// SAFETY: a pointer into the segment's overflow area, kept mapped by the
// ring's owner; every access is atomic.
unsafe impl Send for Blocks {}
// SAFETY: as above.
unsafe impl Sync for Blocks {}

impl Blocks {
    /// The block table of ring `index` in `area`, for blocks of `granules`
    /// granules; `None` if the area has no tables or cannot hold a block.
    pub(super) fn new(area: &Overflow, index: u16, granules: u64) -> Option<Self> {
        let (table, len) = area.table(index);
        let units = area.block_units(granules);
        (len.is_power_of_two() && units <= area.units()).then(|| Blocks {
            table,
            mask: len - 1,
            units,
            detached: Box::new(AtomicU64::new(0)),
        })
    }

    /// The table entry of the block starting at `start` (of `shift`).
    #[inline]
    fn entry(&self, start: u64, shift: u32) -> &AtomicU64 {
        // SAFETY: masked to the table's length.
        unsafe {
            &*self
                .table
                .as_ptr()
                .add(((start >> shift) & self.mask) as usize)
        }
    }
}

impl Ring {
    /// The first position of the block `pos` falls in.
    #[inline]
    fn block_start(&self, pos: u64) -> u64 {
        pos & !self.mask & POS_MASK
    }

    /// The run holding the live block that `pos` falls in, if its entry
    /// names one inside the area.
    #[inline]
    fn block_run(&self, b: &Blocks, pos: u64) -> Option<(&Overflow, u64)> {
        let area = self.overflow.as_ref()?;
        let start = self.block_start(pos);
        // SYNC: Acquire pairs with the Release CAS in `install_block`: the
        // zeroed descriptors of the block are visible to whoever finds it.
        let w = b.entry(start, self.shift).load(Ordering::Acquire);
        let e = BlockEntry::unpack(w)?;
        (e.start == start && e.first < area.units() && b.units <= area.units() - e.first)
            .then_some((area, e.first))
    }

    #[inline]
    pub(super) fn block_desc<'a>(&'a self, b: &'a Blocks, pos: u64) -> &'a AtomicU64 {
        match self.block_run(b, pos) {
            Some((area, first)) => area.block_desc(first, self.granules, pos & self.mask),
            None => &b.detached,
        }
    }

    #[inline]
    pub(super) fn block_data<'a>(&'a self, b: &Blocks, pos: u64) -> Option<(&'a Payload, u64)> {
        self.block_run(b, pos)
            .map(|(area, first)| (area.data(), area.block_gran(first, pos & self.mask)))
    }

    /// Makes sure the block that position `rec` falls in is installed
    /// before a claim there (see the module docs). `cache.block` keeps the
    /// last block found installed: a claim whose CAS succeeds proves it
    /// still is (it cannot end before `tail` passes it).
    #[inline]
    pub(super) fn ensure_block(&self, cache: &SendCache, rec: u64) -> Result<(), TakeError> {
        let start = self.block_start(rec);
        if start == cache.block.get() {
            return Ok(());
        }
        self.install_block(cache, start)
    }

    #[cold]
    fn install_block(&self, cache: &SendCache, start: u64) -> Result<(), TakeError> {
        let (Some(b), Some(area)) = (&self.blocks, &self.overflow) else {
            return Ok(());
        };
        let slot = b.entry(start, self.shift);
        let last = pos_add(start, self.granules - 1);
        let linked = UnitOwner::Linked {
            ring: self.index,
            pos: last,
        }
        .pack();
        let bytes = block_bytes(self.granules);
        loop {
            if self.block_ended(start) {
                // Our view of `tail` is stale: the claim's CAS will fail.
                return Ok(());
            }
            // Acquire: as in `block_run`.
            let w = slot.load(Ordering::Acquire);
            match BlockEntry::unpack(w) {
                Some(e) if e.start == start => break,
                Some(e) if !self.block_ended(e.start) => {
                    // Another live block holds the entry: only a garbled
                    // table, or one the area is too full to matter for.
                    return Err(TakeError::AreaFull);
                }
                _ => {}
            }
            let held = self.held_word(cache.lane.get());
            let first = match area.take(held, bytes) {
                Err(TakeError::AreaFull) if self.sweep_overflow(cache.lane.get()) > 0 => {
                    area.take(held, bytes)?
                }
                r => r?,
            };
            death_point!("block_taken", Err(TakeError::AreaFull));
            // The run may have held a large message, whose bytes could read
            // as committed records of this block: zero its descriptors.
            for o in (0..self.granules).filter(|_| !skip_zeroing()) {
                // Relaxed: published by the Release CAS of the entry below.
                area.block_desc(first, self.granules, o)
                    .store(0, Ordering::Relaxed);
            }
            area.link(first, bytes, held, linked);
            death_point!("block_linked", Err(TakeError::AreaFull));
            // SYNC: Release pairs with the Acquire load in `block_run`: the
            // zeroed descriptors before whoever finds the block.
            let order = mutant!(
                "block_install_relaxed",
                Ordering::Release,
                Ordering::Relaxed
            );
            match slot.compare_exchange(
                w,
                BlockEntry { start, first }.pack(),
                order,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    // Dekker with `end_block`: either `head`'s mover past
                    // this block sees our entry and frees the run, or we
                    // see `head` past it here and free it ourselves (a
                    // producer whose view of `tail` was stale installed a
                    // block that had already ended).
                    fence(Ordering::SeqCst);
                    if self.block_ended(start) {
                        self.end_block(start, held);
                    }
                    break;
                }
                Err(_) => area.free_run(first, bytes, linked, true),
            }
        }
        cache.block.set(start);
        Ok(())
    }

    /// Whether `head` has passed every position of the block at `start`.
    fn block_ended(&self, start: u64) -> bool {
        let last = pos_add(start, self.granules - 1);
        lanes::pos_behind(last, self.load_head_to_move())
    }

    /// Frees the block that `head` just left (it moved from `old` on to
    /// the next block's start), called right after `head`'s store; or
    /// the block at `old` that a stale producer installed after `head`
    /// had left it.
    ///
    /// The run is first adopted as `me` (the ender's HELD word): `head` has
    /// passed the block, so a sweep would judge its LINKED units gone, and
    /// a sweep that freed a unit the ender is still punching would let a
    /// new block be written into pages the ender then punches.
    #[cold]
    pub(super) fn end_block(&self, old: u64, me: u64) {
        let (Some(b), Some(area)) = (&self.blocks, &self.overflow) else {
            return;
        };
        let start = self.block_start(old);
        let slot = b.entry(start, self.shift);
        // Dekker with `install_block` (after our store of `head`).
        fence(Ordering::SeqCst);
        // Acquire: as in `block_run`.
        let w = slot.load(Ordering::Acquire);
        let Some(e) = BlockEntry::unpack(w).filter(|e| e.start == start) else {
            return;
        };
        // Relaxed: the entry only says where the block was; clearing it is
        // tidiness (an entry of an ended block is replaced by the next
        // install anyway), and the CAS never undoes a newer install.
        let _ = slot.compare_exchange(w, 0, Ordering::Relaxed, Ordering::Relaxed);
        if e.first < area.units() && self.blocks_mutant_frees() {
            let linked = UnitOwner::Linked {
                ring: self.index,
                pos: pos_add(start, self.granules - 1),
            };
            let bytes = block_bytes(self.granules);
            let owner = if mutant!("end_block_unadopted", true, false) {
                area.adopt(e.first, bytes, linked.pack(), me);
                me
            } else {
                linked.pack()
            };
            area.free_run_keeping(e.first, bytes, owner, true, KEEP_BLOCKS);
        }
    }

    #[inline]
    fn blocks_mutant_frees(&self) -> bool {
        mutant!("block_never_freed", true, false)
    }
}
