//! Claims as upstream header values (SPEC §4, §7.2): the identity headers of a verified token,
//! the text form of a claim, and the RFC 8187 encoding of text that cannot go as it is.
//!
//! Owns the rule that no claim is ever injected raw. It must never accept a control character
//! or surrounding spaces, and never decide whether a token is valid beyond refusing a claim
//! that cannot be a header value ([`TokenError::InvalidClaimValue`]).

use http::{HeaderName, HeaderValue};
use serde_json::{Map, Value};

use super::{TokenError, TokenPolicy};
use crate::header_names;

/// The headers sent upstream (SPEC §4): the fixed identity headers, then `claim_headers`.
pub(super) fn identity_headers(
    policy: &TokenPolicy,
    claims: &Map<String, Value>,
    issuer: &str,
    subject: Option<&str>,
    client_id: Option<&str>,
    scopes: &[String],
) -> Result<Vec<(HeaderName, HeaderValue)>, TokenError> {
    let mut headers = Vec::with_capacity(4 + policy.claim_headers.len());
    if let Some(subject) = subject {
        headers.push((header_names::X_AUTH_SUBJECT, header_value(subject)?));
    }
    headers.push((header_names::X_AUTH_ISSUER, header_value(issuer)?));
    if let Some(client_id) = client_id {
        headers.push((header_names::X_AUTH_CLIENT_ID, header_value(client_id)?));
    }
    if !scopes.is_empty() {
        let joined = scopes.join(" ");
        headers.push((header_names::X_AUTH_SCOPES, header_value(&joined)?));
    }
    for (name, claim) in &policy.claim_headers {
        if let Some(text) = claims.get(claim).and_then(render_claim) {
            headers.push((name.clone(), header_value(&text)?));
        }
    }
    Ok(headers)
}

/// A claim as header text (SPEC §4): strings as they are, numbers and booleans as their JSON
/// text, arrays of strings joined by a space, anything else compact JSON. `null` counts as a
/// missing claim.
pub(crate) fn render_claim(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(text) => Some(text.clone()),
        Value::Bool(_) | Value::Number(_) => Some(value.to_string()),
        Value::Array(items) => {
            let strings: Option<Vec<&str>> = items.iter().map(Value::as_str).collect();
            Some(match strings {
                Some(strings) => strings.join(" "),
                None => value.to_string(),
            })
        }
        Value::Object(_) => Some(value.to_string()),
    }
}

/// The marker that starts an encoded header value (RFC 8187 `ext-value` with an empty
/// language tag).
pub const ENCODED_PREFIX: &str = "UTF-8''";

/// Bytes kept as they are in an encoded value: RFC 8187 `attr-char`; every other byte is
/// percent-encoded.
const NOT_ATTR_CHAR: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// A claim's text as a header value (SPEC §4, §7.2), never injected raw:
/// - visible ASCII and inner spaces go as they are;
/// - text with a control character (U+0000-U+001F, U+007F-U+009F) fails the token, and so does
///   ASCII text with surrounding spaces (a receiver would strip them, changing the value);
/// - any other text (non-ASCII, or ASCII that starts with the marker) goes RFC 8187-encoded:
///   `UTF-8''` followed by the UTF-8 bytes, percent-encoding every byte outside `attr-char`
///   (`Zürich` -> `UTF-8''Z%C3%BCrich`). A value that starts with `UTF-8''` is always
///   encoded, so an upstream can tell the two forms apart without ambiguity.
pub(crate) fn header_value(text: &str) -> Result<HeaderValue, TokenError> {
    let control = |c: char| c.is_control();
    if text.chars().any(control) {
        return Err(TokenError::InvalidClaimValue);
    }
    let plain = text.is_ascii() && !text.starts_with(ENCODED_PREFIX);
    if plain {
        if text.starts_with(' ') || text.ends_with(' ') {
            return Err(TokenError::InvalidClaimValue);
        }
        return HeaderValue::from_str(text).map_err(|_| TokenError::InvalidClaimValue);
    }
    let encoded = format!(
        "{ENCODED_PREFIX}{}",
        percent_encoding::utf8_percent_encode(text, NOT_ATTR_CHAR)
    );
    HeaderValue::from_str(&encoded).map_err(|_| TokenError::InvalidClaimValue)
}
