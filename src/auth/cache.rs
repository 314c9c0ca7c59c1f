//! The verified-token cache (SPEC §3, after step 8): a repeated token costs no signature
//! check.
//!
//! Keyed by the token itself, hashed with moka's per-process keyed SipHash (std's
//! `RandomState`: one short hash on a hit instead of a SHA-256 of the whole token, issue 19),
//! and found only when the stored token equals the presented one byte for byte: a hash
//! collision, chosen or not, never returns another token's principal. The cost is memory: an
//! entry holds its token (about 1 KB for a typical RS256 access token). Bounded in entries,
//! and no entry outlives the token's `exp` (nor the configured TTL). An entry remembers the
//! generation of the issuer entry that verified it and the digest of the key that did
//! (`Principal::verified_by`). A hit counts only on a route that allows that very issuer
//! entry, under the same rules and key source, while the issuer's current key set still holds
//! that exact key (SPEC §6); the route's scope rules still run on every request.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use std::hash::{BuildHasher, RandomState};

use moka::sync::Cache;
use moka::Expiry;

use super::jwt::Principal;

/// A cached verification.
#[derive(Debug)]
pub struct Verified {
    /// `Issuer::generation` of the entry that verified the token.
    pub issuer_generation: u64,
    /// The caller the token verified as.
    pub principal: Principal,
}

/// The lookup key of a presented token: the token itself (borrowed; copied only on insert).
#[derive(Clone, Copy)]
pub struct TokenKey<'t>(&'t str);

impl std::fmt::Debug for TokenKey<'_> {
    // Never prints the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

/// The cache of verified tokens: bounded in entries, each living until its token's `exp` or the
/// configured TTL, whichever comes first.
pub struct TokenCache<S = RandomState> {
    entries: Cache<Box<str>, Arc<Verified>, S>,
}

struct UntilExpiry {
    ttl: Duration,
}

impl Expiry<Box<str>, Arc<Verified>> for UntilExpiry {
    fn expire_after_create(
        &self,
        _key: &Box<str>,
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
    /// A cache of at most `max_entries` entries, none kept longer than `ttl`.
    pub fn new(max_entries: u64, ttl: Duration) -> TokenCache {
        TokenCache::with_hasher(max_entries, ttl, RandomState::new())
    }

    /// The lookup key of a presented token.
    pub fn key(token: &str) -> TokenKey<'_> {
        TokenKey(token)
    }
}

impl<S: BuildHasher + Clone + Send + Sync + 'static> TokenCache<S> {
    fn with_hasher(max_entries: u64, ttl: Duration, hasher: S) -> TokenCache<S> {
        TokenCache {
            entries: Cache::builder()
                .max_capacity(max_entries)
                .expire_after(UntilExpiry { ttl })
                .build_with_hasher(hasher),
        }
    }

    /// The cached verification of exactly this token, if any and not past `exp` at `now`
    /// (seconds since the epoch).
    pub fn get(&self, key: &TokenKey<'_>, now: u64) -> Option<Arc<Verified>> {
        // The map compares the stored token with `key.0` in full: equal hashes are not enough.
        let hit = self.entries.get(key.0)?;
        // moka's expiry has a coarse clock; `exp` is checked exactly here as well.
        (hit.principal.expires_at > now).then_some(hit)
    }

    /// Stores a verification under its token and returns it, shared.
    pub fn insert(&self, key: TokenKey<'_>, verified: Verified) -> Arc<Verified> {
        let verified = Arc::new(verified);
        self.entries.insert(Box::from(key.0), Arc::clone(&verified));
        verified
    }

    /// The number of entries, after moka's pending evictions have run (for metrics).
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
            let token = format!("token-{i}");
            let key = TokenCache::key(&token);
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

    /// Every token hashes alike: only the full comparison tells them apart.
    #[derive(Clone, Default)]
    struct Colliding;

    impl BuildHasher for Colliding {
        type Hasher = Constant;
        fn build_hasher(&self) -> Constant {
            Constant
        }
    }

    struct Constant;

    impl std::hash::Hasher for Constant {
        fn finish(&self) -> u64 {
            7
        }
        fn write(&mut self, _: &[u8]) {}
    }

    #[test]
    fn a_hash_collision_never_returns_another_tokens_principal() {
        let cache = TokenCache::with_hasher(100, Duration::from_secs(300), Colliding);
        let mut alice = principal(now() + 60);
        alice.subject = Some("alice".into());
        cache.insert(
            TokenCache::key("alice.token.sig"),
            Verified {
                issuer_generation: 1,
                principal: alice,
            },
        );
        for other in ["alice.token.sih", "alice.token.si", "alice.token.sig.", ""] {
            assert!(
                cache.get(&TokenCache::key(other), now()).is_none(),
                "{other:?} got alice's principal"
            );
        }
        let hit = cache.get(&TokenCache::key("alice.token.sig"), now());
        assert_eq!(hit.unwrap().principal.subject.as_deref(), Some("alice"));
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
