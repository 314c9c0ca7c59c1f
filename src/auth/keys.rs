//! Verification keys: a parsed JWKS or an HMAC secret. STUB: owned by the JWT helper.

use std::fmt;

use jsonwebtoken::Algorithm;

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
    #[error("key set is not valid JSON: {0}")]
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

/// An immutable set of verification keys.
#[derive(Debug, Default)]
pub struct KeySet {}

/// A parsed key set plus one line per skipped (unsupported or weak) key, for the log.
#[derive(Debug)]
pub struct ParsedKeySet {
    pub keys: KeySet,
    pub skipped: Vec<String>,
}

/// One usable key.
pub struct VerifyKey {
    pub key: jsonwebtoken::DecodingKey,
}

impl KeySet {
    /// Parses a JWKS document (RFC 7517). Over 1 MiB or malformed: error.
    pub fn from_jwks(bytes: &[u8]) -> Result<ParsedKeySet, JwksError> {
        let _ = bytes;
        Err(JwksError::NoKeysArray)
    }

    /// A set holding one symmetric key.
    pub fn from_hmac(secret: &Secret) -> KeySet {
        let _ = secret;
        KeySet {}
    }

    pub fn len(&self) -> usize {
        0
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The key for a token header's `kid` and `alg`.
    pub fn find(&self, kid: Option<&str>, alg: Algorithm) -> Result<&VerifyKey, KeyLookupError> {
        let _ = (kid, alg);
        Err(KeyLookupError::UnknownKid)
    }
}
