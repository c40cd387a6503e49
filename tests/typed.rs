//! Typed (rkyv) messages, batches and pipes: in one process, and across
//! processes (children are this test binary run again with `SHMQ_ROLE`).

#![cfg(not(loom))]

mod common;

use common::{child, wait};
use rkyv::{Archive, Deserialize, Serialize};
use shmq::{BatchError, Connection, OpenError, Queue, RecvError, SendError};
use std::process::Command;
use std::time::Duration;

#[derive(Archive, Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Line {
    sku: String,
    qty: u32,
    price_cents: i64,
}

#[derive(Archive, Serialize, Deserialize, Debug, PartialEq, Clone)]
enum Status {
    New,
    Paid { amount_cents: i64 },
    Shipped(String),
    Cancelled,
}

#[derive(Archive, Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Order {
    id: u64,
    customer: String,
    lines: Vec<Line>,
    status: Status,
    note: Option<String>,
    scores: Vec<f64>,
}

#[derive(Archive, Serialize, Deserialize, Debug, PartialEq)]
struct Other {
    id: u64,
}

/// Order `i`: sizes and variants vary with `i`.
fn order(i: u64) -> Order {
    Order {
        id: i,
        customer: format!("customer-{}", i * 7919 % 1000),
        lines: (0..i % 5)
            .map(|k| Line {
                sku: format!("SKU{i}-{k}-{}", "x".repeat((i % 13) as usize)),
                qty: (k + 1) as u32,
                price_cents: (i * 31 + k) as i64 - 500,
            })
            .collect(),
        status: match i % 4 {
            0 => Status::New,
            1 => Status::Paid {
                amount_cents: i as i64 * 100,
            },
            2 => Status::Shipped(format!("track-{i}")),
            _ => Status::Cancelled,
        },
        note: (i % 3 == 0).then(|| "handle with care".to_string()),
        scores: (0..i % 4).map(|k| k as f64 / 3.0).collect(),
    }
}

// ------------------------------------------------------------ in process

#[test]
fn typed_round_trip_is_read_in_place() {
    let q = Queue::builder()
        .capacity_bytes(1 << 16)
        .create_typed::<Order>()
        .unwrap();
    let (tx, rx) = (q.sender(), q.receiver());
    for i in 0..200 {
        tx.send(&order(i)).unwrap();
        let got = rx.recv().unwrap();
        // In place: the archived value lies inside the shared mapping.
        let p: *const ArchivedOrder = &*got;
        assert!(rx.is_in_shared_memory(p), "archived value was copied");
        assert!(rx.is_in_shared_memory(got.customer.as_str().as_ptr()));
        assert_eq!(got.id, i);
        assert_eq!(got.lines.len() as u64, i % 5);
        assert_eq!(got.deserialize().unwrap(), order(i));
    }
    let owned = Order {
        note: None,
        ..order(3)
    };
    tx.send(&owned).unwrap();
    let copied = rx.recv_copied().unwrap();
    assert!(!rx.is_in_shared_memory(&*copied as *const ArchivedOrder));
    assert_eq!(copied.deserialize().unwrap(), owned);
    tx.send(&order(5)).unwrap();
    // SAFETY: only this test's TypedSender<Order> writes to the queue.
    let un = unsafe { rx.recv_unchecked() }.unwrap();
    assert_eq!(un.deserialize().unwrap(), order(5));
}

#[test]
fn type_mismatch_and_untyped_are_refused() {
    let q = Queue::builder().message_type::<Order>().create().unwrap();
    assert!(q.typed::<Order>().is_ok());
    match q.typed::<Other>() {
        Err(OpenError::TypeMismatch { expected, found }) => {
            assert!(expected.ends_with("Other"), "{expected}");
            assert!(found.unwrap().ends_with("Order"));
        }
        r => panic!("expected TypeMismatch, got {r:?}"),
    }
    let plain = Queue::builder().create().unwrap();
    assert!(matches!(
        plain.typed::<Order>(),
        Err(OpenError::TypeMismatch { found: None, .. })
    ));
    assert!(matches!(
        plain.sender().typed::<Order>(),
        Err(OpenError::TypeMismatch { .. })
    ));
}

