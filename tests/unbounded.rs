//! Unbounded queues: `send` never waits for room, the backlog lives in the
//! segment's overflow area in blocks that come and go with it, a producer
//! may die the moment `send` returns, and memory and byte bounds are
//! errors or back-pressure, never a loss. Each test fails on a queue that
//! blocks for room, loses or duplicates a message, keeps its memory, or
//! ignores its bound.

mod common;

use common::{
    allocated, child, die, env_var, is_message, message, message_id, role, scan_for, unique_name,
    wait,
};
use shmq::{Queue, RecvError, SendError};
use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

/// Child processes: `SHMQ_ROLE` names what to do, `SHMQ_NAME` the queue.
#[test]
#[ignore = "run as a child process by the tests below"]
fn child_entry() {
    let Some(role) = role() else {
        return;
    };
    let q = Queue::open(&env_var("SHMQ_NAME")).unwrap();
    let tx = q.sender();
    let mut buf = Vec::new();
    match role.as_str() {
        // The classic tutorial's producer: 20,000 small messages and a
        // 10 MiB one put before anyone reads, then SIGKILL the moment the
        // last send returns (no flush, no feeder thread to wait for).
        "fill_and_die" => {
            for seq in 0..20_000 {
                message(1, seq, 8 + (seq as usize % 200), &mut buf);
                tx.try_send(&buf).unwrap();
            }
            message(1, 20_000, 10 << 20, &mut buf);
            tx.try_send(&buf).unwrap();
            die();
        }
        other => panic!("unknown role {other}"),
    }
}

/// The tutorial program across processes: everything the producer sent
/// before it was killed arrives, exactly once, in order.
#[test]
fn backlog_outlives_its_producer() {
    let n = unique_name("unb-outlive");
    let q = Queue::builder()
        .capacity_bytes(64 << 10)
        .unbounded()
        .create_named(&n)
        .unwrap();
    let c = child("fill_and_die").env("SHMQ_NAME", &n).spawn().unwrap();
    let st = wait(c, LIMIT, "fill_and_die");
    assert_eq!(st.signal(), Some(9), "{st:?}");
    assert_eq!(q.len(), 20_001);
    let rx = q.receiver();
    let mut scratch = Vec::new();
    for seq in 0..=20_000u64 {
        let m = rx.try_recv().unwrap();
        assert!(is_message(&m, 1, seq, &mut scratch), "message {seq}");
    }
    assert_eq!(rx.try_recv().unwrap_err(), RecvError::Empty);
    Queue::unlink(&n).unwrap();
}

/// Memory follows the backlog: 64 MiB of small messages take about that
/// much, and once received the blocks go back (the last ones kept warm
/// until an idle scan), within twice an idle queue's memory.
#[test]
fn memory_follows_a_backlog_of_small_messages() {
    let n = unique_name("unb-memory");
    let q = Queue::builder()
        .capacity_bytes(1 << 20)
        .unbounded()
        .create_named(&n)
        .unwrap();
    let (tx, rx) = (q.sender(), q.receiver());
    // Idle, as a queue that has been used is: one block, where the
    // cursors stand (as a bounded queue keeps its ring).
    tx.send(b"first").unwrap();
    drop(rx.recv().unwrap());
    let idle = allocated(&n);
    let msg = [7u8; 1000];
    let count = 64 << 10; // 64 Ki records of 1 KiB: 64 MiB
    for _ in 0..count {
        tx.try_send(&msg).unwrap();
    }
    let peak = allocated(&n);
    assert!(peak >= 64 << 20, "the backlog is in the segment: {peak}");
    for _ in 0..count {
        assert_eq!(rx.try_recv().unwrap().len(), 1000);
    }
    let drained = allocated(&n);
    scan_for(&q, 400);
    let after = allocated(&n);
    eprintln!(
        "segment: idle {idle} B, 64 MiB queued {peak} B, drained {drained} B, idle again {after} B"
    );
    assert!(after <= 2 * idle, "idle again: {after} B, idle {idle} B");
    assert!(q.diagnostics().overflow_units <= 18, "{}", q.diagnostics());
    Queue::unlink(&n).unwrap();
}

