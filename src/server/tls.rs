//! The TLS listener's side of a connection: the acceptor config that reload swaps, and the
//! bounded reason label of a failed handshake.
//!
//! What it does not own: reading certificate and key files and building the rustls config
//! (`crate::tls`, run by config compilation so `check`, `run` and reload read the files the
//! same way; a broken file is a config error),
//! the handshake itself (run by `conn` in the connection's own task under
//! `handshake_timeout`), and what a verified client certificate means (`network::mtls`).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::snapshot::TlsSettings;

/// The TLS side of a listener; its config is swapped on reload for new connections.
pub struct TlsListener {
    pub config: ArcSwap<rustls::ServerConfig>,
    pub handshake_timeout: Duration,
}

impl TlsListener {
    pub fn new(tls: &TlsSettings) -> TlsListener {
        TlsListener {
            config: ArcSwap::new(Arc::clone(&tls.server_config)),
            handshake_timeout: tls.handshake_timeout,
        }
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
