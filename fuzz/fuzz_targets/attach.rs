//! Any bytes offered as a queue segment: a typed error or a working queue,
//! never a crash. Same entry point as `tests/hostile.rs`.
#![no_main]

#[path = "../../tests/common/hostile.rs"]
mod hostile;

libfuzzer_sys::fuzz_target!(|data: &[u8]| hostile::attach(data));
