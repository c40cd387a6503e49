//! What a sending and a receiving handle share: the segment, the ring they
//! use in it, and this process's lanes of that ring for their role (see
//! `lease`), one of which each operation leases.

use super::*;

/// A sending or receiving handle's place: its ring, and the lanes it
/// leases from. The lane of an operation is kept by the handle in a cell
/// of its own hot-path state (see [`Endpoint::lease`]).
pub(crate) struct Endpoint {
    /// Declared before `shared`: its lanes live in the mapping.
    seat: Seat,
    shared: Arc<Shared>,
    ring: u16,
}

impl Endpoint {
    /// A handle of `role` on ring `ring` of `shared`.
    pub(crate) fn new(shared: Arc<Shared>, ring: u16, role: u64) -> Self {
        Endpoint {
            seat: Seat::new(shared.lanes(ring, role)),
            shared,
            ring,
        }
    }

    /// Leases a lane of this process for one operation, kept in `lane`
    /// while the lease lives (see `Seat::lease`); or why this
    /// process has none.
    #[inline]
    pub(crate) fn lease<'a>(&'a self, lane: &'a Cell<u16>) -> Result<Lease<'a>, JoinError> {
        self.seat.lease(lane)
    }

    /// Enters a lane of this process for one operation that does not
    /// sleep, kept in `lane` until the guard drops (see `Seat::enter`).
    #[inline(always)]
    pub(crate) fn enter<'a>(&'a self, lane: &Cell<u16>) -> Result<Entered<'a>, JoinError> {
        self.seat.enter(lane)
    }

    /// This process's lanes of the handle's ring and role.
    pub(crate) fn lanes(&self) -> &LocalLanes {
        self.seat.lanes()
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
