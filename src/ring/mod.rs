//! The ring protocol: claim, commit, take, release, and the wait/wake
//! protocol around them. No syscalls here: atomics, payload memory and
//! futexes all come through [`crate::sync`], so loom checks this very code.
//!
//! # Protocol (see `layout` for the encodings and docs/DESIGN.md for proofs)
//!
//! * **Claim** (producer): CAS `tail` from `{seq, pos}` to
//!   `{seq + 1, pos + pad + n}` after checking room against `head` (bytes)
//!   and `read.seq` (`maxsize`). `pad` is the rest of the ring when the
//!   record would not fit before its end. The CAS fails if `tail` carries the
//!   closed bit, which makes `close` a single linearisation point.
//! * **Commit** (producer): write the payload, then store the descriptor
//!   `{tag, COMMITTED, len}` with Release. A padding descriptor is stored
//!   right after the claim.
//! * **Take** (consumer): load the descriptor at `read` with Acquire; if it is
//!   committed (or padding) for this lap, CAS `read` past it. The record is
//!   now this consumer's alone; it reads the payload in place.
//! * **Release** (consumer, when the guard drops): records may be released in
//!   any order, but space is reclaimed in order. The releaser of the record at
//!   `head` zeroes its descriptor and moves `head`; any other releaser marks
//!   its descriptor DONE. Whoever moves `head` keeps going while the next
//!   descriptor is DONE, winning each one with a DONE→EMPTY CAS so that
//!   exactly one thread moves `head` past each record.
//! * **Wait/wake**: each side has one wait word, `{epoch: 32 | sleepers:
//!   32}`. A sleeper adds itself to the count (the RMW also reads the
//!   epoch), issues a SeqCst fence, re-checks its condition, then sleeps on
//!   the epoch half (in bounded slices). A waker changes the condition,
//!   issues a SeqCst fence, and only if the count is non-zero moves the
//!   epoch and clears the count in one CAS and calls `FUTEX_WAKE`. The two
//!   fences make it impossible for both the sleeper to miss the change and
//!   the waker to miss the sleeper. Before sleeping, a blocking call spins
//!   as its handle's wait strategy says (`crate::wait`).

use crate::error::{RecvError, SendError};
use crate::layout::*;
#[cfg(any(test, loom))]
use crate::sync::HeapPayload;
use crate::sync::{
    death_point, fence, futex_wait, futex_wake_all, mutant, spin_hint, AtomicU64, Locks, Ordering,
    Payload,
};
use crate::wait::{Backoff, Spun};
use std::cell::Cell;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

/// `maxsize` meaning "bounded by bytes only".
pub(crate) const UNBOUNDED: u64 = u64::MAX;

mod batch;
mod blocks;
mod lanes;
mod large;
mod overflow;
mod recover;
mod recv;
mod release;
mod returns;
mod send;
mod wait;

pub(crate) use batch::SendBatch;
pub(crate) use lanes::{JoinError, NO_LANE};
#[cfg(any(test, loom))]
pub(crate) use overflow::HeapOverflow;
pub(crate) use overflow::Overflow;
pub(crate) use send::SendCache;
#[cfg(any(test, loom))]
pub(crate) use wait::Pinned;
pub(crate) use wait::Relet;

/// Process-local memory a ring may own (heap rings for unit tests and loom).
#[cfg(any(test, loom))]
struct HeapParts {
    _ctrl: Box<Control>,
    _lanes: Box<[Lane]>,
    _descs: Box<[AtomicU64]>,
    _data: HeapPayload,
    _overflow: Option<Box<HeapOverflow>>,
}

/// A record a consumer has taken; hand it back to [`Ring::release`].
#[derive(Debug)]
pub(crate) struct Claim {
    /// Ring position (granules, wrapping) of the record.
    pub pos: u64,
    /// Payload length in bytes (of the message, wherever it lies).
    pub len: usize,
    /// The descriptor word as committed.
    desc: u64,
}

impl Claim {
    /// A copy of the claim read field by field, for the receive fast path.
    ///
    /// `try_recv` returns its `Result<Claim, _>` through memory, written
    /// with 8-byte stores; copying the claim out as the compiler chooses
    /// to (a 16-byte load over two of those stores) cannot be forwarded
    /// from the store buffer and waits for them to reach the cache: a
    /// tenth of a 64 B receive (one thread: 32.7 ns a message against
    /// 28.2 ns with this; docs/BENCHMARKS.md, *Lanes per process*). Each
    /// volatile read is one 8-byte load that forwarding serves.
    #[inline(always)]
    pub(crate) fn relay(&self) -> Claim {
        // SAFETY: each pointer comes from a reference to a field of
        // `self`: valid, aligned and initialized for the read.
        unsafe {
            Claim {
                pos: std::ptr::read_volatile(&self.pos),
                len: std::ptr::read_volatile(&self.len),
                desc: std::ptr::read_volatile(&self.desc),
            }
        }
    }

