//! When a failed upstream attempt may be sent again, and the budget that bounds retries.
//!
//! Rules:
//! - **Nothing reached the upstream**: the connection could not be made (refused, unreachable,
//!   TLS handshake failed). Such an attempt is retried for every method: the upstream never
//!   saw it.
//! - **Something may have reached it**: a reset or broken exchange after the request was
//!   written, or a response whose status is on `retry_on`. Retried only for idempotent methods
//!   (RFC 9110 9.2.2: GET, HEAD, OPTIONS, TRACE, PUT, DELETE) and only when `retry_on` names
//!   the condition (`reset`, `5xx`, `gateway_error` = 502/503/504, or one status code).
//! - **Never a body twice.** The request body is handed to the first attempt behind a
//!   [`Replayable`] slot; once an attempt has read from it, it is gone and no retry follows,
//!   whatever the failure. A request with a body is thus retried only when no byte of it was
//!   read (a connect failure).
//! - **Timeouts are not retried**: the time is spent.
//! - **Budget** (Envoy's retry budget): retries in flight on an upstream stay at or below
//!   `budget_percent` of its requests in flight, but `min_retry_concurrency` are always
//!   allowed. During an outage, retries then add a bounded fraction to the load instead of
//!   multiplying it.
//!
//! This module decides; `proxy::forward` sends.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Method, StatusCode};
use prometheus::IntCounter;

use super::{Body, BoxError};

/// A `retry_on` condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryOn {
    /// The exchange broke after the request was (maybe) written, before a response.
    Reset,
    /// Any 5xx response.
    Status5xx,
    /// 502, 503 or 504.
    GatewayError,
    /// One status code.
    Status(u16),
}

impl RetryOn {
    /// Parses one `retry_on` entry.
    pub fn parse(text: &str) -> Option<RetryOn> {
        match text {
            "reset" => Some(RetryOn::Reset),
            "5xx" => Some(RetryOn::Status5xx),
            "gateway_error" => Some(RetryOn::GatewayError),
            code => code
                .parse::<u16>()
                .ok()
                .filter(|code| (500..600).contains(code))
                .map(RetryOn::Status),
        }
    }

    fn matches_status(self, status: StatusCode) -> bool {
        let code = status.as_u16();
        match self {
            RetryOn::Reset => false,
            RetryOn::Status5xx => status.is_server_error(),
            RetryOn::GatewayError => matches!(code, 502..=504),
            RetryOn::Status(wanted) => code == wanted,
        }
    }
}

/// An upstream's retry settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Most retries of one request (0: never).
    pub retries: u32,
    pub retry_on: Vec<RetryOn>,
    /// Retries in flight allowed as a percentage of the upstream's requests in flight.
    pub budget_percent: u32,
    /// Retries in flight always allowed, whatever the percentage says.
    pub min_retry_concurrency: usize,
}

/// How an attempt ended, as far as retrying is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The connection was never made: nothing reached the upstream.
    ConnectFailed,
    /// The exchange broke after the request may have been written.
    Reset,
    /// A response with this status.
    Status(StatusCode),
}

fn idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

impl RetryPolicy {
    /// Whether `outcome` of attempt number `attempt` (0 = the first) may be retried, before
    /// the body and the budget are considered.
    pub fn allows(&self, attempt: u32, method: &Method, outcome: Outcome) -> bool {
        if attempt >= self.retries {
            return false;
        }
        match outcome {
            Outcome::ConnectFailed => true,
            Outcome::Reset => idempotent(method) && self.retry_on.contains(&RetryOn::Reset),
            Outcome::Status(status) => {
                idempotent(method) && self.retry_on.iter().any(|on| on.matches_status(status))
            }
        }
    }
}

/// Retries in flight on one upstream, against its budget.
pub struct RetryBudget {
    active: Arc<AtomicUsize>,
    pub sent: IntCounter,
    pub exhausted: IntCounter,
}

impl RetryBudget {
    pub fn new((sent, exhausted): (IntCounter, IntCounter)) -> RetryBudget {
        RetryBudget {
            active: Arc::default(),
            sent,
            exhausted,
        }
    }

    /// A place for one retry while `requests_in_flight` requests are in flight on the
    /// upstream, or `None` when the budget is spent.
    pub fn try_take(&self, policy: &RetryPolicy, requests_in_flight: usize) -> Option<RetryGuard> {
        let allowed = (requests_in_flight.saturating_mul(policy.budget_percent as usize) / 100)
            .max(policy.min_retry_concurrency);
        let taken = self
            .active
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |active| {
                (active < allowed).then_some(active + 1)
            })
            .is_ok();
        if !taken {
            self.exhausted.inc();
            return None;
        }
        self.sent.inc();
        Some(RetryGuard(Arc::clone(&self.active)))
    }
}

