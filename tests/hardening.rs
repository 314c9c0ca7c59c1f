//! Hardening limits and HTTP/2 (SPEC §2 `[server]`): every connection and header limit
//! configured small, the slow-loris and idle guards, and HTTP/2 requests a compliant client
//! would never send.
//!
//! HTTP/2 cases use a minimal frame writer ([`h2raw`]) rather than the `h2` crate, because
//! `h2`'s client refuses (UserError::MalformedHeaders) to send connection-specific headers, and
//! `http::Uri` refuses a `:path` holding CR LF: the point is to send them anyway.
//!
//! Everything binds 127.0.0.1:0 and every wait is bounded.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::config::start_public as start;
use support::gateway::{eventually, raw, read_until_close, TIMEOUT};
use support::h2raw;
use support::refusal::{assert_refused, assert_upstream_untouched, status_of, REFUSAL};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

// ---------------------------------------------------------------------------------------------
// Limits

/// Reads one response (head plus Content-Length or chunked body) from a kept-alive connection.
/// `None` if none completes within `within` or the peer closes first.
async fn read_response(stream: &mut TcpStream, within: Duration) -> Option<(u16, String)> {
    let deadline = tokio::time::Instant::now() + within;
    let mut bytes = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let head = text[..end].to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|l| l.trim().parse::<usize>().ok());
            let complete = match length {
                Some(length) => bytes.len() >= end + 4 + length,
                None => text[end..].contains("\r\n0\r\n\r\n"),
            };
            if complete {
                let status = text.get(9..12)?.parse().ok()?;
                return Some((status, text));
            }
        }
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => bytes.extend_from_slice(&buf[..n]),
            _ => return None,
        }
    }
}

/// Opens a connection and completes one keep-alive request on it.
async fn held_connection(addr: SocketAddr, path: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let (status, _) = read_response(&mut stream, TIMEOUT).await.expect("response");
    assert_eq!(status, 200, "{path}");
    stream
}

#[tokio::test]
async fn a_header_section_over_max_header_bytes_is_refused() {
    let (echo, gateway) = start("max_header_bytes = 8192").await;
    let bytes = format!(
        "GET /public/a HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "a".repeat(10 * 1024)
    );
    let reply = assert_refused(&gateway, &echo, "10 KB header", bytes.as_bytes()).await;
    assert_eq!(status_of(&reply), Some(431), "{:?}", reply.text());
}

#[tokio::test]
async fn more_headers_than_max_headers_are_refused() {
    let (echo, gateway) = start("max_headers = 10").await;
    let headers: String = (0..20).map(|i| format!("X-H{i}: v\r\n")).collect();
    let bytes = format!("GET /public/a HTTP/1.1\r\nHost: t\r\n{headers}\r\n");
    assert_refused(&gateway, &echo, "20 headers", bytes.as_bytes()).await;
    // Under the limit is fine.
    let headers: String = (0..5).map(|i| format!("X-H{i}: v\r\n")).collect();
    let bytes = format!("GET /public/a HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{headers}\r\n");
    let reply = raw(gateway.http_addr(), bytes.as_bytes(), REFUSAL).await;
    assert_eq!(status_of(&reply), Some(200), "{:?}", reply.text());
}

