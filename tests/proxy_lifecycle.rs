//! The gateway core seen from outside, everything around forwarding (SPEC §4 end, §5, §6):
//! deny by default and early denials, upstream failures (502, 504), the admin listener,
//! shutdown (drain) and reload. Real gateway, real echo upstream, everything on 127.0.0.1:0.

mod support;

use std::time::Duration;

use http::{Method, Request, StatusCode};
use support::config::{standard, standard_config, Config};
use support::echo::Echo;
use support::gateway::{
    closed_port, eventually, get, raw, request, send, ConfigFile, Gateway, RawReply, READY_TIMEOUT,
    TIMEOUT,
};

// ---------------------------------------------------------------------------------------------
// Deny by default, early denial

#[tokio::test]
async fn a_non_public_route_without_a_token_is_401_missing_token() {
    let echo = Echo::start().await;
    let gateway = standard(&echo).await;

    for method in [Method::GET, Method::POST, Method::DELETE] {
        let reply = gateway.send(request(method.clone(), "/private/x")).await;
        reply.assert_error(401, "missing_token");
        assert_eq!(
            reply.header("www-authenticate"),
            Some("Bearer realm=\"authgate\""),
            "{method}"
        );
    }
    let basic = Request::get("/private/x")
        .header("authorization", "Basic dXNlcjpwYXNz")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    gateway.send(basic).await.assert_error(401, "missing_token");
    assert!(echo.requests_seen().is_empty());
}

#[tokio::test]
async fn an_early_denial_with_a_body_closes_the_connection() {
    let echo = Echo::start().await;
    let gateway = standard(&echo).await;

    // The body is itself a request: if the gateway answered without consuming it and kept the
    // connection, it could be parsed as the next request.
    let smuggled = "GET /public/x HTTP/1.1\r\nHost: t\r\n\r\n";
    let bytes = format!(
        "POST /private HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{smuggled}",
        smuggled.len()
    );
    let reply = denied_then_closed(&gateway, &bytes).await;
    assert_eq!(reply.status(), 401, "{}", reply.text());
    assert_one_response(&reply);

    // A chunked body.
    let bytes = format!(
        "POST /private HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{smuggled}\r\n0\r\n\r\n",
        smuggled.len()
    );
    let reply = denied_then_closed(&gateway, &bytes).await;
    assert_one_response(&reply);

    // Same with the body declared longer than what was sent so far.
    let bytes = format!(
        "POST /private HTTP/1.1\r\nHost: t\r\nContent-Length: 20\r\n\r\n{}",
        &smuggled[..10]
    );
    denied_then_closed(&gateway, &bytes).await;

    // The gateway is still alive, and the upstream never saw the smuggled request.
    assert_eq!(gateway.get("/public/ok").await.status, StatusCode::OK);
    let seen: Vec<String> = echo.requests_seen().into_iter().map(|s| s.path).collect();
    assert_eq!(seen, ["/base/public/ok"]);
}

/// Sends `bytes` raw: the answer is 401 `missing_token` and the connection is closed.
async fn denied_then_closed(gateway: &Gateway, bytes: &str) -> RawReply {
    let reply = raw(
        gateway.http_addr(),
        bytes.as_bytes(),
        Duration::from_secs(5),
    )
    .await;
    reply.assert_error(401, "missing_token");
    assert!(reply.closed, "connection closed after the denial");
    reply
}

fn assert_one_response(reply: &RawReply) {
    assert_eq!(
        reply.text().matches("HTTP/1.1").count(),
        1,
        "exactly one response: {}",
        reply.text()
    );
}

