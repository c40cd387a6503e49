//! `in`: feed a named shmq queue from a JetStream stream, through a
//! durable pull consumer.
//!
//! ```text
//!   (re)make the consumer: deliver from the oldest unacknowledged message
//!   fetch a batch, in stream order; for each message (key k, from its
//!   Nats-Msg-Id: source queue and lease id; stream sequence s):
//!     k not after delivered -> in the queue already (sent before a crash,
//!                        not acknowledged; or stored twice): acknowledge,
//!                        send nothing
//!     s follows the last -> send into the queue; `delivered = k` as the
//!                        send commits (before the next send); acknowledge
//!     s jumps ahead      -> a message between was lost to us (a fetch cut
//!                        by a reconnect): make the consumer anew
//! ```
//!
//! The stream has one subject, so its sequences have no gaps; the state
//! file (`state`) keeps `delivered` across this process's deaths.

use crate::jet::Link;
use crate::state::Delivered;
use crate::Error;
use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use futures_util::StreamExt;
use shmq::Queue;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// What `in` reads and where it sends.
#[derive(Clone, Debug)]
pub struct InConfig {
    /// The named shmq queue to feed.
    pub queue: String,
    /// The JetStream side.
    pub link: Link,
    /// The durable consumer's name.
    pub consumer: String,
    /// The state file (`delivered`); one per queue and consumer.
    pub state: PathBuf,
    /// Messages fetched at once (and unacknowledged at most).
    pub batch: usize,
    /// How long JetStream waits for an acknowledgement before it delivers
    /// a message again.
    pub ack_wait: Duration,
}

/// What a run moved, for tests and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InStats {
    /// Messages sent into the queue.
    pub delivered: u64,
    /// Redeliveries acknowledged without a send (already in the queue).
    pub repeats: u64,
    /// Times the consumer was made anew (start included).
    pub resets: u64,
}

/// Runs `in` until `stop` is set (checked at least every 100 ms, or once a
/// blocked send into a full queue returns).
pub fn run(cfg: &InConfig, stop: &AtomicBool) -> Result<InStats, Error> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let js = rt.block_on(cfg.link.connect())?;
    let q = Queue::open(&cfg.queue)?;
    let tx = q.sender();
    let state = Delivered::open(&cfg.state)?;
    let mut stats = InStats::default();
    'session: while !stop.load(Ordering::Relaxed) {
        // A new consumer starts at the stream's oldest message: those
        // acknowledged are gone (WorkQueue), so that is the oldest
        // unacknowledged one.
        let consumer = match rt.block_on(remake(cfg, &js)) {
            Ok(c) => c,
            Err(_) => {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        stats.resets += 1;
        // The stream sequence of the last message seen in this session.
        let mut prev_seq: Option<u64> = None;
        while !stop.load(Ordering::Relaxed) {
            let fetched = rt.block_on(async {
                let mut batch = consumer
                    .fetch()
                    .max_messages(cfg.batch.max(1))
                    .expires(Duration::from_millis(100))
                    .messages()
                    .await?;
                let mut got = Vec::new();
                while let Some(m) = batch.next().await {
                    got.push(m?);
                }
                Ok::<_, Error>(got)
            });
            let Ok(msgs) = fetched else {
                continue 'session; // the server went away: start over
            };
            // Split into repeats and the run of new messages, in order.
            let mut new: Vec<(u64, async_nats::jetstream::Message)> = Vec::new();
            let mut gap = false;
            for m in msgs {
                let Ok(seq) = m.info().map(|i| i.stream_sequence) else {
                    continue 'session;
                };
                let key = Key::of(&m);
                let last = new.last().map_or(state.get(), |&(k, _)| k);
                if key.is_some_and(|k| !k.after(last)) {
                    // In the queue already: sent by us or a predecessor
                    // (only its acknowledgement was lost), or stored twice
                    // by JetStream (a repeat its dedup window no longer
                    // knew: the first copy was consumed and the server
                    // restarted since).
                    stats.repeats += 1;
                    let _ = rt.block_on(m.ack());
                    if prev_seq.is_none_or(|p| seq > p) {
                        prev_seq = Some(seq);
                    }
                } else if prev_seq.is_none_or(|p| seq == p + 1) {
                    // The next one; or the first after a new consumer,
                    // which may jump over messages others removed.
                    prev_seq = Some(seq);
                    new.push((key.map_or(last, Key::pack), m));
                } else {
                    // A gap: a message between was not delivered to us.
                    gap = true;
                    break;
                }
            }
            if new.is_empty() {
                if gap {
                    continue 'session;
                }
                continue;
            }
            let sent = send_noting(&tx, &state, &new);
            for (_, m) in new.iter().take(sent) {
                let _ = rt.block_on(m.ack());
            }
            stats.delivered += sent as u64;
            if sent < new.len() {
                // The queue was closed: what was not sent stays in the
                // stream (unacknowledged) for a later bridge.
                return Ok(stats);
            }
            if gap {
                continue 'session;
            }
        }
    }
    Ok(stats)
}

