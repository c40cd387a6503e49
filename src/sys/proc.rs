//! Processes: the fork generation, and whether the owner of a lane is alive,
//! answered by the kernel rather than by parsing `/proc`.
//!
//! # Liveness
//!
//! Each process that owns lanes in a ring opens the segment's file once
//! more, privately (a new *open file description*, CLOEXEC), and holds an
//! OFD read lock (`F_OFD_SETLK`) on one byte per lane it owns
//! (`layout::LOCK_BASE + ring * LANES + lane`). Any process asks whether
//! lane `i` is alive with `F_OFD_GETLK` on that byte through its own segment
//! fd, which never holds locks: "locked" means alive.
//!
//! Why this holds where `/proc` does not:
//! * The kernel drops the lock when the last fd of that description
//!   closes, which happens when the process dies in any way (SIGKILL, OOM,
//!   a crash) or exits: positive evidence of death, from the kernel.
//! * Threads share the description: a process whose main thread exited
//!   while a worker runs still holds its locks (a `/proc/<pid>/stat`
//!   reading of `Z` said otherwise).
//! * Nothing is looked up by pid, so pid reuse, pid namespaces (with or
//!   without their own `/proc`) and `hidepid` mounts change nothing.
//! * A forked child would share the description, and keep its parent's
//!   locks after the parent died; the `pthread_atfork` child handler closes
//!   the child's copy at once (the child takes lanes and a description of
//!   its own when it next uses a handle; see [`fork_gen`]).
//! * POSIX (process-owned) record locks were rejected: closing *any* fd of
//!   the file drops all of a process's locks on it, so a second `Queue`
//!   dropped in the same process would make the first look dead.
//! * If the file cannot be opened again (a memfd without `/proc` mounted),
//!   the lane is taken without a lock and marked `LANE_NOLOCK`: its owner is
//!   presumed alive for good. Unknown means alive.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::Once;

use nix::libc;

/// Bumped in every forked child (Relaxed: read and written only by the
/// child's one thread right after `fork`, then read by its threads, which it
/// starts after).
static FORK_GEN: AtomicU64 = AtomicU64::new(1);
static ATFORK: Once = Once::new();

/// Private lock descriptions of this process, closed in a forked child.
/// -1: a free slot. A description that finds no slot is not closed in a
/// child, which then keeps its parent's lanes looking alive while it lives
/// (never the other way round).
static LOCK_FDS: [AtomicI32; 1024] = [const { AtomicI32::new(-1) }; 1024];

extern "C" fn before_fork() {
    crate::handles::before_fork();
}

extern "C" fn after_fork_in_parent() {
    crate::handles::after_fork_in_parent();
}

extern "C" fn after_fork_in_child() {
    // Relaxed (all): the child has one thread now.
    FORK_GEN.fetch_add(1, Ordering::Relaxed);
    for slot in &LOCK_FDS {
        let fd = slot.swap(-1, Ordering::Relaxed);
        if fd >= 0 {
            // SAFETY: `close` is async-signal-safe; the fd is this child's
            // copy of a lock description nothing else in the child uses
            // (every user checks the fork generation first).
            unsafe { libc::close(fd) };
        }
    }
    crate::handles::after_fork_in_child();
}

/// The fork generation of this process (see the module docs).
#[inline]
pub(crate) fn fork_gen() -> u64 {
    // Relaxed: the process's own counter, changed only by the child handler
    // of a fork, before the child has a second thread.
    FORK_GEN.load(Ordering::Relaxed)
}

/// Installs the fork handler (once per process); call before taking lanes.
pub(crate) fn watch_forks() {
    ATFORK.call_once(|| {
        // SAFETY: the handlers are `extern "C"` functions. The prepare and
        // parent ones run in the forking thread, in a normal context (see
        // `handles`); the child one in the child's one thread: atomics,
        // `close`, and adopting the lanes taken for it.
        let rc = unsafe {
            nix::libc::pthread_atfork(
                Some(before_fork),
                Some(after_fork_in_parent),
                Some(after_fork_in_child),
            )
        };
        // ENOMEM is the only documented failure; without the handler a
        // forked child would keep using its parent's lanes, so say so loudly
        // in debug builds and carry on (the parent's lanes stay correct).
        debug_assert_eq!(rc, 0, "pthread_atfork failed");
    });
}

/// This process's pid, for reports in lanes.
pub(crate) fn pid() -> u32 {
    std::process::id()
}

