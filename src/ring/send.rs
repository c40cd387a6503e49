//! Sending: a producer's cached view, claim, commit, and the blocking send
//! with its wait for slack on a full ring.

use super::wait::Waiter;
use super::*;
use crate::sync::{now, spin_unseen};

/// Room, in granules, that a blocking send that found the ring full waits
/// for beyond its own message, at least (see [`Ring::await_slack`]).
const SLACK_GRANULES: u64 = 64;
/// How long such a send waits for that room at most.
const SLACK_WAIT: Duration = Duration::from_micros(10);
/// Spin hints between two looks at `head` while it waits.
const SLACK_SPINS: u32 = 8;

/// A producer handle's private view: the last `head` and `read.seq` it saw.
/// Both only ever grow, so a stale copy errs towards "full" and is refreshed
/// only then (rigtorp's cached-index trick: no cache-line traffic with the
/// consumers while the copy says there is room).
pub(crate) struct SendCache {
    pub(super) head: Cell<u64>,
    pub(super) read_seq: Cell<u64>,
    /// `Control::epoch` when `head` and `read_seq` were last loaded; a new
    /// handle starts with a value the epoch never takes, forcing a load.
    pub(super) epoch: Cell<u64>,
    /// How a blocking send waits (see `Ring::block`).
    pub(crate) wait: Backoff,
    /// The handle's lane ([`NO_LANE`]: none; its claims cannot be recovered
    /// if it dies mid-send).
    pub(crate) lane: Cell<u16>,
    /// An unbounded ring's block this handle last found installed (see
    /// `Ring::ensure_block`); `u64::MAX`: none.
    pub(super) block: Cell<u64>,
}

impl Default for SendCache {
    fn default() -> Self {
        SendCache {
            head: Cell::new(0),
            read_seq: Cell::new(0),
            epoch: Cell::new(u64::MAX),
            wait: Backoff::default(),
            lane: Cell::new(NO_LANE),
            block: Cell::new(u64::MAX),
        }
    }
}

/// A message's bytes as the ring takes them: one slice, or several parts
/// written one after the other into one record (`send_vectored`).
pub(crate) trait Bytes: Copy {
    /// The message's length.
    fn len(self) -> usize;
    /// Copies the message to granule `gran` of `data`.
    ///
    /// # Safety
    /// As [`Payload::write`].
    unsafe fn write_to(self, data: &Payload, gran: u64);
}

impl Bytes for &[u8] {
    #[inline]
    fn len(self) -> usize {
        <[u8]>::len(self)
    }

    #[inline]
    unsafe fn write_to(self, data: &Payload, gran: u64) {
        // SAFETY: the caller's contract.
        unsafe { data.write(gran, self) }
    }
}

/// What a ring record holds: a message's bytes, or (for a message too
/// large for the ring) a reference to them in the overflow area.
pub(crate) trait Record: Copy {
    /// Bytes the record takes in the ring.
    fn len(self) -> usize;
    /// Writes the record at position `rec` of `ring` (claimed, ours);
    /// returns the kind its descriptor carries (0, or `KIND_EXT`).
    ///
    /// # Safety
    /// `[rec, rec + footprint(len))` is claimed by the caller and lies
    /// before the end of the ring.
    unsafe fn write(self, ring: &Ring, rec: u64) -> u64;
}

impl<B: Bytes> Record for B {
    #[inline]
    fn len(self) -> usize {
        Bytes::len(self)
    }

    #[inline]
    unsafe fn write(self, ring: &Ring, rec: u64) -> u64 {
        if let Some((data, gran)) = ring.data_at(rec) {
            // SAFETY: the caller's contract: the record's granules, ours.
            unsafe { self.write_to(data, gran) };
        }
        0
    }
}

impl Bytes for &[&[u8]] {
    #[inline]
    fn len(self) -> usize {
        self.iter().map(|p| p.len()).sum()
    }

    #[inline]
    unsafe fn write_to(self, data: &Payload, gran: u64) {
        // SAFETY: the caller's contract.
        unsafe { data.write_parts(gran, self) }
    }
}

impl Ring {
    /// Claims room for `bytes`, writes and commits them, or fails at once.
    #[inline]
    pub(crate) fn try_send(&self, cache: &SendCache, bytes: &[u8]) -> Result<(), SendError> {
        self.try_send_inner(cache, bytes, true)
    }

    /// `try_send` of one message gathered from `parts`.
    #[inline]
    pub(crate) fn try_send_parts(
        &self,
        cache: &SendCache,
        parts: &[&[u8]],
    ) -> Result<(), SendError> {
        self.try_send_inner(cache, parts, true)
    }

