//! Batches: several sends, takes or releases with one wake-up.

use super::*;

/// Several sends that wake receivers once, when the batch ends (drops):
/// every commit is followed by one fence and one check of `recv_wait`'s
/// sleepers before the sender blocks (it wakes before waiting for room) or
/// returns.
pub(crate) struct SendBatch<'a> {
    ring: &'a Ring,
    cache: &'a SendCache,
    /// The lane `cache.lane` names, held for the whole batch (see `send`).
    lanes: &'a dyn Relet,
    deadline: Option<Instant>,
    sent: usize,
}

impl<'a> SendBatch<'a> {
    pub(crate) fn new(
        ring: &'a Ring,
        cache: &'a SendCache,
        lanes: &'a dyn Relet,
        deadline: Option<Instant>,
    ) -> Self {
        SendBatch {
            ring,
            cache,
            lanes,
            deadline,
            sent: 0,
        }
    }

    /// Sends one message of the batch, waiting for room as `Ring::send`.
    pub(crate) fn send(&mut self, bytes: &[u8]) -> Result<(), SendError> {
        if bytes.len() > self.ring.max_len() {
            // Through the overflow area, once (a `try_send` that found the
            // ring full would copy it twice).
            self.wake();
            let r = self.ring.send(self.cache, bytes, self.deadline, self.lanes);
            self.sent += r.is_ok() as usize;
            return r;
        }
        let r = match self.ring.try_send_inner(self.cache, bytes, false) {
            Err(SendError::Full) => {
                // Receivers must see what we committed before we wait for
                // them to make room.
                self.wake();
                self.ring.send(self.cache, bytes, self.deadline, self.lanes)
            }
            r => r,
        };
        self.sent += r.is_ok() as usize;
        r
    }

    /// Sends one message of the batch if there is room now.
    pub(crate) fn try_send(&mut self, bytes: &[u8]) -> Result<(), SendError> {
        let r = self.ring.try_send_inner(self.cache, bytes, false);
        self.sent += r.is_ok() as usize;
        r
    }

    /// Messages sent so far.
    pub(crate) fn sent(&self) -> usize {
        self.sent
    }

    /// Wakes receivers for the commits of this batch so far.
    pub(super) fn wake(&self) {
        if self.sent > 0 && mutant!("batch_send_no_wake", true, false) {
            self.ring.wake_receivers();
        }
    }
}

impl Drop for SendBatch<'_> {
    fn drop(&mut self) {
        self.wake();
    }
}

impl Ring {
    /// After a first take, takes what else is ready (until `out` holds
    /// `max` records) without waiting, and wakes senders once for all.
    pub(crate) fn take_ready(&self, max: usize, out: &mut Vec<Claim>, lane: u16) {
        let mut quiet = false;
        while out.len() < max {
            // An error (Empty, Closed, Corrupted) ends the batch; the next
            // call reports it.
            let Ok(c) = self.try_recv_quiet(lane) else {
                break;
            };
            out.push(c);
            quiet = true;
        }
        if quiet && self.maxsize != UNBOUNDED && mutant!("batch_take_no_wake", true, false) {
            self.wake_senders();
        }
    }

    /// Gives taken records' space back, waking senders once.
    pub(crate) fn release_batch(&self, claims: impl IntoIterator<Item = Claim>, lane: u16) {
        let mut moved = false;
        for c in claims {
            self.free_ext(&c);
            moved |= self.release_at(c.pos, c.desc, false, lane);
        }
        if moved && mutant!("batch_release_no_wake", true, false) {
            self.wake_senders();
        }
    }
}
