//! The API key format (SPEC §7.1): `agk_<id>_<secret>`, key ids, the SHA-256 digest a key is
//! stored and found by, and new keys with their `[[keys]]` entry (`authgate apikey new`).
//! It never keeps or logs a key: a new key goes to the caller once, its file holds the hash.

use aws_lc_rs::{digest, rand};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use super::{KEY_PREFIX, MAX_ID_LEN};

/// A key id: 1 to 64 of `A-Z a-z 0-9 -` (no `_`, so `agk_<id>_<secret>` splits uniquely; no
/// `.`, so a key is never shaped like a JWT).
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The id named by a key of the form `agk_<id>_<secret>`.
pub fn named_id(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(KEY_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    (valid_id(id) && !secret.is_empty()).then_some(id)
}

/// SHA-256 of the exact key string.
pub fn sha256(key: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, key.as_bytes()).as_ref());
    out
}

/// The stored form of a high-entropy key: `sha256:<64 lowercase hex>`.
pub fn sha256_hash(key: &str) -> String {
    format!("sha256:{}", hex::encode(sha256(key)))
}

/// A new key `agk_<id>_<secret>`, 32 bytes from the system CSPRNG.
pub fn generate(id: &str) -> Result<String, aws_lc_rs::error::Unspecified> {
    let mut secret = [0u8; 32];
    rand::fill(&mut secret)?;
    Ok(format!(
        "{KEY_PREFIX}{id}_{}",
        URL_SAFE_NO_PAD.encode(secret)
    ))
}

/// `authgate apikey new`: a new key and the `[[keys]]` entry holding only its hash (TOML).
pub fn new_entry(id: &str, client_id: &str, scopes: &[String]) -> Result<(String, String), String> {
    #[derive(serde::Serialize)]
    struct Entry<'a> {
        id: &'a str,
        hash: String,
        client_id: &'a str,
        scopes: &'a [String],
    }
    #[derive(serde::Serialize)]
    struct File<'a> {
        keys: [Entry<'a>; 1],
    }
    if !valid_id(id) {
        return Err(format!(
            "invalid --id \"{}\": 1 to {MAX_ID_LEN} characters of A-Z a-z 0-9 -",
            id.escape_default()
        ));
    }
    if client_id.is_empty() {
        return Err("--client-id must be non-empty".into());
    }
    if let Some(bad) = scopes
        .iter()
        .find(|s| s.is_empty() || s.contains(char::is_whitespace))
    {
        return Err(format!("invalid scope \"{}\"", bad.escape_default()));
    }
    let key = generate(id).map_err(|_| "the system random generator failed".to_owned())?;
    let file = File {
        keys: [Entry {
            id,
            hash: sha256_hash(&key),
            client_id,
            scopes,
        }],
    };
    let entry = toml::to_string(&file).map_err(|e| format!("cannot render the entry: {e}"))?;
    Ok((key, entry))
}
