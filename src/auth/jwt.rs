//! JWT (compact JWS) verification against one issuer's policy and key set (SPEC §3 step 6).
//!
//! Two stages: [`Unverified::decode`] splits the token and parses its header and claims (enough
//! for the caller to pick the issuer by `iss`); [`verify`] then checks it against that issuer's
//! [`TokenPolicy`] and [`KeySet`] and yields the [`Principal`] with its upstream headers.
//!
//! This module does not extract the bearer token (`bearer.rs`), fetch keys (`jwks.rs`), cache
//! verified tokens (`cache.rs`) or check a route's scopes (`scopes.rs`).
//!
//! Check order in [`verify`], and why:
//! 1. `iss` equals the policy's issuer: keys are only ever taken from that issuer's set;
//! 2. `alg` is in the issuer's allowlist (`none` was already refused by `decode`);
//! 3. the key is found by `kid` and must fit `alg` (RSA for RS/PS, the right curve for ES,
//!    Ed25519 for EdDSA, the configured secret for HS) - this stops algorithm confusion;
//! 4. the signature verifies. Nothing after this point is believed before it, so the detailed
//!    reasons below are only ever told to holders of authentic tokens;
//! 5. times (`exp` required, `nbf`, `iat`, each with leeway), then `aud`, client id, `typ`,
//!    `required_claims`, and the RFC 8705 certificate binding;
//! 6. the identity headers are rendered; a claim that cannot be a header value fails the token.

use std::collections::HashSet;
use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::{HeaderName, HeaderValue};
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};

use super::keys::{algorithm_from_name, KeyDigest, KeyLookupError, KeySet};
use super::scopes::{Granted, Implications};
use crate::header_names;

/// Longer tokens are refused before any decoding (real access tokens are a few KiB).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Why a token was refused: 401 invalid_token. `as_str` is the bounded metrics reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Not a compact JWS, bad base64url or JSON, or a claim of the wrong JSON type.
    Malformed,
    /// `alg` is `none`, unsupported, or not in the issuer's `algorithms`.
    AlgorithmNotAllowed,
    /// A `crit` header: no extension is understood, so none may be required.
    CriticalHeader,
    /// `iss` missing or not this issuer.
    UnknownIssuer,
    /// No key has the token's `kid`. The caller may refresh the key set once and retry.
    UnknownKey,
    /// Keys exist but none fits the token's `kid`/`alg` (or no `kid` and not exactly one
    /// candidate). A refresh would not help.
    NoMatchingKey,
    /// The signature does not verify under the key the token names.
    BadSignature,
    /// No `exp` claim: every token must expire.
    MissingExpiry,
    /// `exp` lies more than the issuer's `leeway` in the past.
    Expired,
    /// `nbf` lies more than the issuer's `leeway` in the future.
    NotYetValid,
    /// `iat` lies more than the issuer's `leeway` in the future.
    IssuedInFuture,
    /// `aud` holds none of the issuer's `audiences` (or is missing).
    AudienceMismatch,
    /// The token's client id is missing or not in the issuer's `allowed_clients`.
    ClientNotAllowed,
    /// The `typ` header is missing or not one of the issuer's `token_types`.
    TypeNotAllowed,
    /// A `required_claims` claim is missing or holds none of its allowed values.
    RequiredClaim,
    /// A claim that would go upstream cannot be a header value.
    InvalidClaimValue,
    /// `cnf.x5t#S256` does not match the connection's client certificate.
    CertificateMismatch,
    /// `cnf.x5t#S256` binds the token to a client certificate and the connection has none.
    CertificateMissing,
    /// The issuer requires certificate-bound tokens and this one is not bound.
    CertificateRequired,
    /// `cnf` binds the token to a proof of possession other than a client certificate (e.g.
    /// DPoP `jkt`), which this gateway cannot check: such a token is not a bearer token.
    UnsupportedConfirmation,
    /// The issuer sets `max_token_lifetime` and the token has no `iat` to measure it by.
    MissingIssuedAt,
    /// `exp - iat` exceeds the issuer's `max_token_lifetime`: a refresh or ID token, or an
    /// access token minted for longer than this API accepts.
    LifetimeTooLong,
}

