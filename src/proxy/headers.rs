//! Request and response header rewriting (SPEC §4).
//!
//! Order matters: first everything the client must not control is removed (hop-by-hop
//! headers, every header its `Connection` names, identity headers in any `-`/`_` spelling,
//! proxy headers an untrusted peer sent), then the gateway adds its own. So a client can
//! neither spoof an identity header nor remove one the gateway sets.
//!
//! What an upstream may trust (the README's list): the identity headers, `X-Client-Cert-*`,
//! `X-Forwarded-For` (its last entry is the gateway's peer), `X-Forwarded-Proto`,
//! `X-Forwarded-Host` and `X-Request-Id`. The other proxy headers (`Forwarded`, `X-Real-IP`,
//! `X-Client-IP`, `True-Client-IP`, `X-Forwarded-Port`, `X-Forwarded-Prefix`,
//! `X-Forwarded-Server`) arrive only from a trusted proxy, unchanged, so they are exactly as
//! trustworthy as that proxy; URL overrides (`X-Original-URL`, `X-Rewrite-URL`) never arrive:
//! some frameworks route by them, which would let a client reach a path other than the one
//! the gateway authorized.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::header_names::{
    FORWARDED, TRUE_CLIENT_IP, X_AUTH_CLIENT_ID, X_AUTH_ISSUER, X_AUTH_KEY_ID, X_AUTH_PREFIX,
    X_AUTH_SCOPES, X_AUTH_SUBJECT, X_CLIENT_CERT_PREFIX, X_CLIENT_CERT_SHA256,
    X_CLIENT_CERT_SUBJECT, X_CLIENT_IP, X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PORT,
    X_FORWARDED_PREFIX, X_FORWARDED_PROTO, X_FORWARDED_SERVER, X_ORIGINAL_URL, X_REAL_IP,
    X_REQUEST_ID, X_REWRITE_URL,
};

/// Hop-by-hop headers (RFC 9110 7.6.1 plus the legacy ones), removed in both directions.
static HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// True for a WebSocket upgrade request: `Connection: upgrade` and `Upgrade: websocket`.
pub fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    let connection_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .any(|value| tokens(value).any(|token| token.eq_ignore_ascii_case("upgrade")));
    connection_upgrade
        && headers
            .get_all(header::UPGRADE)
            .iter()
            .any(|value| tokens(value).any(|token| token.eq_ignore_ascii_case("websocket")))
}

fn tokens(value: &HeaderValue) -> impl Iterator<Item = &str> {
    value
        .to_str()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Removes hop-by-hop headers and every header named in `Connection`. With `keep_upgrade`
/// (a WebSocket upgrade), `Upgrade` survives and `Connection: upgrade` is set again.
pub fn remove_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(tokens)
        .filter_map(|token| HeaderName::from_bytes(token.as_bytes()).ok())
        .collect();
    for name in named {
        if !(keep_upgrade && name == header::UPGRADE) {
            headers.remove(name);
        }
    }
    for name in &HOP_BY_HOP {
        if !(keep_upgrade && *name == header::UPGRADE) {
            headers.remove(name);
        }
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// The request carries exactly `TE: trailers` (the one TE value HTTP/2 allows; gRPC needs
/// it end to end).
pub fn te_trailers(headers: &HeaderMap) -> bool {
    let mut values = headers.get_all(header::TE).iter();
    matches!(
        (values.next(), values.next()),
        (Some(value), None) if value.as_bytes().trim_ascii().eq_ignore_ascii_case(b"trailers")
    )
}

/// `name` equals `pattern` (lowercase, `-`) when `_` is read as `-`.
fn eq_dash(name: &[u8], pattern: &[u8]) -> bool {
    name.len() == pattern.len()
        && name
            .iter()
            .zip(pattern)
            .all(|(a, b)| a == b || (*a == b'_' && *b == b'-'))
}

fn starts_with_dash(name: &[u8], prefix: &[u8]) -> bool {
    name.len() >= prefix.len() && eq_dash(&name[..prefix.len()], prefix)
}

/// True for a header the client must never send upstream: `X-Auth-*`, `X-Client-Cert-*`, or a
/// configured claim header (`claim_names` lowercase with `-`), in any `-`/`_` spelling.
pub fn is_identity_header(name: &HeaderName, claim_names: &[String]) -> bool {
    let name = name.as_str().as_bytes();
    starts_with_dash(name, X_AUTH_PREFIX.as_bytes())
        || starts_with_dash(name, X_CLIENT_CERT_PREFIX.as_bytes())
        || claim_names
            .iter()
            .any(|claim| eq_dash(name, claim.as_bytes()))
}

/// Headers a `claim_headers` entry may not name: the gateway's own and hop-by-hop ones.
pub fn is_reserved(name: &HeaderName) -> bool {
    const OWN: [HeaderName; 12] = [
        X_AUTH_SUBJECT,
        X_AUTH_ISSUER,
        X_AUTH_CLIENT_ID,
        X_AUTH_SCOPES,
        X_AUTH_KEY_ID,
        X_REQUEST_ID,
        X_FORWARDED_FOR,
        X_FORWARDED_PROTO,
        X_FORWARDED_HOST,
        header::HOST,
        header::AUTHORIZATION,
        header::CONTENT_LENGTH,
    ];
    let bytes = name.as_str().as_bytes();
    OWN.iter()
        .any(|own| eq_dash(bytes, own.as_str().as_bytes()))
        || starts_with_dash(bytes, X_CLIENT_CERT_PREFIX.as_bytes())
        || HOP_BY_HOP
            .iter()
            .any(|hop| eq_dash(bytes, hop.as_str().as_bytes()))
}

/// Removes every identity header a client sent.
pub fn remove_identity_headers(headers: &mut HeaderMap, claim_names: &[String]) {
    let spoofed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| is_identity_header(name, claim_names))
        .cloned()
        .collect();
    for name in spoofed {
        headers.remove(name);
    }
}

/// Proxy headers the gateway never sets and believes only from a trusted proxy (SPEC §4).
const FROM_TRUSTED_PROXIES_ONLY: [HeaderName; 7] = [
    FORWARDED,
    X_REAL_IP,
    X_CLIENT_IP,
    TRUE_CLIENT_IP,
    X_FORWARDED_PORT,
    X_FORWARDED_PREFIX,
    X_FORWARDED_SERVER,
];

/// URL overrides some upstream frameworks route by: never forwarded, whoever sent them.
const NEVER_FORWARDED: [HeaderName; 2] = [X_ORIGINAL_URL, X_REWRITE_URL];

/// Removes the URL overrides from every request and, unless the peer is a trusted proxy, the
/// other proxy headers; in any `-`/`_` spelling, as for identity headers (some frameworks read
/// `X_Real_IP` as `X-Real-IP`). The X-Forwarded-For/Proto/Host rules are [`set_forwarded`]'s.
pub fn remove_proxy_headers(headers: &mut HeaderMap, peer_trusted: bool) {
    let named = |name: &HeaderName, list: &[HeaderName]| {
        list.iter()
            .any(|own| eq_dash(name.as_str().as_bytes(), own.as_str().as_bytes()))
    };
    let removed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| {
            named(name, &NEVER_FORWARDED)
                || (!peer_trusted && named(name, &FROM_TRUSTED_PROXIES_ONLY))
        })
        .cloned()
        .collect();
    for name in removed {
        headers.remove(name);
    }
}

