//! Bearer extraction and JWT decoding/verification: `auth::bearer::extract`,
//! `auth::jwt::Unverified::decode` and `auth::jwt::verify`.
//!
//! The first input byte picks a mode (its value modulo 3), the rest is the payload:
//!
//! - `0` (or `'0'`, `'0' % 3 == 0`): the payload is a token. It is decoded and verified under
//!   two policies (lenient, strict) against an HMAC key set and a JWKS key set (RSA, EC P-256,
//!   Ed25519). **Invariant: `verify` is `Ok` only for a token that this target signed itself**
//!   ([`signed_tokens`], deterministic, so they can be committed as seeds). Any other `Ok` is a
//!   forgery: a mutated token, an algorithm confusion, a key the set should not hold. And the
//!   converse, so that the first is not vacuous: each token of [`signed_tokens`] verifies
//!   (checked once when the fixture is built, and again whenever the input is one of them).
//! - `1` (`'1'`): the payload is `Authorization` header lines separated by `\n`; the one bearer
//!   token `extract` finds (if any) goes through mode 0. `extract`'s result must be a
//!   non-empty, whitespace-free substring of the header value.
//! - `2` (`'2'`): the payload is `<header JSON>\n<claims JSON>`. The target encodes and signs it
//!   itself (HS256/384/512, RS256, PS256, ES256 or EdDSA, picked from the header's `alg`, HS256
//!   otherwise), so verification passes the signature check and the fuzzer reaches every claim
//!   check and header rendering. `Ok` is allowed here; its `Principal` must carry the policy's
//!   issuer, a non-expired `exp`, and header values without surrounding spaces.
//!
//! Everything runs at the fixed time [`NOW`], so results are reproducible.

use std::sync::OnceLock;

use authgate::auth::bearer;
use authgate::auth::jwt::{verify, TokenPolicy, Unverified};
use authgate::auth::keys::{KeySet, Secret};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self as sig, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderName, HeaderValue};
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};

use crate::testkeys;

/// "Now" for every verification: 2023-11-14T22:13:20Z.
pub const NOW: u64 = 1_700_000_000;
pub const ISSUER: &str = "https://idp.fuzz.example/";
const HMAC_SECRET: &[u8] = b"fuzzing-secret-0123456789abcdef-0123456789";
const ED25519_SEED: [u8; 32] = [7; 32];
/// SHA-256 of a pretend client certificate, for `cnf.x5t#S256`.
pub const CLIENT_CERT_SHA256: [u8; 32] = [0xab; 32];

struct Fixture {
    hmac_keys: KeySet,
    jwks_keys: KeySet,
    lenient: TokenPolicy,
    strict: TokenPolicy,
    rsa: RsaKeyPair,
    ec: EcdsaKeyPair,
    ed: Ed25519KeyPair,
    signed: Vec<String>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let rsa = RsaKeyPair::from_pkcs8(&STANDARD.decode(testkeys::RSA_PKCS8_BASE64).unwrap())
            .expect("rsa test key");
        let ec = EcdsaKeyPair::from_pkcs8(
            &sig::ECDSA_P256_SHA256_FIXED_SIGNING,
            &STANDARD.decode(testkeys::P256_PKCS8_BASE64).unwrap(),
        )
        .expect("p256 test key");
        let ed = Ed25519KeyPair::from_seed_unchecked(&ED25519_SEED).expect("ed25519 seed");
        let jwks = json!({"keys": [
            {"kty": "RSA", "kid": "rsa-1", "use": "sig", "n": testkeys::RSA_N, "e": testkeys::RSA_E},
            {"kty": "EC", "kid": "p256-1", "crv": "P-256", "x": testkeys::P256_X, "y": testkeys::P256_Y},
            {"kty": "OKP", "kid": "ed-1", "crv": "Ed25519",
             "x": URL_SAFE_NO_PAD.encode(ed.public_key().as_ref())},
            // Never usable: oct keys are refused from a key set.
            {"kty": "oct", "kid": "hs-1", "k": URL_SAFE_NO_PAD.encode(HMAC_SECRET)},
        ]});
        let parsed = KeySet::from_jwks(jwks.to_string().as_bytes()).expect("fixture jwks");
        assert_eq!(parsed.keys.len(), 3, "fixture jwks: {:?}", parsed.skipped);
        let mut fixture = Fixture {
            hmac_keys: KeySet::from_hmac(&Secret::new(HMAC_SECRET.to_vec())),
            jwks_keys: parsed.keys,
            lenient: lenient_policy(),
            strict: strict_policy(),
            rsa,
            ec,
            ed,
            signed: Vec::new(),
        };
        fixture.signed = deterministic_tokens(&fixture);
        // The forgery invariant below means something only if our own tokens do verify: a
        // fixture whose keys or policies refuse everything would make every `Ok` check vacuous.
        for token in &fixture.signed {
            let unverified = Unverified::decode(token).expect("own token decodes");
            assert!(
                verifies(&fixture, &unverified),
                "own token does not verify: {token}"
            );
        }
        fixture
    })
}

