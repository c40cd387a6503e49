//! How a blocking call waits before it sleeps: the wait strategy a handle
//! is set to, and the adaptive policy that is the default.
//!
//! A futex wake-up costs the sleeper tens of microseconds on a VM (and the
//! waker a system call), while a peer on another core answers in well under
//! one. So a blocking call first retries without sleeping, as long as the
//! answer is likely to come soon, and only then sleeps. "Soon" is learnt per
//! handle from its recent waits, as adaptive mutexes do (glibc's
//! `PTHREAD_MUTEX_ADAPTIVE_NP`) and as the LMAX Disruptor's phased back-off
//! and Aeron's back-off idle strategy do in phases:
//!
//! 1. **spin** (CPU spin hint between tries) for the handle's *budget*;
//! 2. **yield** the CPU (`sched_yield`) between tries for as long again,
//!    so that on an oversubscribed machine the peer we wait for can run;
//! 3. **sleep** on the futex (see `Ring::block`).
//!
//! After each wait that had to retry, the budget moves a quarter of the way
//! towards twice that wait's length when the wait ended within
//! [`MAX_SPIN`] (spinning longer would have met it), and towards
//! [`MIN_SPIN`] when it did not (the peer was idle: spinning only burns a
//! core). An idle handle therefore spins about 10 µs and yields 10 µs
//! before each sleep; a handle whose peer answers within a few microseconds meets
//! it without a system call on either side.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// How a handle's blocking calls wait when they cannot go on at once.
///
/// ```
/// use shmq::WaitStrategy;
///
/// let q = shmq::Queue::builder().create()?;
/// let mut rx = q.receiver();
/// assert_eq!(rx.wait_strategy(), WaitStrategy::Adaptive);
/// rx.set_wait_strategy(WaitStrategy::Spin(0)); // always sleep at once
/// assert_eq!(rx.clone().wait_strategy(), WaitStrategy::Spin(0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WaitStrategy {
    /// Spin, then yield, then sleep on the futex, spinning as long as this
    /// handle's recent waits suggest the peer answers soon (between 10 µs
    /// and 50 µs; see docs/DESIGN.md, *Waiting*). The default.
    #[default]
    Adaptive,
    /// Retry this many times, with a CPU spin hint between tries, then
    /// sleep. `Spin(0)` sleeps at once: the least CPU, and a futex wake-up
    /// for every hand-off. `Spin(u32::MAX)` spins for minutes; a handle
    /// that must never sleep can also loop on `try_send`/`try_recv`.
    Spin(u32),
}

/// Shortest adaptive spin: long enough to ride out a peer's short stall
/// (a page fault, a VM hiccup) without a futex round, short enough that an
/// idle handle's spin and yield before each sleep cost 20 µs.
pub(crate) const MIN_SPIN: Duration = Duration::from_micros(10);
/// Longest adaptive spin: about the cost of a futex wake-up on a VM, past
/// which sleeping costs no more latency than spinning and frees the core.
pub(crate) const MAX_SPIN: Duration = Duration::from_micros(50);
/// Tries between two clock reads while spinning (a clock read costs about
/// as much as a try).
const CLOCK_EVERY: u32 = 16;

/// A handle's wait strategy and what it has learnt. Process-local (`Cell`s):
/// each handle clone learns for itself.
#[derive(Debug)]
pub(crate) struct Backoff {
    strategy: WaitStrategy,
    /// The adaptive spin budget, in nanoseconds.
    budget_ns: Cell<u32>,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(WaitStrategy::Adaptive)
    }
}

impl Clone for Backoff {
    /// The same strategy; the budget starts afresh.
    fn clone(&self) -> Self {
        Backoff::new(self.strategy)
    }
}

/// How a wait that went through [`Backoff::spin`] ended.
pub(crate) enum Spun<T> {
    /// `attempt` answered.
    Done(T),
    /// The deadline passed.
    TimedOut,
    /// Nothing yet: sleep. Carries the start of the wait, for
    /// [`Backoff::learn`].
    Sleep(Instant),
}

impl Backoff {
    pub(crate) fn new(strategy: WaitStrategy) -> Self {
        Backoff {
            strategy,
            budget_ns: Cell::new(MIN_SPIN.as_nanos() as u32 * 2),
        }
    }

    pub(crate) fn strategy(&self) -> WaitStrategy {
        self.strategy
    }

    /// The current adaptive budget (diagnostics and tests).
    pub(crate) fn budget(&self) -> Duration {
        Duration::from_nanos(self.budget_ns.get() as u64)
    }

