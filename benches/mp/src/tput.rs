//! One-way throughput between processes: producers send for a fixed time,
//! consumers copy every message out into a private buffer (what a consumer
//! that keeps the data does, and what a pipe's `read` does anyway), then
//! drain what is queued when the producers stop. Time runs from the start
//! signal to the last consumer's end; CPU time is every child's user +
//! system time (`wait4`).

use crate::link::{Frames, END};
use crate::proc::{reap, spawn, Control};
use std::io::{BufReader, Read, Write};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// The result of one throughput run.
#[derive(Clone, Debug)]
pub struct Tput {
    pub size: usize,
    pub msgs: u64,
    pub secs: f64,
    pub cpu: f64,
    /// Futex wake-ups shmq issued (senders' and receivers'); 0 for peers.
    pub wakes: u64,
}

impl Tput {
    /// Messages per second.
    pub fn rate(&self) -> f64 {
        self.msgs as f64 / self.secs
    }
    /// Payload gigabytes (1e9 bytes) per second.
    pub fn gbps(&self) -> f64 {
        self.rate() * self.size as f64 / 1e9
    }
    /// CPU seconds (all processes) per million messages.
    pub fn cpu_per_m(&self) -> f64 {
        self.cpu / (self.msgs as f64 / 1e6)
    }
    /// Futex wake-ups per thousand messages.
    pub fn wakes_per_k(&self) -> f64 {
        self.wakes as f64 / (self.msgs as f64 / 1e3)
    }
}

/// How shmq consumers receive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecvMode {
    /// `recv`, one message per call.
    Single,
    /// `recv_batch(256)`: everything ready, one wake-up for all.
    Batch,
}

/// The ring every throughput run uses: 4 MiB, or room for 8 messages.
pub fn capacity(size: usize) -> usize {
    (4 << 20).max(8 * size.next_power_of_two())
}

/// Producers check the stop flag once per this many messages.
fn burst(size: usize) -> u64 {
    if size >= 64 << 10 {
        1
    } else {
        16
    }
}

/// A producer child's body.
pub type Producer = Box<dyn FnOnce(&Control)>;
/// A consumer child's body: returns (messages, sum of first bytes).
pub type Consumer = Box<dyn FnOnce(&Control) -> (u64, u64)>;
/// A child's set-up, run in the child before the start signal (untimed);
/// returns the child's body.
pub type Setup<B> = Box<dyn FnOnce() -> B>;

/// A body that needs no set-up in the child.
pub fn ready<B: 'static>(body: B) -> Setup<B> {
    Box::new(move || body)
}

/// Runs `producers` and `consumers` children for `dur`; `finish` runs in the
/// parent once every producer has exited (closing the channel), before the
/// consumers are waited for.
pub fn run(
    size: usize,
    dur: Duration,
    producers: Vec<Setup<Producer>>,
    consumers: Vec<Setup<Consumer>>,
    finish: impl FnOnce(),
) -> Tput {
    let ctl = Control::new();
    let nc = consumers.len();
    let np = producers.len();
    let mut cons = Vec::new();
    for (i, c) in consumers.into_iter().enumerate() {
        cons.push(spawn(move || {
            let c = c();
            ctl.wait_go();
            let (n, sum) = c(ctl);
            ctl.report(i, n, sum);
        }));
    }
    let mut prods = Vec::new();
    for p in producers {
        prods.push(spawn(move || {
            let p = p();
            ctl.wait_go();
            p(ctl)
        }));
    }
    let t0 = ctl.start((nc + np) as u32);
    std::thread::sleep(dur);
    ctl.stop.store(1, Ordering::SeqCst);
    let mut cpu: f64 = prods.into_iter().map(reap).sum();
    finish();
    cpu += cons.into_iter().map(reap).sum::<f64>();
    let mut msgs = 0;
    let mut end = t0;
    for i in 0..nc {
        msgs += ctl.count[i].load(Ordering::SeqCst);
        end = end.max(ctl.end_ns[i].load(Ordering::SeqCst));
        // Every byte of every message was copied; its first byte is 1..=4.
        let sum = ctl.checksum[i].load(Ordering::SeqCst);
        let n = ctl.count[i].load(Ordering::SeqCst);
        assert!(sum >= n && sum <= 4 * n, "consumer {i} read wrong bytes");
    }
    let sent: u64 = (0..np)
        .map(|p| ctl.count[nc + p].load(Ordering::SeqCst))
        .sum();
    assert_eq!(msgs, sent, "messages lost or duplicated");
    Tput {
        size,
        msgs,
        secs: (end - t0) as f64 * 1e-9,
        cpu,
        wakes: 0,
    }
}

/// Producer `p` of `nc` consumers: records its count in slot `nc + p`.
pub fn producer(
    nc: usize,
    p: usize,
    size: usize,
    mut send: impl FnMut(&[u8]) + 'static,
    end: impl FnOnce() + 'static,
) -> Producer {
    Box::new(move |ctl: &Control| {
        let msg = vec![p as u8 + 1; size];
        let k = burst(size);
        let mut n = 0;
        while !ctl.stopped() {
            for _ in 0..k {
                send(&msg);
            }
            n += k;
        }
        end();
        ctl.count[nc + p].store(n, Ordering::SeqCst);
    })
}

