//! The `tail` and `read` cursors and `head`: wrapping positions and
//! sequence numbers, and the epochs that bound how stale a cached copy is.

use super::*;

pub(crate) const POS_BITS: u32 = 38;
pub(crate) const POS_MASK: u64 = (1 << POS_BITS) - 1;
pub(crate) const SEQ_BITS: u32 = 25;
pub(crate) const SEQ_MASK: u64 = (1 << SEQ_BITS) - 1;
const POS_SHIFT: u32 = 1;
const SEQ_SHIFT: u32 = POS_SHIFT + POS_BITS;
pub(crate) const CLOSED: u64 = 1;
/// The largest `maxsize` (messages) that can be represented.
pub(crate) const MAX_MAXSIZE: u64 = (MAX_CAPACITY / GRANULE) as u64;
/// The most messages an unbounded queue holds (its `maxsize` when not
/// told one): what the 25-bit `seq` counts with the same margins as a
/// bounded ring's.
pub(crate) const MAX_UNBOUNDED_MESSAGES: u64 = MAX_MAXSIZE;

const _: () = assert!(SEQ_SHIFT + SEQ_BITS == 64);
const _: () = assert!(MAX_MAXSIZE < SEQ_MASK);
const _: () = assert!((MAX_CAPACITY / GRANULE) as u64 * 2 < POS_MASK);

/// A decoded `tail` or `read` word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub seq: u64,
    pub pos: u64,
    pub closed: bool,
}

impl Cursor {
    #[inline]
    pub(crate) fn unpack(w: u64) -> Self {
        Cursor {
            seq: (w >> SEQ_SHIFT) & SEQ_MASK,
            pos: (w >> POS_SHIFT) & POS_MASK,
            closed: w & CLOSED != 0,
        }
    }
    #[inline]
    pub(crate) fn pack(self) -> u64 {
        debug_assert!(self.seq <= SEQ_MASK && self.pos <= POS_MASK);
        (self.seq << SEQ_SHIFT) | (self.pos << POS_SHIFT) | self.closed as u64
    }
}

/// `a + n` in the wrapping position space.
#[inline]
pub(crate) fn pos_add(a: u64, n: u64) -> u64 {
    a.wrapping_add(n) & POS_MASK
}
/// `a - b` in the wrapping position space (`a` is logically at or after `b`).
#[inline]
pub(crate) fn pos_sub(a: u64, b: u64) -> u64 {
    a.wrapping_sub(b) & POS_MASK
}
/// `a - b` in the wrapping message-sequence space.
#[inline]
pub(crate) fn seq_sub(a: u64, b: u64) -> u64 {
    a.wrapping_sub(b) & SEQ_MASK
}

/// See [`Control::epoch`]: at most two boundary crossings (2^36 granules)
/// separate a cached `head` from the real one, far less than the 2^38 wrap.
pub(crate) const HEAD_EPOCH_SHIFT: u32 = 35;
/// See [`Control::epoch`]: at most 2^23 messages of staleness, less than
/// `2^25 - MAX_MAXSIZE`.
pub(crate) const SEQ_EPOCH_SHIFT: u32 = 22;
const _: () = assert!(2u64 << HEAD_EPOCH_SHIFT < POS_MASK / 2);
const _: () = assert!((2u64 << SEQ_EPOCH_SHIFT) < SEQ_MASK - MAX_MAXSIZE);

/// Whether moving from `a` to `b` crosses a multiple of `2^shift` (both in a
/// wrapping space whose size is a multiple of `2^shift`).
#[inline]
pub(crate) fn crosses(a: u64, b: u64, shift: u32) -> bool {
    a >> shift != b >> shift
}
