//! Descriptors: one word per granule saying what record starts there
//! and in what state.

use super::*;

/// Descriptor states (bits 30..33).
pub(crate) const ST_EMPTY: u64 = 0;
/// A message, written and published by its producer.
pub(crate) const ST_COMMITTED: u64 = 1;
/// Filler from the claim position to the end of the ring, so that the next
/// record starts at granule 0; `len` is its size in bytes.
pub(crate) const ST_PADDING: u64 = 2;
/// Taken by a consumer and released: the reclaimer may move `head` past it.
pub(crate) const ST_DONE: u64 = 3;
/// Taken by the receiver whose lane is `owner`, not yet released.
pub(crate) const ST_TAKEN: u64 = 4;
/// A claim whose producer died before committing it: consumers skip it and
/// count it as a message (it took a `seq`); `len` is its footprint in bytes.
pub(crate) const ST_SKIP: u64 = 5;
/// Taken by a leased receive of the receiver whose lane is `owner`: as
/// TAKEN, except that a dead owner gives it back (RETURNED), not DONE.
pub(crate) const ST_LEASED: u64 = 6;
/// A leased message given back (by its holder, or for a dead one): behind
/// `read`, taken again by a receiver's CAS; `owner` is the COMMITTED
/// descriptor's (0, or `KIND_EXT`).
pub(crate) const ST_RETURNED: u64 = 7;
/// In a COMMITTED descriptor's `owner` field: the payload is an `ExtRef`
/// to a message in the overflow area, not the message (0: it is).
pub(crate) const KIND_EXT: u64 = 1;
const TAG_BITS: u32 = 23;
pub(super) const TAG_MASK: u64 = (1 << TAG_BITS) - 1;
const LEN_BITS: u32 = 30;
pub(super) const LEN_MASK: u64 = (1 << LEN_BITS) - 1;
const STATE_MASK: u64 = 0b111;
pub(super) const OWNER_MASK: u64 = 0xff;
const _: () = assert!(TAG_BITS + 8 + 3 + LEN_BITS == 64);
// A padding record is shorter than the ring, a message at most half of it.
const _: () = assert!((MAX_CAPACITY as u64) <= LEN_MASK + 1);

/// A decoded descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Desc {
    pub tag: u64,
    pub owner: u64,
    pub state: u64,
    pub len: u32,
}

impl Desc {
    /// A descriptor with no owner.
    #[inline]
    pub(crate) fn new(tag: u64, state: u64, len: u32) -> Self {
        Desc {
            tag,
            owner: 0,
            state,
            len,
        }
    }
    #[inline]
    pub(crate) fn unpack(w: u64) -> Self {
        Desc {
            tag: w >> 41,
            owner: (w >> 33) & OWNER_MASK,
            state: (w >> 30) & STATE_MASK,
            len: (w & LEN_MASK) as u32,
        }
    }
    #[inline]
    pub(crate) fn pack(self) -> u64 {
        debug_assert!(self.state != ST_EMPTY && self.state <= STATE_MASK);
        debug_assert!(self.len as u64 <= LEN_MASK && self.owner <= OWNER_MASK);
        ((self.tag & TAG_MASK) << 41)
            | ((self.owner & OWNER_MASK) << 33)
            | ((self.state & STATE_MASK) << 30)
            | (self.len as u64 & LEN_MASK)
    }
}

/// Whether descriptor word `w` is a record a consumer may take at a
/// position whose tag is `tag`: a message, padding or a skipped claim, of
/// this lap.
#[inline]
pub(crate) fn takeable(w: u64, tag: u64) -> bool {
    let d = Desc::unpack(w);
    w != 0 && d.tag == tag && matches!(d.state, ST_COMMITTED | ST_PADDING | ST_SKIP)
}

/// The descriptor tag of position `pos` in a ring of `1 << shift` granules.
#[inline]
pub(crate) fn tag_of(pos: u64, shift: u32) -> u64 {
    (pos >> shift) & TAG_MASK
}

/// Granules a record of `len` bytes occupies (at least one: an empty message
/// still needs a descriptor of its own).
#[inline]
pub(crate) fn footprint(len: usize) -> u64 {
    (len.max(1) as u64).div_ceil(GRANULE as u64)
}
