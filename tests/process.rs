//! `shmq::process`: children started with `spawn` (arguments, exit
//! status, kill) and the process `Pool` (results matched to tasks, order,
//! panics, worker death, terminate). Its own `main` (no libtest harness):
//! `process::init()` must run first, and a child re-runs this binary.
//!
//! ```text
//! cargo test --test process
//! ```

mod common;

use common::unique_name;
use shmq::process::{self, Pool};
use shmq::{pipe_duplex, Connection, ProcessError, Queue, TaskError, TypedQueue};
use std::time::{Duration, Instant};

const RECORD: &str = "SHMQ_TEST_PROCESS_RECORD";

/// Set (to a file) by `pool_workers_that_cannot_start_fail_the_task`:
/// a worker process appends a byte to the file and exits before
/// `process::init` (as one whose initialisation fails would).
const DIE_AT_START: &str = "SHMQ_TEST_DIE_AT_START";

fn main() {
    if std::env::var_os("SHMQ_PROCESS_CALL").is_some() {
        if let Some(path) = std::env::var_os(DIE_AT_START) {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
            f.write_all(b"x").unwrap();
            std::process::exit(3);
        }
    }
    process::init();
    // Nothing here may hang: fail the run instead.
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(180));
        eprintln!("process tests: still running after 180 s; aborting");
        std::process::abort();
    });
    let tests: &[(&str, fn())] = &[
        (
            "spawn_hands_a_queue_and_joins",
            spawn_hands_a_queue_and_joins,
        ),
        (
            "spawn_hands_every_kind_of_argument",
            spawn_hands_every_kind_of_argument,
        ),
        (
            "join_reports_failure_and_panic",
            join_reports_failure_and_panic,
        ),
        (
            "kill_terminate_and_wait_timeout",
            kill_terminate_and_wait_timeout,
        ),
        (
            "pool_matches_results_to_tasks",
            pool_matches_results_to_tasks,
        ),
        (
            "pool_reports_panics_and_goes_on",
            pool_reports_panics_and_goes_on,
        ),
        (
            "pool_worker_death_fails_only_its_task",
            pool_worker_death_fails_only_its_task,
        ),
        (
            "pool_worker_killed_from_outside",
            pool_worker_killed_from_outside,
        ),
        (
            "pool_timeout_close_join_terminate",
            pool_timeout_close_join_terminate,
        ),
        (
            "pool_workers_exit_when_the_parent_dies",
            pool_workers_exit_when_the_parent_dies,
        ),
        (
            "a_call_for_another_file_is_refused",
            a_call_for_another_file_is_refused,
        ),
        (
            "a_short_task_does_not_wait_behind_a_long_one",
            a_short_task_does_not_wait_behind_a_long_one,
        ),
        (
            "pool_workers_that_cannot_start_fail_the_task",
            pool_workers_that_cannot_start_fail_the_task,
        ),
        (
            "a_set_uid_program_runs_no_call",
            a_set_uid_program_runs_no_call,
        ),
    ];
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let mut ran = 0;
    for (name, test) in tests {
        if filter.as_ref().is_some_and(|f| !name.contains(f.as_str())) {
            continue;
        }
        let t0 = Instant::now();
        test();
        println!("test {name} ... ok ({:.2} s)", t0.elapsed().as_secs_f64());
        ran += 1;
    }
    println!("process tests: {ran} passed");
}

// ---- spawn ---------------------------------------------------------------

fn sum_all(q: Queue) -> Result<(), String> {
    let total: u64 = q
        .receiver()
        .iter()
        .map(|m| u64::from_le_bytes(m[..8].try_into().unwrap()))
        .sum();
    if total == (0..1000).sum::<u64>() {
        Ok(())
    } else {
        Err(format!("wrong sum {total}"))
    }
}

fn spawn_hands_a_queue_and_joins() {
    let q = Queue::builder().maxsize(16).create().unwrap();
    let mut child = process::spawn(sum_all, &q).unwrap();
    let tx = q.sender();
    for i in 0..1000u64 {
        tx.send(&i.to_le_bytes()).unwrap();
    }
    q.close();
    child.join().unwrap();
    assert!(!child.is_alive());
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, PartialEq)]
struct Point {
    x: i32,
    y: i32,
}

