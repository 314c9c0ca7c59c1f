//! TLS client settings shared by every outgoing TLS connection the config names: upstreams
//! (`[[upstreams]] ca_file`, `client_cert_file`) and key fetchers (`[[issuers]] ca_file`).
//!
//! THE meaning of `ca_file`, everywhere: **extra roots, added to the defaults** (SPEC §2:
//! "extra roots ... default: the system roots"). The defaults are the system trust store
//! (`/etc/ssl/certs` and the like, through rustls-native-certs, as OpenSSL finds it); only
//! when the system has no usable root at all (a scratch container without a CA bundle) are
//! the bundled Mozilla roots (webpki-roots) used instead. A private CA in `ca_file` therefore
//! never takes away the public roots; an operator who wants only the private CA pins it at
//! the network level or on the peer. [`roots`] is the one function that decides this.
//!
//! Layer: below `auth` and `proxy`; it never logs and never shows a file's content.

use std::path::Path;
use std::sync::OnceLock;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use super::pem::{self, PemError};

/// Why a client TLS setting cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ClientTlsError {
    #[error("ca_file")]
    CaFile(#[source] PemError),
    #[error("client_cert_file")]
    Cert(#[source] PemError),
    #[error("client_key_file")]
    Key(#[source] PemError),
    #[error("client certificate and key do not fit together")]
    Mismatch(#[source] rustls::Error),
    #[error("tls settings")]
    Tls(#[source] rustls::Error),
}

/// The default roots: the system's, else the bundled Mozilla roots. Read once per process.
fn default_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut roots = RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(native.certs);
        if roots.is_empty() {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        roots
    })
}

/// The trust roots of a TLS client: the defaults plus every certificate of `ca_file`.
pub fn roots(ca_file: Option<&Path>) -> Result<RootCertStore, PemError> {
    let mut roots = default_roots().clone();
    if let Some(path) = ca_file {
        let extra = pem::roots(path)?;
        roots.roots.extend(extra.roots);
    }
    Ok(roots)
}

/// A client certificate chain and its key, as read from the config's files.
pub struct ClientAuth {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl ClientAuth {
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<ClientAuth, ClientTlsError> {
        Ok(ClientAuth {
            chain: pem::certificates(cert_file).map_err(ClientTlsError::Cert)?,
            key: pem::private_key(key_file).map_err(ClientTlsError::Key)?,
        })
    }
}

/// A rustls client config: [`roots`] of `ca_file`, and `client_auth` when given.
pub fn config(
    ca_file: Option<&Path>,
    client_auth: Option<ClientAuth>,
) -> Result<ClientConfig, ClientTlsError> {
    let roots = roots(ca_file).map_err(ClientTlsError::CaFile)?;
    let builder = ClientConfig::builder_with_provider(super::crypto_provider())
        .with_safe_default_protocol_versions()
        .map_err(ClientTlsError::Tls)?
        .with_root_certificates(roots);
    match client_auth {
        None => Ok(builder.with_no_client_auth()),
        Some(auth) => builder
            .with_client_auth_cert(auth.chain, auth.key)
            .map_err(ClientTlsError::Mismatch),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_file_adds_to_the_default_roots() {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).expect("cert");
        let path =
            std::env::temp_dir().join(format!("authgate-client-roots-{}.pem", std::process::id()));
        std::fs::write(&path, cert.pem()).expect("write");
        let defaults = roots(None).expect("defaults").len();
        let with_file = roots(Some(&path)).expect("with ca_file").len();
        let _ = std::fs::remove_file(&path);
        assert!(defaults > 0, "some default roots");
        assert_eq!(with_file, defaults + 1, "ca_file adds, never replaces");
    }
}
