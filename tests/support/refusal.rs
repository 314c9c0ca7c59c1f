//! The refusal contract of malformed and hostile HTTP/1 requests, shared by the hardening
//! tests: a 4xx, the connection closed, nothing forwarded, and the gateway still serving.

use std::time::Duration;

use super::echo::Echo;
use super::gateway::{raw, Gateway, RawReply};

/// How long a refusal may take to arrive.
pub const REFUSAL: Duration = Duration::from_secs(5);

/// The status of the first response, if a status line arrived.
pub fn status_of(reply: &RawReply) -> Option<u16> {
    let text = reply.text();
    let line = text.lines().next()?;
    line.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// The upstream saw no request at all.
#[track_caller]
pub fn assert_upstream_untouched(echo: &Echo, case: &str) {
    let seen: Vec<String> = echo.requests_seen().into_iter().map(|s| s.path).collect();
    assert!(seen.is_empty(), "{case}: the upstream received {seen:?}");
}

/// Sends `bytes` on a fresh connection and asserts the HTTP/1 refusal contract: a 4xx (400
/// unless hyper refused it before our code with its own 4xx), the connection closed, and the
/// upstream never reached. Then the gateway still serves.
pub async fn assert_refused(gateway: &Gateway, echo: &Echo, case: &str, bytes: &[u8]) -> RawReply {
    let before = echo.requests_seen().len();
    let reply = raw(gateway.http_addr(), bytes, REFUSAL).await;
    let status = status_of(&reply);
    let mut problems = Vec::new();
    if !status.is_some_and(|s| (400..500).contains(&s)) {
        problems.push(format!("expected a 4xx, got {status:?}"));
    }
    if !reply.closed {
        problems.push("connection left open".to_owned());
    }
    let responses = reply.text().matches("HTTP/1.1 ").count();
    if responses != 1 {
        problems.push(format!("{responses} responses"));
    }
    // Only what this case sent counts (earlier cases end with a request of their own).
    let seen: Vec<String> = echo
        .requests_seen()
        .into_iter()
        .skip(before)
        .map(|s| s.path)
        .collect();
    if !seen.is_empty() {
        problems.push(format!("the upstream received {seen:?}"));
    }
    assert!(
        problems.is_empty(),
        "{case}: {}\nreply: {:?}",
        problems.join("; "),
        reply.text()
    );
    let after = gateway.get("/public/after").await;
    assert_eq!(after.status, 200, "{case}: gateway still serves");
    reply
}
