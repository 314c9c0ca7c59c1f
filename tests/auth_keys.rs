//! End-to-end authentication, where the keys come from (SPEC §2 issuers, §3 step 6, §6):
//! unknown-kid refresh and its rate limit, an IdP down at start or later (503, stale keys,
//! max_stale), HMAC issuers, discovery, an entry without keys next to one with, and the
//! Cache-Control clamp. A real gateway on 127.0.0.1:0 with a test identity provider serving
//! JWKS over loopback http (harness: `tests/support/auth.rs`).

mod support;

use std::time::Duration;

use http::StatusCode;
use jsonwebtoken::Algorithm;
use serde_json::json;

use support::auth::{
    assert_invalid_token, get, idp_route, issuer_with_route, wait_metrics, Gateway, WAIT,
};
use support::config::Config;
use support::idp::{keys, Idp};

// ----------------------------------------------------------------------------------------
// 4. Unknown kid: one coalesced refresh, bounded by min_refresh
// ----------------------------------------------------------------------------------------

#[tokio::test]
async fn unknown_kid_refreshes_once_and_is_rate_limited() {
    let idp = Idp::start().await;
    let gateway = Gateway::start(&idp_route("rot", &idp, "min_refresh = \"600ms\"")).await;
    assert_eq!(idp.jwks_requests(), 1);
    let k1 = idp.token().sign();
    assert_eq!(gateway.get("/r", Some(&k1)).await.status, StatusCode::OK);
    assert_eq!(idp.jwks_requests(), 1, "a known kid fetches nothing");

    // Rotation: the IdP adds k2; a k2 token passes after exactly one extra fetch.
    idp.add_key("k2", keys::rsa2());
    let k2 = idp.token().kid("k2").sign();
    let resp = gateway.get("/r", Some(&k2)).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    assert_eq!(idp.jwks_requests(), 2, "exactly one unknown-kid fetch");
    assert_eq!(gateway.get("/r", Some(&k1)).await.status, StatusCode::OK);

    // The attacker's key (generated on first use, which takes a while) and its token are made
    // now, so the "within min_refresh" step below spends no time on key generation.
    idp.register_signer("k9", keys::attacker());
    let k9 = idp.token().kid("k9").sign();

    // After min_refresh: 20 concurrent requests with a newly rotated kid share one fetch.
    tokio::time::sleep(Duration::from_millis(700)).await;
    idp.add_key("k3", keys::rsa3());
    let k3 = idp.token().kid("k3").sign();
    let before = idp.jwks_requests();
    let requests = (0..20).map(|_| {
        let token = k3.clone();
        let addr = gateway.http;
        tokio::spawn(async move { get(addr, "/r", Some(&token)).await.status })
    });
    let statuses = futures_util::future::join_all(requests).await;
    for status in statuses {
        assert_eq!(status.expect("task"), StatusCode::OK);
    }
    assert_eq!(
        idp.jwks_requests(),
        before + 1,
        "concurrent unknown kids coalesce"
    );

    // Unknown kids within min_refresh: the rest of the burst of 3 fetches, then no fetch;
    // each is a 401.
    let before = idp.jwks_requests();
    for _ in 0..4 {
        let resp = gateway.get("/r", Some(&k9)).await;
        assert_invalid_token(&resp, "unknown kid within min_refresh");
    }
    assert_eq!(
        idp.jwks_requests(),
        before + 2,
        "the burst bounds unknown-kid fetches: k3 left two of three refreshes, k9 takes them"
    );

    // After min_refresh, 20 concurrent requests with a kid the IdP never publishes cause at
    // most one fetch, and all fail.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let before = idp.jwks_requests();
    let requests = (0..20).map(|_| {
        let token = k9.clone();
        let addr = gateway.http;
        tokio::spawn(async move { get(addr, "/r", Some(&token)).await.status })
    });
    for status in futures_util::future::join_all(requests).await {
        assert_eq!(status.expect("task"), StatusCode::UNAUTHORIZED);
    }
    let extra = idp.jwks_requests() - before;
    assert!(extra <= 1, "{extra} fetches for one unknown kid flood");

    let metrics = gateway.metrics().await;
    assert!(
        metrics.value(
            "authgate_jwks_unknown_kid_refresh_total",
            &[("issuer", "rot")]
        ) >= 2.0
    );
    assert_eq!(
        metrics.value("authgate_jwks_keys", &[("issuer", "rot")]),
        3.0,
        "k1, k2, k3"
    );
    gateway.shutdown().await;
}

