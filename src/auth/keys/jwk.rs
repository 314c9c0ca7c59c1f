//! One JWK (RFC 7517) into a [`VerifyKey`], or the reason it is skipped: RSA, EC P-256/P-384
//! and Ed25519 signature keys, validated and parsed by aws-lc-rs, with the content digest that
//! identifies them.
//!
//! Owns the per-key checks (type, curve, `use`/`key_ops`, RSA size bounds, well-formed
//! base64url). It must never accept `kty: oct` (secrets only come from configuration), never
//! put key material in a skip reason or log line, and never decide which key a token uses.

use std::fmt;

use aws_lc_rs::rsa::PublicKeyComponents;
use aws_lc_rs::signature::{self as aws_signature, ParsedPublicKey};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};

use super::{
    algorithm_from_name, KeyDigest, KeyFamily, VerifyKey, MAX_KID_IN_LOG, MAX_RSA_BITS,
    MIN_RSA_BITS,
};

/// Why one JWK was skipped. The texts never contain key material.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Skip {
    Malformed(&'static str),
    Unsupported(&'static str),
    Weak,
    NotForSignatures,
    DuplicateKid,
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Skip::Malformed(what) => write!(f, "malformed: {what}"),
            Skip::Unsupported(what) => write!(f, "unsupported: {what}"),
            Skip::Weak => write!(f, "RSA modulus shorter than {MIN_RSA_BITS} bits"),
            Skip::NotForSignatures => f.write_str("not a signature verification key"),
            Skip::DuplicateKid => {
                f.write_str("duplicate kid for a key of the same type, the first one is used")
            }
        }
    }
}

/// `key 3 (kid "abc", kty RSA) skipped: RSA modulus shorter than 2048 bits`. `kid` and `kty`
/// are printed escaped and truncated: they are not secret, but they are remote input.
pub(super) fn skipped_line(index: usize, entry: &Value, reason: Skip) -> String {
    let mut line = format!("key {index}");
    let kid = entry.get("kid").and_then(Value::as_str);
    let kty = entry.get("kty").and_then(Value::as_str);
    if kid.is_some() || kty.is_some() {
        line.push_str(" (");
        if let Some(kid) = kid {
            let shown: String = kid.chars().take(MAX_KID_IN_LOG).collect();
            line.push_str(&format!("kid {shown:?}"));
        }
        if let Some(kty) = kty {
            let separator = if kid.is_some() { ", " } else { "" };
            let shown: String = kty.chars().take(16).collect();
            line.push_str(&format!("{separator}kty {shown:?}"));
        }
        line.push(')');
    }
    line.push_str(&format!(" skipped: {reason}"));
    line
}

/// Parses one JWK into a key, or says why it is not usable.
pub(super) fn parse_jwk(jwk: &Map<String, Value>) -> Result<VerifyKey, Skip> {
    let kid = optional_str(jwk, "kid")?.map(Box::from);

    // `use` and `key_ops` (RFC 7517 4.2, 4.3): a key meant for encryption must not verify.
    if let Some(usage) = optional_str(jwk, "use")? {
        if usage != "sig" {
            return Err(Skip::NotForSignatures);
        }
    }
    match jwk.get("key_ops") {
        None => {}
        Some(Value::Array(ops)) if ops.iter().any(|op| op.as_str() == Some("verify")) => {}
        Some(Value::Array(_)) => return Err(Skip::NotForSignatures),
        Some(_) => return Err(Skip::Malformed("\"key_ops\" is not an array")),
    }

    let alg = match optional_str(jwk, "alg")? {
        None => None,
        Some(name) => {
            Some(algorithm_from_name(name).ok_or(Skip::Unsupported("\"alg\" is not supported"))?)
        }
    };

    let kty = optional_str(jwk, "kty")?.ok_or(Skip::Malformed("no \"kty\""))?;
    let (family, (key, parsed)) = match kty {
        "RSA" => (KeyFamily::Rsa, rsa_key(jwk)?),
        "EC" => ec_key(jwk)?,
        "OKP" => (KeyFamily::Ed25519, ed25519_key(jwk)?),
        // Symmetric keys never come from a key set: anyone who can read the JWKS would hold
        // the secret, and an `oct` key is the classic lever for algorithm confusion.
        "oct" => {
            return Err(Skip::Unsupported(
                "symmetric keys are not taken from a key set",
            ))
        }
        _ => return Err(Skip::Unsupported("key type")),
    };
    if let Some(alg) = alg {
        if !family.fits(alg) {
            return Err(Skip::Malformed("\"alg\" does not fit the key type"));
        }
    }
    Ok(VerifyKey {
        digest: jwk_digest(jwk, kty),
        kid,
        family,
        alg,
        key,
        parsed: Some(parsed),
    })
}

/// The [`KeyDigest`] of a usable JWK: its `kty` and its `kid`, `alg` and key-material members
/// as the document spells them (an absent member and an empty one differ).
fn jwk_digest(jwk: &Map<String, Value>, kty: &str) -> KeyDigest {
    let members = ["kid", "alg", "crv", "n", "e", "x", "y"].map(|name| match jwk.get(name) {
        Some(Value::String(value)) => format!("{name}={value}"),
        _ => name.to_owned(),
    });
    let mut parts: Vec<&[u8]> = vec![b"jwk", kty.as_bytes()];
    parts.extend(members.iter().map(|member| member.as_bytes()));
    KeyDigest::of(&parts)
}

