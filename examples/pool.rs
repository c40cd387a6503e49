//! Python's `Pool(3)` program, with shmq's process pool: `apply_async` and
//! `get`, `map`, `imap_unordered`, a task whose worker dies, and the rate
//! of trivial tasks.
//!
//! ```text
//! cargo run --release --example pool [TASKS]
//! ```
//!
//! The Python it mirrors (`examples/python/pool.py`):
//!
//! ```python
//! def square(x):
//!     return x * x
//!
//! if __name__ == "__main__":
//!     with multiprocessing.Pool(3) as pool:
//!         results = [pool.apply_async(square, (i,)) for i in range(10)]
//!         print("apply_async:", [r.get(timeout=10) for r in results])
//!         print("map:", pool.map(square, range(10)))
//!         print("imap_unordered:", sorted(pool.imap_unordered(square, range(10))))
//!         t0 = time.time()
//!         pool.map(square, range(tasks))
//!         map_rate = tasks / (time.time() - t0); t0 = time.time()
//!         [r.get() for r in [pool.apply_async(square, (i,)) for i in range(tasks)]]
//!         apply_rate = tasks / (time.time() - t0)
//!         print(f"{tasks} trivial tasks: map {map_rate:.0f} tasks/s, apply_async {apply_rate:.0f} tasks/s")
//! ```
//! (Python's pool hangs for ever when a worker dies mid-task; shmq's
//! reports that task as failed and starts another worker.)

use shmq::process::{self, AsyncResult, Pool};
use std::time::Instant;

fn square(x: u64) -> u64 {
    x * x
}

fn die(code: i32) -> u64 {
    std::process::exit(code) // as a crash or an OOM kill would
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    process::init(); // workers run their tasks here
    let tasks: u64 = std::env::args().nth(1).map_or(Ok(20_000), |s| s.parse())?;
    let pool = Pool::new(3)?;
    let submit = |n: u64| {
        (0..n)
            .map(|i| pool.apply_async(square, &i))
            .collect::<Result<Vec<_>, _>>()
    };
    let get_all = |rs: Vec<AsyncResult<u64>>| {
        rs.into_iter()
            .map(AsyncResult::get)
            .collect::<Result<Vec<_>, _>>()
    };
    println!("apply_async: {:?}", get_all(submit(10)?)?);
    println!("map: {:?}", pool.map(square, 0..10u64)?);
    let mut unordered: Vec<_> = pool
        .imap_unordered(square, 0..10u64)?
        .collect::<Result<_, _>>()?;
    unordered.sort_unstable();
    println!("imap_unordered: {unordered:?}");
    let died = pool
        .apply(die, &3)
        .expect_err("a dead worker's task gave a result");
    println!("a task whose worker exits: {died}");
    println!(
        "after it: {:?} ({} workers)",
        pool.apply(square, &12)?,
        pool.processes()
    );
    let t0 = Instant::now();
    pool.map(square, 0..tasks)?;
    let map_rate = tasks as f64 / t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    get_all(submit(tasks)?)?;
    let apply_rate = tasks as f64 / t0.elapsed().as_secs_f64();
    println!(
        "{tasks} trivial tasks: map {map_rate:.0} tasks/s, apply_async {apply_rate:.0} tasks/s"
    );
    Ok(())
}