    /// Whether the record refers to a message in the overflow area (its
    /// [`ExtRef`] is the record's payload in the ring).
    #[inline]
    fn is_ext(&self) -> bool {
        Desc::unpack(self.desc).owner == KIND_EXT
    }
}

/// A ring over some memory: shared memory mapped by `sys::segment`, or the
/// heap.
pub(crate) struct Ring {
    ctrl: NonNull<Control>,
    lanes: NonNull<Lane>,
    descs: NonNull<AtomicU64>,
    data: Payload,
    /// Granules of the ring, or of each block of an unbounded ring (a
    /// record never straddles their end: padding fills it).
    granules: u64,
    mask: u64,
    shift: u32,
    /// Granules that may lie between `head` and `tail`: `granules` for a
    /// bounded ring, the byte bound (or the overflow area) for an
    /// unbounded one.
    room: u64,
    maxsize: u64,
    max_len: usize,
    /// Liveness of the lanes' owners (see `sys::proc`).
    locks: Locks,
    /// The segment's overflow area, if it has one.
    overflow: Option<Overflow>,
    /// An unbounded ring's block table (`None`: records live in the
    /// ring's own data area).
    blocks: Option<blocks::Blocks>,
    /// Which ring of its segment this is (0, or 1 for a duplex pipe's
    /// second direction): overflow units name their ring.
    index: u16,
    #[cfg(any(test, loom))]
    _heap: Option<HeapParts>,
}

// SAFETY: a Ring is a set of pointers into memory that is either owned by the
// ring (`_heap`) or kept mapped by the owner of the ring; every access to it is
// atomic or governed by the claim protocol, which is made for many threads.
unsafe impl Send for Ring {}
// SAFETY: as above.
unsafe impl Sync for Ring {}

impl Ring {
    /// A ring over memory laid out as in `layout`.
    ///
    /// # Safety
    /// `base` points to `geo.ring_len` bytes that stay mapped, readable and
    /// writable for as long as the ring lives, aligned to at least 256
    /// bytes (a segment is page aligned and ring `k` starts at
    /// `k * ring_len`, a multiple of 256: the page-aligned header and data
    /// offsets plus a power-of-two capacity of at least 256; the control
    /// block needs 128); the header and control block were zeroed or are in a state a
    /// shmq ring left them in (any value is memory-safe: every index is
    /// masked and every length checked).
    #[cfg(not(loom))]
    pub(crate) unsafe fn from_raw(
        base: NonNull<u8>,
        geo: &Geometry,
        spec: &Spec,
        locks: Locks,
        overflow: Option<Overflow>,
        index: u16,
    ) -> Self {
        // SAFETY: offsets lie inside the mapping per the caller's contract and
        // are aligned for their types (a base aligned to 256 bytes,
        // const-asserted offsets that keep that alignment).
        unsafe {
            let p = base.as_ptr();
            Ring::from_parts(
                NonNull::new_unchecked(p.add(CONTROL_OFF).cast()),
                NonNull::new_unchecked(p.add(geo.lanes_off).cast()),
                NonNull::new_unchecked(p.add(geo.desc_off).cast()),
                Payload::new(NonNull::new_unchecked(p.add(geo.data_off))),
                geo,
                (spec.maxsize, spec.backlog),
                locks,
                (overflow, index),
                #[cfg(test)]
                None,
            )
        }
    }

    /// A ring in process-local memory (for tests and loom models).
    /// `maxsize` 0 means unbounded.
    #[cfg(any(test, loom))]
    pub(crate) fn new_heap(capacity: usize, maxsize: u64) -> Self {
        Ring::new_heap_overflow(capacity, maxsize, None, 0)
    }

