//! Tests for `jwt.rs`: decoding, every `TokenError`, algorithm confusion and header rendering.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::HeaderName;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{json, Value};

use super::*;
use crate::auth::keys::testkeys::{self, b64, jwks, sign};
use crate::auth::keys::{KeySet, Secret};

const NOW: u64 = 1_700_000_000;
const ISSUER: &str = "https://idp.test/";

fn policy() -> TokenPolicy {
    TokenPolicy {
        issuer: ISSUER.to_owned(),
        audiences: vec!["api://orders".to_owned()],
        allowed_clients: None,
        algorithms: vec![
            Algorithm::RS256,
            Algorithm::PS256,
            Algorithm::ES256,
            Algorithm::ES384,
            Algorithm::EdDSA,
            Algorithm::HS256,
        ],
        scope_claims: vec!["scope".to_owned(), "scp".to_owned()],
        client_id_claims: ["client_id", "azp", "appid", "cid"]
            .map(str::to_owned)
            .to_vec(),
        leeway: 30,
        token_types: vec![],
        required_claims: vec![],
        claim_headers: vec![],
        require_bound_token: false,
        max_token_lifetime: None,
        implied_scopes: Default::default(),
    }
}

fn claims() -> Value {
    json!({
        "iss": ISSUER,
        "sub": "svc-1",
        "aud": "api://orders",
        "exp": NOW + 300,
        "iat": NOW - 10,
        "client_id": "client-1",
        "scope": "orders:read",
    })
}

/// A key set with every asymmetric test key, each under its own kid.
fn key_set() -> KeySet {
    let parsed = KeySet::from_jwks(&jwks(&[
        testkeys::rsa().jwk_with_kid("rsa-1"),
        testkeys::ec_p256().jwk_with_kid("p256"),
        testkeys::ec_p384().jwk_with_kid("p384"),
        testkeys::ed25519().jwk_with_kid("ed"),
    ]))
    .expect("jwks");
    assert!(parsed.skipped.is_empty(), "{:?}", parsed.skipped);
    parsed.keys
}

fn hmac_set() -> KeySet {
    KeySet::from_hmac(&Secret::new(testkeys::HMAC_SECRET.to_vec()))
}

/// An RS256 token with kid `rsa-1` and these claims.
fn rs256(claims: &Value) -> String {
    sign(
        &json!({"alg": "RS256", "kid": "rsa-1"}),
        claims,
        &testkeys::rsa().encoding,
        Algorithm::RS256,
    )
}

fn check_with(
    token: &str,
    policy: &TokenPolicy,
    keys: &KeySet,
    cert: Option<&[u8; 32]>,
) -> Result<Principal, TokenError> {
    let token = Unverified::decode(token)?;
    verify(&token, policy, keys, NOW, cert)
}

fn check(token: &str, policy: &TokenPolicy) -> Result<Principal, TokenError> {
    check_with(token, policy, &key_set(), None)
}

/// The error for the default RSA token with `edit` applied to its claims.
fn claims_error(policy: &TokenPolicy, edit: impl FnOnce(&mut Value)) -> Option<TokenError> {
    let mut claims = claims();
    edit(&mut claims);
    check(&rs256(&claims), policy).err()
}

fn header<'p>(principal: &'p Principal, name: &str) -> Option<&'p str> {
    principal
        .headers
        .iter()
        .find(|(header, _)| header.as_str() == name)
        .and_then(|(_, value)| value.to_str().ok())
}

#[test]
fn round_trips_every_algorithm() {
    let cases: [(&str, Algorithm, &EncodingKey, &str); 5] = [
        (
            "RS256",
            Algorithm::RS256,
            &testkeys::rsa().encoding,
            "rsa-1",
        ),
        (
            "PS256",
            Algorithm::PS256,
            &testkeys::rsa().encoding,
            "rsa-1",
        ),
        (
            "ES256",
            Algorithm::ES256,
            &testkeys::ec_p256().encoding,
            "p256",
        ),
        (
            "ES384",
            Algorithm::ES384,
            &testkeys::ec_p384().encoding,
            "p384",
        ),
        (
            "EdDSA",
            Algorithm::EdDSA,
            &testkeys::ed25519().encoding,
            "ed",
        ),
    ];
    for (name, alg, key, kid) in cases {
        let token = sign(&json!({"alg": name, "kid": kid}), &claims(), key, alg);
        let principal = check(&token, &policy()).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(principal.subject.as_deref(), Some("svc-1"), "{name}");
        // Without a kid, the only key of the fitting type is used.
        let token = sign(&json!({"alg": name}), &claims(), key, alg);
        assert!(check(&token, &policy()).is_ok(), "{name} without kid");
    }
    // RS512/PS512 when the policy allows them.
    let mut policy = policy();
    policy.algorithms = vec![Algorithm::RS512, Algorithm::PS384];
    for (name, alg) in [("RS512", Algorithm::RS512), ("PS384", Algorithm::PS384)] {
        let token = sign(
            &json!({"alg": name}),
            &claims(),
            &testkeys::rsa().encoding,
            alg,
        );
        assert!(check(&token, &policy).is_ok(), "{name}");
    }
}

