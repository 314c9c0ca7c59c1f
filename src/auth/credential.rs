//! Which credential a request presents on a route that takes API keys (SPEC §7.1, §3 step 6):
//! a token for JWT verification (`jwt.rs`) or a key for the key store (`api_keys.rs`). It owns
//! only the header syntax and the choice; it judges neither credential.
//!
//! The choice is made by where the value is and by its shape, never by trying: one value is
//! never verified both as a key and as a token, so a key is never sent to JWT parsing and a
//! token never hashed against key files.
//!
//! # Rules
//! - A route without key sources: [`Credential::Token`], always (bearer.rs decides the rest).
//! - A source with a named `header` (e.g. `X-API-Key`) reads that header only; its whole value
//!   (optional whitespace around it) is the key. Several lines of it, an empty value, inner
//!   whitespace or bytes outside visible ASCII are malformed (400): a proxy behind us may read
//!   another line than we did.
//! - `Authorization: Bearer <value>` (bearer.rs syntax) is a key when the value has no `.` and
//!   a source of the route reads Authorization; otherwise it is a token, if the route takes
//!   tokens, else refused as not an API key (401).
//! - A named key header and a bearer credential the route would read, together, are refused
//!   (400): which of the two is the caller would be a guess.
//!
//! | route takes | request | result |
//! | --- | --- | --- |
//! | tokens only | anything | `Token` |
//! | bearer keys | `Bearer abc` | `Key` |
//! | bearer keys + tokens | `Bearer a.b.c` | `Token` |
//! | bearer keys only | `Bearer a.b.c` | [`CredentialError::NotAnApiKey`] |
//! | tokens + `X-API-Key` keys | `Bearer abc` | `Token` (judged, and refused, as a JWT) |
//! | `X-API-Key` keys | `X-API-Key: abc` | `Key` (Authorization, if any, not read) |
//! | `X-API-Key` keys + tokens | `X-API-Key` and `Bearer` | [`CredentialError::TwoCredentials`] |
//! | any keys | none | [`CredentialError::Missing`] |

use http::header::HeaderValue;
use http::{HeaderMap, HeaderName};

use super::api_keys::KeyHeader;
use super::bearer::{self, BearerError};

/// The credential to judge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential<'h> {
    /// A bearer token, judged as a JWT.
    Token,
    /// An API key; `header` is the named key header it came from, `None` for
    /// `Authorization: Bearer`.
    Key {
        /// The key, as presented.
        key: &'h str,
        /// The named key header it came from; `None` for `Authorization: Bearer`.
        header: Option<&'h HeaderName>,
    },
}

/// Why no credential could be chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialError {
    /// No credential the route reads: 401 missing_token.
    Missing,
    /// The Authorization header is malformed (bearer.rs): 400 invalid_request.
    MalformedAuthorization,
    /// A named key header is repeated, empty, or not one word of visible ASCII: 400.
    MalformedKeyHeader,
    /// A named key header and a bearer credential (or two key headers) at once: 400.
    TwoCredentials,
    /// A keys-only route got a bearer value shaped like a JWT: 401 invalid_token.
    NotAnApiKey,
}

/// Chooses the credential of a request on a route whose key sources read `key_headers` and
/// which takes tokens when `takes_tokens`.
pub fn choose<'h, 's>(
    headers: &'h HeaderMap,
    key_headers: impl Iterator<Item = &'s KeyHeader> + Clone,
    takes_tokens: bool,
) -> Result<Credential<'h>, CredentialError> {
    if key_headers.clone().next().is_none() {
        return Ok(Credential::Token);
    }
    let bearer_keys = key_headers
        .clone()
        .any(|header| *header == KeyHeader::Authorization);
    let mut named: Option<(&'h HeaderName, &'h str)> = None;
    for header in key_headers {
        let KeyHeader::Named(name) = header else {
            continue;
        };
        let mut values = headers.get_all(name).iter();
        let Some(value) = values.next() else {
            continue;
        };
        if values.next().is_some() {
            return Err(CredentialError::MalformedKeyHeader);
        }
        let key = key_value(value)?;
        // The name borrowed from the request, like the key, not from the snapshot.
        let present = headers
            .keys()
            .find(|present| *present == name)
            .ok_or(CredentialError::MalformedKeyHeader)?;
        match named {
            Some((seen, _)) if seen != present => return Err(CredentialError::TwoCredentials),
            _ => named = Some((present, key)),
        }
    }
    let bearer = (takes_tokens || bearer_keys).then(|| bearer::extract(headers));
    match (named, bearer) {
        (Some(_), Some(Ok(_))) => Err(CredentialError::TwoCredentials),
        (_, Some(Err(BearerError::Malformed))) => Err(CredentialError::MalformedAuthorization),
        (Some((name, key)), _) => Ok(Credential::Key {
            key,
            header: Some(name),
        }),
        (None, None | Some(Err(BearerError::Missing))) => Err(CredentialError::Missing),
        (None, Some(Ok(value))) if bearer_keys && !value.contains('.') => Ok(Credential::Key {
            key: value,
            header: None,
        }),
        (None, Some(Ok(_))) if takes_tokens => Ok(Credential::Token),
        (None, Some(Ok(_))) => Err(CredentialError::NotAnApiKey),
    }
}

