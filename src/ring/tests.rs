use super::*;
use crate::wait::WaitStrategy;

fn ring(cap: usize, maxsize: u64) -> (Ring, SendCache) {
    (Ring::new_heap(cap, maxsize), SendCache::default())
}

fn recv_vec(r: &Ring) -> Result<Vec<u8>, RecvError> {
    let c = r.try_recv(NO_LANE)?;
    // SAFETY: `c` is taken and released right after the copy.
    let v = unsafe { r.payload(&c) }.to_vec();
    r.release(c, NO_LANE);
    Ok(v)
}

fn msg(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i * 31 + j * 7) as u8).collect()
}

#[test]
fn empty_then_one_message() {
    let (r, c) = ring(1024, 0);
    assert_eq!(recv_vec(&r), Err(RecvError::Empty));
    r.try_send(&c, b"abc").unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(recv_vec(&r).unwrap(), b"abc");
    assert_eq!(r.len(), 0);
    assert_eq!(recv_vec(&r), Err(RecvError::Empty));
}

#[test]
fn zero_length_message() {
    let (r, c) = ring(1024, 0);
    r.try_send(&c, b"").unwrap();
    assert_eq!(recv_vec(&r).unwrap(), b"");
}

#[test]
fn too_large_writes_nothing() {
    let (r, c) = ring(1024, 0);
    assert_eq!(r.max_len(), 512);
    r.try_send(&c, &[1; 512]).unwrap();
    assert_eq!(
        r.try_send(&c, &[1; 513]),
        Err(SendError::TooLarge { len: 513, max: 512 })
    );
    assert_eq!(r.len(), 1);
}

#[test]
fn full_by_bytes_then_room_after_release() {
    let (r, c) = ring(256, 0); // 4 granules
    for i in 0..4 {
        r.try_send(&c, &msg(i, 10)).unwrap();
    }
    assert_eq!(r.try_send(&c, b"x"), Err(SendError::Full));
    assert!(r.is_full());
    // A taken but unreleased record still holds its space.
    let g = r.try_recv(NO_LANE).unwrap();
    assert_eq!(r.try_send(&c, b"x"), Err(SendError::Full));
    r.release(g, NO_LANE);
    r.try_send(&c, b"x").unwrap();
}

#[test]
fn maxsize_counts_messages() {
    let (r, c) = ring(4096, 3);
    for i in 0..3 {
        r.try_send(&c, &msg(i, 1)).unwrap();
    }
    assert_eq!(r.try_send(&c, b"x"), Err(SendError::Full));
    assert!(r.is_full());
    // Taking a message frees a slot even before its guard is released.
    let g = r.try_recv(NO_LANE).unwrap();
    r.try_send(&c, b"x").unwrap();
    r.release(g, NO_LANE);
}

#[test]
fn out_of_order_release_reclaims_in_order() {
    let (r, c) = ring(256, 0);
    for i in 0..4 {
        r.try_send(&c, &msg(i, 5)).unwrap();
    }
    let a = r.try_recv(NO_LANE).unwrap();
    let b = r.try_recv(NO_LANE).unwrap();
    let d = r.try_recv(NO_LANE).unwrap();
    r.release(d, NO_LANE);
    r.release(b, NO_LANE);
    assert_eq!(
        r.try_send(&c, b"y"),
        Err(SendError::Full),
        "a still holds head"
    );
    r.release(a, NO_LANE); // head moves past a, b and d at once
    for _ in 0..3 {
        r.try_send(&c, b"y").unwrap();
    }
    assert_eq!(r.try_send(&c, b"y"), Err(SendError::Full));
}

/// Every message size at every starting offset in the ring: forces padding
/// records at every place they can occur.
#[test]
fn wrap_around_at_every_offset_and_size() {
    let cap = 1024; // 16 granules, max message 512
    for shift in 0..16 {
        for len in [0, 1, 63, 64, 65, 127, 128, 200, 320, 511, 512] {
            let (r, c) = ring(cap, 0);
            for _ in 0..shift {
                r.try_send(&c, b"s").unwrap();
                recv_vec(&r).unwrap();
            }
            for i in 0..40 {
                let m = msg(i, len);
                r.try_send(&c, &m).unwrap();
                assert_eq!(recv_vec(&r).unwrap(), m, "shift {shift} len {len} i {i}");
            }
        }
    }
}

