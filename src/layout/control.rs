//! The control block: the hot words (cursors, wait cells, epoch, peer
//! counts, watcher), each on its own cache-line pair.

use super::*;
use crate::sync::WaitWord;
use crossbeam_utils::CachePadded;

/// One side's sleepers, in one word so that a waker can take them all at
/// once:
///
/// ```text
///  63                 32 31                  0
/// +---------------------+---------------------+
/// | wake epoch          | sleepers            |
/// +---------------------+---------------------+
///   futex word (the        counted between registering and
///   high half)             leaving, or until a wake clears them
/// ```
///
/// A sleeper adds 1 (learning the epoch), re-checks, and sleeps on the
/// epoch half while the epoch is unchanged. A waker that sees sleepers
/// replaces the word with `{epoch + 1, 0}` in one CAS and makes the
/// `FUTEX_WAKE` call; wakers that come after it see no sleepers and make
/// none, until someone registers again. A sleeper that leaves on its own
/// (timeout, spurious return) subtracts itself only while the epoch it
/// registered under is current: a wake that cleared it already moved the
/// epoch.
#[repr(C)]
pub(crate) struct WaitCell {
    pub word: WaitWord,
}

impl WaitCell {
    /// No sleepers, epoch 0 (a fresh segment's; the unit tests' rings).
    #[cfg(any(test, loom))]
    pub(crate) fn new() -> Self {
        WaitCell {
            word: WaitWord::new(0),
        }
    }
}

/// One sleeper in a [`WaitCell`] word.
pub(crate) const SLEEPER: u64 = 1;

/// The wake epoch of a [`WaitCell`] word.
#[inline]
pub(crate) fn wake_epoch(w: u64) -> u32 {
    (w >> 32) as u32
}

/// The sleepers counted in a [`WaitCell`] word.
#[inline]
pub(crate) fn sleepers(w: u64) -> u32 {
    w as u32
}

/// The word after a wake: the next epoch, nobody counted.
#[inline]
pub(crate) fn woken(w: u64) -> u64 {
    (wake_epoch(w).wrapping_add(1) as u64) << 32
}

/// The hot words, each on its own cache-line pair (`CachePadded` is 128
/// bytes on x86_64, covering the adjacent-line prefetcher).
#[repr(C)]
pub(crate) struct Control {
    pub tail: CachePadded<AtomicU64>,
    pub read: CachePadded<AtomicU64>,
    pub head: CachePadded<AtomicU64>,
    pub recv_wait: CachePadded<WaitCell>,
    pub send_wait: CachePadded<WaitCell>,
    /// Bumped each time `head` crosses a multiple of `2^HEAD_EPOCH_SHIFT`
    /// granules or `read.seq` a multiple of `2^SEQ_EPOCH_SHIFT` messages.
    /// A producer's cached `head`/`read.seq` is trusted only while the epoch
    /// it was loaded under is current, so it can never be a whole wrap of
    /// the 38-bit (25-bit) space old and alias a current value.
    pub epoch: CachePadded<AtomicU64>,
    /// Registered lanes by role and which roles ever had one:
    /// senders (bits 0..16) | receivers (16..32) | queue handles (32..48) |
    /// [`SEEN_SENDER`] | [`SEEN_RECEIVER`], so that "no sender left" means
    /// "all gone", not "none yet". A count changes only with the CAS that
    /// takes a lane (+1) or starts freeing it (-1), so it never underflows.
    pub seen: CachePadded<AtomicU64>,
    /// The watcher of this ring's blocked waiters:
    /// `{lane + 1: 16 | last scan, ms of CLOCK_MONOTONIC: 48}`, 0 for none.
    /// One blocked waiter at a time holds it and makes the liveness scan
    /// (recover, reap, disconnect) every slice; the others sleep longer.
    pub watch: CachePadded<AtomicU64>,
    /// How many records in `[head, read)` are RETURNED (leased messages
    /// given back, see `ring::returns`): a hint that makes a receiver look
    /// behind `read` before it takes at `read`. It may count too many for a
    /// while (a taker that died before its decrement), never too few for
    /// long (a scan counts a RETURNED record the hint missed).
    pub returned: CachePadded<AtomicU64>,
}

/// [`Control::seen`]: a potential sender (a sender or a queue handle) has
/// registered.
pub(crate) const SEEN_SENDER: u64 = 1 << 48;
/// [`Control::seen`]: a potential receiver (a receiver or a queue handle)
/// has registered.
pub(crate) const SEEN_RECEIVER: u64 = 1 << 49;

/// One lane of `role` in [`Control::seen`]'s counts.
#[inline]
pub(crate) fn role_unit(role: u64) -> u64 {
    match role {
        ROLE_SENDER => 1,
        ROLE_RECEIVER => 1 << 16,
        _ => 1 << 32,
    }
}

/// The seen flags a lane of `role` sets: a queue handle could send and
/// receive.
#[inline]
pub(crate) fn role_seen(role: u64) -> u64 {
    match role {
        ROLE_SENDER => SEEN_SENDER,
        ROLE_RECEIVER => SEEN_RECEIVER,
        _ => SEEN_SENDER | SEEN_RECEIVER,
    }
}

/// Lanes of `role` counted in a [`Control::seen`] word.
#[inline]
pub(crate) fn role_count(w: u64, role: u64) -> u64 {
    (w / role_unit(role)) & 0xffff
}

/// Whether a `seen` word says that every handle that could act as `peer`
/// (ROLE_SENDER: send; ROLE_RECEIVER: receive) is gone: one registered
/// once, and no lane of that role nor any queue handle is left.
#[inline]
pub(crate) fn peers_all_gone(w: u64, peer: u64) -> bool {
    w & role_seen(peer) & (SEEN_SENDER | SEEN_RECEIVER) != 0
        && role_count(w, peer) == 0
        && role_count(w, ROLE_QUEUE) == 0
}