/// Facts about the client connection the forwarding headers are made from.
pub struct Forwarded<'a> {
    pub peer: IpAddr,
    pub peer_trusted: bool,
    /// `https` over TLS, else `http`.
    pub proto: &'static str,
    /// The request's Host (or authority), if any.
    pub host: Option<&'a HeaderValue>,
}

/// Sets X-Forwarded-For/Proto/Host per SPEC §4, after removing the proxy headers the peer may
/// not send ([`remove_proxy_headers`]).
pub fn set_forwarded(headers: &mut HeaderMap, forwarded: &Forwarded<'_>) {
    remove_proxy_headers(headers, forwarded.peer_trusted);
    let peer = forwarded.peer.to_string();
    let chain = if forwarded.peer_trusted {
        let mut chain = String::new();
        for value in headers.get_all(&X_FORWARDED_FOR) {
            if let Ok(text) = value.to_str() {
                let text = text.trim();
                if !text.is_empty() {
                    chain.push_str(text);
                    chain.push_str(", ");
                }
            }
        }
        chain.push_str(&peer);
        chain
    } else {
        peer
    };
    if let Ok(value) = HeaderValue::from_str(&chain) {
        headers.insert(X_FORWARDED_FOR, value);
    }
    let keep = forwarded.peer_trusted;
    if !(keep && headers.contains_key(&X_FORWARDED_PROTO)) {
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(forwarded.proto));
    }
    if !(keep && headers.contains_key(&X_FORWARDED_HOST)) {
        match forwarded.host {
            Some(host) => {
                headers.insert(X_FORWARDED_HOST, host.clone());
            }
            None => {
                headers.remove(&X_FORWARDED_HOST);
            }
        }
    }
}