// ----------------------------------------------------------------------------------------
// 5. IdP down, stale-if-error
// ----------------------------------------------------------------------------------------

#[tokio::test]
async fn idp_down_at_start_gives_503_and_not_ready() {
    let idp = Idp::start().await; // only used to mint tokens
    let gateway = Gateway::start_unready(&issuer_with_route(
        "down-idp",
        &idp.issuer(),
        &format!("jwks_uri = \"{}\"", Idp::absent_jwks_uri()),
        "min_refresh = \"1s\"",
        "/r",
    ))
    .await;

    let token = idp.token().sign();
    let resp = gateway.get("/r", Some(&token)).await;
    assert_eq!(
        resp.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        resp.text()
    );
    assert_eq!(resp.error(), "unavailable");
    assert!(
        resp.header("retry-after").is_some(),
        "503 needs Retry-After"
    );
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert!(resp.json()["error_description"].is_string());

    // No token is still 401: the client must send one anyway.
    assert_eq!(
        gateway.get("/r", None).await.status,
        StatusCode::UNAUTHORIZED
    );

    let ready = gateway.admin_get("/readyz").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    let body = ready.json();
    assert_eq!(body["ready"], json!(false));
    assert_eq!(body["issuers"]["down-idp"], json!("no key set"), "{body}");
    assert_eq!(gateway.admin_get("/healthz").await.status, StatusCode::OK);
    gateway.shutdown().await;
}

