//! The worker's side of a pool: the process loop, and the trampolines
//! that run a task's function on its archived argument.

use super::{FAILED, OK, PANICKED, RESULT_TRAILER, TASK_TRAILER};
use crate::error::{SendError, TaskError};
use crate::process::Image;
use crate::typed::Message;
use crate::Queue;
use rkyv::rancor::Failure;
use rkyv::util::AlignedVec;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::ExitCode;

/// A task's trampoline: runs the function at the address given on the
/// archived argument, and writes the archived result.
pub(super) type RunTask = fn(usize, &[u8], &mut AlignedVec) -> Result<(), String>;

pub(super) fn run_task<T: Message, R: Message>(
    f: usize,
    arg: &[u8],
    out: &mut AlignedVec,
) -> Result<(), String> {
    // SAFETY: `f` is the address of a `fn(T) -> R` of this executable
    // file: `Pool::task` took it from one, alongside this very
    // `run_task::<T, R>`, and `worker` checked that both offsets fall in
    // this process's image of the same file (`init` checked it is the
    // same file) before adding them to our anchor.
    let f: fn(T) -> R = unsafe { std::mem::transmute::<usize, fn(T) -> R>(f) };
    let t = rkyv::from_bytes::<T, Failure>(arg)
        .map_err(|_| format!("the argument is not a valid {}", std::any::type_name::<T>()))?;
    let r = f(t);
    *out = rkyv::to_bytes::<Failure>(&r).map_err(|_| {
        format!(
            "the result {} did not serialize",
            std::any::type_name::<R>()
        )
    })?;
    Ok(())
}

/// A chunk's trampoline (`Pool::map`): `f` on each item of a `Vec<T>`.
pub(super) fn run_chunk<T: Message, R: Message>(
    f: usize,
    arg: &[u8],
    out: &mut AlignedVec,
) -> Result<(), String>
where
    Vec<T>: Message,
    Vec<R>: Message,
{
    // SAFETY: as in `run_task`: `Pool::map` passed a `fn(T) -> R` with
    // this very `run_chunk::<T, R>`, both checked to lie in this image.
    let f: fn(T) -> R = unsafe { std::mem::transmute::<usize, fn(T) -> R>(f) };
    let items = rkyv::from_bytes::<Vec<T>, Failure>(arg).map_err(|_| {
        format!(
            "the chunk is not a valid Vec<{}>",
            std::any::type_name::<T>()
        )
    })?;
    let r: Vec<R> = items.into_iter().map(f).collect();
    *out = rkyv::to_bytes::<Failure>(&r).map_err(|_| {
        format!(
            "the results {} did not serialize",
            std::any::type_name::<R>()
        )
    })?;
    Ok(())
}

/// A worker process: runs the tasks of its queue until it is closed.
pub(super) fn worker((tasks, results): (Queue, Queue)) -> ExitCode {
    // Only the handles: if the parent dies, `rx` sees `Disconnected` and
    // the worker exits instead of waiting for ever.
    let (rx, tx) = (tasks.into_receiver(), results.into_sender());
    let Ok(image) = Image::get() else {
        return ExitCode::FAILURE;
    };
    let mut out = AlignedVec::new();
    for m in &rx {
        let Some(at) = m.len().checked_sub(TASK_TRAILER) else {
            continue; // not from a pool: nothing to answer
        };
        let word = |k: usize| {
            i64::from_le_bytes(m[at + 8 * k..at + 8 * k + 8].try_into().unwrap_or_default())
        };
        let (id, tramp, f) = (word(0) as u64, word(1) as isize, word(2) as isize);
        let status = match (image.resolve(tramp), image.resolve(f)) {
            (Some(tramp), Some(f)) => {
                // SAFETY: `tramp` is a `run_task::<T, R>` (a `RunTask`) of
                // this file, as `Pool::task` measured it, and lies in our
                // image of it (checked by `resolve`).
                let run: RunTask = unsafe { std::mem::transmute::<usize, RunTask>(tramp) };
                match catch_unwind(AssertUnwindSafe(|| run(f, &m[..at], &mut out))) {
                    Ok(Ok(())) => OK,
                    Ok(Err(why)) => {
                        out = text(&why);
                        FAILED
                    }
                    Err(panic) => {
                        let why = panic
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "a panic without a message".into());
                        out = text(&why);
                        PANICKED
                    }
                }
            }
            _ => {
                out = text("the task names a function outside this executable");
                FAILED
            }
        };
        drop(m);
        let reply = |body: &mut AlignedVec, status: u64| {
            body.extend_from_slice(&id.to_le_bytes());
            body.extend_from_slice(&status.to_le_bytes());
            tx.send(body)
        };
        match reply(&mut out, status) {
            Ok(()) => {}
            Err(SendError::TooLarge { len, max }) => {
                let why = TaskError::TooLarge {
                    what: "result",
                    len: len - RESULT_TRAILER,
                    max: max - RESULT_TRAILER,
                };
                if reply(&mut text(&why.to_string()), FAILED).is_err() {
                    return ExitCode::FAILURE;
                }
            }
            // The parent is gone.
            Err(_) => return ExitCode::FAILURE,
        }
    }
    ExitCode::SUCCESS
}

fn text(s: &str) -> AlignedVec {
    let mut v = AlignedVec::new();
    v.extend_from_slice(s.as_bytes());
    v
}
