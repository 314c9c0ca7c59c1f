//! The request host (SPEC §3 step 2, issue 12 item 4): a malformed host, userinfo in Host, in
//! an absolute-form target or in an HTTP/2 `:authority`, and two Host headers get 400
//! `invalid_request` and never reach the upstream (they used to fall through to the host-less
//! routes and be forwarded verbatim); one trailing dot is removed before routing and before
//! forwarding (Host under `preserve_host`, X-Forwarded-Host).
//!
//! The config has a token-protected route for `admin.test` and a public catch-all without host:
//! a host that escapes its tier would be answered 200 by the catch-all.

mod support;

use bytes::Bytes;
use http::Request;
use http_body_util::Empty;

use support::config::Config;
use support::echo::{Echo, Echoed};
use support::gateway::{raw, send_h2, Gateway, RawReply};
use support::refusal::{assert_refused, assert_upstream_untouched, REFUSAL};

fn config(echo: &Echo) -> String {
    Config::new()
        .raw(
            "[[issuers]]\nname = \"internal\"\nissuer = \"https://auth.internal.example\"\n\
             hmac_secret = \"host-test-secret-0123456789abcdef0123\"\naudiences = [\"admin\"]",
        )
        .echo(echo)
        .upstream("echo-preserve", &echo.url(""))
        .raw("preserve_host = true")
        .route("admin", "/", "host = \"admin.test\"\nscopes = [\"admin\"]")
        .raw(
            "\n[[routes]]\nname = \"api\"\nhost = \"api.test\"\npath_prefix = \"/api\"\n\
             upstream = \"echo-preserve\"\npublic = true",
        )
        .route("web", "/web", "host = \"web.test\"\npublic = true")
        .route("catch-all", "/", "public = true")
        .toml()
}

async fn start() -> (Echo, Gateway) {
    let echo = Echo::start().await;
    let gateway = Gateway::from_toml(config(&echo)).start().await;
    (echo, gateway)
}

fn echoed(reply: &RawReply) -> Echoed {
    serde_json::from_slice(&reply.body())
        .unwrap_or_else(|e| panic!("not the echo's JSON ({e}): {}", reply.text()))
}

#[tokio::test]
async fn malformed_hosts_get_400_and_never_reach_the_upstream() {
    let (echo, gateway) = start().await;
    let cases: &[(&str, &[u8])] = &[
        (
            "userinfo in Host",
            b"GET /x HTTP/1.1\r\nHost: x@admin.test\r\n\r\n",
        ),
        (
            "two trailing dots",
            b"GET /x HTTP/1.1\r\nHost: admin.test..\r\n\r\n",
        ),
        (
            "leading dot",
            b"GET /x HTTP/1.1\r\nHost: .admin.test\r\n\r\n",
        ),
        (
            "empty label",
            b"GET /x HTTP/1.1\r\nHost: admin..test\r\n\r\n",
        ),
        (
            "percent escape",
            b"GET /x HTTP/1.1\r\nHost: admin.test%2e\r\n\r\n",
        ),
        (
            "obs-text byte",
            b"GET /x HTTP/1.1\r\nHost: admin.test\xff\r\n\r\n",
        ),
        (
            "utf-8 name",
            b"GET /x HTTP/1.1\r\nHost: adm\xc3\xadn.test\r\n\r\n",
        ),
        (
            "bad port",
            b"GET /x HTTP/1.1\r\nHost: admin.test:80x\r\n\r\n",
        ),
        (
            "bad ipv6 literal",
            b"GET /x HTTP/1.1\r\nHost: [admin.test]\r\n\r\n",
        ),
        (
            "absolute-form with userinfo",
            b"GET http://x@admin.test/x HTTP/1.1\r\nHost: admin.test\r\n\r\n",
        ),
        (
            "absolute-form with userinfo and an empty user",
            b"GET http://@admin.test/x HTTP/1.1\r\nHost: admin.test\r\n\r\n",
        ),
        (
            "malformed Host beside a valid absolute-form authority",
            b"GET http://web.test/web HTTP/1.1\r\nHost: x@admin.test\r\n\r\n",
        ),
        (
            "two Host headers",
            b"GET /x HTTP/1.1\r\nHost: public.test\r\nHost: admin.test\r\n\r\n",
        ),
        (
            "two identical Host headers",
            b"GET /web HTTP/1.1\r\nHost: web.test\r\nHost: web.test\r\n\r\n",
        ),
    ];
    for (case, bytes) in cases {
        let reply = assert_refused(&gateway, &echo, case, bytes).await;
        reply.assert_error(400, "invalid_request");
    }
    // `assert_refused` asked `/public/after` after each case: only those reached the echo.
    let paths: Vec<String> = echo.requests_seen().into_iter().map(|s| s.path).collect();
    assert!(
        paths.iter().all(|path| path == "/public/after"),
        "{paths:?}"
    );
}

