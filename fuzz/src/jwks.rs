//! `auth::keys::KeySet::from_jwks` on arbitrary bytes (a fetched JWKS document).
//!
//! Input: the document.
//!
//! Invariants on `Ok(parsed)`, besides "never panics":
//! - no key is an HMAC key (`kty: oct` is never taken from a key set), so no HS* `alg` ever
//!   finds a key;
//! - when the document has a `keys` array, every entry is either a key or a `skipped` line;
//! - every key is findable: for each `alg` it fits, `find(kid, alg)` returns that very key when
//!   it has a `kid` (the set keeps at most one key per `kid` and `alg`), and whatever `find`
//!   returns fits the `alg` and carries the `kid` asked for; a `kid` present in the set is never
//!   `UnknownKid`;
//! - skipped lines are single lines (they go to the log);
//! - every key can be used: verifying a junk signature with it, for each `alg` it fits, is a
//!   clean failure (no panic, never `Ok(true)`), whatever odd components the key was built from.

use authgate::auth::keys::{KeyFamily, KeyLookupError, KeySet};
use jsonwebtoken::Algorithm;
use serde_json::Value;

const ALGORITHMS: [Algorithm; 12] = [
    Algorithm::HS256,
    Algorithm::HS384,
    Algorithm::HS512,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// base64url of 64 and 256 bytes of 0x01: the sizes of EC/Ed25519 and RSA-2048 signatures.
const JUNK_SIGNATURE_64: &str =
    "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ";
const JUNK_SIGNATURE_256: &str = concat!(
    "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ",
    "EBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEB",
    "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ",
    "EBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ",
);

pub fn fuzz_one(data: &[u8]) {
    let Ok(parsed) = KeySet::from_jwks(data) else {
        return;
    };
    let set = &parsed.keys;
    if let Ok(Value::Object(document)) = serde_json::from_slice::<Value>(data) {
        if let Some(Value::Array(entries)) = document.get("keys") {
            assert_eq!(
                set.len() + parsed.skipped.len(),
                entries.len(),
                "keys and skipped lines do not add up: {:?}",
                parsed.skipped
            );
        }
    }
    assert_eq!(set.len(), set.iter().count());
    assert_eq!(set.is_empty(), set.iter().next().is_none());
    for line in &parsed.skipped {
        assert!(!line.contains('\n'), "multi-line skipped line {line:?}");
    }
    for key in set.iter() {
        assert_ne!(
            key.family(),
            KeyFamily::Hmac,
            "HMAC key from a JWKS: {key:?}"
        );
        let _ = format!("{key:?}");
        for alg in ALGORITHMS.into_iter().filter(|alg| key.fits(*alg)) {
            for signature in [JUNK_SIGNATURE_64, JUNK_SIGNATURE_256] {
                let verified =
                    jsonwebtoken::crypto::verify(signature, b"e30.e30", key.decoding_key(), alg);
                assert!(!matches!(verified, Ok(true)), "junk signature verified");
            }
        }
        for alg in ALGORITHMS {
            if let Some(kid) = key.kid() {
                match set.find(Some(kid), alg) {
                    Ok(found) => {
                        assert_eq!(found.kid(), Some(kid));
                        assert!(found.fits(alg), "{found:?} does not fit {alg:?}");
                        if key.fits(alg) {
                            assert!(
                                std::ptr::eq(found, key),
                                "kid {kid:?} alg {alg:?}: found {found:?}, expected {key:?}"
                            );
                        }
                    }
                    Err(KeyLookupError::UnknownKid) => {
                        panic!("kid {kid:?} of {key:?} reported unknown")
                    }
                    Err(KeyLookupError::NoMatchingKey) => {
                        assert!(!key.fits(alg), "{key:?} fits {alg:?} but was not found")
                    }
                }
            }
            if let Ok(found) = set.find(None, alg) {
                assert!(found.fits(alg), "{found:?} does not fit {alg:?}");
            }
        }
    }
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        assert!(set.find(None, alg).is_err());
        assert!(set.find(Some("hs-1"), alg).is_err());
    }
}
