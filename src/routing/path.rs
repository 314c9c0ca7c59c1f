//! Canonical request paths (SPEC §3 step 1). STUB: owned by the routing helper.

use std::borrow::Cow;

/// Why a request path was refused (400 invalid_request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// The path does not start with `/`.
    NotAbsolute,
    /// `%2F` (any case).
    EncodedSlash,
    /// `%5C` (any case).
    EncodedBackslash,
    /// `%00`.
    EncodedNul,
    /// A raw `\`.
    Backslash,
    /// A raw `#`.
    Fragment,
    /// A byte outside visible ASCII (0x21..=0x7e).
    NonVisibleAscii,
    /// `%` not followed by two hex digits.
    MalformedEscape,
    /// A `..` segment that would climb above `/`.
    ClimbsAboveRoot,
}

impl PathError {
    /// A short, lowercase description for the client.
    pub fn description(self) -> &'static str {
        "invalid request path"
    }
}

/// Canonicalizes `path` (the path component only, no query).
pub fn canonicalize(path: &str) -> Result<Cow<'_, str>, PathError> {
    Ok(Cow::Borrowed(path))
}