impl TokenError {
    /// The bounded, snake_case metrics reason.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenError::Malformed => "malformed",
            TokenError::AlgorithmNotAllowed => "algorithm_not_allowed",
            TokenError::CriticalHeader => "critical_header",
            TokenError::UnknownIssuer => "unknown_issuer",
            TokenError::UnknownKey => "unknown_key",
            TokenError::NoMatchingKey => "no_matching_key",
            TokenError::BadSignature => "bad_signature",
            TokenError::MissingExpiry => "missing_expiry",
            TokenError::Expired => "expired",
            TokenError::NotYetValid => "not_yet_valid",
            TokenError::IssuedInFuture => "issued_in_future",
            TokenError::AudienceMismatch => "audience_mismatch",
            TokenError::ClientNotAllowed => "client_not_allowed",
            TokenError::TypeNotAllowed => "type_not_allowed",
            TokenError::RequiredClaim => "required_claim",
            TokenError::InvalidClaimValue => "invalid_claim_value",
            TokenError::CertificateMismatch => "certificate_mismatch",
            TokenError::CertificateMissing => "certificate_missing",
            TokenError::CertificateRequired => "certificate_required",
            TokenError::UnsupportedConfirmation => "unsupported_confirmation",
            TokenError::MissingIssuedAt => "missing_issued_at",
            TokenError::LifetimeTooLong => "lifetime_too_long",
        }
    }

    /// Text for `error_description` (RFC 6750): helps the caller, never echoes the token or
    /// internal detail, and uses no `"` or `\` so it can be quoted as is.
    pub fn description(self) -> &'static str {
        match self {
            TokenError::Malformed => "the token is not a well-formed JWT",
            TokenError::AlgorithmNotAllowed => "the token algorithm is not accepted",
            TokenError::CriticalHeader => "the token has a critical header that is not supported",
            TokenError::UnknownIssuer => "the token issuer is not accepted on this route",
            TokenError::UnknownKey => "no key matches the token's kid",
            TokenError::NoMatchingKey => "no key of the issuer fits the token's kid and algorithm",
            TokenError::BadSignature => "the token signature is invalid",
            TokenError::MissingExpiry => "the token has no expiry",
            TokenError::Expired => "the token has expired",
            TokenError::NotYetValid => "the token is not valid yet",
            TokenError::IssuedInFuture => "the token is issued in the future",
            TokenError::AudienceMismatch => "the token audience is not accepted",
            TokenError::ClientNotAllowed => "the token client is not allowed",
            TokenError::TypeNotAllowed => "the token type is not accepted",
            TokenError::RequiredClaim => "the token lacks a required claim value",
            TokenError::InvalidClaimValue => "the token has a claim that cannot be forwarded",
            TokenError::CertificateMismatch => {
                "the token is bound to a different client certificate"
            }
            TokenError::CertificateMissing => {
                "the token is bound to a client certificate and none was presented"
            }
            TokenError::CertificateRequired => "the token must be bound to a client certificate",
            TokenError::UnsupportedConfirmation => {
                "the token is bound to a proof of possession that is not supported"
            }
            TokenError::MissingIssuedAt => "the token has no issued-at time",
            TokenError::LifetimeTooLong => "the token lifetime is longer than this API accepts",
        }
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

impl std::error::Error for TokenError {}

/// One issuer entry's token rules, compiled from config.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenPolicy {
    /// Exact `iss` value.
    pub issuer: String,
    /// Empty: `aud` not checked (then `allowed_clients` is set).
    pub audiences: Vec<String>,
    pub allowed_clients: Option<Vec<String>>,
    pub algorithms: Vec<Algorithm>,
    pub scope_claims: Vec<String>,
    pub client_id_claims: Vec<String>,
    /// Seconds.
    pub leeway: u64,
    pub token_types: Vec<String>,
    /// claim -> allowed values (a token value must equal one of them).
    pub required_claims: Vec<(String, Vec<serde_json::Value>)>,
    /// upstream header -> claim.
    pub claim_headers: Vec<(HeaderName, String)>,
    /// Refuse tokens without `cnf.x5t#S256`.
    pub require_bound_token: bool,
    /// Longest `exp - iat` in seconds (no leeway); `iat` is then required.
    pub max_token_lifetime: Option<u64>,
    /// `implied_scopes`, for route checks only.
    pub implied_scopes: Implications,
}

