//! Queues shared between real processes. Children are this test binary run
//! again with `SHMQ_ROLE` set (see `child_entry`), so they are separate
//! processes with nothing in common with the parent but what shmq passes.
//!
//! Every message carries its producer id, its per-producer sequence number
//! and a payload derived from both, so a consumer checks content and
//! per-producer FIFO order, and the parent checks exactly-once delivery.

#![cfg(not(loom))]

mod common;

use common::{
    child, env_parse, env_var, is_message, message, message_id, role, splitmix, unique_name,
    wait_ok, ID_LEN,
};

use shmq::{OpenError, Queue, RecvError, SendError};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

const QUEUE_VAR: &str = "SHMQ_TEST_QUEUE";
const LIMIT: Duration = Duration::from_secs(120);

// ------------------------------------------------------------ messages

/// Length of message `seq` of producer `prod`: between the identity and
/// `max`, varying pseudo-randomly, with a few at exactly `max`.
fn msg_len(prod: u8, seq: u64, max: usize) -> usize {
    let h = splitmix((prod as u64) << 40 | seq);
    if h % 97 == 0 {
        max
    } else {
        ID_LEN + (h as usize >> 8) % (max - ID_LEN + 1)
    }
}

/// Checks a message's length and content; returns (producer, seq).
fn check_msg(m: &[u8], max: usize, scratch: &mut Vec<u8>) -> (u8, u64) {
    let (prod, seq) = message_id(m).unwrap_or_else(|| panic!("short message: {} bytes", m.len()));
    assert!(
        m.len() == msg_len(prod, seq, max) && is_message(m, prod, seq, scratch),
        "content of message {prod}/{seq} is wrong"
    );
    (prod, seq)
}

// ------------------------------------------------------------ children

fn tmpfile(tag: &str) -> PathBuf {
    std::env::temp_dir().join(unique_name(tag))
}

/// Child processes start here. Ignored so it never runs as a test of its own.
#[test]
#[ignore = "helper: runs only as a child process of the other tests"]
fn child_entry() {
    let Some(role) = role() else {
        eprintln!("child_entry: not started as a child; nothing to do");
        return;
    };
    let q = Queue::from_env(QUEUE_VAR).expect("attach the queue passed by the parent");
    match role.as_str() {
        "producer" => {
            let (id, n) = (env_parse("SHMQ_ID").unwrap(), env_parse("SHMQ_N").unwrap());
            produce(&q, id, n);
        }
        "consumer" => consume(&q, Path::new(&env_var("SHMQ_OUT"))),
        "blocked_recv" => {
            let rx = q.receiver();
            assert_eq!(rx.recv().map(|_| ()), Err(RecvError::Closed));
        }
        "blocked_send" => {
            let tx = q.sender();
            tx.send(b"fills the queue").unwrap();
            assert_eq!(tx.send(b"blocks"), Err(SendError::Closed));
        }
        other => panic!("unknown role {other}"),
    }
}

fn produce(q: &Queue, id: u8, n: u64) {
    let tx = q.sender();
    let max = q.ring_message_size();
    let mut buf = Vec::with_capacity(max);
    for seq in 0..n {
        message(id, seq, msg_len(id, seq, max), &mut buf);
        // A mix of the three ways to send.
        match seq % 3 {
            0 => tx.send(&buf).unwrap(),
            1 => loop {
                match tx.try_send(&buf) {
                    Ok(()) => break,
                    Err(SendError::Full) => std::thread::yield_now(),
                    Err(e) => panic!("{e}"),
                }
            },
            _ => loop {
                match tx.send_timeout(&buf, Duration::from_millis(1)) {
                    Ok(()) => break,
                    Err(SendError::Timeout) => {}
                    Err(e) => panic!("{e}"),
                }
            },
        }
    }
}

