//! Every offset, size and bit encoding of the shared segment, in one place.
//!
//! ```text
//! offset 0                                                     (one page)
//! +--------------------------------------------------------------------+
//! | Header: magic u64 | version u32 | header_len u32 | capacity u64    |
//! |         maxsize u64 | granule u32 | ready u32 | desc_off u64        |
//! |         data_off u64 | total_len u64 | creator_pid u32 | kind u16    |
//! |         rings u16 | type_hash u64 | type_name [u8; 40]             |
//! +--------------------------------------------------------------------+  128
//! | tail      u64 cursor  (producers CAS)             own 128-byte block |
//! +--------------------------------------------------------------------+  256
//! | read      u64 cursor  (consumers CAS)             own 128-byte block |
//! +--------------------------------------------------------------------+  384
//! | head      u64 position (reclaimer stores)         own 128-byte block |
//! +--------------------------------------------------------------------+  512
//! | recv_wait u64 {wake epoch:32 | sleepers:32}      own 128-byte block |
//! +--------------------------------------------------------------------+  640
//! | send_wait u64 {wake epoch:32 | sleepers:32}      own 128-byte block |
//! +--------------------------------------------------------------------+  768
//! | epoch     u64 (bumped when head/read.seq cross a boundary)         |
//! +--------------------------------------------------------------------+  896
//! | seen      u64 {queue:16 | receiver:16 | sender:16 lanes} + seen bits |
//! +--------------------------------------------------------------------+  1024
//! | watch     u64 {watcher lane + 1:16 | last scan ms:48}              |
//! +--------------------------------------------------------------------+  1152
//! | zero                                                               |
//! +--------------------------------------------------------------------+  4096 = lanes_off
//! | lanes: 256 x 64 bytes, one per live Sender/Receiver handle (below) |
//! +--------------------------------------------------------------------+  20480 = desc_off
//! | descriptors: one u64 per granule of data (capacity / 64 of them)   |
//! +--------------------------------------------------------------------+  data_off (page aligned)
//! | data: capacity bytes, 64-byte granules; a record's payload starts  |
//! | on a granule and is contiguous (never wraps)                       |
//! +--------------------------------------------------------------------+  ring_len
//! | ring 1 (a duplex pipe's second direction): the same layout from    |
//! | its own page 0, whose first 128 bytes are unused                   |
//! +--------------------------------------------------------------------+  total_len
//! ```
//!
//! A queue has one ring; a pipe has one (one-way) or two (duplex), each
//! `ring_len` bytes, so ring `k` starts at `k * ring_len` and every offset
//! below is relative to its start. `type_hash` is 0 for a queue of bytes, or
//! the fingerprint of the message type a typed queue was created for (see
//! `typed`); `type_name` holds that type's name, NUL-padded and truncated, for
//! error messages only.
//!
//! ## Cursors (`tail`, `read`)
//!
//! ```text
//!  63            39 38                                          1   0
//! +----------------+---------------------------------------------+---+
//! |  seq (25 bits) |        pos (38 bits, in granules)           | C |
//! +----------------+---------------------------------------------+---+
//! ```
//! `seq` counts messages and `pos` counts granules, both wrapping; `C` is the
//! closed bit (only ever set in `tail`). One CAS on `tail` claims the bytes
//! and a `maxsize` slot together; one CAS on `read` takes a message. `head` is
//! a bare `pos` (same 38-bit wrapping space). Invariant, in wrapping
//! distances: `head <= read <= tail` and `tail - head <= granules`.
//!
//! ## Descriptors
//!
//! ```text
//!  63          41 40      33 32   30 29                              0
//! +--------------+----------+-------+--------------------------------+
//! | tag (23 bits)|  owner   | state |          len (bytes)           |
//! +--------------+----------+-------+--------------------------------+
//! ```
//! The descriptor of granule `i` describes the record that *starts* at
//! granule `i`, if one does; `tag` is the low 23 bits of the lap
//! (`pos / granules`) of that record, so a descriptor left from another lap
//! never passes for the current one. A descriptor is non-zero exactly while a
//! record that starts there lies in `[head, tail)`; the reclaimer zeroes it
//! before it moves `head` past the record. Payload bytes never overlap
//! descriptors, so user data can never be mistaken for a header. `owner` is
//! the lane of the receiver holding a `TAKEN` record (0 otherwise).
//!
//! ## Lanes
//!
//! ```text
//! +0  owner   u64  gen << 40 | [NOLOCK] | [USED] | role << 32 | pid
//!                  USED clear: free (gen survives, so that a lane freed and
//!                  taken again never reads as the same owner)
//! +8  handoff u64  1: taken by a spawned child before its `exec`, to be
//!                  given up when it attaches (`Queue::inherit_into`)
//! +16 -       u64  unused (zero)
//! +24 intent  u64  0, or the `tail` (sender) / `read` (receiver) word it is
//!                  about to CAS, | 1, until the claim is committed / the take
//!                  marked TAKEN
//! +32 need    u64  sender: pad << 32 | footprint (granules) of that claim
//! +40 moving  u64  receiver: the `head` it is moving on, | 1, else 0
//! +48 to      u64  receiver: where that move ends
//! ```
//! Every live handle owns one lane (one cache line, written only by it). A
//! lane says who holds each half-done step, so that when a process dies
//! (SIGKILL, OOM) a survivor can tell its claims, takes and head moves from
//! slow live ones and finish or undo them; see `ring::recover` and
//! docs/DESIGN.md. Whether a lane's owner lives is not read from the lane:
//! the owner holds an open-file-description lock on byte
//! `LOCK_BASE + ring * LANES + lane` of the segment's file, which the
//! kernel drops when the owner's process dies (see `proc`). The pid is kept
//! for reports only.

