//! `network::client_addr` and `network::client_addr::parse_entry` (X-Forwarded-For behind
//! trusted proxies), plus `CidrSet::contains` on the way.
//!
//! Input: lines separated by `\n`:
//!
//! ```text
//! <peer address>                       unparsable: 10.0.0.2
//! <trusted CIDRs, comma-separated>     each through allowlist::parse_cidr; bad ones dropped
//! <X-Forwarded-For line>...            one header line each; invalid header values dropped
//! ```
//!
//! Invariants, besides "never panics":
//! - with an empty trusted set the result is `Some(peer)` (IPv4-mapped peers in IPv4 form);
//! - `parse_entry` on every entry, every whole line and the whole input equals [`reference_entry`]
//!   (written from the "Entry syntax" doc) and never yields an IPv4-mapped IPv6 address;
//!   a parsed address round-trips through its `Display` form;
//! - `CidrSet::contains(a)` is true exactly when a configured net contains `a` or its other
//!   spelling (IPv4 <-> IPv4-mapped IPv6), as the allowlist module doc promises;
//! - `client_addr` equals [`reference`], the rules of the module doc on a plain list of entries.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use authgate::network::allowlist::parse_cidr;
use authgate::network::client_addr::{parse_entry, X_FORWARDED_FOR};
use authgate::network::{client_addr, CidrSet};
use http::{HeaderMap, HeaderValue};
use ipnet::IpNet;

const DEFAULT_PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

pub fn fuzz_one(data: &[u8]) {
    // Whole input as one entry: arbitrary bytes, including non-ASCII.
    check_entry(data);

    let mut lines = data.split(|&b| b == b'\n');
    let peer = lines
        .next()
        .and_then(|l| std::str::from_utf8(l).ok())
        .and_then(|l| l.trim().parse::<IpAddr>().ok())
        .unwrap_or(DEFAULT_PEER);
    let nets: Vec<IpNet> = lines
        .next()
        .and_then(|l| std::str::from_utf8(l).ok())
        .map(|l| {
            l.split(',')
                .filter_map(|v| parse_cidr(v.trim()).ok())
                .collect()
        })
        .unwrap_or_default();
    let trusted = CidrSet::new(&nets);

    let mut headers = HeaderMap::new();
    let mut header_lines: Vec<&[u8]> = Vec::new();
    for line in lines.take(32) {
        check_entry(line);
        if let Ok(value) = HeaderValue::from_bytes(line) {
            headers.append(X_FORWARDED_FOR, value);
            header_lines.push(line);
        }
    }
    let entries: Vec<&[u8]> = header_lines
        .iter()
        .flat_map(|line| line.split(|&b| b == b','))
        .collect();
    for entry in &entries {
        check_entry(entry);
    }

    // The trusted set against the nets it was built from, on every address we have.
    let mut probes = vec![peer];
    probes.extend(entries.iter().filter_map(|e| parse_entry(e)));
    for net in &nets {
        probes.push(net.network());
        probes.push(net.broadcast());
    }
    for addr in probes {
        assert_eq!(
            trusted.contains(addr),
            reference_contains(&nets, addr),
            "contains({addr}) with nets {nets:?}"
        );
    }

    let canonical_peer = peer.to_canonical();
    assert_eq!(
        client_addr(peer, &headers, &CidrSet::default()),
        Some(canonical_peer),
        "empty trusted set, peer {peer}"
    );
    let got = client_addr(peer, &headers, &trusted);
    let expected = reference(peer, &entries, &nets);
    assert_eq!(
        got,
        expected,
        "peer {peer}, trusted {nets:?}, entries {:?}",
        entries
            .iter()
            .map(|e| String::from_utf8_lossy(e))
            .collect::<Vec<_>>()
    );
    if let Some(IpAddr::V6(v6)) = got {
        assert!(v6.to_ipv4_mapped().is_none(), "mapped client address {v6}");
    }
}

fn check_entry(entry: &[u8]) {
    let got = parse_entry(entry);
    assert_eq!(
        got,
        reference_entry(entry),
        "parse_entry({:?})",
        String::from_utf8_lossy(entry)
    );
    if let Some(addr) = got {
        assert_eq!(addr, addr.to_canonical(), "not canonical: {addr}");
        assert_eq!(parse_entry(addr.to_string().as_bytes()), Some(addr));
    }
}

/// Entry syntax, independently: trim SP/HTAB; then `v4`, `v6`, `v4:port`, `[v6]`,
/// `[v6]:port`, where a port is 1-5 ASCII digits up to 65535.
pub fn reference_entry(entry: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(entry).ok()?;
    let text = text.trim_matches(|c| c == ' ' || c == '\t');
    if !text.bytes().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    let port_ok = |port: &str| {
        (1..=5).contains(&port.len())
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u32>().is_ok_and(|p| p <= 65535)
    };
    let addr = if let Some(rest) = text.strip_prefix('[') {
        let end = rest.find(']')?;
        let after = &rest[end + 1..];
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(port_ok)) {
            return None;
        }
        IpAddr::V6(rest[..end].parse::<Ipv6Addr>().ok()?)
    } else if let Ok(addr) = text.parse::<IpAddr>() {
        addr
    } else {
        let (host, port) = text.split_once(':')?;
        if !port_ok(port) {
            return None;
        }
        IpAddr::V4(host.parse::<Ipv4Addr>().ok()?)
    };
    Some(addr.to_canonical())
}

/// The other spelling of an address: IPv4 <-> IPv4-mapped IPv6.
fn other_spelling(addr: IpAddr) -> Option<IpAddr> {
    match addr {
        IpAddr::V4(v4) => Some(IpAddr::V6(v4.to_ipv6_mapped())),
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4),
    }
}

fn reference_contains(nets: &[IpNet], addr: IpAddr) -> bool {
    nets.iter()
        .any(|net| net.contains(&addr) || other_spelling(addr).is_some_and(|o| net.contains(&o)))
}

/// Right to left over the entries, skipping trusted ones; garbage before the client: unknown.
pub fn reference(peer: IpAddr, entries: &[&[u8]], nets: &[IpNet]) -> Option<IpAddr> {
    let peer = peer.to_canonical();
    if !reference_contains(nets, peer) {
        return Some(peer);
    }
    let mut last = peer;
    for entry in entries.iter().rev() {
        let addr = reference_entry(entry)?;
        if !reference_contains(nets, addr) {
            return Some(addr);
        }
        last = addr;
    }
    Some(last)
}
