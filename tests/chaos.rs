//! Chaos: producer and consumer processes share one named queue while the
//! parent SIGKILLs one of them at random moments, again and again, and
//! starts a new one in its place. It checks, from counters in a shared
//! file that every child updates:
//!
//! * nothing a producer confirmed as sent (its `send` returned) is lost,
//!   except at most one message per killed consumer (the one it held when it
//!   died, which counts as delivered, as with a Python consumer that died
//!   after `get()`);
//! * nothing is delivered twice, nothing is damaged, and each consumer sees
//!   each producer's messages in order;
//! * nothing hangs: a watchdog fails the run, printing the queue's shared
//!   counters, if deliveries stop for `SHMQ_CHAOS_STALL_SECS` (default 20).
//!
//! ```text
//! cargo test --release --test chaos                      # short (CI), 8 s
//! SHMQ_CHAOS_SECS=660 cargo test --release --test chaos  # the long run
//! ```
//! Environment: `SHMQ_CHAOS_SECS`, `SHMQ_CHAOS_SEED`, `SHMQ_CHAOS_PRODUCERS`
//! (3), `SHMQ_CHAOS_CONSUMERS` (2), `SHMQ_CHAOS_STALL_SECS`.

mod common;

use common::{
    env_parse, env_var, is_message, message, message_id, splitmix, this_binary, unique_name,
};
use memmap2::MmapMut;
use shmq::{Queue, RecvError, SendError};
use std::process::Child;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::SeqCst};
use std::time::{Duration, Instant};

const ROLE: &str = "SHMQ_CHAOS_ROLE";
/// Per producer, message ids `0..MAX_SEQ` have a delivery counter.
const MAX_SEQ: u64 = 1 << 25;
/// Shared words: stop, failures, delivered total, then `next[p]`.
const WORDS: usize = 64;
const MAX_PRODUCERS: usize = 16;

fn env(k: &str, default: u64) -> u64 {
    env_parse(k).unwrap_or(default)
}

/// The state file shared by the parent and its children.
struct State {
    map: MmapMut,
}

impl State {
    fn path(tag: &str) -> String {
        format!("/dev/shm/shmq-chaos-state-{tag}")
    }
    fn open(path: &str, create: bool) -> State {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(create)
            .open(path)
            .unwrap();
        if create {
            f.set_len((WORDS * 8) as u64 + MAX_PRODUCERS as u64 * MAX_SEQ)
                .unwrap();
        }
        // SAFETY: a file only this test's processes map; every access below
        // is atomic.
        State {
            map: unsafe { MmapMut::map_mut(&f) }.unwrap(),
        }
    }
    fn word(&self, i: usize) -> &AtomicU64 {
        assert!(i < WORDS);
        // SAFETY: in bounds, 8-aligned (page-aligned mapping).
        unsafe { &*(self.map.as_ptr() as *const AtomicU64).add(i) }
    }
    fn stop(&self) -> &AtomicU64 {
        self.word(0)
    }
    fn failures(&self) -> &AtomicU64 {
        self.word(1)
    }
    fn delivered_total(&self) -> &AtomicU64 {
        self.word(2)
    }
    /// Producer `p`'s next id: every id below it was confirmed sent (by
    /// the incarnations that ran so far, minus the gaps the parent notes).
    fn next(&self, p: usize) -> &AtomicU64 {
        self.word(8 + p)
    }
    fn delivered(&self, p: usize, s: u64) -> &AtomicU8 {
        assert!(p < MAX_PRODUCERS && s < MAX_SEQ);
        // SAFETY: in bounds of the file sized in `open`.
        unsafe {
            &*(self.map.as_ptr().add(WORDS * 8) as *const AtomicU8)
                .add(p * MAX_SEQ as usize + s as usize)
        }
    }
}

/// Length of message `s` of producer `p` (see `common::message`): 12 to
/// about 3000 bytes, and one in 64 larger than half the 64 KiB ring (33 to
/// 160 KiB), sent through the overflow area, so that kills land in those
/// sends and receives too.
fn msg_len(p: usize, s: u64) -> usize {
    let h = splitmix((p as u64) << 40 ^ s);
    if h % 64 == 0 {
        (32 << 10) + 1 + (h >> 8) as usize % (128 << 10)
    } else {
        12 + (h % 3000) as usize
    }
}

