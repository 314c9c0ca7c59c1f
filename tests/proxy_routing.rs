//! The gateway core seen from outside, routing (SPEC §3.1-§3.2): longest whole-segment
//! prefix, 404 and 405 with Allow, host tiers, the canonical path the upstream receives and
//! malformed paths. Real gateway, real echo upstream, everything on 127.0.0.1:0.
//!
//! Headers are in `proxy_headers.rs`; errors, admin, shutdown and reload in
//! `proxy_lifecycle.rs`; streaming bodies, WebSocket and HTTP/2 in `proxy_stream.rs`.

mod support;

use http::Method;
use support::config::{standard, Config};
use support::echo::Echo;
use support::gateway::{raw, request, with_body, with_host, Gateway, TIMEOUT};

// ---------------------------------------------------------------------------------------------
// Routing (SPEC §3.2)

#[tokio::test]
async fn longest_whole_segment_prefix_wins() {
    let echo = Echo::start().await;
    let gateway = Gateway::from_toml(
        Config::new()
            .upstream("a", &echo.url("/a"))
            .upstream("b", &echo.url("/b"))
            .route_to("api", "/api", "a", "public = true")
            .route_to("api-admin", "/api/admin", "b", "public = true")
            .toml(),
    )
    .start()
    .await;

    let cases = [
        ("/api", "/a/api"),
        ("/api/", "/a/api/"),
        ("/api/x", "/a/api/x"),
        ("/api/admin", "/b/api/admin"),
        ("/api/admin/users/7", "/b/api/admin/users/7"),
        ("/api/adminx", "/a/api/adminx"),
    ];
    for (path, upstream_path) in cases {
        let echoed = gateway.get(path).await.echoed();
        assert_eq!(echoed.path, upstream_path, "request {path}");
    }
}

#[tokio::test]
async fn a_path_outside_every_prefix_is_404_no_route() {
    let echo = Echo::start().await;
    let gateway = standard(&echo).await;

    for path in ["/publicx", "/", "/other/public", "/pub"] {
        let reply = gateway.get(path).await;
        reply.assert_error(404, "no_route");
    }
    assert!(
        echo.requests_seen().is_empty(),
        "nothing reaches the upstream"
    );
}

#[tokio::test]
async fn apix_is_not_under_api() {
    let echo = Echo::start().await;
    let gateway = Gateway::from_toml(
        Config::new()
            .upstream("echo", &echo.url(""))
            .route("api", "/api", "public = true")
            .toml(),
    )
    .start()
    .await;

    let reply = gateway.get("/apix").await;
    reply.assert_error(404, "no_route");
    assert_eq!(gateway.get("/api").await.echoed().path, "/api");
}

#[tokio::test]
async fn a_method_outside_the_routes_methods_is_405_with_an_exact_allow_header() {
    let echo = Echo::start().await;
    let gateway = Gateway::from_toml(
        Config::new()
            .upstream("read", &echo.url("/read"))
            .upstream("write", &echo.url("/write"))
            .route_to(
                "m-write",
                "/m",
                "write",
                "methods = [\"POST\"]\npublic = true",
            )
            .route_to(
                "m-read",
                "/m",
                "read",
                "methods = [\"HEAD\", \"GET\"]\npublic = true",
            )
            .toml(),
    )
    .start()
    .await;

    assert_eq!(gateway.get("/m/1").await.echoed().path, "/read/m/1");
    let posted = gateway
        .send(with_body(Method::POST, "/m/1", "x"))
        .await
        .echoed();
    assert_eq!(posted.path, "/write/m/1");
    assert_eq!(posted.method, "POST");

    for method in [Method::DELETE, Method::PUT, Method::PATCH] {
        let reply = gateway.send(request(method.clone(), "/m/1")).await;
        reply.assert_error(405, "method_not_allowed");
        assert_eq!(reply.header("allow"), Some("GET, HEAD, POST"), "{method}");
    }
}

