//! Every offset, size and bit encoding of the shared segment, in one place.
//!
//! ```text
//! offset 0                                                     (one page)
//! +--------------------------------------------------------------------+
//! | Header: magic u64 | version u32 | header_len u32 | capacity u64    |
//! |         maxsize u64 | granule u32 | ready u32 | desc_off u64        |
//! |         data_off u64 | total_len u64 | creator_pid u32 | kind u16    |
//! |         rings u16 | type_hash u64 | type_name [u8; 32]             |
//! |         backlog u64 | overflow u64                                 |
//! +--------------------------------------------------------------------+  128
//! | tail      u64 cursor  (producers CAS)             own 128-byte block |
//! +--------------------------------------------------------------------+  256
//! | read      u64 cursor  (consumers CAS)             own 128-byte block |
//! +--------------------------------------------------------------------+  384
//! | head      u64 position (reclaimer stores)         own 128-byte block |
//! +--------------------------------------------------------------------+  512
//! | recv_wait u64 {wake epoch:32 | sleepers:32}      own 128-byte block |
//! +--------------------------------------------------------------------+  640
//! | send_wait u64 {wake epoch:32 | sleepers:32}      own 128-byte block |
//! +--------------------------------------------------------------------+  768
//! | epoch     u64 (bumped when head/read.seq cross a boundary)         |
//! +--------------------------------------------------------------------+  896
//! | seen      u64 {queue:16 | receiver:16 | sender:16 lanes} + seen bits |
//! +--------------------------------------------------------------------+  1024
//! | watch     u64 {watcher lane + 1:16 | last scan ms:48}              |
//! +--------------------------------------------------------------------+  1152
//! | returned  u64 (leased messages given back, a hint for receivers)   |
//! +--------------------------------------------------------------------+  1280
//! | zero                                                               |
//! +--------------------------------------------------------------------+  4096 = lanes_off
//! | lanes: 256 x 64 bytes, one per live Sender/Receiver handle (below) |
//! +--------------------------------------------------------------------+  20480 = desc_off
//! | descriptors: one u64 per granule of data (capacity / 64 of them)   |
//! +--------------------------------------------------------------------+  data_off (page aligned)
//! | data: capacity bytes, 64-byte granules; a record's payload starts  |
//! | on a granule and is contiguous (never wraps)                       |
//! +--------------------------------------------------------------------+  ring_len
//! | ring 1 (a duplex pipe's second direction): the same layout from    |
//! | its own page 0, whose first 128 bytes are unused                   |
//! +--------------------------------------------------------------------+  rings_end
//! | overflow area (if `overflow` > 0), from the next multiple of 64 KiB:|
//! | state words, block tables, then units holding messages too large   |
//! | for their ring and an unbounded ring's blocks (see `overflow`)     |
//! +--------------------------------------------------------------------+  total_len
//! ```
//!
//! A queue has one ring; a pipe has one (one-way) or two (duplex), each
//! `ring_len` bytes, so ring `k` starts at `k * ring_len` and every offset
//! below is relative to its start. `type_hash` is 0 for a queue of bytes, or
//! the fingerprint of the message type a typed queue was created for (see
//! `typed`); `type_name` holds that type's name, NUL-padded and truncated, for
//! error messages only.
//!
//! ## Cursors (`tail`, `read`)
//!
//! ```text
//!  63            39 38                                          1   0
//! +----------------+---------------------------------------------+---+
//! |  seq (25 bits) |        pos (38 bits, in granules)           | C |
//! +----------------+---------------------------------------------+---+
//! ```
//! `seq` counts messages and `pos` counts granules, both wrapping; `C` is the
//! closed bit (only ever set in `tail`). One CAS on `tail` claims the bytes
//! and a `maxsize` slot together; one CAS on `read` takes a message. `head` is
//! a bare `pos` (same 38-bit wrapping space). Invariant, in wrapping
//! distances: `head <= read <= tail` and `tail - head <= granules`.
//!
//! ## Descriptors
//!
//! ```text
//!  63          41 40      33 32   30 29                              0
//! +--------------+----------+-------+--------------------------------+
//! | tag (23 bits)|  owner   | state |          len (bytes)           |
//! +--------------+----------+-------+--------------------------------+
//! ```
//! The descriptor of granule `i` describes the record that *starts* at
//! granule `i`, if one does; `tag` is the low 23 bits of the lap
//! (`pos / granules`) of that record, so a descriptor left from another lap
//! never passes for the current one. A descriptor is non-zero exactly while a
//! record that starts there lies in `[head, tail)`; the reclaimer zeroes it
//! before it moves `head` past the record. Payload bytes never overlap
//! descriptors, so user data can never be mistaken for a header. `owner` is
//! the lane of the receiver holding a `TAKEN` or `LEASED` record; in a
//! `COMMITTED` or `RETURNED` one it is the record's kind: 0, the message
//! itself, or `KIND_EXT`, an `ExtRef` to a message in the overflow area.
//! States: 0 EMPTY, 1 COMMITTED, 2 PADDING, 3 DONE, 4 TAKEN, 5 SKIP,
//! 6 LEASED (taken by a leased receive), 7 RETURNED (given back, behind
//! `read`, to be taken again; `ring::returns`).
//!
//! ## Lanes
//!
//! ```text
//! +0  owner   u64  gen << 40 | [NOLOCK] | [USED] | role << 32 | pid
//!                  USED clear: free (gen survives, so that a lane freed and
//!                  taken again never reads as the same owner)
//! +8  handoff u64  1: taken by a spawned child before its `exec`, to be
//!                  given up when it attaches (`Queue::inherit_into`)
//! +16 leasing u64  receiver: the `intent` again while the take it notes
//!                  is leased (a survivor gives the record back), else stale
//! +24 intent  u64  0, or the `tail` (sender) / `read` (receiver) word it is
//!                  about to CAS, | 1, until the claim is committed / the take
//!                  marked TAKEN
//! +32 need    u64  sender: pad << 32 | footprint (granules) of that claim
//! +40 moving  u64  receiver: the `head` it is moving on, | 1, else 0
//! +48 to      u64  receiver: where that move ends
//! ```
//! Every live handle owns one lane (one cache line, written only by it). A
//! lane says who holds each half-done step, so that when a process dies
//! (SIGKILL, OOM) a survivor can tell its claims, takes and head moves from
//! slow live ones and finish or undo them; see `ring::recover` and
//! docs/DESIGN.md. Whether a lane's owner lives is not read from the lane:
//! the owner holds an open-file-description lock on byte
//! `LOCK_BASE + ring * LANES + lane` of the segment's file, which the
//! kernel drops when the owner's process dies (see `sys::proc`). The pid is kept
//! for reports only.

mod control;
mod cursor;
mod desc;
mod header;
mod lane;
mod overflow;

pub(crate) use control::*;
pub(crate) use cursor::*;
pub(crate) use desc::*;
pub(crate) use header::*;
pub(crate) use lane::*;
pub(crate) use overflow::*;

use crate::sync::AtomicU64;

#[cfg(test)]
mod tests;