fn producer(q: &Queue, st: &State, p: usize) {
    let tx = q.sender();
    // A predecessor may have died after committing its next message but
    // before confirming it: skip that id (the parent knows it may or may
    // not arrive).
    let mut s = st.next(p).load(SeqCst);
    if std::env::var("SHMQ_CHAOS_RESTART").is_ok() {
        s += 1;
        // Confirmed up to here: were this incarnation killed right after
        // committing `s`, its successor must skip `s` too, not send it
        // again (which would read as a duplicate).
        st.next(p).store(s, SeqCst);
    }
    let mut buf = Vec::new();
    let mut rng = splitmix(std::process::id() as u64);
    while st.stop().load(SeqCst) == 0 && s < MAX_SEQ {
        message(p as u8, s, msg_len(p, s), &mut buf);
        match tx.send_timeout(&buf, Duration::from_millis(200)) {
            Ok(()) => {
                s += 1;
                st.next(p).store(s, SeqCst);
            }
            Err(SendError::Timeout | SendError::Disconnected) => continue,
            Err(e) => panic!("producer {p}: {e}"),
        }
        rng = splitmix(rng);
        if rng % 32 == 0 {
            std::thread::sleep(Duration::from_micros(rng % 1000));
        }
    }
}

fn consumer(q: &Queue, st: &State) {
    let rx = q.receiver();
    let mut last = [None::<u64>; MAX_PRODUCERS];
    let mut want = Vec::new();
    let mut rng = splitmix(std::process::id() as u64 ^ 7);
    loop {
        let m = match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(m) => m,
            Err(RecvError::Timeout | RecvError::Disconnected) => continue,
            Err(RecvError::Closed) => return,
            Err(e) => panic!("consumer: {e}"),
        };
        let id = message_id(&m).filter(|&(p, s)| (p as usize) < MAX_PRODUCERS && s < MAX_SEQ);
        let Some((p, s)) = id else {
            st.failures().fetch_add(1, SeqCst);
            eprintln!("consumer: a message without a valid identity");
            continue;
        };
        let p = p as usize;
        let mut bad = m.len() != msg_len(p, s) || !is_message(&m, p as u8, s, &mut want);
        if let Some(prev) = last[p] {
            bad |= s <= prev;
        }
        last[p] = Some(s);
        if bad {
            st.failures().fetch_add(1, SeqCst);
            eprintln!("consumer: message {p}/{s} damaged or out of order");
        }
        // Counted while the guard is held: a kill between the take and
        // this line is the one loss a consumer's death may cause.
        st.delivered(p, s).fetch_add(1, SeqCst);
        st.delivered_total().fetch_add(1, SeqCst);
        rng = splitmix(rng);
        if rng % 64 == 0 {
            // Hold the message a while, so that kills land on holders too.
            std::thread::sleep(Duration::from_micros(rng % 2000));
        }
        drop(m);
    }
}

fn spawn(role: &str, q: &str, state: &str, idx: usize, restart: bool) -> Child {
    let mut c = this_binary(ROLE, role);
    c.env("SHMQ_CHAOS_QUEUE", q)
        .env("SHMQ_CHAOS_STATE", state)
        .env("SHMQ_CHAOS_IDX", idx.to_string());
    if restart {
        c.env("SHMQ_CHAOS_RESTART", "1");
    }
    c.spawn().unwrap()
}

