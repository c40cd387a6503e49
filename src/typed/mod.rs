//! Typed messages with rkyv: a value is serialized once into the ring and
//! read **in place** from shared memory as its archived form, checked by
//! default.
//!
//! * [`TypedSender::send`] serializes into a scratch buffer the handle keeps
//!   (rkyv's thread-local arena serves the serializer), then copies the bytes
//!   into the ring: one copy, no heap allocation per message once the
//!   scratch buffer has grown to the largest message.
//! * [`TypedReceiver::recv`] validates the bytes where they lie (bytecheck)
//!   and returns a [`Typed`] guard that derefs to `&Archived<T>` in shared
//!   memory; [`Typed::deserialize`] makes an owned `T`.
//!
//! # Trust model
//!
//! Every process attached to a queue can write every byte of it.
//! Validation makes a malformed message (a buggy peer, a peer of another
//! type or version, a sender using the byte API) an `Err(RecvError::Invalid)`
//! instead of undefined behaviour. It checks the bytes **once**: a peer
//! that rewrites a message *after* the check, while you read it, can still
//! make your reads see anything, including out-of-bounds relative pointers.
//! The ring protocol never writes a record a receiver holds, so this takes a
//! deliberately hostile (or memory-corrupting) peer. If you must guard
//! against one, use [`TypedReceiver::recv_copied`]: it copies the message
//! into private memory first and validates the copy. The `unsafe`
//! [`TypedReceiver::recv_unchecked`] skips validation for peers you trust
//! completely. See `docs/TYPED.md`.
//!
//! # Type fingerprint
//!
//! A typed queue records its message type in the segment header (a 64-bit
//! hash of the type's name and of its archived size and alignment, plus the
//! name for error messages). [`crate::Queue::typed`] on a queue made for
//! another type, or made untyped, fails with [`OpenError::TypeMismatch`].
//! The name is `std::any::type_name`, which is stable within one build of a
//! program, the intended use: processes running the same code. It is a
//! guard against mix-ups, not a schema check; validation still guards memory
//! safety.

use crate::error::{BatchError, OpenError, RecvError, SendError};
use crate::layout::{TypeTag, TYPE_NAME_LEN};
use crate::queue::{batch_loop, Builder, Queue, Receiver, RecvGuard, Sender};
use rkyv::api::high::{HighDeserializer, HighSerializer, HighValidator};
use rkyv::bytecheck::CheckBytes;
use rkyv::rancor::Failure;
use rkyv::ser::allocator::ArenaHandle;
use rkyv::util::AlignedVec;
use rkyv::{Archive, Deserialize, Portable, Serialize};
use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

mod received;
pub use received::{Owned, Typed, TypedBatch};

/// What a type needs to travel through a typed queue: derive
/// `rkyv::Archive`, `rkyv::Serialize` and `rkyv::Deserialize` (with rkyv's
/// default `bytecheck` support) and it is implemented for you.
///
/// ```
/// #[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
/// struct Order {
///     id: u64,
///     items: Vec<String>,
/// }
/// fn takes<T: shmq::Message>() {}
/// takes::<Order>();
/// ```
///
/// Without rkyv among your own dependencies, derive through the re-export
/// and say so (rkyv's derives otherwise look for a crate `rkyv`):
///
/// ```
/// use shmq::rkyv::{Archive, Deserialize, Serialize};
///
/// #[derive(Archive, Serialize, Deserialize)]
/// #[rkyv(crate = shmq::rkyv)]
/// enum Msg {
///     Job { id: u64, path: String },
///     Done,
/// }
/// fn takes<T: shmq::Message>() {}
/// takes::<Msg>();
/// ```
pub trait Message:
    Archive<
        Archived: Portable
                      + for<'a> CheckBytes<HighValidator<'a, Failure>>
                      + Deserialize<Self, HighDeserializer<Failure>>,
    > + for<'a> Serialize<HighSerializer<AlignedVec, ArenaHandle<'a>, Failure>>
    + Sized
{
}

impl<T> Message for T where
    T: Archive<
            Archived: Portable
                          + for<'a> CheckBytes<HighValidator<'a, Failure>>
                          + Deserialize<T, HighDeserializer<Failure>>,
        > + for<'a> Serialize<HighSerializer<AlignedVec, ArenaHandle<'a>, Failure>>
{
}

