//! The metric children that requests count with, resolved once per snapshot (per route, per
//! upstream, per rate-limit policy), so the hot path does no label hashing.

use std::sync::{Arc, OnceLock};

use prometheus::{Histogram, IntCounter, IntCounterVec, IntGauge};

/// Per-route metric children.
#[derive(Clone)]
pub struct RouteMetrics {
    pub(super) name: String,
    /// Children for the usual status codes, created on first use (no zero series), then
    /// found without hashing labels.
    pub(super) codes: Arc<[(u16, OnceLock<IntCounter>)]>,
    pub(super) requests: IntCounterVec,
    pub(super) duration: Histogram,
    pub(super) allow_public: IntCounter,
    pub(super) allow_token: IntCounter,
    pub(super) decisions: IntCounterVec,
}

impl RouteMetrics {
    pub fn request(&self, status: u16, seconds: f64) {
        match self.codes.iter().find(|(code, _)| *code == status) {
            Some((_, counter)) => counter
                .get_or_init(|| {
                    self.requests
                        .with_label_values(&[&self.name, code_str(status)])
                })
                .inc(),
            None => self
                .requests
                .with_label_values(&[&self.name, code_str(status)])
                .inc(),
        }
        self.duration.observe(seconds);
    }

    pub fn allowed(&self, public: bool) {
        if public {
            self.allow_public.inc()
        } else {
            self.allow_token.inc()
        }
    }

    /// `reason` is an error code or a token failure kind (closed sets).
    pub fn denied(&self, reason: &str) {
        self.decisions
            .with_label_values(&[&self.name, "deny", reason])
            .inc();
    }
}

/// `authgate_rate_limit_decisions_total` children of one policy.
#[derive(Clone)]
pub struct PolicyMetrics {
    pub allowed: IntCounter,
    pub limited: IntCounter,
    pub store_error: IntCounter,
}

#[derive(Clone)]
pub struct UpstreamMetrics {
    pub duration: Histogram,
    /// Requests in flight to the upstream (holding a place under its caps).
    pub in_flight: IntGauge,
    /// Requests refused because a cap was reached.
    pub refused: IntCounter,
}

/// Status codes as label text without allocating: one table of their texts, built once.
fn code_str(code: u16) -> &'static str {
    static TABLE: OnceLock<Vec<String>> = OnceLock::new();
    let table = TABLE.get_or_init(|| (0..1000).map(|c| c.to_string()).collect());
    table.get(usize::from(code)).map_or("other", String::as_str)
}