    /// `send` of one message gathered from `parts`.
    pub(crate) fn send_parts(
        &self,
        cache: &SendCache,
        parts: &[&[u8]],
        deadline: Option<Instant>,
        lanes: &dyn Relet,
    ) -> Result<(), SendError> {
        self.send_bytes(cache, parts, deadline, lanes)
    }

    /// `try_send`; with `wake` false the receivers are not woken, and the
    /// caller owes a [`Ring::wake_receivers`] before it blocks or returns
    /// (see [`SendBatch`]).
    #[inline]
    pub(super) fn try_send_inner(
        &self,
        cache: &SendCache,
        bytes: impl Bytes,
        wake: bool,
    ) -> Result<(), SendError> {
        if bytes.len() > self.max_len {
            return self.send_large(cache, bytes, None, wake);
        }
        self.try_send_record(cache, bytes, wake)
    }

    /// Claims room for `record`, writes and commits it, or fails at once.
    #[inline]
    pub(super) fn try_send_record(
        &self,
        cache: &SendCache,
        record: impl Record,
        wake: bool,
    ) -> Result<(), SendError> {
        let len = record.len();
        let lane = self.lane_opt(cache.lane.get());
        let (pos, pad) = self.claim(cache, footprint(len), lane)?;
        // `[pos, pos + pad + footprint)` is ours.
        death_point!("claimed", Ok(()));
        if pad > 0 {
            let d = Desc::new(
                tag_of(pos, self.shift),
                ST_PADDING,
                (pad as usize * GRANULE) as u32,
            );
            // SYNC: pairs with the Acquire load of the descriptor in
            // `try_recv_inner` (no payload to publish; Release keeps it
            // uniform with commits).
            self.desc(pos).store(d.pack(), Ordering::Release);
        }
        let rec = pos_add(pos, pad);
        death_point!("padded", Ok(()));
        // SAFETY: `rec & mask` + footprint <= granules (the record fits
        // before the end by the choice of `pad`), and the range is ours.
        let kind = unsafe { record.write(self, rec) };
        death_point!("written", Ok(()));
        self.commit(rec, len, kind, lane);
        if wake {
            self.wake_receivers();
        }
        Ok(())
    }

