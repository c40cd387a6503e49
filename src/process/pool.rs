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
//! Messages (the archive first, where the ring aligns it, then a trailer):
//!
//! ```text
//! task:   | rkyv archive of T | id u64 | trampoline offset i64 | function offset i64 |
//! result: | rkyv archive of R, or a UTF-8 message | id u64 | status u64 |
//! ```

use super::{spawn, Child, Image};
use crate::error::{ProcessError, RecvError, SendError, TaskError};
use crate::typed::Message;
use crate::{Queue, Receiver, Sender};
use rkyv::rancor::Failure;
use rkyv::util::AlignedVec;
use std::borrow::Borrow;
use std::collections::{HashMap, VecDeque};
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::ExitCode;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Tasks a worker's queue holds at once. One: a second, queued behind a
/// long task, would wait for it while another worker idles (Python's pool
/// shares one queue and has no such wait); the price is one hop through the
/// parent between a worker's tasks.
const PREFETCH: usize = 1;

const TASK_TRAILER: usize = 24;
const RESULT_TRAILER: usize = 16;
const OK: u64 = 0;
const PANICKED: u64 = 1;
const FAILED: u64 = 2;

/// How often the collector looks for dead workers while tasks run.
const REAP_BUSY: Duration = Duration::from_millis(5);
/// ... and while none does.
const REAP_IDLE: Duration = Duration::from_millis(50);

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
    tasks: Queue,
    tx: Sender,
    /// Takes back what a dead worker left in its queue.
    back: Receiver,
    /// Sent to this worker and not answered, in the order sent.
    inflight: VecDeque<Task>,
}

impl Pool {
    /// Starts `processes` workers (0: one per CPU) with task and result
    /// queues of the default capacity (1 MiB: arguments and results up to
    /// 512 KiB serialized).
    ///
    /// # Errors
    /// As [`crate::process::spawn`]; [`ProcessError::Open`] if the queues
    /// cannot be made.
    pub fn new(processes: usize) -> Result<Pool, ProcessError> {
        Pool::start(processes, None)
    }

    /// As [`Pool::new`], with queues of `capacity_bytes` each (see
    /// [`crate::Builder::capacity_bytes`]): arguments and results up to
    /// half of it.
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
        // A chunk's argument takes at most an eighth of the largest
        // message, which leaves its results room to be larger; a chunk
        // over that is halved (a single item over it is `TooLarge`).
        let budget = self.inner.results.max_message_size() / 8;
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

fn queue(capacity_bytes: Option<usize>) -> Result<Queue, ProcessError> {
    let b = Queue::builder();
    let b = match capacity_bytes {
        Some(c) => b.capacity_bytes(c),
        None => b,
    };
    Ok(b.create()?)
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent maps (no
        // multi-step update is left half done by a panic in them).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn start_worker(&self) -> Result<Slot, ProcessError> {
        let tasks = queue(self.capacity_bytes)?;
        let child = spawn(worker, (&tasks, &self.results))?;
        Ok(Slot {
            child: Some(child),
            tx: tasks.sender(),
            back: tasks.receiver(),
            tasks,
            inflight: VecDeque::new(),
        })
    }

    /// Numbers `tasks`, queues them, and hands out what workers have room for.
    fn submit(&self, mut tasks: Vec<Task>, group: Option<u64>) -> Result<Vec<u64>, TaskError> {
        let mut st = self.lock();
        if st.closed {
            return Err(TaskError::Closed);
        }
        let mut ids = Vec::with_capacity(tasks.len());
        for mut t in tasks.drain(..) {
            st.next_id += 1;
            t.id = st.next_id;
            t.group = group;
            let at = t.bytes.len() - TASK_TRAILER;
            t.bytes[at..at + 8].copy_from_slice(&t.id.to_le_bytes());
            ids.push(t.id);
            st.pending.push_back(t);
        }
        st.dispatch();
        Ok(ids)
    }

    /// The collector: reads results, finds dead workers, stops the pool.
    fn collect(&self, rx: Receiver) {
        let mut last_reap = Instant::now();
        loop {
            let busy = {
                let st = self.lock();
                if st.finished() {
                    break;
                }
                st.workers.iter().any(|w| !w.inflight.is_empty())
            };
            let wait = if busy { REAP_BUSY } else { REAP_IDLE };
            match rx.recv_timeout(wait) {
                Ok(m) => {
                    let mut st = self.lock();
                    st.finish(&m);
                    drop(m);
                    while let Ok(m) = rx.try_recv() {
                        st.finish(&m);
                    }
                    st.dispatch();
                    self.changed.notify_all();
                }
                Err(RecvError::Timeout) => {}
                // We hold the queue: it cannot close or disconnect; stop
                // rather than spin if it ever does.
                Err(_) => break,
            }
            if last_reap.elapsed() >= wait {
                last_reap = Instant::now();
                self.reap(&rx);
            }
        }
        self.stop(&rx);
    }

    /// Replaces dead workers; fails the task each held, gives the tasks
    /// still in its queue to its successor.
    fn reap(&self, rx: &Receiver) {
        let mut st = self.lock();
        if st.terminated {
            return;
        }
        for k in 0..st.workers.len() {
            let Some(child) = &mut st.workers[k].child else {
                continue;
            };
            let Ok(Some(status)) = child.try_wait() else {
                continue;
            };
            let pid = child.pid();
            // Every result it sent is in the result queue now.
            while let Ok(m) = rx.try_recv() {
                st.finish(&m);
            }
            let w = &mut st.workers[k];
            w.child = None;
            let mut untaken = 0;
            while w.back.try_recv().is_ok() {
                untaken += 1;
            }
            let taken = w.inflight.len().saturating_sub(untaken);
            let died: Vec<Task> = w.inflight.drain(..taken).collect();
            let requeue: Vec<Task> = w.inflight.drain(..).collect();
            for t in requeue.into_iter().rev() {
                st.pending.push_front(t);
            }
            for t in died {
                let why = TaskError::WorkerDied {
                    pid,
                    status: status.to_string(),
                };
                st.resolve(t.id, t.group, Err(why));
            }
            match self.start_worker() {
                Ok(slot) => st.workers[k] = slot,
                Err(e) => {
                    eprintln!("shmq: pool could not replace worker {pid}: {e}");
                }
            }
        }
        if st.workers.iter().all(|w| w.child.is_none()) {
            let why = TaskError::Failed("no worker process could be started".into());
            while let Some(t) = st.pending.pop_front() {
                st.resolve(t.id, t.group, Err(why.clone()));
            }
        }
        st.dispatch();
        self.changed.notify_all();
    }

    /// After the last task (or on terminate): ends the workers, fails what
    /// is left, and tells every waiter.
    fn stop(&self, rx: &Receiver) {
        let mut st = self.lock();
        if !st.terminated {
            while let Ok(m) = rx.try_recv() {
                st.finish(&m);
            }
        }
        for w in &mut st.workers {
            w.tasks.close(); // a worker exits once its queue is drained
        }
        let workers: Vec<Slot> = st.workers.drain(..).collect();
        let left: Vec<Task> = st.pending.drain(..).collect();
        for t in left.into_iter().chain(workers.iter().flat_map(|w| {
            w.inflight.iter().map(|t| Task {
                id: t.id,
                group: t.group,
                bytes: AlignedVec::new(),
            })
        })) {
            st.resolve(t.id, t.group, Err(TaskError::Terminated));
        }
        st.stopped = true;
        self.changed.notify_all();
        drop(st);
        for mut w in workers {
            if let Some(c) = &mut w.child {
                let _ = c.wait();
            }
        }
    }
}

impl State {
    /// Whether the collector can stop: terminated, or closed with no task left.
    fn finished(&self) -> bool {
        self.terminated
            || (self.closed
                && self.pending.is_empty()
                && self.workers.iter().all(|w| w.inflight.is_empty()))
    }

