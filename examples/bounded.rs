//! A bounded queue, `maxsize` 3, behaving exactly as Python's `Queue(3)`:
//! `try_recv` on an empty queue fails with `Empty`, a fourth `try_send`
//! fails with `Full`, `send_timeout` gives up with `Timeout`, and a blocking
//! `send` waits until a consumer process takes an item.
//!
//! ```text
//! cargo run --release --example bounded
//! ```
//!
//! The Python it mirrors (in full: `examples/python/bounded.py`):
//!
//! ```python
//! q = multiprocessing.Queue(3)
//! q.get_nowait()                 # queue.Empty
//! q.put(1); q.put(2); q.put(3)
//! q.put_nowait(4)                # queue.Full
//! q.put(4, timeout=0.1)          # queue.Full after 0.1 s
//! Process(target=consumer, args=(q,)).start()
//! q.put(4)                       # blocks until the consumer gets one
//! ```

use shmq::{process, Queue, RecvError, SendError};
use std::time::{Duration, Instant};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    process::init(); // the consumer process runs `consumer` here
    let q = Queue::builder().maxsize(3).create()?;
    let (tx, rx) = (q.sender(), q.receiver());

    match rx.try_recv() {
        Err(RecvError::Empty) => println!("try_recv on an empty queue: Empty"),
        other => return Err(format!("expected Empty, got {other:?}").into()),
    }
    for i in 1..=3u8 {
        tx.send(&[i])?;
        println!("send({i}): ok, len {}", q.len());
    }
    println!("is_full: {}", q.is_full());
    match tx.try_send(&[4]) {
        Err(SendError::Full) => println!("try_send(4): Full"),
        other => return Err(format!("expected Full, got {other:?}").into()),
    }
    let t0 = Instant::now();
    match tx.send_timeout(&[4], Duration::from_millis(100)) {
        Err(SendError::Timeout) => println!(
            "send_timeout(4, 100 ms): Timeout after {} ms",
            t0.elapsed().as_millis()
        ),
        other => return Err(format!("expected Timeout, got {other:?}").into()),
    }

    // A consumer process that starts taking items after 300 ms.
    let mut child = process::spawn(consumer, &q)?;
    let t0 = Instant::now();
    tx.send(&[4])?; // blocks: the queue holds 3
    println!(
        "send(4): blocked {} ms, until the consumer took an item",
        t0.elapsed().as_millis()
    );
    tx.send(&[5])?;
    q.close();
    println!("producer: sent 5 items and closed the queue");
    Ok(child.join()?)
}

fn consumer(q: Queue) -> Result<(), Box<dyn std::error::Error>> {
    let rx = q.receiver();
    std::thread::sleep(Duration::from_millis(300));
    let mut msgs = rx.iter(); // ends at Closed, after the last item
    let got: Vec<u8> = msgs.by_ref().map(|m| m[0]).collect();
    msgs.result()?;
    println!("consumer: got {got:?}, then Closed");
    if got != [1, 2, 3, 4, 5] {
        return Err("items lost or out of order".into());
    }
    Ok(())
}
