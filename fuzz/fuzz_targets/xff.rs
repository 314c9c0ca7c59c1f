//! libFuzzer entry point; the target logic and its invariants are in `src/xff.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| authgate_fuzz::xff::fuzz_one(data));
