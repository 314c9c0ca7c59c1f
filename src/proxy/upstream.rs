//! One compiled `[[upstreams]]` entry: where its requests go and the state they share (its
//! servers with their health, pooled client, request caps, retry budget, metrics). Owned by
//! `proxy`; the snapshot holds a list of them. Nothing here reads config or decides access.

use std::sync::Arc;
use std::time::Duration;

use super::balance::{Ejection, Server};
use super::capacity::UpstreamCapacity;
use super::client::UpstreamClient;
use super::retry::{RetryBudget, RetryPolicy};
use crate::metrics::UpstreamMetrics;

/// One `[[upstreams]]` entry.
pub struct Upstream {
    pub name: String,
    /// At least one; `url` is a list of one.
    pub servers: Vec<Server>,
    pub preserve_host: bool,
    pub timeouts: Timeouts,
    pub ejection: Ejection,
    pub retry: RetryPolicy,
    pub budget: RetryBudget,
    pub client: Arc<UpstreamClient>,
    /// Caps on the requests in flight (shared with the previous snapshot when unchanged).
    pub capacity: UpstreamCapacity,
    pub metrics: UpstreamMetrics,
    /// Active health checks, when configured (their task holds a weak reference).
    pub active_checks: Option<Arc<super::health::ActiveChecks>>,
    /// When the client certificate (`client_cert_file`) expires.
    pub client_cert_expiry: Option<crate::tls::expiry::Expiry>,
}

/// How long an upstream may take. A route's settings override its upstream's, each on its own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timeouts {
    /// Until response headers (also bounded by the server's `request_timeout`).
    pub timeout: Option<Duration>,
    /// Longest silence between two response body chunks (streams: SSE, long polls); `None`:
    /// no limit.
    pub idle_timeout: Option<Duration>,
}

impl Timeouts {
    /// `self` (a route's) where set, else `upstream`'s.
    pub fn over(&self, upstream: &Timeouts) -> Timeouts {
        Timeouts {
            timeout: self.timeout.or(upstream.timeout),
            idle_timeout: self.idle_timeout.or(upstream.idle_timeout),
        }
    }
}
