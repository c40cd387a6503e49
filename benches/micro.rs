//! In-process micro-benchmarks (divan): the cost of each call on one thread,
//! without a second core or process in the picture. The multi-process
//! figures are in `benches/mp` and docs/BENCHMARKS.md.
//!
//! ```text
//! cargo bench --bench micro              # all
//! cargo bench --bench micro -- typed     # a filter
//! cargo bench --bench micro -- --test    # each once (CI smoke)
//! ```

use divan::counter::{BytesCount, ItemsCount};
use divan::{black_box, Bencher};

fn main() {
    divan::main();
}

/// Message sizes, 64 B to 1 MiB.
const SIZES: [usize; 4] = [64, 4096, 64 << 10, 1 << 20];

/// A queue with room for at least 4 messages of `size`.
fn queue(size: usize) -> shmq::Queue {
    shmq::Queue::builder()
        .capacity_bytes((4 << 20).max(4 * size))
        .create()
        .unwrap()
}

/// `send` then `recv` of one message (copied in, read in place).
#[divan::bench(args = SIZES)]
fn send_recv(bencher: Bencher, size: usize) {
    let q = queue(size);
    let (tx, rx) = (q.sender(), q.receiver());
    let msg = vec![1u8; size];
    bencher.counter(BytesCount::new(size)).bench_local(|| {
        tx.send(&msg).unwrap();
        black_box(rx.recv().unwrap()[size - 1]);
    });
}

/// `try_send` then `try_recv`: the non-blocking pair.
#[divan::bench(args = SIZES)]
fn try_send_try_recv(bencher: Bencher, size: usize) {
    let q = queue(size);
    let (tx, rx) = (q.sender(), q.receiver());
    let msg = vec![1u8; size];
    bencher.counter(BytesCount::new(size)).bench_local(|| {
        tx.try_send(&msg).unwrap();
        black_box(rx.try_recv().unwrap()[size - 1]);
    });
}

/// `try_recv` on an empty queue: the cost of polling.
#[divan::bench]
fn try_recv_empty(bencher: Bencher) {
    let q = queue(64);
    let rx = q.receiver();
    bencher.bench_local(|| black_box(rx.try_recv().is_err()));
}

/// `try_send` on a queue full by `maxsize`: the cost of being refused.
#[divan::bench]
fn try_send_full(bencher: Bencher) {
    let q = shmq::Queue::builder().maxsize(1).create().unwrap();
    let tx = q.sender();
    tx.send(b"occupant").unwrap();
    bencher.bench_local(|| black_box(tx.try_send(b"refused").is_err()));
}

/// `send_batch` of 32 messages, then `recv_batch(32)` reading each.
#[divan::bench(args = [64, 4096])]
fn batch_32(bencher: Bencher, size: usize) {
    let q = queue(size);
    let (tx, rx) = (q.sender(), q.receiver());
    let msg = vec![1u8; size];
    let msgs = vec![&msg[..]; 32];
    bencher.counter(ItemsCount::new(32usize)).bench_local(|| {
        assert_eq!(tx.send_batch(&msgs).unwrap(), 32);
        let b = rx.recv_batch(32).unwrap();
        assert_eq!(b.len(), 32);
        black_box(b.iter().map(|m| m[size - 1] as u32).sum::<u32>());
    });
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct Blob {
    id: u64,
    data: Vec<u8>,
}

/// Typed `send` (serialize into scratch, copy in) then `recv`, checked
/// (bytecheck validation in place) or unchecked, reading the last byte.
fn typed(bencher: Bencher, size: usize, checked: bool) {
    let q = shmq::Queue::builder()
        .capacity_bytes((4 << 20).max(8 * size))
        .create_typed::<Blob>()
        .unwrap();
    let (tx, rx) = (q.sender(), q.receiver());
    let blob = Blob {
        id: 7,
        data: vec![1u8; size],
    };
    bencher.counter(BytesCount::new(size)).bench_local(|| {
        tx.send(&blob).unwrap();
        let m = if checked {
            rx.recv().unwrap()
        } else {
            // SAFETY: only this benchmark's TypedSender<Blob> writes here.
            unsafe { rx.recv_unchecked() }.unwrap()
        };
        black_box(m.data[size - 1]);
    });
}

#[divan::bench(args = SIZES)]
fn typed_checked(bencher: Bencher, size: usize) {
    typed(bencher, size, true);
}

#[divan::bench(args = SIZES)]
fn typed_unchecked(bencher: Bencher, size: usize) {
    typed(bencher, size, false);
}
