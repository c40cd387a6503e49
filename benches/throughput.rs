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

fn shmq_run(size: usize, n: u64) -> f64 {
    let q = shmq::Queue::builder()
        .capacity_bytes(4 << 20)
        .create()
        .unwrap();
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
}