#[tokio::test]
async fn max_connections_holds_a_third_connection_until_one_closes() {
    let (_echo, gateway) = start("max_connections = 2").await;
    let addr = gateway.http_addr();
    let first = held_connection(addr, "/public/one").await;
    let _second = held_connection(addr, "/public/two").await;

    let mut third = TcpStream::connect(addr)
        .await
        .expect("connect (kernel backlog)");
    third
        .write_all(b"GET /public/three HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .expect("write");
    assert!(
        read_response(&mut third, Duration::from_millis(500))
            .await
            .is_none(),
        "a third connection is served while two are held"
    );
    drop(first);
    let (status, _) = read_response(&mut third, REFUSAL)
        .await
        .expect("the third connection is served once one closes");
    assert_eq!(status, 200);
}

#[tokio::test]
async fn max_connections_per_client_closes_a_third_connection() {
    let (_echo, gateway) = start("max_connections_per_client = 2").await;
    let addr = gateway.http_addr();
    let first = held_connection(addr, "/public/one").await;
    let _second = held_connection(addr, "/public/two").await;

    let mut third = TcpStream::connect(addr).await.expect("connect");
    let _ = third
        .write_all(b"GET /public/three HTTP/1.1\r\nHost: t\r\n\r\n")
        .await;
    let started = Instant::now();
    let reply = read_until_close(&mut third, REFUSAL).await;
    assert!(reply.closed, "third connection from one address is closed");
    assert!(reply.bytes.is_empty(), "and not served: {:?}", reply.text());
    assert!(started.elapsed() < Duration::from_secs(2), "closed at once");

    drop(first);
    let served = eventually(REFUSAL, || async {
        let reply = raw(
            addr,
            b"GET /public/again HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
            Duration::from_secs(2),
        )
        .await;
        status_of(&reply) == Some(200)
    })
    .await;
    assert!(served, "a slot frees once a held connection closes");
}

#[tokio::test]
async fn header_read_timeout_closes_a_slow_loris() {
    let (echo, gateway) = start("header_read_timeout = \"300ms\"").await;
    let addr = gateway.http_addr();

    // Half a request line, then silence.
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(b"GET /public/lor").await.expect("write");
    let started = Instant::now();
    let reply = read_until_close(&mut stream, REFUSAL).await;
    assert!(
        reply.closed,
        "stalled request head not closed within {REFUSAL:?}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "closed after {:?}",
        started.elapsed()
    );

    // A head dripped one byte every 50 ms keeps the connection busy but must still be cut:
    // the timeout covers the whole head, not the gap between bytes.
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(b"GET /public/drip HTTP/1.1\r\nHost: t\r\nX-Drip: ")
        .await
        .expect("write");
    let started = Instant::now();
    let mut closed = false;
    while started.elapsed() < REFUSAL {
        if stream.write_all(b"a").await.is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 1024];
        match tokio::time::timeout(Duration::from_millis(50), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            _ => {}
        }
    }
    assert!(closed, "dripping head not cut within {REFUSAL:?}");
    assert!(
        started.elapsed() < Duration::from_millis(2000),
        "dripping head cut after {:?}",
        started.elapsed()
    );
    assert_upstream_untouched(&echo, "slow loris");
}

#[tokio::test]
async fn idle_timeout_closes_an_idle_keep_alive_connection() {
    let (_echo, gateway) = start("idle_timeout = \"300ms\"").await;
    let mut stream = held_connection(gateway.http_addr(), "/public/once").await;
    let started = Instant::now();
    let reply = read_until_close(&mut stream, REFUSAL).await;
    assert!(
        reply.closed,
        "idle connection not closed within {REFUSAL:?}"
    );
    assert!(reply.bytes.is_empty(), "{:?}", reply.text());
    let idle = started.elapsed();
    assert!(idle < Duration::from_millis(1500), "closed after {idle:?}");
}

// ---------------------------------------------------------------------------------------------
// HTTP/2 (h2c prior knowledge), with raw frames

