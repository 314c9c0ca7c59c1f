//! The serde mirror of the TOML file (SPEC §2). Unknown keys are refused everywhere: a typo
//! must never silently weaken a rule. Values that `compile` checks further are `Spanned`, so
//! its errors can name the line. Defaults are documented on each field with their unit.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::value::{Dur, EnvString};

type S<T> = Spanned<T>;

/// The whole config file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[server]`: listeners, timeouts and limits.
    #[serde(default)]
    pub server: Server,
    /// `[admin]`: the admin listener and the readiness rule.
    #[serde(default)]
    pub admin: Admin,
    /// `[network]`: trusted proxies and the gateway-wide allowlist.
    #[serde(default)]
    pub network: Network,
    /// `[[issuers]]`: token issuers and their key sources.
    #[serde(default)]
    pub issuers: Vec<S<Issuer>>,
    /// `[[upstreams]]`: where allowed requests go.
    #[serde(default)]
    pub upstreams: Vec<S<Upstream>>,
    /// `[[routes]]`: host, path prefix and methods, with their rules and upstream.
    #[serde(default)]
    pub routes: Vec<S<Route>>,
    /// `[[clients]]`: rules for verified client ids (SPEC §7.2).
    #[serde(default)]
    pub clients: Vec<S<Client>>,
    /// API key sources (SPEC §7.1), each a file of hashed keys.
    #[serde(default)]
    pub api_keys: Vec<S<ApiKeySource>>,
    /// `[decision]`: the decision listener (SPEC §7.3).
    #[serde(default)]
    pub decision: Decision,
    /// `[[rate_limits]]` policies, attached to routes by name (SPEC §7.4).
    #[serde(default)]
    pub rate_limits: Vec<S<RateLimit>>,
    /// Shared rate-limit state in Redis. Absent: limits are per instance.
    pub rate_limit_store: Option<S<RateLimitStore>>,
}

/// `[decision]` (SPEC §7.3): the decision listener for ingresses that ask before they proxy.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// Decision listener address. Default: off (no listener).
    pub listen: Option<S<EnvString>>,
}

/// A `[[rate_limits]]` policy (SPEC §7.4).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Unique; routes list it in `rate_limits`; the headers and metrics carry it.
    pub name: S<EnvString>,
    /// `client_id`, `subject`, `api_key`, `client_address` or `route`, or a list of them.
    pub key: S<RateLimitKey>,
    /// `N/s`, `N/m` or `N/h`.
    pub rate: S<EnvString>,
    /// Requests allowed at once. Default: N of the rate.
    pub burst: Option<S<u64>>,
}

/// A policy key: one part, or a combination.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RateLimitKey {
    /// One key part.
    One(EnvString),
    /// A combination of key parts, in this order.
    Many(Vec<EnvString>),
}

/// `[rate_limit_store]`: where shared rate-limit state lives.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitStore {
    /// `redis://` or `rediss://` (TLS) URL; a password goes in the URL via `${VAR}`.
    pub redis: S<EnvString>,
    /// `exact` (default: one atomic Redis operation per request) or `approximate`.
    pub mode: Option<S<EnvString>>,
    /// Approximate mode's sync period. Default 100ms.
    pub sync_interval: Option<S<Dur>>,
    /// `local` (default), `allow` or `deny`.
    pub on_store_error: Option<S<EnvString>>,
    /// Connect and command timeout. Default 200ms.
    pub timeout: Option<S<Dur>>,
    /// PEM roots for a `rediss://` server. Default: the system roots.
    pub ca_file: Option<S<EnvString>>,
}

/// `[server]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    /// Plaintext listener address. Default `127.0.0.1:8080` unless `[server.tls]` is set.
    pub listen: Option<S<EnvString>>,
    /// Time allowed to read a request's headers (slow-loris guard). Default 10s.
    pub header_read_timeout: Option<S<Dur>>,
    /// Deadline for a whole request until response headers, upstream included. Default 60s.
    pub request_timeout: Option<S<Dur>>,
    /// Keep-alive idle time before a client connection is closed. Default 90s.
    pub idle_timeout: Option<S<Dur>>,
    /// Largest request head (request line plus headers), in bytes. Default 32768.
    pub max_header_bytes: Option<S<u64>>,
    /// Most header fields in a request. Default 100.
    pub max_headers: Option<S<u64>>,
    /// Longest request target (path and query), bytes. Default 8192.
    pub max_request_line_bytes: Option<S<u64>>,
    /// Most concurrent client connections over all listeners. Default 10000.
    pub max_connections: Option<S<u64>>,
    /// Most concurrent connections from one client address (the TCP peer). Default 1024.
    pub max_connections_per_client: Option<S<u64>>,
    /// Most concurrent HTTP/2 streams per connection. Default 100.
    pub http2_max_concurrent_streams: Option<S<u64>>,
    /// Most requests in flight to all upstreams together. Default 1024.
    pub max_upstream_requests: Option<S<u64>>,
    /// How long SIGTERM waits for in-flight requests. Default 30s.
    pub shutdown_timeout: Option<S<Dur>>,
    /// Most verified tokens kept in the token cache (entries). Default 10000.
    pub token_cache_entries: Option<S<u64>>,
    /// Longest a verified token stays cached, also when its `exp` is later. Default 5m.
    pub token_cache_ttl: Option<S<Dur>>,
    /// `[server.tls]`: the TLS listener. Absent: no TLS listener.
    pub tls: Option<S<Tls>>,
}

