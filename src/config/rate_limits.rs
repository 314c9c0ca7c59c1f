//! `[[rate_limits]]`, `[rate_limit_store]` and the routes' `rate_limits` (SPEC §7.4) ->
//! [`Policy`] values. A policy whose spec is unchanged keeps its local state across reloads,
//! and unchanged store settings keep the store (and its Redis connection), the way key stores
//! survive in `issuers`: a SIGHUP must not hand every client a fresh burst.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use toml::Spanned;

use super::ctx::{duration, Ctx};
use super::raw;
use super::ConfigError;
use crate::metrics::Metrics;
use crate::ratelimit::store::{Mode, OnStoreError, Store, StoreSettings};
use crate::ratelimit::{KeyPart, LocalLimiter, Policy, PolicySpec, Window};
use crate::snapshot::Snapshot;

type Compiled = (Vec<Policy>, Option<Arc<Store>>);

pub(super) fn compile_rate_limits(
    ctx: &Ctx<'_>,
    config: &raw::Config,
    previous: Option<&Snapshot>,
    metrics: &Metrics,
) -> Result<Compiled, ConfigError> {
    let store = match &config.rate_limit_store {
        Some(raw) => Some(compile_store(ctx, raw, previous, metrics)?),
        None => None,
    };
    let mut policies: Vec<Policy> = Vec::with_capacity(config.rate_limits.len());
    for (index, spanned) in config.rate_limits.iter().enumerate() {
        let raw = spanned.get_ref();
        let key = |field: &str| format!("rate_limits[{index}].{field}");
        let spec = compile_spec(ctx, &key, raw)?;
        if policies.iter().any(|policy| policy.spec.name == spec.name) {
            return Err(ctx.at(
                key("name"),
                &raw.name,
                format!("duplicate rate limit name \"{}\"", spec.name),
            ));
        }
        let local = previous
            .into_iter()
            .flat_map(|previous| previous.rate_limits.iter())
            .find(|policy| policy.spec == spec)
            .map_or_else(
                || Arc::new(LocalLimiter::new(&spec)),
                |policy| Arc::clone(&policy.local),
            );
        let policy_header = HeaderValue::from_str(&spec.policy_item())
            .map_err(|_| ctx.at(key("name"), &raw.name, "invalid name"))?;
        policies.push(Policy {
            metrics: metrics.rate_limit_policy(&spec.name),
            spec,
            local,
            store: store.clone(),
            policy_header,
        });
    }
    Ok((policies, store))
}

fn compile_spec(
    ctx: &Ctx<'_>,
    key: &dyn Fn(&str) -> String,
    raw: &raw::RateLimit,
) -> Result<PolicySpec, ConfigError> {
    let name = raw.name.get_ref().as_str();
    // The name is a structured-field string in the headers and a Prometheus label.
    let printable = name
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\');
    if name.is_empty() || !printable {
        return Err(ctx.at(
            key("name"),
            &raw.name,
            "must be non-empty printable ASCII without quotes or backslashes",
        ));
    }
    let parts: Vec<&str> = match raw.key.get_ref() {
        raw::RateLimitKey::One(one) => vec![one.as_str()],
        raw::RateLimitKey::Many(many) => many.iter().map(|part| part.as_str()).collect(),
    };
    let mut parts_parsed = Vec::with_capacity(parts.len());
    for part in parts {
        let parsed = KeyPart::from_name(part).ok_or_else(|| {
            ctx.at(
                key("key"),
                &raw.key,
                format!(
                    "\"{part}\" is not one of client_id, subject, api_key, client_address, route"
                ),
            )
        })?;
        if parts_parsed.contains(&parsed) {
            return Err(ctx.at(key("key"), &raw.key, format!("\"{part}\" is listed twice")));
        }
        parts_parsed.push(parsed);
    }
    if parts_parsed.is_empty() {
        return Err(ctx.at(key("key"), &raw.key, "must name at least one key part"));
    }
    let rate = raw.rate.get_ref().as_str();
    let bad_rate = || {
        ctx.at(
            key("rate"),
            &raw.rate,
            format!("\"{rate}\" is not N/s, N/m or N/h with N a whole number from 1"),
        )
    };
    let (count, window) = rate.split_once('/').ok_or_else(bad_rate)?;
    let window = match window {
        "s" => Window::Second,
        "m" => Window::Minute,
        "h" => Window::Hour,
        _ => return Err(bad_rate()),
    };
    let count = count
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| count.parse::<u32>().ok())
        .flatten()
        .and_then(NonZeroU32::new)
        .ok_or_else(bad_rate)?;
    let burst = match &raw.burst {
        None => count,
        Some(burst) => u32::try_from(*burst.get_ref())
            .ok()
            .and_then(NonZeroU32::new)
            .ok_or_else(|| ctx.at(key("burst"), burst, "must be from 1 to 4294967295"))?,
    };
    Ok(PolicySpec {
        name: name.to_owned(),
        key: parts_parsed,
        count,
        window,
        burst,
    })
}

