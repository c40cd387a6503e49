//! Liveness that survives what ordinary programs do to their fds (issue
//! 25): a process that closes every fd and reuses their numbers, one at
//! its fd limit, and a user who may only read a named queue. Those three
//! fail on layout v7, whose liveness locks lived in an fd of the process
//! (read locks, queried as write locks); the diagnostics of lanes and fds
//! are new. (`tests/liveness.rs` holds the dead-peer cases of layout v5.)

mod common;

use common::{child, die, env_var, role, unique_name, wait};
use nix::libc;
use shmq::{Queue, RecvError, SendError};
use std::io::{BufRead, BufReader};
use std::os::fd::RawFd;
use std::process::Stdio;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

/// Byte of the segment's file whose lock says lane `i` of ring 0 is alive
/// (`layout::LOCK_BASE`).
const LOCK_BASE: i64 = 1 << 40;
const LANES: i64 = 256;

fn close_all_fds_from(first: u32) {
    // SAFETY: close_range(2) closes fds only; nothing here uses them after.
    let r = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, 0) };
    assert_eq!(r, 0, "close_range: {}", std::io::Error::last_os_error());
}

fn open_dev_null() -> RawFd {
    // SAFETY: a plain open of a path we own the string of.
    let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY) };
    assert!(
        fd >= 0,
        "open /dev/null: {}",
        std::io::Error::last_os_error()
    );
    fd
}

fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only asks whether the fd is open.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

/// Child processes: `SHMQ_ROLE` names what to do, `SHMQ_NAME` the queue.
#[test]
#[ignore = "run as a child process by the tests below"]
fn child_entry() {
    let Some(role) = role() else {
        return;
    };
    let name = env_var("SHMQ_NAME");
    match role.as_str() {
        // A daemon-style close of every fd while holding a sender, then
        // ordinary files under the old numbers; then sends, which must all
        // arrive (a receiver waiting meanwhile must not judge us dead),
        // and drops the sender, which must close none of those files.
        "close_all_then_send" => {
            let tx = Queue::open(&name).unwrap().sender();
            tx.send(b"before").unwrap();
            close_all_fds_from(3);
            let files: Vec<RawFd> = (0..16).map(|_| open_dev_null()).collect();
            tx.send(b"closed").unwrap();
            // The receiver's watcher scans for the dead meanwhile.
            std::thread::sleep(Duration::from_millis(600));
            for i in 0..1000u32 {
                tx.send(&i.to_le_bytes()).unwrap();
            }
            drop(tx);
            for fd in files {
                assert!(is_open(fd), "fd {fd} (ours, /dev/null) was closed by shmq");
            }
        }
        // At the fd limit a new handle fails with TooManyOpenFiles (it
        // needs an fd for a moment), then works once one is free.
        "at_fd_limit" => {
            let q = Queue::open(&name).unwrap();
            let lim =
                nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
            nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, 64, lim.1)
                .unwrap();
            let mut files = Vec::new();
            loop {
                // SAFETY: as in `open_dev_null`.
                let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY) };
                if fd < 0 {
                    break;
                }
                files.push(fd);
            }
            assert_eq!(q.diagnostics().fd_limit, 64, "the limit is reported");
            assert_eq!(q.try_sender().err(), Some(SendError::TooManyOpenFiles));
            assert_eq!(q.try_receiver().err(), Some(RecvError::TooManyOpenFiles));
            let tx = q.sender();
            assert_eq!(tx.send(b"x").unwrap_err(), SendError::TooManyOpenFiles);
            // SAFETY: one of the fds we opened above.
            unsafe { libc::close(files.pop().unwrap()) };
            tx.send(b"at the limit, then one fd free").unwrap();
        }
        // Sends three messages and dies without dropping or closing.
        "send_and_die" => {
            let tx = Queue::open(&name).unwrap().sender();
            for i in 0..3u8 {
                tx.send(&[b's', i]).unwrap();
            }
            die();
        }
        // A user who may only read the queue's file (`nobody` when we run
        // as root) takes a read lock on every lane's liveness byte, says
        // so, and waits to be killed.
        "read_lock_every_lane" => {
            // SAFETY: getuid has no preconditions.
            if unsafe { libc::getuid() } == 0 {
                nix::unistd::setgid(nix::unistd::Gid::from_raw(65534)).unwrap();
                nix::unistd::setuid(nix::unistd::Uid::from_raw(65534)).unwrap();
            }
            let path = format!("/dev/shm/{name}");
            let cpath = std::ffi::CString::new(path).unwrap();
            // SAFETY: a plain open.
            let fd = unsafe { libc::open(cpath.as_ptr(), libc::O_RDONLY) };
            assert!(fd >= 0, "open: {}", std::io::Error::last_os_error());
            // SAFETY: `flock` is plain data.
            let mut fl: libc::flock = unsafe { std::mem::zeroed() };
            fl.l_type = libc::F_RDLCK as _;
            fl.l_whence = libc::SEEK_SET as _;
            fl.l_len = 1;
            // Every byte we can: a live owner's write-locked byte refuses.
            let mut locked = 0;
            for i in 0..LANES {
                fl.l_start = LOCK_BASE + i;
                // SAFETY: a valid flock on our fd.
                locked += (unsafe { libc::fcntl(fd, libc::F_OFD_SETLK, &fl) } == 0) as u32;
            }
            assert!(
                locked >= LANES as u32 - 2,
                "read-locked only {locked} lanes"
            );
            // SAFETY: getuid has no preconditions.
            println!("ready uid={} locked={locked}", unsafe { libc::getuid() });
            std::thread::sleep(Duration::from_secs(120));
        }
        other => panic!("unknown role {other}"),
    }
}

