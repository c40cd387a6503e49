//! The receiving handle.

use super::endpoint::Endpoint;
use super::*;

/// The receiving side of a [`Queue`]. Clone it for more consumers (threads
/// or processes); each message goes to exactly one of them. The receivers
/// of a process share its lanes of the queue (one, or up to 8 while that
/// many threads receive at once), which record the messages they hold, so
/// that they are reclaimed if the process dies; a handle is `Send` but not
/// `Sync` (clone it for each thread: clones cost no lane).
pub struct Receiver {
    end: Endpoint,
    wait: Backoff,
    /// The lane of the operation under way (see [`Endpoint::lease`]).
    lane: Cell<u16>,
}

impl Clone for Receiver {
    /// A new handle, with a lane of its own and the same wait strategy.
    fn clone(&self) -> Self {
        let mut r = Receiver::new(self.end.shared().clone(), self.end.ring_index());
        r.wait = self.wait.clone();
        r
    }
}

impl Receiver {
    pub(crate) fn new(shared: Arc<Shared>, ring: u16) -> Self {
        // As in `Sender::new`: a missing lane is retried by the first call.
        Receiver {
            end: Endpoint::new(shared, ring, ROLE_RECEIVER),
            wait: Backoff::default(),
            lane: Cell::new(NO_LANE),
        }
    }

