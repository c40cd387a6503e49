//! [`Connection`]: the two ends of a pipe, as `multiprocessing.Pipe` returns.
//!
//! A pipe is one segment holding one ring (one-way: [`pipe`]) or two
//! (duplex: [`pipe_duplex`]). End 0 receives on ring 0 and, when duplex,
//! sends on ring 1; end 1 sends on ring 0 and receives on ring 1. `close` on
//! either end closes both rings, so the far end drains what was sent and then
//! gets `Closed`, and its sends fail with `Closed`.

use crate::error::{BatchError, OpenError, RecvError, SendError};
use crate::layout::{KIND_PIPE, ROLE_RECEIVER, ROLE_SENDER};
use crate::queue::{
    adopt_handoff, inherit_handles, segment_from_env, Batch, Builder, Receiver, RecvGuard, Sender,
    Shared,
};
use crate::sys::segment::Segment;
use std::fmt;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

/// A one-way pipe: `(reader, writer)`, as Python's `Pipe(duplex=False)`.
/// Capacity 1 MiB; see [`Builder::create_pipe`] for others.
///
/// ```
/// let (reader, writer) = shmq::pipe()?;
/// writer.send(b"ping")?;
/// writer.close();
/// assert_eq!(&*reader.recv()?, b"ping");
/// assert_eq!(reader.recv().unwrap_err(), shmq::RecvError::Closed);
/// assert_eq!(reader.send(b"no").unwrap_err(), shmq::SendError::ReadOnly);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// As [`Builder::create`].
pub fn pipe() -> Result<(Connection, Connection), OpenError> {
    crate::Queue::builder().create_pipe(false)
}

/// A duplex pipe: two ends that both send and receive, as Python's `Pipe()`.
/// Capacity 1 MiB each way; see [`Builder::create_pipe`] for others.
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
    crate::Queue::builder().create_pipe(true)
}

impl Builder {
    /// Creates a pipe in a sealed memfd: `(end 0, end 1)`. Duplex: both ends
    /// send and receive, each direction with `capacity_bytes` of room and
    /// the same `maxsize`. One-way: end 0 only receives, end 1 only sends.
    /// Hand an end to a child with [`Connection::inherit_into`].
    ///
    /// # Errors
    /// As [`Builder::create`].
    pub fn create_pipe(self, duplex: bool) -> Result<(Connection, Connection), OpenError> {
        let rings = if duplex { 2 } else { 1 };
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

impl Connection {
    fn new(shared: Arc<Shared>, end: u16) -> Self {
        let duplex = shared.seg.spec().rings == 2;
        let (tx, rx) = match (duplex, end) {
            (true, 0) => (Some(1), Some(0)),
            (true, _) => (Some(0), Some(1)),
            (false, 0) => (None, Some(0)),
            (false, _) => (Some(0), None),
        };
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
        let mut roles = Vec::new();
        if let Some(tx) = &self.tx {
            roles.push((tx.endpoint().ring_index(), ROLE_SENDER));
        }
        if let Some(rx) = &self.rx {
            roles.push((rx.endpoint().ring_index(), ROLE_RECEIVER));
        }
        inherit_handles(&self.shared, cmd, var, &format!("@{}", self.end), roles);
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

    /// Closes the pipe for both ends and every process: sends fail with
    /// `Closed`, and each end receives what was sent before, then `Closed`.
    pub fn close(&self) {
        if let Some(tx) = &self.tx {
            tx.close();
        }
        if let Some(rx) = &self.rx {
            rx.close();
        }
    }

    /// Whether the pipe has been closed (by either end).
    pub fn is_closed(&self) -> bool {
        self.tx.as_ref().is_some_and(Sender::is_closed)
            || self.rx.as_ref().is_some_and(Receiver::is_closed)
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
