//! The access log (SPEC §6): one line per request (target `authgate::access`), text or JSON
//! per `--log-format`. Tokens and secrets are never logged: the record has no field that could
//! hold one.
//!
//! Every value is plain text or a number (never a debug rendering such as `Some(..)`), and
//! durations are in milliseconds rounded to whole microseconds. A denial after
//! authentication (403 `insufficient_scope`, a client rule, a rate limit) names the verified
//! subject and client id. A request whose response never completed (its connection was cut:
//! the drain at shutdown timed out, or the client went away) still gets its line, when the
//! record is dropped: `status` 0 and `reason` `shutdown` or `client_closed`.
//!
//! How a line is written (issue 19: the log must cost about a microsecond): when the current
//! subscriber is the one [`crate::logging::init`] installed (it writes to
//! [`crate::log_writer`]) and no span is entered, [`emit`] formats the record itself into a
//! reused per-thread buffer and hands the finished line to the writer thread, bypassing
//! tracing's formatter. The line must stay byte for byte what tracing-subscriber would write
//! for the same event (same fields in the same order, the timestamp from its own timer,
//! `INFO`, the target, the text format's escaping from `logging`; the unit tests compare the
//! two), so JSON is written with serde_json's serializer, never escaped by hand. Whether a
//! line is wanted at all is still the subscriber's filter (`RUST_LOG`,
//! `authgate::access=off`), asked once per request in [`AccessRecord::new`]. Any other
//! subscriber (a test capturing logs, a terminal with colours) gets a tracing event as before.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use http::header::{HeaderValue, CONTENT_LENGTH};
use http::request::Parts;
use http::Response;
use serde::ser::{SerializeMap, Serializer as _};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};

use crate::auth::cache::Verified;
use crate::deny::Deny;
use crate::logging::{Escaped, LineFormat};
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
    match direct_format() {
        Some(format) => write_directly(record, format),
        None => emit_event(record),
    }
}

