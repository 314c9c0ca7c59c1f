//! `routing::RouteTable`: build a table from part of the input, look up with the rest.
//!
//! Input: text lines (invalid UTF-8 replaced), fields separated by one space:
//!
//! ```text
//! R <host|-> <path_prefix> [METHOD,METHOD...]   a route; `-` = no host
//! L <host|-> <path> <METHOD>                    a lookup; `-` = no Host header
//! ```
//!
//! Other lines are ignored. Route hosts go through `HostPattern::parse` and prefixes through
//! `canonicalize` with the trailing slash trimmed, as the config compiler does (a route whose
//! host or prefix is refused is dropped). Lookup paths are canonicalized first, as the pipeline
//! does (refused paths are not looked up); lookup hosts go through `routing::request_host` as
//! the pipeline does (refused hosts are not looked up).
//!
//! Invariants, besides "never panics":
//! - `Matched(i)`: `i` is in range, route `i` allows the method, its prefix matches the path on
//!   a segment boundary, and its host pattern belongs to the tier the host selects;
//! - the outcome (match index, 404, or 405 with its `Allow` list) equals the one of
//!   [`reference`], a linear scan over the routes written from the module doc of
//!   `routing/table.rs`.

use authgate::routing::{canonicalize, request_host, HostPattern, Lookup, RouteSpec, RouteTable};
use http::Method;

/// Keeps one input cheap: the table is rebuilt for every input.
const MAX_ROUTES: usize = 64;
const MAX_LOOKUPS: usize = 64;

pub fn fuzz_one(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut routes = Vec::new();
    let mut lookups = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        match fields.as_slice() {
            ["R", host, prefix, rest @ ..] if routes.len() < MAX_ROUTES => {
                if let Some(route) = route(host, prefix, rest.first().copied()) {
                    routes.push(route);
                }
            }
            ["L", host, path, method] if lookups.len() < MAX_LOOKUPS => {
                lookups.push((*host, *path, *method));
            }
            _ => {}
        }
    }
    let table = RouteTable::new(routes.clone());
    for (host, path, method) in lookups {
        let Ok(method) = Method::from_bytes(method.as_bytes()) else {
            continue;
        };
        let Ok(path) = canonicalize(path) else {
            continue;
        };
        // The table gets hosts as the pipeline gives them: validated and normalized by
        // `routing::request_host` (one trailing dot removed); refused hosts never reach it.
        let host = match host {
            "-" => None,
            raw => match request_host_of(raw) {
                Some(host) => host,
                None => continue,
            },
        };
        let outcome = table.lookup(host.as_deref(), &path, &method);
        check(&routes, host.as_deref(), &path, &method, &outcome);
    }
}

/// `Some(host)` as `request_host` makes it of a `Host: raw` header, `None` when it is refused.
fn request_host_of(raw: &str) -> Option<Option<String>> {
    let request = http::Request::builder()
        .uri("/")
        .header(http::header::HOST, raw)
        .body(())
        .ok()?;
    let (parts, ()) = request.into_parts();
    let host = request_host(&parts).ok()?;
    Some(host.map(|host| host.as_str().to_owned()))
}

fn route(host: &str, prefix: &str, methods: Option<&str>) -> Option<RouteSpec> {
    let host = match host {
        "-" => HostPattern::Any,
        host => HostPattern::parse(host).ok()?,
    };
    let canonical = canonicalize(prefix).ok()?;
    let path_prefix = match canonical.trim_end_matches('/') {
        "" => "/".to_owned(),
        trimmed => trimmed.to_owned(),
    };
    let methods = match methods {
        None => None,
        Some(list) => Some(
            list.split(',')
                .filter_map(|m| Method::from_bytes(m.as_bytes()).ok())
                .collect::<Vec<_>>(),
        )
        .filter(|m| !m.is_empty()),
    };
    Some(RouteSpec {
        host,
        path_prefix,
        methods,
    })
}