/// A key for jsonwebtoken, and the same key parsed by aws-lc for its usual algorithm.
type Parsed = (DecodingKey, (Algorithm, ParsedPublicKey));

fn rsa_key(jwk: &Map<String, Value>) -> Result<Parsed, Skip> {
    let modulus = required_bytes(jwk, "n")?;
    let exponent = required_bytes(jwk, "e")?;
    let modulus = strip_leading_zeros(&modulus);
    let exponent = strip_leading_zeros(&exponent);

    let bits = bit_length(modulus);
    if bits < MIN_RSA_BITS {
        return Err(Skip::Weak);
    }
    if bits > MAX_RSA_BITS {
        return Err(Skip::Unsupported("RSA modulus longer than 8192 bits"));
    }
    // An RSA modulus is odd, and a public exponent is odd, at least 3 and (in practice, and
    // as aws-lc requires when verifying) at most 33 bits. aws-lc-rs only rejects empty or
    // zero-padded components here, so a broken key would otherwise load and fail every token.
    let exponent_bits = bit_length(exponent);
    if modulus.last().is_none_or(|low| low & 1 == 0) {
        return Err(Skip::Malformed("RSA modulus is even"));
    }
    if exponent.last().is_none_or(|low| low & 1 == 0) || !(2..=33).contains(&exponent_bits) {
        return Err(Skip::Malformed(
            "RSA public exponent is not an odd number of 2 to 33 bits",
        ));
    }
    // RS256's verification algorithm: what jsonwebtoken's RS256 verifier uses too.
    let parsed = PublicKeyComponents {
        n: modulus,
        e: exponent,
    }
    .to_parsed_public_key(&aws_signature::RSA_PKCS1_2048_8192_SHA256)
    .map_err(|_| Skip::Malformed("not a valid RSA public key"))?;
    Ok((
        DecodingKey::from_rsa_raw_components(modulus, exponent),
        (Algorithm::RS256, parsed),
    ))
}

fn ec_key(jwk: &Map<String, Value>) -> Result<(KeyFamily, Parsed), Skip> {
    let (family, length, algorithm, alg) = match optional_str(jwk, "crv")? {
        Some("P-256") => (
            KeyFamily::EcP256,
            32,
            &aws_signature::ECDSA_P256_SHA256_FIXED,
            Algorithm::ES256,
        ),
        Some("P-384") => (
            KeyFamily::EcP384,
            48,
            &aws_signature::ECDSA_P384_SHA384_FIXED,
            Algorithm::ES384,
        ),
        Some(_) => return Err(Skip::Unsupported("elliptic curve")),
        None => return Err(Skip::Malformed("no \"crv\"")),
    };
    let x = required_bytes(jwk, "x")?;
    let y = required_bytes(jwk, "y")?;
    if x.len() != length || y.len() != length {
        return Err(Skip::Malformed("coordinate length does not fit the curve"));
    }
    // SEC1 uncompressed point, the form aws-lc-rs verifies with.
    let mut point = Vec::with_capacity(1 + 2 * length);
    point.push(0x04);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    // Rejects points that are not on the curve.
    let parsed = ParsedPublicKey::new(algorithm, &point)
        .map_err(|_| Skip::Malformed("not a valid EC public key"))?;
    Ok((family, (DecodingKey::from_ec_der(&point), (alg, parsed))))
}

fn ed25519_key(jwk: &Map<String, Value>) -> Result<Parsed, Skip> {
    match optional_str(jwk, "crv")? {
        Some("Ed25519") => {}
        Some(_) => return Err(Skip::Unsupported("OKP curve")),
        None => return Err(Skip::Malformed("no \"crv\"")),
    }
    let x = required_bytes(jwk, "x")?;
    if x.len() != 32 {
        return Err(Skip::Malformed("Ed25519 key is not 32 bytes"));
    }
    let parsed = ParsedPublicKey::new(&aws_signature::ED25519, &x)
        .map_err(|_| Skip::Malformed("not a valid Ed25519 public key"))?;
    Ok((DecodingKey::from_ed_der(&x), (Algorithm::EdDSA, parsed)))
}

/// A member that must be a string when present.
fn optional_str<'a>(
    jwk: &'a Map<String, Value>,
    name: &'static str,
) -> Result<Option<&'a str>, Skip> {
    match jwk.get(name) {
        None => Ok(None),
        Some(Value::String(value)) => Ok(Some(value)),
        Some(_) => Err(Skip::Malformed("a member is not a string")),
    }
}

/// A required base64url member, decoded. Trailing `=` padding is tolerated here (unlike in
/// tokens): the key set is trusted input and some providers pad.
fn required_bytes(jwk: &Map<String, Value>, name: &'static str) -> Result<Vec<u8>, Skip> {
    let text = optional_str(jwk, name)?.ok_or(Skip::Malformed("a key component is missing"))?;
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| Skip::Malformed("a key component is not base64url"))
}

pub(super) fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|&byte| byte != 0)
        .unwrap_or(bytes.len());
    &bytes[start..]
}

/// Bits of a big-endian unsigned integer without leading zero bytes.
pub(super) fn bit_length(bytes: &[u8]) -> usize {
    match bytes.first() {
        None => 0,
        Some(&first) => (bytes.len() - 1) * 8 + (8 - first.leading_zeros() as usize),
    }
}
