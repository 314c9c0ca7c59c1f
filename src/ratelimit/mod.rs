//! Rate limits (SPEC §7.4): named GCRA policies attached to routes.
//!
//! Rules, and why:
//! - A policy is a GCRA (generic cell rate) limit: `count` requests per window, at most
//!   `burst` at once. GCRA keeps one timestamp per key, so a limit costs no timer and no
//!   background work.
//! - Each request is judged by every policy its route lists, in the route's order; the first
//!   refusal answers (429 `rate_limited`). Policies keyed on `client_address` alone run before
//!   the token step (a flood is stopped before any signature work); every other policy runs
//!   after authentication, so an unauthenticated flood cannot spend a client's budget.
//! - Local state is bounded: per policy at most [`MAX_KEYS`] keys are kept (a moka cache with
//!   TinyLFU admission), so a flood of distinct keys cannot grow memory, and cannot push a
//!   busy key out in favour of one-off keys.
//! - With `[rate_limit_store]` the state lives in Redis ([`store`]); when the store fails the
//!   `on_store_error` rule decides, never a hang.
//! - IPv6 client addresses are keyed by their /64: one host holds a whole /64 and could
//!   otherwise mint a fresh budget per address.
//! - Headers follow draft-ietf-httpapi-ratelimit-headers-10 (structured fields):
//!   `RateLimit-Policy: "name";q=10;w=1` and `RateLimit: "name";r=0;t=1`.

pub mod store;

use std::fmt::Write as _;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, MonotonicClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use http::{HeaderName, HeaderValue};

use self::store::{Store, StoreVerdict};
use crate::metrics::PolicyMetrics;

/// `RateLimit-Policy` (draft-ietf-httpapi-ratelimit-headers-10).
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit` (draft-ietf-httpapi-ratelimit-headers-10).
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// Most keys one policy keeps locally; beyond it the least valuable keys are dropped (their
/// next request starts with a full burst).
pub const MAX_KEYS: u64 = 100_000;

/// What a policy's key is made of (`key = "client_id"`, or a list for a combination).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPart {
    ClientId,
    Subject,
    ApiKey,
    ClientAddress,
    Route,
}

impl KeyPart {
    pub fn from_name(name: &str) -> Option<KeyPart> {
        match name {
            "client_id" => Some(KeyPart::ClientId),
            "subject" => Some(KeyPart::Subject),
            "api_key" => Some(KeyPart::ApiKey),
            "client_address" => Some(KeyPart::ClientAddress),
            "route" => Some(KeyPart::Route),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            KeyPart::ClientId => "client_id",
            KeyPart::Subject => "subject",
            KeyPart::ApiKey => "api_key",
            KeyPart::ClientAddress => "client_address",
            KeyPart::Route => "route",
        }
    }

    /// Whether the part needs a verified identity.
    pub fn needs_identity(self) -> bool {
        match self {
            KeyPart::ClientId | KeyPart::Subject | KeyPart::ApiKey => true,
            KeyPart::ClientAddress | KeyPart::Route => false,
        }
    }
}

/// The window of a rate: `N/s`, `N/m`, `N/h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    Second,
    Minute,
    Hour,
}

impl Window {
    pub fn seconds(self) -> u64 {
        match self {
            Window::Second => 1,
            Window::Minute => 60,
            Window::Hour => 3600,
        }
    }
}

/// One `[[rate_limits]]` entry as configured; equal specs share state across reloads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySpec {
    pub name: String,
    pub key: Vec<KeyPart>,
    /// N of `N/window`.
    pub count: NonZeroU32,
    pub window: Window,
    pub burst: NonZeroU32,
}

impl PolicySpec {
    /// Judged before the token step: keyed on the client address alone.
    pub fn early(&self) -> bool {
        self.key.iter().all(|part| *part == KeyPart::ClientAddress)
    }

    /// The time one request's worth of budget takes to come back.
    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.window.seconds()) / self.count.get()
    }

    fn quota(&self) -> Quota {
        // `interval` is at least 1/u32::MAX s, never zero.
        Quota::with_period(self.interval())
            .unwrap_or_else(|| Quota::per_second(self.count))
            .allow_burst(self.burst)
    }

    /// This policy's `RateLimit-Policy` list member.
    pub fn policy_item(&self) -> String {
        format!(
            "\"{}\";q={};w={}",
            self.name,
            self.count,
            self.window.seconds()
        )
    }
}

/// What a request is keyed by; `None` where the request has no such fact.
#[derive(Debug, Default, Clone, Copy)]
pub struct Facts<'a> {
    pub route: &'a str,
    pub client: Option<IpAddr>,
    pub client_id: Option<&'a str>,
    pub subject: Option<&'a str>,
    /// The id of the API key that authenticated the request.
    pub api_key: Option<&'a str>,
}

/// A built key: `store` is unambiguous (length-prefixed parts), `shown` is for `explain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub store: String,
    pub shown: String,
}

