//! The public queue API: [`Queue`] and its [`Builder`] here, with `Shared`
//! (a mapped segment and its rings); the handles ([`Sender`], [`Receiver`]),
//! what a receive hands out ([`RecvGuard`], [`Batch`]) and the hand-off to
//! child processes in files of their own.

pub(crate) mod endpoint;
mod guard;
mod handoff;
mod leased;
mod receiver;
mod sender;

pub use guard::{Batch, RecvGuard};
pub(crate) use handoff::{adopt_handoff, inherit_handles, segment_from_env};
pub use leased::Leased;
pub use receiver::Receiver;
pub(crate) use sender::batch_loop;
pub use sender::Sender;

use crate::diag::Diagnostics;
use crate::error::{BatchError, OpenError, RecvError, SendError};
use crate::layout::{default_overflow, UNIT};
use crate::layout::{Spec, TypeTag, DEFAULT_CAPACITY, KIND_QUEUE, MAX_CAPACITY, MIN_CAPACITY};
use crate::layout::{ROLE_QUEUE, ROLE_RECEIVER, ROLE_SENDER};
use crate::lease::{Entered, Lease, LocalLanes, Seat};
use crate::ring::{Claim, JoinError, Overflow, Ring, SendBatch, SendCache, NO_LANE};
use crate::sys::proc::{self, GenLock, Locks};
use crate::sys::segment::{self, Segment};
use crate::wait::{Backoff, WaitStrategy};
use std::cell::{Cell, UnsafeCell};
use std::fmt;
use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// A mapped segment and its rings (one for a queue, one or two for a pipe).
pub(crate) struct Shared {
    // Declared before `seg`: the rings point into the segment's mapping.
    rings: Box<[Ring]>,
    pub(crate) seg: Segment,
    /// This process's lanes of each (ring, role) in use on this mapping,
    /// shared by its handles (each holds its `Arc`; see `lease`); changed
    /// only under `locals_lock`.
    locals: UnsafeCell<Vec<(u16, u64, Weak<LocalLanes>)>>,
    /// A lock a forked child takes over (a `Mutex` held by a thread of the
    /// parent at the fork would stay locked in the child for good).
    locals_lock: GenLock,
}

// SAFETY: `locals` is used only under `locals_lock`; the rest is `Sync`.
unsafe impl Sync for Shared {}

impl Shared {
    pub(crate) fn new(seg: Segment) -> Arc<Self> {
        let rings = (0..seg.spec().rings)
            .map(|k| {
                let locks = Locks::new(seg.fd().as_raw_fd(), seg.file_id(), k, seg.name());
                // SAFETY: the overflow area lies at a page-aligned offset of
                // the mapping, which outlives the view (as below).
                let overflow = seg
                    .overflow()
                    .map(|(base, og)| unsafe { Overflow::from_raw(base, &og) });
                // SAFETY: ring `k` is `ring_len` bytes at a page-aligned
                // offset of the mapping, which lives in `Shared` beside the
                // ring and is dropped after it (as is the fd `locks` uses).
                unsafe {
                    Ring::from_raw(
                        seg.ring_base(k),
                        seg.geometry(),
                        seg.spec(),
                        locks,
                        overflow,
                        k,
                    )
                }
            })
            .collect();
        Arc::new(Shared {
            rings,
            seg,
            locals: UnsafeCell::new(Vec::new()),
            locals_lock: GenLock::new(),
        })
    }

    /// This process's lanes of role `role` on ring `k` (made with the first
    /// handle of that role, given back with the last).
    pub(crate) fn lanes(self: &Arc<Self>, k: u16, role: u64) -> Arc<LocalLanes> {
        let _serial = self.locals_lock.guard();
        // SAFETY: we hold `locals_lock`, so no other reference exists.
        let locals = unsafe { &mut *self.locals.get() };
        if let Some(l) = locals
            .iter()
            .find(|(r, o, _)| (*r, *o) == (k, role))
            .and_then(|(_, _, l)| l.upgrade())
        {
            return l;
        }
        locals.retain(|(_, _, l)| l.strong_count() > 0);
        let keep: Arc<dyn Send + Sync> = self.clone();
        let l = Arc::new(LocalLanes::new(keep, self.ring(k), role));
        locals.push((k, role, Arc::downgrade(&l)));
        l
    }

