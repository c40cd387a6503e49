//! A process pool, like Python's `multiprocessing.Pool`: worker processes
//! that run functions of this program on rkyv arguments, results matched
//! to their tasks, and a worker that dies mid-task replaced and its task
//! reported failed.
//!
//! Each worker has a task queue of its own, fed by the parent with one task
//! at a time ([`PREFETCH`]); all answer on one result queue, which a
//! collector thread in the parent reads. A worker answers a task before it
//! takes the next, so when one dies the parent knows exactly what it held:
//! the tasks still in its queue (taken back and given to its replacement)
//! and, before those, at most one it had taken and not answered (reported
//! as [`TaskError::WorkerDied`]). A task is never run twice.
//!
//! A worker that dies without taking a task (it cannot start: a broken
//! initialiser, a missing library, a full process table) is replaced
//! after a back-off (10 ms, doubling, at most 1 s); after
//! [`MAX_FAILED_STARTS`] such deaths in a row the pool starts no more
//! workers, and once none is left the tasks waiting fail with
//! [`TaskError::Failed`] saying how the last one ended.
//! (`multiprocessing.Pool` respawns such workers for ever, and its `apply`
//! never returns.) A task that completes resets the count.
//!
//! The pool's API is here; the collector (`collector`), result handles
//! (`result`) and the worker's loop (`worker`) have files of their own.
//!
//! Messages (the archive first, where the ring aligns it, then a trailer):
//!
//! ```text
//! task:   | rkyv archive of T | id u64 | trampoline offset i64 | function offset i64 |
//! result: | rkyv archive of R, or a UTF-8 message | id u64 | status u64 |
//! ```

mod collector;
mod result;
mod worker;

pub use result::{AsyncResult, ImapUnordered};

use super::{Child, Image};
use crate::error::{ProcessError, TaskError};
use crate::typed::Message;
use crate::{Queue, Receiver, Sender};
use rkyv::rancor::Failure;
use rkyv::util::AlignedVec;
use std::borrow::Borrow;
use std::collections::{HashMap, VecDeque};
use std::marker::PhantomData;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use worker::{run_chunk, run_task, RunTask};

/// Tasks a worker's queue holds at once. One: a second, queued behind a
/// long task, would wait for it while another worker idles (Python's pool
/// shares one queue and has no such wait); the price is one hop through the
/// parent between a worker's tasks.
const PREFETCH: usize = 1;

/// The message layout (see the module docs): trailer lengths, and a
/// result's status.
const TASK_TRAILER: usize = 24;
const RESULT_TRAILER: usize = 16;
const OK: u64 = 0;
const PANICKED: u64 = 1;
const FAILED: u64 = 2;

/// A pool of worker processes (Python's `multiprocessing.Pool`).
///
/// The functions it runs are `fn(T) -> R` of this program, with `T` and `R`
/// [`Message`]s; the program's `main` must begin with
/// [`crate::process::init`]. Dropping the pool terminates it (as Python's
/// `with Pool() as p:` does); call [`Pool::close`] and [`Pool::join`] to
/// let it finish its tasks first.
///
/// ```no_run
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     shmq::process::init();
///     let pool = shmq::process::Pool::new(3)?;
///     let r = pool.apply_async(square, &7)?;
///     assert_eq!(r.get()?, 49);
///     assert_eq!(pool.map(square, [1, 2, 3])?, [1, 4, 9]);
///     Ok(())
/// }
/// ```
pub struct Pool {
    inner: Arc<Inner>,
    collector: Option<JoinHandle<()>>,
}

struct Inner {
    state: Mutex<State>,
    /// Signalled when a task finishes and when the pool stops.
    changed: Condvar,
    results: Queue,
    capacity_bytes: Option<usize>,
}

