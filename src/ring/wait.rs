//! Waiting and waking: the blocking loop shared by `send` and `recv`, and
//! the `{epoch | sleepers}` wait cells.

use super::*;

/// The watcher's futex sleep (see [`Ring::watch`]): it wakes at least this
/// often to scan for dead peers, so a wake-up that a dead peer never sent
/// costs it at most this.
pub(super) const SLEEP_SLICE: Duration = Duration::from_millis(100);
/// Every other blocked waiter's futex sleep: it wakes this often to check
/// whether its peers are gone (no system call) and to replace a watcher
/// that stopped watching.
pub(super) const LONG_SLICE: Duration = Duration::from_millis(1000);

/// A spinning waiter makes its full attempt at least every this many tries,
/// whatever its cheaper hint says (see `Ring::block`).
const FULL_EVERY: u32 = 16;

/// Who waits in [`Ring::block`], and how.
pub(super) struct Waiter<'a> {
    /// The wait cell of the side that waits.
    pub(super) cell: &'a WaitCell,
    pub(super) deadline: Option<Instant>,
    /// How to spin before sleeping, and what the handle learnt.
    pub(super) backoff: &'a Backoff,
    /// The waiter's lane, given back while it sleeps.
    pub(super) lanes: &'a dyn Relet,
    /// The role whose handles, all gone, end the wait (`ROLE_SENDER` for a
    /// receiver, `ROLE_RECEIVER` for a sender).
    pub(super) peer: u64,
}

/// The lane a blocking call holds: given back for the length of each of
/// its sleeps, so that the other threads of its process can use it (see
/// `lease`), and taken again (perhaps another one) when it wakes.
pub(crate) trait Relet {
    /// The lane held now.
    fn lane(&self) -> u16;
    /// Gives the lane back before a sleep.
    fn pause(&self);
    /// Takes a lane again after a sleep (waiting for one if need be).
    fn resume(&self);
}

/// A lane that is the caller's alone, kept while it sleeps (the loom
/// models', the unit tests').
#[cfg(any(test, loom))]
pub(crate) struct Pinned<'a>(pub(crate) &'a Cell<u16>);

#[cfg(any(test, loom))]
impl Relet for Pinned<'_> {
    fn lane(&self) -> u16 {
        self.0.get()
    }
    fn pause(&self) {}
    fn resume(&self) {}
}

/// What [`Ring::recheck`] found.
enum Recheck<T> {
    /// Nothing: sleep while the wait cell's epoch is this.
    Sleep(u32),
    /// The attempt succeeded (or failed for good).
    Done(T),
    /// The peers are gone; the last attempt's result, or `disconnected()`.
    Gone(T),
}

impl Ring {
    /// Wakes sleeping receivers after one or more commits: Dekker with a
    /// receiver's `register` + re-check, either it sees the commits or we
    /// see it counted among `recv_wait`'s sleepers. The fence orders every
    /// earlier commit before the load of that word, so one call after the
    /// last commit of a batch covers them all.
    pub(crate) fn wake_receivers(&self) {
        fence(Ordering::SeqCst);
        self.wake_if_waiting(&self.ctrl().recv_wait);
    }

