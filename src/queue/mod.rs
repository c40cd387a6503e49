//! The public queue API: [`Queue`], its [`Builder`], [`Sender`], [`Receiver`]
//! and the zero-copy [`RecvGuard`] and [`Batch`].

use crate::diag::Diagnostics;
use crate::error::{BatchError, OpenError, RecvError, SendError};
use crate::handles::HandleLane;
use crate::layout::{Spec, TypeTag, DEFAULT_CAPACITY, KIND_QUEUE};
use crate::layout::{ROLE_QUEUE, ROLE_RECEIVER, ROLE_SENDER};
use crate::ring::{Claim, Ring, SendBatch, SendCache, NO_LANE};
use crate::sys::proc::{self, Locks};
use crate::sys::segment::{self, Segment};
use crate::wait::{Backoff, WaitStrategy};
use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A mapped segment and its rings (one for a queue, one or two for a pipe).
pub(crate) struct Shared {
    // Declared before `seg`: the rings point into the segment's mapping.
    rings: Box<[Ring]>,
    pub(crate) seg: Segment,
}

impl Shared {
    pub(crate) fn new(seg: Segment) -> Arc<Self> {
        let rings = (0..seg.spec().rings)
            .map(|k| {
                let locks = Locks::new(seg.fd().as_raw_fd(), k, seg.name());
                // SAFETY: ring `k` is `ring_len` bytes at a page-aligned
                // offset of the mapping, which lives in `Shared` beside the
                // ring and is dropped after it (as is the fd `locks` uses).
                unsafe {
                    Ring::from_raw(seg.ring_base(k), seg.geometry(), seg.spec().maxsize, locks)
                }
            })
            .collect();
        Arc::new(Shared { rings, seg })
    }

    #[inline]
    pub(crate) fn ring(&self, k: u16) -> &Ring {
        &self.rings[k as usize]
    }
}

/// Settings for a new queue; from [`Queue::builder`].
#[derive(Debug, Clone)]
pub struct Builder {
    pub(crate) capacity: usize,
    pub(crate) maxsize: usize,
    pub(crate) mode: u32,
    pub(crate) type_tag: TypeTag,
}

