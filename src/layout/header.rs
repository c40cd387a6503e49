//! The segment header and where a ring's parts lie: sizes, offsets,
//! the header fields every attacher validates.

use super::*;
use crate::sync::AtomicU32;

/// Identifies a shmq segment: the bytes `SHMQRNG1` read as little-endian.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"SHMQRNG1");
/// Bumped on any incompatible change of the layout (any file of `layout/`).
pub(crate) const VERSION: u32 = 9;
/// `ready` once every header field is written (stored last, Release).
/// (`ready` is 0 while the creator is still initialising.)
pub(crate) const READY_YES: u32 = 1;

/// Record alignment and allocation unit: one cache line. Payloads start on a
/// granule, so they are aligned to 64 bytes (enough for any rkyv archive),
/// and two small records never share a cache line.
pub(crate) const GRANULE: usize = 64;
pub(crate) const GRANULE_SHIFT: u32 = 6;
/// The lanes start here (the descriptors after them); everything before is
/// header and control.
pub(crate) const HEADER_LEN: usize = 4096;
pub(super) const PAGE: usize = 4096;

/// Smallest ring: 4 granules (256 bytes); largest: 1 GiB, so the number of
/// granules (and so of messages in flight) fits the 25-bit `seq` with room to
/// tell "full" from "empty".
pub(crate) const MIN_CAPACITY: usize = 4 * GRANULE;
pub(crate) const MAX_CAPACITY: usize = 1 << 30;
/// Capacity used when the builder is not told.
pub(crate) const DEFAULT_CAPACITY: usize = 1 << 20;

const _: () = assert!(1 << GRANULE_SHIFT == GRANULE);

/// The fixed part of the header. Fields other than `ready` are written once by
/// the creator before it publishes `ready`, and copied (then validated) by
/// every attacher, which never reads them again.
#[repr(C)]
pub(crate) struct Header {
    pub magic: u64,
    pub version: u32,
    pub header_len: u32,
    pub capacity: u64,
    pub maxsize: u64,
    pub granule: u32,
    pub ready: AtomicU32,
    pub desc_off: u64,
    pub data_off: u64,
    pub total_len: u64,
    pub creator_pid: u32,
    pub kind: u16,
    pub rings: u16,
    pub type_hash: u64,
    pub type_name: [u8; TYPE_NAME_LEN],
    /// Most bytes of data an unbounded ring may hold in blocks of the
    /// overflow area (`u64::MAX`: as many as the area holds); 0: the ring
    /// is bounded by its own capacity (see `overflow`).
    pub backlog: u64,
    /// Bytes of units in the overflow area (0: none), after the rings.
    pub overflow: u64,
}

#[cfg(not(loom))]
impl Header {
    /// The header in `b`, a private copy of a segment's first bytes; `None`
    /// if `b` is too short to hold one.
    pub(crate) fn from_bytes(b: &[u8]) -> Option<Header> {
        (b.len() >= std::mem::size_of::<Header>()).then(|| {
            // SAFETY: `b` holds at least `size_of::<Header>()` bytes, read
            // unaligned; every field is an integer, a byte array or an
            // atomic integer, for which any bit pattern is a valid value.
            unsafe { std::ptr::read_unaligned(b.as_ptr().cast::<Header>()) }
        })
    }
}

/// `Header::kind` of a queue (one ring, any number of senders and receivers).
pub(crate) const KIND_QUEUE: u16 = 1;
/// `Header::kind` of a pipe (two connection ends; one or two rings).
pub(crate) const KIND_PIPE: u16 = 2;
/// Most rings in one segment (a duplex pipe).
pub(crate) const MAX_RINGS: u16 = 2;
/// Bytes of the type name kept in the header.
pub(crate) const TYPE_NAME_LEN: usize = 32;

pub(crate) const CONTROL_OFF: usize = 128;

