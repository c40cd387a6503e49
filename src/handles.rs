//! Lanes and `fork`: every lane slot of this process (each slot of a
//! `lease::LocalLanes`, which the process's `Queue`, `Sender` and
//! `Receiver` handles of one ring and role share) is listed here, so that
//! a forked child's inherited handles count from the fork, not from their
//! first use in the child.
//!
//! How: the `pthread_atfork` prepare handler, in the forking thread, takes
//! a lane for the child for one listed slot of each ring and role (the
//! first listed), its lock on a page made for the child
//! (`Locks::fork_hold`); the parent handler unmaps the parent's copy of
//! that page, and the child handler adopts the page and the lanes. So the
//! child counts as a holder of each role it inherited before `fork`
//! returns in either process, and those lanes die with the child. Its
//! other slots are *orphans*: they take a lane of their own when first
//! leased, and a slot of the child that gives up a lane hands it to an
//! orphan of the same ring and role instead (so the child stops counting
//! only when its last handle of that role is gone). A fork therefore takes
//! at most three lanes per ring, however many handles the process has.
//!
//! Why at once: a parent that forks a worker and then drops its own copy
//! of the worker's end (Python's `Process(target=f, args=(conn,))`, then
//! `conn.close()` in the parent) must not leave the other side believing
//! that nobody could send any more. With the child's copy counted from the
//! fork, the other side sees `Disconnected` only once the child too has
//! dropped it, exited or died.
//!
//! A child that `exec`s right after the fork (`Command::spawn` forks when a
//! `pre_exec` hook is set) drops those lanes' locks at `exec` (mappings do
//! not survive it); survivors reap them like any dead process's.

use crate::ring::{JoinError, Ring};
use crate::sync::HoldError;
use crate::sys::proc::{self, GenLock};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};

/// `Registered::word` before a lane is taken, or after it is given back.
const NONE: u64 = u64::MAX;
const GEN_MASK: u64 = (1 << 48) - 1;

/// Slots of one chunk of the registry.
const CHUNK: usize = 4096;
type Chunk = [AtomicPtr<Registered>; CHUNK];

/// The live handles of this process: chunks of slots, each allocated when
/// the ones before it are full (in a normal context: never in a fork
/// handler), never freed. 64 chunks: 262,144 live handles, past which a
/// handle gets no slot and reports `TooManyHandles` at its first use.
static CHUNKS: [AtomicPtr<Chunk>; 64] = [const { AtomicPtr::new(std::ptr::null_mut()) }; 64];

/// Chunk `c`, allocated if `make` and it is not yet.
fn chunk(c: usize, make: bool) -> Option<&'static Chunk> {
    // SYNC: Acquire pairs with the AcqRel CAS below: the chunk's slots are
    // initialised before anyone sees it.
    let p = CHUNKS[c].load(Ordering::Acquire);
    if !p.is_null() {
        // SAFETY: published chunks are never freed.
        return Some(unsafe { &*p });
    }
    if !make {
        return None;
    }
    let new = Box::into_raw(Box::new(
        [const { AtomicPtr::new(std::ptr::null_mut()) }; CHUNK],
    ));
    // SYNC: AcqRel: Release publishes the new chunk's slots to the Acquire
    // loads above; Acquire, on failure, the winner's.
    match CHUNKS[c].compare_exchange(
        std::ptr::null_mut(),
        new,
        Ordering::AcqRel,
        Ordering::Acquire,
    ) {
        // SAFETY: published, never freed.
        Ok(_) => Some(unsafe { &*new }),
        Err(won) => {
            // SAFETY: ours, never published.
            drop(unsafe { Box::from_raw(new) });
            // SAFETY: published, never freed.
            Some(unsafe { &*won })
        }
    }
}

/// The slot of registry index `i`, if its chunk exists.
fn slot(i: usize) -> Option<&'static AtomicPtr<Registered>> {
    chunk(i / CHUNK, false).map(|c| &c[i % CHUNK])
}

/// Held while the registry is walked by the fork handlers, from the
/// prepare handler until the parent or child handler, and while a handle
/// unregisters: so no record is freed under a walk. (A holder from an
/// older generation was a parent's thread: the child takes it over.)
static WALK: GenLock = GenLock::new();

struct Registered {
    /// The handle's ring; valid while the handle is registered (it holds
    /// the mapping).
    ring: *const Ring,
    role: u64,
    /// `{fork generation: 48 | lane: 16}`, or [`NONE`].
    word: AtomicU64,
    /// The lane the prepare handler took for the child of the fork under
    /// way, or [`NONE`].
    forked: AtomicU64,
    /// A copy a fork left without a lane (see the module docs): counted in
    /// [`ORPHANS`] until it has one or is gone.
    orphan: AtomicBool,
}

/// Orphans of this process (see the module docs); a handle that gives up a
/// lane looks for one to hand it to only while there are any.
static ORPHANS: AtomicUsize = AtomicUsize::new(0);

