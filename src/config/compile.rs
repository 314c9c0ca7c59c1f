//! Raw config -> [`Snapshot`]: every value parsed, every reference resolved, every file read,
//! once. Errors name the key and the line. State that survives reloads (key stores, upstream
//! clients, the token cache) is taken over from the previous snapshot when its identity is
//! unchanged.

use std::sync::Arc;
use std::time::Duration;

use super::ctx::{duration, Ctx};
use super::raw;
use super::routes::{compile_routes, Named};
use super::server::{admin_settings, compile_tls, server_settings};
use super::{ConfigError, Source};
use crate::auth::cache::TokenCache;
use crate::metrics::Metrics;
use crate::snapshot::{ClientCertMode, Issuer, Snapshot, TokenCacheSettings};

/// What compiling needs besides the raw config.
pub struct CompileContext<'a> {
    /// The config text, for line numbers in errors.
    pub source: &'a Source,
    /// The registry the snapshot's metric children come from.
    pub metrics: Arc<Metrics>,
    /// The snapshot being replaced, whose surviving state is reused.
    pub previous: Option<&'a Snapshot>,
}

/// Compiles a raw config into a snapshot. Binds nothing and fetches nothing.
pub fn compile(config: &raw::Config, context: CompileContext<'_>) -> Result<Snapshot, ConfigError> {
    let ctx = Ctx {
        source: context.source,
    };
    let previous = context.previous;
    let metrics = context.metrics;

    // [server] and [server.tls], [admin] and [decision]
    let s = &config.server;
    let tls = match &s.tls {
        Some(tls) => Some(compile_tls(&ctx, tls.get_ref())?),
        None => None,
    };
    let server = server_settings(&ctx, s, tls.as_ref())?;
    let (admin_listen, decision_listen, readiness) = admin_settings(&ctx, config)?;

    // [network]
    let trusted_proxies = ctx.cidrs(
        "network.trusted_proxies",
        config.network.trusted_proxies.as_ref(),
    )?;
    let allow = ctx.cidrs("network.allow", config.network.allow.as_ref())?;

    // [[issuers]] and [[clients]]
    let issuers = super::issuers::compile_issuers(&ctx, &config.issuers, previous)?;
    let clients = super::clients::compile_clients(&ctx, &config.clients)?;
    // [[api_keys]]: key files read now, and again at every reload.
    let api_keys = super::api_keys::compile_api_keys(&ctx, &config.api_keys)?;
    let claim_header_names = claim_header_names(&issuers, config);

    // [[rate_limits]] and [rate_limit_store]
    let (rate_limits, rate_limit_store) =
        super::rate_limits::compile_rate_limits(&ctx, config, previous, &metrics)?;
    let client_rate_limits =
        super::rate_limits::client_limits(&ctx, &config.clients, &rate_limits)?;

    // [[upstreams]]
    let upstreams = super::upstreams::compile_upstreams(
        &ctx,
        &config.upstreams,
        previous,
        &metrics,
        server.max_upstream_requests,
    )?;

    // [[routes]]
    let client_certs_on = tls
        .as_ref()
        .is_some_and(|tls| tls.client_cert != ClientCertMode::Off);
    let named = Named {
        issuers: &issuers,
        upstreams: &upstreams,
        api_keys: &api_keys,
        rate_limits: &rate_limits,
    };
    let (routes, table) = compile_routes(&ctx, &config.routes, &named, client_certs_on, &metrics)?;

    let (token_cache, token_cache_settings) = token_cache(s, previous);

    Ok(Snapshot {
        server,
        admin_listen,
        decision_listen,
        readiness,
        tls,
        trusted_proxies,
        allow,
        issuers,
        clients,
        require_client_entry: config.network.require_client_entry,
        upstreams,
        routes,
        table,
        api_keys,
        claim_header_names,
        token_cache,
        token_cache_settings,
        rate_limits,
        client_rate_limits,
        rate_limit_store,
        unrouted: metrics.route("none"),
        metrics,
    })
}

/// The configured claim header names (issuers' and API key sources'), normalized (lowercase,
/// `_` as `-`): stripped from every client request, so no client can send one.
fn claim_header_names(issuers: &[Issuer], config: &raw::Config) -> Vec<String> {
    let mut names: Vec<String> = issuers
        .iter()
        .flat_map(|issuer| issuer.policy.claim_headers.iter())
        .map(|(name, _)| name.as_str().replace('_', "-"))
        .collect();
    names.extend(super::api_keys::claim_header_names(&config.api_keys));
    names.sort();
    names.dedup();
    names
}

/// The token cache: the previous snapshot's while its settings are unchanged (verifications
/// survive the reload), else a new one.
fn token_cache(
    s: &raw::Server,
    previous: Option<&Snapshot>,
) -> (Arc<TokenCache>, TokenCacheSettings) {
    let settings = TokenCacheSettings {
        max_entries: s
            .token_cache_entries
            .as_ref()
            .map_or(10_000, |v| *v.get_ref()),
        ttl: duration(&s.token_cache_ttl, Duration::from_secs(300)),
    };
    let cache = match previous {
        Some(previous) if previous.token_cache_settings == settings => {
            Arc::clone(&previous.token_cache)
        }
        _ => Arc::new(TokenCache::new(settings.max_entries, settings.ttl)),
    };
    (cache, settings)
}
