//! Forks of handle-heavy processes (issue 25): a fork takes at most one
//! lane per ring and role for the child, however many handles the parent
//! has, and the child still counts as a holder of each role until its
//! last handle of that role is gone.

use shmq::{Queue, RecvError};
use std::time::Duration;

/// A parent with 200 senders forks a child that uses one of them, then
/// drops all but another and sends through that one late: the fork took
/// at most three of the queue's lanes (not 202), the late message arrives
/// (the child's sender lane passed from handle to handle as they dropped),
/// and the end comes only once the child is gone. (Before: the fork took
/// a lane per handle, 202 of 256.)
#[test]
fn a_fork_takes_a_lane_per_role_not_per_handle() {
    let q = Queue::builder().create().unwrap();
    let rx = q.receiver();
    let senders: Vec<_> = (0..200).map(|_| q.try_sender().unwrap()).collect();
    let before = q.diagnostics().lanes_used;
    // SAFETY: the child sends, sleeps, drops handles and exits, calling
    // nothing that could wait on a lock another thread held at the fork
    // (glibc's malloc is reset in a fork child).
    match unsafe { nix::unistd::fork() }.unwrap() {
        nix::unistd::ForkResult::Child => {
            let mut senders = senders;
            let ok = senders[150].send(b"from 150").is_ok();
            let seventh = senders.swap_remove(7);
            drop(senders);
            std::thread::sleep(Duration::from_millis(300));
            let ok = ok && seventh.send(b"from 7").is_ok();
            drop(seventh);
            // SAFETY: ends the child without the parent's destructors or
            // the test harness.
            unsafe { nix::libc::_exit(if ok { 0 } else { 1 }) };
        }
        nix::unistd::ForkResult::Parent { child } => {
            let forked = q.diagnostics().lanes_used - before;
            assert!(forked <= 3, "the fork took {forked} lanes");
            drop(senders);
            drop(q);
            let t = Duration::from_secs(10);
            assert_eq!(&*rx.recv_timeout(t).unwrap(), b"from 150");
            assert_eq!(
                &*rx.recv_timeout(t).unwrap(),
                b"from 7",
                "the end came while the child still held a sender"
            );
            let st = nix::sys::wait::waitpid(child, None).unwrap();
            assert_eq!(st, nix::sys::wait::WaitStatus::Exited(child, 0));
            assert_eq!(rx.recv_timeout(t).unwrap_err(), RecvError::Disconnected);
        }
    }
}
