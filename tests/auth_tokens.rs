//! End-to-end authentication, which tokens are refused (SPEC §2, §3 steps 6-7, §5): the
//! Authorization header syntax, expiry, forgeries, algorithm attacks (with their control),
//! token types, required claims, allowed clients, scopes, and issuer entries sharing one
//! `iss`. A real gateway on 127.0.0.1:0 in front of an echo upstream, with a test identity
//! provider serving JWKS over loopback http (harness: `tests/support/auth.rs`).

mod support;

use http::StatusCode;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{json, Value};

use support::auth::{
    assert_invalid_token, assert_no_token_echo, b64, get, main_setup, send, Gateway,
};
use support::config::Config;
use support::idp::{keys, sign_raw, Idp};

// ----------------------------------------------------------------------------------------
// 2. Denials
// ----------------------------------------------------------------------------------------

#[tokio::test]
async fn authorization_header_syntax() {
    let (idp, gateway) = main_setup().await;
    let addr = gateway.http;

    let resp = get(addr, "/read", None).await;
    assert_eq!(resp.status, StatusCode::UNAUTHORIZED);
    assert_eq!(resp.error(), "missing_token");
    assert_eq!(
        resp.header("www-authenticate"),
        Some("Bearer realm=\"authgate\"")
    );
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert!(resp.json()["error_description"].is_string());
    assert!(resp.header("x-request-id").is_some());

    let resp = send(
        addr,
        "GET",
        "/read",
        &[("authorization", "Basic dXNlcjpwYXNz")],
    )
    .await;
    assert_eq!(resp.status, StatusCode::UNAUTHORIZED);
    assert_eq!(resp.error(), "missing_token");
    assert_eq!(
        resp.header("www-authenticate"),
        Some("Bearer realm=\"authgate\"")
    );

    let token = idp.token().scope("orders:read").sign();
    let bearer = format!("Bearer {token}");
    let resp = send(
        addr,
        "GET",
        "/read",
        &[("authorization", &bearer), ("authorization", &bearer)],
    )
    .await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST, "{}", resp.text());
    assert_eq!(resp.error(), "invalid_request");

    for value in ["Bearer", "Bearer ", "Bearer a b"] {
        let resp = send(addr, "GET", "/read", &[("authorization", value)]).await;
        assert_eq!(
            resp.status,
            StatusCode::BAD_REQUEST,
            "{value:?}: {}",
            resp.text()
        );
        assert_eq!(resp.error(), "invalid_request", "{value:?}");
    }

    let resp = get(addr, "/read", Some("abc")).await;
    assert_invalid_token(&resp, "garbage token");

    // Scheme is case-insensitive.
    let lower = format!("bearer {token}");
    let resp = send(addr, "GET", "/read", &[("authorization", &lower)]).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    gateway.shutdown().await;
}

#[tokio::test]
async fn expired_token_is_refused_without_echoing_it() {
    let (idp, gateway) = main_setup().await;
    let token = idp.token().scope("orders:read").exp_in(-3600).sign();
    let resp = gateway.get("/read", Some(&token)).await;
    assert_invalid_token(&resp, "expired");
    let description = resp.json()["error_description"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(description.contains("expired"), "{description}");
    assert!(
        resp.header("www-authenticate").unwrap().contains("expired"),
        "challenge should say why"
    );
    assert_no_token_echo(&resp, &token);

    // Within leeway (default 30 s): still good.
    let token = idp.token().scope("orders:read").exp_in(-5).sign();
    let resp = gateway.get("/read", Some(&token)).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());

    // No exp at all.
    let token = idp.token().scope("orders:read").without("exp").sign();
    assert_invalid_token(&gateway.get("/read", Some(&token)).await, "no exp");

    // nbf in the future.
    let token = idp
        .token()
        .scope("orders:read")
        .claim("nbf", json!(support::idp::now() + 3600))
        .sign();
    assert_invalid_token(&gateway.get("/read", Some(&token)).await, "nbf");
    gateway.shutdown().await;
}

