//! The one door through which the ring protocol reaches atomics, payload
//! memory, futexes, processes and the clock, so that `--cfg loom` can swap
//! all of them for loom's checked models (the pattern of tokio's
//! `src/loom/mod.rs`). The protocol in `src/ring/` makes no `cfg(loom)`
//! choice of its own: a loom build only leaves out the functions that need
//! a real segment (hand-offs, forks, reading a payload in place) and adds
//! two that the models call (`reap`, `copy_payload`).
//!
//! | file        | normal build                                  | `cfg(loom)`                                          |
//! |-------------|-----------------------------------------------|------------------------------------------------------|
//! | `futex`     | the shared futex syscalls (`sys::futex`)      | a mutex and condvar per word: a lost wake deadlocks  |
//! | `memory`    | payload in raw shared memory                  | one `UnsafeCell` per granule: a racy read is flagged |
//! | `process`   | liveness locks (`sys::proc`), this pid        | model processes that `kill` marks dead               |
//! | `clock`     | `CLOCK_MONOTONIC`                             | no clock (nobody times out or watches)               |
//! | `barrier`   | asymmetric barriers (`membarrier`)            | a SeqCst fence on both sides                         |
//! | `faults`    | nothing                                       | mutants and death points, chosen by the models       |

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

pub(crate) mod barrier;
mod clock;
mod faults;
mod futex;
mod memory;
mod process;

pub(crate) use clock::{now, now_ms};
pub(crate) use faults::{death_point, mutant};
#[cfg(loom)]
pub(crate) use faults::{die_at, dies_here, mutant_on};
#[cfg(loom)]
pub(crate) use futex::waits;
pub(crate) use futex::{futex_wait, futex_wake_all, spin_hint, spin_unseen, WaitWord};
#[cfg(any(test, loom))]
pub(crate) use memory::HeapPayload;
pub(crate) use memory::{NoMemory, Pages, Payload};
#[cfg(loom)]
pub(crate) use process::kill;
pub(crate) use process::{lane_alive, my_pid, HoldError, Locks};
