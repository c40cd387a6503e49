//! The classic `multiprocessing` program, with shmq: a producer process puts
//! items on a queue, a consumer process gets them until the queue is closed.
//! No sentinel value: `close` ends the stream once it is drained.
//!
//! ```text
//! cargo run --release --example producer_consumer [COUNT]
//! ```
//!
//! The Python it replaces (in full, with the timing and the order check
//! this example also does: `examples/python/producer_consumer.py`):
//!
//! ```python
//! def consumer(q):
//!     n = 0
//!     for i in iter(q.get, None):
//!         assert i == n, f"out of order: got {i}, expected {n}"
//!         n += 1
//!     print(f"consumer (pid {os.getpid()}): received {n} messages in order")
//!
//! if __name__ == "__main__":
//!     count = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
//!     q = multiprocessing.Queue(maxsize=1024)
//!     p = multiprocessing.Process(target=consumer, args=(q,)); p.start()
//!     t0 = time.time()
//!     for i in range(count):
//!         q.put(i)
//!     q.put(None)
//!     print(f"producer: sent {count} messages in {time.time() - t0:.3f} s")
//!     p.join()
//! ```

use shmq::{process, Queue};
use std::time::Instant;

fn consumer(q: Queue) -> Result<(), String> {
    let mut n = 0u64;
    // Until the queue is closed and drained (no sentinel), or the producer
    // is gone: the consumer holds only a receiver.
    for msg in &q.into_receiver() {
        let i = u64::from_le_bytes(msg[..8].try_into().unwrap());
        if i != n {
            return Err(format!("out of order: got {i}, expected {n}"));
        }
        n += 1;
    }
    println!(
        "consumer (pid {}): received {n} messages in order, checksum ok",
        std::process::id()
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    process::init(); // the consumer process runs `consumer` here
    let count: u64 = std::env::args()
        .nth(1)
        .map_or(Ok(1_000_000), |s| s.parse())?;
    let q = Queue::builder().maxsize(1024).create()?;
    let mut child = process::spawn(consumer, &q)?;
    let (tx, t0, mut item) = (q.sender(), Instant::now(), [0u8; 64]);
    for i in 0..count {
        item[..8].copy_from_slice(&i.to_le_bytes());
        tx.send(&item)?;
    }
    q.close(); // instead of q.put(None)
    let secs = t0.elapsed().as_secs_f64();
    let rate = count as f64 / secs / 1e6;
    println!(
        "producer (pid {}): sent {count} messages of 64 bytes in {secs:.3} s ({rate:.2} M msg/s)",
        std::process::id()
    );
    Ok(child.join()?)
}
