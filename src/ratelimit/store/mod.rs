//! The shared rate-limit store (`[rate_limit_store]`, SPEC §7.4): GCRA state in Redis, so
//! every replica spends one budget.
//!
//! Rules, and why:
//! - Exact mode is one atomic Redis operation per request: the Lua script [`GCRA`], sent with
//!   EVALSHA (EVAL once when the server does not know it yet). It reads the clock of the Redis
//!   server (`TIME`), so replicas with skewed clocks still share one timeline.
//! - Approximate mode judges with local buckets (GCRA timestamps per key) and, every
//!   `sync_interval`, adds each key's passes to the shared timestamp in Redis (script
//!   [`SYNC`], one call per key that passed requests) and moves the local bucket up to the
//!   shared one: what the other replicas spent. Across replicas a limit can overshoot by what
//!   they pass within one interval. While a sync fails, `on_store_error` judges (`local`:
//!   the same buckets, unsynced passes are sent once Redis is back).
//! - Nothing waits on Redis for long: connecting and every command are bounded by `timeout`;
//!   after a failure one request at a time tries to reconnect (at most once per
//!   [`RECONNECT_EVERY`]), the others are judged by `on_store_error` at once.
//! - The Redis URL may carry a password: it is never logged or shown.
//! - Redis keys are `authgate:rl:<policy>:<count>/<window>:<burst>:<key>`: changing a policy's
//!   rate starts a fresh budget instead of reading one made under other rules.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Script};

mod approximate;

use self::approximate::{Bucket, Dirty};
use super::{LocalLimiter, PolicySpec, Verdict};

/// Fewest time between two reconnect attempts.
pub const RECONNECT_EVERY: Duration = Duration::from_millis(250);
/// Fewest time between two logged store errors.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// GCRA in one atomic step. KEYS[1]: the key. ARGV: interval and burst tolerance in µs.
/// Returns {allowed (1|0), remaining, µs until full (allowed) or until retry (refused)}.
const GCRA: &str = r#"
local now = redis.call('TIME')
now = tonumber(now[1]) * 1000000 + tonumber(now[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - burst * interval
if allow_at > now then
  return {0, 0, allow_at - now}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, math.floor((now - allow_at) / interval), new_tat - now}
"#;

/// Approximate mode's sync: adds ARGV[2] requests' worth (ARGV[1] µs each) to the shared TAT
/// of KEYS[1] without judging, and returns the shared TAT's distance from now in µs.
const SYNC: &str = r#"
local now = redis.call('TIME')
now = tonumber(now[1]) * 1000000 + tonumber(now[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
tat = tat + tonumber(ARGV[1]) * tonumber(ARGV[2])
if tat > now then
  redis.call('SET', KEYS[1], tat, 'PX', math.ceil((tat - now) / 1000) + 1)
end
return tat - now
"#;

/// `mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Exact,
    Approximate,
}

/// `on_store_error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnStoreError {
    /// Judge by this replica's local state.
    Local,
    /// Let the request pass.
    Allow,
    /// Refuse it (429 `rate_limited`, retry after one second).
    Deny,
}

/// `[rate_limit_store]` compiled; equal settings keep the same store (and its connection)
/// across reloads.
#[derive(Clone, PartialEq, Eq)]
pub struct StoreSettings {
    /// Secret: may carry a password.
    pub url: String,
    pub mode: Mode,
    pub sync_interval: Duration,
    pub on_store_error: OnStoreError,
    /// Connect and command timeout.
    pub timeout: Duration,
    /// PEM roots for `rediss://` (the file's content); `None`: the system roots.
    pub ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for StoreSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreSettings")
            .field("url", &"<redacted>")
            .field("mode", &self.mode)
            .field("sync_interval", &self.sync_interval)
            .field("on_store_error", &self.on_store_error)
            .field("timeout", &self.timeout)
            .field("ca_pem", &self.ca_pem.as_ref().map(Vec::len))
            .finish()
    }
}

/// How the store judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreVerdict {
    Judged(Verdict),
    /// The store failed; `on_store_error` judged.
    Fallback(Verdict),
}

/// Why a store operation failed (logged without the URL).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("rate limit store: not connected (reconnecting)")]
    NotConnected,
    #[error("rate limit store: timed out")]
    Timeout,
    #[error("rate limit store: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("rate limit store: unexpected reply")]
    Reply,
}

