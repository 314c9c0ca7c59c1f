//! CIDR sets: the compiled form of `[network].allow`, a route's `allow` and
//! `[network].trusted_proxies` (SPEC §2 `[network]`, §3 steps 3-4).
//!
//! This module owns parsing the configured strings into [`IpNet`]s ([`parse_cidrs`], used by the
//! config compiler) and the membership test. It does not decide what an empty set means (the
//! pipeline treats an empty allowlist as "every address") nor which address is the client
//! (`client_addr`).
//!
//! A set is compiled once per snapshot into sorted, merged, inclusive ranges per address family,
//! so [`CidrSet::contains`] is one binary search and never allocates, however many CIDRs the
//! operator lists.
//!
//! # IPv4-mapped IPv6
//!
//! `::ffff:a.b.c.d` is the same host as `a.b.c.d` (a dual-stack socket reports IPv4 peers that
//! way), so the set identifies the two: a looked-up mapped address is checked as IPv4, and the part
//! of a configured IPv6 net that lies inside `::ffff:0:0/96` is also entered as the corresponding
//! IPv4 range (`::ffff:10.0.0.0/104` allows exactly `10.0.0.0/8`). The invariant, tested below:
//! `contains(a)` is true exactly when some configured net contains `a` or the other spelling of
//! `a`. Without this, `allow = ["10.0.0.0/8"]` would deny 10.0.0.1 arriving on a dual-stack
//! listener, and an IPv4 trusted proxy seen as `::ffff:10.0.0.2` would not be trusted. One
//! consequence to know: `::/0` (like any IPv6 net covering `::ffff:0:0/96`) also allows all of
//! IPv4, since it contains every mapped address. Deprecated IPv4-compatible addresses
//! (`::a.b.c.d`) are plain IPv6.

use std::net::IpAddr;

use ipnet::IpNet;

/// `::ffff:0:0/96`, the IPv4-mapped IPv6 block, as an inclusive u128 range.
const MAPPED_FIRST: u128 = 0xffff_u128 << 32;
const MAPPED_LAST: u128 = MAPPED_FIRST | 0xffff_ffff;

/// An immutable set of CIDRs with a fast, allocation-free membership test.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CidrSet {
    /// Sorted, disjoint, non-adjacent inclusive ranges.
    v4: Box<[(u32, u32)]>,
    /// Sorted, disjoint, non-adjacent inclusive ranges.
    v6: Box<[(u128, u128)]>,
}

impl CidrSet {
    /// Compiles `nets` (host bits, if any, are ignored: `10.0.0.1/8` counts as `10.0.0.0/8`;
    /// [`parse_cidrs`] refuses such values from the config).
    pub fn new(nets: &[IpNet]) -> CidrSet {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for net in nets {
            match net {
                IpNet::V4(net) => {
                    v4.push((u32::from(net.network()), u32::from(net.broadcast())));
                }
                IpNet::V6(net) => {
                    let (first, last) = (u128::from(net.network()), u128::from(net.broadcast()));
                    v6.push((first, last));
                    // The mapped part also denotes IPv4 hosts (see the module doc). The
                    // truncating casts keep the low 32 bits, which is the IPv4 address.
                    let (lo, hi) = (first.max(MAPPED_FIRST), last.min(MAPPED_LAST));
                    if lo <= hi {
                        v4.push((lo as u32, hi as u32));
                    }
                }
            }
        }
        CidrSet {
            v4: merge(v4).into(),
            v6: merge(v6).into(),
        }
    }

    /// True when no CIDR was configured.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// Whether `addr` lies in one of the CIDRs. IPv4-mapped IPv6 addresses are treated as IPv4.
    pub fn contains(&self, addr: IpAddr) -> bool {
        match addr.to_canonical() {
            IpAddr::V4(a) => in_ranges(&self.v4, u32::from(a)),
            IpAddr::V6(a) => in_ranges(&self.v6, u128::from(a)),
        }
    }
}