/// Receives until Closed, checking content and per-producer order; writes
/// (producer, seq) pairs to `out` for the parent's exactly-once check.
fn consume(q: &Queue, out: &Path) {
    let rx = q.receiver();
    let max = q.ring_message_size();
    let mut scratch = Vec::new();
    let mut last: HashMap<u8, u64> = HashMap::new();
    let mut log = Vec::new();
    let mut i = 0u64;
    loop {
        i += 1;
        let got = match i % 3 {
            0 => rx.try_recv(),
            1 => rx.recv_timeout(Duration::from_millis(1)),
            _ => rx.recv(),
        };
        let m = match got {
            Ok(m) => m,
            Err(RecvError::Empty | RecvError::Timeout) => continue,
            Err(RecvError::Closed | RecvError::Disconnected) => break,
            Err(e) => panic!("{e}"),
        };
        assert!(rx.is_in_shared_memory(m.as_ptr()), "received in place");
        let (p, s) = check_msg(&m, max, &mut scratch);
        drop(m);
        if let Some(&prev) = last.get(&p) {
            assert!(s > prev, "producer {p}: seq {s} after {prev}");
        }
        last.insert(p, s);
        log.extend_from_slice(&(p as u32).to_le_bytes());
        log.extend_from_slice(&s.to_le_bytes());
    }
    std::fs::File::create(out).unwrap().write_all(&log).unwrap();
}

/// Reads the consumers' logs and checks every (producer, seq) arrived once.
fn verify_exactly_once(outs: &[PathBuf], producers: u32, n: u64) {
    let mut seen = vec![vec![false; n as usize]; producers as usize];
    for o in outs {
        let log = std::fs::read(o).unwrap();
        std::fs::remove_file(o).unwrap();
        for rec in log.chunks_exact(12) {
            let p = u32::from_le_bytes(rec[0..4].try_into().unwrap()) as usize;
            let s = u64::from_le_bytes(rec[4..12].try_into().unwrap()) as usize;
            assert!(!seen[p][s], "message {p}/{s} delivered twice");
            seen[p][s] = true;
        }
    }
    for (p, v) in seen.iter().enumerate() {
        let missing = v.iter().filter(|&&b| !b).count();
        assert_eq!(missing, 0, "producer {p}: {missing} messages lost");
    }
}

/// P producer processes and C consumer processes on one anonymous queue.
fn run_mpmc(p: u32, c: u32, n: u64, capacity: usize, maxsize: usize) {
    let q = Queue::builder()
        .capacity_bytes(capacity)
        .maxsize(maxsize)
        .create()
        .unwrap();
    let outs: Vec<PathBuf> = (0..c).map(|i| tmpfile(&format!("{p}x{c}-c{i}"))).collect();
    let consumers: Vec<Child> = outs
        .iter()
        .map(|o| {
            let mut cmd = child("consumer");
            cmd.env("SHMQ_OUT", o);
            q.inherit_into(&mut cmd, QUEUE_VAR);
            cmd.spawn().unwrap()
        })
        .collect();
    let producers: Vec<Child> = (0..p)
        .map(|id| {
            let mut cmd = child("producer");
            cmd.env("SHMQ_ID", id.to_string())
                .env("SHMQ_N", n.to_string());
            q.inherit_into(&mut cmd, QUEUE_VAR);
            cmd.spawn().unwrap()
        })
        .collect();
    for (i, pr) in producers.into_iter().enumerate() {
        wait_ok(pr, LIMIT, &format!("producer {i}"));
    }
    q.close(); // no sentinel: consumers drain and stop on Closed
    for (i, co) in consumers.into_iter().enumerate() {
        wait_ok(co, LIMIT, &format!("consumer {i}"));
    }
    verify_exactly_once(&outs, p, n);
    assert!(q.is_empty());
}

#[test]
fn one_producer_one_consumer_process_with_wraparound() {
    // 16 KiB ring, messages up to 8 KiB: wraps and pads constantly.
    run_mpmc(1, 1, 30_000, 16 << 10, 0);
}

#[test]
fn four_producers_four_consumers_processes() {
    run_mpmc(4, 4, 10_000, 32 << 10, 0);
}

#[test]
fn four_by_four_with_maxsize() {
    run_mpmc(4, 4, 5_000, 64 << 10, 3);
}

#[test]
fn unrelated_process_opens_a_named_queue() {
    let name = unique_name("named");
    let q = Queue::builder()
        .capacity_bytes(8192)
        .create_named(&name)
        .unwrap();
    assert_eq!(q.name(), Some(&*format!("/{name}")));
    let out = tmpfile("named");
    // The child is given only the name, as an unrelated program would be.
    let mut cmd = child("consumer");
    cmd.env(QUEUE_VAR, format!("name:{name}"))
        .env("SHMQ_OUT", &out);
    let consumer = cmd.spawn().unwrap();
    produce(&q, 0, 5_000);
    q.close();
    wait_ok(consumer, LIMIT, "named-queue consumer");
    verify_exactly_once(&[out], 1, 5_000);
    Queue::unlink(&name).unwrap();
    assert!(matches!(Queue::open(&name), Err(OpenError::NotFound(_))));
    assert!(matches!(Queue::unlink(&name), Err(OpenError::NotFound(_))));
}