    /// Gives pending tasks to the live workers with the fewest in flight.
    fn dispatch(&mut self) {
        while !self.pending.is_empty() {
            let best = self
                .workers
                .iter()
                .enumerate()
                .filter(|(_, w)| w.child.is_some() && w.inflight.len() < PREFETCH)
                .min_by_key(|(_, w)| w.inflight.len())
                .map(|(k, _)| k);
            let Some(k) = best else { return };
            let Some(t) = self.pending.pop_front() else {
                return;
            };
            let w = &mut self.workers[k];
            match w.tx.try_send(&t.bytes) {
                Ok(()) => w.inflight.push_back(t),
                Err(SendError::TooLarge { .. }) => {
                    let len = t.bytes.len() - TASK_TRAILER;
                    let max = w.tasks.max_message_size() - TASK_TRAILER;
                    let e = TaskError::TooLarge {
                        what: "argument",
                        len,
                        max,
                    };
                    self.resolve(t.id, t.group, Err(e));
                }
                // Full (no room yet) or the worker is gone: try later.
                Err(_) => {
                    self.pending.push_front(t);
                    return;
                }
            }
        }
    }

    /// Records a result message from a worker.
    fn finish(&mut self, m: &[u8]) {
        let Some(at) = m.len().checked_sub(RESULT_TRAILER) else {
            return;
        };
        let id = u64::from_le_bytes(m[at..at + 8].try_into().unwrap_or_default());
        let status = u64::from_le_bytes(m[at + 8..].try_into().unwrap_or_default());
        let Some((k, pos)) = self
            .workers
            .iter()
            .enumerate()
            .find_map(|(k, w)| w.inflight.iter().position(|t| t.id == id).map(|p| (k, p)))
        else {
            return; // a task already failed or terminated
        };
        let Some(t) = self.workers[k].inflight.remove(pos) else {
            return;
        };
        let body = &m[..at];
        let text = || String::from_utf8_lossy(body).into_owned();
        let outcome = match status {
            OK => {
                let mut v = AlignedVec::with_capacity(body.len());
                v.extend_from_slice(body);
                Ok(v)
            }
            PANICKED => Err(TaskError::Panicked(text())),
            _ => Err(TaskError::Failed(text())),
        };
        self.resolve(t.id, t.group, outcome);
    }

