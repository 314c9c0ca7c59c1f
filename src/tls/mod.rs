//! TLS material: the files a config names (certificates, private keys, CRLs, trust roots)
//! turned into rustls types, and the crypto provider every TLS context here uses.
//!
//! This is the ONE place that reads PEM files and builds trust stores:
//! - [`pem`]: PEM files -> certificates, keys, CRLs, root stores, with one error type
//!   ([`PemError`]) that names the file and the problem;
//! - [`server`]: `[server.tls]` -> the listener's `rustls::ServerConfig`, with
//!   [`server::TlsError`] naming the `[server.tls]` key at fault;
//! - [`handshake`]: why a client's handshake failed, as a closed set of metric labels.
//!
//! - [`client`]: the TLS client settings of upstreams and key fetchers; THE meaning of
//!   `ca_file` (extra roots added to the system roots) lives there, once.
//!
//! Its users: config compilation (the listener config, so that `check` and `run` read the same
//! files the same way), the upstream client (`proxy::client`) and the key fetcher
//! (`auth::jwks`).
//!
//! Layer: below `auth`, `proxy`, `config` and `server`; it names none of them. It never logs
//! and never puts file contents in an error (a key file's bytes are secret).

pub mod client;
pub mod expiry;
pub mod handshake;
pub mod pem;
pub mod server;

use std::sync::Arc;

pub use handshake::HandshakeFailure;
pub use pem::PemError;

/// The crypto provider of every TLS context here (rustls and jsonwebtoken share aws-lc-rs).
/// Explicit rather than the process default, which may be unset.
pub fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}
