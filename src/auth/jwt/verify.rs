//! The second stage: checking an [`Unverified`] token against one issuer's [`TokenPolicy`] and
//! [`KeySet`], in the order the parent module's documentation gives, and building the
//! [`Principal`].
//!
//! Owns that order and the signature check. It must never look at a claim before the
//! signature verified, and never take a key from anywhere but the issuer's own set; the
//! individual claim rules live in `claims.rs`, header rendering in `header.rs`.

use serde_json::Value;

use super::claims::{
    certificate_binding, check_audience, check_lifetime, check_times, check_type, client_id,
    meets_required, scopes,
};
use super::header::identity_headers;
use super::{Principal, TokenError, TokenPolicy, Unverified, VerifiedBy};
use crate::auth::keys::{KeyLookupError, KeySet};

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
