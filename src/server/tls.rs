//! The TLS listener's side of a connection: the acceptor config that reload swaps.
//!
//! What it does not own: reading certificate and key files and building the rustls config
//! (`crate::tls`, run by config compilation so `check`, `run` and reload read the files the
//! same way; a broken file is a config error),
//! the handshake itself (run by `conn` in the connection's own task under
//! `handshake_timeout`), why one failed (`crate::tls::HandshakeFailure`), and what a verified
//! client certificate means (`network::mtls`).

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
