//! Two processes talking both ways over a duplex pipe, as with Python's
//! `parent, child = multiprocessing.Pipe()`: a short conversation, a round
//! of requests and replies, a round-trip timing, then `close`, which the
//! other end sees as `Closed` (Python's `EOFError`). The Python it mirrors
//! is `examples/python/pipe_duplex.py`; there the child must also close its
//! inherited copy of the parent's end, or the parent's `close()` never
//! reaches it (shmq's `close` is for every process).
//!
//! ```text
//! cargo run --release --example pipe_duplex [ROUND_TRIPS]
//! ```

use shmq::{process, Connection};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    process::init(); // the child process runs `child` here
    let trips: u32 = std::env::args().nth(1).map_or(Ok(100_000), |s| s.parse())?;
    let (parent, child_end) = shmq::pipe_duplex()?;
    let mut child = process::spawn(child, &child_end)?;
    let pid = std::process::id();

    parent.send(format!("hello from the parent (pid {pid})").as_bytes())?;
    println!("parent got: {}", String::from_utf8_lossy(&parent.recv()?));

    // Requests and replies.
    for (a, b) in [(2, 3), (40, 2), (1 << 20, 1 << 20)] {
        parent.send(format!("add {a} {b}").as_bytes())?;
        let reply = parent.recv()?;
        println!("parent: add {a} {b} = {}", String::from_utf8_lossy(&reply));
    }

    // Round trips of a 64-byte message.
    let msg = [7u8; 64];
    let t0 = Instant::now();
    for _ in 0..trips {
        parent.send(&msg)?;
        let back = parent.recv()?;
        if back.len() != msg.len() {
            return Err("bad echo".into());
        }
    }
    let us = t0.elapsed().as_secs_f64() * 1e6 / trips as f64;
    println!("parent: {trips} round trips of 64 bytes, {us:.2} µs each on average");

    parent.close(); // the child's recv returns Closed once it has drained
    Ok(child.join()?)
}

fn child(conn: Connection) -> Result<(), Box<dyn std::error::Error>> {
    let first = conn.recv()?;
    println!("child got: {}", String::from_utf8_lossy(&first));
    drop(first);
    conn.send(format!("hello from the child (pid {})", std::process::id()).as_bytes())?;
    let mut echoed = 0u64;
    let mut msgs = conn.iter(); // ends when the parent closes the pipe
    for m in &mut msgs {
        let reply = match std::str::from_utf8(&m)
            .ok()
            .and_then(|s| s.strip_prefix("add "))
        {
            Some(args) => {
                let sum: u64 = args.split(' ').map(|x| x.parse::<u64>().unwrap_or(0)).sum();
                sum.to_string().into_bytes()
            }
            None => {
                echoed += 1;
                m.to_vec()
            }
        };
        drop(m);
        conn.send(&reply)?;
    }
    msgs.result()?;
    println!("child: echoed {echoed} messages, then saw the parent close the pipe");
    Ok(())
}
