//! Processes: the fork generation, and whether the owner of a lane is alive,
//! answered by the kernel rather than by parsing `/proc`.
//!
//! # Liveness
//!
//! A process that owns lane `i` of a ring holds an OFD write lock
//! (`F_OFD_SETLK`) on byte `layout::LOCK_BASE + ring * LANES + i` of the
//! segment's file, on a description of the file opened for that lane
//! alone. It maps one page of that description (read-only) and closes the
//! fd at once: the mapping keeps the description, and so the lock, for as
//! long as it stands. Any process asks whether lane `i` is alive with
//! `F_OFD_GETLK` (as a read lock) on that byte through its segment fd,
//! which never holds locks: "write-locked" means alive.
//!
//! Why this holds where `/proc` does not, and where the program's own fds
//! cannot reach:
//! * The kernel drops the lock when the mapping goes: the process dies in
//!   any way (SIGKILL, OOM, a crash), exits or `exec`s, or gives the lane
//!   back (`munmap`). Positive evidence of death, from the kernel.
//! * No fd holds it: a live program that closes every fd
//!   (`close_range(3, ~0)`, `os.closerange`, python-daemon), reuses their
//!   numbers or `dup2`s over them keeps its locks. Every fd number we act
//!   on is checked first to name the segment's file ([`FileId`]), and we
//!   close only fds we opened and still see open on it.
//! * Threads share the mapping: a process whose main thread exited while
//!   a worker runs still holds its locks (a `/proc/<pid>/stat` reading of
//!   `Z` said otherwise).
//! * Nothing is looked up by pid, so pid reuse, pid namespaces (with or
//!   without their own `/proc`) and `hidepid` mounts change nothing.
//! * A forked child inherits no lock: the pages are `MADV_DONTFORK`. (The
//!   child takes lanes of its own; see [`fork_gen`] and `handles`.)
//! * Write locks need write access to the file; a user who may only read
//!   it can take read locks, which the query ignores: they cannot keep a
//!   dead peer's lane alive for everyone (at worst a lane byte so locked
//!   cannot be taken, and `join` moves on to the next).
//! * POSIX (process-owned) record locks were rejected: closing *any* fd of
//!   the file drops all of a process's locks on it.
//! * If no lock can be taken (no fd to spare, the file cannot be opened
//!   again: an anonymous segment without `/proc`), taking the lane fails
//!   with a typed error ([`HoldError`]); no lane is ever presumed alive
//!   without a lock.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};

use nix::libc;

/// Bumped in every forked child (Relaxed: read and written only by the
/// child's one thread right after `fork`, then read by its threads, which it
/// starts after).
static FORK_GEN: AtomicU64 = AtomicU64::new(1);
static ATFORK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// Called first by the fork child handler (`handles`), in the child's one
/// thread: the child's generation begins.
pub(crate) fn new_fork_gen() {
    // Relaxed: the child has one thread now.
    FORK_GEN.fetch_add(1, Ordering::Relaxed);
}

/// The fork generation of this process (see the module docs).
#[inline]
pub(crate) fn fork_gen() -> u64 {
    // Relaxed: the process's own counter, changed only by the child handler
    // of a fork, before the child has a second thread.
    FORK_GEN.load(Ordering::Relaxed)
}

/// Installs the fork handlers (once per process; later calls return the
/// first one's answer): `prepare` and `parent` run in the forking thread,
/// `child` in the child's one thread, which must call [`new_fork_gen`]
/// first. `false` if they could not be installed (`pthread_atfork` fails
/// only for want of memory).
pub(crate) fn on_fork(
    prepare: extern "C" fn(),
    parent: extern "C" fn(),
    child: extern "C" fn(),
) -> bool {
    *ATFORK.get_or_init(|| {
        // SAFETY: `extern "C"` functions with no arguments, as
        // `pthread_atfork` calls them; what they may do in each context is
        // their definer's contract (see `handles`).
        unsafe { nix::libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) == 0 }
    })
}

/// This process's soft limit on open fds (`u64::MAX`: none, or unknown).
pub(crate) fn fd_limit() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct we pass, nothing else.
    match unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } {
        0 if r.rlim_cur != libc::RLIM_INFINITY => r.rlim_cur,
        _ => u64::MAX,
    }
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

