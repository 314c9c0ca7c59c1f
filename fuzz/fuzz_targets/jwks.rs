//! libFuzzer entry point; the target logic and its invariants are in `src/jwks.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| authgate_fuzz::jwks::fuzz_one(data));