/// The fingerprint of `T` stored in a typed segment's header.
pub(crate) fn type_tag<T: Message>() -> TypeTag {
    let name = std::any::type_name::<T>();
    // FNV-1a over the name, the archived layout and rkyv's format.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let size = std::mem::size_of::<T::Archived>() as u64;
    let align = std::mem::align_of::<T::Archived>() as u64;
    let bytes = name
        .bytes()
        .chain(size.to_le_bytes())
        .chain(align.to_le_bytes())
        .chain(*b"rkyv-0.8-le");
    for b in bytes {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    // Keep the end of long names: the type, not the crate path.
    let tail = &name.as_bytes()[name.len().saturating_sub(TYPE_NAME_LEN)..];
    let mut stored = [0; TYPE_NAME_LEN];
    stored[..tail.len()].copy_from_slice(tail);
    TypeTag {
        hash: h.max(1), // 0 means untyped
        name: stored,
    }
}

/// Checks that `shared`'s segment was made for `T`.
fn check_type<T: Message>(q: &crate::queue::Shared) -> Result<(), OpenError> {
    let found = q.seg.spec().type_tag;
    if found.hash == type_tag::<T>().hash {
        Ok(())
    } else {
        Err(OpenError::TypeMismatch {
            expected: std::any::type_name::<T>().to_owned(),
            found: found.name(),
        })
    }
}

impl Builder {
    /// Makes the queue (or pipe) a typed one for messages of type `T`: the
    /// fingerprint of `T` is stored in the header, and [`Queue::typed`]
    /// refuses any other type.
    pub fn message_type<T: Message>(mut self) -> Self {
        self.type_tag = type_tag::<T>();
        self
    }

    /// Creates an anonymous typed queue: `message_type::<T>()`, `create()`,
    /// then [`Queue::typed`].
    ///
    /// ```
    /// #[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, PartialEq)]
    /// struct Point { x: i32, y: i32 }
    ///
    /// let q = shmq::Queue::builder().create_typed::<Point>()?;
    /// q.sender().send(&Point { x: 1, y: 2 })?;
    /// let rx = q.receiver();
    /// let p = rx.recv()?;              // validated, in shared memory
    /// assert_eq!(p.x, 1);              // p: &ArchivedPoint
    /// assert_eq!(p.deserialize()?, Point { x: 1, y: 2 });
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`Builder::create`].
    pub fn create_typed<T: Message>(self) -> Result<TypedQueue<T>, OpenError> {
        self.message_type::<T>().create()?.typed()
    }
}

impl Queue {
    /// This queue as a queue of `T` messages.
    ///
    /// # Errors
    /// [`OpenError::TypeMismatch`] unless the queue was created with
    /// [`Builder::message_type`] for `T`.
    pub fn typed<T: Message>(&self) -> Result<TypedQueue<T>, OpenError> {
        check_type::<T>(&self.shared)?;
        Ok(TypedQueue {
            queue: self.clone(),
            _t: PhantomData,
        })
    }
}

impl Sender {
    /// This sender as a sender of `T` messages (for a pipe end's half, say).
    ///
    /// # Errors
    /// As [`Queue::typed`].
    pub fn typed<T: Message>(self) -> Result<TypedSender<T>, OpenError> {
        check_type::<T>(self.endpoint().shared())?;
        Ok(TypedSender {
            tx: self,
            scratch: Cell::new(AlignedVec::new()),
            _t: PhantomData,
        })
    }
}

impl Receiver {
    /// This receiver as a receiver of `T` messages.
    ///
    /// # Errors
    /// As [`Queue::typed`].
    pub fn typed<T: Message>(self) -> Result<TypedReceiver<T>, OpenError> {
        check_type::<T>(self.endpoint().shared())?;
        Ok(TypedReceiver {
            rx: self,
            _t: PhantomData,
        })
    }
}

/// A queue of `T` messages; from [`Queue::typed`] or
/// [`Builder::create_typed`].
pub struct TypedQueue<T> {
    queue: Queue,
    _t: PhantomData<fn(T) -> T>,
}

impl<T> Clone for TypedQueue<T> {
    fn clone(&self) -> Self {
        TypedQueue {
            queue: self.queue.clone(),
            _t: PhantomData,
        }
    }
}

impl<T: Message> TypedQueue<T> {
    /// A new sending handle.
    pub fn sender(&self) -> TypedSender<T> {
        TypedSender {
            tx: self.queue.sender(),
            scratch: Cell::new(AlignedVec::new()),
            _t: PhantomData,
        }
    }

    /// A new receiving handle.
    pub fn receiver(&self) -> TypedReceiver<T> {
        TypedReceiver {
            rx: self.queue.receiver(),
            _t: PhantomData,
        }
    }

    /// The untyped queue: `len`, `close`, `inherit_into`, ...
    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    /// Closes the queue (see [`Queue::close`]).
    pub fn close(&self) {
        self.queue.close()
    }