    #[inline]
    pub(crate) fn ring(&self, k: u16) -> &Ring {
        &self.rings[k as usize]
    }
}

/// Settings for a new queue; from [`Queue::builder`].
#[derive(Clone)]
pub struct Builder {
    pub(crate) capacity: usize,
    pub(crate) maxsize: usize,
    pub(crate) mode: u32,
    pub(crate) type_tag: TypeTag,
    /// Bytes of the overflow area; `None`: the default (the machine's
    /// memory, up to 64 GiB).
    pub(crate) overflow: Option<u64>,
    /// `Spec::backlog`: 0 for a queue bounded by its ring.
    pub(crate) backlog: u64,
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let maxsize: &dyn fmt::Debug = match self.maxsize {
            0 => &"none",
            _ => &self.maxsize,
        };
        let message_type = self.type_tag.name().unwrap_or_else(|| "bytes".into());
        f.debug_struct("Builder")
            .field("capacity_bytes", &self.capacity)
            .field("maxsize", maxsize)
            .field("mode", &format_args!("{:#o}", self.mode))
            .field("message_type", &message_type)
            .field("overflow_bytes", &self.overflow_len())
            .field("bytes", &Bound(self.backlog))
            .finish()
    }
}

/// A backlog bound as `Builder`'s `Debug` shows it.
struct Bound(u64);

impl fmt::Debug for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 => f.write_str("\"the ring's\""),
            u64::MAX => f.write_str("\"unbounded\""),
            n => write!(f, "{n}"),
        }
    }
}

impl Builder {
    /// No room limit: `send` never waits for room and `try_send` never
    /// fails with [`SendError::Full`] for want of it (crossbeam's
    /// `unbounded()`; Python's `Queue()`). The messages live in the
    /// queue's overflow area, in blocks of [`capacity_bytes`] allocated as
    /// the backlog grows and given back as it drains, so memory follows
    /// what waits; a send that finds no memory fails with
    /// [`SendError::OutOfMemory`] and loses nothing already sent.
    /// [`maxsize`] still bounds the number of messages; without one a
    /// queue holds at most 16,777,216 (a count it must keep exact).
    ///
    /// ```
    /// let q = shmq::Queue::builder().unbounded().create()?;
    /// let (tx, rx) = (q.sender(), q.receiver());
    /// for i in 0..100_000u32 {
    ///     tx.try_send(&i.to_le_bytes())?;            // never Full
    /// }
    /// tx.send(&vec![1u8; 10 << 20])?;                // any size, too
    /// assert_eq!(q.len(), 100_001);
    /// assert_eq!(*rx.recv()?, 0u32.to_le_bytes());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// [`capacity_bytes`]: Builder::capacity_bytes
    /// [`maxsize`]: Builder::maxsize
    pub fn unbounded(mut self) -> Self {
        self.backlog = u64::MAX;
        self
    }

