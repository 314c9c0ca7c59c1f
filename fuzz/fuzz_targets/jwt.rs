//! libFuzzer entry point; the target logic and its invariants are in `src/jwt.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| authgate_fuzz::jwt::fuzz_one(data));
