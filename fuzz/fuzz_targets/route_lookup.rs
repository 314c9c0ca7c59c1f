//! libFuzzer entry point; the target logic and its invariants are in `src/route_lookup.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| authgate_fuzz::route_lookup::fuzz_one(data));
