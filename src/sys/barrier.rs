//! `membarrier(2)`: a full memory barrier run on every thread of this
//! process at once, so that the threads on the fast side of an asymmetric
//! Dekker pair need only a compiler fence (see `sync::barrier`).

use nix::libc;

/// `MEMBARRIER_CMD_PRIVATE_EXPEDITED` (linux/membarrier.h).
const PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
/// `MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED`.
const REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;

fn membarrier(cmd: libc::c_long) -> bool {
    // SAFETY: `membarrier(cmd, flags = 0, cpu_id = 0)` reads no memory of
    // ours; an unknown command fails with `EINVAL`.
    unsafe {
        libc::syscall(
            libc::SYS_membarrier,
            cmd,
            0 as libc::c_long,
            0 as libc::c_long,
        ) == 0
    }
}

/// Registers this process for [`expedited`]; `false` if the kernel (or a
/// seccomp filter) refuses. A forked child inherits the registration;
/// `exec` drops it (with everything else of ours).
pub(crate) fn register() -> bool {
    membarrier(REGISTER_PRIVATE_EXPEDITED)
}

/// A full barrier on every running thread of this process (registered
/// first); `false` if the kernel refused.
pub(crate) fn expedited() -> bool {
    membarrier(PRIVATE_EXPEDITED)
}
