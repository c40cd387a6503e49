//! Pipes, as `multiprocessing.Pipe` returns: [`Connection`]s (the ends of
//! a duplex pipe), [`PipeReader`] and [`PipeWriter`] (the ends of a one-way
//! pipe), and their typed forms.
//!
//! A pipe is one segment holding one ring (one-way: [`pipe`]) or two
//! (duplex: [`pipe_duplex`]). End 0 receives on ring 0 and, when duplex,
//! sends on ring 1; end 1 sends on ring 0 and receives on ring 1. `close` on
//! either end closes both rings, so the far end drains what was sent and then
//! gets `Closed`, and its sends fail with `Closed`.

use crate::error::{BatchError, OpenError, RecvError, SendError};
use crate::iter::{Iter, TryIter};
use crate::layout::{KIND_PIPE, ROLE_RECEIVER, ROLE_SENDER};
use crate::queue::{
    adopt_handoff, inherit_handles, segment_from_env, Batch, Builder, Receiver, RecvGuard, Sender,
    Shared,
};
use crate::sys::segment::Segment;
use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

mod oneway;
mod typed;

pub use oneway::{PipeReader, PipeWriter};
pub use typed::TypedConnection;

/// A one-way pipe: `(reader, writer)`, as Python's `Pipe(duplex=False)`.
/// Capacity 1 MiB; see [`Builder::create_pipe`] for others. The reader
/// only receives and the writer only sends: the other direction does not
/// compile.
///
/// ```
/// let (reader, writer) = shmq::pipe()?;
/// writer.send(b"ping")?;
/// writer.close();
/// assert_eq!(&*reader.recv()?, b"ping");
/// assert_eq!(reader.recv().unwrap_err(), shmq::RecvError::Closed);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// ```compile_fail
/// let (reader, writer) = shmq::pipe()?;
/// reader.send(b"the wrong way")?; // a PipeReader has no `send`
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// ```compile_fail
/// let (reader, writer) = shmq::pipe()?;
/// writer.recv()?; // a PipeWriter has no `recv`
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// As [`Builder::create`].
pub fn pipe() -> Result<(PipeReader, PipeWriter), OpenError> {
    crate::Queue::builder().create_pipe()
}

/// A duplex pipe: two ends that both send and receive, as Python's `Pipe()`.
/// Capacity 1 MiB each way; see [`Builder::create_pipe_duplex`] for others.
///
/// ```
/// let (a, b) = shmq::pipe_duplex()?;
/// a.send(b"ping")?;
/// assert_eq!(&*b.recv()?, b"ping");
/// b.send(b"pong")?;
/// assert_eq!(&*a.recv()?, b"pong");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// As [`Builder::create`].
pub fn pipe_duplex() -> Result<(Connection, Connection), OpenError> {
    crate::Queue::builder().create_pipe_duplex()
}

impl Builder {
    /// Creates a duplex pipe in a sealed memfd: two ends that both send and
    /// receive, each direction with `capacity_bytes` of room and the same
    /// `maxsize`. Hand an end to a child with [`crate::process::spawn`] or
    /// [`Connection::inherit_into`].
    ///
    /// # Errors
    /// As [`Builder::create`].
    pub fn create_pipe_duplex(self) -> Result<(Connection, Connection), OpenError> {
        self.create_ends(2)
    }

    /// Creates a one-way pipe in a sealed memfd: `(reader, writer)`, with
    /// `capacity_bytes` of room and the builder's `maxsize`.
    ///
    /// # Errors
    /// As [`Builder::create`].
    pub fn create_pipe(self) -> Result<(PipeReader, PipeWriter), OpenError> {
        let (r, w) = self.create_ends(1)?;
        Ok((PipeReader::new(r), PipeWriter::new(w)))
    }

    fn create_ends(self, rings: u16) -> Result<(Connection, Connection), OpenError> {
        let seg = Segment::create_anon(self.capacity, self.spec(KIND_PIPE, rings))?;
        let shared = Shared::new(seg);
        Ok((
            Connection::new(shared.clone(), 0),
            Connection::new(shared, 1),
        ))
    }
}

/// One end of a pipe: [`Connection::send`] to the other end and
/// [`Connection::recv`] from it, in any process the end was handed to.
///
/// Dropping a `Connection` does not close the pipe (the same end may live
/// on in another process); call [`Connection::close`].
pub struct Connection {
    shared: Arc<Shared>,
    end: u16,
    tx: Option<Sender>,
    rx: Option<Receiver>,
}

/// The rings end `end` of `shared`'s pipe sends on and receives from.
fn halves(shared: &Shared, end: u16) -> (Option<u16>, Option<u16>) {
    match (shared.seg.spec().rings == 2, end) {
        (true, 0) => (Some(1), Some(0)),
        (true, _) => (Some(0), Some(1)),
        (false, 0) => (None, Some(0)),
        (false, _) => (Some(0), None),
    }
}