impl Builder {
    /// Bytes of message storage: a power of two from 256 B to 1 GiB (default
    /// 1 MiB). Each message takes its length rounded up to 64 bytes (at least
    /// 64); the largest message is half the capacity.
    pub fn capacity_bytes(mut self, bytes: usize) -> Self {
        self.capacity = bytes;
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
/// (`Queue::from_env("JOBS")?.receiver()`). Like a [`Sender`], each handle
/// owns a lane of the queue (see [`SendError::TooManyHandles`]).
pub struct Queue {
    pub(crate) shared: Arc<Shared>,
    /// The handle's [`ROLE_QUEUE`] lane (`None`: a handle that does not
    /// count, for `is_stale`).
    lane: Option<HandleLane>,
}

impl Clone for Queue {
    /// Another handle on the same mapping, with a lane of its own.
    fn clone(&self) -> Self {
        Queue::attached(self.shared.clone(), true)
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        if let Some(l) = &self.lane {
            l.release();
        }
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
        let lane = with_lane.then(|| HandleLane::new(shared.ring(0), ROLE_QUEUE));
        Queue { shared, lane }
    }

    /// Makes sure the handle counts (a lane of this process), before it
    /// makes a sender or a receiver.
    fn count(&self) {
        if let Some(l) = &self.lane {
            let _ = l.lane();
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

    /// Attaches an anonymous queue from its memfd (received over a Unix
    /// socket, say). The fd must be sealed against shrinking and growing, as
    /// [`Builder::create`] leaves it.
    ///
    /// # Errors
    /// [`OpenError::NotSealed`], then as [`Queue::open`].
    pub fn from_fd(fd: OwnedFd) -> Result<Queue, OpenError> {
        Queue::from_segment(Segment::from_fd(fd)?)
    }

    /// Arranges for `cmd`'s process to receive this queue: the environment
    /// variable `var` tells the child where to find it, and the child calls
    /// [`Queue::from_env`] with the same name. An anonymous queue's memfd is
    /// inherited across `exec` (only by this child); a named queue is found by
    /// its name.
    ///
    /// ```no_run
    /// let q = shmq::Queue::builder().create()?;
    /// let mut cmd = std::process::Command::new("worker");
    /// q.inherit_into(&mut cmd, "JOBS");
    /// let child = cmd.spawn()?;
    /// // in `worker`:  let q = shmq::Queue::from_env("JOBS")?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn inherit_into(&self, cmd: &mut Command, var: &str) {
        inherit_handles(&self.shared, cmd, var, "", vec![(0, ROLE_QUEUE)]);
    }

    /// Attaches the queue a parent passed with [`Queue::inherit_into`].
    ///
    /// # Errors
    /// [`OpenError::InvalidConfig`] if `var` is unset or malformed; then as
    /// [`Queue::from_fd`] or [`Queue::open`].
    pub fn from_env(var: &str) -> Result<Queue, OpenError> {
        let (seg, _, lock) = segment_from_env(var)?;
        let q = Queue::from_segment(seg)?;
        adopt_handoff(&q.shared, lock);
        Ok(q)
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

    /// Bytes of message storage.
    pub fn capacity(&self) -> usize {
        self.ring().capacity()
    }

    /// The message limit set with [`Builder::maxsize`]; `None` if unbounded.
    pub fn maxsize(&self) -> Option<usize> {
        self.ring().maxsize().map(|m| m as usize)
    }

    /// The largest message accepted: half of [`Queue::capacity`].
    pub fn max_message_size(&self) -> usize {
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

/// Arranges for `cmd`'s process to find `shared`'s segment through `var`
/// (see [`Queue::inherit_into`]); `suffix` is appended to the value (a pipe
/// end). The child counts from its start as holding a handle of each
/// `(ring, role)` in `roles`: before its `exec` it takes those lanes, with
/// their locks on a description opened now and inherited (`;lock=D` in the
/// value), and gives them up when it attaches (`from_env`). So a parent
/// that drops its own handles right after spawning does not make the other
/// side see the end before the child attached. The lanes die with the child,
/// or when the parent drops `cmd` if the child never attaches and has
/// exited.
pub(crate) fn inherit_handles(
    shared: &Arc<Shared>,
    cmd: &mut Command,
    var: &str,
    suffix: &str,
    roles: Vec<(u16, u64)>,
) {
    let seg = &shared.seg;
    let seg_fd = seg.as_raw_fd();
    let place = match seg.name() {
        Some(name) => format!("name:{name}"),
        None => format!("fd:{seg_fd}"),
    };
    let anon = seg.name().is_none();
    let handoff = proc::open_description(seg_fd, seg.name());
    let lock = handoff
        .as_ref()
        .map_or(String::new(), |d| format!(";lock={}", d.as_raw_fd()));
    cmd.env(var, format!("{place}{suffix}{lock}"));
    let shared = shared.clone();
    // SAFETY: the closure runs in the forked child before exec. It makes
    // async-signal-safe calls only (fcntl, getpid) and atomic operations on
    // the shared mapping, which the child inherited; it allocates nothing
    // (everything it uses was made here, in the parent). The fds it names
    // were inherited open (fork copies the table). The closure owns the
    // hand-off description: the parent's copy closes when `cmd` drops.
    unsafe {
        cmd.pre_exec(move || {
            if anon {
                segment::clear_cloexec(seg_fd)?;
            }
            if let Some(d) = &handoff {
                segment::clear_cloexec(d.as_raw_fd())?;
                let pid = nix::libc::getpid() as u32;
                for &(k, role) in &roles {
                    let _ = shared.ring(k).join_handoff(role, pid, d.as_raw_fd());
                }
            }
            Ok(())
        });
    }
}

/// Attaches the segment named by `var` (`name:NAME` or `fd:N`, then an
/// optional `@K`, returned as `K`, then an optional `;lock=D`, the hand-off
/// description of `inherit_handles`, returned as `D` once checked to be a
/// description of the same file).
pub(crate) fn segment_from_env(
    var: &str,
) -> Result<(Segment, Option<u16>, Option<OwnedFd>), OpenError> {
    let val = std::env::var(var)
        .map_err(|_| OpenError::InvalidConfig(format!("environment variable {var} is not set")))?;
    let bad = || OpenError::InvalidConfig(format!("{var}={val:?} is not fd:N or name:NAME"));
    let (rest, lock) = match val.split_once(";lock=") {
        Some((r, d)) => (r, Some(d.parse::<i32>().map_err(|_| bad())?)),
        None => (val.as_str(), None),
    };
    let (place, end) = match rest.split_once('@') {
        Some((p, k)) => (p, Some(k.parse().map_err(|_| bad())?)),
        None => (rest, None),
    };
    let seg = if let Some(name) = place.strip_prefix("name:") {
        Segment::open_named(name, false)?
    } else {
        let fd = place
            .strip_prefix("fd:")
            .and_then(|n| n.parse().ok())
            .ok_or_else(bad)?;
        Segment::from_fd(segment::dup_inherited(fd)?)?
    };
    // Only an inherited description (not close-on-exec: the parent's copy
    // is) of this very file is ours to unlock and close.
    let lock = lock.filter(|&d| {
        // SAFETY: F_GETFD only reads the fd's flags; a closed fd fails.
        let flags = unsafe { nix::libc::fcntl(d, nix::libc::F_GETFD) };
        flags >= 0 && flags & nix::libc::FD_CLOEXEC == 0 && proc::same_file(seg.as_raw_fd(), d)
    });
    // SAFETY: an open fd (fstat succeeded) of our segment's file, passed to
    // us by the parent to take over; nothing else in this process uses it.
    let lock = lock.map(|d| unsafe { OwnedFd::from_raw_fd(d) });
    Ok((seg, end, lock))
}

/// After a child attached with its own handles: gives up the lanes its
/// parent had it take before `exec` (see [`inherit_handles`]).
pub(crate) fn adopt_handoff(shared: &Shared, lock: Option<OwnedFd>) {
    if let Some(d) = lock {
        let pid = proc::pid();
        for k in 0..shared.seg.spec().rings {
            shared.ring(k).adopt_handoff(pid, d.as_raw_fd());
        }
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

/// The sending side of a [`Queue`]. Clone it for more producers (threads or
/// processes); each clone caches its own view of the consumers' progress and
/// owns a lane (see [`Queue::diagnostics`]) that records its half-done sends
/// for survivors if its process dies, so a handle is `Send` but not `Sync`.
pub struct Sender {
    shared: Arc<Shared>,
    ring: u16,
    cache: SendCache,
    /// The fork generation the lane in `cache` was taken under.
    gen: LaneGen,
}

/// A sending or receiving handle's lane: registered for forks (see
/// `handles`), with the lane and the fork generation it is good for cached
/// in cells for the hot path.
struct LaneGen {
    /// The fork generation `lane` (the handle's cell) was last set under.
    gen: Cell<u64>,
    reg: HandleLane,
}

impl LaneGen {
    fn new(ring: &Ring, role: u64) -> Self {
        LaneGen {
            gen: Cell::new(0),
            reg: HandleLane::new(ring, role),
        }
    }

    /// The handle's lane (cached in `lane`) in this process: the one it
    /// took, the one the fork handler took for it in a forked child, or a
    /// new one when none was free before. `None`: every lane is held by a
    /// live handle.
    #[inline]
    fn get(&self, lane: &Cell<u16>) -> Option<u16> {
        let l = lane.get();
        if l != NO_LANE && self.gen.get() == proc::fork_gen() {
            return Some(l);
        }
        self.refresh(lane)
    }

    #[cold]
    fn refresh(&self, lane: &Cell<u16>) -> Option<u16> {
        self.gen.set(proc::fork_gen());
        let l = self.reg.lane();
        lane.set(l.unwrap_or(NO_LANE));
        l
    }
}

impl Clone for Sender {
    /// A new handle with its own cache and the same wait strategy.
    fn clone(&self) -> Self {
        let mut s = Sender::new(self.shared.clone(), self.ring);
        s.cache.wait = self.cache.wait.clone();
        s
    }
}

impl Sender {
    pub(crate) fn new(shared: Arc<Shared>, ring: u16) -> Self {
        let s = Sender {
            gen: LaneGen::new(shared.ring(ring), ROLE_SENDER),
            shared,
            ring,
            cache: SendCache::default(),
        };
        // No lane free now: the first send tries again (and reports
        // `TooManyHandles` if there is still none).
        let _ = s.lane();
        s
    }

    /// Makes sure the handle has a lane of this process (see [`LaneGen`]);
    /// every send calls it first.
    #[inline]
    pub(crate) fn lane(&self) -> Result<(), SendError> {
        self.gen
            .get(&self.cache.lane)
            .map(drop)
            .ok_or(SendError::TooManyHandles)
    }

    #[inline]
    fn ring(&self) -> &Ring {
        self.shared.ring(self.ring)
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// The index of the handle's ring in its segment.
    pub(crate) fn ring_index(&self) -> u16 {
        self.ring
    }

    /// Sets how blocking sends wait for room before they sleep on the
    /// futex; the default, [`WaitStrategy::Adaptive`], spins as long as
    /// recent waits suggest room comes soon (see [`WaitStrategy`]).
    ///
    /// ```
    /// use shmq::WaitStrategy;
    ///
    /// let q = shmq::Queue::builder().create()?;
    /// let mut tx = q.sender();
    /// tx.set_wait_strategy(WaitStrategy::Spin(0)); // sleep at once
    /// assert_eq!(tx.wait_strategy(), WaitStrategy::Spin(0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.cache.wait = Backoff::new(strategy);
    }

    /// The wait strategy; see [`set_wait_strategy`](Sender::set_wait_strategy).
    pub fn wait_strategy(&self) -> WaitStrategy {
        self.cache.wait.strategy()
    }

    /// Sends a message, waiting while the queue is full.
    ///
    /// # Errors
    /// [`SendError::Closed`], [`SendError::TooLarge`];
    /// [`SendError::Disconnected`] if the queue is full and no receiver and
    /// no [`Queue`] handle is left in any process (known at the call, or
    /// learnt within about 100 ms of the last one's death while it waits);
    /// [`SendError::TooManyHandles`] if the handle has no lane.
    pub fn send(&self, msg: &[u8]) -> Result<(), SendError> {
        self.lane()?;
        self.ring().send(&self.cache, msg, None)
    }

    /// Sends a message if there is room now.
    ///
    /// ```
    /// let q = shmq::Queue::builder().maxsize(1).create()?;
    /// let tx = q.sender();
    /// tx.try_send(b"one")?;
    /// assert_eq!(tx.try_send(b"two"), Err(shmq::SendError::Full));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`SendError::Full`], [`SendError::Closed`], [`SendError::TooLarge`],
    /// [`SendError::TooManyHandles`].
    pub fn try_send(&self, msg: &[u8]) -> Result<(), SendError> {
        self.lane()?;
        self.ring().try_send(&self.cache, msg)
    }

    /// Sends a message, waiting at most `timeout` for room.
    ///
    /// # Errors
    /// [`SendError::Timeout`], then as [`Sender::send`].
    pub fn send_timeout(&self, msg: &[u8], timeout: Duration) -> Result<(), SendError> {
        self.lane()?;
        self.ring()
            .send(&self.cache, msg, Instant::now().checked_add(timeout))
    }

    /// Sends every message of `msgs` in order, waiting for room as
    /// [`Sender::send`], and wakes sleeping receivers once per batch instead
    /// of after every message (Python's `Queue.put` in a loop, minus a
    /// futex check per message). Returns how many were sent.
    ///
    /// ```
    /// let q = shmq::Queue::builder().create()?;
    /// let n = q.sender().send_batch([&b"a"[..], b"bc", b"def"])?;
    /// assert_eq!(n, 3);
    /// let rx = q.receiver();
    /// let batch = rx.recv_batch(10)?; // all three, one wake-up
    /// let got: Vec<&[u8]> = batch.iter().collect();
    /// assert_eq!(got, [&b"a"[..], b"bc", b"def"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`BatchError`] with the number sent and the error that stopped the
    /// batch (as [`Sender::send`]).
    pub fn send_batch<I>(&self, msgs: I) -> Result<usize, BatchError>
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        self.lane().map_err(|error| BatchError { sent: 0, error })?;
        batch_loop(&mut self.batch(None), msgs, |b, m| b.send(m.as_ref()))
    }

    /// As [`Sender::send_batch`], waiting at most `timeout` in all.
    ///
    /// # Errors
    /// As [`Sender::send_batch`], plus [`SendError::Timeout`].
    pub fn send_batch_timeout<I>(&self, msgs: I, timeout: Duration) -> Result<usize, BatchError>
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        self.lane().map_err(|error| BatchError { sent: 0, error })?;
        let deadline = Instant::now().checked_add(timeout);
        batch_loop(&mut self.batch(deadline), msgs, |b, m| b.send(m.as_ref()))
    }

    /// Sends messages of `msgs` in order while there is room, never waiting.
    ///
    /// # Errors
    /// [`BatchError`] with [`SendError::Full`] when room ran out (the rest
    /// of the batch was not sent), or as [`Sender::send_batch`].
    pub fn try_send_batch<I>(&self, msgs: I) -> Result<usize, BatchError>
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        self.lane().map_err(|error| BatchError { sent: 0, error })?;
        batch_loop(&mut self.batch(None), msgs, |b, m| b.try_send(m.as_ref()))
    }

    /// Closes the queue (see [`Queue::close`]).
    pub fn close(&self) {
        self.ring().close()
    }

    /// Whether the queue has been closed.
    pub fn is_closed(&self) -> bool {
        self.ring().is_closed()
    }

    /// A batch of sends; the caller has made sure of the lane.
    pub(crate) fn batch(&self, deadline: Option<Instant>) -> SendBatch<'_> {
        SendBatch::new(self.ring(), &self.cache, deadline)
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.gen.reg.release();
    }
}

/// Sends each item of `msgs` with `send` until one fails; the batch's drop
/// wakes the receivers.
pub(crate) fn batch_loop<I>(
    b: &mut SendBatch<'_>,
    msgs: I,
    mut send: impl FnMut(&mut SendBatch<'_>, I::Item) -> Result<(), SendError>,
) -> Result<usize, BatchError>
where
    I: IntoIterator,
{
    for m in msgs {
        if let Err(error) = send(b, m) {
            return Err(BatchError {
                sent: b.sent(),
                error,
            });
        }
    }
    Ok(b.sent())
}

impl fmt::Debug for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender").finish_non_exhaustive()
    }
}

/// The receiving side of a [`Queue`]. Clone it for more consumers (threads
/// or processes); each message goes to exactly one of them. Each clone owns
/// a lane that records the messages it holds, so that they are reclaimed if
/// its process dies; a handle is `Send` but not `Sync` (clone it for each
/// thread).
pub struct Receiver {
    shared: Arc<Shared>,
    ring: u16,
    wait: Backoff,
    lane: Cell<u16>,
    gen: LaneGen,
}

impl Clone for Receiver {
    /// A new handle, with a lane of its own and the same wait strategy.
    fn clone(&self) -> Self {
        let mut r = Receiver::new(self.shared.clone(), self.ring);
        r.wait = self.wait.clone();
        r
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.gen.reg.release();
    }
}

impl Receiver {
    pub(crate) fn new(shared: Arc<Shared>, ring: u16) -> Self {
        let r = Receiver {
            gen: LaneGen::new(shared.ring(ring), ROLE_RECEIVER),
            shared,
            ring,
            wait: Backoff::default(),
            lane: Cell::new(NO_LANE),
        };
        // As in `Sender::new`: a missing lane is retried by the first call.
        let _ = r.lane();
        r
    }

    /// The handle's lane in this process (see [`LaneGen`]); every receive
    /// calls it first.
    #[inline]
    fn lane(&self) -> Result<u16, RecvError> {
        self.gen.get(&self.lane).ok_or(RecvError::TooManyHandles)
    }

    #[inline]
    fn ring(&self) -> &Ring {
        self.shared.ring(self.ring)
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// The index of the handle's ring in its segment.
    pub(crate) fn ring_index(&self) -> u16 {
        self.ring
    }

    /// Sets how blocking receives wait for a message before they sleep on
    /// the futex; the default, [`WaitStrategy::Adaptive`], spins as long as
    /// recent waits suggest a message comes soon (see [`WaitStrategy`]).
    ///
    /// ```
    /// use shmq::WaitStrategy;
    ///
    /// let q = shmq::Queue::builder().create()?;
    /// let mut rx = q.receiver();
    /// rx.set_wait_strategy(WaitStrategy::Spin(1000));
    /// assert_eq!(rx.wait_strategy(), WaitStrategy::Spin(1000));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.wait = Backoff::new(strategy);
    }

    /// The wait strategy; see [`set_wait_strategy`](Receiver::set_wait_strategy).
    pub fn wait_strategy(&self) -> WaitStrategy {
        self.wait.strategy()
    }

    /// Receives the next message, waiting while the queue is empty.
    ///
    /// # Errors
    /// [`RecvError::Closed`] once the queue is closed and drained;
    /// [`RecvError::Disconnected`] if it is empty and no sender and no
    /// [`Queue`] handle is left in any process (dropped, exited or killed:
    /// known at the call, or learnt within about 100 ms of the last one's
    /// death while it waits); [`RecvError::Corrupted`] if the segment holds an impossible
    /// record; [`RecvError::TooManyHandles`] if the handle has no lane.
    ///
    /// While it waits, it also recovers what dead processes left half done
    /// (see docs/DESIGN.md, *Dead peers*); `try_recv` never does.
    pub fn recv(&self) -> Result<RecvGuard<'_>, RecvError> {
        let lane = self.lane()?;
        self.ring()
            .recv(None, &self.wait, lane)
            .map(|c| self.guard(c, lane))
    }

    /// Receives a message if one is ready now.
    ///
    /// ```
    /// let q = shmq::Queue::builder().create()?;
    /// assert_eq!(q.receiver().try_recv().unwrap_err(), shmq::RecvError::Empty);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`RecvError::Empty`], [`RecvError::Closed`], [`RecvError::Corrupted`],
    /// [`RecvError::TooManyHandles`].
    pub fn try_recv(&self) -> Result<RecvGuard<'_>, RecvError> {
        let lane = self.lane()?;
        self.ring().try_recv(lane).map(|c| self.guard(c, lane))
    }

    /// Receives a message, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`RecvError::Timeout`], then as [`Receiver::recv`].
    pub fn recv_timeout(&self, timeout: Duration) -> Result<RecvGuard<'_>, RecvError> {
        let lane = self.lane()?;
        self.ring()
            .recv(Instant::now().checked_add(timeout), &self.wait, lane)
            .map(|c| self.guard(c, lane))
    }