    /// As [`Ring::new_heap`], with an overflow area of `units` units of
    /// `unit_granules` granules each, if given; `backlog` > 0 makes the
    /// ring unbounded (its blocks in that area), holding at most
    /// `backlog` bytes.
    #[cfg(any(test, loom))]
    pub(crate) fn new_heap_overflow(
        capacity: usize,
        maxsize: u64,
        overflow: Option<(u64, u64)>,
        backlog: u64,
    ) -> Self {
        let granules = (capacity / GRANULE) as u64;
        let heap_overflow = overflow.map(|(units, g)| {
            let per_block = (block_bytes(granules) as u64).div_ceil(g * GRANULE as u64);
            let table = if backlog > 0 {
                block_table_len(units, per_block)
            } else {
                0
            };
            Box::new(HeapOverflow::new(units, g, table))
        });
        let view = heap_overflow.as_deref().map(Overflow::from_heap);
        let geo = Geometry::new(capacity).expect("heap ring: capacity out of range");
        let ctrl = Box::new(Control::new());
        let lanes: Box<[Lane]> = (0..LANES).map(|_| Lane::new()).collect();
        let descs: Box<[AtomicU64]> = (0..geo.granules).map(|_| AtomicU64::new(0)).collect();
        let (data, payload) = HeapPayload::new(geo.granules);
        let ctrl_ptr = NonNull::from(&*ctrl);
        let lanes_ptr = NonNull::new(lanes.as_ptr() as *mut Lane).unwrap();
        let desc_ptr = NonNull::new(descs.as_ptr() as *mut AtomicU64).unwrap();
        let heap = HeapParts {
            _ctrl: ctrl,
            _lanes: lanes,
            _descs: descs,
            _data: data,
            _overflow: heap_overflow,
        };
        Ring::from_parts(
            ctrl_ptr,
            lanes_ptr,
            desc_ptr,
            payload,
            &geo,
            (maxsize, backlog),
            Locks::private(),
            (view, 0),
            Some(heap),
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn from_parts(
        ctrl: NonNull<Control>,
        lanes: NonNull<Lane>,
        descs: NonNull<AtomicU64>,
        data: Payload,
        geo: &Geometry,
        (maxsize, backlog): (u64, u64),
        locks: Locks,
        (overflow, index): (Option<Overflow>, u16),
        #[cfg(any(test, loom))] heap: Option<HeapParts>,
    ) -> Self {
        let blocks = overflow
            .as_ref()
            .filter(|_| backlog > 0)
            .and_then(|area| blocks::Blocks::new(area, index, geo.granules));
        let (room, maxsize) = match (&blocks, maxsize) {
            (None, 0) => (geo.granules, UNBOUNDED),
            (None, m) => (geo.granules, m),
            (Some(_), m) => (
                (backlog / GRANULE as u64).clamp(1, MAX_OVERFLOW / GRANULE as u64),
                if m == 0 { MAX_UNBOUNDED_MESSAGES } else { m },
            ),
        };
        Ring {
            ctrl,
            lanes,
            descs,
            data,
            granules: geo.granules,
            mask: geo.granules - 1,
            shift: geo.shift,
            room,
            maxsize,
            max_len: geo.max_message(),
            locks,
            overflow,
            blocks,
            index,
            #[cfg(any(test, loom))]
            _heap: heap,
        }
    }

    #[inline]
    fn ctrl(&self) -> &Control {
        // SAFETY: valid for the ring's lifetime (constructor contract).
        unsafe { self.ctrl.as_ref() }
    }

    /// The descriptor of the granule where position `pos` falls (of an
    /// unbounded ring: in its block, or, outside every live block, a
    /// private word that reads empty).
    #[inline]
    fn desc(&self, pos: u64) -> &AtomicU64 {
        match &self.blocks {
            // SAFETY: the index is masked to `0..granules`, the array's length.
            None => unsafe { &*self.descs.as_ptr().add((pos & self.mask) as usize) },
            Some(b) => self.block_desc(b, pos),
        }
    }

    /// The payload memory and granule where position `pos` falls; `None`
    /// for a position of an unbounded ring outside every live block (a
    /// peer broke the protocol).
    #[inline]
    fn data_at(&self, pos: u64) -> Option<(&Payload, u64)> {
        match &self.blocks {
            None => Some((&self.data, pos & self.mask)),
            Some(b) => self.block_data(b, pos),
        }
    }

    /// Whether the ring is unbounded (its records in blocks).
    pub(crate) fn is_unbounded(&self) -> bool {
        self.blocks.is_some()
    }

    /// Largest message kept in the ring itself, in bytes.
    pub(crate) fn max_len(&self) -> usize {
        self.max_len
    }

    /// Capacity of the data area in bytes.
    pub(crate) fn capacity(&self) -> usize {
        self.granules as usize * GRANULE
    }

    /// `maxsize` in messages, `None` when bounded only by bytes (an
    /// unbounded ring's implicit count is not reported).
    pub(crate) fn maxsize(&self) -> Option<u64> {
        let implicit = self.blocks.is_some() && self.maxsize == MAX_UNBOUNDED_MESSAGES;
        (self.maxsize != UNBOUNDED && !implicit).then_some(self.maxsize)
    }

    /// Records that `head` or `read.seq` crossed an epoch boundary.
    #[cold]
    fn bump_epoch(&self) {
        // Relaxed: see the load in `claim`; only the count matters.
        self.ctrl().epoch.fetch_add(1, Ordering::Relaxed);
    }

    /// Stops all further sends and wakes every sleeper. Idempotent.
    pub(crate) fn close(&self) {
        let ctrl = self.ctrl();
        // SeqCst: a single point after which every claim fails; the wakes
        // below follow it.
        ctrl.tail.fetch_or(CLOSED, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if mutant!("close_no_wake", true, false) {
            self.wake_all(&ctrl.recv_wait);
            self.wake_all(&ctrl.send_wait);
        }
    }

    /// Whether `close` has been called.
    pub(crate) fn is_closed(&self) -> bool {
        // Relaxed: a snapshot; "closed" never becomes false again.
        Cursor::unpack(self.ctrl().tail.load(Ordering::Relaxed)).closed
    }

    /// Messages sent (or being written) and not yet taken: a snapshot.
    pub(crate) fn len(&self) -> usize {
        let (n, _) = self.snapshot();
        n.min(self.room).min(self.maxsize) as usize
    }

    /// Messages queued (unclamped) and the `tail` cursor, from one load each.
    fn snapshot(&self) -> (u64, Cursor) {
        let ctrl = self.ctrl();
        // Relaxed (both): snapshots; `read` first, so the difference is never negative.
        let r = Cursor::unpack(ctrl.read.load(Ordering::Relaxed));
        let t = Cursor::unpack(ctrl.tail.load(Ordering::Relaxed));
        (seq_sub(t.seq, r.seq), t)
    }

    /// Every shared counter, one Relaxed load each (a snapshot for reports).
    #[cfg(not(loom))]
    pub(crate) fn diagnostics(&self) -> crate::diag::Diagnostics {
        // Relaxed (all): a snapshot for reports; nothing is read through
        // these values.
        let ctrl = self.ctrl();
        let t = Cursor::unpack(ctrl.tail.load(Ordering::Relaxed));
        let r = Cursor::unpack(ctrl.read.load(Ordering::Relaxed));
        let head = ctrl.head.load(Ordering::Relaxed);
        let cell = |c: &WaitCell| {
            let w = c.word.load(Ordering::Relaxed);
            (sleepers(w), wake_epoch(w))
        };
        let (recv_waiters, recv_wakes) = cell(&ctrl.recv_wait);
        let (send_waiters, send_wakes) = cell(&ctrl.send_wait);
        let seen = ctrl.seen.load(Ordering::Relaxed);
        crate::diag::Diagnostics {
            tail_pos: t.pos,
            tail_seq: t.seq,
            closed: t.closed,
            read_pos: r.pos,
            read_seq: r.seq,
            head_pos: head,
            recv_waiters,
            send_waiters,
            recv_wakes,
            send_wakes,
            desc_at_read: self.desc(r.pos).load(Ordering::Relaxed),
            desc_at_head: self.desc(head).load(Ordering::Relaxed),
            senders: role_count(seen, ROLE_SENDER) as u32,
            receivers: role_count(seen, ROLE_RECEIVER) as u32,
            overflow_units: self.overflow_used(),
            lanes_used: self
                .lanes()
                // Relaxed: a snapshot.
                .filter(|(_, l)| l.owner.load(Ordering::Relaxed) & LANE_USED != 0)
                .count() as u32,
            lanes_total: LANES as u32,
            lanes_here: self.locks.held_here() as u32,
            fd_limit: crate::sys::proc::fd_limit(),
        }
    }

    /// Whether a sender would find no room: `maxsize` messages queued, or
    /// not a single free granule.
    pub(crate) fn is_full(&self) -> bool {
        // Relaxed: a snapshot; `head` first, so `tail - head` is never negative.
        let h = self.ctrl().head.load(Ordering::Relaxed);
        let (n, t) = self.snapshot();
        n >= self.maxsize || pos_sub(t.pos, h) >= self.room
    }
}

#[cfg(any(test, loom))]
impl Control {
    /// All-zero control block, as a fresh segment has.
    pub(crate) fn new() -> Self {
        use crossbeam_utils::CachePadded;
        let cell = || CachePadded::new(WaitCell::new());
        Control {
            tail: CachePadded::new(AtomicU64::new(0)),
            read: CachePadded::new(AtomicU64::new(0)),
            head: CachePadded::new(AtomicU64::new(0)),
            recv_wait: cell(),
            send_wait: cell(),
            epoch: CachePadded::new(AtomicU64::new(0)),
            seen: CachePadded::new(AtomicU64::new(0)),
            watch: CachePadded::new(AtomicU64::new(0)),
            returned: CachePadded::new(AtomicU64::new(0)),
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests;