#[tokio::test]
async fn idp_recovering_after_start_makes_the_gateway_ready() {
    let idp = Idp::start().await;
    idp.set_failing(true);
    let gateway = Gateway::start_unready(&idp_route("late", &idp, "min_refresh = \"200ms\"")).await;
    assert!(idp.wait_jwks_requests(1, WAIT).await, "no fetch at start");
    let token = idp.token().sign();
    assert_eq!(
        gateway.get("/r", Some(&token)).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // Backoff from (min(1 s, min_refresh)) up to min_refresh: the next attempt succeeds.
    idp.set_failing(false);
    gateway.wait_ready().await;
    assert_eq!(gateway.get("/r", Some(&token)).await.status, StatusCode::OK);
    gateway.shutdown().await;
}

#[tokio::test]
async fn stale_keys_are_served_while_the_idp_fails() {
    let idp = Idp::start().await;
    let gateway = Gateway::start(&idp_route(
        "flaky",
        &idp,
        "refresh_interval = \"200ms\"\nmin_refresh = \"100ms\"\nmax_stale = \"1h\"",
    ))
    .await;
    let token = idp.token().sign();
    assert_eq!(gateway.get("/r", Some(&token)).await.status, StatusCode::OK);
    let metrics = gateway.metrics().await;
    assert_eq!(
        metrics.value("authgate_jwks_stale", &[("issuer", "flaky")]),
        0.0
    );

    idp.set_failing(true);
    let failing_from = idp.jwks_requests();
    assert!(
        idp.wait_jwks_requests(failing_from + 2, WAIT).await,
        "background refreshes should keep trying"
    );
    let metrics = wait_metrics(&gateway, "jwks_stale 1", |m| {
        m.get("authgate_jwks_stale", &[("issuer", "flaky")]) == Some(1.0)
    })
    .await;
    assert!(
        metrics.value(
            "authgate_jwks_refresh_total",
            &[("issuer", "flaky"), ("result", "error")]
        ) >= 1.0
    );
    assert_eq!(
        metrics.value("authgate_jwks_keys", &[("issuer", "flaky")]),
        1.0
    );

    // A fresh (uncached) token still verifies with the stale set; so does the cached one.
    let fresh = idp.token().sub("svc-2").sign();
    let resp = gateway.get("/r", Some(&fresh)).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    assert_eq!(
        resp.upstream_header("x-auth-subject").as_deref(),
        Some("svc-2")
    );
    assert_eq!(gateway.get("/r", Some(&token)).await.status, StatusCode::OK);
    assert_eq!(gateway.admin_get("/readyz").await.status, StatusCode::OK);

    // Recovery clears the stale flag.
    idp.set_failing(false);
    wait_metrics(&gateway, "jwks_stale 0", |m| {
        m.get("authgate_jwks_stale", &[("issuer", "flaky")]) == Some(0.0)
    })
    .await;
    gateway.shutdown().await;
}

#[tokio::test]
async fn keys_past_max_stale_are_not_used() {
    let idp = Idp::start().await;
    let gateway = Gateway::start(&idp_route(
        "expiring",
        &idp,
        "refresh_interval = \"200ms\"\nmin_refresh = \"100ms\"\nmax_stale = \"300ms\"",
    ))
    .await;
    // A token verified (and cached) while the keys were good...
    let cached = idp.token().sub("svc-cached").sign();
    assert_eq!(
        gateway.get("/r", Some(&cached)).await.status,
        StatusCode::OK
    );
    idp.set_failing(true);
    // Bounded poll: fresh tokens (never cached) until the gateway answers 503.
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut n = 0;
    loop {
        n += 1;
        let token = idp.token().sub(&format!("svc-{n}")).sign();
        let resp = gateway.get("/r", Some(&token)).await;
        if resp.status == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(resp.error(), "unavailable");
            assert!(resp.header("retry-after").is_some());
            break;
        }
        assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
        assert!(
            tokio::time::Instant::now() < deadline,
            "keys were still used long past max_stale"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // ...is not served from the cache either once the issuer has no usable key set.
    let resp = gateway.get("/r", Some(&cached)).await;
    assert_eq!(
        resp.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        resp.text()
    );
    // The instance stays ready (SPEC §6, readiness "loaded_once"): the issuer loaded keys
    // once, its outage shows in the body, the metrics and its routes' 503s.
    let ready = gateway.admin_get("/readyz").await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text());
    assert_eq!(ready.json()["issuers"]["expiring"], json!("no key set"));
    gateway.shutdown().await;
}

// ----------------------------------------------------------------------------------------
// 6. HMAC issuers
// ----------------------------------------------------------------------------------------

#[tokio::test]
async fn hmac_issuer_with_secret_from_the_environment() {
    let idp = Idp::start().await; // only mints
    let secret = "an-hmac-secret-that-is-at-least-32-bytes-long";
    let var = format!("AUTHGATE_AUTH_TEST_HMAC_{}", std::process::id());
    std::env::set_var(&var, secret);
    let shared = format!(
        "issuer = \"https://hmac.test/\"\nhmac_secret = \"${{{var}}}\"\naudiences = [\"api\"]"
    );
    let gateway = Gateway::start(
        &Config::new()
            .issuer("shared", &shared)
            .route("h", "/h", "scopes = [\"h:read\"]")
            .tables(),
    )
    .await;
    let builder = idp.token().iss("https://hmac.test/").scope("h:read");
    let resp = gateway
        .get("/h", Some(&builder.sign_with_hmac(secret.as_bytes())))
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    assert_eq!(
        resp.upstream_header("x-auth-issuer").as_deref(),
        Some("https://hmac.test/")
    );
    let no_kid = builder.clone().no_kid().sign_with_hmac(secret.as_bytes());
    assert_eq!(
        gateway.get("/h", Some(&no_kid)).await.status,
        StatusCode::OK
    );

    let wrong = builder.sign_with_hmac(b"another-secret-that-is-also-32-bytes-long!");
    assert_invalid_token(&gateway.get("/h", Some(&wrong)).await, "wrong hmac secret");
    // HS512 is not in the default algorithms of an HMAC issuer (HS256).
    let hs512 = builder
        .clone()
        .alg(Algorithm::HS512)
        .sign_with_hmac(secret.as_bytes());
    assert_invalid_token(&gateway.get("/h", Some(&hs512)).await, "HS512");
    // An RSA token claiming this issuer has no key here.
    let rsa = builder.sign();
    assert_invalid_token(
        &gateway.get("/h", Some(&rsa)).await,
        "RS256 to an hmac issuer",
    );

    // The secret never appears in what the operator sees.
    let metrics = gateway.admin_get("/metrics").await.text();
    assert!(!metrics.contains(secret));
    assert!(!gateway.admin_get("/readyz").await.text().contains(secret));
    gateway.shutdown().await;
}

// ----------------------------------------------------------------------------------------
// 7. Discovery
// ----------------------------------------------------------------------------------------

#[tokio::test]
async fn discovery_finds_the_jwks() {
    let idp = Idp::start().await;
    let gateway = Gateway::start(&issuer_with_route(
        "oidc",
        &idp.issuer(),
        "discovery = true",
        "",
        "/d",
    ))
    .await;
    assert!(idp.discovery_requests() >= 1);
    assert!(idp.jwks_requests() >= 1);
    let resp = gateway.get("/d", Some(&idp.token().sign())).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    gateway.shutdown().await;
}

#[tokio::test]
async fn discovery_document_for_another_issuer_is_not_used() {
    let idp = Idp::start().await;
    idp.set_discovery_issuer("https://impostor.test");
    let gateway = Gateway::start_unready(&issuer_with_route(
        "oidc",
        &idp.issuer(),
        "discovery = true",
        "min_refresh = \"1s\"",
        "/d",
    ))
    .await;
    // Bounded wait for the first discovery attempt.
    let deadline = tokio::time::Instant::now() + WAIT;
    while idp.discovery_requests() == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(idp.discovery_requests() >= 1);
    let resp = gateway.get("/d", Some(&idp.token().sign())).await;
    assert_eq!(
        resp.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        resp.text()
    );
    assert_eq!(
        idp.jwks_requests(),
        0,
        "the document's jwks_uri must not be followed"
    );
    assert_eq!(
        gateway.admin_get("/readyz").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    gateway.shutdown().await;
}
/// SPEC §3 step 6: "If an issuer has never had a usable key set, the answer is 503 ... not
/// 401: clients must not throw away good tokens because the gateway cannot see keys." With two
/// entries for one `iss`, the one whose key source is down cannot judge the token, so a 401
/// from the other entry (audience mismatch) must not be the answer.
#[tokio::test]
async fn entry_without_keys_is_not_overruled_by_another_entrys_refusal() {
    let idp = Idp::start().await;
    let iss = idp.issuer();
    let gateway = Gateway::start_unready(
        &Config::new()
            .jwks_issuer("up", &iss, &idp.jwks_uri(), "audiences = [\"aud-up\"]")
            .jwks_issuer(
                "down",
                &iss,
                &Idp::absent_jwks_uri(),
                "audiences = [\"aud-down\"]\nmin_refresh = \"1s\"",
            )
            .route("both", "/both", "issuers = [\"up\", \"down\"]")
            .tables(),
    )
    .await;
    assert!(idp.wait_jwks_requests(1, WAIT).await);
    // Wait (bounded) until "up" has its keys: a token for it passes.
    let up = idp.token().aud("aud-up").sign();
    let deadline = tokio::time::Instant::now() + WAIT;
    while gateway.get("/both", Some(&up)).await.status != StatusCode::OK {
        assert!(
            tokio::time::Instant::now() < deadline,
            "entry up never got keys"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let down = idp.token().aud("aud-down").sign();
    let resp = gateway.get("/both", Some(&down)).await;
    assert_eq!(
        resp.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "a token for the entry without keys was judged by another entry: {}",
        resp.text()
    );
    gateway.shutdown().await;
}

#[tokio::test]
async fn cache_control_max_age_is_clamped_to_min_refresh() {
    let idp = Idp::start().await;
    idp.set_cache_control(Some("max-age=0"));
    let gateway = Gateway::start(&idp_route(
        "cc",
        &idp,
        "refresh_interval = \"10m\"\nmin_refresh = \"300ms\"",
    ))
    .await;
    // max-age=0 is clamped up to min_refresh: background refreshes continue (not every
    // 10 minutes), but not in a busy loop.
    let start = idp.jwks_requests();
    assert!(
        idp.wait_jwks_requests(start + 2, WAIT).await,
        "max-age should shorten refresh_interval"
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let in_a_second = idp.jwks_requests() - start - 2;
    assert!(
        in_a_second <= 5,
        "{in_a_second} fetches in 1 s with min_refresh 300ms"
    );
    gateway.shutdown().await;
}