/// Hands end `end` of `shared`'s pipe to `cmd`'s process (see
/// [`Connection::inherit_into`]).
fn inherit_end(shared: &Arc<Shared>, end: u16, cmd: &mut Command, var: &str) {
    let (tx, rx) = halves(shared, end);
    let roles = tx
        .map(|k| (k, ROLE_SENDER))
        .into_iter()
        .chain(rx.map(|k| (k, ROLE_RECEIVER)))
        .collect();
    inherit_handles(shared, cmd, var, &format!("@{end}"), roles);
}

/// Closes both directions of `shared`'s pipe.
fn close_pipe(shared: &Shared) {
    for k in 0..shared.seg.spec().rings {
        shared.ring(k).close();
    }
}

/// Whether either direction of `shared`'s pipe was closed.
fn pipe_closed(shared: &Shared) -> bool {
    (0..shared.seg.spec().rings).any(|k| shared.ring(k).is_closed())
}

impl Connection {
    fn new(shared: Arc<Shared>, end: u16) -> Self {
        let (tx, rx) = halves(&shared, end);
        Connection {
            tx: tx.map(|k| Sender::new(shared.clone(), k)),
            rx: rx.map(|k| Receiver::new(shared.clone(), k)),
            shared,
            end,
        }
    }

    /// Arranges for `cmd`'s process to receive this end: the child calls
    /// [`Connection::from_env`] with the same `var` (see
    /// [`crate::Queue::inherit_into`]).
    pub fn inherit_into(&self, cmd: &mut Command, var: &str) {
        inherit_end(&self.shared, self.end, cmd, var);
    }

    /// Attaches the end a parent passed with [`Connection::inherit_into`].
    ///
    /// # Errors
    /// As [`crate::Queue::from_env`]; [`OpenError::KindMismatch`] if `var`
    /// names a queue.
    pub fn from_env(var: &str) -> Result<Connection, OpenError> {
        let (seg, end, lock) = segment_from_env(var)?;
        if seg.spec().kind != KIND_PIPE {
            return Err(OpenError::KindMismatch {
                expected: "pipe",
                found: "queue",
            });
        }
        let end = end.filter(|&e| e < 2).ok_or_else(|| {
            OpenError::InvalidConfig(format!("{var} does not name a pipe end (@0 or @1)"))
        })?;
        let c = Connection::new(Shared::new(seg), end);
        adopt_handoff(&c.shared, lock);
        Ok(c)
    }

    /// Attaches end `end` (0 or 1, see [`Connection::end`]) of an anonymous
    /// pipe from its memfd (this end's [`AsFd`], received over a Unix
    /// socket or inherited). The process counts as holding the end from
    /// here on, as with [`Connection::from_env`]; the sender of the fd must
    /// keep its own end until then if the other side should not see the
    /// end go (`Disconnected`) in between.
    ///
    /// ```
    /// use std::os::fd::AsFd;
    ///
    /// let (a, b) = shmq::pipe_duplex()?;
    /// let fd = b.as_fd().try_clone_to_owned()?;
    /// let b2 = shmq::Connection::from_fd(fd, b.end())?;
    /// a.send(b"hi")?;
    /// assert_eq!(&*b2.recv()?, b"hi");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`crate::Queue::from_fd`]; [`OpenError::KindMismatch`] for a
    /// queue; [`OpenError::InvalidConfig`] for an `end` other than 0 or 1.
    pub fn from_fd(fd: OwnedFd, end: u16) -> Result<Connection, OpenError> {
        let seg = Segment::from_fd(fd)?;
        if seg.spec().kind != KIND_PIPE {
            return Err(OpenError::KindMismatch {
                expected: "pipe",
                found: "queue",
            });
        }
        if end > 1 {
            return Err(OpenError::InvalidConfig(format!(
                "a pipe has ends 0 and 1, not {end}"
            )));
        }
        Ok(Connection::new(Shared::new(seg), end))
    }

    /// The largest message this end can send or receive, in bytes (as
    /// [`crate::Queue::max_message_size`]).
    pub fn max_message_size(&self) -> usize {
        self.shared.ring(0).max_message()
    }

    /// The largest message kept in a direction's ring itself (half its
    /// capacity; as [`crate::Queue::ring_message_size`]).
    pub fn ring_message_size(&self) -> usize {
        self.shared.ring(0).max_len()
    }

    /// The capacity of each direction's ring, in bytes.
    pub fn capacity(&self) -> usize {
        self.shared.ring(0).capacity()
    }

    /// Which end of its pipe this is: 0 or 1 (the reading end of a one-way
    /// pipe is 0). With the pipe's fd, what [`Connection::from_fd`] needs.
    pub fn end(&self) -> u16 {
        self.end
    }

    fn tx(&self) -> Result<&Sender, SendError> {
        self.tx.as_ref().ok_or(SendError::ReadOnly)
    }

    pub(crate) fn rx(&self) -> Result<&Receiver, RecvError> {
        self.rx.as_ref().ok_or(RecvError::WriteOnly)
    }

    /// The sending half, `None` on the read end of a one-way pipe (for the
    /// typed layer: `Sender::typed`).
    pub fn sender(&self) -> Option<&Sender> {
        self.tx.as_ref()
    }

