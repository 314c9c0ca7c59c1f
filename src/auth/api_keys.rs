//! API keys (SPEC §7.1): the compiled key store of one `[[api_keys]]` source and the lookup of a
//! presented key in it. It sits at SPEC §3 step 6, beside JWT verification: the pipeline picks
//! the credential (bearer by shape, or the source's header) and hands a key here; what comes
//! back is the same [`Verified`] a token yields, so scopes, identity headers and the access log
//! need no second path.
//!
//! This module does not read the key file (`config::api_keys` does, with line-numbered errors)
//! or choose between a key and a token (`pipeline`).
//!
//! # Stored form
//! Keys are never stored, only hashes of the exact key string:
//! - `sha256:<64 lowercase hex>`: for high-entropy keys (what `authgate apikey new` makes). The
//!   presented key is hashed once and looked up by its digest.
//! - an argon2id PHC string (`$argon2id$v=19$m=...,t=...,p=...$<salt>$<hash>`): for keys of low
//!   entropy that must resist offline guessing if the key file leaks. A salted hash cannot be
//!   looked up by digest, and trying every entry would cost one argon2 run per entry and
//!   request, so such a key must name its entry: it is presented as `agk_<id>_<secret>`, and
//!   only the entry with that `id` is verified (one argon2 run, on a blocking thread). A key
//!   verified once is remembered by its SHA-256 digest until the next reload, so a client
//!   costs one argon2 run per reload, not per request; failed attempts are never remembered.
//!
//! The parsing of a stored hash (and its cost limits) is `api_keys/hash.rs`, the key format
//! and new keys `api_keys/format.rs`; both were moved out to keep this file under ~500 lines.
//!
//! # Key format
//! `agk_<id>_<secret>` with `<secret>` 32 random bytes in base64url (what `authgate apikey new`
//! prints): the prefix lets leaked-secret scanners recognize the key and the id names it
//! without revealing anything. sha256 entries accept any key string without `.`, spaces or
//! control characters (keys from another system keep working); PHC entries need the format.
//!
//! # Timing
//! The lookup is constant-time with respect to the secret: the presented key is hashed first,
//! the map is searched by that digest (its timing depends on a one-way function of the key,
//! never on how many leading bytes of a stored secret match), and the match is confirmed with
//! a constant-time comparison. argon2 verification compares in constant time itself.
//!
//! # Refusals
//! Unknown, expired and disabled keys are all 401 `invalid_token`; the description names the
//! reason, never the key. The key's `id` is the only thing about it that is logged.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, OnceLock};

use argon2::password_hash::PasswordHash;
use argon2::{Argon2, PasswordVerifier};
use aws_lc_rs::constant_time;
use http::{HeaderName, HeaderValue};
use serde_json::{Map, Value};

mod format;
mod hash;

pub use self::format::{generate, named_id, new_entry, sha256, sha256_hash, valid_id};
use self::hash::StoredHash;
use super::cache::Verified;
use super::jwt::{header_value, render_claim, Principal, TokenError, VerifiedBy};
use super::keys::KeyDigest;

/// The prefix of keys made by `authgate apikey new` (and required for PHC entries).
pub const KEY_PREFIX: &str = "agk_";
/// Longest key id.
pub const MAX_ID_LEN: usize = 64;
/// Longer presented values are refused unhashed (real keys are under 100 bytes).
pub const MAX_KEY_BYTES: usize = 1024;
/// Largest argon2id memory cost accepted in a stored hash, KiB (64 MiB; the argon2 default is
/// 19 MiB): one verification must not be able to exhaust the host.
pub const MAX_ARGON2_MEMORY_KIB: u32 = 64 * 1024;
/// Largest argon2id time cost (passes) accepted in a stored hash.
pub const MAX_ARGON2_PASSES: u32 = 10;
/// `Verified::issuer_generation` of an API key: no issuer generation is ever 0, and API key
/// verifications are never put in the token cache.
pub const API_KEY_GENERATION: u64 = 0;

