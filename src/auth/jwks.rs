//! Key stores: one per key source, shared by issuer entries with the same source, surviving
//! reloads. STUB: owned by the JWKS helper.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::keys::{KeySet, Secret};

/// Where an issuer's keys come from (exactly one per issuer, by construction).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    JwksUri { url: http::Uri, ca_file: Option<PathBuf> },
    /// `{issuer}/.well-known/openid-configuration`, then its `jwks_uri`.
    Discovery { issuer: String, ca_file: Option<PathBuf> },
    File(PathBuf),
    Hmac(Secret),
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

/// The current key set of one key source.
#[derive(Debug)]
pub struct KeyStore {}

impl KeyStore {
    pub fn new(source: KeySource, policy: RefreshPolicy) -> Arc<KeyStore> {
        let _ = (source, policy);
        Arc::new(KeyStore {})
    }

    pub fn source(&self) -> &KeySource {
        unimplemented_source()
    }

    /// Starts the background fetch/refresh task (remote sources); loads files and secrets now.
    pub fn start(self: &Arc<Self>) {}

    /// Fetches or loads once, now (for `explain`).
    pub async fn load_once(&self) -> Result<(), String> {
        Ok(())
    }

    /// The usable key set: `None` before the first good fetch or past `max_stale`.
    pub fn keys(&self) -> Option<Arc<KeySet>> {
        None
    }

    /// An unknown `kid` was seen: refresh (coalesced, at most once per `min_refresh`) and return
    /// the set to retry with.
    pub async fn refresh_for_unknown_kid(&self) -> Option<Arc<KeySet>> {
        None
    }

    pub fn stats(&self) -> KeyStoreStats {
        KeyStoreStats::default()
    }
}

fn unimplemented_source() -> &'static KeySource {
    static NONE: std::sync::OnceLock<KeySource> = std::sync::OnceLock::new();
    NONE.get_or_init(|| KeySource::File(PathBuf::new()))
}
