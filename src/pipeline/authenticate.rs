//! Step 6 of [`decide`](super::decide) (SPEC §3, §7.1): which credential the request carries,
//! then the bearer token (cache, then verification under the route's issuers) or the API key,
//! never both. It answers who the caller is, or the `Deny` that says why not; scopes are the
//! caller's to check.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::request::Parts;
use http::HeaderName;

use super::{ConnInfo, Step, Trace};
use crate::auth::api_keys::{self, ApiKeyError, ApiKeySource, KeyHeader};
use crate::auth::bearer::{self, BearerError};
use crate::auth::cache::{TokenCache, Verified};
use crate::auth::credential::{self, Credential, CredentialError};
use crate::auth::jwt::{self, TokenError, Unverified};
use crate::deny::{Deny, InvalidRequest};
use crate::snapshot::{Route, Snapshot};

fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Step 6: bearer token, cache, then verification under the route's issuers.
async fn authenticate(
    snapshot: &Snapshot,
    route: &Route,
    parts: &Parts,
    conn: &ConnInfo,
    trace: &mut impl Trace,
) -> Result<Arc<Verified>, Deny> {
    let token = match bearer::extract(&parts.headers) {
        Ok(token) => token,
        Err(BearerError::Missing) => {
            trace.step(Step::Token, false, || "no bearer token".into());
            return Err(Deny::MissingToken);
        }
        Err(BearerError::Malformed) => {
            trace.step(Step::Token, false, || {
                "malformed Authorization header".into()
            });
            return Err(Deny::InvalidRequest(InvalidRequest::Authorization));
        }
    };
    let now = now_seconds();
    let cert = conn.client_cert.as_ref().map(|cert| &cert.sha256);
    let key = TokenCache::key(token);

    // A cached verification counts only for an issuer entry this route allows, under the same
    // rules and key source (generation), while that issuer's current key set still holds the
    // exact key that verified it (SPEC §6: removing a key revokes what it signed), and a
    // certificate-bound token only on a connection with that certificate. Scopes are checked
    // by the caller on every request.
    if let Some(hit) = snapshot.token_cache.get(&key, now) {
        // An issuer whose keys are gone (stale past max_stale) counts as having no key set,
        // also for tokens it verified earlier.
        let allowed_here = route.issuers.iter().any(|&index| {
            let issuer = &snapshot.issuers[index];
            issuer.generation == hit.issuer_generation
                && issuer
                    .store
                    .keys()
                    .is_some_and(|keys| hit.principal.verified_by.still_in(&keys))
        });
        let binding_holds = hit
            .principal
            .bound_cert_sha256
            .is_none_or(|bound| Some(&bound) == cert);
        if allowed_here && binding_holds {
            snapshot.metrics.token_cache_hits.inc();
            trace.step(Step::Token, true, || "valid (cached verification)".into());
            return Ok(hit);
        }
    }
    snapshot.metrics.token_cache_misses.inc();

    let unverified = Unverified::decode(token).map_err(|error| {
        trace.step(Step::Token, false, || error.description().into());
        Deny::InvalidToken(error)
    })?;
    let iss = unverified.issuer();
    // Collected (not a lazy iterator) so no closure is held across the refresh await below.
    let candidates: Vec<&crate::snapshot::Issuer> = route
        .issuers
        .iter()
        .map(|&index| &snapshot.issuers[index])
        .filter(|issuer| Some(issuer.policy.issuer.as_str()) == iss)
        .collect();
    if candidates.is_empty() {
        trace.step(Step::Token, false, || {
            "the token's issuer is not allowed on this route".into()
        });
        return Err(Deny::InvalidToken(TokenError::UnknownIssuer));
    }

    // Several issuer entries may share one `iss` (one per audience or tenant): the first entry
    // under which the token verifies wins; otherwise the first failure is reported.
    let mut first_error = None;
    let mut without_keys = Vec::new();
    for issuer in candidates {
        let Some(keys) = issuer.store.keys() else {
            without_keys.push(issuer.name.as_str());
            continue;
        };
        let mut result = jwt::verify(&unverified, &issuer.policy, &keys, now, cert);
        if result.as_ref().err() == Some(&TokenError::UnknownKey) {
            // An unknown kid may be a key the provider just rotated in: one coalesced refresh.
            if let Some(fresh) = issuer.store.refresh_for_unknown_kid().await {
                result = jwt::verify(&unverified, &issuer.policy, &fresh, now, cert);
            }
        }
        match result {
            Ok(principal) => {
                trace.step(Step::Token, true, || {
                    format!("valid for issuer entry {}", issuer.name)
                });
                let verified = Verified {
                    issuer_generation: issuer.generation,
                    principal,
                };
                return Ok(snapshot.token_cache.insert(key, verified));
            }
            Err(error) => {
                trace.step(Step::Token, false, || {
                    format!("issuer entry {}: {}", issuer.name, error.description())
                });
                first_error.get_or_insert(error);
            }
        }
    }
    match first_error {
        // Only when every candidate judged the token is a refusal final: an entry without keys
        // might have accepted it, and clients must not throw away good tokens (503, not 401).
        Some(error) if without_keys.is_empty() => Err(Deny::InvalidToken(error)),
        Some(_) | None => {
            trace.step(Step::Keys, false, || {
                format!("no usable key set for {}", without_keys.join(", "))
            });
            Err(Deny::Unavailable)
        }
    }
}

