//! `[[issuers]]` -> [`Issuer`]s: key source (exactly one), token rules, and the key store,
//! shared by entries with the same source and taken over from the previous snapshot when
//! unchanged.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::Uri;
use jsonwebtoken::Algorithm;
use toml::Spanned;

use super::ctx::{duration, strings, Ctx};
use super::raw::{self, ClaimValue};
use super::value::EnvString;
use super::ConfigError;
use crate::auth::jwks::{check_key_url, KeySource, KeyStore, RefreshPolicy};
use crate::auth::jwt::TokenPolicy;
use crate::auth::keys::{algorithm_from_name, KeySet, Secret};
use crate::auth::scopes::{Implications, EVERY_SCOPE};
use crate::snapshot::{Issuer, Snapshot};

const DEFAULT_SCOPE_CLAIMS: &[&str] = &["scope", "scp"];
const DEFAULT_CLIENT_ID_CLAIMS: &[&str] = &["client_id", "azp", "appid", "cid"];
const KEY_SET_ALGORITHMS: &[Algorithm] = &[
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

/// Key URLs are https; plain http only for loopback hosts (SPEC §2). The key store checks the
/// same rule again before every fetch.
fn key_url(url: &str) -> Result<Uri, String> {
    let uri: Uri = url.parse().map_err(|_| format!("invalid URL \"{url}\""))?;
    check_key_url(&uri)
        .map_err(|_| format!("URL \"{url}\" must be https (http only for loopback hosts)"))?;
    Ok(uri)
}

pub(super) fn compile_issuers(
    ctx: &Ctx<'_>,
    raws: &[Spanned<raw::Issuer>],
    previous: Option<&Snapshot>,
) -> Result<Vec<Issuer>, ConfigError> {
    let mut issuers: Vec<Issuer> = Vec::with_capacity(raws.len());
    for (index, spanned) in raws.iter().enumerate() {
        let raw = spanned.get_ref();
        let key = |field: &str| format!("issuers[{index}].{field}");
        let name = raw.name.get_ref().as_str();
        if name.is_empty() {
            return Err(ctx.at(key("name"), &raw.name, "issuer name must be non-empty"));
        }
        if issuers.iter().any(|issuer| issuer.name == name) {
            return Err(ctx.at(
                key("name"),
                &raw.name,
                format!("duplicate issuer name \"{name}\""),
            ));
        }
        let iss = raw.issuer.get_ref().as_str();
        if iss.is_empty() {
            return Err(ctx.at(key("issuer"), &raw.issuer, "issuer must be non-empty"));
        }
        let source = key_source(ctx, &key, spanned)?;
        let is_hmac = matches!(source, KeySource::Hmac(_));
        let algorithms = algorithms(ctx, &key, raw, is_hmac)?;
        let (audiences, allowed_clients) = audiences(ctx, &key, raw)?;
        let scope_claims = claim_names(raw.scope_claims.as_ref(), DEFAULT_SCOPE_CLAIMS);
        let client_id_claims = claim_names(raw.client_id_claims.as_ref(), DEFAULT_CLIENT_ID_CLAIMS);
        let required_claims = required_claims(raw);
        let claim_headers = ctx.claim_headers(&key("claim_headers"), raw.claim_headers.as_ref())?;
        let refresh = refresh_policy(ctx, &key, raw)?;
        let policy = TokenPolicy {
            issuer: iss.to_owned(),
            audiences,
            allowed_clients,
            algorithms,
            scope_claims,
            client_id_claims,
            leeway: duration(&raw.leeway, Duration::from_secs(30)).as_secs(),
            token_types: strings(&raw.token_types),
            required_claims,
            claim_headers,
            require_bound_token: raw.require_bound_tokens,
            max_token_lifetime: raw
                .max_token_lifetime
                .as_ref()
                .map(|lifetime| lifetime.get_ref().0.as_secs()),
            implied_scopes: implied_scopes(ctx, &key("implied_scopes"), raw)?,
        };

        let store = key_store(&issuers, previous, &source, refresh);
        let generation = generation(previous, name, &policy, &store);
        issuers.push(Issuer {
            name: name.to_owned(),
            policy,
            store,
            refresh,
            generation,
        });
    }
    Ok(issuers)
}

/// The entry's key source: exactly one of `jwks_uri`, `discovery = true`, `jwks_file` and
/// `hmac_secret`, with `ca_file` for the fetched ones. A key file is read and must hold a
/// usable key; an HMAC secret must be long and not a placeholder.
fn key_source(
    ctx: &Ctx<'_>,
    key: &dyn Fn(&str) -> String,
    spanned: &Spanned<raw::Issuer>,
) -> Result<KeySource, ConfigError> {
    let raw = spanned.get_ref();
    let name = raw.name.get_ref().as_str();
    let iss = raw.issuer.get_ref().as_str();
    let ca_file = match &raw.ca_file {
        Some(file) => Some(ctx.roots_file(&key("ca_file"), file)?),
        None => None,
    };

    // Exactly one key source.
    let discovery = raw.discovery.as_ref().filter(|d| *d.get_ref());
    let count = [
        raw.jwks_uri.is_some(),
        discovery.is_some(),
        raw.jwks_file.is_some(),
        raw.hmac_secret.is_some(),
    ]
    .into_iter()
    .filter(|set| *set)
    .count();
    if count != 1 {
        return Err(ctx.at(
            key("jwks_uri"),
            spanned,
            format!("issuer \"{name}\" needs exactly one key source of jwks_uri, discovery = true, jwks_file, hmac_secret (found {count})"),
        ));
    }
    if let Some(uri) = &raw.jwks_uri {
        let url = key_url(uri.get_ref().as_str()).map_err(|m| ctx.at(key("jwks_uri"), uri, m))?;
        Ok(KeySource::JwksUri { url, ca_file })
    } else if let Some(flag) = discovery {
        key_url(iss).map_err(|m| {
            ctx.at(
                key("discovery"),
                flag,
                format!("discovery needs an https issuer: {m}"),
            )
        })?;
        Ok(KeySource::Discovery {
            issuer: iss.to_owned(),
            ca_file,
        })
    } else if let Some(file) = &raw.jwks_file {
        jwks_file(ctx, key, file)
    } else if let Some(secret) = &raw.hmac_secret {
        if secret.get_ref().as_str().len() < 32 {
            return Err(ctx.at(
                key("hmac_secret"),
                secret,
                "hmac_secret must be at least 32 bytes",
            ));
        }
        if let Some(problem) = super::secrets::weak_hmac_secret(secret.get_ref().as_str()) {
            return Err(ctx.at(key("hmac_secret"), secret, problem));
        }
        Ok(KeySource::Hmac(Secret::new(
            secret.get_ref().as_str().as_bytes().to_vec(),
        )))
    } else {
        Err(ctx.at(key("jwks_uri"), spanned, "no key source"))
    }
}

/// `jwks_file`: read now, and it must hold at least one usable key.
fn jwks_file(
    ctx: &Ctx<'_>,
    key: &dyn Fn(&str) -> String,
    file: &Spanned<EnvString>,
) -> Result<KeySource, ConfigError> {
    let path = ctx.file(&key("jwks_file"), file)?;
    let bytes = std::fs::read(&path).map_err(|e| {
        ctx.at(
            key("jwks_file"),
            file,
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    let parsed = KeySet::from_jwks(&bytes)
        .map_err(|e| ctx.at(key("jwks_file"), file, format!("{}: {e}", path.display())))?;
    if parsed.keys.is_empty() {
        return Err(ctx.at(
            key("jwks_file"),
            file,
            format!("{}: no usable key", path.display()),
        ));
    }
    Ok(KeySource::File(path))
}

/// `algorithms`: not empty; default HS256 for an HMAC secret, every asymmetric algorithm for
/// key sets.
fn algorithms(
    ctx: &Ctx<'_>,
    key: &dyn Fn(&str) -> String,
    raw: &raw::Issuer,
    is_hmac: bool,
) -> Result<Vec<Algorithm>, ConfigError> {
    Ok(match &raw.algorithms {
        Some(list) => {
            let mut algorithms = Vec::new();
            for value in list.get_ref() {
                let alg = algorithm_from_name(value.as_str()).ok_or_else(|| {
                    ctx.at(
                        key("algorithms"),
                        list,
                        format!("unsupported algorithm \"{}\"", value.as_str()),
                    )
                })?;
                algorithms.push(alg);
            }
            if algorithms.is_empty() {
                return Err(ctx.at(key("algorithms"), list, "must not be empty"));
            }
            algorithms
        }
        None if is_hmac => vec![Algorithm::HS256],
        None => KEY_SET_ALGORITHMS.to_vec(),
    })
}

/// `audiences` and `allowed_clients`: `audiences = []` only with a non-empty
/// `allowed_clients`, so every token stays bound to this deployment.
fn audiences(
    ctx: &Ctx<'_>,
    key: &dyn Fn(&str) -> String,
    raw: &raw::Issuer,
) -> Result<(Vec<String>, Option<Vec<String>>), ConfigError> {
    let audiences = strings(raw.audiences.get_ref());
    let allowed_clients = raw
        .allowed_clients
        .as_ref()
        .map(|list| strings(list.get_ref()));
    if audiences.is_empty() && allowed_clients.as_ref().is_none_or(Vec::is_empty) {
        return Err(ctx.at(
            key("audiences"),
            &raw.audiences,
            "audiences = [] requires a non-empty allowed_clients, so every token stays bound to this deployment",
        ));
    }
    Ok((audiences, allowed_clients))
}

/// A list of claim names, or `defaults` when absent.
fn claim_names(list: Option<&Spanned<Vec<EnvString>>>, defaults: &[&str]) -> Vec<String> {
    list.map_or_else(
        || defaults.iter().map(|s| (*s).to_owned()).collect(),
        |list| strings(list.get_ref()),
    )
}

/// `required_claims`: claim -> the values it may hold.
fn required_claims(raw: &raw::Issuer) -> Vec<(String, Vec<serde_json::Value>)> {
    raw.required_claims
        .as_ref()
        .map(|map| {
            map.get_ref()
                .iter()
                .map(|(claim, value)| {
                    let values = match value {
                        ClaimValue::One(one) => vec![serde_json::Value::String(one.0.clone())],
                        ClaimValue::Many(many) => many
                            .iter()
                            .map(|v| serde_json::Value::String(v.0.clone()))
                            .collect(),
                    };
                    (claim.clone(), values)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The key refresh timing; `min_refresh` must be greater than 0 (it paces every fetch).
fn refresh_policy(
    ctx: &Ctx<'_>,
    key: &dyn Fn(&str) -> String,
    raw: &raw::Issuer,
) -> Result<RefreshPolicy, ConfigError> {
    let refresh = RefreshPolicy {
        refresh_interval: duration(&raw.refresh_interval, Duration::from_secs(600)),
        min_refresh: duration(&raw.min_refresh, Duration::from_secs(30)),
        max_stale: duration(&raw.max_stale, Duration::from_secs(86_400)),
        fetch_timeout: duration(&raw.fetch_timeout, Duration::from_secs(5)),
    };
    if refresh.min_refresh.is_zero() {
        return Err(ctx.err(
            key("min_refresh"),
            raw.min_refresh.as_ref().map(Spanned::span),
            "must be greater than 0",
        ));
    }
    Ok(refresh)
}

/// The key store of an entry: shared with every entry of the same source and refresh timing,
/// also across reloads, so a reload neither drops keys nor refetches them. When only the
/// timing changed, the new store starts with the keys the running one holds (issue: a reload
/// must never lose keys the running config holds).
fn key_store(
    compiled: &[Issuer],
    previous: Option<&Snapshot>,
    source: &KeySource,
    refresh: RefreshPolicy,
) -> Arc<KeyStore> {
    let earlier = previous.map_or(&[][..], |snapshot| &snapshot.issuers[..]);
    let same_source = |issuer: &&Issuer| issuer.store.source() == source;
    if let Some(issuer) = compiled
        .iter()
        .chain(earlier)
        .filter(same_source)
        .find(|issuer| issuer.refresh == refresh)
    {
        return Arc::clone(&issuer.store);
    }
    let store = KeyStore::new(source.clone(), refresh);
    if let Some(running) = earlier.iter().find(same_source) {
        store.carry_keys_from(&running.store);
    }
    store
}

/// Hands out issuer generations: only ever incremented, so a generation is never reused.
static GENERATIONS: AtomicU64 = AtomicU64::new(1);

/// The generation of an issuer entry, which cached verifications are tied to. It stays the
/// same across a reload only when the entry keeps its name, its token rules and its key
/// source; a changed rule or a replaced key source ends every cached verification made under
/// the old one (SPEC §6). Keys removed within one source are caught per key, by the cache's
/// key digest.
///
/// A counter, never an address or a hash: an address is reused once the old store is freed
/// (a retired secret came back that way), and a hash can collide.
fn generation(
    previous: Option<&Snapshot>,
    name: &str,
    policy: &TokenPolicy,
    store: &Arc<KeyStore>,
) -> u64 {
    let unchanged = previous
        .and_then(|snapshot| snapshot.issuer_named(name))
        .filter(|old| old.policy == *policy && old.store.source() == store.source());
    match unchanged {
        Some(old) => old.generation,
        None => GENERATIONS.fetch_add(1, Ordering::Relaxed),
    }
}

/// `implied_scopes`: scope -> scopes it implies. Names are literal scopes (no whitespace, not
/// empty); `"*"` is allowed only as an implied value, where it means every scope.
fn implied_scopes(
    ctx: &Ctx<'_>,
    key: &str,
    raw: &raw::Issuer,
) -> Result<Implications, ConfigError> {
    let Some(map) = &raw.implied_scopes else {
        return Ok(Implications::default());
    };
    let literal = |scope: &str| !scope.is_empty() && !scope.contains(char::is_whitespace);
    let mut direct = std::collections::BTreeMap::new();
    for (scope, implied) in map.get_ref() {
        if !literal(scope) || scope == EVERY_SCOPE {
            return Err(ctx.at(
                key,
                map,
                format!("\"{scope}\" is not a scope name (\"*\" may only be implied)"),
            ));
        }
        let implied = strings(implied);
        if let Some(bad) = implied.iter().find(|value| !literal(value)) {
            return Err(ctx.at(
                key,
                map,
                format!("\"{scope}\" implies \"{bad}\", which is not a scope name"),
            ));
        }
        direct.insert(scope.clone(), implied);
    }
    Ok(Implications::new(&direct))
}
