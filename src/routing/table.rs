//! The route table (SPEC §3 step 2).
//!
//! Owns matching a request (host, canonical path, method) to one configured route, or to the
//! 404/405 outcome. It does not canonicalize the path (that is step 1, `routing::path`) and
//! knows nothing about what a route demands (allowlists, tokens, scopes): a match is an index
//! into the config's route list, and the snapshot holds the rest.
//!
//! Shape, built once per config snapshot so that a lookup never scans the route list:
//!
//! ```text
//! host ─┬─► exact host (HashMap) ─────────────────┐
//!       ├─► wildcard suffix (HashMap, longest) ───┼─► PrefixTrie ─► longest prefix ─► method
//!       └─► host-less routes ─────────────────────┘
//! ```
//!
//! The host tier is chosen first and is final: a request whose host names an exact or
//! wildcard tier is never routed by a less specific tier, even when no prefix of that tier
//! matches its path. Otherwise a route meant for `admin.example.com` that forgets a prefix would
//! silently hand those requests to the catch-all routes, with their (maybe weaker) rules.

use std::borrow::Cow;
use std::collections::HashMap;

use http::{HeaderValue, Method};

/// The `host` of a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// No `host` key: matches every host (lowest tier).
    Any,
    /// Exact host, stored lowercase without port.
    Exact(String),
    /// `*.example.com`: stores the suffix `example.com` (lowercase).
    Wildcard(String),
}

impl HostPattern {
    /// Parses the config value (`api.example.com`, `*.example.com`, `[::1]`).
    ///
    /// One trailing dot is dropped (`example.com.` is the same host, and
    /// [`crate::routing::request_host`] drops it from the request too). Ports are refused: the SPEC matches hosts ignoring any port, so a
    /// port here could never mean what the operator wrote.
    pub fn parse(value: &str) -> Result<HostPattern, String> {
        if value.is_empty() {
            return Err("host is empty".to_owned());
        }
        if value.chars().any(char::is_whitespace) {
            return Err(format!("host {value:?} contains whitespace"));
        }
        let lowered = value.to_ascii_lowercase();
        if let Some(inner) = lowered.strip_prefix('[') {
            // IPv6 literal, as in a Host header.
            return match inner.strip_suffix(']') {
                Some(address) if address.parse::<std::net::Ipv6Addr>().is_ok() => {
                    Ok(HostPattern::Exact(lowered))
                }
                _ if inner.contains("]:") => Err(format!("host {value:?} must not have a port")),
                _ => Err(format!("host {value:?} is not a valid ipv6 literal")),
            };
        }
        if lowered.contains(':') {
            return Err(format!("host {value:?} must not have a port"));
        }
        let name = lowered.strip_suffix('.').unwrap_or(&lowered);
        let (wildcard, name) = match name.strip_prefix("*.") {
            Some(suffix) => (true, suffix),
            None => (false, name),
        };
        if name.contains('*') {
            return Err(format!(
                "host {value:?}: `*` is only allowed as the whole first label"
            ));
        }
        if name.is_empty() || name.split('.').any(str::is_empty) {
            return Err(format!("host {value:?} has an empty label"));
        }
        if let Some(bad) = name.chars().find(|c| !is_host_char(*c)) {
            return Err(format!(
                "host {value:?} contains the invalid character {bad:?}"
            ));
        }
        Ok(if wildcard {
            HostPattern::Wildcard(name.to_owned())
        } else {
            HostPattern::Exact(name.to_owned())
        })
    }
}

/// Letters, digits, `-` and `_` (seen in real internal DNS names); IDNs must use punycode,
/// which is what clients put in the Host header.
fn is_host_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// One route as the table needs it. The route's index is its position in the input.
#[derive(Debug, Clone)]
pub struct RouteSpec {
    pub host: HostPattern,
    /// Canonical path prefix starting with `/`, without trailing slash unless it is `/`.
    pub path_prefix: String,
    /// `None`: every method.
    pub methods: Option<Vec<Method>>,
}

