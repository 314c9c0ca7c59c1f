//! Bearer token extraction (SPEC §3 step 6). STUB: owned by the network helper.

use http::HeaderMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BearerError {
    /// No Authorization header, or another scheme: 401 missing_token.
    Missing,
    /// Several Authorization headers, `Bearer` without a token, more than one word: 400.
    Malformed,
}

/// Returns the token of the one `Authorization: Bearer <token>` header.
pub fn extract(headers: &HeaderMap) -> Result<&str, BearerError> {
    let _ = headers;
    Err(BearerError::Missing)
}