#[tokio::test]
async fn a_denial_without_a_body_keeps_the_connection_alive() {
    let echo = Echo::start().await;
    let gateway = standard(&echo).await;

    let reply = raw(
        gateway.http_addr(),
        b"GET /private HTTP/1.1\r\nHost: t\r\n\r\nGET /public/next HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        TIMEOUT,
    )
    .await;
    assert!(reply.closed, "closed after the second response");
    let text = reply.text();
    let statuses: Vec<&str> = text
        .split("HTTP/1.1 ")
        .skip(1)
        .map(|rest| &rest[..3])
        .collect();
    assert_eq!(statuses, ["401", "200"], "{text}");
    let seen: Vec<String> = echo.requests_seen().into_iter().map(|s| s.path).collect();
    assert_eq!(seen, ["/base/public/next"]);
}

// ---------------------------------------------------------------------------------------------
// Upstream failures (SPEC §4 end)

#[tokio::test]
async fn an_unreachable_upstream_is_502_bad_gateway() {
    let echo = Echo::start().await;
    let (_reserved, port) = closed_port();
    let dead = format!("url = \"http://127.0.0.1:{port}\"\nconnect_timeout = \"1s\"");
    let gateway = Gateway::from_toml(
        Config::new()
            .upstream_with("dead", &dead)
            .echo(&echo)
            .route_to("dead", "/dead", "dead", "public = true")
            .public("/public")
            .toml(),
    )
    .start()
    .await;

    let reply = tokio::time::timeout(Duration::from_secs(5), gateway.get("/dead/x"))
        .await
        .expect("502 arrives without hanging");
    reply.assert_error(502, "bad_gateway");
    assert_eq!(gateway.get("/public/after").await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_slow_upstream_is_504_after_its_timeout() {
    let echo = Echo::start().await;
    let gateway = Gateway::from_toml(
        Config::new()
            .upstream("echo", &echo.url(""))
            .raw("timeout = \"200ms\"")
            .public("/public")
            .toml(),
    )
    .start()
    .await;
    assert_slow_is_504(&gateway).await;
}

/// The upstream would answer after 10 s; the 504 must come long before, and the gateway
/// keeps serving.
async fn assert_slow_is_504(gateway: &Gateway) {
    let reply = tokio::time::timeout(Duration::from_secs(5), gateway.get("/public/slow?ms=10000"))
        .await
        .expect("504 arrives without waiting for the upstream");
    reply.assert_error(504, "gateway_timeout");
    assert_eq!(gateway.get("/public/fast").await.status, StatusCode::OK);
}

#[tokio::test]
async fn the_server_request_timeout_is_504_too() {
    let echo = Echo::start().await;
    let gateway = Gateway::from_toml(
        Config::new()
            .server("request_timeout = \"300ms\"")
            .upstream("echo", &echo.url(""))
            .public("/public")
            .toml(),
    )
    .start()
    .await;
    assert_slow_is_504(&gateway).await;
}

// ---------------------------------------------------------------------------------------------
// Admin listener (SPEC §6)

#[tokio::test]
async fn admin_health_readiness_and_metrics() {
    let echo = Echo::start().await;
    let gateway = standard(&echo).await;

    let health = gateway.admin_get("/healthz").await;
    assert_eq!(health.status, StatusCode::OK);

    let ready = gateway.admin_get("/readyz").await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.json()["ready"], true, "{}", ready.text());
    assert_eq!(
        ready.json()["issuers"]["test-idp"],
        "ok",
        "{}",
        ready.text()
    );

    assert_eq!(gateway.get("/public/m").await.status, StatusCode::OK);
    gateway.get("/nowhere").await.assert_error(404, "no_route");
    let metrics = gateway.metrics().await;
    assert!(
        metrics.contains("authgate_requests_total{code=\"200\",route=\"public\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("authgate_requests_total{code=\"404\",route=\"none\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("authgate_build_info"), "{metrics}");

    // The admin listener is never proxied, and the gateway listener serves no admin paths.
    gateway.get("/metrics").await.assert_error(404, "no_route");
    assert_eq!(
        gateway.admin_get("/public/m").await.status,
        StatusCode::NOT_FOUND
    );
}

// ---------------------------------------------------------------------------------------------
// Shutdown and reload (SPEC §6)

#[tokio::test]
async fn shutdown_drains_in_flight_requests_then_refuses_connections() {
    let echo = Echo::start().await;
    let gateway = standard(&echo).await;
    let addr = gateway.http_addr();

    let in_flight = tokio::spawn(send(addr, get("/public/slow?ms=500")));
    echo.wait_seen("/slow", TIMEOUT)
        .await
        .expect("the slow request reached the upstream");

    gateway.shutdown().await;

    let reply = tokio::time::timeout(TIMEOUT, in_flight)
        .await
        .expect("in-flight request finishes")
        .expect("client task");
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.echoed().path, "/base/public/slow?ms=500");

    let connect = tokio::time::timeout(TIMEOUT, tokio::net::TcpStream::connect(addr))
        .await
        .expect("connect attempt finishes");
    assert!(
        connect.is_err(),
        "new connections are refused after shutdown"
    );
}

#[tokio::test]
async fn shutdown_closes_idle_keep_alive_connections_without_waiting_for_them() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let echo = Echo::start().await;
    let gateway = standard(&echo).await;

    // One request on a keep-alive connection, then the connection stays open and idle.
    let mut stream = tokio::net::TcpStream::connect(gateway.http_addr())
        .await
        .expect("connect");
    stream
        .write_all(b"GET /public/idle HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .expect("write");
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let complete = tokio::time::timeout(TIMEOUT, async {
        loop {
            let n = stream.read(&mut buf).await.expect("read");
            assert_ne!(n, 0, "connection kept alive");
            received.extend_from_slice(&buf[..n]);
            if received.ends_with(b"}") {
                return;
            }
        }
    })
    .await;
    assert!(
        complete.is_ok(),
        "first response: {:?}",
        String::from_utf8_lossy(&received)
    );

    // The default shutdown_timeout is 30 s: an idle connection must not hold the drain.
    tokio::time::timeout(Duration::from_secs(5), gateway.shutdown())
        .await
        .expect("shutdown does not wait for idle keep-alive connections");
    let closed = support::gateway::read_until_close(&mut stream, Duration::from_secs(5)).await;
    assert!(closed.closed, "the idle connection is closed");
}

#[tokio::test]
async fn reload_adds_a_route_and_an_invalid_config_keeps_the_old_one() {
    let echo = Echo::start().await;
    let first = standard_config(&echo);
    let file = ConfigFile::new(&first);
    let gateway = Gateway::from_file(&file.0).start().await;

    assert_eq!(gateway.get("/public/a").await.status, StatusCode::OK);
    gateway.get("/extra/a").await.assert_error(404, "no_route");

    let second = format!(
        "{first}\n[[routes]]\nname = \"extra\"\npath_prefix = \"/extra\"\nupstream = \"echo\"\npublic = true\n"
    );
    file.write(&second);
    gateway.reload().await;
    let added = eventually(READY_TIMEOUT, || async {
        gateway.get("/extra/a").await.status == StatusCode::OK
    })
    .await;
    assert!(added, "the new route answers after reload");
    assert_eq!(gateway.get("/extra/a").await.echoed().path, "/base/extra/a");

    file.write(&format!(
        "{second}\n[[routes]]\nname = \"broken\"\nupstream = \"missing\"\n"
    ));
    gateway.reload().await;
    let counted = eventually(READY_TIMEOUT, || async {
        gateway
            .metrics()
            .await
            .contains("authgate_config_reloads_total{result=\"error\"} 1")
    })
    .await;
    assert!(
        counted,
        "the refused reload is counted: {}",
        gateway.metrics().await
    );
    assert_eq!(gateway.get("/public/a").await.status, StatusCode::OK);
    assert_eq!(gateway.get("/extra/a").await.status, StatusCode::OK);
    gateway
        .get("/private/a")
        .await
        .assert_error(401, "missing_token");
}
