//! Messages larger than half the ring, through the overflow area: across
//! processes, after the sender's death, with the receiver's death, and the
//! memory they take coming back. Each test fails on a queue that loses such
//! a message, keeps its memory, or cannot recover from a death mid-way.

mod common;

use common::{
    allocated, child, die, env_var, is_message, message, role, scan_for, unique_name, wait,
};
use shmq::{Queue, RecvError, SendError};
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);
/// The test queues' ring: 64 KiB, so anything above 32 KiB overflows.
const RING: usize = 1 << 16;
/// Sizes sent: just above the ring's largest record, a few MiB, 64 MiB.
const SIZES: [usize; 4] = [RING / 2 + 1, 3 << 20, 64 << 20, 100];

/// Child processes: `SHMQ_ROLE` names what to do, `SHMQ_NAME` the queue.
#[test]
#[ignore = "run as a child process by the tests below"]
fn child_entry() {
    let Some(role) = role() else {
        return;
    };
    let q = Queue::open(&env_var("SHMQ_NAME")).unwrap();
    let mut buf = Vec::new();
    match role.as_str() {
        // Sends every size, then dies the moment the last send returns.
        "send_and_die" => {
            let tx = q.sender();
            for (seq, &len) in SIZES.iter().enumerate() {
                message(1, seq as u64, len, &mut buf);
                tx.send(&buf).unwrap();
            }
            die();
        }
        // A send whose source ends in an unreadable page: the copy into
        // the overflow area faults half way, and the process dies of
        // SIGSEGV holding a run it has half written.
        "crash_mid_copy" => {
            use nix::sys::mman::{mmap_anonymous, mprotect, MapFlags, ProtFlags};
            let readable = 8 << 20;
            let len = std::num::NonZeroUsize::new(readable + 4096).unwrap();
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
            let base = p.as_ptr().cast::<u8>();
            // SAFETY: the last page of our own mapping.
            unsafe {
                mprotect(
                    std::ptr::NonNull::new_unchecked(base.add(readable).cast()),
                    4096,
                    ProtFlags::PROT_NONE,
                )
            }
            .unwrap();
            // SAFETY: deliberately not: the slice's last page cannot be
            // read. This process exists to die in the middle of that copy.
            let msg = unsafe { std::slice::from_raw_parts(base, len.get()) };
            let _ = q.sender().send(msg);
            unreachable!("the copy faults");
        }
        // Takes one large message and dies holding it.
        "hold_and_die" => {
            let rx = q.receiver();
            let m = rx.recv().unwrap();
            assert!(m.len() > RING / 2);
            die();
        }
        other => panic!("unknown role {other}"),
    }
}

fn run(role: &str, name: &str) -> std::process::ExitStatus {
    let c = child(role).env("SHMQ_NAME", name).spawn().unwrap();
    wait(c, LIMIT, role)
}

fn named(tag: &str) -> (String, Queue) {
    let n = unique_name(tag);
    let q = Queue::builder()
        .capacity_bytes(RING)
        .create_named(&n)
        .unwrap();
    (n, q)
}

/// Once `send` returns, a large message is in the segment: its sender may
/// die at once (SIGKILL right after the last send), and every message
/// still arrives whole, in order; receiving them gives their memory back.
#[test]
fn large_messages_outlive_their_sender() {
    let (n, q) = named("outlive");
    let idle = allocated(&n);
    let st = run("send_and_die", &n);
    assert_eq!(st.signal(), Some(9), "{st:?}");
    assert!(
        allocated(&n) >= (64 << 20) + (3 << 20),
        "kept in the segment"
    );
    let rx = q.receiver();
    let mut scratch = Vec::new();
    for (seq, &len) in SIZES.iter().enumerate() {
        let m = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(m.len(), len);
        assert!(is_message(&m, 1, seq as u64, &mut scratch), "message {seq}");
    }
    assert_eq!(q.diagnostics().overflow_units, 0, "{}", q.diagnostics());
    // The last run's pages are kept for reuse until the queue has been
    // idle for a scan (a blocked receiver's).
    scan_for(&q, 400);
    let after = allocated(&n);
    assert!(after <= 2 * idle, "memory back: {after} bytes, idle {idle}");
    Queue::unlink(&n).unwrap();
}

/// A sender that dies half way through copying a large message leaves
/// nothing a receiver can see, and its memory is swept: a receiver gets the
/// next message, the overflow area ends empty, and the segment shrinks back.
#[test]
fn sender_dying_mid_copy_leaves_nothing() {
    let (n, q) = named("midcopy");
    let idle = allocated(&n);
    let st = run("crash_mid_copy", &n);
    assert_eq!(st.signal(), Some(nix::sys::signal::Signal::SIGSEGV as i32));
    assert!(q.diagnostics().overflow_units > 0, "the dead sender's run");
    scan_for(&q, 400);
    assert_eq!(q.diagnostics().overflow_units, 0, "{}", q.diagnostics());
    assert!(allocated(&n) <= 2 * idle, "memory back");
    let tx = q.sender();
    let mut buf = Vec::new();
    message(2, 0, 1 << 20, &mut buf);
    tx.send(&buf).unwrap();
    let rx = q.receiver();
    let m = rx.try_recv().expect("only the live message");
    assert!(is_message(&m, 2, 0, &mut Vec::new()));
    drop(m);
    assert_eq!(rx.try_recv().unwrap_err(), RecvError::Empty);
    Queue::unlink(&n).unwrap();
}

