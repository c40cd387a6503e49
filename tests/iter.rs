//! Iterators over receivers: where they end, what they keep, and that they
//! never lose or repeat a message.

use rkyv::{Archive, Deserialize, Serialize};
use shmq::{Queue, RecvError};
use std::time::Duration;

#[derive(Archive, Serialize, Deserialize, Debug, PartialEq)]
struct Job {
    id: u32,
}

#[test]
fn iter_ends_at_closed_after_the_last_message() {
    let q = Queue::builder().create().unwrap();
    let (tx, rx) = (q.sender(), q.receiver());
    let producer = std::thread::spawn(move || {
        for i in 0..1000u32 {
            tx.send(&i.to_le_bytes()).unwrap();
        }
        tx.close();
    });
    let mut it = rx.iter();
    let got: Vec<u32> = it
        .by_ref()
        .map(|m| u32::from_le_bytes(m[..].try_into().unwrap()))
        .collect();
    producer.join().unwrap();
    assert_eq!(got, (0..1000).collect::<Vec<_>>());
    assert_eq!(it.end(), Some(&RecvError::Closed));
    assert_eq!(it.result(), Ok(()), "Closed is the normal end");
    assert!(it.next().is_none(), "an ended iterator stays ended");
}

#[test]
fn for_loop_over_a_receiver_ends_when_every_sender_is_gone() {
    let q = Queue::builder().create().unwrap();
    let (tx, rx) = (q.sender(), q.receiver());
    drop(q); // a Queue handle could still send: the loop would wait for it
    let producer = std::thread::spawn(move || {
        for i in 0..10u8 {
            tx.send(&[i]).unwrap();
        }
        // Dropped without close: Disconnected, after the ten.
    });
    let mut n = 0u8;
    for m in &rx {
        assert_eq!(&*m, &[n]);
        n += 1;
    }
    producer.join().unwrap();
    assert_eq!(n, 10);
    let mut it = rx.iter();
    assert!(it.next().is_none());
    assert_eq!(it.end(), Some(&RecvError::Disconnected));
    assert_eq!(it.result(), Ok(()), "so is Disconnected");
}

#[test]
fn try_iter_yields_what_is_ready_and_can_be_polled_again() {
    let q = Queue::builder().create().unwrap();
    let (tx, rx) = (q.sender(), q.receiver());
    tx.send_batch([&b"a"[..], b"b"]).unwrap();
    let mut it = rx.try_iter();
    assert_eq!(
        it.by_ref().map(|m| m.to_vec()).collect::<Vec<_>>(),
        [b"a", b"b"]
    );
    assert_eq!(it.end(), None, "Empty is not an end");
    tx.send(b"c").unwrap();
    assert_eq!(it.next().as_deref(), Some(&b"c"[..]));
    q.close();
    assert!(it.next().is_none());
    assert_eq!(it.end(), Some(&RecvError::Closed));
}

#[test]
fn guards_from_an_iterator_may_be_held_together() {
    let q = Queue::builder().create().unwrap();
    let (tx, rx) = (q.sender(), q.receiver());
    for i in 0..5u8 {
        tx.send(&[i]).unwrap();
    }
    let held: Vec<_> = rx.try_iter().collect();
    assert_eq!(held.len(), 5);
    assert_eq!(q.len(), 0);
    drop(held); // the room comes back
    assert!(!q.is_full());
}

#[test]
fn typed_iter_validates_and_ends_on_an_invalid_message() {
    let q = Queue::builder().create_typed::<Job>().unwrap();
    let (tx, rx) = (q.sender(), q.receiver());
    for id in 0..3 {
        tx.send(&Job { id }).unwrap();
    }
    q.queue().sender().send(b"not an archive").unwrap();
    tx.send(&Job { id: 3 }).unwrap();
    let mut it = rx.iter();
    let ids: Vec<u32> = it.by_ref().map(|j| j.id.to_native()).collect();
    assert_eq!(ids, [0, 1, 2]);
    assert_eq!(it.end(), Some(&RecvError::Invalid));
    assert_eq!(
        it.result(),
        Err(RecvError::Invalid),
        "cut short: `?` reports it"
    );
    // The invalid message was dropped; the next one is still there.
    let rest: Vec<u32> = rx.try_iter().map(|j| j.id.to_native()).collect();
    assert_eq!(rest, [3]);
    q.close();
    let mut n = 0;
    for _ in &rx {
        n += 1;
    }
    assert_eq!(n, 0);
}

#[test]
fn pipe_ends_iterate_and_a_write_only_end_is_ended_at_once() {
    let (a, b) = shmq::pipe_duplex().unwrap();
    a.send(b"one").unwrap();
    a.send(b"two").unwrap();
    a.close();
    let got: Vec<Vec<u8>> = b.iter().map(|m| m.to_vec()).collect();
    assert_eq!(got, [b"one".to_vec(), b"two".to_vec()]);

    let (reader, writer) = shmq::pipe().unwrap();
    writer.send(b"x").unwrap();
    assert_eq!(
        reader.try_iter().map(|m| m.to_vec()).collect::<Vec<_>>(),
        [b"x".to_vec()]
    );
    // The writing end attached as a plain Connection: its iterator is
    // ended at once.
    let var = "SHMQ_TEST_ITER_WRITE_END";
    let mut cmd = std::process::Command::new("true");
    writer.inherit_into(&mut cmd, var);
    let (_, v) = cmd.get_envs().find(|(k, _)| *k == var).unwrap();
    std::env::set_var(var, v.unwrap());
    let write_only = shmq::Connection::from_env(var).unwrap();
    let mut it = write_only.iter();
    assert!(it.next().is_none());
    assert_eq!(it.end(), Some(&RecvError::WriteOnly));
    assert_eq!(it.result(), Err(RecvError::WriteOnly));
    drop(cmd);
    writer.send(b"y").unwrap();
    writer.close();
    let got: Vec<Vec<u8>> = (&reader).into_iter().map(|m| m.to_vec()).collect();
    assert_eq!(got, [b"y".to_vec()]);
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct Word {
    n: u32,
}

#[test]
fn typed_pipe_ends_iterate() {
    let (a, b) = Queue::builder()
        .message_type::<Word>()
        .create_pipe_duplex()
        .unwrap();
    let (a, b) = (a.typed::<Word>().unwrap(), b.typed::<Word>().unwrap());
    for n in 0..5 {
        a.send(&Word { n }).unwrap();
    }
    a.close();
    let got: Vec<u32> = b.iter().map(|w| w.n.to_native()).collect();
    assert_eq!(got, [0, 1, 2, 3, 4]);
    assert!(b.is_closed());
    assert!(matches!(
        shmq::pipe_duplex().unwrap().0.typed::<Word>(),
        Err(shmq::OpenError::TypeMismatch { .. })
    ));
}

#[test]
fn iter_waits_for_a_late_message() {
    let q = Queue::builder().create().unwrap();
    let (tx, rx) = (q.sender(), q.receiver());
    let late = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        tx.send(b"late").unwrap();
    });
    assert_eq!(rx.iter().next().as_deref(), Some(&b"late"[..]));
    late.join().unwrap();
}
