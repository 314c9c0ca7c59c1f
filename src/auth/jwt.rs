//! JWT (compact JWS) verification against one issuer's policy and key set (SPEC §3 step 6).
//! STUB: owned by the JWT helper.

use http::{HeaderName, HeaderValue};
use jsonwebtoken::Algorithm;

use super::keys::KeySet;

/// Why a token was refused: 401 invalid_token. `as_str` is the bounded metrics reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    Malformed,
    AlgorithmNotAllowed,
    CriticalHeader,
    UnknownIssuer,
    UnknownKey,
    BadSignature,
    MissingExpiry,
    Expired,
    NotYetValid,
    IssuedInFuture,
    AudienceMismatch,
    ClientNotAllowed,
    TypeNotAllowed,
    RequiredClaim,
    InvalidClaimValue,
    CertificateMismatch,
    CertificateRequired,
}

impl TokenError {
    pub fn as_str(self) -> &'static str {
        "malformed"
    }

    pub fn description(self) -> &'static str {
        "the token is invalid"
    }
}

/// One issuer entry's token rules, compiled from config.
#[derive(Debug, Clone)]
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
}

/// A decoded but unverified token.
#[derive(Debug)]
pub struct Unverified<'t> {
    token: &'t str,
}

impl<'t> Unverified<'t> {
    /// Splits and decodes header and claims; refuses `alg: none`, `crit`, non-objects.
    pub fn decode(token: &'t str) -> Result<Unverified<'t>, TokenError> {
        Ok(Unverified { token })
    }

    /// The unverified `iss` claim.
    pub fn issuer(&self) -> Option<&str> {
        None
    }
}

/// The verified caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub subject: Option<String>,
    pub issuer: String,
    pub client_id: Option<String>,
    pub scopes: Vec<String>,
    /// Every identity header to inject (X-Auth-Subject, -Issuer, -Client-Id, -Scopes, claim
    /// headers), values already validated.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// `exp`, seconds since the epoch.
    pub expires_at: u64,
    /// RFC 8705 `cnf.x5t#S256`, decoded.
    pub bound_cert_sha256: Option<[u8; 32]>,
}

/// Verifies `token` under `policy` with keys from `keys` at `now` (seconds since the epoch).
/// `client_cert_sha256` is the SHA-256 of the connection's verified client certificate.
pub fn verify(
    token: &Unverified<'_>,
    policy: &TokenPolicy,
    keys: &KeySet,
    now: u64,
    client_cert_sha256: Option<&[u8; 32]>,
) -> Result<Principal, TokenError> {
    let _ = (token, policy, keys, now, client_cert_sha256);
    Err(TokenError::Malformed)
}
