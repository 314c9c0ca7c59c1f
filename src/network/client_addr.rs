//! The client address (SPEC §3 step 3). STUB: owned by the network helper.

use std::net::IpAddr;

use http::HeaderMap;

use super::CidrSet;

/// The peer, unless the peer is a trusted proxy: then X-Forwarded-For right to left, skipping
/// trusted addresses. `None` = unknown (matches no allowlist).
pub fn client_addr(peer: IpAddr, headers: &HeaderMap, trusted: &CidrSet) -> Option<IpAddr> {
    let _ = (headers, trusted);
    Some(peer)
}