    /// Waits for a message, then takes it and every message ready behind
    /// it, up to `max` (at least one), with one wake-up of the senders for
    /// all of them: the consumer side of a batch, and the cheapest way to
    /// drain a busy queue. The messages are read in place; their room is
    /// given back when the [`Batch`] drops.
    ///
    /// # Errors
    /// As [`Receiver::recv`]; an error met after the first message ends the
    /// batch early and is reported by the next call.
    pub fn recv_batch(&self, max: usize) -> Result<Batch<'_>, RecvError> {
        let lane = self.lane()?;
        let first = self.ring().recv(None, &self.wait, lane)?;
        Ok(self.batch(first, max, lane))
    }

    /// As [`Receiver::recv_batch`], without waiting.
    ///
    /// # Errors
    /// As [`Receiver::try_recv`].
    pub fn try_recv_batch(&self, max: usize) -> Result<Batch<'_>, RecvError> {
        let lane = self.lane()?;
        let first = self.ring().try_recv(lane)?;
        Ok(self.batch(first, max, lane))
    }

    /// As [`Receiver::recv_batch`], waiting at most `timeout` for the first
    /// message.
    ///
    /// # Errors
    /// As [`Receiver::recv_timeout`].
    pub fn recv_batch_timeout(
        &self,
        max: usize,
        timeout: Duration,
    ) -> Result<Batch<'_>, RecvError> {
        let lane = self.lane()?;
        let first = self
            .ring()
            .recv(Instant::now().checked_add(timeout), &self.wait, lane)?;
        Ok(self.batch(first, max, lane))
    }

    fn batch(&self, first: Claim, max: usize, lane: u16) -> Batch<'_> {
        let max = max.max(1);
        let mut claims = Vec::with_capacity(max.min(64));
        claims.push(first);
        self.ring().take_ready(max, &mut claims, lane);
        Batch {
            ring: self.ring(),
            claims,
            lane,
            gen: proc::fork_gen(),
            _not_send: PhantomData,
        }
    }

    fn guard(&self, claim: Claim, lane: u16) -> RecvGuard<'_> {
        RecvGuard {
            ring: self.ring(),
            claim: Some(claim),
            lane,
            gen: proc::fork_gen(),
            _not_send: PhantomData,
        }
    }

    /// Whether `ptr` lies inside the queue's shared mapping (lets tests and
    /// users check that a received message was not copied).
    pub fn is_in_shared_memory(&self, ptr: *const u8) -> bool {
        self.shared.seg.contains(ptr)
    }

    /// Messages queued (see [`Queue::len`]).
    pub fn len(&self) -> usize {
        self.ring().len()
    }

    /// Whether no message is queued (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the queue has been closed (messages may still be queued).
    pub fn is_closed(&self) -> bool {
        self.ring().is_closed()
    }

    pub(crate) fn close(&self) {
        self.ring().close()
    }
}