#[tokio::test]
async fn h2_connection_specific_headers_are_refused_and_never_forwarded() {
    let (echo, gateway) = start("").await;
    let addr = gateway.http_addr();

    // Control: the raw client works, so a refusal below is the server's doing.
    let mut conn = h2raw::H2Raw::connect(addr).await;
    conn.request(1, "/public/control", &[]).await;
    let outcome = conn.outcome(1, TIMEOUT).await;
    assert_eq!(outcome, h2raw::Outcome::Status(200));
    assert_eq!(echo.requests_seen().len(), 1);

    for (name, value) in [
        ("connection", "keep-alive"),
        ("transfer-encoding", "chunked"),
        ("te", "gzip"),
        ("keep-alive", "timeout=5"),
        ("upgrade", "websocket"),
    ] {
        let mut conn = h2raw::H2Raw::connect(addr).await;
        conn.request(1, "/public/bad", &[(name, value)]).await;
        let outcome = conn.outcome(1, REFUSAL).await;
        assert!(
            matches!(
                outcome,
                h2raw::Outcome::Reset(_) | h2raw::Outcome::GoAway(_) | h2raw::Outcome::Status(400)
            ),
            "{name}: {value}: {outcome:?}"
        );
    }
    let seen: Vec<String> = echo.requests_seen().into_iter().map(|s| s.path).collect();
    assert_eq!(
        seen,
        ["/public/control"],
        "nothing but the control was forwarded"
    );
}

#[tokio::test]
async fn h2_a_path_with_cr_lf_is_refused() {
    let (echo, gateway) = start("").await;
    let mut conn = h2raw::H2Raw::connect(gateway.http_addr()).await;
    conn.request(
        1,
        "/public/a HTTP/1.1\r\nX-Injected: 1\r\n\r\nGET /public/b",
        &[],
    )
    .await;
    let outcome = conn.outcome(1, REFUSAL).await;
    assert!(
        matches!(
            outcome,
            h2raw::Outcome::Reset(_) | h2raw::Outcome::GoAway(_) | h2raw::Outcome::Status(400)
        ),
        "{outcome:?}"
    );
    assert_upstream_untouched(&echo, "CR LF in :path");
}

#[tokio::test]
async fn h2_headers_over_max_header_list_size_are_refused() {
    let (echo, gateway) = start("max_header_bytes = 8192").await;
    let mut conn = h2raw::H2Raw::connect(gateway.http_addr()).await;
    assert_eq!(conn.setting(h2raw::MAX_HEADER_LIST_SIZE), Some(8192));
    let big = "a".repeat(10 * 1024);
    conn.request(1, "/public/big", &[("x-big", &big)]).await;
    let outcome = conn.outcome(1, REFUSAL).await;
    assert!(
        matches!(
            outcome,
            h2raw::Outcome::Reset(_) | h2raw::Outcome::GoAway(_) | h2raw::Outcome::Status(431)
        ),
        "{outcome:?}"
    );
    assert_upstream_untouched(&echo, "h2 header list too large");
}

#[tokio::test]
async fn h2_max_concurrent_streams_is_advertised_and_enforced() {
    let (echo, gateway) = start("http2_max_concurrent_streams = 2").await;
    let mut conn = h2raw::H2Raw::connect(gateway.http_addr()).await;
    assert_eq!(conn.setting(h2raw::MAX_CONCURRENT_STREAMS), Some(2));

    // A client that ignores the setting opens three slow streams at once.
    for id in [1, 3, 5] {
        conn.request(id, &format!("/public/slow?ms=1000&id={id}"), &[])
            .await;
    }
    let outcomes = conn.outcomes(&[1, 3, 5], TIMEOUT).await;
    let of = |id| {
        outcomes
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, o)| o.clone())
    };
    assert_eq!(of(1), Some(h2raw::Outcome::Status(200)), "{outcomes:?}");
    assert_eq!(of(3), Some(h2raw::Outcome::Status(200)), "{outcomes:?}");
    // The third is refused, or (if queued) answered only after the first two.
    match of(5) {
        Some(h2raw::Outcome::Reset(_)) => {
            let seen = echo.requests_seen();
            assert_eq!(seen.len(), 2, "refused stream not forwarded: {seen:?}");
        }
        Some(h2raw::Outcome::Status(200)) => {
            assert_eq!(outcomes.last().map(|(id, _)| *id), Some(5), "{outcomes:?}");
        }
        other => panic!("third stream: {other:?} in {outcomes:?}"),
    }
}