type Everything = (
    Queue,
    TypedQueue<Point>,
    Connection,
    (u64, String),
    f64,
    (bool, char),
);

fn check_everything((q, typed, conn, (n, s), f, (b, c)): Everything) -> Result<(), String> {
    if (n, s.as_str(), f, b, c) != (u64::MAX, "héllo wörld = ; @", 0.1 + 0.2, true, 'ß') {
        return Err(format!("plain values arrived wrong: {n} {s:?} {f} {b} {c}"));
    }
    let (rx, typed_rx) = (q.receiver(), typed.receiver());
    let m = rx.recv().map_err(|e| e.to_string())?;
    let p = typed_rx.recv().map_err(|e| e.to_string())?;
    let reply = format!("{}:{}:{}", String::from_utf8_lossy(&m), p.x, p.y);
    conn.send(reply.as_bytes()).map_err(|e| e.to_string())
}

fn spawn_hands_every_kind_of_argument() {
    let q = Queue::builder().create().unwrap();
    let typed = Queue::builder().create_typed::<Point>().unwrap();
    let (mine, theirs) = pipe_duplex().unwrap();
    let args = (
        &q,
        &typed,
        &theirs,
        (u64::MAX, "héllo wörld = ; @"),
        0.1 + 0.2,
        (true, 'ß'),
    );
    let mut child = process::spawn(check_everything, args).unwrap();
    drop(theirs);
    q.sender().send(b"bytes").unwrap();
    typed.sender().send(&Point { x: 3, y: -4 }).unwrap();
    let reply = mine.recv_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!(&*reply, b"bytes:3:-4");
    drop(reply);
    child.join().unwrap();
}

fn fail(code: u8) -> std::process::ExitCode {
    std::process::ExitCode::from(code)
}

/// In a child that panics on purpose: no panic message in the test log.
fn quiet_panics() {
    std::panic::set_hook(Box::new(|_| {}));
}

fn panics(_: ()) {
    quiet_panics();
    panic!("on purpose");
}

fn join_reports_failure_and_panic() {
    let mut c = process::spawn(fail, 7u8).unwrap();
    match c.join() {
        Err(ProcessError::Failed { pid, status }) => {
            assert_eq!(pid, c.pid());
            assert_eq!(status.code(), Some(7));
        }
        other => panic!("expected Failed with code 7, got {other:?}"),
    }
    let mut c = process::spawn(fail, 0u8).unwrap();
    c.join().unwrap();
    let mut c = process::spawn(panics, ()).unwrap();
    let status = c.wait().unwrap();
    assert_eq!(status.code(), Some(101), "a panic exits with 101");
    assert!(
        c.join().is_err(),
        "join after wait still reports the failure"
    );
}

fn sleep_secs(secs: u64) {
    std::thread::sleep(Duration::from_secs(secs));
}

fn kill_terminate_and_wait_timeout() {
    use std::os::unix::process::ExitStatusExt;
    let mut c = process::spawn(sleep_secs, 60u64).unwrap();
    assert!(c.is_alive());
    assert_eq!(c.wait_timeout(Duration::from_millis(50)).unwrap(), None);
    assert!(matches!(
        c.join_timeout(Duration::from_millis(10)),
        Err(ProcessError::Timeout { .. })
    ));
    c.kill().unwrap();
    assert_eq!(c.wait().unwrap().signal(), Some(9));
    c.kill().unwrap(); // a no-op once it has been waited for
    let mut c = process::spawn(sleep_secs, 60u64).unwrap();
    c.terminate().unwrap();
    assert_eq!(c.wait().unwrap().signal(), Some(15));
}

// ---- Pool ----------------------------------------------------------------

fn square(x: u64) -> u64 {
    x * x
}

fn describe(p: Point) -> String {
    format!("({}, {}) from {}", p.x, p.y, std::process::id())
}

fn text_len(s: String) -> u64 {
    s.len() as u64
}

fn doubled(s: String) -> String {
    s.repeat(2)
}

fn big_result(n: u64) -> Vec<u8> {
    vec![7; n as usize]
}

