//! The access log (SPEC §6): one line per request through `tracing` (target
//! `authgate::access`), text or JSON per `--log-format`. Tokens and secrets are never logged:
//! the record has no field that could hold one.

use std::net::IpAddr;
use std::time::Duration;

use http::header::{HeaderValue, CONTENT_LENGTH};
use http::request::Parts;
use http::Response;

use crate::deny::Deny;
use crate::pipeline::{Allowed, ConnInfo, Denied};
use crate::proxy::Body;
use crate::snapshot::{Route, Snapshot};

/// Longest raw path logged for requests refused before canonicalization.
const MAX_RAW_PATH: usize = 256;

/// What one access-log line says.
#[derive(Debug, Default)]
pub struct AccessRecord {
    /// False when the access log is filtered out: then nothing is collected (no allocation).
    pub enabled: bool,
    pub request_id: String,
    /// `proxy` (a proxied request) or `decision` (an ingress asking, SPEC §7.3).
    pub mode: &'static str,
    pub peer: String,
    pub client: Option<IpAddr>,
    pub method: String,
    pub path: String,
    pub route: String,
    pub status: u16,
    pub decision: &'static str,
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
}

fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers.get(CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

impl AccessRecord {
    pub fn new(parts: &Parts, conn: &ConnInfo, request_id: &HeaderValue) -> AccessRecord {
        if !tracing::enabled!(target: "authgate::access", tracing::Level::INFO) {
            return AccessRecord::default();
        }
        let raw_path = parts.uri.path();
        let end = raw_path
            .char_indices()
            .nth(MAX_RAW_PATH)
            .map_or(raw_path.len(), |(i, _)| i);
        AccessRecord {
            enabled: true,
            request_id: request_id.to_str().unwrap_or_default().to_owned(),
            mode: "proxy",
            peer: conn.peer.to_string(),
            method: parts.method.as_str().to_owned(),
            path: raw_path[..end].to_owned(),
            route: "none".to_owned(),
            bytes_in: content_length(&parts.headers),
            ..AccessRecord::default()
        }
    }

    pub fn allowed(&mut self, allowed: &Allowed<'_>, route: &Route, snapshot: &Snapshot) {
        if !self.enabled {
            return;
        }
        self.decision = "allow";
        self.reason = if route.public { "public" } else { "ok" };
        self.path = allowed.path.to_string();
        self.route = route.name.clone();
        self.client = allowed.client;
        self.upstream = snapshot.upstreams[route.upstream].name.clone();
        if let Some(verified) = &allowed.verified {
            self.subject = verified.principal.subject.clone().unwrap_or_default();
            self.client_id = verified.principal.client_id.clone().unwrap_or_default();
            self.key_id = verified.principal.key_id.clone().unwrap_or_default();
        }
    }

    pub fn denied(&mut self, denied: &Denied<'_>, route: Option<&Route>) {
        if !self.enabled {
            return;
        }
        self.decision = "deny";
        self.reason = denied.deny.reason();
        if let Deny::InvalidApiKey(error) = &denied.deny {
            self.key_id = error.key_id().unwrap_or_default().to_owned();
        }
        if let Some(path) = &denied.path {
            self.path = path.to_string();
        }
        if let Some(route) = route {
            self.route = route.name.clone();
        }
        self.client = denied.client;
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

/// Writes the record as one log line.
pub fn emit(record: &AccessRecord) {
    if !record.enabled {
        return;
    }
    tracing::info!(
        target: "authgate::access",
        request_id = %record.request_id,
        mode = %record.mode,
        peer = %record.peer,
        client = %record.client.map(|ip| ip.to_string()).unwrap_or_default(),
        method = %record.method,
        path = %record.path,
        route = %record.route,
        status = record.status,
        decision = %record.decision,
        reason = %record.reason,
        subject = %record.subject,
        client_id = %record.client_id,
        key_id = %record.key_id,
        upstream = %record.upstream,
        upstream_server = %record.upstream_server,
        duration_ms = record.duration.as_secs_f64() * 1000.0,
        bytes_in = record.bytes_in,
        bytes_out = record.bytes_out,
        "request"
    );
}