struct State {
    workers: Vec<Slot>,
    /// Tasks not yet in any worker's queue, in order.
    pending: VecDeque<Task>,
    next_id: u64,
    next_group: u64,
    /// Finished tasks of `apply_async`, until their `get`.
    done: HashMap<u64, Outcome>,
    /// Tasks whose `AsyncResult` was dropped: their outcome is dropped too.
    abandoned: std::collections::HashSet<u64>,
    /// Finished tasks of each live `imap_unordered`, in finishing order.
    groups: HashMap<u64, VecDeque<Outcome>>,
    closed: bool,
    terminated: bool,
    /// The collector has stopped: no task will finish any more.
    stopped: bool,
    /// Workers that died in a row without taking a task (or could not be
    /// started), and how the last one ended: at [`MAX_FAILED_STARTS`] the
    /// pool starts no more, and fails what waits for them.
    failed_starts: u32,
    last_failure: String,
}

/// Workers that may die in a row before taking any task (a broken
/// initialiser, a missing library, a full process table) before the pool
/// gives up and fails the tasks waiting for them: `multiprocessing.Pool`
/// respawns such workers for ever and its `apply` never returns.
const MAX_FAILED_STARTS: u32 = 5;

/// The wait before starting the replacement of the `n`th worker in a row
/// that died without taking a task: 10 ms, doubling, at most 1 s.
fn restart_delay(n: u32) -> std::time::Duration {
    std::time::Duration::from_millis(10u64 << n.saturating_sub(1).min(7))
        .min(std::time::Duration::from_secs(1))
}

type Outcome = Result<AlignedVec, TaskError>;

struct Task {
    id: u64,
    group: Option<u64>,
    bytes: AlignedVec,
}

/// One worker process and its task queue.
struct Slot {
    child: Option<Child>,
    /// When to start this slot's next worker, after its last one died
    /// (`None` with no child: the slot is retired).
    restart_at: Option<std::time::Instant>,
    tasks: Queue,
    tx: Sender,
    /// Takes back what a dead worker left in its queue.
    back: Receiver,
    /// Sent to this worker and not answered, in the order sent.
    inflight: VecDeque<Task>,
}

impl Pool {
    /// Starts `processes` workers (0: one per CPU) with task and result
    /// queues of the default capacity (1 MiB rings: arguments and results
    /// up to 512 KiB serialized go through them, larger ones through the
    /// queues' overflow areas, up to the machine's memory).
    ///
    /// # Errors
    /// As [`crate::process::spawn`]; [`ProcessError::Open`] if the queues
    /// cannot be made.
    pub fn new(processes: usize) -> Result<Pool, ProcessError> {
        Pool::start(processes, None)
    }

    /// As [`Pool::new`], with queues of `capacity_bytes` each (see
    /// [`crate::Builder::capacity_bytes`]): arguments and results up to
    /// half of it go through the ring, larger ones through the overflow
    /// area.
    ///
    /// # Errors
    /// As [`Pool::new`].
    pub fn with_capacity_bytes(
        processes: usize,
        capacity_bytes: usize,
    ) -> Result<Pool, ProcessError> {
        Pool::start(processes, Some(capacity_bytes))
    }

