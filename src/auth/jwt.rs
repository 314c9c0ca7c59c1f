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
//!
//! Layout: this file holds the types every stage shares ([`TokenError`], [`TokenPolicy`],
//! [`Principal`]); `decode.rs` is the first stage, `verify.rs` the second with its claim
//! checks in `claims.rs`, and `header.rs` renders claims as upstream header values.

use std::fmt;

use http::{HeaderName, HeaderValue};
use jsonwebtoken::Algorithm;

use super::keys::{KeyDigest, KeySet};
use super::scopes::{Granted, Implications};

mod claims;
mod decode;
mod header;
mod verify;

pub use self::decode::Unverified;
pub use self::header::ENCODED_PREFIX;
pub(crate) use self::header::{header_value, render_claim};
pub use self::verify::verify;

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
    /// When set, the token's client id (see `client_id_claims`) must be one of these.
    pub allowed_clients: Option<Vec<String>>,
    /// The `alg` values accepted from this issuer; anything else is refused before any key
    /// is looked up.
    pub algorithms: Vec<Algorithm>,
    /// The claims whose union is the token's scopes, in order (`scope`, `scp`, ...).
    pub scope_claims: Vec<String>,
    /// The claims searched, in order, for the client id; the first present one counts.
    pub client_id_claims: Vec<String>,
    /// Seconds.
    pub leeway: u64,
    /// Accepted `typ` header values (case-insensitive, `application/` optional); empty: `typ`
    /// not checked.
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

/// The verified caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The `sub` claim, if the token has one.
    pub subject: Option<String>,
    /// The verified `iss`; for an API key, the issuer it is configured under.
    pub issuer: String,
    /// The client id, from the first present claim of `client_id_claims`.
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
    /// The key's `kid`, if it has one.
    pub kid: Option<Box<str>>,
    /// The key's content digest.
    pub digest: KeyDigest,
}

impl VerifiedBy {
    /// Whether `keys` still holds this exact key.
    pub fn still_in(&self, keys: &KeySet) -> bool {
        keys.holds(self.kid.as_deref(), self.digest)
    }
}

#[cfg(test)]
#[path = "jwt_tests.rs"]
mod tests;
