//! Processes and the shared control block every run uses.
//!
//! Children are made with `fork` (as Python's `multiprocessing` does on
//! Linux), so every mechanism, shmq's queues as much as the pipes, sockets
//! and ipc-channel's sockets, is created once in the parent and inherited.
//! The benchmark never starts a thread, so forking is sound.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// Most children a run starts (4 producers + 4 consumers + slack).
pub const MAX_CHILDREN: usize = 16;

/// Wall clock shared by every process: `CLOCK_MONOTONIC` in nanoseconds.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// `size` zeroed bytes of `MAP_SHARED` anonymous memory: shared with every
/// child forked afterwards. Never unmapped (the benchmark is short-lived).
pub fn shared_bytes(size: usize) -> *mut u8 {
    // SAFETY: a fresh anonymous mapping; no existing memory is affected.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert!(p != libc::MAP_FAILED, "mmap failed");
    p.cast()
}

/// The start line and the results board of one run, in shared memory.
/// All-zero bytes are a valid value (atomics only).
#[repr(C, align(128))]
pub struct Control {
    /// Children that are set up and waiting for `go`.
    pub ready: AtomicU32,
    pub go: AtomicU32,
    /// Producers stop when this becomes non-zero.
    pub stop: AtomicU32,
    _pad: [u8; 116],
    /// Per child: messages handled and the time it finished.
    pub count: [AtomicU64; MAX_CHILDREN],
    pub end_ns: [AtomicU64; MAX_CHILDREN],
    pub checksum: [AtomicU64; MAX_CHILDREN],
}

impl Control {
    /// A fresh board, shared with the children forked after this call.
    pub fn new() -> &'static Control {
        let p = shared_bytes(std::mem::size_of::<Control>());
        // SAFETY: zeroed, aligned (page), and every field is an atomic for
        // which all-zero is a valid value; the mapping is never unmapped.
        unsafe { &*(p as *const Control) }
    }

    /// Child side: report ready and wait (sleeping, not spinning, so that
    /// children started early do not slow the rest) for `go`.
    pub fn wait_go(&self) {
        self.ready.fetch_add(1, Ordering::SeqCst);
        while self.go.load(Ordering::SeqCst) == 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Parent side: wait until `n` children are ready, then start them all.
    /// Returns the start time.
    pub fn start(&self, n: u32) -> u64 {
        while self.ready.load(Ordering::SeqCst) < n {
            std::thread::sleep(Duration::from_micros(200));
        }
        let t = now_ns();
        self.go.store(1, Ordering::SeqCst);
        t
    }

    pub fn stopped(&self) -> bool {
        // Relaxed: a flag polled in a loop; a late look costs one message.
        self.stop.load(Ordering::Relaxed) != 0
    }

    /// Child side: record the result of child `i`.
    pub fn report(&self, i: usize, count: u64, checksum: u64) {
        self.count[i].store(count, Ordering::SeqCst);
        self.checksum[i].store(checksum, Ordering::SeqCst);
        self.end_ns[i].store(now_ns(), Ordering::SeqCst);
    }
}

/// A forked child that runs `f` and exits (0, or 101 if `f` panicked).
pub fn spawn(f: impl FnOnce()) -> libc::pid_t {
    // SAFETY: the benchmark has a single thread, so the child's copy of the
    // address space is consistent (no lock held by a vanished thread).
    match unsafe { libc::fork() } {
        -1 => panic!("fork: {}", std::io::Error::last_os_error()),
        0 => {
            let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_ok();
            // SAFETY: `_exit` skips the parent's atexit handlers and stdio
            // buffers, which belong to the parent.
            unsafe { libc::_exit(if ok { 0 } else { 101 }) }
        }
        pid => pid,
    }
}

/// Waits for `pid`; panics if it failed. Returns its CPU time (user +
/// system) in seconds.
pub fn reap(pid: libc::pid_t) -> f64 {
    let mut status = 0;
    // SAFETY: all-zero is a valid `rusage`.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid out-pointers; `pid` is our child.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    assert_eq!(r, pid, "wait4: {}", std::io::Error::last_os_error());
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child {pid} failed (status {status:#x})"
    );
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}
