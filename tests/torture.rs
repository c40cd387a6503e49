//! Multi-process torture test (`harness = false`; a plain `main`).
//!
//! P producer and C consumer processes (this binary, re-executed with
//! `SHMQ_TORTURE_ROLE` set) share one small queue, so full, empty, padding
//! and wrap-around happen all the time. Producers send messages of random
//! sizes (1 byte to the maximum) with a random mix of `send`, `try_send` and
//! `send_timeout`; consumers receive with a random mix of `recv`,
//! `try_recv` and `recv_timeout`, and sometimes hold up to three messages
//! and release them out of order (never while waiting for more: held
//! messages pin their room). When the time is up the producers stop and
//! report what they sent; the parent closes the queue, the consumers drain
//! it and report what they received.
//!
//! Checked: every message's content; per-producer FIFO order as each consumer
//! sees it; exactly-once delivery, by comparing, for every producer, the
//! count and two independent 64-bit hash sums of the message identities sent
//! with those received over all consumers (a loss, a duplicate or a damaged
//! identity changes them, except with probability ~2^-64). Messages shorter
//! than 9 bytes carry only the low bytes of their sequence number, so a loss
//! paired with a duplicate of an identical short message would escape the
//! sums. A watchdog fails the run, with a dump of the queue's counters and
//! every process killed, if the queue's counters stop moving for
//! `SHMQ_TORTURE_STALL_SECS` (default 10) while work remains.
//!
//! ```text
//! cargo test --test torture                       # short mode (CI): ~1 minute
//! SHMQ_TORTURE_SECS=600 cargo test --release --test torture     # soak
//! SHMQ_TORTURE_SECS=60 SHMQ_TORTURE_PRODUCERS=8 SHMQ_TORTURE_CONSUMERS=2 \
//!     SHMQ_TORTURE_CAPACITY=1024 SHMQ_TORTURE_MAXSIZE=3 cargo test --release --test torture
//! ```
//!
//! Without `SHMQ_TORTURE_PRODUCERS` it runs four scenarios in turn and splits
//! `SHMQ_TORTURE_SECS` (default 48) between them; with it, one scenario.

mod common;

use common::{env_parse, is_message, message, splitmix, this_binary, ID_LEN};

use shmq::{Diagnostics, Queue, RecvError, RecvGuard, SendError};
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

const QUEUE_VAR: &str = "SHMQ_TORTURE_QUEUE";
const ROLE_VAR: &str = "SHMQ_TORTURE_ROLE";

// ------------------------------------------------------------ messages

