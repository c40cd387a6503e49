//! Typed send and receive make no heap allocation per message once warm:
//! the sender reuses its scratch buffer and rkyv's thread-local arena, and
//! the receiver validates in place. A counting global allocator checks it.

#![cfg(not(loom))]

use rkyv::{Archive, Deserialize, Serialize};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator, only counting calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

#[derive(Archive, Serialize, Deserialize)]
struct Rec {
    id: u64,
    name: String,
    vals: Vec<u32>,
    kind: Kind,
}

#[derive(Archive, Serialize, Deserialize)]
enum Kind {
    A,
    B(String),
}

#[test]
fn typed_send_and_recv_do_not_allocate_per_message() {
    let q = shmq::Queue::builder()
        .capacity_bytes(1 << 16)
        .create_typed::<Rec>()
        .unwrap();
    let (tx, rx) = (q.sender(), q.receiver());
    let recs: Vec<Rec> = (0..16)
        .map(|i| Rec {
            id: i,
            name: "x".repeat(i as usize * 3),
            vals: (0..i as u32).collect(),
            kind: if i % 2 == 0 {
                Kind::A
            } else {
                Kind::B("y".repeat(i as usize))
            },
        })
        .collect();
    let round = |check: &mut u64| {
        for r in &recs {
            tx.send(r).unwrap();
            let m = rx.recv().unwrap();
            *check += m.id.to_native() + m.vals.len() as u64;
        }
        tx.send_batch(&recs).unwrap();
        let b = rx.recv_batch(recs.len()).unwrap();
        for m in b.iter() {
            *check += m.unwrap().id.to_native();
        }
    };
    let mut check = 0;
    round(&mut check); // warm-up: the scratch buffer and arena grow here
    let before = ALLOCS.load(Ordering::Relaxed);
    for _ in 0..100 {
        round(&mut check);
    }
    let after = ALLOCS.load(Ordering::Relaxed);
    assert!(check > 0);
    // recv_batch keeps its claim list in a Vec: one allocation per batch,
    // none per message.
    assert_eq!(
        after - before,
        100,
        "allocations in 100 rounds of 32 messages"
    );
}