/// A decoded but unverified token. Nothing in it is trustworthy before [`verify`].
pub struct Unverified<'t> {
    /// `header.payload`, the bytes the signature covers.
    signing_input: &'t str,
    /// The base64url signature, as in the token.
    signature: &'t str,
    /// The signature, decoded once here (not again by the verifier).
    signature_bytes: Vec<u8>,
    alg: Algorithm,
    kid: Option<String>,
    typ: Option<String>,
    claims: Map<String, Value>,
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

/// The verified caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub subject: Option<String>,
    pub issuer: String,
    pub client_id: Option<String>,
    /// The scopes the credential holds (what `X-Auth-Scopes` carries).
    pub scopes: Vec<String>,
    /// `scopes` plus what the issuer's `implied_scopes` add: what route checks use.
    pub granted: Granted,
    /// Every identity header to inject (X-Auth-Subject, -Issuer, -Client-Id, -Scopes, claim
    /// headers), values already validated.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// `exp`, seconds since the epoch.
    pub expires_at: u64,
    /// RFC 8705 `cnf.x5t#S256`, decoded.
    pub bound_cert_sha256: Option<[u8; 32]>,
    /// The key that verified the signature: a cached verification counts only while the
    /// issuer's current key set still holds it (SPEC §6).
    pub verified_by: VerifiedBy,
    /// The API key's `id` when the credential was an API key (SPEC §7.1); `None` for tokens.
    pub key_id: Option<String>,
}

/// Which key verified a token: its `kid` (for the lookup) and its content digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedBy {
    pub kid: Option<Box<str>>,
    pub digest: KeyDigest,
}

impl VerifiedBy {
    /// Whether `keys` still holds this exact key.
    pub fn still_in(&self, keys: &KeySet) -> bool {
        keys.holds(self.kid.as_deref(), self.digest)
    }
}

