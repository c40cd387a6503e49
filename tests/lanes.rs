//! Handles cost no lane (issue 25): a process's threads share its few
//! lanes of a queue, one operation at a time, however many handles they
//! clone. (Before: a lane per handle, so the 255th receiver of 1,000
//! threads got `TooManyHandles`.)

use shmq::{Queue, RecvError};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);

/// Runs `n` threads with small stacks.
fn spawn_many<T: Send + 'static>(
    n: usize,
    f: impl Fn(usize) -> T + Send + Sync + 'static,
) -> Vec<thread::JoinHandle<T>> {
    let f = Arc::new(f);
    (0..n)
        .map(|i| {
            let f = f.clone();
            thread::Builder::new()
                .stack_size(128 << 10)
                .spawn(move || f(i))
                .unwrap()
        })
        .collect()
}

/// 1,000 threads each clone a `Receiver` and block in `recv` at once; 1,000
/// messages go out; each thread gets exactly one, none is refused a lane,
/// and the process never holds more than 8 receiving lanes.
#[test]
fn a_thousand_threads_each_with_a_receiver() {
    const N: usize = 1000;
    let q = Queue::builder().create().unwrap();
    let rx = q.receiver();
    let base = q.diagnostics().lanes_here;
    let ready = Arc::new(Barrier::new(N + 1));
    let threads = {
        let ready = ready.clone();
        let rx = std::sync::Mutex::new(rx.clone());
        spawn_many(N, move |_| {
            let rx = rx.lock().unwrap().clone();
            ready.wait();
            rx.recv_timeout(LONG)
                .map(|m| u32::from_le_bytes(m[..4].try_into().unwrap()))
        })
    };
    ready.wait();
    // Let most of them reach their sleep.
    thread::sleep(Duration::from_millis(200));
    let tx = q.sender();
    for i in 0..N as u32 {
        tx.send(&i.to_le_bytes()).unwrap();
    }
    let mut got: Vec<u32> = threads
        .into_iter()
        .map(|t| {
            t.join()
                .unwrap()
                .expect("every thread got a lane and a message")
        })
        .collect();
    got.sort_unstable();
    assert_eq!(
        got,
        (0..N as u32).collect::<Vec<_>>(),
        "each message exactly once"
    );
    let d = q.diagnostics();
    // One sending lane, and at most 8 receiving ones.
    assert!(d.lanes_here <= base + 1 + 8, "{d}");
    assert_eq!(rx.try_recv().unwrap_err(), RecvError::Empty);
}