    /// Wakes sleeping senders after takes (`maxsize`) or releases; as
    /// `wake_receivers`. Every release that moved `head` ended with a
    /// SeqCst fence (in `advance`), and this one orders all of them before
    /// the load.
    pub(crate) fn wake_senders(&self) {
        fence(Ordering::SeqCst);
        self.wake_if_waiting(&self.ctrl().send_wait);
    }
    /// The slow path shared by `send` and `recv`: `attempt` returns `Some`
    /// when it is done (success or a final error), `None` to keep waiting.
    /// It is retried as `w.backoff` says (spin, yield: see `crate::wait`)
    /// before the caller registers as a waiter and sleeps. The wait ends
    /// with `disconnected()` when every handle that could act as `w.peer`
    /// is gone (checked before each sleep, no system call). One blocked
    /// waiter of the ring, the watcher, also scans for dead processes every
    /// [`SLEEP_SLICE`] (see [`Ring::watch`]); the others sleep up to
    /// [`LONG_SLICE`] at a time. Returns `None` when the deadline passed.
    #[cold]
    pub(super) fn block<T>(
        &self,
        w: Waiter<'_>,
        mut attempt: impl FnMut() -> Option<T>,
        mut hint: impl FnMut() -> bool,
        disconnected: impl Fn() -> T,
    ) -> Option<T> {
        // While spinning, `attempt` only when `hint` says it may succeed,
        // and every `FULL_EVERY` tries regardless (for `close` and errors).
        let mut tries = 0u32;
        let spun = w.backoff.spin(w.deadline, || {
            tries = tries.wrapping_add(1);
            if tries % FULL_EVERY != 0 && !hint() {
                return None;
            }
            attempt()
        });
        // The watcher's identity: the lane we hold now (another thread of
        // ours that holds it later watches as us, which is harmless).
        let me = w.lanes.lane();
        let start = match spun {
            Spun::Done(r) => return Some(r),
            Spun::TimedOut => {
                let (r, watcher) = self.expire(me, w.lanes.lane(), w.peer, attempt, disconnected);
                if watcher {
                    self.unwatch(me);
                }
                return r;
            }
            Spun::Sleep(start) => start,
        };
        let mut watching = false;
        let result = loop {
            let (watcher, scan) = self.watch(me);
            watching |= watcher;
            if scan {
                self.scan(w.lanes.lane());
            }
            let seen = match self.recheck(&w, &mut attempt, &disconnected) {
                Recheck::Sleep(seen) => seen,
                Recheck::Done(r) => {
                    w.backoff.learn(start, Instant::now());
                    break Some(r);
                }
                Recheck::Gone(r) => break Some(r),
            };
            let slice = if watcher { SLEEP_SLICE } else { LONG_SLICE };
            let slice_end = Instant::now() + slice;
            let until = match w.deadline {
                Some(d) if d < slice_end => d,
                _ => slice_end,
            };
            // Asleep we write no notes: the lane is free for the other
            // threads of our process meanwhile.
            w.lanes.pause();
            futex_wait(&w.cell.word, seen, Some(until));
            w.lanes.resume();
            w.cell.leave(seen);
            if w.deadline.is_some_and(|d| Instant::now() >= d) {
                let (r, watcher) = self.expire(me, w.lanes.lane(), w.peer, attempt, disconnected);
                watching |= watcher;
                break r;
            }
        };
        if watching {
            self.unwatch(me);
        }
        result
    }

    /// Registers as a sleeper of `w.cell`, then re-checks (one more
    /// `attempt`, then whether the peers are gone): what it found, or the
    /// epoch to sleep on.
    fn recheck<T>(
        &self,
        w: &Waiter<'_>,
        attempt: &mut impl FnMut() -> Option<T>,
        disconnected: &impl Fn() -> T,
    ) -> Recheck<T> {
        // Only the break `disconnect_unrechecked` looks before registering.
        let gone_early = mutant!(
            "disconnect_unrechecked",
            None,
            Some(self.disconnected(w.peer))
        );
        let late = mutant!("register_after_recheck", false, true);
        let early = (!late).then(|| w.cell.register());
        if mutant!("no_recheck", true, false) {
            if let Some(r) = attempt() {
                if let Some(e) = early {
                    w.cell.leave(e);
                }
                return Recheck::Done(r);
            }
        }
        // Known at the call, or learnt after a sleep: the peers are gone.
        // Checked after registering, like the ring: Dekker with a leaving
        // peer's decrement and fence, so either we see it gone or it sees
        // us asleep and wakes us (the break `disconnect_unrechecked` checks
        // only before registering). Whatever the peers committed is still
        // taken first.
        if gone_early.unwrap_or_else(|| self.disconnected(w.peer)) {
            if let Some(e) = early {
                w.cell.leave(e);
            }
            // The break `disconnect_before_attempt`: report the end without
            // taking what the last peers left.
            let last = mutant!("disconnect_before_attempt", attempt(), None);
            return Recheck::Gone(last.unwrap_or_else(disconnected));
        }
        // The break `register_after_recheck`: counted as a sleeper only
        // after the re-check, so a waker in between sees nobody to wake.
        let mut seen = early.unwrap_or_else(|| w.cell.register());
        if mutant!("seq_after_recheck", false, true) {
            // Relaxed: as in `register`. The break: the epoch read after
            // the re-check, so a wake between the two (which also uncounted
            // us) goes unnoticed.
            seen = wake_epoch(w.cell.word.load(Ordering::Relaxed));
        }
        Recheck::Sleep(seen)
    }

