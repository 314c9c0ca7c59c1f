//! The stored form of an API key (SPEC §7.1): `sha256:<64 lowercase hex>` or an argon2id PHC
//! string, parsed and checked once when the key file is compiled.
//!
//! Owns the syntax of a stored hash and the argon2 cost limits applied at load. It never sees
//! or keeps a presented key (the lookup and the argon2 verification are `api_keys.rs`), and
//! its error texts say what is wrong, never the whole hash.

use std::sync::OnceLock;

use argon2::password_hash::PasswordHash;

use super::{MAX_ARGON2_MEMORY_KIB, MAX_ARGON2_PASSES};

/// A stored key hash.
pub(super) enum StoredHash {
    /// `sha256:<hex>`: found by the digest of the presented key.
    Sha256([u8; 32]),
    /// An argon2id PHC string, checked at load; `verified` remembers the SHA-256 of the key
    /// that verified against it (until the next reload compiles a new store).
    Phc {
        phc: String,
        verified: OnceLock<[u8; 32]>,
    },
}

impl StoredHash {
    /// Parses `sha256:<64 lowercase hex>` or an argon2id PHC string.
    pub(super) fn parse(text: &str) -> Result<StoredHash, String> {
        if let Some(hex_digits) = text.strip_prefix("sha256:") {
            let lowercase_hex = hex_digits.len() == 64
                && hex_digits
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !lowercase_hex {
                return Err("a sha256 hash must be \"sha256:\" and 64 lowercase hex digits".into());
            }
            let mut digest = [0u8; 32];
            hex::decode_to_slice(hex_digits, &mut digest)
                .map_err(|_| "a sha256 hash must be 64 lowercase hex digits".to_owned())?;
            return Ok(StoredHash::Sha256(digest));
        }
        if text.starts_with('$') {
            let parsed = PasswordHash::new(text)
                .map_err(|e| format!("not a valid PHC password hash string: {e}"))?;
            if parsed.algorithm.as_str() != "argon2id" {
                return Err(format!(
                    "unsupported password hash \"{}\" (only argon2id)",
                    parsed.algorithm.as_str()
                ));
            }
            let params = argon2::Params::try_from(&parsed)
                .map_err(|e| format!("invalid argon2id parameters: {e}"))?;
            if params.m_cost() > MAX_ARGON2_MEMORY_KIB || params.t_cost() > MAX_ARGON2_PASSES {
                return Err(format!(
                    "argon2id cost above the limit (m at most {MAX_ARGON2_MEMORY_KIB} KiB, t at most {MAX_ARGON2_PASSES})"
                ));
            }
            if parsed.hash.is_none() || parsed.salt.is_none() {
                return Err("the argon2id PHC string lacks its salt or hash".into());
            }
            return Ok(StoredHash::Phc {
                phc: text.to_owned(),
                verified: OnceLock::new(),
            });
        }
        Err("hash must be \"sha256:<64 lowercase hex>\" or an argon2id PHC string".into())
    }
}