/// The key of `spec` for a request, or `None` when the policy does not apply to it: an
/// `api_key` limit applies only to requests authenticated by an API key. A missing client id
/// or subject is one shared bucket (`-`), never a way around the limit.
pub fn key_for(spec: &PolicySpec, facts: &Facts<'_>) -> Option<Key> {
    let mut key = Key {
        store: String::new(),
        shown: String::new(),
    };
    for part in &spec.key {
        let value: String = match part {
            KeyPart::ClientId => facts.client_id.unwrap_or("-").to_owned(),
            KeyPart::Subject => facts.subject.unwrap_or("-").to_owned(),
            KeyPart::ApiKey => facts.api_key?.to_owned(),
            KeyPart::Route => facts.route.to_owned(),
            KeyPart::ClientAddress => match facts.client {
                Some(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
                    let net = ipnet::Ipv6Net::new(v6, 64).map(|net| net.trunc());
                    net.map_or_else(|_| v6.to_string(), |net| net.to_string())
                }
                Some(IpAddr::V6(v6)) => v6.to_canonical().to_string(),
                Some(addr) => addr.to_string(),
                None => "unknown".to_owned(),
            },
        };
        let _ = write!(key.store, "{}:{value}", value.len());
        if !key.shown.is_empty() {
            key.shown.push(' ');
        }
        let _ = write!(key.shown, "{}={value:?}", part.name());
    }
    Some(key)
}

/// One judgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Passed; `remaining` requests may follow at once, the budget is full after `reset`.
    Allowed { remaining: u32, reset: Duration },
    /// Refused; the next request can pass after `retry_after`.
    Limited { retry_after: Duration },
}

impl Verdict {
    /// The `RateLimit` list member of this verdict under `name`.
    pub fn item(&self, name: &str) -> String {
        match self {
            Verdict::Allowed { remaining, reset } => {
                format!("\"{name}\";r={remaining};t={}", whole_seconds(*reset, 0))
            }
            Verdict::Limited { retry_after } => {
                format!("\"{name}\";r=0;t={}", whole_seconds(*retry_after, 1))
            }
        }
    }
}

/// `duration` rounded up to whole seconds, at least `min`.
pub fn whole_seconds(duration: Duration, min: u64) -> u64 {
    let seconds = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    seconds.max(min)
}

type Cell<C> = RateLimiter<NotKeyed, InMemoryState, C, StateInformationMiddleware>;

/// Per-key GCRA state of one policy in this process, bounded to `max_keys` keys.
pub struct LocalLimiter<C: Clock = MonotonicClock> {
    quota: Quota,
    burst: u32,
    interval: Duration,
    clock: C,
    cells: moka::sync::Cache<String, Arc<Cell<C>>>,
}

impl LocalLimiter<MonotonicClock> {
    pub fn new(spec: &PolicySpec) -> LocalLimiter {
        LocalLimiter::with_clock(spec, MAX_KEYS, MonotonicClock)
    }
}

impl<C> LocalLimiter<C>
where
    C: Clock + Clone + Send + Sync + 'static,
{
    pub fn with_clock(spec: &PolicySpec, max_keys: u64, clock: C) -> LocalLimiter<C> {
        LocalLimiter {
            quota: spec.quota(),
            burst: spec.burst.get(),
            interval: spec.interval(),
            clock,
            cells: moka::sync::Cache::new(max_keys),
        }
    }

    /// Spends one request of `key`'s budget, or refuses.
    pub fn check(&self, key: &str) -> Verdict {
        let cell = self.cells.get_with_by_ref(key, || {
            Arc::new(
                RateLimiter::direct_with_clock(self.quota, self.clock.clone())
                    .with_middleware::<StateInformationMiddleware>(),
            )
        });
        match cell.check() {
            Ok(state) => {
                let remaining = state.remaining_burst_capacity();
                Verdict::Allowed {
                    remaining,
                    reset: self.interval * self.burst.saturating_sub(remaining),
                }
            }
            Err(not_until) => Verdict::Limited {
                retry_after: not_until.wait_time_from(self.clock.now()),
            },
        }
    }

    /// Keys held (after pending maintenance).
    pub fn keys(&self) -> u64 {
        self.cells.run_pending_tasks();
        self.cells.entry_count()
    }
}

/// A compiled policy: its spec, its local state (kept across reloads while the spec is
/// unchanged), the shared store if any, and its metrics.
pub struct Policy {
    pub spec: PolicySpec,
    pub local: Arc<LocalLimiter>,
    pub store: Option<Arc<Store>>,
    /// The `RateLimit-Policy` value of a refusal by this policy.
    pub policy_header: HeaderValue,
    pub metrics: PolicyMetrics,
}