/// A receiver killed holding a large message: the message counts as
/// delivered (as with an ordinary one) and its run is swept once the
/// survivors recover its record, giving the memory back.
#[test]
fn receiver_dying_with_a_large_message_gives_its_memory_back() {
    let (n, q) = named("holdlarge");
    let idle = allocated(&n);
    let mut buf = Vec::new();
    message(3, 0, 16 << 20, &mut buf);
    q.sender().send(&buf).unwrap();
    let st = run("hold_and_die", &n);
    assert_eq!(st.signal(), Some(9), "{st:?}");
    assert!(q.diagnostics().overflow_units > 0);
    scan_for(&q, 400);
    assert_eq!(q.diagnostics().overflow_units, 0, "{}", q.diagnostics());
    assert!(allocated(&n) <= 2 * idle, "memory back");
    Queue::unlink(&n).unwrap();
}

/// A backlog of large messages takes memory as it grows and gives it back
/// as it drains: within twice an idle queue's, but for the pages of at
/// most one message kept for the next one, which a blocked receiver's scan
/// gives back once the queue has been idle for 100 ms.
#[test]
fn memory_follows_the_backlog() {
    let (n, q) = named("backlog");
    let idle = allocated(&n);
    let tx = q.sender();
    let mut buf = Vec::new();
    for seq in 0..10 {
        message(4, seq, 8 << 20, &mut buf);
        tx.send(&buf).unwrap();
    }
    let peak = allocated(&n);
    assert!(peak >= 80 << 20, "the backlog is in the segment: {peak}");
    let rx = q.receiver();
    let mut scratch = Vec::new();
    for seq in 0..10 {
        let m = rx.try_recv().unwrap();
        assert!(is_message(&m, 4, seq, &mut scratch));
    }
    let drained = allocated(&n);
    assert!(
        drained <= 2 * idle + (8 << 20) + (64 << 10),
        "drained: {drained} bytes, idle {idle}"
    );
    scan_for(&q, 400);
    let after = allocated(&n);
    eprintln!(
        "segment: idle {idle} B, 80 MiB queued {peak} B, drained {drained} B, idle again {after} B"
    );
    assert!(after <= 2 * idle, "idle again: {after} bytes, idle {idle}");
    Queue::unlink(&n).unwrap();
}

/// Room and memory run out as errors, never a crash or a loss: a full
/// overflow area fails the send with `OutOfMemory` (and succeeds once a
/// message is received), a message larger than the area is `TooLarge`,
/// and one larger than the machine's memory is `OutOfMemory` too.
#[test]
fn out_of_room_and_memory_are_errors() {
    let q = Queue::builder()
        .capacity_bytes(4096)
        .overflow_bytes(4 << 20)
        .create()
        .unwrap();
    let (tx, rx) = (q.sender(), q.receiver());
    let three = vec![3u8; 3 << 20];
    tx.send(&three).unwrap();
    assert!(matches!(
        tx.send(&three),
        Err(SendError::OutOfMemory {
            area_full: true,
            ..
        })
    ));
    assert!(matches!(
        tx.try_send(&vec![0u8; 5 << 20]),
        Err(SendError::TooLarge { max, .. }) if max == 4 << 20
    ));
    assert_eq!(rx.recv().unwrap().len(), 3 << 20);
    tx.send(&three).unwrap();
    assert_eq!(*rx.recv().unwrap(), three[..]);
    assert_eq!(q.diagnostics().overflow_units, 0);

    // More than the machine has: refused before a page is touched.
    let huge = Queue::builder()
        .capacity_bytes(4096)
        .overflow_bytes(1 << 38)
        .create()
        .unwrap();
    let mib = vec![1u8; 1 << 20];
    let parts: Vec<&[u8]> = vec![&mib[..]; 200 << 10];
    let r = huge.sender().try_send_vectored(&parts);
    assert!(
        matches!(
            r,
            Err(SendError::OutOfMemory {
                area_full: false,
                ..
            })
        ),
        "{r:?}"
    );
    assert_eq!(huge.diagnostics().overflow_units, 0);
    let e = r.unwrap_err().to_string();
    assert!(e.contains("no memory for a message of"), "{e}");
}

/// Pipes carry large messages both ways, and a try_send that finds the ring
/// full gives its run back.
#[test]
fn pipes_and_full_rings() {
    let (a, b) = Queue::builder().create_pipe_duplex().unwrap();
    let big: Vec<u8> = (0..(5 << 20)).map(|i| (i % 251) as u8).collect();
    let t = std::thread::spawn(move || {
        let m = b.recv().unwrap().to_vec();
        b.send(&m).unwrap();
    });
    a.send(&big).unwrap();
    assert_eq!(*a.recv().unwrap(), big[..]);
    t.join().unwrap();

    let q = Queue::builder()
        .capacity_bytes(4096)
        .maxsize(1)
        .create()
        .unwrap();
    let tx = q.sender();
    tx.send(&big).unwrap();
    assert_eq!(tx.try_send(&big), Err(SendError::Full));
    assert_eq!(
        tx.send_timeout(&big, Duration::from_millis(20)),
        Err(SendError::Timeout)
    );
    assert_eq!(q.diagnostics().overflow_units, 80, "only the queued one");
    drop(q.receiver().recv().unwrap());
    assert_eq!(q.diagnostics().overflow_units, 0);
}
