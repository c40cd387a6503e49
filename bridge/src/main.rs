//! `shmq-bridge out|in`: one command on each host (see docs/DISTRIBUTED.md).

use clap::{Args, Parser, Subcommand};
use shmq_bridge::inbound::{self, InConfig};
use shmq_bridge::jet::Link;
use shmq_bridge::outbound::{self, OutConfig};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// Carry a named shmq queue between hosts through NATS JetStream.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    side: Side,
}

#[derive(Subcommand)]
enum Side {
    /// Drain a named queue into a JetStream stream.
    Out {
        /// The named shmq queue to drain.
        #[arg(long)]
        queue: String,
        #[command(flatten)]
        link: LinkArgs,
        /// Publishes in flight at most.
        #[arg(long, default_value_t = 256)]
        window: usize,
    },
    /// Feed a named queue from a JetStream stream.
    In {
        /// The named shmq queue to feed (it must exist).
        #[arg(long)]
        queue: String,
        #[command(flatten)]
        link: LinkArgs,
        /// The durable consumer's name.
        #[arg(long, default_value = "shmq-bridge")]
        consumer: String,
        /// The state file (default: /dev/shm/shmq-bridge.<queue>.<consumer>).
        #[arg(long)]
        state: Option<PathBuf>,
        /// Messages fetched (and unacknowledged) at most at once.
        #[arg(long, default_value_t = 256)]
        batch: usize,
        /// Seconds JetStream waits for an acknowledgement before it
        /// delivers a message again.
        #[arg(long, default_value_t = 30)]
        ack_wait: u64,
    },
}

#[derive(Args)]
struct LinkArgs {
    /// The NATS server.
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    server: String,
    /// The JetStream stream (made if missing; subject shmq.<stream>).
    #[arg(long)]
    stream: String,
    /// Seconds JetStream remembers a message id to drop a repeat.
    #[arg(long, default_value_t = 120)]
    duplicate_window: u64,
}

impl LinkArgs {
    fn link(self) -> Link {
        Link {
            server: self.server,
            stream: self.stream,
            duplicate_window: Duration::from_secs(self.duplicate_window),
        }
    }
}

fn main() {
    let stop = AtomicBool::new(false);
    let result = match Cli::parse().side {
        Side::Out {
            queue,
            link,
            window,
        } => outbound::run(
            &OutConfig {
                queue,
                link: link.link(),
                window,
            },
            &stop,
        )
        .map(|s| eprintln!("out: {s:?}")),
        Side::In {
            queue,
            link,
            consumer,
            state,
            batch,
            ack_wait,
        } => {
            let bare = queue.trim_start_matches('/').to_owned();
            let state = state.unwrap_or_else(|| {
                PathBuf::from(format!("/dev/shm/shmq-bridge.{bare}.{consumer}"))
            });
            inbound::run(
                &InConfig {
                    queue,
                    link: link.link(),
                    consumer,
                    state,
                    batch,
                    ack_wait: Duration::from_secs(ack_wait),
                },
                &stop,
            )
            .map(|s| eprintln!("in: {s:?}"))
        }
    };
    if let Err(e) = result {
        eprintln!("shmq-bridge: {e}");
        std::process::exit(1);
    }
}
