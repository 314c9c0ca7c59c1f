//! `[[api_keys]]` -> [`ApiKeySource`]s (SPEC §7.1): each source's key file is read and parsed
//! here, at every load and reload, so a SIGHUP picks up added, removed, disabled and rotated
//! keys. The key file is TOML with unknown fields refused, like the config; its errors name
//! the key file, the entry's key (`keys[2].hash`) and the line.
//!
//! The file path is relative to the config file's directory (SPEC §2), so a config and its key
//! files move together.

use std::collections::HashSet;
use std::sync::Arc;

use http::HeaderName;
use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use toml::Spanned;

use super::ctx::{strings, Ctx};
use super::raw;
use super::{ConfigError, Source};
use crate::auth::api_keys::{ApiKey, ApiKeySource, Duplicate, KeyEntryError, KeyHeader, KeySpec};

pub(super) fn compile_api_keys(
    ctx: &Ctx<'_>,
    raws: &[Spanned<raw::ApiKeySource>],
) -> Result<Vec<Arc<ApiKeySource>>, ConfigError> {
    let mut sources: Vec<Arc<ApiKeySource>> = Vec::with_capacity(raws.len());
    for (index, spanned) in raws.iter().enumerate() {
        let raw = spanned.get_ref();
        let key = |field: &str| format!("api_keys[{index}].{field}");
        let name = raw.name.get_ref().as_str();
        // The name goes upstream in `X-Auth-Issuer: apikey:<name>` and into metric labels.
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ctx.at(
                key("name"),
                &raw.name,
                "api_keys name must be non-empty visible ASCII without spaces",
            ));
        }
        if sources.iter().any(|source| source.name == name) {
            return Err(ctx.at(
                key("name"),
                &raw.name,
                format!("duplicate api_keys name \"{name}\""),
            ));
        }
        let header = key_header(ctx, &key, raw)?;
        let claim_headers = ctx.claim_headers(&key("claim_headers"), raw.claim_headers.as_ref())?;
        let path = ctx.source.resolve(raw.file.get_ref().as_str());
        let text = std::fs::read_to_string(&path).map_err(|error| {
            ctx.at(
                key("file"),
                &raw.file,
                format!("cannot read {}: {error}", path.display()),
            )
        })?;
        let file = Source {
            path: path.display().to_string(),
            text,
        };
        let keys = read_keys(&file, name, &claim_headers)?;
        // Duplicates were refused with their lines by `read_keys`; this is the store's own check.
        let source = ApiKeySource::new(name, header, keys).map_err(|duplicate| {
            let (index, field) = match duplicate {
                Duplicate::Id(index) => (index, "id"),
                Duplicate::Hash(index) => (index, "hash"),
            };
            invalid(
                &file,
                format!("keys[{index}].{field}"),
                None,
                format!("duplicate key {field}"),
            )
        })?;
        sources.push(Arc::new(source));
    }
    Ok(sources)
}

/// `header`: `Authorization` (default: `Bearer <key>`), or a valid header name the gateway
/// does not reserve for itself.
fn key_header(
    ctx: &Ctx<'_>,
    key: &dyn Fn(&str) -> String,
    raw: &raw::ApiKeySource,
) -> Result<KeyHeader, ConfigError> {
    Ok(match &raw.header {
        None => KeyHeader::Authorization,
        Some(value)
            if value
                .get_ref()
                .as_str()
                .eq_ignore_ascii_case("authorization") =>
        {
            KeyHeader::Authorization
        }
        Some(value) => {
            let text = value.get_ref().as_str();
            let name = HeaderName::from_bytes(text.as_bytes()).map_err(|_| {
                ctx.at(
                    key("header"),
                    value,
                    format!("invalid header name \"{text}\""),
                )
            })?;
            if crate::proxy::headers::is_reserved(&name) {
                return Err(ctx.at(
                    key("header"),
                    value,
                    format!("header \"{text}\" is reserved by the gateway"),
                ));
            }
            KeyHeader::Named(name)
        }
    })
}

/// Names of the route's `api_keys` as indexes into `sources`.
pub(super) fn route_sources(
    ctx: &Ctx<'_>,
    key: &str,
    list: &Spanned<Vec<super::value::EnvString>>,
    sources: &[Arc<ApiKeySource>],
) -> Result<Vec<usize>, ConfigError> {
    let names = strings(list.get_ref());
    if names.is_empty() {
        return Err(ctx.at(key, list, "must not be empty (omit it for no API keys)"));
    }
    names
        .iter()
        .map(|wanted| {
            sources
                .iter()
                .position(|source| source.name == *wanted)
                .ok_or_else(|| ctx.at(key, list, format!("unknown api_keys source \"{wanted}\"")))
        })
        .collect()
}

/// A relative path resolves against the directory of the config file (SPEC §2).
fn invalid(file: &Source, key: String, line: Option<usize>, message: String) -> ConfigError {
    ConfigError::Invalid {
        path: file.path.clone(),
        key,
        line,
        message,
    }
}

fn parse_key_file(file: &Source) -> Result<raw::KeyFile, ConfigError> {
    toml::from_str(&file.text).map_err(|err| ConfigError::Syntax {
        path: file.path.clone(),
        line: err.span().map(|span| file.line_of(span.start)),
        key: err.span().and_then(|span| file.key_at(span.start)),
        message: err.message().to_owned(),
    })
}

