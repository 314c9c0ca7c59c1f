//! Network rules: CIDR sets (allowlists, trusted proxies) and the client address (SPEC §3
//! steps 3-4), and the identity of a verified client certificate (SPEC §4).

pub mod allowlist;
pub mod client_addr;
pub mod mtls;

pub use allowlist::CidrSet;
pub use client_addr::client_addr;