use crate::sync::{AtomicU32, AtomicU64, WaitWord};
use crossbeam_utils::CachePadded;

/// Identifies a shmq segment: the bytes `SHMQRNG1` read as little-endian.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"SHMQRNG1");
/// Bumped on any incompatible change of this file.
pub(crate) const VERSION: u32 = 5;
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
const PAGE: usize = 4096;

/// Smallest ring: 4 granules (256 bytes); largest: 1 GiB, so the number of
/// granules (and so of messages in flight) fits the 25-bit `seq` with room to
/// tell "full" from "empty".
pub(crate) const MIN_CAPACITY: usize = 4 * GRANULE;
pub(crate) const MAX_CAPACITY: usize = 1 << 30;
/// Capacity used when the builder is not told.
pub(crate) const DEFAULT_CAPACITY: usize = 1 << 20;

pub(crate) const POS_BITS: u32 = 38;
pub(crate) const POS_MASK: u64 = (1 << POS_BITS) - 1;
pub(crate) const SEQ_BITS: u32 = 25;
pub(crate) const SEQ_MASK: u64 = (1 << SEQ_BITS) - 1;
const POS_SHIFT: u32 = 1;
const SEQ_SHIFT: u32 = POS_SHIFT + POS_BITS;
pub(crate) const CLOSED: u64 = 1;
/// The largest `maxsize` (messages) that can be represented.
pub(crate) const MAX_MAXSIZE: u64 = (MAX_CAPACITY / GRANULE) as u64;

const _: () = assert!(SEQ_SHIFT + SEQ_BITS == 64);
const _: () = assert!(MAX_MAXSIZE < SEQ_MASK);
const _: () = assert!((MAX_CAPACITY / GRANULE) as u64 * 2 < POS_MASK);
const _: () = assert!(1 << GRANULE_SHIFT == GRANULE);

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
const TAG_BITS: u32 = 23;
const TAG_MASK: u64 = (1 << TAG_BITS) - 1;
const LEN_BITS: u32 = 30;
const LEN_MASK: u64 = (1 << LEN_BITS) - 1;
const STATE_MASK: u64 = 0b111;
const OWNER_MASK: u64 = 0xff;
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