/// A Redis-backed store, shared by every policy of a snapshot.
pub struct Store {
    pub settings: StoreSettings,
    client: redis::Client,
    connection: ArcSwapOption<MultiplexedConnection>,
    /// Held by the one request that reconnects; the time of the last attempt.
    reconnect: tokio::sync::Mutex<Option<Instant>>,
    gcra: Script,
    sync: Script,
    /// Approximate mode's buckets (bounded like the local limiters).
    buckets: moka::sync::Cache<String, Arc<Mutex<Bucket>>>,
    dirty: Mutex<Dirty>,
    /// Approximate mode: the last sync failed; `on_store_error` judges until one succeeds.
    failing: AtomicBool,
    sync_task: Once,
    last_log: Mutex<Option<Instant>>,
    errors: prometheus::IntCounter,
    duration: prometheus::Histogram,
}

impl Store {
    /// Parses the URL; connects on first use (loading a config never connects).
    pub fn new(
        settings: StoreSettings,
        metrics: &crate::metrics::Metrics,
    ) -> Result<Store, redis::RedisError> {
        let client = match &settings.ca_pem {
            None => redis::Client::open(settings.url.as_str())?,
            Some(pem) => redis::Client::build_with_tls(
                settings.url.as_str(),
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.clone()),
                },
            )?,
        };
        Ok(Store {
            settings,
            client,
            connection: ArcSwapOption::empty(),
            reconnect: tokio::sync::Mutex::new(None),
            gcra: Script::new(GCRA),
            sync: Script::new(SYNC),
            buckets: moka::sync::Cache::new(super::MAX_KEYS),
            dirty: Mutex::new(HashMap::new()),
            failing: AtomicBool::new(false),
            sync_task: Once::new(),
            last_log: Mutex::new(None),
            errors: metrics.rate_limit_store_errors.clone(),
            duration: metrics.rate_limit_store_duration.clone(),
        })
    }

    fn redis_key(spec: &PolicySpec, key: &str) -> String {
        format!(
            "authgate:rl:{}:{}/{}:{}:{key}",
            spec.name,
            spec.count,
            spec.window.seconds(),
            spec.burst
        )
    }

    /// Judges one request of `key` under `spec`; `local` is the policy's local state (exact
    /// mode's fallback).
    pub async fn check(
        self: &Arc<Self>,
        spec: &PolicySpec,
        key: &str,
        local: &LocalLimiter,
    ) -> StoreVerdict {
        match self.settings.mode {
            Mode::Exact => match self.exact(spec, key).await {
                Ok(verdict) => StoreVerdict::Judged(verdict),
                Err(error) => self.fallback(error, || local.check(key)),
            },
            Mode::Approximate => {
                self.start_sync();
                let verdict = || self.approximate(spec, key);
                if self.failing.load(Ordering::Relaxed) {
                    return StoreVerdict::Fallback(self.on_store_error(verdict));
                }
                StoreVerdict::Judged(verdict())
            }
        }
    }

    fn fallback(&self, error: StoreError, local: impl FnOnce() -> Verdict) -> StoreVerdict {
        self.errors.inc();
        self.log(&error);
        StoreVerdict::Fallback(self.on_store_error(local))
    }

    /// The `on_store_error` verdict; `local` judges by this replica's own state.
    fn on_store_error(&self, local: impl FnOnce() -> Verdict) -> Verdict {
        match self.settings.on_store_error {
            OnStoreError::Local => local(),
            OnStoreError::Allow => Verdict::Allowed {
                remaining: 0,
                reset: Duration::ZERO,
            },
            OnStoreError::Deny => Verdict::Limited {
                retry_after: Duration::from_secs(1),
            },
        }
    }

    /// Logs at most one store error per [`LOG_EVERY`].
    fn log(&self, error: &StoreError) {
        let now = Instant::now();
        let Ok(mut last) = self.last_log.lock() else {
            return;
        };
        if last.is_some_and(|last| now.duration_since(last) < LOG_EVERY) {
            return;
        }
        *last = Some(now);
        tracing::warn!(
            error = %crate::logging::error_chain(error),
            on_store_error = ?self.settings.on_store_error,
            "rate limit store failed; judging by on_store_error"
        );
    }

    /// The live connection, or one new attempt (bounded by `timeout`) when none is live and no
    /// other request is already trying.
    async fn connection(&self) -> Result<MultiplexedConnection, StoreError> {
        if let Some(connection) = self.connection.load_full() {
            return Ok((*connection).clone());
        }
        let Ok(mut last) = self.reconnect.try_lock() else {
            return Err(StoreError::NotConnected);
        };
        if let Some(connection) = self.connection.load_full() {
            return Ok((*connection).clone());
        }
        let now = Instant::now();
        if last.is_some_and(|last| now.duration_since(last) < RECONNECT_EVERY) {
            return Err(StoreError::NotConnected);
        }
        *last = Some(now);
        let timeout = self.settings.timeout;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(timeout)
            .set_response_timeout(timeout);
        let connection = tokio::time::timeout(
            timeout,
            self.client
                .get_multiplexed_async_connection_with_config(&config),
        )
        .await
        .map_err(|_| StoreError::Timeout)??;
        self.connection.store(Some(Arc::new(connection.clone())));
        Ok(connection)
    }

    /// Drops a connection that failed, so the next request reconnects.
    fn broken(&self) {
        self.connection.store(None);
    }

    async fn exact(&self, spec: &PolicySpec, key: &str) -> Result<Verdict, StoreError> {
        let mut connection = self.connection().await?;
        let mut invocation = self.gcra.prepare_invoke();
        invocation
            .key(Store::redis_key(spec, key))
            .arg(micros(spec.interval()))
            .arg(spec.burst.get());
        let started = Instant::now();
        let reply = tokio::time::timeout(
            self.settings.timeout,
            invocation.invoke_async::<Vec<i64>>(&mut connection),
        )
        .await;
        self.duration.observe(started.elapsed().as_secs_f64());
        let reply = match reply {
            Ok(Ok(reply)) => reply,
            Ok(Err(error)) => {
                self.broken();
                return Err(error.into());
            }
            Err(_) => {
                self.broken();
                return Err(StoreError::Timeout);
            }
        };
        match reply.as_slice() {
            [1, remaining, until_full] => Ok(Verdict::Allowed {
                remaining: u32::try_from(*remaining).unwrap_or(0),
                reset: from_micros(*until_full),
            }),
            [0, _, retry] => Ok(Verdict::Limited {
                retry_after: from_micros(*retry),
            }),
            _ => Err(StoreError::Reply),
        }
    }
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros())
        .unwrap_or(u64::MAX)
        .max(1)
}

