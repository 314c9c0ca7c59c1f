//! Active health checks (`health_check = { path, interval, timeout, healthy, unhealthy }`).
//!
//! Rules:
//! - Every `interval`, each server of the upstream gets `GET <server URL path><path>` through
//!   the upstream's own client (same protocol, TLS roots and client certificate). A 2xx
//!   answer within `timeout` is a success; anything else (other status, error, timeout) a
//!   failure.
//! - `unhealthy` consecutive failures take the server out of balancing until `healthy`
//!   consecutive successes bring it back. This is on top of passive health: a server must be
//!   neither ejected nor checked down to get requests. A server starts as up (a fresh
//!   gateway must not refuse traffic before its first round of checks).
//! - The checks of an upstream run while its snapshot is alive: the task holds a weak
//!   reference and ends after a reload drops the old snapshot (a reload starts new checks).
//!   They never run in `check` or `explain`: the server starts them when a snapshot goes
//!   live.
//!
//! The checks never touch requests; they only flip [`ServerState`]'s checked-down flag.

use std::sync::{Arc, Weak};
use std::time::Duration;

use http::{Request, Uri};

use super::balance::{ServerMetrics, ServerState};
use super::client::UpstreamClient;
use super::Upstream;

/// An upstream's active check settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckSettings {
    /// Path (and query) appended to each server URL's path.
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive successes that bring a server back.
    pub healthy: u32,
    /// Consecutive failures that take a server out.
    pub unhealthy: u32,
}

/// What the check task of one upstream needs; dropped with the upstream.
pub struct ActiveChecks {
    pub settings: CheckSettings,
    pub client: Arc<UpstreamClient>,
    /// (probe URI, Host header, state, metrics) per server.
    pub targets: Vec<(Uri, Arc<ServerState>, ServerMetrics)>,
    pub upstream: String,
}

/// Starts the active checks of every upstream that has them (on the current runtime).
pub fn start(upstreams: &[Upstream]) {
    for upstream in upstreams {
        if let Some(checks) = &upstream.active_checks {
            tokio::spawn(run(Arc::downgrade(checks)));
        }
    }
}

async fn run(checks: Weak<ActiveChecks>) {
    // Consecutive results per server: (successes, failures).
    let mut streaks: Vec<(u32, u32)> = Vec::new();
    loop {
        let Some(current) = checks.upgrade() else {
            return;
        };
        streaks.resize(current.targets.len(), (0, 0));
        let probes = current
            .targets
            .iter()
            .map(|(uri, _, _)| probe(&current, uri));
        let results = futures_util::future::join_all(probes).await;
        for ((ok, streak), (_, state, metrics)) in results
            .into_iter()
            .zip(streaks.iter_mut())
            .zip(&current.targets)
        {
            record(
                &current.settings,
                ok,
                streak,
                state,
                metrics,
                &current.upstream,
            );
        }
        let interval = current.settings.interval;
        drop(current);
        tokio::time::sleep(interval).await;
    }
}

fn record(
    settings: &CheckSettings,
    ok: bool,
    streak: &mut (u32, u32),
    state: &ServerState,
    metrics: &ServerMetrics,
    upstream: &str,
) {
    *streak = match ok {
        true => (streak.0.saturating_add(1), 0),
        false => (0, streak.1.saturating_add(1)),
    };
    let down = state.checked_down();
    if !down && streak.1 >= settings.unhealthy {
        state.set_checked_down(true);
        metrics.healthy.set(0);
        tracing::warn!(
            upstream,
            "upstream server failed its health checks; taken out"
        );
    } else if down && streak.0 >= settings.healthy {
        state.set_checked_down(false);
        metrics.healthy.set(1);
        tracing::info!(
            upstream,
            "upstream server passed its health checks; back in"
        );
    }
}

async fn probe(checks: &ActiveChecks, uri: &Uri) -> bool {
    let mut request = Request::new(super::full(bytes::Bytes::new()));
    *request.uri_mut() = uri.clone();
    let sent = tokio::time::timeout(
        checks.settings.timeout,
        checks.client.client.request(request),
    );
    match sent.await {
        Ok(Ok(response)) => response.status().is_success(),
        Ok(Err(_)) | Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streaks_take_a_server_out_and_bring_it_back() {
        let settings = CheckSettings {
            path: "/healthz".into(),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            healthy: 2,
            unhealthy: 3,
        };
        let families =
            super::super::balance::ServerFamilies::register(&prometheus::Registry::new());
        let metrics = families.server("u", "s");
        let state = ServerState::default();
        let mut streak = (0, 0);
        for ok in [false, false, true, false, false] {
            record(&settings, ok, &mut streak, &state, &metrics, "u");
            assert!(!state.checked_down(), "a success broke the failure streak");
        }
        record(&settings, false, &mut streak, &state, &metrics, "u");
        assert!(state.checked_down(), "three failures in a row");
        assert_eq!(metrics.healthy.get(), 0);
        record(&settings, true, &mut streak, &state, &metrics, "u");
        assert!(state.checked_down());
        record(&settings, true, &mut streak, &state, &metrics, "u");
        assert!(!state.checked_down(), "two successes in a row");
        assert_eq!(metrics.healthy.get(), 1);
    }
}
