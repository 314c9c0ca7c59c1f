//! One compiled `[[upstreams]]` entry: where its requests go and the state they share (pooled
//! client, request caps, metrics). Owned by `proxy`; the snapshot holds a list of them.
//! Nothing here reads config or decides access.

use std::sync::Arc;
use std::time::Duration;

use http::uri::{Authority, Scheme};
use http::HeaderValue;

use super::capacity::UpstreamCapacity;
use super::client::UpstreamClient;
use crate::metrics::UpstreamMetrics;

/// One `[[upstreams]]` entry.
pub struct Upstream {
    pub name: String,
    pub scheme: Scheme,
    pub authority: Authority,
    /// Path of the upstream URL without trailing slash ("" for none).
    pub path_prefix: String,
    /// Host header value when `preserve_host` is false.
    pub host: HeaderValue,
    pub preserve_host: bool,
    pub timeout: Duration,
    pub client: Arc<UpstreamClient>,
    /// Caps on the requests in flight (shared with the previous snapshot when unchanged).
    pub capacity: UpstreamCapacity,
    pub metrics: UpstreamMetrics,
}
