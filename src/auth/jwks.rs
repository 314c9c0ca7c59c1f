//! Key stores: the current [`KeySet`] of one key source (a JWKS URL, OIDC discovery, a JWKS
//! file or an HMAC secret), how it is fetched, refreshed and aged (SPEC §2, §3 step 6).
//!
//! One [`KeyStore`] exists per key source. Issuer entries with the same source share it, and a
//! config reload reuses it (the registry that does so lives with the config compiler), so a
//! reload neither drops keys nor refetches them. The request path only calls [`KeyStore::keys`]
//! (lock-free) and, for a `kid` it does not know, [`KeyStore::refresh_for_unknown_kid`].
//! Parsing a JWKS document is `keys.rs`; this module owns the network and the timing:
//!
//! ```text
//!  start() ──> task (holds Weak<KeyStore>) ──> fetch ──ok──> ArcSwap<Loaded> <── keys()
//!               ^  backoff 1 s .. min_refresh     │                ^
//!               └── refresh_interval / max-age ───┘err: keep old,  │
//!                                                    mark stale    └── refresh_for_unknown_kid()
//! ```
//!
//! Security choices: key URLs are https unless the host is loopback; redirects are never
//! followed (a redirect could move key lookup to a host the operator did not name); bodies are
//! capped at 1 MiB and every fetch is bounded by `fetch_timeout`, so a hostile or broken
//! identity provider cannot exhaust memory or stall refreshes. Key material is never logged.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use http::{header, HeaderMap, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::ClientConfig;
use tokio::sync::{watch, Mutex, Notify, OnceCell};
use tokio::time::Instant;

use super::keys::{JwksError, KeySet, ParsedKeySet, Secret};
use crate::logging::error_chain;

/// Largest key set or discovery document accepted (SPEC §3 step 6).
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;
/// Upper bound for a `Cache-Control: max-age` refresh delay (SPEC §2).
pub const MAX_AGE_CEILING: Duration = Duration::from_secs(24 * 60 * 60);
/// First retry delay before the first good fetch; doubles up to `min_refresh` (SPEC §2).
const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
const USER_AGENT: &str = concat!("authgate/", env!("CARGO_PKG_VERSION"));
/// Floor for any background delay, so a zero duration cannot turn into a busy loop that
/// hammers the identity provider.
const DELAY_FLOOR: Duration = Duration::from_millis(10);
/// Unknown-kid refreshes allowed at once; the budget refills by one per `min_refresh`. A
/// burst, so that one forged `kid` cannot hold back a key rotation for a whole `min_refresh`
/// (the next genuine new `kid` still gets its refresh), while a flood of forged kids still
/// costs the provider at most one fetch per `min_refresh` in the long run.
pub const UNKNOWN_KID_BURST: u32 = 3;

/// Where an issuer's keys come from (exactly one per issuer, by construction).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    JwksUri {
        url: http::Uri,
        ca_file: Option<PathBuf>,
    },
    /// `{issuer}/.well-known/openid-configuration`, then its `jwks_uri`.
    Discovery {
        issuer: String,
        ca_file: Option<PathBuf>,
    },
    File(PathBuf),
    Hmac(Secret),
}

impl KeySource {
    /// Fetched over the network (and therefore refreshed and aged).
    pub fn is_remote(&self) -> bool {
        match self {
            KeySource::JwksUri { .. } | KeySource::Discovery { .. } => true,
            KeySource::File(_) | KeySource::Hmac(_) => false,
        }
    }
}

/// Names the source for logs and errors; never prints the HMAC secret.
impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::JwksUri { url, .. } => write!(f, "jwks_uri {url}"),
            KeySource::Discovery { issuer, .. } => write!(f, "discovery for {issuer}"),
            KeySource::File(path) => write!(f, "jwks_file {}", path.display()),
            KeySource::Hmac(_) => f.write_str("hmac_secret"),
        }
    }
}

/// Refresh timing for a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshPolicy {
    pub refresh_interval: Duration,
    pub min_refresh: Duration,
    pub max_stale: Duration,
    /// Whole fetch (connect, headers, body).
    pub fetch_timeout: Duration,
}

