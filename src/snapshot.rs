//! The compiled, immutable config that request handling reads without locks.
//!
//! A [`Shared`] holds the current `Arc<Snapshot>`; each request loads it once and finishes on
//! that version even if a reload swaps in another meanwhile.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use http::HeaderValue;

use crate::auth::api_keys::ApiKeySource;
use crate::auth::cache::TokenCache;
use crate::auth::jwks::{KeyStore, RefreshPolicy};
use crate::auth::jwt::TokenPolicy;
use crate::metrics::{Metrics, RouteMetrics};
use crate::network::CidrSet;
use crate::proxy::Upstream;
use crate::routing::{RouteSpec, RouteTable};
pub use crate::tls::server::ClientCertMode;

/// The current snapshot, swapped atomically on reload.
pub type Shared = Arc<ArcSwap<Snapshot>>;

/// Everything a request needs, compiled from one config file.
pub struct Snapshot {
    pub server: ServerSettings,
    pub admin_listen: SocketAddr,
    /// `[decision] listen`: the decision listener (SPEC §7.3); `None` = off.
    pub decision_listen: Option<SocketAddr>,
    /// What `/readyz` requires.
    pub readiness: Readiness,
    pub tls: Option<TlsSettings>,
    pub trusted_proxies: CidrSet,
    /// Gateway-wide allowlist; empty = every address.
    pub allow: CidrSet,
    pub issuers: Vec<Issuer>,
    /// `[[clients]]` by client id.
    pub clients: HashMap<String, ClientPolicy>,
    /// A verified identity without a client entry is refused (403 `client_not_allowed`).
    pub require_client_entry: bool,
    pub upstreams: Vec<Upstream>,
    pub routes: Vec<Route>,
    pub table: RouteTable,
    /// `[[api_keys]]` sources, re-read from their files at every load.
    pub api_keys: Vec<Arc<ApiKeySource>>,
    /// Normalized (lowercase, `_` as `-`) configured claim header names, stripped from clients.
    pub claim_header_names: Vec<String>,
    pub token_cache: Arc<TokenCache>,
    /// The settings the token cache was built with; a reload with other settings replaces it.
    pub token_cache_settings: TokenCacheSettings,
    /// `[[rate_limits]]`, in config order; routes refer to them by index.
    pub rate_limits: Vec<crate::ratelimit::Policy>,
    /// `[[clients]]` `rate_limits` by client id: indexes into `rate_limits`.
    pub client_rate_limits: HashMap<String, Vec<usize>>,
    /// `[rate_limit_store]`; kept across reloads while its settings are unchanged.
    pub rate_limit_store: Option<Arc<crate::ratelimit::store::Store>>,
    pub metrics: Arc<Metrics>,
    /// Metrics for requests that match no route (label `none`).
    pub unrouted: RouteMetrics,
}

/// `token_cache_entries` and `token_cache_ttl`: what the token cache is built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenCacheSettings {
    /// Most verified tokens kept.
    pub max_entries: u64,
    /// How long a verification is kept (never past the token's `exp`).
    pub ttl: Duration,
}

/// `[server]`: the plaintext listener, the client-side timeouts and limits (SPEC §2, §6).
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// `listen`: the plaintext listener; `None` when only `[server.tls]` listens.
    pub listen: Option<SocketAddr>,
    /// `header_read_timeout`: a request head must be complete within this time of its first
    /// byte (of the connection's start for the first request), else the connection is
    /// closed. Default 10 s.
    pub header_read_timeout: Duration,
    /// `request_timeout`: a whole request until the response headers, upstream included
    /// (504 after). Default 60 s.
    pub request_timeout: Duration,
    /// `idle_timeout`: how long a connection may go without activity and without a request
    /// waiting for its response (the wait between keep-alive requests). Default 90 s.
    pub idle_timeout: Duration,
    /// `max_header_bytes`: largest request head (request line and headers), in bytes; the
    /// HTTP/2 header list size too. Default 32768.
    pub max_header_bytes: usize,
    /// `max_headers`: most header fields in an HTTP/1.1 request (431 above). Default 100.
    pub max_headers: usize,
    /// `max_request_line_bytes`: longest request target (path and query), in bytes (400
    /// `invalid_request` above). Default 8192.
    pub max_request_line_bytes: usize,
    /// `max_connections`: most client connections open at once over all listeners; above it
    /// the gateway stops accepting until one closes. Default 10000.
    pub max_connections: usize,
    /// `max_connections_per_client`: most connections open at once from one peer address
    /// (the TCP peer, not X-Forwarded-For). Default 1024.
    pub max_connections_per_client: usize,
    /// `http2_max_concurrent_streams`: most HTTP/2 streams at once on one connection.
    /// Default 100.
    pub http2_max_concurrent_streams: u32,
    /// `max_upstream_requests`: most requests in flight to all upstreams together (503
    /// `unavailable` above, never queued). Default 1024.
    pub max_upstream_requests: usize,
    /// `shutdown_timeout`: how long SIGTERM waits for requests in flight before closing.
    /// Default 30 s.
    pub shutdown_timeout: Duration,
}

