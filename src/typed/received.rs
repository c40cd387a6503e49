//! What a typed receive gives: [`Typed`] (validated, in place), [`Owned`]
//! (validated, in private memory) and [`TypedBatch`].

use super::{check, Message};
use crate::error::RecvError;
use crate::queue::{Batch, RecvGuard};
use rkyv::rancor::Failure;
use rkyv::util::AlignedVec;
use rkyv::Archive;
use std::fmt;
use std::marker::PhantomData;

/// A received `T`, validated and read in place: derefs to `&Archived<T>`
/// in shared memory. Its room is given back when it drops (see
/// [`RecvGuard`]); like a `RecvGuard` it is not `Send`, and a copy
/// inherited by a forked child is not released by the child.
///
/// ```compile_fail
/// #[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
/// struct Job { id: u32 }
/// let q = shmq::Queue::builder().create_typed::<Job>()?;
/// q.sender().send(&Job { id: 1 })?;
/// let rx = q.receiver();
/// let job = rx.recv()?;
/// std::thread::scope(|s| {
///     s.spawn(move || drop(job)); // error: `Typed` cannot be sent
/// });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Typed<'a, T: Archive> {
    pub(super) guard: RecvGuard<'a>,
    /// Points into `guard`'s payload, which stays in place until it drops.
    pub(super) archived: *const T::Archived,
}

impl<T: Message> Typed<'_, T> {
    /// Deserializes into an owned `T`.
    ///
    /// # Errors
    /// [`RecvError::Invalid`] if rkyv's deserializer fails.
    pub fn deserialize(&self) -> Result<T, RecvError> {
        rkyv::deserialize::<T, Failure>(&**self).map_err(|Failure| RecvError::Invalid)
    }

    /// The raw message bytes, in place.
    pub fn as_bytes(&self) -> &[u8] {
        &self.guard
    }
}

impl<T: Archive> std::ops::Deref for Typed<'_, T> {
    type Target = T::Archived;
    #[inline]
    fn deref(&self) -> &T::Archived {
        // SAFETY: `archived` was validated (or vouched for) and points into
        // the guard's payload, which is neither moved nor released nor
        // written by the protocol while `self` lives.
        unsafe { &*self.archived }
    }
}

impl<T: Archive> fmt::Debug for Typed<'_, T>
where
    T::Archived: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// A `T` received by [`TypedReceiver::recv_copied`](super::TypedReceiver::recv_copied): validated, in private
/// memory.
pub struct Owned<T> {
    pub(super) bytes: AlignedVec,
    pub(super) _t: PhantomData<fn() -> T>,
}

impl<T: Message> Owned<T> {
    /// Deserializes into an owned `T`.
    ///
    /// # Errors
    /// [`RecvError::Invalid`] if rkyv's deserializer fails.
    pub fn deserialize(&self) -> Result<T, RecvError> {
        rkyv::deserialize::<T, Failure>(&**self).map_err(|Failure| RecvError::Invalid)
    }
}

impl<T: Message> std::ops::Deref for Owned<T> {
    type Target = T::Archived;
    fn deref(&self) -> &T::Archived {
        // SAFETY: validated in `recv_copied`; the private buffer is never
        // written again.
        unsafe { rkyv::access_unchecked::<T::Archived>(&self.bytes) }
    }
}

/// Messages taken together by [`TypedReceiver::recv_batch`](super::TypedReceiver::recv_batch), in order.
pub struct TypedBatch<'a, T> {
    pub(super) batch: Batch<'a>,
    pub(super) _t: PhantomData<fn() -> T>,
}

impl<T: Message> TypedBatch<'_, T> {
    /// Number of messages (at least one).
    pub fn len(&self) -> usize {
        self.batch.len()
    }

    /// Always false: a batch holds at least one message.
    pub fn is_empty(&self) -> bool {
        self.batch.is_empty()
    }

    /// The messages in order, each validated in place as it is reached
    /// (`Err(RecvError::Invalid)` for one that is not a valid `T`).
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Result<&T::Archived, RecvError>> + '_ {
        self.batch.iter().map(check::<T>)
    }
}