#[test]
fn create_named_refuses_an_existing_name() {
    let name = unique_name("excl");
    let _q = Queue::builder().create_named(&name).unwrap();
    let again = Queue::builder().create_named(&name);
    assert!(
        matches!(again, Err(OpenError::AlreadyExists(_))),
        "{again:?}"
    );
    let mode = std::fs::metadata(format!("/dev/shm/{name}")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );
    Queue::unlink(&name).unwrap();
}

#[test]
fn forked_child_uses_the_inherited_mapping() {
    use nix::unistd::{fork, ForkResult};
    let q = Queue::builder().capacity_bytes(4096).create().unwrap();
    let tx = q.sender();
    // SAFETY: the child only sends on an existing handle (atomics, memcpy,
    // futex syscalls: no locks, no allocation) and leaves with _exit.
    match unsafe { fork() }.unwrap() {
        ForkResult::Child => {
            let mut ok = true;
            for i in 0u32..1000 {
                ok &= tx.send(&i.to_le_bytes()).is_ok();
            }
            tx.close();
            // SAFETY: _exit ends the child without running the parent's
            // atexit handlers or destructors twice.
            unsafe { nix::libc::_exit(if ok { 0 } else { 1 }) }
        }
        ForkResult::Parent { child } => {
            let rx = q.receiver();
            for i in 0u32..1000 {
                let m = rx.recv_timeout(Duration::from_secs(30)).unwrap();
                assert_eq!(&*m, &i.to_le_bytes());
            }
            assert_eq!(rx.recv().map(|_| ()), Err(RecvError::Closed));
            let st = nix::sys::wait::waitpid(child, None).unwrap();
            assert_eq!(st, nix::sys::wait::WaitStatus::Exited(child, 0));
        }
    }
}

#[test]
fn close_wakes_processes_blocked_in_send_and_recv() {
    let empty = Queue::builder().create().unwrap();
    let full = Queue::builder().maxsize(1).create().unwrap();
    let mut r = child("blocked_recv");
    empty.inherit_into(&mut r, QUEUE_VAR);
    let r = r.spawn().unwrap();
    let mut s = child("blocked_send");
    full.inherit_into(&mut s, QUEUE_VAR);
    let s = s.spawn().unwrap();
    // Let both reach their blocking call (the first message fills `full`).
    let t0 = Instant::now();
    while full.is_empty() && t0.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(200));
    empty.close();
    full.close();
    wait_ok(r, LIMIT, "receiver blocked on an empty queue");
    wait_ok(s, LIMIT, "sender blocked on a full queue");
    assert_eq!(&*full.receiver().recv().unwrap(), b"fills the queue");
}

#[test]
fn timeouts_across_processes_leave_the_queue_intact() {
    let q = Queue::builder().maxsize(1).create().unwrap();
    let (tx, rx) = (q.sender(), q.receiver());
    let d = Duration::from_millis(20);
    assert_eq!(rx.recv_timeout(d).unwrap_err(), RecvError::Timeout);
    tx.send(b"a").unwrap();
    assert_eq!(tx.send_timeout(b"b", d), Err(SendError::Timeout));
    assert_eq!(tx.try_send(b"b"), Err(SendError::Full));
    assert_eq!(&*rx.recv_timeout(d).unwrap(), b"a");
    assert_eq!(rx.try_recv().unwrap_err(), RecvError::Empty);
}

#[test]
fn too_large_fails_at_once_and_writes_nothing() {
    let q = Queue::builder()
        .capacity_bytes(4096)
        .overflow_bytes(0)
        .create()
        .unwrap();
    let tx = q.sender();
    assert_eq!(q.max_message_size(), 2048);
    tx.send(&[7; 2048]).unwrap();
    let big = vec![0; 2049];
    assert_eq!(
        tx.send(&big),
        Err(SendError::TooLarge {
            len: 2049,
            max: 2048
        })
    );
    assert_eq!(q.len(), 1);
    assert_eq!(q.receiver().recv().unwrap().len(), 2048);
}