fn pool_matches_results_to_tasks() {
    let pool = Pool::new(3).unwrap();
    assert_eq!(pool.processes(), 3);
    // Results taken in the reverse of the order given.
    let rs: Vec<_> = (0..50u64)
        .map(|i| pool.apply_async(square, &i).unwrap())
        .collect();
    for (i, r) in rs.into_iter().enumerate().rev() {
        assert_eq!(r.get().unwrap(), (i * i) as u64);
    }
    assert_eq!(
        pool.map(square, 0..200u64).unwrap(),
        (0..200u64).map(square).collect::<Vec<_>>()
    );
    let mut got: Vec<u64> = pool
        .imap_unordered(square, (0..100u64).collect::<Vec<_>>())
        .unwrap()
        .map(Result::unwrap)
        .collect();
    got.sort_unstable();
    assert_eq!(got, (0..100u64).map(square).collect::<Vec<_>>());
    // Types other than integers, run in the workers, not here.
    let s = pool.apply(describe, &Point { x: 1, y: 2 }).unwrap();
    assert!(s.starts_with("(1, 2) from "), "{s}");
    assert_ne!(s, format!("(1, 2) from {}", std::process::id()));
    // `map` over more bytes than one message holds: smaller chunks.
    let texts: Vec<String> = (0..20_000).map(|i| "x".repeat(1000 + i % 7)).collect();
    let lens = pool.map(text_len, texts).unwrap();
    assert_eq!(
        lens,
        (0..20_000).map(|i| 1000 + i % 7).collect::<Vec<u64>>()
    );
    // ... whose results may be larger than the arguments.
    let texts: Vec<String> = (0..2_000).map(|i| "z".repeat(2900 + i % 7)).collect();
    let doubles = pool.map(doubled, texts.clone()).unwrap();
    assert!(doubles.iter().zip(&texts).all(|(d, t)| *d == t.repeat(2)));
    // Larger than half a ring: an argument and a result through the
    // queues' overflow areas (the pool's queues have 1 MiB rings).
    let huge = "y".repeat(3 << 20);
    assert_eq!(pool.apply(text_len, &huge).unwrap(), 3 << 20);
    let big = pool.apply(big_result, &(3 << 20)).unwrap();
    assert!(big.len() == 3 << 20 && big.iter().all(|&b| b == 7));
    assert_eq!(pool.apply(big_result, &3).unwrap(), [7, 7, 7]);
    // A dropped handle's result is dropped, not kept.
    drop(pool.apply_async(square, &9).unwrap());
    assert_eq!(pool.apply(square, &10).unwrap(), 100);
}

fn odd_panics(x: u64) -> u64 {
    quiet_panics();
    assert!(x % 2 == 0, "odd input {x}");
    x
}

fn pool_reports_panics_and_goes_on() {
    let pool = Pool::new(2).unwrap();
    let pids = pool.pids();
    let rs: Vec<_> = (0..20u64)
        .map(|i| pool.apply_async(odd_panics, &i).unwrap())
        .collect();
    for (i, r) in rs.into_iter().enumerate() {
        match r.get() {
            Ok(x) => assert_eq!(x, i as u64),
            Err(TaskError::Panicked(msg)) => {
                assert!(
                    i % 2 == 1 && msg.contains(&format!("odd input {i}")),
                    "{msg}"
                )
            }
            Err(e) => panic!("task {i}: {e}"),
        }
    }
    assert_eq!(pool.pids(), pids, "a panic does not cost the worker");
}

