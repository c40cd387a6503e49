//! Runs every example (the binaries `cargo test` builds beside the tests)
//! and checks what it prints, so the README's example commands never rot.

#![cfg(not(loom))]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn example(name: &str) -> PathBuf {
    // target/<profile>/deps/examples-HASH -> target/<profile>/examples/NAME
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        path.exists(),
        "{} not built (cargo test builds examples; run it through cargo)",
        path.display()
    );
    path
}

/// Runs an example with `args`, with a deadline; returns its stdout (its
/// children's output included) after checking that it succeeded.
fn run(name: &str, args: &[&str]) -> String {
    let mut child = Command::new(example(name))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("example {name} did not finish in 120 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "example {name} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn has(out: &str, needle: &str) {
    assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
}

#[test]
fn producer_consumer() {
    let out = run("producer_consumer", &["200000"]);
    has(&out, "sent 200000 messages of 64 bytes");
    has(&out, "received 200000 messages in order, checksum ok");
}

#[test]
fn workers() {
    let out = run("workers", &["3"]);
    has(&out, "3 workers answered 64 tasks");
    has(&out, "98610 primes below 1280000 (sieve: 98610, agrees)");
    assert!(out.matches("  worker pid ").count() <= 3, "{out}");
}

#[test]
fn pipeline() {
    let out = run("pipeline", &["50000"]);
    has(&out, "stage 1 (pid");
    has(&out, "generated 50000 readings from 12 stations");
    has(&out, "transformed 50000 readings");
    has(&out, "50000 records from 12 stations");
    has(&out, "every reading arrived exactly once: yes");
}

#[test]
fn pipe_duplex() {
    let out = run("pipe_duplex", &["10000"]);
    has(&out, "child got: hello from the parent");
    has(&out, "parent got: hello from the child");
    has(&out, "add 40 2 = 42");
    has(&out, "10000 round trips of 64 bytes");
    has(
        &out,
        "child: echoed 10000 messages, then saw the parent close the pipe",
    );
}

#[test]
fn bounded() {
    let out = run("bounded", &[]);
    for line in [
        "try_recv on an empty queue: Empty",
        "send(3): ok, len 3",
        "is_full: true",
        "try_send(4): Full",
        "send_timeout(4, 100 ms): Timeout",
        "until the consumer took an item",
        "consumer: got [1, 2, 3, 4, 5], then Closed",
    ] {
        has(&out, line);
    }
}

#[test]
fn pool() {
    let out = run("pool", &["2000"]);
    has(&out, "apply_async: [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]");
    has(&out, "map: [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]");
    has(&out, "imap_unordered: [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]");
    has(&out, "a task whose worker exits: worker process ");
    has(&out, "died running the task (exit status: 3)");
    has(&out, "after it: 144 (3 workers)");
    has(&out, "2000 trivial tasks: map ");
}

#[test]
fn pipe() {
    let out = run("pipe", &[]);
    has(&out, "Message(42, None, \"hello\")");
}

#[test]
fn unbounded() {
    let out = run("unbounded", &[]);
    has(&out, "sent 20000 ints and 10 MiB, exiting");
    has(&out, "parent: producer joined with 20001 messages waiting");
    has(&out, "parent: got 20000 ints in order, sum 199990000");
    has(&out, "parent: got a blob of 10485760 bytes");
}
