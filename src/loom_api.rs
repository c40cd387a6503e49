//! The ring protocol, exposed to the loom models in `loom-tests/`.
//!
//! Same code as the shared-memory queue; only the memory differs (loom atomics
//! and loom cells on the heap) and the futex, which is loom's mutex+condvar
//! model (see `sync`).

use crate::error::{RecvError, SendError};
use crate::layout::{ROLE_RECEIVER, ROLE_SENDER};
use crate::ring::{Claim, Pinned, Ring, SendBatch, SendCache, NO_LANE};
use std::cell::Cell;

/// A heap ring of `capacity` bytes (power of two, at least 256) holding at
/// most `maxsize` messages (0: bytes only).
pub struct LoomRing {
    ring: Ring,
    pooled: bool,
    senders: [u16; 2],
    receivers: [u16; 2],
    next_sender: std::sync::atomic::AtomicUsize,
    next_receiver: std::sync::atomic::AtomicUsize,
}

/// A producer's private cache (and lane, if it joined); one per producing
/// thread.
#[derive(Default)]
pub struct Producer(SendCache, std::cell::Cell<bool>);

impl Producer {
    /// A producer with a lane in `ring`, as model process `pid` (1..64).
    pub fn joined(ring: &LoomRing, pid: u32) -> Self {
        let p = Producer::default();
        p.1.set(true);
        let lane = ring.ring.join(ROLE_SENDER, pid).expect("a free lane");
        p.0.lane.set(lane);
        p
    }
}

impl Producer {
    /// Gives the producer's lane back (its handle drops), waking receivers
    /// so that they notice if it was the last sender.
    pub fn leave(self, ring: &LoomRing) {
        ring.ring.leave_lane(self.0.lane.get(), ROLE_SENDER)
    }
}

/// A consumer's lane: what it passes to the `*_as` calls.
#[derive(Clone, Copy)]
pub struct Consumer(u16);

impl Consumer {
    /// A consumer with a lane in `ring`, as model process `pid` (1..64).
    pub fn joined(ring: &LoomRing, pid: u32) -> Self {
        Consumer(ring.ring.join(ROLE_RECEIVER, pid).expect("a free lane"))
    }
}

/// Makes the calling thread stop dead at death point `at` (one of
/// `run_taken`, `run_written` in a send through the overflow area;
/// `claimed`, `padded`, `written` in any send; `taken` in a take; `zeroed`
/// in a release), leaving everything as a SIGKILL there would.
pub fn die_at(at: &'static str) {
    crate::sync::die_at(at)
}

/// Marks model process `pid` dead, as the liveness check will see it.
pub fn kill(pid: u32) {
    crate::sync::kill(pid)
}

loom::thread_local! {
    /// The calling model thread's receiver lane (`None`: not taken yet).
    static MY_LANE: std::cell::Cell<Option<u16>> = std::cell::Cell::new(None);
}

/// A message taken but not yet released.
#[derive(Debug)]
pub struct Taken(Claim);

impl LoomRing {
    /// A new, empty ring.
    pub fn new(capacity: usize, maxsize: u64) -> Self {
        LoomRing::over(Ring::new_heap(capacity, maxsize))
    }