/// Verifies `token` under `policy` with keys from `keys` at `now` (seconds since the epoch).
/// `client_cert_sha256` is the SHA-256 of the connection's verified client certificate.
///
/// See the module documentation for the order of the checks.
pub fn verify(
    token: &Unverified<'_>,
    policy: &TokenPolicy,
    keys: &KeySet,
    now: u64,
    client_cert_sha256: Option<&[u8; 32]>,
) -> Result<Principal, TokenError> {
    // 1-2. Issuer and algorithm, before any key is touched.
    let issuer = token.issuer().ok_or(TokenError::UnknownIssuer)?;
    if issuer != policy.issuer {
        return Err(TokenError::UnknownIssuer);
    }
    if !policy.algorithms.contains(&token.alg) {
        return Err(TokenError::AlgorithmNotAllowed);
    }

    // 3. Key: only from this issuer's set, and only one whose type fits `alg`.
    let key = keys
        .find(token.kid(), token.alg)
        .map_err(|error| match error {
            KeyLookupError::UnknownKid => TokenError::UnknownKey,
            KeyLookupError::NoMatchingKey => TokenError::NoMatchingKey,
        })?;

    // 4. Signature. A verifier error (e.g. a key the backend rejects) is a failed check too.
    //    The key parsed at load verifies when it was parsed for this `alg` (the same aws-lc
    //    verification algorithm jsonwebtoken would pick); otherwise jsonwebtoken does.
    let valid = match key.parsed_for(token.alg) {
        Some(parsed) => parsed
            .verify_sig(token.signing_input.as_bytes(), &token.signature_bytes)
            .is_ok(),
        None => matches!(
            jsonwebtoken::crypto::verify(
                token.signature,
                token.signing_input.as_bytes(),
                key.decoding_key(),
                token.alg,
            ),
            Ok(true)
        ),
    };
    if !valid {
        return Err(TokenError::BadSignature);
    }

    // 5. Claims, now authentic.
    let claims = &token.claims;
    let expires_at = check_times(claims, policy.leeway, now)?;
    if let Some(limit) = policy.max_token_lifetime {
        check_lifetime(claims, limit)?;
    }
    check_audience(claims, &policy.audiences)?;
    let client_id = client_id(claims, &policy.client_id_claims)?;
    if let Some(allowed) = &policy.allowed_clients {
        let allowed = client_id.is_some_and(|id| allowed.iter().any(|client| client == id));
        if !allowed {
            return Err(TokenError::ClientNotAllowed);
        }
    }
    check_type(token.typ.as_deref(), &policy.token_types)?;
    for (claim, values) in &policy.required_claims {
        if !meets_required(claims.get(claim), values) {
            return Err(TokenError::RequiredClaim);
        }
    }
    let bound_cert_sha256 = certificate_binding(claims)?;
    match (bound_cert_sha256.as_ref(), client_cert_sha256) {
        (Some(bound), Some(presented)) if bound == presented => {}
        (Some(_), Some(_)) => return Err(TokenError::CertificateMismatch),
        (Some(_), None) => return Err(TokenError::CertificateMissing),
        (None, _) if policy.require_bound_token => return Err(TokenError::CertificateRequired),
        (None, _) => {}
    }

    // 6. Identity and headers.
    let subject = match claims.get("sub") {
        None => None,
        Some(Value::String(subject)) => Some(subject.clone()),
        Some(_) => return Err(TokenError::Malformed),
    };
    let scopes = scopes(claims, &policy.scope_claims)?;
    let headers = identity_headers(
        policy,
        claims,
        issuer,
        subject.as_deref(),
        client_id,
        &scopes,
    )?;

    Ok(Principal {
        subject,
        issuer: issuer.to_owned(),
        client_id: client_id.map(str::to_owned),
        granted: policy.implied_scopes.expand(&scopes),
        scopes,
        headers,
        expires_at,
        bound_cert_sha256,
        verified_by: VerifiedBy {
            kid: key.kid().map(Box::from),
            digest: key.digest(),
        },
        key_id: None,
    })
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

/// A NumericDate (RFC 7519 2): a JSON number, integer or not. Anything else is `Malformed`.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<f64>, TokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(value) => value.as_f64().map(Some).ok_or(TokenError::Malformed),
    }
}

/// Whole seconds, clamped to `u64` (negative dates become 0).
fn seconds(date: f64) -> u64 {
    // `as` saturates: NaN cannot come from JSON, infinities cannot either.
    date.floor().max(0.0) as u64
}

/// `exp` is required and may lie `leeway` seconds in the past; `nbf` and `iat` may lie `leeway`
/// seconds in the future. Returns `exp` in whole seconds.
fn check_times(claims: &Map<String, Value>, leeway: u64, now: u64) -> Result<u64, TokenError> {
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
fn check_lifetime(claims: &Map<String, Value>, limit: u64) -> Result<(), TokenError> {
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
fn check_audience(claims: &Map<String, Value>, audiences: &[String]) -> Result<(), TokenError> {
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
fn client_id<'c>(
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
fn check_type(typ: Option<&str>, token_types: &[String]) -> Result<(), TokenError> {
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
fn meets_required(value: Option<&Value>, allowed: &[Value]) -> bool {
    match value {
        None => false,
        Some(Value::Array(items)) => items.iter().any(|item| allowed.contains(item)),
        Some(value) => allowed.contains(value),
    }
}

/// RFC 8705 3.1: `cnf.x5t#S256`, the base64url SHA-256 of the client certificate.
fn certificate_binding(claims: &Map<String, Value>) -> Result<Option<[u8; 32]>, TokenError> {
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
fn scopes(claims: &Map<String, Value>, names: &[String]) -> Result<Vec<String>, TokenError> {
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

/// The headers sent upstream (SPEC §4): the fixed identity headers, then `claim_headers`.
fn identity_headers(
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

#[cfg(test)]
#[path = "jwt_tests.rs"]
mod tests;