    /// Phases 1 and 2: retries `attempt` until it answers, the deadline
    /// passes, or the strategy says to sleep. No clock is read by
    /// `Spin(0)`, nor under loom (which never spins: it only multiplies the
    /// interleavings to explore).
    #[inline]
    pub(crate) fn spin<T>(
        &self,
        deadline: Option<Instant>,
        mut attempt: impl FnMut() -> Option<T>,
    ) -> Spun<T> {
        if cfg!(loom) || self.strategy == WaitStrategy::Spin(0) {
            return Spun::Sleep(Instant::now());
        }
        let start = Instant::now();
        let (spin_until, yield_until) = match self.strategy {
            WaitStrategy::Adaptive => {
                let b = self.budget();
                (start + b, start + 2 * b)
            }
            // A fixed count: the clock is read only for the deadline.
            WaitStrategy::Spin(_) => (start, start),
        };
        let mut tries = match self.strategy {
            WaitStrategy::Spin(n) => n,
            WaitStrategy::Adaptive => u32::MAX,
        };
        let mut now;
        // Spin.
        loop {
            let n = tries.min(CLOCK_EVERY);
            for _ in 0..n {
                crate::sync::spin_hint();
                if let Some(r) = attempt() {
                    self.learn(start, Instant::now());
                    return Spun::Done(r);
                }
            }
            tries -= n;
            now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return Spun::TimedOut;
            }
            if tries == 0 || (self.strategy == WaitStrategy::Adaptive && now >= spin_until) {
                break;
            }
        }
        // Yield (adaptive only).
        while now < yield_until {
            std::thread::yield_now();
            if let Some(r) = attempt() {
                self.learn(start, Instant::now());
                return Spun::Done(r);
            }
            now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return Spun::TimedOut;
            }
        }
        Spun::Sleep(start)
    }

    /// Learns from a wait that began at `start` and ended (its condition
    /// met) at `end`.
    #[inline]
    pub(crate) fn learn(&self, start: Instant, end: Instant) {
        if self.strategy != WaitStrategy::Adaptive {
            return;
        }
        let waited = end.saturating_duration_since(start);
        let target = if waited <= MAX_SPIN {
            (2 * waited).clamp(MIN_SPIN, MAX_SPIN)
        } else {
            MIN_SPIN
        };
        let b = self.budget_ns.get() as u64;
        let t = target.as_nanos() as u64;
        self.budget_ns.set(((3 * b + t) / 4) as u32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_waits_raise_the_budget_and_long_ones_lower_it() {
        let b = Backoff::default();
        let t0 = Instant::now();
        for _ in 0..50 {
            b.learn(t0, t0 + Duration::from_micros(20));
        }
        let up = b.budget();
        assert!(up > Duration::from_micros(35) && up <= MAX_SPIN, "{up:?}");
        for _ in 0..50 {
            b.learn(t0, t0 + Duration::from_secs(1));
        }
        let down = b.budget();
        assert!(
            down >= MIN_SPIN && down < MIN_SPIN + Duration::from_micros(1),
            "{down:?}"
        );
        // Waits just past the longest spin count as idle, not as a reason
        // to spin longer.
        for _ in 0..50 {
            b.learn(t0, t0 + MAX_SPIN + Duration::from_micros(1));
        }
        assert!(b.budget() < MIN_SPIN + Duration::from_micros(1));
    }

    #[test]
    fn fixed_spins_learn_nothing_and_count_their_tries() {
        let b = Backoff::new(WaitStrategy::Spin(40));
        let t0 = Instant::now();
        b.learn(t0, t0 + Duration::from_micros(20));
        assert_eq!(b.budget(), Backoff::default().budget());
        let mut tries = 0;
        assert!(matches!(
            b.spin(None, || {
                tries += 1;
                None::<()>
            }),
            Spun::Sleep(_)
        ));
        assert_eq!(tries, 40);
        let mut tries = 0;
        assert!(matches!(
            Backoff::new(WaitStrategy::Spin(0)).spin(None, || {
                tries += 1;
                None::<()>
            }),
            Spun::Sleep(_)
        ));
        assert_eq!(tries, 0);
    }

    #[test]
    fn a_spin_ends_at_its_deadline_and_on_an_answer() {
        let b = Backoff::new(WaitStrategy::Spin(u32::MAX));
        let d = Instant::now() + Duration::from_millis(5);
        assert!(matches!(b.spin(Some(d), || None::<()>), Spun::TimedOut));
        assert!(Instant::now() >= d);
        let mut n = 0;
        let r = Backoff::default().spin(None, || {
            n += 1;
            (n == 3).then_some(7)
        });
        assert!(matches!(r, Spun::Done(7)));
    }
}
