//! Hardening of HTTP/1.1 request framing (SPEC §3 step 1, §5): framing that could smuggle a
//! second request past the gateway (RFC 9112 §6, §2.2, §5.2), and denials that must not leave
//! unread body bytes on a kept-alive connection.
//!
//! Every case asserts what the client sees (a 4xx, a closed connection) and that the upstream
//! (the echo) never saw the request. Raw sockets throughout: a compliant client would never
//! send these bytes. Limits and HTTP/2 are in `hardening.rs`, misbehaving peers in
//! `hardening_peers.rs`.
//!
//! Everything binds 127.0.0.1:0 and every wait is bounded.

mod support;

use support::config::Config;
use support::echo::Echo;
use support::gateway::{raw, Gateway};
use support::refusal::{assert_refused, assert_upstream_untouched, status_of, REFUSAL};

/// A gateway config on free ports: `server` lines go into `[server]`. Routes: `/public`,
/// `/private` (token needed), `/allowlisted` (10.0.0.0/8 only) and `/small` (10-byte bodies),
/// all to the echo.
fn config(server: &str, echo: &Echo) -> String {
    Config::new()
        .server(server)
        .test_issuer()
        .echo(echo)
        .public("/public")
        .route("private", "/private", "")
        .route(
            "allowlisted",
            "/allowlisted",
            "public = true\nallow = [\"10.0.0.0/8\"]",
        )
        .route("small", "/small", "public = true\nmax_body_bytes = 10")
        .toml()
}

async fn start(server: &str) -> (Echo, Gateway) {
    let echo = Echo::start().await;
    let gateway = Gateway::from_toml(config(server, &echo)).start().await;
    (echo, gateway)
}

/// A smuggled request that must never reach the upstream.
const SMUGGLED: &str = "GET /public/smuggled HTTP/1.1\r\nHost: t\r\n\r\n";

// ---------------------------------------------------------------------------------------------
// HTTP/1.1 framing (RFC 9112 §6, §2.2, §5.2)

#[tokio::test]
async fn content_length_with_transfer_encoding_is_400_and_closed() {
    let (echo, gateway) = start("").await;
    for (case, head) in [
        (
            "CL then TE",
            "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",
        ),
        (
            "TE then CL",
            "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n",
        ),
    ] {
        let bytes = format!("POST /public/a HTTP/1.1\r\nHost: t\r\n{head}\r\n0\r\n\r\n{SMUGGLED}");
        let reply = assert_refused(&gateway, &echo, case, bytes.as_bytes()).await;
        reply.assert_error(400, "invalid_request");
        assert_eq!(
            reply.header("connection").as_deref(),
            Some("close"),
            "{case}"
        );
    }
}

#[tokio::test]
async fn two_different_content_lengths_are_refused() {
    let (echo, gateway) = start("").await;
    let bytes = b"POST /public/a HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!";
    assert_refused(&gateway, &echo, "two Content-Length", bytes).await;
}

#[tokio::test]
async fn a_content_length_list_is_refused() {
    let (echo, gateway) = start("").await;
    let bytes = b"POST /public/a HTTP/1.1\r\nHost: t\r\nContent-Length: 5, 6\r\n\r\nhello!";
    assert_refused(&gateway, &echo, "Content-Length: 5, 6", bytes).await;
}

#[tokio::test]
async fn an_obs_fold_header_line_is_refused() {
    let (echo, gateway) = start("").await;
    let bytes = b"GET /public/a HTTP/1.1\r\nHost: t\r\nX-A: a\r\n  folded\r\n\r\n";
    assert_refused(&gateway, &echo, "obs-fold", bytes).await;
}

#[tokio::test]
async fn an_invalid_chunk_size_is_refused() {
    let (echo, gateway) = start("").await;
    let bytes = format!(
        "POST /public/a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n{SMUGGLED}"
    );
    assert_refused(&gateway, &echo, "chunk size zz", bytes.as_bytes()).await;
}

#[tokio::test]
async fn bare_lf_line_endings_are_refused() {
    let (echo, gateway) = start("").await;
    let bytes = b"GET /public/a HTTP/1.1\nHost: t\nX-A: b\n\n";
    assert_refused(&gateway, &echo, "bare LF", bytes).await;
}

#[tokio::test]
async fn a_bare_cr_inside_a_header_is_refused() {
    let (echo, gateway) = start("").await;
    let bytes = b"GET /public/a HTTP/1.1\r\nHost: t\r\nX-A: a\rContent-Length: 5\r\n\r\nhello";
    assert_refused(&gateway, &echo, "bare CR", bytes).await;
}

#[tokio::test]
async fn transfer_codings_other_than_a_final_chunked_are_refused() {
    for coding in ["chunked, gzip", "xchunked"] {
        let (echo, gateway) = start("").await;
        let bytes = format!(
            "POST /public/a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: {coding}\r\n\r\n5\r\nhello\r\n0\r\n\r\n{SMUGGLED}"
        );
        assert_refused(&gateway, &echo, coding, bytes.as_bytes()).await;
    }
}

