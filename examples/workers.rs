//! A task queue, a result queue and N worker processes: the `multiprocessing`
//! worker pattern, with typed (rkyv) messages read in place.
//!
//! ```text
//! cargo run --release --example workers [WORKERS]
//! ```
//!
//! The Python it replaces:
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

use rkyv::{Archive, Deserialize, Serialize};
use shmq::Queue;
use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

#[derive(Archive, Serialize, Deserialize)]
struct Task {
    id: u32,
    lo: u64,
    hi: u64,
}

#[derive(Archive, Serialize, Deserialize)]
struct Answer {
    id: u32,
    worker_pid: u32,
    primes: u64,
}

const TASKS: u32 = 64;
const SPAN: u64 = 20_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("TASKS").is_some() {
        return worker();
    }
    let workers: usize = match std::env::args().nth(1) {
        Some(s) => s.parse()?,
        None => 4,
    };
    let tasks = Queue::builder().create_typed::<Task>()?;
    let results = Queue::builder().create_typed::<Answer>()?;

    let t0 = Instant::now();
    let mut children = Vec::new();
    for _ in 0..workers {
        let mut cmd = Command::new(std::env::current_exe()?);
        tasks.queue().inherit_into(&mut cmd, "TASKS");
        results.queue().inherit_into(&mut cmd, "RESULTS");
        children.push(cmd.spawn()?);
    }

    let all: Vec<Task> = (0..TASKS)
        .map(|id| Task {
            id,
            lo: id as u64 * SPAN,
            hi: (id as u64 + 1) * SPAN,
        })
        .collect();
    tasks.sender().send_batch(&all)?;
    tasks.close(); // instead of one None per worker

    // Gather, with a timeout on every get: a dead worker cannot hang us.
    let rx = results.receiver();
    let mut total = 0;
    let mut by_worker: BTreeMap<u32, u32> = BTreeMap::new();
    let mut seen = vec![false; TASKS as usize];
    for _ in 0..TASKS {
        let a = rx
            .recv_timeout(Duration::from_secs(30))
            .map_err(|e| format!("waiting for results: {e}"))?;
        let id = a.id.to_native() as usize;
        if std::mem::replace(&mut seen[id], true) {
            return Err(format!("task {id} answered twice").into());
        }
        total += a.primes.to_native();
        *by_worker.entry(a.worker_pid.to_native()).or_default() += 1;
    }
    for c in &mut children {
        let st = c.wait()?;
        if !st.success() {
            return Err(format!("worker failed: {st}").into());
        }
    }
    let limit = TASKS as u64 * SPAN;
    let check = sieve_count(limit);
    println!(
        "{workers} workers answered {TASKS} tasks in {:.3} s: {total} primes below {limit} (sieve: {check}, {})",
        t0.elapsed().as_secs_f64(),
        if total == check { "agrees" } else { "DISAGREES" }
    );
    for (pid, n) in by_worker {
        println!("  worker pid {pid}: {n} tasks");
    }
    if total != check {
        return Err("wrong prime count".into());
    }
    Ok(())
}

fn worker() -> Result<(), Box<dyn std::error::Error>> {
    let tasks = Queue::from_env("TASKS")?.typed::<Task>()?;
    let results = Queue::from_env("RESULTS")?.typed::<Answer>()?;
    let (rx, tx) = (tasks.receiver(), results.sender());
    let pid = std::process::id();
    // Until the task queue is closed and drained.
    let mut tasks = rx.iter();
    for t in &mut tasks {
        // Read in place: `t` is an &ArchivedTask in shared memory.
        let (id, lo, hi) = (t.id.to_native(), t.lo.to_native(), t.hi.to_native());
        drop(t); // give its room back before the work
        let primes = (lo..hi).filter(|&n| is_prime(n)).count() as u64;
        tx.send(&Answer {
            id,
            worker_pid: pid,
            primes,
        })?;
    }
    Ok(tasks.result()?)
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