/// A handle's lane, registered for forks (see the module docs). Atomic, so
/// that a `Queue` holding one stays `Sync`.
pub(crate) struct HandleLane {
    rec: Box<Registered>,
    slot: usize,
}

// SAFETY: `rec.ring` points into a mapping the owning handle keeps alive;
// everything else is atomic.
unsafe impl Send for HandleLane {}
// SAFETY: as above; every method takes `&self` and uses atomics only.
unsafe impl Sync for HandleLane {}

#[inline]
fn this_gen() -> u64 {
    proc::fork_gen() & GEN_MASK
}

impl HandleLane {
    /// Registers a handle of `role` on `ring` and takes its lane (if one
    /// is free; otherwise [`HandleLane::lane`] tries again).
    pub(crate) fn new(ring: &Ring, role: u64) -> Self {
        let rec = Box::new(Registered {
            ring,
            role,
            word: AtomicU64::new(NONE),
            forked: AtomicU64::new(NONE),
            orphan: AtomicBool::new(false),
        });
        let ptr = &*rec as *const Registered as *mut Registered;
        let slot = (0..CHUNKS.len())
            .flat_map(|c| {
                let ch = chunk(c, true);
                (0..CHUNK).map(move |i| (c * CHUNK + i, ch))
            })
            .find(|(i, ch)| {
                ch.is_some_and(|ch| {
                    // SYNC: Release pairs with the Acquire load in `each`:
                    // the prepare handler, in whichever thread forks, sees
                    // the record's fields as written above. (Failure:
                    // Relaxed, the slot was taken and nothing is read
                    // through it.)
                    ch[i % CHUNK]
                        .compare_exchange(
                            std::ptr::null_mut(),
                            ptr,
                            Ordering::Release,
                            Ordering::Relaxed,
                        )
                        .is_ok()
                })
            })
            .map_or(usize::MAX, |(i, _)| i);
        let h = HandleLane { rec, slot };
        let _ = h.lane();
        h
    }

    /// The handle's lane in this process: the one it holds, or a new one
    /// (after a fork whose handler found none free, or when none was free
    /// before), or why it has none.
    #[inline]
    pub(crate) fn lane(&self) -> Result<u16, JoinError> {
        // SYNC: Acquire pairs with the Release CAS in `hand_over`: the lane
        // a handle of another thread gave us comes with that handle's last
        // notes in it. (Elsewhere the word is this process's own.)
        let w = self.rec.word.load(Ordering::Acquire);
        if w != NONE && w >> 16 == this_gen() {
            return Ok(w as u16);
        }
        self.take(w)
    }

    /// The lane this holds in this process, if any (takes none).
    #[inline]
    pub(crate) fn current(&self) -> Option<u16> {
        // Acquire: as in `lane`.
        let w = self.rec.word.load(Ordering::Acquire);
        (w != NONE && w >> 16 == this_gen()).then_some(w as u16)
    }

    #[cold]
    fn take(&self, w: u64) -> Result<u16, JoinError> {
        if !watch_forks() {
            // Without the fork handler a child would use our lanes.
            return Err(JoinError::Lock(HoldError::Unavailable));
        }
        if self.slot == usize::MAX {
            // Not listed, so a forked child's copy would not be counted:
            // no lane rather than a lane counted wrong.
            return Err(JoinError::Full);
        }
        // SAFETY: see `Registered::ring`.
        let ring = unsafe { &*self.rec.ring };
        let lane = ring.join(self.rec.role, proc::pid())?;
        let mine = this_gen() << 16 | lane as u64;
        // Relaxed: as in `lane`.
        // Relaxed: as in `lane` (on failure the Acquire load below).
        match self
            .rec
            .word
            .compare_exchange(w, mine, Ordering::Relaxed, Ordering::Acquire)
        {
            Ok(_) => {
                self.unorphan();
                Ok(lane)
            }
            Err(now) => {
                // Another thread of this process (a `Queue` is `Sync`) took
                // one first.
                ring.leave_lane(lane, self.rec.role);
                if now != NONE && now >> 16 == this_gen() {
                    Ok(now as u16)
                } else {
                    Err(JoinError::Full)
                }
            }
        }
    }

    /// Unregisters the handle and gives its lane back, if it holds one of
    /// this process (a copy inherited across `fork` and never adopted holds
    /// its parent's, which is not its to free): to an orphan of the same
    /// ring and role if there is one, else to the ring.
    pub(crate) fn release(&self) {
        if let Some(s) = slot(self.slot) {
            WALK.lock();
            // Relaxed: ordered by the walk lock.
            s.store(std::ptr::null_mut(), Ordering::Relaxed);
            WALK.unlock();
        }
        self.unorphan();
        // Relaxed: as in `lane`.
        let w = self.rec.word.swap(NONE, Ordering::Relaxed);
        if w != NONE && w >> 16 == this_gen() {
            // SAFETY: see `Registered::ring`.
            let ring = unsafe { &*self.rec.ring };
            if !hand_over(self.rec.ring, self.rec.role, w) {
                ring.leave_lane(w as u16, self.rec.role);
            }
        }
    }