    /// As [`Builder::unbounded`], but the messages waiting may take at
    /// most `bytes` (each counted as its record in a block: its length
    /// rounded up to 64 bytes; a message larger than half a block counts
    /// 64 bytes there, its own memory aside): back-pressure by bytes, as
    /// [`Builder::maxsize`] gives by count. A send that would pass it
    /// waits for room, or fails with [`SendError::Full`] (`try_send`,
    /// timeouts), as a full bounded queue does.
    ///
    /// ```
    /// let q = shmq::Queue::builder().max_bytes(64 << 10).create()?;
    /// let tx = q.sender();
    /// let mut sent = 0;
    /// while tx.try_send(&[0u8; 1000]).is_ok() {
    ///     sent += 1;
    /// }
    /// assert_eq!(sent, 64);                          // 64 records of 1 KiB
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.backlog = bytes.max(1);
        self
    }

    /// Bytes of the ring, from 256 B to 1 GiB (default 1 MiB), rounded up
    /// to a power of two (1,000,000 gives 1 MiB; see [`Queue::capacity`]).
    /// Each message in the ring takes its length rounded up to 64 bytes
    /// (at least 64), so the default holds 16,384 small messages. A
    /// message larger than half the ring is written to the queue's
    /// overflow area instead and only a 16-byte reference goes through the
    /// ring (see [`Builder::overflow_bytes`]): the capacity tunes the ring,
    /// it does not limit a message. 0 or more than 1 GiB fails at creation
    /// with [`OpenError::InvalidConfig`].
    ///
    /// ```
    /// let q = shmq::Queue::builder().capacity_bytes(3 << 20).create()?;
    /// assert_eq!(q.capacity(), 4 << 20);
    /// # Ok::<(), shmq::OpenError>(())
    /// ```
    pub fn capacity_bytes(mut self, bytes: usize) -> Self {
        self.capacity = match bytes {
            0 => 0,
            b if b <= MIN_CAPACITY => MIN_CAPACITY,
            b if b <= MAX_CAPACITY => b.next_power_of_two(),
            b => b,
        };
        self
    }

    /// The most messages the queue holds at once, as Python's
    /// `Queue(maxsize)`; 0 (the default) means bounded by bytes only. A
    /// message counts from the moment `send` claims room for it until a
    /// receiver takes it.
    pub fn maxsize(mut self, messages: usize) -> Self {
        self.maxsize = messages;
        self
    }

    /// Room for messages larger than half the ring, outside it, in the same
    /// segment (rounded up to 64 KiB). By default the machine's memory, up
    /// to 64 GiB: it costs address space, not memory, since a message's
    /// pages are allocated when it is sent and given back when it is
    /// received (a 10 MiB message makes the queue 10 MiB larger while it
    /// waits). A send that finds no room or no memory fails with
    /// [`SendError::OutOfMemory`], losing nothing already sent; 0 means no
    /// overflow area (a larger message is [`SendError::TooLarge`]).
    ///
    /// ```
    /// let q = shmq::Queue::builder().capacity_bytes(4096).create()?;
    /// let big = vec![7u8; 10 << 20];                 // 2,560 times the ring
    /// q.sender().send(&big)?;
    /// assert_eq!(*q.receiver().recv()?, big[..]);
    ///
    /// let small = shmq::Queue::builder().capacity_bytes(4096).overflow_bytes(0).create()?;
    /// assert_eq!(small.max_message_size(), 2048);
    /// assert!(matches!(small.sender().send(&big), Err(shmq::SendError::TooLarge { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn overflow_bytes(mut self, bytes: u64) -> Self {
        self.overflow = Some(bytes.next_multiple_of(UNIT as u64));
        self
    }

    /// The overflow area this builder gives.
    pub(crate) fn overflow_len(&self) -> u64 {
        self.overflow
            .unwrap_or_else(|| default_overflow(crate::sys::pages::physical()))
    }

    /// Permission bits of a named segment (default `0o600`: owner only),
    /// applied exactly (not cut by the umask). Other users still need
    /// [`Queue::open_trusted`] to attach.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Creates an anonymous queue in a sealed memfd. Share it with a child
    /// process with [`Queue::inherit_into`], or by forking.
    ///
    /// # Errors
    /// [`OpenError::InvalidConfig`] for settings out of range,
    /// [`OpenError::Os`] if the OS refuses memory.
    pub fn create(self) -> Result<Queue, OpenError> {
        let seg = Segment::create_anon(self.capacity, self.spec(KIND_QUEUE, 1))?;
        Queue::from_segment(seg)
    }

    pub(crate) fn spec(&self, kind: u16, rings: u16) -> Spec {
        Spec {
            maxsize: self.maxsize as u64,
            overflow: self.overflow_len(),
            backlog: self.backlog,
            kind,
            rings,
            type_tag: self.type_tag,
        }
    }

    /// Creates a named queue that any process of the same user can
    /// [`Queue::open`]. The name is 1–200 characters from
    /// `[A-Za-z0-9._-]`, optionally after a `/`; it lives in `/dev/shm` until
    /// [`Queue::unlink`] removes it.
    ///
    /// ```
    /// # let name = format!("shmq-doc-{}", std::process::id());
    /// let q = shmq::Queue::builder().create_named(&name)?;
    /// let other = shmq::Queue::open(&name)?; // e.g. in another process
    /// q.sender().send(b"hi")?;
    /// assert_eq!(&*other.receiver().recv()?, b"hi");
    /// shmq::Queue::unlink(&name)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// The segment's pages are reserved at creation, so a full `/dev/shm` is
    /// [`OpenError::NoSpace`] here, never a SIGBUS later.
    ///
    /// # Errors
    /// [`OpenError::AlreadyExists`] if the name is taken,
    /// [`OpenError::NoSpace`], [`OpenError::InvalidName`],
    /// [`OpenError::InvalidConfig`], [`OpenError::Os`].
    pub fn create_named(self, name: &str) -> Result<Queue, OpenError> {
        let seg = Segment::create_named(name, self.capacity, self.spec(KIND_QUEUE, 1), self.mode)?;
        Queue::from_segment(seg)
    }
}

