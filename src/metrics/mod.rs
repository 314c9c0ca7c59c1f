//! Prometheus metrics (SPEC §6) on a registry of our own.
//!
//! Labels come only from config names and closed sets. Per-route and per-upstream children are
//! resolved once per snapshot ([`RouteMetrics`], [`UpstreamMetrics`]) so the hot path does no
//! label hashing. JWKS figures live in the key stores and are copied in at scrape time.
//!
//! Why this file is longer than most (~540 lines): it is one table, the `Metrics` struct with
//! one field and one registration per family, kept side by side so that a family's name,
//! help, labels and buckets are read in one place (deploy/validate.sh parses them from here
//! to check the alerts and dashboard). The children live in `children.rs`.

mod children;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

pub use self::children::{PolicyMetrics, RouteMetrics, UpstreamMetrics};
use crate::auth::jwks::KeyStore;
use crate::tls::HandshakeFailure;

/// Buckets from 100 µs to 30 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

/// Status codes whose counter children are resolved up front; others are looked up on use.
const COMMON_CODES: &[u16] = &[
    200, 201, 202, 204, 206, 301, 302, 304, 307, 308, 400, 401, 403, 404, 405, 409, 413, 422, 429,
    431, 500, 502, 503, 504,
];

/// Every metric family of the gateway.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    auth_decisions: IntCounterVec,
    request_duration: HistogramVec,
    upstream_duration: HistogramVec,
    upstream_in_flight: IntGaugeVec,
    upstream_refused: IntCounterVec,
    jwks_refresh: IntCounterVec,
    jwks_unknown_kid: IntCounterVec,
    jwks_keys: IntGaugeVec,
    jwks_age: prometheus::GaugeVec,
    jwks_stale: IntGaugeVec,
    /// `max_stale` of fetched key sets, so alerts compare the age with each issuer's own.
    jwks_max_stale: IntGaugeVec,
    pub token_cache_hits: IntCounter,
    pub token_cache_misses: IntCounter,
    /// `authgate_log_lines_dropped_total`, copied from `log_writer::dropped` at scrape time.
    log_lines_dropped: IntCounter,
    connections_open: IntGaugeVec,
    tls_handshake_failures: IntCounterVec,
    config_reloads: IntCounterVec,
    config_last_reload: IntGauge,
    config_last_reload_successful: IntGauge,
    certificate_expiry: prometheus::GaugeVec,
    reload_without_keys: IntCounter,
    api_keys: IntGaugeVec,
    rate_limit_decisions: IntCounterVec,
    /// `authgate_rate_limit_store_errors_total`: failed operations on `[rate_limit_store]`.
    pub rate_limit_store_errors: IntCounter,
    /// `authgate_rate_limit_store_duration_seconds`: one Redis operation (script call).
    pub rate_limit_store_duration: Histogram,
    /// Per upstream server: requests, errors, ejections, health; retries per upstream.
    pub upstream_servers: crate::proxy::balance::ServerFamilies,
    /// Last key-store counter values copied into the JWKS counters, per issuer name.
    jwks_seen: Mutex<HashMap<String, JwksSeen>>,
    /// `name` labels of the `jwks_x5c` expiries set at the last scrape.
    x5c_seen: Mutex<Vec<String>>,
}

#[derive(Default, Clone, Copy)]
struct JwksSeen {
    /// `KeyStore::id` the figures were read from.
    store: u64,
    success: u64,
    error: u64,
    unknown_kid: u64,
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let vec = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition");
    registry
        .register(Box::new(vec.clone()))
        .expect("metric registered once");
    vec
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let vec = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric definition");
    registry
        .register(Box::new(vec.clone()))
        .expect("metric registered once");
    vec
}

fn histogram_vec(registry: &Registry, name: &str, help: &str, label: &str) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec());
    let vec = HistogramVec::new(opts, &[label]).expect("valid metric definition");
    registry
        .register(Box::new(vec.clone()))
        .expect("metric registered once");
    vec
}

