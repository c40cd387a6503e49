//! Property tests: random sequences of send / try_send / send_timeout /
//! recv / try_recv / recv_timeout / hold / out-of-order release / close with
//! random sizes, run against a reference model (a `VecDeque` of messages plus
//! the byte accounting the design documents), one thread.
//!
//! The model predicts every outcome exactly, including `Full` by bytes: a
//! record takes `max(len, 1)` bytes rounded up to 64-byte granules, never
//! straddles the end of the ring (a record that would is preceded by padding
//! up to the end), and its room comes back when it and every older record
//! have been released. A message larger than half the ring goes to the
//! overflow area (two units here, so at most two such messages in flight:
//! a third is `OutOfMemory`) and takes one granule of the ring. Each case
//! starts at a random ring offset, so wrap-around and padding happen at
//! every offset over the run.

#![cfg(not(loom))]

mod common;

use common::{message, proptest_cases};
use proptest::prelude::*;
use shmq::{Queue, RecvError, RecvGuard, SendError};
use std::collections::VecDeque;
use std::time::Duration;

const GRANULE: u64 = 64;
/// The overflow area of every case: two units of 64 KiB.
const OVERFLOW: usize = 2 << 16;

#[derive(Debug, Clone)]
enum Op {
    Send(usize),
    TrySend(usize),
    SendTimeout(usize),
    Recv,
    TryRecv,
    RecvTimeout,
    /// Take the next message and keep it (the guard stays alive).
    Hold,
    /// Drop the held guard with this index (modulo the number held).
    Release(usize),
    Close,
}

/// What the ring holds, in position order: a region is queued, held by a
/// guard, or released (its room is reclaimed once everything older is).
#[derive(Debug, Clone, PartialEq)]
enum State {
    Queued,
    Held,
    Released,
}

#[derive(Debug)]
struct Region {
    pos: u64,
    granules: u64,
    /// `None` for padding.
    msg: Option<Vec<u8>>,
    state: State,
    /// Whether the message lies in the overflow area.
    large: bool,
}

struct Model {
    granules: u64,
    maxsize: Option<usize>,
    /// The largest message in the ring; larger ones overflow.
    ring_max: usize,
    /// Messages in the overflow area (queued or held).
    large: usize,
    tail: u64,
    regions: VecDeque<Region>,
    closed: bool,
    /// Messages queued (sent, not taken): what `maxsize` bounds.
    queued: usize,
}

enum SendOutcome {
    Ok,
    Full,
    Closed,
    TooLarge,
    OutOfMemory,
}

impl Model {
    fn head(&self) -> u64 {
        self.regions.front().map_or(self.tail, |r| r.pos)
    }

    fn reclaim(&mut self) {
        while self
            .regions
            .front()
            .is_some_and(|r| r.state == State::Released)
        {
            self.regions.pop_front();
        }
        // The regions tile the ring from `head` to `tail`.
        let mut at = self.head();
        for r in &self.regions {
            assert_eq!(r.pos, at, "model regions are not contiguous");
            at += r.granules;
        }
        assert_eq!(at, self.tail);
    }

    fn send(&mut self, msg: &[u8]) -> SendOutcome {
        if msg.len() > OVERFLOW {
            return SendOutcome::TooLarge;
        }
        if self.closed {
            return SendOutcome::Closed;
        }
        let large = msg.len() > self.ring_max;
        if large && self.large == OVERFLOW >> 16 {
            return SendOutcome::OutOfMemory;
        }
        let fp = if large {
            1
        } else {
            (msg.len().max(1) as u64).div_ceil(GRANULE)
        };
        let to_end = self.granules - self.tail % self.granules;
        let pad = if fp <= to_end { 0 } else { to_end };
        if self.tail + pad + fp - self.head() > self.granules
            || self.maxsize.is_some_and(|m| self.queued >= m)
        {
            return SendOutcome::Full;
        }
        if pad > 0 {
            self.regions.push_back(Region {
                pos: self.tail,
                granules: pad,
                msg: None,
                state: State::Queued,
                large: false,
            });
        }
        self.regions.push_back(Region {
            pos: self.tail + pad,
            granules: fp,
            msg: Some(msg.to_vec()),
            state: State::Queued,
            large,
        });
        self.tail += pad + fp;
        self.queued += 1;
        self.large += large as usize;
        SendOutcome::Ok
    }