impl fmt::Debug for Receiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver").finish_non_exhaustive()
    }
}

/// A received message, read in place from shared memory. Its room in the
/// ring is given back when the guard drops, so keep it only as long as you
/// need the bytes (copy with `.to_vec()` to keep them longer). Holding it does
/// not stop other receivers taking later messages, but room is reclaimed in
/// order, so a guard held for long keeps the room of every later message too.
/// A guard that is leaked (`mem::forget`) never gives its room back.
///
/// A guard is released only by the process (and thread) that received it:
/// it is not `Send`, and a copy inherited by a forked child does nothing
/// when the child drops it (the parent's copy still gives the room back, so
/// a child must copy what it needs before the parent drops its guard).
///
/// ```compile_fail
/// let q = shmq::Queue::builder().create()?;
/// q.sender().send(b"x")?;
/// let rx = q.receiver();
/// let g = rx.recv()?;
/// std::thread::scope(|s| {
///     s.spawn(move || drop(g)); // error: `RecvGuard` cannot be sent
/// });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RecvGuard<'a> {
    ring: &'a Ring,
    claim: Option<Claim>,
    lane: u16,
    /// The fork generation that took the claim: only it releases.
    gen: u64,
    _not_send: NotSend,
}

/// Makes a guard `!Send` (its release writes the receiving handle's lane,
/// which only that handle's thread may) and leaves it `Sync` (reading the
/// bytes from several threads is fine).
type NotSend = PhantomData<std::sync::MutexGuard<'static, ()>>;