    fn resolve(&mut self, id: u64, group: Option<u64>, outcome: Outcome) {
        match group {
            Some(g) => {
                if let Some(q) = self.groups.get_mut(&g) {
                    q.push_back(outcome);
                }
            }
            None => {
                if !self.abandoned.remove(&id) {
                    self.done.insert(id, outcome);
                }
            }
        }
    }
}

/// The result of [`Pool::apply_async`], to wait for (Python's `AsyncResult`).
/// Dropping it drops the result when it comes.
pub struct AsyncResult<R> {
    id: u64,
    inner: Arc<Inner>,
    taken: bool,
    _r: PhantomData<fn() -> R>,
}

impl<R: Message> AsyncResult<R> {
    /// Waits for the task's result.
    ///
    /// # Errors
    /// Why the task gave no result: it panicked
    /// ([`TaskError::Panicked`]), its worker died
    /// ([`TaskError::WorkerDied`]), the pool was terminated, or the result
    /// did not validate ([`TaskError::Failed`]).
    pub fn get(mut self) -> Result<R, TaskError> {
        self.take(None)
    }

    /// As [`AsyncResult::get`], waiting at most `timeout`
    /// ([`TaskError::Timeout`]; the result is then dropped when it comes:
    /// use [`AsyncResult::wait_timeout`] to wait and keep the handle).
    ///
    /// # Errors
    /// As [`AsyncResult::get`], and [`TaskError::Timeout`].
    pub fn get_timeout(mut self, timeout: Duration) -> Result<R, TaskError> {
        self.take(Some(Instant::now() + timeout))
    }

    /// Waits at most `timeout` for the task to finish; whether it has
    /// (Python's `wait` then `ready`).
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = self.inner.lock();
        loop {
            if st.done.contains_key(&self.id) || st.stopped {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            st = self
                .inner
                .changed
                .wait_timeout(st, deadline - now)
                .map_or_else(|e| e.into_inner().0, |r| r.0);
        }
    }

    /// Whether the task has finished (Python's `ready`).
    pub fn is_ready(&self) -> bool {
        let st = self.inner.lock();
        st.done.contains_key(&self.id) || st.stopped
    }

    fn take(&mut self, deadline: Option<Instant>) -> Result<R, TaskError> {
        let mut st = self.inner.lock();
        let outcome = loop {
            if let Some(o) = st.done.remove(&self.id) {
                break o;
            }
            if st.stopped {
                break Err(TaskError::Terminated);
            }
            st = match deadline {
                None => self
                    .inner
                    .changed
                    .wait(st)
                    .unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Err(TaskError::Timeout);
                    }
                    self.inner
                        .changed
                        .wait_timeout(st, d - now)
                        .map_or_else(|e| e.into_inner().0, |r| r.0)
                }
            };
        };
        self.taken = true;
        decode(outcome)
    }
}

impl<R> Drop for AsyncResult<R> {
    fn drop(&mut self) {
        if !self.taken {
            let mut st = self.inner.lock();
            if st.done.remove(&self.id).is_none() && !st.stopped {
                st.abandoned.insert(self.id);
            }
        }
    }
}

impl<R> std::fmt::Debug for AsyncResult<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncResult")
            .field("task", &self.id)
            .finish_non_exhaustive()
    }
}

/// Results of [`Pool::imap_unordered`] as they finish.
pub struct ImapUnordered<R> {
    group: u64,
    left: usize,
    inner: Arc<Inner>,
    _r: PhantomData<fn() -> R>,
}

impl<R: Message> Iterator for ImapUnordered<R> {
    type Item = Result<R, TaskError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let mut st = self.inner.lock();
        let outcome = loop {
            if let Some(o) = st.groups.get_mut(&self.group).and_then(VecDeque::pop_front) {
                break o;
            }
            if st.stopped {
                break Err(TaskError::Terminated);
            }
            st = self
                .inner
                .changed
                .wait(st)
                .unwrap_or_else(|e| e.into_inner());
        };
        self.left -= 1;
        Some(decode(outcome))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl<R> Drop for ImapUnordered<R> {
    fn drop(&mut self) {
        self.inner.lock().groups.remove(&self.group);
    }
}

impl<R> std::fmt::Debug for ImapUnordered<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImapUnordered")
            .field("left", &self.left)
            .finish_non_exhaustive()
    }
}

fn decode<R: Message>(outcome: Outcome) -> Result<R, TaskError> {
    let bytes = outcome?;
    rkyv::from_bytes::<R, Failure>(&bytes).map_err(|_| {
        TaskError::Failed(format!(
            "the result is not a valid {}",
            std::any::type_name::<R>()
        ))
    })
}

/// A task's trampoline: runs the function at the address given on the
/// archived argument, and writes the archived result.
type RunTask = fn(usize, &[u8], &mut AlignedVec) -> Result<(), String>;

fn run_task<T: Message, R: Message>(
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
fn run_chunk<T: Message, R: Message>(
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
fn worker((tasks, results): (Queue, Queue)) -> ExitCode {
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
