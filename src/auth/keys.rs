//! Verification keys: a parsed JWKS document (RFC 7517) or one HMAC secret, as an immutable
//! [`KeySet`] that `jwt::verify` searches by `kid` and `alg` (SPEC §3 step 6).
//!
//! This module owns key parsing and key selection only. Fetching, caching and refreshing key
//! sets is `jwks.rs`; checking signatures and claims is `jwt.rs`.
//!
//! Security choices:
//! - a key set only ever yields asymmetric keys: `kty: oct` in a JWKS is skipped, so an HMAC
//!   secret can only come from the operator's configuration (`from_hmac`);
//! - every key is bound to one [`KeyFamily`], and a token's `alg` must fit that family (and the
//!   key's own `alg`, when it declares one): this is what stops algorithm confusion, e.g. an
//!   HS256 token "signed" with an RSA public key;
//! - weak (RSA under 2048 bits), malformed or non-signature keys are skipped one by one with a
//!   log line that names the key's position and `kid`, never its material. One bad key never
//!   fails the whole set;
//! - public keys are validated by aws-lc-rs at parse time, so a key that could never verify
//!   anything is reported when the set is loaded rather than as bad signatures later. That
//!   parse is kept ([`VerifyKey::parsed_for`]) for the one algorithm each key type is used with
//!   (RS256, ES256, ES384, EdDSA), so a signature check does not rebuild the key (issue 19:
//!   jsonwebtoken's `crypto::verify` parses its `DecodingKey` again on every call); other
//!   algorithms go through jsonwebtoken, on the same aws-lc backend.
//!
//! No crypto provider has to be installed: `jsonwebtoken` is built with exactly one backend
//! (`aws_lc_rs`), which it selects by itself on first use.

use std::collections::HashMap;
use std::fmt;

use aws_lc_rs::rsa::PublicKeyComponents;
use aws_lc_rs::signature::{self as aws_signature, ParsedPublicKey};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};

/// The largest JWKS document accepted (SPEC §3: "Key sets larger than 1 MiB are refused").
pub const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// The smallest RSA modulus accepted, in bits.
const MIN_RSA_BITS: usize = 2048;
/// The largest RSA modulus accepted, in bits (aws-lc-rs verifies up to 8192).
const MAX_RSA_BITS: usize = 8192;
/// At most this many characters of a `kid` appear in a skipped-key line.
const MAX_KID_IN_LOG: usize = 64;

/// A secret (HMAC key) that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(bytes: Vec<u8>) -> Secret {
        Secret(bytes)
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Why a JWKS document was refused as a whole (the last good set stays in use).
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("key set larger than 1 MiB")]
    TooLarge,
    #[error("key set is not valid JSON")]
    Json(#[source] serde_json::Error),
    #[error("key set has no \"keys\" array")]
    NoKeysArray,
}

/// Why no key fits a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyLookupError {
    /// The `kid` is not in the set (worth one refresh).
    UnknownKid,
    /// No key of a type/alg/use that fits (also: no kid and several candidates).
    NoMatchingKey,
}

/// The kind of a key, which decides the token algorithms it may verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyFamily {
    /// RS256/384/512 and PS256/384/512.
    Rsa,
    /// ES256.
    EcP256,
    /// ES384.
    EcP384,
    /// EdDSA.
    Ed25519,
    /// HS256/384/512; only from a configured secret, never from a JWKS.
    Hmac,
}

impl KeyFamily {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyFamily::Rsa => "RSA",
            KeyFamily::EcP256 => "EC P-256",
            KeyFamily::EcP384 => "EC P-384",
            KeyFamily::Ed25519 => "Ed25519",
            KeyFamily::Hmac => "HMAC",
        }
    }

    /// Whether a token signed with `alg` may be verified by a key of this family. Exhaustive on
    /// both sides so that a new algorithm cannot silently fit an existing family.
    pub fn fits(self, alg: Algorithm) -> bool {
        match alg {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => self == KeyFamily::Hmac,
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => self == KeyFamily::Rsa,
            Algorithm::ES256 => self == KeyFamily::EcP256,
            Algorithm::ES384 => self == KeyFamily::EcP384,
            Algorithm::EdDSA => self == KeyFamily::Ed25519,
        }
    }
}

