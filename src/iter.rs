//! Iterators over receiving handles: `for m in &rx { .. }` receives until
//! the queue is closed and drained, or every sender is gone (Python's
//! `for item in iter(q.get, None)`, without the sentinel).
//!
//! A blocking iterator ([`Iter`]) ends at the first error and keeps it:
//! [`Iter::end`] says why it stopped (`Closed` and `Disconnected` are the
//! normal ends; anything else, such as `Corrupted`, is worth a look). A
//! non-blocking one ([`TryIter`]) yields what is ready now and returns
//! `None` when nothing is; it can be polled again later, and ends for good
//! only on another error. Both are generic over the handle they receive
//! from ([`Source`]): bytes from a [`Receiver`], validated archives from a
//! [`TypedReceiver`] ([`TypedIter`], [`TypedTryIter`]).

use crate::error::RecvError;
use crate::queue::{Receiver, RecvGuard};
use crate::typed::{Message, Typed, TypedReceiver};
use std::fmt;

/// Why an iterator stopped; `None` while it runs.
#[derive(Debug, Default)]
struct End(Option<RecvError>);

impl End {
    /// The message `recv` gives, or `None` once it failed (then for good;
    /// a non-blocking iterator's `Empty` is not an end).
    fn step<G>(&mut self, recv: impl FnOnce() -> Result<G, RecvError>) -> Option<G> {
        if self.0.is_some() {
            return None;
        }
        match recv() {
            Ok(g) => Some(g),
            Err(RecvError::Empty) => None,
            Err(e) => {
                self.0 = Some(e);
                None
            }
        }
    }

    /// `Err` with the error that cut the iteration short; `Ok` while it
    /// runs or once it ended at `Closed` or `Disconnected`.
    fn result(&self) -> Result<(), RecvError> {
        match self.0 {
            Some(e) if !matches!(e, RecvError::Closed | RecvError::Disconnected) => Err(e),
            _ => Ok(()),
        }
    }
}

/// A receiving handle an iterator can receive from: [`Receiver`] (its
/// items are [`RecvGuard`]s) and [`TypedReceiver<T>`] (its items are
/// [`Typed<T>`], each validated). Sealed: implemented here only.
pub trait Source: sealed::Sealed {
    /// What one receive yields, borrowing the handle.
    type Item<'a>
    where
        Self: 'a;
    /// Waits for the next message.
    #[doc(hidden)]
    fn recv_next(&self) -> Result<Self::Item<'_>, RecvError>;
    /// The next message if one is ready.
    #[doc(hidden)]
    fn try_recv_next(&self) -> Result<Self::Item<'_>, RecvError>;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for crate::queue::Receiver {}
    impl<T> Sealed for crate::typed::TypedReceiver<T> {}
}

impl Source for Receiver {
    type Item<'a> = RecvGuard<'a>;
    fn recv_next(&self) -> Result<RecvGuard<'_>, RecvError> {
        self.recv()
    }
    fn try_recv_next(&self) -> Result<RecvGuard<'_>, RecvError> {
        self.try_recv()
    }
}

impl<T: Message> Source for TypedReceiver<T> {
    type Item<'a>
        = Typed<'a, T>
    where
        T: 'a;
    fn recv_next(&self) -> Result<Typed<'_, T>, RecvError> {
        self.recv()
    }
    fn try_recv_next(&self) -> Result<Typed<'_, T>, RecvError> {
        self.try_recv()
    }
}

/// Receives messages, waiting for each, until the queue is closed and
/// drained or every sender is gone; from [`Receiver::iter`] (and the
/// `iter` of typed receivers and pipe ends) or `&Receiver` in a `for`
/// loop. A typed iterator ([`TypedIter`]) validates each message in
/// place; an invalid one ends it with [`RecvError::Invalid`].
///
/// ```
/// let q = shmq::Queue::builder().create()?;
/// let (tx, rx) = (q.sender(), q.receiver());
/// tx.send_batch([&b"a"[..], b"b"])?;
/// q.close();
/// let mut msgs = rx.iter();
/// let mut got = Vec::new();
/// for m in &mut msgs {
///     got.push(m.to_vec());
/// }
/// msgs.result()?; // Closed (or Disconnected) is the normal end
/// assert_eq!(got, [b"a".to_vec(), b"b".to_vec()]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Iter<'a, S = Receiver> {
    rx: Option<&'a S>,
    end: End,
}

