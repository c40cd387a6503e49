//! A leased receive's message ([`Leased`]): acknowledged, or back to the
//! queue.

use super::endpoint::Endpoint;
use super::guard::Held;
use super::*;

/// A message received on lease ([`Receiver::recv_leased`]), read in place
/// from shared memory. It is done only when [`ack`](Leased::ack)ed; a lease
/// dropped without `ack` (an error, a panic) or held by a process that
/// dies (SIGKILL, a crash) puts the message back in the queue for another
/// receiver, as a JetStream consumer's unacknowledged message or an SQS
/// message whose visibility timeout ran out. So a forwarder that leases,
/// hands the message on, and acknowledges only once the next hop has it
/// loses nothing when it is killed in between; the next hop may then see
/// the message twice, and should drop repeats by an id the message carries
/// (`shmq-bridge` does).
///
/// **Order.** A message put back is received before the messages still
/// queued (any receive, leased or not, takes it next), so it arrives after
/// those that were received while it was leased: order is kept per
/// producer only for messages never put back.
///
/// **`maxsize`.** A bounded queue counts messages not yet received. A
/// message put back is not counted again, but its room in the ring stays
/// taken until it is acknowledged (as a [`RecvGuard`]'s does), so a lease
/// held long holds back the room of every later message.
///
/// Like a guard, a lease is not `Send`, and a forked child's inherited
/// copy does nothing when dropped (the parent's copy decides). The death
/// of its holder is found by the blocked calls' liveness scan, so the
/// message is back within about 100 ms if another receiver is waiting.
///
/// ```
/// let q = shmq::Queue::builder().create()?;
/// q.sender().send(b"job")?;
/// let rx = q.receiver();
/// let lease = rx.recv_leased()?;
/// assert_eq!(&*lease, b"job");
/// drop(lease); // not acknowledged: back in the queue
/// let again = rx.recv_leased()?;
/// assert_eq!(&*again, b"job");
/// again.ack(); // done: gone for good
/// assert_eq!(rx.try_recv().unwrap_err(), shmq::RecvError::Empty);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Leased<'a> {
    held: Held<'a>,
    claim: Option<Claim>,
}

impl<'a> Leased<'a> {
    /// The lease of `claim`, taken by the handle at `end`.
    pub(super) fn new(end: &'a Endpoint, claim: Claim) -> Self {
        Leased {
            held: Held::new(end),
            claim: Some(claim),
        }
    }

    /// The message's place in the queue: the same each time the message
    /// is leased again after being put back, different for every other
    /// message of this queue within 2^38 granules (16 TiB) of traffic. A
    /// forwarder makes it the message's idempotency key downstream
    /// (`shmq-bridge` uses it as JetStream's `Nats-Msg-Id`).
    ///
    /// ```
    /// let q = shmq::Queue::builder().create()?;
    /// q.sender().send(b"a")?;
    /// q.sender().send(b"b")?;
    /// let rx = q.receiver();
    /// let (a, b) = (rx.recv_leased()?, rx.recv_leased()?);
    /// assert_ne!(a.id(), b.id());
    /// let id = a.id();
    /// drop(a);
    /// assert_eq!(rx.recv_leased()?.id(), id);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn id(&self) -> u64 {
        self.claim.as_ref().map_or(0, |c| c.pos)
    }

    /// The message is done: its room is given back and nobody receives it
    /// again.
    pub fn ack(mut self) {
        if let Some(c) = self.claim.take() {
            if self.held.here() {
                // Settled first: a death inside the release then counts
                // the message delivered, never gives it back half freed.
                self.held.ring.settle(&c);
                self.held.with_lane(|lane| self.held.ring.release(c, lane));
            }
        }
    }

    /// Puts the message back in the queue now, for the next receive (what
    /// dropping the lease does; this says so in the code).
    pub fn give_back(self) {
        drop(self)
    }
}

impl std::ops::Deref for Leased<'_> {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        let claim = self.claim.as_ref().expect("claim is present until drop");
        // SAFETY: the record is ours (LEASED by our lane) until `ack` or
        // `drop`, neither of which can run while this borrow lives.
        unsafe { self.held.ring.payload(claim) }
    }
}

impl AsRef<[u8]> for Leased<'_> {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl Drop for Leased<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.claim.take() {
            if self.held.here() {
                // A descriptor a peer overwrote stays as it is: the record
                // is then neither ours nor anyone's to give back.
                self.held.ring.give_back(&c);
            }
        }
    }
}

impl fmt::Debug for Leased<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Leased").field("len", &self.len()).finish()
    }
}