/// `[server.tls]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// TLS listener address.
    pub listen: S<EnvString>,
    /// PEM certificate chain, leaf first.
    pub cert_file: S<EnvString>,
    /// PEM private key of the leaf certificate.
    pub key_file: S<EnvString>,
    /// PEM roots that client certificates must chain to (never the system roots).
    pub client_ca_file: Option<S<EnvString>>,
    /// PEM certificate revocation lists checked for client certificates.
    pub client_crl_file: Option<S<EnvString>>,
    /// `off` (default), `optional` or `required`.
    pub client_cert: Option<S<EnvString>>,
    /// Time allowed for the TLS handshake. Default 10s.
    pub handshake_timeout: Option<S<Dur>>,
}

/// `[admin]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    /// Admin listener (`/metrics`, `/healthz`, `/readyz`). Default `127.0.0.1:9090`.
    pub listen: Option<S<EnvString>>,
    /// `/readyz` rule: `loaded_once` (default), `all_issuers` or `listeners`.
    pub readiness: Option<S<EnvString>>,
}

/// `[network]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// CIDRs whose X-Forwarded-For is believed. Default none.
    pub trusted_proxies: Option<S<Vec<EnvString>>>,
    /// Gateway-wide allowlist. Default empty = every address.
    pub allow: Option<S<Vec<EnvString>>>,
    /// A verified identity without a `[[clients]]` entry gets 403 `client_not_allowed`.
    /// Default false.
    #[serde(default)]
    pub require_client_entry: bool,
}

/// A `[[clients]]` entry: rules for one verified client id (SPEC §7.2).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Client {
    /// Matched against the verified client id (token or API key).
    pub client_id: S<EnvString>,
    /// CIDRs the client address must be in. Default: any address.
    pub allow: Option<S<Vec<EnvString>>>,
    /// Lowercase or uppercase hex SHA-256 of the DER of accepted client certificates.
    pub client_cert_sha256: Option<S<Vec<EnvString>>>,
    /// Accepted RFC 4514 subjects of client certificates.
    pub client_cert_subject: Option<S<Vec<EnvString>>>,
    /// Scopes this client must also hold on every route. Default none.
    #[serde(default)]
    pub scopes: Vec<EnvString>,
    /// `[[rate_limits]]` names applied to this client on every route, besides the route's.
    pub rate_limits: Option<S<Vec<EnvString>>>,
}

