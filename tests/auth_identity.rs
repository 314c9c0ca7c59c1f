//! End-to-end authentication, what the upstream and the operator see (SPEC §4 identity
//! headers, §6 metrics): identity headers from a valid token, claims that cannot be header
//! values, spoofed identity headers, oversized tokens, and the metrics after traffic. A real
//! gateway on 127.0.0.1:0 in front of an echo upstream, with a test identity provider serving
//! JWKS over loopback http (harness: `tests/support/auth.rs`).

mod support;

use http::StatusCode;
use serde_json::json;

use support::auth::{assert_invalid_token, main_setup, send};

// ----------------------------------------------------------------------------------------
// 1. Allowed: identity headers
// ----------------------------------------------------------------------------------------

#[tokio::test]
async fn valid_token_reaches_upstream_with_identity_headers() {
    let (idp, gateway) = main_setup().await;
    let token = idp
        .token()
        .sub("svc-1")
        .claim("azp", json!("client-azp"))
        .scope("orders:read extra")
        .scp(&["s1", "orders:read"])
        .claim("tid", json!("t1"))
        .claim("num", json!(42))
        .claim("flag", json!(true))
        .claim("groups", json!(["g1", "g2"]))
        .claim("obj", json!({"k": "v"}))
        .sign();
    let resp = gateway.get("/read/7?x=1", Some(&token)).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    let echoed = resp.json();
    assert_eq!(echoed["path"], "/read/7?x=1");
    assert_eq!(
        resp.upstream_header("x-auth-subject").as_deref(),
        Some("svc-1")
    );
    assert_eq!(resp.upstream_header("x-auth-issuer"), Some(idp.issuer()));
    assert_eq!(
        resp.upstream_header("x-auth-client-id").as_deref(),
        Some("client-azp")
    );
    assert_eq!(
        resp.upstream_header("x-auth-scopes").as_deref(),
        Some("orders:read extra s1")
    );
    assert_eq!(resp.upstream_header("x-auth-tenant").as_deref(), Some("t1"));
    assert_eq!(resp.upstream_header("x-auth-num").as_deref(), Some("42"));
    assert_eq!(resp.upstream_header("x-auth-flag").as_deref(), Some("true"));
    assert_eq!(
        resp.upstream_header("x-auth-groups").as_deref(),
        Some("g1 g2")
    );
    assert_eq!(
        resp.upstream_header("x-auth-obj").as_deref(),
        Some(r#"{"k":"v"}"#)
    );
    // A configured claim the token lacks: no header.
    assert_eq!(resp.upstream_header("x-tenant-region"), None);
    assert_eq!(
        resp.upstream_header("authorization"),
        Some(format!("Bearer {token}"))
    );
    assert!(resp.header("x-request-id").is_some());

    // client_id wins over azp (first of client_id_claims).
    let token = idp
        .token()
        .client_id("client-cid")
        .claim("azp", json!("client-azp"))
        .scope("orders:read")
        .sign();
    let resp = gateway.get("/read", Some(&token)).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    assert_eq!(
        resp.upstream_header("x-auth-client-id").as_deref(),
        Some("client-cid")
    );
    gateway.shutdown().await;
}

#[tokio::test]
async fn claim_that_cannot_be_a_header_value_refuses_the_token() {
    let (idp, gateway) = main_setup().await;
    let token = idp
        .token()
        .scope("orders:read")
        .claim("tid", json!("t1\r\nX-Injected: yes"))
        .sign();
    let resp = gateway.get("/read", Some(&token)).await;
    assert_invalid_token(&resp, "CRLF in a claim header");
    gateway.shutdown().await;
}
// ----------------------------------------------------------------------------------------
// 8. Metrics
// ----------------------------------------------------------------------------------------

#[tokio::test]
async fn metrics_after_traffic() {
    let (idp, gateway) = main_setup().await;
    let token = idp.token().scope("orders:read").sign();
    for _ in 0..3 {
        assert_eq!(
            gateway.get("/read", Some(&token)).await.status,
            StatusCode::OK
        );
    }
    assert_eq!(
        gateway.get("/read", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    let expired = idp.token().scope("orders:read").exp_in(-3600).sign();
    assert_eq!(
        gateway.get("/read", Some(&expired)).await.status,
        StatusCode::UNAUTHORIZED
    );
    let unscoped = idp.token().sign();
    assert_eq!(
        gateway.get("/read", Some(&unscoped)).await.status,
        StatusCode::FORBIDDEN
    );
    let forged = idp.token().scope("orders:read").sign_bad_signature();
    assert_eq!(
        gateway.get("/read", Some(&forged)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        gateway.get("/nowhere", None).await.status,
        StatusCode::NOT_FOUND
    );

    let m = gateway.metrics().await;
    let decision = |decision: &str, reason: &str| {
        m.get(
            "authgate_auth_decisions_total",
            &[
                ("route", "read"),
                ("decision", decision),
                ("reason", reason),
            ],
        )
        .unwrap_or_else(|| panic!("no decision {decision}/{reason}:\n{}", m.text))
    };
    assert_eq!(decision("allow", "ok"), 3.0);
    assert_eq!(decision("deny", "missing_token"), 1.0);
    assert_eq!(decision("deny", "expired"), 1.0);
    assert_eq!(decision("deny", "insufficient_scope"), 1.0);
    assert_eq!(decision("deny", "bad_signature"), 1.0);
    assert_eq!(
        m.value(
            "authgate_requests_total",
            &[("route", "read"), ("code", "200")]
        ),
        3.0
    );
    assert_eq!(
        m.value(
            "authgate_requests_total",
            &[("route", "read"), ("code", "401")]
        ),
        3.0
    );
    assert_eq!(
        m.value(
            "authgate_requests_total",
            &[("route", "none"), ("code", "404")]
        ),
        1.0
    );
    assert!(m.value("authgate_token_cache_requests_total", &[("result", "hit")]) >= 2.0);
    assert!(m.value("authgate_token_cache_requests_total", &[("result", "miss")]) >= 1.0);
    for issuer in ["main", "typed", "required", "cognito", "other"] {
        assert_eq!(
            m.value("authgate_jwks_keys", &[("issuer", issuer)]),
            idp.key_count() as f64,
            "{issuer}"
        );
        assert!(
            m.value(
                "authgate_jwks_refresh_total",
                &[("issuer", issuer), ("result", "success")]
            ) >= 1.0,
            "{issuer}"
        );
        assert_eq!(m.value("authgate_jwks_stale", &[("issuer", issuer)]), 0.0);
        let age = m.value("authgate_jwks_age_seconds", &[("issuer", issuer)]);
        assert!((0.0..60.0).contains(&age), "{issuer} age {age}");
    }
    // Labels are bounded: no subject, token or path in the exposition.
    assert!(!m.text.contains(&token));
    assert!(!m.text.contains("svc-1"));
    assert!(!m.text.contains("/nowhere"));
    gateway.shutdown().await;
}
// ----------------------------------------------------------------------------------------
// 10. Identity spoofing
// ----------------------------------------------------------------------------------------

#[tokio::test]
async fn client_cannot_spoof_identity_headers() {
    let (idp, gateway) = main_setup().await;
    let token = idp
        .token()
        .sub("real-svc")
        .scope("orders:read")
        .claim("tid", json!("real-tenant"))
        .sign();
    let bearer = format!("Bearer {token}");
    let resp = send(
        gateway.http,
        "GET",
        "/read",
        &[
            ("authorization", &bearer),
            ("X-Auth-Subject", "admin"),
            ("X_Auth_Subject", "admin"),
            ("x-auth-issuer", "https://evil.test/"),
            ("X-Auth-Scopes", "admin:all"),
            ("X-Auth-Client-Id", "admin-client"),
            ("X-Auth-Tenant", "evil-tenant"),
            ("X_Auth_Tenant", "evil-tenant"),
            ("X-Auth-Anything", "evil"),
            ("X-Tenant-Region", "evil-region"),
            ("X_Tenant_Region", "evil-region"),
            ("X-Client-Cert-Subject", "CN=admin"),
            ("X-Client-Cert-Sha256", "00"),
            ("Connection", "X-Auth-Subject"),
        ],
    )
    .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    assert_eq!(resp.upstream_headers("x-auth-subject"), vec!["real-svc"]);
    assert!(resp.upstream_headers("x_auth_subject").is_empty());
    assert_eq!(resp.upstream_headers("x-auth-issuer"), vec![idp.issuer()]);
    assert_eq!(resp.upstream_headers("x-auth-scopes"), vec!["orders:read"]);
    assert!(resp.upstream_headers("x-auth-client-id").is_empty());
    assert_eq!(resp.upstream_headers("x-auth-tenant"), vec!["real-tenant"]);
    assert!(resp.upstream_headers("x_auth_tenant").is_empty());
    assert!(resp.upstream_headers("x-auth-anything").is_empty());
    // A configured claim header the token does not carry: the client's value is gone too.
    assert!(resp.upstream_headers("x-tenant-region").is_empty());
    assert!(resp.upstream_headers("x_tenant_region").is_empty());
    assert!(resp.upstream_headers("x-client-cert-subject").is_empty());
    assert!(resp.upstream_headers("x-client-cert-sha256").is_empty());
    assert!(
        resp.upstream_headers("connection").is_empty()
            || !resp
                .upstream_headers("connection")
                .iter()
                .any(|v| v.to_ascii_lowercase().contains("x-auth"))
    );
    let echoed = resp.json().to_string();
    assert!(
        !echoed.contains("admin"),
        "a spoofed value reached the upstream: {echoed}"
    );
    assert!(
        !echoed.contains("evil"),
        "a spoofed value reached the upstream: {echoed}"
    );

    // A route open to every issuer entry strips them the same way.
    let resp = send(
        gateway.http,
        "GET",
        "/everyone",
        &[("authorization", &bearer), ("X-Auth-Subject", "admin")],
    )
    .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    assert_eq!(resp.upstream_headers("x-auth-subject"), vec!["real-svc"]);
    gateway.shutdown().await;
}

#[tokio::test]
async fn client_identity_headers_are_dropped_when_the_token_has_no_such_claim() {
    let (idp, gateway) = main_setup().await;
    // No scope, no client id, no tid: the gateway adds none of those headers, and the
    // client's copies must not survive in their place.
    let token = idp.token().sign();
    let bearer = format!("Bearer {token}");
    let resp = send(
        gateway.http,
        "GET",
        "/open",
        &[
            ("authorization", &bearer),
            ("X-Auth-Scopes", "admin:all"),
            ("X-Auth-Client-Id", "admin-client"),
            ("X-Auth-Tenant", "evil-tenant"),
        ],
    )
    .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    assert!(resp.upstream_headers("x-auth-scopes").is_empty());
    assert!(resp.upstream_headers("x-auth-client-id").is_empty());
    assert!(resp.upstream_headers("x-auth-tenant").is_empty());
    assert_eq!(resp.upstream_headers("x-auth-subject"), vec!["svc-1"]);
    gateway.shutdown().await;
}

#[tokio::test]
async fn oversized_token_is_an_invalid_token() {
    let (idp, gateway) = main_setup().await;
    let padding = "p".repeat(20 * 1024);
    let token = idp
        .token()
        .scope("orders:read")
        .claim("padding", json!(padding))
        .sign();
    assert!(token.len() > 16 * 1024);
    let resp = gateway.get("/read", Some(&token)).await;
    assert_invalid_token(&resp, "20 KiB token");
    gateway.shutdown().await;
}
