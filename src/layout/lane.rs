//! Lanes: one cache line per live handle, saying who holds each half-done
//! step (see `layout`'s module docs, and `ring::lanes`).

use super::*;

/// A handle's lane; see the module docs. One cache line, so that a
/// handle's stores to its own lane never contend with another's.
#[repr(C, align(64))]
pub(crate) struct Lane {
    pub owner: AtomicU64,
    pub handoff: AtomicU64,
    /// The `intent` of a take that is leased (the same word), while it is
    /// noted: a survivor of its death gives the record back (RETURNED)
    /// instead of counting it delivered (DONE).
    pub leasing: AtomicU64,
    pub intent: AtomicU64,
    pub need: AtomicU64,
    pub moving: AtomicU64,
    pub to: AtomicU64,
    _unused: AtomicU64,
}

#[cfg(any(test, loom))]
impl Lane {
    /// A free lane, as a fresh segment has.
    pub(crate) fn new() -> Self {
        let z = || AtomicU64::new(0);
        Lane {
            owner: z(),
            handoff: z(),
            leasing: z(),
            intent: z(),
            need: z(),
            moving: z(),
            to: z(),
            _unused: z(),
        }
    }
}

/// Lanes per ring: the most live handles (senders and receivers, all
/// processes together) a ring serves at once. Descriptor owners are 8 bits.
#[cfg(not(loom))]
pub(crate) const LANES: usize = 256;
/// Under loom: enough for the models, few enough to scan cheaply.
#[cfg(loom)]
pub(crate) const LANES: usize = 4;
pub(crate) const LANE_LEN: usize = 64;
pub(crate) const LANES_LEN: usize = LANES * LANE_LEN;
/// `Lane::owner`: the lane is in use (so that pid 0 never reads as free).
pub(crate) const LANE_USED: u64 = 1 << 38;
/// `Lane::owner`: the owner could not take its liveness lock (no way to
/// open the segment's file again, e.g. a memfd without `/proc`), so its
/// process is always presumed alive.
pub(crate) const LANE_NOLOCK: u64 = 1 << 39;
/// `Lane::owner`: the generation, bumped each time the lane is taken.
const LANE_GEN_SHIFT: u32 = 40;
/// `Lane::owner` role: a sender.
pub(crate) const ROLE_SENDER: u64 = 1;
/// `Lane::owner` role: a receiver.
pub(crate) const ROLE_RECEIVER: u64 = 2;
/// `Lane::owner` role: a queue handle (could make senders and receivers).
pub(crate) const ROLE_QUEUE: u64 = 3;
/// `Lane::owner` role while a survivor frees the lane.
pub(crate) const ROLE_REAPING: u64 = 0x3f;
/// Byte of the segment's file whose lock says lane 0 of ring 0 is alive
/// (lane `i` of ring `k`: `LOCK_BASE + k * LANES + i`); past any data, so
/// that nothing else ever locks it. Record locks may lie past the end of a
/// file.
pub(crate) const LOCK_BASE: u64 = 1 << 40;
/// `Lane::intent` / `Lane::moving`: the word is set (bit 0 of a cursor is
/// the closed bit, never set in a cursor that a claim or take CASes from).
pub(crate) const INTENT_SET: u64 = 1;
const _: () = assert!(OWNER_MASK as usize + 1 >= LANES);

/// The owner word that takes a lane whose word was `prev` (free, or held
/// by a dead owner) for process `pid` in `role`: the next generation.
#[inline]
pub(crate) fn lane_owner(prev: u64, pid: u32, role: u64, locked: bool) -> u64 {
    let gen = (prev >> LANE_GEN_SHIFT).wrapping_add(1) << LANE_GEN_SHIFT;
    gen | LANE_USED | if locked { 0 } else { LANE_NOLOCK } | (role << 32) | pid as u64
}

/// The free word that a lane owned as `owner` goes back to (same
/// generation).
#[inline]
pub(crate) fn lane_free(owner: u64) -> u64 {
    owner & !((1 << LANE_GEN_SHIFT) - 1)
}

/// The word of a lane being freed by process `pid`, which held `owner`.
#[inline]
pub(crate) fn lane_reaping(owner: u64, pid: u32) -> u64 {
    lane_free(owner) | LANE_USED | (ROLE_REAPING << 32) | pid as u64
}

/// The role of a lane owner word (0 when free).
#[inline]
pub(crate) fn lane_role(owner: u64) -> u64 {
    if owner & LANE_USED == 0 {
        0
    } else {
        (owner >> 32) & 0x3f
    }
}

/// The pid of a lane owner word (the loom models' liveness; hand-offs).
#[inline]
pub(crate) fn lane_pid(owner: u64) -> u32 {
    owner as u32
}
