//! Tests for `keys.rs`: JWKS parsing, skipping rules and key selection.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};

use super::jwk::{bit_length, strip_leading_zeros};
use super::testkeys::{self, b64, jwks};
use super::*;

fn parse(keys: &[Value]) -> ParsedKeySet {
    KeySet::from_jwks(&jwks(keys)).expect("valid jwks")
}

/// Parses a single key and returns its skipped line, failing if it was accepted.
fn skipped(jwk: Value) -> String {
    let parsed = parse(&[jwk]);
    assert!(parsed.keys.is_empty(), "key should have been skipped");
    assert_eq!(parsed.skipped.len(), 1);
    parsed.skipped[0].clone()
}

#[test]
fn parses_every_supported_key_type() {
    let parsed = parse(&[
        testkeys::rsa().jwk_with_kid("rsa"),
        testkeys::ec_p256().jwk_with_kid("p256"),
        testkeys::ec_p384().jwk_with_kid("p384"),
        testkeys::ed25519().jwk_with_kid("ed"),
    ]);
    assert_eq!(parsed.skipped, Vec::<String>::new());
    assert_eq!(parsed.keys.len(), 4);
    let families: Vec<_> = parsed.keys.iter().map(VerifyKey::family).collect();
    assert_eq!(
        families,
        [
            KeyFamily::Rsa,
            KeyFamily::EcP256,
            KeyFamily::EcP384,
            KeyFamily::Ed25519
        ]
    );
    assert_eq!(
        parsed
            .keys
            .find(Some("rsa"), Algorithm::PS512)
            .map(VerifyKey::kid),
        Ok(Some("rsa"))
    );
    assert_eq!(
        parsed
            .keys
            .find(Some("p256"), Algorithm::ES256)
            .map(VerifyKey::kid),
        Ok(Some("p256"))
    );
    assert_eq!(
        parsed
            .keys
            .find(Some("p384"), Algorithm::ES384)
            .map(VerifyKey::kid),
        Ok(Some("p384"))
    );
    assert_eq!(
        parsed
            .keys
            .find(Some("ed"), Algorithm::EdDSA)
            .map(VerifyKey::kid),
        Ok(Some("ed"))
    );
}

#[test]
fn refuses_oversized_documents() {
    let mut big = jwks(&[testkeys::rsa().jwk.clone()]);
    big.resize(MAX_JWKS_BYTES + 1, b' ');
    assert!(matches!(KeySet::from_jwks(&big), Err(JwksError::TooLarge)));
    // Exactly the limit is fine.
    big.truncate(MAX_JWKS_BYTES);
    assert!(KeySet::from_jwks(&big).is_ok());
}

#[test]
fn refuses_invalid_json_and_missing_keys_array() {
    assert!(matches!(
        KeySet::from_jwks(b"{\"keys\": ["),
        Err(JwksError::Json(_))
    ));
    assert!(matches!(
        KeySet::from_jwks(b"{}"),
        Err(JwksError::NoKeysArray)
    ));
    assert!(matches!(
        KeySet::from_jwks(b"{\"keys\": {}}"),
        Err(JwksError::NoKeysArray)
    ));
    assert!(matches!(
        KeySet::from_jwks(b"[]"),
        Err(JwksError::NoKeysArray)
    ));
}

#[test]
fn empty_set_is_ok_but_empty() {
    let parsed = KeySet::from_jwks(b"{\"keys\": []}").expect("valid");
    assert!(parsed.keys.is_empty());
    assert!(parsed.skipped.is_empty());
}

#[test]
fn skips_weak_rsa_keys() {
    // A 1024-bit modulus (top bit set), with a leading zero byte that must not count.
    let mut modulus = vec![0u8; 1];
    modulus.extend(std::iter::repeat_n(0xC5, 128));
    let line = skipped(json!({"kty": "RSA", "kid": "weak", "n": b64(&modulus), "e": "AQAB"}));
    assert!(line.contains("\"weak\""), "{line}");
    assert!(line.contains("2048"), "{line}");
    // 2047 bits: one short.
    let mut modulus = vec![0x7F];
    modulus.extend(std::iter::repeat_n(0xC5, 255));
    skipped(json!({"kty": "RSA", "n": b64(&modulus), "e": "AQAB"}));
}

