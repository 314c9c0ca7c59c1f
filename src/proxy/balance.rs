//! Choosing the server of an upstream for one attempt, and passive health (ejection).
//!
//! Rules:
//! - **Power of two choices on requests in flight.** Two distinct servers are drawn at random
//!   among the available ones and the one with fewer requests in flight wins. Why not plain
//!   least-requests: scanning every server for the minimum sends every gateway task to the
//!   same server until the counters catch up (herding), and costs a scan per request; two
//!   random choices are O(1), avoid the herd, and still keep the load within a small factor of
//!   the best (Mitzenmacher; Envoy's default `LEAST_REQUEST` does the same). Round robin would
//!   ignore that one server is slow.
//! - **Passive health.** `max_failures` consecutive failures of a server (connect failures,
//!   transport errors, timeouts, 5xx responses) eject it for `ejection_time`, doubled at each
//!   ejection without a success in between and capped at `max_ejection_time`. A server back
//!   from an ejection is on probation: its first failure ejects it again (for the doubled
//!   time), its first success makes it healthy again and resets the doubling.
//! - **The only server is never ejected** (as nginx ignores `max_fails` for a single
//!   server): ejecting it would turn every transient error into 502s for the whole ejection
//!   time, with nowhere else to send requests.
//! - **All servers ejected: no server.** The caller answers 502 at once; it never waits for a
//!   server to come back.
//! - A retry prefers a server it has not tried yet, and falls back to a tried one only when
//!   no other is available.
//!
//! - **Active health checks** (`proxy::health`, when configured) take a server out on top of
//!   this, until its checks pass again.
//!
//! Server state lives in [`ServerState`], shared by every snapshot that keeps the server (same
//! upstream name and URL), so a reload neither forgets an ejection nor the requests in flight.
//! This module never sends anything.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use http::uri::{Authority, Scheme};
use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

/// Passive health settings of one upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ejection {
    /// Consecutive failures that eject a server.
    pub max_failures: u32,
    /// The first ejection's length.
    pub base: Duration,
    /// The longest ejection.
    pub max: Duration,
}

impl Ejection {
    /// The length of the `n`th consecutive ejection (0-based): base * 2^n, capped.
    pub fn period(&self, n: u32) -> Duration {
        let factor = 1u32.checked_shl(n.min(20)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }
}

/// Milliseconds on a process-wide monotonic clock (0 = never).
fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    // +1 so that no moment is 0, which means "not ejected".
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX) + 1
}

/// What one server's requests share across snapshots.
#[derive(Debug, Default)]
pub struct ServerState {
    in_flight: AtomicUsize,
    /// Consecutive failures since the last success or ejection.
    failures: AtomicU32,
    /// Consecutive ejections without a success in between.
    ejections: AtomicU32,
    /// Until when the server is ejected (`now_ms` clock); 0: not ejected.
    ejected_until: AtomicU64,
    /// Taken out by active health checks (`proxy::health`).
    checked_down: AtomicBool,
}

impl ServerState {
    fn available(&self, now: u64) -> bool {
        self.ejected_until.load(Ordering::Relaxed) <= now && !self.checked_down()
    }

    pub fn checked_down(&self) -> bool {
        self.checked_down.load(Ordering::Relaxed)
    }

    pub fn set_checked_down(&self, down: bool) {
        self.checked_down.store(down, Ordering::Relaxed);
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }
}

/// Metrics of one server (labels `upstream`, `server`; `server` is a configured URL).
#[derive(Clone)]
pub struct ServerMetrics {
    pub requests: IntCounter,
    pub errors: IntCounter,
    pub ejections: IntCounter,
    /// 1 while the server takes requests, 0 while it is ejected.
    pub healthy: IntGauge,
}

/// The per-server and retry metric families (registered once with the gateway's registry).
pub struct ServerFamilies {
    requests: IntCounterVec,
    errors: IntCounterVec,
    ejections: IntCounterVec,
    healthy: IntGaugeVec,
    retries: IntCounterVec,
}