/// The outcome of a lookup.
#[derive(Debug, PartialEq)]
pub enum Lookup<'a> {
    /// Index of the chosen route.
    Matched(usize),
    /// 404 no_route.
    NoRoute,
    /// 405: the value of the `Allow` header.
    MethodNotAllowed(&'a HeaderValue),
}

/// Immutable route table, built once per config snapshot.
#[derive(Debug)]
pub struct RouteTable {
    exact: HashMap<String, PrefixTrie>,
    /// Keyed by the suffix after `*.`.
    wildcard: HashMap<String, PrefixTrie>,
    /// Routes without `host`; `None` when every route names a host.
    any: Option<PrefixTrie>,
}

impl RouteTable {
    pub fn new(routes: Vec<RouteSpec>) -> RouteTable {
        let mut table = RouteTable {
            exact: HashMap::new(),
            wildcard: HashMap::new(),
            any: None,
        };
        for (index, route) in routes.into_iter().enumerate() {
            let trie = match route.host {
                HostPattern::Any => table.any.get_or_insert_with(PrefixTrie::default),
                HostPattern::Exact(host) => table.exact.entry(host).or_default(),
                HostPattern::Wildcard(suffix) => table.wildcard.entry(suffix).or_default(),
            };
            trie.insert(&route.path_prefix, index, route.methods);
        }
        for trie in table.exact.values_mut().chain(table.wildcard.values_mut()) {
            trie.finish();
        }
        if let Some(trie) = &mut table.any {
            trie.finish();
        }
        table
    }

    /// `host` is the request host as [`crate::routing::request_host`] validated and normalized it
    /// (any case, maybe with a port); `path` is canonical.
    pub fn lookup(&self, host: Option<&str>, path: &str, method: &Method) -> Lookup<'_> {
        let tier = match host {
            Some(host) => self.tier(host),
            None => self.any.as_ref(),
        };
        match tier {
            Some(trie) => trie.lookup(path, method),
            None => Lookup::NoRoute,
        }
    }

    /// Picks the host tier: exact, else the longest matching wildcard suffix, else host-less.
    fn tier(&self, raw: &str) -> Option<&PrefixTrie> {
        let host = strip_port(raw);
        if host.is_empty() {
            return self.any.as_ref();
        }
        // Hostnames are at most 253 bytes, so lowercasing on the stack covers every real
        // request with mixed case; a longer one (which matches nothing real) may allocate.
        let mut buffer = [0u8; 256];
        let lowered: Cow<'_, str> = if !host.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Borrowed(host)
        } else if let Some(slot) = buffer.get_mut(..host.len()) {
            slot.copy_from_slice(host.as_bytes());
            slot.make_ascii_lowercase();
            // ASCII lowercasing keeps UTF-8 valid; the impossible error falls to the host-less tier.
            Cow::Borrowed(std::str::from_utf8(slot).unwrap_or_default())
        } else {
            Cow::Owned(host.to_ascii_lowercase())
        };
        let host = &*lowered;
        if let Some(trie) = self.exact.get(host) {
            return Some(trie);
        }
        if !self.wildcard.is_empty() {
            // Suffixes after each dot, longest first, so the most specific wildcard wins
            // (`*.eu.example.com` over `*.example.com`). A dot that starts the host or follows
            // another dot has an empty label before it, which `*` never stands for.
            let bytes = host.as_bytes();
            for (dot, _) in host.match_indices('.') {
                if dot == 0 || bytes[dot - 1] == b'.' {
                    continue;
                }
                if let Some(trie) = self.wildcard.get(&host[dot + 1..]) {
                    return Some(trie);
                }
            }
        }
        self.any.as_ref()
    }
}

/// `api.example.com:8080` -> `api.example.com`, `[::1]:8080` -> `[::1]`.
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        }
    } else {
        host.split_once(':').map_or(host, |(name, _)| name)
    }
}

/// Path prefixes of one host tier as a trie of whole segments; node 0 is the prefix `/`.
#[derive(Debug)]
struct PrefixTrie {
    nodes: Vec<Node>,
}

