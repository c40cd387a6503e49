//! The overflow area: where a message larger than its ring's largest
//! record lives, in units of [`UNIT`] bytes, each with a state word saying
//! who owns it. The ring carries an [`ExtRef`] to it.
//!
//! ```text
//! overflow_off (a multiple of UNIT, after the last ring)
//! +--------------------------------------------------------------------+
//! | OverflowCtl: high u64 (units ever used: scans stop there), 128 B   |
//! | states: one u64 per unit (below)                                   |
//! | block tables (unbounded rings only): per ring, `table_len` u64     |
//! +--------------------------------------------------------------------+  + data_off (a multiple of UNIT)
//! | units: `units` x UNIT bytes; a message takes a run of consecutive  |
//! | units from its first byte; pages come and go with the messages     |
//! +--------------------------------------------------------------------+  + states_len + units * UNIT
//! ```
//!
//! A unit's state word:
//!
//! ```text
//!  63 62  61   60                  33 32           24 23               0
//! +-----+----+----------------------+---------------+------------------+
//! |  0  |           0: FREE (no pages)                                 |
//! |  1  |ring|         0            |     lane      |   lane gen       |  HELD
//! |  2  |ring|  0  |              pos (38 bits, of the record)         |  LINKED
//! |  3  |     0     |   ms (48 bits): WARM, free with its pages kept, since |
//! +-----+----+----------------------+---------------+------------------+
//! ```
//!
//! HELD: a sender (lane `lane` of ring `ring`, taken in generation `gen`)
//! is writing a message into the unit; nothing in any ring refers to it.
//! LINKED: the record at `pos` of ring `ring` refers to it; whoever ends
//! that record (its receiver at release) frees it. Every unit carries its
//! run's owner, so each can be judged on its own (see `ring::overflow`).
//!
//! ## Blocks of an unbounded ring
//!
//! An unbounded ring (`Header::backlog` > 0) keeps its records not in its
//! own data area but in *blocks*: block `b` holds positions
//! `[b * granules, (b + 1) * granules)` (`granules` the ring's, so
//! `capacity_bytes` is the block size), in a run of units laid out as
//!
//! ```text
//! +---------------------------------+---------------------------------+
//! | data: granules x 64 bytes       | descriptors: granules x u64     |
//! +---------------------------------+---------------------------------+
//! ```
//!
//! The run is LINKED to the block's last position, so that it counts as
//! ended exactly when `head` has passed the whole block. The ring's block
//! table says where each live block lies; entry `b % table_len`:
//!
//! ```text
//!  63 62 61                                 24 23                     0
//! +-----+-------------------------------------+-----------------------+
//! |  0  |  start (38 bits): the block's first |  first unit + 1       |
//! |     |  position                           |  (0: no entry)        |
//! +-----+-------------------------------------+-----------------------+
//! ```

use super::*;

/// Bytes per unit of the overflow area in a segment (64 KiB: a 1 GiB
/// message is 16,384 units; the smallest message placed there still costs
/// only the pages it touches).
pub(crate) const UNIT: usize = 1 << 16;
/// Largest overflow area: everything must end before `LOCK_BASE`.
pub(crate) const MAX_OVERFLOW: u64 = 1 << 39;
/// Overflow area a builder gives when not told: the machine's memory, up
/// to this much (each process maps it all, but it costs address space
/// only; memory is used only as messages need it).
pub(crate) const DEFAULT_OVERFLOW_CAP: u64 = 64 << 30;
/// Bytes before the state words (the control words).
pub(crate) const OVERFLOW_CTL_LEN: usize = 128;

/// The overflow area's control words.
#[repr(C)]
pub(crate) struct OverflowCtl {
    /// One past the highest unit ever taken: scans and searches stop here
    /// (first-fit keeps it near the most ever in use).
    pub high: AtomicU64,
}

const _: () = assert!(std::mem::size_of::<OverflowCtl>() <= OVERFLOW_CTL_LEN);
// Rings (at most 2 GiB and a little) and states (1/8192 of the units)
// end well before the liveness locks.
const _: () = assert!(MAX_OVERFLOW + (1 << 33) < LOCK_BASE);