/// An `[[issuers]]` entry: one token issuer and its key source (exactly one of `jwks_uri`,
/// `discovery`, `jwks_file`, `hmac_secret`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Issuer {
    /// Unique; routes list it in `issuers`.
    pub name: S<EnvString>,
    /// Exact `iss` value.
    pub issuer: S<EnvString>,
    /// URL of the issuer's JWKS.
    pub jwks_uri: Option<S<EnvString>>,
    /// True: the JWKS URL is read from the issuer's OpenID discovery document.
    pub discovery: Option<S<bool>>,
    /// A local JWKS file, re-read at reload.
    pub jwks_file: Option<S<EnvString>>,
    /// An HMAC secret (HS256/384/512), usually `${VAR}` or `${file:PATH}`.
    pub hmac_secret: Option<S<EnvString>>,
    /// Extra PEM roots for fetching keys, added to the system roots.
    pub ca_file: Option<S<EnvString>>,
    /// Required; `[]` only together with `allowed_clients`.
    pub audiences: S<Vec<EnvString>>,
    /// Client ids accepted instead of (or besides) an audience.
    pub allowed_clients: Option<S<Vec<EnvString>>>,
    /// Default RS/PS/ES/EdDSA for key sets, HS256 for hmac.
    pub algorithms: Option<S<Vec<EnvString>>>,
    /// Default `["scope", "scp"]`.
    pub scope_claims: Option<S<Vec<EnvString>>>,
    /// Default `["client_id", "azp", "appid", "cid"]`.
    pub client_id_claims: Option<S<Vec<EnvString>>>,
    /// Clock skew allowed for exp/nbf/iat. Default 30s.
    pub leeway: Option<S<Dur>>,
    /// Background refresh period. Default 10m.
    pub refresh_interval: Option<S<Dur>>,
    /// Fastest refresh, also for unknown kids. Default 30s.
    pub min_refresh: Option<S<Dur>>,
    /// Longest use of the last good key set while refreshes fail. Default 24h.
    pub max_stale: Option<S<Dur>>,
    /// Whole key fetch (connect, headers, body). Default 5s.
    pub fetch_timeout: Option<S<Dur>>,
    /// Accepted `typ` headers (`at+jwt` matches `application/at+jwt`). Default: any.
    #[serde(default)]
    pub token_types: Vec<EnvString>,
    /// claim -> allowed value(s); a token must hold one of them. Default none.
    pub required_claims: Option<S<BTreeMap<String, ClaimValue>>>,
    /// upstream header -> claim forwarded in it. Default none.
    pub claim_headers: Option<S<BTreeMap<String, EnvString>>>,
    /// RFC 8705: refuse tokens without `cnf.x5t#S256`. Default false.
    #[serde(default)]
    pub require_bound_tokens: bool,
    /// Longest `exp - iat` accepted (no leeway); a token without `iat` is refused while set.
    /// Default: no limit.
    pub max_token_lifetime: Option<S<Dur>>,
    /// scope -> scopes it implies for route checks (`"*"`: every scope). Default none.
    pub implied_scopes: Option<S<BTreeMap<String, Vec<EnvString>>>>,
}

/// A required claim value: one string, or an array of allowed strings.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ClaimValue {
    /// One allowed string.
    One(EnvString),
    /// Any of these strings.
    Many(Vec<EnvString>),
}

/// An `[[upstreams]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    /// Unique; routes name it in `upstream`.
    pub name: S<EnvString>,
    /// `http` or `https`; a path prefixes every forwarded path. Exactly one of `url` and
    /// `servers`.
    pub url: Option<S<EnvString>>,
    /// Several servers of the same service, balanced (power of two choices).
    pub servers: Option<S<Vec<S<EnvString>>>>,
    /// Connections to a server named by a host name are not reused after this long, so the
    /// name is resolved again. Default 30s.
    pub dns_refresh: Option<S<Dur>>,
    /// `http1` (default), `h2c`, `h2` or `auto`.
    pub protocol: Option<S<EnvString>>,
    /// Longest silence between two response body chunks. Default: no limit.
    pub idle_timeout: Option<S<Dur>>,
    /// Consecutive failures (connect errors, 5xx) that eject a server. Default 5.
    pub max_failures: Option<S<u64>>,
    /// First ejection; doubles at each ejection without a success between. Default 10s.
    pub ejection_time: Option<S<Dur>>,
    /// Longest ejection. Default 5m.
    pub max_ejection_time: Option<S<Dur>>,
    /// Most retries of one request. Default 1.
    pub retries: Option<S<u64>>,
    /// Retry conditions for idempotent methods: `reset`, `5xx`, `gateway_error`, a 5xx code.
    /// Default none (only attempts that never reached the upstream are retried).
    pub retry_on: Option<S<Vec<EnvString>>>,
    /// Retries in flight as a percentage of requests in flight. Default 20.
    pub retry_budget_percent: Option<S<u64>>,
    /// Retries in flight always allowed. Default 3.
    pub retry_min_concurrency: Option<S<u64>>,
    /// Active health checks of every server. Default: none (passive health only).
    pub health_check: Option<S<HealthCheck>>,
    /// PEM client certificate chain presented to https upstreams (mTLS).
    pub client_cert_file: Option<S<EnvString>>,
    /// PEM private key of `client_cert_file`.
    pub client_key_file: Option<S<EnvString>>,
    /// Default 2s.
    pub connect_timeout: Option<S<Dur>>,
    /// Until response headers. Default 30s.
    pub timeout: Option<S<Dur>>,
    /// Default false: Host = the upstream authority.
    #[serde(default)]
    pub preserve_host: bool,
    /// Idle keep-alive connections kept per upstream host. Default 64.
    pub max_idle_connections: Option<S<u64>>,
    /// Largest upstream response head (status line plus headers), bytes. Default 65536.
    pub max_response_header_bytes: Option<S<u64>>,
    /// Extra PEM roots for an https upstream, added to the system roots.
    pub ca_file: Option<S<EnvString>>,
    /// Most requests in flight to this upstream. Default: only `max_upstream_requests`.
    pub max_concurrent_requests: Option<S<u64>>,
}