/// One side's sleepers, in one word so that a waker can take them all at
/// once:
///
/// ```text
///  63                 32 31                  0
/// +---------------------+---------------------+
/// | wake epoch          | sleepers            |
/// +---------------------+---------------------+
///   futex word (the        counted between registering and
///   high half)             leaving, or until a wake clears them
/// ```
///
/// A sleeper adds 1 (learning the epoch), re-checks, and sleeps on the
/// epoch half while the epoch is unchanged. A waker that sees sleepers
/// replaces the word with `{epoch + 1, 0}` in one CAS and makes the
/// `FUTEX_WAKE` call; wakers that come after it see no sleepers and make
/// none, until someone registers again. A sleeper that leaves on its own
/// (timeout, spurious return) subtracts itself only while the epoch it
/// registered under is current: a wake that cleared it already moved the
/// epoch.
#[repr(C)]
pub(crate) struct WaitCell {
    pub word: WaitWord,
}

/// One sleeper in a [`WaitCell`] word.
pub(crate) const SLEEPER: u64 = 1;

/// The wake epoch of a [`WaitCell`] word.
#[inline]
pub(crate) fn wake_epoch(w: u64) -> u32 {
    (w >> 32) as u32
}

/// The sleepers counted in a [`WaitCell`] word.
#[inline]
pub(crate) fn sleepers(w: u64) -> u32 {
    w as u32
}

/// The word after a wake: the next epoch, nobody counted.
#[inline]
pub(crate) fn woken(w: u64) -> u64 {
    (wake_epoch(w).wrapping_add(1) as u64) << 32
}

/// The hot words, each on its own cache-line pair (`CachePadded` is 128
/// bytes on x86_64, covering the adjacent-line prefetcher).
#[repr(C)]
pub(crate) struct Control {
    pub tail: CachePadded<AtomicU64>,
    pub read: CachePadded<AtomicU64>,
    pub head: CachePadded<AtomicU64>,
    pub recv_wait: CachePadded<WaitCell>,
    pub send_wait: CachePadded<WaitCell>,
    /// Bumped each time `head` crosses a multiple of `2^HEAD_EPOCH_SHIFT`
    /// granules or `read.seq` a multiple of `2^SEQ_EPOCH_SHIFT` messages.
    /// A producer's cached `head`/`read.seq` is trusted only while the epoch
    /// it was loaded under is current, so it can never be a whole wrap of
    /// the 38-bit (25-bit) space old and alias a current value.
    pub epoch: CachePadded<AtomicU64>,
    /// Registered lanes by role and which roles ever had one:
    /// senders (bits 0..16) | receivers (16..32) | queue handles (32..48) |
    /// [`SEEN_SENDER`] | [`SEEN_RECEIVER`], so that "no sender left" means
    /// "all gone", not "none yet". A count changes only with the CAS that
    /// takes a lane (+1) or starts freeing it (-1), so it never underflows.
    pub seen: CachePadded<AtomicU64>,
    /// The watcher of this ring's blocked waiters:
    /// `{lane + 1: 16 | last scan, ms of CLOCK_MONOTONIC: 48}`, 0 for none.
    /// One blocked waiter at a time holds it and makes the liveness scan
    /// (recover, reap, disconnect) every slice; the others sleep longer.
    pub watch: CachePadded<AtomicU64>,
}

/// [`Control::seen`]: a potential sender (a sender or a queue handle) has
/// registered.
pub(crate) const SEEN_SENDER: u64 = 1 << 48;
/// [`Control::seen`]: a potential receiver (a receiver or a queue handle)
/// has registered.
pub(crate) const SEEN_RECEIVER: u64 = 1 << 49;

/// One lane of `role` in [`Control::seen`]'s counts.
#[inline]
pub(crate) fn role_unit(role: u64) -> u64 {
    match role {
        ROLE_SENDER => 1,
        ROLE_RECEIVER => 1 << 16,
        _ => 1 << 32,
    }
}

/// The seen flags a lane of `role` sets: a queue handle could send and
/// receive.
#[inline]
pub(crate) fn role_seen(role: u64) -> u64 {
    match role {
        ROLE_SENDER => SEEN_SENDER,
        ROLE_RECEIVER => SEEN_RECEIVER,
        _ => SEEN_SENDER | SEEN_RECEIVER,
    }
}

