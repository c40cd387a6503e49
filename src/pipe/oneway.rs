//! The two ends of a one-way pipe, as types: a [`PipeReader`] has only
//! the receiving calls and a [`PipeWriter`] only the sending ones, so the
//! wrong direction does not compile (Python raises `OSError` at run time).

use super::Connection;
use crate::error::{BatchError, OpenError, RecvError, SendError};
use crate::iter::{Iter, TryIter};
use crate::queue::{Batch, RecvGuard};
use crate::typed::{Message, TypedReceiver, TypedSender};
use std::fmt;
use std::process::Command;
use std::time::Duration;

/// The receiving end of a one-way pipe; from [`crate::pipe`].
///
/// Dropping it does not close the pipe (the end may live on in another
/// process): the writer sees the end only once no process holds a reader
/// (`SendError::Disconnected` on a full pipe), or after [`PipeReader::close`].
pub struct PipeReader {
    conn: Connection,
}

/// The sending end of a one-way pipe; from [`crate::pipe`].
///
/// Dropping it does not close the pipe; once no process holds a writer the
/// reader receives what was sent, then `RecvError::Disconnected`
/// (Python's `EOFError`). [`PipeWriter::close`] says so at once: `Closed`.
pub struct PipeWriter {
    conn: Connection,
}

/// Unreachable: both types are made only from ends of the right direction.
fn not_an_end(expected: &'static str) -> OpenError {
    OpenError::KindMismatch {
        expected,
        found: "another end",
    }
}

/// Takes an end of a one-way pipe from `var`, checking its direction.
fn end_from_env(var: &str, receives: bool) -> Result<Connection, OpenError> {
    let c = Connection::from_env(var)?;
    if c.receiver().is_some() == receives && c.sender().is_some() != receives {
        Ok(c)
    } else {
        let found = match (c.sender().is_some(), c.receiver().is_some()) {
            (true, true) => "an end of a duplex pipe",
            (true, false) => "the writing end of a one-way pipe",
            _ => "the reading end of a one-way pipe",
        };
        let expected = if receives {
            "the reading end of a one-way pipe"
        } else {
            "the writing end of a one-way pipe"
        };
        Err(OpenError::KindMismatch { expected, found })
    }
}

/// What both ends have: made from a `Connection` of their direction,
/// closed, handed to a child, attached there, printed.
macro_rules! one_way_end {
    ($end:ident, $receives:literal, $what:literal) => {
        impl $end {
            pub(super) fn new(conn: Connection) -> Self {
                $end { conn }
            }

            /// Closes the pipe for both ends and every process: the reader
            /// receives what was sent before, then `Closed` (see
            /// [`Connection::close`]).
            pub fn close(&self) {
                self.conn.close()
            }

            /// Whether the pipe has been closed (by either end).
            pub fn is_closed(&self) -> bool {
                self.conn.is_closed()
            }

            /// Arranges for `cmd`'s process to receive this end (see
            /// [`crate::Queue::inherit_into`]); it attaches with `from_env`.
            /// [`crate::process::spawn`] does this for you.
            pub fn inherit_into(&self, cmd: &mut Command, var: &str) {
                self.conn.inherit_into(cmd, var)
            }

            #[doc = concat!("Attaches ", $what, " a parent passed with `inherit_into`.")]
            ///
            /// # Errors
            /// As [`Connection::from_env`]; [`OpenError::KindMismatch`] if
            /// `var` names another kind of end.
            pub fn from_env(var: &str) -> Result<$end, OpenError> {
                end_from_env(var, $receives).map($end::new)
            }
        }

        impl fmt::Debug for $end {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($end))
                    .field("closed", &self.is_closed())
                    .finish()
            }
        }
    };
}

one_way_end!(PipeReader, true, "the reading end of a one-way pipe");
one_way_end!(PipeWriter, false, "the writing end of a one-way pipe");

