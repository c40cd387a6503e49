//! The `Pipe` example of Python's `multiprocessing` documentation, one way
//! and typed: a child process sends a value through the writing end of a
//! pipe, the parent receives it from the reading end. A `PipeReader` has no
//! `send` and a `PipeWriter` no `recv`: the wrong direction does not
//! compile.
//!
//! ```text
//! cargo run --release --example pipe
//! ```
//!
//! The Python it mirrors (`examples/python/pipe.py`):
//!
//! ```python
//! def f(conn):
//!     conn.send([42, None, "hello"])
//!     conn.close()
//!
//! if __name__ == "__main__":
//!     reader, writer = Pipe(duplex=False)
//!     p = Process(target=f, args=(writer,)); p.start()
//!     print(reader.recv())
//!     p.join()
//! ```

use shmq::rkyv::{Archive, Deserialize, Serialize};
use shmq::{process, PipeWriter, Queue};

#[derive(Archive, Serialize, Deserialize, Debug)]
#[rkyv(crate = shmq::rkyv)]
struct Message(u32, Option<u32>, String);

fn f(conn: PipeWriter) -> Result<(), Box<dyn std::error::Error>> {
    conn.typed::<Message>()?
        .send(&Message(42, None, "hello".into()))?;
    conn.close(); // the reader gets Closed after the message
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    process::init(); // the child runs `f` here
    let (reader, writer) = Queue::builder().message_type::<Message>().create_pipe()?;
    let mut p = process::spawn(f, &writer)?;
    let rx = reader.typed::<Message>()?;
    println!("{:?}", rx.recv()?.deserialize()?);
    p.join()?;
    Ok(())
}
