//! Pooled upstream clients (hyper-util legacy client over hyper-rustls), one per upstream
//! identity, reused across reloads.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::Body;

/// What makes two upstream clients interchangeable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    pub connect_timeout: Duration,
    pub max_idle: usize,
    pub max_response_header_bytes: usize,
    pub ca_file: Option<std::path::PathBuf>,
}

pub struct UpstreamClient {
    pub identity: ClientIdentity,
    pub client: Client<HttpsConnector<HttpConnector>, Body>,
}

/// Idle pooled connections are closed after this long.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// The crypto provider of every TLS context here (rustls and jsonwebtoken share aws-lc-rs).
pub fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A rustls client config trusting the system roots (webpki roots when none are found) plus
/// the PEM certificates in `ca_file`.
pub fn tls_client_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(path) = ca_file {
        let pem =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut added = 0;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert = cert.map_err(|e| format!("{}: invalid PEM: {e}", path.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("{}: unusable certificate: {e}", path.display()))?;
            added += 1;
        }
        if added == 0 {
            return Err(format!("{}: no PEM certificate found", path.display()));
        }
    }
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    rustls::ClientConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))
        .map(|builder| builder.with_root_certificates(roots).with_no_client_auth())
}

impl UpstreamClient {
    pub fn new(identity: ClientIdentity) -> Result<UpstreamClient, String> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(identity.connect_timeout));
        let tls = tls_client_config(identity.ca_file.as_deref())?;
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(identity.max_idle)
            .http1_max_buf_size(identity.max_response_header_bytes)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        Ok(UpstreamClient { identity, client })
    }
}