/// A unit nobody owns, without pages.
pub(crate) const UNIT_FREE: u64 = 0;
/// A unit nobody owns whose pages were kept, since `ms` (the low 48 bits
/// of a monotonic clock in milliseconds; 0 without one).
#[inline]
pub(crate) fn unit_warm(ms: u64) -> u64 {
    3 << 62 | ms & ((1 << 48) - 1)
}

/// Whether a unit's word is WARM (free, with pages).
#[inline]
pub(crate) fn is_warm(w: u64) -> bool {
    w >> 62 == 3
}

/// The clock reading a WARM word carries.
#[inline]
pub(crate) fn warm_since(w: u64) -> u64 {
    w & ((1 << 48) - 1)
}
const KIND_SHIFT: u32 = 62;
const KIND_HELD: u64 = 1;
const KIND_LINKED: u64 = 2;
const RING_SHIFT: u32 = 61;
const LANE_SHIFT: u32 = 24;
const GEN_MASK: u64 = (1 << 24) - 1;

/// Who owns a unit, decoded from its state word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UnitOwner {
    /// Nobody (FREE or WARM).
    Free,
    /// A sender writing a message: lane `lane` of ring `ring`, taken in
    /// generation `gen` (the low 24 bits of the lane's).
    Held { ring: u16, lane: u16, gen: u64 },
    /// The record at `pos` of ring `ring`.
    Linked { ring: u16, pos: u64 },
    /// Anything else (a peer wrote garbage): left alone.
    Unknown,
}

impl UnitOwner {
    #[inline]
    pub(crate) fn pack(self) -> u64 {
        match self {
            UnitOwner::Free | UnitOwner::Unknown => UNIT_FREE,
            UnitOwner::Held { ring, lane, gen } => {
                KIND_HELD << KIND_SHIFT
                    | (ring as u64 & 1) << RING_SHIFT
                    | (lane as u64 & 0x1ff) << LANE_SHIFT
                    | gen & GEN_MASK
            }
            UnitOwner::Linked { ring, pos } => {
                KIND_LINKED << KIND_SHIFT | (ring as u64 & 1) << RING_SHIFT | pos & POS_MASK
            }
        }
    }

    #[inline]
    pub(crate) fn unpack(w: u64) -> Self {
        let ring = ((w >> RING_SHIFT) & 1) as u16;
        match w >> KIND_SHIFT {
            _ if w == UNIT_FREE || is_warm(w) => UnitOwner::Free,
            KIND_HELD if (w >> (LANE_SHIFT + 9)) & ((1 << 28) - 1) == 0 => UnitOwner::Held {
                ring,
                lane: ((w >> LANE_SHIFT) & 0x1ff) as u16,
                gen: w & GEN_MASK,
            },
            KIND_LINKED if (w >> POS_BITS) & ((1 << 23) - 1) == 0 => UnitOwner::Linked {
                ring,
                pos: w & POS_MASK,
            },
            _ => UnitOwner::Unknown,
        }
    }
}

/// The generation a lane owner word was taken in, as a HELD unit keeps it.
#[inline]
pub(crate) fn held_gen(lane_owner: u64) -> u64 {
    (lane_owner >> 40) & GEN_MASK
}

/// What a ring record of an overflowing message holds: where its run of
/// units starts and the message's length. 16 bytes, native-endian.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ExtRef {
    pub first: u64,
    pub len: u64,
}

/// Bytes of an [`ExtRef`] in a record.
pub(crate) const EXT_REF_LEN: usize = 16;

impl ExtRef {
    #[inline]
    pub(crate) fn to_bytes(self) -> [u8; EXT_REF_LEN] {
        let mut b = [0; EXT_REF_LEN];
        b[..8].copy_from_slice(&self.first.to_ne_bytes());
        b[8..].copy_from_slice(&self.len.to_ne_bytes());
        b
    }

    /// The reference in `b` (untrusted: checked by the overflow area
    /// before use); `None` if `b` is not one.
    #[inline]
    pub(crate) fn from_bytes(b: &[u8]) -> Option<Self> {
        let b: &[u8; EXT_REF_LEN] = b.try_into().ok()?;
        let (first, len) = b.split_at(8);
        Some(ExtRef {
            first: u64::from_ne_bytes(first.try_into().ok()?),
            len: u64::from_ne_bytes(len.try_into().ok()?),
        })
    }
}

