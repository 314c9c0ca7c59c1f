//! The client address (SPEC §3 step 3): which address the allowlists (step 4) and the access log
//! see. It runs after routing and before any allowlist or token work.
//!
//! This module owns reading `X-Forwarded-For` behind trusted proxies. It does not build the
//! forwarded chain for the upstream (`proxy::headers`) nor decide what an unknown address means
//! (the allowlist step: an unknown address matches no allowlist).
//!
//! # Rules
//!
//! - A peer outside `trusted_proxies` is the client; its `X-Forwarded-For` is ignored, so a
//!   forged header never matters.
//! - Behind a trusted peer, the entries of every `X-Forwarded-For` line (lines concatenated in
//!   order, entries comma-separated) are read right to left. Trusted addresses are skipped; the
//!   first untrusted one is the client. Only the right end of the chain was written by proxies
//!   we trust; everything left of the client came from the client and is never looked at.
//! - A malformed entry reached before the client is found makes the client unknown (`None`). We
//!   never skip garbage to reach an address further left: that address would be client-written,
//!   and a broken chain means we cannot tell who wrote what.
//! - When the chain runs out without an untrusted address (every hop is a trusted proxy, or the
//!   header is absent), the client is the last address examined: the leftmost entry, or the peer
//!   when there is no header. That request really did come from inside the trusted network.
//!
//! # Entry syntax
//!
//! Optional whitespace (space, tab) around an entry is ignored. Accepted: `192.0.2.1`,
//! `2001:db8::1`, and, because some load balancers append the port, `192.0.2.1:443`,
//! `[2001:db8::1]` and `[2001:db8::1]:443` (the port is ignored). Malformed: an empty entry
//! (`a,,b`, or an empty header line), `unknown` and RFC 7239 obfuscated identifiers, zone ids
//! (`fe80::1%eth0`), host names, and any byte outside visible ASCII. IPv4-mapped IPv6 addresses
//! (`::ffff:192.0.2.1`), from the peer or an entry, are returned in their IPv4 form.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use http::HeaderMap;

use super::CidrSet;

/// Re-exported from its one home, [`crate::header_names`], for the fuzz target.
pub use crate::header_names::X_FORWARDED_FOR;

/// The peer, unless the peer is a trusted proxy: then X-Forwarded-For right to left, skipping
/// trusted addresses (see the module doc). `None` = unknown (matches no allowlist).
///
/// Allocation-free: header lines are walked in reverse and split from the right.
pub fn client_addr(peer: IpAddr, headers: &HeaderMap, trusted: &CidrSet) -> Option<IpAddr> {
    let peer = peer.to_canonical();
    if !trusted.contains(peer) {
        return Some(peer);
    }
    let mut last_examined = peer;
    for line in headers.get_all(X_FORWARDED_FOR).iter().rev() {
        for entry in line.as_bytes().rsplit(|&b| b == b',') {
            let addr = parse_entry(entry)?;
            if !trusted.contains(addr) {
                return Some(addr);
            }
            last_examined = addr;
        }
    }
    Some(last_examined)
}

/// Parses one `X-Forwarded-For` entry (see "Entry syntax" in the module doc). `None` = malformed.
pub fn parse_entry(entry: &[u8]) -> Option<IpAddr> {
    let entry = trim_ows(entry);
    // Non-ASCII bytes can never form an address; rejecting them here also means the `str` below
    // is plain ASCII.
    if !entry.iter().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    let entry = std::str::from_utf8(entry).ok()?;
    let addr = if let Some(rest) = entry.strip_prefix('[') {
        // `[v6]` or `[v6]:port`.
        let (inside, after) = rest.split_once(']')?;
        if !after.is_empty() {
            parse_port(after.strip_prefix(':')?)?;
        }
        IpAddr::V6(inside.parse::<Ipv6Addr>().ok()?)
    } else if let Ok(v6) = entry.parse::<Ipv6Addr>() {
        IpAddr::V6(v6)
    } else {
        // `v4` or `v4:port`. A bare v6 with a port is ambiguous and fails both parses.
        let (host, port) = match entry.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (entry, None),
        };
        if let Some(port) = port {
            parse_port(port)?;
        }
        IpAddr::V4(host.parse::<Ipv4Addr>().ok()?)
    };
    Some(addr.to_canonical())
}