fn check(routes: &[RouteSpec], host: Option<&str>, path: &str, method: &Method, got: &Lookup) {
    let expected = reference(routes, host, path, method);
    let context = || format!("host {host:?} path {path:?} method {method} routes {routes:#?}");
    match got {
        Lookup::Matched(index) => {
            let route = routes
                .get(*index)
                .unwrap_or_else(|| panic!("matched index {index} out of range: {}", context()));
            assert!(
                prefix_matches(&route.path_prefix, path),
                "route {index} prefix does not match the path: {}",
                context()
            );
            assert!(
                route.methods.as_ref().is_none_or(|m| m.contains(method)),
                "route {index} does not allow the method: {}",
                context()
            );
            assert!(
                tier(routes, host).is_some_and(|tier| tier == route.host),
                "route {index} is not in the host's tier: {}",
                context()
            );
            assert_eq!(expected, Expected::Matched(*index), "{}", context());
        }
        Lookup::NoRoute => assert_eq!(expected, Expected::NoRoute, "{}", context()),
        Lookup::MethodNotAllowed(allow) => {
            let allow = allow.to_str().unwrap_or_else(|_| panic!("allow not ascii"));
            let mut listed: Vec<&str> = allow.split(", ").filter(|m| !m.is_empty()).collect();
            listed.sort_unstable();
            match expected {
                Expected::MethodNotAllowed(mut want) => {
                    want.sort_unstable();
                    want.dedup();
                    assert_eq!(listed, want, "allow {allow:?}: {}", context());
                }
                other => panic!("405 ({allow:?}) but expected {other:?}: {}", context()),
            }
        }
    }
}

/// Whole-segment prefix match on canonical paths.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    prefix == "/"
        || path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

#[derive(Debug, PartialEq)]
pub enum Expected {
    Matched(usize),
    NoRoute,
    MethodNotAllowed(Vec<String>),
}

/// The host tier a request host selects: `Some(pattern)` of an existing tier, `None` when no
/// route can match (the host-less tier is empty).
fn tier(routes: &[RouteSpec], host: Option<&str>) -> Option<HostPattern> {
    let any = routes
        .iter()
        .any(|r| r.host == HostPattern::Any)
        .then_some(HostPattern::Any);
    let Some(raw) = host else {
        return any;
    };
    // Strip a port: `[v6]:port` keeps the brackets, `name:port` loses everything after `:`.
    let host = if raw.starts_with('[') {
        match raw.find(']') {
            Some(end) => &raw[..=end],
            None => raw,
        }
    } else {
        raw.split(':').next().unwrap_or(raw)
    };
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    if host.is_empty() {
        return any;
    }
    let exact = HostPattern::Exact(host.clone());
    if routes.iter().any(|r| r.host == exact) {
        return Some(exact);
    }
    // Longest wildcard suffix whose `*` stands for a non-empty label.
    let labels: Vec<&str> = host.split('.').collect();
    for cut in 1..labels.len() {
        if labels[..cut].last().is_some_and(|l| l.is_empty()) {
            continue;
        }
        let wildcard = HostPattern::Wildcard(labels[cut..].join("."));
        if routes.iter().any(|r| r.host == wildcard) {
            return Some(wildcard);
        }
    }
    any
}

/// Linear scan: tier, then the longest matching prefix in it, then the first route of that
/// prefix (config order) that allows the method.
pub fn reference(
    routes: &[RouteSpec],
    host: Option<&str>,
    path: &str,
    method: &Method,
) -> Expected {
    let Some(tier) = tier(routes, host) else {
        return Expected::NoRoute;
    };
    let candidates: Vec<(usize, &RouteSpec)> = routes
        .iter()
        .enumerate()
        .filter(|(_, r)| r.host == tier && prefix_matches(&r.path_prefix, path))
        .collect();
    let Some(longest) = candidates
        .iter()
        .map(|(_, r)| segments(&r.path_prefix))
        .max()
    else {
        return Expected::NoRoute;
    };
    let group: Vec<&(usize, &RouteSpec)> = candidates
        .iter()
        .filter(|(_, r)| segments(&r.path_prefix) == longest)
        .collect();
    for (index, route) in &group {
        if route.methods.as_ref().is_none_or(|m| m.contains(method)) {
            return Expected::Matched(*index);
        }
    }
    Expected::MethodNotAllowed(
        group
            .iter()
            .flat_map(|(_, r)| r.methods.iter().flatten())
            .map(|m| m.as_str().to_owned())
            .collect(),
    )
}

fn segments(prefix: &str) -> usize {
    prefix.split('/').filter(|s| !s.is_empty()).count()
}
