//! Raw config -> [`Snapshot`]: every value parsed, every reference resolved, every file read,
//! once. Errors name the key and the line. State that survives reloads (key stores, upstream
//! clients, the token cache) is taken over from the previous snapshot when its identity is
//! unchanged.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Method};
use toml::Spanned;

use super::ctx::{duration, strings, Ctx};
use super::raw;
use super::{ConfigError, Source};
use crate::auth::api_keys::ApiKeySource;
use crate::auth::cache::TokenCache;
use crate::logging::error_chain;
use crate::metrics::Metrics;
use crate::proxy::Upstream;
use crate::routing::{canonicalize, HostPattern, RouteSpec, RouteTable};
use crate::snapshot::{
    ClientCertMode, Issuer, Readiness, Route, ServerSettings, Snapshot, TlsSettings,
    TokenCacheSettings,
};
use crate::tls::server::{self as tls_server, ServerFiles, TlsFile};

/// What compiling needs besides the raw config.
pub struct CompileContext<'a> {
    /// The config text, for line numbers in errors.
    pub source: &'a Source,
    /// The registry the snapshot's metric children come from.
    pub metrics: Arc<Metrics>,
    /// The snapshot being replaced, whose surviving state is reused.
    pub previous: Option<&'a Snapshot>,
}

const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
const DEFAULT_ADMIN: &str = "127.0.0.1:9090";