/// Sorts inclusive ranges and merges overlapping and adjacent ones.
fn merge<T>(mut ranges: Vec<(T, T)>) -> Vec<(T, T)>
where
    T: Copy + Ord + Successor,
{
    ranges.sort_unstable();
    let mut merged: Vec<(T, T)> = Vec::with_capacity(ranges.len());
    for (first, last) in ranges {
        match merged.last_mut() {
            // Overlapping, or adjacent (the previous range ends right before this one).
            Some(prev) if prev.1.successor().is_none_or(|next| first <= next) => {
                prev.1 = prev.1.max(last);
            }
            _ => merged.push((first, last)),
        }
    }
    merged
}

/// Binary search over sorted, disjoint inclusive ranges.
fn in_ranges<T: Copy + Ord>(ranges: &[(T, T)], addr: T) -> bool {
    // Index of the first range starting after `addr`; the candidate is the one before it.
    let after = ranges.partition_point(|&(first, _)| first <= addr);
    after > 0 && ranges[after - 1].1 >= addr
}

/// `x + 1` without overflow, for merging adjacent ranges.
trait Successor: Sized {
    fn successor(self) -> Option<Self>;
}

impl Successor for u32 {
    fn successor(self) -> Option<u32> {
        self.checked_add(1)
    }
}

impl Successor for u128 {
    fn successor(self) -> Option<u128> {
        self.checked_add(1)
    }
}

/// Parses one configured value: a CIDR (`10.0.0.0/8`, `2001:db8::/32`) or a bare address
/// (`10.0.0.1` = /32, `::1` = /128). The error is a lowercase message naming the value.
///
/// A CIDR with host bits set (`10.0.0.1/8`) is refused rather than widened: it is ambiguous
/// (one host, or the /8?) and widening a typo would silently weaken the rule (SPEC §2).
pub fn parse_cidr(value: &str) -> Result<IpNet, String> {
    if value.contains('/') {
        let net: IpNet = value
            .parse()
            .map_err(|_| format!("invalid cidr {value:?}: expected e.g. 10.0.0.0/8"))?;
        if net.trunc() != net {
            return Err(format!(
                "invalid cidr {value:?}: host bits are set, did you mean \"{}\"?",
                net.trunc()
            ));
        }
        Ok(net)
    } else {
        let addr: IpAddr = value
            .parse()
            .map_err(|_| format!("invalid address {value:?}: expected an ip address or a cidr"))?;
        Ok(IpNet::from(addr))
    }
}