fn from_micros(micros: i64) -> Duration {
    Duration::from_micros(u64::try_from(micros).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::*;
    use crate::ratelimit::{KeyPart, Window};

    #[test]
    fn approximate_buckets_refuse_after_the_burst_and_remember_passes_for_the_sync() {
        let settings = StoreSettings {
            url: "redis://127.0.0.1:1/0".into(),
            mode: Mode::Approximate,
            sync_interval: Duration::from_millis(100),
            on_store_error: OnStoreError::Local,
            timeout: Duration::from_millis(100),
            ca_pem: None,
        };
        let store = Store::new(settings, &crate::metrics::Metrics::new()).unwrap();
        let spec = PolicySpec {
            name: "p".into(),
            key: vec![KeyPart::Route],
            count: NonZeroU32::new(1).unwrap(),
            window: Window::Hour,
            burst: NonZeroU32::new(3).unwrap(),
        };
        for remaining in (0..3).rev() {
            assert!(matches!(
                store.approximate(&spec, "k"),
                Verdict::Allowed { remaining: r, .. } if r == remaining
            ));
        }
        assert!(matches!(
            store.approximate(&spec, "k"),
            Verdict::Limited { retry_after } if retry_after > Duration::from_secs(3590)
        ));
        let dirty = store.dirty.lock().unwrap();
        let (bucket, interval) = &dirty[&Store::redis_key(&spec, "k")];
        assert_eq!(bucket.lock().unwrap().unsynced, 3);
        assert_eq!(*interval, Duration::from_secs(3600));
    }

    #[test]
    fn settings_debug_never_shows_the_url() {
        let settings = StoreSettings {
            url: "redis://:hunter2@x:6379/0".into(),
            mode: Mode::Exact,
            sync_interval: Duration::from_millis(100),
            on_store_error: OnStoreError::Local,
            timeout: Duration::from_millis(100),
            ca_pem: None,
        };
        assert!(!format!("{settings:?}").contains("hunter2"));
    }
}