#[test]
fn hmac_round_trip_with_and_without_kid() {
    for header in [
        json!({"alg": "HS256"}),
        json!({"alg": "HS256", "kid": "whatever"}),
    ] {
        let token = sign(&header, &claims(), &testkeys::hmac(), Algorithm::HS256);
        let principal = check_with(&token, &policy(), &hmac_set(), None).expect("valid");
        assert_eq!(principal.client_id.as_deref(), Some("client-1"));
    }
    let wrong = sign(
        &json!({"alg": "HS256"}),
        &claims(),
        &EncodingKey::from_secret(b"another secret of decent length!!"),
        Algorithm::HS256,
    );
    assert_eq!(
        check_with(&wrong, &policy(), &hmac_set(), None).err(),
        Some(TokenError::BadSignature)
    );
}

#[test]
fn principal_carries_identity_and_headers() {
    let mut claims = claims();
    claims["exp"] = json!(NOW as f64 + 99.75);
    claims["scp"] = json!(["orders:write", "orders:read"]);
    let principal = check(&rs256(&claims), &policy()).expect("valid");
    assert_eq!(principal.issuer, ISSUER);
    assert_eq!(principal.client_id.as_deref(), Some("client-1"));
    assert_eq!(principal.scopes, ["orders:read", "orders:write"]);
    assert_eq!(principal.expires_at, NOW + 99);
    assert_eq!(principal.bound_cert_sha256, None);
    let names: Vec<&str> = principal
        .headers
        .iter()
        .map(|(name, _)| name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "x-auth-subject",
            "x-auth-issuer",
            "x-auth-client-id",
            "x-auth-scopes"
        ]
    );
    assert_eq!(header(&principal, "x-auth-subject"), Some("svc-1"));
    assert_eq!(header(&principal, "x-auth-issuer"), Some(ISSUER));
    assert_eq!(header(&principal, "x-auth-client-id"), Some("client-1"));
    assert_eq!(
        header(&principal, "x-auth-scopes"),
        Some("orders:read orders:write")
    );
}

#[test]
fn missing_claims_mean_missing_headers() {
    let claims = json!({"iss": ISSUER, "aud": "api://orders", "exp": NOW + 60});
    let principal = check(&rs256(&claims), &policy()).expect("valid");
    assert_eq!(principal.subject, None);
    assert_eq!(principal.client_id, None);
    assert!(principal.scopes.is_empty());
    let names: Vec<&str> = principal
        .headers
        .iter()
        .map(|(name, _)| name.as_str())
        .collect();
    assert_eq!(names, ["x-auth-issuer"]);
}

