//! When the TLS material of `[server.tls]` stops being valid, for
//! `authgate_certificate_expiry_timestamp_seconds` (SPEC §6): the server certificate's
//! `notAfter`, each client CA's `notAfter`, and each CRL's `nextUpdate`. Read when the config
//! is compiled (the files were just parsed there), so a reload that renews a certificate moves
//! the gauge.
//!
//! A file that cannot be read or parsed here yields no entry: compilation has refused such a
//! file already, so this only happens when a file changed in between.
//!
//! Also `jwks_x5c`: the `notAfter` of the certificate a key set publishes with a key (`x5c`,
//! RFC 7517 4.7), read when the key set is parsed and exported for the key sets in use. It is
//! only a signal that the provider's key is due for rotation: keys are never taken from, or
//! checked against, `x5c`.

use std::path::Path;

use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;

use super::pem;

/// One expiry: the metric's `kind` and `name` labels and the Unix time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiry {
    /// `server`, `client_ca`, `crl_next_update` or `upstream_client`.
    pub kind: &'static str,
    /// The certificate's subject, or the CRL's issuer.
    pub name: String,
    pub timestamp: i64,
}

/// The expiries of the listener's certificate (the leaf, first in the chain), client CAs and
/// CRLs.
pub fn of_files(
    cert_file: &Path,
    client_ca_file: Option<&Path>,
    crl_file: Option<&Path>,
) -> Vec<Expiry> {
    let mut expiries = Vec::new();
    let leaf = pem::certificates(cert_file)
        .ok()
        .into_iter()
        .flatten()
        .take(1);
    expiries.extend(leaf.filter_map(|der| certificate("server", der.as_ref())));
    if let Some(path) = client_ca_file {
        let cas = pem::certificates(path).ok().into_iter().flatten();
        expiries.extend(cas.filter_map(|der| certificate("client_ca", der.as_ref())));
    }
    if let Some(path) = crl_file {
        for der in pem::crls(path).ok().into_iter().flatten() {
            let Ok((_, crl)) = CertificateRevocationList::from_der(der.as_ref()) else {
                continue;
            };
            if let Some(next) = crl.next_update() {
                expiries.push(Expiry {
                    kind: "crl_next_update",
                    name: crl.issuer().to_string(),
                    timestamp: next.timestamp(),
                });
            }
        }
    }
    expiries
}

/// The `notAfter` of the first certificate of a JWK's `x5c` (the key's own certificate;
/// standard base64 DER). `None` without `x5c`, or when it does not decode or parse.
pub fn x5c_not_after(jwk: &serde_json::Value) -> Option<i64> {
    use base64::Engine as _;
    let first = jwk.get("x5c")?.as_array()?.first()?.as_str()?;
    let der = base64::engine::general_purpose::STANDARD
        .decode(first)
        .ok()?;
    let (_, cert) = X509Certificate::from_der(&der).ok()?;
    Some(cert.validity().not_after.timestamp())
}

/// The expiry of an upstream's client certificate (the leaf), named after the upstream.
pub fn upstream_client(upstream: &str, cert_file: &Path) -> Option<Expiry> {
    let leaf = pem::certificates(cert_file).ok()?.into_iter().next()?;
    let mut expiry = certificate("upstream_client", leaf.as_ref())?;
    expiry.name = upstream.to_owned();
    Some(expiry)
}

fn certificate(kind: &'static str, der: &[u8]) -> Option<Expiry> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    Some(Expiry {
        kind,
        name: cert.subject().to_string(),
        timestamp: cert.validity().not_after.timestamp(),
    })
}