#[tokio::test]
async fn forged_and_mismatched_tokens_are_refused() {
    let (idp, gateway) = main_setup().await;
    let good = idp.token().scope("orders:read");

    // Bad signature.
    let token = good.sign_bad_signature();
    let resp = gateway.get("/read", Some(&token)).await;
    assert_invalid_token(&resp, "bad signature");
    assert!(resp.json()["error_description"]
        .as_str()
        .unwrap()
        .contains("signature"));
    assert_no_token_echo(&resp, &token);

    // Signed by a key the IdP never published, under the published kid.
    let token = good.clone().key(keys::attacker()).sign();
    assert_invalid_token(&gateway.get("/read", Some(&token)).await, "attacker key");

    // Wrong audience.
    let token = good.clone().aud("someone-else").sign();
    let resp = gateway.get("/read", Some(&token)).await;
    assert_invalid_token(&resp, "wrong audience");
    assert!(resp.json()["error_description"]
        .as_str()
        .unwrap()
        .contains("audience"));
    // aud as an array containing ours is fine.
    let token = good.clone().claim("aud", json!(["x", "api"])).sign();
    assert_eq!(
        gateway.get("/read", Some(&token)).await.status,
        StatusCode::OK
    );
    // No aud at all.
    let token = good.clone().without("aud").sign();
    assert_invalid_token(&gateway.get("/read", Some(&token)).await, "no aud");

    // Unknown issuer.
    let token = good.clone().iss("https://evil.test/").sign();
    let resp = gateway.get("/read", Some(&token)).await;
    assert_invalid_token(&resp, "unknown issuer");
    assert!(resp.json()["error_description"]
        .as_str()
        .unwrap()
        .contains("issuer"));

    // A configured issuer that the route does not allow.
    let token = good.clone().sign();
    assert_eq!(
        gateway.get("/read", Some(&token)).await.status,
        StatusCode::OK
    );
    assert_invalid_token(
        &gateway.get("/other-only", Some(&token)).await,
        "issuer not allowed on route",
    );
    // ... and the right issuer for that route passes (same key source).
    let token = good.clone().iss("https://other.test/").sign();
    assert_eq!(
        gateway.get("/other-only", Some(&token)).await.status,
        StatusCode::OK
    );
    // The other iss is not accepted on /read, which only allows `main`.
    assert_invalid_token(
        &gateway.get("/read", Some(&token)).await,
        "other iss on read",
    );
    gateway.shutdown().await;
}

#[tokio::test]
async fn algorithm_attacks_are_refused() {
    let (idp, gateway) = main_setup().await;
    let good = idp.token().scope("orders:read");
    let claims = good.claims();

    // ES256 with a published EC key, but `main` allows RS256 only.
    let token = good.clone().kid("e1").sign();
    let resp = gateway.get("/read", Some(&token)).await;
    assert_invalid_token(&resp, "ES256 to an RS256-only issuer");
    // The same token is fine for an issuer entry with the default algorithms.
    let token = good.clone().kid("e1").iss("https://other.test/").sign();
    assert_eq!(
        gateway.get("/other-only", Some(&token)).await.status,
        StatusCode::OK,
        "ES256 with default algorithms"
    );

    // alg: none, with an empty and with a non-empty signature; every spelling.
    for alg in ["none", "None", "NONE"] {
        let header = json!({"alg": alg, "typ": "JWT", "kid": "k1"});
        let input = format!(
            "{}.{}",
            b64(&serde_json::to_vec(&header).unwrap()),
            b64(&serde_json::to_vec(&claims).unwrap())
        );
        for token in [format!("{input}."), format!("{input}.{}", b64(b"sig"))] {
            assert_invalid_token(&gateway.get("/read", Some(&token)).await, alg);
        }
    }

    // HS256 keyed with the RSA public key as an attacker has it: the SPKI PEM (with and
    // without its final newline), the JWK's `n` as published (base64url text, no quotes) and
    // the decoded modulus bytes; on a route whose issuer allows RS256 only and on one with the
    // default algorithms. `confusion_secrets_make_valid_tokens_for_an_hmac_issuer` shows that
    // the same tokens pass where those bytes are the configured secret.
    for (what, secret) in confusion_secrets(keys::rsa()) {
        for (path, iss) in [
            ("/read", idp.issuer()),
            ("/other-only", "https://other.test/".into()),
        ] {
            let token = hs256_keyed_with(&good.clone().iss(&iss).claims(), &secret);
            assert_invalid_token(
                &gateway.get(path, Some(&token)).await,
                &format!("alg confusion, HS256 keyed with {what}"),
            );
        }
    }

    // A `jwk` header carrying the attacker's key, signed by the attacker; with and without
    // a kid, and also `jku`/`x5u` pointing at the attacker.
    let attacker_jwk = keys::attacker().jwk_with_kid("k1");
    let headers = [
        json!({"alg": "RS256", "kid": "k1", "jwk": attacker_jwk}),
        json!({"alg": "RS256", "jwk": attacker_jwk}),
        json!({"alg": "RS256", "kid": "k1", "jku": "http://127.0.0.1:1/evil.json"}),
        json!({"alg": "RS256", "kid": "k1", "x5u": "http://127.0.0.1:1/evil.pem"}),
    ];
    for header in headers {
        let token = good
            .clone()
            .key(keys::attacker())
            .sign_with_header(&header, Algorithm::RS256);
        assert_invalid_token(
            &gateway.get("/read", Some(&token)).await,
            &header.to_string(),
        );
    }

    // A `crit` header, otherwise valid (signed by the real key).
    let token = good.sign_with_header(
        &json!({"alg": "RS256", "kid": "k1", "crit": ["exp"], "exp": 1}),
        Algorithm::RS256,
    );
    let resp = gateway.get("/read", Some(&token)).await;
    assert_invalid_token(&resp, "crit");
    // Control: the same header without crit passes.
    let token = good.sign_with_header(&json!({"alg": "RS256", "kid": "k1"}), Algorithm::RS256);
    assert_eq!(
        gateway.get("/read", Some(&token)).await.status,
        StatusCode::OK
    );
    gateway.shutdown().await;
}