/// `process_*` (open and max fds, resident and virtual memory, CPU seconds, start time,
/// threads) read from /proc at scrape time. Linux only: elsewhere there is no such family.
fn register_process_metrics(registry: &Registry) {
    #[cfg(target_os = "linux")]
    {
        let collector = prometheus::process_collector::ProcessCollector::for_self();
        // Registered once per registry; a failure would only lose these families.
        if let Err(error) = registry.register(Box::new(collector)) {
            tracing::warn!(error = %error, "process metrics unavailable");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = registry;
}

impl Metrics {
    // The definitions below are constants; registering them can only fail on a programming
    // error (duplicate or invalid name), which the unit tests exercise.
    pub fn new() -> Arc<Metrics> {
        let registry = Registry::new();
        let r = &registry;
        let token_cache = counter_vec(
            r,
            "authgate_token_cache_requests_total",
            "Verified-token cache lookups by result.",
            &["result"],
        );
        let log_lines_dropped = IntCounter::new(
            "authgate_log_lines_dropped_total",
            "Log lines (access log included) dropped because the log writer fell behind.",
        )
        .expect("valid metric definition");
        registry
            .register(Box::new(log_lines_dropped.clone()))
            .expect("registered once");
        let config_last_reload = IntGauge::new(
            "authgate_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful config load.",
        )
        .expect("valid metric definition");
        registry
            .register(Box::new(config_last_reload.clone()))
            .expect("registered once");
        let config_last_reload_successful = IntGauge::new(
            "authgate_config_last_reload_successful",
            "1 while the last config load succeeded, 0 while the last reload failed.",
        )
        .expect("valid metric definition");
        registry
            .register(Box::new(config_last_reload_successful.clone()))
            .expect("registered once");
        let certificate_expiry = prometheus::GaugeVec::new(
            Opts::new(
                "authgate_certificate_expiry_timestamp_seconds",
                "Unix time when a certificate stops being valid (CRLs: their next update).",
            ),
            &["kind", "name"],
        )
        .expect("valid metric definition");
        registry
            .register(Box::new(certificate_expiry.clone()))
            .expect("registered once");
        let reload_without_keys = IntCounter::new(
            "authgate_config_reload_issuers_without_keys_total",
            "Issuers whose new key source had loaded no key when a reload was swapped in.",
        )
        .expect("valid metric definition");
        registry
            .register(Box::new(reload_without_keys.clone()))
            .expect("registered once");
        let rate_limit_store_errors = IntCounter::new(
            "authgate_rate_limit_store_errors_total",
            "Failed operations on the shared rate-limit store.",
        )
        .expect("valid metric definition");
        registry
            .register(Box::new(rate_limit_store_errors.clone()))
            .expect("registered once");
        let rate_limit_store_duration = Histogram::with_opts(
            HistogramOpts::new(
                "authgate_rate_limit_store_duration_seconds",
                "Time of one operation on the shared rate-limit store.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
        )
        .expect("valid metric definition");
        registry
            .register(Box::new(rate_limit_store_duration.clone()))
            .expect("registered once");
        register_process_metrics(r);
        let build_info = gauge_vec(r, "authgate_build_info", "Build information.", &["version"]);
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        let jwks_age = prometheus::GaugeVec::new(
            Opts::new(
                "authgate_jwks_age_seconds",
                "Seconds since the last good key fetch.",
            ),
            &["issuer"],
        )
        .expect("valid metric definition");
        registry
            .register(Box::new(jwks_age.clone()))
            .expect("registered once");

        let metrics = Arc::new(Metrics {
            requests: counter_vec(
                r,
                "authgate_requests_total",
                "Requests by route and response status code.",
                &["route", "code"],
            ),
            auth_decisions: counter_vec(
                r,
                "authgate_auth_decisions_total",
                "Authorization decisions by route, decision and reason.",
                &["route", "decision", "reason"],
            ),
            request_duration: histogram_vec(
                r,
                "authgate_request_duration_seconds",
                "Time from request head to response head, by route.",
                "route",
            ),
            upstream_duration: histogram_vec(
                r,
                "authgate_upstream_duration_seconds",
                "Time the upstream took to answer with response headers.",
                "upstream",
            ),
            upstream_in_flight: gauge_vec(
                r,
                "authgate_upstream_requests_in_flight",
                "Requests in flight to an upstream, until their response body is done.",
                &["upstream"],
            ),
            upstream_refused: counter_vec(
                r,
                "authgate_upstream_requests_refused_total",
                "Requests answered 503 because an upstream request cap was reached.",
                &["upstream"],
            ),
            jwks_refresh: counter_vec(
                r,
                "authgate_jwks_refresh_total",
                "Key set fetches by issuer and result.",
                &["issuer", "result"],
            ),
            jwks_unknown_kid: counter_vec(
                r,
                "authgate_jwks_unknown_kid_refresh_total",
                "Key set refreshes triggered by an unknown kid.",
                &["issuer"],
            ),
            jwks_keys: gauge_vec(
                r,
                "authgate_jwks_keys",
                "Usable keys per issuer.",
                &["issuer"],
            ),
            jwks_age,
            jwks_stale: gauge_vec(
                r,
                "authgate_jwks_stale",
                "1 while an issuer serves keys whose latest refresh failed.",
                &["issuer"],
            ),
            jwks_max_stale: gauge_vec(
                r,
                "authgate_jwks_max_stale_seconds",
                "How old a fetched key set may grow while refreshes fail (max_stale); only issuers whose keys are fetched.",
                &["issuer"],
            ),
            token_cache_hits: token_cache.with_label_values(&["hit"]),
            token_cache_misses: token_cache.with_label_values(&["miss"]),
            log_lines_dropped,
            connections_open: gauge_vec(
                r,
                "authgate_connections_open",
                "Open client connections per listener.",
                &["listener"],
            ),
            tls_handshake_failures: counter_vec(
                r,
                "authgate_tls_handshake_failures_total",
                "Failed TLS handshakes by reason.",
                &["reason"],
            ),
            config_reloads: counter_vec(
                r,
                "authgate_config_reloads_total",
                "Config reloads by result.",
                &["result"],
            ),
            config_last_reload,
            config_last_reload_successful,
            certificate_expiry,
            upstream_servers: crate::proxy::balance::ServerFamilies::register(r),
            reload_without_keys,
            api_keys: gauge_vec(
                r,
                "authgate_api_keys",
                "API keys per source, neither disabled nor expired.",
                &["source"],
            ),
            rate_limit_decisions: counter_vec(
                r,
                "authgate_rate_limit_decisions_total",
                "Rate-limit decisions by policy and result (allowed, limited, store_error).",
                &["policy", "result"],
            ),
            rate_limit_store_errors,
            rate_limit_store_duration,
            registry,
            jwks_seen: Mutex::new(HashMap::new()),
            x5c_seen: Mutex::new(Vec::new()),
        });
        // Closed label sets are exported from the start (at 0), so dashboards and alerts see
        // the series before the first event.
        for reason in HandshakeFailure::ALL {
            metrics
                .tls_handshake_failures
                .with_label_values(&[reason.as_str()]);
        }
        for result in ["success", "error"] {
            metrics.config_reloads.with_label_values(&[result]);
        }
        metrics
    }

    /// Children for one route, resolved once per snapshot.
    pub fn route(&self, name: &str) -> RouteMetrics {
        RouteMetrics {
            name: name.to_owned(),
            codes: COMMON_CODES
                .iter()
                .map(|code| (*code, OnceLock::new()))
                .collect(),
            requests: self.requests.clone(),
            duration: self.request_duration.with_label_values(&[name]),
            allow_public: self
                .auth_decisions
                .with_label_values(&[name, "allow", "public"]),
            allow_token: self
                .auth_decisions
                .with_label_values(&[name, "allow", "ok"]),
            decisions: self.auth_decisions.clone(),
        }
    }

    /// `authgate_rate_limit_decisions_total` children of one policy.
    pub fn rate_limit_policy(&self, name: &str) -> PolicyMetrics {
        let child = |result: &str| self.rate_limit_decisions.with_label_values(&[name, result]);
        PolicyMetrics {
            allowed: child("allowed"),
            limited: child("limited"),
            store_error: child("store_error"),
        }
    }

    pub fn upstream(&self, name: &str) -> UpstreamMetrics {
        UpstreamMetrics {
            duration: self.upstream_duration.with_label_values(&[name]),
            in_flight: self.upstream_in_flight.with_label_values(&[name]),
            refused: self.upstream_refused.with_label_values(&[name]),
        }
    }

    pub fn connections(&self, listener: &str) -> IntGauge {
        self.connections_open.with_label_values(&[listener])
    }

    pub fn tls_handshake_failed(&self, reason: HandshakeFailure) {
        self.tls_handshake_failures
            .with_label_values(&[reason.as_str()])
            .inc();
    }

    pub fn config_loaded(&self, ok: bool) {
        self.config_reloads
            .with_label_values(&[if ok { "success" } else { "error" }])
            .inc();
        self.config_last_reload_successful.set(i64::from(ok));
        if ok {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            self.config_last_reload.set(now.as_secs() as i64);
        }
    }

    /// The expiries of the config now in use (`kind`, `name`, Unix time); the previous
    /// config's are dropped.
    pub fn certificate_expiries<'a>(
        &self,
        expiries: impl IntoIterator<Item = (&'a str, &'a str, i64)>,
    ) {
        self.certificate_expiry.reset();
        for (kind, name, timestamp) in expiries {
            self.certificate_expiry
                .with_label_values(&[kind, name])
                .set(timestamp as f64);
        }
    }

    /// A reload swapped in `issuers` issuers whose new key sources had no keys yet.
    pub fn reload_without_keys(&self, issuers: usize) {
        self.reload_without_keys.inc_by(issuers as u64);
    }

    /// The text exposition, after copying in the current snapshot's figures: each issuer's
    /// key store, and the active keys of each API key source. (Given as lists rather than
    /// the snapshot, so that metrics stay below the snapshot that holds them.)
    pub fn render<'a>(
        &self,
        key_stores: impl IntoIterator<Item = (&'a str, &'a KeyStore)>,
        api_keys: impl IntoIterator<Item = (&'a str, usize)>,
    ) -> String {
        self.sync_jwks(key_stores);
        // Sources removed by a reload disappear; the figures are the current snapshot's.
        self.api_keys.reset();
        for (source, active) in api_keys {
            self.api_keys
                .with_label_values(&[source])
                .set(active as i64);
        }
        let dropped = crate::log_writer::dropped();
        self.log_lines_dropped
            .inc_by(dropped.saturating_sub(self.log_lines_dropped.get()));
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for well-formed families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    fn sync_jwks<'a>(&self, key_stores: impl IntoIterator<Item = (&'a str, &'a KeyStore)>) {
        let mut seen = self
            .jwks_seen
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let now = SystemTime::now();
        let mut x5c = Vec::new();
        // Issuers removed by a reload disappear; local key sources never go stale.
        self.jwks_max_stale.reset();
        for (name, key_store) in key_stores {
            if let Some(keys) = key_store.keys() {
                for (kid, not_after) in keys.x5c_expiries() {
                    x5c.push((format!("{name}/{kid}"), *not_after));
                }
            }
            if key_store.source().is_remote() {
                let max_stale = key_store.policy().max_stale.as_secs();
                self.jwks_max_stale
                    .with_label_values(&[name])
                    .set(i64::try_from(max_stale).unwrap_or(i64::MAX));
            }
            let stats = key_store.stats();
            let store = key_store.id();
            let last = seen.entry(name.to_owned()).or_default();
            if last.store != store {
                // A reload gave this issuer a new store whose counters start at zero.
                *last = JwksSeen {
                    store,
                    ..JwksSeen::default()
                };
            }
            let add = |counter: IntCounter, now: u64, before: u64| {
                counter.inc_by(now.saturating_sub(before));
            };
            add(
                self.jwks_refresh.with_label_values(&[name, "success"]),
                stats.refresh_success,
                last.success,
            );
            add(
                self.jwks_refresh.with_label_values(&[name, "error"]),
                stats.refresh_error,
                last.error,
            );
            add(
                self.jwks_unknown_kid.with_label_values(&[name]),
                stats.unknown_kid_refreshes,
                last.unknown_kid,
            );
            *last = JwksSeen {
                store,
                success: stats.refresh_success.max(last.success),
                error: stats.refresh_error.max(last.error),
                unknown_kid: stats.unknown_kid_refreshes.max(last.unknown_kid),
            };
            self.jwks_keys
                .with_label_values(&[name])
                .set(stats.keys as i64);
            self.jwks_stale
                .with_label_values(&[name])
                .set(i64::from(stats.stale));
            let age = stats
                .last_success
                .and_then(|at| now.duration_since(at).ok())
                .map_or(f64::NAN, |age| age.as_secs_f64());
            self.jwks_age.with_label_values(&[name]).set(age);
        }
        self.sync_x5c(x5c);
    }

    /// `jwks_x5c` certificate expiries of the key sets in use; those of keys no longer in use
    /// are removed.
    fn sync_x5c(&self, current: Vec<(String, i64)>) {
        let mut seen = self
            .x5c_seen
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        for name in seen.iter() {
            if !current.iter().any(|(now, _)| now == name) {
                let _ = self
                    .certificate_expiry
                    .remove_label_values(&["jwks_x5c", name]);
            }
        }
        for (name, not_after) in &current {
            self.certificate_expiry
                .with_label_values(&["jwks_x5c", name])
                .set(*not_after as f64);
        }
        *seen = current.into_iter().map(|(name, _)| name).collect();
    }
}
