//! `[[routes]]` -> the [`Route`]s and the route table (SPEC §2, §3 step 2): each route's
//! canonical path prefix, methods, host pattern, upstream, credentials (issuers, API keys),
//! client-certificate rule, scopes, allowlist and rate limits.
//!
//! Every name a route uses must resolve to a compiled section ([`Named`]); nothing here reads a
//! file or builds shared state. Errors name `routes[i].<key>` and the line, and come in the
//! order of the keys below (the first wrong key of the first wrong route is reported).

use std::collections::HashSet;
use std::sync::Arc;

use http::{HeaderValue, Method};
use toml::Spanned;

use super::ctx::{strings, Ctx};
use super::raw;
use super::ConfigError;
use crate::auth::api_keys::ApiKeySource;
use crate::metrics::Metrics;
use crate::proxy::Upstream;
use crate::ratelimit::Policy;
use crate::routing::{canonicalize, HostPattern, RouteSpec, RouteTable};
use crate::snapshot::{Issuer, Route};

/// The compiled sections a route refers to by name.
pub(super) struct Named<'a> {
    pub(super) issuers: &'a [Issuer],
    pub(super) upstreams: &'a [Upstream],
    pub(super) api_keys: &'a [Arc<ApiKeySource>],
    pub(super) rate_limits: &'a [Policy],
}

/// Every `[[routes]]` entry (at least one; names unique, not empty, not `none`), and the
/// table that matches requests to them.
pub(super) fn compile_routes(
    ctx: &Ctx<'_>,
    raws: &[Spanned<raw::Route>],
    named: &Named<'_>,
    client_certs_on: bool,
    metrics: &Metrics,
) -> Result<(Vec<Route>, RouteTable), ConfigError> {
    if raws.is_empty() {
        return Err(ctx.err("routes", None, "at least one [[routes]] entry is required"));
    }
    let mut routes = Vec::with_capacity(raws.len());
    let mut specs = Vec::with_capacity(raws.len());
    let mut route_names = HashSet::new();
    for (index, spanned) in raws.iter().enumerate() {
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
        let (spec, route) = compile_route(ctx, &key, raw, named, client_certs_on, metrics)?;
        let mut route = route;
        route.rate_limits = super::rate_limits::route_limits(ctx, &key, raw, named.rate_limits)?;
        specs.push(spec);
        routes.push(route);
    }
    Ok((routes, RouteTable::new(specs)))
}

fn compile_route(
    ctx: &Ctx<'_>,
    key: &dyn Fn(&str) -> String,
    raw: &raw::Route,
    named: &Named<'_>,
    client_certs_on: bool,
    metrics: &Metrics,
) -> Result<(RouteSpec, Route), ConfigError> {
    let name = raw.name.get_ref().as_str();
    let path_prefix = path_prefix(ctx, key, raw)?;
    let methods = methods(ctx, key, raw)?;
    let host = match &raw.host {
        None => HostPattern::Any,
        Some(host) => {
            HostPattern::parse(host.get_ref().as_str()).map_err(|m| ctx.at(key("host"), host, m))?
        }
    };
    let upstream_name = raw.upstream.get_ref().as_str();
    let upstream = named
        .upstreams
        .iter()
        .position(|upstream| upstream.name == upstream_name)
        .ok_or_else(|| {
            ctx.at(
                key("upstream"),
                &raw.upstream,
                format!("unknown upstream \"{upstream_name}\""),
            )
        })?;
    let (route_issuers, route_api_keys) = credentials(ctx, key, raw, named)?;
    let client_cert_required = client_cert_required(ctx, key, raw, client_certs_on)?;
    let scopes = strings(&raw.scopes);
    let any_scopes = strings(&raw.any_scopes);
    let scope_challenge = scope_challenge(ctx, key, raw, &scopes, &any_scopes)?;
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
            .over(&named.upstreams[upstream].timeouts),
        grpc: raw.grpc,
        metrics: metrics.route(name),
    };
    Ok((spec, route))
}

/// `path_prefix`: must be canonical already (so the config says what is matched); stored
/// without its trailing `/` (`/` stays `/`).
fn path_prefix(
    ctx: &Ctx<'_>,
    key: &dyn Fn(&str) -> String,
    raw: &raw::Route,
) -> Result<String, ConfigError> {
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
    Ok(match prefix.trim_end_matches('/') {
        "" => "/".to_owned(),
        trimmed => trimmed.to_owned(),
    })
}

/// `methods`: uppercase method names, not empty; `None` (absent) is every method.
fn methods(
    ctx: &Ctx<'_>,
    key: &dyn Fn(&str) -> String,
    raw: &raw::Route,
) -> Result<Option<Vec<Method>>, ConfigError> {
    let Some(list) = &raw.methods else {
        return Ok(None);
    };
    let mut methods = Vec::new();
    for value in list.get_ref() {
        let text = value.as_str();
        let valid = !text.is_empty() && text.bytes().all(|b| b.is_ascii_uppercase() || b == b'-');
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
    Ok(Some(methods))
}

/// `api_keys` and `issuers`: the indexes of the sources and issuers whose credentials the route
/// takes, as `(issuers, api_keys)`. A route that is not public must take at least one.
fn credentials(
    ctx: &Ctx<'_>,
    key: &dyn Fn(&str) -> String,
    raw: &raw::Route,
    named: &Named<'_>,
) -> Result<(Vec<usize>, Vec<usize>), ConfigError> {
    let name = raw.name.get_ref().as_str();
    let route_api_keys = match &raw.api_keys {
        Some(_) if raw.public => {
            return Err(ctx.at(
                key("api_keys"),
                &raw.name,
                "a public route takes no API keys",
            ))
        }
        Some(list) => super::api_keys::route_sources(ctx, &key("api_keys"), list, named.api_keys)?,
        None => Vec::new(),
    };
    let route_issuers = match &raw.issuers {
        // `api_keys` without `issuers`: API keys only (SPEC §7.1).
        None if raw.api_keys.is_some() => Vec::new(),
        None => (0..named.issuers.len()).collect::<Vec<_>>(),
        Some(list) => {
            let mut indexes = Vec::new();
            for value in list.get_ref() {
                let wanted = value.as_str();
                let index = named
                    .issuers
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
    Ok((route_issuers, route_api_keys))
}

/// `client_cert`: `any` (default) or `required`, which needs a TLS listener that asks for
/// client certificates.
fn client_cert_required(
    ctx: &Ctx<'_>,
    key: &dyn Fn(&str) -> String,
    raw: &raw::Route,
    client_certs_on: bool,
) -> Result<bool, ConfigError> {
    Ok(match &raw.client_cert {
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
    })
}

/// The `WWW-Authenticate` scope of an `insufficient_scope` refusal: every scope of `scopes`
/// and `any_scopes`, which must be quotable as they are.
fn scope_challenge(
    ctx: &Ctx<'_>,
    key: &dyn Fn(&str) -> String,
    raw: &raw::Route,
    scopes: &[String],
    any_scopes: &[String],
) -> Result<HeaderValue, ConfigError> {
    let challenge = scopes
        .iter()
        .chain(any_scopes.iter())
        .cloned()
        .collect::<Vec<_>>()
        .join(" ");
    HeaderValue::from_str(&challenge)
        .ok()
        .filter(|_| !challenge.contains('"') && !challenge.contains('\\'))
        .ok_or_else(|| {
            ctx.at(
                key("scopes"),
                &raw.name,
                "scopes must be visible ASCII without quotes or backslashes",
            )
        })
}