/// A named key header's value: one word of visible ASCII, optional whitespace around it.
fn key_value(value: &HeaderValue) -> Result<&str, CredentialError> {
    let text = value
        .to_str()
        .map_err(|_| CredentialError::MalformedKeyHeader)?
        .trim_matches([' ', '\t']);
    if text.is_empty() || text.contains([' ', '\t']) {
        return Err(CredentialError::MalformedKeyHeader);
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUTHZ: KeyHeader = KeyHeader::Authorization;

    fn x_api_key() -> KeyHeader {
        KeyHeader::Named(HeaderName::from_static("x-api-key"))
    }

    fn map(lines: &[Line]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in lines {
            map.append(*name, HeaderValue::from_bytes(value).unwrap());
        }
        map
    }

    type Line = (&'static str, &'static [u8]);
    /// (the route's key sources, whether it takes tokens, request headers, expected)
    type Case<'a> = (&'a [KeyHeader], bool, Vec<Line>, Got);

    /// What `choose` returned, owned, for the table.
    #[derive(Debug, PartialEq)]
    enum Got {
        Token,
        Bearer(String),
        Named(String),
        Err(CredentialError),
    }

    fn run(sources: &[KeyHeader], tokens: bool, lines: &[Line]) -> Got {
        let headers = map(lines);
        match choose(&headers, sources.iter(), tokens) {
            Ok(Credential::Token) => Got::Token,
            Ok(Credential::Key { key, header: None }) => Got::Bearer(key.into()),
            Ok(Credential::Key {
                key,
                header: Some(name),
            }) => {
                assert_eq!(name, "x-api-key");
                Got::Named(key.into())
            }
            Err(error) => Got::Err(error),
        }
    }

    #[test]
    fn choice_table() {
        use CredentialError::*;
        let named = x_api_key();
        let both = [AUTHZ, named.clone()];
        let bearer = |v: &'static [u8]| ("authorization", v);
        let key = |v: &'static [u8]| ("x-api-key", v);
        #[rustfmt::skip]
        let cases: Vec<Case> = vec![
            // No key sources: always a token (bearer.rs and jwt.rs judge it).
            (&[], true, vec![], Got::Token),
            (&[], true, vec![bearer(b"Bearer abc")], Got::Token),
            // Bearer keys, by shape.
            (&[AUTHZ], false, vec![bearer(b"Bearer abc")], Got::Bearer("abc".into())),
            (&[AUTHZ], true, vec![bearer(b"bearer  agk_k1_x-y")], Got::Bearer("agk_k1_x-y".into())),
            (&[AUTHZ], true, vec![bearer(b"Bearer a.b.c")], Got::Token),
            (&[AUTHZ], true, vec![bearer(b"Bearer a.b")], Got::Token),
            (&[AUTHZ], false, vec![bearer(b"Bearer a.b.c")], Got::Err(NotAnApiKey)),
            (&[AUTHZ], false, vec![], Got::Err(Missing)),
            (&[AUTHZ], false, vec![bearer(b"Basic dXNlcg==")], Got::Err(Missing)),
            (&[AUTHZ], false, vec![bearer(b"Bearer a b")], Got::Err(MalformedAuthorization)),
            (&[AUTHZ], false, vec![key(b"abc")], Got::Err(Missing)),
            // A named header: read alone.
            (std::slice::from_ref(&named), false, vec![key(b"abc")], Got::Named("abc".into())),
            (std::slice::from_ref(&named), false, vec![key(b" abc\t")], Got::Named("abc".into())),
            (std::slice::from_ref(&named), false, vec![key(b"abc"), bearer(b"Bearer a.b.c")], Got::Named("abc".into())),
            (std::slice::from_ref(&named), false, vec![bearer(b"Bearer abc")], Got::Err(Missing)),
            (std::slice::from_ref(&named), true, vec![bearer(b"Bearer abc")], Got::Token),
            (std::slice::from_ref(&named), true, vec![key(b"abc"), bearer(b"Bearer a.b.c")], Got::Err(TwoCredentials)),
            (std::slice::from_ref(&named), true, vec![key(b"abc"), bearer(b"Bearer a b")], Got::Err(MalformedAuthorization)),
            (std::slice::from_ref(&named), true, vec![key(b"abc"), bearer(b"Basic dXNlcg==")], Got::Named("abc".into())),
            (std::slice::from_ref(&named), false, vec![key(b"abc"), key(b"abc")], Got::Err(MalformedKeyHeader)),
            (std::slice::from_ref(&named), false, vec![key(b"")], Got::Err(MalformedKeyHeader)),
            (std::slice::from_ref(&named), false, vec![key(b"a b")], Got::Err(MalformedKeyHeader)),
            (std::slice::from_ref(&named), false, vec![key(b"abc\xff")], Got::Err(MalformedKeyHeader)),
            // Bearer and named sources on one route.
            (&both, false, vec![key(b"abc"), bearer(b"Bearer def")], Got::Err(TwoCredentials)),
            (&both, false, vec![bearer(b"Bearer def")], Got::Bearer("def".into())),
            (&both, false, vec![key(b"abc")], Got::Named("abc".into())),
        ];
        for (sources, tokens, lines, expected) in cases {
            assert_eq!(
                run(sources, tokens, &lines),
                expected,
                "{sources:?} tokens={tokens} {lines:?}"
            );
        }
    }
}
