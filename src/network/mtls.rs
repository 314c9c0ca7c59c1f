//! A verified client certificate -> the identity the pipeline and the upstream see: its
//! SHA-256 fingerprint (RFC 8705 certificate-bound tokens, `X-Client-Cert-SHA256`) and its
//! subject as an RFC 4514 string (`X-Client-Cert-Subject`, SPEC §4).
//!
//! Only certificates that rustls has already verified against `client_ca_file` reach this
//! module; it decides nothing about trust. The subject is attacker-chosen text inside a
//! trusted envelope (any CA-issued name), so its rendering must be unambiguous and must never
//! carry bytes an upstream or a log viewer could misread. The rules (RFC 4514):
//!
//! - RDN order: the reverse of the encoding (most specific first), `,` between RDNs, `+`
//!   inside a multi-valued RDN (in encoding order);
//! - attribute type: the standard short names CN, L, ST, O, OU, C, STREET, DC, UID (§3); any
//!   other type as its dotted OID;
//! - the value of a short-named type with one text reading (UTF8String, PrintableString,
//!   IA5String, NumericString, BMPString, UniversalString): its text, escaped as below;
//! - any other value (every dotted type; TeletexString and non-string values): `#` and the
//!   hex of the whole BER value, tag and length included (§2.4);
//! - `"` `+` `,` `;` `<` `>` `\`, a leading space or `#`, a trailing space: `\` before it;
//! - every byte that is not printable ASCII (C0 and C1 controls, DEL, every non-ASCII
//!   character, bidi controls and line separators included): `\XX`, uppercase hex, once per
//!   UTF-8 byte (a C1 control is two bytes in UTF-8, so two escapes).
//!
//! The result is always printable ASCII, so it is always a valid header value and one log
//! token.

use std::fmt::Write as _;

use http::HeaderValue;
use rustls::pki_types::CertificateDer;
use x509_parser::asn1_rs::{Any, BmpString, Tag, ToDer, UniversalString};
use x509_parser::x509::{AttributeTypeAndValue, X509Name};

/// A verified client certificate of the connection.
#[derive(Debug, Clone)]
pub struct ClientCert {
    pub sha256: [u8; 32],
    /// Lowercase hex of the SHA-256 of the DER.
    pub sha256_hex: HeaderValue,
    /// RFC 4514 subject, most specific first; printable ASCII only.
    pub subject: HeaderValue,
}

/// The identity of a DER certificate; `None` if it does not parse (no identity is better
/// than a partial one: a route that requires a certificate then refuses).
pub fn client_cert(der: &CertificateDer<'_>) -> Option<ClientCert> {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der.as_ref());
    let mut sha256 = [0u8; 32];
    sha256.copy_from_slice(digest.as_ref());
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    let subject = rfc4514(cert.subject())?;
    Some(ClientCert {
        sha256,
        sha256_hex: HeaderValue::from_str(&hex::encode(sha256)).ok()?,
        subject: HeaderValue::from_str(&subject).ok()?,
    })
}

/// The RFC 4514 string of a name (see the module doc); `None` only if a value cannot be
/// re-encoded.
pub fn rfc4514(name: &X509Name<'_>) -> Option<String> {
    let mut rdns = Vec::new();
    for rdn in name.iter_rdn() {
        let mut parts = Vec::new();
        for attr in rdn.iter() {
            parts.push(attribute(attr)?);
        }
        rdns.push(parts.join("+"));
    }
    rdns.reverse();
    Some(rdns.join(","))
}

/// `type=value` of one attribute.
fn attribute(attr: &AttributeTypeAndValue<'_>) -> Option<String> {
    let oid = attr.attr_type().to_id_string();
    let mut out = String::new();
    let text = match short_name(&oid) {
        Some(short) => {
            out.push_str(short);
            text_value(attr.attr_value())
        }
        None => {
            out.push_str(&oid);
            None
        }
    };
    out.push('=');
    match text {
        Some(text) => escape_value(&text, &mut out),
        None => {
            let ber = attr.attr_value().to_der_vec().ok()?;
            out.push('#');
            out.push_str(&hex::encode_upper(ber));
        }
    }
    Some(out)
}