impl ServerFamilies {
    /// Registers the families. Their definitions are constants: failing is a programming
    /// error (a duplicate name), which the metrics unit tests exercise.
    pub fn register(registry: &Registry) -> ServerFamilies {
        let labels = &["upstream", "server"];
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let vec = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(vec.clone()))
                .expect("metric registered once");
            vec
        };
        let healthy = IntGaugeVec::new(
            Opts::new(
                "authgate_upstream_server_healthy",
                "1 while an upstream server takes requests, 0 while it is ejected.",
            ),
            labels,
        )
        .expect("valid metric");
        registry
            .register(Box::new(healthy.clone()))
            .expect("metric registered once");
        ServerFamilies {
            requests: counter(
                "authgate_upstream_server_requests_total",
                "Attempts sent to an upstream server (retries included).",
                labels,
            ),
            errors: counter(
                "authgate_upstream_server_errors_total",
                "Attempts that failed: connect or transport error, timeout, or a 5xx response.",
                labels,
            ),
            ejections: counter(
                "authgate_upstream_server_ejections_total",
                "Times an upstream server was ejected by passive health.",
                labels,
            ),
            healthy,
            retries: counter(
                "authgate_upstream_retries_total",
                "Retries by result: sent, or refused by the retry budget.",
                &["upstream", "result"],
            ),
        }
    }

    pub fn server(&self, upstream: &str, server: &str) -> ServerMetrics {
        let labels = &[upstream, server];
        let metrics = ServerMetrics {
            requests: self.requests.with_label_values(labels),
            errors: self.errors.with_label_values(labels),
            ejections: self.ejections.with_label_values(labels),
            healthy: self.healthy.with_label_values(labels),
        };
        metrics.healthy.set(1);
        metrics
    }

    /// (sent, refused by the budget) retry counters of `upstream`.
    pub fn retries(&self, upstream: &str) -> (IntCounter, IntCounter) {
        (
            self.retries.with_label_values(&[upstream, "sent"]),
            self.retries
                .with_label_values(&[upstream, "budget_exhausted"]),
        )
    }
}

/// One server of an upstream.
pub struct Server {
    /// The configured URL, as written (the metrics label and the access log's `server`).
    pub url: Arc<str>,
    pub scheme: Scheme,
    pub authority: Authority,
    /// Path of the server URL without trailing slash ("" for none).
    pub path_prefix: String,
    /// For a server named by a host name: connections older than this are not reused, so the
    /// name is resolved again (`dns_refresh`). `None` for an IP address.
    pub dns_refresh: Option<Duration>,
    pub state: Arc<ServerState>,
    pub metrics: ServerMetrics,
}

impl Server {
    /// Counts an attempt in flight on this server until the guard drops.
    pub fn start(&self) -> InFlight {
        self.state.in_flight.fetch_add(1, Ordering::Relaxed);
        self.metrics.requests.inc();
        InFlight(Arc::clone(&self.state))
    }

    /// The attempt succeeded: the failure count restarts, a server on probation is healthy.
    pub fn succeeded(&self) {
        let state = &self.state;
        state.failures.store(0, Ordering::Relaxed);
        if state.ejections.load(Ordering::Relaxed) != 0 {
            state.ejections.store(0, Ordering::Relaxed);
            state.ejected_until.store(0, Ordering::Relaxed);
            self.metrics.healthy.set(1);
        }
    }

    /// The attempt failed; returns whether this ejected the server. The only server of an
    /// upstream (`alone`) is never ejected.
    pub fn failed(&self, policy: &Ejection, alone: bool) -> bool {
        self.metrics.errors.inc();
        if alone {
            return false;
        }
        let state = &self.state;
        let failures = state.failures.fetch_add(1, Ordering::Relaxed) + 1;
        let probation = state.ejections.load(Ordering::Relaxed) != 0;
        if failures < policy.max_failures && !probation {
            return false;
        }
        let now = now_ms();
        if state.ejected_until.load(Ordering::Relaxed) > now {
            // Already ejected by a concurrent attempt.
            return false;
        }
        let n = state.ejections.fetch_add(1, Ordering::Relaxed);
        let period = u64::try_from(policy.period(n).as_millis()).unwrap_or(u64::MAX);
        state
            .ejected_until
            .store(now.saturating_add(period), Ordering::Relaxed);
        state.failures.store(0, Ordering::Relaxed);
        self.metrics.ejections.inc();
        self.metrics.healthy.set(0);
        true
    }
}