#[test]
fn mixed_sizes_fill_and_drain_many_laps() {
    let (r, c) = ring(2048, 0);
    let mut sent = std::collections::VecDeque::new();
    let mut i = 0usize;
    for round in 0..2000 {
        let len = (round * 37) % 700;
        loop {
            let m = msg(i, len);
            match r.try_send(&c, &m) {
                Ok(()) => {
                    sent.push_back(m);
                    i += 1;
                }
                Err(SendError::Full) => break,
                Err(e) => panic!("{e:?}"),
            }
        }
        for _ in 0..(round % 3 + 1) {
            match recv_vec(&r) {
                Ok(v) => assert_eq!(v, sent.pop_front().unwrap()),
                Err(RecvError::Empty) => assert!(sent.is_empty()),
                Err(e) => panic!("{e:?}"),
            }
        }
    }
    while let Some(m) = sent.pop_front() {
        assert_eq!(recv_vec(&r).unwrap(), m);
    }
}

#[test]
fn close_drains_then_closed() {
    let (r, c) = ring(1024, 0);
    r.try_send(&c, b"1").unwrap();
    r.try_send(&c, b"2").unwrap();
    r.close();
    assert!(r.is_closed());
    assert_eq!(r.try_send(&c, b"3"), Err(SendError::Closed));
    assert_eq!(recv_vec(&r).unwrap(), b"1");
    assert_eq!(recv_vec(&r).unwrap(), b"2");
    assert_eq!(recv_vec(&r), Err(RecvError::Closed));
    assert_eq!(
        r.recv(None, &Backoff::default(), &Pinned(&Cell::new(NO_LANE)))
            .map(|_| ())
            .unwrap_err(),
        RecvError::Closed
    );
}

#[test]
fn cursor_wraps_its_38_bit_space() {
    // Start the ring just below the wrap of the position and sequence space.
    let (r, c) = ring(256, 2);
    let start = Cursor {
        seq: SEQ_MASK - 1,
        pos: POS_MASK - 1, // granule index 3 of lap 2^36 - 1
        closed: false,
    };
    let ctrl = r.ctrl();
    ctrl.tail.store(start.pack(), Ordering::Relaxed);
    ctrl.read.store(start.pack(), Ordering::Relaxed);
    ctrl.head.store(start.pos, Ordering::Relaxed);
    c.head.set(start.pos);
    c.read_seq.set(start.seq);
    for i in 0..50 {
        let m = msg(i, (i * 13) % 128);
        r.try_send(&c, &m).unwrap();
        r.try_send(&c, &m).unwrap();
        assert_eq!(r.try_send(&c, b"z"), Err(SendError::Full));
        assert_eq!(recv_vec(&r).unwrap(), m);
        assert_eq!(recv_vec(&r).unwrap(), m);
    }
}

#[test]
fn corrupted_descriptor_is_an_error_not_a_crash() {
    let (r, c) = ring(256, 0);
    r.try_send(&c, b"ok").unwrap();
    // A buggy peer rewrites the descriptor with a huge length.
    let bad = Desc::new(0, ST_COMMITTED, (1 << 30) - 1);
    r.desc(0).store(bad.pack(), Ordering::Relaxed);
    assert!(matches!(r.try_recv(NO_LANE), Err(RecvError::Corrupted(_))));
}

#[test]
fn timeouts() {
    let (r, c) = ring(256, 1);
    let t0 = Instant::now();
    let d = Duration::from_millis(30);
    assert_eq!(
        r.recv(
            Some(t0 + d),
            &Backoff::new(WaitStrategy::Spin(0)),
            &Pinned(&Cell::new(NO_LANE))
        )
        .unwrap_err(),
        RecvError::Timeout
    );
    assert!(t0.elapsed() >= d);
    r.try_send(&c, b"a").unwrap();
    let t0 = Instant::now();
    assert_eq!(
        r.send(&c, b"b", Some(t0 + d), &Pinned(&c.lane)),
        Err(SendError::Timeout)
    );
    assert!(t0.elapsed() >= d);
    assert_eq!(r.len(), 1, "a timed-out send wrote nothing");
}

