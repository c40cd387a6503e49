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
use crate::sync::{
    death_point, fence, futex_wait, futex_wake_all, mutant, spin_hint, AtomicU64, Locks, Ordering,
};
use crate::wait::{Backoff, Spun};
use std::cell::Cell;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

/// The watcher's futex sleep (see [`Ring::watch`]): it wakes at least this
/// often to scan for dead peers, so a wake-up that a dead peer never sent
/// costs it at most this.
const SLEEP_SLICE: Duration = Duration::from_millis(100);
/// Every other blocked waiter's futex sleep: it wakes this often to check
/// whether its peers are gone (no system call) and to replace a watcher
/// that stopped watching.
const LONG_SLICE: Duration = Duration::from_millis(1000);

/// Room, in granules, that a blocking send that found the ring full waits
/// for beyond its own message, at least (see [`Ring::await_slack`]).
const SLACK_GRANULES: u64 = 64;
/// How long such a send waits for that room at most.
const SLACK_WAIT: Duration = Duration::from_micros(10);
/// Spin hints between two looks at `head` while it waits.
const SLACK_SPINS: u32 = 8;

/// A spinning waiter makes its full attempt at least every this many tries,
/// whatever its cheaper hint says (see `Ring::block`).
const FULL_EVERY: u32 = 16;

/// `maxsize` meaning "bounded by bytes only".
pub(crate) const UNBOUNDED: u64 = u64::MAX;

/// The payload area. Normal builds: raw shared memory.
#[cfg(not(loom))]
struct Data {
    base: NonNull<u8>,
}

#[cfg(not(loom))]
impl Data {
    /// # Safety
    /// `[gran * GRANULE, gran * GRANULE + bytes.len())` lies inside the data
    /// area and is owned by the caller (claimed, not yet committed).
    #[inline]
    unsafe fn write(&self, gran: u64, bytes: &[u8]) {
        // SAFETY: the caller guarantees the range is in bounds and claimed,
        // so no other thread reads or writes it until our commit.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.base.as_ptr().add(gran as usize * GRANULE),
                bytes.len(),
            )
        }
    }

    /// # Safety
    /// The range is in bounds and holds a record the caller has taken and
    /// not yet released; the slice must not outlive the release.
    #[inline]
    unsafe fn slice(&self, gran: u64, len: usize) -> &[u8] {
        // SAFETY: as above; a taken record is written by nobody until released.
        unsafe { std::slice::from_raw_parts(self.base.as_ptr().add(gran as usize * GRANULE), len) }
    }
}

/// The payload area under loom: one tracked cell per granule, so loom flags
/// a payload read that is not ordered after its write (or a write that is not
/// ordered after the previous lap's read).
#[cfg(loom)]
struct Data {
    cells: NonNull<loom::cell::UnsafeCell<[u8; GRANULE]>>,
}

#[cfg(loom)]
impl Data {
    unsafe fn write(&self, gran: u64, bytes: &[u8]) {
        for (i, chunk) in bytes.chunks(GRANULE).enumerate() {
            // SAFETY: in bounds per the caller's contract.
            let cell = unsafe { &*self.cells.as_ptr().add(gran as usize + i) };
            // SAFETY: loom checks that this access is exclusive.
            cell.with_mut(|p| unsafe { (&mut *p)[..chunk.len()].copy_from_slice(chunk) });
        }
    }

    unsafe fn copy_out(&self, gran: u64, len: usize, out: &mut Vec<u8>) {
        let mut left = len;
        let mut g = gran as usize;
        while left > 0 {
            let n = left.min(GRANULE);
            // SAFETY: in bounds per the caller's contract.
            let cell = unsafe { &*self.cells.as_ptr().add(g) };
            // SAFETY: loom checks that no write races with this read.
            cell.with(|p| out.extend_from_slice(unsafe { &(&*p)[..n] }));
            left -= n;
            g += 1;
        }
    }
}

/// Process-local memory a ring may own (heap rings for unit tests and loom).
#[cfg(any(test, loom))]
struct HeapParts {
    _ctrl: Box<Control>,
    _lanes: Box<[Lane]>,
    _descs: Box<[AtomicU64]>,
    #[cfg(not(loom))]
    _data: Box<[AlignedGranule]>,
    #[cfg(loom)]
    _data: Box<[loom::cell::UnsafeCell<[u8; GRANULE]>]>,
}

#[cfg(all(test, not(loom)))]
#[repr(C, align(64))]
struct AlignedGranule([u8; GRANULE]);

mod lanes;
pub(crate) use lanes::NO_LANE;

/// A producer handle's private view: the last `head` and `read.seq` it saw.
/// Both only ever grow, so a stale copy errs towards "full" and is refreshed
/// only then (rigtorp's cached-index trick: no cache-line traffic with the
/// consumers while the copy says there is room).
pub(crate) struct SendCache {
    head: Cell<u64>,
    read_seq: Cell<u64>,
    /// `Control::epoch` when `head` and `read_seq` were last loaded; a new
    /// handle starts with a value the epoch never takes, forcing a load.
    epoch: Cell<u64>,
    /// How a blocking send waits (see `Ring::block`).
    pub(crate) wait: Backoff,
    /// The handle's lane ([`NO_LANE`]: none; its claims cannot be recovered
    /// if it dies mid-send).
    pub(crate) lane: Cell<u16>,
}

impl Default for SendCache {
    fn default() -> Self {
        SendCache {
            head: Cell::new(0),
            read_seq: Cell::new(0),
            epoch: Cell::new(u64::MAX),
            wait: Backoff::default(),
            lane: Cell::new(NO_LANE),
        }
    }
}

/// Several sends that wake receivers once, when the batch ends (drops):
/// every commit is followed by one fence and `waiters` check before the
/// sender blocks (it wakes before waiting for room) or returns.
pub(crate) struct SendBatch<'a> {
    ring: &'a Ring,
    cache: &'a SendCache,
    deadline: Option<Instant>,
    sent: usize,
}

impl<'a> SendBatch<'a> {
    pub(crate) fn new(ring: &'a Ring, cache: &'a SendCache, deadline: Option<Instant>) -> Self {
        SendBatch {
            ring,
            cache,
            deadline,
            sent: 0,
        }
    }