#[test]
fn corrupted_bytes_are_rejected_and_lose_nothing_else() {
    let q = Queue::builder()
        .capacity_bytes(1 << 16)
        .create_typed::<Order>()
        .unwrap();
    let raw = q.queue().sender();
    let (tx, rx) = (q.sender(), q.receiver());
    // Garbage, an empty message, and a truncated archive.
    let good = rkyv::to_bytes::<rkyv::rancor::Error>(&order(7)).unwrap();
    for bad in [&b"not an archive at all"[..], b"", &good[..good.len() - 3]] {
        raw.send(bad).unwrap();
        tx.send(&order(1)).unwrap();
        assert_eq!(rx.recv().map(|_| ()), Err(RecvError::Invalid));
        assert_eq!(rx.recv().unwrap().deserialize().unwrap(), order(1));
    }
    // Every single-byte corruption of a valid archive is either still a
    // valid Order or rejected; none crashes or reads out of bounds.
    let (mut ok, mut rejected) = (0, 0);
    for i in 0..good.len() {
        for v in [0x00, 0xff, 0x80, good[i] ^ 0x01] {
            let mut b = good.to_vec();
            b[i] = v;
            raw.send(&b).unwrap();
            match rx.recv() {
                Ok(m) => {
                    let _ = m.deserialize().unwrap();
                    ok += 1
                }
                Err(RecvError::Invalid) => rejected += 1,
                Err(e) => panic!("unexpected {e}"),
            }
        }
    }
    assert!(rejected > 0 && ok > 0, "ok {ok}, rejected {rejected}");
    assert!(q.queue().is_empty());
}

#[test]
fn batches_keep_order_bytes_and_typed() {
    // A small ring, so the batch sender waits for room mid-batch while the
    // receiving thread drains in batches.
    let q = Queue::builder().capacity_bytes(1024).create().unwrap();
    let msgs: Vec<Vec<u8>> = (0..5000u32)
        .map(|i| {
            let mut m = i.to_le_bytes().to_vec();
            m.resize(4 + (i as usize * 37) % 300, i as u8);
            m
        })
        .collect();
    let rx = q.receiver();
    let expect = msgs.clone();
    let consumer = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut batches = 0;
        loop {
            match rx.recv_batch(64) {
                Ok(b) => {
                    batches += 1;
                    got.extend(b.iter().map(<[u8]>::to_vec));
                }
                Err(RecvError::Closed | RecvError::Disconnected) => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(got, expect);
        batches
    });
    assert_eq!(q.sender().send_batch(&msgs), Ok(5000));
    q.close();
    let batches = consumer.join().unwrap();
    assert!(batches < 5000, "every batch held one message");
    assert_eq!(
        q.sender().send_batch([b"x"]),
        Err(BatchError {
            sent: 0,
            error: SendError::Closed
        })
    );

    // try_send_batch stops at Full and says how many went in.
    let q = Queue::builder().maxsize(3).create().unwrap();
    let r = q.sender().try_send_batch([b"a", b"b", b"c", b"d", b"e"]);
    assert_eq!(
        r,
        Err(BatchError {
            sent: 3,
            error: SendError::Full
        })
    );
    let rx = q.receiver();
    let b = rx.try_recv_batch(10).unwrap();
    assert_eq!(b.iter().collect::<Vec<_>>(), [b"a", b"b", b"c"]);
    drop(b);
    assert!(q.is_empty());

    // Typed batches.
    let q = Queue::builder()
        .capacity_bytes(1 << 14)
        .create_typed::<Order>()
        .unwrap();
    let orders: Vec<Order> = (0..50).map(order).collect();
    assert_eq!(q.sender().send_batch(&orders), Ok(50));
    let rx = q.receiver();
    let mut got = Vec::new();
    while got.len() < 50 {
        let b = rx.recv_batch(16).unwrap();
        assert!(b.len() <= 16);
        for m in b.iter() {
            got.push(rkyv::deserialize::<Order, rkyv::rancor::Error>(m.unwrap()).unwrap());
        }
    }
    assert_eq!(got, orders);
}

