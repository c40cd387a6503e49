use super::*;

#[test]
fn guard_points_into_the_mapping() {
    let q = Queue::builder().capacity_bytes(4096).create().unwrap();
    q.sender().send(b"zero copy").unwrap();
    let rx = q.receiver();
    let g = rx.recv().unwrap();
    assert!(rx.is_in_shared_memory(g.as_ptr()));
    assert_eq!(g.as_ptr() as usize % 64, 0, "payload is 64-byte aligned");
    let v = b"zero copy".to_vec();
    assert!(!rx.is_in_shared_memory(v.as_ptr()));
}

#[test]
fn handles_are_send_and_clone() {
    fn send<T: Send + Clone>() {}
    send::<Sender>();
    send::<Receiver>();
    send::<Queue>();
}

#[test]
fn handles_share_their_processs_lanes() {
    let q = Queue::builder().capacity_bytes(4096).create().unwrap();
    let seen = |q: &Queue| {
        let d = q.diagnostics();
        (d.senders, d.receivers)
    };
    // One lane per role for the whole process, however many handles.
    let tx = q.sender();
    let rxs: Vec<_> = (0..3).map(|_| q.receiver()).collect();
    let tx2 = tx.clone();
    let many: Vec<_> = (0..10_000).map(|_| tx.clone()).collect();
    assert_eq!(seen(&q), (1, 1));
    drop(tx);
    drop(many);
    drop(rxs);
    assert_eq!(seen(&q), (1, 0), "the last receiver gave the lane back");
    drop(tx2);
    assert_eq!(seen(&q), (0, 0));
    // Every lane held elsewhere: a process with no lane of a role gets
    // none, and says so.
    let ring = q.ring();
    let taken: Vec<u16> = std::iter::from_fn(|| ring.join(ROLE_SENDER, proc::pid()).ok()).collect();
    assert_eq!(
        taken.len(),
        crate::layout::LANES - 1,
        "the queue handle holds one"
    );
    let extra = q.receiver();
    assert_eq!(extra.try_recv().unwrap_err(), RecvError::TooManyHandles);
    // Or at once, from the fallible constructors.
    assert_eq!(q.try_receiver().unwrap_err(), RecvError::TooManyHandles);
    ring.leave_lane(taken[0], ROLE_SENDER);
    assert_eq!(
        extra.try_recv().unwrap_err(),
        RecvError::Empty,
        "a lane freed up"
    );
    // The receiver took the freed lane: none is left for a first sender.
    assert_eq!(q.try_sender().unwrap_err(), SendError::TooManyHandles);
    for l in &taken[1..] {
        ring.leave_lane(*l, ROLE_SENDER);
    }
}

#[test]
fn receivers_learn_that_every_sender_is_gone() {
    let q = Queue::builder().capacity_bytes(4096).create().unwrap();
    let rx = q.receiver();
    // A `Queue` handle could still send: receivers wait.
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(150)).unwrap_err(),
        RecvError::Timeout
    );
    let tx = q.sender();
    let rx2 = q.receiver();
    drop(q);
    tx.send(b"last words").unwrap();
    let waiter = std::thread::spawn(move || {
        let first = rx2.recv().map(|m| m.to_vec());
        (first, rx2.recv().map(|m| m.to_vec()))
    });
    std::thread::sleep(Duration::from_millis(50));
    drop(tx);
    let (first, second) = waiter.join().unwrap();
    assert_eq!(first.unwrap(), b"last words", "drained first");
    assert_eq!(second.unwrap_err(), RecvError::Disconnected);
    // Known at the call: no waiting for a slice.
    let t = Instant::now();
    assert_eq!(rx.recv().unwrap_err(), RecvError::Disconnected);
    assert!(t.elapsed() < Duration::from_millis(50), "{:?}", t.elapsed());
}