/// Maps a JOSE `alg` name to the algorithms this gateway verifies. Anything else (`none`,
/// `ES512`, `RSA-OAEP`, lowercase spellings, ...) is `None`.
pub fn algorithm_from_name(name: &str) -> Option<Algorithm> {
    let alg = match name {
        "HS256" => Algorithm::HS256,
        "HS384" => Algorithm::HS384,
        "HS512" => Algorithm::HS512,
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        _ => return None,
    };
    Some(alg)
}

/// Identifies one key by content: the SHA-256 of its `kid`, type, declared `alg` and key
/// material. A cached verification remembers the digest of the key that made it, and counts
/// only while the issuer's current set still holds a key with that digest (SPEC §6): removing
/// a key from a set, or replacing a secret, ends every cached verification it made.
///
/// Content, never an address: an address is reused once its key set is freed, a digest is
/// not. Two encodings of one key (say, base64 with and without padding) get different digests;
/// that costs a re-verification, never a wrong acceptance.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyDigest([u8; 32]);

impl KeyDigest {
    /// The digest of length-prefixed `parts`, so that no two part lists share a byte string.
    pub(crate) fn of(parts: &[&[u8]]) -> KeyDigest {
        let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        for part in parts {
            context.update(&(part.len() as u64).to_be_bytes());
            context.update(part);
        }
        let mut digest = [0u8; 32];
        digest.copy_from_slice(context.finish().as_ref());
        KeyDigest(digest)
    }
}

impl fmt::Debug for KeyDigest {
    // For an HMAC key this digest is derived from the secret: it is never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyDigest(..)")
    }
}

/// One usable key.
pub struct VerifyKey {
    kid: Option<Box<str>>,
    family: KeyFamily,
    /// The key's declared `alg`; when set, tokens must use exactly this algorithm.
    alg: Option<Algorithm>,
    key: DecodingKey,
    /// The key as aws-lc parsed it when the set was loaded, and the algorithm it verifies.
    parsed: Option<(Algorithm, ParsedPublicKey)>,
    digest: KeyDigest,
}

impl VerifyKey {
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// What identifies this exact key across key sets.
    pub fn digest(&self) -> KeyDigest {
        self.digest
    }

    pub fn family(&self) -> KeyFamily {
        self.family
    }

    pub fn alg(&self) -> Option<Algorithm> {
        self.alg
    }

    /// The key for `jsonwebtoken::crypto::verify`.
    pub fn decoding_key(&self) -> &DecodingKey {
        &self.key
    }

    /// The key parsed once at load, when it was parsed for exactly `alg`.
    pub fn parsed_for(&self, alg: Algorithm) -> Option<&ParsedPublicKey> {
        match &self.parsed {
            Some((parsed_alg, parsed)) if *parsed_alg == alg => Some(parsed),
            Some(_) | None => None,
        }
    }

    /// Whether this key may verify a token signed with `alg`.
    pub fn fits(&self, alg: Algorithm) -> bool {
        self.family.fits(alg) && self.alg.is_none_or(|own| own == alg)
    }
}