impl std::ops::Deref for RecvGuard<'_> {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        let claim = self.claim.as_ref().expect("claim is present until drop");
        // SAFETY: the claim is taken and not released until `drop`, which
        // cannot run while this borrow of `self` lives.
        unsafe { self.ring.payload(claim) }
    }
}

impl AsRef<[u8]> for RecvGuard<'_> {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl Drop for RecvGuard<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.claim.take() {
            if taken_here(self.gen) {
                self.ring.release(c, self.lane);
            }
        }
    }
}

/// Whether a guard taken under fork generation `gen` is this process's to
/// release (a forked child's inherited copy is not).
#[inline]
fn taken_here(gen: u64) -> bool {
    gen == proc::fork_gen()
}

impl fmt::Debug for RecvGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvGuard")
            .field("len", &self.len())
            .finish()
    }
}

/// Messages taken together by [`Receiver::recv_batch`], read in place from
/// shared memory, in queue order. Their room is given back, with one
/// wake-up of the senders, when the batch drops; as with [`RecvGuard`],
/// holding it pins the room of every later message. Like a guard, a batch
/// is not `Send` and is released only by the process that received it
/// (not by a forked child's copy).
///
/// ```compile_fail
/// let q = shmq::Queue::builder().create()?;
/// q.sender().send(b"x")?;
/// let rx = q.receiver();
/// let b = rx.recv_batch(8)?;
/// std::thread::scope(|s| {
///     s.spawn(move || drop(b)); // error: `Batch` cannot be sent
/// });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Batch<'a> {
    ring: &'a Ring,
    claims: Vec<Claim>,
    lane: u16,
    gen: u64,
    _not_send: NotSend,
}

