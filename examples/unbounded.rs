//! The unbounded queue of every `multiprocessing` tutorial: a producer
//! process puts 20,000 ints and a 10 MiB blob into `Queue()` before anyone
//! reads, and exits. With shmq every item is in shared memory when `send`
//! returns, so the parent may join the producer *before* reading, the
//! order `multiprocessing` documents as a deadlock (its producer's feeder
//! thread waits at exit for a reader).
//!
//! ```text
//! cargo run --release --example unbounded
//! ```
//!
//! The Python it mirrors (`examples/python/unbounded.py`):
//!
//! ```python
//! def producer(q):
//!     for i in range(20_000):
//!         q.put(i)
//!     q.put(b"x" * (10 << 20))
//!
//! if __name__ == "__main__":
//!     q = Queue()
//!     p = Process(target=producer, args=(q,)); p.start()
//!     items = [q.get() for _ in range(20_000)]
//!     blob = q.get()
//!     p.join()
//! ```

use shmq::{process, Queue};

fn producer(q: Queue) -> Result<(), String> {
    let tx = q.sender();
    for i in 0..20_000u64 {
        // Never waits for room: the queue is unbounded.
        tx.try_send(&i.to_le_bytes()).map_err(|e| e.to_string())?;
    }
    tx.send(&vec![b'x'; 10 << 20]).map_err(|e| e.to_string())?;
    println!(
        "producer (pid {}): sent 20000 ints and 10 MiB, exiting",
        std::process::id()
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    process::init(); // the producer process runs `producer` here
    let q = Queue::builder().unbounded().create()?;
    let mut child = process::spawn(producer, &q)?;
    child.join()?; // first: multiprocessing would deadlock here
    println!("parent: producer joined with {} messages waiting", q.len());
    let rx = q.receiver();
    let mut sum = 0u64;
    for expect in 0..20_000u64 {
        let i = u64::from_le_bytes(rx.recv()?[..8].try_into()?);
        if i != expect {
            return Err(format!("out of order: got {i}, expected {expect}").into());
        }
        sum += i;
    }
    let blob = rx.recv()?;
    println!("parent: got 20000 ints in order, sum {sum}");
    println!("parent: got a blob of {} bytes", blob.len());
    Ok(())
}