/// One retry in flight; gives its place back when dropped.
pub struct RetryGuard(Arc<AtomicUsize>);

impl Drop for RetryGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A request body that can be handed to another attempt as long as no attempt has read it.
pub struct Replayable {
    slot: Arc<Mutex<Option<Body>>>,
}

impl Replayable {
    pub fn new(body: Body) -> Replayable {
        Replayable {
            slot: Arc::new(Mutex::new(Some(body))),
        }
    }

    /// The body for one attempt. Reading it takes the body out of the slot for good.
    pub fn attempt(&self) -> Body {
        super::boxed(AttemptBody {
            slot: Arc::clone(&self.slot),
            taken: None,
        })
    }

    /// Whether no attempt has read from the body (a retry may still send it whole).
    pub fn untouched(&self) -> bool {
        self.slot
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .is_some()
    }
}

struct AttemptBody {
    slot: Arc<Mutex<Option<Body>>>,
    /// The body, once this attempt has started reading it.
    taken: Option<Body>,
}

impl AttemptBody {
    fn peek<T>(&self, f: impl FnOnce(Option<&Body>) -> T) -> T {
        match &self.taken {
            Some(body) => f(Some(body)),
            None => f(self
                .slot
                .lock()
                .unwrap_or_else(|poison| poison.into_inner())
                .as_ref()),
        }
    }
}

impl http_body::Body for AttemptBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.taken.is_none() {
            this.taken = this
                .slot
                .lock()
                .unwrap_or_else(|poison| poison.into_inner())
                .take();
        }
        match &mut this.taken {
            Some(body) => Pin::new(body).poll_frame(cx),
            // Another attempt has the body: this one must not send a part of it.
            None => Poll::Ready(Some(Err("request body already sent".into()))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.peek(|body| body.is_some_and(http_body::Body::is_end_stream))
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.peek(|body| body.map(http_body::Body::size_hint).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn policy(retry_on: &[RetryOn]) -> RetryPolicy {
        RetryPolicy {
            retries: 2,
            retry_on: retry_on.to_vec(),
            budget_percent: 20,
            min_retry_concurrency: 1,
        }
    }

    #[test]
    fn connect_failures_retry_any_method_others_only_idempotent_and_listed() {
        let none = policy(&[]);
        assert!(none.allows(0, &Method::POST, Outcome::ConnectFailed));
        assert!(
            !none.allows(2, &Method::GET, Outcome::ConnectFailed),
            "retries spent"
        );
        assert!(!none.allows(0, &Method::GET, Outcome::Reset));
        let listed = policy(&[RetryOn::Reset, RetryOn::GatewayError]);
        assert!(listed.allows(0, &Method::GET, Outcome::Reset));
        assert!(!listed.allows(0, &Method::POST, Outcome::Reset));
        assert!(listed.allows(0, &Method::PUT, Outcome::Status(StatusCode::BAD_GATEWAY)));
        assert!(!listed.allows(
            0,
            &Method::GET,
            Outcome::Status(StatusCode::INTERNAL_SERVER_ERROR)
        ));
        assert!(!listed.allows(0, &Method::PATCH, Outcome::Status(StatusCode::BAD_GATEWAY)));
        assert_eq!(RetryOn::parse("503"), Some(RetryOn::Status(503)));
        assert_eq!(RetryOn::parse("404"), None);
        assert_eq!(RetryOn::parse("connect"), None);
    }

    #[test]
    fn the_budget_allows_a_percentage_with_a_floor() {
        let families =
            super::super::balance::ServerFamilies::register(&prometheus::Registry::new());
        let budget = RetryBudget::new(families.retries("u"));
        let policy = policy(&[]);
        let first = budget.try_take(&policy, 0).expect("the floor");
        assert!(budget.try_take(&policy, 0).is_none(), "floor of 1 spent");
        let second = budget.try_take(&policy, 10).expect("20% of 10 = 2");
        assert!(budget.try_take(&policy, 10).is_none());
        drop((first, second));
        assert!(budget.try_take(&policy, 0).is_some());
        assert_eq!(budget.exhausted.get(), 2);
    }

    #[tokio::test]
    async fn a_body_read_by_one_attempt_is_gone_for_the_next() {
        let replayable = Replayable::new(super::super::full("abc"));
        drop(replayable.attempt());
        assert!(
            replayable.untouched(),
            "an attempt dropped unread leaves the body"
        );
        let first = replayable
            .attempt()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        assert_eq!(first, "abc");
        assert!(!replayable.untouched());
        assert!(replayable.attempt().collect().await.is_err());
    }
}