    /// Sends one message of the batch, waiting for room as `Ring::send`.
    pub(crate) fn send(&mut self, bytes: &[u8]) -> Result<(), SendError> {
        let r = match self.ring.try_send_inner(self.cache, bytes, false) {
            Err(SendError::Full) => {
                // Receivers must see what we committed before we wait for
                // them to make room.
                self.wake();
                self.ring.send(self.cache, bytes, self.deadline)
            }
            r => r,
        };
        self.sent += r.is_ok() as usize;
        r
    }

    /// Sends one message of the batch if there is room now.
    pub(crate) fn try_send(&mut self, bytes: &[u8]) -> Result<(), SendError> {
        let r = self.ring.try_send_inner(self.cache, bytes, false);
        self.sent += r.is_ok() as usize;
        r
    }

    /// Messages sent so far.
    pub(crate) fn sent(&self) -> usize {
        self.sent
    }

    /// Wakes receivers for the commits of this batch so far.
    fn wake(&self) {
        if self.sent > 0 && mutant!("batch_send_no_wake", true, false) {
            self.ring.wake_receivers();
        }
    }
}

impl Drop for SendBatch<'_> {
    fn drop(&mut self) {
        self.wake();
    }
}

/// A record a consumer has taken; hand it back to [`Ring::release`].
#[derive(Debug)]
pub(crate) struct Claim {
    /// Ring position (granules, wrapping) of the record.
    pub pos: u64,
    /// Payload length in bytes.
    pub len: usize,
    /// The descriptor word as committed.
    desc: u64,
}