/// Parses and compiles every `[[keys]]` entry of one key file.
fn read_keys(
    file: &Source,
    source: &str,
    claim_headers: &[(HeaderName, String)],
) -> Result<Vec<ApiKey>, ConfigError> {
    let parsed = parse_key_file(file)?;
    let mut keys = Vec::with_capacity(parsed.keys.len());
    let mut ids = HashSet::new();
    let mut hashes = HashSet::new();
    for (index, spanned) in parsed.keys.iter().enumerate() {
        let entry = spanned.get_ref();
        let at = |field: &str, span: std::ops::Range<usize>, message: String| {
            invalid(
                file,
                format!("keys[{index}].{field}"),
                Some(file.line_of(span.start)),
                message,
            )
        };
        if !ids.insert(entry.id.get_ref().as_str()) {
            return Err(at(
                "id",
                entry.id.span(),
                format!(
                    "duplicate key id \"{}\"",
                    entry.id.get_ref().escape_default()
                ),
            ));
        }
        // Two entries for one key would make its identity depend on their order.
        if !hashes.insert(entry.hash.get_ref().as_str()) {
            return Err(at(
                "hash",
                entry.hash.span(),
                "duplicate key hash (two entries for one key)".into(),
            ));
        }
        let client_id = entry.client_id.get_ref().as_str();
        if client_id.is_empty() {
            return Err(at(
                "client_id",
                entry.client_id.span(),
                "client_id must be non-empty".into(),
            ));
        }
        let claims = entry_claims(entry, &at)?;
        let expires_at = expires_at(entry, &at)?;
        let spec = KeySpec {
            id: entry.id.get_ref(),
            hash: entry.hash.get_ref(),
            client_id,
            scopes: entry.scopes.clone(),
            claims,
            expires_at,
            disabled: entry.disabled,
        };
        let key = ApiKey::new(source, claim_headers, spec).map_err(|error| match error {
            KeyEntryError::Id(message) => at("id", entry.id.span(), message),
            KeyEntryError::Hash(message) => at("hash", entry.hash.span(), message),
            KeyEntryError::Header(what) => invalid(
                file,
                format!("keys[{index}]"),
                Some(file.line_of(spanned.span().start)),
                format!("{what} cannot be sent as a header value (visible ASCII and spaces only)"),
            ),
        })?;
        keys.push(key);
    }
    Ok(keys)
}

/// Builds the error of one key entry's field: the field, where it is, and the message.
type At<'a> = dyn Fn(&str, std::ops::Range<usize>, String) -> ConfigError + 'a;

/// A key's `claims`, with `org` as the shorthand for `claims.org` (set once).
fn entry_claims(entry: &raw::KeyEntry, at: &At<'_>) -> Result<Map<String, Value>, ConfigError> {
    let mut claims = Map::new();
    if let Some(table) = &entry.claims {
        for (name, value) in table.get_ref() {
            claims.insert(name.clone(), json(value));
        }
    }
    if let Some(org) = &entry.org {
        if claims
            .insert("org".into(), Value::String(org.get_ref().clone()))
            .is_some()
        {
            return Err(at(
                "org",
                org.span(),
                "org is also set in claims; set it once".into(),
            ));
        }
    }
    Ok(claims)
}

/// A key's `expires` (RFC 3339) in seconds since the epoch; `None`: never.
fn expires_at(entry: &raw::KeyEntry, at: &At<'_>) -> Result<Option<u64>, ConfigError> {
    Ok(match &entry.expires {
        None => None,
        Some(text) => {
            let time = OffsetDateTime::parse(text.get_ref(), &Rfc3339).map_err(|error| {
                at(
                    "expires",
                    text.span(),
                    format!("not an RFC 3339 time (e.g. 2027-01-01T00:00:00Z): {error}"),
                )
            })?;
            // Before 1970 means long expired.
            Some(u64::try_from(time.unix_timestamp()).unwrap_or(0))
        }
    })
}

/// A TOML value as JSON, for claim headers rendered as for tokens (datetimes as their text).
fn json(value: &toml::Value) -> Value {
    match value {
        toml::Value::String(text) => Value::String(text.clone()),
        toml::Value::Integer(number) => Value::from(*number),
        toml::Value::Float(number) => Value::from(*number),
        toml::Value::Boolean(flag) => Value::Bool(*flag),
        toml::Value::Datetime(datetime) => Value::String(datetime.to_string()),
        toml::Value::Array(items) => Value::Array(items.iter().map(json).collect()),
        toml::Value::Table(table) => Value::Object(
            table
                .iter()
                .map(|(name, value)| (name.clone(), json(value)))
                .collect(),
        ),
    }
}

/// The sources' claim header names, normalized as `Snapshot::claim_header_names` wants them
/// (lowercase, `_` as `-`): clients cannot send them.
pub(super) fn claim_header_names(
    raws: &[Spanned<raw::ApiKeySource>],
) -> impl Iterator<Item = String> + '_ {
    raws.iter()
        .filter_map(|source| source.get_ref().claim_headers.as_ref())
        .flat_map(|map| map.get_ref().keys())
        .map(|name| name.to_ascii_lowercase().replace('_', "-"))
}

#[cfg(test)]
#[path = "api_keys_tests.rs"]
mod tests;
