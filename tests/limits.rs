//! Limits that hold for every kind of connection (SPEC §6): the time a request head may take
//! and the wait between keep-alive requests, over HTTP/1 and HTTP/2 alike; the drain; the
//! first-head framing checks after leading empty lines.
//!
//! HTTP/2 cases write raw frames ([`h2`]): the point is to send a header block slowly, or a
//! frame a byte at a time, which no client library does.
//!
//! Everything binds 127.0.0.1:0 and every wait is bounded.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::config::{public_echo, start_public as start, Config};
use support::echo::Echo;
use support::gateway::{read_until_close, Gateway, TIMEOUT};
use support::h2raw as h2;
use support::refusal::{assert_refused, assert_upstream_untouched};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads one response (head plus Content-Length body) from a kept-alive connection.
/// `None` if none completes within `within` or the peer closes first.
async fn read_response(stream: &mut TcpStream, within: Duration) -> Option<u16> {
    let deadline = tokio::time::Instant::now() + within;
    let mut bytes = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .to_ascii_lowercase()
                .lines()
                .find_map(|l| l.strip_prefix("content-length:").map(str::to_owned))
                .and_then(|l| l.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if bytes.len() >= end + 4 + length {
                return text.get(9..12)?.parse().ok();
            }
        }
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => bytes.extend_from_slice(&buf[..n]),
            _ => return None,
        }
    }
}

async fn get_on(stream: &mut TcpStream, path: &str) -> Option<u16> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    read_response(stream, TIMEOUT).await
}

