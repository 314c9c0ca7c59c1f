//! A verified client certificate -> the identity the pipeline and the upstream see: its
//! SHA-256 fingerprint (RFC 8705 certificate-bound tokens, `X-Client-Cert-SHA256`) and its
//! subject as an RFC 4514 string (`X-Client-Cert-Subject`, SPEC §4).
//!
//! Only certificates that rustls has already verified against `client_ca_file` reach this
//! module; it decides nothing about trust.

use http::HeaderValue;
use rustls::pki_types::CertificateDer;

/// A verified client certificate of the connection.
#[derive(Debug, Clone)]
pub struct ClientCert {
    pub sha256: [u8; 32],
    /// Lowercase hex of the SHA-256 of the DER.
    pub sha256_hex: HeaderValue,
    /// RFC 4514 subject, most specific first.
    pub subject: HeaderValue,
}

/// The identity of a DER certificate; `None` if it does not parse.
pub fn client_cert(der: &CertificateDer<'_>) -> Option<ClientCert> {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der.as_ref());
    let mut sha256 = [0u8; 32];
    sha256.copy_from_slice(digest.as_ref());
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    let subject = rfc4514(cert.subject());
    Some(ClientCert {
        sha256,
        sha256_hex: HeaderValue::from_str(&hex::encode(sha256)).ok()?,
        subject: HeaderValue::from_str(&subject).ok()?,
    })
}

/// RFC 4514: RDNs in reverse order of the encoding, `,` between them, `+` inside multi-valued
/// RDNs, and special characters escaped.
pub fn rfc4514(name: &x509_parser::x509::X509Name<'_>) -> String {
    let registry = x509_parser::objects::oid_registry();
    let mut rdns = Vec::new();
    for rdn in name.iter_rdn() {
        let mut parts = Vec::new();
        for attr in rdn.iter() {
            let oid = attr.attr_type();
            let key = match x509_parser::objects::oid2sn(oid, registry) {
                Ok("commonName") | Ok("CN") => "CN".to_owned(),
                Ok(short) => short_name(short).unwrap_or(short).to_owned(),
                Err(_) => oid.to_id_string(),
            };
            let value = match attr.as_str() {
                Ok(text) => escape_rfc4514(text),
                Err(_) => format!("#{}", hex::encode(attr.attr_value().data)),
            };
            parts.push(format!("{key}={value}"));
        }
        rdns.push(parts.join("+"));
    }
    rdns.reverse();
    rdns.join(",")
}

fn short_name(long: &str) -> Option<&'static str> {
    Some(match long {
        "countryName" | "C" => "C",
        "stateOrProvinceName" | "ST" => "ST",
        "localityName" | "L" => "L",
        "organizationName" | "O" => "O",
        "organizationalUnitName" | "OU" => "OU",
        "streetAddress" => "STREET",
        "domainComponent" | "DC" => "DC",
        "userId" | "UID" => "UID",
        _ => return None,
    })
}

fn escape_rfc4514(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (index, c) in value.chars().enumerate() {
        let special = matches!(c, '"' | '+' | ',' | ';' | '<' | '>' | '\\')
            || (index == 0 && matches!(c, ' ' | '#'))
            || (index == last && c == ' ');
        if special {
            out.push('\\');
        }
        if c.is_control() {
            out.push_str(&format!("\\{:02x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}