/// A queue in shared memory: make [`Sender`]s and [`Receiver`]s from it, ask
/// its state, close it, or hand it to another process.
///
/// Cloning shares the mapping. Every method works the same in every process
/// attached to the queue.
///
/// A `Queue` handle could make a sender or a receiver at any time, so, as
/// in Python, while one lives anywhere (in any process) receivers never
/// report [`RecvError::Disconnected`] and senders never
/// [`SendError::Disconnected`]: they wait. A consumer that should learn
/// that every producer is gone keeps only its [`Receiver`]
/// (`Queue::from_env("JOBS")?.receiver()`). The `Queue` handles of one
/// process on one mapping share one lane of the queue, held from the
/// first to the last (see [`SendError::TooManyHandles`]).
pub struct Queue {
    /// This process's [`ROLE_QUEUE`] lane (`None`: a handle that does not
    /// count, for `is_stale`). Declared before `shared`, which maps it.
    lane: Option<Arc<LocalLanes>>,
    pub(crate) shared: Arc<Shared>,
}

impl Clone for Queue {
    /// Another handle on the same mapping (it shares the process's lane).
    fn clone(&self) -> Self {
        Queue::attached(self.shared.clone(), true)
    }
}

impl Queue {
    /// Settings for a new queue.
    pub fn builder() -> Builder {
        Builder {
            capacity: DEFAULT_CAPACITY,
            maxsize: 0,
            mode: 0o600,
            type_tag: TypeTag::default(),
            overflow: None,
            backlog: 0,
        }
    }

    fn from_segment(seg: Segment) -> Result<Self, OpenError> {
        Queue::checked(seg, true)
    }

    fn checked(seg: Segment, with_lane: bool) -> Result<Self, OpenError> {
        if seg.spec().kind != KIND_QUEUE {
            return Err(OpenError::KindMismatch {
                expected: "queue",
                found: "pipe",
            });
        }
        Ok(Queue::attached(Shared::new(seg), with_lane))
    }

    /// A handle on `shared`; with `with_lane`, one that counts as a
    /// potential sender and receiver (every public one).
    fn attached(shared: Arc<Shared>, with_lane: bool) -> Self {
        let lane = with_lane.then(|| shared.lanes(0, ROLE_QUEUE));
        Queue { lane, shared }
    }

    /// Makes sure the handle counts (a lane of this process), before it
    /// makes a sender or a receiver.
    fn count(&self) {
        if let Some(l) = &self.lane {
            let _ = l.count();
        }
    }

    fn ring(&self) -> &Ring {
        self.shared.ring(0)
    }

    /// Attaches a named queue created by [`Builder::create_named`] of this
    /// user (see [`Queue::open_trusted`] for another user's).
    ///
    /// # Errors
    /// [`OpenError::NotFound`]; [`OpenError::ForeignOwner`] if another
    /// user owns it; for a segment that is not a complete shmq
    /// queue of this version: [`OpenError::NotAQueue`],
    /// [`OpenError::VersionMismatch`], [`OpenError::NotInitialized`],
    /// [`OpenError::Truncated`], [`OpenError::Corrupted`],
    /// [`OpenError::KindMismatch`].
    pub fn open(name: &str) -> Result<Queue, OpenError> {
        Queue::from_segment(Segment::open_named(name, false)?)
    }

