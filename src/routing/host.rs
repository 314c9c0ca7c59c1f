//! The request's host (SPEC §3 step 2): which field names it, when it is malformed, and its one
//! normalization.
//!
//! This module owns the Host rule; routing and forwarding (Host under `preserve_host`,
//! X-Forwarded-Host) both take the host from [`request_host`], so the upstream is told exactly
//! the host that chose the route. It never matches hosts against routes (`routing::table`
//! ignores case and port there) and never rewrites case or port: what the client sent is kept.
//!
//! The rules, and why:
//!
//! | request | host | why |
//! | --- | --- | --- |
//! | absolute-form target, or HTTP/2 `:authority` | that authority | RFC 9112 3.2.2, RFC 9113 8.3.1 |
//! | otherwise a `Host` header | its value | |
//! | an empty `Host` value, or none | no host: host-less routes | RFC 9112 3.2 (a URI without authority) |
//! | two or more `Host` headers | 400 | RFC 9112 3.2; two hosts could route and forward differently |
//! | userinfo (`x@admin.test`) | 400 | RFC 9112 3.2.1, RFC 9113 8.3.1 forbid it |
//! | empty label (`.a.test`, `a..test`, `a.test..`) | 400 | not a name any route can mean |
//! | percent escape (`a.test%2e`) | 400 | the routed and the forwarded spelling would differ |
//! | a byte outside visible ASCII, or outside RFC 3986 unreserved and sub-delims | 400 | |
//! | `[` IPv6 `]`, bad port (not 1 to 5 digits, or above 65535) | 400 unless valid | |
//! | one trailing dot (`api.test.`, `api.test.:8080`) | removed | the same DNS name (nginx does the same) |
//!
//! A `Host` header is validated even when an authority takes precedence over it, so a request
//! never carries a malformed host anywhere. Before this rule existed, a malformed host matched
//! no exact or wildcard route and fell through to the host-less tier, with its (maybe weaker)
//! rules, and was then forwarded verbatim.

use std::borrow::Cow;

use http::header::HOST;
use http::request::Parts;
use http::HeaderValue;

/// Why a request's host was refused (400 `invalid_request`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostError {
    /// More than one Host header.
    Duplicate,
    /// Userinfo, an empty label, a percent escape, a byte outside the allowed set, a bad IPv6
    /// literal or a bad port.
    Malformed,
}

impl HostError {
    /// Text for the client's error description.
    pub fn description(self) -> &'static str {
        match self {
            HostError::Duplicate => "more than one Host header",
            HostError::Malformed => "the host is not a valid host name or address",
        }
    }
}

/// A validated request host: `name[:port]` or `[ipv6][:port]`, with one trailing dot removed,
/// case as the client sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHost<'r>(Cow<'r, str>);

impl RequestHost<'_> {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The value for Host (`preserve_host`) and X-Forwarded-Host. `None` cannot happen for a
    /// validated host (visible ASCII only), and is then simply not forwarded.
    pub fn header_value(&self) -> Option<HeaderValue> {
        HeaderValue::from_str(&self.0).ok()
    }
}

/// The request's host per the module rules: `Ok(None)` when the request names none.
pub fn request_host(parts: &Parts) -> Result<Option<RequestHost<'_>>, HostError> {
    let mut hosts = parts.headers.get_all(HOST).iter();
    let header = hosts.next();
    if hosts.next().is_some() {
        return Err(HostError::Duplicate);
    }
    let from_header = match header {
        Some(value) if value.is_empty() => None,
        Some(value) => Some(normalize(value.as_bytes())?),
        None => None,
    };
    match parts.uri.authority() {
        Some(authority) => normalize(authority.as_str().as_bytes()).map(Some),
        None => Ok(from_header),
    }
}

/// Validates `host[:port]` and removes one trailing dot from the host.
fn normalize(value: &[u8]) -> Result<RequestHost<'_>, HostError> {
    // Visible ASCII only: the rest of the checks can then work on a `str`.
    let text = std::str::from_utf8(value).map_err(|_| HostError::Malformed)?;
    let (host, port) = split_port(text)?;
    if let Some(port) = port {
        let digits = (1..=5).contains(&port.len()) && port.bytes().all(|b| b.is_ascii_digit());
        if !digits || port.parse::<u16>().is_err() {
            return Err(HostError::Malformed);
        }
    }
    if let Some(literal) = host.strip_prefix('[') {
        let valid = literal
            .strip_suffix(']')
            .is_some_and(|address| address.parse::<std::net::Ipv6Addr>().is_ok());
        return if valid {
            Ok(RequestHost(Cow::Borrowed(text)))
        } else {
            Err(HostError::Malformed)
        };
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    if name.is_empty() || name.split('.').any(str::is_empty) || !name.bytes().all(is_reg_name_byte)
    {
        return Err(HostError::Malformed);
    }
    Ok(match (name.len() == host.len(), port) {
        (true, _) => RequestHost(Cow::Borrowed(text)),
        (false, None) => RequestHost(Cow::Borrowed(name)),
        (false, Some(port)) => RequestHost(Cow::Owned(format!("{name}:{port}"))),
    })
}

/// `host:port` -> (`host`, `Some(port)`); `[v6]:port` likewise; no colon -> (`host`, `None`).
fn split_port(text: &str) -> Result<(&str, Option<&str>), HostError> {
    if text.starts_with('[') {
        let end = text.find(']').ok_or(HostError::Malformed)?;
        let (literal, rest) = text.split_at(end + 1);
        return match rest.strip_prefix(':') {
            Some(port) => Ok((literal, Some(port))),
            None if rest.is_empty() => Ok((literal, None)),
            None => Err(HostError::Malformed),
        };
    }
    Ok(match text.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (text, None),
    })
}