#[test]
fn threads_mpmc_exactly_once_and_fifo_per_producer() {
    use std::sync::Arc;
    const P: usize = 4;
    const N: u32 = 20_000;
    let r = Arc::new(Ring::new_heap(4096, 0));
    // Every wait strategy: sleep at once, spin briefly, the default, long.
    const SPIN: [WaitStrategy; 4] = [
        WaitStrategy::Spin(0),
        WaitStrategy::Spin(1),
        WaitStrategy::Adaptive,
        WaitStrategy::Spin(4096),
    ];
    let consumers: Vec<_> = (0..4)
        .map(|i| {
            let r = r.clone();
            std::thread::spawn(move || {
                let mut last = [None::<u32>; P];
                let mut got = Vec::new();
                loop {
                    match r.recv(None, &Backoff::new(SPIN[i]), &Pinned(&Cell::new(NO_LANE))) {
                        Ok(cl) => {
                            // SAFETY: released right after.
                            let p = unsafe { r.payload(&cl) };
                            let prod = p[0] as usize;
                            let seq = u32::from_le_bytes(p[1..5].try_into().unwrap());
                            assert!(p[5..].iter().all(|&b| b == seq as u8), "payload");
                            assert!(last[prod].map_or(true, |l| l < seq), "FIFO per producer");
                            last[prod] = Some(seq);
                            got.push((prod, seq));
                            r.release(cl, NO_LANE);
                        }
                        Err(RecvError::Closed) => return got,
                        Err(e) => panic!("{e:?}"),
                    }
                }
            })
        })
        .collect();
    let producers: Vec<_> = (0..P)
        .map(|p| {
            let r = r.clone();
            std::thread::spawn(move || {
                let c = SendCache {
                    wait: Backoff::new(SPIN[p % SPIN.len()]),
                    ..SendCache::default()
                };
                for seq in 0..N {
                    let len = 5 + (seq as usize * 7 + p) % 300;
                    let mut m = vec![seq as u8; len];
                    m[0] = p as u8;
                    m[1..5].copy_from_slice(&seq.to_le_bytes());
                    r.send(&c, &m, None, &Pinned(&c.lane)).unwrap();
                }
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    r.close();
    let mut seen = vec![vec![false; N as usize]; P];
    for c in consumers {
        for (p, s) in c.join().unwrap() {
            assert!(!seen[p][s as usize], "duplicate {p}/{s}");
            seen[p][s as usize] = true;
        }
    }
    assert!(seen.iter().flatten().all(|&b| b), "every message delivered");
}

/// Moves an empty ring's counters to `pos` / `seq`, as if traffic that
/// crossed no epoch boundary had passed.
fn jump(r: &Ring, pos: u64, seq: u64) {
    let ctrl = r.ctrl();
    let c = Cursor {
        seq,
        pos,
        closed: false,
    }
    .pack();
    ctrl.tail.store(c, Ordering::Relaxed);
    ctrl.read.store(c, Ordering::Relaxed);
    ctrl.head.store(pos, Ordering::Relaxed);
}

/// A sender handle that stays idle while the queue goes round the whole
/// 38-bit position space must not trust its cached `head`: it would alias the
/// current one and claim room over live records. The epoch, bumped at each
/// boundary that real traffic crosses, forces the refresh.
#[test]
fn idle_sender_cache_cannot_alias_after_a_full_position_wrap() {
    let r = Ring::new_heap(512, 0); // 8 granules
    let (idle, busy) = (SendCache::default(), SendCache::default());
    r.try_send(&idle, b"first").unwrap();
    recv_vec(&r).unwrap(); // idle's cache: head 0
                           // Traffic around the whole space: cross each 2^35 boundary for real.
    for k in 1..=(1u64 << (POS_BITS - HEAD_EPOCH_SHIFT)) {
        jump(&r, pos_sub(k << HEAD_EPOCH_SHIFT, 1), 1);
        r.try_send(&busy, b"x").unwrap();
        recv_vec(&r).unwrap();
    }
    // Now fill the ring so that tail wraps to exactly 0, idle's cached head.
    jump(&r, POS_MASK - 7, 1);
    for i in 0..8 {
        r.try_send(&busy, &msg(i, 10)).unwrap();
    }
    assert_eq!(Cursor::unpack(r.ctrl().tail.load(Ordering::Relaxed)).pos, 0);
    assert_eq!(r.try_send(&idle, b"would overwrite"), Err(SendError::Full));
    for i in 0..8 {
        assert_eq!(recv_vec(&r).unwrap(), msg(i, 10));
    }
}

/// The same for `maxsize`: the 25-bit message sequence wraps far sooner.
#[test]
fn idle_sender_cache_cannot_alias_after_a_full_seq_wrap() {
    let r = Ring::new_heap(512, 2);
    let (idle, busy) = (SendCache::default(), SendCache::default());
    r.try_send(&idle, b"first").unwrap();
    recv_vec(&r).unwrap(); // idle's cache: read_seq 0 (loaded before its send)
    for k in 1..=(1u64 << (SEQ_BITS - SEQ_EPOCH_SHIFT)) {
        jump(&r, 0, (k << SEQ_EPOCH_SHIFT) - 1);
        r.try_send(&busy, b"x").unwrap();
        recv_vec(&r).unwrap();
    }
    // Queue 2 messages so that tail.seq wraps to exactly 0, idle's cache.
    jump(&r, 0, SEQ_MASK - 1);
    r.try_send(&busy, b"a").unwrap();
    r.try_send(&busy, b"b").unwrap();
    assert_eq!(r.try_send(&idle, b"third"), Err(SendError::Full));
}

/// Garbage in every shared word -- counters and descriptors, random and
/// valid-looking -- must give errors or nonsense messages, never a panic,
/// an arithmetic overflow (debug build) or an out-of-bounds access.
#[test]
fn garbage_control_block_and_descriptors_never_crash() {
    let mut x = 0x1234_5678_9abc_def0u64;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for round in 0..2000 {
        let r = Ring::new_heap(1024, if round % 2 == 0 { 0 } else { 5 });
        let ctrl = r.ctrl();
        let mut word = |valid_looking: bool| {
            let v = rnd();
            if valid_looking {
                // A plausible descriptor: small length, a real state, tag 0..2.
                Desc {
                    tag: v % 3,
                    owner: (v >> 40) % 256,
                    state: 1 + (v >> 8) % 5,
                    len: ((v >> 16) % 700) as u32,
                }
                .pack()
            } else {
                v
            }
        };
        let biased = round % 3 != 0;
        ctrl.tail.store(word(false) & !(1 << 63), Ordering::Relaxed);
        ctrl.read
            .store(if biased { 0 } else { word(false) }, Ordering::Relaxed);
        ctrl.head
            .store(if biased { 0 } else { word(false) }, Ordering::Relaxed);
        for g in 0..16 {
            r.desc(g).store(word(biased), Ordering::Relaxed);
        }
        let c = SendCache::default();
        let mut held = Vec::new();
        for step in 0..64 {
            let len = (step * 53) % 600;
            let _ = r.try_send(&c, &msg(step, len));
            if let Ok(cl) = r.try_recv(NO_LANE) {
                // SAFETY: taken, released below.
                let p = unsafe { r.payload(&cl) };
                assert!(p.len() <= r.max_len());
                let start = (cl.pos & r.mask) as usize * GRANULE;
                assert!(start + p.len() <= r.capacity(), "payload past the ring");
                held.push(cl);
                if step % 3 == 0 {
                    // Release out of order.
                    let i = step % held.len();
                    r.release(held.swap_remove(i), NO_LANE);
                }
            }
            let _ = (r.len(), r.is_full(), r.is_closed());
        }
        for cl in held {
            r.release(cl, NO_LANE);
        }
    }
}

/// A dead sender's lane note with impossible values (a buggy or hostile
/// peer wrote it) is ignored; a plausible one turns the stuck claim into a
/// SKIP of exactly its footprint.
#[test]
fn lane_notes_are_range_checked_before_recovery() {
    // A lane whose owner holds no liveness lock: dead, on the kernel's word.
    let (fp_bad, pad_bad) = (u64::MAX >> 32, 1u64 << 40);
    for (need, ok) in [
        (0, false),             // empty footprint
        (fp_bad, false),        // footprint far past the ring
        (pad_bad | 1, false),   // padding longer than the ring
        ((1 << 32) | 1, false), // padding that does not end at the ring's end
        (3, false),             // claim longer than half the ring
        (2, true),              // two granules: plausible
    ] {
        let r = Ring::new_heap(256, 0);
        let ctrl = r.ctrl();
        let claim = Cursor {
            seq: 0,
            pos: 0,
            closed: false,
        };
        let after = Cursor {
            seq: 1,
            pos: 2,
            closed: false,
        };
        ctrl.tail.store(after.pack(), Ordering::Relaxed);
        let l = r.lane_opt(0).unwrap();
        l.owner
            .store(lane_owner(0, 1, ROLE_SENDER, true), Ordering::Relaxed);
        l.need.store(need, Ordering::Relaxed);
        l.intent.store(claim.pack() | INTENT_SET, Ordering::Relaxed);
        assert_eq!(r.recover_read(), ok, "need {need:#x}");
        let d = Desc::unpack(r.desc(0).load(Ordering::Relaxed));
        if ok {
            assert_eq!((d.state, d.len), (ST_SKIP, 128));
            assert_eq!(r.try_recv(NO_LANE).unwrap_err(), RecvError::Empty);
            assert_eq!(r.len(), 0, "the skipped claim counts as taken");
        } else {
            assert_eq!(d.state, ST_EMPTY, "need {need:#x}");
        }
    }
}

#[test]
fn a_full_send_takes_the_room_it_needs_when_the_slack_never_comes() {
    use std::sync::Arc;
    use std::time::Duration;
    // Four granules, two 100-byte messages fill them. The consumer holds
    // the second until the third arrives: the slack a full send waits for
    // never comes, and the send must not wait for it past its bound.
    let r = Arc::new(Ring::new_heap(256, 0));
    let c = SendCache::default();
    r.try_send(&c, &[1; 100]).unwrap();
    r.try_send(&c, &[2; 100]).unwrap();
    let r2 = r.clone();
    let producer = std::thread::spawn(move || {
        let c = SendCache::default();
        let t0 = Instant::now();
        r2.send(
            &c,
            &[3; 100],
            Some(t0 + Duration::from_secs(10)),
            &Pinned(&c.lane),
        )
        .unwrap();
    });
    let first = r.try_recv(NO_LANE).unwrap();
    let second = r.try_recv(NO_LANE).unwrap();
    r.release(first, NO_LANE);
    let third = r
        .recv(
            Some(Instant::now() + Duration::from_secs(10)),
            &Backoff::default(),
            &Pinned(&Cell::new(NO_LANE)),
        )
        .expect("the send went ahead with the room it needed");
    // SAFETY: both are taken and released right after.
    assert_eq!(unsafe { r.payload(&second) }, &[2; 100][..]);
    // SAFETY: as above.
    assert_eq!(unsafe { r.payload(&third) }, &[3; 100][..]);
    r.release(second, NO_LANE);
    r.release(third, NO_LANE);
    producer.join().unwrap();
}

#[test]
fn a_full_send_times_out_on_time_while_it_waits_for_slack() {
    use std::time::Duration;
    let (r, c) = ring(256, 0);
    r.try_send(&c, &[1; 100]).unwrap();
    r.try_send(&c, &[1; 100]).unwrap();
    let t0 = Instant::now();
    let d = Duration::from_millis(20);
    assert_eq!(
        r.send(&c, &[2; 100], Some(t0 + d), &Pinned(&c.lane)),
        Err(SendError::Timeout)
    );
    assert!(t0.elapsed() >= d);
}

/// An unbounded ring's records cross blocks; drained, only the block the
/// cursors stand in stays allocated.
#[test]
fn unbounded_ring_crosses_blocks() {
    // Blocks of 4 granules (256 + 32 bytes), one 512-byte unit each.
    let r = Ring::new_heap_overflow(256, 0, Some((16, 8)), u64::MAX);
    let c = SendCache::default();
    for i in 0..20 {
        r.try_send(&c, &msg(i, 100)).unwrap(); // 2 granules: 2 per block
    }
    assert_eq!(r.len(), 20);
    assert_eq!(r.overflow_used(), 10, "ten blocks");
    for i in 0..20 {
        assert_eq!(recv_vec(&r).unwrap(), msg(i, 100));
    }
    assert_eq!(recv_vec(&r), Err(RecvError::Empty));
    assert!(r.overflow_used() <= 1);
}

/// A block's descriptors are zeroed when it is installed: a run that held
/// a large message, whose bytes here read as committed records of the
/// block that reuses the run, never yields them as messages. With the
/// zeroing skipped (`SKIP_ZEROING`) the phantom record comes out.
#[test]
fn a_reused_run_never_yields_phantom_records() {
    for skip in [true, false] {
        blocks::SKIP_ZEROING.with(|s| s.set(skip));
        // Blocks of 4 granules (256 + 32 bytes) in one 512-byte unit.
        let r = Ring::new_heap_overflow(256, 0, Some((4, 8)), u64::MAX);
        let c = SendCache::default();
        // A large message takes unit 0 (its record, block 0: unit 1);
        // bytes 256.. of it are where block 1's descriptors will lie if
        // block 1 reuses unit 0: records of lap 1, committed, 8 bytes.
        let mut large = vec![0u8; 300];
        for o in 0..4u64 {
            let d = Desc::new(tag_of(4 + o, r.shift), ST_COMMITTED, 8);
            large[256 + 8 * o as usize..][..8].copy_from_slice(&d.pack().to_ne_bytes());
        }
        r.try_send(&c, &large).unwrap();
        assert_eq!(recv_vec(&r).unwrap(), large);
        for i in 1..5 {
            r.try_send(&c, &msg(i, 10)).unwrap(); // positions 1..=4
        }
        for i in 1..5 {
            assert_eq!(recv_vec(&r).unwrap(), msg(i, 10));
        }
        let next = recv_vec(&r);
        blocks::SKIP_ZEROING.with(|s| s.set(false));
        if skip {
            assert!(next.is_ok(), "the break shows: {next:?}");
        } else {
            assert_eq!(next, Err(RecvError::Empty), "no phantom record");
        }
    }
}
