//! Pooled upstream clients (hyper-util legacy client over hyper-rustls), one per upstream
//! identity, reused across reloads.

use std::path::Path;
use std::time::Duration;

use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::Body;
use crate::tls;

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

/// A rustls client config trusting the system roots (webpki roots when none are found) plus
/// the PEM certificates in `ca_file`.
pub fn tls_client_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    let mut roots = match ca_file {
        Some(path) => tls::pem::roots(path).map_err(|e| crate::logging::error_chain(&e))?,
        None => rustls::RootCertStore::empty(),
    };
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    rustls::ClientConfig::builder_with_provider(tls::crypto_provider())
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