/// Writes `bytes` one at a time, `gap` apart, until the peer closes or `within` passes.
/// Returns when the connection was seen closed (from the start), or `None`.
async fn drip(
    stream: &mut TcpStream,
    bytes: &[u8],
    gap: Duration,
    within: Duration,
) -> Option<Duration> {
    let started = Instant::now();
    let mut at = 0;
    while started.elapsed() < within {
        if at < bytes.len() {
            if stream.write_all(&bytes[at..at + 1]).await.is_err() {
                return Some(started.elapsed());
            }
            at += 1;
        }
        let mut buf = [0u8; 1024];
        match tokio::time::timeout(gap, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            _ => {}
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// HTTP/1 keep-alive: idle_timeout between requests, header_read_timeout for a head

#[tokio::test]
async fn an_idle_keep_alive_connection_waits_idle_timeout_not_header_read_timeout() {
    let (_echo, gateway) =
        start("header_read_timeout = \"300ms\"\nidle_timeout = \"1500ms\"").await;
    let mut stream = TcpStream::connect(gateway.http_addr())
        .await
        .expect("connect");
    assert_eq!(get_on(&mut stream, "/public/one").await, Some(200));

    // Idle well past header_read_timeout, within idle_timeout: the next request is served.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        get_on(&mut stream, "/public/two").await,
        Some(200),
        "keep-alive connection closed before idle_timeout"
    );

    // And idle_timeout does close it.
    let started = Instant::now();
    let reply = read_until_close(&mut stream, Duration::from_secs(4)).await;
    assert!(
        reply.closed,
        "idle connection not closed after idle_timeout"
    );
    let idle = started.elapsed();
    assert!(
        idle >= Duration::from_millis(1200),
        "closed after {idle:?}, before idle_timeout"
    );
}

#[tokio::test]
async fn a_later_head_must_complete_within_header_read_timeout_of_its_first_byte() {
    let (echo, gateway) = start("header_read_timeout = \"400ms\"\nidle_timeout = \"5s\"").await;
    let mut stream = TcpStream::connect(gateway.http_addr())
        .await
        .expect("connect");
    assert_eq!(get_on(&mut stream, "/public/one").await, Some(200));
    tokio::time::sleep(Duration::from_millis(600)).await;

    let closed = drip(
        &mut stream,
        b"GET /public/drip HTTP/1.1\r\nHost: t\r\nX-Drip: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        Duration::from_millis(40),
        Duration::from_secs(3),
    )
    .await
    .expect("dripping second head not cut");
    assert!(closed < Duration::from_millis(1500), "cut after {closed:?}");
    let seen: Vec<String> = echo.requests_seen().into_iter().map(|s| s.path).collect();
    assert_eq!(seen, ["/public/one"]);
}

// ---------------------------------------------------------------------------------------------
// HTTP/2: the same rules, counted in frames

#[tokio::test]
async fn h2_a_first_header_block_dripped_is_cut_at_header_read_timeout() {
    let (echo, gateway) = start("header_read_timeout = \"400ms\"\nidle_timeout = \"5s\"").await;
    let mut conn = h2::H2Raw::connect(gateway.http_addr()).await;
    let headers = h2::headers_frame(1, "/public/drip", true);
    let closed = drip(
        &mut conn.stream,
        &headers,
        Duration::from_millis(40),
        Duration::from_secs(3),
    )
    .await
    .expect("dripping h2 header block not cut");
    assert!(closed < Duration::from_millis(1500), "cut after {closed:?}");
    assert_upstream_untouched(&echo, "h2 slow loris");
}

#[tokio::test]
async fn h2_a_connection_without_a_request_is_closed_at_header_read_timeout() {
    let (_echo, gateway) = start("header_read_timeout = \"400ms\"\nidle_timeout = \"5s\"").await;
    let mut conn = h2::H2Raw::connect(gateway.http_addr()).await;
    let started = Instant::now();
    let reply = read_until_close(&mut conn.stream, Duration::from_secs(3)).await;
    assert!(reply.closed, "h2 connection without a request left open");
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "closed after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn h2_a_later_header_block_must_complete_within_header_read_timeout() {
    let (echo, gateway) = start("header_read_timeout = \"400ms\"\nidle_timeout = \"5s\"").await;
    let mut conn = h2::H2Raw::connect(gateway.http_addr()).await;
    conn.stream
        .write_all(&h2::headers_frame(1, "/public/one", true))
        .await
        .expect("write");
    assert_eq!(conn.status(1, TIMEOUT).await, Some(200));

    // Between requests the connection waits idle_timeout, not header_read_timeout.
    tokio::time::sleep(Duration::from_millis(700)).await;
    conn.stream
        .write_all(&h2::headers_frame(3, "/public/two", true))
        .await
        .expect("write");
    assert_eq!(
        conn.status(3, TIMEOUT).await,
        Some(200),
        "second request after a pause"
    );

    let closed = drip(
        &mut conn.stream,
        &h2::headers_frame(5, "/public/drip", true),
        Duration::from_millis(40),
        Duration::from_secs(3),
    )
    .await
    .expect("dripping later h2 header block not cut");
    assert!(closed < Duration::from_millis(1500), "cut after {closed:?}");
    let seen: Vec<String> = echo.requests_seen().into_iter().map(|s| s.path).collect();
    assert_eq!(seen, ["/public/one", "/public/two"]);
}

#[tokio::test]
async fn h2_bytes_that_complete_no_frame_do_not_keep_a_connection_alive() {
    let (_echo, gateway) = start("header_read_timeout = \"300ms\"\nidle_timeout = \"700ms\"").await;
    let mut conn = h2::H2Raw::connect(gateway.http_addr()).await;
    conn.stream
        .write_all(&h2::headers_frame(1, "/public/one", true))
        .await
        .expect("write");
    assert_eq!(conn.status(1, TIMEOUT).await, Some(200));

    // A PING frame a byte every 60 ms: 17 bytes, about a second, one frame completed at the
    // end. The idle timer must not be reset by the partial frame.
    let ping = h2::frame(h2::PING, 0, 0, &[1, 2, 3, 4, 5, 6, 7, 8]);
    let mut drip_bytes = ping.clone();
    drip_bytes.extend_from_slice(&ping);
    let closed = drip(
        &mut conn.stream,
        &drip_bytes,
        Duration::from_millis(60),
        Duration::from_secs(4),
    )
    .await
    .expect("dripped partial frames kept the connection open");
    assert!(
        closed < Duration::from_millis(2000),
        "closed after {closed:?}"
    );
}

#[tokio::test]
async fn h2_a_path_with_a_raw_hash_is_refused_as_over_http1() {
    let (echo, gateway) = start("").await;
    let mut conn = h2::H2Raw::connect(gateway.http_addr()).await;
    // First request, literal :path.
    conn.stream
        .write_all(&h2::headers_frame(1, "/public/a#frag", true))
        .await
        .expect("write");
    assert_eq!(conn.status(1, TIMEOUT).await, Some(400));
    // A later request, :path added to the dynamic table, then one taken from it.
    conn.stream
        .write_all(&h2::headers_frame(3, "/public/ok", true))
        .await
        .expect("write");
    assert_eq!(conn.status(3, TIMEOUT).await, Some(200));
    conn.stream
        .write_all(&h2::indexed_path_frame(5, Some("/public/b?q=1#x")))
        .await
        .expect("write");
    assert_eq!(conn.status(5, TIMEOUT).await, Some(400));
    conn.stream
        .write_all(&h2::indexed_path_frame(7, None))
        .await
        .expect("write");
    assert_eq!(conn.status(7, TIMEOUT).await, Some(400));
    // Control: the same path without the fragment is served.
    conn.stream
        .write_all(&h2::headers_frame(9, "/public/b?q=1", true))
        .await
        .expect("write");
    assert_eq!(conn.status(9, TIMEOUT).await, Some(200));
    let seen: Vec<String> = echo.requests_seen().into_iter().map(|s| s.path).collect();
    assert_eq!(seen, ["/public/ok", "/public/b?q=1"]);
}

// ---------------------------------------------------------------------------------------------
// Drain

#[tokio::test]
async fn drain_closes_idle_and_half_sent_heads_at_once() {
    let (_echo, gateway) =
        start("header_read_timeout = \"5s\"\nidle_timeout = \"30s\"\nshutdown_timeout = \"8s\"")
            .await;
    let addr = gateway.http_addr();
    let mut idle = TcpStream::connect(addr).await.expect("connect");
    assert_eq!(get_on(&mut idle, "/public/one").await, Some(200));
    let mut half = TcpStream::connect(addr).await.expect("connect");
    half.write_all(b"GET /public/half HTTP/1.1\r\nHost: t\r\n")
        .await
        .expect("write");
    let mut later_half = TcpStream::connect(addr).await.expect("connect");
    assert_eq!(get_on(&mut later_half, "/public/two").await, Some(200));
    later_half
        .write_all(b"GET /public/half HTTP/1.1\r\n")
        .await
        .expect("write");
    let mut h2_half = h2::H2Raw::connect(addr).await;
    let headers = h2::headers_frame(1, "/public/h2", true);
    h2_half
        .stream
        .write_all(&headers[..12])
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(100)).await;

    let started = Instant::now();
    gateway.shutdown().await;
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1500), "drain took {took:?}");
    for (name, stream) in [
        ("idle", &mut idle),
        ("half head", &mut half),
        ("later half head", &mut later_half),
        ("h2 half header block", &mut h2_half.stream),
    ] {
        let reply = read_until_close(stream, Duration::from_secs(1)).await;
        assert!(reply.closed, "{name}: connection left open after the drain");
    }
}

