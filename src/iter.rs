//! Iterators over receiving handles: `for m in &rx { .. }` receives until
//! the queue is closed and drained, or every sender is gone (Python's
//! `for item in iter(q.get, None)`, without the sentinel).
//!
//! A blocking iterator ([`Iter`], [`TypedIter`]) ends at the first error
//! and keeps it: [`Iter::end`] says why it stopped (`Closed` and
//! `Disconnected` are the normal ends; anything else, such as `Corrupted`,
//! is worth a look). A non-blocking one ([`TryIter`], [`TypedTryIter`])
//! yields what is ready now and returns `None` when nothing is; it can be
//! polled again later, and ends for good only on another error.

use crate::error::RecvError;
use crate::pipe::Connection;
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

/// Receives messages, waiting for each, until the queue is closed and
/// drained or every sender is gone; from [`Receiver::iter`] or `&Receiver`
/// in a `for` loop.
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
pub struct Iter<'a> {
    rx: Option<&'a Receiver>,
    end: End,
}

impl<'a> Iter<'a> {
    /// Over `rx`; with `None`, an iterator already ended by `end`.
    pub(crate) fn new(rx: Result<&'a Receiver, RecvError>) -> Self {
        match rx {
            Ok(rx) => Iter {
                rx: Some(rx),
                end: End::default(),
            },
            Err(e) => Iter {
                rx: None,
                end: End(Some(e)),
            },
        }
    }

    /// Why the iterator stopped: [`RecvError::Closed`] or
    /// [`RecvError::Disconnected`] when it ran to the end, another error
    /// if one cut it short; `None` while it runs.
    pub fn end(&self) -> Option<&RecvError> {
        self.end.0.as_ref()
    }

    /// `Err` with the error that cut the iteration short (not `Closed` or
    /// `Disconnected`, the normal ends); `Ok` otherwise. For `?` after a
    /// `for` loop over `&mut` the iterator.
    pub fn result(&self) -> Result<(), RecvError> {
        self.end.result()
    }
}

impl<'a> Iterator for Iter<'a> {
    type Item = RecvGuard<'a>;

    fn next(&mut self) -> Option<RecvGuard<'a>> {
        let rx = self.rx?;
        self.end.step(|| rx.recv())
    }
}

impl fmt::Debug for Iter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter").field("end", &self.end()).finish()
    }
}

/// Receives the messages that are ready, never waiting; from
/// [`Receiver::try_iter`]. `None` when nothing is ready (poll again later);
/// after another error (`Closed`, ...) it stays ended.
///
/// ```
/// let q = shmq::Queue::builder().create()?;
/// let (tx, rx) = (q.sender(), q.receiver());
/// tx.send(b"ready")?;
/// assert_eq!(rx.try_iter().count(), 1);
/// assert_eq!(rx.try_iter().count(), 0); // nothing left, and no waiting
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct TryIter<'a> {
    rx: Option<&'a Receiver>,
    end: End,
}

impl<'a> TryIter<'a> {
    /// Over `rx`; with an error, an iterator already ended by it.
    pub(crate) fn new(rx: Result<&'a Receiver, RecvError>) -> Self {
        let Iter { rx, end } = Iter::new(rx);
        TryIter { rx, end }
    }

    /// Why the iterator ended for good (not `Empty`); `None` while it can
    /// still yield.
    pub fn end(&self) -> Option<&RecvError> {
        self.end.0.as_ref()
    }

    /// `Err` with the error that cut the iteration short (not `Closed` or
    /// `Disconnected`, the normal ends); `Ok` otherwise. For `?` after a
    /// `for` loop over `&mut` the iterator.
    pub fn result(&self) -> Result<(), RecvError> {
        self.end.result()
    }
}

impl<'a> Iterator for TryIter<'a> {
    type Item = RecvGuard<'a>;

    fn next(&mut self) -> Option<RecvGuard<'a>> {
        let rx = self.rx?;
        self.end.step(|| rx.try_recv())
    }
}