/// Why a presented API key was refused: 401 invalid_token. `as_str` is the metrics reason.
/// A known key's id travels along for the access log (`key_id`), never to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiKeyError {
    /// No key of the route's sources has this value.
    Unknown,
    /// The key's `expires` has passed.
    Expired {
        /// The key's `id`.
        key_id: Box<str>,
    },
    /// The key is `disabled = true`.
    Disabled {
        /// The key's `id`.
        key_id: Box<str>,
    },
    /// A keys-only route got a bearer value shaped like a JWT (it has a `.`).
    NotAnApiKey,
}

impl ApiKeyError {
    /// The bounded, snake_case metrics reason.
    pub fn as_str(&self) -> &'static str {
        match self {
            ApiKeyError::Unknown => "api_key_unknown",
            ApiKeyError::Expired { .. } => "api_key_expired",
            ApiKeyError::Disabled { .. } => "api_key_disabled",
            ApiKeyError::NotAnApiKey => "api_key_expected",
        }
    }

    /// `error_description` text: the reason, never the key; no `"` or `\`.
    pub fn description(&self) -> &'static str {
        match self {
            ApiKeyError::Unknown => "the API key is not known",
            ApiKeyError::Expired { .. } => "the API key has expired",
            ApiKeyError::Disabled { .. } => "the API key is disabled",
            ApiKeyError::NotAnApiKey => "this route accepts only API keys",
        }
    }

    /// The id of the refused key, when the key is known.
    pub fn key_id(&self) -> Option<&str> {
        match self {
            ApiKeyError::Expired { key_id } | ApiKeyError::Disabled { key_id } => Some(key_id),
            ApiKeyError::Unknown | ApiKeyError::NotAnApiKey => None,
        }
    }
}

/// Where a source's keys are read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyHeader {
    /// `Authorization: Bearer <key>`, told apart from a JWT by shape (no `.`).
    Authorization,
    /// The whole value of this header (e.g. `X-API-Key`); Authorization is not read for keys.
    Named(HeaderName),
}

/// One stored key: its rules and the identity it grants, rendered once at load.
pub struct ApiKey {
    /// Unique in its source; logged and forwarded as `X-Auth-Key-Id`, never the key itself.
    pub id: String,
    hash: StoredHash,
    /// Seconds since the epoch; `None`: never.
    pub expires_at: Option<u64>,
    /// True: the key is refused (403 `api_key_disabled`).
    pub disabled: bool,
    /// What a request with this key is allowed as; `principal.key_id` is `id`.
    pub verified: Arc<Verified>,
}

impl fmt::Debug for ApiKey {
    // The hash is not a secret, but it is not logged either: only the id identifies a key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("id", &self.id)
            .field("expires_at", &self.expires_at)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

/// What one key entry says, before its hash is parsed.
pub struct KeySpec<'a> {
    /// Unique in the file; `[A-Za-z0-9-]`, at most 64 characters.
    pub id: &'a str,
    /// `sha256:<64 lowercase hex>` or an argon2id PHC string.
    pub hash: &'a str,
    /// `X-Auth-Subject` and `X-Auth-Client-Id`.
    pub client_id: &'a str,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// Claims for the source's `claim_headers`.
    pub claims: Map<String, Value>,
    /// Seconds since the epoch after which the key is refused; `None`: never.
    pub expires_at: Option<u64>,
    /// True: the key is refused.
    pub disabled: bool,
}

/// Why a key entry cannot be compiled (the config module adds file and line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyEntryError {
    /// The `id` is not a valid key id (the message says why).
    Id(String),
    /// The `hash` is neither a sha256 digest nor an argon2id PHC string (the message says why).
    Hash(String),
    /// A value that would go upstream cannot be a header value.
    Header(&'static str),
}