#[test]
fn skips_rsa_keys_with_impossible_components() {
    // Found by fuzzing: such keys loaded and then failed every token instead of being skipped.
    let real = testkeys::rsa().jwk.clone();
    let modulus = URL_SAFE_NO_PAD
        .decode(real["n"].as_str().expect("n"))
        .expect("b64");
    let mut even = modulus.clone();
    *even.last_mut().expect("non-empty") &= 0xFE;
    let line = skipped(json!({"kty": "RSA", "n": b64(&even), "e": "AQAB"}));
    assert!(line.contains("even"), "{line}");
    for exponent in [
        vec![1u8],
        vec![0x01, 0x00, 0x00],
        vec![0xFF; 300],
        vec![0x01, 0x00, 0x00, 0x00, 0x00, 0x01],
    ] {
        let line = skipped(json!({"kty": "RSA", "n": real["n"], "e": b64(&exponent)}));
        assert!(line.contains("exponent"), "{line}");
    }
    // The real key (e = 65537) still loads.
    assert!(!KeySet::from_jwks(&jwks(&[real]))
        .expect("jwks")
        .keys
        .is_empty());
}

#[test]
fn rsa_modulus_with_leading_zero_is_accepted() {
    let mut jwk = testkeys::rsa().jwk.clone();
    let modulus = URL_SAFE_NO_PAD
        .decode(jwk["n"].as_str().expect("n"))
        .expect("b64");
    let mut padded = vec![0u8];
    padded.extend_from_slice(&modulus);
    jwk["n"] = json!(b64(&padded));
    let parsed = parse(&[jwk]);
    assert_eq!(parsed.keys.len(), 1, "{:?}", parsed.skipped);
}

#[test]
fn skips_symmetric_keys_from_a_key_set() {
    let line = skipped(json!({"kty": "oct", "kid": "s", "k": b64(b"super secret value")}));
    assert!(line.contains("symmetric"), "{line}");
    // Never echoes key material.
    assert!(!line.contains(&b64(b"super secret value")), "{line}");
}

#[test]
fn skips_keys_not_meant_for_signatures() {
    let mut enc = testkeys::rsa().jwk.clone();
    enc["use"] = json!("enc");
    skipped(enc);

    let mut ops = testkeys::rsa().jwk.clone();
    ops["key_ops"] = json!(["encrypt", "wrapKey"]);
    skipped(ops);

    // `use: sig` and `key_ops` containing verify are fine.
    let mut good = testkeys::rsa().jwk.clone();
    good["use"] = json!("sig");
    good["key_ops"] = json!(["verify"]);
    assert_eq!(parse(&[good]).keys.len(), 1);
}

#[test]
fn skips_unknown_and_malformed_keys_without_failing_the_set() {
    let mut wrong_alg = testkeys::rsa().jwk.clone();
    wrong_alg["alg"] = json!("ES256");
    let mut unsupported_alg = testkeys::rsa().jwk.clone();
    unsupported_alg["alg"] = json!("RSA-OAEP");
    let mut short_x = testkeys::ec_p256().jwk.clone();
    short_x["x"] = json!(b64(&[1u8; 31]));
    let mut off_curve = testkeys::ec_p256().jwk.clone();
    off_curve["y"] = json!(b64(&[7u8; 32]));
    let mut p384_as_p256 = testkeys::ec_p384().jwk.clone();
    p384_as_p256["crv"] = json!("P-256");

    let parsed = parse(&[
        json!({"kty": "PQC", "kid": "future"}),
        json!({"kid": "no-kty"}),
        json!("not an object"),
        json!({"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"}),
        json!({"kty": "OKP", "crv": "X25519", "x": b64(&[9u8; 32])}),
        json!({"kty": "RSA", "n": "!!!", "e": "AQAB"}),
        json!({"kty": "RSA", "kid": 7, "n": "AA", "e": "AQAB"}),
        wrong_alg,
        unsupported_alg,
        short_x,
        off_curve,
        p384_as_p256,
        testkeys::ed25519().jwk_with_kid("good"),
    ]);
    assert_eq!(parsed.skipped.len(), 12, "{:#?}", parsed.skipped);
    assert_eq!(parsed.keys.len(), 1);
    assert_eq!(
        parsed
            .keys
            .find(Some("good"), Algorithm::EdDSA)
            .map(VerifyKey::kid),
        Ok(Some("good"))
    );
    assert!(parsed.skipped[0].starts_with("key 0 (kid \"future\", kty \"PQC\") skipped"));
}

