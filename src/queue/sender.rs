//! The sending handle.

use super::endpoint::Endpoint;
use super::*;

/// The sending side of a [`Queue`]. Clone it for more producers (threads or
/// processes); each clone caches its own view of the consumers' progress, so
/// a handle is `Send` but not `Sync`. Clones cost no lane: the senders of a
/// process share its lanes of the queue (one, or up to 8 while that many
/// threads send at once), which record their half-done sends for survivors
/// if the process dies (see [`Queue::diagnostics`]).
pub struct Sender {
    end: Endpoint,
    /// The handle's view of the consumers, its wait strategy and its lane.
    cache: SendCache,
}

impl Clone for Sender {
    /// A new handle with its own cache and the same wait strategy.
    fn clone(&self) -> Self {
        let mut s = Sender::new(self.end.shared().clone(), self.end.ring_index());
        s.cache.wait = self.cache.wait.clone();
        s
    }
}

impl Sender {
    pub(crate) fn new(shared: Arc<Shared>, ring: u16) -> Self {
        // The process's lanes of the ring are taken with its first handle
        // (none free: the first send tries again, and reports
        // `TooManyHandles` if there is still none).
        Sender {
            end: Endpoint::new(shared, ring, ROLE_SENDER),
            cache: SendCache::default(),
        }
    }

    /// Leases a lane of this process for one send, kept in `cache.lane`
    /// (see [`Endpoint::lease`]); every send calls it first.
    #[inline]
    pub(super) fn lease(&self) -> Result<Lease<'_>, SendError> {
        self.end
            .lease(&self.cache.lane)
            .map_err(SendError::from_join)
    }

    /// Enters a lane of this process for one send that does not sleep,
    /// kept in `cache.lane` (see [`Endpoint::enter`]).
    #[inline(always)]
    fn enter(&self) -> Result<Entered<'_>, SendError> {
        self.end
            .enter(&self.cache.lane)
            .map_err(SendError::from_join)
    }

    /// The handle's segment and ring.
    pub(crate) fn endpoint(&self) -> &Endpoint {
        &self.end
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
        self.send_until(msg, None)
    }

    /// `send` until `deadline`: one attempt as `try_send` does it (the
    /// common case: room now), then the blocking send, which leases a lane
    /// it can give back while it sleeps.
    #[inline(always)]
    fn send_until(&self, msg: &[u8], deadline: Option<Instant>) -> Result<(), SendError> {
        if msg.len() > self.end.ring().max_len() {
            return self.send_blocking(msg, deadline);
        }
        {
            let _in = self.enter()?;
            match self.end.ring().try_send(&self.cache, msg) {
                Err(SendError::Full) => {}
                r => return r,
            }
        }
        self.send_full(msg, deadline)
    }

    /// A blocking send of a message larger than a record.
    #[inline(never)]
    fn send_blocking(&self, msg: &[u8], deadline: Option<Instant>) -> Result<(), SendError> {
        let lease = self.lease()?;
        self.end.ring().send(&self.cache, msg, deadline, &lease)
    }

    /// The rest of a blocking send whose first attempt found the ring full.
    #[inline(never)]
    fn send_full(&self, msg: &[u8], deadline: Option<Instant>) -> Result<(), SendError> {
        let lease = self.lease()?;
        self.end
            .ring()
            .send_full(&self.cache, msg, deadline, &lease)
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
        let _in = self.enter()?;
        self.end.ring().try_send(&self.cache, msg)
    }

    /// Sends a message, waiting at most `timeout` for room.
    ///
    /// # Errors
    /// [`SendError::Timeout`], then as [`Sender::send`].
    pub fn send_timeout(&self, msg: &[u8], timeout: Duration) -> Result<(), SendError> {
        self.send_until(msg, Instant::now().checked_add(timeout))
    }

    /// Sends one message made of `parts`, written one after the other into
    /// the ring with no staging copy (a header and a payload, say), waiting
    /// while the queue is full. The receiver gets them as one message.
    ///
    /// ```
    /// let q = shmq::Queue::builder().create()?;
    /// q.sender().send_vectored(&[b"head:", b"body"])?;
    /// assert_eq!(&*q.receiver().recv()?, b"head:body");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`Sender::send`]; `TooLarge` counts the parts' total length.
    pub fn send_vectored(&self, parts: &[&[u8]]) -> Result<(), SendError> {
        let lease = self.lease()?;
        self.end.ring().send_parts(&self.cache, parts, None, &lease)
    }

    /// [`Sender::send_vectored`] if there is room now.
    ///
    /// # Errors
    /// As [`Sender::try_send`].
    pub fn try_send_vectored(&self, parts: &[&[u8]]) -> Result<(), SendError> {
        let _in = self.enter()?;
        self.end.ring().try_send_parts(&self.cache, parts)
    }

    /// [`Sender::send_vectored`], waiting at most `timeout` for room.
    ///
    /// # Errors
    /// As [`Sender::send_timeout`].
    pub fn send_vectored_timeout(
        &self,
        parts: &[&[u8]],
        timeout: Duration,
    ) -> Result<(), SendError> {
        let lease = self.lease()?;
        self.end.ring().send_parts(
            &self.cache,
            parts,
            Instant::now().checked_add(timeout),
            &lease,
        )
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
        self.batch(None, |b| batch_loop(b, msgs, |b, m| b.send(m.as_ref())))
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
        let deadline = Instant::now().checked_add(timeout);
        self.batch(deadline, |b| batch_loop(b, msgs, |b, m| b.send(m.as_ref())))
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
        self.batch(None, |b| batch_loop(b, msgs, |b, m| b.try_send(m.as_ref())))
    }

    /// Closes the queue (see [`Queue::close`]).
    pub fn close(&self) {
        self.end.ring().close()
    }

    /// Whether the queue has been closed.
    pub fn is_closed(&self) -> bool {
        self.end.ring().is_closed()
    }

    /// Runs `f` on a batch of sends, under one lease (a batch that cannot
    /// lease a lane has sent nothing).
    pub(crate) fn batch(
        &self,
        deadline: Option<Instant>,
        f: impl FnOnce(&mut SendBatch<'_>) -> Result<usize, BatchError>,
    ) -> Result<usize, BatchError> {
        let lease = self.lease().map_err(BatchError::unstarted)?;
        let mut batch = SendBatch::new(self.end.ring(), &self.cache, &lease, deadline);
        f(&mut batch)
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
