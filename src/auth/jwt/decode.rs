//! The first stage: splitting a compact JWS and decoding its header and claims into an
//! [`Unverified`] token (SPEC §3 step 6).
//!
//! Owns the token's syntax: size cap, three parts, base64url, JSON objects, `alg` (refusing
//! `none`) and `crit`. It must never trust what it decodes: nothing here looks at keys, checks
//! a signature or a claim's value, and the accessors say "unverified" for a reason.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};

use super::claims::seconds;
use super::{TokenError, MAX_TOKEN_BYTES};
use crate::auth::keys::algorithm_from_name;

/// A decoded but unverified token. Nothing in it is trustworthy before [`verify`](super::verify()).
pub struct Unverified<'t> {
    /// `header.payload`, the bytes the signature covers.
    pub(super) signing_input: &'t str,
    /// The base64url signature, as in the token.
    pub(super) signature: &'t str,
    /// The signature, decoded once here (not again by the verifier).
    pub(super) signature_bytes: Vec<u8>,
    /// The header `alg`, known to the gateway (never `none`).
    pub(super) alg: Algorithm,
    /// The header `kid`.
    pub(super) kid: Option<String>,
    /// The header `typ`.
    pub(super) typ: Option<String>,
    /// The payload, a JSON object whose `iss` (if any) is a string.
    pub(super) claims: Map<String, Value>,
}

impl fmt::Debug for Unverified<'_> {
    // Never prints the token or its claims: they end up in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unverified")
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl<'t> Unverified<'t> {
    /// Splits and decodes header and claims; refuses `alg: none`, `crit`, non-objects.
    ///
    /// The header members `jku`, `x5u`, `jwk` and `x5c` are deliberately ignored: a key named
    /// or embedded by the token itself proves nothing, keys only come from the issuer's
    /// configured key source (SPEC §3 step 6).
    pub fn decode(token: &'t str) -> Result<Unverified<'t>, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        // `header.payload` is a prefix of the token.
        let signing_input = &token[..header.len() + 1 + payload.len()];

        let header = json_object(header)?;
        // Well-formed, so that a garbled token is `Malformed` rather than `BadSignature`; kept
        // for the verifier, which then need not decode it again.
        let signature_bytes = match URL_SAFE_NO_PAD.decode(signature) {
            Ok(bytes) if !bytes.is_empty() => bytes,
            _ => return Err(TokenError::Malformed),
        };

        let alg = match header.get("alg") {
            Some(Value::String(name)) => name.as_str(),
            _ => return Err(TokenError::Malformed),
        };
        // `none` in any spelling is refused outright, before anything else is looked at.
        if alg.eq_ignore_ascii_case("none") {
            return Err(TokenError::AlgorithmNotAllowed);
        }
        // RFC 7515 4.1.11: a recipient must reject a token whose `crit` it does not understand;
        // no extension is understood (this also refuses RFC 7797 `b64: false`).
        if header.contains_key("crit") {
            return Err(TokenError::CriticalHeader);
        }
        let alg = algorithm_from_name(alg).ok_or(TokenError::AlgorithmNotAllowed)?;
        let kid = optional_string(&header, "kid")?;
        let typ = optional_string(&header, "typ")?;

        let claims = json_object(payload)?;
        if !matches!(claims.get("iss"), None | Some(Value::String(_))) {
            return Err(TokenError::Malformed);
        }
        Ok(Unverified {
            signing_input,
            signature,
            signature_bytes,
            alg,
            kid,
            typ,
            claims,
        })
    }

    /// The unverified `iss` claim.
    pub fn issuer(&self) -> Option<&str> {
        self.claims.get("iss").and_then(Value::as_str)
    }

    /// The header `alg`.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The header `kid`, if any.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The header `typ`, if any.
    pub fn typ(&self) -> Option<&str> {
        self.typ.as_deref()
    }

    /// The unverified claims (for `explain`'s comparison; nothing in them is trustworthy).
    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }

    /// The unverified `exp`, in whole seconds, if it is a number.
    pub fn expires_at(&self) -> Option<u64> {
        self.claims.get("exp").and_then(Value::as_f64).map(seconds)
    }
}

/// Decodes one base64url part (no padding) into a JSON object.
fn json_object(part: &str) -> Result<Map<String, Value>, TokenError> {
    if part.is_empty() {
        return Err(TokenError::Malformed);
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Malformed)?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(object)) => Ok(object),
        _ => Err(TokenError::Malformed),
    }
}

fn optional_string(object: &Map<String, Value>, name: &str) -> Result<Option<String>, TokenError> {
    match object.get(name) {
        None => Ok(None),
        Some(Value::String(value)) => Ok(Some(value.clone())),
        Some(_) => Err(TokenError::Malformed),
    }
}