#[test]
fn pipe_ends_in_one_process() {
    let (a, b) = shmq::pipe_duplex().unwrap();
    a.send(b"ping").unwrap();
    b.send(b"pong").unwrap();
    assert_eq!(&*b.recv().unwrap(), b"ping");
    assert_eq!(&*a.recv().unwrap(), b"pong");
    assert_eq!(a.try_recv().unwrap_err(), RecvError::Empty);
    b.send(b"last words").unwrap();
    b.close();
    assert_eq!(&*a.recv().unwrap(), b"last words");
    assert_eq!(a.recv().unwrap_err(), RecvError::Closed);
    assert_eq!(a.send(b"x"), Err(SendError::Closed));
    assert_eq!(b.recv().unwrap_err(), RecvError::Closed);

    // One-way ends have one direction each (the other does not compile:
    // see `shmq::pipe`'s compile_fail doctests), and attach only as what
    // they are.
    let (r, w) = shmq::pipe().unwrap();
    let var = "SHMQ_TEST_ONE_WAY_END";
    let mut cmd = Command::new("true");
    w.inherit_into(&mut cmd, var);
    let (_, v) = cmd.get_envs().find(|(k, _)| *k == var).unwrap();
    std::env::set_var(var, v.unwrap());
    assert!(matches!(
        shmq::PipeReader::from_env(var),
        Err(OpenError::KindMismatch {
            expected: "the reading end of a one-way pipe",
            found: "the writing end of a one-way pipe"
        })
    ));
    drop(cmd);
    w.send(b"one way").unwrap();
    assert_eq!(&*r.recv().unwrap(), b"one way");
    r.close();
    assert_eq!(w.send(b"x"), Err(SendError::Closed));

    // A pipe is not a queue, and the reverse.
    let (a, _b) = shmq::pipe_duplex().unwrap();
    let var = "SHMQ_TEST_PIPE_AS_QUEUE";
    let mut cmd = Command::new("true");
    a.inherit_into(&mut cmd, var);
    let val = cmd
        .get_envs()
        .find(|(k, _)| *k == var)
        .and_then(|(_, v)| v)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(val.contains("@0"), "{val}");
    std::env::set_var(var, &val);
    assert!(matches!(
        Queue::from_env(var),
        Err(OpenError::KindMismatch {
            expected: "queue",
            found: "pipe"
        })
    ));
    let q = Queue::builder().create().unwrap();
    let mut cmd = Command::new("true");
    q.inherit_into(&mut cmd, var);
    let (_, v) = cmd.get_envs().find(|(k, _)| *k == var).unwrap();
    let place = v.unwrap().to_str().unwrap().split(';').next().unwrap();
    std::env::set_var(var, format!("{place}@1"));
    assert!(matches!(
        Connection::from_env(var),
        Err(OpenError::KindMismatch {
            expected: "pipe",
            found: "queue"
        })
    ));
}

// ------------------------------------------------------------ processes

const ORDERS: u64 = 20_000;

