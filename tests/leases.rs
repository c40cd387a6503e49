//! Leased receives (`Receiver::recv_leased`): a message whose holder gives
//! it back, or dies before it acknowledged it, goes back to the queue. The
//! kill tests fail on a queue that counts a dead holder's message as
//! delivered (as a plain receive does): the message never arrives.

mod common;

use common::{child, die, env_var, role, unique_name, wait};
use shmq::{Queue, RecvError};
use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(60);
/// Larger than half the test queues' ring: sent through the overflow area.
const LARGE: usize = 10_000;

/// Child processes: `SHMQ_ROLE` names what to do, `SHMQ_NAME` the queue.
#[test]
#[ignore = "run as a child process by the tests below"]
fn child_entry() {
    let Some(role) = role() else {
        return;
    };
    let q = Queue::open(&env_var("SHMQ_NAME")).unwrap();
    match role.as_str() {
        // Leases two messages (a small one and one in the overflow area)
        // and dies holding both.
        "lease_two_and_die" => {
            let rx = q.receiver();
            let a = rx.recv_leased().unwrap();
            let b = rx.recv_leased().unwrap();
            assert_eq!((a.len(), b.len()), (8, LARGE));
            die();
        }
        // Forwards from this queue to `SHMQ_OUT` for ever: lease, send a
        // copy, acknowledge. Killed by the parent at random moments.
        "forward" => {
            let out = Queue::open(&env_var("SHMQ_OUT")).unwrap().sender();
            let rx = q.receiver();
            loop {
                let m = rx.recv_leased().unwrap();
                out.send(&m).unwrap();
                m.ack();
            }
        }
        other => panic!("unknown role {other}"),
    }
}

fn numbered(i: u64, len: usize) -> Vec<u8> {
    let mut m = vec![(i % 251) as u8; len];
    m[..8].copy_from_slice(&i.to_le_bytes());
    m
}

fn number(m: &[u8]) -> u64 {
    let i = u64::from_le_bytes(m[..8].try_into().unwrap());
    assert!(
        *m == numbered(i, m.len()),
        "message {i} damaged: {} bytes, {:?}",
        m.len(),
        &m[..m.len().min(24)]
    );
    i
}

/// A receiver killed holding two leased messages (one in the ring, one in
/// the overflow area): both go back to the queue, and a live receiver
/// gets all three messages, each once, with the large one intact.
#[test]
fn messages_leased_by_a_killed_process_go_back_to_the_queue() {
    let n = unique_name("leasekill");
    let q = Queue::builder()
        .capacity_bytes(4096)
        .create_named(&n)
        .unwrap();
    let tx = q.sender();
    tx.send(&numbered(0, 8)).unwrap();
    tx.send(&numbered(1, LARGE)).unwrap();
    tx.send(&numbered(2, 8)).unwrap();
    let c = child("lease_two_and_die")
        .env("SHMQ_NAME", &n)
        .spawn()
        .unwrap();
    let st = wait(c, LIMIT, "lease_two_and_die");
    assert_eq!(st.signal(), Some(9), "{st:?}");
    let rx = q.receiver();
    let mut got = Vec::new();
    for _ in 0..3 {
        let m = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("after {got:?}: {e} ({})", q.diagnostics()));
        got.push(number(&m));
    }
    got.sort_unstable();
    assert_eq!(got, [0, 1, 2]);
    assert_eq!(rx.try_recv().unwrap_err(), RecvError::Empty);
    // The room came back: `head` caught up with `tail`, and the large
    // message's units in the overflow area are free.
    let d = q.diagnostics();
    assert_eq!((d.head_pos, d.overflow_units), (d.tail_pos, 0), "{d}");
    Queue::unlink(&n).unwrap();
}

/// A forwarder (lease from A, send to B, acknowledge) SIGKILLed at random
/// moments five times while 3,000 messages pass: every message reaches B
/// (at least once; a message is sent twice only when the kill fell between
/// the send to B and the acknowledgement, so at most once per kill).
#[test]
fn a_forwarder_killed_between_receive_and_ack_loses_nothing() {
    let (na, nb) = (unique_name("fwd-a"), unique_name("fwd-b"));
    let a = Queue::builder()
        .capacity_bytes(1 << 16)
        .create_named(&na)
        .unwrap();
    let b = Queue::builder()
        .capacity_bytes(1 << 16)
        .create_named(&nb)
        .unwrap();
    let total = 3_000u64;
    let spawn = || {
        Forwarder(Some(
            child("forward")
                .env("SHMQ_NAME", &na)
                .env("SHMQ_OUT", &nb)
                .spawn()
                .unwrap(),
        ))
    };
    let tx = a.sender();
    let rx = b.receiver();
    let mut seen: HashMap<u64, u32> = HashMap::new();
    let mut fwd = spawn();
    let mut kills = 0;
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let t0 = Instant::now();
    let mut sent = 0;
    while seen.len() < total as usize {
        assert!(t0.elapsed() < LIMIT, "{} of {total} arrived", seen.len());
        if sent < total {
            let len = if sent % 97 == 0 { LARGE * 4 } else { 64 };
            if tx.try_send(&numbered(sent, len)).is_ok() {
                sent += 1;
            }
        }
        while let Ok(m) = rx.try_recv() {
            *seen.entry(number(&m)).or_default() += 1;
        }
        rng = common::splitmix(rng);
        if kills < 5 && sent > (kills + 1) * total / 6 && rng % 7 == 0 {
            let c = fwd.0.take().unwrap();
            let pid = nix::unistd::Pid::from_raw(c.id() as i32);
            nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
            wait(c, LIMIT, "killed forwarder");
            kills += 1;
            fwd = spawn();
        }
        if sent == total {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    drop(fwd);
    assert_eq!(kills, 5);
    let twice = seen.values().filter(|&&k| k > 1).count();
    assert!(
        seen.values().all(|&k| k <= 2),
        "a message forwarded 3 times"
    );
    assert!(twice <= kills as usize, "{twice} repeats in {kills} kills");
    assert_eq!(seen.len() as u64, total);
    Queue::unlink(&na).unwrap();
    Queue::unlink(&nb).unwrap();
}

/// A forwarder child, killed when the test ends (also when it fails).
struct Forwarder(Option<std::process::Child>);

impl Drop for Forwarder {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// In one process: a lease dropped without `ack` puts the message back
/// ahead of those still queued, for any kind of receive; `ack` ends it; a
/// large message put back is read intact when taken again.
#[test]
fn a_lease_given_back_is_received_next() {
    let q = Queue::builder().capacity_bytes(4096).create().unwrap();
    let (tx, rx) = (q.sender(), q.receiver());
    for i in 0..3 {
        tx.send(&numbered(i, if i == 0 { LARGE } else { 16 }))
            .unwrap();
    }
    let first = rx.recv_leased().unwrap();
    assert_eq!(number(&first), 0);
    let second = rx.try_recv_leased().unwrap();
    assert_eq!(number(&second), 1);
    second.give_back();
    drop(first);
    // Both back, ahead of message 2; a plain receive takes them too.
    let mut again = vec![number(&rx.recv().unwrap())];
    let l = rx.recv_leased_timeout(Duration::from_secs(5)).unwrap();
    again.push(number(&l));
    l.ack();
    again.sort_unstable();
    assert_eq!(again, [0, 1]);
    assert_eq!(number(&rx.recv().unwrap()), 2);
    assert_eq!(rx.try_recv_leased().unwrap_err(), RecvError::Empty);
}
