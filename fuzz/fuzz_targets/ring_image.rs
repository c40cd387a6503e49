//! A valid queue whose shared state (control words, lanes, descriptors,
//! data) is overwritten where the input says, then used. Same entry point
//! as `tests/hostile.rs`.
#![no_main]

#[path = "../../tests/common/hostile.rs"]
mod hostile;

libfuzzer_sys::fuzz_target!(|data: &[u8]| hostile::ring_image(data));