/// Why a lane's liveness lock could not be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HoldError {
    /// Someone holds a lock on the lane's byte: the lane is not free for
    /// us (a live owner, a reaper, or a squatter's read lock).
    Taken,
    /// This process (or the system) has no fd to spare (`EMFILE`,
    /// `ENFILE`): taking a lock needs one for a moment.
    NoFds,
    /// The file cannot be opened again (an anonymous segment without
    /// `/proc`, a named one we may not open for writing, an fd of ours
    /// that the program closed), or its lock page cannot be mapped
    /// (`vm.max_map_count`).
    Unavailable,
}

/// A file's identity, to tell whether an fd number still names it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    /// No file (`names` is false for every fd).
    pub(crate) const NONE: FileId = FileId {
        dev: u64::MAX,
        ino: u64::MAX,
    };

    /// The identity of the file open as `fd`; `None` if `fd` is not open.
    pub(crate) fn of(fd: RawFd) -> Option<FileId> {
        // SAFETY: fstat only reads the fd's file; a closed fd fails with
        // EBADF.
        let st = nix::sys::stat::fstat(unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }).ok()?;
        Some(FileId {
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
        })
    }

    /// Whether `fd` is (still) open on this file.
    pub(crate) fn names(self, fd: RawFd) -> bool {
        fd >= 0 && self != FileId::NONE && FileId::of(fd) == Some(self)
    }
}

/// A new description of the file `file` (read and write, CLOEXEC): through
/// `/proc/self/fd/{via}`, else (a named segment) by name; checked to be
/// that file, so an fd number the program closed and reused is never
/// followed to another file.
pub(crate) fn open_description(
    file: FileId,
    via: RawFd,
    name: Option<&str>,
) -> Result<OwnedFd, HoldError> {
    use nix::errno::Errno;
    use nix::fcntl::{open, OFlag};
    use nix::sys::stat::Mode;
    let flags = OFlag::O_RDWR | OFlag::O_CLOEXEC | OFlag::O_NOCTTY;
    let mut last = Errno::ENOENT;
    let mut check = |r: nix::Result<OwnedFd>| match r {
        Ok(fd) if file.names(fd.as_raw_fd()) => Some(fd),
        Ok(_) => None,
        Err(e) => {
            last = e;
            None
        }
    };
    let found = if file.names(via) {
        check(open(
            format!("/proc/self/fd/{via}").as_str(),
            flags,
            Mode::empty(),
        ))
    } else {
        None
    };
    let found = found.or_else(|| check(nix::sys::mman::shm_open(name?, flags, Mode::empty())));
    found.ok_or(match last {
        Errno::EMFILE | Errno::ENFILE => HoldError::NoFds,
        _ => HoldError::Unavailable,
    })
}

/// One ring's liveness locks in this process (see the module docs).
pub(crate) struct Locks {
    /// For queries: the segment's fd (never holds a lock), borrowed from
    /// the segment, which outlives the ring; checked to name `file` before
    /// each use (the program may have closed it).
    query: RawFd,
    /// The segment's file.
    file: FileId,
    /// For queries once `query` no longer names the file: a description
    /// opened by name (a named segment), owned here; -1 if none.
    requery: AtomicI32,
    /// Tests: the memfd behind `query`, for rings on the heap.
    _own_query: Option<OwnedFd>,
    /// Byte of lane 0.
    base: u64,
    /// How to open the file again if `/proc/self/fd` is not there.
    name: Option<String>,
    /// Per lane: the address of the page that keeps the description
    /// holding its lock open, tagged `OWN` (ours) or `CHILD` (made for the
    /// child of a fork under way); 0 if this process holds no lock there.
    /// Valid for fork generation `table_gen` only: a child inherits none
    /// of its parent's pages (`MADV_DONTFORK`).
    table: [AtomicU64; crate::layout::LANES],
    table_gen: AtomicU64,
    /// Whether `table` holds pages made for the child of a fork under way.
    child_pages: std::sync::atomic::AtomicBool,
    /// Serialises this ring's lane joins, leaves and reaps in this process
    /// (lane words and `table` change together).
    busy: GenLock,
}

/// `Locks::table`: a page of ours.
const OWN: u64 = 1;
/// `Locks::table`: a page made for the child of a fork under way.
const CHILD: u64 = 2;
const PAGE: usize = 4096;

impl Locks {
    /// Locks of ring `ring` of the segment open as `fd` (named `name`).
    pub(crate) fn new(fd: RawFd, file: FileId, ring: u16, name: Option<&str>) -> Self {
        Locks {
            query: fd,
            file,
            requery: AtomicI32::new(-1),
            _own_query: None,
            base: crate::layout::LOCK_BASE + ring as u64 * crate::layout::LANES as u64,
            name: name.map(str::to_owned),
            table: [const { AtomicU64::new(0) }; crate::layout::LANES],
            table_gen: AtomicU64::new(fork_gen()),
            child_pages: std::sync::atomic::AtomicBool::new(false),
            busy: GenLock::new(),
        }
    }