    fn start(processes: usize, capacity_bytes: Option<usize>) -> Result<Pool, ProcessError> {
        let n = match processes {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                workers: Vec::with_capacity(n),
                pending: VecDeque::new(),
                next_id: 0,
                next_group: 0,
                done: HashMap::new(),
                abandoned: Default::default(),
                groups: HashMap::new(),
                closed: false,
                terminated: false,
                stopped: false,
                failed_starts: 0,
                last_failure: String::new(),
            }),
            changed: Condvar::new(),
            results: queue(capacity_bytes)?,
            capacity_bytes,
        });
        {
            let mut st = inner.lock();
            for _ in 0..n {
                let slot = inner.start_worker()?;
                st.workers.push(slot);
            }
        }
        let rx = inner.results.receiver();
        let collector = {
            let inner = inner.clone();
            std::thread::Builder::new()
                .name("shmq-pool".into())
                .spawn(move || inner.collect(rx))?
        };
        Ok(Pool {
            inner,
            collector: Some(collector),
        })
    }

    /// The number of worker processes.
    pub fn processes(&self) -> usize {
        self.inner.lock().workers.len()
    }

    /// The workers' process ids (a replaced worker's successor in its place).
    pub fn pids(&self) -> Vec<u32> {
        let st = self.inner.lock();
        st.workers
            .iter()
            .filter_map(|w| w.child.as_ref().map(Child::pid))
            .collect()
    }

    /// Runs `f(arg)` in a worker; returns at once with a handle to its
    /// result (Python's `apply_async`). Tasks start in the order given.
    ///
    /// # Errors
    /// [`TaskError::Closed`] after [`Pool::close`] or [`Pool::terminate`];
    /// [`TaskError::TooLarge`] if `arg` does not fit the pool's queues;
    /// [`TaskError::Failed`] if `f` cannot run in a worker.
    pub fn apply_async<T: Message, R: Message>(
        &self,
        f: fn(T) -> R,
        arg: &T,
    ) -> Result<AsyncResult<R>, TaskError> {
        let task = self.task(f, arg)?;
        let id = self.inner.submit(vec![task], None)?[0];
        Ok(self.handle(id))
    }

    /// The handle to task `id`'s result.
    fn handle<R>(&self, id: u64) -> AsyncResult<R> {
        AsyncResult {
            id,
            inner: self.inner.clone(),
            taken: false,
            _r: PhantomData,
        }
    }

    /// Runs `f(arg)` in a worker and waits for its result (Python's `apply`).
    ///
    /// # Errors
    /// As [`Pool::apply_async`] and [`AsyncResult::get`].
    pub fn apply<T: Message, R: Message>(&self, f: fn(T) -> R, arg: &T) -> Result<R, TaskError> {
        self.apply_async(f, arg)?.get()
    }

    /// Runs `f` on every item in the workers and returns the results in
    /// the items' order (Python's `map`). Items travel in chunks, as with
    /// Python's default `chunksize`: about four per worker, fewer items
    /// when a chunk's argument would take more than an eighth of the
    /// largest message. A chunk's results travel in one message too: for
    /// results much larger than their arguments, use
    /// [`Pool::imap_unordered`] or a larger [`Pool::with_capacity_bytes`].
    ///
    /// # Errors
    /// The first failed chunk's error, in the items' order (the other
    /// chunks still run; their results are dropped); an item whose panic
    /// or worker death fails its chunk fails the whole `map`, as in Python.
    pub fn map<T: Message, R: Message, I>(
        &self,
        f: fn(T) -> R,
        items: I,
    ) -> Result<Vec<R>, TaskError>
    where
        I: IntoIterator<Item = T>,
        Vec<T>: Message,
        Vec<R>: Message,
    {
        let items: Vec<T> = items.into_iter().collect();
        let n = items.len();
        let size = n.div_ceil(4 * self.processes()).max(1);
        let mut chunks = Vec::with_capacity(n.div_ceil(size));
        let mut items = items.into_iter().peekable();
        // A chunk's argument takes at most an eighth of the ring's largest
        // message, which leaves its results room to be larger and keeps
        // both in the rings (the overflow area costs an allocation and its
        // pages per message); a chunk over that is halved.
        let budget = self.inner.results.ring_message_size() / 8;
        while items.peek().is_some() {
            let mut halves = vec![items.by_ref().take(size).collect::<Vec<T>>()];
            while let Some(mut chunk) = halves.pop() {
                let task = match self.task_via(run_chunk::<T, R>, f as usize, &chunk) {
                    Err(TaskError::TooLarge { .. }) if chunk.len() > 1 => None,
                    Ok(t) if t.bytes.len() > budget && chunk.len() > 1 => None,
                    other => Some(other?),
                };
                match task {
                    Some(t) => chunks.push(t),
                    None => {
                        let tail = chunk.split_off(chunk.len() / 2);
                        halves.push(tail);
                        halves.push(chunk);
                    }
                }
            }
        }
        let ids = self.inner.submit(chunks, None)?;
        let handles: Vec<AsyncResult<Vec<R>>> = ids.into_iter().map(|id| self.handle(id)).collect();
        let mut out = Vec::with_capacity(n);
        for h in handles {
            out.extend(h.get()?);
        }
        Ok(out)
    }

    /// Runs `f` on every item in the workers and yields the results as
    /// they finish (Python's `imap_unordered`): each `Err` is a task that
    /// gave no result. All items are serialized and queued now.
    ///
    /// # Errors
    /// As [`Pool::apply_async`], for the first item that cannot be queued
    /// (none is then queued).
    pub fn imap_unordered<T: Message, R: Message, I>(
        &self,
        f: fn(T) -> R,
        items: I,
    ) -> Result<ImapUnordered<R>, TaskError>
    where
        I: IntoIterator,
        I::Item: Borrow<T>,
    {
        let tasks: Vec<Task> = items
            .into_iter()
            .map(|x| self.task(f, x.borrow()))
            .collect::<Result<_, _>>()?;
        let left = tasks.len();
        let group = {
            let mut st = self.inner.lock();
            st.next_group += 1;
            let g = st.next_group;
            st.groups.insert(g, VecDeque::new());
            g
        };
        self.inner.submit(tasks, Some(group))?;
        Ok(ImapUnordered {
            group,
            left,
            inner: self.inner.clone(),
            _r: PhantomData,
        })
    }

    /// Takes no more tasks; the workers exit once every task given has
    /// finished (Python's `close`).
    pub fn close(&self) {
        self.inner.lock().closed = true;
    }

    /// Stops the workers now (SIGKILL); every unfinished task fails with
    /// [`TaskError::Terminated`] (Python's `terminate`).
    pub fn terminate(&self) {
        let mut st = self.inner.lock();
        st.closed = true;
        st.terminated = true;
        for w in &mut st.workers {
            if let Some(c) = &mut w.child {
                let _ = c.kill();
            }
        }
    }

    /// Waits for the workers to exit, after [`Pool::close`] or
    /// [`Pool::terminate`] (Python's `join`).
    ///
    /// # Errors
    /// [`TaskError::Closed`] if the pool was neither closed nor terminated
    /// (it would wait for ever; Python raises `ValueError`).
    pub fn join(&mut self) -> Result<(), TaskError> {
        if !self.inner.lock().closed {
            return Err(TaskError::Closed);
        }
        if let Some(c) = self.collector.take() {
            let _ = c.join();
        }
        Ok(())
    }

    fn task<T: Message, R: Message>(&self, f: fn(T) -> R, arg: &T) -> Result<Task, TaskError> {
        self.task_via(run_task::<T, R>, f as usize, arg)
    }

    /// A task that runs `run(f, arg)` in a worker.
    fn task_via<A: Message>(&self, run: RunTask, f: usize, arg: &A) -> Result<Task, TaskError> {
        let image = Image::get().map_err(|e| TaskError::Failed(e.to_string()))?;
        let offsets = |addr| {
            image
                .offset(addr)
                .map_err(|e| TaskError::Failed(e.to_string()))
        };
        let tramp = offsets(run as usize)?;
        let f = offsets(f)?;
        let mut bytes = rkyv::to_bytes::<Failure>(arg)
            .map_err(|_| TaskError::Failed("the argument did not serialize".into()))?;
        bytes.extend_from_slice(&0u64.to_le_bytes()); // the id, set by `submit`
        bytes.extend_from_slice(&(tramp as i64).to_le_bytes());
        bytes.extend_from_slice(&(f as i64).to_le_bytes());
        let max = self.inner.results.max_message_size();
        if bytes.len() > max {
            return Err(TaskError::TooLarge {
                what: "argument",
                len: bytes.len() - TASK_TRAILER,
                max: max - TASK_TRAILER,
            });
        }
        Ok(Task {
            id: 0,
            group: None,
            bytes,
        })
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        if self.collector.is_some() {
            self.terminate();
            let _ = self.join();
        }
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.inner.lock();
        f.debug_struct("Pool")
            .field("processes", &st.workers.len())
            .field("pending", &st.pending.len())
            .field("closed", &st.closed)
            .finish_non_exhaustive()
    }
}

/// A pool's task or result queue: unbounded, so that submitting never
/// waits for the workers and a worker never waits to hand back a result
/// (as Python's pool, whose task queue and result pipe buffer in the
/// parent), with the backlog in shared memory.
fn queue(capacity_bytes: Option<usize>) -> Result<Queue, ProcessError> {
    let b = Queue::builder().unbounded();
    let b = match capacity_bytes {
        Some(c) => b.capacity_bytes(c),
        None => b,
    };
    Ok(b.create()?)
}