fn compile_store(
    ctx: &Ctx<'_>,
    spanned: &Spanned<raw::RateLimitStore>,
    previous: Option<&Snapshot>,
    metrics: &Metrics,
) -> Result<Arc<Store>, ConfigError> {
    let raw = spanned.get_ref();
    let url = raw.redis.get_ref().as_str();
    // Never echo the URL: it may hold a password.
    let scheme_ok = url.starts_with("redis://") || url.starts_with("rediss://");
    if !scheme_ok {
        return Err(ctx.at(
            "rate_limit_store.redis",
            &raw.redis,
            "must be a redis:// or rediss:// URL",
        ));
    }
    let mode = match raw.mode.as_ref().map(|mode| mode.get_ref().as_str()) {
        None | Some("exact") => Mode::Exact,
        Some("approximate") => Mode::Approximate,
        Some(other) => {
            return Err(ctx.err(
                "rate_limit_store.mode",
                raw.mode.as_ref().map(Spanned::span),
                format!("\"{other}\" is not one of exact, approximate"),
            ))
        }
    };
    let on_store_error = match raw.on_store_error.as_ref().map(|v| v.get_ref().as_str()) {
        None | Some("local") => OnStoreError::Local,
        Some("allow") => OnStoreError::Allow,
        Some("deny") => OnStoreError::Deny,
        Some(other) => {
            return Err(ctx.err(
                "rate_limit_store.on_store_error",
                raw.on_store_error.as_ref().map(Spanned::span),
                format!("\"{other}\" is not one of local, allow, deny"),
            ))
        }
    };
    for (key, value) in [
        ("rate_limit_store.sync_interval", &raw.sync_interval),
        ("rate_limit_store.timeout", &raw.timeout),
    ] {
        if let Some(value) = value {
            if value.get_ref().0.is_zero() {
                return Err(ctx.at(key, value, "must be greater than 0"));
            }
        }
    }
    let ca_pem = store_ca(ctx, raw, url)?;
    let settings = StoreSettings {
        url: url.to_owned(),
        mode,
        sync_interval: duration(&raw.sync_interval, Duration::from_millis(100)),
        on_store_error,
        timeout: duration(&raw.timeout, Duration::from_millis(200)),
        ca_pem,
    };
    if let Some(store) = previous
        .and_then(|previous| previous.rate_limit_store.as_ref())
        .filter(|store| store.settings == settings)
    {
        return Ok(Arc::clone(store));
    }
    let store = Store::new(settings, metrics).map_err(|_| {
        ctx.at(
            "rate_limit_store.redis",
            &raw.redis,
            "invalid Redis URL (check the host, port, database and credentials syntax)",
        )
    })?;
    Ok(Arc::new(store))
}

/// `rate_limit_store.ca_file`: PEM roots for a `rediss://` server, read now (its content, not
/// its path, is part of the store's identity across reloads).
fn store_ca(
    ctx: &Ctx<'_>,
    raw: &raw::RateLimitStore,
    url: &str,
) -> Result<Option<Vec<u8>>, ConfigError> {
    Ok(match &raw.ca_file {
        None => None,
        Some(_) if !url.starts_with("rediss://") => {
            return Err(ctx.err(
                "rate_limit_store.ca_file",
                raw.ca_file.as_ref().map(Spanned::span),
                "only for a rediss:// (TLS) URL",
            ))
        }
        Some(file) => {
            let path = ctx.roots_file("rate_limit_store.ca_file", file)?;
            let pem = std::fs::read(&path).map_err(|error| {
                ctx.at(
                    "rate_limit_store.ca_file",
                    file,
                    format!("cannot read {}: {error}", path.display()),
                )
            })?;
            Some(pem)
        }
    })
}

/// `[[clients]]` `rate_limits` by client id: indexes into `policies`. These run after
/// authentication with the route's own identity-keyed limits.
pub(super) fn client_limits(
    ctx: &Ctx<'_>,
    clients: &[Spanned<raw::Client>],
    policies: &[Policy],
) -> Result<HashMap<String, Vec<usize>>, ConfigError> {
    let mut limits = HashMap::new();
    for (index, spanned) in clients.iter().enumerate() {
        let raw = spanned.get_ref();
        let Some(list) = &raw.rate_limits else {
            continue;
        };
        let key = format!("clients[{index}].rate_limits");
        let indexes = resolve(ctx, &key, list, policies)?;
        if let Some(early) = indexes.iter().find(|&&i| policies[i].spec.early()) {
            return Err(ctx.at(
                key,
                list,
                format!(
                    "rate limit \"{}\" is keyed on the client address alone, which runs before the client is known: list it on routes",
                    policies[*early].spec.name
                ),
            ));
        }
        limits.insert(raw.client_id.get_ref().as_str().to_owned(), indexes);
    }
    Ok(limits)
}

fn resolve(
    ctx: &Ctx<'_>,
    key: &str,
    list: &Spanned<Vec<crate::config::EnvString>>,
    policies: &[Policy],
) -> Result<Vec<usize>, ConfigError> {
    let mut indexes = Vec::with_capacity(list.get_ref().len());
    for value in list.get_ref() {
        let wanted = value.as_str();
        let index = policies
            .iter()
            .position(|policy| policy.spec.name == wanted)
            .ok_or_else(|| ctx.at(key, list, format!("unknown rate limit \"{wanted}\"")))?;
        if indexes.contains(&index) {
            return Err(ctx.at(
                key,
                list,
                format!("rate limit \"{wanted}\" is listed twice"),
            ));
        }
        indexes.push(index);
    }
    Ok(indexes)
}

/// A route's `rate_limits`: indexes into `policies`. Identity-keyed limits are refused on
/// public routes, which have no identity to key on.
pub(super) fn route_limits(
    ctx: &Ctx<'_>,
    key: &dyn Fn(&str) -> String,
    raw: &raw::Route,
    policies: &[Policy],
) -> Result<Vec<usize>, ConfigError> {
    let Some(list) = &raw.rate_limits else {
        return Ok(Vec::new());
    };
    let indexes = resolve(ctx, &key("rate_limits"), list, policies)?;
    for &index in &indexes {
        let spec = &policies[index].spec;
        if raw.public && spec.key.iter().any(|part| part.needs_identity()) {
            return Err(ctx.at(
                key("rate_limits"),
                list,
                format!(
                    "rate limit \"{}\" is keyed on an identity, which a public route does not have",
                    spec.name
                ),
            ));
        }
    }
    Ok(indexes)
}