    /// Locks over a private memfd, for rings on the heap (tests).
    #[cfg(test)]
    pub(crate) fn private() -> Self {
        let fd =
            nix::sys::memfd::memfd_create(c"shmq-locks", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
                .expect("memfd");
        nix::unistd::ftruncate(&fd, PAGE as i64).expect("ftruncate");
        let id = FileId::of(fd.as_raw_fd()).expect("fstat");
        let mut l = Locks::new(fd.as_raw_fd(), id, 0, None);
        l._own_query = Some(fd);
        l
    }

    /// Serialises lane changes in this process (see `busy`).
    pub(crate) fn serial(&self) -> Serial<'_> {
        self.busy.guard()
    }

    /// The table, cleared first if it is a parent's (this is a forked
    /// child that has not used this ring yet). The caller holds
    /// [`Locks::serial`] or is the fork child handler.
    fn table(&self) -> &[AtomicU64; crate::layout::LANES] {
        let gen = fork_gen();
        // Relaxed (table and generation): this process's bookkeeping,
        // changed under `busy` (or by the child handler, alone).
        if self.table_gen.load(Ordering::Relaxed) != gen {
            for e in &self.table {
                e.store(0, Ordering::Relaxed);
            }
            self.table_gen.store(gen, Ordering::Relaxed);
        }
        &self.table
    }

    /// Takes the write lock of lane `i` on a description of its own, which
    /// a one-page read-only mapping keeps open once its fd is closed: so
    /// nothing the program does to its fds (closing all of them, reusing
    /// their numbers, `dup2` over them) can drop the lock; `munmap` (or
    /// the process's death, or `exec`) does. Returns the page's address.
    /// `for_child`: the page is left to the next `fork` (no
    /// `MADV_DONTFORK`).
    fn lock_page(&self, i: usize, for_child: bool) -> Result<u64, HoldError> {
        let fd = open_description(self.file, self.query, self.name.as_deref())?;
        let raw = std::os::fd::IntoRawFd::into_raw_fd(fd);
        let r = self.lock_page_on(raw, i, for_child);
        // SAFETY: `raw` is the fd we just opened; `close` (not `OwnedFd`'s
        // drop) because a thread of the program that closes every fd may
        // have closed it already: then this fails with EBADF, harmlessly.
        unsafe { libc::close(raw) };
        r
    }