    /// As [`Queue::open`], but also attaches a queue that another user owns
    /// (one created with a [`Builder::mode`] that lets you in). Every
    /// process attached to a queue can read, write and stall it (see
    /// docs/SECURITY.md): use this only for users you trust.
    ///
    /// # Errors
    /// As [`Queue::open`], without [`OpenError::ForeignOwner`].
    pub fn open_trusted(name: &str) -> Result<Queue, OpenError> {
        Queue::from_segment(Segment::open_named(name, true)?)
    }

    /// Removes a queue's name. Processes that have it open keep using it; the
    /// memory is freed when the last one lets go.
    ///
    /// # Errors
    /// [`OpenError::NotFound`], [`OpenError::InvalidName`], [`OpenError::Os`].
    pub fn unlink(name: &str) -> Result<(), OpenError> {
        Segment::unlink(name)
    }

    /// Whether the named queue is stale: no live process holds a handle of
    /// it (a [`Queue`], [`Sender`] or [`Receiver`]: its creator and every
    /// user exited or died). Whether a process lives is the kernel's word
    /// (the lock each process holds on the segment's file), so a reused
    /// pid, a pid namespace or a `hidepid` `/proc` changes nothing.
    ///
    /// ```
    /// # let name = format!("shmq-doc-stale-{}", std::process::id());
    /// let q = shmq::Queue::builder().create_named(&name)?;
    /// assert!(!shmq::Queue::is_stale(&name)?, "we hold the queue");
    /// drop(q);
    /// assert!(shmq::Queue::is_stale(&name)?, "nobody holds it");
    /// let q = shmq::Queue::open(&name)?;
    /// let tx = q.sender();
    /// drop(q);
    /// assert!(!shmq::Queue::is_stale(&name)?, "a sender is held");
    /// drop(tx);
    /// assert!(shmq::Queue::unlink_if_stale(&name)?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`Queue::open`]. A segment whose creator died before finishing it
    /// reports [`OpenError::NotInitialized`] for good: remove it with
    /// [`Queue::unlink`].
    pub fn is_stale(name: &str) -> Result<bool, OpenError> {
        // Looked at without a lane of our own, which would count as live.
        let q = Queue::checked(Segment::open_named(name, false)?, false)?;
        Ok(!q.ring().any_live_lane())
    }

    /// Removes the queue's name if [`Queue::is_stale`] says it is stale;
    /// returns whether it did. A process that opens the queue between the
    /// check and the removal keeps a working queue, only the name is gone.
    ///
    /// # Errors
    /// As [`Queue::is_stale`] and [`Queue::unlink`].
    pub fn unlink_if_stale(name: &str) -> Result<bool, OpenError> {
        if !Queue::is_stale(name)? {
            return Ok(false);
        }
        match Queue::unlink(name) {
            Ok(()) => Ok(true),
            Err(OpenError::NotFound(_)) => Ok(false), // someone else removed it
            Err(e) => Err(e),
        }
    }
    /// A new sending handle.
    pub fn sender(&self) -> Sender {
        self.count();
        Sender::new(self.shared.clone(), 0)
    }

    /// A new receiving handle.
    pub fn receiver(&self) -> Receiver {
        self.count();
        Receiver::new(self.shared.clone(), 0)
    }

    /// This handle turned into a sending one: [`Queue::sender`], then drop
    /// the `Queue`. A process that only sends should hold no `Queue`: while
    /// any process holds one, receivers wait for it instead of seeing
    /// [`RecvError::Disconnected`] once every sender is gone.
    pub fn into_sender(self) -> Sender {
        self.sender()
    }

    /// This handle turned into a receiving one: [`Queue::receiver`], then
    /// drop the `Queue`. A consumer that should stop when its producers die
    /// (rather than wait for them) holds only its `Receiver`:
    ///
    /// ```no_run
    /// fn consumer(q: shmq::Queue) {
    ///     for msg in &q.into_receiver() {
    ///         // ends at `close`, or once no process holds a Sender or a Queue
    ///     }
    /// }
    /// ```
    pub fn into_receiver(self) -> Receiver {
        self.receiver()
    }

