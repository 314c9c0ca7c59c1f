//! Test keys and JWS builders shared by the `keys` and `jwt` tests. Keys are generated once
//! per test binary (RSA generation is slow in debug builds).

use std::sync::OnceLock;

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING,
    ECDSA_P384_SHA384_FIXED_SIGNING,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{json, Value};

/// A private key for signing test tokens, plus its public JWK.
pub(crate) struct TestKey {
    pub(crate) encoding: EncodingKey,
    /// The public JWK without `kid`/`alg`/`use`.
    pub(crate) jwk: Value,
}

impl TestKey {
    /// The public JWK with `kid` set.
    pub(crate) fn jwk_with_kid(&self, kid: &str) -> Value {
        let mut jwk = self.jwk.clone();
        jwk["kid"] = json!(kid);
        jwk
    }
}

/// RSA-2048 (PKCS#1 v1.5 and PSS).
pub(crate) fn rsa() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(rsa_key)
}

/// A second RSA-2048 key: the attacker's.
pub(crate) fn rsa_other() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(rsa_key)
}

fn rsa_key() -> TestKey {
    let pair = RsaKeyPair::generate(KeySize::Rsa2048).expect("rsa keygen");
    let pkcs8 = pair.as_der().expect("pkcs8");
    // jsonwebtoken wants PKCS#1 DER for RSA; its PEM reader unwraps PKCS#8 for us.
    let pem = pem("PRIVATE KEY", pkcs8.as_ref());
    let encoding = EncodingKey::from_rsa_pem(pem.as_bytes()).expect("rsa pem");
    let public = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
    let jwk = json!({
        "kty": "RSA",
        "n": URL_SAFE_NO_PAD.encode(&public.n),
        "e": URL_SAFE_NO_PAD.encode(&public.e),
    });
    TestKey { encoding, jwk }
}

pub(crate) fn ec_p256() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(|| ec_key(&ECDSA_P256_SHA256_FIXED_SIGNING, "P-256", 32))
}

pub(crate) fn ec_p384() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(|| ec_key(&ECDSA_P384_SHA384_FIXED_SIGNING, "P-384", 48))
}

fn ec_key(
    algorithm: &'static aws_lc_rs::signature::EcdsaSigningAlgorithm,
    curve: &str,
    length: usize,
) -> TestKey {
    let pair = EcdsaKeyPair::generate(algorithm).expect("ec keygen");
    let pkcs8 = pair.to_pkcs8v1().expect("pkcs8");
    let encoding = EncodingKey::from_ec_der(pkcs8.as_ref());
    let point = pair.public_key().as_ref();
    let (x, y) = point[1..].split_at(length);
    let jwk = json!({
        "kty": "EC",
        "crv": curve,
        "x": URL_SAFE_NO_PAD.encode(x),
        "y": URL_SAFE_NO_PAD.encode(y),
    });
    TestKey { encoding, jwk }
}

pub(crate) fn ed25519() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let pair = Ed25519KeyPair::generate().expect("ed25519 keygen");
        let pkcs8 = pair.to_pkcs8().expect("pkcs8");
        let encoding = EncodingKey::from_ed_der(pkcs8.as_ref());
        let jwk = json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
        });
        TestKey { encoding, jwk }
    })
}

pub(crate) const HMAC_SECRET: &[u8] = b"a-test-secret-of-at-least-32-bytes!!";

pub(crate) fn hmac() -> EncodingKey {
    EncodingKey::from_secret(HMAC_SECRET)
}

/// A JWKS document of the given JWKs.
pub(crate) fn jwks(keys: &[Value]) -> Vec<u8> {
    serde_json::to_vec(&json!({ "keys": keys })).expect("json")
}

pub(crate) fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A compact JWS with exactly this header and payload, signed with `alg` (which need not
/// be the header's `alg`, to build forged tokens).
pub(crate) fn sign(header: &Value, claims: &Value, key: &EncodingKey, alg: Algorithm) -> String {
    let input = format!(
        "{}.{}",
        b64(&serde_json::to_vec(header).expect("json")),
        b64(&serde_json::to_vec(claims).expect("json"))
    );
    let signature = jsonwebtoken::crypto::sign(input.as_bytes(), key, alg).expect("sign");
    format!("{input}.{signature}")
}

/// `der` as PEM text under `label` (LF line endings, 64-column lines).
fn pem(label: &str, der: &[u8]) -> String {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    pem::encode_config(&pem::Pem::new(label, der.to_vec()), config)
}