#[test]
fn malformed_tokens() {
    let header = b64(br#"{"alg":"RS256"}"#);
    let payload = b64(&serde_json::to_vec(&claims()).expect("json"));
    let signature = b64(&[1, 2, 3]);
    let oversized = format!("{header}.{}.{signature}", "A".repeat(MAX_TOKEN_BYTES));
    let cases = [
        String::new(),
        "abc".to_owned(),
        format!("{header}.{payload}"),
        format!("{header}.{payload}.{signature}.{signature}"),
        format!("{header}.{payload}."),
        format!(".{payload}.{signature}"),
        format!("{header}..{signature}"),
        format!("{header}=.{payload}.{signature}"),
        format!("{header}.{payload}.{signature}=="),
        format!("{header}.{payload}.a+b/"),
        format!("{header}.{payload}.{signature} "),
        format!("{}.{payload}.{signature}", b64(b"not json")),
        format!("{}.{payload}.{signature}", b64(b"[1]")),
        format!("{header}.{}.{signature}", b64(b"\"a string\"")),
        format!("{}.{payload}.{signature}", b64(br#"{"typ":"JWT"}"#)),
        format!("{}.{payload}.{signature}", b64(br#"{"alg":256}"#)),
        format!(
            "{}.{payload}.{signature}",
            b64(br#"{"alg":"RS256","kid":7}"#)
        ),
        format!(
            "{}.{payload}.{signature}",
            b64(br#"{"alg":"RS256","typ":["JWT"]}"#)
        ),
        format!("{header}.{}.{signature}", b64(br#"{"iss":42}"#)),
        oversized,
    ];
    for (index, token) in cases.iter().enumerate() {
        assert_eq!(
            Unverified::decode(token).err(),
            Some(TokenError::Malformed),
            "case {index}"
        );
    }
    // The well-formed counterpart decodes.
    let text = format!("{header}.{payload}.{signature}");
    let token = Unverified::decode(&text).expect("decodes");
    assert_eq!(token.issuer(), Some(ISSUER));
    assert_eq!(token.algorithm(), Algorithm::RS256);
    assert_eq!(token.expires_at(), Some(NOW + 300));
}

#[test]
fn alg_none_and_unsupported_algorithms_are_refused_at_decode() {
    let payload = b64(&serde_json::to_vec(&claims()).expect("json"));
    for alg in [
        "none", "None", "NONE", "nOnE", "ES512", "HS1", "rs256", "RSA-OAEP",
    ] {
        let header = b64(&serde_json::to_vec(&json!({"alg": alg})).expect("json"));
        let token = format!("{header}.{payload}.{}", b64(b"sig"));
        assert_eq!(
            Unverified::decode(&token).err(),
            Some(TokenError::AlgorithmNotAllowed),
            "{alg}"
        );
    }
}

#[test]
fn crit_header_is_refused() {
    let header = json!({"alg": "RS256", "kid": "rsa-1", "crit": ["b64"], "b64": false});
    let token = sign(
        &header,
        &claims(),
        &testkeys::rsa().encoding,
        Algorithm::RS256,
    );
    assert_eq!(
        check(&token, &policy()).err(),
        Some(TokenError::CriticalHeader)
    );
}

#[test]
fn issuer_must_match_exactly() {
    let policy = policy();
    let other = |iss: &str| claims_error(&policy, |c| c["iss"] = json!(iss));
    assert_eq!(other("https://idp.test"), Some(TokenError::UnknownIssuer));
    assert_eq!(other("https://evil.test/"), Some(TokenError::UnknownIssuer));
    assert_eq!(
        claims_error(&policy, |c| drop(
            c.as_object_mut().map(|c| c.remove("iss"))
        )),
        Some(TokenError::UnknownIssuer)
    );
}

#[test]
fn algorithm_must_be_in_the_issuer_allowlist() {
    let mut policy = policy();
    policy.algorithms = vec![Algorithm::HS256];
    assert_eq!(
        check(&rs256(&claims()), &policy).err(),
        Some(TokenError::AlgorithmNotAllowed)
    );
    policy.algorithms = vec![Algorithm::PS256];
    assert_eq!(
        check(&rs256(&claims()), &policy).err(),
        Some(TokenError::AlgorithmNotAllowed)
    );
}

#[test]
fn hs256_signed_with_the_rsa_public_key_is_refused() {
    // The classic confusion attack: the public key, in any encoding, used as an HMAC secret.
    let jwk = &testkeys::rsa().jwk;
    let modulus = URL_SAFE_NO_PAD
        .decode(jwk["n"].as_str().expect("n"))
        .expect("b64");
    let jwk_text = serde_json::to_vec(jwk).expect("json");
    let mut policy = policy();
    policy.algorithms = vec![Algorithm::RS256, Algorithm::HS256];
    for secret in [modulus, jwk_text, jwks(std::slice::from_ref(jwk))] {
        let forged = EncodingKey::from_secret(&secret);
        for header in [
            json!({"alg": "HS256", "kid": "rsa-1"}),
            json!({"alg": "HS256"}),
        ] {
            let token = sign(&header, &claims(), &forged, Algorithm::HS256);
            assert_eq!(
                check(&token, &policy).err(),
                Some(TokenError::NoMatchingKey)
            );
        }
    }
}

#[test]
fn kid_lookup() {
    let token = sign(
        &json!({"alg": "RS256", "kid": "rotated-away"}),
        &claims(),
        &testkeys::rsa().encoding,
        Algorithm::RS256,
    );
    assert_eq!(check(&token, &policy()).err(), Some(TokenError::UnknownKey));
    // Known kid, but the key is of another type.
    let token = sign(
        &json!({"alg": "ES256", "kid": "rsa-1"}),
        &claims(),
        &testkeys::ec_p256().encoding,
        Algorithm::ES256,
    );
    assert_eq!(
        check(&token, &policy()).err(),
        Some(TokenError::NoMatchingKey)
    );
    // ES384 token pointing at the P-256 key.
    let token = sign(
        &json!({"alg": "ES384", "kid": "p256"}),
        &claims(),
        &testkeys::ec_p384().encoding,
        Algorithm::ES384,
    );
    assert_eq!(
        check(&token, &policy()).err(),
        Some(TokenError::NoMatchingKey)
    );
}

#[test]
fn keys_of_another_issuer_are_never_used() {
    // The caller passes only this issuer's keys; an HMAC issuer's set has no RSA key.
    assert_eq!(
        check_with(&rs256(&claims()), &policy(), &hmac_set(), None).err(),
        Some(TokenError::NoMatchingKey)
    );
    assert_eq!(
        check_with(&rs256(&claims()), &policy(), &KeySet::default(), None).err(),
        Some(TokenError::UnknownKey)
    );
}

#[test]
fn bad_signatures() {
    let other = sign(
        &json!({"alg": "RS256", "kid": "rsa-1"}),
        &claims(),
        &testkeys::rsa_other().encoding,
        Algorithm::RS256,
    );
    assert_eq!(
        check(&other, &policy()).err(),
        Some(TokenError::BadSignature)
    );

    // A valid signature moved onto other claims.
    let good = rs256(&claims());
    let mut parts: Vec<&str> = good.split('.').collect();
    let mut elevated = claims();
    elevated["scope"] = json!("orders:read orders:admin");
    let payload = b64(&serde_json::to_vec(&elevated).expect("json"));
    parts[1] = &payload;
    assert_eq!(
        check(&parts.join("."), &policy()).err(),
        Some(TokenError::BadSignature)
    );

    // A well-formed but wrong-length signature.
    let truncated = format!("{}.{}.{}", parts[0], parts[1], b64(&[7u8; 16]));
    assert_eq!(
        check(&truncated, &policy()).err(),
        Some(TokenError::BadSignature)
    );

    // "Psychic signatures" (CVE-2022-21449): an ECDSA signature of r = s = 0 never verifies,
    // for ES256 (64 bytes) and ES384 (96 bytes).
    let payload = b64(&serde_json::to_vec(&claims()).expect("json"));
    for (alg, kid, length) in [("ES256", "p256", 64), ("ES384", "p384", 96)] {
        let header = b64(format!(r#"{{"alg":"{alg}","kid":"{kid}"}}"#).as_bytes());
        let zero = format!("{header}.{payload}.{}", b64(&vec![0u8; length]));
        assert_eq!(
            check(&zero, &policy()).err(),
            Some(TokenError::BadSignature),
            "{alg}"
        );
    }
}

#[test]
fn embedded_keys_in_the_header_are_ignored() {
    let attacker = testkeys::rsa_other();
    for kid in [Some("rsa-1"), None] {
        let mut header = json!({
            "alg": "RS256",
            "jwk": attacker.jwk,
            "jku": "https://evil.test/jwks.json",
            "x5u": "https://evil.test/cert.pem",
            "x5c": ["MIIB"],
        });
        if let Some(kid) = kid {
            header["kid"] = json!(kid);
        }
        let token = sign(&header, &claims(), &attacker.encoding, Algorithm::RS256);
        assert_eq!(
            check(&token, &policy()).err(),
            Some(TokenError::BadSignature),
            "{kid:?}"
        );
    }
}

#[test]
fn expiry_is_required_and_numeric() {
    let policy = policy();
    let remove = |c: &mut Value| drop(c.as_object_mut().map(|c| c.remove("exp")));
    assert_eq!(
        claims_error(&policy, remove),
        Some(TokenError::MissingExpiry)
    );
    let text = |c: &mut Value| c["exp"] = json!((NOW + 300).to_string());
    assert_eq!(claims_error(&policy, text), Some(TokenError::Malformed));
    assert_eq!(
        claims_error(&policy, |c| c["nbf"] = json!(null)),
        Some(TokenError::Malformed)
    );
}

#[test]
fn leeway_edges() {
    let policy = policy(); // leeway 30
    let at = |name: &'static str, value: f64| {
        let name = name.to_owned();
        claims_error(&policy, move |c| c[name] = json!(value))
    };
    let now = NOW as f64;
    assert_eq!(at("exp", now - 30.0), None);
    assert_eq!(at("exp", now - 30.5), Some(TokenError::Expired));
    assert_eq!(at("exp", now - 31.0), Some(TokenError::Expired));
    assert_eq!(at("nbf", now + 30.0), None);
    assert_eq!(at("nbf", now + 31.0), Some(TokenError::NotYetValid));
    assert_eq!(at("iat", now + 30.0), None);
    assert_eq!(at("iat", now + 30.25), Some(TokenError::IssuedInFuture));

    let mut strict = policy.clone();
    strict.leeway = 0;
    assert_eq!(claims_error(&strict, |c| c["exp"] = json!(NOW)), None);
    assert_eq!(
        claims_error(&strict, |c| c["exp"] = json!(NOW - 1)),
        Some(TokenError::Expired)
    );
}

#[test]
fn audience_string_or_array() {
    let policy = policy();
    let aud = |value: Value| claims_error(&policy, move |c| c["aud"] = value);
    assert_eq!(aud(json!("api://orders")), None);
    assert_eq!(aud(json!(["api://other", "api://orders"])), None);
    assert_eq!(
        aud(json!("api://other")),
        Some(TokenError::AudienceMismatch)
    );
    assert_eq!(
        aud(json!(["api://other"])),
        Some(TokenError::AudienceMismatch)
    );
    assert_eq!(aud(json!([])), Some(TokenError::AudienceMismatch));
    assert_eq!(aud(json!(7)), Some(TokenError::Malformed));
    assert_eq!(aud(json!(["api://orders", 7])), Some(TokenError::Malformed));
    let remove = |c: &mut Value| drop(c.as_object_mut().map(|c| c.remove("aud")));
    assert_eq!(
        claims_error(&policy, remove),
        Some(TokenError::AudienceMismatch)
    );
}

#[test]
fn no_audiences_relies_on_allowed_clients() {
    let mut policy = policy();
    policy.audiences = vec![];
    policy.allowed_clients = Some(vec!["client-1".to_owned()]);
    // `aud` is not looked at, whatever it holds.
    let remove = |c: &mut Value| drop(c.as_object_mut().map(|c| c.remove("aud")));
    assert_eq!(claims_error(&policy, remove), None);
    assert_eq!(claims_error(&policy, |c| c["aud"] = json!(7)), None);
    let client = |c: &mut Value| c["client_id"] = json!("client-2");
    assert_eq!(
        claims_error(&policy, client),
        Some(TokenError::ClientNotAllowed)
    );
}

#[test]
fn client_id_comes_from_the_first_present_claim() {
    let mut policy = policy();
    policy.allowed_clients = Some(vec!["client-1".to_owned()]);
    let none = |c: &mut Value| drop(c.as_object_mut().map(|c| c.remove("client_id")));
    assert_eq!(
        claims_error(&policy, none),
        Some(TokenError::ClientNotAllowed)
    );
    let azp = |c: &mut Value| {
        c.as_object_mut().map(|c| c.remove("client_id"));
        c["azp"] = json!("client-1");
    };
    assert_eq!(claims_error(&policy, azp), None);
    // `client_id` comes first: a different `azp` does not matter.
    assert_eq!(
        claims_error(&policy, |c| c["azp"] = json!("client-9")),
        None
    );
    let first_wins = |c: &mut Value| {
        c["client_id"] = json!("client-9");
        c["azp"] = json!("client-1");
    };
    assert_eq!(
        claims_error(&policy, first_wins),
        Some(TokenError::ClientNotAllowed)
    );
    assert_eq!(
        claims_error(&policy, |c| c["client_id"] = json!(1)),
        Some(TokenError::Malformed)
    );
}

#[test]
fn token_types() {
    let mut policy = policy();
    let with_typ = |policy: &TokenPolicy, typ: Option<&str>| {
        let mut header = json!({"alg": "RS256", "kid": "rsa-1"});
        if let Some(typ) = typ {
            header["typ"] = json!(typ);
        }
        let token = sign(
            &header,
            &claims(),
            &testkeys::rsa().encoding,
            Algorithm::RS256,
        );
        check(&token, policy).err()
    };
    // Not configured: any or no typ.
    assert_eq!(with_typ(&policy, Some("JWT")), None);
    assert_eq!(with_typ(&policy, None), None);

    policy.token_types = vec!["at+jwt".to_owned()];
    assert_eq!(with_typ(&policy, Some("at+jwt")), None);
    assert_eq!(with_typ(&policy, Some("AT+JWT")), None);
    assert_eq!(with_typ(&policy, Some("application/at+jwt")), None);
    assert_eq!(with_typ(&policy, Some("Application/At+Jwt")), None);
    assert_eq!(
        with_typ(&policy, Some("JWT")),
        Some(TokenError::TypeNotAllowed)
    );
    assert_eq!(
        with_typ(&policy, Some("application/jwt")),
        Some(TokenError::TypeNotAllowed)
    );
    assert_eq!(with_typ(&policy, None), Some(TokenError::TypeNotAllowed));

    policy.token_types = vec!["application/at+jwt".to_owned()];
    assert_eq!(with_typ(&policy, Some("at+jwt")), None);
}

#[test]
fn required_claims() {
    let mut policy = policy();
    policy.required_claims = vec![
        ("token_use".to_owned(), vec![json!("access")]),
        ("tier".to_owned(), vec![json!("gold"), json!("silver")]),
    ];
    let set = |token_use: Value, tier: Value| {
        claims_error(&policy, move |c| {
            c["token_use"] = token_use;
            c["tier"] = tier;
        })
    };
    assert_eq!(set(json!("access"), json!("silver")), None);
    assert_eq!(
        set(json!("id"), json!("gold")),
        Some(TokenError::RequiredClaim)
    );
    assert_eq!(
        set(json!("access"), json!("bronze")),
        Some(TokenError::RequiredClaim)
    );
    // An array claim must contain one allowed value.
    assert_eq!(set(json!(["refresh", "access"]), json!("gold")), None);
    assert_eq!(
        set(json!(["refresh"]), json!("gold")),
        Some(TokenError::RequiredClaim)
    );
    // Type matters: "1" is not 1.
    policy.required_claims = vec![("level".to_owned(), vec![json!("1")])];
    assert_eq!(
        claims_error(&policy, |c| c["level"] = json!(1)),
        Some(TokenError::RequiredClaim)
    );
    assert_eq!(
        claims_error(&policy, |_| {}),
        Some(TokenError::RequiredClaim)
    );
}

#[test]
fn scopes_are_the_union_of_scope_claims() {
    let mut claims = claims();
    claims["scope"] = json!("  a b  a c");
    claims["scp"] = json!(["d", "b", "e"]);
    let principal = check(&rs256(&claims), &policy()).expect("valid");
    assert_eq!(principal.scopes, ["a", "b", "c", "d", "e"]);
    assert_eq!(header(&principal, "x-auth-scopes"), Some("a b c d e"));

    let policy = policy();
    assert_eq!(
        claims_error(&policy, |c| c["scope"] = json!(5)),
        Some(TokenError::Malformed)
    );
    assert_eq!(
        claims_error(&policy, |c| c["scp"] = json!(["a", 5])),
        Some(TokenError::Malformed)
    );
    let spaced = |c: &mut Value| c["scp"] = json!(["orders:read admin"]);
    assert_eq!(
        claims_error(&policy, spaced),
        Some(TokenError::InvalidClaimValue)
    );
    let newline = |c: &mut Value| c["scope"] = json!("orders:read\nx-evil: 1");
    assert_eq!(
        claims_error(&policy, newline),
        Some(TokenError::InvalidClaimValue)
    );
}

#[test]
fn claim_headers_render_values() {
    let mut policy = policy();
    let names = [
        "string", "number", "float", "bool", "array", "mixed", "object", "null", "absent",
    ];
    policy.claim_headers = names
        .iter()
        .map(|name| {
            (
                HeaderName::from_bytes(format!("x-claim-{name}").as_bytes()).expect("name"),
                (*name).to_owned(),
            )
        })
        .collect();
    let mut claims = claims();
    claims["string"] = json!("tenant-7");
    claims["number"] = json!(42);
    claims["float"] = json!(1.5);
    claims["bool"] = json!(true);
    claims["array"] = json!(["a", "b"]);
    claims["mixed"] = json!(["a", 1]);
    claims["object"] = json!({"k": "v", "n": [1, 2]});
    claims["null"] = Value::Null;
    let principal = check(&rs256(&claims), &policy).expect("valid");
    assert_eq!(header(&principal, "x-claim-string"), Some("tenant-7"));
    assert_eq!(header(&principal, "x-claim-number"), Some("42"));
    assert_eq!(header(&principal, "x-claim-float"), Some("1.5"));
    assert_eq!(header(&principal, "x-claim-bool"), Some("true"));
    assert_eq!(header(&principal, "x-claim-array"), Some("a b"));
    assert_eq!(header(&principal, "x-claim-mixed"), Some(r#"["a",1]"#));
    assert_eq!(
        header(&principal, "x-claim-object"),
        Some(r#"{"k":"v","n":[1,2]}"#)
    );
    assert_eq!(header(&principal, "x-claim-null"), None);
    assert_eq!(header(&principal, "x-claim-absent"), None);
    // Claim headers come after the fixed identity headers, in configuration order.
    assert_eq!(principal.headers[4].0.as_str(), "x-claim-string");
}

#[test]
fn claim_values_that_cannot_be_headers_fail_the_token() {
    let mut policy = policy();
    policy.claim_headers = vec![(HeaderName::from_static("x-auth-tenant"), "tid".to_owned())];
    for bad in [
        "a\nb",
        "a\r\nx-injected: 1",
        "tab\there",
        "nul\0",
        " padded",
        "del\u{7f}",
        "c1\u{85}control",
        "caf\u{e9} with a c1 \u{9b}",
    ] {
        assert_eq!(
            claims_error(&policy, |c| c["tid"] = json!(bad)),
            Some(TokenError::InvalidClaimValue),
            "{bad:?}"
        );
    }
    assert_eq!(
        claims_error(&policy, |c| c["tid"] = json!(["ok", "new\nline"])),
        Some(TokenError::InvalidClaimValue)
    );
    // The fixed headers are checked the same way.
    let policy = super::tests::policy();
    let sub = |c: &mut Value| c["sub"] = json!("svc\n1");
    assert_eq!(
        claims_error(&policy, sub),
        Some(TokenError::InvalidClaimValue)
    );
    let client = |c: &mut Value| c["client_id"] = json!("c\u{1}");
    assert_eq!(
        claims_error(&policy, client),
        Some(TokenError::InvalidClaimValue)
    );
    assert_eq!(
        claims_error(&policy, |c| c["sub"] = json!(12)),
        Some(TokenError::Malformed)
    );
}

#[test]
fn certificate_binding() {
    let cert = [0xABu8; 32];
    let other = [0xCDu8; 32];
    let mut bound = claims();
    bound["cnf"] = json!({"x5t#S256": b64(&cert)});
    let token = rs256(&bound);
    let keys = key_set();

    let principal = check_with(&token, &policy(), &keys, Some(&cert)).expect("bound match");
    assert_eq!(principal.bound_cert_sha256, Some(cert));
    assert_eq!(
        check_with(&token, &policy(), &keys, Some(&other)).err(),
        Some(TokenError::CertificateMismatch)
    );
    // Without a certificate the refusal says so, rather than "a different certificate".
    assert_eq!(
        check_with(&token, &policy(), &keys, None).err(),
        Some(TokenError::CertificateMissing)
    );

    // Unbound tokens pass unless the issuer requires binding.
    let mut strict = policy();
    strict.require_bound_token = true;
    assert!(check_with(&rs256(&claims()), &policy(), &keys, Some(&cert)).is_ok());
    assert_eq!(
        check_with(&rs256(&claims()), &strict, &keys, Some(&cert)).err(),
        Some(TokenError::CertificateRequired)
    );
    assert!(check_with(&token, &strict, &keys, Some(&cert)).is_ok());

    let cnf = |value: Value| {
        let mut claims = claims();
        claims["cnf"] = value;
        check_with(&rs256(&claims), &policy(), &keys, Some(&cert)).err()
    };
    assert_eq!(
        cnf(json!({"x5t#S256": b64(&[1u8; 20])})),
        Some(TokenError::Malformed)
    );
    assert_eq!(cnf(json!({"x5t#S256": 5})), Some(TokenError::Malformed));
    assert_eq!(cnf(json!("x")), Some(TokenError::Malformed));
    assert_eq!(
        cnf(json!({"jkt": b64(&[1u8; 32])})),
        Some(TokenError::UnsupportedConfirmation)
    );
    assert_eq!(cnf(json!({})), None);
}

#[test]
fn reasons_and_descriptions_are_bounded_and_quotable() {
    let all = [
        TokenError::Malformed,
        TokenError::AlgorithmNotAllowed,
        TokenError::CriticalHeader,
        TokenError::UnknownIssuer,
        TokenError::UnknownKey,
        TokenError::NoMatchingKey,
        TokenError::BadSignature,
        TokenError::MissingExpiry,
        TokenError::Expired,
        TokenError::NotYetValid,
        TokenError::IssuedInFuture,
        TokenError::AudienceMismatch,
        TokenError::ClientNotAllowed,
        TokenError::TypeNotAllowed,
        TokenError::RequiredClaim,
        TokenError::InvalidClaimValue,
        TokenError::CertificateMismatch,
        TokenError::CertificateMissing,
        TokenError::CertificateRequired,
        TokenError::UnsupportedConfirmation,
    ];
    let mut reasons = std::collections::HashSet::new();
    for error in all {
        let reason = error.as_str();
        assert!(
            reason.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{reason}"
        );
        assert!(reasons.insert(reason), "duplicate {reason}");
        // RFC 6750 3: error_description is %x20-21 / %x23-5B / %x5D-7E.
        let text = error.description();
        assert!(
            text.bytes()
                .all(|b| (0x20..=0x7E).contains(&b) && b != b'"' && b != b'\\'),
            "{text}"
        );
    }
}

#[test]
fn debug_output_never_shows_the_token() {
    let token = rs256(&claims());
    let decoded = Unverified::decode(&token).expect("decodes");
    let shown = format!("{decoded:?}");
    assert!(
        !shown.contains("svc-1") && !shown.contains(&token[..20]),
        "{shown}"
    );
}

#[test]
fn non_ascii_claims_are_forwarded_rfc_8187_encoded() {
    let mut policy = policy();
    policy.claim_headers = vec![(
        HeaderName::from_static("x-auth-region"),
        "region".to_owned(),
    )];
    let cases = [
        ("Z\u{fc}rich", "UTF-8''Z%C3%BCrich"),
        ("S\u{e3}o Paulo", "UTF-8''S%C3%A3o%20Paulo"),
        // Bidi controls are format characters, not controls: encoded, never raw.
        ("a\u{202e}b", "UTF-8''a%E2%80%AEb"),
        // Plain ASCII goes as it is; ASCII that looks encoded is encoded, so the two forms
        // never collide.
        ("eu-west-1", "eu-west-1"),
        ("UTF-8''x", "UTF-8''UTF-8%27%27x"),
    ];
    for (region, expected) in cases {
        let mut claims = claims();
        claims["region"] = json!(region);
        claims["sub"] = json!(format!("{region}-svc"));
        let principal = check(&rs256(&claims), &policy).expect("valid");
        assert_eq!(
            header(&principal, "x-auth-region"),
            Some(expected),
            "{region:?}"
        );
        assert!(header(&principal, "x-auth-subject").is_some_and(str::is_ascii));
        let decoded = expected.strip_prefix("UTF-8''").map(|encoded| {
            percent_encoding::percent_decode_str(encoded)
                .decode_utf8()
                .expect("utf-8")
                .into_owned()
        });
        assert_eq!(decoded.as_deref().unwrap_or(expected), region);
    }
}

#[test]
fn max_token_lifetime_tells_token_classes_apart() {
    let mut policy = policy();
    policy.max_token_lifetime = Some(3600);
    // An access token of one hour passes; exactly the limit passes (no leeway applies).
    assert_eq!(
        claims_error(&policy, |c| {
            c["iat"] = json!(NOW - 10);
            c["exp"] = json!(NOW + 3590);
        }),
        None
    );
    // A refresh-shaped token (180 days) and a token without iat do not.
    assert_eq!(
        claims_error(&policy, |c| c["exp"] = json!(NOW + 180 * 86_400)),
        Some(TokenError::LifetimeTooLong)
    );
    assert_eq!(
        claims_error(&policy, |c| {
            c["iat"] = json!(NOW - 10);
            c["exp"] = json!(NOW + 3591);
        }),
        Some(TokenError::LifetimeTooLong)
    );
    assert_eq!(
        claims_error(&policy, |c| {
            c.as_object_mut().expect("object").remove("iat");
        }),
        Some(TokenError::MissingIssuedAt)
    );
    // Without the setting, neither is checked.
    assert_eq!(
        claims_error(&super::tests::policy(), |c| c["exp"] =
            json!(NOW + 180 * 86_400)),
        None
    );
}

#[test]
fn implied_scopes_widen_route_checks_not_the_forwarded_scopes() {
    let mut policy = policy();
    let direct = [("admin".to_owned(), vec!["*".to_owned()])]
        .into_iter()
        .collect();
    policy.implied_scopes = crate::auth::scopes::Implications::new(&direct);
    let principal = check(
        &rs256(&{
            let mut claims = claims();
            claims["scope"] = json!("admin");
            claims
        }),
        &policy,
    )
    .expect("valid");
    assert!(principal.granted.every);
    assert_eq!(header(&principal, "x-auth-scopes"), Some("admin"));
}