/// shmq: `np` producer and `nc` consumer processes on one queue.
pub fn shmq(size: usize, np: usize, nc: usize, mode: RecvMode, dur: Duration) -> Tput {
    let q = shmq::Queue::builder()
        .capacity_bytes(capacity(size))
        .create()
        .unwrap();
    let consumers = (0..nc)
        .map(|_| {
            let rx = q.receiver();
            ready(Box::new(move |_: &Control| {
                let mut buf = vec![0u8; size];
                let (mut n, mut sum) = (0u64, 0u64);
                let mut take = |m: &[u8]| {
                    buf[..m.len()].copy_from_slice(m);
                    sum += buf[0] as u64;
                    n += 1;
                };
                match mode {
                    RecvMode::Single => {
                        while let Ok(m) = rx.recv() {
                            take(&m);
                        }
                    }
                    RecvMode::Batch => {
                        while let Ok(b) = rx.recv_batch(256) {
                            b.iter().for_each(&mut take);
                        }
                    }
                }
                (n, sum)
            }) as Consumer)
        })
        .collect();
    let producers = (0..np)
        .map(|p| {
            let tx = q.sender();
            ready(producer(nc, p, size, move |m| tx.send(m).unwrap(), || ()))
        })
        .collect();
    // No sentinel: producers are gone, `close` lets consumers drain and stop.
    let mut t = run(size, dur, producers, consumers, || q.close());
    let d = q.diagnostics();
    t.wakes = d.recv_wakes as u64 + d.send_wakes as u64;
    t
}

/// A stream of length-prefixed frames, one producer and one consumer. The
/// consumer reads through a 64 KiB buffer (the peer's best case: fewer
/// `read` calls than `multiprocessing` makes).
pub fn frames<R, W>(r: R, w: W, size: usize, dur: Duration) -> Tput
where
    R: Read + 'static,
    W: Write + 'static,
{
    let consumer = Box::new(move |_: &Control| {
        let mut f = Frames::new(BufReader::with_capacity(1 << 16, r), std::io::sink());
        let mut buf = vec![0u8; size];
        let (mut n, mut sum) = (0u64, 0u64);
        while f.read_frame(&mut buf).is_some() {
            sum += buf[0] as u64;
            n += 1;
        }
        (n, sum)
    }) as Consumer;
    let f = std::rc::Rc::new(std::cell::RefCell::new(Frames::new(std::io::empty(), w)));
    let f2 = f.clone();
    let prod = producer(
        1,
        0,
        size,
        move |m| f.borrow_mut().write_frame(m.len() as u32, m),
        move || f2.borrow_mut().write_frame(END, &[]),
    );
    run(size, dur, vec![ready(prod)], vec![ready(consumer)], || ())
}

/// ipc-channel's byte channel; an empty message marks the end.
pub fn ipc(size: usize, dur: Duration) -> Tput {
    let (tx, rx) = ipc_channel::ipc::bytes_channel().unwrap();
    let consumer = Box::new(move |_: &Control| {
        let mut buf = vec![0u8; size];
        let (mut n, mut sum) = (0u64, 0u64);
        loop {
            let m = rx.recv().unwrap();
            if m.is_empty() {
                break;
            }
            buf[..m.len()].copy_from_slice(&m);
            sum += buf[0] as u64;
            n += 1;
        }
        (n, sum)
    }) as Consumer;
    let tx2 = tx.clone();
    let prod = producer(
        1,
        0,
        size,
        move |m| tx.send(m).unwrap(),
        move || tx2.send(&[]).unwrap(),
    );
    run(size, dur, vec![ready(prod)], vec![ready(consumer)], || ())
}

/// CPU share of one core used by a receiver blocked in `recv_timeout` on an
/// empty queue for `dur` (default spin, then the futex).
pub fn parked_receiver_cpu(dur: Duration) -> f64 {
    let q = shmq::Queue::builder().create().unwrap();
    let rx = q.receiver();
    let pid = spawn(move || {
        assert_eq!(rx.recv_timeout(dur).unwrap_err(), shmq::RecvError::Timeout);
    });
    reap(pid) / dur.as_secs_f64()
}

/// Single-core copy bandwidth (GB/s) for `size`-byte blocks taken in turn
/// from a source as large as the ring the shmq run uses, so the copy sees
/// the same caches as the queue's. The destination starts 1088 bytes into a
/// page-aligned buffer: a destination at the source's offset within a page
/// (both page aligned) makes every load alias a recent store ("4K
/// aliasing") and cut 4 KiB copies to a tenth of their speed here, which
/// would flatter the queue (whose consumers copy into heap buffers).
pub fn memcpy(size: usize, dur: Duration) -> f64 {
    let ring = capacity(size);
    let src = vec![1u8; ring];
    let mut buf = vec![0u8; size + 8192];
    let skew = (4096 - buf.as_ptr() as usize % 4096) % 4096 + 1088;
    let dst = &mut buf[skew..skew + size];
    let t0 = std::time::Instant::now();
    let (mut bytes, mut off) = (0u64, 0usize);
    loop {
        for _ in 0..burst(size) * 4 {
            dst.copy_from_slice(&src[off..off + size]);
            std::hint::black_box(&mut *dst);
            off = (off + size) % ring;
            bytes += size as u64;
        }
        let t = t0.elapsed();
        if t >= dur {
            return bytes as f64 / t.as_secs_f64() / 1e9;
        }
    }
}
