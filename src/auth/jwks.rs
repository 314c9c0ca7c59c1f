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
//!
//! Layout: this file holds the store, its public face and the types callers see; `fetch.rs`
//! loads a key set from the source (HTTP GET, discovery, file), `refresh.rs` decides when:
//! installing a result, the background task and its backoff, the unknown-kid budget.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use http::{StatusCode, Uri};
use http_body_util::Empty;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use tokio::sync::{watch, Mutex, Notify, OnceCell};
use tokio::time::Instant;

use super::keys::{JwksError, KeySet, Secret};
use crate::logging::error_chain;

mod fetch;
mod refresh;

pub use self::fetch::{cache_max_age, check_key_url};
pub use self::refresh::refresh_delay;
use self::refresh::{refresh_task, RefreshBudget};

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
    /// `jwks_uri`: a JWKS document fetched from this URL.
    JwksUri {
        /// The document's URL (https, or http to a loopback host).
        url: http::Uri,
        /// Extra trust roots for the fetch (`ca_file`), added to the system's.
        ca_file: Option<PathBuf>,
    },
    /// `{issuer}/.well-known/openid-configuration`, then its `jwks_uri`.
    Discovery {
        /// The issuer, whose discovery document must name it exactly.
        issuer: String,
        /// Extra trust roots for both fetches (`ca_file`), added to the system's.
        ca_file: Option<PathBuf>,
    },
    /// `jwks_file`: a JWKS document on disk, re-read on every reload.
    File(PathBuf),
    /// `hmac_secret`: one symmetric key from the configuration.
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
    /// The background refresh period when the response has no usable `max-age`.
    pub refresh_interval: Duration,
    /// The fastest refresh: the floor for `max-age`, the backoff ceiling, and the refill
    /// period of the unknown-kid budget.
    pub min_refresh: Duration,
    /// How long past its scheduled refresh the last good set is still used while refreshes
    /// fail.
    pub max_stale: Duration,
    /// Whole fetch (connect, headers, body).
    pub fetch_timeout: Duration,
}

/// What metrics and /readyz read from a store.
#[derive(Debug, Clone, Default)]
pub struct KeyStoreStats {
    /// Keys in the usable set (0 when there is none).
    pub keys: usize,
    /// When the current set was loaded.
    pub last_success: Option<SystemTime>,
    /// The latest refresh failed and an older set is served.
    pub stale: bool,
    /// Loads that installed a set.
    pub refresh_success: u64,
    /// Loads that failed.
    pub refresh_error: u64,
    /// Refreshes triggered by an unknown `kid` (within the budget).
    pub unknown_kid_refreshes: u64,
}

/// Why fetching or loading a key set failed. The last good set stays in use.
///
/// `Display` describes this level only; [`error_chain`] appends the causes.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The URL has no host.
    #[error("invalid key url {0:?}")]
    InvalidUrl(String),
    /// Plain http to a host that is not loopback (SPEC §2).
    #[error("key url {0} is not https and its host is not a loopback address")]
    InsecureUrl(String),
    /// The `ca_file` cannot be read or holds no usable certificate.
    #[error("ca_file refused")]
    CaFile(#[source] crate::tls::PemError),
    /// rustls refused the client configuration.
    #[error("cannot build the tls configuration for key fetches")]
    Tls(#[source] rustls::Error),
    /// Connect, TLS handshake or protocol failure.
    #[error("request to {0} failed")]
    Request(Uri, #[source] Box<hyper_util::client::legacy::Error>),
    /// Any status but 200, redirects included: they are not followed.
    #[error("{0} answered {1}, expected 200 OK")]
    Status(Uri, StatusCode),
    /// The whole exchange, body included, took longer than `fetch_timeout`.
    #[error("{0} did not answer completely within {1:?}")]
    Timeout(Uri, Duration),
    /// The body exceeded [`MAX_DOCUMENT_BYTES`]; reading stopped there.
    #[error("{0} sent a body larger than 1 MiB")]
    TooLarge(Uri),
    /// The body could not be read to its end.
    #[error("cannot read the body from {0}")]
    Body(Uri, #[source] Box<dyn std::error::Error + Send + Sync>),
    /// The discovery document is not JSON with a string `issuer` and `jwks_uri`.
    #[error("discovery document from {0} is not valid")]
    DiscoveryJson(Uri, #[source] serde_json::Error),
    /// The discovery document's `issuer` is not the configured one.
    #[error("discovery document names issuer {found:?}, expected {expected:?}")]
    IssuerMismatch {
        /// The configured issuer.
        expected: String,
        /// The `issuer` the document names.
        found: String,
    },
    /// Malformed or oversized JWKS (the `String` names where it came from).
    #[error("key set from {0} refused")]
    KeySet(String, #[source] JwksError),
    /// The document parsed but every key in it was skipped.
    #[error("key set from {0} has no usable key")]
    NoUsableKeys(String),
    /// The `jwks_file` cannot be read.
    #[error("cannot read jwks_file {0}")]
    File(PathBuf, #[source] std::io::Error),
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

    /// Where this store's keys come from.
    pub fn source(&self) -> &KeySource {
        &self.source
    }

    /// This store's refresh timing.
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

    /// A snapshot of the store's state and counters, for metrics and /readyz.
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
}

#[cfg(test)]
#[path = "jwks_tests.rs"]
mod tests;
