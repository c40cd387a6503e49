//! What a sending and a receiving handle share: the segment, the ring they
//! use in it, and a lane of this process, registered for forks (see
//! `handles`).

use super::*;

/// A sending or receiving handle's place: its ring, and its lane. The lane
/// itself is cached by the handle in a cell of its own hot-path state (see
/// [`Endpoint::lane`]).
pub(crate) struct Endpoint {
    shared: Arc<Shared>,
    ring: u16,
    /// The fork generation the handle's lane cell was last set under.
    gen: Cell<u64>,
    reg: HandleLane,
}

impl Endpoint {
    /// A handle of `role` on ring `ring` of `shared`.
    pub(crate) fn new(shared: Arc<Shared>, ring: u16, role: u64) -> Self {
        Endpoint {
            gen: Cell::new(0),
            reg: HandleLane::new(shared.ring(ring), role),
            shared,
            ring,
        }
    }

    /// The handle's lane (cached in `lane`) in this process: the one it
    /// took, the one the fork handler took for it in a forked child, or a
    /// new one when none was free before; or why it has none.
    #[inline]
    pub(crate) fn lane(&self, lane: &Cell<u16>) -> Result<u16, JoinError> {
        let l = lane.get();
        if l != NO_LANE && self.gen.get() == proc::fork_gen() {
            return Ok(l);
        }
        self.refresh(lane)
    }

    #[cold]
    fn refresh(&self, lane: &Cell<u16>) -> Result<u16, JoinError> {
        self.gen.set(proc::fork_gen());
        let l = self.reg.lane();
        lane.set(*l.as_ref().unwrap_or(&NO_LANE));
        l
    }

    #[inline]
    pub(crate) fn ring(&self) -> &Ring {
        self.shared.ring(self.ring)
    }

    /// The segment and its rings.
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The index of the handle's ring in its segment.
    pub(crate) fn ring_index(&self) -> u16 {
        self.ring
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        // Before `shared` drops: the lane lives in its mapping.
        self.reg.release();
    }
}