/// The bytes an algorithm-confusion attacker would use as the HMAC secret for `key`.
fn confusion_secrets(key: &keys::TestKey) -> Vec<(&'static str, Vec<u8>)> {
    use base64::Engine as _;
    let n = key.jwk["n"].as_str().expect("RSA JWK has n");
    let modulus = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(n)
        .expect("n is base64url");
    vec![
        ("the SPKI PEM", key.public_pem.as_bytes().to_vec()),
        (
            "the SPKI PEM without its final newline",
            key.public_pem.trim_end().as_bytes().to_vec(),
        ),
        ("the JWK's n as text", n.as_bytes().to_vec()),
        ("the decoded modulus", modulus),
    ]
}

/// An HS256 token for `claims` (header with kid `k1`) keyed with `secret`.
fn hs256_keyed_with(claims: &Value, secret: &[u8]) -> String {
    sign_raw(
        &json!({"alg": "HS256", "typ": "JWT", "kid": "k1"}),
        claims,
        &EncodingKey::from_secret(secret),
        Algorithm::HS256,
    )
}

/// The control for the algorithm-confusion cases: where the attacker's bytes (those that are
/// text, as `hmac_secret` is) are the configured HMAC secret, the very same tokens verify, so
/// their refusal in `algorithm_attacks_are_refused` comes from the key set, not from a
/// malformed token.
#[tokio::test]
async fn confusion_secrets_make_valid_tokens_for_an_hmac_issuer() {
    let idp = Idp::start_with(&[("k1", keys::rsa())]).await;
    let secrets: Vec<(&str, String)> = confusion_secrets(keys::rsa())
        .into_iter()
        .filter_map(|(what, secret)| Some((what, String::from_utf8(secret).ok()?)))
        .collect();
    assert_eq!(secrets.len(), 3, "the PEM twice and n are text");
    let mut body = String::new();
    for (index, (_, secret)) in secrets.iter().enumerate() {
        // A TOML literal string keeps the PEM's newlines; the one after ''' is dropped.
        body.push_str(&format!(
            "[[issuers]]\nname = \"h{index}\"\nissuer = \"https://h{index}.test/\"\n\
             audiences = [\"api\"]\nhmac_secret = '''\n{secret}'''\n\n\
             [[routes]]\nname = \"h{index}\"\npath_prefix = \"/h{index}\"\n\
             upstream = \"echo\"\nissuers = [\"h{index}\"]\n\n"
        ));
    }
    let gateway = Gateway::start(&body).await;
    for (index, (what, secret)) in secrets.iter().enumerate() {
        let claims = idp
            .token()
            .iss(&format!("https://h{index}.test/"))
            .aud("api")
            .claims();
        let token = hs256_keyed_with(&claims, secret.as_bytes());
        let resp = gateway.get(&format!("/h{index}"), Some(&token)).await;
        assert_eq!(resp.status, StatusCode::OK, "{what}: {}", resp.text());
    }
    gateway.shutdown().await;
}