/// A sender whose process closes every fd (`close_range(3, ~0)`) and opens
/// ordinary files under the old numbers stays alive to everyone: its
/// messages all arrive, in order, and the receiver learns of the end only
/// when it drops its sender; none of its files is closed by shmq. (Layout
/// v7: its lock went with the fd, the receiver's watcher reaped its lane
/// and reported `Disconnected` while it lived, and dropping the sender
/// closed the file that reused the segment's fd number.)
#[test]
fn closing_every_fd_keeps_a_process_alive() {
    let n = unique_name("closeall");
    let q = Queue::builder().create_named(&n).unwrap();
    let rx = q.receiver();
    let c = child("close_all_then_send")
        .env("SHMQ_NAME", &n)
        .spawn()
        .unwrap();
    let t = Duration::from_secs(20);
    assert_eq!(&*rx.recv_timeout(t).unwrap(), b"before");
    // From here only the child can send: its end is ours to notice.
    drop(q);
    assert_eq!(&*rx.recv_timeout(t).unwrap(), b"closed");
    assert!(
        !Queue::is_stale(&n).unwrap(),
        "a live sender that closed its fds is not stale"
    );
    for i in 0..1000u32 {
        match rx.recv_timeout(t) {
            Ok(m) => assert_eq!(&*m, &i.to_le_bytes(), "message {i}"),
            Err(e) => panic!("message {i}: {e}"),
        }
    }
    assert_eq!(rx.recv_timeout(t).unwrap_err(), RecvError::Disconnected);
    let st = wait(c, LIMIT, "close_all_then_send");
    assert!(st.success(), "the child failed: {st}");
    Queue::unlink(&n).unwrap();
}

/// At `RLIMIT_NOFILE`, a new handle fails loudly (`TooManyOpenFiles`)
/// instead of taking a lane that nobody can ever find dead; with one fd
/// free it works. (Layout v7 took the lane without a lock, presumed alive
/// for good.)
#[test]
fn a_handle_at_the_fd_limit_fails_loudly() {
    let n = unique_name("fdlimit");
    let rx = Queue::builder().create_named(&n).unwrap().receiver();
    let c = child("at_fd_limit").env("SHMQ_NAME", &n).spawn().unwrap();
    let st = wait(c, LIMIT, "at_fd_limit");
    assert!(st.success(), "the child failed: {st}");
    assert_eq!(&*rx.try_recv().unwrap(), b"at the limit, then one fd free");
    Queue::unlink(&n).unwrap();
}

/// A user who may only read a named queue (mode 0644) read-locks every
/// lane's liveness byte; a sender then dies: the receiver still learns
/// that no sender is left. (Layout v7 took a read lock on the byte as
/// evidence of life: the dead sender stayed alive for everyone.)
#[test]
fn a_reader_cannot_keep_the_dead_alive() {
    let n = unique_name("squat");
    let rx = Queue::builder()
        .mode(0o644)
        .create_named(&n)
        .unwrap()
        .receiver();
    let c = child("send_and_die").env("SHMQ_NAME", &n).spawn().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&wait(c, LIMIT, "send_and_die")),
        Some(9)
    );
    let mut squatter = child("read_lock_every_lane")
        .env("SHMQ_NAME", &n)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // The child's harness prints its own lines first.
    let line = BufReader::new(squatter.stdout.take().unwrap())
        .lines()
        .map(Result::unwrap)
        .find(|l| l.contains("ready uid="))
        .expect("the squatter says when it holds its locks");
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        eprintln!("not root: the squatter is the same user, with a read-only fd");
    } else {
        assert!(line.contains("uid=65534"), "{line}");
    }
    for i in 0..3u8 {
        assert_eq!(
            &*rx.recv_timeout(Duration::from_secs(5)).unwrap(),
            &[b's', i]
        );
    }
    let r = rx.recv_timeout(Duration::from_secs(5));
    let _ = squatter.kill();
    let _ = squatter.wait();
    assert_eq!(r.unwrap_err(), RecvError::Disconnected);
    Queue::unlink(&n).unwrap();
}

/// The lane limit and its use are visible: lanes in use, of how many, and
/// how many this process holds (a mapping each, no fd): one for its five
/// senders.
#[test]
fn lanes_and_their_use_are_in_the_diagnostics() {
    let q = Queue::builder().create().unwrap();
    let before = q.diagnostics();
    let held: Vec<_> = (0..5).map(|_| q.try_sender().unwrap()).collect();
    let d = q.diagnostics();
    assert_eq!(d.lanes_total, 256);
    assert_eq!(d.lanes_used, before.lanes_used + 1, "{d}");
    assert_eq!(d.lanes_here, before.lanes_here + 1, "{d}");
    assert!(d.fd_limit > 0);
    drop(held);
    let after = q.diagnostics();
    assert_eq!(
        (after.lanes_used, after.lanes_here),
        (before.lanes_used, before.lanes_here)
    );
    assert!(format!("{d}").contains("used"), "{d}");
}
