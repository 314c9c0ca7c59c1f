//! Bearer token extraction (SPEC §3 step 6, first half): finds the one `Authorization: Bearer`
//! credential and hands the token text to JWT verification. It runs after the allowlists and
//! the client certificate check, and is skipped on public routes.
//!
//! This module owns only the header syntax. It does not judge the token: anything that passes
//! here, however odd (`Bearer x`), is verified as a JWS and fails there with 401
//! `invalid_token`.
//!
//! # Syntax
//!
//! `Authorization: <scheme> <token>`, scheme compared case-insensitively. Between scheme and token
//! any run of spaces and tabs is accepted, as is whitespace around the whole value (RFC 9110
//! allows optional whitespace around field values, and clients differ). Outcomes:
//!
//! | header | result |
//! | --- | --- |
//! | none | [`BearerError::Missing`] |
//! | another scheme (`Basic ...`, `Bearerx abc`, `Negotiate`) | [`BearerError::Missing`] |
//! | more than one `Authorization` line | [`BearerError::Malformed`] |
//! | empty or whitespace-only value | [`BearerError::Malformed`] |
//! | `Bearer`, `Bearer ` (no token) | [`BearerError::Malformed`] |
//! | `Bearer a b` (more than one word) | [`BearerError::Malformed`] |
//! | a byte outside visible ASCII, space and tab | [`BearerError::Malformed`] |
//! | `Bearer <token>` | `Ok(token)` |
//!
//! Several `Authorization` lines are refused whatever their schemes: a proxy or framework
//! behind us may pick a different one than we did, so the request is ambiguous.

use http::header::AUTHORIZATION;
use http::HeaderMap;

/// Why no token could be extracted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BearerError {
    /// No Authorization header, or another scheme: 401 missing_token.
    Missing,
    /// Several Authorization headers, `Bearer` without a token, more than one word, an empty
    /// value, or bytes outside visible ASCII: 400 invalid_request.
    Malformed,
}

/// Returns the token of the one `Authorization: Bearer <token>` header, borrowed from `headers`.
pub fn extract(headers: &HeaderMap) -> Result<&str, BearerError> {
    let mut lines = headers.get_all(AUTHORIZATION).iter();
    let value = lines.next().ok_or(BearerError::Missing)?;
    if lines.next().is_some() {
        return Err(BearerError::Malformed);
    }
    // `to_str` accepts exactly visible ASCII plus space and tab.
    // `HeaderValue::to_str`'s rule (visible ASCII or tab), as one branch-free pass over the
    // bytes that the compiler vectorizes: a token is about 1 KB and this runs on every request.
    let bytes = value.as_bytes();
    let visible = bytes.iter().fold(true, |ok, &b| {
        ok & ((0x20..0x7f).contains(&b) | (b == b'\t'))
    });
    if !visible {
        return Err(BearerError::Malformed);
    }
    let value = std::str::from_utf8(bytes)
        .map_err(|_| BearerError::Malformed)?
        .trim_matches(is_ws);
    if value.is_empty() {
        return Err(BearerError::Malformed);
    }
    let (scheme, rest) = value.split_once(is_ws).unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(BearerError::Missing);
    }
    let token = rest.trim_start_matches(is_ws);
    // Bytes, not chars: the token is ASCII here, and a byte scan is what the compiler vectorizes.
    let has_ws = token
        .bytes()
        .fold(false, |ws, b| ws | (b == b' ') | (b == b'\t'));
    if token.is_empty() || has_ws {
        return Err(BearerError::Malformed);
    }
    Ok(token)
}

fn is_ws(c: char) -> bool {
    c == ' ' || c == '\t'
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(lines: &[&[u8]]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for line in lines {
            map.append(AUTHORIZATION, HeaderValue::from_bytes(line).unwrap());
        }
        map
    }

    /// (Authorization lines, expected result)
    type Case<'a> = (&'a [&'a [u8]], Result<&'a str, BearerError>);

    #[test]
    fn extraction_table() {
        use BearerError::{Malformed, Missing};
        #[rustfmt::skip]
        let cases: &[Case] = &[
            // The one accepted shape, with tolerated whitespace and scheme case.
            (&[b"Bearer abc.def.ghi"], Ok("abc.def.ghi")),
            (&[b"bearer abc"], Ok("abc")),
            (&[b"BEARER abc"], Ok("abc")),
            (&[b"BeArEr abc"], Ok("abc")),
            (&[b"Bearer   abc"], Ok("abc")),
            (&[b"Bearer\tabc"], Ok("abc")),
            (&[b"Bearer abc  "], Ok("abc")),
            (&[b"Bearer abc\t"], Ok("abc")),
            (&[b"  Bearer abc"], Ok("abc")),
            (&[b"Bearer abc=="], Ok("abc==")),
            // Not judged here: verification rejects it with 401 invalid_token.
            (&[b"Bearer not-a-jwt"], Ok("not-a-jwt")),
            (&[b"Bearer ,"], Ok(",")),
            // No header, or another scheme.
            (&[], Err(Missing)),
            (&[b"Basic dXNlcjpwYXNz"], Err(Missing)),
            (&[b"Basic"], Err(Missing)),
            (&[b"Negotiate abc def"], Err(Missing)),
            (&[b"Bearerx abc"], Err(Missing)),
            (&[b"Bearer,abc"], Err(Missing)),
            (&[b"XBearer abc"], Err(Missing)),
            (&[b"abc.def.ghi"], Err(Missing)),
            (&[b"Token abc"], Err(Missing)),
            // Several headers, whatever their schemes.
            (&[b"Bearer abc", b"Bearer abc"], Err(Malformed)),
            (&[b"Bearer abc", b"Bearer def"], Err(Malformed)),
            (&[b"Basic dXNlcjpwYXNz", b"Bearer abc"], Err(Malformed)),
            (&[b"Bearer abc", b"Basic dXNlcjpwYXNz"], Err(Malformed)),
            // Bearer without exactly one token.
            (&[b"Bearer"], Err(Malformed)),
            (&[b"bearer"], Err(Malformed)),
            (&[b"Bearer "], Err(Malformed)),
            (&[b"Bearer \t "], Err(Malformed)),
            (&[b"Bearer a b"], Err(Malformed)),
            (&[b"Bearer a\tb"], Err(Malformed)),
            (&[b"Bearer Bearer abc"], Err(Malformed)),
            // Empty values and bytes outside visible ASCII.
            (&[b""], Err(Malformed)),
            (&[b"   "], Err(Malformed)),
            (&[b"Bearer abc\xff"], Err(Malformed)),
            (&[b"Bearer \xc3\xa9t\xc3\xa9"], Err(Malformed)),
            (&[b"Basic \x80"], Err(Malformed)),
        ];
        for (lines, expected) in cases {
            let map = headers(lines);
            let lossy: Vec<_> = lines.iter().map(|l| String::from_utf8_lossy(l)).collect();
            assert_eq!(extract(&map), *expected, "{lossy:?}");
        }
    }

    #[test]
    fn token_is_borrowed_from_the_header() {
        let map = headers(&[b"Bearer abc"]);
        let token = extract(&map).unwrap();
        let value = map.get(AUTHORIZATION).unwrap().as_bytes();
        assert!(value.as_ptr_range().contains(&token.as_ptr()));
    }

    #[test]
    fn other_headers_are_not_read() {
        let mut map = HeaderMap::new();
        map.insert(
            "proxy-authorization",
            HeaderValue::from_static("Bearer abc"),
        );
        map.insert("x-authorization", HeaderValue::from_static("Bearer abc"));
        assert_eq!(extract(&map), Err(BearerError::Missing));
    }
}