impl ApiKey {
    /// Compiles one entry of source `source`, rendering the identity headers it grants.
    pub fn new(
        source: &str,
        claim_headers: &[(HeaderName, String)],
        spec: KeySpec<'_>,
    ) -> Result<ApiKey, KeyEntryError> {
        if !valid_id(spec.id) {
            return Err(KeyEntryError::Id(format!(
                "id \"{}\" must be 1 to {MAX_ID_LEN} characters of A-Z a-z 0-9 -",
                spec.id.escape_default()
            )));
        }
        let hash = StoredHash::parse(spec.hash).map_err(KeyEntryError::Hash)?;
        let issuer = format!("apikey:{source}");
        let header = |what: &'static str, text: &str| {
            header_value(text).map_err(|_: TokenError| KeyEntryError::Header(what))
        };
        if spec.scopes.iter().any(|s| s.is_empty() || s.contains(' ')) {
            return Err(KeyEntryError::Header(
                "scopes (each non-empty, without spaces)",
            ));
        }
        let mut headers = vec![
            (
                HeaderName::from_static("x-auth-subject"),
                header("client_id", spec.client_id)?,
            ),
            (
                HeaderName::from_static("x-auth-issuer"),
                header("name of the source", &issuer)?,
            ),
            (
                HeaderName::from_static("x-auth-client-id"),
                header("client_id", spec.client_id)?,
            ),
        ];
        if !spec.scopes.is_empty() {
            headers.push((
                HeaderName::from_static("x-auth-scopes"),
                header("scopes", &spec.scopes.join(" "))?,
            ));
        }
        headers.push((
            crate::header_names::X_AUTH_KEY_ID,
            HeaderValue::from_str(spec.id).map_err(|_| KeyEntryError::Header("id"))?,
        ));
        for (name, claim) in claim_headers {
            if let Some(text) = spec.claims.get(claim).and_then(render_claim) {
                headers.push((name.clone(), header("claims", &text)?));
            }
        }
        let principal = Principal {
            subject: Some(spec.client_id.to_owned()),
            issuer: issuer.clone(),
            client_id: Some(spec.client_id.to_owned()),
            granted: super::scopes::Granted::exactly(&spec.scopes),
            scopes: spec.scopes,
            headers,
            expires_at: spec.expires_at.unwrap_or(u64::MAX),
            bound_cert_sha256: None,
            verified_by: VerifiedBy {
                kid: Some(spec.id.into()),
                digest: KeyDigest::of(&[b"apikey", issuer.as_bytes(), spec.hash.as_bytes()]),
            },
            key_id: Some(spec.id.to_owned()),
        };
        Ok(ApiKey {
            id: spec.id.to_owned(),
            hash,
            expires_at: spec.expires_at,
            disabled: spec.disabled,
            verified: Arc::new(Verified {
                issuer_generation: API_KEY_GENERATION,
                principal,
            }),
        })
    }

    /// Whether this entry stores a salted password hash (argon2id).
    pub fn is_password_hash(&self) -> bool {
        matches!(self.hash, StoredHash::Phc { .. })
    }
}

/// One compiled `[[api_keys]]` source: its keys, indexed by digest and by id.
pub struct ApiKeySource {
    /// The source's `name` (`X-Auth-Issuer: apikey:<name>`).
    pub name: String,
    /// Where the source's keys are presented.
    pub header: KeyHeader,
    keys: Vec<ApiKey>,
    by_digest: HashMap<[u8; 32], usize>,
    by_id: HashMap<String, usize>,
}

impl fmt::Debug for ApiKeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeySource")
            .field("name", &self.name)
            .field("header", &self.header)
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

/// A duplicate found while building a source: the index of the later entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Duplicate {
    /// Two entries with the same `id`.
    Id(usize),
    /// Two entries with the same hash.
    Hash(usize),
}

/// Where a presented key led.
enum Found {
    Key(usize),
    /// The PHC entry the key names, still to be verified.
    Unverified(usize),
    Nothing,
}

impl ApiKeySource {
    /// Indexes `keys`; a repeated id or hash is refused (two entries for one key would make
    /// its identity depend on order).
    pub fn new(name: &str, header: KeyHeader, keys: Vec<ApiKey>) -> Result<Self, Duplicate> {
        let mut by_digest = HashMap::new();
        let mut by_id = HashMap::new();
        let mut phcs: Vec<&str> = Vec::new();
        for (index, key) in keys.iter().enumerate() {
            if by_id.insert(key.id.clone(), index).is_some() {
                return Err(Duplicate::Id(index));
            }
            let repeated = match &key.hash {
                StoredHash::Sha256(digest) => by_digest.insert(*digest, index).is_some(),
                StoredHash::Phc { phc, .. } => {
                    let seen = phcs.contains(&phc.as_str());
                    phcs.push(phc);
                    seen
                }
            };
            if repeated {
                return Err(Duplicate::Hash(index));
            }
        }
        Ok(ApiKeySource {
            name: name.to_owned(),
            header,
            keys,
            by_digest,
            by_id,
        })
    }