    /// The receiving half, `None` on the write end of a one-way pipe.
    pub fn receiver(&self) -> Option<&Receiver> {
        self.rx.as_ref()
    }

    /// Sends a message to the other end, waiting while the pipe is full.
    ///
    /// # Errors
    /// [`SendError::Closed`] once either end closed, [`SendError::TooLarge`],
    /// [`SendError::ReadOnly`].
    pub fn send(&self, msg: &[u8]) -> Result<(), SendError> {
        self.tx()?.send(msg)
    }

    /// Sends a message if there is room now.
    ///
    /// # Errors
    /// As [`Connection::send`], plus [`SendError::Full`].
    pub fn try_send(&self, msg: &[u8]) -> Result<(), SendError> {
        self.tx()?.try_send(msg)
    }

    /// Sends a message, waiting at most `timeout` for room.
    ///
    /// # Errors
    /// As [`Connection::send`], plus [`SendError::Timeout`].
    pub fn send_timeout(&self, msg: &[u8], timeout: Duration) -> Result<(), SendError> {
        self.tx()?.send_timeout(msg, timeout)
    }

    /// Sends one message made of `parts` (see [`Sender::send_vectored`]).
    ///
    /// # Errors
    /// As [`Connection::send`].
    pub fn send_vectored(&self, parts: &[&[u8]]) -> Result<(), SendError> {
        self.tx()?.send_vectored(parts)
    }

    /// [`Connection::send_vectored`] if there is room now.
    ///
    /// # Errors
    /// As [`Connection::try_send`].
    pub fn try_send_vectored(&self, parts: &[&[u8]]) -> Result<(), SendError> {
        self.tx()?.try_send_vectored(parts)
    }

    /// [`Connection::send_vectored`], waiting at most `timeout` for room.
    ///
    /// # Errors
    /// As [`Connection::send_timeout`].
    pub fn send_vectored_timeout(
        &self,
        parts: &[&[u8]],
        timeout: Duration,
    ) -> Result<(), SendError> {
        self.tx()?.send_vectored_timeout(parts, timeout)
    }

    /// Sends several messages with one wake-up (see [`Sender::send_batch`]).
    ///
    /// # Errors
    /// As [`Sender::send_batch`]; [`SendError::ReadOnly`] with `sent` 0.
    pub fn send_batch<I>(&self, msgs: I) -> Result<usize, BatchError>
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        self.tx().map_err(BatchError::unstarted)?.send_batch(msgs)
    }

    /// Receives the next message from the other end, waiting while there is
    /// none.
    ///
    /// # Errors
    /// [`RecvError::Closed`] once either end closed and everything sent
    /// before has been received; [`RecvError::Disconnected`] once the other
    /// end was dropped, or its process exited or died, without `close`, and
    /// everything it sent has been received (both are Python's `EOFError`);
    /// [`RecvError::WriteOnly`]; [`RecvError::Corrupted`].
    pub fn recv(&self) -> Result<RecvGuard<'_>, RecvError> {
        self.rx()?.recv()
    }

    /// Receives a message if one is ready now.
    ///
    /// # Errors
    /// As [`Connection::recv`], plus [`RecvError::Empty`].
    pub fn try_recv(&self) -> Result<RecvGuard<'_>, RecvError> {
        self.rx()?.try_recv()
    }

    /// Receives a message, waiting at most `timeout` (Python's
    /// `poll(timeout)` followed by `recv()`).
    ///
    /// # Errors
    /// As [`Connection::recv`], plus [`RecvError::Timeout`].
    pub fn recv_timeout(&self, timeout: Duration) -> Result<RecvGuard<'_>, RecvError> {
        self.rx()?.recv_timeout(timeout)
    }

    /// Waits for a message and takes up to `max` ready ones (see
    /// [`Receiver::recv_batch`]).
    ///
    /// # Errors
    /// As [`Connection::recv`].
    pub fn recv_batch(&self, max: usize) -> Result<Batch<'_>, RecvError> {
        self.rx()?.recv_batch(max)
    }

    /// Waits at most `timeout` until a message is ready, without taking it
    /// (see [`Receiver::poll`]).
    ///
    /// # Errors
    /// As [`Receiver::poll`]; [`RecvError::WriteOnly`].
    pub fn poll(&self, timeout: Duration) -> Result<bool, RecvError> {
        self.rx()?.poll(timeout)
    }

    /// Closes the pipe for both ends and every process: sends fail with
    /// `Closed`, and each end receives what was sent before, then `Closed`.
    pub fn close(&self) {
        close_pipe(&self.shared);
    }

    /// Whether the pipe has been closed (by either end).
    pub fn is_closed(&self) -> bool {
        pipe_closed(&self.shared)
    }
}

impl AsFd for Connection {
    /// The pipe's segment (a memfd; see [`Connection::from_fd`]).
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.shared.seg.fd()
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("end", &self.end)
            .field("sends", &self.tx.is_some())
            .field("receives", &self.rx.is_some())
            .field("closed", &self.is_closed())
            .finish()
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