#[test]
fn find_by_kid() {
    let parsed = parse(&[
        testkeys::rsa().jwk_with_kid("a"),
        testkeys::rsa_other().jwk_with_kid("b"),
    ]);
    let keys = &parsed.keys;
    assert_eq!(
        keys.find(Some("b"), Algorithm::RS256).map(VerifyKey::kid),
        Ok(Some("b"))
    );
    assert_eq!(
        keys.find(Some("zzz"), Algorithm::RS256).err(),
        Some(KeyLookupError::UnknownKid)
    );
    // Known kid, wrong type: no refresh needed.
    assert_eq!(
        keys.find(Some("a"), Algorithm::ES256).err(),
        Some(KeyLookupError::NoMatchingKey)
    );
    assert_eq!(
        keys.find(Some("a"), Algorithm::HS256).err(),
        Some(KeyLookupError::NoMatchingKey)
    );
    // No kid and two RSA keys: ambiguous.
    assert_eq!(
        keys.find(None, Algorithm::RS256).err(),
        Some(KeyLookupError::NoMatchingKey)
    );
}

#[test]
fn find_without_kid_takes_the_only_fitting_key() {
    let parsed = parse(&[testkeys::rsa().jwk.clone(), testkeys::ec_p256().jwk.clone()]);
    let keys = &parsed.keys;
    assert_eq!(
        keys.find(None, Algorithm::PS256).map(VerifyKey::family),
        Ok(KeyFamily::Rsa)
    );
    assert_eq!(
        keys.find(None, Algorithm::ES256).map(VerifyKey::family),
        Ok(KeyFamily::EcP256)
    );
    assert_eq!(
        keys.find(None, Algorithm::ES384).err(),
        Some(KeyLookupError::NoMatchingKey)
    );
    // A token with a kid never falls back to kid-less keys.
    assert_eq!(
        keys.find(Some("x"), Algorithm::RS256).err(),
        Some(KeyLookupError::UnknownKid)
    );
}

#[test]
fn declared_alg_restricts_the_key() {
    let mut jwk = testkeys::rsa().jwk_with_kid("k");
    jwk["alg"] = json!("PS256");
    let parsed = parse(&[jwk]);
    assert_eq!(
        parsed
            .keys
            .find(Some("k"), Algorithm::PS256)
            .map(VerifyKey::alg),
        Ok(Some(Algorithm::PS256))
    );
    assert_eq!(
        parsed.keys.find(Some("k"), Algorithm::RS256).err(),
        Some(KeyLookupError::NoMatchingKey)
    );
}

#[test]
fn duplicate_kids_keep_distinct_types_and_skip_overlaps() {
    let mut ps = testkeys::rsa_other().jwk_with_kid("dup");
    ps["alg"] = json!("PS256");
    let parsed = parse(&[
        testkeys::rsa().jwk_with_kid("dup"),
        testkeys::ec_p256().jwk_with_kid("dup"),
        // Same family as the first RSA key, which has no alg: overlaps, skipped.
        ps,
    ]);
    assert_eq!(parsed.keys.len(), 2);
    assert_eq!(parsed.skipped.len(), 1);
    assert!(
        parsed.skipped[0].contains("duplicate kid"),
        "{:?}",
        parsed.skipped
    );
    let keys = &parsed.keys;
    assert_eq!(
        keys.find(Some("dup"), Algorithm::ES256)
            .map(VerifyKey::family),
        Ok(KeyFamily::EcP256)
    );
    assert_eq!(
        keys.find(Some("dup"), Algorithm::RS256)
            .map(VerifyKey::family),
        Ok(KeyFamily::Rsa)
    );

    // Two RSA keys under one kid with distinct declared algs are both kept.
    let mut rs = testkeys::rsa().jwk_with_kid("k");
    rs["alg"] = json!("RS256");
    let mut ps = testkeys::rsa_other().jwk_with_kid("k");
    ps["alg"] = json!("PS256");
    let parsed = parse(&[rs, ps]);
    assert_eq!(parsed.keys.len(), 2, "{:?}", parsed.skipped);
    assert_eq!(
        parsed
            .keys
            .find(Some("k"), Algorithm::PS256)
            .map(VerifyKey::alg),
        Ok(Some(Algorithm::PS256))
    );
}

