//! Retries and timeouts to upstreams (issue #17): a refused connection is retried on another
//! server (any method, the body intact); a request that reached the upstream is retried only
//! for idempotent methods named by `retry_on`, never with a body already sent; a route's
//! `timeout` and `idle_timeout` win over the upstream's.

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use support::config::Config;
use support::echo::Echo;
use support::gateway::{get, open, with_body, Gateway};
use support::upstream::{refused_addr, Upstream};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// Reads each request head and its Content-Length body, then closes without answering.
async fn reset(mut stream: TcpStream) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            let n = stream.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                return;
            }
            seen.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&seen).to_lowercase();
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if seen.len() >= end + 4 + length {
                    return;
                }
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), read).await;
    // Dropped: the connection closes with no response.
}

fn config(upstream: &str, routes: &str) -> String {
    Config::new()
        .upstream_with("svc", &format!("connect_timeout = \"1s\"\n{upstream}"))
        .raw(routes)
        .catch_all("svc")
        .toml()
}

#[tokio::test]
async fn a_refused_connection_is_retried_on_another_server_body_intact() {
    let echo = Echo::start().await;
    let dead = refused_addr().await;
    // A high max_failures keeps the dead server in rotation, so retries happen often.
    let upstream = format!(
        "servers = [\"http://{dead}\", \"{}\"]\nmax_failures = 1000\nretries = 1",
        echo.url("")
    );
    let gateway = Gateway::from_toml(config(&upstream, "")).start().await;
    for i in 0..20 {
        let reply = gateway
            .send(with_body(Method::POST, "/orders", format!("order {i}")))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "request {i}");
        assert_eq!(reply.echoed().body_len, format!("order {i}").len() as u64);
    }
    assert_eq!(echo.requests_seen().len(), 20);
    let metrics = gateway.metrics().await;
    let retried = metrics
        .lines()
        .find(|l| l.starts_with("authgate_upstream_retries_total{") && l.contains("sent"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(
        retried >= 1.0,
        "some requests went to the dead server first"
    );
}

#[tokio::test]
async fn a_post_that_reached_the_upstream_is_never_retried() {
    let resetter = Upstream::start(reset).await;
    let upstream = format!(
        "url = \"http://{}\"\nretries = 2\nretry_on = [\"reset\", \"5xx\"]\nmax_failures = 1000",
        resetter.addr()
    );
    let gateway = Gateway::from_toml(config(&upstream, "")).start().await;

    let reply = gateway
        .send(with_body(Method::POST, "/pay", "charge once"))
        .await;
    reply.assert_error(502, "bad_gateway");
    assert_eq!(resetter.connections(), 1, "POST: sent once");

    // PUT is idempotent and `reset` is listed, but its body was already sent: no retry.
    let reply = gateway.send(with_body(Method::PUT, "/doc", "v2")).await;
    reply.assert_error(502, "bad_gateway");
    assert_eq!(
        resetter.connections(),
        2,
        "a streamed body is never sent twice"
    );

    // GET without a body: retried twice.
    gateway.get("/read").await.assert_error(502, "bad_gateway");
    assert_eq!(resetter.connections(), 5, "GET: one try and two retries");
}

#[tokio::test]
async fn without_retry_on_a_reset_get_is_not_retried() {
    let resetter = Upstream::start(reset).await;
    let upstream = format!("url = \"http://{}\"\nretries = 2", resetter.addr());
    let gateway = Gateway::from_toml(config(&upstream, "")).start().await;
    gateway.get("/read").await.assert_error(502, "bad_gateway");
    assert_eq!(resetter.connections(), 1);
}

#[tokio::test]
async fn a_route_timeout_wins_over_the_upstream_timeout() {
    let echo = Echo::start().await;
    let upstream = format!("url = \"{}\"\ntimeout = \"300ms\"", echo.url(""));
    let routes = r#"
[[routes]]
name = "short"
path_prefix = "/short"
upstream = "svc"
public = true
timeout = "100ms"

[[routes]]
name = "long"
path_prefix = "/long"
upstream = "svc"
public = true
timeout = "2s"
"#;
    let gateway = Gateway::from_toml(config(&upstream, routes)).start().await;
    let started = Instant::now();
    gateway
        .get("/short/slow?ms=250")
        .await
        .assert_error(504, "gateway_timeout");
    assert!(started.elapsed() < Duration::from_millis(250));
    // Longer than the upstream's 300ms, within the route's 2s.
    assert_eq!(
        gateway.get("/long/slow?ms=600").await.status,
        StatusCode::OK
    );
    // No route timeout: the upstream's applies.
    gateway
        .get("/other/slow?ms=600")
        .await
        .assert_error(504, "gateway_timeout");
}

#[tokio::test]
async fn a_route_idle_timeout_ends_a_quiet_stream() {
    let echo = Echo::start().await;
    let upstream = format!("url = \"{}\"\nidle_timeout = \"2s\"", echo.url(""));
    let routes = r#"
[[routes]]
name = "events"
path_prefix = "/events"
upstream = "svc"
public = true
idle_timeout = "150ms"
"#;
    let gateway = Gateway::from_toml(config(&upstream, routes)).start().await;
    // Chunks 400ms apart: the route's 150ms idle timer ends the stream.
    let response = open(gateway.http_addr(), get("/events/chunks?n=3&ms=400")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let collected = tokio::time::timeout(Duration::from_secs(5), response.into_body().collect())
        .await
        .expect("ends within the bound");
    assert!(collected.is_err(), "the stream is cut, not completed");
    // The upstream's 2s idle timer lets the same stream finish elsewhere.
    let response = open(gateway.http_addr(), get("/other/chunks?n=3&ms=200")).await;
    let body: Bytes = response
        .into_body()
        .collect()
        .await
        .expect("complete")
        .to_bytes();
    assert_eq!(body, "chunk-0\nchunk-1\nchunk-2\n");
}