fn lock(ty: i32, start: u64) -> libc::flock {
    // SAFETY: `flock` is plain data; all-zero is a valid value.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = ty as _;
    fl.l_whence = libc::SEEK_SET as _;
    fl.l_start = start as _;
    fl.l_len = 1;
    fl
}

/// A new description of the file open as `query`: through `/proc/self/fd`,
/// else (a named segment) by name, checked to be the same file. CLOEXEC.
pub(crate) fn open_description(query: RawFd, name: Option<&str>) -> Option<OwnedFd> {
    use nix::fcntl::{open, OFlag};
    use nix::sys::stat::Mode;
    let flags = OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOCTTY;
    let via_proc = open(
        format!("/proc/self/fd/{query}").as_str(),
        flags,
        Mode::empty(),
    )
    .ok();
    let fd = via_proc
        .or_else(|| nix::sys::mman::shm_open(name?, OFlag::O_RDONLY, Mode::empty()).ok())?;
    same_file(query, fd.as_raw_fd()).then_some(fd)
}

/// Whether two fds refer to the same file.
pub(crate) fn same_file(a: RawFd, b: RawFd) -> bool {
    use nix::sys::stat::fstat;
    // SAFETY: both are open for the call (the callers'); fstat only reads.
    let (a, b) = unsafe {
        (
            fstat(std::os::fd::BorrowedFd::borrow_raw(a)),
            fstat(std::os::fd::BorrowedFd::borrow_raw(b)),
        )
    };
    matches!((a, b), (Ok(a), Ok(b)) if a.st_dev == b.st_dev && a.st_ino == b.st_ino)
}

/// One ring's liveness locks in this process (see the module docs).
pub(crate) struct Locks {
    /// For queries: the segment's fd (never holds a lock), borrowed from
    /// the segment, which outlives the ring; or `_own_query` for heap rings.
    query: RawFd,
    _own_query: Option<OwnedFd>,
    /// Byte of lane 0.
    base: u64,
    /// How to open the file again if `/proc/self/fd` is not there.
    name: Option<String>,
    /// This process's private description: `{fork gen: 32 | fd + 1: 32}`,
    /// 0 before the first lock. A value from an older generation is a
    /// parent's (closed by the fork handler), never used or closed here.
    own: AtomicU64,
    /// Serialises this ring's lane joins, leaves and reaps in this process
    /// (they share one description, whose locks never conflict with each
    /// other, so an unlock by one could drop another's lock).
    busy: GenLock,
    /// A description made for a child about to be forked, -1 otherwise
    /// (see [`Locks::fork_hold`]).
    fork_fd: AtomicI32,
}

/// A spin lock for this process's threads that a forked child can take
/// over: it holds the fork generation of its holder (0 when free), and a
/// holder from an older generation was a parent's thread, absent in the
/// child. Held only for short, non-blocking work.
pub(crate) struct GenLock(AtomicU64);

impl GenLock {
    pub(crate) const fn new() -> Self {
        GenLock(AtomicU64::new(0))
    }

    /// Takes the lock, spinning (with yields) while a thread of this
    /// generation holds it. Pair with [`GenLock::unlock`], or use
    /// [`GenLock::guard`].
    pub(crate) fn lock(&self) {
        let gen = fork_gen();
        loop {
            // Relaxed: only compared.
            let cur = self.0.load(Ordering::Relaxed);
            // Acquire: the previous holder's changes come first.
            if (cur == 0 || cur != gen)
                && self
                    .0
                    .compare_exchange(cur, gen, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return;
            }
            std::thread::yield_now();
        }
    }

    pub(crate) fn unlock(&self) {
        // Release: our changes come before the next holder's.
        self.0.store(0, Ordering::Release);
    }

    /// Takes the lock until the guard drops.
    pub(crate) fn guard(&self) -> Serial<'_> {
        self.lock();
        Serial(self)
    }
}

/// Holds a [`GenLock`] until dropped.
pub(crate) struct Serial<'a>(&'a GenLock);

impl Drop for Serial<'_> {
    fn drop(&mut self) {
        self.0.unlock();
    }
}

/// Remembers a private lock description, for the fork handler to close in
/// a child.
fn remember_lock_fd(fd: RawFd) {
    for slot in &LOCK_FDS {
        // Relaxed: read only by the fork handler of this process.
        if slot
            .compare_exchange(-1, fd, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            return;
        }
    }
}