#[tokio::test]
async fn drain_waits_for_a_request_in_flight() {
    let (_echo, gateway) = start("shutdown_timeout = \"5s\"").await;
    let mut stream = TcpStream::connect(gateway.http_addr())
        .await
        .expect("connect");
    stream
        .write_all(b"GET /public/slow?ms=700 HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(150)).await;
    let shutdown = tokio::spawn(gateway.shutdown());
    assert_eq!(read_response(&mut stream, TIMEOUT).await, Some(200));
    shutdown.await.expect("drain finished");
}

// ---------------------------------------------------------------------------------------------
// Leading empty lines (RFC 9112 §2.2) do not disarm the first-head checks

#[tokio::test]
async fn leading_empty_lines_do_not_hide_ambiguous_framing() {
    let (echo, gateway) = start("").await;
    let cases: &[(&str, &[u8])] = &[
        (
            "CRLF then CL+TE",
            b"\r\nPOST /public/a HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ),
        (
            "LF LF then CL+TE",
            b"\n\nPOST /public/a HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ),
        (
            "CRLF then bare LF",
            b"\r\nGET /public/a HTTP/1.1\nHost: t\r\n\r\n",
        ),
        ("CRLF then raw #", b"\r\nGET /public/a#frag HTTP/1.1\r\nHost: t\r\n\r\n"),
        ("LF then raw #", b"\nGET /public/a#frag HTTP/1.1\r\nHost: t\r\n\r\n"),
    ];
    for (case, bytes) in cases {
        assert_refused(&gateway, &echo, case, bytes).await;
    }
    // Control: an empty line before a clean request is skipped and the request served.
    let reply = support::gateway::raw(
        gateway.http_addr(),
        b"\r\nGET /public/clean HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        TIMEOUT,
    )
    .await;
    assert!(
        reply.text().starts_with("HTTP/1.1 200"),
        "{:?}",
        reply.text()
    );
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP/2 frames

// ---------------------------------------------------------------------------------------------
// WebSocket tunnels keep their connection's limits

mod tunnels {
    use super::*;
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::WebSocketStream;

    type Ws = WebSocketStream<TcpStream>;

    async fn open(addr: SocketAddr) -> Ws {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let url = format!("ws://{addr}/public/ws");
        let (ws, response) =
            tokio::time::timeout(TIMEOUT, tokio_tungstenite::client_async(url, stream))
                .await
                .expect("handshake in time")
                .expect("websocket handshake");
        assert_eq!(response.status(), 101);
        ws
    }

    async fn round_trip(ws: &mut Ws, text: &str) {
        ws.send(Message::text(text)).await.expect("send");
        let reply = tokio::time::timeout(TIMEOUT, ws.next())
            .await
            .expect("reply in time")
            .expect("a reply")
            .expect("a message");
        assert_eq!(reply, Message::text(text));
    }

    /// Whether the tunnel ends (close, error or end of stream) within `within`.
    async fn ends_within(ws: &mut Ws, within: Duration) -> bool {
        let wait = async {
            loop {
                match ws.next().await {
                    None | Some(Err(_)) => return,
                    Some(Ok(message)) if message.is_close() => return,
                    Some(Ok(_)) => {}
                }
            }
        };
        tokio::time::timeout(within, wait).await.is_ok()
    }

    #[tokio::test]
    async fn tunnels_hold_their_per_client_slot_and_count_as_open() {
        let (_echo, gateway) = start("max_connections_per_client = 2").await;
        let addr = gateway.http_addr();
        let mut first = open(addr).await;
        let mut second = open(addr).await;
        round_trip(&mut first, "one").await;
        round_trip(&mut second, "two").await;

        let metrics = gateway.metrics().await;
        assert!(
            metrics.contains("authgate_connections_open{listener=\"http\"} 2"),
            "{}",
            metrics
                .lines()
                .filter(|l| l.starts_with("authgate_connections_open"))
                .collect::<Vec<_>>()
                .join("\n")
        );

        // A third connection from the same address is refused while both tunnels are open.
        let mut third = TcpStream::connect(addr).await.expect("connect");
        let _ = third
            .write_all(b"GET /public/a HTTP/1.1\r\nHost: t\r\n\r\n")
            .await;
        let reply = read_until_close(&mut third, Duration::from_secs(2)).await;
        assert!(reply.closed && reply.bytes.is_empty(), "{:?}", reply.text());

        // Closing a tunnel frees its slot.
        first.close(None).await.expect("close");
        drop(first);
        let served = support::gateway::eventually(Duration::from_secs(3), || async {
            let mut stream = TcpStream::connect(addr).await.expect("connect");
            get_on(&mut stream, "/public/after").await == Some(200)
        })
        .await;
        assert!(served, "slot not freed after the tunnel closed");
        round_trip(&mut second, "still").await;
    }

    #[tokio::test]
    async fn an_idle_tunnel_is_closed_after_idle_timeout_a_busy_one_is_not() {
        let (_echo, gateway) = start("idle_timeout = \"600ms\"").await;
        let mut busy = open(gateway.http_addr()).await;
        let mut idle = open(gateway.http_addr()).await;
        round_trip(&mut idle, "once").await;
        let started = Instant::now();
        // Traffic every 200 ms keeps the busy tunnel open past idle_timeout.
        for i in 0..6 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            round_trip(&mut busy, &format!("tick {i}")).await;
        }
        assert!(started.elapsed() >= Duration::from_millis(1200));
        assert!(
            ends_within(&mut idle, Duration::from_millis(500)).await,
            "idle tunnel still open after {:?} (idle_timeout 600ms)",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn the_drain_ends_tunnels() {
        let (_echo, gateway) = start("shutdown_timeout = \"5s\"").await;
        let mut ws = open(gateway.http_addr()).await;
        round_trip(&mut ws, "before").await;
        let started = Instant::now();
        gateway.shutdown().await;
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "drain took {:?}",
            started.elapsed()
        );
        assert!(
            ends_within(&mut ws, Duration::from_secs(1)).await,
            "tunnel still open after the drain"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Upstream request caps

mod upstream_caps {
    use super::*;
    use bytes::Bytes;
    use http::Request;
    use http_body_util::{BodyExt, Empty};
    use hyper_util::rt::{TokioExecutor, TokioIo};

    fn capped_config(server: &str, upstream: &str, echo: &Echo) -> String {
        Config::new()
            .server(server)
            .echo(echo)
            .raw(upstream)
            .public("/public")
            .toml()
    }

    /// `n` concurrent GETs of `path` as streams of one h2c connection; their statuses and
    /// `error` codes.
    async fn h2_burst(addr: SocketAddr, path: &str, n: usize) -> Vec<(u16, String)> {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .expect("h2 handshake");
        tokio::spawn(connection);
        let mut tasks = Vec::new();
        for _ in 0..n {
            let mut sender = sender.clone();
            let request = Request::get(format!("http://{addr}{path}"))
                .body(Empty::<Bytes>::new())
                .expect("request");
            tasks.push(tokio::spawn(async move {
                let response = sender.send_request(request).await.expect("response");
                let status = response.status().as_u16();
                let body = response
                    .into_body()
                    .collect()
                    .await
                    .expect("body")
                    .to_bytes();
                let code = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|json| json["error"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                (status, code)
            }));
        }
        let mut out = Vec::new();
        for task in tasks {
            out.push(
                tokio::time::timeout(TIMEOUT, task)
                    .await
                    .expect("in time")
                    .expect("task"),
            );
        }
        out
    }

    fn count(results: &[(u16, String)], status: u16, code: &str) -> usize {
        results
            .iter()
            .filter(|(s, c)| *s == status && c == code)
            .count()
    }

    #[tokio::test]
    async fn h2_streams_cannot_exceed_an_upstreams_request_cap() {
        let echo = Echo::start().await;
        let gateway = Gateway::from_toml(capped_config("", "max_concurrent_requests = 4", &echo))
            .start()
            .await;
        let results = h2_burst(gateway.http_addr(), "/public/slow?ms=800", 20).await;
        assert_eq!(count(&results, 200, ""), 4, "{results:?}");
        assert_eq!(count(&results, 503, "unavailable"), 16, "{results:?}");
        assert_eq!(echo.requests_seen().len(), 4);
        let metrics = gateway.metrics().await;
        assert!(
            metrics.contains("authgate_upstream_requests_refused_total{upstream=\"echo\"} 16"),
            "{metrics}"
        );
        assert!(metrics.contains("authgate_upstream_requests_in_flight{upstream=\"echo\"} 0"));
        // The places are free again.
        assert_eq!(gateway.get("/public/after").await.status, 200);
    }

    #[tokio::test]
    async fn the_global_cap_bounds_every_upstream_together() {
        let echo = Echo::start().await;
        let gateway = Gateway::from_toml(capped_config("max_upstream_requests = 3", "", &echo))
            .start()
            .await;
        let results = h2_burst(gateway.http_addr(), "/public/slow?ms=800", 10).await;
        assert_eq!(count(&results, 200, ""), 3, "{results:?}");
        assert_eq!(count(&results, 503, "unavailable"), 7, "{results:?}");
    }

    #[tokio::test]
    async fn a_streaming_response_holds_its_place_until_its_body_is_done() {
        let echo = Echo::start().await;
        let gateway = Gateway::from_toml(capped_config("", "max_concurrent_requests = 1", &echo))
            .start()
            .await;
        let streaming = support::gateway::open(
            gateway.http_addr(),
            support::gateway::get("/public/chunks?n=3&ms=50&gate=1"),
        )
        .await;
        assert_eq!(streaming.status(), 200);
        gateway
            .get("/public/refused")
            .await
            .assert_error(503, "unavailable");
        echo.open_gate();
        streaming.into_body().collect().await.expect("body");
        let served = support::gateway::eventually(Duration::from_secs(3), || async {
            gateway.get("/public/after").await.status == 200
        })
        .await;
        assert!(served, "place not released after the body was done");
    }

    fn binary_config(max_connections: u64, echo: &Echo) -> String {
        public_echo(&format!("max_connections = {max_connections}"), echo)
    }

    /// Runs `authgate run` under `ulimit` settings; exit status (None: still running after
    /// `within`, then killed) and stderr.
    fn run_with_ulimit(ulimit: &str, config: &str, within: Duration) -> (Option<i32>, String) {
        let dir = std::env::temp_dir().join(format!("authgate-fds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join(format!("{}.toml", ulimit.replace([' ', '-'], "_")));
        std::fs::write(&path, config).expect("config");
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "{ulimit} && exec \"$0\" --log-format json run -c \"$1\"",
            ))
            .arg(env!("CARGO_BIN_EXE_authgate"))
            .arg(&path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status.code();
            }
            if started.elapsed() > within {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
        }
        (status, stderr)
    }

    #[tokio::test]
    async fn run_refuses_limits_that_do_not_fit_the_descriptor_limit() {
        let echo = Echo::start().await;
        let (status, stderr) = run_with_ulimit(
            "ulimit -n 512",
            &binary_config(10_000, &echo),
            Duration::from_secs(3),
        );
        assert_eq!(status, Some(1), "{stderr}");
        assert!(stderr.contains("max_connections"), "{stderr}");
        assert!(stderr.contains("512"), "{stderr}");
    }

    #[tokio::test]
    async fn run_raises_the_soft_descriptor_limit_to_the_hard_one() {
        let echo = Echo::start().await;
        let hard = std::process::Command::new("sh")
            .args(["-c", "ulimit -Hn"])
            .output()
            .expect("ulimit -Hn");
        let hard = String::from_utf8_lossy(&hard.stdout).trim().to_owned();
        // "unlimited" does not parse.
        let hard: u64 = hard.parse().unwrap_or(u64::MAX);
        // Fits the hard limit, not a soft limit of 512.
        let max_connections = hard.saturating_sub(2000).min(8000);
        assert!(
            max_connections > 1024,
            "hard limit {hard} too low for this test"
        );
        let (status, stderr) = run_with_ulimit(
            "ulimit -Sn 512",
            &binary_config(max_connections, &echo),
            Duration::from_secs(2),
        );
        assert_eq!(status, None, "exited early: {stderr}");
    }
}

// ---------------------------------------------------------------------------------------------
// Log floods

#[tokio::test]
async fn an_upstream_outage_logs_a_few_warnings_and_every_request() {
    let (_closed, closed) = support::gateway::closed_port();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n\
         [[upstreams]]\nname = \"down\"\nurl = \"http://127.0.0.1:{closed}\"\n\
         [[routes]]\nname = \"public\"\npath_prefix = \"/public\"\nupstream = \"down\"\npublic = true\n"
    );
    let path = support::gateway::ConfigFile::new(&config);
    let gateway = support::binary::Running::start(&path.0, "json");
    let addr = gateway.bound().await.http;
    for _ in 0..40 {
        let reply = support::gateway::send(addr, support::gateway::get("/public/x")).await;
        assert_eq!(reply.status, 502);
    }
    let is_access = |l: &String| l.contains("authgate::access") || l.contains("\"request_id\"");
    let all_logged = support::gateway::eventually(Duration::from_secs(5), || async {
        gateway.lines().iter().filter(|l| is_access(l)).count() >= 40
    })
    .await;
    let lines = gateway.lines();
    let stderr = lines.join("\n");
    assert!(all_logged, "{stderr}");
    let warnings = lines
        .iter()
        .filter(|l| l.contains("upstream request failed"))
        .count();
    let access = lines.iter().filter(|l| is_access(l)).count();
    assert_eq!(warnings, 1, "{stderr}");
    assert_eq!(access, 40, "{stderr}");
}