/// Several producers and consumers, threads, through many blocks of a
/// small ring: every message exactly once, in order per producer as each
/// consumer sees them.
#[test]
fn many_producers_and_consumers_cross_blocks() {
    let q = Queue::builder()
        .capacity_bytes(4096)
        .unbounded()
        .create()
        .unwrap();
    const PRODUCERS: u8 = 3;
    const PER: u64 = 20_000;
    let seen = std::thread::scope(|s| {
        for p in 0..PRODUCERS {
            let tx = q.sender();
            s.spawn(move || {
                let mut buf = Vec::new();
                for seq in 0..PER {
                    // Mostly small; now and then past half a block.
                    let len = if seq % 997 == 0 {
                        5000
                    } else {
                        9 + (seq as usize * 7) % 300
                    };
                    message(p, seq, len, &mut buf);
                    tx.send(&buf).unwrap();
                }
            });
        }
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let rx = q.receiver();
                s.spawn(move || {
                    let mut got = Vec::new();
                    let mut scratch = Vec::new();
                    let mut last: HashMap<u8, u64> = HashMap::new();
                    while let Ok(m) = rx.recv_timeout(Duration::from_secs(5)) {
                        let (p, seq) = message_id(&m).expect("a whole message");
                        assert!(is_message(&m, p, seq, &mut scratch), "damaged {p}/{seq}");
                        if let Some(&prev) = last.get(&p) {
                            assert!(seq > prev, "producer {p}: {seq} after {prev}");
                        }
                        last.insert(p, seq);
                        got.push((p, seq));
                    }
                    got
                })
            })
            .collect();
        consumers
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect::<Vec<_>>()
    });
    let mut count: HashMap<(u8, u64), u32> = HashMap::new();
    for k in seen {
        *count.entry(k).or_default() += 1;
    }
    assert_eq!(
        count.len(),
        PRODUCERS as usize * PER as usize,
        "every message"
    );
    assert!(count.values().all(|&c| c == 1), "exactly once");
    // Drained: only the block the cursors stand in (one unit) is left.
    assert!(q.diagnostics().overflow_units <= 1, "{}", q.diagnostics());
}

/// A byte bound is back-pressure as `maxsize` is: `try_send` fails with
/// `Full` at the bound, a blocking send times out, and room comes back as
/// messages are received. An unbounded queue's `maxsize` still counts.
#[test]
fn byte_and_count_bounds_still_hold() {
    let q = Queue::builder()
        .capacity_bytes(4096)
        .max_bytes(16 << 10)
        .create()
        .unwrap();
    let (tx, rx) = (q.sender(), q.receiver());
    let mut sent = 0;
    while tx.try_send(&[1u8; 100]).is_ok() {
        sent += 1;
    }
    assert_eq!(sent, 16 * 1024 / 128, "records of 128 bytes");
    assert_eq!(tx.try_send(&[1u8; 100]), Err(SendError::Full));
    assert_eq!(
        tx.send_timeout(&[1u8; 100], Duration::from_millis(50)),
        Err(SendError::Timeout)
    );
    drop(rx.recv().unwrap());
    tx.try_send(&[1u8; 100]).unwrap();

    let counted = Queue::builder().unbounded().maxsize(3).create().unwrap();
    let tx = counted.sender();
    for _ in 0..3 {
        tx.try_send(b"x").unwrap();
    }
    assert_eq!(tx.try_send(b"x"), Err(SendError::Full));
    assert_eq!(counted.maxsize(), Some(3));
}

/// When the overflow area cannot hold another block the send fails with
/// `OutOfMemory`, having claimed nothing: every message sent before is
/// received, and sending works again once they are.
#[test]
fn a_full_area_is_an_error_that_loses_nothing() {
    let q = Queue::builder()
        .capacity_bytes(4096)
        .overflow_bytes(4 << 16) // four units: four blocks
        .unbounded()
        .create()
        .unwrap();
    let (tx, rx) = (q.sender(), q.receiver());
    let mut sent = 0u64;
    let mut buf = Vec::new();
    let err = loop {
        message(9, sent, 100, &mut buf);
        match tx.try_send(&buf) {
            Ok(()) => sent += 1,
            Err(e) => break e,
        }
    };
    assert!(
        matches!(
            err,
            SendError::OutOfMemory {
                area_full: true,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        sent >= 3 * 4096 / 128,
        "three blocks' worth at least: {sent}"
    );
    let mut scratch = Vec::new();
    for seq in 0..sent {
        let m = rx.try_recv().unwrap();
        assert!(is_message(&m, 9, seq, &mut scratch), "message {seq}");
    }
    assert_eq!(rx.try_recv().unwrap_err(), RecvError::Empty);
    tx.try_send(b"again").unwrap();
    assert_eq!(&*rx.try_recv().unwrap(), b"again");
}