/// Child processes start here. Ignored so it never runs as a test of its own.
#[test]
#[ignore = "helper: runs only as a child process of the other tests"]
fn child_entry() {
    let Some(role) = common::role() else {
        return;
    };
    match role.as_str() {
        "typed_consumer" => {
            let q = Queue::from_env("SHMQ_Q").unwrap();
            // Another type is refused in this process too.
            assert!(matches!(
                q.typed::<Other>(),
                Err(OpenError::TypeMismatch { .. })
            ));
            let q = q.typed::<Order>().unwrap();
            let rx = q.receiver();
            let mut i = 0;
            loop {
                match rx.recv() {
                    Ok(m) => {
                        assert!(rx.is_in_shared_memory(&*m as *const ArchivedOrder));
                        assert_eq!(m.id, i);
                        assert_eq!(m.deserialize().unwrap(), order(i));
                        i += 1;
                    }
                    Err(RecvError::Closed | RecvError::Disconnected) => break,
                    Err(e) => panic!("{e}"),
                }
            }
            assert_eq!(i, ORDERS);
        }
        "echo" => {
            // Replies to each message with its bytes reversed, until the
            // parent closes; then closes its own end (idempotent).
            let c = Connection::from_env("SHMQ_PIPE").unwrap();
            let mut n = 0u64;
            loop {
                match c.recv() {
                    Ok(m) => {
                        let r: Vec<u8> = m.iter().rev().copied().collect();
                        drop(m);
                        c.send(&r).unwrap();
                        n += 1;
                    }
                    Err(RecvError::Closed | RecvError::Disconnected) => break,
                    Err(e) => panic!("{e}"),
                }
            }
            assert!(n > 0);
        }
        "writer" => {
            let c = Connection::from_env("SHMQ_PIPE").unwrap();
            assert_eq!(c.recv().unwrap_err(), RecvError::WriteOnly);
            for i in 0..1000u32 {
                c.send(&i.to_le_bytes()).unwrap();
            }
            c.close();
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn typed_orders_cross_processes_in_place() {
    let q = Queue::builder()
        .capacity_bytes(1 << 16)
        .create_typed::<Order>()
        .unwrap();
    let mut c = child("typed_consumer");
    q.queue().inherit_into(&mut c, "SHMQ_Q");
    let c = c.spawn().unwrap();
    let tx = q.sender();
    let orders: Vec<Order> = (0..ORDERS).map(order).collect();
    for chunk in orders.chunks(100) {
        if chunk[0].id % 200 == 0 {
            assert_eq!(tx.send_batch(chunk), Ok(chunk.len()));
        } else {
            for o in chunk {
                tx.send(o).unwrap();
            }
        }
    }
    q.close();
    let st = wait(c, Duration::from_secs(120), "typed consumer");
    assert!(st.success(), "typed consumer failed: {st}");
}

#[test]
fn duplex_pipe_between_processes_both_ways_and_close() {
    let (mine, theirs) = shmq::pipe_duplex().unwrap();
    let mut c = child("echo");
    theirs.inherit_into(&mut c, "SHMQ_PIPE");
    let c = c.spawn().unwrap();
    drop(theirs); // dropping an end does not close the pipe
    for i in 0..2000u32 {
        let msg: Vec<u8> = (0..(i % 200) as u8 + 1).chain(i.to_le_bytes()).collect();
        mine.send(&msg).unwrap();
        let back = mine.recv().unwrap();
        let want: Vec<u8> = msg.iter().rev().copied().collect();
        assert_eq!(&*back, &want[..]);
    }
    mine.close();
    let st = wait(c, Duration::from_secs(120), "echo child");
    assert!(st.success(), "echo child failed: {st}");
    assert_eq!(mine.recv().unwrap_err(), RecvError::Closed);
}

#[test]
fn one_way_pipe_far_end_close_is_seen() {
    let (reader, writer) = shmq::pipe().unwrap();
    let mut c = child("writer");
    writer.inherit_into(&mut c, "SHMQ_PIPE");
    let c = c.spawn().unwrap();
    for i in 0..1000u32 {
        assert_eq!(&*reader.recv().unwrap(), &i.to_le_bytes());
    }
    assert_eq!(reader.recv().unwrap_err(), RecvError::Closed);
    assert!(wait(c, Duration::from_secs(120), "writer child").success());
}

// ------------------------------------------------------------ recursive types

/// A recursive message, as docs/TYPED.md shows: `omit_bounds` on the
/// recursive field, and the bounds the derive then needs given back.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, PartialEq)]
#[rkyv(serialize_bounds(
    __S: rkyv::ser::Writer + rkyv::ser::Allocator,
    __S::Error: rkyv::rancor::Source,
))]
#[rkyv(deserialize_bounds(__D::Error: rkyv::rancor::Source))]
#[rkyv(bytecheck(bounds(__C: rkyv::validation::ArchiveContext)))]
enum Tree {
    Leaf(u32),
    Node(#[rkyv(omit_bounds)] Vec<Tree>),
}

fn tree_sum(t: &ArchivedTree) -> u32 {
    match t {
        ArchivedTree::Leaf(n) => n.to_native(),
        ArchivedTree::Node(children) => children.iter().map(tree_sum).sum(),
    }
}

#[test]
fn recursive_messages_travel_and_validate() {
    let q = Queue::builder().create_typed::<Tree>().unwrap();
    let tree = Tree::Node(vec![
        Tree::Leaf(1),
        Tree::Node(vec![Tree::Leaf(2), Tree::Node(vec![Tree::Leaf(3)])]),
        Tree::Node(vec![]),
    ]);
    q.sender().send(&tree).unwrap();
    let rx = q.receiver();
    let got = rx.recv().unwrap();
    assert_eq!(tree_sum(&got), 6, "read in place");
    assert_eq!(got.deserialize().unwrap(), tree);
}