    /// A model's view of `ring`, no lanes handed out yet.
    fn over(ring: Ring) -> Self {
        LoomRing {
            ring,
            pooled: false,
            senders: [NO_LANE; 2],
            receivers: [NO_LANE; 2],
            next_sender: Default::default(),
            next_receiver: Default::default(),
        }
    }
    /// A new, empty ring whose segment has an overflow area of `units`
    /// units of `unit_granules` granules (64 bytes) each, for messages
    /// larger than half the ring.
    pub fn with_overflow(capacity: usize, maxsize: u64, units: u64, unit_granules: u64) -> Self {
        LoomRing::over(Ring::new_heap_overflow(
            capacity,
            maxsize,
            Some((units, unit_granules)),
            0,
        ))
    }
    /// A new, empty unbounded ring: its records live in blocks of
    /// `capacity` bytes in an overflow area of `units` units of
    /// `unit_granules` granules each.
    pub fn unbounded(capacity: usize, maxsize: u64, units: u64, unit_granules: u64) -> Self {
        LoomRing::over(Ring::new_heap_overflow(
            capacity,
            maxsize,
            Some((units, unit_granules)),
            u64::MAX,
        ))
    }
    /// Units of the overflow area in use.
    pub fn overflow_used(&self) -> u64 {
        self.ring.overflow_used()
    }
    /// Units of the overflow area free with their pages kept (WARM).
    pub fn overflow_warm(&self) -> u64 {
        self.ring.overflow_warm()
    }
    /// Frees what dead processes left in the overflow area, as consumer
    /// `c` (adopting each unit first); returns how many units.
    pub fn sweep(&self, c: Consumer) -> usize {
        self.ring.sweep_overflow(c.0)
    }
    /// Non-blocking send.
    pub fn try_send(&self, p: &Producer, msg: &[u8]) -> Result<(), SendError> {
        self.sender_lane(p);
        self.ring.try_send(&p.0, msg)
    }
    /// Blocking send (sleeps on the modelled futex).
    pub fn send(&self, p: &Producer, msg: &[u8]) -> Result<(), SendError> {
        self.sender_lane(p);
        self.ring.send(&p.0, msg, None, &Pinned(&p.0.lane))
    }
    /// A new, empty ring whose handles have lanes, as in production: two
    /// sender and two receiver lanes are taken now (as model process 64,
    /// which never dies), before any model thread runs, and handed to the
    /// first two producers and the first two receiving threads that use the
    /// ring; later ones go without (as a handle that found no free lane).
    pub fn with_lanes(capacity: usize, maxsize: u64) -> Self {
        let mut r = LoomRing::new(capacity, maxsize);
        for (role, pool) in [
            (ROLE_SENDER, &mut r.senders),
            (ROLE_RECEIVER, &mut r.receivers),
        ] {
            for slot in pool.iter_mut() {
                *slot = r.ring.join(role, 64).expect("a free lane");
            }
        }
        r.pooled = true;
        r
    }
    /// The next lane of `pool` (outside loom's view: which thread gets which
    /// is decided by the schedule, which loom replays exactly).
    fn from_pool(&self, pool: &[u16; 2], next: &std::sync::atomic::AtomicUsize) -> u16 {
        if !self.pooled {
            return NO_LANE;
        }
        // Relaxed: hands out pool slots; nothing is published through it.
        let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        pool.get(k).copied().unwrap_or(NO_LANE)
    }
    /// The calling thread's receiver lane (see [`LoomRing::with_lanes`]).
    fn my_lane(&self) -> u16 {
        MY_LANE.with(|l| match l.get() {
            Some(i) => i,
            None => {
                let i = self.from_pool(&self.receivers, &self.next_receiver);
                l.set(Some(i));
                i
            }
        })
    }
    /// Gives producer `p` a lane on first use (see [`LoomRing::with_lanes`]).
    fn sender_lane(&self, p: &Producer) {
        if p.0.lane.get() == NO_LANE && !p.1.get() {
            p.1.set(true);
            p.0.lane
                .set(self.from_pool(&self.senders, &self.next_sender));
        }
    }
    /// Non-blocking take.
    pub fn try_take(&self) -> Result<Taken, RecvError> {
        self.ring.try_recv(self.my_lane()).map(Taken)
    }
    /// Non-blocking take by consumer `c` (its lane notes the take).
    pub fn try_take_as(&self, c: Consumer) -> Result<Taken, RecvError> {
        self.ring.try_recv(c.0).map(Taken)
    }
    /// Non-blocking leased take by consumer `c` (see `Leased`).
    pub fn try_take_leased_as(&self, c: Consumer) -> Result<Taken, RecvError> {
        self.ring.try_recv_leased(c.0).map(Taken)
    }
    /// Acknowledges a leased message taken by consumer `c` (`Leased::ack`).
    pub fn ack_as(&self, t: Taken, c: Consumer) {
        self.ring.settle(&t.0);
        self.ring.release(t.0, c.0)
    }
    /// Gives a leased message back to the queue (a `Leased` dropped).
    pub fn give_back(&self, t: Taken) -> bool {
        self.ring.give_back(&t.0)
    }
    /// Blocking take.
    pub fn take(&self) -> Result<Taken, RecvError> {
        self.ring
            .recv(
                None,
                &crate::wait::Backoff::default(),
                &Pinned(&Cell::new(self.my_lane())),
            )
            .map(Taken)
    }
    /// Blocking receive by consumer `c`: take (waiting while empty,
    /// returning `Disconnected` once every sender has left), copy, release.
    pub fn recv_as(&self, c: Consumer) -> Result<Vec<u8>, RecvError> {
        let t = self
            .ring
            .recv(
                None,
                &crate::wait::Backoff::default(),
                &Pinned(&Cell::new(c.0)),
            )
            .map(Taken)?;
        let v = self.read(&t);
        self.release_as(t, c);
        Ok(v)
    }
    /// Blocking wait until a message is ready (or the end), taking nothing
    /// (`Receiver::poll` without a deadline).
    pub fn wait_ready(&self) -> Result<(), RecvError> {
        self.ring.wait_ready(
            None,
            &crate::wait::Backoff::default(),
            &Pinned(&Cell::new(self.my_lane())),
        )
    }
    /// Frees the lanes of dead model processes that hold nothing pending.
    pub fn reap(&self) -> usize {
        self.ring.reap()
    }
    /// Releases a message taken by consumer `c`.
    pub fn release_as(&self, t: Taken, c: Consumer) {
        self.ring.release(t.0, c.0)
    }
    /// What a blocked survivor does once per sleep slice: finish or undo
    /// what dead processes left half done, and (with a lane) sweep the
    /// overflow area. Returns whether anything moved.
    pub fn recover(&self, c: Option<Consumer>) -> bool {
        let lane = c.map_or(NO_LANE, |c| c.0);
        let moved = self.ring.recover(lane);
        moved | (self.ring.sweep_overflow(lane) > 0)
    }
    /// Copies a taken message out (a loom-tracked read of its cells).
    pub fn read(&self, t: &Taken) -> Vec<u8> {
        let mut v = Vec::new();
        self.ring.copy_payload(&t.0, &mut v);
        v
    }
    /// Gives a taken message's room back.
    pub fn release(&self, t: Taken) {
        self.ring.release(t.0, self.my_lane())
    }
    /// Blocking receive: take, copy, release.
    pub fn recv(&self) -> Result<Vec<u8>, RecvError> {
        let t = self.take()?;
        let v = self.read(&t);
        self.release(t);
        Ok(v)
    }
    /// Non-blocking receive: take, copy, release.
    pub fn try_recv(&self) -> Result<Vec<u8>, RecvError> {
        let t = self.try_take()?;
        let v = self.read(&t);
        self.release(t);
        Ok(v)
    }
    /// Blocking batch send: every message in order, one wake-up at the end
    /// (and one before waiting for room). Returns how many were sent.
    pub fn send_batch(&self, p: &Producer, msgs: &[&[u8]]) -> Result<usize, SendError> {
        self.sender_lane(p);
        let pinned = Pinned(&p.0.lane);
        let mut b = SendBatch::new(&self.ring, &p.0, &pinned, None);
        for m in msgs {
            b.send(m)?;
        }
        Ok(b.sent())
    }
    /// Blocking batch take: waits for one message, then takes up to `max`
    /// ready ones, waking senders once.
    pub fn take_batch(&self, max: usize) -> Result<Vec<Taken>, RecvError> {
        let lane = self.my_lane();
        let mut claims = vec![self.ring.recv(
            None,
            &crate::wait::Backoff::default(),
            &Pinned(&Cell::new(lane)),
        )?];
        self.ring.take_ready(max, &mut claims, lane);
        Ok(claims.into_iter().map(Taken).collect())
    }
    /// Releases taken messages, waking senders once.
    pub fn release_batch(&self, batch: Vec<Taken>) {
        self.ring
            .release_batch(batch.into_iter().map(|t| t.0), self.my_lane())
    }
    /// Blocking batch receive: take a batch, copy each out, release them.
    pub fn recv_batch(&self, max: usize) -> Result<Vec<Vec<u8>>, RecvError> {
        let b = self.take_batch(max)?;
        let out = b.iter().map(|t| self.read(t)).collect();
        self.release_batch(b);
        Ok(out)
    }
    /// Closes the ring.
    pub fn close(&self) {
        self.ring.close()
    }
    /// Messages queued.
    pub fn len(&self) -> usize {
        self.ring.len()
    }
    /// Whether no message is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How many times the calling loom thread has spun or slept waiting for
/// another thread (every spin hint and every modelled `FUTEX_WAIT`). A
/// `try_*` call must leave it unchanged.
pub fn waits() -> u64 {
    crate::sync::waits()
}

/// One lease slot of a process (see `lease`), its lane modelled by a loom
/// cell (two handles using the lane at once are a data race), shared by
/// handles numbered from 0.
pub struct LoomSlot {
    marks: Vec<crate::lease::Mark>,
    /// The slot lock, and the owner it guards.
    owner: loom::sync::Mutex<Option<usize>>,
    lane: loom::cell::UnsafeCell<u64>,
}

impl LoomSlot {
    /// A slot shared by `handles` handles, owned by handle `first`.
    pub fn new(handles: usize, first: usize) -> Self {
        let marks: Vec<_> = (0..handles).map(|_| crate::lease::Mark::new()).collect();
        marks[first].own();
        marks[first].leave();
        LoomSlot {
            marks,
            owner: loom::sync::Mutex::new(Some(first)),
            lane: loom::cell::UnsafeCell::new(0),
        }
    }