/// A small PRNG per process (xorshift64*), seeded from the scenario.
struct Rng(u64);
impl Rng {
    fn new(seed: u64) -> Self {
        Rng(splitmix(seed) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The two hashes of a message identity that the sums are made of.
fn id_hashes(prod: u8, seq_bytes: u64, len: usize) -> (u64, u64) {
    let k = seq_bytes ^ (prod as u64) << 56 ^ (len as u64) << 32;
    (
        splitmix(k),
        splitmix(k ^ 0x5851_F42D_4C95_7F2D).rotate_left(17),
    )
}

/// Count and hash sums of a multiset of message identities.
#[derive(Default, Clone, Copy, PartialEq, Eq, Debug)]
struct Tally {
    count: u64,
    sum1: u64,
    sum2: u64,
}
impl Tally {
    fn add(&mut self, prod: u8, seq_bytes: u64, len: usize) {
        let (a, b) = id_hashes(prod, seq_bytes, len);
        self.count += 1;
        self.sum1 = self.sum1.wrapping_add(a);
        self.sum2 = self.sum2.wrapping_add(b);
    }
    fn merge(&mut self, o: Tally) {
        self.count += o.count;
        self.sum1 = self.sum1.wrapping_add(o.sum1);
        self.sum2 = self.sum2.wrapping_add(o.sum2);
    }
    fn line(&self) -> String {
        format!("{} {} {}", self.count, self.sum1, self.sum2)
    }
    fn parse(w: &[&str]) -> Tally {
        Tally {
            count: w[0].parse().unwrap(),
            sum1: w[1].parse().unwrap(),
            sum2: w[2].parse().unwrap(),
        }
    }
}

/// The sequence bytes a message of `len` bytes carries.
fn seq_bytes(seq: u64, len: usize) -> u64 {
    match len {
        0 | 1 => 0,
        n if n >= ID_LEN => seq,
        n => seq & ((1u64 << ((n - 1) * 8)) - 1),
    }
}

/// A random length: a mix of tiny, granule-edge, anything, the ring's
/// maximum, and (one in 20) up to three times more, through the overflow
/// area.
fn random_len(rng: &mut Rng, max: usize) -> usize {
    if rng.below(20) == 0 {
        return max + 1 + rng.below(2 * max as u64) as usize;
    }
    match rng.below(10) {
        0..=2 => 1 + rng.below(16) as usize,
        3 | 4 => {
            let k = 1 + rng.below((max / 64) as u64) as usize;
            (k * 64 + rng.below(3) as usize)
                .saturating_sub(1)
                .clamp(1, max)
        }
        5 => max,
        _ => 1 + rng.below(max as u64) as usize,
    }
}

// ------------------------------------------------------------ children

fn env(k: &str) -> Option<u64> {
    env_parse(k)
}

fn producer(q: &Queue, id: u8, seed: u64, secs: f64) {
    let tx = q.sender();
    let max = q.ring_message_size();
    let mut rng = Rng::new(seed);
    let mut buf = Vec::with_capacity(max);
    let mut tally = Tally::default();
    let (mut full, mut timeouts) = (0u64, 0u64);
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let mut seq = 0u64;
    // Check the clock every 64 messages.
    while seq % 64 != 0 || Instant::now() < end {
        let len = random_len(&mut rng, max);
        message(id, seq, len, &mut buf);
        loop {
            let r = match rng.below(4) {
                0 | 1 => tx.send(&buf),
                2 => tx.try_send(&buf),
                _ => tx.send_timeout(&buf, Duration::from_micros(rng.below(2000))),
            };
            match r {
                Ok(()) => break,
                Err(SendError::Full) => {
                    full += 1;
                    std::thread::yield_now();
                }
                Err(SendError::Timeout) => timeouts += 1,
                Err(e) => panic!("producer {id}: {e}"),
            }
        }
        tally.add(id, seq_bytes(seq, len), len);
        seq += 1;
    }
    println!("sent {id} {} {full} {timeouts}", tally.line());
}

/// Per-producer state as one consumer sees it.
struct Seen {
    tally: Tally,
    last: Option<u64>,
}

fn consumer(q: &Queue, id: u8, seed: u64, producers: usize) {
    let rx = q.receiver();
    let mut rng = Rng::new(seed);
    let mut seen: Vec<Seen> = (0..producers)
        .map(|_| Seen {
            tally: Tally::default(),
            last: None,
        })
        .collect();
    let mut scratch = Vec::new();
    let (mut empty, mut timeouts) = (0u64, 0u64);
    let mut held: Vec<RecvGuard<'_>> = Vec::new();
    let mut check = |m: &[u8]| {
        assert!(!m.is_empty(), "consumer {id}: empty message");
        let prod = m[0];
        let mut sb = [0u8; 8];
        let n = m.len().min(ID_LEN) - 1;
        sb[..n].copy_from_slice(&m[1..1 + n]);
        let sbytes = u64::from_le_bytes(sb);
        let s = seen
            .get_mut(prod as usize)
            .unwrap_or_else(|| panic!("consumer {id}: message from unknown producer {prod}"));
        if m.len() >= ID_LEN {
            assert!(
                is_message(m, prod, sbytes, &mut scratch),
                "consumer {id}: message {prod}/{sbytes} damaged"
            );
            if let Some(last) = s.last {
                assert!(
                    sbytes > last,
                    "consumer {id}: producer {prod}'s message {sbytes} after {last}"
                );
            }
            s.last = Some(sbytes);
        }
        s.tally.add(prod, sbytes, m.len());
    };
    loop {
        let how = rng.below(4);
        if how != 2 {
            // A held message pins its room (and all newer room) until it is
            // released: never wait for more while holding any, or consumers
            // that together pin the whole ring would wait forever.
            held.clear();
        }
        let r = match how {
            0 | 1 => rx.recv(),
            2 => rx.try_recv(),
            _ => rx.recv_timeout(Duration::from_micros(rng.below(2000))),
        };
        match r {
            Ok(g) => {
                check(&g);
                // Sometimes keep it, and release held ones out of order.
                if held.len() < 3 && rng.below(8) == 0 {
                    held.push(g);
                } else {
                    drop(g);
                }
                if !held.is_empty() && rng.below(4) == 0 {
                    let i = rng.below(held.len() as u64) as usize;
                    drop(held.swap_remove(i));
                }
            }
            Err(RecvError::Empty) => {
                held.clear();
                empty += 1;
                std::thread::yield_now();
            }
            Err(RecvError::Timeout) => timeouts += 1,
            Err(RecvError::Closed | RecvError::Disconnected) => break,
            Err(e) => panic!("consumer {id}: {e}"),
        }
    }
    drop(held);
    for (p, s) in seen.iter().enumerate() {
        println!("got {id} {p} {}", s.tally.line());
    }
    println!("waits {id} {empty} {timeouts}");
}

fn child_main(role: &str) {
    let q = Queue::from_env(QUEUE_VAR).expect("attach the queue passed by the parent");
    let id = env("SHMQ_TORTURE_ID").unwrap() as u8;
    let seed = env("SHMQ_TORTURE_SEED").unwrap();
    match role {
        "producer" => producer(
            &q,
            id,
            seed,
            env("SHMQ_TORTURE_MILLIS").unwrap() as f64 / 1e3,
        ),
        "consumer" => consumer(&q, id, seed, env("SHMQ_TORTURE_NPROD").unwrap() as usize),
        other => panic!("unknown role {other}"),
    }
}

// ------------------------------------------------------------ parent

#[derive(Clone, Debug)]
struct Scenario {
    producers: usize,
    consumers: usize,
    capacity: usize,
    maxsize: usize,
    /// 0: a bounded ring; otherwise an unbounded queue whose records may
    /// take this many bytes (`u64::MAX`: no byte bound).
    bytes: u64,
    secs: f64,
}

struct Proc {
    what: String,
    child: Child,
    out: std::thread::JoinHandle<String>,
}

fn spawn(q: &Queue, role: &str, id: usize, s: &Scenario, seed: u64) -> Proc {
    let mut cmd = this_binary(ROLE_VAR, role);
    q.inherit_into(&mut cmd, QUEUE_VAR);
    cmd.env("SHMQ_TORTURE_ID", id.to_string())
        .env("SHMQ_TORTURE_SEED", seed.to_string())
        .env("SHMQ_TORTURE_MILLIS", ((s.secs * 1e3) as u64).to_string())
        .env("SHMQ_TORTURE_NPROD", s.producers.to_string())
        .stdout(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn child");
    let mut stdout = child.stdout.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    Proc {
        what: format!("{role} {id}"),
        child,
        out,
    }
}

/// Progress as the counters show it: any change in positions or sequences.
fn progress_key(d: &Diagnostics) -> (u64, u64, u64, u64, u64) {
    (d.tail_pos, d.tail_seq, d.read_pos, d.read_seq, d.head_pos)
}

fn kill_all(procs: &mut [Proc]) {
    for p in procs.iter_mut() {
        let _ = p.child.kill();
        let _ = p.child.wait();
    }
}

/// Waits until every process in `procs` with `wait_for` set has exited.
/// Fails (after killing everything) if any process fails, or if the queue's
/// counters stop moving for `stall` meanwhile.
fn supervise(q: &Queue, procs: &mut [Proc], wait_for: &[bool], stall: Duration, phase: &str) {
    let mut last = progress_key(&q.diagnostics());
    let mut moved = Instant::now();
    let mut exited = vec![false; procs.len()];
    while procs
        .iter()
        .zip(wait_for)
        .zip(&exited)
        .any(|((_, w), e)| *w && !*e)
    {
        for (i, p) in procs.iter_mut().enumerate() {
            if exited[i] {
                continue;
            }
            if let Some(st) = p.child.try_wait().unwrap() {
                exited[i] = true;
                if !st.success() {
                    let what = p.what.clone();
                    kill_all(procs);
                    panic!(
                        "{what} failed ({st}) while {phase}; queue: {}",
                        q.diagnostics()
                    );
                }
            }
        }
        let d = q.diagnostics();
        if progress_key(&d) != last {
            last = progress_key(&d);
            moved = Instant::now();
        } else if moved.elapsed() > stall {
            let running: Vec<&str> = procs
                .iter()
                .zip(&exited)
                .filter(|(_, e)| !**e)
                .map(|(p, _)| p.what.as_str())
                .collect();
            let running = running.join(", ");
            kill_all(procs);
            panic!(
                "STALL while {phase}: the queue did not move for {stall:?}\n  queue: {d}\n  \
                 {d:?}\n  still running: {running}"
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn run(s: &Scenario, seed: u64, stall: Duration) {
    let mut b = Queue::builder().capacity_bytes(s.capacity);
    if s.maxsize > 0 {
        b = b.maxsize(s.maxsize);
    }
    b = match s.bytes {
        0 => b,
        u64::MAX => b.unbounded(),
        n => b.max_bytes(n),
    };
    let q = b.create().expect("create queue");
    println!(
        "torture: {} producers x {} consumers, {}, capacity {} B (in the ring up to {} B, then the overflow area), maxsize {}, {:.0} s, seed {seed}",
        s.producers,
        s.consumers,
        match s.bytes {
            0 => "bounded ring".to_string(),
            u64::MAX => "unbounded".to_string(),
            n => format!("unbounded, max_bytes {n}"),
        },
        s.capacity,
        q.ring_message_size(),
        if s.maxsize > 0 { s.maxsize.to_string() } else { "-".into() },
        s.secs,
    );
    let t0 = Instant::now();
    let mut procs: Vec<Proc> = (0..s.consumers)
        .map(|i| spawn(&q, "consumer", i, s, seed ^ (0xC0 + i as u64) << 32))
        .collect();
    procs.extend(
        (0..s.producers).map(|i| spawn(&q, "producer", i, s, seed ^ (0xA0 + i as u64) << 32)),
    );
    let is_producer: Vec<bool> = (0..procs.len()).map(|i| i >= s.consumers).collect();
    supervise(&q, &mut procs, &is_producer, stall, "sending");
    q.close();
    supervise(
        &q,
        &mut procs,
        &vec![true; is_producer.len()],
        stall,
        "draining",
    );
    let elapsed = t0.elapsed();

    let mut sent = vec![None; s.producers];
    let (mut full, mut send_timeouts) = (0u64, 0u64);
    let producers = procs.split_off(s.consumers);
    let consumers = procs;
    for p in producers {
        let out = p.out.join().unwrap();
        for line in out.lines() {
            let w: Vec<&str> = line.split_whitespace().collect();
            if w.first() == Some(&"sent") {
                sent[w[1].parse::<usize>().unwrap()] = Some(Tally::parse(&w[2..5]));
                full += w[5].parse::<u64>().unwrap();
                send_timeouts += w[6].parse::<u64>().unwrap();
            }
        }
    }
    let mut got = vec![Tally::default(); s.producers];
    let (mut empty, mut recv_timeouts, mut reports) = (0u64, 0u64, 0);
    for c in consumers {
        let out = c.out.join().unwrap();
        for line in BufReader::new(out.as_bytes()).lines() {
            let line = line.unwrap();
            let w: Vec<&str> = line.split_whitespace().collect();
            match w.first() {
                Some(&"got") => got[w[2].parse::<usize>().unwrap()].merge(Tally::parse(&w[3..6])),
                Some(&"waits") => {
                    empty += w[2].parse::<u64>().unwrap();
                    recv_timeouts += w[3].parse::<u64>().unwrap();
                    reports += 1;
                }
                _ => {}
            }
        }
    }
    assert_eq!(reports, s.consumers, "a consumer did not report");
    let mut total = 0;
    for (p, (sent, got)) in sent.iter().zip(&got).enumerate() {
        let sent = sent.unwrap_or_else(|| panic!("producer {p} did not report"));
        assert_eq!(
            *got, sent,
            "producer {p}: received {got:?}, sent {sent:?} (count, hash sums): lost or duplicated"
        );
        total += sent.count;
    }
    let d = q.diagnostics();
    assert_eq!(d.queued(), 0);
    assert_eq!(d.head_pos, d.tail_pos, "room not all reclaimed: {d}");
    println!(
        "torture: ok: {total} messages exactly once, FIFO per producer, in {:.1} s: {:.2} M msg/s \
         (full {full}, send timeouts {send_timeouts}, empty {empty}, recv timeouts {recv_timeouts})",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64() / 1e6,
    );
}

fn main() {
    if let Ok(role) = std::env::var(ROLE_VAR) {
        child_main(&role);
        return;
    }
    // `cargo test` passes harness flags (`--list`, filters): a listing must
    // run nothing, and a filter that is not ours skips us.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    if let Some(f) = args.iter().find(|a| !a.starts_with('-')) {
        if !"torture".contains(f.as_str()) {
            return;
        }
    }
    let secs = env("SHMQ_TORTURE_SECS").unwrap_or(48) as f64;
    let stall = Duration::from_secs(env("SHMQ_TORTURE_STALL_SECS").unwrap_or(10));
    let seed = env("SHMQ_TORTURE_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    });
    let scenarios = match env("SHMQ_TORTURE_PRODUCERS") {
        Some(p) => vec![Scenario {
            producers: p as usize,
            consumers: env("SHMQ_TORTURE_CONSUMERS").unwrap_or(4) as usize,
            capacity: env("SHMQ_TORTURE_CAPACITY").unwrap_or(4096) as usize,
            maxsize: env("SHMQ_TORTURE_MAXSIZE").unwrap_or(0) as usize,
            bytes: env("SHMQ_TORTURE_BYTES").unwrap_or(0),
            secs,
        }],
        // Bounded rings, then unbounded queues (records in blocks of the
        // overflow area) bounded by count and by bytes, so that producers
        // that never wait for room still keep their backlog in memory.
        None => [
            (4, 4, 4096, 0, 0, 0.25),
            (4, 4, 1024, 3, 0, 0.2),
            (1, 1, 256, 0, 0, 0.1),
            (6, 2, 2048, 5, 0, 0.15),
            (4, 4, 4096, 2000, u64::MAX, 0.15),
            (3, 3, 1024, 0, 256 << 10, 0.15),
        ]
        .into_iter()
        .map(
            |(producers, consumers, capacity, maxsize, bytes, share)| Scenario {
                producers,
                consumers,
                capacity,
                maxsize,
                bytes,
                secs: secs * share,
            },
        )
        .collect(),
    };
    for (i, s) in scenarios.iter().enumerate() {
        run(s, seed.wrapping_add(i as u64), stall);
    }
}
