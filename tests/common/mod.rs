//! Helpers shared by the integration tests (`mod common;` in each): names,
//! the environment, test messages, and child processes. Not every test
//! binary uses every helper.
#![allow(dead_code)]

use std::process::{Child, Command, ExitStatus, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

// ------------------------------------------------------------ names

/// A name for a named queue or a scratch file, unique to this test binary,
/// `tag` and this process.
pub fn unique_name(tag: &str) -> String {
    format!(
        "shmq-{}-{tag}-{}",
        env!("CARGO_CRATE_NAME"),
        std::process::id()
    )
}

// ------------------------------------------------------------ environment

/// `k` from the environment, parsed; `None` if unset. A value that does
/// not parse fails the test, naming the variable.
pub fn env_parse<T: FromStr>(k: &str) -> Option<T> {
    let v = std::env::var(k).ok()?;
    Some(
        v.parse()
            .unwrap_or_else(|_| panic!("{k}={v:?} does not parse")),
    )
}

/// `k` from the environment, which the parent set; fails the test if not.
pub fn env_var(k: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| panic!("{k} is not set"))
}

/// Property-test cases: `PROPTEST_CASES`, or `default`.
pub fn proptest_cases(default: u32) -> u32 {
    env_parse("PROPTEST_CASES").unwrap_or(default)
}

// ------------------------------------------------------------ messages

/// SplitMix64's finaliser: a cheap, well-mixed 64-bit hash, used to derive
/// message lengths, payloads and identities from (producer, sequence).
pub fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Bytes of a test message's identity: the producer, then the sequence
/// number (little endian). Shorter messages carry a prefix of it.
pub const ID_LEN: usize = 9;

/// Message `seq` of producer `prod`, `len` bytes, into `buf`: its identity
/// (truncated to `len`), then a pattern derived from it, so that a message
/// whose bytes were damaged, mixed with another's or cut short does not
/// pass [`is_message`].
pub fn message(prod: u8, seq: u64, len: usize, buf: &mut Vec<u8>) {
    buf.clear();
    let mut id = [0u8; ID_LEN];
    id[0] = prod;
    id[1..].copy_from_slice(&seq.to_le_bytes());
    buf.extend_from_slice(&id[..len.min(ID_LEN)]);
    let h = splitmix(seq ^ (prod as u64) << 56);
    buf.extend((ID_LEN..len).map(|i| (h >> (i % 8 * 8)) as u8 ^ (i >> 8) as u8));
}

/// The identity `(producer, seq)` a message of at least [`ID_LEN`] bytes
/// carries.
pub fn message_id(m: &[u8]) -> Option<(u8, u64)> {
    let id: [u8; ID_LEN] = m.get(..ID_LEN)?.try_into().ok()?;
    Some((id[0], u64::from_le_bytes(id[1..].try_into().unwrap())))
}

/// Whether `m` is exactly message `seq` of `prod` at its length (`scratch`
/// is reused for the expected bytes).
pub fn is_message(m: &[u8], prod: u8, seq: u64, scratch: &mut Vec<u8>) -> bool {
    message(prod, seq, m.len(), scratch);
    m == &scratch[..]
}

// ------------------------------------------------------------ children

/// This test binary run again with `role_var=role`: for the test binaries
/// without the harness (`main` checks `role_var` first).
pub fn this_binary(role_var: &str, role: &str) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.env(role_var, role);
    c
}

/// This test binary run again as a child process with `SHMQ_ROLE=role`: it
/// runs only the ignored `child_entry` test, which dispatches on the role.
pub fn child(role: &str) -> Command {
    let mut c = this_binary("SHMQ_ROLE", role);
    c.args(CHILD_ARGS)
        // The child's own harness lines would read as our test results;
        // its panics still reach stderr.
        .stdout(Stdio::null());
    c
}

/// The harness arguments that make a test binary run `child_entry` alone.
pub const CHILD_ARGS: [&str; 5] = [
    "--ignored",
    "--exact",
    "child_entry",
    "--nocapture",
    "--test-threads=1",
];

/// Kills this process with SIGKILL at once (a child dying mid-step).
pub fn die() -> ! {
    nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL).unwrap();
    unreachable!("SIGKILL cannot be caught")
}

/// The role a child was started with (`SHMQ_ROLE`), `None` in the parent.
pub fn role() -> Option<String> {
    std::env::var("SHMQ_ROLE").ok()
}

/// Waits for a child, killing it and failing the test if it takes too long
/// (a watchdog: a hang must fail, not block CI).
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

/// [`wait`], and fail the test unless the child succeeded.
pub fn wait_ok(c: Child, limit: Duration, what: &str) {
    let st = wait(c, limit, what);
    assert!(st.success(), "{what} failed: {st}");
}

// ------------------------------------------------------------ memory

/// Bytes of memory the named segment `name` holds (its tmpfs blocks).
pub fn allocated(name: &str) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/dev/shm/{name}"))
        .unwrap()
        .blocks()
        * 512
}

/// Waits `ms` in a blocking receive that gets nothing, so that the queue's
/// watcher scans (recovers, reaps, sweeps the overflow area, gives back
/// idle pages).
pub fn scan_for(q: &shmq::Queue, ms: u64) {
    let rx = q.receiver();
    assert!(matches!(
        rx.recv_timeout(Duration::from_millis(ms)),
        Err(shmq::RecvError::Timeout)
    ));
}