#[tokio::test]
async fn token_type_required_claims_and_allowed_clients() {
    let (idp, gateway) = main_setup().await;

    // token_types = ["at+jwt"].
    let typed = idp.token().aud("api-typed");
    assert_invalid_token(
        &gateway
            .get("/typed", Some(&typed.clone().typ("JWT").sign()))
            .await,
        "typ JWT",
    );
    assert_invalid_token(
        &gateway
            .get(
                "/typed",
                Some(
                    &typed
                        .clone()
                        .sign_with_header(&json!({"alg": "RS256", "kid": "k1"}), Algorithm::RS256),
                ),
            )
            .await,
        "no typ",
    );
    for typ in ["at+jwt", "application/at+jwt", "AT+JWT"] {
        let resp = gateway
            .get("/typed", Some(&typed.clone().typ(typ).sign()))
            .await;
        assert_eq!(resp.status, StatusCode::OK, "typ {typ}: {}", resp.text());
    }

    // required_claims = { token_use = "access", tier = ["gold", "silver"] }.
    let required = idp.token().aud("api-req");
    let cases = [
        (json!("access"), json!("gold"), StatusCode::OK),
        (json!("access"), json!("silver"), StatusCode::OK),
        (json!("access"), json!(["bronze", "silver"]), StatusCode::OK),
        (json!("id"), json!("gold"), StatusCode::UNAUTHORIZED),
        (json!("access"), json!("bronze"), StatusCode::UNAUTHORIZED),
        (json!(["id"]), json!("gold"), StatusCode::UNAUTHORIZED),
    ];
    for (token_use, tier, expected) in cases {
        let token = required
            .clone()
            .claim("token_use", token_use.clone())
            .claim("tier", tier.clone())
            .sign();
        let resp = gateway.get("/required", Some(&token)).await;
        assert_eq!(
            resp.status,
            expected,
            "token_use {token_use} tier {tier}: {}",
            resp.text()
        );
    }
    let token = required.clone().claim("tier", json!("gold")).sign();
    assert_invalid_token(
        &gateway.get("/required", Some(&token)).await,
        "token_use missing",
    );

    // audiences = [] with allowed_clients: aud is not checked, the client id is.
    let cognito = idp.token().without("aud");
    let resp = gateway
        .get(
            "/cognito",
            Some(&cognito.clone().client_id("client-good").sign()),
        )
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    assert_eq!(
        resp.upstream_header("x-auth-client-id").as_deref(),
        Some("client-good")
    );
    let resp = gateway
        .get(
            "/cognito",
            Some(
                &cognito
                    .clone()
                    .client_id("client-good")
                    .aud("anything")
                    .sign(),
            ),
        )
        .await;
    assert_eq!(resp.status, StatusCode::OK, "aud present but not checked");
    let resp = gateway
        .get(
            "/cognito",
            Some(&cognito.clone().client_id("client-bad").sign()),
        )
        .await;
    assert_invalid_token(&resp, "client not allowed");
    let resp = gateway.get("/cognito", Some(&cognito.clone().sign())).await;
    assert_invalid_token(&resp, "no client id");
    gateway.shutdown().await;
}

