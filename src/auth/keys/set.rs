//! Building and searching a [`KeySet`]: a JWKS document or a configured secret in, one key per
//! (`kid`, `alg`) out.
//!
//! Owns the selection rules (by `kid`, or the only fitting key without one; duplicate `kid`s
//! that overlap are skipped). It must never pick a key by trying signatures, never let a JWKS
//! yield an HMAC key, and never fail the whole set for one bad key (`jwk.rs` says why a key is
//! skipped).

use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

use super::jwk::{parse_jwk, skipped_line, Skip};
use super::{
    JwksError, KeyDigest, KeyFamily, KeyLookupError, KeySet, ParsedKeySet, Secret, VerifyKey,
    MAX_JWKS_BYTES,
};

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

    /// The number of usable keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set has no usable key.
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