    /// Leases a lane of this process for one receive (see
    /// [`Endpoint::lease`]); every receive calls it first.
    #[inline]
    pub(super) fn lease(&self) -> Result<Lease<'_>, RecvError> {
        self.end.lease(&self.lane).map_err(RecvError::from_join)
    }

    /// Enters a lane of this process for one receive that does not sleep,
    /// kept in `lane` (see [`Endpoint::enter`]).
    #[inline(always)]
    fn enter(&self) -> Result<Entered<'_>, RecvError> {
        self.end.enter(&self.lane).map_err(RecvError::from_join)
    }

    /// The handle's segment and ring.
    pub(crate) fn endpoint(&self) -> &Endpoint {
        &self.end
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
        self.recv_until(None)
    }

    /// `recv` until `deadline`: one attempt as `try_recv` does it (the
    /// common case: a message is ready), then the blocking receive, which
    /// leases a lane it can give back while it sleeps.
    #[inline(always)]
    fn recv_until(&self, deadline: Option<Instant>) -> Result<RecvGuard<'_>, RecvError> {
        {
            let _in = self.enter()?;
            match self.end.ring().try_recv(self.lane.get()) {
                Err(RecvError::Empty) => {}
                Ok(c) => return Ok(self.guard(c.relay())),
                Err(e) => return Err(e),
            }
        }
        self.recv_blocking(deadline)
    }

    /// The rest of a blocking receive whose first attempt found nothing.
    #[inline(never)]
    fn recv_blocking(&self, deadline: Option<Instant>) -> Result<RecvGuard<'_>, RecvError> {
        let lease = self.lease()?;
        self.end
            .ring()
            .recv_empty(deadline, &self.wait, &lease)
            .map(|c| self.guard(c))
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
        let _in = self.enter()?;
        match self.end.ring().try_recv(self.lane.get()) {
            Ok(c) => Ok(self.guard(c.relay())),
            Err(e) => Err(e),
        }
    }

    /// Receives a message, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`RecvError::Timeout`], then as [`Receiver::recv`].
    pub fn recv_timeout(&self, timeout: Duration) -> Result<RecvGuard<'_>, RecvError> {
        self.recv_until(Instant::now().checked_add(timeout))
    }

    /// Receives the next message on lease, waiting while the queue is
    /// empty: it goes back to the queue unless [`Leased::ack`] is called,
    /// also if this process dies holding it (see [`Leased`]).
    ///
    /// # Errors
    /// As [`Receiver::recv`].
    pub fn recv_leased(&self) -> Result<Leased<'_>, RecvError> {
        self.recv_leased_until(None)
    }

    /// [`Receiver::recv_leased`], waiting at most `timeout`.
    ///
    /// # Errors
    /// [`RecvError::Timeout`], then as [`Receiver::recv`].
    pub fn recv_leased_timeout(&self, timeout: Duration) -> Result<Leased<'_>, RecvError> {
        self.recv_leased_until(Instant::now().checked_add(timeout))
    }

    /// [`Receiver::recv_leased`] if a message is ready now.
    ///
    /// # Errors
    /// As [`Receiver::try_recv`].
    pub fn try_recv_leased(&self) -> Result<Leased<'_>, RecvError> {
        let _in = self.enter()?;
        let c = self.end.ring().try_recv_leased(self.lane.get())?;
        Ok(Leased::new(&self.end, c))
    }

    fn recv_leased_until(&self, deadline: Option<Instant>) -> Result<Leased<'_>, RecvError> {
        match self.try_recv_leased() {
            Err(RecvError::Empty) => {}
            r => return r,
        }
        let lease = self.lease()?;
        self.end
            .ring()
            .recv_empty_leased(deadline, &self.wait, &lease)
            .map(|c| Leased::new(&self.end, c))
    }

    /// Recovers now what dead processes left half done on this queue, as
    /// a blocked receive's liveness scan does within about 100 ms: above
    /// all, gives back the messages they held on lease. Returns whether
    /// anything was recovered.
    ///
    /// A forwarder that takes over from one that died calls it before its
    /// first leased receive, so that the messages its predecessor held go
    /// out before any later one (a message given back is received next;
    /// `shmq-bridge out` does this to keep each producer's order).
    ///
    /// ```
    /// let q = shmq::Queue::builder().create()?;
    /// // Nothing died here: nothing to recover.
    /// assert!(!q.receiver().recover_now()?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`RecvError::TooManyHandles`] if the handle has no lane.
    pub fn recover_now(&self) -> Result<bool, RecvError> {
        let _in = self.enter()?;
        Ok(self.end.ring().recover(self.lane.get()))
    }

    /// Waits at most `timeout` until a message is ready, without taking it
    /// (Python's `Connection.poll`): `Ok(true)` when one is, `Ok(false)`
    /// when the time ran out. A `true` is a hint when several receivers
    /// share the queue: another may take the message first.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let q = shmq::Queue::builder().create()?;
    /// let (tx, rx) = (q.sender(), q.receiver());
    /// assert!(!rx.poll(Duration::ZERO)?);
    /// tx.send(b"x")?;
    /// assert!(rx.poll(Duration::from_secs(1))?);
    /// assert_eq!(&*rx.try_recv()?, b"x"); // still there
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`RecvError::Closed`] once the queue is closed and drained;
    /// [`RecvError::Disconnected`], [`RecvError::Corrupted`],
    /// [`RecvError::TooManyHandles`] as [`Receiver::recv`].
    pub fn poll(&self, timeout: Duration) -> Result<bool, RecvError> {
        let lease = self.lease()?;
        match self
            .end
            .ring()
            .wait_ready(Instant::now().checked_add(timeout), &self.wait, &lease)
        {
            Ok(()) => Ok(true),
            Err(RecvError::Timeout) => Ok(false),
            Err(e) => Err(e),
        }
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
        let lease = self.lease()?;
        let first = self.end.ring().recv(None, &self.wait, &lease)?;
        Ok(self.batch(first, max, lease.get()))
    }

    /// As [`Receiver::recv_batch`], without waiting.
    ///
    /// # Errors
    /// As [`Receiver::try_recv`].
    pub fn try_recv_batch(&self, max: usize) -> Result<Batch<'_>, RecvError> {
        let _in = self.enter()?;
        let first = self.end.ring().try_recv(self.lane.get())?;
        Ok(self.batch(first, max, self.lane.get()))
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
        let lease = self.lease()?;
        let first =
            self.end
                .ring()
                .recv(Instant::now().checked_add(timeout), &self.wait, &lease)?;
        Ok(self.batch(first, max, lease.get()))
    }

    /// Takes what else is ready behind `first` with the leased `lane`.
    fn batch(&self, first: Claim, max: usize, lane: u16) -> Batch<'_> {
        let max = max.max(1);
        let mut claims = Vec::with_capacity(max.min(64));
        claims.push(first);
        self.end.ring().take_ready(max, &mut claims, lane);
        Batch::new(&self.end, claims)
    }

    fn guard(&self, claim: Claim) -> RecvGuard<'_> {
        RecvGuard::new(&self.end, claim)
    }

    /// Whether `ptr` lies inside the queue's shared mapping (lets tests and
    /// users check that a received message was not copied).
    pub fn is_in_shared_memory(&self, ptr: *const u8) -> bool {
        self.end.shared().seg.contains(ptr)
    }

    /// Messages queued (see [`Queue::len`]).
    pub fn len(&self) -> usize {
        self.end.ring().len()
    }

    /// Whether no message is queued (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the queue has been closed (messages may still be queued).
    pub fn is_closed(&self) -> bool {
        self.end.ring().is_closed()
    }
}

impl fmt::Debug for Receiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver").finish_non_exhaustive()
    }
}