fn main() {
    if let Ok(role) = std::env::var(ROLE) {
        let q = Queue::open(&env_var("SHMQ_CHAOS_QUEUE")).unwrap();
        let st = State::open(&env_var("SHMQ_CHAOS_STATE"), false);
        let idx = env("SHMQ_CHAOS_IDX", 0) as usize;
        match role.as_str() {
            "producer" => producer(&q, &st, idx),
            "consumer" => consumer(&q, &st),
            _ => unreachable!(),
        }
        return;
    }
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test -- --list`: nothing to list
    }
    let secs = env("SHMQ_CHAOS_SECS", 8);
    let seed = env("SHMQ_CHAOS_SEED", splitmix(std::process::id() as u64));
    let np = env("SHMQ_CHAOS_PRODUCERS", 3) as usize;
    let nc = env("SHMQ_CHAOS_CONSUMERS", 2) as usize;
    let stall = Duration::from_secs(env("SHMQ_CHAOS_STALL_SECS", 20));
    assert!(np <= MAX_PRODUCERS && nc >= 1);
    // Both flavors: a bounded ring, and an unbounded queue bounded by bytes
    // (its records in blocks of the overflow area; the bound keeps the
    // backlog of producers that never wait within memory while consumers
    // are killed).
    for unbounded in [false, true] {
        run(
            unbounded,
            secs,
            splitmix(seed ^ unbounded as u64),
            np,
            nc,
            stall,
        );
    }
}

fn run(unbounded: bool, secs: u64, seed: u64, np: usize, nc: usize, stall: Duration) {
    let flavor = if unbounded {
        "unbounded (max_bytes 32 MiB)"
    } else {
        "bounded ring"
    };
    println!("chaos: {flavor}, {np} producers, {nc} consumers, {secs} s, seed {seed}");

    let tag = format!("{}-{}", std::process::id(), unbounded as u8);
    let qname = unique_name("queue");
    let spath = State::path(&tag);
    let mut b = Queue::builder().capacity_bytes(1 << 16);
    if unbounded {
        b = b.max_bytes(32 << 20);
    }
    let q = b.create_named(&qname).unwrap();
    let st = State::open(&spath, true);
    // children[i]: producers first, then consumers.
    let role = |i: usize| if i < np { "producer" } else { "consumer" };
    let mut children: Vec<Child> = (0..np + nc)
        .map(|i| spawn(role(i), &qname, &spath, i, false))
        .collect();
    // Per producer: ids that a killed incarnation may or may not have sent.
    let mut maybe: Vec<Vec<u64>> = vec![Vec::new(); np];
    let (mut kills_p, mut kills_c) = (0u64, 0u64);
    let mut rng = seed;
    let t0 = Instant::now();
    let (mut last_total, mut last_progress) = (0, Instant::now());
    let fail = |why: String, q: &Queue, children: &mut Vec<Child>| -> ! {
        for c in children.iter_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Queue::unlink(&qname);
        let _ = std::fs::remove_file(&spath);
        panic!("chaos: {why}\nqueue: {}", q.diagnostics());
    };
    while t0.elapsed() < Duration::from_secs(secs) {
        rng = splitmix(rng);
        std::thread::sleep(Duration::from_millis(10 + rng % 140));
        for (i, c) in children.iter_mut().enumerate() {
            if let Some(s) = c.try_wait().unwrap() {
                let why = format!("{} {i} exited on its own: {s}", role(i));
                fail(why, &q, &mut children);
            }
        }
        let i = (rng >> 20) as usize % children.len();
        children[i].kill().unwrap();
        children[i].wait().unwrap();
        if i < np {
            kills_p += 1;
            maybe[i].push(st.next(i).load(SeqCst));
        } else {
            kills_c += 1;
        }
        children[i] = spawn(role(i), &qname, &spath, i, true);
        let total = st.delivered_total().load(SeqCst);
        if total != last_total {
            (last_total, last_progress) = (total, Instant::now());
        } else if last_progress.elapsed() > stall {
            fail(format!("no delivery for {stall:?}"), &q, &mut children);
        }
    }
    // Stop: producers finish their current send and exit; then close, and
    // consumers drain and exit.
    st.stop().store(1, SeqCst);
    let deadline = Instant::now() + stall;
    for i in 0..children.len() {
        if i == np {
            q.close();
        }
        loop {
            if let Some(s) = children[i].try_wait().unwrap() {
                if !s.success() {
                    fail(format!("{} {i} failed: {s}", role(i)), &q, &mut children);
                }
                break;
            }
            if Instant::now() > deadline {
                fail(format!("{} {i} did not finish", role(i)), &q, &mut children);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    // Verify.
    let (mut verified, mut lost, mut dup, mut maybe_got) = (0u64, 0u64, 0u64, 0u64);
    for (p, gaps) in maybe.iter().enumerate() {
        let next = st.next(p).load(SeqCst);
        for s in 0..next {
            let n = st.delivered(p, s).load(SeqCst);
            dup += (n > 1) as u64;
            if gaps.contains(&s) {
                maybe_got += n as u64;
            } else if n == 1 {
                verified += 1;
            } else if n == 0 {
                lost += 1;
            }
        }
        // Nothing beyond `next` but one in-flight id may have arrived.
        for s in next..(next + 2).min(MAX_SEQ) {
            let n = st.delivered(p, s).load(SeqCst);
            dup += (n > 1) as u64;
            maybe_got += n as u64;
        }
    }
    let failures = st.failures().load(SeqCst);
    println!(
        "chaos: {} kills survived ({kills_p} producers, {kills_c} consumers) in {:.1} s; \
         {verified} messages verified exactly once, {lost} lost with killed consumers, \
         {maybe_got} of {} in flight at a producer's death delivered; {dup} duplicates, \
         {failures} damaged or out of order",
        kills_p + kills_c,
        t0.elapsed().as_secs_f64(),
        maybe.iter().map(Vec::len).sum::<usize>(),
    );
    let diag = q.diagnostics();
    let _ = Queue::unlink(&qname);
    let _ = std::fs::remove_file(&spath);
    assert_eq!(dup, 0, "duplicates");
    assert_eq!(failures, 0, "damaged or reordered messages");
    assert!(
        lost <= kills_c,
        "{lost} confirmed messages lost, more than the {kills_c} consumer kills explain"
    );
    assert!(verified > 0, "nothing was delivered");
    assert_eq!(diag.queued(), 0, "all drained: {diag}");
}
