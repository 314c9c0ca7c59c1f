//! Authentication: bearer extraction, JWT verification, API keys, key sets, the verified-token
//! cache and scope checks (SPEC §3 steps 6-7).
//!
//! Every public item is documented (`missing_docs`).

#![warn(missing_docs)]

pub mod api_keys;
pub mod bearer;
pub mod cache;
pub mod credential;
pub mod jwks;
pub mod jwt;
pub mod keys;
pub mod scopes;