/// RFC 3986 reg-name bytes without pct-encoded: unreserved and sub-delims.
fn is_reg_name_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric()
        || matches!(
            byte,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host_of(value: &[u8]) -> Result<Option<String>, HostError> {
        let mut builder = http::Request::builder().uri("/x");
        builder = builder.header(HOST, HeaderValue::from_bytes(value).unwrap());
        let (parts, ()) = builder.body(()).unwrap().into_parts();
        request_host(&parts).map(|host| host.map(|host| host.as_str().to_owned()))
    }

    /// What [`request_host`] makes of one Host value.
    type Outcome = Result<Option<&'static str>, HostError>;

    #[test]
    fn host_header_table() {
        #[rustfmt::skip]
        let cases: &[(&[u8], Outcome)] = &[
            // Valid, kept as sent (case and port too).
            (b"api.test", Ok(Some("api.test"))),
            (b"API.Test:8080", Ok(Some("API.Test:8080"))),
            (b"localhost", Ok(Some("localhost"))),
            (b"127.0.0.1:80", Ok(Some("127.0.0.1:80"))),
            (b"[::1]", Ok(Some("[::1]"))),
            (b"[2001:db8::1]:8443", Ok(Some("[2001:db8::1]:8443"))),
            (b"a_b-c~d.test", Ok(Some("a_b-c~d.test"))),
            (b"a:65535", Ok(Some("a:65535"))),
            // Empty Host: no host.
            (b"", Ok(None)),
            // One trailing dot removed, before the port too.
            (b"api.test.", Ok(Some("api.test"))),
            (b"api.test.:8080", Ok(Some("api.test:8080"))),
            (b"Api.Test.", Ok(Some("Api.Test"))),
            // Malformed.
            (b"x@admin.test", Err(HostError::Malformed)),
            (b"@admin.test", Err(HostError::Malformed)),
            (b"admin.test..", Err(HostError::Malformed)),
            (b".admin.test", Err(HostError::Malformed)),
            (b"admin..test", Err(HostError::Malformed)),
            (b".", Err(HostError::Malformed)),
            (b"admin.test%2e", Err(HostError::Malformed)),
            (b"%61dmin.test", Err(HostError::Malformed)),
            (b"admin.test\x80", Err(HostError::Malformed)),
            (b"adm\xc3\xa9n.test", Err(HostError::Malformed)),
            (b"admin.test\t", Err(HostError::Malformed)),
            (b"admin test", Err(HostError::Malformed)),
            (b"admin.test/", Err(HostError::Malformed)),
            (b"admin.test\\x", Err(HostError::Malformed)),
            (b"admin.test:", Err(HostError::Malformed)),
            (b"admin.test:80:80", Err(HostError::Malformed)),
            (b"admin.test:8o", Err(HostError::Malformed)),
            (b"admin.test:65536", Err(HostError::Malformed)),
            (b"admin.test:000080", Err(HostError::Malformed)),
            (b":80", Err(HostError::Malformed)),
            (b"[::1", Err(HostError::Malformed)),
            (b"[::1]x", Err(HostError::Malformed)),
            (b"[not-v6]", Err(HostError::Malformed)),
            (b"[v1.x]", Err(HostError::Malformed)),
            (b"[fe80::1%25eth0]", Err(HostError::Malformed)),
            (b"[::1].", Err(HostError::Malformed)),
        ];
        for (value, expected) in cases {
            let expected = expected.map(|host| host.map(str::to_owned));
            assert_eq!(
                host_of(value),
                expected,
                "{}",
                String::from_utf8_lossy(value)
            );
        }
    }

    #[test]
    fn authority_wins_and_is_validated() {
        let parts = |uri: &str, host: Option<&str>| {
            let mut builder = http::Request::builder().uri(uri);
            if let Some(host) = host {
                builder = builder.header(HOST, host);
            }
            builder.body(()).unwrap().into_parts().0
        };
        let host = |parts: &Parts| {
            request_host(parts).map(|host| host.map(|host| host.as_str().to_owned()))
        };
        let some = |s: &str| Ok(Some(s.to_owned()));
        assert_eq!(
            host(&parts("http://api.test/x", Some("other.test"))),
            some("api.test")
        );
        assert_eq!(host(&parts("http://api.test./x", None)), some("api.test"));
        assert_eq!(host(&parts("/x", None)), Ok(None));
        assert_eq!(
            host(&parts("http://x@admin.test/x", Some("admin.test"))),
            Err(HostError::Malformed)
        );
        // A malformed Host header is refused even when the authority overrides it.
        assert_eq!(
            host(&parts("http://api.test/x", Some("x@admin.test"))),
            Err(HostError::Malformed)
        );
        let mut two = parts("/x", Some("api.test"));
        two.headers
            .append(HOST, HeaderValue::from_static("api.test"));
        assert_eq!(host(&two), Err(HostError::Duplicate));
    }

    #[test]
    fn header_value_round_trips() {
        let (parts, ()) = http::Request::builder()
            .uri("/x")
            .header(HOST, "api.test.:8080")
            .body(())
            .unwrap()
            .into_parts();
        let host = request_host(&parts).unwrap().unwrap();
        assert_eq!(host.header_value().unwrap(), "api.test:8080");
    }
}