#[cfg(not(loom))]
const _: () = {
    assert!(std::mem::size_of::<Header>() <= CONTROL_OFF);
    assert!(std::mem::offset_of!(Header, ready) == 36);
    assert!(std::mem::offset_of!(Header, kind) == 68);
    assert!(std::mem::offset_of!(Header, rings) == 70);
    assert!(std::mem::offset_of!(Header, type_hash) == 72);
    assert!(std::mem::offset_of!(Header, type_name) == 80);
    assert!(std::mem::offset_of!(Header, backlog) == 112);
    assert!(std::mem::offset_of!(Header, overflow) == 120);
    assert!(std::mem::align_of::<Control>() <= CONTROL_OFF);
    assert!(CONTROL_OFF + std::mem::size_of::<Control>() <= HEADER_LEN);
    assert!(std::mem::offset_of!(Control, read) == 128);
    assert!(std::mem::offset_of!(Control, head) == 256);
    assert!(std::mem::offset_of!(Control, recv_wait) == 384);
    assert!(std::mem::offset_of!(Control, send_wait) == 512);
    assert!(std::mem::offset_of!(Control, epoch) == 640);
    assert!(std::mem::offset_of!(Control, seen) == 768);
    assert!(std::mem::offset_of!(Control, watch) == 896);
    assert!(std::mem::size_of::<Lane>() == LANE_LEN);
};

/// Where everything lies for a ring of `capacity` data bytes (offsets from
/// the ring's start; `ring_len` is the whole ring, header page included).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub capacity: usize,
    pub granules: u64,
    pub shift: u32,
    pub lanes_off: usize,
    pub desc_off: usize,
    pub data_off: usize,
    pub ring_len: usize,
}

impl Geometry {
    /// `None` unless `capacity` is a power of two in
    /// `MIN_CAPACITY..=MAX_CAPACITY`.
    pub(crate) fn new(capacity: usize) -> Option<Self> {
        if !(MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity) || !capacity.is_power_of_two() {
            return None;
        }
        let granules = (capacity / GRANULE) as u64;
        let lanes_off = HEADER_LEN;
        let desc_off = lanes_off + LANES_LEN;
        let data_off = (desc_off + granules as usize * 8).next_multiple_of(PAGE);
        Some(Geometry {
            capacity,
            granules,
            shift: granules.trailing_zeros(),
            lanes_off,
            desc_off,
            data_off,
            ring_len: data_off + capacity,
        })
    }

    /// The largest message kept in the ring itself: half the ring, the most
    /// that always fits in an empty ring wherever its cursor stands (a
    /// record may need padding up to the end of the ring before it).
    /// Larger ones go to the overflow area.
    pub(crate) fn max_message(&self) -> usize {
        self.capacity / 2
    }
}

/// What a segment holds besides its geometry: written by the creator,
/// validated and copied by every attacher.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Spec {
    pub maxsize: u64,
    /// Bytes of the overflow area (a multiple of `UNIT`; 0: none).
    pub overflow: u64,
    /// `Header::backlog`: 0 for a ring bounded by its capacity.
    pub backlog: u64,
    pub kind: u16,
    pub rings: u16,
    pub type_tag: TypeTag,
}

/// The message type a typed queue was made for (all zero: untyped).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TypeTag {
    pub hash: u64,
    pub name: [u8; TYPE_NAME_LEN],
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            maxsize: 0,
            overflow: 0,
            backlog: 0,
            kind: KIND_QUEUE,
            rings: 1,
            type_tag: TypeTag::default(),
        }
    }
}

impl Default for TypeTag {
    fn default() -> Self {
        TypeTag {
            hash: 0,
            name: [0; TYPE_NAME_LEN],
        }
    }
}

impl TypeTag {
    /// The type name as stored (lossy, truncated), or `None` if untyped.
    pub(crate) fn name(&self) -> Option<String> {
        if self.hash == 0 {
            return None;
        }
        let end = self
            .name
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(TYPE_NAME_LEN);
        Some(String::from_utf8_lossy(&self.name[..end]).into_owned())
    }
}
