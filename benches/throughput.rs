//! One-way throughput, one producer thread and one consumer thread, shmq
//! beside the paths it replaces, measured in the same run and reported as
//! ratios (the machine is shared and noisy: absolute figures drift, ratios
//! much less).
//!
//! ```text
//! cargo bench --bench throughput            # full
//! cargo bench --bench throughput -- --quick # seconds, for smoke runs
//! ```
//!
//! Peers: a Unix stream socket carrying length-prefixed frames (the path
//! `multiprocessing.Queue` and `Pipe` take, minus pickling), and
//! `std::sync::mpsc::sync_channel` (in-process only: an upper bound for what
//! a heap queue between threads does). The multi-process benchmark with
//! latency histograms is a separate issue.

use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::net::UnixStream;
use std::thread;
use std::time::Instant;

/// The queue every byte-message run uses: 4 MiB, bounded by bytes only;
/// or unbounded, in blocks of 4 MiB.
fn queue(unbounded: bool) -> shmq::Queue {
    let b = shmq::Queue::builder().capacity_bytes(4 << 20);
    let b = if unbounded { b.unbounded() } else { b };
    b.create().unwrap()
}

fn shmq_run(size: usize, n: u64) -> f64 {
    shmq_run_on(queue(false), size, n)
}

fn shmq_run_on(q: shmq::Queue, size: usize, n: u64) -> f64 {
    let rx = q.receiver();
    let t0 = Instant::now();
    let cons = thread::spawn(move || {
        let mut sum = 0u64;
        while let Ok(m) = rx.recv() {
            sum = sum.wrapping_add(m[0] as u64);
        }
        sum
    });
    let tx = q.sender();
    let msg = vec![1u8; size];
    for _ in 0..n {
        tx.send(&msg).unwrap();
    }
    q.close();
    assert_eq!(cons.join().unwrap(), n);
    t0.elapsed().as_secs_f64()
}

/// `buffered`: the writer batches frames in 64 KiB (fast, but a message
/// waits until the buffer fills: not queue semantics). Unbuffered: one write
/// per message, as `multiprocessing.Queue`'s feeder thread does.
fn socket_run(size: usize, n: u64, buffered: bool) -> f64 {
    let (a, b) = UnixStream::pair().unwrap();
    let t0 = Instant::now();
    let cons = thread::spawn(move || {
        let mut r = BufReader::with_capacity(1 << 16, b);
        let mut buf = vec![0u8; size];
        let mut sum = 0u64;
        let mut len = [0u8; 4];
        while r.read_exact(&mut len).is_ok() {
            let l = u32::from_le_bytes(len) as usize;
            r.read_exact(&mut buf[..l]).unwrap();
            sum = sum.wrapping_add(buf[0] as u64);
        }
        sum
    });
    let mut frame = (size as u32).to_le_bytes().to_vec();
    frame.extend(vec![1u8; size]);
    let mut w = BufWriter::with_capacity(if buffered { 1 << 16 } else { 0 }, a);
    for _ in 0..n {
        w.write_all(&frame).unwrap();
    }
    drop(w);
    assert_eq!(cons.join().unwrap(), n);
    t0.elapsed().as_secs_f64()
}

fn mpsc_run(size: usize, n: u64) -> f64 {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(1024);
    let t0 = Instant::now();
    let cons = thread::spawn(move || rx.iter().map(|m| m[0] as u64).sum::<u64>());
    let msg = vec![1u8; size];
    for _ in 0..n {
        tx.send(msg.clone()).unwrap();
    }
    drop(tx);
    assert_eq!(cons.join().unwrap(), n);
    t0.elapsed().as_secs_f64()
}