#[test]
fn hmac_set_has_one_key_and_ignores_kid() {
    let keys = KeySet::from_hmac(&Secret::new(testkeys::HMAC_SECRET.to_vec()));
    assert_eq!(keys.len(), 1);
    assert_eq!(
        keys.find(None, Algorithm::HS256).map(VerifyKey::family),
        Ok(KeyFamily::Hmac)
    );
    assert_eq!(
        keys.find(Some("any"), Algorithm::HS512)
            .map(VerifyKey::family),
        Ok(KeyFamily::Hmac)
    );
    assert_eq!(
        keys.find(None, Algorithm::RS256).err(),
        Some(KeyLookupError::NoMatchingKey)
    );
}

#[test]
fn secrets_and_keys_never_print() {
    let secret = Secret::new(b"hunter2".to_vec());
    assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
    let keys = KeySet::from_hmac(&secret);
    let shown = format!("{keys:?}");
    assert!(
        !shown.contains("hunter2") && !shown.contains("104, 117"),
        "{shown}"
    );
}

#[test]
fn algorithm_names_are_exact() {
    assert_eq!(algorithm_from_name("EdDSA"), Some(Algorithm::EdDSA));
    assert_eq!(algorithm_from_name("PS384"), Some(Algorithm::PS384));
    for name in ["none", "NONE", "rs256", "ES512", "RSA-OAEP", ""] {
        assert_eq!(algorithm_from_name(name), None, "{name}");
    }
}

#[test]
fn bit_length_counts_bits() {
    assert_eq!(bit_length(&[]), 0);
    assert_eq!(bit_length(&[1]), 1);
    assert_eq!(bit_length(&[0x80, 0]), 16);
    assert_eq!(strip_leading_zeros(&[0, 0, 3]), &[3]);
    assert_eq!(strip_leading_zeros(&[0, 0]), &[] as &[u8]);
}

#[test]
fn a_key_is_held_only_by_sets_with_the_same_kid_and_material() {
    let rsa = testkeys::rsa();
    let set = parse(&[
        rsa.jwk_with_kid("k1"),
        testkeys::ec_p256().jwk_with_kid("e1"),
    ])
    .keys;
    let k1 = set.find(Some("k1"), Algorithm::RS256).expect("k1").digest();

    let same = parse(&[rsa.jwk_with_kid("k1")]).keys;
    assert!(same.holds(Some("k1"), k1), "the same key in another set");
    let renamed = parse(&[rsa.jwk_with_kid("k2")]).keys;
    assert!(!renamed.holds(Some("k1"), k1), "the kid is gone");
    assert!(!renamed.holds(None, k1), "another kid is another key");
    let replaced = parse(&[testkeys::rsa_other().jwk_with_kid("k1")]).keys;
    assert!(!replaced.holds(Some("k1"), k1), "same kid, other material");

    let a = KeySet::from_hmac(&Secret::new(b"secret-a".to_vec()));
    let b = KeySet::from_hmac(&Secret::new(b"secret-b".to_vec()));
    let digest_a = a.iter().next().expect("one key").digest();
    assert!(a.holds(None, digest_a));
    assert!(!b.holds(None, digest_a), "another secret");
    assert!(
        KeySet::from_hmac(&Secret::new(b"secret-a".to_vec())).holds(None, digest_a),
        "the same secret configured again"
    );
}

/// Each key keeps its load-time parse for exactly the algorithm it was parsed for; every other
/// algorithm (and an HMAC secret) goes through jsonwebtoken.
#[test]
fn keys_keep_their_parse_for_one_algorithm_only() {
    let parsed = parse(&[
        testkeys::rsa().jwk_with_kid("rsa"),
        testkeys::ec_p256().jwk_with_kid("p256"),
        testkeys::ec_p384().jwk_with_kid("p384"),
        testkeys::ed25519().jwk_with_kid("ed"),
    ]);
    let expected = [
        (Algorithm::RS256, [Algorithm::RS384, Algorithm::PS256]),
        (Algorithm::ES256, [Algorithm::ES384, Algorithm::RS256]),
        (Algorithm::ES384, [Algorithm::ES256, Algorithm::RS256]),
        (Algorithm::EdDSA, [Algorithm::ES256, Algorithm::RS256]),
    ];
    for (key, (own, others)) in parsed.keys.iter().zip(expected) {
        assert!(key.parsed_for(own).is_some(), "{key:?} {own:?}");
        for other in others {
            assert!(key.parsed_for(other).is_none(), "{key:?} {other:?}");
        }
    }
    let hmac = KeySet::from_hmac(&Secret::new(b"0123456789abcdef0123456789abcdef".to_vec()));
    let key = hmac.iter().next().expect("one key");
    assert!(key.parsed_for(Algorithm::HS256).is_none());
}
