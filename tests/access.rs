//! Who may attach, with which mode, and what a full `/dev/shm` does
//! (issue 13, item 7). Tests that need root or `unshare` say so and skip
//! where that is not allowed.

mod common;

use common::unique_name;
use shmq::{OpenError, Queue};
use std::os::unix::fs::{MetadataExt, PermissionsExt};

/// `mode(0o660)` gives 0660 whatever the umask.
#[test]
fn mode_is_applied_exactly() {
    let n = unique_name("mode");
    // SAFETY: umask is a plain syscall; it only affects files made after.
    let old = unsafe { nix::libc::umask(0o022) };
    let q = Queue::builder().mode(0o660).create_named(&n);
    // SAFETY: as above.
    unsafe { nix::libc::umask(old) };
    let _q = q.unwrap();
    let m = std::fs::metadata(format!("/dev/shm/{n}")).unwrap();
    assert_eq!(m.permissions().mode() & 0o777, 0o660);
    Queue::unlink(&n).unwrap();
}

/// A segment another user owns is refused by `open` (a typed error, not a
/// mapping), and attached by `open_trusted`.
#[test]
fn another_users_segment_needs_trust() {
    let n = unique_name("foreign");
    let _q = Queue::builder().mode(0o666).create_named(&n).unwrap();
    let path = format!("/dev/shm/{n}");
    if std::os::unix::fs::chown(&path, Some(65534), Some(65534)).is_err() {
        eprintln!("skipped: cannot chown (not root)");
        Queue::unlink(&n).unwrap();
        return;
    }
    assert_eq!(std::fs::metadata(&path).unwrap().uid(), 65534);
    match Queue::open(&n) {
        Err(OpenError::ForeignOwner { owner: 65534, .. }) => {}
        other => panic!("expected ForeignOwner, got {other:?}"),
    }
    let trusted = Queue::open_trusted(&n).unwrap();
    trusted.sender().send(b"ok").unwrap();
    assert_eq!(&*trusted.receiver().recv().unwrap(), b"ok");
    Queue::unlink(&n).unwrap();
}

/// A named queue larger than the room left in `/dev/shm` fails at
/// `create_named` with `NoSpace` and leaves no name behind (run in a mount
/// namespace whose `/dev/shm` is a 1 MiB tmpfs).
#[test]
fn full_dev_shm_is_an_error_at_create() {
    if let Ok(n) = std::env::var("SHMQ_NOSPACE_CHILD") {
        match Queue::builder().capacity_bytes(4 << 20).create_named(&n) {
            Err(OpenError::NoSpace { needed }) => assert!(needed > 4 << 20),
            other => panic!("expected NoSpace, got {other:?}"),
        }
        assert!(matches!(Queue::open(&n), Err(OpenError::NotFound(_))));
        // A queue that fits still works.
        let q = Queue::builder()
            .capacity_bytes(64 << 10)
            .create_named(&n)
            .unwrap();
        q.sender().send(b"fits").unwrap();
        Queue::unlink(&n).unwrap();
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let script = format!(
        "mount -t tmpfs -o size=1m tmpfs /dev/shm && exec '{}' --exact full_dev_shm_is_an_error_at_create --test-threads=1",
        exe.display()
    );
    let out = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .env("SHMQ_NOSPACE_CHILD", unique_name("nospace"))
        .output();
    let Ok(out) = out else {
        eprintln!("skipped: no unshare");
        return;
    };
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    if !text.contains("running 1 test") {
        eprintln!("skipped: cannot make a private /dev/shm here: {text}");
        return;
    }
    assert!(out.status.success(), "{text}");
}
