//! `[[upstreams]]` -> [`Upstream`]s: servers, protocol, timeouts, passive health, retries,
//! caps, TLS (roots and client certificate) and the pooled client of each; and a route's
//! `timeout` / `idle_timeout`. State that must outlive a reload (pooled clients, caps in use,
//! server health) is taken over from the previous snapshot when its identity is unchanged.
//! It never connects to anything.

use std::sync::Arc;
use std::time::Duration;

use http::uri::{Authority, Scheme};
use http::Uri;
use toml::Spanned;

use super::ctx::{duration, strings, Ctx};
use super::raw;
use super::value::EnvString;
use super::ConfigError;
use crate::logging::error_chain;
use crate::metrics::Metrics;
use crate::proxy::balance::{Ejection, Server};
use crate::proxy::capacity::{Capacity, UpstreamCapacity};
use crate::proxy::client::{ClientIdentity, Protocol, UpstreamClient};
use crate::proxy::health::{ActiveChecks, CheckSettings};
use crate::proxy::retry::{RetryBudget, RetryOn, RetryPolicy};
use crate::proxy::{Timeouts, Upstream};
use crate::snapshot::Snapshot;

pub(super) fn compile_upstreams(
    ctx: &Ctx<'_>,
    raws: &[Spanned<raw::Upstream>],
    previous: Option<&Snapshot>,
    metrics: &Metrics,
    max_upstream_requests: usize,
) -> Result<Vec<Upstream>, ConfigError> {
    let mut upstreams: Vec<Upstream> = Vec::with_capacity(raws.len());
    let previous_upstreams: &[Upstream] = previous.map_or(&[], |p| p.upstreams.as_slice());
    // One global cap for every upstream, carried over a reload that keeps its size.
    let global = Capacity::carried(
        previous_upstreams
            .first()
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
        let before = previous_upstreams.iter().find(|u| u.name == name);
        let protocol = protocol(ctx, &key, raw)?;
        let servers = servers(ctx, &key, raw, spanned, protocol, before, metrics)?;
        let (client, client_cert_expiry) = client(
            ctx,
            &key,
            raw,
            protocol,
            previous_upstreams,
            &upstreams,
            name,
        )?;
        let active_checks = active_checks(ctx, &key, raw, &servers, &client, name)?;
        let own = match &raw.max_concurrent_requests {
            Some(value) if *value.get_ref() == 0 => {
                return Err(ctx.at(
                    key("max_concurrent_requests"),
                    value,
                    "must be greater than 0",
                ))
            }
            Some(value) => Some(Capacity::carried(
                before.and_then(|upstream| upstream.capacity.own.as_ref()),
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
            servers,
            preserve_host: raw.preserve_host,
            timeouts: Timeouts {
                timeout: Some(duration(&raw.timeout, Duration::from_secs(30))),
                idle_timeout: positive_duration(ctx, &key("idle_timeout"), &raw.idle_timeout)?,
            },
            ejection: ejection(ctx, &key, raw)?,
            retry: retry_policy(ctx, &key, raw)?,
            budget: RetryBudget::new(metrics.upstream_servers.retries(name)),
            client,
            metrics: metrics.upstream(name),
            active_checks,
            client_cert_expiry,
        });
    }
    Ok(upstreams)
}

/// A route's `timeout` and `idle_timeout` (`None` where the upstream's apply).
pub(super) fn route_timeouts(
    ctx: &Ctx<'_>,
    key: &dyn Fn(&str) -> String,
    raw: &raw::Route,
) -> Result<Timeouts, ConfigError> {
    Ok(Timeouts {
        timeout: positive_duration(ctx, &key("timeout"), &raw.timeout)?,
        idle_timeout: positive_duration(ctx, &key("idle_timeout"), &raw.idle_timeout)?,
    })
}

fn positive_duration(
    ctx: &Ctx<'_>,
    key: &str,
    value: &Option<Spanned<super::value::Dur>>,
) -> Result<Option<Duration>, ConfigError> {
    match value {
        Some(v) if v.get_ref().0.is_zero() => Err(ctx.at(key, v, "must be greater than 0")),
        Some(v) => Ok(Some(v.get_ref().0)),
        None => Ok(None),
    }
}

fn protocol(
    ctx: &Ctx<'_>,
    key: &dyn Fn(&str) -> String,
    raw: &raw::Upstream,
) -> Result<Protocol, ConfigError> {
    match &raw.protocol {
        None => Ok(Protocol::Http1),
        Some(value) => Protocol::from_name(value.get_ref().as_str()).ok_or_else(|| {
            ctx.at(
                key("protocol"),
                value,
                "must be \"http1\", \"h2c\", \"h2\" or \"auto\"",
            )
        }),
    }
}

/// `url` or `servers` (exactly one), each parsed; health state carried from `before`.
fn servers(
    ctx: &Ctx<'_>,
    key: &dyn Fn(&str) -> String,
    raw: &raw::Upstream,
    spanned: &Spanned<raw::Upstream>,
    protocol: Protocol,
    before: Option<&Upstream>,
    metrics: &Metrics,
) -> Result<Vec<Server>, ConfigError> {
    let (field, urls): (&str, Vec<&Spanned<EnvString>>) = match (&raw.url, &raw.servers) {
        (Some(url), None) => ("url", vec![url]),
        (None, Some(list)) if !list.get_ref().is_empty() => {
            ("servers", list.get_ref().iter().collect())
        }
        (None, Some(list)) => return Err(ctx.at(key("servers"), list, "must not be empty")),
        (Some(_), Some(_)) | (None, None) => {
            return Err(ctx.at(key("url"), spanned, "set exactly one of url and servers"))
        }
    };
    let name = raw.name.get_ref().as_str();
    let dns_refresh = positive_duration(ctx, &key("dns_refresh"), &raw.dns_refresh)?
        .unwrap_or(Duration::from_secs(30));
    let mut servers: Vec<Server> = Vec::with_capacity(urls.len());
    for (position, url) in urls.into_iter().enumerate() {
        let server_key = match field {
            "url" => key("url"),
            _ => key(&format!("servers[{position}]")),
        };
        let text = url.get_ref().as_str();
        let (scheme, authority, path_prefix) = parse_url(ctx, &server_key, url)?;
        let bad = |message: &str| ctx.at(&server_key, url, format!("{message}: \"{text}\""));
        match (protocol, scheme.as_str()) {
            (Protocol::H2, "http") => return Err(bad("protocol \"h2\" needs an https URL")),
            (Protocol::H2c, "https") => return Err(bad("protocol \"h2c\" needs an http URL")),
            _ => {}
        }
        if servers.iter().any(|server| &*server.url == text) {
            return Err(bad("duplicate server"));
        }
        let state = before
            .and_then(|upstream| upstream.servers.iter().find(|s| &*s.url == text))
            .map_or_else(Arc::default, |server| Arc::clone(&server.state));
        let named = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_err();
        servers.push(Server {
            url: text.into(),
            dns_refresh: named.then_some(dns_refresh),
            scheme,
            authority,
            path_prefix,
            state,
            metrics: metrics.upstream_servers.server(name, text),
        });
    }
    Ok(servers)
}

fn parse_url(
    ctx: &Ctx<'_>,
    key: &str,
    url: &Spanned<EnvString>,
) -> Result<(Scheme, Authority, String), ConfigError> {
    let text = url.get_ref().as_str();
    let bad = |message: &str| ctx.at(key, url, format!("{message}: \"{text}\""));
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
    Ok((
        scheme,
        authority,
        uri.path().trim_end_matches('/').to_owned(),
    ))
}

fn ejection(
    ctx: &Ctx<'_>,
    key: &dyn Fn(&str) -> String,
    raw: &raw::Upstream,
) -> Result<Ejection, ConfigError> {
    let max_failures = match &raw.max_failures {
        Some(v) if *v.get_ref() == 0 => {
            return Err(ctx.at(key("max_failures"), v, "must be greater than 0"))
        }
        Some(v) => u32::try_from(*v.get_ref()).unwrap_or(u32::MAX),
        None => 5,
    };
    let base = positive_duration(ctx, &key("ejection_time"), &raw.ejection_time)?
        .unwrap_or(Duration::from_secs(10));
    let max = positive_duration(ctx, &key("max_ejection_time"), &raw.max_ejection_time)?
        .unwrap_or(Duration::from_secs(300))
        .max(base);
    Ok(Ejection {
        max_failures,
        base,
        max,
    })
}

fn retry_policy(
    ctx: &Ctx<'_>,
    key: &dyn Fn(&str) -> String,
    raw: &raw::Upstream,
) -> Result<RetryPolicy, ConfigError> {
    let mut retry_on = Vec::new();
    if let Some(list) = &raw.retry_on {
        for text in strings(list.get_ref()) {
            let on = RetryOn::parse(&text).ok_or_else(|| {
                ctx.at(
                    key("retry_on"),
                    list,
                    format!(
                        "\"{text}\" is not one of reset, 5xx, gateway_error or a 5xx status code"
                    ),
                )
            })?;
            retry_on.push(on);
        }
    }
    let percent = raw
        .retry_budget_percent
        .as_ref()
        .map_or(20, |v| *v.get_ref());
    if percent > 100 {
        let value = raw.retry_budget_percent.as_ref();
        return Err(ctx.err(
            key("retry_budget_percent"),
            value.map(Spanned::span),
            "must be at most 100",
        ));
    }
    Ok(RetryPolicy {
        retries: raw
            .retries
            .as_ref()
            .map_or(1, |v| u32::try_from(*v.get_ref()).unwrap_or(u32::MAX)),
        retry_on,
        budget_percent: percent as u32,
        min_retry_concurrency: raw
            .retry_min_concurrency
            .as_ref()
            .map_or(3, |v| *v.get_ref() as usize),
    })
}

/// The pooled client: reused from the previous snapshot (or an earlier upstream) with the same
/// identity, else built. Also the client certificate's expiry.
fn client(
    ctx: &Ctx<'_>,
    key: &dyn Fn(&str) -> String,
    raw: &raw::Upstream,
    protocol: Protocol,
    previous: &[Upstream],
    compiled: &[Upstream],
    name: &str,
) -> Result<(Arc<UpstreamClient>, Option<crate::tls::expiry::Expiry>), ConfigError> {
    let identity = identity(ctx, key, raw, protocol)?;
    let expiry = identity
        .client_cert
        .as_ref()
        .and_then(|(cert, _)| crate::tls::expiry::upstream_client(name, cert));
    let reused = previous
        .iter()
        .chain(compiled.iter())
        .find(|upstream| upstream.client.identity == identity)
        .map(|upstream| Arc::clone(&upstream.client));
    if let Some(client) = reused {
        return Ok((client, expiry));
    }
    // Every file is read and parsed here, as connections will use it: `check` catches what
    // `run` would refuse, and a reload with a broken file is refused whole.
    let client = UpstreamClient::new(identity).map_err(|error| {
        use crate::tls::client::ClientTlsError as E;
        let (field, span) = match &error {
            E::CaFile(_) => ("ca_file", raw.ca_file.as_ref().map(Spanned::span)),
            E::Key(_) => (
                "client_key_file",
                raw.client_key_file.as_ref().map(Spanned::span),
            ),
            E::Cert(_) | E::Mismatch(_) | E::Tls(_) => (
                "client_cert_file",
                raw.client_cert_file.as_ref().map(Spanned::span),
            ),
        };
        ctx.err(key(field), span, error_chain(&error))
    })?;
    Ok((Arc::new(client), expiry))
}

/// What makes the upstream's client: connection settings, protocol, TLS files and a digest of
/// their contents (a renewed file at reload builds a new client).
fn identity(
    ctx: &Ctx<'_>,
    key: &dyn Fn(&str) -> String,
    raw: &raw::Upstream,
    protocol: Protocol,
) -> Result<ClientIdentity, ConfigError> {
    let ca_file = match &raw.ca_file {
        Some(file) => Some(ctx.roots_file(&key("ca_file"), file)?),
        None => None,
    };
    let client_cert = match (&raw.client_cert_file, &raw.client_key_file) {
        (Some(cert), Some(key_file)) => Some((
            ctx.file(&key("client_cert_file"), cert)?,
            ctx.file(&key("client_key_file"), key_file)?,
        )),
        (None, None) => None,
        (Some(cert), None) => {
            return Err(ctx.at(
                key("client_key_file"),
                cert,
                "required with client_cert_file",
            ))
        }
        (None, Some(key_file)) => {
            return Err(ctx.at(
                key("client_cert_file"),
                key_file,
                "required with client_key_file",
            ))
        }
    };
    let mut digest = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let files = ca_file
        .iter()
        .chain(client_cert.iter().flat_map(|(c, k)| [c, k]));
    for path in files {
        // An unreadable file is reported by the client build, naming the key.
        digest.update(&std::fs::read(path).unwrap_or_default());
        digest.update(b"\0");
    }
    let mut files_digest = [0u8; 32];
    files_digest.copy_from_slice(digest.finish().as_ref());
    Ok(ClientIdentity {
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
        protocol,
        ca_file,
        client_cert,
        files_digest,
    })
}

/// `health_check`: the settings and one probe target per server.
fn active_checks(
    ctx: &Ctx<'_>,
    key: &dyn Fn(&str) -> String,
    raw: &raw::Upstream,
    servers: &[Server],
    client: &Arc<UpstreamClient>,
    name: &str,
) -> Result<Option<Arc<ActiveChecks>>, ConfigError> {
    let Some(spanned) = &raw.health_check else {
        return Ok(None);
    };
    let check = spanned.get_ref();
    let path = check.path.get_ref().as_str();
    if !path.starts_with('/') {
        return Err(ctx.at(key("health_check.path"), &check.path, "must start with /"));
    }
    let count = |value: &Option<Spanned<u64>>, field: &str, default: u32| match value {
        Some(v) if *v.get_ref() == 0 => Err(ctx.at(key(field), v, "must be greater than 0")),
        Some(v) => Ok(u32::try_from(*v.get_ref()).unwrap_or(u32::MAX)),
        None => Ok(default),
    };
    let settings = CheckSettings {
        path: path.to_owned(),
        interval: positive_duration(ctx, &key("health_check.interval"), &check.interval)?
            .unwrap_or(Duration::from_secs(10)),
        timeout: positive_duration(ctx, &key("health_check.timeout"), &check.timeout)?
            .unwrap_or(Duration::from_secs(2)),
        healthy: count(&check.healthy, "health_check.healthy", 2)?,
        unhealthy: count(&check.unhealthy, "health_check.unhealthy", 3)?,
    };
    let mut targets = Vec::with_capacity(servers.len());
    for server in servers {
        let uri = Uri::builder()
            .scheme(server.scheme.clone())
            .authority(server.authority.clone())
            .path_and_query(format!("{}{path}", server.path_prefix))
            .build()
            .map_err(|_| ctx.at(key("health_check.path"), &check.path, "invalid path"))?;
        targets.push((uri, Arc::clone(&server.state), server.metrics.clone()));
    }
    Ok(Some(Arc::new(ActiveChecks {
        settings,
        client: Arc::clone(client),
        targets,
        upstream: name.to_owned(),
    })))
}

#[cfg(test)]
#[path = "upstreams_tests.rs"]
mod tests;