impl<'a> Batch<'a> {
    /// Number of messages (at least one).
    pub fn len(&self) -> usize {
        self.claims.len()
    }

    /// Always false: a batch holds at least one message.
    pub fn is_empty(&self) -> bool {
        self.claims.is_empty()
    }

    /// Message `i`, in place.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        // SAFETY: the claim is taken and released only when the batch drops,
        // which cannot happen while the returned borrow of `self` lives.
        self.claims.get(i).map(|c| unsafe { self.ring.payload(c) })
    }

    /// The messages in order, in place.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        // SAFETY: as in `get`.
        self.claims.iter().map(|c| unsafe { self.ring.payload(c) })
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        if taken_here(self.gen) {
            self.ring.release_batch(self.claims.drain(..), self.lane);
        }
    }
}

impl fmt::Debug for Batch<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch").field("len", &self.len()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_points_into_the_mapping() {
        let q = Queue::builder().capacity_bytes(4096).create().unwrap();
        q.sender().send(b"zero copy").unwrap();
        let rx = q.receiver();
        let g = rx.recv().unwrap();
        assert!(rx.is_in_shared_memory(g.as_ptr()));
        assert_eq!(g.as_ptr() as usize % 64, 0, "payload is 64-byte aligned");
        let v = b"zero copy".to_vec();
        assert!(!rx.is_in_shared_memory(v.as_ptr()));
    }

    #[test]
    fn handles_are_send_and_clone() {
        fn send<T: Send + Clone>() {}
        send::<Sender>();
        send::<Receiver>();
        send::<Queue>();
    }

    #[test]
    fn every_handle_takes_a_lane_and_gives_it_back() {
        let q = Queue::builder().capacity_bytes(4096).create().unwrap();
        let seen = |q: &Queue| {
            let d = q.diagnostics();
            (d.senders, d.receivers)
        };
        let tx = q.sender();
        let rxs: Vec<_> = (0..3).map(|_| q.receiver()).collect();
        let tx2 = tx.clone();
        assert_eq!(seen(&q), (2, 3));
        drop(tx);
        drop(rxs);
        assert_eq!(seen(&q), (1, 0));
        drop(tx2);
        assert_eq!(seen(&q), (0, 0));
        // 256 lanes: the 257th live handle gets none, and says so.
        let many: Vec<_> = (0..256).map(|_| q.sender()).collect();
        let extra = q.receiver();
        assert_eq!(extra.try_recv().unwrap_err(), RecvError::TooManyHandles);
        drop(many.into_iter().next());
        assert_eq!(
            extra.try_recv().unwrap_err(),
            RecvError::Empty,
            "a lane freed up"
        );
    }

    #[test]
    fn receivers_learn_that_every_sender_is_gone() {
        let q = Queue::builder().capacity_bytes(4096).create().unwrap();
        let rx = q.receiver();
        // A `Queue` handle could still send: receivers wait.
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(150)).unwrap_err(),
            RecvError::Timeout
        );
        let tx = q.sender();
        let rx2 = q.receiver();
        drop(q);
        tx.send(b"last words").unwrap();
        let waiter = std::thread::spawn(move || {
            let first = rx2.recv().map(|m| m.to_vec());
            (first, rx2.recv().map(|m| m.to_vec()))
        });
        std::thread::sleep(Duration::from_millis(50));
        drop(tx);
        let (first, second) = waiter.join().unwrap();
        assert_eq!(first.unwrap(), b"last words", "drained first");
        assert_eq!(second.unwrap_err(), RecvError::Disconnected);
        // Known at the call: no waiting for a slice.
        let t = Instant::now();
        assert_eq!(rx.recv().unwrap_err(), RecvError::Disconnected);
        assert!(t.elapsed() < Duration::from_millis(50), "{:?}", t.elapsed());
    }

    #[test]
    fn a_live_queue_handle_keeps_receivers_waiting() {
        // Python's pattern: the parent keeps the queue, the producers come
        // and go, and a sentinel comes last from a fresh sender.
        let q = Queue::builder().capacity_bytes(4096).create().unwrap();
        let rx = q.receiver();
        let consumer = std::thread::spawn(move || {
            let mut got = Vec::new();
            loop {
                match rx.recv() {
                    Ok(m) if &*m == b"STOP" => return Ok(got),
                    Ok(m) => got.push(m.to_vec()),
                    Err(e) => return Err(e),
                }
            }
        });
        for i in 0..3u8 {
            q.sender().send(&[i]).unwrap(); // a sender per send
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(150));
        q.sender().send(b"STOP").unwrap();
        assert_eq!(
            consumer.join().unwrap(),
            Ok(vec![vec![0], vec![1], vec![2]])
        );
    }

    #[test]
    fn senders_learn_that_every_receiver_is_gone() {
        let q = Queue::builder()
            .capacity_bytes(4096)
            .maxsize(1)
            .create()
            .unwrap();
        let tx = q.sender();
        let rx = q.receiver();
        drop(q);
        tx.send(b"fills it").unwrap();
        let blocked = std::thread::spawn(move || tx.send(b"waits"));
        std::thread::sleep(Duration::from_millis(50));
        drop(rx);
        assert_eq!(blocked.join().unwrap(), Err(SendError::Disconnected));
    }

    #[test]
    fn close_wakes_blocked_threads() {
        let q = Queue::builder()
            .capacity_bytes(256)
            .maxsize(1)
            .create()
            .unwrap();
        let tx = q.sender();
        tx.send(b"x").unwrap();
        let q2 = q.clone();
        let blocked_sender = std::thread::spawn(move || q2.sender().send(b"y"));
        let q3 = Queue::builder().create().unwrap();
        let q4 = q3.clone();
        let blocked_receiver = std::thread::spawn(move || q4.receiver().recv().map(|_| ()));
        std::thread::sleep(Duration::from_millis(50));
        q.close();
        q3.close();
        assert_eq!(blocked_sender.join().unwrap(), Err(SendError::Closed));
        assert_eq!(blocked_receiver.join().unwrap(), Err(RecvError::Closed));
        assert_eq!(&*q.receiver().recv().unwrap(), b"x", "drain after close");
    }

    #[test]
    fn handles_that_never_spin_are_woken_every_time() {
        // maxsize 1 and no spinning: nearly every hand-off parks one side.
        let q = Queue::builder().maxsize(1).create().unwrap();
        let mut rx = q.receiver();
        rx.set_wait_strategy(WaitStrategy::Spin(0));
        assert_eq!(
            rx.clone().wait_strategy(),
            WaitStrategy::Spin(0),
            "clones keep the setting"
        );
        let consumer = std::thread::spawn(move || {
            let mut next = 0u32;
            while let Ok(m) = rx.recv() {
                assert_eq!(*m, next.to_le_bytes());
                next += 1;
            }
            next
        });
        let mut tx = q.sender();
        tx.set_wait_strategy(WaitStrategy::Spin(0));
        assert_eq!(
            tx.clone().wait_strategy(),
            WaitStrategy::Spin(0),
            "clones keep the setting"
        );
        for i in 0..20_000u32 {
            tx.send(&i.to_le_bytes()).unwrap();
        }
        q.close();
        assert_eq!(consumer.join().unwrap(), 20_000);
        assert!(q.diagnostics().recv_wakes > 0, "the receiver slept");
    }
}
