//! The verified-token cache (SPEC §3, after step 8): a repeated token costs no signature
//! check.
//!
//! Keyed by the SHA-256 of the token (the token itself is never stored), bounded in entries,
//! and no entry outlives the token's `exp` (nor the configured TTL). An entry remembers the
//! generation of the issuer entry that verified it and the digest of the key that did
//! (`Principal::verified_by`). A hit counts only on a route that allows that very issuer
//! entry, under the same rules and key source, while the issuer's current key set still holds
//! that exact key (SPEC §6); the route's scope rules still run on every request.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::digest;
use moka::sync::Cache;
use moka::Expiry;

use super::jwt::Principal;

/// A cached verification.
#[derive(Debug)]
pub struct Verified {
    /// `Issuer::generation` of the entry that verified the token.
    pub issuer_generation: u64,
    pub principal: Principal,
}

pub type TokenKey = [u8; 32];

pub struct TokenCache {
    entries: Cache<TokenKey, Arc<Verified>>,
}

struct UntilExpiry {
    ttl: Duration,
}

impl Expiry<TokenKey, Arc<Verified>> for UntilExpiry {
    fn expire_after_create(
        &self,
        _key: &TokenKey,
        value: &Arc<Verified>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(lifetime(value.principal.expires_at, self.ttl))
    }
}

/// Time left until `exp` (never negative), capped by `ttl`.
fn lifetime(expires_at: u64, ttl: Duration) -> Duration {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Duration::from_secs(expires_at).saturating_sub(now).min(ttl)
}

impl TokenCache {
    pub fn new(max_entries: u64, ttl: Duration) -> TokenCache {
        TokenCache {
            entries: Cache::builder()
                .max_capacity(max_entries)
                .expire_after(UntilExpiry { ttl })
                .build(),
        }
    }

    pub fn key(token: &str) -> TokenKey {
        let mut key = [0u8; 32];
        key.copy_from_slice(digest::digest(&digest::SHA256, token.as_bytes()).as_ref());
        key
    }

    /// The cached verification, if any and not past `exp` at `now` (seconds since the epoch).
    pub fn get(&self, key: &TokenKey, now: u64) -> Option<Arc<Verified>> {
        let hit = self.entries.get(key)?;
        // moka's expiry has a coarse clock; `exp` is checked exactly here as well.
        (hit.principal.expires_at > now).then_some(hit)
    }

    pub fn insert(&self, key: TokenKey, verified: Verified) -> Arc<Verified> {
        let verified = Arc::new(verified);
        self.entries.insert(key, Arc::clone(&verified));
        verified
    }

    pub fn entry_count(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::jwt::VerifiedBy;
    use crate::auth::keys::{KeySet, Secret};

    /// The key that "verified" the cached test principals.
    fn verified_by() -> VerifiedBy {
        let keys = KeySet::from_hmac(&Secret::new(b"test".to_vec()));
        let key = keys.iter().next().expect("one key");
        VerifiedBy {
            kid: None,
            digest: key.digest(),
        }
    }

    fn principal(expires_at: u64) -> Principal {
        Principal {
            subject: Some("svc".into()),
            issuer: "https://idp/".into(),
            client_id: None,
            scopes: vec![],
            granted: Default::default(),
            headers: vec![],
            expires_at,
            bound_cert_sha256: None,
            verified_by: verified_by(),
            key_id: None,
        }
    }

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[test]
    fn hit_until_exp_and_never_after() {
        let cache = TokenCache::new(100, Duration::from_secs(300));
        let key = TokenCache::key("a.b.c");
        cache.insert(
            key,
            Verified {
                issuer_generation: 1,
                principal: principal(now() + 60),
            },
        );
        assert!(cache.get(&key, now()).is_some());
        assert!(
            cache.get(&key, now() + 61).is_none(),
            "an entry must not outlive exp"
        );
        assert!(cache.get(&TokenCache::key("a.b.d"), now()).is_none());
    }

    #[test]
    fn already_expired_tokens_are_not_served() {
        let cache = TokenCache::new(100, Duration::from_secs(300));
        let key = TokenCache::key("x.y.z");
        cache.insert(
            key,
            Verified {
                issuer_generation: 1,
                principal: principal(now() - 1),
            },
        );
        assert!(cache.get(&key, now()).is_none());
    }

    #[test]
    fn bounded_in_entries() {
        let cache = TokenCache::new(10, Duration::from_secs(300));
        for i in 0..200 {
            let key = TokenCache::key(&format!("token-{i}"));
            cache.insert(
                key,
                Verified {
                    issuer_generation: 1,
                    principal: principal(now() + 60),
                },
            );
        }
        assert!(
            cache.entry_count() <= 10,
            "cache holds {}",
            cache.entry_count()
        );
    }

    #[test]
    fn lifetime_is_capped_by_ttl_and_exp() {
        assert_eq!(
            lifetime(now() + 3600, Duration::from_secs(300)),
            Duration::from_secs(300)
        );
        assert!(lifetime(now() + 10, Duration::from_secs(300)) <= Duration::from_secs(10));
        assert_eq!(lifetime(0, Duration::from_secs(300)), Duration::ZERO);
    }
}
