//! The access log (SPEC §6): one line per request through `tracing` (target
//! `authgate::access`), text or JSON per `--log-format`. Tokens and secrets are never logged:
//! the record has no field that could hold one.
//!
//! Every value is plain text or a number (never a debug rendering such as `Some(..)`), and
//! durations are in milliseconds rounded to whole microseconds. A denial after
//! authentication (403 `insufficient_scope`, a client rule, a rate limit) names the verified
//! subject and client id. A request whose response never completed (its connection was cut:
//! the drain at shutdown timed out, or the client went away) still gets its line, when the
//! record is dropped: `status` 0 and `reason` `shutdown` or `client_closed`.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use http::header::{HeaderValue, CONTENT_LENGTH};
use http::request::Parts;
use http::Response;

use crate::auth::cache::Verified;
use crate::deny::Deny;
use crate::proxy::Body;
use crate::snapshot::{Route, Snapshot};

/// Longest raw path logged for requests refused before canonicalization.
const MAX_RAW_PATH: usize = 256;

/// How the request came: the access log's `mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    /// A proxied request.
    #[default]
    Proxy,
    /// An ingress asking whether to let a request through (SPEC §7.3).
    Decision,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Proxy => "proxy",
            Mode::Decision => "decision",
        }
    }
}

/// What the gateway decided: the access log's `decision`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Also what a record says until the pipeline decides (deny by default).
    #[default]
    Deny,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
        }
    }
}

/// What one access-log line says.
#[derive(Debug, Default)]
pub struct AccessRecord {
    /// False when the access log is filtered out: then nothing is collected (no allocation).
    pub enabled: bool,
    pub request_id: String,
    pub mode: Mode,
    pub peer: String,
    pub client: Option<IpAddr>,
    pub method: String,
    pub path: String,
    pub route: String,
    pub status: u16,
    pub decision: Decision,
    pub reason: &'static str,
    pub subject: String,
    pub client_id: String,
    /// The API key's `id` when the credential was an API key (allowed, expired or disabled).
    pub key_id: String,
    pub upstream: String,
    /// The upstream server that answered (its configured URL).
    pub upstream_server: String,
    pub duration: Duration,
    pub bytes_in: Option<u64>,
    pub bytes_out: Option<u64>,
    /// When the record was made: the duration of a request cut before it finished.
    pub started: Option<Instant>,
}

/// Set once the process starts its shutdown drain: a record dropped unfinished after that was
/// cut by the shutdown, before it by the client. Process-wide: a process runs one gateway
/// (in-process tests that stop one gateway only change the reason word of such lines).
static SHUTTING_DOWN: AtomicBool = AtomicBool::new(false);

/// The drain has begun (see [`SHUTTING_DOWN`]).
pub fn shutdown_started() {
    SHUTTING_DOWN.store(true, Ordering::Relaxed);
}

fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers.get(CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

impl AccessRecord {
    /// A record of the request `parts` from `peer` (the connection's, before any forwarded
    /// address is believed).
    pub fn new(parts: &Parts, peer: SocketAddr, request_id: &HeaderValue) -> AccessRecord {
        if !tracing::enabled!(target: "authgate::access", tracing::Level::INFO) {
            return AccessRecord::default();
        }
        let raw_path = parts.uri.path();
        let end = raw_path
            .char_indices()
            .nth(MAX_RAW_PATH)
            .map_or(raw_path.len(), |(i, _)| i);
        // Field by field: a type with `Drop` cannot be built with `..Default::default()`.
        let mut record = AccessRecord::default();
        record.enabled = true;
        record.request_id = request_id.to_str().unwrap_or_default().to_owned();
        record.mode = Mode::Proxy;
        record.peer = peer.to_string();
        record.method = parts.method.as_str().to_owned();
        record.path = raw_path[..end].to_owned();
        record.route = "none".to_owned();
        record.bytes_in = content_length(&parts.headers);
        record.started = Some(Instant::now());
        record
    }

    /// The pipeline allowed the request on `route`: its canonical `path`, the `client` address
    /// and, on a non-public route, who was `verified`.
    pub fn allowed(
        &mut self,
        path: &str,
        client: Option<IpAddr>,
        verified: Option<&Verified>,
        route: &Route,
        snapshot: &Snapshot,
    ) {
        if !self.enabled {
            return;
        }
        self.decision = Decision::Allow;
        self.reason = if route.public { "public" } else { "ok" };
        self.path = path.to_owned();
        self.route = route.name.clone();
        self.client = client;
        self.upstream = snapshot.upstreams[route.upstream].name.clone();
        if let Some(verified) = verified {
            self.subject = verified.principal.subject.clone().unwrap_or_default();
            self.client_id = verified.principal.client_id.clone().unwrap_or_default();
            self.key_id = verified.principal.key_id.clone().unwrap_or_default();
        }
    }

    /// The pipeline refused the request with `deny`; the canonical `path`, the `client`
    /// address and the `route` as far as the pipeline got.
    pub fn denied(
        &mut self,
        deny: &Deny,
        path: Option<&str>,
        client: Option<IpAddr>,
        verified: Option<&Verified>,
        route: Option<&Route>,
    ) {
        if !self.enabled {
            return;
        }
        self.decision = Decision::Deny;
        self.reason = deny.reason();
        if let Deny::InvalidApiKey(error) = deny {
            self.key_id = error.key_id().unwrap_or_default().to_owned();
        }
        if let Some(path) = path {
            self.path = path.to_owned();
        }
        if let Some(route) = route {
            self.route = route.name.clone();
        }
        self.client = client;
        if let Some(verified) = verified {
            self.subject = verified.principal.subject.clone().unwrap_or_default();
            self.client_id = verified.principal.client_id.clone().unwrap_or_default();
            self.key_id = verified.principal.key_id.clone().unwrap_or_default();
        }
    }

    /// The upstream server that answered, from the response's extensions.
    pub fn served_by(&mut self, response: &Response<Body>) {
        if let Some(served) = response.extensions().get::<crate::proxy::ServedBy>() {
            self.upstream_server = served.0.to_string();
        }
    }

    /// Forwarding failed after an allow (502/504/413).
    pub fn failed(&mut self, deny: &Deny) {
        self.reason = deny.reason();
    }

    pub fn finish(&mut self, status: u16, duration: Duration, response: &Response<Body>) {
        self.status = status;
        self.duration = duration;
        self.bytes_out = content_length(response.headers());
    }
}

impl Drop for AccessRecord {
    /// A record dropped before [`AccessRecord::finish`]: its request was cut.
    fn drop(&mut self) {
        if !self.enabled || self.status != 0 {
            return;
        }
        self.reason = if SHUTTING_DOWN.load(Ordering::Relaxed) {
            "shutdown"
        } else {
            "client_closed"
        };
        self.duration = self.started.map(|at| at.elapsed()).unwrap_or_default();
        emit(self);
    }
}

/// Milliseconds, rounded to whole microseconds.
pub fn millis(duration: Duration) -> f64 {
    duration.as_micros() as f64 / 1000.0
}

/// Writes the record as one log line.
pub fn emit(record: &AccessRecord) {
    if !record.enabled {
        return;
    }
    tracing::info!(
        target: "authgate::access",
        request_id = %record.request_id,
        mode = %record.mode.as_str(),
        peer = %record.peer,
        client = %record.client.map(|ip| ip.to_string()).unwrap_or_default(),
        method = %record.method,
        path = %record.path,
        route = %record.route,
        status = record.status,
        decision = %record.decision.as_str(),
        reason = %record.reason,
        subject = %record.subject,
        client_id = %record.client_id,
        key_id = %record.key_id,
        upstream = %record.upstream,
        upstream_server = %record.upstream_server,
        duration_ms = millis(record.duration),
        bytes_in = record.bytes_in,
        bytes_out = record.bytes_out,
        "request"
    );
}