/// Many threads asleep in `recv` hold no lane: another thread of the
/// process can still release what it holds and take more. (A sleeper that
/// kept its lane would leave none for the release once every slot slept,
/// and the process would wait on itself.)
#[test]
fn sleeping_receivers_leave_the_lanes_to_the_others() {
    const SLEEPERS: usize = 20;
    let q = Queue::builder().capacity_bytes(4096).create().unwrap();
    let (tx, rx) = (q.sender(), q.receiver());
    tx.send(b"held").unwrap();
    let held = rx.recv().unwrap();
    let ready = Arc::new(Barrier::new(SLEEPERS + 1));
    let sleepers = {
        let ready = ready.clone();
        let rx = std::sync::Mutex::new(rx.clone());
        spawn_many(SLEEPERS, move |_| {
            let rx = rx.lock().unwrap().clone();
            ready.wait();
            rx.recv_timeout(LONG).map(|m| m.to_vec())
        })
    };
    ready.wait();
    thread::sleep(Duration::from_millis(300));
    // Every slot's lane is free while they sleep: this release and the
    // sends and receives below each lease one.
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watchdog = {
        let done = done.clone();
        thread::spawn(move || {
            for _ in 0..200 {
                if done.load(std::sync::atomic::Ordering::Relaxed) {
                    return;
                }
                thread::sleep(Duration::from_millis(100));
            }
            eprintln!("the process waited on itself for a lane");
            std::process::abort();
        })
    };
    drop(held);
    for _ in 0..SLEEPERS {
        tx.send(b"wake").unwrap();
    }
    for s in sleepers {
        assert_eq!(s.join().unwrap().unwrap(), b"wake");
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    watchdog.join().unwrap();
}

/// Threads that send at once past the 8 slots wait for one (no error), and
/// every message arrives once.
#[test]
fn more_busy_threads_than_slots_wait_their_turn() {
    const N: usize = 64;
    const EACH: u32 = 2000;
    let q = Queue::builder().capacity_bytes(1 << 16).create().unwrap();
    let rx = q.receiver();
    let tx = std::sync::Mutex::new(q.sender());
    let producers = spawn_many(N, move |p| {
        let tx = tx.lock().unwrap().clone();
        for i in 0..EACH {
            tx.send(&[(p as u32).to_le_bytes(), i.to_le_bytes()].concat())
                .unwrap();
        }
    });
    let mut next = vec![0u32; N];
    let mut most = 0;
    for k in 0..N as u32 * EACH {
        if k % 1000 == 0 {
            most = most.max(q.diagnostics().lanes_here);
        }
        let m = rx.recv_timeout(LONG).unwrap();
        let p = u32::from_le_bytes(m[..4].try_into().unwrap()) as usize;
        let i = u32::from_le_bytes(m[4..8].try_into().unwrap());
        assert_eq!(i, next[p], "FIFO per producer");
        next[p] += 1;
    }
    for p in producers {
        p.join().unwrap();
    }
    // The queue's, the receiver's, and at most 8 for the senders.
    assert!(most <= 1 + 1 + 8, "{most} lanes held at once");
}

/// More handles than slots, all busy at once, so that slots are taken over
/// from handle to handle all the time: 24 producer threads `try_send` in a
/// loop, 24 consumer threads receive, each holding its last message's
/// guard while it takes the next (so releases, too, enter slots taken over
/// meanwhile). Every message arrives exactly once, in order per producer
/// as each consumer saw it.
#[test]
fn takeovers_lose_and_duplicate_nothing() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    const P: usize = 24;
    const C: usize = 24;
    const EACH: u32 = 3000;
    let q = Queue::builder().capacity_bytes(1 << 14).create().unwrap();
    let tx = std::sync::Mutex::new(q.sender());
    let producers = spawn_many(P, move |p| {
        let tx = tx.lock().unwrap().clone();
        for i in 0..EACH {
            let m = [(p as u32).to_le_bytes(), i.to_le_bytes()].concat();
            loop {
                match tx.try_send(&m) {
                    Ok(()) => break,
                    Err(shmq::SendError::Full) => thread::yield_now(),
                    Err(e) => panic!("send: {e}"),
                }
            }
        }
    });
    let taken = Arc::new(AtomicUsize::new(0));
    let rx = std::sync::Mutex::new(q.receiver());
    let consumers = {
        let taken = taken.clone();
        spawn_many(C, move |_| {
            let rx = rx.lock().unwrap().clone();
            let mut got = Vec::new();
            let mut last = None;
            while taken.load(Ordering::Relaxed) < P * EACH as usize {
                match rx.recv_timeout(Duration::from_millis(20)) {
                    Ok(m) => {
                        taken.fetch_add(1, Ordering::Relaxed);
                        let p = u32::from_le_bytes(m[..4].try_into().unwrap());
                        let i = u32::from_le_bytes(m[4..8].try_into().unwrap());
                        got.push((p, i));
                        // Released when the next one is taken.
                        last = Some(m);
                    }
                    Err(RecvError::Timeout) => last = None,
                    Err(e) => panic!("recv: {e}"),
                }
            }
            drop(last);
            got
        })
    };
    for p in producers {
        p.join().unwrap();
    }
    let mut all = Vec::new();
    for c in consumers {
        let got = c.join().unwrap();
        let mut next = [0u32; P];
        for &(p, i) in &got {
            assert!(
                i >= next[p as usize],
                "producer {p}'s {i} after {}",
                next[p as usize]
            );
            next[p as usize] = i + 1;
        }
        all.extend(got);
    }
    all.sort_unstable();
    let want: Vec<_> = (0..P as u32)
        .flat_map(|p| (0..EACH).map(move |i| (p, i)))
        .collect();
    assert!(
        all == want,
        "{} messages taken, {} sent",
        all.len(),
        want.len()
    );
    assert_eq!(q.receiver().try_recv().unwrap_err(), RecvError::Empty);
}