impl PipeReader {
    /// Receives the next message, waiting while there is none.
    ///
    /// # Errors
    /// [`RecvError::Closed`] once either end closed and everything sent
    /// before has been received; [`RecvError::Disconnected`] once no
    /// process holds the writer and everything it sent has been received
    /// (both are Python's `EOFError`); [`RecvError::Corrupted`].
    pub fn recv(&self) -> Result<RecvGuard<'_>, RecvError> {
        self.conn.recv()
    }

    /// Receives a message if one is ready now.
    ///
    /// # Errors
    /// As [`PipeReader::recv`], plus [`RecvError::Empty`].
    pub fn try_recv(&self) -> Result<RecvGuard<'_>, RecvError> {
        self.conn.try_recv()
    }

    /// Receives a message, waiting at most `timeout` (Python's
    /// `poll(timeout)` then `recv()`).
    ///
    /// # Errors
    /// As [`PipeReader::recv`], plus [`RecvError::Timeout`].
    pub fn recv_timeout(&self, timeout: Duration) -> Result<RecvGuard<'_>, RecvError> {
        self.conn.recv_timeout(timeout)
    }

    /// Waits at most `timeout` until a message is ready, without taking it
    /// (see [`crate::Receiver::poll`]).
    ///
    /// # Errors
    /// As [`crate::Receiver::poll`].
    pub fn poll(&self, timeout: Duration) -> Result<bool, RecvError> {
        self.conn.poll(timeout)
    }

    /// Waits for a message and takes up to `max` ready ones (see
    /// [`crate::Receiver::recv_batch`]).
    ///
    /// # Errors
    /// As [`PipeReader::recv`].
    pub fn recv_batch(&self, max: usize) -> Result<Batch<'_>, RecvError> {
        self.conn.recv_batch(max)
    }

    /// Receives messages, waiting for each, until the pipe is closed or the
    /// writer is gone (see [`Iter`]).
    pub fn iter(&self) -> Iter<'_> {
        self.conn.iter()
    }

    /// Receives the messages that are ready now (see [`TryIter`]).
    pub fn try_iter(&self) -> TryIter<'_> {
        self.conn.try_iter()
    }

    /// This end as a receiver of `T` messages, for a pipe made with
    /// [`crate::Builder::message_type`].
    ///
    /// # Errors
    /// [`OpenError::TypeMismatch`] unless the pipe was made for `T`.
    pub fn typed<T: Message>(&self) -> Result<TypedReceiver<T>, OpenError> {
        match self.conn.receiver() {
            Some(rx) => rx.clone().typed(),
            None => Err(not_an_end("the reading end of a one-way pipe")),
        }
    }
}

impl PipeWriter {
    /// Sends a message, waiting while the pipe is full.
    ///
    /// # Errors
    /// [`SendError::Closed`] once either end closed,
    /// [`SendError::TooLarge`], [`SendError::Disconnected`] when the pipe
    /// is full and no process holds the reader.
    pub fn send(&self, msg: &[u8]) -> Result<(), SendError> {
        self.conn.send(msg)
    }

    /// Sends a message if there is room now.
    ///
    /// # Errors
    /// As [`PipeWriter::send`], plus [`SendError::Full`].
    pub fn try_send(&self, msg: &[u8]) -> Result<(), SendError> {
        self.conn.try_send(msg)
    }

    /// Sends a message, waiting at most `timeout` for room.
    ///
    /// # Errors
    /// As [`PipeWriter::send`], plus [`SendError::Timeout`].
    pub fn send_timeout(&self, msg: &[u8], timeout: Duration) -> Result<(), SendError> {
        self.conn.send_timeout(msg, timeout)
    }

    /// Sends several messages with one wake-up (see [`crate::Sender::send_batch`]).
    ///
    /// # Errors
    /// As [`crate::Sender::send_batch`].
    pub fn send_batch<I>(&self, msgs: I) -> Result<usize, BatchError>
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        self.conn.send_batch(msgs)
    }

    /// This end as a sender of `T` messages, for a pipe made with
    /// [`crate::Builder::message_type`].
    ///
    /// # Errors
    /// [`OpenError::TypeMismatch`] unless the pipe was made for `T`.
    pub fn typed<T: Message>(&self) -> Result<TypedSender<T>, OpenError> {
        match self.conn.sender() {
            Some(tx) => tx.clone().typed(),
            None => Err(not_an_end("the writing end of a one-way pipe")),
        }
    }
}

impl<'a> IntoIterator for &'a PipeReader {
    type Item = RecvGuard<'a>;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl From<PipeReader> for Connection {
    /// The end as a [`Connection`] that only receives (its sends fail with
    /// `SendError::ReadOnly`), as Python's `Pipe(duplex=False)` returns.
    fn from(end: PipeReader) -> Connection {
        end.conn
    }
}

impl From<PipeWriter> for Connection {
    /// The end as a [`Connection`] that only sends (its receives fail with
    /// `RecvError::WriteOnly`).
    fn from(end: PipeWriter) -> Connection {
        end.conn
    }
}