/// A decimal port: 1 to 5 digits fitting in u16 (no sign, unlike `u16::from_str`).
fn parse_port(port: &str) -> Option<u16> {
    if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    port.parse().ok()
}

/// Strips optional whitespace (SP, HTAB) around a list element (RFC 9110 §5.6.1).
fn trim_ows(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::allowlist::parse_cidr;
    use http::HeaderValue;

    fn trusted(values: &[&str]) -> CidrSet {
        let nets: Vec<_> = values.iter().map(|v| parse_cidr(v).unwrap()).collect();
        CidrSet::new(&nets)
    }

    fn headers(lines: &[&[u8]]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for line in lines {
            map.append(X_FORWARDED_FOR, HeaderValue::from_bytes(line).unwrap());
        }
        map
    }

    const PROXIES: &[&str] = &["10.0.0.0/8", "fd00::/8"];

    /// (peer, X-Forwarded-For lines, expected client)
    type Case<'a> = (&'a str, &'a [&'a [u8]], Option<&'a str>);

    #[test]
    fn client_address_table() {
        #[rustfmt::skip]
        let cases: &[Case] = &[
            // Untrusted peer: XFF ignored, forged or not.
            ("203.0.113.5", &[], Some("203.0.113.5")),
            ("203.0.113.5", &[b"198.51.100.1"], Some("203.0.113.5")),
            ("203.0.113.5", &[b"garbage"], Some("203.0.113.5")),
            ("203.0.113.5", &[b"10.0.0.1"], Some("203.0.113.5")),
            ("2001:db8::5", &[b"198.51.100.1"], Some("2001:db8::5")),
            // Trusted peer, one hop.
            ("10.0.0.2", &[b"198.51.100.1"], Some("198.51.100.1")),
            ("10.0.0.2", &[b" 198.51.100.1 "], Some("198.51.100.1")),
            ("10.0.0.2", &[b"\t198.51.100.1"], Some("198.51.100.1")),
            // Trusted peer, client-written entries on the left are never reached.
            ("10.0.0.2", &[b"1.1.1.1, 198.51.100.1"], Some("198.51.100.1")),
            ("10.0.0.2", &[b"garbage, 198.51.100.1"], Some("198.51.100.1")),
            ("10.0.0.2", &[b",,, 198.51.100.1"], Some("198.51.100.1")),
            ("10.0.0.2", &[b"\xff\xfe, 198.51.100.1"], Some("198.51.100.1")),
            // Several trusted proxies are skipped.
            ("10.0.0.2", &[b"198.51.100.1, 10.0.0.3, 10.0.0.4"], Some("198.51.100.1")),
            ("10.0.0.2", &[b"6.6.6.6, 198.51.100.1, 10.0.0.3,10.0.0.4"], Some("198.51.100.1")),
            // Malformed where the client would be read: unknown.
            ("10.0.0.2", &[b"garbage"], None),
            ("10.0.0.2", &[b"198.51.100.1, garbage, 10.0.0.3"], None),
            ("10.0.0.2", &[b"198.51.100.1,,10.0.0.3"], None),
            ("10.0.0.2", &[b"198.51.100.1,"], None),
            ("10.0.0.2", &[b""], None),
            ("10.0.0.2", &[b"   "], None),
            ("10.0.0.2", &[b"unknown"], None),
            ("10.0.0.2", &[b"_hidden"], None),
            ("10.0.0.2", &[b"example.com"], None),
            ("10.0.0.2", &[b"198.51.100.1\xff"], None),
            ("10.0.0.2", &[b"198.51.100.1 198.51.100.2"], None),
            ("10.0.0.2", &[b"198.51.100.1:"], None),
            ("10.0.0.2", &[b"198.51.100.1:+80"], None),
            ("10.0.0.2", &[b"198.51.100.1:65536"], None),
            ("10.0.0.2", &[b"[198.51.100.1]"], None),
            ("10.0.0.2", &[b"[2001:db8::1"], None),
            ("10.0.0.2", &[b"[2001:db8::1]x"], None),
            ("10.0.0.2", &[b"2001:db8::1:80:1:2:3:4"], None),
            ("10.0.0.2", &[b"fe80::1%eth0"], None),
            ("10.0.0.2", &[b"0x0a000001"], None),
            ("10.0.0.2", &[b"010.0.0.1"], None),
            // Every hop trusted: the leftmost address examined; no header: the peer.
            ("10.0.0.2", &[], Some("10.0.0.2")),
            ("10.0.0.2", &[b"10.0.0.3"], Some("10.0.0.3")),
            ("10.0.0.2", &[b"10.0.0.9, 10.0.0.3"], Some("10.0.0.9")),
            ("10.0.0.2", &[b"10.0.0.9", b"fd00::1"], Some("10.0.0.9")),
            // Several header lines are one chain, in order.
            ("10.0.0.2", &[b"198.51.100.1", b"10.0.0.3"], Some("198.51.100.1")),
            ("10.0.0.2", &[b"198.51.100.1", b"198.51.100.2"], Some("198.51.100.2")),
            ("10.0.0.2", &[b"garbage", b"198.51.100.2, 10.0.0.3"], Some("198.51.100.2")),
            ("10.0.0.2", &[b"198.51.100.1", b"garbage", b"10.0.0.3"], None),
            ("10.0.0.2", &[b"198.51.100.1", b"", b"10.0.0.3"], None),
            // IPv6, and the port / bracket forms.
            ("fd00::2", &[b"2001:db8::1"], Some("2001:db8::1")),
            ("fd00::2", &[b"[2001:db8::1]"], Some("2001:db8::1")),
            ("fd00::2", &[b"[2001:db8::1]:443"], Some("2001:db8::1")),
            ("fd00::2", &[b"198.51.100.1:8080"], Some("198.51.100.1")),
            ("fd00::2", &[b"2001:db8::1, fd00::3, 10.0.0.3"], Some("2001:db8::1")),
            ("10.0.0.2", &[b"[2001:db8::1]:"], None),
            // IPv4-mapped peers and entries become IPv4, and are matched as IPv4.
            ("::ffff:10.0.0.2", &[b"198.51.100.1"], Some("198.51.100.1")),
            ("::ffff:203.0.113.5", &[b"198.51.100.1"], Some("203.0.113.5")),
            ("::ffff:10.0.0.2", &[], Some("10.0.0.2")),
            ("10.0.0.2", &[b"::ffff:198.51.100.1"], Some("198.51.100.1")),
            ("10.0.0.2", &[b"198.51.100.1, ::ffff:10.0.0.3"], Some("198.51.100.1")),
            ("10.0.0.2", &[b"[::ffff:198.51.100.1]:80"], Some("198.51.100.1")),
        ];
        let trusted = trusted(PROXIES);
        for (peer, lines, expected) in cases {
            let got = client_addr(peer.parse().unwrap(), &headers(lines), &trusted);
            let expected = expected.map(|e| e.parse::<IpAddr>().unwrap());
            assert_eq!(got, expected, "peer {peer}, xff {:?}", lines_text(lines));
        }
    }

    fn lines_text(lines: &[&[u8]]) -> Vec<String> {
        lines
            .iter()
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect()
    }

    #[test]
    fn no_trusted_proxies_means_peer() {
        let none = CidrSet::default();
        let peer: IpAddr = "10.0.0.2".parse().unwrap();
        let map = headers(&[b"198.51.100.1"]);
        assert_eq!(client_addr(peer, &map, &none), Some(peer));
    }

    #[test]
    fn other_headers_are_not_read() {
        let mut map = HeaderMap::new();
        map.insert("forwarded", HeaderValue::from_static("for=198.51.100.1"));
        map.insert("x-real-ip", HeaderValue::from_static("198.51.100.1"));
        let peer: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(client_addr(peer, &map, &trusted(PROXIES)), Some(peer));
    }
}
