//! What a receive hands out: a message ([`RecvGuard`]) or several
//! ([`Batch`]) read in place, given back when dropped.

use super::endpoint::Endpoint;
use super::*;

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
    held: Held<'a>,
    claim: Option<Claim>,
}

/// Where taken records go back to, and who may give them back.
pub(super) struct Held<'a> {
    pub(super) ring: &'a Ring,
    /// The receiving handle's place: the lanes a release leases from.
    end: &'a Endpoint,
    /// The fork generation that took the records: only it releases.
    gen: u64,
    _not_send: NotSend,
}

impl<'a> Held<'a> {
    pub(super) fn new(end: &'a Endpoint) -> Self {
        Held {
            ring: end.ring(),
            end,
            gen: proc::fork_gen(),
            _not_send: PhantomData,
        }
    }

    /// Whether the records are this process's to release (a forked child's
    /// inherited copy is not).
    #[inline]
    pub(super) fn here(&self) -> bool {
        self.gen == proc::fork_gen()
    }

    /// Runs `f` with a lane of this process leased: the records were taken
    /// by one of its lanes, which it keeps while the receiving handle
    /// lives, so there is one to wait for.
    #[inline]
    pub(super) fn with_lane(&self, f: impl FnOnce(u16)) {
        let lane = Cell::new(NO_LANE);
        match self.end.enter(&lane) {
            Ok(_in) => f(lane.get()),
            // Not reached (see above). Were it reached, the records would
            // stay taken until the process ends, as if still held.
            Err(_) => debug_assert!(false, "a guard released in a process with no lane"),
        }
    }
}

impl<'a> RecvGuard<'a> {
    /// The guard of `claim`, taken by the handle at `end`.
    pub(super) fn new(end: &'a Endpoint, claim: Claim) -> Self {
        RecvGuard {
            held: Held::new(end),
            claim: Some(claim),
        }
    }
}

/// Makes a guard `!Send` (its release uses the receiving handle, which only
/// that handle's thread may) and leaves it `Sync` (reading the bytes from
/// several threads is fine).
pub(super) type NotSend = PhantomData<std::sync::MutexGuard<'static, ()>>;

impl std::ops::Deref for RecvGuard<'_> {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        let claim = self.claim.as_ref().expect("claim is present until drop");
        // SAFETY: the claim is taken and not released until `drop`, which
        // cannot run while this borrow of `self` lives.
        unsafe { self.held.ring.payload(claim) }
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
            if self.held.here() {
                self.held.with_lane(|lane| self.held.ring.release(c, lane));
            }
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
    held: Held<'a>,
    claims: Vec<Claim>,
}

impl<'a> Batch<'a> {
    /// The batch of `claims` (at least one), taken by the handle at `end`.
    pub(super) fn new(end: &'a Endpoint, claims: Vec<Claim>) -> Self {
        Batch {
            held: Held::new(end),
            claims,
        }
    }

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
        self.claims
            .get(i)
            .map(|c| unsafe { self.held.ring.payload(c) })
    }

    /// The messages in order, in place.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        // SAFETY: as in `get`.
        self.claims
            .iter()
            .map(|c| unsafe { self.held.ring.payload(c) })
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        if self.held.here() {
            let claims = self.claims.drain(..);
            self.held
                .with_lane(|lane| self.held.ring.release_batch(claims, lane));
        }
    }
}

impl fmt::Debug for Batch<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch").field("len", &self.len()).finish()
    }
}