impl fmt::Debug for TryIter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TryIter").field("end", &self.end()).finish()
    }
}

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

/// [`Iter`] for typed messages, each validated in place; from
/// [`TypedReceiver::iter`] or `&TypedReceiver` in a `for` loop. An invalid
/// message ends it with [`RecvError::Invalid`] (see [`TypedIter::end`]).
pub struct TypedIter<'a, T> {
    rx: &'a TypedReceiver<T>,
    end: End,
}

impl<T> TypedIter<'_, T> {
    /// Why the iterator stopped, as [`Iter::end`].
    pub fn end(&self) -> Option<&RecvError> {
        self.end.0.as_ref()
    }

    /// `Err` with the error that cut the iteration short (not `Closed` or
    /// `Disconnected`, the normal ends); `Ok` otherwise. For `?` after a
    /// `for` loop over `&mut` the iterator.
    pub fn result(&self) -> Result<(), RecvError> {
        self.end.result()
    }
}

impl<'a, T: Message> Iterator for TypedIter<'a, T> {
    type Item = Typed<'a, T>;

    fn next(&mut self) -> Option<Typed<'a, T>> {
        let rx = self.rx;
        self.end.step(|| rx.recv())
    }
}

impl<T> fmt::Debug for TypedIter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedIter")
            .field("end", &self.end())
            .finish()
    }
}

/// [`TryIter`] for typed messages; from [`TypedReceiver::try_iter`].
pub struct TypedTryIter<'a, T> {
    rx: &'a TypedReceiver<T>,
    end: End,
}

impl<T> TypedTryIter<'_, T> {
    /// Why the iterator ended for good, as [`TryIter::end`].
    pub fn end(&self) -> Option<&RecvError> {
        self.end.0.as_ref()
    }

    /// `Err` with the error that cut the iteration short (not `Closed` or
    /// `Disconnected`, the normal ends); `Ok` otherwise. For `?` after a
    /// `for` loop over `&mut` the iterator.
    pub fn result(&self) -> Result<(), RecvError> {
        self.end.result()
    }
}

impl<'a, T: Message> Iterator for TypedTryIter<'a, T> {
    type Item = Typed<'a, T>;

    fn next(&mut self) -> Option<Typed<'a, T>> {
        let rx = self.rx;
        self.end.step(|| rx.try_recv())
    }
}

impl<T> fmt::Debug for TypedTryIter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedTryIter")
            .field("end", &self.end())
            .finish()
    }
}

impl<T: Message> TypedReceiver<T> {
    /// Receives and validates messages, waiting for each, until the queue
    /// is closed and drained or every sender is gone (see [`TypedIter`]).
    pub fn iter(&self) -> TypedIter<'_, T> {
        TypedIter {
            rx: self,
            end: End::default(),
        }
    }

    /// Receives and validates the messages that are ready now (see
    /// [`TypedTryIter`]).
    pub fn try_iter(&self) -> TypedTryIter<'_, T> {
        TypedTryIter {
            rx: self,
            end: End::default(),
        }
    }
}

impl<'a, T: Message> IntoIterator for &'a TypedReceiver<T> {
    type Item = Typed<'a, T>;
    type IntoIter = TypedIter<'a, T>;

    fn into_iter(self) -> TypedIter<'a, T> {
        self.iter()
    }
}

impl Connection {
    /// Receives messages from the other end, waiting for each, until it
    /// closed the pipe or went away (see [`Iter`]); on an end that only
    /// sends, an iterator already ended with [`RecvError::WriteOnly`].
    pub fn iter(&self) -> Iter<'_> {
        Iter::new(self.rx())
    }

    /// Receives the messages that are ready now (see [`TryIter`]).
    pub fn try_iter(&self) -> TryIter<'_> {
        TryIter::new(self.rx())
    }
}

impl<'a> IntoIterator for &'a Connection {
    type Item = RecvGuard<'a>;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}
