//! Hostile and corrupted segments, by property testing the entry points
//! that the cargo-fuzz targets in `fuzz/` share (`tests/common/hostile.rs`):
//! arbitrary files offered as queues, and valid queues whose shared state a
//! buggy peer overwrote. Every case must end in a typed error or a working
//! queue: no panic, no out-of-bounds access, no SIGBUS, no hang.

mod common;
#[path = "common/hostile.rs"]
mod hostile;

use proptest::prelude::*;

/// A real segment (a 256-byte queue with a message, and an overflow area
/// of one unit) to mutate from.
fn valid_segment() -> Vec<u8> {
    use std::os::fd::AsFd;
    let q = shmq::Queue::builder()
        .capacity_bytes(256)
        .overflow_bytes(1 << 16)
        .create()
        .unwrap();
    q.sender().send(b"seed").unwrap();
    let f = std::fs::File::from(q.as_fd().try_clone_to_owned().unwrap());
    let mut v = Vec::new();
    std::io::Read::read_to_end(&mut &f, &mut v).unwrap();
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    /// Random bytes of any length: never a queue, always a typed error.
    #[test]
    fn random_files_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        hostile::attach(&bytes);
    }

    /// A real segment with bytes flipped, and cut or extended.
    #[test]
    fn damaged_segments_fail_cleanly_or_work(
        flips in proptest::collection::vec((any::<u16>(), any::<u8>()), 0..12),
        cut in any::<u16>(),
    ) {
        let mut v = valid_segment();
        for (at, x) in flips {
            let i = at as usize % v.len().min(200);
            v[i] ^= x;
        }
        match cut % 4 {
            0 => v.truncate(cut as usize % v.len()),
            1 => v.extend_from_slice(&[0; 64]),
            _ => {}
        }
        hostile::attach(&v);
    }

    /// A valid queue whose control block, lanes, descriptors and data a
    /// peer overwrote at random places.
    #[test]
    fn corrupted_ring_state_is_survived(edits in proptest::collection::vec(any::<u8>(), 2..200)) {
        hostile::ring_image(&edits);
    }
}

/// 256 cases per property, or `PROPTEST_CASES`.
fn cases() -> u32 {
    common::proptest_cases(256)
}

/// Writes the seed corpus of the cargo-fuzz targets (`fuzz/corpus/`):
/// `cargo test --test hostile -- --ignored write_seed_corpus`.
#[test]
#[ignore = "writes fuzz/corpus; run by hand when the layout changes"]
fn write_seed_corpus() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus");
    std::fs::create_dir_all(format!("{dir}/attach")).unwrap();
    std::fs::create_dir_all(format!("{dir}/ring_image")).unwrap();
    std::fs::write(format!("{dir}/attach/valid-256"), valid_segment()).unwrap();
    let mut truncated = valid_segment();
    truncated.truncate(5000);
    std::fs::write(format!("{dir}/attach/truncated"), truncated).unwrap();
    // Two messages queued, then one edit in each region.
    let mut edits = vec![0u8, 2];
    for (region, value) in [
        (0u32, 1u64 << 40),
        (1, 0x0001_0000_0000_0001),
        (2, 0x4000_0040),
        (3, 7),
    ] {
        edits.extend_from_slice(&(region << 30 | 24).to_le_bytes());
        edits.extend_from_slice(&value.to_le_bytes());
    }
    std::fs::write(format!("{dir}/ring_image/four-edits"), edits).unwrap();
}
