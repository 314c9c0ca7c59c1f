//! Pooled upstream clients (hyper-util legacy client over hyper-rustls), one per upstream
//! identity, reused across reloads while nothing that shapes the connections changed (the
//! TLS files' contents included, so a renewed client certificate takes effect at reload).
//!
//! Protocols (`protocol`): `http1`; `h2c` (HTTP/2 over plain TCP, prior knowledge); `h2`
//! (HTTP/2 over TLS, ALPN `h2` only); `auto` (TLS offers ALPN `h2` and `http/1.1` and uses
//! what the server picks; plain TCP uses HTTP/1.1). Trust: `tls::client` (`ca_file` adds to
//! the system roots).

use std::path::PathBuf;
use std::time::Duration;

use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::aged::AgedConnector;
use super::Body;
use crate::tls::client::{ClientAuth, ClientTlsError};

/// `protocol` of an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http1,
    H2c,
    H2,
    Auto,
}

impl Protocol {
    /// Whether requests may go out over HTTP/2.
    pub fn may_use_h2(self) -> bool {
        match self {
            Protocol::Http1 => false,
            Protocol::H2c | Protocol::H2 | Protocol::Auto => true,
        }
    }

    pub fn from_name(name: &str) -> Option<Protocol> {
        match name {
            "http1" => Some(Protocol::Http1),
            "h2c" => Some(Protocol::H2c),
            "h2" => Some(Protocol::H2),
            "auto" => Some(Protocol::Auto),
            _ => None,
        }
    }
}

/// What makes two upstream clients interchangeable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    pub connect_timeout: Duration,
    pub max_idle: usize,
    pub max_response_header_bytes: usize,
    pub protocol: Protocol,
    pub ca_file: Option<PathBuf>,
    /// `client_cert_file` and `client_key_file`.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// SHA-256 over the contents of the files above: a reload with renewed files builds a new
    /// client.
    pub files_digest: [u8; 32],
}

pub struct UpstreamClient {
    pub identity: ClientIdentity,
    pub client: Client<AgedConnector<HttpsConnector<HttpConnector>>, Body>,
}

/// Idle pooled connections are closed after this long.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

impl UpstreamClient {
    pub fn new(identity: ClientIdentity) -> Result<UpstreamClient, ClientTlsError> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(identity.connect_timeout));
        let client_auth = match &identity.client_cert {
            Some((cert, key)) => Some(ClientAuth::load(cert, key)?),
            None => None,
        };
        let tls = crate::tls::client::config(identity.ca_file.as_deref(), client_auth)?;
        let builder = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http();
        let connector = match identity.protocol {
            Protocol::Http1 => builder.enable_http1().wrap_connector(http),
            Protocol::H2c | Protocol::H2 => builder.enable_http2().wrap_connector(http),
            Protocol::Auto => builder.enable_all_versions().wrap_connector(http),
        };
        let mut client = Client::builder(TokioExecutor::new());
        client
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(identity.max_idle)
            .http1_max_buf_size(identity.max_response_header_bytes)
            .http2_max_header_list_size(
                u32::try_from(identity.max_response_header_bytes).unwrap_or(u32::MAX),
            )
            .http2_only(matches!(identity.protocol, Protocol::H2c | Protocol::H2))
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new());
        let client = client.build(AgedConnector(connector));
        Ok(UpstreamClient { identity, client })
    }
}