/// Lanes of `role` counted in a [`Control::seen`] word.
#[inline]
pub(crate) fn role_count(w: u64, role: u64) -> u64 {
    (w / role_unit(role)) & 0xffff
}

/// Whether a `seen` word says that every handle that could act as `peer`
/// (ROLE_SENDER: send; ROLE_RECEIVER: receive) is gone: one registered
/// once, and no lane of that role nor any queue handle is left.
#[inline]
pub(crate) fn peers_all_gone(w: u64, peer: u64) -> bool {
    w & role_seen(peer) & (SEEN_SENDER | SEEN_RECEIVER) != 0
        && role_count(w, peer) == 0
        && role_count(w, ROLE_QUEUE) == 0
}

/// A handle's lane; see the module docs. One cache line, so that a
/// handle's stores to its own lane never contend with another's.
#[repr(C, align(64))]
pub(crate) struct Lane {
    pub owner: AtomicU64,
    pub handoff: AtomicU64,
    _unused2: AtomicU64,
    pub intent: AtomicU64,
    pub need: AtomicU64,
    pub moving: AtomicU64,
    pub to: AtomicU64,
    _unused: AtomicU64,
}

#[cfg(any(test, loom))]
impl Lane {
    /// A free lane, as a fresh segment has.
    pub(crate) fn new() -> Self {
        let z = || AtomicU64::new(0);
        Lane {
            owner: z(),
            handoff: z(),
            _unused2: z(),
            intent: z(),
            need: z(),
            moving: z(),
            to: z(),
            _unused: z(),
        }
    }
}

/// Lanes per ring: the most live handles (senders and receivers, all
/// processes together) a ring serves at once. Descriptor owners are 8 bits.
#[cfg(not(loom))]
pub(crate) const LANES: usize = 256;
/// Under loom: enough for the models, few enough to scan cheaply.
#[cfg(loom)]
pub(crate) const LANES: usize = 4;
pub(crate) const LANE_LEN: usize = 64;
pub(crate) const LANES_LEN: usize = LANES * LANE_LEN;
/// `Lane::owner`: the lane is in use (so that pid 0 never reads as free).
pub(crate) const LANE_USED: u64 = 1 << 38;
/// `Lane::owner`: the owner could not take its liveness lock (no way to
/// open the segment's file again, e.g. a memfd without `/proc`), so its
/// process is always presumed alive.
pub(crate) const LANE_NOLOCK: u64 = 1 << 39;
/// `Lane::owner`: the generation, bumped each time the lane is taken.
const LANE_GEN_SHIFT: u32 = 40;
/// `Lane::owner` role: a sender.
pub(crate) const ROLE_SENDER: u64 = 1;
/// `Lane::owner` role: a receiver.
pub(crate) const ROLE_RECEIVER: u64 = 2;
/// `Lane::owner` role: a queue handle (could make senders and receivers).
pub(crate) const ROLE_QUEUE: u64 = 3;
/// `Lane::owner` role while a survivor frees the lane.
pub(crate) const ROLE_REAPING: u64 = 0x3f;
/// Byte of the segment's file whose lock says lane 0 of ring 0 is alive
/// (lane `i` of ring `k`: `LOCK_BASE + k * LANES + i`); past any data, so
/// that nothing else ever locks it. Record locks may lie past the end of a
/// file.
pub(crate) const LOCK_BASE: u64 = 1 << 40;
/// `Lane::intent` / `Lane::moving`: the word is set (bit 0 of a cursor is
/// the closed bit, never set in a cursor that a claim or take CASes from).
pub(crate) const INTENT_SET: u64 = 1;
const _: () = assert!(OWNER_MASK as usize + 1 >= LANES);

/// The owner word that takes a lane whose word was `prev` (free, or held
/// by a dead owner) for process `pid` in `role`: the next generation.
#[inline]
pub(crate) fn lane_owner(prev: u64, pid: u32, role: u64, locked: bool) -> u64 {
    let gen = (prev >> LANE_GEN_SHIFT).wrapping_add(1) << LANE_GEN_SHIFT;
    gen | LANE_USED | if locked { 0 } else { LANE_NOLOCK } | (role << 32) | pid as u64
}