    /// The handle is no orphan (any more).
    fn unorphan(&self) {
        // Relaxed (both): a count that only gates `hand_over`'s walk.
        if self.rec.orphan.swap(false, Ordering::Relaxed) {
            ORPHANS.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Gives lane word `w` (this generation's) of a handle of `role` on `ring`
/// that is going away to an orphan of the same ring and role; `false` if
/// there is none.
fn hand_over(ring: *const Ring, role: u64, w: u64) -> bool {
    // Relaxed: a gate; an orphan missed here takes a lane of its own.
    if ORPHANS.load(Ordering::Relaxed) == 0 {
        return false;
    }
    let mut done = false;
    WALK.lock();
    each(|rec, _| {
        // Relaxed: the flag only says whom to try; the CAS decides.
        if done || rec.ring != ring || rec.role != role || !rec.orphan.load(Ordering::Relaxed) {
            return;
        }
        // SYNC: Release pairs with the Acquire load in `HandleLane::lane`:
        // the handle that takes the lane over sees our last notes in it.
        // (Failure: Relaxed, the orphan took a lane of its own meanwhile.)
        if rec
            .word
            .compare_exchange(NONE, w, Ordering::Release, Ordering::Relaxed)
            .is_ok()
        {
            // Relaxed: as in `unorphan`.
            if rec.orphan.swap(false, Ordering::Relaxed) {
                ORPHANS.fetch_sub(1, Ordering::Relaxed);
            }
            done = true;
        }
    });
    WALK.unlock();
    done
}

/// Calls `f` on every registered record. The caller holds the walk lock.
fn each(mut f: impl FnMut(&Registered, &Ring)) {
    for s in (0..CHUNKS.len()).map_while(|c| chunk(c, false)).flatten() {
        // SYNC: Acquire pairs with the Release CAS in `HandleLane::new`
        // (registration does not take the walk lock; removal does).
        let p = s.load(Ordering::Acquire);
        if p.is_null() {
            continue;
        }
        // SAFETY: a registered record is alive: its handle unregisters it
        // (under the walk lock, which we hold) before freeing it.
        let rec = unsafe { &*p };
        // SAFETY: see `Registered::ring`.
        let ring = unsafe { &*rec.ring };
        f(rec, ring);
    }
}

/// Installs this module's fork handlers (once per process); call before
/// taking lanes. `false` if they could not be installed: then no lane may
/// be taken, for a forked child would use its parent's lanes as its own.
fn watch_forks() -> bool {
    extern "C" fn prepare() {
        before_fork();
    }
    extern "C" fn parent() {
        after_fork_in_parent();
    }
    extern "C" fn child() {
        proc::new_fork_gen();
        after_fork_in_child();
    }
    // The prepare and parent handlers run in the forking thread, in a
    // normal context; the child one in the child's one thread: atomics,
    // `madvise`, and adopting the lanes taken for it (async-signal-safe).
    proc::on_fork(prepare, parent, child)
}

/// The prepare handler (the forking thread, before `fork`): takes a lane
/// for the child for every live handle, and keeps the walk lock until the
/// parent or child handler.
fn before_fork() {
    WALK.lock();
    let pid = proc::pid();
    // The (ring, role) pairs given a lane for the child so far (a normal
    // context: allocating is fine here).
    let mut given: Vec<(*const Ring, u64)> = Vec::new();
    each(|rec, ring| {
        let key = (rec.ring, rec.role);
        let w = if given.contains(&key) {
            NONE
        } else {
            given.push(key);
            ring.join_for_child(rec.role, pid)
                .map_or(NONE, |l| l as u64)
        };
        // Relaxed: read by the handlers in this thread and the child.
        rec.forked.store(w, Ordering::Relaxed);
    });
}

/// The parent handler: the lanes taken for the child are the child's (its
/// copy of their description keeps them locked); close ours.
fn after_fork_in_parent() {
    each(|rec, ring| {
        // Relaxed: as in `before_fork`.
        rec.forked.store(NONE, Ordering::Relaxed);
        ring.locks().after_fork_parent();
    });
    WALK.unlock();
}

/// The child handler (the child's one thread, after the fork generation
/// moved on and the parent's descriptions were closed): adopts the lanes
/// taken for it, and their description.
fn after_fork_in_child() {
    let gen = this_gen();
    let mut orphans = 0;
    each(|rec, ring| {
        // Relaxed (all): one thread.
        let l = rec.forked.swap(NONE, Ordering::Relaxed);
        let w = if l == NONE { NONE } else { gen << 16 | l };
        rec.word.store(w, Ordering::Relaxed);
        rec.orphan.store(l == NONE, Ordering::Relaxed);
        orphans += (l == NONE) as usize;
        ring.locks().after_fork_child();
    });
    // Relaxed: one thread; the parent's count means nothing here.
    ORPHANS.store(orphans, Ordering::Relaxed);
    WALK.unlock();
}
