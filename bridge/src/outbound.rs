//! `out`: drain a named shmq queue into a JetStream stream.
//!
//! ```text
//!   lease m (queue A) -> publish m, Nats-Msg-Id = <queue>.<lease id>
//!                        [Nats-Expected-Last-Msg-Id = previous id]
//!   ... up to `window` publishes in flight ...
//!   oldest publish acknowledged by JetStream -> ack its lease (m leaves A)
//!   a publish failed -> give back every lease in flight (they return to A,
//!                       in order) and resynchronise
//! ```
//!
//! **Resynchronising.** After a start or a failure the stream may already
//! hold some of the messages about to be published (their publish was
//! stored, their lease not acknowledged). They are published one at a time
//! without the expectation header: JetStream answers "duplicate" for those
//! it holds, by their id. The first message it stores anew proves that
//! none after it was stored (each pipelined publish expected its
//! predecessor to be the stream's last, so none could be stored after a
//! lost one); from then on publishes are pipelined again, each expecting
//! the previous one's id.

use crate::jet::Link;
use crate::Error;
use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::message::PublishMessage;
use bytes::Bytes;
use shmq::{Leased, Queue, RecvError};
use std::collections::VecDeque;
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// What `out` drains and where to.
#[derive(Clone, Debug)]
pub struct OutConfig {
    /// The named shmq queue to drain.
    pub queue: String,
    /// The JetStream side.
    pub link: Link,
    /// Publishes in flight at most.
    pub window: usize,
}

/// What a run moved, for tests and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutStats {
    /// Messages stored in the stream (their leases acknowledged).
    pub published: u64,
    /// Publishes JetStream dropped as repeats (stored before a crash).
    pub repeats: u64,
    /// Failed publishes (each put its window back into the queue).
    pub failures: u64,
}

/// The queue's identity in message ids: the `/dev/shm` file's inode and
/// birth time, so that a queue made again under the same name (whose
/// lease ids start over) never repeats an id inside the dedup window. (Not
/// its change time: writes through the mapping move that, and ids that
/// changed with each `out` process let every repeat through; the
/// acceptance test caught it.)
pub fn queue_identity(name: &str) -> Result<String, Error> {
    let bare = name.strip_prefix('/').unwrap_or(name);
    let path = format!("/dev/shm/{bare}");
    let m = std::fs::metadata(&path)?;
    let born = m
        .created()
        .map_err(|e| format!("{path}: no birth time ({e}); the bridge needs a kernel whose tmpfs records it (Linux 5.16 or later)"))?
        .duration_since(std::time::UNIX_EPOCH)?;
    Ok(format!("{:x}.{:x}", m.ino(), born.as_nanos()))
}

/// Runs `out` until `stop` is set (checked at least every 100 ms) or the
/// queue is closed and drained.
pub fn run(cfg: &OutConfig, stop: &AtomicBool) -> Result<OutStats, Error> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let js = rt.block_on(cfg.link.connect())?;
    rt.block_on(cfg.link.stream(&js))?;
    let q = Queue::open(&cfg.queue)?;
    let me = queue_identity(&cfg.queue)?;
    let rx = q.receiver();
    // A predecessor killed holding leases: its messages go out first, in
    // their order, before any later one is leased.
    rx.recover_now()?;
    let subject = cfg.link.subject();
    let window = cfg.window.max(1);
    let mut stats = OutStats::default();
    let mut inflight: VecDeque<(Leased<'_>, String, PublishAckFuture)> = VecDeque::new();
    // `Some(id)`: pipelined, the stream's last message is (or will be)
    // `id`; `None`: resynchronising.
    let mut last: Option<String> = None;
    loop {
        // Fill the window (one message while resynchronising).
        let room = if last.is_some() { window } else { 1 };
        while inflight.len() < room {
            let got = if inflight.is_empty() {
                rx.recv_leased_timeout(Duration::from_millis(100))
            } else {
                rx.try_recv_leased()
            };
            let lease = match got {
                Ok(l) => l,
                Err(RecvError::Empty | RecvError::Timeout) => break,
                Err(RecvError::Closed) if inflight.is_empty() => return Ok(stats),
                Err(RecvError::Closed) => break,
                Err(e) => return Err(e.into()),
            };
            let id = format!("{me}.{:x}", lease.id());
            let mut msg = PublishMessage::build()
                .payload(Bytes::copy_from_slice(&lease))
                .message_id(&id);
            if let Some(prev) = &last {
                msg = msg.expected_last_message_id(prev);
            }
            match rt.block_on(js.send_publish(subject.clone(), msg)) {
                Ok(ack) => {
                    if last.is_some() {
                        last = Some(id.clone());
                    }
                    inflight.push_back((lease, id, ack));
                }
                Err(_) => {
                    drop(lease); // back to the queue
                    fail(&rt, &mut inflight, &mut last, &mut stats);
                    break;
                }
            }
        }
        if stop.load(Ordering::Relaxed) {
            // In-flight leases go back to the queue as they drop.
            return Ok(stats);
        }
        // Settle the oldest publish.
        let Some((lease, id, ack)) = inflight.pop_front() else {
            continue;
        };
        match rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), ack).await }) {
            Ok(Ok(ack)) => {
                lease.ack();
                if ack.duplicate {
                    stats.repeats += 1;
                } else {
                    stats.published += 1;
                }
                if last.is_none() && !ack.duplicate {
                    // Stored anew: nothing after it was stored before.
                    last = Some(id);
                }
            }
            _ => {
                drop(lease);
                fail(&rt, &mut inflight, &mut last, &mut stats);
            }
        }
    }
}

/// A publish failed: wait out the rest of the window (their outcome no
/// longer matters: each either expected a predecessor that may be missing,
/// or is a repeat), give every lease back, and resynchronise.
fn fail(
    rt: &tokio::runtime::Runtime,
    inflight: &mut VecDeque<(Leased<'_>, String, PublishAckFuture)>,
    last: &mut Option<String>,
    stats: &mut OutStats,
) {
    stats.failures += 1;
    for (lease, _, ack) in inflight.drain(..) {
        let _ = rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), ack).await });
        drop(lease);
    }
    *last = None;
    // Give a restarting server a moment rather than spin on it.
    std::thread::sleep(Duration::from_millis(50));
}
