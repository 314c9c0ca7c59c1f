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
//!
//! Layout: this file holds the key types (`Secret`, [`KeyFamily`], [`KeyDigest`],
//! [`VerifyKey`], [`KeySet`]) and the errors; `set.rs` builds and searches a [`KeySet`],
//! `jwk.rs` parses one JWK into a [`VerifyKey`] or the reason it is skipped.

use std::collections::HashMap;
use std::fmt;

use aws_lc_rs::signature::ParsedPublicKey;
use jsonwebtoken::{Algorithm, DecodingKey};

mod jwk;
mod set;

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
    /// Wraps the secret's bytes.
    pub fn new(bytes: Vec<u8>) -> Secret {
        Secret(bytes)
    }

    /// The secret's bytes, for the HMAC key only (never for logs).
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
    /// The document is over [`MAX_JWKS_BYTES`]; it was not parsed.
    #[error("key set larger than 1 MiB")]
    TooLarge,
    /// The document is not JSON.
    #[error("key set is not valid JSON")]
    Json(#[source] serde_json::Error),
    /// The document has no top-level `keys` array.
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
    /// A short human-readable name (`RSA`, `EC P-256`, ...).
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
    /// The key's `kid`, if it has one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// What identifies this exact key across key sets.
    pub fn digest(&self) -> KeyDigest {
        self.digest
    }

    /// The key's family, which decides the algorithms it may verify.
    pub fn family(&self) -> KeyFamily {
        self.family
    }

    /// The key's declared `alg`, if it declares one.
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
    /// The usable keys.
    pub keys: KeySet,
    /// One log line per skipped key, naming its position and `kid`, never its material.
    pub skipped: Vec<String>,
}

#[cfg(test)]
pub(crate) mod testkeys;

#[cfg(test)]
#[path = "keys_tests.rs"]
mod tests;