/// RFC 4514 section 3: the short names every implementation knows.
fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.6" => "C",
        "2.5.4.9" => "STREET",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

/// The text of a value of a string type with one Unicode reading; `None` for any other type
/// or a malformed string (then rendered as `#hex`).
fn text_value(value: &Any<'_>) -> Option<String> {
    match value.tag() {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String | Tag::NumericString => {
            std::str::from_utf8(value.data).ok().map(str::to_owned)
        }
        // UCS-2: an odd length is malformed (asn1-rs would read a lone byte as a character).
        Tag::BmpString if value.data.len() % 2 == 0 => {
            BmpString::try_from(value).ok().map(|s| s.string())
        }
        Tag::UniversalString => UniversalString::try_from(value).ok().map(|s| s.string()),
        _ => None,
    }
}

/// Appends `value` escaped per RFC 4514 section 2.4 (see the module doc), byte by byte.
fn escape_value(value: &str, out: &mut String) {
    let bytes = value.as_bytes();
    let last = bytes.len().saturating_sub(1);
    for (index, &byte) in bytes.iter().enumerate() {
        match byte {
            b'"' | b'+' | b',' | b';' | b'<' | b'>' | b'\\' => {
                out.push('\\');
                out.push(char::from(byte));
            }
            b' ' | b'#' if index == 0 => {
                out.push('\\');
                out.push(char::from(byte));
            }
            b' ' if index == last => out.push_str("\\ "),
            0x20..=0x7e => out.push(char::from(byte)),
            _ => {
                let _ = write!(out, "\\{byte:02X}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rcgen::{CertificateParams, DistinguishedName, DnType, DnValue, KeyPair};

    use super::*;

    const STREET: &[u64] = &[2, 5, 4, 9];
    const DC: &[u64] = &[0, 9, 2342, 19_200_300, 100, 1, 25];
    const UID: &[u64] = &[0, 9, 2342, 19_200_300, 100, 1, 1];
    const EMAIL: &[u64] = &[1, 2, 840, 113_549, 1, 9, 1];

    /// A self-signed certificate whose subject holds `attributes` in encoding order.
    fn cert(attributes: Vec<(DnType, DnValue)>) -> CertificateDer<'static> {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        let mut name = DistinguishedName::new();
        for (ty, value) in attributes {
            name.push(ty, value);
        }
        params.distinguished_name = name;
        let key = KeyPair::generate().expect("key");
        params.self_signed(&key).expect("certificate").der().clone()
    }

    fn subject(attributes: Vec<(DnType, DnValue)>) -> String {
        let identity = client_cert(&cert(attributes)).expect("identity");
        let text = identity.subject.to_str().expect("ascii header").to_owned();
        assert!(text.bytes().all(|b| (0x20..0x7f).contains(&b)), "{text:?}");
        text
    }

    fn cn(value: &str) -> String {
        subject(vec![(DnType::CommonName, value.into())])
    }

    fn custom(oid: &[u64]) -> DnType {
        DnType::CustomDnType(oid.to_vec())
    }

    #[test]
    fn standard_short_names_most_specific_first() {
        let text = subject(vec![
            (
                DnType::CountryName,
                DnValue::PrintableString("DE".try_into().unwrap()),
            ),
            (DnType::StateOrProvinceName, "Bavaria".into()),
            (DnType::LocalityName, "Munich".into()),
            (custom(STREET), "Main St 1".into()),
            (DnType::OrganizationName, "Acme".into()),
            (DnType::OrganizationalUnitName, "Platform".into()),
            (
                custom(DC),
                DnValue::Ia5String("example".try_into().unwrap()),
            ),
            (custom(UID), "u-7".into()),
            (DnType::CommonName, "svc".into()),
        ]);
        assert_eq!(
            text,
            "CN=svc,UID=u-7,DC=example,OU=Platform,O=Acme,STREET=Main St 1,L=Munich,ST=Bavaria,C=DE"
        );
    }

    /// RFC 4514 section 2.4: every byte that is not printable ASCII, as `\XX` per UTF-8 byte.
    #[test]
    fn values_are_ascii_with_utf8_bytes_escaped() {
        let cases: &[(&str, &str)] = &[
            ("plain", "CN=plain"),
            ("J\u{fc}rgen", "CN=J\\C3\\BCrgen"),
            // Bidi override: would reorder what a log viewer shows.
            ("abc\u{202e}gpj.exe", "CN=abc\\E2\\80\\AEgpj.exe"),
            ("a\u{2028}b", "CN=a\\E2\\80\\A8b"),
            // C1 control (NEL): its UTF-8 bytes, not its code point.
            ("a\u{85}b", "CN=a\\C2\\85b"),
            // C0 controls and DEL.
            ("a\nb\rc\td", "CN=a\\0Ab\\0Dc\\09d"),
            ("a\u{0}b\u{7f}", "CN=a\\00b\\7F"),
            ("\u{1f600}", "CN=\\F0\\9F\\98\\80"),
            // Special characters.
            ("a,b+c;d<e>f\"g\\h", "CN=a\\,b\\+c\\;d\\<e\\>f\\\"g\\\\h"),
            ("#lead", "CN=\\#lead"),
            (" both ", "CN=\\ both\\ "),
            ("mid # and = kept", "CN=mid # and = kept"),
        ];
        for (value, expected) in cases {
            assert_eq!(cn(value), *expected, "value {value:?}");
        }
    }

    #[test]
    fn string_types_other_than_utf8_are_decoded() {
        let bmp = DnValue::BmpString("Zo\u{eb}".try_into().unwrap());
        assert_eq!(subject(vec![(DnType::CommonName, bmp)]), "CN=Zo\\C3\\AB");
        let universal = DnValue::UniversalString("\u{e9}t\u{e9}".try_into().unwrap());
        assert_eq!(
            subject(vec![(DnType::CommonName, universal)]),
            "CN=\\C3\\A9t\\C3\\A9"
        );
    }

    /// RFC 4514 section 2.4: a type without a standard short name is written as its dotted
    /// OID with `#` and the hex of the whole BER value (tag, length, content); so is a value
    /// without a string form.
    #[test]
    fn other_types_and_values_are_hex_of_the_whole_ber_value() {
        let email = DnValue::Ia5String("a@b".try_into().unwrap());
        assert_eq!(
            subject(vec![
                (custom(EMAIL), email),
                (DnType::CommonName, "x".into())
            ]),
            "CN=x,1.2.840.113549.1.9.1=#1603614062"
        );
        // TeletexString (tag 0x14) has no unambiguous text form here.
        let teletex = DnValue::TeletexString("ab".try_into().unwrap());
        assert_eq!(
            subject(vec![(DnType::OrganizationName, teletex)]),
            "O=#14026162"
        );
    }

    /// Test-only reader of RFC 4514 escapes: `\` + special, or `\XX`.
    fn unescape(text: &str) -> Vec<u8> {
        let bytes = text.as_bytes();
        let mut out = Vec::new();
        let mut index = 0;
        while index < bytes.len() {
            if bytes[index] == b'\\' {
                let next = bytes[index + 1];
                if next.is_ascii_hexdigit()
                    && bytes.get(index + 2).is_some_and(u8::is_ascii_hexdigit)
                {
                    out.push(u8::from_str_radix(&text[index + 1..index + 3], 16).unwrap());
                    index += 3;
                } else {
                    out.push(next);
                    index += 2;
                }
            } else {
                out.push(bytes[index]);
                index += 1;
            }
        }
        out
    }

    proptest::proptest! {
        /// Any text: printable ASCII out, the exact UTF-8 bytes back, no unescaped separator.
        #[test]
        fn escaping_is_ascii_and_lossless(value in "\\PC*|[\\x00-\\x{10ffff}]{0,12}") {
            let mut out = String::new();
            escape_value(&value, &mut out);
            proptest::prop_assert!(out.bytes().all(|b| (0x20..0x7f).contains(&b)), "{out:?}");
            proptest::prop_assert_eq!(unescape(&out), value.as_bytes());
        }
    }
}
