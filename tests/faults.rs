//! Dead peers, one process test per case of issue 6: a child process dies
//! (SIGKILL, or SIGSEGV in the middle of a send) at a chosen step, and the
//! survivors must carry on. Each test fails (a timeout or a wrong count)
//! on a queue that cannot recover from that death.

mod common;

use common::{child, die, env_var, role, unique_name, wait};
use shmq::{Queue, RecvError, SendError};
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(60);

/// Child processes: `SHMQ_ROLE` names what to do, `SHMQ_NAME` the queue.
#[test]
#[ignore = "run as a child process by the tests below"]
fn child_entry() {
    let Some(role) = role() else {
        return;
    };
    let q = Queue::open(&env_var("SHMQ_NAME")).unwrap();
    match role.as_str() {
        // Three committed messages, then a send whose source ends in an
        // unreadable page: the copy into the ring faults after the claim,
        // and the process dies of SIGSEGV holding an uncommitted claim.
        "crash_mid_write" => {
            let tx = q.sender();
            for i in 0..3u8 {
                tx.send(&[b'c', i]).unwrap();
            }
            use nix::sys::mman::{mmap_anonymous, mprotect, MapFlags, ProtFlags};
            let page = 4096;
            let len = std::num::NonZeroUsize::new(2 * page).unwrap();
            // SAFETY: a fresh anonymous private mapping.
            let p = unsafe {
                mmap_anonymous(
                    None,
                    len,
                    ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                    MapFlags::MAP_PRIVATE,
                )
            }
            .unwrap();
            // SAFETY: the second page of our own mapping.
            unsafe {
                mprotect(
                    std::ptr::NonNull::new_unchecked(p.as_ptr().cast::<u8>().add(page).cast()),
                    page,
                    ProtFlags::PROT_NONE,
                )
            }
            .unwrap();
            // SAFETY: deliberately not: the slice's second half cannot be
            // read. This process exists to die in the middle of that read.
            let poisoned = unsafe { std::slice::from_raw_parts(p.as_ptr().cast::<u8>(), 2 * page) };
            let _ = tx.send(poisoned);
            unreachable!("the send above faults");
        }
        // Takes one message and dies holding its guard.
        "hold_and_die" => {
            let rx = q.receiver();
            let g = rx.recv().unwrap();
            assert_eq!(g.len(), 1000);
            die();
        }
        // Sleeps in recv (no spinning) until killed.
        "sleep_in_recv" => {
            let mut rx = q.receiver();
            rx.set_wait_strategy(shmq::WaitStrategy::Spin(0));
            let _ = rx.recv();
            unreachable!("killed while asleep");
        }
        // Sends three messages and dies without dropping or closing.
        "send_and_die" => {
            let tx = q.sender();
            for i in 0..3u8 {
                tx.send(&[b's', i]).unwrap();
            }
            die();
        }
        // Becomes the only receiver, then dies.
        "recv_and_die" => {
            let _rx = q.receiver();
            die();
        }
        other => panic!("unknown role {other}"),
    }
}

fn run(role: &str, name: &str) -> std::process::ExitStatus {
    let c = child(role).env("SHMQ_NAME", name).spawn().unwrap();
    wait(c, LIMIT, role)
}

/// Case 1: a producer dies between claiming room and committing. The
/// messages it committed before, and a live producer's message claimed
/// after the dead claim, all arrive; the dead claim is skipped.
#[test]
fn producer_dying_mid_write_does_not_stall_consumers() {
    let n = unique_name("midwrite");
    let q = Queue::builder()
        .capacity_bytes(1 << 16)
        .create_named(&n)
        .unwrap();
    let rx = q.receiver();
    let st = run("crash_mid_write", &n);
    assert_eq!(st.signal(), Some(libc_sigsegv()), "{st:?}");
    let tx = q.sender();
    tx.send(b"after").unwrap();
    let t0 = Instant::now();
    let mut got = Vec::new();
    for _ in 0..4 {
        let m = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("stuck behind the dead claim");
        got.push(m.to_vec());
    }
    let took = t0.elapsed();
    assert_eq!(got, [&b"c\0"[..], b"c\x01", b"c\x02", b"after"]);
    assert_eq!(q.len(), 0, "the dead claim was passed: {}", q.diagnostics());
    eprintln!("dead claim skipped after {took:?}");
    Queue::unlink(&n).unwrap();
}

fn libc_sigsegv() -> i32 {
    nix::sys::signal::Signal::SIGSEGV as i32
}