/// Parses a configured list with [`parse_cidr`]. On failure returns the index of the first bad
/// entry (so the config compiler can point at the TOML key and element) and its message.
pub fn parse_cidrs(values: &[String]) -> Result<Vec<IpNet>, (usize, String)> {
    values
        .iter()
        .enumerate()
        .map(|(index, value)| parse_cidr(value).map_err(|message| (index, message)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(values: &[&str]) -> Vec<IpNet> {
        values.iter().map(|v| parse_cidr(v).unwrap()).collect()
    }

    fn set(values: &[&str]) -> CidrSet {
        CidrSet::new(&nets(values))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn membership_table() {
        #[rustfmt::skip]
        let cases: &[(&[&str], &str, bool)] = &[
            // Empty set.
            (&[], "10.0.0.1", false),
            (&[], "::1", false),
            // IPv4 prefixes.
            (&["10.0.0.0/8"], "10.0.0.0", true),
            (&["10.0.0.0/8"], "10.255.255.255", true),
            (&["10.0.0.0/8"], "11.0.0.0", false),
            (&["10.0.0.0/8"], "9.255.255.255", false),
            (&["0.0.0.0/0"], "255.255.255.255", true),
            (&["0.0.0.0/0"], "0.0.0.0", true),
            (&["0.0.0.0/0"], "::1", false),
            (&["192.0.2.7/32"], "192.0.2.7", true),
            (&["192.0.2.7/32"], "192.0.2.8", false),
            (&["192.0.2.7"], "192.0.2.7", true),
            (&["192.0.2.7"], "192.0.2.6", false),
            // IPv6 prefixes.
            (&["2001:db8::/32"], "2001:db8:ffff::1", true),
            (&["2001:db8::/32"], "2001:db9::", false),
            (&["::/0"], "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true),
            (&["::1/128"], "::1", true),
            (&["::1"], "::1", true),
            (&["::1/128"], "::2", false),
            (&["::1/128"], "127.0.0.1", false),
            // IPv4-mapped lookups are checked as IPv4.
            (&["10.0.0.0/8"], "::ffff:10.1.2.3", true),
            (&["10.0.0.0/8"], "::ffff:11.1.2.3", false),
            // IPv4-mapped configured nets denote IPv4 hosts.
            (&["::ffff:10.0.0.0/104"], "10.9.9.9", true),
            (&["::ffff:10.0.0.0/104"], "::ffff:10.9.9.9", true),
            (&["::ffff:10.0.0.0/104"], "11.0.0.0", false),
            (&["::ffff:192.0.2.1"], "192.0.2.1", true),
            // A v6 net covering the whole mapped block covers all of IPv4.
            (&["::/0"], "203.0.113.9", true),
            (&["::ffff:0:0/96"], "0.0.0.0", true),
            (&["::ffff:0:0/96"], "::fffe:ffff:ffff", false),
            // Deprecated IPv4-compatible addresses are not IPv4.
            (&["10.0.0.0/8"], "::10.0.0.1", false),
            // Overlapping and adjacent ranges.
            (&["10.0.0.0/24", "10.0.0.128/25"], "10.0.0.200", true),
            (&["10.0.0.0/25", "10.0.0.128/25"], "10.0.0.127", true),
            (&["10.0.0.0/25", "10.0.0.128/25"], "10.0.0.128", true),
            (&["10.0.0.0/25", "10.0.0.128/25"], "10.0.1.0", false),
            (&["10.0.0.0/25", "10.0.2.0/25"], "10.0.1.0", false),
            (&["10.0.2.0/24", "10.0.0.0/24"], "10.0.2.9", true),
            (&["10.0.0.0/8", "10.1.0.0/16"], "10.200.0.0", true),
        ];
        for (configured, addr, expected) in cases {
            assert_eq!(
                set(configured).contains(ip(addr)),
                *expected,
                "{configured:?} contains {addr}"
            );
        }
    }

    #[test]
    fn ranges_are_merged() {
        let merged = set(&[
            "10.0.0.0/25",
            "10.0.0.128/25",
            "10.0.0.64/26",
            "10.0.2.0/24",
        ]);
        assert_eq!(
            &*merged.v4,
            &[
                (
                    u32::from_be_bytes([10, 0, 0, 0]),
                    u32::from_be_bytes([10, 0, 0, 255])
                ),
                (
                    u32::from_be_bytes([10, 0, 2, 0]),
                    u32::from_be_bytes([10, 0, 2, 255])
                ),
            ]
        );
        assert_eq!(set(&["::/1", "8000::/1"]).v6.len(), 1);
        assert_eq!(set(&["0.0.0.0/1", "128.0.0.0/1", "1.2.3.4"]).v4.len(), 1);
    }

    #[test]
    fn is_empty() {
        assert!(CidrSet::new(&[]).is_empty());
        assert!(CidrSet::default().is_empty());
        assert!(!set(&["::1"]).is_empty());
        assert!(!set(&["10.0.0.1"]).is_empty());
    }

    /// Deterministic pseudo-random numbers (xorshift64), so the test needs no dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    /// The naive definition, including the mapped-address identification of the module doc.
    fn naive(nets: &[IpNet], addr: IpAddr) -> bool {
        let spellings = match addr.to_canonical() {
            IpAddr::V4(a) => [IpAddr::V4(a), IpAddr::V6(a.to_ipv6_mapped())],
            IpAddr::V6(a) => [IpAddr::V6(a), IpAddr::V6(a)],
        };
        nets.iter()
            .any(|net| spellings.iter().any(|s| net.contains(s)))
    }

    #[test]
    fn thousand_cidrs_match_naive_scan() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut configured = Vec::new();
        for i in 0..1000 {
            let bits = rng.next();
            let net = match i % 4 {
                // Small v4 space (10.0.0.0/16) so nets overlap and touch often.
                0 | 1 => {
                    let addr = std::net::Ipv4Addr::from(0x0a00_0000 | (bits as u32 & 0xffff));
                    IpNet::new(addr.into(), 16 + (bits >> 32) as u8 % 17)
                }
                2 => {
                    let addr = std::net::Ipv6Addr::from(
                        (0x2001_0db8_u128 << 96) | u128::from(bits as u16) << 80,
                    );
                    IpNet::new(addr.into(), 32 + (bits >> 32) as u8 % 97)
                }
                _ => {
                    let addr = std::net::Ipv4Addr::from(0x0a00_0000 | (bits as u32 & 0xffff));
                    IpNet::new(addr.to_ipv6_mapped().into(), 112 + (bits >> 32) as u8 % 17)
                }
            };
            configured.push(net.unwrap().trunc());
        }
        let compiled = CidrSet::new(&configured);
        for _ in 0..20_000 {
            let bits = rng.next();
            let v4 = std::net::Ipv4Addr::from(0x0a00_0000 | (bits as u32 & 0x1_ffff));
            let addr: IpAddr = match bits >> 62 {
                0 => v4.into(),
                1 => v4.to_ipv6_mapped().into(),
                _ => std::net::Ipv6Addr::from(
                    (0x2001_0db8_u128 << 96) | u128::from((bits >> 16) as u32) << 64,
                )
                .into(),
            };
            assert_eq!(compiled.contains(addr), naive(&configured, addr), "{addr}");
        }
        // Every configured network address and its neighbours.
        for net in &configured {
            for addr in [net.network(), net.broadcast()] {
                assert_eq!(compiled.contains(addr), naive(&configured, addr), "{addr}");
            }
        }
    }

    #[test]
    fn parse_accepts_cidrs_and_bare_addresses() {
        let values: Vec<String> = [
            "10.0.0.0/8",
            "10.0.0.1",
            "::1",
            "2001:db8::/32",
            "0.0.0.0/0",
            "::/0",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let parsed = parse_cidrs(&values).unwrap();
        let expected: Vec<IpNet> = [
            "10.0.0.0/8",
            "10.0.0.1/32",
            "::1/128",
            "2001:db8::/32",
            "0.0.0.0/0",
            "::/0",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        assert_eq!(parsed, expected);
    }

    #[test]
    fn parse_reports_index_of_bad_entry() {
        #[rustfmt::skip]
        let cases: &[(&[&str], usize)] = &[
            (&["10.0.0.300"], 0),
            (&["10.0.0.0/8", "bogus"], 1),
            (&["10.0.0.0/8", "::1", "10.0.0.0/33"], 2),
            (&["::/129"], 0),
            (&["10.0.0.1/8"], 0),
            (&["2001:db8::1/32"], 0),
            (&[""], 0),
            (&[" 10.0.0.1"], 0),
            (&["10.0.0.0/"], 0),
            (&["fe80::1%eth0"], 0),
        ];
        for (values, index) in cases {
            let values: Vec<String> = values.iter().map(|s| s.to_string()).collect();
            let (at, message) = parse_cidrs(&values).unwrap_err();
            assert_eq!(at, *index, "{values:?}");
            assert!(message.starts_with("invalid "), "{message}");
            assert_eq!(message, message.to_lowercase(), "{message}");
        }
        let (_, message) = parse_cidrs(&["10.0.0.1/8".to_string()]).unwrap_err();
        assert!(message.contains("10.0.0.0/8"), "{message}");
    }
}
