//! The route table (SPEC §3 step 2). STUB: owned by the routing helper.

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
    /// Parses the config value (`api.example.com`, `*.example.com`).
    pub fn parse(value: &str) -> Result<HostPattern, String> {
        Ok(HostPattern::Exact(value.to_ascii_lowercase()))
    }
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
pub struct RouteTable {}

impl RouteTable {
    pub fn new(routes: Vec<RouteSpec>) -> RouteTable {
        let _ = routes;
        RouteTable {}
    }

    /// `host` is the raw Host/authority value (any case, maybe with a port); `path` is canonical.
    pub fn lookup(&self, host: Option<&str>, path: &str, method: &Method) -> Lookup<'_> {
        let _ = (host, path, method);
        Lookup::NoRoute
    }
}
