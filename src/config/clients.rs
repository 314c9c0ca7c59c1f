//! `[[clients]]` -> [`ClientPolicy`] by client id (SPEC §7.2): per-client address allowlists,
//! certificate pins and extra scopes. Compiled like every other section, so a mistake names
//! its key and line; nothing here is looked at on the request path but the compiled map.

use std::collections::HashMap;

use http::HeaderValue;
use toml::Spanned;

use super::ctx::{strings, Ctx};
use super::raw;
use super::ConfigError;
use crate::snapshot::ClientPolicy;

pub(super) fn compile_clients(
    ctx: &Ctx<'_>,
    raws: &[Spanned<raw::Client>],
) -> Result<HashMap<String, ClientPolicy>, ConfigError> {
    let mut clients = HashMap::with_capacity(raws.len());
    for (index, spanned) in raws.iter().enumerate() {
        let raw = spanned.get_ref();
        let key = |field: &str| format!("clients[{index}].{field}");
        let client_id = raw.client_id.get_ref().as_str();
        if client_id.is_empty() {
            return Err(ctx.at(key("client_id"), &raw.client_id, "must be non-empty"));
        }
        if clients.contains_key(client_id) {
            return Err(ctx.at(
                key("client_id"),
                &raw.client_id,
                format!("duplicate client \"{client_id}\""),
            ));
        }
        let policy = ClientPolicy {
            allow: ctx.cidrs(&key("allow"), raw.allow.as_ref())?,
            cert_sha256: fingerprints(ctx, &key("client_cert_sha256"), raw)?,
            cert_subjects: raw
                .client_cert_subject
                .as_ref()
                .map(|list| strings(list.get_ref()))
                .unwrap_or_default(),
            scope_challenge: (!raw.scopes.is_empty())
                .then(|| HeaderValue::from_str(&strings(&raw.scopes).join(" ")))
                .transpose()
                .map_err(|_| ctx.at(key("scopes"), &raw.client_id, "invalid scope name"))?,
            scopes: strings(&raw.scopes),
        };
        clients.insert(client_id.to_owned(), policy);
    }
    Ok(clients)
}

/// `client_cert_sha256`: 64 hex digits each (either case), the SHA-256 of a certificate's DER.
fn fingerprints(ctx: &Ctx<'_>, key: &str, raw: &raw::Client) -> Result<Vec<[u8; 32]>, ConfigError> {
    let Some(list) = &raw.client_cert_sha256 else {
        return Ok(Vec::new());
    };
    list.get_ref()
        .iter()
        .enumerate()
        .map(|(index, text)| {
            let mut digest = [0u8; 32];
            hex::decode_to_slice(text.as_str(), &mut digest).map_err(|_| {
                ctx.at(
                    format!("{key}[{index}]"),
                    list,
                    format!("\"{}\" is not 64 hex digits", text.as_str()),
                )
            })?;
            Ok(digest)
        })
        .collect()
}