fn all_algorithms() -> Vec<Algorithm> {
    use Algorithm::*;
    vec![
        HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA,
    ]
}

fn lenient_policy() -> TokenPolicy {
    TokenPolicy {
        issuer: ISSUER.to_owned(),
        audiences: vec![],
        allowed_clients: Some(vec!["client-1".to_owned(), "client-2".to_owned()]),
        algorithms: all_algorithms(),
        scope_claims: vec!["scope".to_owned(), "scp".to_owned()],
        client_id_claims: ["client_id", "azp", "appid", "cid"]
            .map(str::to_owned)
            .to_vec(),
        leeway: 30,
        token_types: vec![],
        required_claims: vec![],
        claim_headers: vec![
            (HeaderName::from_static("x-auth-email"), "email".to_owned()),
            (
                HeaderName::from_static("x-auth-groups"),
                "groups".to_owned(),
            ),
            (HeaderName::from_static("x-auth-extra"), "extra".to_owned()),
        ],
        require_bound_token: false,
        max_token_lifetime: None,
        implied_scopes: Default::default(),
    }
}

fn strict_policy() -> TokenPolicy {
    TokenPolicy {
        issuer: ISSUER.to_owned(),
        audiences: vec!["api://orders".to_owned(), "orders".to_owned()],
        allowed_clients: None,
        algorithms: vec![
            Algorithm::HS256,
            Algorithm::RS256,
            Algorithm::ES256,
            Algorithm::EdDSA,
        ],
        scope_claims: vec!["scp".to_owned()],
        client_id_claims: vec!["azp".to_owned()],
        leeway: 0,
        token_types: vec!["at+jwt".to_owned()],
        required_claims: vec![
            ("tenant".to_owned(), vec![json!("acme"), json!(42)]),
            ("groups".to_owned(), vec![json!("admins")]),
        ],
        claim_headers: vec![(
            HeaderName::from_static("x-auth-tenant"),
            "tenant".to_owned(),
        )],
        require_bound_token: true,
        max_token_lifetime: None,
        implied_scopes: Default::default(),
    }
}

/// Encodes and signs `header`/`claims` (any bytes) with the key `alg` names.
fn sign(fixture: &Fixture, header: &[u8], claims: &[u8], alg: &str) -> String {
    let mut token = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let message = token.as_bytes();
    let rng = SystemRandom::new();
    let rsa = |padding: &'static dyn sig::RsaEncoding| {
        let mut out = vec![0; fixture.rsa.public_modulus_len()];
        fixture
            .rsa
            .sign(padding, &rng, message, &mut out)
            .expect("rsa sign");
        out
    };
    let hmac = |algorithm| {
        let key = aws_lc_rs::hmac::Key::new(algorithm, HMAC_SECRET);
        aws_lc_rs::hmac::sign(&key, message).as_ref().to_vec()
    };
    let signature = match alg {
        "HS384" => hmac(aws_lc_rs::hmac::HMAC_SHA384),
        "HS512" => hmac(aws_lc_rs::hmac::HMAC_SHA512),
        "RS256" => rsa(&sig::RSA_PKCS1_SHA256),
        "PS256" => rsa(&sig::RSA_PSS_SHA256),
        "ES256" => fixture
            .ec
            .sign(&rng, message)
            .expect("ecdsa sign")
            .as_ref()
            .to_vec(),
        "EdDSA" => fixture.ed.sign(message).as_ref().to_vec(),
        _ => hmac(aws_lc_rs::hmac::HMAC_SHA256),
    };
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(signature));
    token
}

/// Tokens valid at [`NOW`] under the lenient policy, from deterministic signatures only (HMAC,
/// RSA PKCS#1 v1.5, Ed25519), so the same bytes come out on every run. These are the only
/// tokens mode 0 may accept; `seed_tokens` prints them for the corpus.
fn deterministic_tokens(fixture: &Fixture) -> Vec<String> {
    let claims = json!({
        "iss": ISSUER,
        "sub": "user-1",
        "aud": ["api://orders", "other"],
        "exp": NOW + 300,
        "nbf": NOW - 10,
        "iat": NOW - 10,
        "azp": "client-1",
        "scp": ["orders:read", "orders:write"],
        "scope": "openid orders:read",
        "tenant": "acme",
        "groups": ["admins", "dev"],
        "email": "user-1@example.com",
        "cnf": {"x5t#S256": URL_SAFE_NO_PAD.encode(CLIENT_CERT_SHA256)},
    })
    .to_string();
    let mut tokens = Vec::new();
    for (alg, kid) in [
        ("HS256", None),
        ("HS384", None),
        ("HS512", None),
        ("RS256", Some("rsa-1")),
        ("EdDSA", Some("ed-1")),
    ] {
        let mut header = json!({"alg": alg, "typ": "at+jwt"});
        if let Some(kid) = kid {
            header["kid"] = json!(kid);
        }
        tokens.push(sign(
            fixture,
            header.to_string().as_bytes(),
            claims.as_bytes(),
            alg,
        ));
    }
    tokens
}

