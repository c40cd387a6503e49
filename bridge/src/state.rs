//! The `in` side's memory across its own deaths: the key (source queue and
//! lease id, `inbound::Key`) of the last message it sent into its queue,
//! in one word of a mapped file.
//!
//! A store to a shared mapping is in the page cache the moment it is made,
//! so a process killed right after keeps it (a machine that loses power
//! loses the queue in `/dev/shm` with it).

use crate::Error;
use memmap2::MmapMut;
use std::fs::OpenOptions;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Magic in the first word, so a file that is not ours is refused.
const MAGIC: u64 = u64::from_le_bytes(*b"SHMQBRI1");

/// The mapped state file: `[MAGIC, delivered]`.
pub struct Delivered {
    map: MmapMut,
}

impl Delivered {
    /// Opens `path`, making it (delivered = 0) if missing.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let len = f.metadata()?.len();
        if len == 0 {
            f.set_len(16)?;
        } else if len != 16 {
            return Err(format!("{}: not a shmq-bridge state file", path.display()).into());
        }
        // SAFETY: a file of ours, 16 bytes; other processes that map it
        // are `in` bridges of the same queue, and only one runs at a time
        // (docs/DISTRIBUTED.md); we use it only through atomics.
        let map = unsafe { MmapMut::map_mut(&f)? };
        let d = Delivered { map };
        match d.word(0).load(Ordering::Relaxed) {
            0 => d.word(0).store(MAGIC, Ordering::Relaxed),
            MAGIC => {}
            _ => return Err(format!("{}: not a shmq-bridge state file", path.display()).into()),
        }
        Ok(d)
    }

    fn word(&self, i: usize) -> &AtomicU64 {
        // SAFETY: the mapping is 16 bytes, page aligned, so words 0 and 1
        // are in bounds and aligned; it lives as long as `self`.
        unsafe { &*(self.map.as_ptr() as *const AtomicU64).add(i) }
    }

    /// The packed key of the last message sent into the queue (0: none).
    pub fn get(&self) -> u64 {
        // Relaxed: one process uses the word; a predecessor's stores were
        // made before it died, and we opened the file after.
        self.word(1).load(Ordering::Relaxed)
    }

    /// Records that the message with packed key `key` is in the queue.
    pub fn set(&self, key: u64) {
        // Relaxed: as in `get`; the store itself is what must not be torn,
        // and an aligned 8-byte store is not.
        self.word(1).store(key, Ordering::Relaxed)
    }
}
