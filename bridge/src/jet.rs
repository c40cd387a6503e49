//! The JetStream side both ends share: connecting, the stream, its subject.

use crate::Error;
use async_nats::jetstream::{self, stream};
use std::time::Duration;

/// Where a bridge meets JetStream: a server and a stream of its own.
#[derive(Clone, Debug)]
pub struct Link {
    /// The server's URL (`nats://127.0.0.1:4222`).
    pub server: String,
    /// The stream's name; its one subject is [`Link::subject`].
    pub stream: String,
    /// How long JetStream remembers a `Nats-Msg-Id` to drop a repeat: at
    /// least as long as an `out` bridge may stay down with a message
    /// published and its lease not acknowledged.
    pub duplicate_window: Duration,
}

impl Link {
    /// The stream's subject: `shmq.<stream>`. The stream holds it alone,
    /// so its sequence numbers have no gaps (the `in` side counts on it).
    pub fn subject(&self) -> String {
        format!("shmq.{}", self.stream)
    }

    /// Connects, retrying until the server answers (it may be starting,
    /// or restarting); the client reconnects by itself afterwards.
    pub async fn connect(&self) -> Result<jetstream::Context, Error> {
        let client = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(2))
            .connect(self.server.as_str())
            .await?;
        Ok(jetstream::new(client))
    }

    /// The stream, made if missing: file storage, WorkQueue retention (a
    /// message leaves it once one consumer acknowledged it), the
    /// deduplication window.
    pub async fn stream(&self, js: &jetstream::Context) -> Result<stream::Stream, Error> {
        Ok(js
            .get_or_create_stream(stream::Config {
                name: self.stream.clone(),
                subjects: vec![self.subject()],
                retention: stream::RetentionPolicy::WorkQueue,
                storage: stream::StorageType::File,
                duplicate_window: self.duplicate_window,
                ..Default::default()
            })
            .await?)
    }
}
