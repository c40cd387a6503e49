//! # shmq: a message queue between processes, in shared memory
//!
//! A fixed-capacity, lock-free, multi-producer multi-consumer ring of
//! variable-length messages in a shared-memory segment, with the semantics of
//! Python's `multiprocessing.Queue`: `maxsize`, blocking `send`/`recv` with
//! timeouts, non-blocking variants that fail with `Full`/`Empty`, and `close`
//! that lets receivers drain and then stop.
//!
//! * Producers write each message once, straight into the ring; consumers
//!   read it in place ([`RecvGuard`] derefs to `&[u8]` in shared memory).
//! * No syscall on the hot path: a blocking call spins while its peer is
//!   likely to answer soon, learnt from its recent waits ([`WaitStrategy`]),
//!   and a sleeping side is woken by a futex in the segment only when it
//!   really sleeps. A full ring is refilled in bursts, so producers and
//!   consumers do not pass the same cache lines back and forth.
//! * Segments are anonymous sealed memfds ([`Builder::create`]), handed to
//!   children by inheritance ([`Queue::inherit_into`], [`Queue::from_env`]) or
//!   fork, or named POSIX shm ([`Builder::create_named`], [`Queue::open`]).
//! * Typed messages with rkyv ([`Builder::create_typed`], [`Queue::typed`]):
//!   serialized once into the ring, validated and read in place
//!   ([`Typed`] derefs to the archived value in shared memory); see [`typed`].
//! * Dead peers: a process killed mid-send or holding a message does not
//!   stall the others (survivors skip or reclaim what it left half done, in
//!   blocking calls, within about 100 ms); a peer counts as dead only when
//!   the kernel has dropped its lock on the segment's file.
//!   [`RecvError::Disconnected`] and [`SendError::Disconnected`] say that no
//!   handle that could act as the other side (its senders or receivers, or
//!   any [`Queue`] handle) is left in any process; [`Queue::is_stale`] finds
//!   named queues nobody uses any more.
//! * Batches ([`Sender::send_batch`], [`Receiver::recv_batch`]: one wake-up
//!   per batch) and pipes ([`pipe`], [`pipe_duplex`], [`Connection`]).
//!
//! ```
//! use shmq::{Queue, RecvError};
//!
//! let q = Queue::builder().capacity_bytes(64 * 1024).maxsize(100).create()?;
//! let (tx, rx) = (q.sender(), q.receiver());
//! tx.send(b"hello")?;
//! tx.send(b"world")?;
//! q.close(); // no more sends; receivers drain, then get Closed
//! assert_eq!(&*rx.recv()?, b"hello");
//! assert_eq!(&*rx.recv()?, b"world");
//! assert_eq!(rx.recv().unwrap_err(), RecvError::Closed);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! See `docs/DESIGN.md` for the memory layout and the protocol, and
//! `docs/MULTIPROCESSING.md` for the map from Python's names to ours.

#![deny(missing_docs, unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
// The loom build compiles only the protocol (no segments, no public queue).
#![cfg_attr(loom, allow(dead_code))]

mod error;
mod layout;
mod ring;
mod sync;
mod wait;

#[cfg(not(loom))]
mod diag;
#[cfg(not(loom))]
mod handles;
#[cfg(not(loom))]
mod pipe;
#[cfg(not(loom))]
mod queue;
#[cfg(not(loom))]
mod sys;
#[cfg(not(loom))]
pub mod typed;

#[cfg(not(loom))]
pub use diag::Diagnostics;
pub use error::{BatchError, OpenError, RecvError, SendError};
#[cfg(not(loom))]
pub use pipe::{pipe, pipe_duplex, Connection};
#[cfg(not(loom))]
pub use queue::{Batch, Builder, Queue, Receiver, RecvGuard, Sender};
/// rkyv, re-exported so that typed messages derive with the same version.
#[cfg(not(loom))]
pub use rkyv;
#[cfg(not(loom))]
pub use typed::{Message, Typed, TypedQueue, TypedReceiver, TypedSender};
pub use wait::WaitStrategy;

/// Hooks for the loom models in `loom-tests/`: the real ring protocol over
/// loom's atomics, cells and futex model. Not part of the public API.
#[cfg(loom)]
#[doc(hidden)]
pub mod loom_api;
