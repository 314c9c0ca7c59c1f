//! Loading one key set from a [`KeySource`]: the HTTP GET (checked URL, 200 only, body capped,
//! one timeout over the whole exchange), OIDC discovery, the `jwks_file`, and the HTTPS client
//! they share.
//!
//! Owns the network rules of the parent module's documentation. It must never follow a
//! redirect, fetch from a plain-http URL whose host is not loopback, read past 1 MiB, or log
//! key material; and it never installs what it loads (`refresh.rs` does).

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::ClientConfig;

use super::{FetchError, HttpClient, KeySource, KeyStore, MAX_DOCUMENT_BYTES, USER_AGENT};
use crate::auth::keys::{KeySet, ParsedKeySet};

/// `max-age` from `Cache-Control` headers; `None` when absent or malformed.
pub fn cache_max_age(headers: &HeaderMap) -> Option<Duration> {
    let directives = headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','));
    for directive in directives {
        let Some((name, value)) = directive.trim().split_once('=') else {
            continue;
        };
        if name.trim().eq_ignore_ascii_case("max-age") {
            let seconds = value.trim().trim_matches('"').parse::<u64>();
            return seconds.ok().map(Duration::from_secs);
        }
    }
    None
}

/// Key URLs must be https, or http to a loopback host (SPEC §2). The config compiler checks
/// this too; it is checked again here because discovery documents name URLs at run time.
pub fn check_key_url(url: &Uri) -> Result<(), FetchError> {
    let host = url
        .host()
        .ok_or_else(|| FetchError::InvalidUrl(url.to_string()))?;
    match url.scheme_str() {
        Some("https") => Ok(()),
        Some("http") if is_loopback_host(host) => Ok(()),
        _ => Err(FetchError::InsecureUrl(url.to_string())),
    }
}

fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare.eq_ignore_ascii_case("localhost") {
        return true;
    }
    bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl KeyStore {
    /// One load from the source, without touching the current set. For remote sources also
    /// returns the response's max-age.
    pub(super) async fn load(&self) -> Result<(KeySet, Option<Duration>), FetchError> {
        match &self.source {
            KeySource::JwksUri { url, .. } => self.fetch_jwks(url).await,
            KeySource::Discovery { issuer, .. } => {
                // Discovery is redone on every refresh: it is one small extra request per
                // refresh interval, and a provider that moves its jwks_uri is followed without
                // a reload.
                let jwks_uri = self.discover(issuer).await?;
                self.fetch_jwks(&jwks_uri).await
            }
            KeySource::File(path) => {
                let bytes = tokio::fs::read(path)
                    .await
                    .map_err(|source| FetchError::File(path.clone(), source))?;
                Ok((self.parse(&bytes, &path.display().to_string())?, None))
            }
            KeySource::Hmac(secret) => Ok((KeySet::from_hmac(secret), None)),
        }
    }

    /// Parses a JWKS document; a set without a usable key is an error (SPEC §2).
    pub(super) fn parse(&self, bytes: &[u8], origin: &str) -> Result<KeySet, FetchError> {
        let ParsedKeySet { keys, skipped } = KeySet::from_jwks(bytes)
            .map_err(|source| FetchError::KeySet(origin.to_owned(), source))?;
        for reason in &skipped {
            // `skipped` describes the key (kid, kty, why), never its material.
            tracing::warn!(source = %self.source, origin, reason = %reason, "key skipped");
        }
        if keys.is_empty() {
            return Err(FetchError::NoUsableKeys(origin.to_owned()));
        }
        Ok(keys)
    }

    async fn fetch_jwks(&self, url: &Uri) -> Result<(KeySet, Option<Duration>), FetchError> {
        let (headers, body) = self.get(url).await?;
        let keys = self.parse(&body, &url.to_string())?;
        Ok((keys, cache_max_age(&headers)))
    }

    /// Reads the discovery document and returns its `jwks_uri` (checked by `get` like any key
    /// URL, so a document cannot send us to plain http on another host).
    async fn discover(&self, issuer: &str) -> Result<Uri, FetchError> {
        #[derive(serde::Deserialize)]
        struct Discovery {
            issuer: String,
            jwks_uri: String,
        }
        let text = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let url: Uri = text.parse().map_err(|_| FetchError::InvalidUrl(text))?;
        let (_, body) = self.get(&url).await?;
        let document: Discovery = serde_json::from_slice(&body)
            .map_err(|source| FetchError::DiscoveryJson(url.clone(), source))?;
        // OIDC Discovery §4.3: a document for another issuer must not be used; it would let
        // that issuer's keys verify tokens claiming ours.
        if document.issuer != issuer {
            return Err(FetchError::IssuerMismatch {
                expected: issuer.to_owned(),
                found: document.issuer,
            });
        }
        let jwks_uri: Uri = document
            .jwks_uri
            .parse()
            .map_err(|_| FetchError::InvalidUrl(document.jwks_uri.clone()))?;
        Ok(jwks_uri)
    }

    /// One GET: checked URL, 200 only, body capped, all within `fetch_timeout` (the timeout
    /// also covers the body, so a slow-drip response cannot hold a refresh open).
    async fn get(&self, url: &Uri) -> Result<(HeaderMap, Bytes), FetchError> {
        check_key_url(url)?;
        let client = self
            .client
            .get_or_try_init(|| async { self.build_client() })
            .await?;
        let timeout = self.policy.fetch_timeout;
        let exchange = async {
            let request = Request::get(url.clone())
                .header(header::ACCEPT, "application/json")
                .header(header::USER_AGENT, USER_AGENT)
                .body(Empty::new())
                .map_err(|_| FetchError::InvalidUrl(url.to_string()))?;
            let response = client
                .request(request)
                .await
                .map_err(|source| FetchError::Request(url.clone(), Box::new(source)))?;
            if response.status() != StatusCode::OK {
                return Err(FetchError::Status(url.clone(), response.status()));
            }
            let (parts, body) = response.into_parts();
            let collected = Limited::new(body, MAX_DOCUMENT_BYTES)
                .collect()
                .await
                .map_err(
                    |source| match source.downcast::<http_body_util::LengthLimitError>() {
                        Ok(_) => FetchError::TooLarge(url.clone()),
                        Err(source) => FetchError::Body(url.clone(), source),
                    },
                )?;
            Ok((parts.headers, collected.to_bytes()))
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| FetchError::Timeout(url.clone(), timeout))?
    }

    fn build_client(&self) -> Result<HttpClient, FetchError> {
        let ca_file = match &self.source {
            KeySource::JwksUri { ca_file, .. } | KeySource::Discovery { ca_file, .. } => {
                ca_file.as_ref()
            }
            KeySource::File(_) | KeySource::Hmac(_) => None,
        };
        // One meaning of ca_file for every TLS client: extra roots (tls::client::roots).
        let roots =
            crate::tls::client::roots(ca_file.map(PathBuf::as_path)).map_err(FetchError::CaFile)?;
        let tls = tls_builder()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        // https_or_http: plain http is still refused by `check_key_url` unless loopback.
        // HTTP/1.1 only: key documents are small and rare.
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_max_idle_per_host(1)
            .build(connector))
    }
}

fn tls_builder() -> Result<rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier>, FetchError> {
    // The aws-lc-rs provider explicitly, not the process default, which may be unset.
    ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(FetchError::Tls)
}