#[derive(Debug, Default)]
struct Node {
    children: HashMap<Box<str>, usize>,
    /// The routes whose prefix ends at this node, in config order.
    group: Option<Group>,
}

#[derive(Debug)]
struct Group {
    /// Route index and its methods (`None`: every method).
    routes: Vec<(usize, Option<Vec<Method>>)>,
    /// Union of the group's methods, for a 405; set by `finish`.
    allow: HeaderValue,
}

impl Default for PrefixTrie {
    fn default() -> PrefixTrie {
        PrefixTrie {
            nodes: vec![Node::default()],
        }
    }
}

impl PrefixTrie {
    fn insert(&mut self, prefix: &str, index: usize, methods: Option<Vec<Method>>) {
        debug_assert!(
            prefix.starts_with('/') && (prefix == "/" || !prefix.ends_with('/')),
            "route prefix {prefix:?} is not canonical"
        );
        let mut node = 0;
        // Empty segments cannot occur in a canonical prefix; skipping them keeps a sloppy one
        // (`/a/`) meaning the same as its canonical form instead of becoming unreachable.
        for segment in prefix.split('/').filter(|s| !s.is_empty()) {
            node = match self.nodes[node].children.get(segment) {
                Some(&child) => child,
                None => {
                    let child = self.nodes.len();
                    self.nodes.push(Node::default());
                    self.nodes[node].children.insert(segment.into(), child);
                    child
                }
            };
        }
        let group = self.nodes[node].group.get_or_insert_with(|| Group {
            routes: Vec::new(),
            allow: HeaderValue::from_static(""),
        });
        group.routes.push((index, methods));
    }

    /// Precomputes every group's `Allow` value.
    fn finish(&mut self) {
        for group in self.nodes.iter_mut().filter_map(|node| node.group.as_mut()) {
            group.allow = allow_value(&group.routes);
        }
    }

    fn lookup(&self, path: &str, method: &Method) -> Lookup<'_> {
        let mut node = &self.nodes[0];
        let mut best = node.group.as_ref();
        // Walking whole segments is what makes `/orders` match `/orders/7` but not `/ordersx`.
        for segment in path.split('/').filter(|s| !s.is_empty()) {
            match node.children.get(segment) {
                Some(&child) => node = &self.nodes[child],
                None => break,
            }
            if node.group.is_some() {
                best = node.group.as_ref();
            }
        }
        let Some(group) = best else {
            return Lookup::NoRoute;
        };
        let allowed = |methods: &Option<Vec<Method>>| match methods {
            Some(methods) => methods.contains(method),
            None => true,
        };
        match group.routes.iter().find(|(_, methods)| allowed(methods)) {
            Some(&(index, _)) => Lookup::Matched(index),
            None => Lookup::MethodNotAllowed(&group.allow),
        }
    }
}

/// The standard methods in RFC 9110 order; extension methods follow, sorted by name.
const METHOD_ORDER: [Method; 9] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::CONNECT,
    Method::OPTIONS,
    Method::TRACE,
    Method::PATCH,
];

/// `GET, HEAD, POST` for the union of a group's methods. Only used when no route of the group
/// allows every method (otherwise no 405 can happen), so `None` entries add nothing.
fn allow_value(routes: &[(usize, Option<Vec<Method>>)]) -> HeaderValue {
    let mut methods: Vec<&Method> = routes
        .iter()
        .flat_map(|(_, m)| m.iter().flatten())
        .collect();
    let rank = |m: &Method| {
        METHOD_ORDER
            .iter()
            .position(|known| known == m)
            .unwrap_or(usize::MAX)
    };
    methods.sort_by(|a, b| {
        rank(a)
            .cmp(&rank(b))
            .then_with(|| a.as_str().cmp(b.as_str()))
    });
    methods.dedup();
    let text = methods
        .iter()
        .map(|m| m.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    // Method names are tokens, always a valid header value; never panic on config anyway.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;