/// Batches: `send_batch` of 64 messages, `recv_batch` of up to 256.
fn shmq_batch_run(size: usize, n: u64) -> f64 {
    let q = queue(false);
    let rx = q.receiver();
    let t0 = Instant::now();
    let cons = thread::spawn(move || {
        let mut sum = 0u64;
        while let Ok(b) = rx.recv_batch(256) {
            sum += b.iter().map(|m| m[0] as u64).sum::<u64>();
        }
        sum
    });
    let tx = q.sender();
    let msgs = vec![vec![1u8; size]; 64];
    for _ in 0..n / 64 {
        tx.send_batch(&msgs).unwrap();
    }
    q.close();
    assert_eq!(cons.join().unwrap(), n / 64 * 64);
    t0.elapsed().as_secs_f64()
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct Rec {
    id: u64,
    name: String,
    vals: Vec<u32>,
}

/// Typed messages: a struct with a 16-byte string and 8 integers (about
/// 80 bytes archived), received checked (default) or unchecked, read in
/// place (the consumer sums a field).
fn typed_run(n: u64, checked: bool) -> f64 {
    let q = shmq::Queue::builder()
        .capacity_bytes(4 << 20)
        .create_typed::<Rec>()
        .unwrap();
    let rx = q.receiver();
    let t0 = Instant::now();
    let cons = thread::spawn(move || {
        let mut sum = 0u64;
        loop {
            let r = if checked {
                rx.recv()
            } else {
                // SAFETY: only this benchmark's TypedSender<Rec> writes here.
                unsafe { rx.recv_unchecked() }
            };
            match r {
                Ok(m) => sum += m.vals[0].to_native() as u64,
                Err(_) => break,
            }
        }
        sum
    });
    let tx = q.sender();
    let rec = Rec {
        id: 7,
        name: "sixteen-chars-xx".into(),
        vals: vec![1; 8],
    };
    for _ in 0..n {
        tx.send(&rec).unwrap();
    }
    q.close();
    assert_eq!(cons.join().unwrap(), n);
    t0.elapsed().as_secs_f64()
}

fn best_of(runs: usize, f: impl Fn() -> f64) -> f64 {
    (0..runs).map(|_| f()).fold(f64::INFINITY, f64::min)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (runs, scale) = if quick { (1, 20) } else { (5, 1) };
    println!("one-way throughput, 1 producer thread -> 1 consumer thread, best of {runs}");
    println!(
        "{:>7} {:>10} {:>10} {:>10} {:>10} {:>11} {:>11} {:>11}",
        "size",
        "shmq M/s",
        "sock1 M/s",
        "sockB M/s",
        "mpsc M/s",
        "shmq/sock1",
        "shmq/sockB",
        "shmq/mpsc"
    );
    println!("  sock1: socket, one write per message; sockB: socket, 64 KiB buffered writes");
    for (size, n) in [(64usize, 4_000_000u64), (4096, 400_000), (65536, 40_000)] {
        let n = n / scale;
        let s = n as f64 / best_of(runs, || shmq_run(size, n)) / 1e6;
        let u = n as f64 / best_of(runs, || socket_run(size, n, false)) / 1e6;
        let b = n as f64 / best_of(runs, || socket_run(size, n, true)) / 1e6;
        let m = n as f64 / best_of(runs, || mpsc_run(size, n)) / 1e6;
        println!(
            "{size:>7} {s:>10.3} {u:>10.3} {b:>10.3} {m:>10.3} {:>10.1}x {:>10.1}x {:>10.1}x",
            s / u,
            s / b,
            s / m
        );
    }

    println!();
    println!(
        "unbounded (records in blocks of the overflow area) against bounded, runs interleaved"
    );
    println!(
        "{:>7} {:>12} {:>14} {:>16}",
        "size", "bounded M/s", "unbounded M/s", "unbounded/bounded"
    );
    for (size, n) in [(64usize, 4_000_000u64), (4096, 400_000)] {
        let n = n / scale;
        let (mut bounded, mut unbounded) = (f64::INFINITY, f64::INFINITY);
        for _ in 0..runs {
            bounded = bounded.min(shmq_run_on(queue(false), size, n));
            unbounded = unbounded.min(shmq_run_on(queue(true), size, n));
        }
        let (b, u) = (n as f64 / bounded / 1e6, n as f64 / unbounded / 1e6);
        println!("{size:>7} {b:>12.3} {u:>14.3} {:>15.2}x", u / b);
    }

    println!();
    println!("batches (send_batch of 64, recv_batch up to 256) against single send/recv");
    println!(
        "{:>7} {:>12} {:>12} {:>12}",
        "size", "single M/s", "batch M/s", "batch/single"
    );
    for (size, n) in [(64usize, 4_000_000u64), (4096, 400_000)] {
        let n = n / scale;
        let one = n as f64 / best_of(runs, || shmq_run(size, n)) / 1e6;
        let bat = n as f64 / best_of(runs, || shmq_batch_run(size, n)) / 1e6;
        println!("{size:>7} {one:>12.3} {bat:>12.3} {:>11.2}x", bat / one);
    }

    println!();
    println!("typed (rkyv struct, ~80 B archived: serialize + copy in, read in place) against 64 B of bytes");
    let n = 2_000_000 / scale;
    let bytes = n as f64 / best_of(runs, || shmq_run(64, n)) / 1e6;
    let checked = n as f64 / best_of(runs, || typed_run(n, true)) / 1e6;
    let unchecked = n as f64 / best_of(runs, || typed_run(n, false)) / 1e6;
    println!(
        "  bytes {bytes:.3} M/s; typed checked {checked:.3} M/s ({:.2}x bytes); typed unchecked {unchecked:.3} M/s ({:.2}x bytes; checked/unchecked {:.2}x)",
        checked / bytes,
        unchecked / bytes,
        checked / unchecked
    );
}
