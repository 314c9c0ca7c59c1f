//! Decision mode (SPEC §7.3, issue 14): a real gateway with a `[decision]` listener on
//! 127.0.0.1:0, a test IdP and an echo upstream that must never be called. Each dialect is
//! asked with the headers its ingress really sends:
//!
//! - nginx `auth_request` (`proxy_pass` to `/authz/nginx`): `X-Original-Method`,
//!   `X-Original-URI`, `X-Original-Host` set by `proxy_set_header`, the client's own headers
//!   (Authorization), `X-Real-IP` / `X-Forwarded-For`, `Content-Length: ""` (dropped);
//! - Traefik ForwardAuth (`GET /authz/traefik`): the client's headers plus
//!   `X-Forwarded-Method`, `X-Forwarded-Proto`, `X-Forwarded-Host`, `X-Forwarded-Uri`,
//!   `X-Forwarded-For`;
//! - Envoy ext_authz HTTP service (`path_prefix: /authz/envoy`): the original method, the
//!   prefix plus the original path and query, the original Host, `x-forwarded-for`,
//!   `content-length: 0`.
//!
//! The access log is captured as JSON (the format `--log-format json` uses).

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Empty;

use support::config::DecisionGateway;
use support::echo::Echo;
use support::gateway::{raw, send, send_h2, Gateway, Reply};
use support::idp::Idp;
use support::logs::capture_json;

/// A gateway whose decision listener trusts `trusted` callers; routes:
/// - `public` (`/public`, public), `admin` (`/admin`, scope `admin`), `orders` (`/orders`,
///   GET/POST, scope `orders:read`), `office` (`/office`, allow 192.0.2.0/24),
///   `down` (`/down`, an issuer whose keys never load).
async fn gateway(idp: &Idp, echo: &Echo, trusted: &str) -> Gateway {
    gateway_with(idp, echo, trusted, "").await
}

/// [`gateway`] with more `[server]` settings.
async fn gateway_with(idp: &Idp, echo: &Echo, trusted: &str, server: &str) -> Gateway {
    let config = DecisionGateway {
        issuer: &idp.issuer(),
        jwks_uri: &idp.jwks_uri(),
        echo,
        trusted,
        server,
        main_lines: "claim_headers = { \"X-Auth-Tenant\" = \"tid\" }",
        orders_lines: "methods = [\"GET\", \"POST\"]",
    };
    Gateway::from_toml(config.toml()).start().await
}

struct Setup {
    idp: Idp,
    echo: Echo,
    gateway: Gateway,
}

impl Setup {
    async fn new() -> Setup {
        capture_json();
        let idp = Idp::start().await;
        let echo = Echo::start().await;
        let gateway = gateway(&idp, &echo, "127.0.0.1/32").await;
        Setup { idp, echo, gateway }
    }

    fn token(&self, scope: &str) -> String {
        self.idp
            .token()
            .scope(scope)
            .claim("tid", "acme".into())
            .client_id("web")
            .sign()
    }

    async fn ask(&self, method: Method, path: &str, headers: &[(&str, &str)]) -> Reply {
        ask(self.gateway.decision_addr(), method, path, headers).await
    }

    /// An nginx `auth_request` subrequest describing `method target` on host `api.test`.
    async fn nginx(&self, method: &str, target: &str, extra: &[(&str, &str)]) -> Reply {
        let mut headers = vec![
            ("host", "authgate-decision"),
            ("x-original-method", method),
            ("x-original-uri", target),
            ("x-original-host", "api.test"),
            ("x-real-ip", "203.0.113.50"),
        ];
        headers.extend_from_slice(extra);
        self.ask(Method::GET, "/authz/nginx", &headers).await
    }

    /// The upstream was never called: decisions never proxy.
    fn assert_upstream_untouched(&self) {
        assert!(
            self.echo.requests_seen().is_empty(),
            "the upstream was called: {:?}",
            self.echo.requests_seen()
        );
    }
}