#[tokio::test]
async fn one_trailing_dot_is_removed_before_routing_and_forwarding() {
    let (echo, gateway) = start().await;

    // preserve_host: the upstream gets the routed host, without the dot, case and port kept.
    for (host, forwarded) in [
        ("api.test.", "api.test"),
        ("API.Test.:8080", "API.Test:8080"),
        ("api.test", "api.test"),
    ] {
        let request = format!("GET /api/x HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        let reply = raw(gateway.http_addr(), request.as_bytes(), REFUSAL).await;
        assert_eq!(reply.status(), 200, "{host}: {}", reply.text());
        let seen = echoed(&reply);
        assert_eq!(seen.path, "/api/x", "{host}: routed to the api route");
        assert_eq!(seen.header_all("host"), [forwarded], "{host}");
        assert_eq!(seen.header_all("x-forwarded-host"), [forwarded], "{host}");
    }

    // Without preserve_host: Host is the upstream's, X-Forwarded-Host the routed host.
    let request = b"GET /web/x HTTP/1.1\r\nHost: web.test.\r\nConnection: close\r\n\r\n";
    let reply = raw(gateway.http_addr(), request, REFUSAL).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    let seen = echoed(&reply);
    assert_eq!(seen.header("host"), Some(echo.addr().to_string().as_str()));
    assert_eq!(seen.header_all("x-forwarded-host"), ["web.test"]);

    // An absolute-form authority with a trailing dot: the same.
    let request =
        b"GET http://api.test./api/y HTTP/1.1\r\nHost: api.test.\r\nConnection: close\r\n\r\n";
    let reply = raw(gateway.http_addr(), request, REFUSAL).await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    let seen = echoed(&reply);
    assert_eq!(seen.header_all("host"), ["api.test"]);
    assert_eq!(seen.header_all("x-forwarded-host"), ["api.test"]);

    // A dotted admin host still routes to the admin tier (401 without a token), never to the
    // catch-all.
    let request = b"GET /x HTTP/1.1\r\nHost: admin.test.\r\nConnection: close\r\n\r\n";
    let reply = raw(gateway.http_addr(), request, REFUSAL).await;
    reply.assert_error(401, "missing_token");
}

#[tokio::test]
async fn http2_authority_with_userinfo_gets_400() {
    let (echo, gateway) = start().await;
    let addr = gateway.http_addr();

    // `h2` sends the `:authority` exactly as the URI has it, userinfo included.
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (client, connection) = h2::client::handshake(stream).await.expect("h2 handshake");
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let mut client = client.ready().await.expect("h2 ready");
        let request = Request::get("http://x@admin.test/x").body(()).unwrap();
        let (response, _) = client.send_request(request, true).expect("send");
        let response = response.await.expect("h2 response");
        let status = response.status();
        let mut body = response.into_body();
        let mut bytes = Vec::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.expect("body");
            let _ = body.flow_control().release_capacity(chunk.len());
            bytes.extend_from_slice(&chunk);
        }
        (status, bytes)
    };
    let (status, body) = tokio::time::timeout(REFUSAL, exchange)
        .await
        .expect("h2 answer in time");
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    let json: serde_json::Value = serde_json::from_slice(&body).expect("json body");
    assert_eq!(json["error"], "invalid_request");
    assert_upstream_untouched(&echo, "h2 :authority with userinfo");

    // The control: a valid `:authority` with a trailing dot routes and is forwarded without it.
    let request = Request::get("http://api.test./api/h2")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let reply = send_h2(addr, request).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let seen = reply.echoed();
    assert_eq!(seen.header_all("host"), ["api.test"]);
    assert_eq!(seen.header_all("x-forwarded-host"), ["api.test"]);
}