/// `health_check = { path, interval, timeout, healthy, unhealthy }` of an upstream.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// Path (and query) probed with GET on each server, after the server URL's path.
    pub path: S<EnvString>,
    /// Default 10s.
    pub interval: Option<S<Dur>>,
    /// Default 2s.
    pub timeout: Option<S<Dur>>,
    /// Consecutive successes that bring a server back. Default 2.
    pub healthy: Option<S<u64>>,
    /// Consecutive failures that take a server out. Default 3.
    pub unhealthy: Option<S<u64>>,
}

/// A `[[routes]]` entry (SPEC §3 step 2).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Unique; the metrics and the access log carry it.
    pub name: S<EnvString>,
    /// Whole-segment path prefix the route matches.
    pub path_prefix: S<EnvString>,
    /// Methods the route takes. Default: every method.
    pub methods: Option<S<Vec<EnvString>>>,
    /// Host the route matches (exact, or `*.` wildcard). Default: any host.
    pub host: Option<S<EnvString>>,
    /// The `[[upstreams]]` name requests go to.
    pub upstream: S<EnvString>,
    /// True: no credential is needed. Default false.
    #[serde(default)]
    pub public: bool,
    /// `[[issuers]]` names whose tokens this route takes.
    pub issuers: Option<S<Vec<EnvString>>>,
    /// Scopes a token must all hold. Default none.
    #[serde(default)]
    pub scopes: Vec<EnvString>,
    /// Scopes of which a token must hold at least one. Default none.
    #[serde(default)]
    pub any_scopes: Vec<EnvString>,
    /// The route's allowlist, after the gateway's. Default empty = every address.
    pub allow: Option<S<Vec<EnvString>>>,
    /// `any` (default) or `required`.
    pub client_cert: Option<S<EnvString>>,
    /// Largest request body in bytes (413 above). Default unlimited.
    pub max_body_bytes: Option<S<u64>>,
    /// `[[rate_limits]]` names; every listed limit applies. Default none.
    pub rate_limits: Option<S<Vec<EnvString>>>,
    /// `[[api_keys]]` sources whose keys this route takes. Without `issuers` beside it, the
    /// route takes API keys only. Default none.
    pub api_keys: Option<S<Vec<EnvString>>>,
    /// Until response headers; overrides the upstream's `timeout`.
    pub timeout: Option<S<Dur>>,
    /// Longest silence in a streamed response; overrides the upstream's `idle_timeout`.
    pub idle_timeout: Option<S<Dur>>,
    /// Denials answered the gRPC way (HTTP 200, `grpc-status`). Default false; requests with
    /// `content-type: application/grpc*` get them on any route.
    #[serde(default)]
    pub grpc: bool,
}

/// One `[[api_keys]]` source (SPEC §7.1).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeySource {
    /// Unique; routes name it in `api_keys`; `X-Auth-Issuer: apikey:<name>`.
    pub name: S<EnvString>,
    /// The key file, relative to the config file's directory; re-read at every reload.
    pub file: S<EnvString>,
    /// `Authorization` (default: `Bearer <key>`) or another header whose whole value is the key.
    pub header: Option<S<EnvString>>,
    /// Upstream header -> claim of a key's `claims`, encoded as for tokens.
    pub claim_headers: Option<S<BTreeMap<String, EnvString>>>,
}

/// A key file: `[[keys]]` entries only. Plain strings: a key file is data, no `${VAR}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    /// The keys of the file.
    #[serde(default)]
    pub keys: Vec<S<KeyEntry>>,
}

/// One API key, stored hashed (SPEC §7.1).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    /// Unique in the file; `[A-Za-z0-9-]`, at most 64 characters; logged, never the key.
    pub id: S<String>,
    /// `sha256:<64 lowercase hex>` of the exact key string, or an argon2id PHC string.
    pub hash: S<String>,
    /// `X-Auth-Subject` and `X-Auth-Client-Id`.
    pub client_id: S<String>,
    /// Granted scopes. Default none.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Claims for the source's `claim_headers`. Default none.
    pub claims: Option<S<BTreeMap<String, toml::Value>>>,
    /// Shorthand for `claims.org`.
    pub org: Option<S<String>>,
    /// RFC 3339 time after which the key is refused. Default never.
    pub expires: Option<S<String>>,
    /// True: the key is refused. Default false.
    #[serde(default)]
    pub disabled: bool,
}
