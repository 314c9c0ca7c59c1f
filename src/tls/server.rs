//! `[server.tls]` -> the listener's `rustls::ServerConfig` (SPEC §2, §4).
//!
//! Rules:
//! - TLS 1.2 and 1.3 (rustls' safe defaults), ALPN `h2` then `http/1.1`;
//! - the certificate chain and the private key must be usable together: a key rustls cannot
//!   load, a leaf that does not parse, or a key that does not match the leaf's public key is
//!   refused here, before anything listens (and not at the first handshake);
//! - client certificates: `off` asks for none; `optional` and `required` verify against
//!   exactly the roots of `client_ca_file` (never the system roots) and the CRLs of
//!   `client_crl_file`. In `optional` mode a client may present no certificate, but one that
//!   is presented must verify, or the handshake fails.
//!
//! Config compilation calls [`server_config`], so `check`, `run` and reload read these files
//! the same way. Every [`TlsError`] knows the `[server.tls]` file it belongs to
//! ([`TlsError::file`]), so a config error names the key and the file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::{VerifierBuilderError, WebPkiClientVerifier};
use rustls::sign::{CertifiedKey, SingleCertAndKey};

use super::pem::{self, PemError};

/// Whether the TLS listener asks for client certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientCertMode {
    Off,
    Optional,
    Required,
}

/// The files of a TLS listener and its client certificate mode.
#[derive(Debug, Clone, Copy)]
pub struct ServerFiles<'a> {
    pub cert_file: &'a Path,
    pub key_file: &'a Path,
    /// Needed unless `client_cert` is `Off` (the config compiler enforces it; without it no
    /// client certificate is asked for).
    pub client_ca_file: Option<&'a Path>,
    pub client_crl_file: Option<&'a Path>,
    pub client_cert: ClientCertMode,
}

/// The `[server.tls]` file a [`TlsError`] belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFile {
    Cert,
    Key,
    ClientCa,
    ClientCrl,
}

impl TlsFile {
    /// The config key naming the file.
    pub fn key(self) -> &'static str {
        match self {
            TlsFile::Cert => "server.tls.cert_file",
            TlsFile::Key => "server.tls.key_file",
            TlsFile::ClientCa => "server.tls.client_ca_file",
            TlsFile::ClientCrl => "server.tls.client_crl_file",
        }
    }
}

/// Why the listener's TLS material was refused. The PEM variants show the [`PemError`]
/// itself (it names the file); [`TlsError::file`] names the setting.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(transparent)]
    CertFile(PemError),
    #[error(transparent)]
    KeyFile(PemError),
    #[error(transparent)]
    ClientCaFile(PemError),
    #[error(transparent)]
    ClientCrlFile(PemError),
    /// The leaf certificate does not parse.
    #[error("{}: invalid certificate", .path.display())]
    Certificate {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    /// A key of a type or encoding the crypto provider does not support.
    #[error("{}: unusable private key", .path.display())]
    Key {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("{}: the private key does not match the certificate in {}", .key.display(), .cert.display())]
    KeyMismatch { key: PathBuf, cert: PathBuf },
    /// A CRL that does not parse (or a client CA the verifier refuses).
    #[error("{}: refused by the client certificate verifier", .path.display())]
    Verifier {
        path: PathBuf,
        #[source]
        source: VerifierBuilderError,
    },
    #[error("cannot configure the tls protocol versions")]
    Protocol(#[source] rustls::Error),
}

impl TlsError {
    /// The `[server.tls]` file at fault.
    pub fn file(&self) -> TlsFile {
        match self {
            TlsError::CertFile(_) | TlsError::Certificate { .. } | TlsError::Protocol(_) => {
                TlsFile::Cert
            }
            TlsError::KeyFile(_) | TlsError::Key { .. } | TlsError::KeyMismatch { .. } => {
                TlsFile::Key
            }
            TlsError::ClientCaFile(_) => TlsFile::ClientCa,
            TlsError::ClientCrlFile(_) => TlsFile::ClientCrl,
            // VerifierBuilderError is non-exhaustive: anything but a CRL is about the roots.
            TlsError::Verifier { source, .. } => match source {
                VerifierBuilderError::InvalidCrl(_) => TlsFile::ClientCrl,
                _ => TlsFile::ClientCa,
            },
        }
    }
}

/// Builds the listener's rustls config, reading every file it names.
pub fn server_config(files: &ServerFiles<'_>) -> Result<rustls::ServerConfig, TlsError> {
    let provider = super::crypto_provider();
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Protocol)?;
    let builder = match (files.client_cert, files.client_ca_file) {
        (ClientCertMode::Off, _) | (_, None) => builder.with_no_client_auth(),
        (mode, Some(ca_file)) => {
            let roots = pem::roots(ca_file).map_err(TlsError::ClientCaFile)?;
            let mut verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider));
            if let Some(crl_file) = files.client_crl_file {
                verifier =
                    verifier.with_crls(pem::crls(crl_file).map_err(TlsError::ClientCrlFile)?);
            }
            let verifier = match mode {
                ClientCertMode::Optional => verifier.allow_unauthenticated(),
                ClientCertMode::Required | ClientCertMode::Off => verifier,
            };
            let verifier = verifier.build().map_err(|source| TlsError::Verifier {
                path: match &source {
                    VerifierBuilderError::InvalidCrl(_) => {
                        files.client_crl_file.unwrap_or(ca_file).to_path_buf()
                    }
                    _ => ca_file.to_path_buf(),
                },
                source,
            })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let certified = certified_key(files, &provider)?;
    let mut config = builder.with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The certificate chain and its key, checked to belong together.
fn certified_key(
    files: &ServerFiles<'_>,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let chain = pem::certificates(files.cert_file).map_err(TlsError::CertFile)?;
    let key = pem::private_key(files.key_file).map_err(TlsError::KeyFile)?;
    let key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|source| TlsError::Key {
            path: files.key_file.to_path_buf(),
            source,
        })?;
    let certified = CertifiedKey::new(chain, key);
    match certified.keys_match() {
        // As rustls' own `with_single_cert`: a key that cannot name its public key is not
        // treated as a mismatch.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(certified)
        }
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(TlsError::KeyMismatch {
                key: files.key_file.to_path_buf(),
                cert: files.cert_file.to_path_buf(),
            })
        }
        Err(source) => Err(TlsError::Certificate {
            path: files.cert_file.to_path_buf(),
            source,
        }),
    }
}