/// What metrics and /readyz read from a store.
#[derive(Debug, Clone, Default)]
pub struct KeyStoreStats {
    pub keys: usize,
    pub last_success: Option<SystemTime>,
    pub stale: bool,
    pub refresh_success: u64,
    pub refresh_error: u64,
    pub unknown_kid_refreshes: u64,
}

/// Why fetching or loading a key set failed. The last good set stays in use.
///
/// `Display` describes this level only; [`error_chain`] appends the causes.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("invalid key url {0:?}")]
    InvalidUrl(String),
    #[error("key url {0} is not https and its host is not a loopback address")]
    InsecureUrl(String),
    #[error("ca_file refused")]
    CaFile(#[source] crate::tls::PemError),
    #[error("cannot build the tls configuration for key fetches")]
    Tls(#[source] rustls::Error),
    /// Connect, TLS handshake or protocol failure.
    #[error("request to {0} failed")]
    Request(Uri, #[source] Box<hyper_util::client::legacy::Error>),
    /// Any status but 200, redirects included: they are not followed.
    #[error("{0} answered {1}, expected 200 OK")]
    Status(Uri, StatusCode),
    #[error("{0} did not answer completely within {1:?}")]
    Timeout(Uri, Duration),
    #[error("{0} sent a body larger than 1 MiB")]
    TooLarge(Uri),
    #[error("cannot read the body from {0}")]
    Body(Uri, #[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("discovery document from {0} is not valid")]
    DiscoveryJson(Uri, #[source] serde_json::Error),
    #[error("discovery document names issuer {found:?}, expected {expected:?}")]
    IssuerMismatch { expected: String, found: String },
    /// Malformed or oversized JWKS (the `String` names where it came from).
    #[error("key set from {0} refused")]
    KeySet(String, #[source] JwksError),
    #[error("key set from {0} has no usable key")]
    NoUsableKeys(String),
    #[error("cannot read jwks_file {0}")]
    File(PathBuf, #[source] std::io::Error),
}

/// The delay until the next background refresh after a good fetch: the response's max-age
/// clamped into [min_refresh, 24 h] when present, else `refresh_interval` (SPEC §2).
pub fn refresh_delay(max_age: Option<Duration>, policy: &RefreshPolicy) -> Duration {
    let delay = match max_age {
        // Not `Duration::clamp`: it panics when min_refresh > 24 h.
        Some(age) => age.min(MAX_AGE_CEILING).max(policy.min_refresh),
        None => policy.refresh_interval,
    };
    delay.max(DELAY_FLOOR)
}

/// `max-age` from `Cache-Control` headers; `None` when absent or malformed.
pub fn cache_max_age(headers: &HeaderMap) -> Option<Duration> {
    let directives = headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','));
    for directive in directives {
        let Some((name, value)) = directive.trim().split_once('=') else {
            continue;
        };
        if name.trim().eq_ignore_ascii_case("max-age") {
            let seconds = value.trim().trim_matches('"').parse::<u64>();
            return seconds.ok().map(Duration::from_secs);
        }
    }
    None
}

/// Key URLs must be https, or http to a loopback host (SPEC §2). The config compiler checks
/// this too; it is checked again here because discovery documents name URLs at run time.
pub fn check_key_url(url: &Uri) -> Result<(), FetchError> {
    let host = url
        .host()
        .ok_or_else(|| FetchError::InvalidUrl(url.to_string()))?;
    match url.scheme_str() {
        Some("https") => Ok(()),
        Some("http") if is_loopback_host(host) => Ok(()),
        _ => Err(FetchError::InsecureUrl(url.to_string())),
    }
}

fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare.eq_ignore_ascii_case("localhost") {
        return true;
    }
    bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

type HttpClient = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// A key set that was loaded, with the times it is judged by.
#[derive(Debug)]
struct Loaded {
    keys: Arc<KeySet>,
    at: SystemTime,
    /// `None` for local sources (never stale). For remote ones: the scheduled next refresh
    /// plus `max_stale`, so "kept for at most max_stale while refreshes fail" is measured from
    /// when the set should have been replaced, whatever the refresh interval.
    usable_until: Option<Instant>,
}

#[derive(Debug, Default)]
struct Counters {
    refresh_success: AtomicU64,
    refresh_error: AtomicU64,
    unknown_kid_refreshes: AtomicU64,
    /// Completed fetch attempts (good or bad); lets unknown-kid callers that queued behind a
    /// fetch see that one happened while they waited.
    attempts: AtomicU64,
}

/// Hands out store ids: only ever incremented, so an id is never reused.
static STORE_IDS: AtomicU64 = AtomicU64::new(1);

/// The current key set of one key source.
#[derive(Debug)]
pub struct KeyStore {
    /// Unique for the life of the process (never an address, which is reused once freed).
    id: u64,
    source: KeySource,
    policy: RefreshPolicy,
    current: ArcSwapOption<Loaded>,
    /// True while the latest refresh failed and an older set is served.
    stale: AtomicBool,
    started: AtomicBool,
    counters: Counters,
    /// Built on first use (no I/O in `new`), retried on failure (a ca_file may appear later).
    client: OnceCell<HttpClient>,
    /// Held around an unknown-kid refresh; holds what is left of the refresh budget.
    unknown_kid: Mutex<RefreshBudget>,
    /// Woken whenever a key set is installed (a reload waits on it for a new store).
    loaded: Notify,
    /// Dropped with the store: the refresh task sees the channel close and ends at once.
    shutdown: watch::Sender<()>,
}

impl KeyStore {
    /// A store with no keys yet; does no I/O.
    pub fn new(source: KeySource, policy: RefreshPolicy) -> Arc<KeyStore> {
        Arc::new(KeyStore {
            id: STORE_IDS.fetch_add(1, Ordering::Relaxed),
            source,
            policy,
            current: ArcSwapOption::empty(),
            stale: AtomicBool::new(false),
            started: AtomicBool::new(false),
            counters: Counters::default(),
            client: OnceCell::new(),
            unknown_kid: Mutex::new(RefreshBudget::full(policy.min_refresh)),
            loaded: Notify::new(),
            shutdown: watch::channel(()).0,
        })
    }

    /// Identifies this store for the life of the process.
    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn source(&self) -> &KeySource {
        &self.source
    }

    pub fn policy(&self) -> &RefreshPolicy {
        &self.policy
    }

    /// Starts the background fetch/refresh task (remote sources); loads files and secrets now.
    ///
    /// Idempotent for remote sources and secrets. A file is re-read on every call, so the
    /// SIGHUP that reuses this store also picks up a rotated `jwks_file` (a bad file keeps the
    /// old set). Remote sources need a tokio runtime; without one this logs and does nothing.
    pub fn start(self: &Arc<Self>) {
        match &self.source {
            KeySource::File(path) => {
                let result = std::fs::read(path)
                    .map_err(|source| FetchError::File(path.clone(), source))
                    .and_then(|bytes| self.parse(&bytes, &path.display().to_string()));
                self.record(result.map(|keys| (keys, None)));
            }
            // Installed again on every call (it is cheap), so the age of what was loaded is
            // reset by a reload, as for files.
            KeySource::Hmac(secret) => self.install(KeySet::from_hmac(secret), None),
            KeySource::JwksUri { .. } | KeySource::Discovery { .. } => {
                let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                    tracing::error!(source = %self.source, "key refresh not started: no runtime");
                    return;
                };
                if self.started.swap(true, Ordering::AcqRel) {
                    return;
                }
                let shutdown = self.shutdown.subscribe();
                runtime.spawn(refresh_task(Arc::downgrade(self), shutdown));
            }
        }
    }

    /// Fetches or loads once, now (for `explain`).
    pub async fn load_once(&self) -> Result<(), String> {
        let result = self.load().await;
        let failure = result
            .as_ref()
            .err()
            .map(|error| format!("{}: {}", self.source, error_chain(error)));
        self.record(result);
        failure.map_or(Ok(()), Err)
    }

    /// The usable key set: `None` before the first good fetch or past `max_stale`.
    pub fn keys(&self) -> Option<Arc<KeySet>> {
        let guard = self.current.load();
        let loaded = guard.as_ref()?;
        match loaded.usable_until {
            Some(until) if Instant::now() > until => None,
            _ => Some(Arc::clone(&loaded.keys)),
        }
    }

    /// For /readyz: a usable key set is present.
    pub fn has_keys(&self) -> bool {
        self.keys().is_some()
    }

    /// For /readyz: a key set was loaded at some point (also when it is past `max_stale`
    /// now, or was carried over from the store this one replaced).
    pub fn loaded_once(&self) -> bool {
        self.current.load().is_some()
    }

    /// An unknown `kid` was seen: refresh (coalesced; a burst of [`UNKNOWN_KID_BURST`], then one
    /// per `min_refresh`) and return the set to retry with.
    pub async fn refresh_for_unknown_kid(&self) -> Option<Arc<KeySet>> {
        if !self.source.is_remote() {
            return self.keys();
        }
        let attempts_before = self.counters.attempts.load(Ordering::Acquire);
        let mut budget = self.unknown_kid.lock().await;
        // Someone fetched while this caller queued on the lock: that fetch is the answer.
        if self.counters.attempts.load(Ordering::Acquire) != attempts_before {
            return self.keys();
        }
        // SPEC §2: min_refresh bounds how often unknown kids may make us call the provider, so
        // a flood of tokens with invented kids cannot become a flood of fetches.
        if !budget.take(Instant::now()) {
            return self.keys();
        }
        self.counters
            .unknown_kid_refreshes
            .fetch_add(1, Ordering::Relaxed);
        let result = self.load().await;
        self.record(result);
        self.keys()
    }

    /// Starts this store with the key set `running` serves, when both read the same source
    /// (a reload that changed only the refresh timing). The carried set stays usable for this
    /// store's `max_stale` past the refresh that `running` had scheduled.
    pub fn carry_keys_from(&self, running: &KeyStore) {
        let Some(loaded) = running.current.load_full() else {
            return;
        };
        let usable_until = loaded.usable_until.map(|until| {
            let next_refresh = until.checked_sub(running.policy.max_stale).unwrap_or(until);
            next_refresh
                .checked_add(self.policy.max_stale)
                .unwrap_or(until)
        });
        self.current.store(Some(Arc::new(Loaded {
            keys: Arc::clone(&loaded.keys),
            at: loaded.at,
            usable_until,
        })));
        self.stale
            .store(running.stale.load(Ordering::Acquire), Ordering::Release);
    }

    /// Waits until a key set is loaded, at most `limit`; whether one is.
    pub async fn wait_loaded(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            // Created before the check, so an install between the check and the wait still
            // wakes this caller.
            let installed = self.loaded.notified();
            if self.current.load().is_some() {
                return true;
            }
            if tokio::time::timeout_at(deadline, installed).await.is_err() {
                return self.current.load().is_some();
            }
        }
    }

    pub fn stats(&self) -> KeyStoreStats {
        let guard = self.current.load();
        KeyStoreStats {
            keys: self.keys().map_or(0, |keys| keys.len()),
            last_success: guard.as_ref().map(|loaded| loaded.at),
            stale: self.stale.load(Ordering::Acquire),
            refresh_success: self.counters.refresh_success.load(Ordering::Relaxed),
            refresh_error: self.counters.refresh_error.load(Ordering::Relaxed),
            unknown_kid_refreshes: self.counters.unknown_kid_refreshes.load(Ordering::Relaxed),
        }
    }

    /// One load from the source, without touching the current set. For remote sources also
    /// returns the response's max-age.
    async fn load(&self) -> Result<(KeySet, Option<Duration>), FetchError> {
        match &self.source {
            KeySource::JwksUri { url, .. } => self.fetch_jwks(url).await,
            KeySource::Discovery { issuer, .. } => {
                // Discovery is redone on every refresh: it is one small extra request per
                // refresh interval, and a provider that moves its jwks_uri is followed without
                // a reload.
                let jwks_uri = self.discover(issuer).await?;
                self.fetch_jwks(&jwks_uri).await
            }
            KeySource::File(path) => {
                let bytes = tokio::fs::read(path)
                    .await
                    .map_err(|source| FetchError::File(path.clone(), source))?;
                Ok((self.parse(&bytes, &path.display().to_string())?, None))
            }
            KeySource::Hmac(secret) => Ok((KeySet::from_hmac(secret), None)),
        }
    }

    /// Applies the outcome of a load and returns the delay until the next scheduled refresh.
    fn record(&self, result: Result<(KeySet, Option<Duration>), FetchError>) -> Duration {
        self.counters.attempts.fetch_add(1, Ordering::AcqRel);
        match result {
            Ok((keys, max_age)) => {
                let delay = refresh_delay(max_age, &self.policy);
                let count = keys.len();
                self.install(keys, self.source.is_remote().then_some(delay));
                tracing::info!(source = %self.source, keys = count, "key set loaded");
                delay
            }
            Err(error) => {
                self.counters.refresh_error.fetch_add(1, Ordering::Relaxed);
                let serving = self.current.load().is_some();
                self.stale.store(serving, Ordering::Release);
                tracing::warn!(
                    source = %self.source,
                    error = %error_chain(&error),
                    serving_previous_set = serving,
                    "key set refresh failed"
                );
                // SPEC §2: "min_refresh: the fastest refresh allowed"; retrying a failed
                // refresh sooner than a good one, but never faster than that.
                self.policy
                    .min_refresh
                    .min(self.policy.refresh_interval)
                    .max(DELAY_FLOOR)
            }
        }
    }

    /// Swaps in a new set; `next_refresh` is `None` for sources that never go stale.
    fn install(&self, keys: KeySet, next_refresh: Option<Duration>) {
        let usable_until = next_refresh.map(|delay| {
            let now = Instant::now();
            // Saturate instead of overflowing (a panic) on absurd configured durations.
            delay
                .checked_add(self.policy.max_stale)
                .and_then(|window| now.checked_add(window))
                .unwrap_or(now + MAX_AGE_CEILING * 365)
        });
        self.current.store(Some(Arc::new(Loaded {
            keys: Arc::new(keys),
            at: SystemTime::now(),
            usable_until,
        })));
        self.stale.store(false, Ordering::Release);
        self.counters
            .refresh_success
            .fetch_add(1, Ordering::Relaxed);
        self.loaded.notify_waiters();
    }

    /// Parses a JWKS document; a set without a usable key is an error (SPEC §2).
    fn parse(&self, bytes: &[u8], origin: &str) -> Result<KeySet, FetchError> {
        let ParsedKeySet { keys, skipped } = KeySet::from_jwks(bytes)
            .map_err(|source| FetchError::KeySet(origin.to_owned(), source))?;
        for reason in &skipped {
            // `skipped` describes the key (kid, kty, why), never its material.
            tracing::warn!(source = %self.source, origin, reason = %reason, "key skipped");
        }
        if keys.is_empty() {
            return Err(FetchError::NoUsableKeys(origin.to_owned()));
        }
        Ok(keys)
    }

    async fn fetch_jwks(&self, url: &Uri) -> Result<(KeySet, Option<Duration>), FetchError> {
        let (headers, body) = self.get(url).await?;
        let keys = self.parse(&body, &url.to_string())?;
        Ok((keys, cache_max_age(&headers)))
    }

    /// Reads the discovery document and returns its `jwks_uri` (checked by `get` like any key
    /// URL, so a document cannot send us to plain http on another host).
    async fn discover(&self, issuer: &str) -> Result<Uri, FetchError> {
        #[derive(serde::Deserialize)]
        struct Discovery {
            issuer: String,
            jwks_uri: String,
        }
        let text = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let url: Uri = text.parse().map_err(|_| FetchError::InvalidUrl(text))?;
        let (_, body) = self.get(&url).await?;
        let document: Discovery = serde_json::from_slice(&body)
            .map_err(|source| FetchError::DiscoveryJson(url.clone(), source))?;
        // OIDC Discovery §4.3: a document for another issuer must not be used; it would let
        // that issuer's keys verify tokens claiming ours.
        if document.issuer != issuer {
            return Err(FetchError::IssuerMismatch {
                expected: issuer.to_owned(),
                found: document.issuer,
            });
        }
        let jwks_uri: Uri = document
            .jwks_uri
            .parse()
            .map_err(|_| FetchError::InvalidUrl(document.jwks_uri.clone()))?;
        Ok(jwks_uri)
    }

    /// One GET: checked URL, 200 only, body capped, all within `fetch_timeout` (the timeout
    /// also covers the body, so a slow-drip response cannot hold a refresh open).
    async fn get(&self, url: &Uri) -> Result<(HeaderMap, Bytes), FetchError> {
        check_key_url(url)?;
        let client = self
            .client
            .get_or_try_init(|| async { self.build_client() })
            .await?;
        let timeout = self.policy.fetch_timeout;
        let exchange = async {
            let request = Request::get(url.clone())
                .header(header::ACCEPT, "application/json")
                .header(header::USER_AGENT, USER_AGENT)
                .body(Empty::new())
                .map_err(|_| FetchError::InvalidUrl(url.to_string()))?;
            let response = client
                .request(request)
                .await
                .map_err(|source| FetchError::Request(url.clone(), Box::new(source)))?;
            if response.status() != StatusCode::OK {
                return Err(FetchError::Status(url.clone(), response.status()));
            }
            let (parts, body) = response.into_parts();
            let collected = Limited::new(body, MAX_DOCUMENT_BYTES)
                .collect()
                .await
                .map_err(
                    |source| match source.downcast::<http_body_util::LengthLimitError>() {
                        Ok(_) => FetchError::TooLarge(url.clone()),
                        Err(source) => FetchError::Body(url.clone(), source),
                    },
                )?;
            Ok((parts.headers, collected.to_bytes()))
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| FetchError::Timeout(url.clone(), timeout))?
    }

    fn build_client(&self) -> Result<HttpClient, FetchError> {
        let ca_file = match &self.source {
            KeySource::JwksUri { ca_file, .. } | KeySource::Discovery { ca_file, .. } => {
                ca_file.as_ref()
            }
            KeySource::File(_) | KeySource::Hmac(_) => None,
        };
        // One meaning of ca_file for every TLS client: extra roots (tls::client::roots).
        let roots =
            crate::tls::client::roots(ca_file.map(PathBuf::as_path)).map_err(FetchError::CaFile)?;
        let tls = tls_builder()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        // https_or_http: plain http is still refused by `check_key_url` unless loopback.
        // HTTP/1.1 only: key documents are small and rare.
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_max_idle_per_host(1)
            .build(connector))
    }
}

fn tls_builder() -> Result<rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier>, FetchError> {
    // The aws-lc-rs provider explicitly, not the process default, which may be unset.
    ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(FetchError::Tls)
}

/// The unknown-kid refresh budget: a token bucket of [`UNKNOWN_KID_BURST`] refreshes that
/// refills by one per `min_refresh`.
#[derive(Debug)]
struct RefreshBudget {
    tokens: u32,
    /// When the next token is added (while below the burst).
    next_refill: Instant,
    every: Duration,
}

impl RefreshBudget {
    fn full(every: Duration) -> RefreshBudget {
        RefreshBudget {
            tokens: UNKNOWN_KID_BURST,
            next_refill: Instant::now(),
            every: every.max(DELAY_FLOOR),
        }
    }

    /// Takes one refresh at `now`, if the budget has one.
    fn take(&mut self, now: Instant) -> bool {
        while self.tokens < UNKNOWN_KID_BURST && now >= self.next_refill {
            self.tokens += 1;
            self.next_refill += self.every;
        }
        if self.tokens == 0 {
            return false;
        }
        if self.tokens == UNKNOWN_KID_BURST {
            // A full bucket starts refilling from the first refresh taken out of it.
            self.next_refill = now + self.every;
        }
        self.tokens -= 1;
        true
    }
}

/// Fetches at start, backs off until the first good fetch, then refreshes on schedule. Holds
/// only a `Weak` between fetches and ends when the store is dropped (a reload that no longer
/// names this source).
async fn refresh_task(store: Weak<KeyStore>, mut shutdown: watch::Receiver<()>) {
    // SPEC §2: from 1 s up to min_refresh. A min_refresh under 1 s (tests, sidecars) also
    // lowers the first step, so the cap is never below the start.
    let (first_backoff, max_backoff) = match store.upgrade() {
        Some(strong) => {
            let cap = strong.policy.min_refresh.max(DELAY_FLOOR);
            (INITIAL_BACKOFF.min(cap), cap)
        }
        None => return,
    };
    let mut backoff = first_backoff;
    loop {
        let Some(strong) = store.upgrade() else {
            return;
        };
        let result = strong.load().await;
        let scheduled = strong.record(result);
        // Backoff only until the first good fetch (SPEC §2); after that, the schedule.
        let delay = if strong.current.load().is_some() {
            backoff = first_backoff;
            scheduled
        } else {
            let delay = backoff;
            backoff = backoff.saturating_mul(2).min(max_backoff);
            delay
        };
        drop(strong);
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            // Err: the sender (the store) is gone.
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
#[path = "jwks_tests.rs"]
mod tests;