/// One attempt's place in its server's in-flight count.
pub struct InFlight(Arc<ServerState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The server for the next attempt, or `None` when every server is ejected. `tried` are the
/// servers this request already used (avoided while another one is available).
pub fn pick(servers: &[Server], tried: &[usize]) -> Option<usize> {
    let now = now_ms();
    let mut fresh: [usize; 2] = [usize::MAX; 2];
    let mut seen_fresh = 0usize;
    let mut fallback = None;
    // Reservoir sampling of two among the available untried servers: one pass, no allocation.
    for (index, server) in servers.iter().enumerate() {
        if !server.state.available(now) {
            continue;
        }
        if server.metrics.healthy.get() == 0 {
            // Back from an ejection (on probation): shown as taking requests again.
            server.metrics.healthy.set(1);
        }
        if tried.contains(&index) {
            fallback.get_or_insert(index);
            continue;
        }
        seen_fresh += 1;
        if seen_fresh <= 2 {
            fresh[seen_fresh - 1] = index;
        } else {
            let slot = rand::random_range(0..seen_fresh);
            if slot < 2 {
                fresh[slot] = index;
            }
        }
    }
    match seen_fresh {
        0 => fallback,
        1 => Some(fresh[0]),
        _ => {
            let (a, b) = (fresh[0], fresh[1]);
            let load = |i: usize| servers[i].state.in_flight();
            // Ties go either way at random, so equal servers share the load.
            Some(match load(a).cmp(&load(b)) {
                std::cmp::Ordering::Less => a,
                std::cmp::Ordering::Greater => b,
                std::cmp::Ordering::Equal if rand::random::<bool>() => a,
                std::cmp::Ordering::Equal => b,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers(n: usize) -> Vec<Server> {
        let families = ServerFamilies::register(&Registry::new());
        (0..n)
            .map(|i| Server {
                url: format!("http://127.0.0.1:{}", 1000 + i).into(),
                scheme: Scheme::HTTP,
                authority: Authority::from_static("127.0.0.1:1000"),
                path_prefix: String::new(),
                dns_refresh: None,
                state: Arc::default(),
                metrics: families.server("u", &format!("s{i}")),
            })
            .collect()
    }

    const POLICY: Ejection = Ejection {
        max_failures: 2,
        base: Duration::from_secs(10),
        max: Duration::from_secs(25),
    };

    #[test]
    fn two_choices_prefer_the_less_loaded_and_spread_equal_ones() {
        let servers = servers(2);
        let _busy = servers[0].start();
        for _ in 0..50 {
            assert_eq!(pick(&servers, &[]), Some(1));
        }
        drop(_busy);
        let mut counts = [0usize; 2];
        for _ in 0..200 {
            counts[pick(&servers, &[]).expect("a server")] += 1;
        }
        assert!(counts[0] > 40 && counts[1] > 40, "{counts:?}");
    }

    #[test]
    fn failures_eject_for_a_growing_capped_period_and_none_is_left() {
        let servers = servers(2);
        assert!(!servers[0].failed(&POLICY, false));
        assert!(
            servers[0].failed(&POLICY, false),
            "second consecutive failure ejects"
        );
        assert_eq!(servers[0].metrics.healthy.get(), 0);
        for _ in 0..20 {
            assert_eq!(pick(&servers, &[]), Some(1));
        }
        assert!(servers[1].failed(&POLICY, false) | servers[1].failed(&POLICY, false));
        assert_eq!(pick(&servers, &[]), None, "every server ejected: none");

        assert_eq!(POLICY.period(0), Duration::from_secs(10));
        assert_eq!(POLICY.period(1), Duration::from_secs(20));
        assert_eq!(POLICY.period(2), Duration::from_secs(25));
        assert_eq!(POLICY.period(99), Duration::from_secs(25));
    }

    #[test]
    fn the_only_server_is_never_ejected() {
        let servers = servers(1);
        for _ in 0..10 {
            assert!(!servers[0].failed(&POLICY, true));
        }
        assert_eq!(pick(&servers, &[]), Some(0));
        assert_eq!(servers[0].metrics.errors.get(), 10, "failures still count");
    }

    #[test]
    fn a_success_resets_failures_and_probation() {
        let servers = servers(1);
        assert!(!servers[0].failed(&POLICY, false));
        servers[0].succeeded();
        assert!(!servers[0].failed(&POLICY, false), "the count restarted");
        // On probation (ejected once, period over): one failure ejects again.
        servers[0].state.ejections.store(1, Ordering::Relaxed);
        assert!(servers[0].failed(&POLICY, false));
        assert_eq!(servers[0].state.ejections.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_retry_avoids_tried_servers_while_others_are_available() {
        let servers = servers(3);
        for _ in 0..30 {
            let next = pick(&servers, &[0, 1]);
            assert_eq!(next, Some(2));
        }
        assert_eq!(pick(&servers[..1], &[0]), Some(0), "only a tried one left");
    }
}