/// A client-sent X-Request-Id is kept when it is 1 to 128 characters of `A-Z a-z 0-9 - _ . :`.
pub fn acceptable_request_id(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    (1..=128).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Inserts the client-certificate headers.
pub fn set_client_cert(headers: &mut HeaderMap, subject: &HeaderValue, sha256_hex: &HeaderValue) {
    headers.insert(X_CLIENT_CERT_SUBJECT, subject.clone());
    headers.insert(X_CLIENT_CERT_SHA256, sha256_hex.clone());
}

/// Ensures the response carries the request id.
pub fn set_request_id(headers: &mut HeaderMap, request_id: &HeaderValue) {
    headers.insert(X_REQUEST_ID, request_id.clone());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_removed() {
        let mut headers = map(&[
            ("connection", "keep-alive, X-Secret, authorization"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("proxy-authorization", "Basic x"),
            ("te", "trailers"),
            ("trailer", "x"),
            ("upgrade", "h2c"),
            ("x-secret", "1"),
            ("authorization", "Bearer t"),
            ("accept", "*/*"),
        ]);
        remove_hop_by_hop(&mut headers, false);
        let left: Vec<&str> = headers.keys().map(|n| n.as_str()).collect();
        assert_eq!(left, ["accept"]);
    }

    #[test]
    fn websocket_upgrade_keeps_upgrade() {
        let mut headers = map(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        assert!(is_websocket_upgrade(&headers));
        remove_hop_by_hop(&mut headers, true);
        assert_eq!(headers["upgrade"], "websocket");
        assert_eq!(headers["connection"], "upgrade");
        assert!(!is_websocket_upgrade(&map(&[("upgrade", "websocket")])));
    }

    #[test]
    fn identity_headers_in_any_spelling_are_removed() {
        let claims = vec!["x-tenant".to_owned()];
        let mut headers = map(&[
            ("x-auth-subject", "admin"),
            ("x_auth_subject", "admin"),
            ("X_Auth-Scopes", "all"),
            ("x-client-cert-sha256", "00"),
            ("x_client_cert_subject", "CN=x"),
            ("x-tenant", "t"),
            ("x_tenant", "t"),
            ("x-authority", "kept: not the x-auth- prefix"),
            ("x-tenantx", "kept"),
        ]);
        remove_identity_headers(&mut headers, &claims);
        let mut left: Vec<&str> = headers.keys().map(|n| n.as_str()).collect();
        left.sort();
        assert_eq!(left, ["x-authority", "x-tenantx"]);
    }

    #[test]
    fn forwarded_for_is_replaced_unless_the_peer_is_trusted() {
        let host = HeaderValue::from_static("api.example.com");
        let mut headers = map(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
        ]);
        let untrusted = Forwarded {
            peer: "10.0.0.1".parse().unwrap(),
            peer_trusted: false,
            proto: "http",
            host: Some(&host),
        };
        set_forwarded(&mut headers, &untrusted);
        assert_eq!(headers["x-forwarded-for"], "10.0.0.1");
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert_eq!(headers["x-forwarded-host"], "api.example.com");

        let mut headers = map(&[
            ("x-forwarded-for", "1.1.1.1, 2.2.2.2"),
            ("x-forwarded-for", "3.3.3.3"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "public.example.com"),
        ]);
        let trusted = Forwarded {
            peer_trusted: true,
            ..untrusted
        };
        set_forwarded(&mut headers, &trusted);
        assert_eq!(
            headers["x-forwarded-for"],
            "1.1.1.1, 2.2.2.2, 3.3.3.3, 10.0.0.1"
        );
        assert_eq!(headers["x-forwarded-proto"], "https");
        assert_eq!(headers["x-forwarded-host"], "public.example.com");
    }

    #[test]
    fn proxy_headers_pass_only_from_trusted_peers_and_url_overrides_never() {
        let sent = [
            ("forwarded", "for=6.6.6.6"),
            ("x-real-ip", "6.6.6.6"),
            ("X_Client_IP", "6.6.6.6"),
            ("true-client-ip", "6.6.6.6"),
            ("x-forwarded-port", "443"),
            ("x-forwarded-prefix", "/admin"),
            ("x_forwarded_server", "internal"),
            ("x-original-url", "/admin"),
            ("x_rewrite_url", "/admin"),
            ("x-forwarded-for", "1.1.1.1"),
            ("x-real-ipx", "kept: another name"),
        ];
        let names = |headers: &HeaderMap| {
            let mut names: Vec<String> = headers.keys().map(|n| n.to_string()).collect();
            names.sort();
            names
        };
        let mut untrusted = map(&sent);
        remove_proxy_headers(&mut untrusted, false);
        assert_eq!(names(&untrusted), ["x-forwarded-for", "x-real-ipx"]);
        let mut trusted = map(&sent);
        remove_proxy_headers(&mut trusted, true);
        assert_eq!(
            names(&trusted),
            [
                "forwarded",
                "true-client-ip",
                "x-forwarded-for",
                "x-forwarded-port",
                "x-forwarded-prefix",
                "x-real-ip",
                "x-real-ipx",
                "x_client_ip",
                "x_forwarded_server",
            ]
        );
    }

    #[test]
    fn request_id_rules() {
        for good in ["a", "req-1_2.3:4", &"x".repeat(128)] {
            assert!(
                acceptable_request_id(&HeaderValue::from_str(good).unwrap()),
                "{good}"
            );
        }
        for bad in ["", "has space", "semi;colon", &"x".repeat(129), "é"] {
            let value = HeaderValue::from_bytes(bad.as_bytes()).unwrap();
            assert!(!acceptable_request_id(&value), "{bad}");
        }
    }
}