/// Compiles a raw config into a snapshot. Binds nothing and fetches nothing.
pub fn compile(config: &raw::Config, context: CompileContext<'_>) -> Result<Snapshot, ConfigError> {
    let ctx = Ctx {
        source: context.source,
    };
    let previous = context.previous;
    let metrics = context.metrics;

    // [server] and [server.tls]
    let s = &config.server;
    let tls = match &s.tls {
        Some(tls) => Some(compile_tls(&ctx, tls.get_ref())?),
        None => None,
    };
    let listen = match (&s.listen, &tls) {
        (Some(listen), _) => Some(ctx.socket_addr("server.listen", listen)?),
        (None, Some(_)) => None,
        (None, None) => DEFAULT_LISTEN.parse().ok(),
    };
    let positive =
        |value: &Option<Spanned<u64>>, key: &str, default: u64| -> Result<u64, ConfigError> {
            match value {
                Some(v) if *v.get_ref() == 0 => Err(ctx.at(key, v, "must be greater than 0")),
                Some(v) => Ok(*v.get_ref()),
                None => Ok(default),
            }
        };
    let max_header_bytes = positive(&s.max_header_bytes, "server.max_header_bytes", 32_768)?;
    if let Some(value) = &s.max_header_bytes {
        if *value.get_ref() < 8192 {
            return Err(ctx.at("server.max_header_bytes", value, "must be at least 8192"));
        }
    }
    let server = ServerSettings {
        listen,
        header_read_timeout: duration(&s.header_read_timeout, Duration::from_secs(10)),
        request_timeout: duration(&s.request_timeout, Duration::from_secs(60)),
        idle_timeout: duration(&s.idle_timeout, Duration::from_secs(90)),
        max_header_bytes: max_header_bytes as usize,
        max_headers: positive(&s.max_headers, "server.max_headers", 100)? as usize,
        max_request_line_bytes: positive(
            &s.max_request_line_bytes,
            "server.max_request_line_bytes",
            8192,
        )? as usize,
        max_connections: positive(&s.max_connections, "server.max_connections", 10_000)? as usize,
        max_connections_per_client: positive(
            &s.max_connections_per_client,
            "server.max_connections_per_client",
            1024,
        )? as usize,
        http2_max_concurrent_streams: u32::try_from(positive(
            &s.http2_max_concurrent_streams,
            "server.http2_max_concurrent_streams",
            100,
        )?)
        .unwrap_or(u32::MAX),
        max_upstream_requests: positive(
            &s.max_upstream_requests,
            "server.max_upstream_requests",
            1024,
        )? as usize,
        shutdown_timeout: duration(&s.shutdown_timeout, Duration::from_secs(30)),
    };
    for (key, value) in [
        ("server.header_read_timeout", &s.header_read_timeout),
        ("server.request_timeout", &s.request_timeout),
        ("server.idle_timeout", &s.idle_timeout),
    ] {
        if let Some(value) = value {
            if value.get_ref().0.is_zero() {
                return Err(ctx.at(key, value, "must be greater than 0"));
            }
        }
    }
    let admin_listen = match &config.admin.listen {
        Some(listen) => ctx.socket_addr("admin.listen", listen)?,
        None => DEFAULT_ADMIN
            .parse()
            .map_err(|_| ctx.err("admin.listen", None, "invalid default"))?,
    };

    let decision_listen = match &config.decision.listen {
        Some(listen) => Some(ctx.socket_addr("decision.listen", listen)?),
        None => None,
    };

    let readiness = match &config.admin.readiness {
        None => Readiness::LoadedOnce,
        Some(value) => Readiness::from_name(value.get_ref().as_str()).ok_or_else(|| {
            ctx.at(
                "admin.readiness",
                value,
                "must be \"loaded_once\", \"all_issuers\" or \"listeners\"",
            )
        })?,
    };

    // [network]
    let trusted_proxies = ctx.cidrs(
        "network.trusted_proxies",
        config.network.trusted_proxies.as_ref(),
    )?;
    let allow = ctx.cidrs("network.allow", config.network.allow.as_ref())?;

    // [[issuers]] and [[clients]]
    let issuers = super::issuers::compile_issuers(&ctx, &config.issuers, previous)?;
    let clients = super::clients::compile_clients(&ctx, &config.clients)?;
    let mut claim_header_names: Vec<String> = issuers
        .iter()
        .flat_map(|issuer| issuer.policy.claim_headers.iter())
        .map(|(name, _)| name.as_str().replace('_', "-"))
        .collect();
    // [[api_keys]]: key files read now, and again at every reload.
    let api_keys = super::api_keys::compile_api_keys(&ctx, &config.api_keys)?;
    claim_header_names.extend(super::api_keys::claim_header_names(&config.api_keys));
    claim_header_names.sort();
    claim_header_names.dedup();

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
    if config.routes.is_empty() {
        return Err(ctx.err("routes", None, "at least one [[routes]] entry is required"));
    }
    let client_certs_on = tls
        .as_ref()
        .is_some_and(|tls| tls.client_cert != ClientCertMode::Off);
    let mut routes = Vec::with_capacity(config.routes.len());
    let mut specs = Vec::with_capacity(config.routes.len());
    let mut route_names = HashSet::new();
    for (index, spanned) in config.routes.iter().enumerate() {
        let raw = spanned.get_ref();
        let key = |field: &str| format!("routes[{index}].{field}");
        let name = raw.name.get_ref().as_str();
        if name.is_empty() || name == "none" {
            return Err(ctx.at(
                key("name"),
                &raw.name,
                "route name must be non-empty and not \"none\"",
            ));
        }
        if !route_names.insert(name.to_owned()) {
            return Err(ctx.at(
                key("name"),
                &raw.name,
                format!("duplicate route name \"{name}\""),
            ));
        }
        let (spec, route) = compile_route(
            &ctx,
            &key,
            raw,
            &issuers,
            &upstreams,
            &api_keys,
            client_certs_on,
            &metrics,
        )?;
        let mut route = route;
        route.rate_limits = super::rate_limits::route_limits(&ctx, &key, raw, &rate_limits)?;
        specs.push(spec);
        routes.push(route);
    }
    let table = RouteTable::new(specs);

    let token_cache_settings = TokenCacheSettings {
        max_entries: s
            .token_cache_entries
            .as_ref()
            .map_or(10_000, |v| *v.get_ref()),
        ttl: duration(&s.token_cache_ttl, Duration::from_secs(300)),
    };
    let token_cache = match previous {
        Some(previous) if previous.token_cache_settings == token_cache_settings => {
            Arc::clone(&previous.token_cache)
        }
        _ => Arc::new(TokenCache::new(
            token_cache_settings.max_entries,
            token_cache_settings.ttl,
        )),
    };

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

fn compile_tls(ctx: &Ctx<'_>, tls: &raw::Tls) -> Result<TlsSettings, ConfigError> {
    let client_cert = match &tls.client_cert {
        None => ClientCertMode::Off,
        Some(mode) => match mode.get_ref().as_str() {
            "off" => ClientCertMode::Off,
            "optional" => ClientCertMode::Optional,
            "required" => ClientCertMode::Required,
            other => {
                return Err(ctx.at(
                    "server.tls.client_cert",
                    mode,
                    format!("\"{other}\" is not one of off, optional, required"),
                ))
            }
        },
    };
    let client_ca_file = match &tls.client_ca_file {
        Some(file) => Some(ctx.file("server.tls.client_ca_file", file)?),
        None if client_cert != ClientCertMode::Off => {
            return Err(ctx.err(
                "server.tls.client_ca_file",
                tls.client_cert.as_ref().map(Spanned::span),
                "required when client_cert is not \"off\"",
            ))
        }
        None => None,
    };
    let client_crl_file = match &tls.client_crl_file {
        Some(file) => Some(ctx.file("server.tls.client_crl_file", file)?),
        None => None,
    };
    let listen = ctx.socket_addr("server.tls.listen", &tls.listen)?;
    let cert_file = ctx.file("server.tls.cert_file", &tls.cert_file)?;
    let key_file = ctx.file("server.tls.key_file", &tls.key_file)?;
    // Every file is read and parsed here, as the listener will use it: `check` catches what
    // `run` would refuse, and a reload with a broken file is refused whole.
    let files = ServerFiles {
        cert_file: &cert_file,
        key_file: &key_file,
        client_ca_file: client_ca_file.as_deref(),
        client_crl_file: client_crl_file.as_deref(),
        client_cert,
    };
    let server_config = tls_server::server_config(&files).map_err(|error| {
        let span = match error.file() {
            TlsFile::Cert => Some(tls.cert_file.span()),
            TlsFile::Key => Some(tls.key_file.span()),
            TlsFile::ClientCa => tls.client_ca_file.as_ref().map(Spanned::span),
            TlsFile::ClientCrl => tls.client_crl_file.as_ref().map(Spanned::span),
        };
        ctx.err(error.file().key(), span, error_chain(&error))
    })?;
    Ok(TlsSettings {
        listen,
        client_cert,
        handshake_timeout: duration(&tls.handshake_timeout, Duration::from_secs(10)),
        server_config: Arc::new(server_config),
        expiries: crate::tls::expiry::of_files(
            &cert_file,
            client_ca_file.as_deref(),
            client_crl_file.as_deref(),
        ),
        cert_file,
        key_file,
        client_ca_file,
        client_crl_file,
    })
}

// The compiled sections a route may name, passed one by one: a struct of them would move every
// caller for no gain in clarity.
#[allow(clippy::too_many_arguments)]
fn compile_route(
    ctx: &Ctx<'_>,
    key: &dyn Fn(&str) -> String,
    raw: &raw::Route,
    issuers: &[Issuer],
    upstreams: &[Upstream],
    api_keys: &[Arc<ApiKeySource>],
    client_certs_on: bool,
    metrics: &Metrics,
) -> Result<(RouteSpec, Route), ConfigError> {
    let name = raw.name.get_ref().as_str();
    let prefix = raw.path_prefix.get_ref().as_str();
    let canonical = canonicalize(prefix).map_err(|e| {
        ctx.at(
            key("path_prefix"),
            &raw.path_prefix,
            format!("invalid path prefix \"{prefix}\": {}", e.description()),
        )
    })?;
    if canonical != prefix {
        return Err(ctx.at(
            key("path_prefix"),
            &raw.path_prefix,
            format!("path prefix \"{prefix}\" is not canonical (would be \"{canonical}\")"),
        ));
    }
    let path_prefix = match prefix.trim_end_matches('/') {
        "" => "/".to_owned(),
        trimmed => trimmed.to_owned(),
    };
    let methods = match &raw.methods {
        None => None,
        Some(list) => {
            let mut methods = Vec::new();
            for value in list.get_ref() {
                let text = value.as_str();
                let valid =
                    !text.is_empty() && text.bytes().all(|b| b.is_ascii_uppercase() || b == b'-');
                let method = Method::from_bytes(text.as_bytes())
                    .ok()
                    .filter(|_| valid)
                    .ok_or_else(|| {
                        ctx.at(
                            key("methods"),
                            list,
                            format!("invalid method \"{text}\" (use uppercase, e.g. \"GET\")"),
                        )
                    })?;
                methods.push(method);
            }
            if methods.is_empty() {
                return Err(ctx.at(
                    key("methods"),
                    list,
                    "must not be empty (omit it for every method)",
                ));
            }
            Some(methods)
        }
    };
    let host = match &raw.host {
        None => HostPattern::Any,
        Some(host) => {
            HostPattern::parse(host.get_ref().as_str()).map_err(|m| ctx.at(key("host"), host, m))?
        }
    };
    let upstream_name = raw.upstream.get_ref().as_str();
    let upstream = upstreams
        .iter()
        .position(|upstream| upstream.name == upstream_name)
        .ok_or_else(|| {
            ctx.at(
                key("upstream"),
                &raw.upstream,
                format!("unknown upstream \"{upstream_name}\""),
            )
        })?;
    let route_api_keys = match &raw.api_keys {
        Some(_) if raw.public => {
            return Err(ctx.at(
                key("api_keys"),
                &raw.name,
                "a public route takes no API keys",
            ))
        }
        Some(list) => super::api_keys::route_sources(ctx, &key("api_keys"), list, api_keys)?,
        None => Vec::new(),
    };
    let route_issuers = match &raw.issuers {
        // `api_keys` without `issuers`: API keys only (SPEC §7.1).
        None if raw.api_keys.is_some() => Vec::new(),
        None => (0..issuers.len()).collect::<Vec<_>>(),
        Some(list) => {
            let mut indexes = Vec::new();
            for value in list.get_ref() {
                let wanted = value.as_str();
                let index = issuers
                    .iter()
                    .position(|issuer| issuer.name == wanted)
                    .ok_or_else(|| {
                        ctx.at(key("issuers"), list, format!("unknown issuer \"{wanted}\""))
                    })?;
                indexes.push(index);
            }
            indexes
        }
    };
    if !raw.public && route_issuers.is_empty() && route_api_keys.is_empty() {
        return Err(ctx.at(
            key("issuers"),
            &raw.name,
            format!("route \"{name}\" needs a token but no issuer is configured for it (or set public = true)"),
        ));
    }
    let client_cert_required = match &raw.client_cert {
        None => false,
        Some(mode) => match mode.get_ref().as_str() {
            "any" => false,
            "required" if !client_certs_on => {
                return Err(ctx.at(
                    key("client_cert"),
                    mode,
                    "client_cert = \"required\" needs [server.tls] client_cert = \"optional\" or \"required\"",
                ))
            }
            "required" => true,
            other => return Err(ctx.at(key("client_cert"), mode, format!("\"{other}\" is not one of any, required"))),
        },
    };
    let scopes = strings(&raw.scopes);
    let any_scopes = strings(&raw.any_scopes);
    let challenge = scopes
        .iter()
        .chain(any_scopes.iter())
        .cloned()
        .collect::<Vec<_>>()
        .join(" ");
    let scope_challenge = HeaderValue::from_str(&challenge)
        .ok()
        .filter(|_| !challenge.contains('"') && !challenge.contains('\\'))
        .ok_or_else(|| {
            ctx.at(
                key("scopes"),
                &raw.name,
                "scopes must be visible ASCII without quotes or backslashes",
            )
        })?;
    let spec = RouteSpec {
        host,
        path_prefix,
        methods,
    };
    let route = Route {
        name: name.to_owned(),
        spec: spec.clone(),
        upstream,
        public: raw.public,
        issuers: route_issuers,
        api_keys: route_api_keys,
        scopes,
        any_scopes,
        scope_challenge,
        allow: ctx.cidrs(&key("allow"), raw.allow.as_ref())?,
        client_cert_required,
        max_body_bytes: raw.max_body_bytes.as_ref().map(|v| *v.get_ref()),
        rate_limits: Vec::new(),
        timeouts: super::upstreams::route_timeouts(ctx, key, raw)?
            .over(&upstreams[upstream].timeouts),
        grpc: raw.grpc,
        metrics: metrics.route(name),
    };
    Ok((spec, route))
}