#[tokio::test]
async fn scopes_are_enforced_with_a_challenge() {
    let (idp, gateway) = main_setup().await;

    let token = idp.token().scope("orders:write").sign();
    let resp = gateway.get("/read", Some(&token)).await;
    assert_eq!(resp.status, StatusCode::FORBIDDEN, "{}", resp.text());
    assert_eq!(resp.error(), "insufficient_scope");
    assert_eq!(
        resp.header("www-authenticate"),
        Some("Bearer realm=\"authgate\", error=\"insufficient_scope\", scope=\"orders:read\"")
    );

    // No scope claim at all.
    let token = idp.token().sign();
    assert_eq!(
        gateway.get("/read", Some(&token)).await.status,
        StatusCode::FORBIDDEN
    );
    // Exact matching: a prefix or a different case is not the scope.
    for scope in ["orders", "Orders:Read", "orders:read:all"] {
        let token = idp.token().scope(scope).sign();
        assert_eq!(
            gateway.get("/read", Some(&token)).await.status,
            StatusCode::FORBIDDEN,
            "{scope}"
        );
    }
    // From `scp` alone.
    let token = idp.token().scp(&["orders:read"]).sign();
    assert_eq!(
        gateway.get("/read", Some(&token)).await.status,
        StatusCode::OK
    );

    // any_scopes: scopes then any_scopes in the challenge.
    let token = idp.token().scope("orders:read").sign();
    let resp = gateway.get("/any", Some(&token)).await;
    assert_eq!(resp.status, StatusCode::FORBIDDEN, "{}", resp.text());
    assert_eq!(resp.error(), "insufficient_scope");
    assert_eq!(
        resp.header("www-authenticate"),
        Some("Bearer realm=\"authgate\", error=\"insufficient_scope\", scope=\"orders:read a:x a:y\"")
    );
    let token = idp.token().scope("orders:read a:y").sign();
    assert_eq!(
        gateway.get("/any", Some(&token)).await.status,
        StatusCode::OK
    );
    let token = idp.token().scope("a:x").sign();
    assert_eq!(
        gateway.get("/any", Some(&token)).await.status,
        StatusCode::FORBIDDEN,
        "any_scopes alone does not replace scopes"
    );
    gateway.shutdown().await;
}

// ----------------------------------------------------------------------------------------
// 3. One `iss`, several entries: the cache never widens access
// ----------------------------------------------------------------------------------------

#[tokio::test]
async fn issuer_entries_sharing_an_iss_stay_separate_also_when_cached() {
    let idp = Idp::start().await;
    let iss = idp.issuer();
    let jwks = idp.jwks_uri();
    let gateway = Gateway::start(
        &Config::new()
            .jwks_issuer("tenant-a", &iss, &jwks, "audiences = [\"aud-a\"]")
            .jwks_issuer("tenant-b", &iss, &jwks, "audiences = [\"aud-b\"]")
            .route("a", "/a", "issuers = [\"tenant-a\"]")
            .route("b", "/b", "issuers = [\"tenant-b\"]")
            .route(
                "b-scoped",
                "/b-scoped",
                "issuers = [\"tenant-b\"]\nscopes = [\"b:write\"]",
            )
            .route("both", "/both", "issuers = [\"tenant-a\", \"tenant-b\"]")
            .tables(),
    )
    .await;
    // Entries with one key source share one key cache: one fetch at start.
    assert_eq!(idp.jwks_requests(), 1, "shared key store fetches once");

    // Audience a: passes /a, refused on /b, also after /a cached it.
    let token_a = idp.token().aud("aud-a").sign();
    assert_eq!(
        gateway.get("/a", Some(&token_a)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        gateway.get("/a", Some(&token_a)).await.status,
        StatusCode::OK
    );
    let resp = gateway.get("/b", Some(&token_a)).await;
    assert_invalid_token(&resp, "aud-a token on route b after caching");
    // A route allowing both entries accepts it.
    assert_eq!(
        gateway.get("/both", Some(&token_a)).await.status,
        StatusCode::OK
    );
    // And caching via /both does not open /b either.
    assert_invalid_token(&gateway.get("/b", Some(&token_a)).await, "after /both");

    // The other way round, cache first on /b.
    let token_b = idp.token().aud("aud-b").sign();
    assert_eq!(
        gateway.get("/b", Some(&token_b)).await.status,
        StatusCode::OK
    );
    assert_invalid_token(&gateway.get("/a", Some(&token_b)).await, "aud-b token on a");

    // A token cached on a route without scope requirements is still refused (403) where a
    // scope is needed; first on an uncached token, then cached.
    let resp = gateway.get("/b-scoped", Some(&token_b)).await;
    assert_eq!(resp.status, StatusCode::FORBIDDEN, "{}", resp.text());
    assert_eq!(resp.error(), "insufficient_scope");
    let scoped = idp.token().aud("aud-b").scope("b:write").sign();
    assert_eq!(
        gateway.get("/b-scoped", Some(&scoped)).await.status,
        StatusCode::OK
    );

    let metrics = gateway.metrics().await;
    assert!(
        metrics.value("authgate_token_cache_requests_total", &[("result", "hit")]) >= 1.0,
        "repeated tokens must hit the cache"
    );
    gateway.shutdown().await;
}