/// Records that task `x` ran (on the named queue in `RECORD`), then dies
/// for `x == 0`.
fn record_or_die(x: u64) -> u64 {
    let q = Queue::open(&std::env::var(RECORD).unwrap()).unwrap();
    q.sender().send(&x.to_le_bytes()).unwrap();
    if x == 0 {
        // Killed mid-task, as by the OOM killer.
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
    x
}

fn pool_worker_death_fails_only_its_task() {
    let name = unique_name("pool-record");
    let record = Queue::builder().create_named(&name).unwrap();
    std::env::set_var(RECORD, &name);
    let pool = Pool::new(1).unwrap();
    let before = pool.pids();
    // The dying task first: the ones queued behind it in the same worker's
    // queue run in its successor.
    let rs: Vec<_> = (0..10u64)
        .map(|i| pool.apply_async(record_or_die, &i).unwrap())
        .collect();
    for (i, r) in rs.into_iter().enumerate() {
        match (i, r.get_timeout(Duration::from_secs(60))) {
            (0, Err(TaskError::WorkerDied { pid, .. })) => assert_eq!(pid, before[0]),
            (0, other) => panic!("the dying task gave {other:?}"),
            (i, res) => assert_eq!(res.unwrap(), i as u64),
        }
    }
    assert_ne!(pool.pids(), before, "the dead worker was replaced");
    assert_eq!(pool.processes(), 1);
    // Every task ran exactly once.
    let rx = record.receiver();
    let mut ran: Vec<u64> = std::iter::from_fn(|| rx.try_recv().ok())
        .map(|m| u64::from_le_bytes(m[..8].try_into().unwrap()))
        .collect();
    ran.sort_unstable();
    assert_eq!(ran, (0..10).collect::<Vec<_>>());
    // And the pool goes on.
    assert_eq!(pool.map(square, [3u64, 4]).unwrap(), [9, 16]);
    drop(record);
    Queue::unlink(&name).unwrap();
}

/// Says which process runs it (on the named queue in `RECORD`), then sleeps.
fn announce_then_sleep(ms: u64) -> u64 {
    let q = Queue::open(&std::env::var(RECORD).unwrap()).unwrap();
    q.sender().send(&std::process::id().to_le_bytes()).unwrap();
    sleep_then(ms)
}

fn pool_worker_killed_from_outside() {
    let name = unique_name("pool-announce");
    let record = Queue::builder().create_named(&name).unwrap();
    std::env::set_var(RECORD, &name);
    let pool = Pool::new(2).unwrap();
    let slow = pool.apply_async(announce_then_sleep, &30_000).unwrap();
    let quick: Vec<_> = (0..4u64)
        .map(|i| pool.apply_async(square, &i).unwrap())
        .collect();
    for (i, r) in quick.into_iter().enumerate() {
        assert_eq!(r.get().unwrap(), (i * i) as u64);
    }
    // Kill the worker once it runs the slow task.
    let rx = record.receiver();
    let m = rx.recv_timeout(Duration::from_secs(60)).unwrap();
    let busy = u32::from_le_bytes(m[..4].try_into().unwrap());
    drop(m);
    assert!(pool.pids().contains(&busy));
    let p = nix::unistd::Pid::from_raw(busy as i32);
    nix::sys::signal::kill(p, nix::sys::signal::Signal::SIGKILL).unwrap();
    match slow.get_timeout(Duration::from_secs(60)) {
        Err(TaskError::WorkerDied { pid, status }) => {
            assert_eq!(pid, busy);
            assert!(status.contains('9'), "{status}");
        }
        other => panic!("expected WorkerDied, got {other:?}"),
    }
    assert!(!pool.pids().contains(&busy));
    drop(record);
    Queue::unlink(&name).unwrap();
    assert_eq!(pool.processes(), 2);
    assert_eq!(pool.apply(square, &5).unwrap(), 25);
    // Idle workers killed, tasks given before the pool noticed: a task put
    // in a dead worker's queue and never taken runs in its successor.
    for pid in pool.pids() {
        let p = nix::unistd::Pid::from_raw(pid as i32);
        let _ = nix::sys::signal::kill(p, nix::sys::signal::Signal::SIGKILL);
    }
    std::thread::sleep(Duration::from_millis(5));
    let rs: Vec<_> = (0..6u64)
        .map(|i| pool.apply_async(square, &i).unwrap())
        .collect();
    for (i, r) in rs.into_iter().enumerate() {
        assert_eq!(
            r.get_timeout(Duration::from_secs(60)).unwrap(),
            (i * i) as u64
        );
    }
}

fn sleep_then(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn pool_timeout_close_join_terminate() {
    let mut pool = Pool::new(2).unwrap();
    let r = pool.apply_async(sleep_then, &300).unwrap();
    assert!(!r.is_ready());
    assert!(!r.wait_timeout(Duration::from_millis(10)));
    assert!(r.wait_timeout(Duration::from_secs(60)));
    assert_eq!(r.get().unwrap(), 300);
    assert!(matches!(
        pool.apply_async(sleep_then, &1000)
            .unwrap()
            .get_timeout(Duration::from_millis(20)),
        Err(TaskError::Timeout)
    ));
    assert!(
        matches!(pool.join(), Err(TaskError::Closed)),
        "join before close"
    );
    // close then join: every task given still finishes.
    let rs: Vec<_> = (0..8u64)
        .map(|i| pool.apply_async(sleep_then, &(i * 10)).unwrap())
        .collect();
    pool.close();
    assert!(matches!(
        pool.apply_async(square, &1),
        Err(TaskError::Closed)
    ));
    pool.join().unwrap();
    for (i, r) in rs.into_iter().enumerate() {
        assert_eq!(r.get().unwrap(), i as u64 * 10);
    }
    // terminate: unfinished tasks fail, nothing hangs.
    let pool = Pool::new(2).unwrap();
    let rs: Vec<_> = (0..6u64)
        .map(|_| pool.apply_async(sleep_then, &60_000).unwrap())
        .collect();
    let t0 = Instant::now();
    pool.terminate();
    drop(pool);
    for r in rs {
        assert_eq!(r.get(), Err(TaskError::Terminated));
    }
    assert!(t0.elapsed() < Duration::from_secs(30));
}

/// A process that starts a pool, reports its workers' pids, and waits to
/// be killed.
fn pool_owner(report: Queue) {
    let pool = Pool::new(2).unwrap();
    assert_eq!(pool.apply(square, &3).unwrap(), 9);
    let tx = report.sender();
    for pid in pool.pids() {
        tx.send(&pid.to_le_bytes()).unwrap();
    }
    std::thread::sleep(Duration::from_secs(600));
}

/// Whether `pid` has ended (gone, or a zombie nobody reaped yet).
fn ended(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

fn pool_workers_exit_when_the_parent_dies() {
    let report = Queue::builder().create().unwrap();
    let mut owner = process::spawn(pool_owner, &report).unwrap();
    let rx = report.receiver();
    let workers: Vec<u32> = (0..2)
        .map(|_| {
            let m = rx.recv_timeout(Duration::from_secs(60)).unwrap();
            u32::from_le_bytes(m[..4].try_into().unwrap())
        })
        .collect();
    owner.kill().unwrap();
    owner.wait().unwrap();
    let t0 = Instant::now();
    while !workers.iter().all(|&p| ended(p)) {
        if t0.elapsed() > Duration::from_secs(30) {
            // Orphans would hold the test's output open: end them first.
            for &p in &workers {
                let p = nix::unistd::Pid::from_raw(p as i32);
                let _ = nix::sys::signal::kill(p, nix::sys::signal::Signal::SIGKILL);
            }
            panic!("pool workers {workers:?} outlived their parent");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A child told to run a function measured in another file (its device and
/// inode do not match) or given a malformed call refuses before it jumps
/// anywhere, with the documented status.
fn a_call_for_another_file_is_refused() {
    use std::os::unix::fs::MetadataExt;
    let me = std::env::current_exe().unwrap();
    let m = std::fs::metadata(&me).unwrap();
    // This very file, but offsets outside its code (far away; and 0, the
    // anchor itself as trampoline with a function offset into nowhere).
    let far = format!("1:{}:{}:0:{}", m.dev(), m.ino(), 1i64 << 40);
    let negative = format!("1:{}:{}:{}:0", m.dev(), m.ino(), -(1i64 << 40));
    for (call, says) in [
        ("1:1:1:0:0", "another executable file"),
        ("1:1:1:0", "malformed"),
        ("nonsense", "malformed"),
        (far.as_str(), "outside this program's code"),
        (negative.as_str(), "outside this program's code"),
    ] {
        let out = std::process::Command::new(&me)
            .env("SHMQ_PROCESS_CALL", call)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(process::EXIT_NOT_STARTED.into()),
            "{call}"
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{call}: {err}");
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("process tests"),
            "the refused child ran main"
        );
    }
}

/// Two workers, a long task, then short ones: a short task handed to the
/// long task's worker (queued behind it) is taken back and run by the
/// other worker once that one idles, not after the long task.
fn a_short_task_does_not_wait_behind_a_long_one() {
    let pool = Pool::new(2).unwrap();
    let long = pool.apply_async(sleep_then, &20_000).unwrap();
    let short: Vec<_> = (0..6u64)
        .map(|i| pool.apply_async(sleep_then, &(10 + i)).unwrap())
        .collect();
    let t0 = Instant::now();
    for (i, r) in short.into_iter().enumerate() {
        assert_eq!(
            r.get_timeout(Duration::from_secs(15)).unwrap(),
            10 + i as u64
        );
    }
    assert!(t0.elapsed() < Duration::from_secs(15));
    assert!(!long.is_ready());
    pool.terminate();
    assert_eq!(long.get(), Err(TaskError::Terminated));
}

/// Workers that exit before they can run anything (a broken initialiser):
/// the pool replaces them with a back-off, and after a bounded number in a
/// row fails the task with a clear error instead of respawning for ever
/// (`multiprocessing.Pool` hangs here; this pool did too, starting a
/// worker every 5 ms: 2,304 in 8 s).
fn pool_workers_that_cannot_start_fail_the_task() {
    let path = std::env::temp_dir().join(unique_name("die-at-start"));
    std::fs::write(&path, b"").unwrap();
    std::env::set_var(DIE_AT_START, &path);
    let pool = Pool::new(2).unwrap();
    let t0 = Instant::now();
    let r = pool.apply_async(square, &3u64).unwrap();
    // Replacements inherit the variable too: it stays set until the end.
    let got = r.get_timeout(Duration::from_secs(30));
    std::env::remove_var(DIE_AT_START);
    match got {
        Err(TaskError::Failed(why)) => {
            assert!(why.contains("exited before running a task"), "{why}");
            assert!(why.contains("exit status: 3"), "{why}");
        }
        other => panic!("a task for workers that cannot start gave {other:?}"),
    }
    let took = t0.elapsed();
    // The pool stays usable as an object: more tasks fail at once.
    let r2 = pool.apply_async(square, &4u64).unwrap();
    assert!(matches!(
        r2.get_timeout(Duration::from_secs(5)),
        Err(TaskError::Failed(_))
    ));
    drop(pool);
    let started = std::fs::read(&path).unwrap().len();
    std::fs::remove_file(&path).unwrap();
    eprintln!("  {started} workers started, the task failed after {took:?}");
    assert!(
        (2..=8).contains(&started),
        "{started} workers started: the bound is 5 in a row (plus the first two)"
    );
}

/// A set-uid copy of this program refuses any call named in its
/// environment (`AT_SECURE`: whoever runs it chooses that environment),
/// before it even parses it. Needs root (to give the copy to `nobody`) and
/// a file system that honours set-uid bits; says so and skips otherwise.
fn a_set_uid_program_runs_no_call() {
    use std::os::unix::fs::PermissionsExt;
    // SAFETY: getuid has no preconditions.
    if unsafe { nix::libc::getuid() } != 0 {
        eprintln!("  skipped: making a set-uid copy needs root");
        return;
    }
    let dir = std::env::temp_dir().join(unique_name("suid"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = dir.join("process-suid");
    std::fs::copy(std::env::current_exe().unwrap(), &copy).unwrap();
    std::os::unix::fs::chown(&copy, Some(65534), Some(65534)).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let nosuid = nix::sys::statvfs::statvfs(&dir)
        .unwrap()
        .flags()
        .contains(nix::sys::statvfs::FsFlags::ST_NOSUID);
    let out = std::process::Command::new(&copy)
        .env("SHMQ_PROCESS_CALL", "nonsense")
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    if nosuid {
        eprintln!("  skipped: {} is mounted nosuid", dir.display());
        return;
    }
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(process::EXIT_NOT_STARTED.into()),
        "{err}"
    );
    assert!(err.contains("AT_SECURE"), "{err}");
}