/// Where an overflow area of `units` units lies, from its start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OverflowGeometry {
    pub units: u64,
    /// Entries of each ring's block table (0: the rings are bounded).
    pub table_len: u64,
    /// Offset of the first block table from the area's start.
    pub tables_off: usize,
    /// Offset of the first unit from the area's start.
    pub data_off: usize,
    /// The whole area (control, states, tables, units).
    pub len: usize,
}

impl OverflowGeometry {
    /// The area for `bytes` of units (a multiple of [`UNIT`], at most
    /// [`MAX_OVERFLOW`]; 0: no area), with a block table for each of
    /// `rings` rings of `granules` granules if they are unbounded
    /// (`blocks`). `None` if `bytes` is not such.
    pub(crate) fn new(bytes: u64, blocks: bool, granules: u64, rings: u16) -> Option<Self> {
        if bytes % UNIT as u64 != 0 || bytes > MAX_OVERFLOW {
            return None;
        }
        let units = bytes / UNIT as u64;
        if units == 0 {
            return Some(OverflowGeometry {
                units: 0,
                table_len: 0,
                tables_off: 0,
                data_off: 0,
                len: 0,
            });
        }
        let table_len = if blocks {
            block_table_len(units, block_units(granules))
        } else {
            0
        };
        let tables_off = OVERFLOW_CTL_LEN + units as usize * 8;
        let tables_len = table_len as usize * 8 * rings as usize;
        let data_off = (tables_off + tables_len).next_multiple_of(UNIT);
        Some(OverflowGeometry {
            units,
            table_len,
            tables_off,
            data_off,
            len: data_off + bytes as usize,
        })
    }

    /// Where the area starts in a segment whose rings end at `rings_end`.
    pub(crate) fn start(rings_end: usize) -> usize {
        rings_end.next_multiple_of(UNIT)
    }
}

/// The overflow area a builder gives by default: the machine's memory
/// (`phys`), rounded up to a unit, at most [`DEFAULT_OVERFLOW_CAP`].
pub(crate) fn default_overflow(phys: u64) -> u64 {
    phys.min(DEFAULT_OVERFLOW_CAP).next_multiple_of(UNIT as u64)
}

/// Bytes of a block of `granules` granules: its data, then a descriptor
/// per granule.
pub(crate) fn block_bytes(granules: u64) -> usize {
    granules as usize * (GRANULE + 8)
}

/// Units of [`UNIT`] bytes a block of `granules` granules takes.
pub(crate) fn block_units(granules: u64) -> u64 {
    (block_bytes(granules) as u64).div_ceil(UNIT as u64)
}

/// Entries of a block table for an area of `units` units and blocks of
/// `per_block` units: a power of two above the most blocks the area can
/// hold, so that two live blocks never share an entry.
pub(crate) fn block_table_len(units: u64, per_block: u64) -> u64 {
    (units / per_block.max(1) + 2).next_power_of_two()
}

/// Where a live block of an unbounded ring lies: an entry of its ring's
/// block table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BlockEntry {
    /// The block's first position.
    pub start: u64,
    /// Its run's first unit.
    pub first: u64,
}

const ENTRY_UNIT_BITS: u32 = 24;

impl BlockEntry {
    #[inline]
    pub(crate) fn pack(self) -> u64 {
        (self.start & POS_MASK) << ENTRY_UNIT_BITS | (self.first + 1) & ((1 << ENTRY_UNIT_BITS) - 1)
    }

    /// The entry in `w`, if it is one (an empty or garbled word is not).
    #[inline]
    pub(crate) fn unpack(w: u64) -> Option<Self> {
        let unit = w & ((1 << ENTRY_UNIT_BITS) - 1);
        (unit != 0 && w >> (ENTRY_UNIT_BITS + POS_BITS) == 0).then(|| BlockEntry {
            start: w >> ENTRY_UNIT_BITS,
            first: unit - 1,
        })
    }
}

// A unit index + 1 fits the entry: at most 2^23 units.
const _: () = assert!(MAX_OVERFLOW / UNIT as u64 <= 1 << (ENTRY_UNIT_BITS - 1));