    /// One operation of handle `h`: enters the slot if it owns it, else
    /// takes it over (under the lock, from an owner not inside an
    /// operation, as `LocalLanes::find` does; waiting while it is), waits
    /// the old owner out, writes the lane's notes, leaves. Returns the
    /// notes it found.
    pub fn operate(&self, h: usize) -> u64 {
        self.try_operate(h, usize::MAX).expect("unbounded polls")
    }

    /// As [`LoomSlot::operate`], giving up (`None`, having written nothing)
    /// after `polls` polls for an idle owner: for models with more than one
    /// poller, whose spins loom could otherwise schedule against each other
    /// for ever while the busy owner never runs. Such a model checks that
    /// operations have the lane alone, not that every one gets it.
    pub fn try_operate(&self, h: usize, mut polls: usize) -> Option<u64> {
        // As `Seat::enter_raw`: the fast path once, then the slow path's
        // polls (which leave the mark alone until they take a slot).
        if !self.marks[h].enter() {
            loop {
                let old = {
                    let mut who = self.owner.lock().unwrap();
                    let old = who.filter(|&o| o != h);
                    if old.is_some_and(|o| self.marks[o].is_busy()) {
                        None
                    } else {
                        self.marks[h].own();
                        *who = Some(h);
                        if let Some(o) = old {
                            self.marks[o].revoke();
                        }
                        Some(old)
                    }
                };
                match old {
                    // Taken: wait out the old owner, then the lane is ours
                    // (and our mark busy).
                    Some(o) => {
                        if let Some(o) = o {
                            self.marks[o].wait_out();
                        }
                        break;
                    }
                    None if polls == 0 => return None,
                    None => {
                        polls -= 1;
                        crate::sync::spin_hint()
                    }
                }
            }
        }
        // SAFETY: a loom cell; a second user of the lane at once is
        // reported as a race, not undefined behaviour.
        let seen = self.lane.with_mut(|p| unsafe {
            *p += 1;
            *p
        });
        self.marks[h].leave();
        Some(seen)
    }
}
