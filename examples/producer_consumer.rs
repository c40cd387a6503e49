//! The classic `multiprocessing` program, with shmq: a producer process puts
//! items on a queue, a consumer process gets them until the queue is closed.
//! No sentinel value: `close` ends the stream once it is drained.
//!
//! ```text
//! cargo run --release --example producer_consumer [COUNT]
//! ```
//!
//! The Python it replaces:
//!
//! ```python
//! def consumer(q):
//!     while (item := q.get()) is not None:
//!         ...
//! q = multiprocessing.Queue(maxsize=1024)
//! p = multiprocessing.Process(target=consumer, args=(q,)); p.start()
//! for i in range(count):
//!     q.put(i)
//! q.put(None); p.join()
//! ```

use shmq::Queue;
use std::process::Command;
use std::time::Instant;

const VAR: &str = "SHMQ_EXAMPLE_QUEUE";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os(VAR).is_some() {
        return consumer();
    }
    let count: u64 = match std::env::args().nth(1) {
        Some(s) => s.parse()?,
        None => 1_000_000,
    };
    let q = Queue::builder()
        .capacity_bytes(1 << 20)
        .maxsize(1024)
        .create()?;

    // Start the consumer: this same program, told where the queue is.
    let mut cmd = Command::new(std::env::current_exe()?);
    q.inherit_into(&mut cmd, VAR);
    let mut child = cmd.spawn()?;

    let tx = q.sender();
    let t0 = Instant::now();
    let mut item = [0u8; 64];
    for i in 0..count {
        item[..8].copy_from_slice(&i.to_le_bytes());
        tx.send(&item)?;
    }
    q.close(); // instead of q.put(None)
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "producer (pid {}): sent {count} messages of 64 bytes in {secs:.3} s ({:.2} M msg/s)",
        std::process::id(),
        count as f64 / secs / 1e6
    );
    let status = child.wait()?;
    if !status.success() {
        return Err(format!("consumer failed: {status}").into());
    }
    Ok(())
}

fn consumer() -> Result<(), Box<dyn std::error::Error>> {
    let q = Queue::from_env(VAR)?;
    let rx = q.receiver();
    let (mut n, mut sum, mut expected) = (0u64, 0u64, 0u64);
    // Ends once the queue is closed and drained: no sentinel.
    let mut msgs = rx.iter();
    for msg in &mut msgs {
        let i = u64::from_le_bytes(msg[..8].try_into()?);
        if i != expected {
            return Err(format!("out of order: got {i}, expected {expected}").into());
        }
        expected += 1;
        n += 1;
        sum = sum.wrapping_add(i);
    }
    msgs.result()?; // an error other than Closed, if one cut it short
    let ok = sum == n.saturating_sub(1) * n / 2;
    println!(
        "consumer (pid {}): received {n} messages in order, checksum {}",
        std::process::id(),
        if ok { "ok" } else { "WRONG" }
    );
    if ok {
        Ok(())
    } else {
        Err("checksum mismatch".into())
    }
}
