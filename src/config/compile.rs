//! Raw config -> [`Snapshot`]: every value parsed, every reference resolved, every file read,
//! once. Errors name the key and the line. State that survives reloads (key stores, upstream
//! clients, the token cache) is taken over from the previous snapshot when its identity is
//! unchanged.

use std::sync::Arc;
use std::time::Duration;

use http::Uri;
use toml::Spanned;

use super::ctx::{duration, Ctx};
use super::raw;
use super::routes::{compile_routes, Named};
use super::server::{admin_settings, compile_tls, server_settings};
use super::{ConfigError, Source};
use crate::auth::cache::TokenCache;
use crate::metrics::Metrics;
use crate::proxy::capacity::{Capacity, UpstreamCapacity};
use crate::proxy::client::{ClientIdentity, UpstreamClient};
use crate::proxy::host_value;
use crate::snapshot::{ClientCertMode, Issuer, Snapshot, TokenCacheSettings, Upstream};

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
    let upstreams = compile_upstreams(
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

fn compile_upstreams(
    ctx: &Ctx<'_>,
    raws: &[Spanned<raw::Upstream>],
    previous: Option<&Snapshot>,
    metrics: &Metrics,
    max_upstream_requests: usize,
) -> Result<Vec<Upstream>, ConfigError> {
    let mut upstreams: Vec<Upstream> = Vec::with_capacity(raws.len());
    // One global cap for every upstream, carried over a reload that keeps its size.
    let previous_upstreams = previous.into_iter().flat_map(|p| p.upstreams.iter());
    let global = Capacity::carried(
        previous_upstreams
            .clone()
            .next()
            .map(|upstream| &upstream.capacity.global),
        max_upstream_requests,
    );
    for (index, spanned) in raws.iter().enumerate() {
        let raw = spanned.get_ref();
        let key = |field: &str| format!("upstreams[{index}].{field}");
        let name = raw.name.get_ref().as_str();
        if name.is_empty() {
            return Err(ctx.at(key("name"), &raw.name, "upstream name must be non-empty"));
        }
        if upstreams.iter().any(|upstream| upstream.name == name) {
            return Err(ctx.at(
                key("name"),
                &raw.name,
                format!("duplicate upstream name \"{name}\""),
            ));
        }
        let text = raw.url.get_ref().as_str();
        let bad = |message: &str| ctx.at(key("url"), &raw.url, format!("{message}: \"{text}\""));
        let uri: Uri = text.parse().map_err(|_| bad("invalid URL"))?;
        let scheme = uri
            .scheme()
            .cloned()
            .ok_or_else(|| bad("URL needs http:// or https://"))?;
        if !matches!(scheme.as_str(), "http" | "https") {
            return Err(bad("URL scheme must be http or https"));
        }
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| bad("URL needs a host"))?;
        if authority.as_str().contains('@') {
            return Err(bad("URL must not carry credentials"));
        }
        if uri.query().is_some() {
            return Err(bad("URL must not have a query"));
        }
        let path_prefix = uri.path().trim_end_matches('/').to_owned();
        let ca_file = match &raw.ca_file {
            Some(file) => Some(ctx.roots_file(&key("ca_file"), file)?),
            None => None,
        };
        let identity = ClientIdentity {
            connect_timeout: duration(&raw.connect_timeout, Duration::from_secs(2)),
            max_idle: raw
                .max_idle_connections
                .as_ref()
                .map_or(64, |v| *v.get_ref() as usize),
            max_response_header_bytes: raw
                .max_response_header_bytes
                .as_ref()
                .map_or(65_536, |v| *v.get_ref() as usize)
                .max(8192),
            ca_file,
        };
        let reused = previous
            .into_iter()
            .flat_map(|previous| previous.upstreams.iter())
            .chain(upstreams.iter())
            .find(|upstream| upstream.client.identity == identity)
            .map(|upstream| Arc::clone(&upstream.client));
        let client = match reused {
            Some(client) => client,
            None => Arc::new(
                UpstreamClient::new(identity).map_err(|m| ctx.at(key("ca_file"), spanned, m))?,
            ),
        };
        let own = match &raw.max_concurrent_requests {
            Some(value) if *value.get_ref() == 0 => {
                return Err(ctx.at(
                    key("max_concurrent_requests"),
                    value,
                    "must be greater than 0",
                ))
            }
            Some(value) => Some(Capacity::carried(
                previous_upstreams
                    .clone()
                    .find(|upstream| upstream.name == name)
                    .and_then(|upstream| upstream.capacity.own.as_ref()),
                *value.get_ref() as usize,
            )),
            None => None,
        };
        upstreams.push(Upstream {
            capacity: UpstreamCapacity {
                global: Arc::clone(&global),
                own,
            },
            name: name.to_owned(),
            host: host_value(&authority),
            scheme,
            authority,
            path_prefix,
            preserve_host: raw.preserve_host,
            timeout: duration(&raw.timeout, Duration::from_secs(30)),
            client,
            metrics: metrics.upstream(name),
        });
    }
    Ok(upstreams)
}
