//! The gateway core seen from outside (SPEC §3-§6): routing, the canonical path, the headers
//! an upstream receives, errors the gateway makes itself, admin endpoints, shutdown and
//! reload. Real gateway, real echo upstream, everything on 127.0.0.1:0.
//!
//! Streaming bodies, WebSocket and HTTP/2 are in `proxy_stream.rs`.

mod support;

use std::time::Duration;

use http::{Method, Request, StatusCode};
use support::echo::Echo;
use support::gateway::{
    closed_port, eventually, get, raw, request, send, with_body, ConfigFile, Gateway,
    READY_TIMEOUT, TIMEOUT,
};

/// An HMAC issuer, so that non-public routes are valid config.
const ISSUER: &str = r#"
[[issuers]]
name = "test-idp"
issuer = "https://idp.test/"
hmac_secret = "0123456789abcdef0123456789abcdef"
audiences = ["api"]
"#;

/// A config listening on free ports; `server` goes into `[server]`, `rest` after it.
fn config(server: &str, rest: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n{server}\n\n[admin]\nlisten = \"127.0.0.1:0\"\n\n{rest}"
    )
}

/// The usual setup: upstream `echo` at `<echo>/base`, public routes `/public` and `/ws`, and
/// a non-public route `/private`.
fn standard_config(echo: &Echo) -> String {
    config(
        "",
        &format!(
            r#"
[[upstreams]]
name = "echo"
url = "{}"

[[routes]]
name = "public"
path_prefix = "/public"
upstream = "echo"
public = true

[[routes]]
name = "private"
path_prefix = "/private"
upstream = "echo"
{ISSUER}"#,
            echo.url("/base")
        ),
    )
}

async fn standard(echo: &Echo) -> Gateway {
    Gateway::from_toml(standard_config(echo)).start().await
}

fn with_host(path: &str, host: &str) -> Request<http_body_util::Empty<bytes::Bytes>> {
    let mut request = get(path);
    request
        .headers_mut()
        .insert("host", host.parse().expect("host value"));
    request
}

// ---------------------------------------------------------------------------------------------
// Routing (SPEC §3.2)

#[tokio::test]
async fn longest_whole_segment_prefix_wins() {
    let echo = Echo::start().await;
    let gateway = Gateway::from_toml(config(
        "",
        &format!(
            r#"
[[upstreams]]
name = "a"
url = "{a}"

[[upstreams]]
name = "b"
url = "{b}"

[[routes]]
name = "api"
path_prefix = "/api"
upstream = "a"
public = true

[[routes]]
name = "api-admin"
path_prefix = "/api/admin"
upstream = "b"
public = true
"#,
            a = echo.url("/a"),
            b = echo.url("/b"),
        ),
    ))
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
    let gateway = Gateway::from_toml(config(
        "",
        &format!(
            r#"
[[upstreams]]
name = "echo"
url = "{}"

[[routes]]
name = "api"
path_prefix = "/api"
upstream = "echo"
public = true
"#,
            echo.url("")
        ),
    ))
    .start()
    .await;

    let reply = gateway.get("/apix").await;
    reply.assert_error(404, "no_route");
    assert_eq!(gateway.get("/api").await.echoed().path, "/api");
}