impl fmt::Debug for VerifyKey {
    // Never prints key material (for HMAC keys that would be the secret).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyKey")
            .field("kid", &self.kid)
            .field("family", &self.family)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// An immutable set of verification keys.
///
/// Duplicate `kid`s: keys sharing a `kid` are all kept when they cannot verify the same
/// algorithm (an IdP may publish an RSA and an EC key under one `kid`); a later key that
/// overlaps an earlier one with the same `kid` (same family, and no distinct declared `alg`)
/// is skipped. So at most one key fits any (`kid`, `alg`) pair and the choice never depends on
/// trying signatures.
#[derive(Debug, Default)]
pub struct KeySet {
    keys: Vec<VerifyKey>,
    /// kid -> indexes into `keys`, in document order. Borrowed `&str` lookups, no allocation.
    by_kid: HashMap<Box<str>, Vec<usize>>,
    /// HMAC sets: the configured secret has no id, so a token's `kid` is not used to select it.
    ignore_kid: bool,
    /// (`kid`, or `#<index>` without one) -> `notAfter` of the key's `x5c` certificate, for
    /// the expiry metric only (`tls::expiry::x5c_not_after`); never used to verify.
    x5c_expiries: Vec<(Box<str>, i64)>,
}

/// A parsed key set plus one line per skipped (unsupported or weak) key, for the log.
#[derive(Debug)]
pub struct ParsedKeySet {
    pub keys: KeySet,
    pub skipped: Vec<String>,
}

impl KeySet {
    /// Parses a JWKS document (RFC 7517). Over 1 MiB or malformed: error. Unusable keys are
    /// skipped (listed in `skipped`); a set with no usable key is `Ok` but `is_empty()`.
    pub fn from_jwks(bytes: &[u8]) -> Result<ParsedKeySet, JwksError> {
        // Checked before parsing so that a huge document costs no JSON work.
        if bytes.len() > MAX_JWKS_BYTES {
            return Err(JwksError::TooLarge);
        }
        let document: Value = serde_json::from_slice(bytes).map_err(JwksError::Json)?;
        let entries = match document.get("keys") {
            Some(Value::Array(entries)) => entries,
            _ => return Err(JwksError::NoKeysArray),
        };

        let mut set = KeySet::default();
        let mut skipped = Vec::new();
        for (index, entry) in entries.iter().enumerate() {
            let key = match entry {
                Value::Object(jwk) => parse_jwk(jwk),
                _ => Err(Skip::Malformed("not a JSON object")),
            };
            let outcome = key.and_then(|key| {
                if set.overlapping(&key) {
                    Err(Skip::DuplicateKid)
                } else {
                    Ok(key)
                }
            });
            match outcome {
                Ok(key) => {
                    if let Some(not_after) = crate::tls::expiry::x5c_not_after(entry) {
                        let label = key.kid().map_or_else(|| format!("#{index}"), str::to_owned);
                        set.x5c_expiries.push((label.into(), not_after));
                    }
                    set.push(key);
                }
                Err(reason) => skipped.push(skipped_line(index, entry, reason)),
            }
        }
        Ok(ParsedKeySet { keys: set, skipped })
    }

    /// A set holding one symmetric key, from the configured secret.
    pub fn from_hmac(secret: &Secret) -> KeySet {
        let mut set = KeySet {
            ignore_kid: true,
            ..KeySet::default()
        };
        set.push(VerifyKey {
            kid: None,
            family: KeyFamily::Hmac,
            alg: None,
            key: DecodingKey::from_secret(secret.expose()),
            parsed: None,
            digest: KeyDigest::of(&[b"hmac", secret.expose()]),
        });
        set
    }

    /// Whether this set holds the key with `digest` (looked up by `kid` when it has one).
    pub fn holds(&self, kid: Option<&str>, digest: KeyDigest) -> bool {
        match kid {
            Some(kid) => self.by_kid.get(kid).is_some_and(|indexes| {
                indexes
                    .iter()
                    .any(|&index| self.keys.get(index).is_some_and(|key| key.digest == digest))
            }),
            None => self.keys.iter().any(|key| key.digest == digest),
        }
    }

