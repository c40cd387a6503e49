//! Who we are and whether another process is still alive: the identity a
//! handle writes into its lane, and the check a survivor makes before it
//! finishes or undoes a step that a lane says is in progress.
//!
//! A process is named by its pid *and* its start time (field 22 of
//! `/proc/<pid>/stat`, clock ticks since boot), so a pid reused by a new
//! process never passes for the old one, and by the inode of its pid
//! namespace: a pid from another namespace means nothing here, so such a
//! peer is always presumed alive (its half-done steps are never undone).
//!
//! A forked child is a new process with copies of its parent's handles. A
//! `pthread_atfork` child handler bumps [`fork_gen`]; a handle registered
//! under an older generation takes a lane of its own before its next
//! operation (and never frees its parent's).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;

pub(crate) use crate::sync::ProcId;

/// Bumped in every forked child (Relaxed: read and written only by the
/// child's one thread right after `fork`, then read by its threads, which it
/// starts after).
static FORK_GEN: AtomicU64 = AtomicU64::new(1);
static ATFORK: Once = Once::new();

extern "C" fn after_fork_in_child() {
    FORK_GEN.fetch_add(1, Ordering::Relaxed);
}

/// The fork generation of this process (see the module docs).
#[inline]
pub(crate) fn fork_gen() -> u64 {
    FORK_GEN.load(Ordering::Relaxed)
}

/// Installs the fork handler (once per process); call before registering.
pub(crate) fn watch_forks() {
    ATFORK.call_once(|| {
        // SAFETY: the handler is an `extern "C"` function that only does an
        // atomic add, which is async-signal-safe and valid in a fork child.
        let rc = unsafe { nix::libc::pthread_atfork(None, None, Some(after_fork_in_child)) };
        // ENOMEM is the only documented failure; without the handler a
        // forked child would keep using its parent's lanes, so say so loudly
        // in debug builds and carry on (the parent's lanes stay correct).
        debug_assert_eq!(rc, 0, "pthread_atfork failed");
    });
}

/// This process's identity (cached per fork generation, in atomics rather
/// than a lock so that a forked child never meets a lock held by a thread it
/// did not inherit).
pub(crate) fn me() -> ProcId {
    static GEN: AtomicU64 = AtomicU64::new(0);
    static PID: AtomicU64 = AtomicU64::new(0);
    static START: AtomicU64 = AtomicU64::new(0);
    static NS: AtomicU64 = AtomicU64::new(0);
    let gen = fork_gen();
    // Acquire pairs with the Release store of GEN below: the fields stored
    // before it are the ones read here (two threads racing to fill the cache
    // store the same values).
    if GEN.load(Ordering::Acquire) == gen {
        return ProcId {
            pid: PID.load(Ordering::Relaxed) as u32,
            start: START.load(Ordering::Relaxed),
            pidns: NS.load(Ordering::Relaxed),
        };
    }
    let pid = std::process::id();
    let id = ProcId {
        pid,
        start: stat(pid).map(|(_, s)| s).unwrap_or(0),
        pidns: pidns("self").unwrap_or(0),
    };
    PID.store(pid as u64, Ordering::Relaxed);
    START.store(id.start, Ordering::Relaxed);
    NS.store(id.pidns, Ordering::Relaxed);
    GEN.store(gen, Ordering::Release);
    id
}

/// Whether the process that registered `(pid, start, pidns)` may still be
/// running. `false` only when it is certainly gone: no such pid, a zombie,
/// or a pid now owned by a process that started at another time.
pub(crate) fn alive(pid: u32, start: u64, ns: u64) -> bool {
    let mine = me();
    if ns == 0 || mine.pidns == 0 || ns != mine.pidns {
        return true; // cannot judge a pid from another (or unknown) namespace
    }
    if pid == mine.pid {
        return start == 0 || mine.start == 0 || start == mine.start;
    }
    match stat(pid) {
        None => false,
        Some((state, st)) => !matches!(state, b'Z' | b'X') && (start == 0 || st == start),
    }
}

/// Field 3 (state) and field 22 (start time) of `/proc/<pid>/stat`; `None`
/// if there is no such process.
fn stat(pid: u32) -> Option<(u8, u64)> {
    let s = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold anything,
    // so count fields from the last ')'.
    let close = s.iter().rposition(|&b| b == b')')?;
    let mut fields = s[close + 1..]
        .split(|b| b.is_ascii_whitespace())
        .filter(|f| !f.is_empty());
    let state = *fields.next()?.first()?;
    let start = fields.nth(18)?; // fields 4..=21 skipped: 22 is the 19th after state
    let start = std::str::from_utf8(start).ok()?.parse().ok()?;
    Some((state, start))
}

fn pidns(who: &str) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{who}/ns/pid"))
        .ok()
        .map(|m| m.ino())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_is_alive_and_a_stranger_start_time_is_not() {
        let me = me();
        assert!(me.start != 0 && me.pidns != 0, "{me:?}");
        assert!(alive(me.pid, me.start, me.pidns));
        // pid 1 exists, but not with our start time.
        if let Some((_, st)) = stat(1) {
            assert!(!alive(1, st + 1, me.pidns));
            assert!(alive(1, st, me.pidns));
        }
        // Another namespace: presumed alive, whatever the pid.
        assert!(alive(u32::MAX - 1, 1, me.pidns + 1));
    }

    #[test]
    fn exited_child_is_dead_even_as_a_zombie() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let st = stat(pid).map(|(_, s)| s);
        // Wait until it is a zombie (exited, not yet reaped).
        for _ in 0..2000 {
            if stat(pid).map(|(s, _)| s) == Some(b'Z') {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(!alive(pid, st.unwrap_or(0), me().pidns));
        child.wait().unwrap();
        assert!(!alive(pid, st.unwrap_or(0), me().pidns));
    }
}