/// Receives the messages that are ready, never waiting; from
/// [`Receiver::try_iter`] (and the `try_iter` of typed receivers and pipe
/// ends). `None` when nothing is ready (poll again later); after another
/// error (`Closed`, ...) it stays ended.
///
/// ```
/// let q = shmq::Queue::builder().create()?;
/// let (tx, rx) = (q.sender(), q.receiver());
/// tx.send(b"ready")?;
/// assert_eq!(rx.try_iter().count(), 1);
/// assert_eq!(rx.try_iter().count(), 0); // nothing left, and no waiting
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct TryIter<'a, S = Receiver> {
    rx: Option<&'a S>,
    end: End,
}

/// [`Iter`] over a [`TypedReceiver<T>`].
pub type TypedIter<'a, T> = Iter<'a, TypedReceiver<T>>;
/// [`TryIter`] over a [`TypedReceiver<T>`].
pub type TypedTryIter<'a, T> = TryIter<'a, TypedReceiver<T>>;

/// What both iterators share: where they receive from, and why they ended.
macro_rules! iterator {
    ($name:ident, $recv:ident) => {
        impl<'a, S> $name<'a, S> {
            /// Over `rx`; with an error, an iterator already ended by it.
            pub(crate) fn new(rx: Result<&'a S, RecvError>) -> Self {
                match rx {
                    Ok(rx) => $name {
                        rx: Some(rx),
                        end: End::default(),
                    },
                    Err(e) => $name {
                        rx: None,
                        end: End(Some(e)),
                    },
                }
            }

            /// Why the iterator stopped for good: [`RecvError::Closed`] or
            /// [`RecvError::Disconnected`] when it ran to the end, another
            /// error if one cut it short; `None` while it can still yield
            /// (`Empty` does not end a `TryIter`).
            pub fn end(&self) -> Option<&RecvError> {
                self.end.0.as_ref()
            }

            /// `Err` with the error that cut the iteration short (not
            /// `Closed` or `Disconnected`, the normal ends); `Ok` otherwise.
            /// For `?` after a `for` loop over `&mut` the iterator.
            pub fn result(&self) -> Result<(), RecvError> {
                self.end.result()
            }
        }

        impl<'a, S: Source> Iterator for $name<'a, S> {
            type Item = S::Item<'a>;

            fn next(&mut self) -> Option<S::Item<'a>> {
                let rx = self.rx?;
                self.end.step(|| rx.$recv())
            }
        }

        impl<S> fmt::Debug for $name<'_, S> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("end", &self.end())
                    .finish()
            }
        }
    };
}

iterator!(Iter, recv_next);
iterator!(TryIter, try_recv_next);

impl Receiver {
    /// Receives messages, waiting for each, until the queue is closed and
    /// drained or every sender is gone (see [`Iter`]); `for m in &rx` does
    /// the same.
    pub fn iter(&self) -> Iter<'_> {
        Iter::new(Ok(self))
    }

    /// Receives the messages that are ready now, never waiting (see
    /// [`TryIter`]).
    pub fn try_iter(&self) -> TryIter<'_> {
        TryIter::new(Ok(self))
    }
}

impl<'a> IntoIterator for &'a Receiver {
    type Item = RecvGuard<'a>;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl<T: Message> TypedReceiver<T> {
    /// Receives and validates messages, waiting for each, until the queue
    /// is closed and drained or every sender is gone (see [`Iter`]).
    pub fn iter(&self) -> TypedIter<'_, T> {
        Iter::new(Ok(self))
    }

    /// Receives and validates the messages that are ready now (see
    /// [`TryIter`]).
    pub fn try_iter(&self) -> TypedTryIter<'_, T> {
        TryIter::new(Ok(self))
    }
}

impl<'a, T: Message> IntoIterator for &'a TypedReceiver<T> {
    type Item = Typed<'a, T>;
    type IntoIter = TypedIter<'a, T>;

    fn into_iter(self) -> TypedIter<'a, T> {
        self.iter()
    }
}
