//! Entry points for hostile and corrupted segments, shared by the property
//! tests (`tests/hostile.rs`, run in CI) and the cargo-fuzz targets
//! (`fuzz/`). Each takes arbitrary bytes, builds a segment from them,
//! attaches and, if that works, runs every kind of call on it. The
//! property: no panic, no out-of-bounds access, no SIGBUS, no hang (every
//! call is non-blocking or bounded by a timeout); only typed errors.

use shmq::Queue;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

/// A sealed memfd holding `bytes` (what `Queue::from_fd` accepts).
fn sealed_memfd(bytes: &[u8]) -> OwnedFd {
    use nix::fcntl::{fcntl, FcntlArg, SealFlag};
    use nix::sys::memfd::{memfd_create, MFdFlags};
    let fd = memfd_create(
        c"hostile",
        MFdFlags::MFD_ALLOW_SEALING | MFdFlags::MFD_CLOEXEC,
    )
    .expect("memfd_create");
    let mut f = std::fs::File::from(fd);
    f.write_all(bytes).expect("write");
    let seals = SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_SEAL;
    fcntl(&f, FcntlArg::F_ADD_SEALS(seals)).expect("seal");
    OwnedFd::from(f)
}

/// Attaches to a segment whose bytes are `bytes` (any length, any content)
/// and, if it attaches, uses it.
pub fn attach(bytes: &[u8]) {
    if let Ok(q) = Queue::from_fd(sealed_memfd(bytes)) {
        exercise(&q, bytes);
    }
}

/// Every kind of call, none of which may block for long.
fn exercise(q: &Queue, seed: &[u8]) {
    let d = q.diagnostics();
    let _ = format!("{d} {q:?}");
    let _ = (
        q.len(),
        q.is_empty(),
        q.is_full(),
        q.is_closed(),
        q.capacity(),
    );
    let rx = q.receiver();
    let tx = q.sender();
    for (i, &b) in seed.iter().take(8).enumerate() {
        match b % 6 {
            0 => drop(rx.try_recv().map(|m| m.len())),
            1 => drop(
                rx.recv_timeout(Duration::from_millis(1))
                    .map(|m| m.to_vec()),
            ),
            2 => drop(
                rx.try_recv_batch(4)
                    .map(|b| b.iter().map(<[u8]>::len).sum::<usize>()),
            ),
            3 => drop(tx.try_send(&vec![b; b as usize * 3 + i])),
            4 => drop(tx.send_timeout(&[b; 100], Duration::from_millis(1))),
            _ => drop(tx.try_send_batch([&[b][..], &[b, b]])),
        }
    }
    let _ = format!("{}", q.diagnostics());
}

/// A valid queue (capacity 256 B, an overflow area of two units, bounded
/// or unbounded, a few messages queued, one held) whose control block, lanes, descriptors and
/// data (the overflow area's state words and units included) are then
/// overwritten at the places `edits` names: 12-byte records `[offset:
/// u32][value: u64]` (the offset's top two bits pick control words, lanes,
/// descriptors or anywhere past the 128-byte header, which is validated on
/// attach and covered by `attach`). Then every kind of call runs against
/// the damaged image.
pub fn ring_image(edits: &[u8]) {
    let first = edits.first().copied().unwrap_or(0);
    // Bit 2 of the first byte: an unbounded queue, whose records live in
    // blocks of the overflow area (one unit each), found through its
    // block table.
    let unbounded = first & 4 != 0;
    let mut b = Queue::builder()
        .capacity_bytes(256)
        .overflow_bytes(2 << 16)
        .maxsize((first % 4) as usize);
    if unbounded {
        b = b.unbounded();
    }
    let q = b.create().expect("create");
    {
        let tx = q.sender();
        for i in 0..edits.get(1).map_or(2, |b| b % 4) {
            let _ = tx.try_send(&[i; 40]);
        }
    }
    let len = nix::sys::stat::fstat(q.as_fd()).expect("fstat").st_size as usize;
    // SAFETY: a mapping of the queue's own memfd, written with plain stores
    // while no other thread uses the queue; the queue's own view is through
    // its mapping and sees these writes as a peer's.
    let mut map = unsafe {
        memmap2::MmapMut::map_mut(&std::fs::File::from(
            q.as_fd().try_clone_to_owned().unwrap(),
        ))
    }
    .expect("mmap");
    // Where things are in a 256-byte queue (docs/DESIGN.md): control words
    // at 128..1024, lanes at 4096..20480, descriptors at 20480, data at
    // 24576. The offset's top bits pick the region, so edits land where
    // they matter instead of mostly in zero padding.
    // An unbounded one's records are in its blocks instead: the overflow
    // area (at 65536) starts with its control word, unit states and block
    // table; unit 0 (at 131072) holds the first block, 256 bytes of data
    // then 32 of descriptors.
    let regions: [(usize, usize); 4] = if unbounded {
        [
            (128, 1024),
            (65536, 65536 + 192),
            (131072, 131072 + 288),
            (128, len),
        ]
    } else {
        [(128, 1024), (4096, 20480), (20480, 20512), (128, len)]
    };
    for e in edits.get(2..).unwrap_or(&[]).chunks_exact(12) {
        let x = u32::from_le_bytes(e[..4].try_into().unwrap()) as usize;
        let (lo, hi) = regions[x >> 30];
        let off = (lo + (x & 0x3fff_ffff) % (hi.min(len) - lo - 8)) / 8 * 8;
        map[off..off + 8].copy_from_slice(&e[4..12]);
    }
    exercise(&q, edits);
}
