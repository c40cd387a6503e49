//! [`TypedConnection`]: a pipe end that sends and receives rkyv messages
//! of one type, from [`Connection::typed`].

use super::{close_pipe, inherit_end, pipe_closed, Connection};
use crate::error::{OpenError, RecvError, SendError};
use crate::iter::{TypedIter, TypedTryIter};
use crate::queue::{Receiver, Sender, Shared};
use crate::typed::{Message, Typed, TypedReceiver, TypedSender};
use crate::{Iter, TryIter};
use std::fmt;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

/// A pipe end for `T` messages: `send(&value)` serializes into the pipe,
/// `recv()` validates in place and derefs to `&Archived<T>` (see
/// [`crate::typed`]).
///
/// ```
/// #[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
/// struct Ping { n: u32 }
///
/// let (a, b) = shmq::Queue::builder().message_type::<Ping>().create_pipe_duplex()?;
/// let (a, b) = (a.typed::<Ping>()?, b.typed::<Ping>()?);
/// a.send(&Ping { n: 7 })?;
/// assert_eq!(b.recv()?.n, 7);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct TypedConnection<T> {
    shared: Arc<Shared>,
    end: u16,
    tx: Option<TypedSender<T>>,
    rx: Option<TypedReceiver<T>>,
}

impl Connection {
    /// This end for `T` messages, on a pipe made with
    /// [`crate::Builder::message_type`]`::<T>()`.
    ///
    /// # Errors
    /// [`OpenError::TypeMismatch`] unless the pipe was made for `T`.
    pub fn typed<T: Message>(self) -> Result<TypedConnection<T>, OpenError> {
        let Connection {
            shared,
            end,
            tx,
            rx,
        } = self;
        Ok(TypedConnection {
            shared,
            end,
            tx: tx.map(Sender::typed).transpose()?,
            rx: rx.map(Receiver::typed).transpose()?,
        })
    }
}

impl<T: Message> TypedConnection<T> {
    fn tx(&self) -> Result<&TypedSender<T>, SendError> {
        self.tx.as_ref().ok_or(SendError::ReadOnly)
    }

    fn rx(&self) -> Result<&TypedReceiver<T>, RecvError> {
        self.rx.as_ref().ok_or(RecvError::WriteOnly)
    }

    /// Sends `value` to the other end, waiting while the pipe is full.
    ///
    /// # Errors
    /// As [`Connection::send`].
    pub fn send(&self, value: &T) -> Result<(), SendError> {
        self.tx()?.send(value)
    }

    /// Sends `value` if there is room now.
    ///
    /// # Errors
    /// As [`Connection::try_send`].
    pub fn try_send(&self, value: &T) -> Result<(), SendError> {
        self.tx()?.try_send(value)
    }

    /// Sends `value`, waiting at most `timeout` for room.
    ///
    /// # Errors
    /// As [`Connection::send_timeout`].
    pub fn send_timeout(&self, value: &T, timeout: Duration) -> Result<(), SendError> {
        self.tx()?.send_timeout(value, timeout)
    }

    /// Receives and validates the next message, waiting while there is none.
    ///
    /// # Errors
    /// As [`Connection::recv`], plus [`RecvError::Invalid`].
    pub fn recv(&self) -> Result<Typed<'_, T>, RecvError> {
        self.rx()?.recv()
    }

    /// Receives a message if one is ready now.
    ///
    /// # Errors
    /// As [`TypedConnection::recv`], plus [`RecvError::Empty`].
    pub fn try_recv(&self) -> Result<Typed<'_, T>, RecvError> {
        self.rx()?.try_recv()
    }

    /// Receives a message, waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`TypedConnection::recv`], plus [`RecvError::Timeout`].
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Typed<'_, T>, RecvError> {
        self.rx()?.recv_timeout(timeout)
    }

    /// Receives messages until the other end closes or goes away (see
    /// [`Iter`]); on an end that only sends, already ended with
    /// [`RecvError::WriteOnly`].
    pub fn iter(&self) -> TypedIter<'_, T> {
        Iter::new(self.rx())
    }

    /// Receives the messages that are ready now (see [`TryIter`]).
    pub fn try_iter(&self) -> TypedTryIter<'_, T> {
        TryIter::new(self.rx())
    }

    /// Closes the pipe for both ends and every process (see
    /// [`Connection::close`]).
    pub fn close(&self) {
        close_pipe(&self.shared)
    }

    /// Whether the pipe has been closed (by either end).
    pub fn is_closed(&self) -> bool {
        pipe_closed(&self.shared)
    }

    /// Arranges for `cmd`'s process to receive this end (see
    /// [`Connection::inherit_into`]); it attaches with
    /// `Connection::from_env(var)?.typed::<T>()?`.
    pub fn inherit_into(&self, cmd: &mut Command, var: &str) {
        inherit_end(&self.shared, self.end, cmd, var)
    }
}

impl<'a, T: Message> IntoIterator for &'a TypedConnection<T> {
    type Item = Typed<'a, T>;
    type IntoIter = TypedIter<'a, T>;

    fn into_iter(self) -> TypedIter<'a, T> {
        self.iter()
    }
}

impl<T> fmt::Debug for TypedConnection<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedConnection")
            .field("end", &self.end)
            .field("closed", &pipe_closed(&self.shared))
            .field("type", &std::any::type_name::<T>())
            .finish()
    }
}