/// The tokens mode 0 accepts, for writing seeds (`cargo run --bin seed_tokens`).
pub fn signed_tokens() -> &'static [String] {
    &fixture().signed
}

pub fn fuzz_one(data: &[u8]) {
    let Some((&mode, payload)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => token(&String::from_utf8_lossy(payload)),
        1 => authorization(payload),
        _ => self_signed(payload),
    }
}

/// Mode 0: no `Ok` unless the token is one of ours.
fn token(token: &str) {
    let fixture = fixture();
    let Ok(unverified) = Unverified::decode(token) else {
        return;
    };
    // The accessors must not panic either.
    let _ = (
        unverified.issuer(),
        unverified.kid(),
        unverified.algorithm(),
        unverified.expires_at(),
        format!("{unverified:?}"),
    );
    let ours = fixture.signed.iter().any(|signed| signed == token);
    let mut accepted = false;
    for keys in [&fixture.hmac_keys, &fixture.jwks_keys] {
        for policy in [&fixture.lenient, &fixture.strict] {
            for cert in [None, Some(&CLIENT_CERT_SHA256)] {
                let result = verify(&unverified, policy, keys, NOW, cert);
                if let Ok(principal) = &result {
                    assert!(ours, "forged token verified: {token:?} -> {principal:?}");
                    check_principal(policy, principal);
                    accepted = true;
                }
            }
        }
    }
    assert!(accepted || !ours, "own token refused: {token:?}");
}

/// Whether `unverified` passes the lenient policy (every algorithm) with one of the key sets,
/// presented over the certificate its `cnf` names: what every token of [`signed_tokens`] must
/// do.
fn verifies(fixture: &Fixture, unverified: &Unverified) -> bool {
    [&fixture.hmac_keys, &fixture.jwks_keys].iter().any(|keys| {
        verify(
            unverified,
            &fixture.lenient,
            keys,
            NOW,
            Some(&CLIENT_CERT_SHA256),
        )
        .is_ok()
    })
}

/// Mode 1: header lines -> `extract` -> mode 0.
fn authorization(payload: &[u8]) {
    let mut headers = HeaderMap::new();
    for line in payload.split(|&b| b == b'\n') {
        if let Ok(value) = HeaderValue::from_bytes(line) {
            headers.append(AUTHORIZATION, value);
        }
    }
    let Ok(found) = bearer::extract(&headers) else {
        return;
    };
    assert!(!found.is_empty(), "empty token extracted");
    assert!(
        found.bytes().all(|b| b.is_ascii_graphic()),
        "token {found:?} holds whitespace or non-visible bytes"
    );
    assert_eq!(headers.get_all(AUTHORIZATION).iter().count(), 1);
    let value = headers.get(AUTHORIZATION).map(HeaderValue::as_bytes);
    assert!(
        value.is_some_and(|v| v.windows(found.len()).any(|w| w == found.as_bytes())),
        "token {found:?} is not part of the header {value:?}"
    );
    token(found);
}

/// Mode 2: the target signs whatever header and claims it is given.
fn self_signed(payload: &[u8]) {
    let fixture = fixture();
    let (header, claims) = match payload.iter().position(|&b| b == b'\n') {
        Some(at) => (&payload[..at], &payload[at + 1..]),
        None => (payload, &b""[..]),
    };
    let alg = serde_json::from_slice::<Value>(header)
        .ok()
        .and_then(|h| h.get("alg").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_default();
    let token = sign(fixture, header, claims, &alg);
    let Ok(unverified) = Unverified::decode(&token) else {
        return;
    };
    let _ = unverified.expires_at();
    let keys = match alg.as_str() {
        "HS256" | "HS384" | "HS512" | "" => &fixture.hmac_keys,
        _ => &fixture.jwks_keys,
    };
    for policy in [&fixture.lenient, &fixture.strict] {
        for cert in [None, Some(&CLIENT_CERT_SHA256)] {
            if let Ok(principal) = verify(&unverified, policy, keys, NOW, cert) {
                check_principal(policy, &principal);
            }
        }
    }
}

fn check_principal(policy: &TokenPolicy, principal: &authgate::auth::jwt::Principal) {
    assert_eq!(principal.issuer, policy.issuer);
    assert!(
        principal.expires_at.saturating_add(policy.leeway + 1) >= NOW,
        "expired principal accepted: {principal:?}"
    );
    for (name, value) in &principal.headers {
        let bytes = value.as_bytes();
        assert!(
            bytes.first() != Some(&b' ') && bytes.last() != Some(&b' '),
            "{name}: {value:?} has surrounding spaces"
        );
        assert!(
            bytes.iter().all(|&b| b == b' ' || b.is_ascii_graphic()),
            "{name}: {value:?} holds a byte outside visible ascii and space"
        );
    }
    if policy.require_bound_token {
        assert!(principal.bound_cert_sha256.is_some(), "{principal:?}");
    }
    for scope in &principal.scopes {
        assert!(!scope.is_empty() && !scope.contains(' '), "scope {scope:?}");
    }
}