/// Forgets a description [`remember_lock_fd`] noted (it is being closed).
fn forget_lock_fd(fd: RawFd) {
    for slot in &LOCK_FDS {
        // Relaxed: as in `remember_lock_fd`.
        if slot
            .compare_exchange(fd, -1, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            return;
        }
    }
}

impl Locks {
    /// Locks of ring `ring` of the segment open as `fd` (named `name`).
    pub(crate) fn new(fd: RawFd, ring: u16, name: Option<&str>) -> Self {
        Locks {
            query: fd,
            _own_query: None,
            base: crate::layout::LOCK_BASE + ring as u64 * crate::layout::LANES as u64,
            name: name.map(str::to_owned),
            own: AtomicU64::new(0),
            busy: GenLock::new(),
            fork_fd: AtomicI32::new(-1),
        }
    }

    /// Locks over a private memfd, for rings on the heap (tests).
    #[cfg(test)]
    pub(crate) fn private() -> Self {
        let fd =
            nix::sys::memfd::memfd_create(c"shmq-locks", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
                .expect("memfd");
        let mut l = Locks::new(fd.as_raw_fd(), 0, None);
        l._own_query = Some(fd);
        l
    }

    /// Serialises lane changes in this process (see `busy`).
    pub(crate) fn serial(&self) -> Serial<'_> {
        self.busy.guard()
    }

    /// This process's private description of the file, opened on first
    /// use in each fork generation; `None` if the file cannot be opened
    /// again. The caller holds [`Locks::serial`].
    fn own_fd(&self) -> Option<RawFd> {
        let gen = fork_gen() & 0xffff_ffff;
        // Relaxed: only this process's serialised lane changes use it.
        let w = self.own.load(Ordering::Relaxed);
        if w >> 32 == gen && w as u32 != 0 {
            return Some((w as u32 - 1) as RawFd);
        }
        let fd = self.reopen()?;
        let raw = std::os::fd::IntoRawFd::into_raw_fd(fd);
        remember_lock_fd(raw);
        self.own
            .store(gen << 32 | (raw as u32 + 1) as u64, Ordering::Relaxed);
        Some(raw)
    }

    /// A new description of the segment's file (see [`open_description`]).
    fn reopen(&self) -> Option<OwnedFd> {
        open_description(self.query, self.name.as_deref())
    }

    /// Takes the lock of lane `i` on description `fd` (a hand-off to a
    /// spawned child, see `queue::inherit_handles`). Async-signal-safe.
    pub(crate) fn hold_on(&self, fd: RawFd, i: usize) -> bool {
        let fl = lock(libc::F_RDLCK, self.base + i as u64);
        // SAFETY: `fd` is open (the caller's); `fl` is only read.
        unsafe { libc::fcntl(fd, libc::F_OFD_SETLK, &fl) == 0 }
    }

    /// Drops the lock of lane `i` on description `fd`.
    pub(crate) fn unhold_on(&self, fd: RawFd, i: usize) {
        let fl = lock(libc::F_UNLCK, self.base + i as u64);
        // SAFETY: as in `hold_on`.
        unsafe { libc::fcntl(fd, libc::F_OFD_SETLK, &fl) };
    }

    /// Takes the liveness lock of lane `i`; `false` if it cannot (no
    /// private description: the lane is then taken as `LANE_NOLOCK`). The
    /// caller holds [`Locks::serial`].
    pub(crate) fn hold(&self, i: usize) -> bool {
        let Some(fd) = self.own_fd() else {
            return false;
        };
        let fl = lock(libc::F_RDLCK, self.base + i as u64);
        // SAFETY: `fd` is open (ours, this generation); `fl` is a valid
        // flock that the call only reads.
        unsafe { libc::fcntl(fd, libc::F_OFD_SETLK, &fl) == 0 }
    }

    /// Takes the liveness lock of lane `i` for a child about to be forked,
    /// on a description made for it now (`fork_fd`): the parent closes its
    /// copy after the fork, the child adopts it as its own, so the lock is
    /// the child's alone, from before the fork returns. The caller holds
    /// [`Locks::serial`].
    pub(crate) fn fork_hold(&self, i: usize) -> bool {
        // Relaxed (all `fork_fd`): used only by the fork handlers, which
        // run in one thread (the forking one; then the child's).
        let mut fd = self.fork_fd.load(Ordering::Relaxed);
        if fd < 0 {
            let Some(new) = self.reopen() else {
                return false;
            };
            fd = std::os::fd::IntoRawFd::into_raw_fd(new);
            self.fork_fd.store(fd, Ordering::Relaxed);
        }
        let fl = lock(libc::F_RDLCK, self.base + i as u64);
        // SAFETY: `fd` is open (made above, closed only by the handlers);
        // `fl` is a valid flock that the call only reads.
        unsafe { libc::fcntl(fd, libc::F_OFD_SETLK, &fl) == 0 }
    }

