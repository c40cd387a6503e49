//! The overflow area: where a message larger than its ring's largest
//! record lives, in units of [`UNIT`] bytes, each with a state word saying
//! who owns it. The ring carries an [`ExtRef`] to it.
//!
//! ```text
//! overflow_off (a multiple of UNIT, after the last ring)
//! +--------------------------------------------------------------------+
//! | OverflowCtl: high u64 (units ever used: scans stop there), 128 B   |
//! | states: one u64 per unit (below)                                   |
//! +--------------------------------------------------------------------+  + states_len (a multiple of UNIT)
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
    /// Offset of the first unit from the area's start.
    pub data_off: usize,
    /// The whole area (control, states, units).
    pub len: usize,
}

impl OverflowGeometry {
    /// The area for `bytes` of units (a multiple of [`UNIT`], at most
    /// [`MAX_OVERFLOW`]; 0: no area). `None` if `bytes` is not such.
    pub(crate) fn new(bytes: u64) -> Option<Self> {
        if bytes % UNIT as u64 != 0 || bytes > MAX_OVERFLOW {
            return None;
        }
        let units = bytes / UNIT as u64;
        if units == 0 {
            return Some(OverflowGeometry {
                units: 0,
                data_off: 0,
                len: 0,
            });
        }
        let data_off = (OVERFLOW_CTL_LEN + units as usize * 8).next_multiple_of(UNIT);
        Some(OverflowGeometry {
            units,
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