/// `[admin] readiness`: what `/readyz` requires besides bound listeners (SPEC §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Every issuer has loaded a key set at least once (later outages show in the body,
    /// metrics and that issuer's 503s, not in readiness): one IdP's outage must not take
    /// every replica out of the load balancer, public routes included.
    LoadedOnce,
    /// Every issuer holds a usable key set now.
    AllIssuers,
    /// Listeners only.
    Listeners,
}

impl Readiness {
    pub fn from_name(name: &str) -> Option<Readiness> {
        match name {
            "loaded_once" => Some(Readiness::LoadedOnce),
            "all_issuers" => Some(Readiness::AllIssuers),
            "listeners" => Some(Readiness::Listeners),
            _ => None,
        }
    }
}

/// `[server.tls]`.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub listen: SocketAddr,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub client_ca_file: Option<PathBuf>,
    pub client_crl_file: Option<PathBuf>,
    pub client_cert: ClientCertMode,
    pub handshake_timeout: Duration,
    /// Built from the files above when the config was compiled; new connections use it.
    pub server_config: Arc<rustls::ServerConfig>,
    /// When the certificate, client CAs and CRLs above stop being valid.
    pub expiries: Vec<crate::tls::expiry::Expiry>,
}

/// One `[[issuers]]` entry.
pub struct Issuer {
    pub name: String,
    pub policy: TokenPolicy,
    /// Shared with every entry of the same key source; survives reloads.
    pub store: Arc<KeyStore>,
    pub refresh: RefreshPolicy,
    /// Identifies this entry's rules and key source, so cached verifications made under other
    /// rules or another source (an older config) are never reused. Never reused itself
    /// (a counter, see `config::issuers`).
    pub generation: u64,
}

/// One `[[clients]]` entry: what must hold for every request of that verified client id
/// (SPEC §7.2), whatever its route.
#[derive(Debug, Default)]
pub struct ClientPolicy {
    /// Client address allowlist; empty = every address.
    pub allow: CidrSet,
    /// Accepted client certificates by SHA-256 of the DER.
    pub cert_sha256: Vec<[u8; 32]>,
    /// Accepted client certificates by RFC 4514 subject.
    pub cert_subjects: Vec<String>,
    /// Scopes the client must hold on every route (after implications).
    pub scopes: Vec<String>,
    /// The `scope` challenge for a missing client scope.
    pub scope_challenge: Option<HeaderValue>,
}

impl ClientPolicy {
    /// Whether the rules name client certificates at all.
    pub fn pins_certificates(&self) -> bool {
        !self.cert_sha256.is_empty() || !self.cert_subjects.is_empty()
    }
}

/// One `[[routes]]` entry.
pub struct Route {
    pub name: String,
    /// Host, prefix and methods as the route table got them (for `explain`).
    pub spec: RouteSpec,
    /// Index into `Snapshot::upstreams`.
    pub upstream: usize,
    pub public: bool,
    /// Indexes into `Snapshot::issuers`, in config order.
    pub issuers: Vec<usize>,
    /// Indexes into `Snapshot::api_keys`, in route order; empty: no API keys.
    pub api_keys: Vec<usize>,
    pub scopes: Vec<String>,
    pub any_scopes: Vec<String>,
    /// The `scope` attribute of the 403 challenge: scopes, then any_scopes.
    pub scope_challenge: HeaderValue,
    /// Route allowlist; empty = every address.
    pub allow: CidrSet,
    pub client_cert_required: bool,
    pub max_body_bytes: Option<u64>,
    /// Indexes into `Snapshot::rate_limits`, in the route's order.
    pub rate_limits: Vec<usize>,
    /// `timeout` / `idle_timeout`, merged over the upstream's.
    pub timeouts: crate::proxy::Timeouts,
    /// Denials answered the gRPC way.
    pub grpc: bool,
    pub metrics: RouteMetrics,
}

impl Snapshot {
    pub fn issuer_named(&self, name: &str) -> Option<&Issuer> {
        self.issuers.iter().find(|issuer| issuer.name == name)
    }
}