/// `gzip, chunked` is well framed (chunked is last), but the gateway removes Transfer-Encoding
/// as hop-by-hop without undoing the gzip coding, so the upstream would take gzip bytes for the
/// body itself. RFC 9112 §6.1 allows 501 or 400; the README ("a transfer coding other than
/// plain `chunked`") and SPEC §5 promise 400 `invalid_request` and a closed connection, and it
/// must not be forwarded.
#[tokio::test]
async fn an_unknown_transfer_coding_before_chunked_is_not_forwarded() {
    let (echo, gateway) = start("").await;
    let bytes = b"POST /public/a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    let reply = raw(gateway.http_addr(), bytes, REFUSAL).await;
    assert_upstream_untouched(&echo, "gzip, chunked");
    reply.assert_error(400, "invalid_request");
    assert!(reply.closed, "gzip, chunked: connection left open");
}

#[tokio::test]
async fn an_oversized_request_line_is_refused() {
    let (echo, gateway) = start("max_request_line_bytes = 100\nmax_header_bytes = 8192").await;

    // Over max_request_line_bytes: the gateway's own 400.
    let path = format!("/public/{}", "a".repeat(200));
    let request = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let reply = raw(gateway.http_addr(), request.as_bytes(), REFUSAL).await;
    reply.assert_error(400, "invalid_request");

    // Exactly at the limit is fine.
    let path = format!("/public/{}", "a".repeat(100 - "/public/".len()));
    assert_eq!(gateway.get(&path).await.status, 200);
    assert_eq!(echo.requests_seen().len(), 1);

    // Over max_header_bytes: refused by the parser, closed.
    let path = format!("/public/{}", "a".repeat(10_000));
    let request = format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n");
    let reply = raw(gateway.http_addr(), request.as_bytes(), REFUSAL).await;
    assert!(
        status_of(&reply).is_some_and(|s| (400..500).contains(&s)),
        "{:?}",
        reply.text()
    );
    assert!(reply.closed, "closed after an oversized request line");
    assert_eq!(
        echo.requests_seen().len(),
        1,
        "nothing more reached the upstream"
    );
}

// ---------------------------------------------------------------------------------------------
// Early denials with a body: the response comes, the connection closes, the body (a request)
// is never parsed as the next request.

async fn denial_closes(path: &str, expect: (u16, &str), declared: Option<usize>) {
    let (echo, gateway) = start("").await;
    let body = match declared {
        Some(length) => format!("{SMUGGLED}{}", "x".repeat(length - SMUGGLED.len())),
        None => SMUGGLED.to_owned(),
    };
    let bytes = format!(
        "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let reply = raw(gateway.http_addr(), bytes.as_bytes(), REFUSAL).await;
    reply.assert_error(expect.0, expect.1);
    assert!(reply.closed, "{path}: connection closed after the denial");
    assert_eq!(
        reply.text().matches("HTTP/1.1 ").count(),
        1,
        "{}",
        reply.text()
    );
    assert_upstream_untouched(&echo, path);
}

#[tokio::test]
async fn a_401_with_a_body_closes_the_connection() {
    denial_closes("/private/a", (401, "missing_token"), None).await;
}

#[tokio::test]
async fn a_403_with_a_body_closes_the_connection() {
    denial_closes("/allowlisted/a", (403, "ip_not_allowed"), None).await;
}

#[tokio::test]
async fn a_404_with_a_body_closes_the_connection() {
    denial_closes("/nowhere", (404, "no_route"), None).await;
}

#[tokio::test]
async fn a_413_with_a_body_closes_the_connection() {
    denial_closes("/small/a", (413, "payload_too_large"), Some(100)).await;
}

// ---------------------------------------------------------------------------------------------
// Body limits (route `max_body_bytes`)

#[tokio::test]
async fn a_declared_body_over_max_body_bytes_is_413() {
    let (echo, gateway) = start("").await;
    let bytes = b"POST /small/a HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello world";
    let reply = raw(gateway.http_addr(), bytes, REFUSAL).await;
    reply.assert_error(413, "payload_too_large");
    assert_upstream_untouched(&echo, "413");
    let bytes = b"POST /small/a HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\nConnection: close\r\n\r\nhello worl";
    let reply = raw(gateway.http_addr(), bytes, REFUSAL).await;
    assert_eq!(status_of(&reply), Some(200), "{:?}", reply.text());
}

/// A chunked body declares no length, so the limit can only be enforced while streaming: the
/// client must still get 413, not a 502 blaming the upstream, and the upstream must never
/// receive more than the limit.
#[tokio::test]
async fn a_streamed_body_over_max_body_bytes_is_413() {
    let (echo, gateway) = start("").await;
    let body = "x".repeat(100);
    let bytes = format!(
        "POST /small/a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        body.len()
    );
    let reply = raw(gateway.http_addr(), bytes.as_bytes(), REFUSAL).await;
    let received = echo.body_bytes_received();
    assert!(
        received <= 10,
        "the upstream received {received} body bytes"
    );
    assert!(reply.closed, "closed: {:?}", reply.text());
    reply.assert_error(413, "payload_too_large");
}