    /// This handle turned into a sending one (see [`Queue::into_sender`]).
    pub fn into_sender(self) -> TypedSender<T> {
        self.sender()
    }

    /// This handle turned into a receiving one (see
    /// [`Queue::into_receiver`]).
    pub fn into_receiver(self) -> TypedReceiver<T> {
        self.receiver()
    }

    /// Messages in the queue now (see [`Queue::len`]).
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether the queue is empty now (see [`Queue::is_empty`]).
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Whether the queue is full now (see [`Queue::is_full`]).
    pub fn is_full(&self) -> bool {
        self.queue.is_full()
    }

    /// Whether the queue has been closed.
    pub fn is_closed(&self) -> bool {
        self.queue.is_closed()
    }

    /// Arranges for `cmd`'s process to receive this queue (see
    /// [`Queue::inherit_into`]); the child attaches it with
    /// `Queue::from_env(var)?.typed::<T>()?`.
    pub fn inherit_into(&self, cmd: &mut std::process::Command, var: &str) {
        self.queue.inherit_into(cmd, var)
    }
}

impl<T> fmt::Debug for TypedQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedQueue")
            .field("type", &std::any::type_name::<T>())
            .field("queue", &self.queue)
            .finish()
    }
}

/// Sends `T` messages; each handle keeps its own scratch buffer (so it is
/// `Send` but not `Sync`, as [`Sender`]).
pub struct TypedSender<T> {
    tx: Sender,
    scratch: Cell<AlignedVec>,
    _t: PhantomData<fn(T)>,
}

impl<T> Clone for TypedSender<T> {
    fn clone(&self) -> Self {
        TypedSender {
            tx: self.tx.clone(),
            scratch: Cell::new(AlignedVec::new()),
            _t: PhantomData,
        }
    }
}

impl<T: Message> TypedSender<T> {
    /// Serializes `value` into the scratch buffer and hands the bytes to
    /// `send`.
    fn with_bytes<R>(
        &self,
        value: &T,
        send: impl FnOnce(&[u8]) -> Result<R, SendError>,
    ) -> Result<R, SendError> {
        let mut buf = self.scratch.take();
        buf.clear();
        let r = match rkyv::api::high::to_bytes_in::<_, Failure>(value, buf) {
            Ok(bytes) => {
                let r = send(&bytes);
                buf = bytes;
                r
            }
            Err(Failure) => {
                buf = AlignedVec::new();
                Err(SendError::Serialize)
            }
        };
        self.scratch.set(buf);
        r
    }

    /// Sends `value`, waiting while the queue is full.
    ///
    /// # Errors
    /// As [`Sender::send`], plus [`SendError::Serialize`].
    pub fn send(&self, value: &T) -> Result<(), SendError> {
        self.with_bytes(value, |b| self.tx.send(b))
    }

    /// Sends `value` if there is room now.
    ///
    /// # Errors
    /// As [`Sender::try_send`], plus [`SendError::Serialize`].
    pub fn try_send(&self, value: &T) -> Result<(), SendError> {
        self.with_bytes(value, |b| self.tx.try_send(b))
    }

    /// Sends `value`, waiting at most `timeout` for room.
    ///
    /// # Errors
    /// As [`Sender::send_timeout`], plus [`SendError::Serialize`].
    pub fn send_timeout(&self, value: &T, timeout: Duration) -> Result<(), SendError> {
        self.with_bytes(value, |b| self.tx.send_timeout(b, timeout))
    }

    /// Sends every value in order, waking receivers once (see
    /// [`Sender::send_batch`]).
    ///
    /// # Errors
    /// As [`Sender::send_batch`], plus [`SendError::Serialize`].
    pub fn send_batch<'v, I>(&self, values: I) -> Result<usize, BatchError>
    where
        I: IntoIterator<Item = &'v T>,
        T: 'v,
    {
        self.tx.batch(None, |b| {
            batch_loop(b, values, |b, v| self.with_bytes(v, |bytes| b.send(bytes)))
        })
    }

    /// As [`TypedSender::send_batch`], waiting at most `timeout` in all.
    ///
    /// # Errors
    /// As [`TypedSender::send_batch`], plus [`SendError::Timeout`].
    pub fn send_batch_timeout<'v, I>(
        &self,
        values: I,
        timeout: Duration,
    ) -> Result<usize, BatchError>
    where
        I: IntoIterator<Item = &'v T>,
        T: 'v,
    {
        let deadline = Instant::now().checked_add(timeout);
        self.tx.batch(deadline, |b| {
            batch_loop(b, values, |b, v| self.with_bytes(v, |bytes| b.send(bytes)))
        })
    }

    /// Closes the queue (see [`Queue::close`]).
    pub fn close(&self) {
        self.tx.close()
    }
}