    /// The `x5c` certificate expiries of the set's keys (label, Unix time).
    pub fn x5c_expiries(&self) -> &[(Box<str>, i64)] {
        &self.x5c_expiries
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every key, in document order.
    pub fn iter(&self) -> impl Iterator<Item = &VerifyKey> {
        self.keys.iter()
    }

    /// The key for a token header's `kid` and `alg`.
    ///
    /// With a `kid`: the key with that `kid` that fits `alg` (`UnknownKid` when no key has the
    /// `kid`, which is worth one refresh; `NoMatchingKey` when keys have it but none fits).
    /// Without one: the only key in the set that fits `alg`; zero or several is
    /// `NoMatchingKey`, since guessing among several keys would be arbitrary. HMAC sets ignore
    /// the `kid`, their single key has none.
    pub fn find(&self, kid: Option<&str>, alg: Algorithm) -> Result<&VerifyKey, KeyLookupError> {
        match kid {
            Some(kid) if !self.ignore_kid => {
                let indexes = self.by_kid.get(kid).ok_or(KeyLookupError::UnknownKid)?;
                indexes
                    .iter()
                    .filter_map(|&index| self.keys.get(index))
                    .find(|key| key.fits(alg))
                    .ok_or(KeyLookupError::NoMatchingKey)
            }
            _ => {
                let mut fitting = self.keys.iter().filter(|key| key.fits(alg));
                match (fitting.next(), fitting.next()) {
                    (Some(key), None) => Ok(key),
                    _ => Err(KeyLookupError::NoMatchingKey),
                }
            }
        }
    }

    fn push(&mut self, key: VerifyKey) {
        if let Some(kid) = &key.kid {
            self.by_kid
                .entry(kid.clone())
                .or_default()
                .push(self.keys.len());
        }
        self.keys.push(key);
    }

    /// Whether an earlier key with the same `kid` could verify some algorithm `key` verifies.
    fn overlapping(&self, key: &VerifyKey) -> bool {
        let Some(indexes) = key.kid.as_deref().and_then(|kid| self.by_kid.get(kid)) else {
            return false;
        };
        indexes
            .iter()
            .filter_map(|&index| self.keys.get(index))
            .any(|earlier| {
                earlier.family == key.family
                    && match (earlier.alg, key.alg) {
                        (Some(a), Some(b)) => a == b,
                        _ => true,
                    }
            })
    }
}

/// Why one JWK was skipped. The texts never contain key material.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Skip {
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
fn skipped_line(index: usize, entry: &Value, reason: Skip) -> String {
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
fn parse_jwk(jwk: &Map<String, Value>) -> Result<VerifyKey, Skip> {
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

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|&byte| byte != 0)
        .unwrap_or(bytes.len());
    &bytes[start..]
}

/// Bits of a big-endian unsigned integer without leading zero bytes.
fn bit_length(bytes: &[u8]) -> usize {
    match bytes.first() {
        None => 0,
        Some(&first) => (bytes.len() - 1) * 8 + (8 - first.leading_zeros() as usize),
    }
}

/// Test keys and JWS builders shared by the `keys` and `jwt` tests. Keys are generated once
/// per test binary (RSA generation is slow in debug builds).
#[cfg(test)]
pub(crate) mod testkeys {
    use std::sync::OnceLock;

    use aws_lc_rs::encoding::AsDer as _;
    use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize, PublicKeyComponents};
    use aws_lc_rs::signature::{
        EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING,
        ECDSA_P384_SHA384_FIXED_SIGNING,
    };
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
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
    pub(crate) fn sign(
        header: &Value,
        claims: &Value,
        key: &EncodingKey,
        alg: Algorithm,
    ) -> String {
        let input = format!(
            "{}.{}",
            b64(&serde_json::to_vec(header).expect("json")),
            b64(&serde_json::to_vec(claims).expect("json"))
        );
        let signature = jsonwebtoken::crypto::sign(input.as_bytes(), key, alg).expect("sign");
        format!("{input}.{signature}")
    }

    fn pem(label: &str, der: &[u8]) -> String {
        let body = STANDARD.encode(der);
        let mut text = format!("-----BEGIN {label}-----\n");
        for line in body.as_bytes().chunks(64) {
            text.push_str(std::str::from_utf8(line).expect("ascii"));
            text.push('\n');
        }
        text.push_str(&format!("-----END {label}-----\n"));
        text
    }
}

#[cfg(test)]
#[path = "keys_tests.rs"]
mod tests;