impl Policy {
    /// Judges one request under `key`, counting the result.
    pub async fn check(&self, key: &Key) -> Verdict {
        let (verdict, store_error) = match &self.store {
            None => (self.local.check(&key.store), false),
            Some(store) => match store.check(&self.spec, &key.store, &self.local).await {
                StoreVerdict::Judged(verdict) => (verdict, false),
                StoreVerdict::Fallback(verdict) => (verdict, true),
            },
        };
        let counter = match (store_error, verdict) {
            (true, _) => &self.metrics.store_error,
            (false, Verdict::Allowed { .. }) => &self.metrics.allowed,
            (false, Verdict::Limited { .. }) => &self.metrics.limited,
        };
        counter.inc();
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    fn spec(rate: u32, window: Window, burst: u32, key: Vec<KeyPart>) -> PolicySpec {
        PolicySpec {
            name: "p".into(),
            key,
            count: NonZeroU32::new(rate).unwrap(),
            window,
            burst: NonZeroU32::new(burst).unwrap(),
        }
    }

    #[test]
    fn refusals_start_exactly_after_the_burst_and_budget_returns_at_the_rate() {
        let clock = FakeRelativeClock::default();
        let spec = spec(10, Window::Second, 5, vec![KeyPart::ClientId]);
        let limiter = LocalLimiter::with_clock(&spec, 100, clock.clone());
        for expected in (0..5).rev() {
            match limiter.check("a") {
                Verdict::Allowed { remaining, .. } => assert_eq!(remaining, expected),
                other => panic!("expected allowed, got {other:?}"),
            }
        }
        assert_eq!(
            limiter.check("a"),
            Verdict::Limited {
                retry_after: Duration::from_millis(100)
            }
        );
        // Another key has its own budget.
        assert!(matches!(
            limiter.check("b"),
            Verdict::Allowed { remaining: 4, .. }
        ));
        // One interval later exactly one more request passes.
        clock.advance(Duration::from_millis(100));
        assert!(matches!(
            limiter.check("a"),
            Verdict::Allowed { remaining: 0, .. }
        ));
        assert!(matches!(limiter.check("a"), Verdict::Limited { .. }));
        // After a full burst's worth of time the whole burst is back.
        clock.advance(Duration::from_millis(500));
        for _ in 0..5 {
            assert!(matches!(limiter.check("a"), Verdict::Allowed { .. }));
        }
        assert!(matches!(limiter.check("a"), Verdict::Limited { .. }));
    }

    #[test]
    fn a_flood_of_distinct_keys_keeps_memory_bounded() {
        let clock = FakeRelativeClock::default();
        let spec = spec(1, Window::Hour, 1, vec![KeyPart::ClientAddress]);
        let limiter = LocalLimiter::with_clock(&spec, 1_000, clock);
        for n in 0..20_000u32 {
            let _ = limiter.check(&n.to_string());
        }
        let held = limiter.keys();
        assert!(held <= 1_000, "{held} keys held, bound is 1000");
    }

    #[test]
    fn headers_follow_the_structured_field_form() {
        let spec = spec(10, Window::Second, 10, vec![KeyPart::ClientId]);
        assert_eq!(spec.policy_item(), "\"p\";q=10;w=1");
        let limited = Verdict::Limited {
            retry_after: Duration::from_millis(100),
        };
        assert_eq!(limited.item("p"), "\"p\";r=0;t=1");
        let allowed = Verdict::Allowed {
            remaining: 3,
            reset: Duration::from_millis(1500),
        };
        assert_eq!(allowed.item("p"), "\"p\";r=3;t=2");
        assert_eq!(whole_seconds(Duration::ZERO, 1), 1);
        assert_eq!(whole_seconds(Duration::from_secs(60), 1), 60);
    }

    #[test]
    fn keys_are_unambiguous_and_ipv6_is_keyed_by_its_64() {
        let spec2 = spec(
            1,
            Window::Second,
            1,
            vec![KeyPart::ClientId, KeyPart::Route],
        );
        let a = Facts {
            route: "c",
            client_id: Some("ab"),
            ..Facts::default()
        };
        let b = Facts {
            route: "bc",
            client_id: Some("a"),
            ..Facts::default()
        };
        assert_ne!(key_for(&spec2, &a), key_for(&spec2, &b));
        let by_address = spec(1, Window::Second, 1, vec![KeyPart::ClientAddress]);
        let one = Facts {
            client: Some("2001:db8::1".parse().unwrap()),
            ..Facts::default()
        };
        let two = Facts {
            client: Some("2001:db8::ffff:2".parse().unwrap()),
            ..Facts::default()
        };
        assert_eq!(key_for(&by_address, &one), key_for(&by_address, &two));
        // A missing client id is one shared bucket; an api_key limit skips key-less requests.
        let by_client = spec(1, Window::Second, 1, vec![KeyPart::ClientId]);
        assert_eq!(
            key_for(&by_client, &Facts::default()).map(|k| k.shown),
            Some("client_id=\"-\"".to_owned())
        );
        let by_key = spec(1, Window::Second, 1, vec![KeyPart::ApiKey]);
        assert_eq!(key_for(&by_key, &Facts::default()), None);
    }
}
