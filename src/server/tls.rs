//! The TLS listener's side of a connection: the acceptor config that reload swaps, and the
//! bounded reason label of a failed handshake.
//!
//! What it does not own: reading certificate and key files and building the rustls config
//! (`crate::tls`, run by config compilation so `check` and `run` read the files the same way),
//! the handshake itself (run by `conn` in the connection's own task under
//! `handshake_timeout`), and what a verified client certificate means (`network::mtls`).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::snapshot::TlsSettings;
use crate::tls::server::{server_config, ServerFiles, TlsError};

/// The rustls config of `[server.tls]`.
pub fn listener_config(tls: &TlsSettings) -> Result<rustls::ServerConfig, TlsError> {
    server_config(&ServerFiles {
        cert_file: &tls.cert_file,
        key_file: &tls.key_file,
        client_ca_file: tls.client_ca_file.as_deref(),
        client_crl_file: tls.client_crl_file.as_deref(),
        client_cert: tls.client_cert,
    })
}

/// The TLS side of a listener; its config is swapped on reload for new connections.
pub struct TlsListener {
    pub config: ArcSwap<rustls::ServerConfig>,
    pub handshake_timeout: Duration,
}

impl TlsListener {
    pub fn new(tls: &TlsSettings) -> Result<TlsListener, TlsError> {
        Ok(TlsListener {
            config: ArcSwap::from_pointee(listener_config(tls)?),
            handshake_timeout: tls.handshake_timeout,
        })
    }

    /// New connections use `config`; open ones keep theirs.
    pub fn swap(&self, config: Arc<rustls::ServerConfig>) {
        self.config.store(config);
    }
}

/// A bounded reason label for a failed handshake.
pub fn handshake_reason(error: &io::Error) -> &'static str {
    let Some(inner) = error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    else {
        return "io";
    };
    match inner {
        rustls::Error::InvalidCertificate(_) => "bad_certificate",
        rustls::Error::NoCertificatesPresented => "no_certificate",
        rustls::Error::NoApplicationProtocol => "no_application_protocol",
        rustls::Error::PeerIncompatible(_) => "incompatible",
        rustls::Error::InvalidMessage(_) => "invalid_message",
        _ => "other",
    }
}