#[test]
fn a_live_queue_handle_keeps_receivers_waiting() {
    // Python's pattern: the parent keeps the queue, the producers come
    // and go, and a sentinel comes last from a fresh sender.
    let q = Queue::builder().capacity_bytes(4096).create().unwrap();
    let rx = q.receiver();
    let consumer = std::thread::spawn(move || {
        let mut got = Vec::new();
        loop {
            match rx.recv() {
                Ok(m) if &*m == b"STOP" => return Ok(got),
                Ok(m) => got.push(m.to_vec()),
                Err(e) => return Err(e),
            }
        }
    });
    for i in 0..3u8 {
        q.sender().send(&[i]).unwrap(); // a sender per send
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(150));
    q.sender().send(b"STOP").unwrap();
    assert_eq!(
        consumer.join().unwrap(),
        Ok(vec![vec![0], vec![1], vec![2]])
    );
}

#[test]
fn senders_learn_that_every_receiver_is_gone() {
    let q = Queue::builder()
        .capacity_bytes(4096)
        .maxsize(1)
        .create()
        .unwrap();
    let tx = q.sender();
    let rx = q.receiver();
    drop(q);
    tx.send(b"fills it").unwrap();
    let blocked = std::thread::spawn(move || tx.send(b"waits"));
    std::thread::sleep(Duration::from_millis(50));
    drop(rx);
    assert_eq!(blocked.join().unwrap(), Err(SendError::Disconnected));
}

#[test]
fn close_wakes_blocked_threads() {
    let q = Queue::builder()
        .capacity_bytes(256)
        .maxsize(1)
        .create()
        .unwrap();
    let tx = q.sender();
    tx.send(b"x").unwrap();
    let q2 = q.clone();
    let blocked_sender = std::thread::spawn(move || q2.sender().send(b"y"));
    let q3 = Queue::builder().create().unwrap();
    let q4 = q3.clone();
    let blocked_receiver = std::thread::spawn(move || q4.receiver().recv().map(|_| ()));
    std::thread::sleep(Duration::from_millis(50));
    q.close();
    q3.close();
    assert_eq!(blocked_sender.join().unwrap(), Err(SendError::Closed));
    assert_eq!(blocked_receiver.join().unwrap(), Err(RecvError::Closed));
    assert_eq!(&*q.receiver().recv().unwrap(), b"x", "drain after close");
}

#[test]
fn handles_that_never_spin_are_woken_every_time() {
    // maxsize 1 and no spinning: nearly every hand-off parks one side.
    let q = Queue::builder().maxsize(1).create().unwrap();
    let mut rx = q.receiver();
    rx.set_wait_strategy(WaitStrategy::Spin(0));
    assert_eq!(
        rx.clone().wait_strategy(),
        WaitStrategy::Spin(0),
        "clones keep the setting"
    );
    let consumer = std::thread::spawn(move || {
        let mut next = 0u32;
        while let Ok(m) = rx.recv() {
            assert_eq!(*m, next.to_le_bytes());
            next += 1;
        }
        next
    });
    let mut tx = q.sender();
    tx.set_wait_strategy(WaitStrategy::Spin(0));
    assert_eq!(
        tx.clone().wait_strategy(),
        WaitStrategy::Spin(0),
        "clones keep the setting"
    );
    for i in 0..20_000u32 {
        tx.send(&i.to_le_bytes()).unwrap();
    }
    q.close();
    assert_eq!(consumer.join().unwrap(), 20_000);
    assert!(q.diagnostics().recv_wakes > 0, "the receiver slept");
}

#[test]
fn builder_debug_is_readable() {
    let b = format!("{:?}", Queue::builder().maxsize(3).overflow_bytes(100_000));
    assert_eq!(
        b,
        "Builder { capacity_bytes: 1048576, maxsize: 3, mode: 0o600, message_type: \"bytes\", overflow_bytes: 131072, bytes: \"the ring's\" }"
    );
    let t = format!("{:?}", Queue::builder().message_type::<u64>());
    assert!(
        t.contains("maxsize: \"none\"") && t.contains("message_type: \"u64\""),
        "{t}"
    );
}
