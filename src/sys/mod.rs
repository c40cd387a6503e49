//! The operating system, and nothing else: the futex syscalls, process
//! identity and liveness locks, shared-memory segments, and the pages of
//! the overflow area. No protocol
//! logic lives here; the ring reaches `futex` and `proc` through
//! [`crate::sync`], so that loom can stand in for them.

pub(crate) mod barrier;
pub(crate) mod futex;
pub(crate) mod pages;
pub(crate) mod proc;
pub(crate) mod segment;
