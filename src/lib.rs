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
//!   per batch) and pipes ([`pipe()`] with a [`PipeReader`] and a
//!   [`PipeWriter`], [`pipe_duplex()`] with two [`Connection`]s).
//! * Processes ([`process`]): [`process::spawn`] runs a function of this
//!   program in a child process with queues, pipe ends and values handed to
//!   it (Python's `Process(target=f, args=(q,))`), and [`process::Pool`] is
//!   a process pool (`apply_async`, `map`, `imap_unordered`) that fails the
//!   task of a worker that dies and starts another.
//! * Iterators: `for msg in &rx` receives until the queue is closed and
//!   drained (Python's `for x in iter(q.get, None)`, without the sentinel).
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

// Module map (one file, one concept; docs/DESIGN.md has the same table,
// and `.ci/check-map` checks both against the tree):
//
//   src/lib.rs             crate docs, the public API (re-exports), this map
//   src/error.rs           SendError, RecvError, BatchError, OpenError
//   src/wait.rs            WaitStrategy; the adaptive spin / yield budget of a blocking call
//   src/diag.rs            Diagnostics: a snapshot of every shared counter
//   src/handles.rs         this process's registered lanes, and what a fork does with them
//   src/lease/mod.rs       leases: handles owning one of their process's few lanes of a ring, taken over when needed
//   src/lease/local.rs     LocalLanes and Seat: this process's lanes of one ring and role, and a handle's place among them
//   src/iter.rs            iterators over receivers: Iter, TryIter, generic over a Source
//   src/pipe/mod.rs        Connection, pipe(), pipe_duplex(): two ends over one or two rings
//   src/pipe/oneway.rs     PipeReader, PipeWriter: a one-way pipe's ends, each one direction
//   src/pipe/typed.rs      TypedConnection: a pipe end of rkyv messages
//   src/typed/mod.rs       rkyv messages: TypedQueue, TypedSender, TypedReceiver; the type fingerprint
//   src/typed/received.rs  what a typed receive gives: Typed (in place), Owned, TypedBatch
//   src/process/mod.rs     spawn, init, Child: run a function of this program in a child process
//   src/process/pass.rs    Pass / Receive: what a child function is handed (queues, pipe ends, values)
//   src/process/pool/mod.rs        Pool: worker processes running functions of this program; the message layout
//   src/process/pool/collector.rs  the parent's side: dispatch, the collector thread, a worker's death
//   src/process/pool/result.rs     AsyncResult, ImapUnordered: results matched to their tasks
//   src/process/pool/worker.rs     the worker's loop and the trampolines that run a task
//   src/loom_api.rs        the ring's hooks for the loom models (loom builds only)
//   src/layout/mod.rs      the segment, drawn; every encoding re-exported from the files below
//   src/layout/header.rs   header fields and sizes, Geometry (where a ring's parts lie), Spec
//   src/layout/control.rs  the control block: hot words, wait cells, peer counts, watcher
//   src/layout/cursor.rs   tail / read cursors, head, wrapping arithmetic, epochs
//   src/layout/desc.rs     descriptor words and states, footprint
//   src/layout/lane.rs     lane words: owner, notes, roles
//   src/layout/overflow.rs the overflow area: unit state words, ExtRef, its geometry
//   src/layout/tests.rs    round trips of the encodings
//   src/sync/mod.rs        the one door the protocol uses: atomics (std or loom) and the files below
//   src/sync/futex.rs      wait words, futex wait / wake (loom: mutex + condvar), spin hints
//   src/sync/barrier.rs    asymmetric barriers: a compiler fence against membarrier (loom: two SeqCst fences)
//   src/sync/memory.rs     payload memory (loom: one tracked cell per granule)
//   src/sync/process.rs    whether a lane's owner lives, this pid (loom: model processes)
//   src/sync/clock.rs      the clock (loom: none)
//   src/sync/faults.rs     mutants and death points for the loom models
//   src/sys/mod.rs         the operating system, and nothing else
//   src/sys/futex.rs       wait, wake_all over the shared (not private) futex syscall
//   src/sys/barrier.rs     membarrier(2): register, and a barrier on every thread of the process
//   src/sys/proc.rs        fork generation; liveness locks (OFD locks on the segment's file)
//   src/sys/segment.rs     memfd / POSIX shm: create, seal, name, validate, map
//   src/sys/pages.rs       the overflow area's pages: populate before writing, punch when freed
//   src/ring/mod.rs        Ring: its memory, constructors, close, len, diagnostics
//   src/ring/send.rs       claim, write, commit; blocking send; waiting for slack on a full ring
//   src/ring/recv.rs       take at read; blocking receive
//   src/ring/release.rs    release a record; move head on past released records, in order
//   src/ring/returns.rs    leased takes given back: RETURNED records, the returned hint
//   src/ring/batch.rs      sends, takes and releases in batches, one wake-up each
//   src/ring/wait.rs       the blocking loop; wait cells: register, leave, wake
//   src/ring/lanes.rs      taking and giving back lanes, notes, peer counts, reaping dead lanes
//   src/ring/recover.rs    the watcher; finishing or undoing what dead peers left half done
//   src/ring/overflow.rs   the overflow area: take, link, free runs of units; sweep the dead's
//   src/ring/large.rs      messages larger than half the ring: sent as a reference to a run
//   src/ring/blocks.rs     unbounded rings: positions in blocks of the overflow area
//   src/ring/tests.rs      unit tests of the protocol on heap rings
//   src/queue/mod.rs       Queue, Builder; Shared (a mapped segment and its rings)
//   src/queue/endpoint.rs  what a Sender and a Receiver share: ring, this process's lanes, a slot hint
//   src/queue/sender.rs    Sender
//   src/queue/receiver.rs  Receiver
//   src/queue/guard.rs     RecvGuard, Batch: messages read in place, released on drop
//   src/queue/leased.rs    Leased: a leased message, acknowledged or back to the queue
//   src/queue/handoff.rs   handing a queue to a child: fd or name in the environment, lanes before exec
//   src/queue/tests.rs     unit tests of handles, lanes and wake-ups

mod error;
mod layout;
mod lease;
mod ring;
mod sync;
mod wait;

#[cfg(not(loom))]
mod diag;
#[cfg(not(loom))]
mod handles;
#[cfg(not(loom))]
mod iter;
#[cfg(not(loom))]
mod pipe;
#[cfg(not(loom))]
pub mod process;
#[cfg(not(loom))]
mod queue;
#[cfg(not(loom))]
mod sys;
#[cfg(not(loom))]
pub mod typed;

#[cfg(not(loom))]
pub use diag::Diagnostics;
pub use error::{BatchError, OpenError, ProcessError, RecvError, SendError, TaskError};
#[cfg(not(loom))]
pub use iter::{Iter, Source, TryIter, TypedIter, TypedTryIter};
#[cfg(not(loom))]
pub use pipe::{pipe, pipe_duplex, Connection, PipeReader, PipeWriter, TypedConnection};
#[cfg(not(loom))]
pub use queue::{Batch, Builder, Leased, Queue, Receiver, RecvGuard, Sender};
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
