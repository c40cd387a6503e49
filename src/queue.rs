//! The public queue API: [`Queue`], its [`Builder`], [`Sender`], [`Receiver`]
//! and the zero-copy [`RecvGuard`].

use crate::diag::Diagnostics;
use crate::error::{OpenError, RecvError, SendError};
use crate::layout::DEFAULT_CAPACITY;
use crate::ring::{Claim, Ring, SendCache};
use crate::segment::{self, Segment};
use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Shared {
    // Declared before `seg`: the ring points into the segment's mapping.
    ring: Ring,
    seg: Segment,
}

impl Shared {
    fn new(seg: Segment) -> Arc<Self> {
        // SAFETY: the mapping is `total_len` bytes, page aligned, and lives
        // in `Shared` beside the ring, which never outlives it.
        let ring = unsafe { Ring::from_raw(seg.base(), seg.geometry(), seg.maxsize()) };
        Arc::new(Shared { ring, seg })
    }
}

/// Settings for a new queue; from [`Queue::builder`].
#[derive(Debug, Clone)]
pub struct Builder {
    capacity: usize,
    maxsize: usize,
    mode: u32,
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

    /// Permission bits of a named segment (default `0o600`: owner only).
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
        let seg = Segment::create_anon(self.capacity, self.maxsize as u64)?;
        Ok(Queue::from_segment(seg))
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
    /// # Errors
    /// [`OpenError::AlreadyExists`] if the name is taken,
    /// [`OpenError::InvalidName`], [`OpenError::InvalidConfig`],
    /// [`OpenError::Os`].
    pub fn create_named(self, name: &str) -> Result<Queue, OpenError> {
        let seg = Segment::create_named(name, self.capacity, self.maxsize as u64, self.mode)?;
        Ok(Queue::from_segment(seg))
    }
}

/// A queue in shared memory: make [`Sender`]s and [`Receiver`]s from it, ask
/// its state, close it, or hand it to another process.
///
/// Cloning is cheap and shares the mapping. Every method works the same in
/// every process attached to the queue.
#[derive(Clone)]
pub struct Queue {
    shared: Arc<Shared>,
}

impl Queue {
    /// Settings for a new queue.
    pub fn builder() -> Builder {
        Builder {
            capacity: DEFAULT_CAPACITY,
            maxsize: 0,
            mode: 0o600,
        }
    }

    fn from_segment(seg: Segment) -> Self {
        Queue {
            shared: Shared::new(seg),
        }
    }

    /// Attaches a named queue created by [`Builder::create_named`].
    ///
    /// # Errors
    /// [`OpenError::NotFound`]; for a segment that is not a complete shmq
    /// queue of this version: [`OpenError::NotAQueue`],
    /// [`OpenError::VersionMismatch`], [`OpenError::NotInitialized`],
    /// [`OpenError::Truncated`], [`OpenError::Corrupted`].
    pub fn open(name: &str) -> Result<Queue, OpenError> {
        Ok(Queue::from_segment(Segment::open_named(name)?))
    }

    /// Removes a queue's name. Processes that have it open keep using it; the
    /// memory is freed when the last one lets go.
    ///
    /// # Errors
    /// [`OpenError::NotFound`], [`OpenError::InvalidName`], [`OpenError::Os`].
    pub fn unlink(name: &str) -> Result<(), OpenError> {
        Segment::unlink(name)
    }

    /// Attaches an anonymous queue from its memfd (received over a Unix
    /// socket, say). The fd must be sealed against shrinking and growing, as
    /// [`Builder::create`] leaves it.
    ///
    /// # Errors
    /// [`OpenError::NotSealed`], then as [`Queue::open`].
    pub fn from_fd(fd: OwnedFd) -> Result<Queue, OpenError> {
        Ok(Queue::from_segment(Segment::from_fd(fd)?))
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
        match self.shared.seg.name() {
            Some(name) => {
                cmd.env(var, format!("name:{name}"));
            }
            None => {
                let fd = self.shared.seg.as_raw_fd();
                cmd.env(var, format!("fd:{fd}"));
                // SAFETY: the closure runs in the forked child before exec and
                // makes one async-signal-safe call (fcntl) on an fd number that
                // the child inherited from us open (fork copies the table).
                unsafe {
                    cmd.pre_exec(move || segment::clear_cloexec(fd));
                }
            }
        }
    }