impl<T> fmt::Debug for TypedSender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedSender")
            .field("type", &std::any::type_name::<T>())
            .finish_non_exhaustive()
    }
}

/// Receives `T` messages, read in place and validated.
pub struct TypedReceiver<T> {
    rx: Receiver,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for TypedReceiver<T> {
    fn clone(&self) -> Self {
        TypedReceiver {
            rx: self.rx.clone(),
            _t: PhantomData,
        }
    }
}

/// Validates `bytes` as an archived `T`.
fn check<T: Message>(bytes: &[u8]) -> Result<&T::Archived, RecvError> {
    rkyv::access::<T::Archived, Failure>(bytes).map_err(|Failure| RecvError::Invalid)
}

impl<T: Message> TypedReceiver<T> {
    fn checked<'a>(
        &'a self,
        g: Result<RecvGuard<'a>, RecvError>,
    ) -> Result<Typed<'a, T>, RecvError> {
        let guard = g?;
        // On error the guard drops here: the invalid message is released.
        let archived: *const T::Archived = check::<T>(&guard)?;
        Ok(Typed { guard, archived })
    }

    /// Receives the next message, waiting while the queue is empty, and
    /// validates it in place.
    ///
    /// # Errors
    /// As [`Receiver::recv`], plus [`RecvError::Invalid`] (the invalid
    /// message is dropped; the next call receives the next one).
    pub fn recv(&self) -> Result<Typed<'_, T>, RecvError> {
        self.checked(self.rx.recv())
    }

    /// Receives a message if one is ready now.
    ///
    /// # Errors
    /// As [`Receiver::try_recv`], plus [`RecvError::Invalid`].
    pub fn try_recv(&self) -> Result<Typed<'_, T>, RecvError> {
        self.checked(self.rx.try_recv())
    }

    /// Receives a message, waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`Receiver::recv_timeout`], plus [`RecvError::Invalid`].
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Typed<'_, T>, RecvError> {
        self.checked(self.rx.recv_timeout(timeout))
    }

    /// Receives the next message without validating it.
    ///
    /// # Safety
    /// Every process that can write to this queue must be trusted to have
    /// sent only values serialized as `T` by this same build of rkyv (any
    /// [`TypedSender<T>`] does), and not to modify messages after sending.
    /// Otherwise reading the result is undefined behaviour.
    ///
    /// # Errors
    /// As [`Receiver::recv`].
    pub unsafe fn recv_unchecked(&self) -> Result<Typed<'_, T>, RecvError> {
        let guard = self.rx.recv()?;
        // SAFETY: the caller vouches that the bytes are a valid archived T;
        // payloads are 64-byte aligned, enough for any archived type.
        let archived: *const T::Archived = unsafe { rkyv::access_unchecked::<T::Archived>(&guard) };
        Ok(Typed { guard, archived })
    }

    /// Receives the next message by copying it into private memory and then
    /// validating the copy: safe even against a peer that rewrites messages
    /// after sending them (see the module's trust model). Costs one copy.
    ///
    /// # Errors
    /// As [`TypedReceiver::recv`].
    pub fn recv_copied(&self) -> Result<Owned<T>, RecvError> {
        let guard = self.rx.recv()?;
        let mut bytes = AlignedVec::with_capacity(guard.len());
        bytes.extend_from_slice(&guard);
        drop(guard);
        check::<T>(&bytes)?;
        Ok(Owned {
            bytes,
            _t: PhantomData,
        })
    }

    /// Waits for a message and takes up to `max` ready ones with one wake-up
    /// (see [`Receiver::recv_batch`]); each is validated when you read it.
    ///
    /// # Errors
    /// As [`Receiver::recv_batch`].
    pub fn recv_batch(&self, max: usize) -> Result<TypedBatch<'_, T>, RecvError> {
        Ok(TypedBatch {
            batch: self.rx.recv_batch(max)?,
            _t: PhantomData,
        })
    }

    /// Whether `ptr` lies in the queue's shared mapping (see
    /// [`Receiver::is_in_shared_memory`]).
    pub fn is_in_shared_memory<P: ?Sized>(&self, ptr: *const P) -> bool {
        self.rx.is_in_shared_memory(ptr.cast())
    }

    /// Whether the queue has been closed.
    pub fn is_closed(&self) -> bool {
        self.rx.is_closed()
    }
}

impl<T> fmt::Debug for TypedReceiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedReceiver")
            .field("type", &std::any::type_name::<T>())
            .finish_non_exhaustive()
    }
}