#[tokio::test]
async fn host_tiers_exact_then_wildcard_then_none() {
    let echo = Echo::start().await;
    let gateway = Gateway::from_toml(
        Config::new()
            .upstream("exact", &echo.url("/exact"))
            .upstream("wild", &echo.url("/wild"))
            .upstream("none", &echo.url("/none"))
            .route_to("h-none", "/h", "none", "public = true")
            .route_to("other", "/other", "none", "public = true")
            .route_to(
                "h-wild",
                "/h",
                "wild",
                "host = \"*.example.com\"\npublic = true",
            )
            .route_to(
                "h-exact",
                "/h",
                "exact",
                "host = \"api.example.com\"\npublic = true",
            )
            .toml(),
    )
    .start()
    .await;

    let cases = [
        ("api.example.com", "/exact/h/x"),
        ("API.Example.COM:8443", "/exact/h/x"),
        ("a.example.com", "/wild/h/x"),
        ("a.b.Example.com:80", "/wild/h/x"),
        ("example.com", "/none/h/x"),
        ("api.example.org", "/none/h/x"),
        ("127.0.0.1", "/none/h/x"),
    ];
    for (host, upstream_path) in cases {
        let echoed = gateway.send(with_host("/h/x", host)).await.echoed();
        assert_eq!(echoed.path, upstream_path, "Host: {host}");
    }

    // The tier is chosen before the path: an exact-host request does not fall back to the
    // host-less routes.
    let reply = gateway.send(with_host("/other", "api.example.com")).await;
    reply.assert_error(404, "no_route");
    let echoed = gateway.send(with_host("/other", "b.example.net")).await;
    assert_eq!(echoed.echoed().path, "/none/other");

    // Absolute-form: the target's authority replaces Host (RFC 9112 3.2.2); the upstream gets
    // origin-form.
    let reply = raw(
        gateway.http_addr(),
        b"GET http://API.example.com/h/x?q=1 HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n",
        TIMEOUT,
    )
    .await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    assert_eq!(reply.json()["path"], "/exact/h/x?q=1");
}

// ---------------------------------------------------------------------------------------------
// Canonical path (SPEC §3.1)

#[tokio::test]
async fn the_upstream_receives_the_canonical_path_and_the_query_unchanged() {
    let echo = Echo::start().await;
    let gateway = standard(&echo).await;

    let echoed = gateway
        .get("/public/a/../b//c/%2e/d%41?x=%2F&y=1")
        .await
        .echoed();
    assert_eq!(echoed.path, "/base/public/b/c/dA?x=%2F&y=1");

    // Sent as raw bytes, so no client library normalizes anything first.
    let reply = raw(
        gateway.http_addr(),
        b"GET /public/./x/%7e/../%61b?q=a/../b HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        TIMEOUT,
    )
    .await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    assert_eq!(reply.json()["path"], "/base/public/x/ab?q=a/../b");
}

#[tokio::test]
async fn the_upstream_url_path_prefixes_the_forwarded_path() {
    let echo = Echo::start().await;
    let gateway = Gateway::from_toml(
        Config::new()
            .upstream("deep", &echo.url("/svc/v1"))
            .upstream("root", &echo.url(""))
            .route_to("deep", "/deep", "deep", "public = true")
            .route_to("root", "/root", "root", "public = true")
            .toml(),
    )
    .start()
    .await;

    assert_eq!(
        gateway.get("/deep/items?id=3").await.echoed().path,
        "/svc/v1/deep/items?id=3"
    );
    assert_eq!(
        gateway.get("/root/items").await.echoed().path,
        "/root/items"
    );
}

#[tokio::test]
async fn malformed_paths_are_400_invalid_request() {
    let echo = Echo::start().await;
    let gateway = standard(&echo).await;

    let targets = [
        "/public/a%2Fb",
        "/public/a%2fb",
        "/public/a%5Cb",
        "/public/a%5cb",
        "/public/a%00b",
        "/public/../../etc/passwd",
        "/../public/x",
        "/public/%2e%2e/%2e%2e/x",
        "/public/a%zzb",
        "/public/a%4",
    ];
    for target in targets {
        let bytes = format!("GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        let reply = raw(gateway.http_addr(), bytes.as_bytes(), TIMEOUT).await;
        assert!(reply.closed, "{target}: connection closed");
        reply.assert_error(400, "invalid_request");
    }

    // Bytes a client library would refuse or normalize: a raw backslash and a raw `#`.
    for target in [&b"/public/a\\b"[..], b"/public/a#b"] {
        let mut bytes = b"GET ".to_vec();
        bytes.extend_from_slice(target);
        bytes.extend_from_slice(b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        let reply = raw(gateway.http_addr(), &bytes, TIMEOUT).await;
        reply.assert_error(400, "invalid_request");
    }
    // A byte outside visible ASCII: 400, from the HTTP parser or the gateway.
    let reply = raw(
        gateway.http_addr(),
        b"GET /public/a\xffb HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        TIMEOUT,
    )
    .await;
    assert_eq!(reply.status(), 400, "{}", reply.text());

    // Authority-form and asterisk-form targets.
    for bytes in [
        &b"CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: 127.0.0.1:443\r\nConnection: close\r\n\r\n"[..],
        &b"OPTIONS * HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"[..],
    ] {
        let reply = raw(gateway.http_addr(), bytes, TIMEOUT).await;
        assert_eq!(reply.status(), 400, "{}", reply.text());
    }

    assert!(
        echo.requests_seen().is_empty(),
        "no malformed request reaches the upstream: {:?}",
        echo.requests_seen()
    );
}
