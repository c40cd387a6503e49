//! A task queue, a result queue and N worker processes: the `multiprocessing`
//! worker pattern, with typed (rkyv) messages read in place.
//!
//! ```text
//! cargo run --release --example workers [WORKERS]
//! ```
//!
//! The Python it replaces (in full: `examples/python/workers.py`):
//!
//! ```python
//! def worker(tasks, results):
//!     for lo, hi in iter(tasks.get, None):
//!         results.put((lo, count_primes(lo, hi), os.getpid()))
//! tasks, results = Queue(), Queue()
//! ps = [Process(target=worker, args=(tasks, results)) for _ in range(4)]
//! for p in ps: p.start()
//! for t in ranges: tasks.put(t)
//! for p in ps: tasks.put(None)
//! answers = [results.get(timeout=10) for _ in ranges]
//! ```

use shmq::rkyv::{Archive, Deserialize, Serialize};
use shmq::{process, Queue, TypedQueue};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

#[derive(Archive, Serialize, Deserialize)]
#[rkyv(crate = shmq::rkyv)]
struct Task {
    id: u32,
    lo: u64,
    hi: u64,
}

#[derive(Archive, Serialize, Deserialize)]
#[rkyv(crate = shmq::rkyv)]
struct Answer {
    id: u32,
    worker_pid: u32,
    primes: u64,
}

const TASKS: u32 = 64;
const SPAN: u64 = 20_000;

fn worker((tasks, results): (TypedQueue<Task>, TypedQueue<Answer>)) -> Result<(), shmq::SendError> {
    let tx = results.into_sender();
    for t in &tasks.into_receiver() {
        // until the task queue is closed and drained, or the parent is gone
        // `t` is an &ArchivedTask in shared memory: read in place.
        let (id, lo, hi) = (t.id.to_native(), t.lo.to_native(), t.hi.to_native());
        drop(t); // give its room back before the work
        let primes = (lo..hi).filter(|&n| is_prime(n)).count() as u64;
        let worker_pid = std::process::id();
        tx.send(&Answer {
            id,
            worker_pid,
            primes,
        })?;
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    process::init(); // worker processes run `worker` here
    let workers: usize = std::env::args().nth(1).map_or(Ok(4), |s| s.parse())?;
    let tasks = Queue::builder().create_typed::<Task>()?;
    let results = Queue::builder().create_typed::<Answer>()?;
    let t0 = Instant::now();
    let children = (0..workers)
        .map(|_| process::spawn(worker, (&tasks, &results)))
        .collect::<Result<Vec<_>, _>>()?;
    let span = |id: u32| (id as u64 * SPAN, (id as u64 + 1) * SPAN);
    let all = (0..TASKS).map(|id| Task {
        id,
        lo: span(id).0,
        hi: span(id).1,
    });
    tasks.sender().send_batch(&all.collect::<Vec<_>>())?;
    tasks.close(); // instead of one None per worker

    // Gather, with a timeout on every get: a dead worker cannot hang us.
    let rx = results.receiver();
    let (mut total, mut by_worker, mut seen) = (0, BTreeMap::new(), [false; TASKS as usize]);
    for _ in 0..TASKS {
        let a = rx.recv_timeout(Duration::from_secs(30))?;
        if std::mem::replace(&mut seen[a.id.to_native() as usize], true) {
            return Err(format!("task {} answered twice", a.id).into());
        }
        total += a.primes.to_native();
        *by_worker.entry(a.worker_pid.to_native()).or_insert(0) += 1;
    }
    for mut c in children {
        c.join()?;
    }
    let (limit, secs) = (TASKS as u64 * SPAN, t0.elapsed().as_secs_f64());
    let check = sieve_count(limit);
    let agrees = if total == check {
        "agrees"
    } else {
        "DISAGREES"
    };
    println!("{workers} workers answered {TASKS} tasks in {secs:.3} s: {total} primes below {limit} (sieve: {check}, {agrees})");
    for (pid, n) in by_worker {
        println!("  worker pid {pid}: {n} tasks");
    }
    if total != check {
        return Err("wrong prime count".into());
    }
    Ok(())
}

fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    if n % 2 == 0 {
        return n == 2;
    }
    let mut d = 3;
    while d * d <= n {
        if n % d == 0 {
            return false;
        }
        d += 2;
    }
    true
}

fn sieve_count(limit: u64) -> u64 {
    let mut composite = vec![false; limit as usize];
    let mut count = 0;
    for i in 2..limit as usize {
        if !composite[i] {
            count += 1;
            for j in (i * i..limit as usize).step_by(i) {
                composite[j] = true;
            }
        }
    }
    count
}