/// Where a message stands in its source queue, from its `Nats-Msg-Id`
/// (`<queue identity>.<lease id>`, see `outbound`), packed in one word:
/// a 26-bit hash of the identity (never 0) and the 38-bit lease id. The
/// `out` bridge stores a queue's messages in the stream in lease-id order
/// (each publish expects its predecessor), so a message whose id is not
/// after the last one delivered is a repeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    queue: u64,
    pos: u64,
}

const POS_BITS: u32 = 38;
const POS_MASK: u64 = (1 << POS_BITS) - 1;

impl Key {
    /// The key of a message id, if it is one `out` made.
    pub fn parse(id: &str) -> Option<Key> {
        let (queue, pos) = id.rsplit_once('.')?;
        let pos = u64::from_str_radix(pos, 16).ok()? & POS_MASK;
        let h = queue.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
        });
        Some(Key {
            queue: (h >> 38) | 1,
            pos,
        })
    }

    fn of(m: &async_nats::jetstream::Message) -> Option<Key> {
        let h = m.headers.as_ref()?.get("Nats-Msg-Id")?;
        Key::parse(h.as_str())
    }

    /// The packed word kept in the state file.
    pub fn pack(self) -> u64 {
        self.queue << POS_BITS | self.pos
    }

    /// Whether this message comes after the one `last` (a packed key, 0
    /// for none) names: another queue's (a queue made anew), or a later
    /// lease id (wrapping, within half the id space).
    pub fn after(self, last: u64) -> bool {
        let (q, p) = (last >> POS_BITS, last & POS_MASK);
        q != self.queue || {
            let d = self.pos.wrapping_sub(p) & POS_MASK;
            d != 0 && d < 1 << (POS_BITS - 1)
        }
    }
}

/// Sends the messages into the queue in one batch, recording each one's
/// key in `state` as the send of the next begins: the batch calls the
/// iterator right after each commit, before it wakes anyone, so a process
/// killed between a commit and its record is killed within a few
/// instructions of the commit. Returns how many were sent.
fn send_noting(
    tx: &shmq::Sender,
    state: &Delivered,
    msgs: &[(u64, async_nats::jetstream::Message)],
) -> usize {
    let prev = std::cell::Cell::new(None::<u64>);
    let mut items = msgs.iter();
    // The batch asks for the next item once more after the last send, so
    // the last sequence is recorded there too.
    let iter = std::iter::from_fn(|| {
        if let Some(p) = prev.take() {
            state.set(p);
        }
        let (key, m) = items.next()?;
        prev.set(Some(*key));
        Some(m.payload.as_ref())
    });
    match tx.send_batch(iter) {
        Ok(n) => n,
        Err(e) => e.sent,
    }
}

/// Deletes the durable consumer (if any) and makes it again.
async fn remake(
    cfg: &InConfig,
    js: &async_nats::jetstream::Context,
) -> Result<async_nats::jetstream::consumer::Consumer<pull::Config>, Error> {
    let stream = cfg.link.stream(js).await?;
    let _ = stream.delete_consumer(&cfg.consumer).await;
    Ok(stream
        .create_consumer(pull::Config {
            durable_name: Some(cfg.consumer.clone()),
            ack_policy: AckPolicy::Explicit,
            deliver_policy: DeliverPolicy::All,
            ack_wait: cfg.ack_wait,
            max_ack_pending: cfg.batch.max(1) as i64,
            filter_subject: cfg.link.subject(),
            ..Default::default()
        })
        .await?)
}
