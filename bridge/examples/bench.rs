//! The bridge's benchmark (docs/BENCHMARKS.md, *Across hosts*): 64 B and
//! 64 KiB messages A -> out -> JetStream (file storage) -> in -> B on
//! loopback, beside async-nats publishing to and consuming from the same
//! server directly (the engine's own ceiling here). Messages/s and the
//! latency from send to receive (p50, p99, p99.9).
//!
//! `NATS_SERVER=path/to/nats-server cargo run --release -p shmq-bridge --example bench`

use async_nats::jetstream::consumer::{pull, AckPolicy};
use async_nats::jetstream::message::PublishMessage;
use bytes::Bytes;
use futures_util::StreamExt;
use shmq::Queue;
use shmq_bridge::inbound::{self, InConfig};
use shmq_bridge::jet::Link;
use shmq_bridge::outbound::{self, OutConfig};
use std::collections::VecDeque;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn stamp(t0: Instant, m: &mut [u8]) {
    m[..8].copy_from_slice(&(t0.elapsed().as_nanos() as u64).to_le_bytes());
}

fn age(t0: Instant, m: &[u8]) -> u64 {
    t0.elapsed().as_nanos() as u64 - u64::from_le_bytes(m[..8].try_into().unwrap())
}

fn report(what: &str, size: usize, n: usize, secs: f64, mut lat: Vec<u64>) {
    lat.sort_unstable();
    let q = |f: f64| lat[((lat.len() as f64 * f) as usize).min(lat.len() - 1)] as f64 / 1e3;
    println!(
        "{what:<8} {size:>6} B  {:>9.0} msg/s  p50 {:>8.0} us  p99 {:>8.0} us  p99.9 {:>8.0} us",
        n as f64 / secs,
        q(0.5),
        q(0.99),
        q(0.999)
    );
}

fn bridged(url: &str, size: usize, n: usize, tag: &str, dir: &std::path::Path) {
    let (na, nb) = (format!("bench-a-{tag}"), format!("bench-b-{tag}"));
    let _ = Queue::unlink(&na);
    let _ = Queue::unlink(&nb);
    let cap = (4 << 20).max(4 * size);
    let a = Queue::builder()
        .capacity_bytes(cap)
        .create_named(&na)
        .unwrap();
    let b = Queue::builder()
        .capacity_bytes(cap)
        .create_named(&nb)
        .unwrap();
    let link = Link {
        server: url.into(),
        stream: format!("bench_bridged_{tag}"),
        duplicate_window: Duration::from_secs(120),
    };
    let stop = AtomicBool::new(false);
    let t0 = Instant::now();
    std::thread::scope(|s| {
        let out = OutConfig {
            queue: na.clone(),
            link: link.clone(),
            window: 256,
        };
        let inn = InConfig {
            queue: nb.clone(),
            link: link.clone(),
            consumer: "bench".into(),
            state: dir.join(format!("{tag}.state")),
            batch: 256,
            ack_wait: Duration::from_secs(30),
        };
        let stop = &stop;
        s.spawn(move || outbound::run(&out, stop).unwrap());
        s.spawn(move || inbound::run(&inn, stop).unwrap());
        let tx = a.sender();
        s.spawn(move || {
            let mut m = vec![7u8; size];
            for _ in 0..n {
                stamp(t0, &mut m);
                tx.send(&m).unwrap();
            }
        });
        let rx = b.receiver();
        let mut lat = Vec::with_capacity(n);
        let mut first = None;
        for _ in 0..n {
            let m = rx.recv().unwrap();
            first.get_or_insert_with(Instant::now);
            lat.push(age(t0, &m));
        }
        let secs = t0.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        report("bridged", size, n, secs, lat);
    });
    let _ = Queue::unlink(&na);
    let _ = Queue::unlink(&nb);
}

fn direct(url: &str, size: usize, n: usize, tag: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let link = Link {
            server: url.into(),
            stream: format!("bench_direct_{tag}"),
            duplicate_window: Duration::from_secs(120),
        };
        let js = link.connect().await.unwrap();
        let stream = link.stream(&js).await.unwrap();
        let consumer = stream
            .create_consumer(pull::Config {
                durable_name: Some("bench".into()),
                ack_policy: AckPolicy::Explicit,
                max_ack_pending: 256,
                filter_subject: link.subject(),
                ..Default::default()
            })
            .await
            .unwrap();
        let t0 = Instant::now();
        let subject = link.subject();
        let js2 = js.clone();
        let publisher = tokio::spawn(async move {
            let mut inflight = VecDeque::new();
            let mut m = vec![7u8; size];
            for i in 0..n {
                stamp(t0, &mut m);
                let msg = PublishMessage::build()
                    .payload(Bytes::copy_from_slice(&m))
                    .message_id(format!("{i}"));
                inflight.push_back(js2.send_publish(subject.clone(), msg).await.unwrap());
                if inflight.len() >= 256 {
                    inflight.pop_front().unwrap().await.unwrap();
                }
            }
            for a in inflight {
                a.await.unwrap();
            }
        });
        let mut lat = Vec::with_capacity(n);
        while lat.len() < n {
            let mut batch = consumer
                .fetch()
                .max_messages(256)
                .expires(Duration::from_millis(100))
                .messages()
                .await
                .unwrap();
            while let Some(m) = batch.next().await {
                let m = m.unwrap();
                lat.push(age(t0, &m.payload));
                m.ack().await.unwrap();
            }
        }
        let secs = t0.elapsed().as_secs_f64();
        publisher.await.unwrap();
        report("direct", size, n, secs, lat);
    });
}

fn main() {
    let bin = std::env::var("NATS_SERVER").unwrap_or_else(|_| "nats-server".into());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = std::env::temp_dir().join(format!("shmq-bridge-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut server = Command::new(&bin)
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nats-server (set NATS_SERVER)");
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let url = format!("nats://127.0.0.1:{port}");
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    for (size, n) in [(64, 100_000), (65536, 5_000)] {
        for r in 0..rounds {
            // Interleaved, so that the machine's noise falls on both.
            direct(&url, size, n, &format!("{size}_{r}"));
            bridged(&url, size, n, &format!("{size}_{r}"), &dir);
        }
    }
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
