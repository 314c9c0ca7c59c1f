//! `routing::canonicalize` on arbitrary text (the raw path of a request target).
//!
//! Input: the path, as UTF-8 (invalid UTF-8 is replaced, the way no HTTP parser would hand it
//! over, but the function must still not panic on any `&str`).
//!
//! Invariants on `Ok(out)`:
//! - `out` starts with `/` and holds only visible ASCII;
//! - no `//`, `/./`, `/../`, and it does not end with `/.` or `/..`;
//! - no `%2F`, `%5C`, `%00` in any case, no raw `\` or `#`;
//! - every `%` starts an escape of two uppercase hex digits that is not an unreserved
//!   character (those are decoded);
//! - idempotent: `canonicalize(out)` is `Ok(Cow::Borrowed(out))`;
//! - an input that is returned borrowed is returned unchanged.
//!
//! And differentially, on every input: the result (value or exact `PathError`) equals that of
//! [`reference`], a deliberately naive implementation of the rules in `routing/path.rs`'s module
//! doc (validate left to right, then decode, split and resolve dot segments on a stack).

use std::borrow::Cow;

use authgate::routing::{canonicalize, PathError};

pub fn fuzz_one(data: &[u8]) {
    let path = String::from_utf8_lossy(data);
    check(&path);
}

/// Canonicalizes `path` and asserts the invariants; returns the canonical form, if any.
pub fn check(path: &str) -> Option<String> {
    let result = canonicalize(path);
    assert_eq!(
        result.as_deref().map_err(|e| *e),
        reference(path).as_deref().map_err(|e| *e),
        "canonicalize({path:?}) differs from the reference"
    );
    let out = result.ok()?;
    if let Cow::Borrowed(borrowed) = &out {
        assert_eq!(*borrowed, path, "borrowed output differs from input");
    }
    assert_canonical(path, &out);
    match canonicalize(&out) {
        Ok(Cow::Borrowed(again)) => assert_eq!(again, &*out, "not idempotent for {path:?}"),
        other => panic!("canonical form {out:?} of {path:?} canonicalizes to {other:?}"),
    }
    Some(out.into_owned())
}

fn assert_canonical(input: &str, out: &str) {
    assert!(
        out.starts_with('/'),
        "{input:?} -> {out:?}: no leading slash"
    );
    assert!(
        out.bytes().all(|b| (0x21..=0x7e).contains(&b)),
        "{input:?} -> {out:?}: not visible ascii"
    );
    for bad in [
        "//", "/./", "/../", "%2F", "%2f", "%5C", "%5c", "%00", "\\", "#",
    ] {
        assert!(!out.contains(bad), "{input:?} -> {out:?}: holds {bad:?}");
    }
    assert!(
        !out.ends_with("/.") && !out.ends_with("/.."),
        "{input:?} -> {out:?}: ends in a dot segment"
    );
    let bytes = out.as_bytes();
    for (i, _) in out.match_indices('%') {
        let hex = bytes.get(i + 1..i + 3).unwrap_or_else(|| {
            panic!("{input:?} -> {out:?}: truncated escape at {i}");
        });
        let upper = |b: u8| b.is_ascii_digit() || (b'A'..=b'F').contains(&b);
        assert!(
            hex.iter().all(|&b| upper(b)),
            "{input:?} -> {out:?}: escape at {i} is not uppercase hex"
        );
        let value = u8::from_str_radix(std::str::from_utf8(hex).unwrap_or("00"), 16).unwrap_or(0);
        assert!(
            !(value.is_ascii_alphanumeric() || matches!(value, b'-' | b'.' | b'_' | b'~')),
            "{input:?} -> {out:?}: unreserved character left encoded at {i}"
        );
    }
}

/// The naive model: slow, allocating, and written from the rules rather than from the code.
pub fn reference(path: &str) -> Result<String, PathError> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    // 1. Every byte, left to right: the first offender decides.
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or(PathError::MalformedEscape)?;
                let value = std::str::from_utf8(hex)
                    .ok()
                    .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or(PathError::MalformedEscape)?;
                match value {
                    b'/' => return Err(PathError::EncodedSlash),
                    b'\\' => return Err(PathError::EncodedBackslash),
                    0 => return Err(PathError::EncodedNul),
                    _ => i += 3,
                }
            }
            b'\\' => return Err(PathError::Backslash),
            b'#' => return Err(PathError::Fragment),
            0x21..=0x7e => i += 1,
            _ => return Err(PathError::NonVisibleAscii),
        }
    }
    // 2. Segments, decoded, resolved on a stack.
    let segments: Vec<&str> = path[1..].split('/').collect();
    let mut stack: Vec<String> = Vec::new();
    let mut trailing_slash = false;
    for (index, raw) in segments.iter().enumerate() {
        let segment = decode_segment(raw);
        let last = index + 1 == segments.len();
        match segment.as_str() {
            "" | "." => trailing_slash = last,
            ".." => {
                stack.pop().ok_or(PathError::ClimbsAboveRoot)?;
                trailing_slash = last;
            }
            _ => {
                stack.push(segment);
                trailing_slash = false;
            }
        }
    }
    let mut out = format!("/{}", stack.join("/"));
    if trailing_slash && !stack.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// Decodes unreserved escapes and uppercases the others (the input is already validated).
fn decode_segment(raw: &str) -> String {
    let mut out = String::new();
    let mut rest = raw;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let hex = &rest[at + 1..at + 3];
        let value = u8::from_str_radix(hex, 16).unwrap_or(0);
        if value.is_ascii_alphanumeric() || matches!(value, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(value));
        } else {
            out.push('%');
            out.push_str(&hex.to_ascii_uppercase());
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    out
}