    /// Every key of the source, in file order.
    pub fn keys(&self) -> &[ApiKey] {
        &self.keys
    }

    /// Keys neither disabled nor expired at `now` (the `authgate_api_keys` gauge).
    pub fn active(&self, now: u64) -> usize {
        self.keys
            .iter()
            .filter(|key| !key.disabled && key.expires_at.is_none_or(|at| at > now))
            .count()
    }

    fn find(&self, digest: &[u8; 32], presented: &str) -> Found {
        if let Some(&index) = self.by_digest.get(digest) {
            if let StoredHash::Sha256(stored) = &self.keys[index].hash {
                if constant_time::verify_slices_are_equal(stored, digest).is_ok() {
                    return Found::Key(index);
                }
            }
        }
        let Some(&index) = named_id(presented).and_then(|id| self.by_id.get(id)) else {
            return Found::Nothing;
        };
        match &self.keys[index].hash {
            StoredHash::Phc { verified, .. } => match verified.get() {
                Some(known) if constant_time::verify_slices_are_equal(known, digest).is_ok() => {
                    Found::Key(index)
                }
                _ => Found::Unverified(index),
            },
            // The named entry is a sha256 one and the digest did not match it.
            StoredHash::Sha256(_) => Found::Nothing,
        }
    }

    /// Verifies `presented` against PHC entry `index` (blocking: one argon2 run).
    fn verify_password(&self, index: usize, presented: &str, digest: [u8; 32]) -> bool {
        let StoredHash::Phc { phc, verified } = &self.keys[index].hash else {
            return false;
        };
        let Ok(parsed) = PasswordHash::new(phc) else {
            return false;
        };
        let ok = Argon2::default()
            .verify_password(presented.as_bytes(), &parsed)
            .is_ok();
        if ok {
            // A concurrent verification of the same key stored the same digest.
            let _ = verified.set(digest);
        }
        ok
    }
}

/// Bounds concurrent argon2 verifications to the number of cores.
fn argon2_slots() -> &'static tokio::sync::Semaphore {
    static SLOTS: OnceLock<tokio::sync::Semaphore> = OnceLock::new();
    SLOTS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        tokio::sync::Semaphore::new(cores)
    })
}

/// Looks `presented` up in `sources`, in order; the first source holding it decides. `now` is
/// seconds since the epoch.
pub async fn authenticate(
    sources: &[Arc<ApiKeySource>],
    presented: &str,
    now: u64,
) -> Result<(Arc<Verified>, String), ApiKeyError> {
    if presented.len() > MAX_KEY_BYTES {
        return Err(ApiKeyError::Unknown);
    }
    let digest = sha256(presented);
    for source in sources {
        let index = match source.find(&digest, presented) {
            Found::Key(index) => index,
            Found::Unverified(index) => {
                // At most one argon2 run per core at a time: guesses at a PHC key's id cannot
                // pile up blocking threads (and their memory); requests beyond wait here.
                let Ok(_slot) = argon2_slots().acquire().await else {
                    return Err(ApiKeyError::Unknown);
                };
                let source = Arc::clone(source);
                let key = presented.to_owned();
                let verified = tokio::task::spawn_blocking(move || {
                    source.verify_password(index, &key, digest)
                })
                .await
                .unwrap_or(false);
                if !verified {
                    continue;
                }
                index
            }
            Found::Nothing => continue,
        };
        let key = &source.keys[index];
        if key.disabled {
            return Err(ApiKeyError::Disabled {
                key_id: key.id.as_str().into(),
            });
        }
        if key.expires_at.is_some_and(|at| at <= now) {
            return Err(ApiKeyError::Expired {
                key_id: key.id.as_str().into(),
            });
        }
        return Ok((Arc::clone(&key.verified), source.name.clone()));
    }
    Err(ApiKeyError::Unknown)
}

#[cfg(test)]
#[path = "api_keys_tests.rs"]
mod tests;