/// Step 6 with API keys: picks the credential by where it is and its shape (auth::credential),
/// then judges it as a key or as a token, never both. Routes without `api_keys` go straight
/// to [`authenticate`].
pub(super) async fn authenticate_credential(
    snapshot: &Snapshot,
    route: &Route,
    parts: &Parts,
    conn: &ConnInfo,
    trace: &mut impl Trace,
) -> Result<Arc<Verified>, Deny> {
    let key_headers = route
        .api_keys
        .iter()
        .map(|&index| &snapshot.api_keys[index].header);
    let takes_tokens = !route.issuers.is_empty();
    let chosen =
        credential::choose(&parts.headers, key_headers, takes_tokens).map_err(|error| {
            let deny = match error {
                CredentialError::Missing => Deny::MissingToken,
                CredentialError::MalformedAuthorization => {
                    Deny::InvalidRequest(InvalidRequest::Authorization)
                }
                CredentialError::MalformedKeyHeader => {
                    Deny::InvalidRequest(InvalidRequest::ApiKeyHeader)
                }
                CredentialError::TwoCredentials => {
                    Deny::InvalidRequest(InvalidRequest::TwoCredentials)
                }
                CredentialError::NotAnApiKey => Deny::InvalidApiKey(ApiKeyError::NotAnApiKey),
            };
            trace.step(Step::Credential, false, || deny.description().into());
            deny
        })?;
    match chosen {
        Credential::Token => authenticate(snapshot, route, parts, conn, trace).await,
        Credential::Key { key, header } => {
            authenticate_api_key(snapshot, route, key, header, trace).await
        }
    }
}

/// Step 6 for an API key: looked up in the route's sources that read where it came from.
/// Not put in the token cache: the lookup is one SHA-256 and a map probe (argon2id entries
/// remember their verified digest themselves).
async fn authenticate_api_key(
    snapshot: &Snapshot,
    route: &Route,
    key: &str,
    header: Option<&HeaderName>,
    trace: &mut impl Trace,
) -> Result<Arc<Verified>, Deny> {
    let sources: Vec<Arc<ApiKeySource>> = route
        .api_keys
        .iter()
        .map(|&index| &snapshot.api_keys[index])
        .filter(|source| match (&source.header, header) {
            (KeyHeader::Authorization, None) => true,
            (KeyHeader::Named(name), Some(presented)) => name == presented,
            (KeyHeader::Authorization, Some(_)) | (KeyHeader::Named(_), None) => false,
        })
        .cloned()
        .collect();
    match api_keys::authenticate(&sources, key, now_seconds()).await {
        Ok((verified, source)) => {
            trace.step(Step::ApiKey, true, || {
                let id = verified.principal.key_id.as_deref().unwrap_or_default();
                format!("valid API key, id {id}, source {source}")
            });
            Ok(verified)
        }
        Err(error) => {
            trace.step(Step::ApiKey, false, || error.description().into());
            Err(Deny::InvalidApiKey(error))
        }
    }
}
