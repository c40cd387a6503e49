//! Handles to results: [`AsyncResult`] (one task) and [`ImapUnordered`]
//! (many, as they finish).

use super::{Inner, Outcome};
use crate::error::TaskError;
use crate::typed::Message;
use rkyv::rancor::Failure;
use std::collections::VecDeque;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The result of [`Pool::apply_async`](super::Pool::apply_async), to wait for (Python's `AsyncResult`).
/// Dropping it drops the result when it comes.
pub struct AsyncResult<R> {
    pub(super) id: u64,
    pub(super) inner: Arc<Inner>,
    pub(super) taken: bool,
    pub(super) _r: PhantomData<fn() -> R>,
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

/// Results of [`Pool::imap_unordered`](super::Pool::imap_unordered) as they finish.
pub struct ImapUnordered<R> {
    pub(super) group: u64,
    pub(super) left: usize,
    pub(super) inner: Arc<Inner>,
    pub(super) _r: PhantomData<fn() -> R>,
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
