//! Helpers shared by the process tests (`mod common;` in each).

/// SplitMix64's finaliser: a cheap, well-mixed 64-bit hash, used to derive
/// message lengths, payloads and identities from (producer, sequence).
#[allow(dead_code)] // tests/typed.rs does not use it
pub fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// This test binary run again as a child process with `SHMQ_ROLE=role`: it
/// runs only the ignored `child_entry` test, which dispatches on the role.
#[allow(dead_code)] // not every test binary that shares this module spawns
pub fn child(role: &str) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args([
        "--ignored",
        "--exact",
        "child_entry",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("SHMQ_ROLE", role)
    // The child's own harness lines would read as our test results;
    // its panics still reach stderr.
    .stdout(std::process::Stdio::null());
    c
}

/// Waits for a child, killing it and failing the test if it takes too long
/// (a watchdog: a hang must fail, not block CI).
#[allow(dead_code)]
pub fn wait(mut c: Child, limit: Duration, what: &str) -> ExitStatus {
    let t0 = Instant::now();
    loop {
        if let Some(st) = c.try_wait().unwrap() {
            return st;
        }
        if t0.elapsed() > limit {
            let _ = c.kill();
            let _ = c.wait();
            panic!("{what} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