// ------------------------------------------------------------ bad segments

fn shm_file(name: &str, bytes: &[u8]) -> String {
    std::fs::write(format!("/dev/shm/{name}"), bytes).unwrap();
    name.to_owned()
}

#[test]
fn attaching_to_what_is_not_a_queue_fails_cleanly() {
    let garbage = shm_file(&unique_name("garbage"), &[0xAB; 8192]);
    assert!(matches!(
        Queue::open(&garbage),
        Err(OpenError::NotAQueue {
            found: 0xABAB_ABAB_ABAB_ABAB
        })
    ));
    let tiny = shm_file(&unique_name("tiny"), b"hi");
    assert!(matches!(
        Queue::open(&tiny),
        Err(OpenError::NotAQueue { .. })
    ));
    let empty = shm_file(&unique_name("empty"), b"");
    assert!(matches!(
        Queue::open(&empty),
        Err(OpenError::NotInitialized)
    ));
    for n in [garbage, tiny, empty] {
        Queue::unlink(&n).unwrap();
    }
}

#[test]
fn attaching_to_a_damaged_queue_fails_cleanly() {
    let name = unique_name("damaged");
    let path = format!("/dev/shm/{name}");
    // A one-unit overflow area, so that the whole file can be read (the
    // default maps the machine's memory, sparse).
    let q = Queue::builder()
        .capacity_bytes(4096)
        .overflow_bytes(1 << 16)
        .create_named(&name)
        .unwrap();
    q.sender().send(b"still intact").unwrap();
    let good = std::fs::read(&path).unwrap();
    // Unmapped before the file is damaged: a mapping of a file cut short
    // faults (SIGBUS) when touched, and a fork on another test thread
    // touches every live handle's lane (the atfork handler).
    drop(q);

    let version = u32::from_le_bytes(good[8..12].try_into().unwrap());
    let mut v = good.clone();
    v[8..12].copy_from_slice(&99u32.to_le_bytes());
    std::fs::write(&path, &v).unwrap();
    assert!(matches!(
        Queue::open(&name),
        Err(OpenError::VersionMismatch {
            found: 99,
            expected
        }) if expected == version
    ));

    let mut v = good.clone();
    v[16..24].copy_from_slice(&(1u64 << 40).to_le_bytes()); // capacity
    std::fs::write(&path, &v).unwrap();
    assert!(matches!(Queue::open(&name), Err(OpenError::Corrupted(_))));

    std::fs::write(&path, &good[..good.len() / 2]).unwrap();
    assert!(matches!(
        Queue::open(&name),
        Err(OpenError::Truncated { .. })
    ));
    std::fs::write(&path, &good[..100]).unwrap();
    assert!(matches!(
        Queue::open(&name),
        Err(OpenError::Truncated { .. })
    ));

    // Restored, it opens and the message is there.
    std::fs::write(&path, &good).unwrap();
    let q = Queue::open(&name).unwrap();
    assert_eq!(&*q.receiver().recv().unwrap(), b"still intact");
    Queue::unlink(&name).unwrap();
}

#[test]
fn from_env_rejects_what_it_cannot_use() {
    let var = "SHMQ_TEST_BAD_ENV";
    // SAFETY (edition 2021: set_var is safe; still, no other test reads it).
    std::env::set_var(var, "nonsense");
    assert!(matches!(
        Queue::from_env(var),
        Err(OpenError::InvalidConfig(_))
    ));
    std::env::set_var(var, "fd:987654");
    assert!(matches!(Queue::from_env(var), Err(OpenError::Os { .. })));
    // stdin is open but is not a sealed memfd.
    std::env::set_var(var, "fd:0");
    assert!(matches!(
        Queue::from_env(var),
        Err(OpenError::NotSealed { .. })
    ));
    assert!(matches!(
        Queue::from_env("SHMQ_TEST_UNSET_VAR"),
        Err(OpenError::InvalidConfig(_))
    ));
    std::env::set_var(var, "name:../etc/passwd");
    assert!(matches!(
        Queue::from_env(var),
        Err(OpenError::InvalidName { .. })
    ));
}