    /// The end of a wait whose deadline passed: a last attempt, or the
    /// peers' end. A short timeout may never sleep a whole slice: it scans
    /// for dead peers before giving up if nobody did lately, so that
    /// callers looping on `*_timeout` recover too. Also returns whether the
    /// caller became the watcher (and owes an `unwatch`). `me` is the
    /// watcher's identity, `lane` the lane it holds.
    pub(super) fn expire<T>(
        &self,
        me: u16,
        lane: u16,
        peer: u64,
        mut attempt: impl FnMut() -> Option<T>,
        disconnected: impl Fn() -> T,
    ) -> (Option<T>, bool) {
        let (watcher, scan) = self.watch(me);
        if scan {
            self.scan(lane);
        }
        let r = attempt().or_else(|| self.disconnected(peer).then(&disconnected));
        (r, watcher)
    }

    /// Wakes `cell`'s sleepers if there are any (see
    /// [`WaitCell::wake_if_waiting`]).
    #[inline]
    pub(super) fn wake_if_waiting(&self, cell: &WaitCell) {
        cell.wake_if_waiting();
    }

    /// Wakes every sleeper, counted or not (for `close`).
    pub(super) fn wake_all(&self, cell: &WaitCell) {
        // Relaxed: as in `wake`; `close` fenced before calling this.
        let mut w = cell.word.load(Ordering::Relaxed);
        while let Err(now) =
            cell.word
                .compare_exchange_weak(w, woken(w), Ordering::Relaxed, Ordering::Relaxed)
        {
            w = now;
        }
        futex_wake_all(&cell.word);
    }
}

impl WaitCell {
    /// Counts the caller among the sleepers and returns the epoch to
    /// sleep on: any wake from now on moves it, so the sleep returns at once
    /// (the kernel compares it under its lock).
    #[inline]
    pub(crate) fn register(&self) -> u32 {
        // Relaxed (then a SeqCst fence): the fence orders this increment before
        // the caller's re-check, against the waker's fence (Dekker).
        let w = self.word.fetch_add(SLEEPER, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        wake_epoch(w)
    }

    /// Stops counting the caller, registered under epoch `seen`, unless a
    /// wake already cleared it (and so moved the epoch).
    #[inline]
    pub(crate) fn leave(&self, seen: u32) {
        // Relaxed: bookkeeping of the count only. While the epoch is `seen`
        // our registration is in the count; the CAS removes exactly it.
        let mut w = self.word.load(Ordering::Relaxed);
        while mutant!("leave_after_wake", wake_epoch(w) == seen, true) && sleepers(w) > 0 {
            match self.word.compare_exchange_weak(
                w,
                w - SLEEPER,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(now) => w = now,
            }
        }
    }

    /// Wakes the sleepers if there are any. The caller has made its
    /// change visible and issued a SeqCst fence.
    #[inline]
    pub(crate) fn wake_if_waiting(&self) {
        // Relaxed: ordered after the caller's change by its SeqCst fence.
        let w = self.word.load(Ordering::Relaxed);
        if sleepers(w) != 0 {
            self.wake(w);
        }
    }

    /// Takes every counted sleeper (`{epoch + 1, 0}` in one CAS from `w`,
    /// the word last seen) and wakes them. If another waker took them
    /// first, there is nothing to do.
    #[cold]
    pub(crate) fn wake(&self, mut w: u64) {
        while sleepers(w) != 0 {
            let next = mutant!("wake_keeps_epoch", woken(w), w & !(u32::MAX as u64));
            // Relaxed: the epoch is a wake-up token, not a publication; a
            // sleeper re-checks its condition through the ring's own
            // Acquire loads, ordered by the fences of `register` and the
            // waker.
            match self
                .word
                .compare_exchange_weak(w, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => {
                    futex_wake_all(&self.word);
                    return;
                }
                Err(now) => w = now,
            }
        }
    }
}