    /// A new sending handle, or [`SendError::TooManyHandles`] at once if
    /// this process has no sending lane of the queue and none is free: all
    /// 256 are held by live processes (a handle from [`Queue::sender`]
    /// reports that at its first send instead, and takes a lane then if
    /// one was freed).
    ///
    /// # Errors
    /// [`SendError::TooManyHandles`].
    pub fn try_sender(&self) -> Result<Sender, SendError> {
        let s = self.sender();
        s.endpoint().lanes().count().map_err(SendError::from_join)?;
        Ok(s)
    }

    /// A new receiving handle, or [`RecvError::TooManyHandles`] at once if
    /// every lane is held (see [`Queue::try_sender`]).
    ///
    /// # Errors
    /// [`RecvError::TooManyHandles`].
    pub fn try_receiver(&self) -> Result<Receiver, RecvError> {
        let r = self.receiver();
        r.endpoint().lanes().count().map_err(RecvError::from_join)?;
        Ok(r)
    }

    /// Messages queued and not yet received (Python's `qsize()`): a snapshot
    /// that may be stale as soon as it returns. Includes messages whose
    /// `send` has claimed room and is still copying.
    pub fn len(&self) -> usize {
        self.ring().len()
    }

    /// Whether no message is queued (a snapshot, as [`Queue::len`]).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `maxsize` messages are queued or not one granule is free (a
    /// snapshot: a `try_send` may still fail on a queue that was not full).
    pub fn is_full(&self) -> bool {
        self.ring().is_full()
    }

    /// Bytes of the ring ([`Builder::capacity_bytes`]); of an unbounded
    /// queue, of each of its blocks.
    pub fn capacity(&self) -> usize {
        self.ring().capacity()
    }

    /// Whether the queue has no room limit ([`Builder::unbounded`] or
    /// [`Builder::max_bytes`]: its messages in blocks of the overflow area).
    ///
    /// ```
    /// assert!(shmq::Queue::builder().unbounded().create()?.is_unbounded());
    /// assert!(!shmq::Queue::builder().create()?.is_unbounded());
    /// # Ok::<(), shmq::OpenError>(())
    /// ```
    pub fn is_unbounded(&self) -> bool {
        self.ring().is_unbounded()
    }

    /// The message limit set with [`Builder::maxsize`]; `None` if unbounded.
    pub fn maxsize(&self) -> Option<usize> {
        self.ring().maxsize().map(|m| m as usize)
    }

    /// The largest message accepted: the size of the overflow area (see
    /// [`Builder::overflow_bytes`]), or half of [`Queue::capacity`] if it
    /// has none. A message larger than half the ring goes through the
    /// overflow area; memory may run out before this size is reached.
    pub fn max_message_size(&self) -> usize {
        self.ring().max_message()
    }

    /// The largest message kept in the ring itself: half of
    /// [`Queue::capacity`]. Larger ones go through the overflow area (one
    /// more allocation and page mapping per message).
    pub fn ring_message_size(&self) -> usize {
        self.ring().max_len()
    }

    /// Closes the queue for every process: sends fail with
    /// [`SendError::Closed`] from now on, and every blocked sender and
    /// receiver wakes. Receivers still get every message sent before, then
    /// [`RecvError::Closed`]. Idempotent; a closed queue stays closed.
    pub fn close(&self) {
        self.ring().close()
    }

    /// Whether the queue has been closed (never becomes false again).
    pub fn is_closed(&self) -> bool {
        self.ring().is_closed()
    }

    /// A snapshot of the shared counters (positions, sequence numbers,
    /// sleepers, the descriptors at the read and reclaim points), for
    /// watchdogs and failure reports; see [`Diagnostics`].
    pub fn diagnostics(&self) -> Diagnostics {
        self.ring().diagnostics()
    }

    /// The name of a named queue (`/name`), `None` if anonymous.
    pub fn name(&self) -> Option<&str> {
        self.shared.seg.name()
    }
}

impl AsFd for Queue {
    /// The segment's file descriptor (a sealed memfd for an anonymous queue),
    /// e.g. to send over a Unix socket to [`Queue::from_fd`].
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.shared.seg.fd()
    }
}

impl fmt::Debug for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("name", &self.name())
            .field("capacity", &self.capacity())
            .field("maxsize", &self.maxsize())
            .field("len", &self.len())
            .field("closed", &self.is_closed())
            .finish()
    }
}

#[cfg(test)]
mod tests;
