//! Fuzz targets for authgate's attacker-facing parsers, as plain functions.
//!
//! Each module owns one target: `fuzz_one(&[u8])` turns the raw input into calls of the public
//! API and asserts the invariants the module doc lists; a broken invariant panics, which is
//! what libFuzzer reports as a crash. Two thin front ends call these functions:
//!
//! ```text
//! fuzz_targets/<target>.rs ── libfuzzer-sys ──► cargo fuzz run <target>   (local campaigns)
//! src/bin/replay.rs ── every file of corpus/<target>/ and artifacts-found/<target>/
//!                                           ──► CI (stable toolchain, no sanitizer)
//! ```
//!
//! Inputs are text where the API takes text, with a small line format where a target needs
//! several values (documented per module), so seeds stay readable and hand-editable.

pub mod canonicalize;
pub mod config;
pub mod jwks;
pub mod jwt;
pub mod route_lookup;
pub mod testkeys;
pub mod xff;

/// One target's entry point.
pub type FuzzOne = fn(&[u8]);

/// Every target by name, as `cargo fuzz` and the corpus directories name them.
pub const TARGETS: &[(&str, FuzzOne)] = &[
    ("canonicalize", canonicalize::fuzz_one),
    ("route_lookup", route_lookup::fuzz_one),
    ("jwt", jwt::fuzz_one),
    ("jwks", jwks::fuzz_one),
    ("xff", xff::fuzz_one),
    ("config", config::fuzz_one),
];
