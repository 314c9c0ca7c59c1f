//! PEM files -> rustls types, with rustls-pki-types' PEM parser.
//!
//! Rules, the same for every file the config names:
//! - a file that cannot be read, or whose PEM is malformed (a section without its end line,
//!   bad base64), is refused;
//! - sections of other kinds are skipped (a chain file may also hold a key, a bundle may hold
//!   comments), but a file must yield at least one item of the kind asked for: an empty or
//!   garbage file is a configuration error, never an empty trust store or CRL list;
//! - a trust root must parse as a certificate when it is added: a bundle with one broken
//!   certificate is refused whole, rather than trusted in part.
//!
//! Errors name the file and the problem, never the file's content.

use std::io;
use std::path::{Path, PathBuf};

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::RootCertStore;

/// What a PEM file was expected to hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PemItem {
    Certificate,
    PrivateKey,
    Crl,
}

impl PemItem {
    pub fn as_str(self) -> &'static str {
        match self {
            PemItem::Certificate => "certificate",
            PemItem::PrivateKey => "private key",
            PemItem::Crl => "certificate revocation list",
        }
    }
}

impl std::fmt::Display for PemItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a PEM file cannot be used. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum PemError {
    #[error("cannot read {}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: malformed PEM", .path.display())]
    Malformed {
        path: PathBuf,
        #[source]
        source: pem::Error,
    },
    #[error("{}: no PEM {item} found", .path.display())]
    Missing { path: PathBuf, item: PemItem },
    /// A certificate of a trust bundle that does not parse (1-based position in the file).
    #[error("{}: certificate {position} is not a usable trust root", .path.display())]
    Root {
        path: PathBuf,
        position: usize,
        #[source]
        source: rustls::Error,
    },
}

impl PemError {
    /// The file at fault.
    pub fn path(&self) -> &Path {
        match self {
            PemError::Read { path, .. }
            | PemError::Malformed { path, .. }
            | PemError::Missing { path, .. }
            | PemError::Root { path, .. } => path,
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, PemError> {
    std::fs::read(path).map_err(|source| PemError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Every item of type `T` in the file at `path`; at least one.
fn all<T: PemObject>(path: &Path, item: PemItem) -> Result<Vec<T>, PemError> {
    let bytes = read(path)?;
    let items = T::pem_slice_iter(&bytes)
        .collect::<Result<Vec<T>, _>>()
        .map_err(|source| PemError::Malformed {
            path: path.to_path_buf(),
            source,
        })?;
    if items.is_empty() {
        return Err(PemError::Missing {
            path: path.to_path_buf(),
            item,
        });
    }
    Ok(items)
}

/// The certificates of a PEM file (a chain: leaf first), at least one.
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, PemError> {
    all(path, PemItem::Certificate)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) of a PEM file.
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, PemError> {
    let bytes = read(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|source| match source {
        pem::Error::NoItemsFound => PemError::Missing {
            path: path.to_path_buf(),
            item: PemItem::PrivateKey,
        },
        source => PemError::Malformed {
            path: path.to_path_buf(),
            source,
        },
    })
}

/// The CRLs of a PEM file, at least one. Their content is parsed by the verifier that uses
/// them.
pub fn crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, PemError> {
    all(path, PemItem::Crl)
}

/// A trust store holding exactly the certificates of a PEM bundle, at least one, each parsed.
pub fn roots(path: &Path) -> Result<RootCertStore, PemError> {
    let mut roots = RootCertStore::empty();
    for (index, cert) in certificates(path)?.into_iter().enumerate() {
        roots.add(cert).map_err(|source| PemError::Root {
            path: path.to_path_buf(),
            position: index + 1,
            source,
        })?;
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch file removed on drop.
    struct Temp(PathBuf);

    impl Temp {
        fn new(name: &str, contents: &str) -> Temp {
            let path = std::env::temp_dir().join(format!(
                "authgate-pem-{}-{name}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            std::fs::write(&path, contents).unwrap();
            Temp(path)
        }
    }

    impl Drop for Temp {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn ca() -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    const BROKEN_DER: &str =
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n";

    #[test]
    fn a_bundle_with_certificates_and_other_sections_loads() {
        let (cert, key) = ca();
        let file = Temp::new("bundle", &format!("# comment\n{cert}{key}{cert}"));
        assert_eq!(certificates(&file.0).unwrap().len(), 2);
        assert_eq!(roots(&file.0).unwrap().len(), 2);
        assert!(private_key(&file.0).is_ok());
    }

    #[test]
    fn every_failure_names_the_file_and_the_problem() {
        let (cert, _) = ca();
        let garbage = Temp::new("garbage", "garbage\n");
        let truncated = Temp::new("truncated", &cert[..cert.len() / 2]);
        let broken = Temp::new("broken", BROKEN_DER);
        let only_cert = Temp::new("only-cert", &cert);
        let missing = std::env::temp_dir().join("authgate-pem-does-not-exist.pem");

        type Load = fn(&Path) -> Result<(), PemError>;
        let cases: [(&Path, Load, &str); 7] = [
            (&missing, |p| certificates(p).map(drop), "cannot read"),
            (
                &garbage.0,
                |p| certificates(p).map(drop),
                "no PEM certificate found",
            ),
            (
                &garbage.0,
                |p| private_key(p).map(drop),
                "no PEM private key found",
            ),
            (
                &only_cert.0,
                |p| private_key(p).map(drop),
                "no PEM private key found",
            ),
            (
                &garbage.0,
                |p| crls(p).map(drop),
                "no PEM certificate revocation list found",
            ),
            (&truncated.0, |p| roots(p).map(drop), "malformed PEM"),
            (
                &broken.0,
                |p| roots(p).map(drop),
                "certificate 1 is not a usable trust root",
            ),
        ];
        for (path, load, problem) in cases {
            let error = load(path).expect_err("refused");
            let text = error.to_string();
            assert!(
                text.starts_with(&path.display().to_string())
                    || text.contains(&path.display().to_string()),
                "{text}"
            );
            assert!(text.contains(problem), "{text} lacks {problem}");
            assert_eq!(error.path(), path);
        }
    }

    #[test]
    fn a_key_file_error_never_shows_the_key() {
        let (_, key) = ca();
        let body: String = key.lines().filter(|l| !l.starts_with("-----")).collect();
        // Cut the end line: malformed, and the parser has seen the whole key body.
        let cut = key.replace("-----END PRIVATE KEY-----", "");
        let file = Temp::new("cut-key", &cut);
        let error = private_key(&file.0).expect_err("refused");
        let chain = crate::logging::error_chain(&error);
        assert!(chain.contains("malformed PEM"), "{chain}");
        assert!(!chain.contains(&body[..16]), "{chain}");
    }
}