/// The record as a tracing event (any subscriber but [`crate::logging::init`]'s).
fn emit_event(record: &AccessRecord) {
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

/// The format to write a line in directly, or `None` for a tracing event: the current
/// subscriber writes to [`crate::log_writer::Stderr`] (so it is `logging::init`'s, not a
/// scoped or test subscriber) and no span is entered (a span would add to the line).
fn direct_format() -> Option<LineFormat> {
    let format = crate::logging::installed_format()?;
    tracing::dispatcher::get_default(|dispatch| {
        let own = dispatch.is::<crate::log_writer::Stderr>();
        (own && dispatch.current_span().id().is_none()).then_some(format)
    })
}

/// Lines longer than this do not keep their buffer's capacity.
const KEEP_CAPACITY: usize = 16 * 1024;

thread_local! {
    /// The line being formatted, reused from one request to the next on this thread.
    static LINE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Formats the record into this thread's buffer and queues the line.
fn write_directly(record: &AccessRecord, format: LineFormat) {
    let written = LINE.try_with(|line| match line.try_borrow_mut() {
        Ok(mut line) => {
            let sent = format_and_queue(&mut line, record, format);
            if line.capacity() > KEEP_CAPACITY {
                *line = Vec::new();
            }
            sent
        }
        // Reentered, or the thread's buffer is gone (a record dropped as the thread exits).
        Err(_) => format_and_queue(&mut Vec::new(), record, format),
    });
    if !matches!(written, Ok(Ok(()))) {
        emit_event(record);
    }
}

fn format_and_queue(line: &mut Vec<u8>, record: &AccessRecord, format: LineFormat) -> fmt::Result {
    line.clear();
    let formatted = match format {
        LineFormat::Json => write_json(line, record, &SystemTime),
        LineFormat::Text => write_text(line, record, &SystemTime),
    };
    if formatted.is_ok() {
        crate::log_writer::write_line(line);
    }
    formatted
}

/// The record as tracing-subscriber's JSON formatter writes it (flattened, no span): the
/// timestamp, the level, the message, the fields in [`emit_event`]'s order (`bytes_in` and
/// `bytes_out` only when known), the target; then a newline.
fn write_json(line: &mut Vec<u8>, record: &AccessRecord, timer: &impl FormatTime) -> fmt::Result {
    let mut stamp = Stamp::default();
    timer.format_time(&mut Writer::new(&mut stamp))?;
    let json = |result: Result<(), serde_json::Error>| result.map_err(|_| fmt::Error);
    let mut serializer = serde_json::Serializer::new(&mut *line);
    let mut map = serializer.serialize_map(None).map_err(|_| fmt::Error)?;
    json(map.serialize_entry("timestamp", stamp.as_str()))?;
    json(map.serialize_entry("level", "INFO"))?;
    json(map.serialize_entry("message", "request"))?;
    json(map.serialize_entry("request_id", &record.request_id))?;
    json(map.serialize_entry("mode", record.mode.as_str()))?;
    json(map.serialize_entry("peer", &record.peer))?;
    json(map.serialize_entry("client", &ClientIp(record.client)))?;
    json(map.serialize_entry("method", &record.method))?;
    json(map.serialize_entry("path", &record.path))?;
    json(map.serialize_entry("route", &record.route))?;
    json(map.serialize_entry("status", &u64::from(record.status)))?;
    json(map.serialize_entry("decision", record.decision.as_str()))?;
    json(map.serialize_entry("reason", record.reason))?;
    json(map.serialize_entry("subject", &record.subject))?;
    json(map.serialize_entry("client_id", &record.client_id))?;
    json(map.serialize_entry("key_id", &record.key_id))?;
    json(map.serialize_entry("upstream", &record.upstream))?;
    json(map.serialize_entry("upstream_server", &record.upstream_server))?;
    json(map.serialize_entry("duration_ms", &millis(record.duration)))?;
    if let Some(bytes) = record.bytes_in {
        json(map.serialize_entry("bytes_in", &bytes))?;
    }
    if let Some(bytes) = record.bytes_out {
        json(map.serialize_entry("bytes_out", &bytes))?;
    }
    json(map.serialize_entry("target", "authgate::access"))?;
    json(SerializeMap::end(map))?;
    line.push(b'\n');
    Ok(())
}

/// The record as the text format writes it (`logging::init`: no target, no colours, fields
/// through `logging`'s escaping): `timestamp  INFO request key=value ...` and a newline.
fn write_text(line: &mut Vec<u8>, record: &AccessRecord, timer: &impl FormatTime) -> fmt::Result {
    let mut out = Utf8(line);
    if timer.format_time(&mut Writer::new(&mut out)).is_err() {
        out.write_str("<unknown time>")?;
    }
    // The level padded to five, then the message (which is never escaped into anything else).
    out.write_str("  INFO request")?;
    let fields: [(&str, &dyn fmt::Display); 15] = [
        ("request_id", &record.request_id),
        ("mode", &record.mode.as_str()),
        ("peer", &record.peer),
        ("client", &ClientIp(record.client)),
        ("method", &record.method),
        ("path", &record.path),
        ("route", &record.route),
        ("status", &record.status),
        ("decision", &record.decision.as_str()),
        ("reason", &record.reason),
        ("subject", &record.subject),
        ("client_id", &record.client_id),
        ("key_id", &record.key_id),
        ("upstream", &record.upstream),
        ("upstream_server", &record.upstream_server),
    ];
    for (name, value) in fields {
        write!(out, " {name}=")?;
        write!(Escaped(&mut out), "{value}")?;
    }
    // A float field is written with `Debug`, as tracing records it (`2.0`, not `2`).
    write!(out, " duration_ms={:?}", millis(record.duration))?;
    if let Some(bytes) = record.bytes_in {
        write!(out, " bytes_in={bytes}")?;
    }
    if let Some(bytes) = record.bytes_out {
        write!(out, " bytes_out={bytes}")?;
    }
    out.write_char('\n')
}

/// The client address as text, empty when unknown (JSON: a string either way).
struct ClientIp(Option<IpAddr>);

impl fmt::Display for ClientIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(ip) => fmt::Display::fmt(&ip, f),
            None => Ok(()),
        }
    }
}

impl serde::Serialize for ClientIp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// `fmt::Write` into the line's bytes (everything written is UTF-8 text).
struct Utf8<'a>(&'a mut Vec<u8>);

impl fmt::Write for Utf8<'_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        self.0.extend_from_slice(text.as_bytes());
        Ok(())
    }
}

/// The timestamp, formatted on the stack (`2026-12-02T04:47:19.123456Z` is 27 bytes).
#[derive(Default)]
struct Stamp {
    bytes: [u8; 32],
    len: usize,
}

impl Stamp {
    fn as_str(&self) -> &str {
        // Only whole `&str`s are ever copied in, so this cannot fail.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

impl fmt::Write for Stamp {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let end = self.len + text.len();
        let room = self.bytes.get_mut(self.len..end).ok_or(fmt::Error)?;
        room.copy_from_slice(text.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
#[path = "access_log_tests.rs"]
mod tests;