#[tokio::test]
async fn a_method_outside_the_routes_methods_is_405_with_an_exact_allow_header() {
    let echo = Echo::start().await;
    let gateway = Gateway::from_toml(config(
        "",
        &format!(
            r#"
[[upstreams]]
name = "read"
url = "{read}"

[[upstreams]]
name = "write"
url = "{write}"

[[routes]]
name = "m-write"
path_prefix = "/m"
methods = ["POST"]
upstream = "write"
public = true

[[routes]]
name = "m-read"
path_prefix = "/m"
methods = ["HEAD", "GET"]
upstream = "read"
public = true
"#,
            read = echo.url("/read"),
            write = echo.url("/write"),
        ),
    ))
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
    let gateway = Gateway::from_toml(config(
        "",
        &format!(
            r#"
[[upstreams]]
name = "exact"
url = "{exact}"

[[upstreams]]
name = "wild"
url = "{wild}"

[[upstreams]]
name = "none"
url = "{none}"

[[routes]]
name = "h-none"
path_prefix = "/h"
upstream = "none"
public = true

[[routes]]
name = "other"
path_prefix = "/other"
upstream = "none"
public = true

[[routes]]
name = "h-wild"
path_prefix = "/h"
host = "*.example.com"
upstream = "wild"
public = true

[[routes]]
name = "h-exact"
path_prefix = "/h"
host = "api.example.com"
upstream = "exact"
public = true
"#,
            exact = echo.url("/exact"),
            wild = echo.url("/wild"),
            none = echo.url("/none"),
        ),
    ))
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
    let gateway = Gateway::from_toml(config(
        "",
        &format!(
            r#"
[[upstreams]]
name = "deep"
url = "{}"

[[upstreams]]
name = "root"
url = "{}"

[[routes]]
name = "deep"
path_prefix = "/deep"
upstream = "deep"
public = true

[[routes]]
name = "root"
path_prefix = "/root"
upstream = "root"
public = true
"#,
            echo.url("/svc/v1"),
            echo.url(""),
        ),
    ))
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

// ---------------------------------------------------------------------------------------------
// Headers at the upstream (SPEC §4)

#[tokio::test]
async fn hop_by_hop_headers_and_headers_named_by_connection_are_removed() {
    let echo = Echo::start().await;
    let gateway = standard(&echo).await;

    let hop_by_hop = || {
        Request::get("/public/h")
            .header("connection", "close, X-Remove-Me")
            .header("x-remove-me", "secret")
            .header("keep-alive", "timeout=5")
            .header("te", "trailers")
            .header("trailer", "x-checksum")
            .header("upgrade", "h2c")
            .header("proxy-authorization", "Basic dXNlcjpwYXNz")
            .header("proxy-connection", "keep-alive")
            .header("x-kept", "yes")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap()
    };
    // Control: sent straight to the echo, every header arrives (the client really sends them).
    let direct = send(echo.addr(), hop_by_hop()).await.echoed();
    for name in [
        "connection",
        "x-remove-me",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
    ] {
        assert!(direct.has_header(name), "control: {name} not sent");
    }

    let echoed = gateway.send(hop_by_hop()).await.echoed();
    for name in [
        "connection",
        "x-remove-me",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "proxy-authorization",
        "proxy-connection",
        "transfer-encoding",
    ] {
        assert!(
            !echoed.has_header(name),
            "{name} reached the upstream: {:?}",
            echoed.headers
        );
    }
    assert_eq!(echoed.header("x-kept"), Some("yes"));
}

#[tokio::test]
async fn connection_may_name_authorization_but_never_the_gateways_own_headers() {
    let echo = Echo::start().await;
    let gateway = standard(&echo).await;

    let request = Request::get("/public/h")
        .header(
            "connection",
            "Authorization, X-Forwarded-For, X-Forwarded-Proto, X-Forwarded-Host, X-Request-Id, Host",
        )
        .header("authorization", "Bearer abc")
        .header("x-request-id", "client-id-1")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let echoed = gateway.send(request).await.echoed();
    assert!(
        !echoed.has_header("authorization"),
        "the client asked for Authorization to be dropped"
    );
    assert_eq!(echoed.header_all("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(echoed.header_all("x-forwarded-proto"), ["http"]);
    assert_eq!(
        echoed.header_all("x-forwarded-host"),
        [gateway.http_addr().to_string().as_str()]
    );
    assert_eq!(
        echoed.header_all("host"),
        [echo.addr().to_string().as_str()]
    );
    // The id is removed from the client's headers, so the gateway generates its own.
    let id = echoed.header("x-request-id").expect("x-request-id");
    assert!(!id.is_empty());
}

#[tokio::test]
async fn identity_headers_sent_by_a_client_are_removed() {
    let echo = Echo::start().await;
    let gateway = standard(&echo).await;

    let spoofing = || {
        Request::get("/public/h")
            .header("x-auth-subject", "admin")
            .header("x-auth-scopes", "everything")
            .header("x_auth_issuer", "https://evil/")
            .header("X_Auth-Client-Id", "root")
            .header("x-auth-tenant", "other")
            .header("x-client-cert-subject", "CN=admin")
            .header("x_client_cert_sha256", "00")
            .header("x-authority", "not an identity header")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap()
    };
    let direct = send(echo.addr(), spoofing()).await.echoed();
    assert!(
        direct.has_header("x_auth_issuer"),
        "control: underscore names are sent"
    );
    assert!(direct.has_header("x_client_cert_sha256"), "control");

    let echoed = gateway.send(spoofing()).await.echoed();
    let leaked: Vec<_> = echoed
        .headers
        .iter()
        .filter(|(name, _)| {
            let name = name.replace('_', "-");
            name.starts_with("x-auth-") || name.starts_with("x-client-cert-")
        })
        .collect();
    assert!(leaked.is_empty(), "identity headers leaked: {leaked:?}");
    assert_eq!(echoed.header("x-authority"), Some("not an identity header"));
}

#[tokio::test]
async fn forwarded_headers_are_set_from_the_connection_for_an_untrusted_peer() {
    let echo = Echo::start().await;
    let gateway = standard(&echo).await;

    let request = Request::get("/public/h")
        .header("host", "Public.Example:8080")
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-for", "7.7.7.7")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "evil.example")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let echoed = gateway.send(request).await.echoed();
    assert_eq!(echoed.header_all("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(echoed.header_all("x-forwarded-proto"), ["http"]);
    assert_eq!(
        echoed.header_all("x-forwarded-host"),
        ["Public.Example:8080"]
    );
    // Host is the upstream's authority by default.
    assert_eq!(
        echoed.header_all("host"),
        [echo.addr().to_string().as_str()]
    );
}

#[tokio::test]
async fn forwarded_headers_from_a_trusted_proxy_are_kept_and_extended() {
    let echo = Echo::start().await;
    let gateway = Gateway::from_toml(config(
        "",
        &format!(
            r#"
[network]
trusted_proxies = ["127.0.0.1/32"]

[[upstreams]]
name = "echo"
url = "{}"

[[routes]]
name = "public"
path_prefix = "/public"
upstream = "echo"
public = true
"#,
            echo.url("")
        ),
    ))
    .start()
    .await;

    let request = Request::get("/public/h")
        .header("host", "internal:8080")
        .header("x-forwarded-for", "203.0.113.7")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "public.example")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let echoed = gateway.send(request).await.echoed();
    assert_eq!(
        echoed.header_all("x-forwarded-for"),
        ["203.0.113.7, 127.0.0.1"]
    );
    assert_eq!(echoed.header_all("x-forwarded-proto"), ["https"]);
    assert_eq!(echoed.header_all("x-forwarded-host"), ["public.example"]);
}

#[tokio::test]
async fn preserve_host_forwards_the_original_host() {
    let echo = Echo::start().await;
    let gateway = Gateway::from_toml(config(
        "",
        &format!(
            r#"
[[upstreams]]
name = "keep"
url = "{}"
preserve_host = true

[[routes]]
name = "keep"
path_prefix = "/keep"
upstream = "keep"
public = true
"#,
            echo.url("")
        ),
    ))
    .start()
    .await;

    let echoed = gateway
        .send(with_host("/keep/x", "Public.Example:8080"))
        .await
        .echoed();
    assert_eq!(echoed.header_all("host"), ["Public.Example:8080"]);
    assert_eq!(
        echoed.header("x-forwarded-host"),
        Some("Public.Example:8080")
    );
}

#[tokio::test]
async fn a_valid_client_request_id_is_kept_and_echoed() {
    let echo = Echo::start().await;
    let gateway = standard(&echo).await;

    let id = "req-1_2.3:4";
    let request = Request::get("/public/h")
        .header("x-request-id", id)
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let reply = gateway.send(request).await;
    assert_eq!(reply.header("x-request-id"), Some(id));
    assert_eq!(reply.echoed().header_all("x-request-id"), [id]);

    let long = "x".repeat(128);
    let request = Request::get("/public/h")
        .header("x-request-id", long.as_str())
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let reply = gateway.send(request).await;
    assert_eq!(reply.header("x-request-id"), Some(long.as_str()));

    // Kept on the gateway's own responses too.
    let request = Request::get("/nowhere")
        .header("x-request-id", id)
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let reply = gateway.send(request).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.header("x-request-id"), Some(id));
}

#[tokio::test]
async fn an_invalid_client_request_id_is_replaced() {
    let echo = Echo::start().await;
    let gateway = standard(&echo).await;

    let too_long = "x".repeat(129);
    for bad in ["has space", "semi;colon", too_long.as_str()] {
        let request = Request::get("/public/h")
            .header("x-request-id", bad)
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let reply = gateway.send(request).await;
        let returned = reply
            .header("x-request-id")
            .expect("x-request-id")
            .to_owned();
        assert_ne!(returned, bad);
        assert!(!returned.is_empty());
        assert_eq!(
            reply.echoed().header_all("x-request-id"),
            [returned.as_str()]
        );
    }
}

#[tokio::test]
async fn a_generated_request_id_is_on_every_response() {
    let echo = Echo::start().await;
    let gateway = standard(&echo).await;

    let proxied = gateway.get("/public/h").await;
    let id = proxied
        .header("x-request-id")
        .expect("x-request-id")
        .to_owned();
    assert_eq!(proxied.echoed().header("x-request-id"), Some(id.as_str()));

    let other = gateway.get("/public/h").await;
    assert_ne!(
        other.header("x-request-id"),
        Some(id.as_str()),
        "ids differ"
    );

    gateway.get("/nowhere").await.assert_error(404, "no_route");
    gateway
        .get("/private")
        .await
        .assert_error(401, "missing_token");
    let raw_reply = raw(
        gateway.http_addr(),
        b"GET /public/%2F HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        TIMEOUT,
    )
    .await;
    raw_reply.assert_error(400, "invalid_request");
}

#[tokio::test]
async fn authorization_is_forwarded_unchanged_on_a_public_route() {
    let echo = Echo::start().await;
    let gateway = standard(&echo).await;

    let request = Request::get("/public/h")
        .header("authorization", "Bearer not.a.jwt")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let echoed = gateway.send(request).await.echoed();
    assert_eq!(echoed.header_all("authorization"), ["Bearer not.a.jwt"]);
}

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
    let reply = raw(
        gateway.http_addr(),
        bytes.as_bytes(),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(reply.status(), 401, "{}", reply.text());
    reply.assert_error(401, "missing_token");
    assert!(reply.closed, "connection closed after the denial");
    assert_eq!(
        reply.text().matches("HTTP/1.1").count(),
        1,
        "exactly one response: {}",
        reply.text()
    );

    // A chunked body.
    let bytes = format!(
        "POST /private HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{smuggled}\r\n0\r\n\r\n",
        smuggled.len()
    );
    let reply = raw(
        gateway.http_addr(),
        bytes.as_bytes(),
        Duration::from_secs(5),
    )
    .await;
    reply.assert_error(401, "missing_token");
    assert!(reply.closed, "connection closed after the denial");
    assert_eq!(
        reply.text().matches("HTTP/1.1").count(),
        1,
        "{}",
        reply.text()
    );

    // Same with the body declared longer than what was sent so far.
    let bytes = format!(
        "POST /private HTTP/1.1\r\nHost: t\r\nContent-Length: 20\r\n\r\n{}",
        &smuggled[..10]
    );
    let reply = raw(
        gateway.http_addr(),
        bytes.as_bytes(),
        Duration::from_secs(5),
    )
    .await;
    reply.assert_error(401, "missing_token");
    assert!(reply.closed, "connection closed after the denial");

    // The gateway is still alive, and the upstream never saw the smuggled request.
    assert_eq!(gateway.get("/public/ok").await.status, StatusCode::OK);
    let seen: Vec<String> = echo.requests_seen().into_iter().map(|s| s.path).collect();
    assert_eq!(seen, ["/base/public/ok"]);
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
    let gateway = Gateway::from_toml(config(
        "",
        &format!(
            r#"
[[upstreams]]
name = "dead"
url = "http://127.0.0.1:{port}"
connect_timeout = "1s"

[[upstreams]]
name = "echo"
url = "{}"

[[routes]]
name = "dead"
path_prefix = "/dead"
upstream = "dead"
public = true

[[routes]]
name = "public"
path_prefix = "/public"
upstream = "echo"
public = true
"#,
            echo.url("")
        ),
    ))
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
    let gateway = Gateway::from_toml(config(
        "",
        &format!(
            r#"
[[upstreams]]
name = "echo"
url = "{}"
timeout = "200ms"

[[routes]]
name = "public"
path_prefix = "/public"
upstream = "echo"
public = true
"#,
            echo.url("")
        ),
    ))
    .start()
    .await;

    // The upstream would answer after 10 s; the 504 must come long before.
    let reply = tokio::time::timeout(Duration::from_secs(5), gateway.get("/public/slow?ms=10000"))
        .await
        .expect("504 arrives without waiting for the upstream");
    reply.assert_error(504, "gateway_timeout");
    assert_eq!(gateway.get("/public/fast").await.status, StatusCode::OK);
}

#[tokio::test]
async fn the_server_request_timeout_is_504_too() {
    let echo = Echo::start().await;
    let gateway = Gateway::from_toml(config(
        "request_timeout = \"300ms\"",
        &format!(
            r#"
[[upstreams]]
name = "echo"
url = "{}"

[[routes]]
name = "public"
path_prefix = "/public"
upstream = "echo"
public = true
"#,
            echo.url("")
        ),
    ))
    .start()
    .await;

    let reply = tokio::time::timeout(Duration::from_secs(5), gateway.get("/public/slow?ms=10000"))
        .await
        .expect("504 arrives without waiting for the upstream");
    reply.assert_error(504, "gateway_timeout");
    assert_eq!(gateway.get("/public/fast").await.status, StatusCode::OK);
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