    /// Takes the oldest queued message (passing, and so releasing, any
    /// padding before it); returns its position and content.
    fn take(&mut self) -> Option<(u64, Vec<u8>)> {
        let i = self.regions.iter().position(|r| r.state == State::Queued)?;
        if self.regions[i].msg.is_none() {
            self.regions[i].state = State::Released;
        }
        let r = self
            .regions
            .iter_mut()
            .find(|r| r.state == State::Queued && r.msg.is_some())
            .expect("padding is always followed by its record");
        r.state = State::Held;
        self.queued -= 1;
        let taken = (r.pos, r.msg.clone().unwrap());
        self.reclaim();
        Some(taken)
    }

    fn release(&mut self, pos: u64) {
        let r = self.regions.iter_mut().find(|r| r.pos == pos).unwrap();
        assert_eq!(r.state, State::Held);
        r.state = State::Released;
        self.large -= r.large as usize;
        self.reclaim();
    }

    fn is_full(&self) -> bool {
        self.maxsize.is_some_and(|m| self.queued >= m) || self.tail - self.head() >= self.granules
    }
}

fn payload(seed: u64, len: usize) -> Vec<u8> {
    let mut m = Vec::with_capacity(len);
    message(0, seed, len, &mut m);
    m
}

fn op(max_len: usize) -> impl Strategy<Value = Op> {
    // Sizes: small, around one granule, anything, exactly the ring's
    // maximum, a little over it (the overflow area), and more than the
    // overflow area holds (TooLarge).
    let len = prop_oneof![
        3 => 0..=8usize,
        3 => 56..=72usize,
        6 => 0..=max_len,
        2 => Just(max_len),
        2 => max_len + 1..=max_len + 64,
        1 => Just(OVERFLOW + 1),
    ];
    prop_oneof![
        20 => len.clone().prop_map(Op::Send),
        20 => len.clone().prop_map(Op::TrySend),
        5 => len.prop_map(Op::SendTimeout),
        15 => Just(Op::Recv),
        15 => Just(Op::TryRecv),
        5 => Just(Op::RecvTimeout),
        10 => Just(Op::Hold),
        10 => any::<usize>().prop_map(Op::Release),
        // Rare, so most of a case runs open.
        1 => Just(Op::Close),
    ]
}

#[derive(Debug, Clone)]
struct Case {
    capacity: usize,
    maxsize: usize,
    offset: u64,
    ops: Vec<Op>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop_oneof![Just(256usize), Just(512), Just(1024), Just(4096)],
        prop_oneof![Just(0usize), Just(1), Just(2), Just(3), Just(7)],
    )
        .prop_flat_map(|(capacity, maxsize)| {
            let granules = (capacity as u64) / GRANULE;
            (
                Just(capacity),
                Just(maxsize.min(granules as usize)),
                0..granules,
                prop::collection::vec(op(capacity / 2), 1..150),
            )
        })
        .prop_map(|(capacity, maxsize, offset, ops)| Case {
            capacity,
            maxsize,
            offset,
            ops,
        })
}

const SHORT: Duration = Duration::from_millis(1);