    /// Claims `fp` granules (and the padding to the end of the ring before
    /// them if they would not fit there), noting the claim in `lane`:
    /// returns the claim's position and its padding, or `Full` / `Closed`
    /// (with nothing noted).
    #[inline]
    fn claim(
        &self,
        cache: &SendCache,
        fp: u64,
        lane: Option<&Lane>,
    ) -> Result<(u64, u64), SendError> {
        let ctrl = self.ctrl();
        // Whether our lane notes a claim; a failed try then writes nothing.
        let mut noted = None;
        self.check_epoch(cache);
        // Relaxed: `tail` is only a ticket dispenser. Exclusive ownership of
        // the claimed bytes comes from the atomicity of the CAS below; that
        // they are free comes from the Acquire load of `head`.
        let mut t = ctrl.tail.load(Ordering::Relaxed);
        loop {
            let c = Cursor::unpack(t);
            if c.closed && mutant!("claim_ignores_closed", true, false) {
                self.clear_intent(noted);
                return Err(SendError::Closed);
            }
            let to_end = self.granules - (c.pos & self.mask);
            let pad = if fp <= to_end { 0 } else { to_end };
            let need = pad + fp;
            if self.no_room(cache, c, need) {
                match self.recheck_tail(t) {
                    Some(t2) => {
                        t = t2;
                        continue;
                    }
                    None => {
                        if let Some(t2) = self.recheck_unbounded(t) {
                            t = t2;
                            continue;
                        }
                        self.clear_intent(noted);
                        return Err(SendError::Full);
                    }
                }
            }
            if self.blocks.is_some() {
                if let Err(e) = self.ensure_block(cache, pos_add(c.pos, pad)) {
                    self.clear_intent(noted);
                    return Err(e.into_send_error(fp as usize * GRANULE));
                }
            }
            let next = Cursor {
                seq: (c.seq + 1) & SEQ_MASK,
                pos: pos_add(c.pos, need),
                closed: false,
            };
            if let Some(l) = lane.filter(|_| mutant!("claim_unnoted", true, false)) {
                self.note_claim(l, t, pad, fp);
                noted = Some(l);
            }
            // Release (on success): whoever acquires this `tail` (a survivor in
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
                Ok(_) => return Ok((c.pos, pad)),
                Err(actual) => t = actual,
            }
        }
    }

    /// Whether `need` granules at `tail` (`c`) find no room: by bytes, then
    /// by count, each judged first from the cached copy and, only if that
    /// says full, again from a fresh load (which refreshes the copy).
    #[inline]
    fn no_room(&self, cache: &SendCache, c: Cursor, need: u64) -> bool {
        let no_bytes = |h: u64| pos_sub(c.pos, h) + need > self.room;
        let no_slot = |r: u64| {
            self.maxsize != UNBOUNDED
                && mutant!(
                    "maxsize_off_by_one",
                    seq_sub(c.seq, r) >= self.maxsize,
                    seq_sub(c.seq, r) > self.maxsize
                )
        };
        (no_bytes(cache.head.get()) && {
            cache.head.set(self.load_head());
            no_bytes(cache.head.get())
        }) || (no_slot(cache.read_seq.get()) && {
            cache.read_seq.set(self.load_read_seq());
            no_slot(cache.read_seq.get())
        })
    }

    /// Publishes the record of `len` bytes written at `rec` (of `kind`: 0,
    /// or `KIND_EXT`), and clears the claim's note in `lane`.
    #[inline]
    fn commit(&self, rec: u64, len: usize, kind: u64, lane: Option<&Lane>) {
        let d = Desc {
            owner: kind,
            ..Desc::new(tag_of(rec, self.shift), ST_COMMITTED, len as u32)
        };
        // SYNC (commit): pairs with the Acquire load of the descriptor in
        // `try_recv_inner`; the payload written before is visible to whoever
        // sees it.
        let order = mutant!("commit_relaxed", Ordering::Release, Ordering::Relaxed);
        self.desc(rec).store(d.pack(), order);
        if let Some(l) = lane {
            // SYNC: Release, after the commit: a survivor that reads the
            // intent cleared (`recover_read`) sees the commit, and never
            // undoes it.
            l.intent.store(0, Ordering::Release);
        }
    }

    /// Drops the cached `head` and `read.seq` if the epoch moved since they
    /// were loaded (they might alias current values after a wrap).
    #[inline]
    fn check_epoch(&self, cache: &SendCache) {
        // Relaxed: the language model puts no bound on how late a bump
        // becomes visible, but hardware makes it visible within nanoseconds,
        // and to matter a missed bump would have to stay invisible across
        // 2^36 granules (4 TiB) or 2^23 messages of traffic by others.
        let epoch = self.ctrl().epoch.load(Ordering::Relaxed);
        if epoch != cache.epoch.get() {
            self.refresh_cache(cache, epoch);
        }
    }

    #[cold]
    pub(super) fn refresh_cache(&self, cache: &SendCache, epoch: u64) {
        cache.head.set(self.load_head());
        cache.read_seq.set(self.load_read_seq());
        cache.epoch.set(epoch);
    }

    /// `head`, for a producer about to reuse the space before it.
    #[inline]
    pub(super) fn load_head(&self) -> u64 {
        // SYNC: pairs with the Release store in `set_head`: the consumers'
        // reads of the space we may reuse, and the zeroing of its
        // descriptors, happen-before our writes.
        let order = mutant!("head_load_relaxed", Ordering::Acquire, Ordering::Relaxed);
        self.ctrl().head.load(order)
    }

    /// `read.seq`, for a producer checking `maxsize`.
    #[inline]
    pub(super) fn load_read_seq(&self) -> u64 {
        // Relaxed: only a count is read; no memory is reused because of it
        // (bytes are governed by `head`).
        Cursor::unpack(self.ctrl().read.load(Ordering::Relaxed)).seq
    }

    /// A "full" verdict is only trusted if `tail` did not move meanwhile:
    /// `head`/`read` may have been loaded after a newer `tail`, which would
    /// make the distance computed from our stale `tail` meaningless.
    #[inline]
    pub(super) fn recheck_tail(&self, t: u64) -> Option<u64> {
        // Relaxed: only compared with `t`; a stale value at worst returns
        // Full, as any snapshot of a racing queue may.
        let t2 = self.ctrl().tail.load(Ordering::Relaxed);
        (t2 != t).then_some(t2)
    }

    /// For an unbounded ring, whose `Full` means a bound (`maxsize`,
    /// `max_bytes`) and never a stale look, `tail` if it is not `t`.
    #[cold]
    fn recheck_unbounded(&self, t: u64) -> Option<u64> {
        self.blocks.as_ref()?;
        // Relaxed: a read-modify-write reads the latest `tail` in its
        // modification order, where a plain load may return an older one
        // (loom found `try_send` failing with `Full` on an unbounded ring
        // from a stale `tail` beside a fresh `read`).
        let t2 = self.ctrl().tail.fetch_add(0, Ordering::Relaxed);
        (t2 != t).then_some(t2)
    }

    /// Blocking send: spin, then sleep until room, `close`, or `deadline`.
    /// `lanes` holds the lane that `cache.lane` names, given back while the
    /// send sleeps (and `cache.lane` changed to the one taken after).
    pub(crate) fn send(
        &self,
        cache: &SendCache,
        bytes: &[u8],
        deadline: Option<Instant>,
        lanes: &dyn Relet,
    ) -> Result<(), SendError> {
        self.send_bytes(cache, bytes, deadline, lanes)
    }

    /// `send` of any [`Bytes`].
    fn send_bytes(
        &self,
        cache: &SendCache,
        bytes: impl Bytes,
        deadline: Option<Instant>,
        lanes: &dyn Relet,
    ) -> Result<(), SendError> {
        if bytes.len() > self.max_len {
            return self.send_large(cache, bytes, Some((deadline, lanes)), true);
        }
        self.send_record(cache, bytes, deadline, lanes)
    }

    /// `send` of any [`Record`].
    pub(super) fn send_record(
        &self,
        cache: &SendCache,
        record: impl Record,
        deadline: Option<Instant>,
        lanes: &dyn Relet,
    ) -> Result<(), SendError> {
        match self.try_send_record(cache, record, true) {
            Err(SendError::Full) => self.send_record_full(cache, record, deadline, lanes),
            r => r,
        }
    }

    /// A blocking send of a message that fits a record (`bytes.len()` at
    /// most [`Ring::max_len`]) whose first attempt, made by the caller as
    /// `try_send` makes it, found the ring full: the rest of `send`,
    /// without a second attempt at once (each failed claim reads the
    /// consumers' `head`).
    pub(crate) fn send_full(
        &self,
        cache: &SendCache,
        bytes: &[u8],
        deadline: Option<Instant>,
        lanes: &dyn Relet,
    ) -> Result<(), SendError> {
        self.send_record_full(cache, bytes, deadline, lanes)
    }

    /// What `send_record` does once an attempt found the ring full: wait
    /// for slack, then block.
    fn send_record_full(
        &self,
        cache: &SendCache,
        record: impl Record,
        deadline: Option<Instant>,
        lanes: &dyn Relet,
    ) -> Result<(), SendError> {
        let attempt = || match self.try_send_record(cache, record, true) {
            Err(SendError::Full) => None,
            r => Some(r),
        };
        if self.await_slack(cache, footprint(record.len()), deadline) {
            if let Some(r) = attempt() {
                return r;
            }
        }
        self.block(
            Waiter {
                cell: &self.ctrl().send_wait,
                deadline,
                backoff: &cache.wait,
                lanes,
                peer: ROLE_RECEIVER,
            },
            attempt,
            || true,
            || Err(SendError::Disconnected),
        )
        .unwrap_or(Err(SendError::Timeout))
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
    pub(super) fn await_slack(
        &self,
        cache: &SendCache,
        fp: u64,
        deadline: Option<Instant>,
    ) -> bool {
        if cache.wait.strategy() == crate::wait::WaitStrategy::Spin(0) {
            return false;
        }
        let want_bytes = (fp + SLACK_GRANULES.max(4 * fp).min(self.room / 4)).min(self.room);
        let want_slots = (self.maxsize / 8).clamp(1, 64);
        let start = now();
        loop {
            // Unseen by loom: its yields would let the other threads run
            // first on every schedule, hiding the ones where this send goes
            // to sleep before they act (the mutants `no_maxsize_wake` and
            // `batch_*_no_wake` went uncaught with them).
            spin_unseen(SLACK_SPINS);
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
                self.room - pos_sub(t.pos, cache.head.get()).min(self.room) >= want_bytes;
            let slots_ok = self.maxsize == UNBOUNDED || {
                cache.read_seq.set(self.load_read_seq());
                let used = seq_sub(t.seq, cache.read_seq.get());
                self.maxsize.saturating_sub(used) >= want_slots
            };
            if bytes_ok && slots_ok {
                return true;
            }
            let expired = match start {
                Some(start) => {
                    let now = Instant::now();
                    now.duration_since(start) >= SLACK_WAIT || deadline.is_some_and(|d| now >= d)
                }
                // Under loom (no clock) one look is enough to model the
                // wait; the break `slack_unbounded` waits for the slack
                // however long it takes.
                None => mutant!("slack_unbounded", true, false),
            };
            if expired {
                return false;
            }
        }
    }
}