/// A ring over some memory: shared memory mapped by `segment`, or the heap.
pub(crate) struct Ring {
    ctrl: NonNull<Control>,
    lanes: NonNull<Lane>,
    descs: NonNull<AtomicU64>,
    data: Data,
    granules: u64,
    mask: u64,
    shift: u32,
    maxsize: u64,
    max_len: usize,
    /// Liveness of the lanes' owners (see `proc`).
    locks: Locks,
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
        maxsize: u64,
        locks: Locks,
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
                Data {
                    base: NonNull::new_unchecked(p.add(geo.data_off)),
                },
                geo,
                maxsize,
                locks,
                #[cfg(test)]
                None,
            )
        }
    }

    /// A ring in process-local memory (for tests and loom models).
    /// `maxsize` 0 means unbounded.
    #[cfg(any(test, loom))]
    pub(crate) fn new_heap(capacity: usize, maxsize: u64) -> Self {
        let geo = Geometry::new(capacity).expect("heap ring: capacity out of range");
        let ctrl = Box::new(Control::new());
        let lanes: Box<[Lane]> = (0..LANES).map(|_| Lane::new()).collect();
        let descs: Box<[AtomicU64]> = (0..geo.granules).map(|_| AtomicU64::new(0)).collect();
        #[cfg(not(loom))]
        let data: Box<[AlignedGranule]> = (0..geo.granules)
            .map(|_| AlignedGranule([0; GRANULE]))
            .collect();
        #[cfg(loom)]
        let data: Box<[loom::cell::UnsafeCell<[u8; GRANULE]>]> = (0..geo.granules)
            .map(|_| loom::cell::UnsafeCell::new([0; GRANULE]))
            .collect();
        let ctrl_ptr = NonNull::from(&*ctrl);
        let lanes_ptr = NonNull::new(lanes.as_ptr() as *mut Lane).unwrap();
        let desc_ptr = NonNull::new(descs.as_ptr() as *mut AtomicU64).unwrap();
        #[cfg(not(loom))]
        let d = Data {
            base: NonNull::new(data.as_ptr() as *mut u8).unwrap(),
        };
        #[cfg(loom)]
        let d = Data {
            cells: NonNull::new(data.as_ptr() as *mut _).unwrap(),
        };
        let heap = HeapParts {
            _ctrl: ctrl,
            _lanes: lanes,
            _descs: descs,
            _data: data,
        };
        #[cfg(not(loom))]
        let locks = Locks::private();
        #[cfg(loom)]
        let locks = Locks;
        Ring::from_parts(
            ctrl_ptr,
            lanes_ptr,
            desc_ptr,
            d,
            &geo,
            maxsize,
            locks,
            Some(heap),
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn from_parts(
        ctrl: NonNull<Control>,
        lanes: NonNull<Lane>,
        descs: NonNull<AtomicU64>,
        data: Data,
        geo: &Geometry,
        maxsize: u64,
        locks: Locks,
        #[cfg(any(test, loom))] heap: Option<HeapParts>,
    ) -> Self {
        Ring {
            ctrl,
            lanes,
            descs,
            data,
            granules: geo.granules,
            mask: geo.granules - 1,
            shift: geo.shift,
            maxsize: if maxsize == 0 { UNBOUNDED } else { maxsize },
            max_len: geo.max_message(),
            locks,
            #[cfg(any(test, loom))]
            _heap: heap,
        }
    }

    #[inline]
    fn ctrl(&self) -> &Control {
        // SAFETY: valid for the ring's lifetime (constructor contract).
        unsafe { self.ctrl.as_ref() }
    }

    /// The descriptor of the granule where position `pos` falls.
    #[inline]
    fn desc(&self, pos: u64) -> &AtomicU64 {
        // SAFETY: the index is masked to `0..granules`, the array's length.
        unsafe { &*self.descs.as_ptr().add((pos & self.mask) as usize) }
    }

    /// Largest message in bytes.
    pub(crate) fn max_len(&self) -> usize {
        self.max_len
    }

    /// Capacity of the data area in bytes.
    pub(crate) fn capacity(&self) -> usize {
        self.granules as usize * GRANULE
    }

    /// `maxsize` in messages, `None` when bounded only by bytes.
    pub(crate) fn maxsize(&self) -> Option<u64> {
        (self.maxsize != UNBOUNDED).then_some(self.maxsize)
    }

    // ---------------------------------------------------------------- send

    /// Claims room for `bytes`, writes and commits them, or fails at once.
    #[inline]
    pub(crate) fn try_send(&self, cache: &SendCache, bytes: &[u8]) -> Result<(), SendError> {
        self.try_send_inner(cache, bytes, true)
    }

    /// `try_send`; with `wake` false the receivers are not woken, and the
    /// caller owes a [`Ring::wake_receivers`] before it blocks or returns
    /// (see [`SendBatch`]).
    #[inline]
    fn try_send_inner(&self, cache: &SendCache, bytes: &[u8], wake: bool) -> Result<(), SendError> {
        let len = bytes.len();
        if len > self.max_len {
            return Err(SendError::TooLarge {
                len,
                max: self.max_len,
            });
        }
        let fp = footprint(len);
        let ctrl = self.ctrl();
        let lane = self.lane_opt(cache.lane.get());
        // Whether our lane notes a claim; a failed try then writes nothing.
        let mut noted = None;
        // Relaxed: the language model puts no bound on how late a bump
        // becomes visible, but hardware makes it visible within nanoseconds,
        // and to matter a missed bump would have to stay invisible across
        // 2^36 granules (4 TiB) or 2^23 messages of traffic by others.
        let epoch = ctrl.epoch.load(Ordering::Relaxed);
        if epoch != cache.epoch.get() {
            self.refresh_cache(cache, epoch);
        }
        // Relaxed: `tail` is only a ticket dispenser. Exclusive ownership of
        // the claimed bytes comes from the atomicity of the CAS below; that
        // they are free comes from the Acquire load of `head`.
        let mut t = ctrl.tail.load(Ordering::Relaxed);
        let (pos, pad) = loop {
            let c = Cursor::unpack(t);
            if c.closed && mutant!("claim_ignores_closed", true, false) {
                self.clear_intent(noted);
                return Err(SendError::Closed);
            }
            let to_end = self.granules - (c.pos & self.mask);
            let pad = if fp <= to_end { 0 } else { to_end };
            let need = pad + fp;
            // Possibly full (by bytes, then by count) -> refresh the cached
            // copy -> really full?
            let no_bytes = |h: u64| pos_sub(c.pos, h) + need > self.granules;
            let no_slot = |r: u64| {
                self.maxsize != UNBOUNDED
                    && mutant!(
                        "maxsize_off_by_one",
                        seq_sub(c.seq, r) >= self.maxsize,
                        seq_sub(c.seq, r) > self.maxsize
                    )
            };
            let full = (no_bytes(cache.head.get()) && {
                cache.head.set(self.load_head());
                no_bytes(cache.head.get())
            }) || (no_slot(cache.read_seq.get()) && {
                cache.read_seq.set(self.load_read_seq());
                no_slot(cache.read_seq.get())
            });
            if full {
                match self.recheck_tail(t) {
                    Some(t2) => {
                        t = t2;
                        continue;
                    }
                    None => {
                        self.clear_intent(noted);
                        return Err(SendError::Full);
                    }
                }
            }
            let next = Cursor {
                seq: (c.seq + 1) & SEQ_MASK,
                pos: pos_add(c.pos, need),
                closed: false,
            };
            if let Some(l) = lane.filter(|_| mutant!("claim_unnoted", true, false)) {
                // Relaxed: published by the Release CAS below.
                l.need.store(pad << 32 | fp, Ordering::Relaxed);
                l.intent.store(t | INTENT_SET, Ordering::Relaxed);
                noted = Some(l);
            }
            // Release on success: whoever acquires this `tail` (a survivor in
            // `recover_read`) sees the lane's intent, so a claim is never
            // without a recorded owner. Otherwise `tail` is only a ticket
            // dispenser: exclusive ownership of the bytes comes from the
            // atomicity of the CAS, their being free from the Acquire load of
            // `head`.
            match ctrl.tail.compare_exchange_weak(
                t,
                next.pack(),
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => break (c.pos, pad),
                Err(actual) => t = actual,
            }
        };
        // `[pos, pos + pad + fp)` is ours.
        death_point!("claimed", Ok(()));
        if pad > 0 {
            let d = Desc::new(
                tag_of(pos, self.shift),
                ST_PADDING,
                (pad as usize * GRANULE) as u32,
            );
            // SYNC: pairs with the consumer's Acquire load of the descriptor
            // (no payload to publish; Release keeps it uniform with commits).
            self.desc(pos).store(d.pack(), Ordering::Release);
        }
        let rec = pos_add(pos, pad);
        death_point!("padded", Ok(()));
        // SAFETY: `rec & mask` + footprint <= granules (the record fits
        // before the end by the choice of `pad`), and the range is ours.
        unsafe { self.data.write(rec & self.mask, bytes) };
        death_point!("written", Ok(()));
        let d = Desc::new(tag_of(rec, self.shift), ST_COMMITTED, len as u32);
        // SYNC (commit): pairs with the Acquire load of the descriptor in
        // `try_recv`; the payload written above is visible to whoever sees it.
        let order = mutant!("commit_relaxed", Ordering::Release, Ordering::Relaxed);
        self.desc(rec).store(d.pack(), order);
        if let Some(l) = lane {
            // SYNC: Release, after the commit: a survivor that reads the
            // intent cleared sees the commit, and never undoes it.
            l.intent.store(0, Ordering::Release);
        }
        if wake {
            self.wake_receivers();
        }
        Ok(())
    }

    /// Wakes sleeping receivers after one or more commits: Dekker with a
    /// receiver's `register` + re-check, either it sees the commits or we
    /// see it counted in `waiters`. The fence orders every earlier commit
    /// before the `waiters` load, so one call after the last commit of a
    /// batch covers them all.
    pub(crate) fn wake_receivers(&self) {
        fence(Ordering::SeqCst);
        self.wake_if_waiting(&self.ctrl().recv_wait);
    }

    /// Wakes sleeping senders after takes (`maxsize`) or releases; as
    /// `wake_receivers`. Every release that moved `head` ended with a
    /// SeqCst fence (in `advance`), and this one orders all of them before
    /// the load.
    pub(crate) fn wake_senders(&self) {
        fence(Ordering::SeqCst);
        self.wake_if_waiting(&self.ctrl().send_wait);
    }

    #[cold]
    fn refresh_cache(&self, cache: &SendCache, epoch: u64) {
        cache.head.set(self.load_head());
        cache.read_seq.set(self.load_read_seq());
        cache.epoch.set(epoch);
    }

    /// `head`, for a producer about to reuse the space before it.
    #[inline]
    fn load_head(&self) -> u64 {
        // SYNC: pairs with the Release store in `set_head`: the consumers'
        // reads of the space we may reuse, and the zeroing of its
        // descriptors, happen-before our writes.
        let order = mutant!("head_load_relaxed", Ordering::Acquire, Ordering::Relaxed);
        self.ctrl().head.load(order)
    }

    /// `read.seq`, for a producer checking `maxsize`.
    #[inline]
    fn load_read_seq(&self) -> u64 {
        // Relaxed: only a count is read; no memory is reused because of it
        // (bytes are governed by `head`).
        Cursor::unpack(self.ctrl().read.load(Ordering::Relaxed)).seq
    }

    /// Records that `head` or `read.seq` crossed an epoch boundary.
    #[cold]
    fn bump_epoch(&self) {
        // Relaxed: see the load in `try_send`; only the count matters.
        self.ctrl().epoch.fetch_add(1, Ordering::Relaxed);
    }

    /// A "full" verdict is only trusted if `tail` did not move meanwhile:
    /// `head`/`read` may have been loaded after a newer `tail`, which would
    /// make the distance computed from our stale `tail` meaningless.
    #[inline]
    fn recheck_tail(&self, t: u64) -> Option<u64> {
        // Relaxed: only compared with `t`; a stale value at worst returns
        // Full, as any snapshot of a racing queue may.
        let t2 = self.ctrl().tail.load(Ordering::Relaxed);
        (t2 != t).then_some(t2)
    }

    /// Blocking send: spin, then sleep until room, `close`, or `deadline`.
    pub(crate) fn send(
        &self,
        cache: &SendCache,
        bytes: &[u8],
        deadline: Option<Instant>,
    ) -> Result<(), SendError> {
        let attempt = || match self.try_send(cache, bytes) {
            Err(SendError::Full) => None,
            r => Some(r),
        };
        match self.try_send(cache, bytes) {
            Err(SendError::Full) => {
                if self.await_slack(cache, footprint(bytes.len()), deadline) {
                    match self.try_send(cache, bytes) {
                        Err(SendError::Full) => {}
                        r => return r,
                    }
                }
                self.block(
                    &self.ctrl().send_wait,
                    deadline,
                    &cache.wait,
                    cache.lane.get(),
                    ROLE_RECEIVER,
                    attempt,
                    || true,
                    || Err(SendError::Disconnected),
                )
                .unwrap_or(Err(SendError::Timeout))
            }
            r => r,
        }
    }

    /// Breaks the full-ring lock-step. A producer that finds the ring full
    /// and took each granule the moment a consumer freed it would write the
    /// very descriptor line and read the very `head` the consumer is
    /// writing, for every message: both cores then pass those lines back
    /// and forth (about 150 ns a message) and the pair runs at a fraction
    /// of its speed. Instead, a blocking send waits, reading `head` only
    /// every [`SLACK_SPINS`] spin hints, until there is room for its
    /// message and as much again as [`SLACK_GRANULES`] or four such
    /// messages, whichever is more, up to a quarter of the ring (and, under
    /// `maxsize`, an eighth of the slots), then sends a burst from its
    /// cached `head` without touching the consumers' lines. It waits at
    /// most [`SLACK_WAIT`]: room that does not come (a consumer holds
    /// records) never stops a send that fits. Returns whether to try again
    /// now (the room came, or the ring was closed); `false` leaves the rest
    /// to `block`. `try_send` never waits here.
    #[cold]
    fn await_slack(&self, cache: &SendCache, fp: u64, deadline: Option<Instant>) -> bool {
        if cache.wait.strategy() == crate::wait::WaitStrategy::Spin(0) {
            return false;
        }
        let want_bytes =
            (fp + SLACK_GRANULES.max(4 * fp).min(self.granules / 4)).min(self.granules);
        let want_slots = (self.maxsize / 8).clamp(1, 64);
        #[cfg(not(loom))]
        let start = Instant::now();
        loop {
            // Not under loom: its yields would let the other threads run
            // first on every schedule, hiding the ones where this send
            // goes to sleep before they act (the mutants `no_maxsize_wake`
            // and `batch_*_no_wake` went uncaught with them).
            #[cfg(not(loom))]
            for _ in 0..SLACK_SPINS {
                spin_hint();
            }
            // Relaxed: only the position and the closed bit are compared;
            // the claim itself is made by `try_send`'s CAS.
            let t = Cursor::unpack(self.ctrl().tail.load(Ordering::Relaxed));
            if t.closed {
                return true;
            }
            // Acquire (in `load_head`): the cached copy is what `try_send`
            // trusts next, to reuse the room before it (the break
            // `slack_head_relaxed` caches a Relaxed load).
            let h = mutant!(
                "slack_head_relaxed",
                self.load_head(),
                self.ctrl().head.load(Ordering::Relaxed)
            );
            cache.head.set(h);
            let bytes_ok =
                self.granules - pos_sub(t.pos, cache.head.get()).min(self.granules) >= want_bytes;
            let slots_ok = self.maxsize == UNBOUNDED || {
                cache.read_seq.set(self.load_read_seq());
                let used = seq_sub(t.seq, cache.read_seq.get());
                self.maxsize.saturating_sub(used) >= want_slots
            };
            if bytes_ok && slots_ok {
                return true;
            }
            // Under loom one look is enough to model the wait; the break
            // `slack_unbounded` waits for the slack however long it takes.
            #[cfg(loom)]
            if !crate::sync::mutant_on("slack_unbounded") {
                return false;
            }
            #[cfg(not(loom))]
            {
                let now = Instant::now();
                if now.duration_since(start) >= SLACK_WAIT || deadline.is_some_and(|d| now >= d) {
                    return false;
                }
            }
            #[cfg(loom)]
            let _ = deadline;
        }
    }

    // ---------------------------------------------------------------- recv

    /// Takes the next committed record, or fails at once.
    #[inline]
    pub(crate) fn try_recv(&self, lane: u16) -> Result<Claim, RecvError> {
        self.try_recv_inner(true, lane)
    }

    /// `try_recv` without waking a sender waiting for `maxsize`: the caller
    /// owes a [`Ring::wake_senders`] (see [`Ring::take_ready`]).
    #[inline]
    pub(crate) fn try_recv_quiet(&self, lane: u16) -> Result<Claim, RecvError> {
        self.try_recv_inner(false, lane)
    }

    fn try_recv_inner(&self, wake: bool, lane_idx: u16) -> Result<Claim, RecvError> {
        let ctrl = self.ctrl();
        let lane = self.lane_opt(lane_idx);
        // Whether our lane notes a take; an empty poll then writes nothing.
        let mut noted = None;
        // Relaxed: `read` is a ticket; the payload is published by the
        // descriptor, loaded with Acquire below.
        let mut r = ctrl.read.load(Ordering::Relaxed);
        loop {
            let c = Cursor::unpack(r);
            // SYNC: pairs with the producer's Release store of the descriptor
            // (commit): its payload is visible to us if we see COMMITTED.
            let w = self.desc(c.pos).load(Ordering::Acquire);
            let d = Desc::unpack(w);
            let ready = w != 0
                && d.tag == tag_of(c.pos, self.shift)
                && (d.state == ST_COMMITTED || d.state == ST_PADDING || d.state == ST_SKIP);
            if ready {
                let is_msg = d.state == ST_COMMITTED;
                let counted = is_msg || d.state == ST_SKIP;
                let fp = footprint(d.len as usize);
                // Untrusted: a peer may have written anything here.
                if (counted && d.len as usize > self.max_len)
                    || (c.pos & self.mask) + fp > self.granules
                {
                    self.clear_intent(noted);
                    return Err(RecvError::Corrupted("record length runs past the ring"));
                }
                let next = Cursor {
                    seq: if counted {
                        (c.seq + 1) & SEQ_MASK
                    } else {
                        c.seq
                    },
                    pos: pos_add(c.pos, fp),
                    closed: false,
                };
                if let Some(l) = lane {
                    // Relaxed: published by the Release CAS below.
                    l.intent.store(r | INTENT_SET, Ordering::Relaxed);
                    noted = Some(l);
                }
                // Release on success: a survivor that acquires this `read`
                // (`recover_head`) sees our intent. Otherwise uniqueness of
                // the take comes from the CAS itself; the data was acquired
                // through the descriptor.
                let took = mutant!(
                    "take_by_store",
                    ctrl.read.compare_exchange_weak(
                        r,
                        next.pack(),
                        Ordering::Release,
                        Ordering::Relaxed,
                    ),
                    {
                        ctrl.read.store(next.pack(), Ordering::Relaxed);
                        Ok(r)
                    }
                );
                match took {
                    Ok(_) if is_msg => {
                        death_point!("taken", Err(RecvError::Empty));
                        if let Some(l) = lane {
                            let held = Desc {
                                owner: lane_idx as u64,
                                state: ST_TAKEN,
                                ..d
                            };
                            // SYNC: Release, though survivors read the owner
                            // only after acquiring our cleared intent: this
                            // store replaces a taken record's descriptor, so
                            // another consumer that loads it (Acquire) at a
                            // stale `read` must then see our CAS of `read`
                            // when it re-loads it, or it reports a spurious
                            // Empty (the reasoning at "Nothing ready at
                            // `read`" below; mutant `taken_relaxed`).
                            let order =
                                mutant!("taken_relaxed", Ordering::Release, Ordering::Relaxed);
                            if mutant!("take_unmarked", true, false) {
                                self.desc(c.pos).store(held.pack(), order);
                            }
                            // SYNC: Release pairs with a survivor's Acquire
                            // load of the intent: seeing it cleared, it sees
                            // TAKEN (and the lane that holds it).
                            l.intent.store(0, Ordering::Release);
                        }
                        if crosses(c.seq, next.seq, SEQ_EPOCH_SHIFT) {
                            self.bump_epoch();
                        }
                        if wake
                            && self.maxsize != UNBOUNDED
                            && mutant!("no_maxsize_wake", true, false)
                        {
                            // Dekker with a sender waiting for `maxsize`.
                            self.wake_senders();
                        }
                        return Ok(Claim {
                            pos: c.pos,
                            len: d.len as usize,
                            desc: w,
                        });
                    }
                    Ok(_) => {
                        // Padding or a dead claim: nothing to hand out,
                        // release it at once.
                        if counted && crosses(c.seq, next.seq, SEQ_EPOCH_SHIFT) {
                            self.bump_epoch();
                        }
                        death_point!("taken", Err(RecvError::Empty));
                        self.release_at(c.pos, w, true, lane_idx);
                        self.clear_intent(noted.take());
                        r = next.pack();
                    }
                    Err(actual) => r = actual,
                }
                continue;
            }
            // Nothing ready at `read` -- unless another consumer moved it and
            // what we loaded was written after its take. Relaxed is enough:
            // every store that replaces a taken record's descriptor is a
            // Release that follows the CAS of `read` past it, and we loaded
            // the descriptor with Acquire, so that CAS is visible here.
            let again = ctrl.read.load(Ordering::Relaxed);
            if again != r {
                r = again;
                continue;
            }
            // Relaxed: we only read the closed bit and the position; if no
            // record was claimed at or after `read` when `tail` was closed,
            // none ever will be.
            let t = Cursor::unpack(ctrl.tail.load(Ordering::Relaxed));
            if mutant!("try_recv_waits_for_commit", false, t.pos != c.pos) {
                // The break: wait for a claimed record's commit (as a bounded
                // queue with per-slot stamps may), instead of reporting Empty.
                spin_hint();
                r = ctrl.read.load(Ordering::Relaxed);
                continue;
            }
            let closed_and_drained = mutant!("recv_closed_early", t.pos == c.pos, true);
            self.clear_intent(noted);
            return Err(if t.closed && closed_and_drained {
                RecvError::Closed
            } else {
                RecvError::Empty
            });
        }
    }

    /// Blocking receive: wait as `wait` says, then sleep until a commit,
    /// `close`, or `deadline`.
    pub(crate) fn recv(
        &self,
        deadline: Option<Instant>,
        wait: &Backoff,
        lane: u16,
    ) -> Result<Claim, RecvError> {
        let attempt = || match self.try_recv(lane) {
            Err(RecvError::Empty) => None,
            r => Some(r),
        };
        match self.try_recv(lane) {
            Err(RecvError::Empty) => self
                .block(
                    &self.ctrl().recv_wait,
                    deadline,
                    wait,
                    lane,
                    ROLE_SENDER,
                    attempt,
                    || self.looks_ready(),
                    || Err(RecvError::Disconnected),
                )
                .unwrap_or(Err(RecvError::Timeout)),
            r => r,
        }
    }

    /// Whether something seems to be at `read`: a hint for a spinning
    /// receiver, which then tries a take. It loads no `tail` (an empty
    /// `try_recv` does, for the closed bit), so a receiver spinning on an
    /// empty ring leaves the producers' line alone: each such load would
    /// take it from a producer about to claim, and cost that producer's
    /// next CAS a transfer.
    #[inline]
    fn looks_ready(&self) -> bool {
        // Relaxed (both): a hint; the take that follows loads them again
        // with the orderings it needs.
        let c = Cursor::unpack(self.ctrl().read.load(Ordering::Relaxed));
        self.desc(c.pos).load(Ordering::Relaxed) != 0
    }

    /// The payload of a taken record, in place.
    ///
    /// # Safety
    /// `claim` came from this ring's `try_recv`/`recv` and has not been
    /// released; the slice must be dropped before it is.
    #[cfg(not(loom))]
    #[inline]
    pub(crate) unsafe fn payload(&self, claim: &Claim) -> &[u8] {
        // SAFETY: a taken record is in bounds (checked in `try_recv`) and
        // nobody writes it until it is released (caller's contract).
        unsafe { self.data.slice(claim.pos & self.mask, claim.len) }
    }

    /// Copies a taken record's payload out (loom builds: the tracked read).
    #[cfg(loom)]
    pub(crate) fn copy_payload(&self, claim: &Claim, out: &mut Vec<u8>) {
        // SAFETY: in bounds, checked in `try_recv`.
        unsafe { self.data.copy_out(claim.pos & self.mask, claim.len, out) }
    }

    /// After a first take, takes what else is ready (until `out` holds
    /// `max` records) without waiting, and wakes senders once for all.
    pub(crate) fn take_ready(&self, max: usize, out: &mut Vec<Claim>, lane: u16) {
        let mut quiet = false;
        while out.len() < max {
            // An error (Empty, Closed, Corrupted) ends the batch; the next
            // call reports it.
            let Ok(c) = self.try_recv_quiet(lane) else {
                break;
            };
            out.push(c);
            quiet = true;
        }
        if quiet && self.maxsize != UNBOUNDED && mutant!("batch_take_no_wake", true, false) {
            self.wake_senders();
        }
    }

    /// Gives taken records' space back, waking senders once.
    pub(crate) fn release_batch(&self, claims: impl IntoIterator<Item = Claim>, lane: u16) {
        let mut moved = false;
        for c in claims {
            moved |= self.release_at(c.pos, c.desc, false, lane);
        }
        if moved && mutant!("batch_release_no_wake", true, false) {
            self.wake_senders();
        }
    }

    /// Gives a taken record's space back.
    pub(crate) fn release(&self, claim: Claim, lane: u16) {
        self.release_at(claim.pos, claim.desc, true, lane);
    }

    /// Releases the record at `pos` (committed as `w`); wakes senders if
    /// `wake` and `head` moved. Returns whether `head` moved. `lane` is the
    /// releaser's, where it records the `head` moves it makes.
    fn release_at(&self, pos: u64, w: u64, wake: bool, lane_idx: u16) -> bool {
        let ctrl = self.ctrl();
        let d = Desc::unpack(w);
        let lane = self.lane_opt(lane_idx);
        // If `head` equals `pos` it is current: nobody but us can move it past
        // our record, which is not DONE.
        let moved = if self.load_head_to_move() == pos {
            // We hold the oldest record: reclaim it ourselves, no DONE step.
            // SYNC: Release pairs with the Acquire load of the descriptor in a
            // `try_recv` that finds it empty: our CAS of `read` past this
            // record then happens-before its re-load of `read`, so it cannot
            // report Empty from a stale `read`.
            let next = pos_add(pos, footprint(d.len as usize));
            self.note_move(lane, pos, next);
            let order = mutant!("clear_relaxed", Ordering::Release, Ordering::Relaxed);
            self.desc(pos).store(0, order);
            death_point!("zeroed", true);
            self.set_head(pos, next);
            self.advance(next, lane);
            true
        } else {
            let done = Desc {
                state: ST_DONE,
                owner: 0,
                ..d
            };
            // SYNC: pairs with the Acquire load in `advance`; our payload
            // reads happen-before the reclaimer's Release store of `head`.
            let order = mutant!("done_relaxed", Ordering::Release, Ordering::Relaxed);
            self.desc(pos).store(done.pack(), order);
            // Dekker with `advance`: either we see `head == pos` below, or the
            // thread that stored it sees our DONE.
            fence(Ordering::SeqCst);
            let h = self.load_head_to_move();
            self.advance(h, lane)
        };
        if moved && wake {
            // `advance` ended with a SeqCst fence after the last `head`
            // store: Dekker with a sender's `register` + re-check.
            self.wake_if_waiting(&ctrl.send_wait);
        }
        moved
    }

    /// `head`, for a consumer that may move it on from the value it sees.
    #[inline]
    fn load_head_to_move(&self) -> u64 {
        // SYNC: Acquire, not Relaxed, although only the value is used: our
        // `set_head` Release must carry every earlier reclaim to the
        // producers, and a Release store publishes only what happens-before
        // it. With Relaxed, a producer that acquires our `head` would not be
        // ordered after the previous mover's payload reads, and could
        // overwrite a record its consumer is still reading (loom found this;
        // mutant `head_move_relaxed`).
        let order = mutant!("head_move_relaxed", Ordering::Acquire, Ordering::Relaxed);
        self.ctrl().head.load(order)
    }

    /// Moves `head` from `old` to `new`; the caller is the one thread allowed
    /// to (it holds the record at `old`, or won its DONE descriptor).
    #[inline]
    fn set_head(&self, old: u64, new: u64) {
        if crosses(old, new, HEAD_EPOCH_SHIFT) {
            self.bump_epoch();
        }
        // SYNC: pairs with the producers' Acquire load in `load_head`: our
        // payload reads and the zeroed descriptors happen-before reuse.
        self.ctrl().head.store(new, Ordering::Release);
    }

    /// Moves `head` on from `cur` (a value of `head` we stored or saw) past
    /// every DONE record. Returns whether `head` moved. Each move is noted
    /// in `lane` while it is half done (descriptor zeroed, `head` not yet
    /// stored), and the note is cleared at the end.
    fn advance(&self, mut cur: u64, lane: Option<&Lane>) -> bool {
        let mut moved = false;
        loop {
            fence(Ordering::SeqCst);
            let slot = self.desc(cur);
            // SYNC: pairs with the Release store of DONE in `release_at`.
            let w = slot.load(Ordering::Acquire);
            let d = Desc::unpack(w);
            if d.state != ST_DONE || d.tag != tag_of(cur, self.shift) {
                if let Some(l) = lane {
                    // Relaxed: a survivor only trusts a note whose `head`
                    // is still current, which it checks with a CAS.
                    l.moving.store(0, Ordering::Relaxed);
                }
                return moved;
            }
            let next = pos_add(cur, footprint(d.len as usize));
            self.note_move(lane, cur, next);
            // The CAS makes us the one thread that moves `head` past this
            // record (the tag rules out a DONE from another lap). Release: as
            // the zeroing store in `release_at`, for a `try_recv` that finds
            // the slot empty (the load above already acquired).
            let won = mutant!(
                "advance_by_store",
                slot.compare_exchange(w, 0, Ordering::Release, Ordering::Relaxed),
                {
                    slot.store(0, Ordering::Release);
                    Ok(w)
                }
            );
            if won.is_err() {
                continue; // re-reads the slot and stops (it is no longer DONE)
            }
            death_point!("zeroed", moved);
            self.set_head(cur, next);
            cur = next;
            moved = true;
        }
    }

    // ------------------------------------------------------------ waiting

    /// The slow path shared by `send` and `recv`: `attempt` returns `Some`
    /// when it is done (success or a final error), `None` to keep waiting.
    /// It is retried as `wait` says (spin, yield: see `crate::wait`) before
    /// the caller registers as a waiter and sleeps. The wait ends with
    /// `disconnected()` when every handle that could act as `peer` is gone
    /// (checked before each sleep, no system call). One blocked waiter of
    /// the ring, the watcher, also scans for dead processes every
    /// [`SLEEP_SLICE`] (see [`Ring::watch`]); the others sleep up to
    /// [`LONG_SLICE`] at a time. Returns `None` when `deadline` passed.
    #[cold]
    #[allow(clippy::too_many_arguments)]
    fn block<T>(
        &self,
        cell: &WaitCell,
        deadline: Option<Instant>,
        wait: &Backoff,
        lane: u16,
        peer: u64,
        mut attempt: impl FnMut() -> Option<T>,
        mut hint: impl FnMut() -> bool,
        disconnected: impl Fn() -> T,
    ) -> Option<T> {
        // While spinning, `attempt` only when `hint` says it may succeed,
        // and every `FULL_EVERY` tries regardless (for `close` and errors).
        let mut tries = 0u32;
        let spun = wait.spin(deadline, || {
            tries = tries.wrapping_add(1);
            if tries % FULL_EVERY != 0 && !hint() {
                return None;
            }
            attempt()
        });
        let start = match spun {
            Spun::Done(r) => return Some(r),
            Spun::TimedOut => {
                let (r, watcher) = self.expire(lane, peer, attempt, disconnected);
                if watcher {
                    self.unwatch(lane);
                }
                return r;
            }
            Spun::Sleep(start) => start,
        };
        let mut watching = false;
        let result = loop {
            let (watcher, scan) = self.watch(lane);
            watching |= watcher;
            if scan {
                self.scan(lane);
            }
            // Only the break `disconnect_unrechecked` looks before registering.
            #[cfg(loom)]
            let gone_early =
                crate::sync::mutant_on("disconnect_unrechecked") && self.disconnected(peer);
            let late = mutant!("register_after_recheck", false, true);
            let early = (!late).then(|| self.register(cell));
            if mutant!("no_recheck", true, false) {
                if let Some(r) = attempt() {
                    if let Some(e) = early {
                        self.leave(cell, e);
                    }
                    wait.learn(start, Instant::now());
                    break Some(r);
                }
            }
            // Known at the call, or learnt after a sleep: the peers are
            // gone. Checked after registering, like the ring: Dekker with a
            // leaving peer's decrement and fence, so either we see it gone
            // or it sees us asleep and wakes us (the break
            // `disconnect_unrechecked` checks only before registering).
            // Whatever the peers committed is still taken first.
            let gone = mutant!(
                "disconnect_unrechecked",
                self.disconnected(peer),
                gone_early
            );
            if gone {
                if let Some(e) = early {
                    self.leave(cell, e);
                }
                // The break `disconnect_before_attempt`: report the end
                // without taking what the last peers left.
                let last = mutant!("disconnect_before_attempt", attempt(), None);
                break Some(last.unwrap_or_else(&disconnected));
            }
            // The break `register_after_recheck`: counted as a sleeper only
            // after the re-check, so a waker in between sees nobody to wake.
            let mut seen = early.unwrap_or_else(|| self.register(cell));
            if mutant!("seq_after_recheck", false, true) {
                // The break: the epoch read after the re-check, so a wake
                // between the two (which also uncounted us) goes unnoticed.
                seen = wake_epoch(cell.word.load(Ordering::Relaxed));
            }
            let slice = if watcher { SLEEP_SLICE } else { LONG_SLICE };
            let slice_end = Instant::now() + slice;
            let until = match deadline {
                Some(d) if d < slice_end => d,
                _ => slice_end,
            };
            futex_wait(&cell.word, seen, Some(until));
            self.leave(cell, seen);
            if deadline.is_some_and(|d| Instant::now() >= d) {
                let (r, watcher) = self.expire(lane, peer, attempt, disconnected);
                watching |= watcher;
                break r;
            }
        };
        if watching {
            self.unwatch(lane);
        }
        result
    }

    /// The end of a wait whose deadline passed: a last attempt, or the
    /// peers' end. A short timeout may never sleep a whole slice: it scans
    /// for dead peers before giving up if nobody did lately, so that
    /// callers looping on `*_timeout` recover too. Also returns whether the
    /// caller became the watcher (and owes an `unwatch`).
    fn expire<T>(
        &self,
        lane: u16,
        peer: u64,
        mut attempt: impl FnMut() -> Option<T>,
        disconnected: impl Fn() -> T,
    ) -> (Option<T>, bool) {
        let (watcher, scan) = self.watch(lane);
        if scan {
            self.scan(lane);
        }
        let r = attempt().or_else(|| self.disconnected(peer).then(&disconnected));
        (r, watcher)
    }

    /// Counts the caller among `cell`'s sleepers and returns the epoch to
    /// sleep on: any wake from now on moves it, so the sleep returns at once
    /// (the kernel compares it under its lock).
    #[inline]
    fn register(&self, cell: &WaitCell) -> u32 {
        // Relaxed + fence: the SeqCst fence orders this increment before
        // the caller's re-check, against the waker's fence (Dekker).
        let w = cell.word.fetch_add(SLEEPER, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        wake_epoch(w)
    }

    /// Stops counting the caller, registered under epoch `seen`, unless a
    /// wake already cleared it (and so moved the epoch).
    #[inline]
    fn leave(&self, cell: &WaitCell, seen: u32) {
        // Relaxed: bookkeeping of the count only. While the epoch is `seen`
        // our registration is in the count; the CAS removes exactly it.
        let mut w = cell.word.load(Ordering::Relaxed);
        while mutant!("leave_after_wake", wake_epoch(w) == seen, true) && sleepers(w) > 0 {
            match cell.word.compare_exchange_weak(
                w,
                w - SLEEPER,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(now) => w = now,
            }
        }
    }

    /// Wakes `cell`'s sleepers if there are any. The caller has made its
    /// change visible and issued a SeqCst fence.
    #[inline]
    fn wake_if_waiting(&self, cell: &WaitCell) {
        // Relaxed: ordered after the caller's change by its SeqCst fence.
        let w = cell.word.load(Ordering::Relaxed);
        if sleepers(w) != 0 {
            self.wake(cell, w);
        }
    }

    /// Takes every counted sleeper (`{epoch + 1, 0}` in one CAS from `w`,
    /// the word last seen) and wakes them. If another waker took them
    /// first, there is nothing to do.
    #[cold]
    fn wake(&self, cell: &WaitCell, mut w: u64) {
        while sleepers(w) != 0 {
            let next = mutant!("wake_keeps_epoch", woken(w), w & !(u32::MAX as u64));
            // Relaxed: the epoch is a wake-up token, not a publication; a
            // sleeper re-checks its condition through the ring's own
            // Acquire loads, ordered by the fences of `register` and the
            // waker.
            match cell
                .word
                .compare_exchange_weak(w, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => {
                    futex_wake_all(&cell.word);
                    return;
                }
                Err(now) => w = now,
            }
        }
    }

    /// Wakes every sleeper, counted or not (for `close`).
    fn wake_all(&self, cell: &WaitCell) {
        // Relaxed: as in `wake`; `close` fenced before calling this.
        let mut w = cell.word.load(Ordering::Relaxed);
        while let Err(now) =
            cell.word
                .compare_exchange_weak(w, woken(w), Ordering::Relaxed, Ordering::Relaxed)
        {
            w = now;
        }
        futex_wake_all(&cell.word);
    }

    // --------------------------------------------------------------- misc

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
        n.min(self.granules).min(self.maxsize) as usize
    }

    /// Messages queued (unclamped) and the `tail` cursor, from one load each.
    fn snapshot(&self) -> (u64, Cursor) {
        let ctrl = self.ctrl();
        // Relaxed snapshots; `read` first, so the difference is never negative.
        let r = Cursor::unpack(ctrl.read.load(Ordering::Relaxed));
        let t = Cursor::unpack(ctrl.tail.load(Ordering::Relaxed));
        (seq_sub(t.seq, r.seq), t)
    }

    /// Every shared counter, one Relaxed load each (a snapshot for reports).
    #[cfg(not(loom))]
    pub(crate) fn diagnostics(&self) -> crate::diag::Diagnostics {
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
        }
    }

    /// Whether a sender would find no room: `maxsize` messages queued, or
    /// not a single free granule.
    pub(crate) fn is_full(&self) -> bool {
        // Relaxed: a snapshot; `head` first, so `tail - head` is never negative.
        let h = self.ctrl().head.load(Ordering::Relaxed);
        let (n, t) = self.snapshot();
        n >= self.maxsize || pos_sub(t.pos, h) >= self.granules
    }
}

#[cfg(any(test, loom))]
impl Control {
    /// All-zero control block, as a fresh segment has.
    pub(crate) fn new() -> Self {
        use crate::sync::WaitWord;
        use crossbeam_utils::CachePadded;
        let cell = || {
            CachePadded::new(WaitCell {
                word: WaitWord::new(0),
            })
        };
        Control {
            tail: CachePadded::new(AtomicU64::new(0)),
            read: CachePadded::new(AtomicU64::new(0)),
            head: CachePadded::new(AtomicU64::new(0)),
            recv_wait: cell(),
            send_wait: cell(),
            epoch: CachePadded::new(AtomicU64::new(0)),
            seen: CachePadded::new(AtomicU64::new(0)),
            watch: CachePadded::new(AtomicU64::new(0)),
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests;