    /// [`Locks::unhold`], or its twin on the child's description.
    pub(crate) fn unhold_as(&self, i: usize, for_child: bool) {
        if !for_child {
            return self.unhold(i);
        }
        // Relaxed: see `fork_hold`.
        let fd = self.fork_fd.load(Ordering::Relaxed);
        if fd >= 0 {
            let fl = lock(libc::F_UNLCK, self.base + i as u64);
            // SAFETY: as in `fork_hold`.
            unsafe { libc::fcntl(fd, libc::F_OFD_SETLK, &fl) };
        }
    }

    /// After a fork, in the parent: closes the parent's copy of the child's
    /// description (its locks stay: the child's copy keeps it open).
    pub(crate) fn after_fork_parent(&self) {
        // Relaxed: see `fork_hold`.
        let fd = self.fork_fd.swap(-1, Ordering::Relaxed);
        if fd >= 0 {
            // SAFETY: our copy of a description only the handlers use.
            unsafe { libc::close(fd) };
        }
    }

    /// After a fork, in the child: adopts the description made for it as
    /// its own (the parent's own was closed by the fork handler).
    pub(crate) fn after_fork_child(&self) {
        // Relaxed: see `fork_hold`; one thread.
        let fd = self.fork_fd.swap(-1, Ordering::Relaxed);
        if fd < 0 {
            return;
        }
        let gen = fork_gen() & 0xffff_ffff;
        remember_lock_fd(fd);
        self.own
            .store(gen << 32 | (fd as u32 + 1) as u64, Ordering::Relaxed);
    }

    /// Drops the liveness lock of lane `i`, if this process's generation
    /// holds it. The caller holds [`Locks::serial`].
    pub(crate) fn unhold(&self, i: usize) {
        let gen = fork_gen() & 0xffff_ffff;
        // Relaxed: as in `own_fd`.
        let w = self.own.load(Ordering::Relaxed);
        if w >> 32 != gen || w as u32 == 0 {
            return;
        }
        let fl = lock(libc::F_UNLCK, self.base + i as u64);
        // SAFETY: as in `hold`.
        unsafe { libc::fcntl((w as u32 - 1) as RawFd, libc::F_OFD_SETLK, &fl) };
    }

    /// Whether some process holds the liveness lock of lane `i`: `false`
    /// only when the kernel says nobody does. An error answers `true`.
    pub(crate) fn held(&self, i: usize) -> bool {
        let mut fl = lock(libc::F_WRLCK, self.base + i as u64);
        // SAFETY: `query` is open for the life of `self`; `fl` is a valid
        // flock the kernel fills in.
        let r = unsafe { libc::fcntl(self.query, libc::F_OFD_GETLK, &mut fl) };
        r != 0 || fl.l_type != libc::F_UNLCK as libc::c_short
    }
}

impl Drop for Locks {
    fn drop(&mut self) {
        let gen = fork_gen() & 0xffff_ffff;
        let w = *self.own.get_mut();
        if w >> 32 == gen && w as u32 != 0 {
            let fd = (w as u32 - 1) as RawFd;
            forget_lock_fd(fd);
            // SAFETY: the description is ours (this generation) and no lane
            // of this ring is used any more.
            drop(unsafe { OwnedFd::from_raw_fd(fd) });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_is_seen_by_others_and_gone_when_dropped() {
        let l = Locks::private();
        let _s = l.serial();
        assert!(!l.held(3));
        assert!(l.hold(3));
        assert!(l.held(3), "our own lock is seen through the query fd");
        assert!(!l.held(4));
        l.unhold(3);
        assert!(!l.held(3));
        assert!(l.hold(5));
        drop(_s);
        // Another attachment of the same file in this process: its own
        // description, whose locks are seen by the first, and which can
        // take a lane byte of its own.
        let other = Locks::new(l.query, 0, None);
        assert!(other.held(5));
        let s2 = other.serial();
        assert!(other.hold(6));
        drop(s2);
        drop(other); // closes its description: its lock goes, ours stays
        assert!(!l.held(6));
        assert!(l.held(5));
    }
}
