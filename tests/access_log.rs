//! The access log never contains tokens (SPEC §6). This binary installs its own global tracing
//! subscriber, writing into memory, before any gateway starts (`authgate::logging::init` uses
//! `try_init`, so the first subscriber stays), then inspects everything that was logged.

mod support;

use http::{HeaderValue, Request, StatusCode};
use http_body_util::Empty;
use serde_json::json;

use support::config::Config;
use support::echo::Echo;
use support::gateway::{send, Gateway, Reply};
use support::idp::Idp;
use support::logs::capture_text;

async fn get(gateway: &Gateway, path: &str, token: Option<&str>, request_id: &str) -> Reply {
    let mut builder = Request::get(path).header("x-request-id", request_id);
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    send(
        gateway.http_addr(),
        builder.body(Empty::<bytes::Bytes>::new()).expect("request"),
    )
    .await
}

#[tokio::test]
async fn access_log_never_contains_the_token() {
    let log = capture_text();
    let idp = Idp::start().await;
    let echo = Echo::start().await;
    let gateway = Gateway::from_toml(
        Config::new()
            .idp(
                "idp",
                &idp,
                "claim_headers = { \"X-Auth-Tenant\" = \"tid\" }",
            )
            .echo(&echo)
            .route("orders", "/orders", "scopes = [\"orders:read\"]")
            .toml(),
    )
    .start()
    .await;

    let good = idp
        .token()
        .sub("svc-logged")
        .scope("orders:read")
        .claim("tid", json!("tenant-secret-ish"))
        .sign();
    let expired = idp.token().scope("orders:read").exp_in(-3600).sign();
    let unscoped = idp.token().sign();
    let forged = idp.token().scope("orders:read").sign_bad_signature();
    let unknown_kid = idp.token().kid("nope").scope("orders:read").sign();

    // (request id, path, token, expected status)
    let cases: [(&str, &str, Option<&str>, StatusCode); 8] = [
        ("log-allowed-1", "/orders/1", Some(&good), StatusCode::OK),
        ("log-allowed-2", "/orders/2", Some(&good), StatusCode::OK),
        (
            "log-expired",
            "/orders/3",
            Some(&expired),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "log-unscoped",
            "/orders/4",
            Some(&unscoped),
            StatusCode::FORBIDDEN,
        ),
        (
            "log-forged",
            "/orders/5",
            Some(&forged),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "log-unknown-kid",
            "/orders/6",
            Some(&unknown_kid),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "log-garbage",
            "/orders/7",
            Some("not.a.jwt"),
            StatusCode::UNAUTHORIZED,
        ),
        ("log-missing", "/orders/8", None, StatusCode::UNAUTHORIZED),
    ];
    for (id, path, token, status) in cases {
        let reply = get(&gateway, path, token, id).await;
        assert_eq!(reply.status, status, "{id}: {}", reply.text());
        assert_eq!(reply.header("x-request-id"), Some(id));
    }
    // A token in the query string: the access log has the canonical path, not the query.
    let reply = get(
        &gateway,
        &format!("/orders/9?access_token={good}"),
        Some(&good),
        "log-query",
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    // A generated request id is logged too.
    let reply = send(
        gateway.http_addr(),
        Request::get("/orders/10")
            .header(
                "authorization",
                HeaderValue::from_str(&format!("Bearer {good}")).unwrap(),
            )
            .body(Empty::<bytes::Bytes>::new())
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let generated = reply.header("x-request-id").expect("request id").to_owned();
    gateway.shutdown().await;

    let text = log.text();
    let ids = cases.iter().map(|(id, ..)| *id);
    for id in ids.chain(["log-query", generated.as_str()]) {
        assert!(
            text.contains(id),
            "request id {id} not in the access log:\n{text}"
        );
    }
    assert!(text.contains("svc-logged"), "the subject is logged");
    for token in [&good, &expired, &unscoped, &forged, &unknown_kid] {
        let mut parts = token.split('.');
        let (header, payload, signature) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        assert!(
            !text.contains(token.as_str()),
            "a token was logged:\n{text}"
        );
        assert!(
            !text.contains(signature),
            "a token signature was logged:\n{text}"
        );
        assert!(
            !text.contains(payload),
            "a token payload was logged:\n{text}"
        );
        assert!(!text.contains(&format!("{header}.{payload}")));
    }
    assert!(!text.contains("not.a.jwt"), "a presented token was logged");
    assert!(!text.contains("access_token="), "the query was logged");
}