/// Case 2: a consumer dies holding a message. Its room is reclaimed (the
/// message counts as delivered), so the producer is not blocked for good.
#[test]
fn consumer_dying_with_a_guard_gives_its_room_back() {
    let n = unique_name("hold");
    let q = Queue::builder()
        .capacity_bytes(4096)
        .create_named(&n)
        .unwrap();
    let tx = q.sender();
    tx.send(&[0; 1000]).unwrap();
    let st = run("hold_and_die", &n);
    assert_eq!(st.signal(), Some(9), "{st:?}");
    // Four more of 1000 bytes (1024 in the ring each): the fourth needs the
    // dead consumer's room.
    for i in 1..5u8 {
        tx.send_timeout(&[i; 1000], Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("message {i}: {e} ({})", q.diagnostics()));
        if i == 3 {
            // Make room for the fourth by taking the first three.
            let rx = q.receiver();
            for k in 1..4u8 {
                assert_eq!(rx.recv().unwrap()[0], k);
            }
        }
    }
    assert_eq!(q.receiver().recv().unwrap()[0], 4);
    Queue::unlink(&n).unwrap();
}

/// Case 3: a process killed while asleep in `recv` (counted as a sleeper)
/// leaves no trace: the next send takes it off the count, and the sends
/// after that make no futex call.
#[test]
fn process_killed_asleep_is_uncounted_by_the_next_wake() {
    let n = unique_name("sleeper");
    let q = Queue::builder().create_named(&n).unwrap();
    let c = child("sleep_in_recv").env("SHMQ_NAME", &n).spawn().unwrap();
    let t0 = Instant::now();
    while q.diagnostics().recv_waiters == 0 {
        assert!(t0.elapsed() < LIMIT, "the child never slept");
        std::thread::sleep(Duration::from_millis(2));
    }
    let pid = nix::unistd::Pid::from_raw(c.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    wait(c, LIMIT, "killed sleeper");
    let before = q.diagnostics();
    assert_eq!(before.recv_waiters, 1);
    let tx = q.sender();
    for i in 0..100u32 {
        tx.send(&i.to_le_bytes()).unwrap();
    }
    let after = q.diagnostics();
    assert_eq!(after.recv_waiters, 0, "{after}");
    assert!(
        after.recv_wakes.wrapping_sub(before.recv_wakes) <= 1,
        "a dead sleeper made every send wake: {before} -> {after}"
    );
    Queue::unlink(&n).unwrap();
}

/// Case 4: every sender died without closing: receivers drain what was
/// sent, then get `Disconnected` instead of blocking forever. (The parent
/// keeps only its receiver: a live `Queue` handle could still send.)
#[test]
fn receivers_learn_that_senders_died() {
    let n = unique_name("nosender");
    let rx = Queue::builder().create_named(&n).unwrap().receiver();
    assert_eq!(run("send_and_die", &n).signal(), Some(9));
    for i in 0..3u8 {
        assert_eq!(&*rx.recv().unwrap(), &[b's', i]);
    }
    let t0 = Instant::now();
    assert_eq!(rx.recv().unwrap_err(), RecvError::Disconnected);
    eprintln!("dead sender noticed after {:?}", t0.elapsed());
    Queue::unlink(&n).unwrap();
}

/// Case 4, the other way: the only receiver died and the queue is full: a
/// blocking send gets `Disconnected` instead of waiting forever.
#[test]
fn senders_learn_that_receivers_died() {
    let n = unique_name("noreceiver");
    let tx = Queue::builder()
        .maxsize(1)
        .create_named(&n)
        .unwrap()
        .sender();
    tx.send(b"fills it").unwrap();
    assert_eq!(run("recv_and_die", &n).signal(), Some(9));
    let t0 = Instant::now();
    assert_eq!(tx.send(b"no one").unwrap_err(), SendError::Disconnected);
    eprintln!("dead receiver noticed after {:?}", t0.elapsed());
    Queue::unlink(&n).unwrap();
}

/// Case 5: a named queue whose users all died is reported stale, still
/// opens, and can be removed; one with a live user is not stale.
#[test]
fn stale_named_queues_are_found_and_removed() {
    let n = unique_name("stale");
    drop(Queue::builder().create_named(&n).unwrap());
    assert_eq!(run("send_and_die", &n).signal(), Some(9));
    assert!(Queue::is_stale(&n).unwrap(), "its only user died");
    let rx = Queue::open(&n).unwrap().receiver();
    assert!(!Queue::is_stale(&n).unwrap(), "we hold a receiver");
    assert!(!Queue::unlink_if_stale(&n).unwrap());
    assert_eq!(rx.try_recv().unwrap()[1], 0, "a stale queue still works");
    drop(rx);
    assert!(Queue::unlink_if_stale(&n).unwrap());
    assert!(matches!(Queue::open(&n), Err(shmq::OpenError::NotFound(_))));
}