    /// Attaches the queue a parent passed with [`Queue::inherit_into`].
    ///
    /// # Errors
    /// [`OpenError::InvalidConfig`] if `var` is unset or malformed; then as
    /// [`Queue::from_fd`] or [`Queue::open`].
    pub fn from_env(var: &str) -> Result<Queue, OpenError> {
        let val = std::env::var(var).map_err(|_| {
            OpenError::InvalidConfig(format!("environment variable {var} is not set"))
        })?;
        if let Some(name) = val.strip_prefix("name:") {
            return Queue::open(name);
        }
        let fd = val
            .strip_prefix("fd:")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| {
                OpenError::InvalidConfig(format!("{var}={val:?} is not fd:N or name:NAME"))
            })?;
        Queue::from_fd(segment::dup_inherited(fd)?)
    }

    /// A new sending handle.
    pub fn sender(&self) -> Sender {
        Sender {
            shared: self.shared.clone(),
            cache: SendCache::default(),
        }
    }

    /// A new receiving handle.
    pub fn receiver(&self) -> Receiver {
        Receiver {
            shared: self.shared.clone(),
        }
    }

    /// Messages queued and not yet received (Python's `qsize()`): a snapshot
    /// that may be stale as soon as it returns. Includes messages whose
    /// `send` has claimed room and is still copying.
    pub fn len(&self) -> usize {
        self.shared.ring.len()
    }

    /// Whether no message is queued (a snapshot, as [`Queue::len`]).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `maxsize` messages are queued or not one granule is free (a
    /// snapshot: a `try_send` may still fail on a queue that was not full).
    pub fn is_full(&self) -> bool {
        self.shared.ring.is_full()
    }

    /// Bytes of message storage.
    pub fn capacity(&self) -> usize {
        self.shared.ring.capacity()
    }

    /// The message limit set with [`Builder::maxsize`]; `None` if unbounded.
    pub fn maxsize(&self) -> Option<usize> {
        self.shared.ring.maxsize().map(|m| m as usize)
    }

    /// The largest message accepted: half of [`Queue::capacity`].
    pub fn max_message_size(&self) -> usize {
        self.shared.ring.max_len()
    }

    /// Closes the queue for every process: sends fail with
    /// [`SendError::Closed`] from now on, and every blocked sender and
    /// receiver wakes. Receivers still get every message sent before, then
    /// [`RecvError::Closed`]. Idempotent; a closed queue stays closed.
    pub fn close(&self) {
        self.shared.ring.close()
    }

    /// Whether the queue has been closed (never becomes false again).
    pub fn is_closed(&self) -> bool {
        self.shared.ring.is_closed()
    }

    /// A snapshot of the shared counters (positions, sequence numbers,
    /// sleepers, the descriptors at the read and reclaim points), for
    /// watchdogs and failure reports; see [`Diagnostics`].
    pub fn diagnostics(&self) -> Diagnostics {
        self.shared.ring.diagnostics()
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

/// The sending side of a [`Queue`]. Clone it for more producers (threads or
/// processes); each clone caches its own view of the consumers' progress, so
/// a handle is `Send` but not `Sync`.
pub struct Sender {
    shared: Arc<Shared>,
    cache: SendCache,
}

impl Clone for Sender {
    fn clone(&self) -> Self {
        Sender {
            shared: self.shared.clone(),
            cache: SendCache::default(),
        }
    }
}

impl Sender {
    /// Sends a message, waiting while the queue is full.
    ///
    /// # Errors
    /// [`SendError::Closed`], [`SendError::TooLarge`].
    pub fn send(&self, msg: &[u8]) -> Result<(), SendError> {
        self.shared.ring.send(&self.cache, msg, None)
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
    /// [`SendError::Full`], [`SendError::Closed`], [`SendError::TooLarge`].
    pub fn try_send(&self, msg: &[u8]) -> Result<(), SendError> {
        self.shared.ring.try_send(&self.cache, msg)
    }

    /// Sends a message, waiting at most `timeout` for room.
    ///
    /// # Errors
    /// [`SendError::Timeout`], [`SendError::Closed`], [`SendError::TooLarge`].
    pub fn send_timeout(&self, msg: &[u8], timeout: Duration) -> Result<(), SendError> {
        self.shared
            .ring
            .send(&self.cache, msg, Instant::now().checked_add(timeout))
    }

    /// Closes the queue (see [`Queue::close`]).
    pub fn close(&self) {
        self.shared.ring.close()
    }

    /// Whether the queue has been closed.
    pub fn is_closed(&self) -> bool {
        self.shared.ring.is_closed()
    }
}

impl fmt::Debug for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender").finish_non_exhaustive()
    }
}

/// The receiving side of a [`Queue`]. Clone it for more consumers (threads
/// or processes); each message goes to exactly one of them.
#[derive(Clone)]
pub struct Receiver {
    shared: Arc<Shared>,
}

impl Receiver {
    /// Receives the next message, waiting while the queue is empty.
    ///
    /// # Errors
    /// [`RecvError::Closed`] once the queue is closed and drained;
    /// [`RecvError::Corrupted`] if the segment holds an impossible record.
    pub fn recv(&self) -> Result<RecvGuard<'_>, RecvError> {
        self.shared.ring.recv(None).map(|c| self.guard(c))
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
    /// [`RecvError::Empty`], [`RecvError::Closed`], [`RecvError::Corrupted`].
    pub fn try_recv(&self) -> Result<RecvGuard<'_>, RecvError> {
        self.shared.ring.try_recv().map(|c| self.guard(c))
    }

    /// Receives a message, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`RecvError::Timeout`], [`RecvError::Closed`], [`RecvError::Corrupted`].
    pub fn recv_timeout(&self, timeout: Duration) -> Result<RecvGuard<'_>, RecvError> {
        self.shared
            .ring
            .recv(Instant::now().checked_add(timeout))
            .map(|c| self.guard(c))
    }

    fn guard(&self, claim: Claim) -> RecvGuard<'_> {
        RecvGuard {
            ring: &self.shared.ring,
            claim: Some(claim),
        }
    }

    /// Whether `ptr` lies inside the queue's shared mapping (lets tests and
    /// users check that a received message was not copied).
    pub fn is_in_shared_memory(&self, ptr: *const u8) -> bool {
        self.shared.seg.contains(ptr)
    }

    /// Messages queued (see [`Queue::len`]).
    pub fn len(&self) -> usize {
        self.shared.ring.len()
    }

    /// Whether no message is queued (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the queue has been closed (messages may still be queued).
    pub fn is_closed(&self) -> bool {
        self.shared.ring.is_closed()
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
pub struct RecvGuard<'a> {
    ring: &'a Ring,
    claim: Option<Claim>,
}

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
            self.ring.release(c);
        }
    }
}

impl fmt::Debug for RecvGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvGuard")
            .field("len", &self.len())
            .finish()
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
}
