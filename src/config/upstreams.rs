//! `[[upstreams]]` -> [`Upstream`]s: URLs, timeouts, caps and the pooled client of each.
//! State that must outlive a reload (pooled clients, caps in use) is taken over from the
//! previous snapshot when its identity is unchanged. It never connects to anything.

use std::sync::Arc;
use std::time::Duration;

use http::Uri;
use toml::Spanned;

use super::ctx::{duration, Ctx};
use super::raw;
use super::ConfigError;
use crate::metrics::Metrics;
use crate::proxy::capacity::{Capacity, UpstreamCapacity};
use crate::proxy::client::{ClientIdentity, UpstreamClient};
use crate::proxy::{host_value, Upstream};
use crate::snapshot::Snapshot;

pub(super) fn compile_upstreams(
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