/// Sends one bodiless request to `addr` with exactly `headers` (repeats kept; a `host` entry
/// replaces the default Host).
async fn ask(addr: SocketAddr, method: Method, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .body(Empty::<Bytes>::new())
        .expect("request");
    for (name, value) in headers {
        let name = http::HeaderName::from_bytes(name.as_bytes()).expect("header name");
        request
            .headers_mut()
            .append(name, value.parse().expect("header value"));
    }
    send(addr, request).await
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Asserts a 401/403 refusal with its challenge, as the proxy answers (SPEC §5).
#[track_caller]
fn assert_refusal(reply: &Reply, status: u16, code: &str, challenge: &str) {
    reply.assert_error(status, code);
    let www = reply.header("www-authenticate").unwrap_or_default();
    assert!(
        www.starts_with("Bearer realm=\"authgate\"") && www.contains(challenge),
        "WWW-Authenticate {www:?} lacks {challenge:?}"
    );
}

#[tokio::test]
async fn nginx_allow_answers_200_with_identity_headers() {
    let setup = Setup::new().await;
    let token = setup.token("orders:read");
    let auth = bearer(&token);
    let reply = setup
        .nginx(
            "POST",
            "/orders/7?expand=1",
            &[
                ("authorization", &auth),
                ("x-request-id", "nginx-allow-1"),
                ("content-length", "0"),
            ],
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert!(reply.body.is_empty(), "no body on allow");
    assert_eq!(reply.header("x-auth-subject"), Some("svc-1"));
    assert_eq!(reply.header("x-auth-scopes"), Some("orders:read"));
    assert_eq!(
        reply.header("x-auth-issuer"),
        Some(setup.idp.issuer().as_str())
    );
    assert_eq!(reply.header("x-auth-client-id"), Some("web"));
    assert_eq!(reply.header("x-auth-tenant"), Some("acme"));
    assert_eq!(reply.header("x-request-id"), Some("nginx-allow-1"));
    assert!(reply.header("x-client-cert-subject").is_none());
    setup.assert_upstream_untouched();

    // Logged like the proxy, with the described request and mode "decision".
    let lines = capture_json().access_lines("nginx-allow-1");
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    assert_eq!(line["mode"], "decision");
    assert_eq!(line["method"], "POST");
    assert_eq!(line["path"], "/orders/7");
    assert_eq!(line["route"], "orders");
    assert_eq!(line["status"], 200);
    assert_eq!(line["decision"], "allow");
    assert_eq!(line["subject"], "svc-1");
    assert_eq!(line["client"], "203.0.113.50");
}

#[tokio::test]
async fn proxied_requests_log_mode_proxy() {
    let setup = Setup::new().await;
    let request = Request::get("/public/x")
        .header("x-request-id", "proxied-1")
        .body(Empty::<Bytes>::new())
        .expect("request");
    let reply = setup.gateway.send(request).await;
    assert_eq!(reply.status, StatusCode::OK);
    let lines = capture_json().access_lines("proxied-1");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["mode"], "proxy");
}

#[tokio::test]
async fn nginx_refusals_are_the_proxy_refusals() {
    let setup = Setup::new().await;
    // Missing token: 401 with the bare challenge.
    let reply = setup.nginx("GET", "/orders/1", &[]).await;
    assert_refusal(&reply, 401, "missing_token", "");
    // Bad token.
    let bad = bearer(&setup.idp.token().scope("orders:read").sign_bad_signature());
    let reply = setup
        .nginx("GET", "/orders/1", &[("authorization", &bad)])
        .await;
    assert_refusal(&reply, 401, "invalid_token", "error=\"invalid_token\"");
    // Insufficient scope.
    let reader = bearer(&setup.token("orders:read"));
    let reply = setup
        .nginx("GET", "/admin/users", &[("authorization", &reader)])
        .await;
    assert_refusal(&reply, 403, "insufficient_scope", "scope=\"admin\"");
    // Method not allowed carries Allow, no route is 404.
    let reply = setup
        .nginx("DELETE", "/orders/1", &[("authorization", &reader)])
        .await;
    reply.assert_error(405, "method_not_allowed");
    assert!(reply
        .header("allow")
        .is_some_and(|allow| allow.contains("GET")));
    let reply = setup.nginx("GET", "/nowhere", &[]).await;
    reply.assert_error(404, "no_route");
    // Identity headers are never part of a refusal.
    assert!(reply.header("x-auth-subject").is_none());
    setup.assert_upstream_untouched();
}

#[tokio::test]
async fn described_path_is_canonicalized_before_routing() {
    let setup = Setup::new().await;
    // `/public/%2e%2e/admin` is `/admin`: judged by the admin route, not the public one.
    let reply = setup.nginx("GET", "/public/%2e%2e/admin", &[]).await;
    assert_refusal(&reply, 401, "missing_token", "");
    let reply = setup.nginx("GET", "/public/%2e%2e/admin", &[]).await;
    assert_ne!(reply.status, StatusCode::OK);
    // Climbing above `/`, `%2F` and a raw `#` are the proxy's 400s.
    for target in ["/../admin", "/public%2Fadmin", "/public/x#frag"] {
        let reply = setup.nginx("GET", target, &[]).await;
        reply.assert_error(400, "invalid_request");
    }
    // And a public path is allowed without any identity header.
    let reply = setup.nginx("GET", "/public/a/../b", &[]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert!(reply.header("x-auth-subject").is_none());
}

#[tokio::test]
async fn missing_or_malformed_descriptions_are_400() {
    let setup = Setup::new().await;
    let cases: &[(&str, &[(&str, &str)])] = &[
        ("no method", &[("x-original-uri", "/public")]),
        ("no target", &[("x-original-method", "GET")]),
        ("nothing", &[]),
        (
            "absolute target",
            &[
                ("x-original-method", "GET"),
                ("x-original-uri", "http://evil.test/public"),
            ],
        ),
        (
            "two methods",
            &[
                ("x-original-method", "GET"),
                ("x-original-method", "DELETE"),
                ("x-original-uri", "/public"),
            ],
        ),
        (
            "method not a token",
            &[("x-original-method", "G(T"), ("x-original-uri", "/public")],
        ),
        (
            "two hosts",
            &[
                ("x-original-method", "GET"),
                ("x-original-uri", "/public"),
                ("x-original-host", "a.test"),
                ("x-original-host", "b.test"),
            ],
        ),
    ];
    for (case, headers) in cases {
        let reply = setup.ask(Method::GET, "/authz/nginx", headers).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{case}: {}",
            reply.text()
        );
        reply.assert_error(400, "invalid_request");
    }
    // Traefik without X-Forwarded-Method: 400 too (never a default of GET).
    let reply = setup
        .ask(
            Method::GET,
            "/authz/traefik",
            &[("x-forwarded-uri", "/public")],
        )
        .await;
    reply.assert_error(400, "invalid_request");
    // An unknown decision path: 404.
    let reply = setup.ask(Method::GET, "/authz/haproxy", &[]).await;
    reply.assert_error(404, "no_route");
}

#[tokio::test]
async fn client_address_comes_from_the_ingress() {
    let setup = Setup::new().await;
    let auth = bearer(&setup.token("x"));
    let ask = |extra: Vec<(&'static str, &'static str)>| {
        let auth = auth.clone();
        let setup = &setup;
        async move {
            let mut headers = vec![
                ("x-original-method", "GET"),
                ("x-original-uri", "/office/a"),
                ("authorization", auth.as_str()),
            ];
            headers.extend(extra);
            setup.ask(Method::GET, "/authz/nginx", &headers).await
        }
    };
    // X-Real-IP alone.
    let reply = ask(vec![("x-real-ip", "192.0.2.5")]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let reply = ask(vec![("x-real-ip", "198.51.100.7")]).await;
    reply.assert_error(403, "ip_not_allowed");
    // X-Forwarded-For wins over X-Real-IP, read right to left.
    let reply = ask(vec![
        ("x-forwarded-for", "192.0.2.5, 198.51.100.7"),
        ("x-real-ip", "192.0.2.5"),
    ])
    .await;
    reply.assert_error(403, "ip_not_allowed");
    let reply = ask(vec![("x-forwarded-for", "198.51.100.7, 192.0.2.5")]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    // A malformed entry makes the client unknown: no allowlist matches.
    let reply = ask(vec![("x-real-ip", "not-an-address")]).await;
    reply.assert_error(403, "ip_not_allowed");
    // Neither: the caller itself (127.0.0.1), not in the allowlist.
    let reply = ask(vec![]).await;
    reply.assert_error(403, "ip_not_allowed");
}

#[tokio::test]
async fn untrusted_caller_is_refused_before_anything() {
    capture_json();
    let idp = Idp::start().await;
    let echo = Echo::start().await;
    let gateway = gateway(&idp, &echo, "10.0.0.0/8").await;
    let token = idp.token().scope("orders:read").sign();
    let auth = bearer(&token);
    for path in [
        "/authz/nginx",
        "/authz/traefik",
        "/authz/envoy/orders",
        "/x",
    ] {
        let reply = ask(
            gateway.decision_addr(),
            Method::GET,
            path,
            &[
                ("x-original-method", "GET"),
                ("x-original-uri", "/public"),
                ("x-forwarded-method", "GET"),
                ("x-forwarded-uri", "/public"),
                ("x-forwarded-for", "10.1.2.3"),
                ("authorization", &auth),
                ("x-request-id", "untrusted-1"),
            ],
        )
        .await;
        reply.assert_error(403, "ip_not_allowed");
        assert!(reply.header("x-auth-subject").is_none());
    }
    assert!(echo.requests_seen().is_empty());
    let lines = capture_json().access_lines("untrusted-1");
    assert!(!lines.is_empty());
    assert!(lines.iter().all(|line| line["mode"] == "decision"
        && line["reason"] == "ip_not_allowed"
        && line["route"] == "none"));
}

#[tokio::test]
async fn traefik_forward_auth() {
    let setup = Setup::new().await;
    let auth = bearer(&setup.token("orders:read"));
    // What Traefik's ForwardAuth sends: a GET with the client's headers and X-Forwarded-*.
    let traefik = |method: &'static str, uri: &'static str, auth: Option<String>| {
        let setup = &setup;
        async move {
            let mut headers = vec![
                ("host", "authgate:8181".to_owned()),
                ("x-forwarded-method", method.to_owned()),
                ("x-forwarded-proto", "https".to_owned()),
                ("x-forwarded-host", "api.test".to_owned()),
                ("x-forwarded-uri", uri.to_owned()),
                ("x-forwarded-for", "203.0.113.9".to_owned()),
                ("accept", "application/json".to_owned()),
            ];
            if let Some(auth) = auth {
                headers.push(("authorization", auth));
            }
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            setup.ask(Method::GET, "/authz/traefik", &headers).await
        }
    };
    let reply = traefik("POST", "/orders/1?x=1", Some(auth.clone())).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.header("x-auth-subject"), Some("svc-1"));
    assert_eq!(reply.header("x-auth-scopes"), Some("orders:read"));
    let reply = traefik("GET", "/orders/1", None).await;
    assert_refusal(&reply, 401, "missing_token", "");
    let reply = traefik("GET", "/admin", Some(auth)).await;
    assert_refusal(&reply, 403, "insufficient_scope", "scope=\"admin\"");
    let reply = traefik("GET", "/public/%2e%2e/admin", None).await;
    assert_refusal(&reply, 401, "missing_token", "");
    setup.assert_upstream_untouched();
}

#[tokio::test]
async fn envoy_ext_authz_http_service() {
    let setup = Setup::new().await;
    let auth = bearer(&setup.token("orders:read"));
    // Envoy's check request: the original method, path_prefix + path and query, the
    // original Host, x-forwarded-for (allowed_headers), content-length 0.
    let envoy = |method: Method, path: &'static str, auth: Option<String>| {
        let setup = &setup;
        async move {
            let mut headers = vec![
                ("host", "api.test".to_owned()),
                ("x-forwarded-for", "203.0.113.10".to_owned()),
                ("content-length", "0".to_owned()),
            ];
            if let Some(auth) = auth {
                headers.push(("authorization", auth));
            }
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            setup.ask(method, path, &headers).await
        }
    };
    let reply = envoy(
        Method::POST,
        "/authz/envoy/orders/9?page=2",
        Some(auth.clone()),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.header("x-auth-subject"), Some("svc-1"));
    assert_eq!(reply.header("x-auth-tenant"), Some("acme"));
    // Envoy keeps client headers the answer does not set: the answer names them for removal.
    assert_eq!(
        reply.header("x-envoy-auth-headers-to-remove"),
        Some("x-client-cert-subject,x-client-cert-sha256")
    );
    let reply = envoy(Method::GET, "/authz/envoy/public/x", None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(
        reply.header("x-envoy-auth-headers-to-remove"),
        Some(
            "x-auth-subject,x-auth-issuer,x-auth-client-id,x-auth-scopes,\
             x-client-cert-subject,x-client-cert-sha256,x-auth-tenant"
        )
    );
    let reply = envoy(Method::DELETE, "/authz/envoy/orders/9", Some(auth.clone())).await;
    reply.assert_error(405, "method_not_allowed");
    let reply = envoy(Method::GET, "/authz/envoy/orders/9", None).await;
    assert_refusal(&reply, 401, "missing_token", "");
    let reply = envoy(Method::GET, "/authz/envoy/public/%2e%2e/admin", Some(auth)).await;
    assert_refusal(&reply, 403, "insufficient_scope", "scope=\"admin\"");
    let reply = envoy(Method::GET, "/authz/envoy/public/", None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    setup.assert_upstream_untouched();
}

#[tokio::test]
async fn idp_outage_is_503_with_retry_after() {
    let setup = Setup::new().await;
    let token = setup.idp.token().iss("https://down.test/").sign();
    let auth = bearer(&token);
    let reply = setup
        .nginx("GET", "/down/x", &[("authorization", &auth)])
        .await;
    reply.assert_error(503, "unavailable");
    assert!(reply.header("retry-after").is_some(), "Retry-After");
}

#[tokio::test]
async fn decisions_count_in_the_proxy_metric_families() {
    let setup = Setup::new().await;
    let auth = bearer(&setup.token("orders:read"));
    let reply = setup
        .nginx("GET", "/orders/1", &[("authorization", &auth)])
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = setup.nginx("GET", "/orders/1", &[]).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let reply = setup.ask(Method::GET, "/authz/nginx", &[]).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let metrics = setup.gateway.metrics().await;
    for line in [
        r#"authgate_requests_total{code="200",route="orders"} 1"#,
        r#"authgate_requests_total{code="401",route="orders"} 1"#,
        r#"authgate_requests_total{code="400",route="none"} 1"#,
        r#"authgate_auth_decisions_total{decision="allow",reason="ok",route="orders"} 1"#,
        r#"authgate_auth_decisions_total{decision="deny",reason="missing_token",route="orders"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} not in:\n{metrics}");
    }
    assert!(
        metrics.contains(r#"authgate_connections_open{listener="decision"}"#),
        "decision connections gauge"
    );
}

#[tokio::test]
async fn a_declared_body_is_never_read() {
    let setup = Setup::new().await;
    // A head that declares a gigabyte and sends none of it: answered at once, and the
    // connection is closed (the unread bytes are never taken for a next request).
    let head = "POST /authz/nginx HTTP/1.1\r\nhost: authgate\r\nx-original-method: GET\r\n\
                x-original-uri: /public/a\r\ncontent-length: 1000000000\r\n\r\n";
    let reply = raw(
        setup.gateway.decision_addr(),
        head.as_bytes(),
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    assert!(
        reply.closed,
        "connection closed after a decision with a body"
    );
    assert_eq!(
        reply.header("connection").as_deref(),
        Some("close"),
        "{}",
        reply.text()
    );
}

#[tokio::test]
async fn idle_decision_connections_are_closed() {
    capture_json();
    let idp = Idp::start().await;
    let echo = Echo::start().await;
    let gateway = gateway_with(
        &idp,
        &echo,
        "127.0.0.1/32",
        "header_read_timeout = \"300ms\"\nidle_timeout = \"300ms\"",
    )
    .await;
    // One keep-alive request, then silence: the listener closes the connection after
    // idle_timeout instead of holding it forever.
    let head = "GET /authz/nginx HTTP/1.1\r\nhost: authgate\r\nx-original-method: GET\r\n\
                x-original-uri: /public/a\r\n\r\n";
    let started = std::time::Instant::now();
    let reply = raw(
        gateway.decision_addr(),
        head.as_bytes(),
        Duration::from_secs(4),
    )
    .await;
    assert_eq!(reply.status(), 200, "{}", reply.text());
    assert!(reply.closed, "idle decision connection still open after 4s");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn envoy_over_h2c_takes_the_authority() {
    let setup = Setup::new().await;
    let auth = bearer(&setup.token("orders:read"));
    // Envoy may speak HTTP/2 to the authorization cluster: the host is then `:authority`.
    let request = Request::get("/authz/envoy/orders/1")
        .header("authorization", auth)
        .body(Empty::<Bytes>::new())
        .expect("request");
    let reply = send_h2(setup.gateway.decision_addr(), request).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.header("x-auth-subject"), Some("svc-1"));
    let request = Request::get("/authz/envoy/orders/1")
        .body(Empty::<Bytes>::new())
        .expect("request");
    let reply = send_h2(setup.gateway.decision_addr(), request).await;
    assert_refusal(&reply, 401, "missing_token", "");
    setup.assert_upstream_untouched();
}

/// The decision listener's connections have the proxy's timers (SPEC §6): an HTTP/2
/// connection that never completes a request head is closed at header_read_timeout, so
/// anyone who can reach the listener cannot hold `max_connections` places forever.
#[tokio::test]
async fn an_h2_decision_connection_without_a_request_is_closed() {
    capture_json();
    let idp = Idp::start().await;
    let echo = Echo::start().await;
    let gateway = gateway_with(
        &idp,
        &echo,
        "127.0.0.1/32",
        r#"header_read_timeout = "300ms""#,
    )
    .await;
    // The client preface and an empty SETTINGS frame, then silence.
    let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    hello.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    let started = std::time::Instant::now();
    let reply = raw(gateway.decision_addr(), &hello, Duration::from_secs(4)).await;
    assert!(reply.closed, "h2 decision connection still open after 4s");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}
