//! The parent's side of a pool: handing tasks to workers, the collector
//! thread that reads results, and replacing a worker that died.

use super::worker::worker;
use super::{queue, restart_delay, Inner, Outcome, Slot, State, Task, MAX_FAILED_STARTS};
use super::{OK, PANICKED, PREFETCH, RESULT_TRAILER, TASK_TRAILER};
use crate::error::{ProcessError, RecvError, SendError, TaskError};
use crate::process::spawn;
use crate::Receiver;
use rkyv::util::AlignedVec;
use std::collections::VecDeque;
use std::sync::MutexGuard;
use std::time::{Duration, Instant};

/// How often the collector looks for dead workers while tasks run.
const REAP_BUSY: Duration = Duration::from_millis(5);
/// ... and while none does.
const REAP_IDLE: Duration = Duration::from_millis(50);

impl Inner {
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent maps (no
        // multi-step update is left half done by a panic in them).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn start_worker(&self) -> Result<Slot, ProcessError> {
        let tasks = queue(self.capacity_bytes)?;
        let child = spawn(worker, (&tasks, &self.results))?;
        Ok(Slot {
            child: Some(child),
            restart_at: None,
            tx: tasks.sender(),
            back: tasks.receiver(),
            tasks,
            inflight: VecDeque::new(),
        })
    }

    /// Numbers `tasks`, queues them, and hands out what workers have room for.
    pub(super) fn submit(
        &self,
        mut tasks: Vec<Task>,
        group: Option<u64>,
    ) -> Result<Vec<u64>, TaskError> {
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
    pub(super) fn collect(&self, rx: Receiver) {
        let mut last_reap = Instant::now();
        loop {
            let busy = {
                let st = self.lock();
                if st.finished() {
                    break;
                }
                st.workers
                    .iter()
                    .any(|w| !w.inflight.is_empty() || w.restart_at.is_some())
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
    /// still in its queue to its successor. A worker that died without
    /// taking a task is replaced after a back-off ([`restart_delay`]), and
    /// after [`MAX_FAILED_STARTS`] such deaths in a row the pool starts no
    /// more and fails the tasks that would wait for them.
    fn reap(&self, rx: &Receiver) {
        let mut st = self.lock();
        if st.terminated {
            return;
        }
        let now = Instant::now();
        for k in 0..st.workers.len() {
            let w = &mut st.workers[k];
            let Some(child) = &mut w.child else {
                if w.restart_at.is_some_and(|t| now >= t) {
                    self.restart(&mut st, k);
                }
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
            if died.is_empty() {
                // Nothing taken: it died starting, or idle. In a row, that
                // is a pool whose workers cannot run.
                st.failed_starts += 1;
                st.last_failure = format!("worker {pid}: {status}");
            }
            for t in died {
                let why = TaskError::WorkerDied {
                    pid,
                    status: status.to_string(),
                };
                st.resolve(t.id, t.group, Err(why));
            }
            if st.failed_starts == 0 {
                self.restart(&mut st, k);
            } else {
                let at = now + restart_delay(st.failed_starts);
                st.workers[k].restart_at = Some(at);
            }
        }
        if st.failed_starts >= MAX_FAILED_STARTS {
            for w in &mut st.workers {
                w.restart_at = None;
            }
        }
        let waiting = |w: &Slot| w.child.is_some() || w.restart_at.is_some();
        if !st.workers.iter().any(waiting) {
            let why = TaskError::Failed(if st.failed_starts >= MAX_FAILED_STARTS {
                format!(
                    "{} worker processes in a row exited before running a task (the last, {}); \
                     the pool starts no more (see the workers' stderr)",
                    st.failed_starts, st.last_failure
                )
            } else {
                "no worker process could be started".into()
            });
            while let Some(t) = st.pending.pop_front() {
                st.resolve(t.id, t.group, Err(why.clone()));
            }
        }
        st.dispatch();
        self.changed.notify_all();
    }

    /// Starts slot `k`'s next worker (its last one died); a failure to
    /// start counts as a worker that died starting.
    fn restart(&self, st: &mut State, k: usize) {
        match self.start_worker() {
            Ok(slot) => st.workers[k] = slot,
            Err(e) => {
                st.failed_starts += 1;
                st.last_failure = format!("could not start one: {e}");
                let at = Instant::now() + restart_delay(st.failed_starts);
                st.workers[k].restart_at = Some(at);
            }
        }
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
        let mut workers: Vec<Slot> = st.workers.drain(..).collect();
        for w in &workers {
            w.tasks.close(); // a worker exits once its queue is drained
        }
        let left: Vec<Task> = st
            .pending
            .drain(..)
            .chain(workers.iter_mut().flat_map(|w| w.inflight.drain(..)))
            .collect();
        for t in left {
            st.resolve(t.id, t.group, Err(TaskError::Terminated));
        }
        st.stopped = true;
        self.changed.notify_all();
        drop(st);
        for w in &mut workers {
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
        // A worker ran a task: the pool's workers can start.
        self.failed_starts = 0;
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

    pub(super) fn resolve(&mut self, id: u64, group: Option<u64>, outcome: Outcome) {
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
