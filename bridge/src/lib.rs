//! `shmq-bridge`: carry a named shmq queue from one host to another through
//! NATS JetStream, losing nothing and duplicating nothing when a bridge,
//! or the server, dies.
//!
//! ```text
//!  host 1                          JetStream                     host 2
//!  producers -> queue A --out-->  stream S (file storage,  --in--> queue B -> consumers
//!               (leased receive)  WorkQueue, dedup window) (durable pull consumer)
//! ```
//!
//! * [`out`](outbound::run) leases each message of queue A
//!   ([`shmq::Receiver::recv_leased`]), publishes its bytes to the stream's
//!   subject with `Nats-Msg-Id` = the queue's identity and the lease's
//!   [`id`](shmq::Leased::id), and acknowledges the lease only once
//!   JetStream acknowledged the publish. A bridge killed in between leaves
//!   the lease to go back to A; the next bridge publishes it again under the
//!   same id, and JetStream drops the repeat. Publishes are pipelined
//!   (`window` in flight), each expecting the previous one's id as the
//!   stream's last (`Nats-Expected-Last-Msg-Id`), so a publish lost in a
//!   reconnect cannot let a later one be stored before it; after any
//!   failure the bridge publishes one at a time, without that expectation,
//!   until JetStream stores a message that is not a repeat.
//! * [`in`](inbound::run) reads the stream through a durable pull consumer
//!   in stream order and sends each message to queue B, then acknowledges
//!   it to JetStream. The key of the last message sent to B (its source
//!   queue and lease id, from its `Nats-Msg-Id`) is kept in a state file
//!   (one word, written as the send into B commits, before the next send
//!   or any wake-up), so a message JetStream delivers again after a crash,
//!   or stores twice, is acknowledged without being sent to B again. On start
//!   (and whenever the stream sequence jumps) the consumer is made anew,
//!   so delivery starts from the oldest unacknowledged message, in order.
//!
//! See docs/DISTRIBUTED.md for the guarantees and their argument.

#![deny(missing_docs)]

pub mod inbound;
pub mod jet;
pub mod outbound;
pub mod state;

/// Errors of the bridge: the library's, the NATS client's, the system's.
pub type Error = Box<dyn std::error::Error + Send + Sync>;