/// The free word that a lane owned as `owner` goes back to (same
/// generation).
#[inline]
pub(crate) fn lane_free(owner: u64) -> u64 {
    owner & !((1 << LANE_GEN_SHIFT) - 1)
}

/// The word of a lane being freed by process `pid`, which held `owner`.
#[inline]
pub(crate) fn lane_reaping(owner: u64, pid: u32) -> u64 {
    lane_free(owner) | LANE_USED | (ROLE_REAPING << 32) | pid as u64
}

/// The role of a lane owner word (0 when free).
#[inline]
pub(crate) fn lane_role(owner: u64) -> u64 {
    if owner & LANE_USED == 0 {
        0
    } else {
        (owner >> 32) & 0x3f
    }
}

/// The pid of a lane owner word (the loom models' liveness; hand-offs).
#[inline]
pub(crate) fn lane_pid(owner: u64) -> u32 {
    owner as u32
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
}

/// `Header::kind` of a queue (one ring, any number of senders and receivers).
pub(crate) const KIND_QUEUE: u16 = 1;
/// `Header::kind` of a pipe (two connection ends; one or two rings).
pub(crate) const KIND_PIPE: u16 = 2;
/// Most rings in one segment (a duplex pipe).
pub(crate) const MAX_RINGS: u16 = 2;
/// Bytes of the type name kept in the header.
pub(crate) const TYPE_NAME_LEN: usize = 40;

pub(crate) const CONTROL_OFF: usize = 128;

#[cfg(not(loom))]
const _: () = {
    assert!(std::mem::size_of::<Header>() <= CONTROL_OFF);
    assert!(std::mem::offset_of!(Header, ready) == 36);
    assert!(std::mem::offset_of!(Header, kind) == 68);
    assert!(std::mem::offset_of!(Header, rings) == 70);
    assert!(std::mem::offset_of!(Header, type_hash) == 72);
    assert!(std::mem::offset_of!(Header, type_name) == 80);
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

    /// The largest message: half the ring, the most that always fits in an
    /// empty ring wherever its cursor stands (a record may need padding up to
    /// the end of the ring before it).
    pub(crate) fn max_message(&self) -> usize {
        self.capacity / 2
    }
}

/// What a segment holds besides its geometry: written by the creator,
/// validated and copied by every attacher.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Spec {
    pub maxsize: u64,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip() {
        for c in [
            Cursor {
                seq: 0,
                pos: 0,
                closed: false,
            },
            Cursor {
                seq: SEQ_MASK,
                pos: POS_MASK,
                closed: true,
            },
            Cursor {
                seq: 12345,
                pos: 1 << 37,
                closed: false,
            },
        ] {
            assert_eq!(Cursor::unpack(c.pack()), c);
        }
    }

    #[test]
    fn desc_round_trip_and_nonzero() {
        let d = Desc {
            tag: TAG_MASK,
            owner: OWNER_MASK,
            state: ST_SKIP,
            len: LEN_MASK as u32,
        };
        assert_eq!(Desc::unpack(d.pack()), d);
        let d = Desc::new(0, ST_COMMITTED, 0);
        assert_ne!(
            d.pack(),
            0,
            "a committed empty message must not read as EMPTY"
        );
    }

    #[test]
    fn wrapping_arithmetic() {
        assert_eq!(pos_sub(pos_add(POS_MASK, 3), POS_MASK), 3);
        assert_eq!(seq_sub(1, SEQ_MASK), 2);
    }

    #[test]
    fn geometry() {
        assert!(Geometry::new(100).is_none());
        assert!(Geometry::new(MIN_CAPACITY / 2).is_none());
        assert!(Geometry::new(MAX_CAPACITY * 2).is_none());
        let g = Geometry::new(1 << 20).unwrap();
        assert_eq!(g.granules, 16384);
        assert_eq!(g.data_off % PAGE, 0);
        assert_eq!(g.ring_len, g.data_off + (1 << 20));
        assert_eq!(footprint(0), 1);
        assert_eq!(footprint(64), 1);
        assert_eq!(footprint(65), 2);
    }
}
