//! The claim rules `verify` applies once the signature holds: times, lifetime, audience,
//! client id, `typ`, required claims, the RFC 8705 certificate binding and scopes.
//!
//! Each rule is one function over the (already authentic) claims that returns the value it
//! found or the [`TokenError`] it is refused with. These functions must never be called on
//! claims whose signature has not verified (their detailed errors would then inform a forger),
//! and never read keys or render headers.

use std::collections::HashSet;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{Map, Value};

use super::TokenError;

/// A NumericDate (RFC 7519 2): a JSON number, integer or not. Anything else is `Malformed`.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<f64>, TokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(value) => value.as_f64().map(Some).ok_or(TokenError::Malformed),
    }
}

/// Whole seconds, clamped to `u64` (negative dates become 0).
pub(super) fn seconds(date: f64) -> u64 {
    // `as` saturates: NaN cannot come from JSON, infinities cannot either.
    date.floor().max(0.0) as u64
}

/// `exp` is required and may lie `leeway` seconds in the past; `nbf` and `iat` may lie `leeway`
/// seconds in the future. Returns `exp` in whole seconds.
pub(super) fn check_times(
    claims: &Map<String, Value>,
    leeway: u64,
    now: u64,
) -> Result<u64, TokenError> {
    let now = now as f64;
    let leeway = leeway as f64;
    let expiry = numeric_date(claims, "exp")?.ok_or(TokenError::MissingExpiry)?;
    if now > expiry + leeway {
        return Err(TokenError::Expired);
    }
    if numeric_date(claims, "nbf")?.is_some_and(|not_before| not_before > now + leeway) {
        return Err(TokenError::NotYetValid);
    }
    if numeric_date(claims, "iat")?.is_some_and(|issued| issued > now + leeway) {
        return Err(TokenError::IssuedInFuture);
    }
    Ok(seconds(expiry))
}

/// `exp - iat` at most `limit` seconds, measured without leeway: leeway is for clock skew
/// between hosts, and both times come from the same issuer clock. Token classes that share a
/// key (access, refresh, ID tokens) usually differ most in lifetime.
pub(super) fn check_lifetime(claims: &Map<String, Value>, limit: u64) -> Result<(), TokenError> {
    let issued = numeric_date(claims, "iat")?.ok_or(TokenError::MissingIssuedAt)?;
    let expiry = numeric_date(claims, "exp")?.ok_or(TokenError::MissingExpiry)?;
    if expiry - issued > limit as f64 {
        return Err(TokenError::LifetimeTooLong);
    }
    Ok(())
}

/// `aud` (a string or an array of strings) must contain one of `audiences`. With no
/// audiences configured, `aud` is not looked at at all (SPEC §2: `allowed_clients` binds the
/// token instead).
pub(super) fn check_audience(
    claims: &Map<String, Value>,
    audiences: &[String],
) -> Result<(), TokenError> {
    if audiences.is_empty() {
        return Ok(());
    }
    let accepted = |value: &str| audiences.iter().any(|audience| audience == value);
    let matched = match claims.get("aud") {
        None => false,
        Some(Value::String(audience)) => accepted(audience),
        Some(Value::Array(list)) => {
            let mut matched = false;
            for item in list {
                match item {
                    Value::String(audience) => matched |= accepted(audience),
                    _ => return Err(TokenError::Malformed),
                }
            }
            matched
        }
        Some(_) => return Err(TokenError::Malformed),
    };
    if matched {
        Ok(())
    } else {
        Err(TokenError::AudienceMismatch)
    }
}

/// The first present claim of `client_id_claims`; it must be a string (a wrong type is
/// `Malformed` rather than a silent fall-through to the next claim).
pub(super) fn client_id<'c>(
    claims: &'c Map<String, Value>,
    names: &[String],
) -> Result<Option<&'c str>, TokenError> {
    match names.iter().find_map(|name| claims.get(name)) {
        None => Ok(None),
        Some(Value::String(id)) => Ok(Some(id)),
        Some(_) => Err(TokenError::Malformed),
    }
}

/// The `typ` header against `token_types` (when any): case-insensitive, and
/// `application/at+jwt` equals `at+jwt` (RFC 7515 4.1.9, RFC 8725 3.11).
pub(super) fn check_type(typ: Option<&str>, token_types: &[String]) -> Result<(), TokenError> {
    if token_types.is_empty() {
        return Ok(());
    }
    let typ = typ.map(media_type_name).ok_or(TokenError::TypeNotAllowed)?;
    if token_types
        .iter()
        .any(|allowed| media_type_name(allowed).eq_ignore_ascii_case(typ))
    {
        Ok(())
    } else {
        Err(TokenError::TypeNotAllowed)
    }
}

fn media_type_name(typ: &str) -> &str {
    match typ.get(..12) {
        Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &typ[12..],
        _ => typ,
    }
}

/// A required claim is met when its value equals one of the allowed values, or, for an array
/// claim (e.g. `groups`, `amr`), when the array contains one of them.
pub(super) fn meets_required(value: Option<&Value>, allowed: &[Value]) -> bool {
    match value {
        None => false,
        Some(Value::Array(items)) => items.iter().any(|item| allowed.contains(item)),
        Some(value) => allowed.contains(value),
    }
}

/// RFC 8705 3.1: `cnf.x5t#S256`, the base64url SHA-256 of the client certificate.
pub(super) fn certificate_binding(
    claims: &Map<String, Value>,
) -> Result<Option<[u8; 32]>, TokenError> {
    let confirmation = match claims.get("cnf") {
        None => return Ok(None),
        Some(Value::Object(confirmation)) => confirmation,
        Some(_) => return Err(TokenError::Malformed),
    };
    match confirmation.get("x5t#S256") {
        Some(Value::String(thumbprint)) => {
            let bytes = URL_SAFE_NO_PAD
                .decode(thumbprint)
                .map_err(|_| TokenError::Malformed)?;
            let digest: [u8; 32] = bytes.try_into().map_err(|_| TokenError::Malformed)?;
            Ok(Some(digest))
        }
        Some(_) => Err(TokenError::Malformed),
        // Bound to something else (DPoP `jkt`, `jwk`, ...): accepting it as a plain bearer
        // token would drop the binding the issuer asked for.
        None if !confirmation.is_empty() => Err(TokenError::UnsupportedConfirmation),
        None => Ok(None),
    }
}

/// The union of `scope_claims`, in first-seen order, without duplicates. Each claim is a
/// space-separated string (RFC 8693 `scope`) or an array of strings (`scp`).
pub(super) fn scopes(
    claims: &Map<String, Value>,
    names: &[String],
) -> Result<Vec<String>, TokenError> {
    let mut seen = HashSet::new();
    let mut scopes = Vec::new();
    let mut add = |scope: &str| {
        if !scope.is_empty() && seen.insert(scope.to_owned()) {
            scopes.push(scope.to_owned());
        }
    };
    for name in names {
        match claims.get(name) {
            None => {}
            Some(Value::String(list)) => list.split(' ').for_each(&mut add),
            Some(Value::Array(items)) => {
                for item in items {
                    let scope = item.as_str().ok_or(TokenError::Malformed)?;
                    // A scope token has no spaces (RFC 6749 3.3); one that does would read as
                    // several scopes in X-Auth-Scopes, so it cannot be forwarded faithfully.
                    if scope.contains(' ') {
                        return Err(TokenError::InvalidClaimValue);
                    }
                    add(scope);
                }
            }
            Some(_) => return Err(TokenError::Malformed),
        }
    }
    Ok(scopes)
}
