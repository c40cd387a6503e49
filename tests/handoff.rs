//! Gathered sends (`send_vectored`) and attaching pipe ends by fd: what the
//! Python package builds on (a pickle header and its out-of-band buffers in
//! one record; a `Connection` pickled as its memfd and end).

mod common;

use common::splitmix;
use shmq::{Connection, OpenError, Queue, RecvError, SendError};
use std::os::fd::AsFd;
use std::time::Duration;

/// Parts of every length, around the end of a small ring many times: each
/// message arrives as the parts joined, byte for byte, in order.
#[test]
fn vectored_messages_arrive_joined_across_wraps() {
    let q = Queue::builder().capacity_bytes(4096).create().unwrap();
    let (tx, rx) = (q.sender(), q.receiver());
    let mut seed = 7u64;
    for i in 0..5_000u32 {
        seed = splitmix(seed);
        let n = (seed % 5) as usize;
        let parts: Vec<Vec<u8>> = (0..n)
            .map(|k| {
                seed = splitmix(seed);
                let len = (seed % 300) as usize;
                (0..len).map(|j| (i as usize + k * 31 + j) as u8).collect()
            })
            .collect();
        let refs: Vec<&[u8]> = parts.iter().map(|p| &p[..]).collect();
        match i % 3 {
            0 => tx.send_vectored(&refs).unwrap(),
            1 => tx.try_send_vectored(&refs).unwrap(),
            _ => tx
                .send_vectored_timeout(&refs, Duration::from_secs(5))
                .unwrap(),
        }
        assert_eq!(&*rx.recv().unwrap(), &parts.concat()[..], "message {i}");
    }
}

/// The total length decides `TooLarge` and `Full`, and a refused message
/// leaves nothing behind.
#[test]
fn vectored_limits_count_the_total() {
    let q = Queue::builder()
        .capacity_bytes(4096)
        .maxsize(1)
        .overflow_bytes(0)
        .create()
        .unwrap();
    let (tx, rx) = (q.sender(), q.receiver());
    let half = vec![1u8; q.max_message_size() / 2 + 1];
    assert!(matches!(
        tx.send_vectored(&[&half, &half]),
        Err(SendError::TooLarge { .. })
    ));
    tx.send_vectored(&[b"a", b"b"]).unwrap();
    assert_eq!(tx.try_send_vectored(&[b"c"]), Err(SendError::Full));
    assert_eq!(
        tx.send_vectored_timeout(&[b"c"], Duration::from_millis(20)),
        Err(SendError::Timeout)
    );
    assert_eq!(&*rx.recv().unwrap(), b"ab");
    assert_eq!(rx.try_recv().err(), Some(RecvError::Empty));
    // An empty message of no parts is a message.
    tx.send_vectored(&[]).unwrap();
    assert_eq!(rx.recv().unwrap().len(), 0);
}

/// A pipe end attached from a duplicate of its fd talks to the other end;
/// once the original and the copy are gone, the other side sees the end.
#[test]
fn pipe_end_from_fd() {
    let (a, b) = shmq::pipe_duplex().unwrap();
    let b2 = Connection::from_fd(b.as_fd().try_clone_to_owned().unwrap(), b.end()).unwrap();
    assert_eq!(b2.max_message_size(), b.max_message_size());
    assert_eq!(b2.capacity(), 2 * b2.ring_message_size());
    drop(b);
    a.send_vectored(&[b"to ", b"b"]).unwrap();
    assert_eq!(&*b2.recv().unwrap(), b"to b");
    b2.send(b"to a").unwrap();
    assert_eq!(&*a.recv().unwrap(), b"to a");
    drop(b2);
    assert_eq!(a.recv().err(), Some(RecvError::Disconnected));

    // One-way: the reading end is 0 and only receives.
    let (r, w) = shmq::pipe().unwrap();
    let (r, w) = (Connection::from(r), Connection::from(w));
    assert_eq!((r.end(), w.end()), (0, 1));
    let r2 = Connection::from_fd(r.as_fd().try_clone_to_owned().unwrap(), 0).unwrap();
    w.send(b"x").unwrap();
    assert_eq!(&*r2.recv().unwrap(), b"x");
    assert_eq!(r2.send(b"y"), Err(SendError::ReadOnly));

    // Not a pipe, not an end.
    let q = Queue::builder().create().unwrap();
    let fd = q.as_fd().try_clone_to_owned().unwrap();
    assert!(matches!(
        Connection::from_fd(fd, 0),
        Err(OpenError::KindMismatch { .. })
    ));
    let fd = a.as_fd().try_clone_to_owned().unwrap();
    assert!(matches!(
        Connection::from_fd(fd, 2),
        Err(OpenError::InvalidConfig(_))
    ));
}