    fn lock_page_on(&self, fd: RawFd, i: usize, for_child: bool) -> Result<u64, HoldError> {
        if !self.hold_on(fd, i) {
            return Err(match nix::errno::Errno::last() {
                nix::errno::Errno::EAGAIN | nix::errno::Errno::EACCES => HoldError::Taken,
                _ => HoldError::Unavailable,
            });
        }
        // SAFETY: a new read-only shared mapping of one page of the file,
        // at an address the kernel picks: it aliases nothing of ours.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                PAGE,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(HoldError::Unavailable);
        }
        // SAFETY: the page we just mapped.
        let unmap = || unsafe { libc::munmap(addr, PAGE) };
        // The fd may have been closed and its number reused since `open`
        // (a thread of the program closing every fd): then the lock and the
        // page are another file's, and we hold nothing of ours.
        if !self.file.names(fd) {
            unmap();
            return Err(HoldError::Unavailable);
        }
        // SAFETY: the page we just mapped; the advice changes no byte.
        if !for_child && unsafe { libc::madvise(addr, PAGE, libc::MADV_DONTFORK) } != 0 {
            unmap();
            return Err(HoldError::Unavailable);
        }
        Ok(addr as u64)
    }

    /// Takes the liveness lock of lane `i`. The caller holds
    /// [`Locks::serial`].
    pub(crate) fn hold(&self, i: usize) -> Result<(), HoldError> {
        let page = self.lock_page(i, false)?;
        // Relaxed: see `table`.
        self.table()[i].store(page | OWN, Ordering::Relaxed);
        Ok(())
    }

    /// Takes the liveness lock of lane `i` for a child about to be forked:
    /// its page is inherited by the child, whose handler keeps it (and
    /// marks it `MADV_DONTFORK`), while the parent's handler unmaps its
    /// own copy. So the lock is the child's alone from before the fork
    /// returns. The caller holds [`Locks::serial`].
    pub(crate) fn fork_hold(&self, i: usize) -> Result<(), HoldError> {
        let page = self.lock_page(i, true)?;
        // Relaxed (both): see `table`.
        self.table()[i].store(page | CHILD, Ordering::Relaxed);
        self.child_pages.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Drops the lock of lane `i` held by this process (`for_child`: the
    /// one taken for a child about to be forked), if it holds one. The
    /// caller holds [`Locks::serial`].
    pub(crate) fn unhold_as(&self, i: usize, for_child: bool) {
        let want = if for_child { CHILD } else { OWN };
        let e = &self.table()[i];
        // Relaxed: see `table`.
        let w = e.load(Ordering::Relaxed);
        if w & 3 == want {
            e.store(0, Ordering::Relaxed);
            unmap(w);
        }
    }

    /// Drops the liveness lock of lane `i`, if this process holds it. The
    /// caller holds [`Locks::serial`].
    pub(crate) fn unhold(&self, i: usize) {
        self.unhold_as(i, false)
    }

    /// Takes the lock of lane `i` on description `fd` (a lane's own, or a
    /// hand-off to a spawned child: `queue::handoff`). Async-signal-safe.
    pub(crate) fn hold_on(&self, fd: RawFd, i: usize) -> bool {
        let fl = lock(libc::F_WRLCK, self.base + i as u64);
        // SAFETY: `fd` is open (the caller's); `fl` is only read.
        unsafe { libc::fcntl(fd, libc::F_OFD_SETLK, &fl) == 0 }
    }

    /// Drops the lock of lane `i` on description `fd`.
    pub(crate) fn unhold_on(&self, fd: RawFd, i: usize) {
        let fl = lock(libc::F_UNLCK, self.base + i as u64);
        // SAFETY: as in `hold_on`.
        unsafe { libc::fcntl(fd, libc::F_OFD_SETLK, &fl) };
    }

    /// After a fork, in the parent: unmaps the parent's copies of the
    /// pages made for the child (their locks stay: the child's copies
    /// keep the descriptions open).
    pub(crate) fn after_fork_parent(&self) {
        // Relaxed: see `table`; set by `fork_hold` in this same thread.
        if !self.child_pages.swap(false, Ordering::Relaxed) {
            return; // none made for this fork (or another handle's call did it)
        }
        for e in &self.table {
            // Relaxed: see `table`; the forking thread holds the fork
            // handlers' walk lock.
            let w = e.load(Ordering::Relaxed);
            if w & 3 == CHILD {
                e.store(0, Ordering::Relaxed);
                unmap(w);
            }
        }
    }

    /// After a fork, in the child (its one thread): the pages made for it
    /// are its own now, kept out of its own forks; its parent's were not
    /// inherited. Async-signal-safe: atomics and `madvise`.
    pub(crate) fn after_fork_child(&self) {
        let gen = fork_gen();
        // Relaxed (all): one thread.
        if self.table_gen.load(Ordering::Relaxed) == gen {
            return; // another handle of this ring got here first
        }
        for e in &self.table {
            let w = e.load(Ordering::Relaxed);
            let now = if w & 3 == CHILD {
                let addr = (w & !3) as *mut libc::c_void;
                // SAFETY: the page, inherited from the parent, is ours;
                // the advice changes no byte. If it fails, a grandchild
                // would keep the lock, so the lane would look alive longer
                // (never dead too soon).
                unsafe { libc::madvise(addr, PAGE, libc::MADV_DONTFORK) };
                (w & !3) | OWN
            } else {
                0
            };
            e.store(now, Ordering::Relaxed);
        }
        self.table_gen.store(gen, Ordering::Relaxed);
        self.child_pages.store(false, Ordering::Relaxed);
    }

    /// How many lanes' locks this process holds in this ring (a snapshot).
    pub(crate) fn held_here(&self) -> usize {
        // Relaxed (both): a snapshot for reports.
        if self.table_gen.load(Ordering::Relaxed) != fork_gen() {
            return 0;
        }
        self.table
            .iter()
            .filter(|e| e.load(Ordering::Relaxed) & 3 == OWN)
            .count()
    }

    /// An fd that names the segment's file, for queries: the segment's own
    /// if it still does, else one opened by name (a named segment).
    fn query_fd(&self) -> Option<RawFd> {
        if self.file.names(self.query) {
            return Some(self.query);
        }
        // Relaxed: an fd number; whoever uses it checks it first.
        let r = self.requery.load(Ordering::Relaxed);
        if self.file.names(r) {
            return Some(r);
        }
        let fd = open_description(self.file, -1, self.name.as_deref()).ok()?;
        let raw = std::os::fd::IntoRawFd::into_raw_fd(fd);
        match self
            .requery
            .compare_exchange(r, raw, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => Some(raw),
            Err(_) => {
                // SAFETY: ours, just opened; another thread stored its own.
                unsafe { libc::close(raw) };
                self.query_fd_again()
            }
        }
    }

    fn query_fd_again(&self) -> Option<RawFd> {
        // Relaxed: as in `query_fd`.
        let r = self.requery.load(Ordering::Relaxed);
        self.file.names(r).then_some(r)
    }

    /// Whether some process holds the liveness lock of lane `i`: `false`
    /// only when the kernel says nobody does. Read locks do not count (a
    /// user who may only read the file can take those, and must not keep
    /// dead peers alive for everyone); an error, or no fd that names the
    /// file, answers `true`: unknown means alive.
    pub(crate) fn held(&self, i: usize) -> bool {
        let Some(fd) = self.query_fd() else {
            return true;
        };
        let mut fl = lock(libc::F_RDLCK, self.base + i as u64);
        // SAFETY: `fd` is open (checked just now); `fl` is a valid flock
        // the kernel fills in.
        let r = unsafe { libc::fcntl(fd, libc::F_OFD_GETLK, &mut fl) };
        // Checked again: if the program closed the fd and opened another
        // file under its number meanwhile, the answer was that file's.
        r != 0 || fl.l_type != libc::F_UNLCK as libc::c_short || !self.file.names(fd)
    }
}

/// Unmaps a lock page (a `Locks::table` word), which drops its lock.
fn unmap(w: u64) {
    // SAFETY: a page `lock_page` mapped and nothing else uses; unmapping
    // it only closes the description (and so drops its lock).
    unsafe { libc::munmap((w & !3) as *mut libc::c_void, PAGE) };
}

impl Drop for Locks {
    fn drop(&mut self) {
        if *self.table_gen.get_mut() == fork_gen() {
            for e in &mut self.table {
                let w = *e.get_mut();
                if w != 0 {
                    unmap(w);
                }
            }
        }
        let r = *self.requery.get_mut();
        if self.file.names(r) {
            // SAFETY: the description `query_fd` opened, still open on our
            // file (checked just now); nothing else uses it.
            unsafe { libc::close(r) };
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
        l.hold(3).unwrap();
        assert!(l.held(3), "our own lock is seen through the query fd");
        assert!(!l.held(4));
        l.unhold(3);
        assert!(!l.held(3));
        l.hold(5).unwrap();
        drop(_s);
        // Another attachment of the same file in this process: its own
        // locks, seen by the first; a byte we hold is not free for it.
        let other = Locks::new(l.query, l.file, 0, None);
        assert!(other.held(5));
        let s2 = other.serial();
        assert_eq!(other.hold(5), Err(HoldError::Taken));
        other.hold(6).unwrap();
        drop(s2);
        drop(other); // unmaps its pages: its lock goes, ours stays
        assert!(!l.held(6));
        assert!(l.held(5));
    }

    fn open_fds() -> usize {
        std::fs::read_dir("/proc/self/fd").unwrap().count()
    }

    /// A held lock keeps no fd open (so no fd the program closes can drop
    /// it): the page mapped through its description keeps it.
    #[test]
    fn a_held_lock_keeps_no_fd() {
        let l = Locks::private();
        let _s = l.serial();
        let before = open_fds();
        for i in 0..8 {
            l.hold(i).unwrap();
        }
        // Other tests run on other threads and open fds of their own: allow
        // for them, but not for eight of ours.
        assert!(
            open_fds() < before + 8,
            "{before} fds before, {} after",
            open_fds()
        );
        for i in 0..8 {
            assert!(l.held(i));
        }
    }

    /// A read lock (what a user who may only read the file can take) does
    /// not count as alive, and makes its byte unavailable rather than
    /// letting a lane be taken without a lock.
    #[test]
    fn read_locks_neither_count_nor_share() {
        let l = Locks::private();
        let _s = l.serial();
        let reader = open_description(l.file, l.query, None).unwrap();
        let fl = lock(libc::F_RDLCK, l.base + 7);
        // SAFETY: a valid flock on our own fd.
        let r = unsafe { libc::fcntl(reader.as_raw_fd(), libc::F_OFD_SETLK, &fl) };
        assert_eq!(r, 0);
        assert!(!l.held(7), "a read lock is no evidence of life");
        assert_eq!(l.hold(7), Err(HoldError::Taken));
        drop(reader);
        l.hold(7).unwrap();
        assert!(l.held(7));
    }
}