fn run(case: &Case) -> Result<(), TestCaseError> {
    let mut b = Queue::builder()
        .capacity_bytes(case.capacity)
        .overflow_bytes(OVERFLOW as u64);
    if case.maxsize > 0 {
        b = b.maxsize(case.maxsize);
    }
    let q = b.create().expect("create");
    let (tx, rx) = (q.sender(), q.receiver());
    let mut m = Model {
        granules: (case.capacity as u64) / GRANULE,
        maxsize: (case.maxsize > 0).then_some(case.maxsize),
        ring_max: q.ring_message_size(),
        large: 0,
        tail: 0,
        regions: VecDeque::new(),
        closed: false,
        queued: 0,
    };
    prop_assert_eq!(m.ring_max, case.capacity / 2);
    prop_assert_eq!(q.max_message_size(), OVERFLOW);

    // Start at the case's ring offset: one-granule messages through and out.
    for i in 0..case.offset {
        tx.try_send(&payload(i, 1)).unwrap();
        drop(rx.try_recv().unwrap());
        m.tail += 1;
    }

    let mut held: Vec<(u64, RecvGuard<'_>)> = Vec::new();
    for (step, o) in case.ops.iter().enumerate() {
        let seed = step as u64 + 1000 * case.offset;
        match o {
            Op::Send(n) | Op::TrySend(n) | Op::SendTimeout(n) => {
                let msg = payload(seed, *n);
                let want = m.send(&msg);
                let got = match (o, &want) {
                    // A blocking send would block forever here: only call it
                    // when it must succeed or fail at once.
                    (Op::Send(_), SendOutcome::Full) | (Op::SendTimeout(_), _) => {
                        tx.send_timeout(&msg, SHORT)
                    }
                    (Op::Send(_), _) => tx.send(&msg),
                    _ => tx.try_send(&msg),
                };
                match (want, got) {
                    (SendOutcome::Ok, Ok(())) => {}
                    (SendOutcome::Full, Err(SendError::Full)) if matches!(o, Op::TrySend(_)) => {}
                    (SendOutcome::Full, Err(SendError::Timeout))
                        if !matches!(o, Op::TrySend(_)) => {}
                    (SendOutcome::Closed, Err(SendError::Closed)) => {}
                    (SendOutcome::TooLarge, Err(SendError::TooLarge { len, max })) => {
                        prop_assert_eq!((len, max), (*n, OVERFLOW));
                    }
                    (
                        SendOutcome::OutOfMemory,
                        Err(SendError::OutOfMemory {
                            area_full: true, ..
                        }),
                    ) => {}
                    (_, got) => {
                        return Err(TestCaseError::fail(format!(
                            "step {step} {o:?}: got {got:?}, model disagrees"
                        )))
                    }
                }
            }
            Op::Recv | Op::TryRecv | Op::RecvTimeout | Op::Hold => {
                let want = m.take();
                let got = match (o, &want) {
                    (Op::Recv | Op::Hold, Some(_)) => rx.recv(),
                    (Op::Recv | Op::Hold, None) if m.closed => rx.recv(),
                    (Op::TryRecv, _) => rx.try_recv(),
                    _ => rx.recv_timeout(SHORT),
                };
                match (want, got) {
                    (Some((pos, msg)), Ok(g)) => {
                        prop_assert_eq!(&*g, &msg[..], "step {}: wrong message", step);
                        prop_assert!(rx.is_in_shared_memory(g.as_ptr()) || msg.is_empty());
                        if matches!(o, Op::Hold) {
                            held.push((pos, g));
                        } else {
                            drop(g);
                            m.release(pos);
                        }
                    }
                    (None, Err(RecvError::Closed)) if m.closed => {}
                    (None, Err(RecvError::Empty)) if !m.closed && matches!(o, Op::TryRecv) => {}
                    (None, Err(RecvError::Timeout)) if !m.closed => {}
                    (want, got) => {
                        return Err(TestCaseError::fail(format!(
                            "step {step} {o:?}: got {:?}, model says {:?}",
                            got.map(|g| g.len()),
                            want.map(|w| w.1.len())
                        )))
                    }
                }
            }
            Op::Release(i) => {
                if !held.is_empty() {
                    let (pos, g) = held.remove(i % held.len());
                    drop(g);
                    m.release(pos);
                }
            }
            Op::Close => {
                q.close();
                m.closed = true;
            }
        }
        prop_assert_eq!(q.len(), m.queued, "len after step {} {:?}", step, o);
        prop_assert_eq!(q.is_empty(), m.queued == 0);
        prop_assert_eq!(
            q.is_full(),
            m.is_full(),
            "is_full after step {} {:?}",
            step,
            o
        );
        prop_assert_eq!(q.is_closed(), m.closed);
    }
    // Release what is still held, then everything queued drains in order.
    for (pos, g) in held.drain(..) {
        drop(g);
        m.release(pos);
    }
    q.close();
    while let Some((pos, msg)) = m.take() {
        let g = rx.try_recv().expect("queued message");
        prop_assert_eq!(&*g, &msg[..]);
        drop(g);
        m.release(pos);
    }
    prop_assert_eq!(rx.try_recv().map(|_| ()), Err(RecvError::Closed));
    prop_assert!(m.regions.is_empty(), "all room reclaimed");
    prop_assert_eq!(q.diagnostics().overflow_units, 0, "every run freed");
    Ok(())
}

proptest! {
    // 512 cases by default; `PROPTEST_CASES=100000` for a long run.
    #![proptest_config(ProptestConfig {
        cases: proptest_cases(512),
        ..ProptestConfig::default()
    })]

    #[test]
    fn queue_matches_model(case in case()) {
        run(&case)?;
    }
}
