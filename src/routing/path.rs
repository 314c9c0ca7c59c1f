//! Canonical request paths (SPEC §3 step 1).
//!
//! Owns the one function that turns the path component of a request target into the canonical
//! path that both routing (step 2) and forwarding use, so the upstream receives exactly the path
//! that was authorized. It does not parse the request target (origin-form versus absolute-form
//! is decided by the pipeline) and never sees the query string, which is forwarded unchanged.
//!
//! Why so strict: a gateway that authorizes one spelling of a path while the upstream resolves
//! another is bypassable (`/public/..%2Fadmin`, `/admin%00`, `\admin` on Windows stacks). Every
//! spelling an upstream might interpret differently is either rejected (400) or rewritten into
//! the single form that is then both authorized and forwarded.
//!
//! Canonical form:
//! - starts with `/`, holds only visible ASCII (0x21..=0x7e) and no `\` or `#`;
//! - percent-encoded unreserved characters (ALPHA / DIGIT / `-` `.` `_` `~`) are decoded;
//!   every other escape is kept but its hex digits are uppercased (`%3a` -> `%3A`), the form
//!   RFC 3986 2.1 recommends. Keeping them encoded preserves their meaning for the upstream
//!   (`%3F` must not become a query, `%25` must not become a new escape), and one spelling per
//!   escape makes prefix matching and the upstream agree;
//! - no empty segments (runs of `/` are merged first, as nginx `merge_slashes` does) and no dot
//!   segments (RFC 3986 5.2.4); a trailing slash of the input, or one left by a final `.` or
//!   `..` segment, is kept.
//!
//! Decoding happens before dot-segment removal, so `/%2e%2e/` is a `..` segment, and a `..`
//! that would climb above `/` is rejected rather than clamped: a well-behaved client never
//! sends one, so it is a probe.

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
        match self {
            PathError::NotAbsolute => "path does not start with a slash",
            PathError::EncodedSlash => "encoded slash in path",
            PathError::EncodedBackslash => "encoded backslash in path",
            PathError::EncodedNul => "encoded nul byte in path",
            PathError::Backslash => "backslash in path",
            PathError::Fragment => "fragment in path",
            PathError::NonVisibleAscii => "path holds a byte outside visible ascii",
            PathError::MalformedEscape => "malformed percent escape in path",
            PathError::ClimbsAboveRoot => "path climbs above the root",
        }
    }
}

/// Canonicalizes `path` (the path component only, no query).
///
/// The first pass validates every byte and finds out whether anything must change; the common
/// case (an already canonical path) ends there and borrows the input. Only paths that need a
/// rewrite pay for a second pass into a new `String`.
pub fn canonicalize(path: &str) -> Result<Cow<'_, str>, PathError> {
    if scan(path.as_bytes())? {
        rewrite(path.as_bytes()).map(Cow::Owned)
    } else {
        Ok(Cow::Borrowed(path))
    }
}

/// Validates `path` and returns whether it needs a rewrite. The first offending byte from the
/// left decides the error; `..` climbing above the root is only found by `rewrite`.
fn scan(path: &[u8]) -> Result<bool, PathError> {
    if path.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    let mut needs_rewrite = false;
    // Start of the current segment (just after its `/`).
    let mut segment_start = 1;
    let mut i = 1;
    while i < path.len() {
        match path[i] {
            b'/' => {
                needs_rewrite |= is_removable_segment(&path[segment_start..i]);
                segment_start = i + 1;
                i += 1;
            }
            b'%' => {
                let (value, canonical) = escape_at(path, i)?;
                // Decodable (unreserved) or lowercase hex: not in canonical form.
                needs_rewrite |= is_unreserved(value) || !canonical;
                i += 3;
            }
            byte => {
                check_raw(byte)?;
                i += 1;
            }
        }
    }
    // An empty final segment is the input's trailing slash, which is kept.
    needs_rewrite |= matches!(&path[segment_start..], b"." | b"..");
    Ok(needs_rewrite)
}

/// Empty segments (from `//`) and dot segments, as spelled in the input, before the last `/`.
fn is_removable_segment(segment: &[u8]) -> bool {
    matches!(segment, b"" | b"." | b"..")
}

/// Builds the canonical form of a path that `scan` accepted but found non-canonical.
fn rewrite(path: &[u8]) -> Result<String, PathError> {
    // Invariant: `out` starts with `/` and ends with `/` between segments; every segment pushed
    // is followed by `/`, and the final one loses it again unless the input ended there.
    let mut out = String::with_capacity(path.len());
    out.push('/');
    let mut ends_in_segment;
    let mut rest = path.get(1..).unwrap_or_default();
    loop {
        let end = rest.iter().position(|&b| b == b'/').unwrap_or(rest.len());
        let (segment, tail) = rest.split_at(end);
        let start = out.len();
        push_decoded(&mut out, segment)?;
        match &out[start..] {
            // `//`: merged. `.`: dropped; `/a/.` leaves `/a/` like RFC 3986 5.2.4.
            "" | "." => {
                out.truncate(start);
                ends_in_segment = false;
            }
            ".." => {
                out.truncate(start);
                // `out` is `/` or `/.../seg/`; drop the last segment, or refuse at the root.
                let parent = out[..out.len() - 1]
                    .rfind('/')
                    .ok_or(PathError::ClimbsAboveRoot)?;
                out.truncate(parent + 1);
                ends_in_segment = false;
            }
            _ => {
                out.push('/');
                ends_in_segment = true;
            }
        }
        match tail.split_first() {
            Some((_slash, next)) => rest = next,
            None => break,
        }
    }
    if ends_in_segment {
        out.pop();
    }
    Ok(out)
}

/// Appends one segment, decoding unreserved escapes and uppercasing the others.
fn push_decoded(out: &mut String, segment: &[u8]) -> Result<(), PathError> {
    let mut i = 0;
    while i < segment.len() {
        let byte = segment[i];
        if byte == b'%' {
            let (value, _) = escape_at(segment, i)?;
            if is_unreserved(value) {
                out.push(char::from(value));
            } else {
                out.push('%');
                out.push(char::from(HEX_UPPER[usize::from(value >> 4)]));
                out.push(char::from(HEX_UPPER[usize::from(value & 0x0f)]));
            }
            i += 3;
        } else {
            check_raw(byte)?;
            out.push(char::from(byte));
            i += 1;
        }
    }
    Ok(())
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// Parses the escape starting with the `%` at `at`. Returns the decoded byte and whether the
/// escape was spelled canonically (uppercase hex), or why it is refused.
fn escape_at(bytes: &[u8], at: usize) -> Result<(u8, bool), PathError> {
    let (high, low) = match bytes.get(at + 1..at + 3) {
        Some(&[high, low]) => (high, low),
        _ => return Err(PathError::MalformedEscape),
    };
    let value = match (hex_value(high), hex_value(low)) {
        (Some(high), Some(low)) => (high << 4) | low,
        _ => return Err(PathError::MalformedEscape),
    };
    match value {
        b'/' => Err(PathError::EncodedSlash),
        b'\\' => Err(PathError::EncodedBackslash),
        0 => Err(PathError::EncodedNul),
        _ => Ok((
            value,
            !high.is_ascii_lowercase() && !low.is_ascii_lowercase(),
        )),
    }
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// Checks a byte that is neither `/` nor `%`.
fn check_raw(byte: u8) -> Result<(), PathError> {
    match byte {
        b'\\' => Err(PathError::Backslash),
        b'#' => Err(PathError::Fragment),
        0x21..=0x7e => Ok(()),
        _ => Err(PathError::NonVisibleAscii),
    }
}

/// RFC 3986 2.3 unreserved characters.
fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn table() {
        use PathError::*;
        let ok = |s: &'static str| Ok::<&str, PathError>(s);
        let cases: &[(&str, Result<&str, PathError>)] = &[
            // Already canonical.
            ("/", ok("/")),
            ("/orders", ok("/orders")),
            ("/orders/", ok("/orders/")),
            ("/orders/7", ok("/orders/7")),
            ("/a/b.c/..d/.e/f..", ok("/a/b.c/..d/.e/f..")),
            ("/a%20b/%3A%25", ok("/a%20b/%3A%25")),
            ("/~user/!$&'()*+,;=:@", ok("/~user/!$&'()*+,;=:@")),
            // Decoding unreserved escapes.
            ("/%61%62%63", ok("/abc")),
            ("/%41%5a%30%2D%2e%5F%7E", ok("/AZ0-._~")),
            // Other escapes stay, uppercased.
            ("/a%3ab", ok("/a%3Ab")),
            ("/%7f%ff%20%2b", ok("/%7F%FF%20%2B")),
            ("/%2541", ok("/%2541")),
            // Merged slashes.
            ("//", ok("/")),
            ("//a///b//", ok("/a/b/")),
            // Dot segments.
            ("/.", ok("/")),
            ("/./", ok("/")),
            ("/a/./b", ok("/a/b")),
            ("/a/b/../c", ok("/a/c")),
            ("/a/b/..", ok("/a/")),
            ("/a/b/.", ok("/a/b/")),
            ("/a/..", ok("/")),
            ("/a/../", ok("/")),
            ("/a//../b", ok("/b")),
            ("/a/b/c/../../d/./e/..", ok("/a/d/")),
            // Decoding happens before dot removal.
            ("/a/%2e%2e/b", ok("/b")),
            ("/a/%2E%2e", ok("/")),
            ("/a/.%2e/b", ok("/b")),
            ("/a/%2e/b", ok("/a/b")),
            ("/a/%2e%2e%2e", ok("/a/...")),
            // Errors.
            ("", Err(NotAbsolute)),
            ("orders", Err(NotAbsolute)),
            ("*", Err(NotAbsolute)),
            ("/a%2Fb", Err(EncodedSlash)),
            ("/a%2fb", Err(EncodedSlash)),
            ("/a%5Cb", Err(EncodedBackslash)),
            ("/a%5cb", Err(EncodedBackslash)),
            ("/a%00", Err(EncodedNul)),
            ("/a\\b", Err(Backslash)),
            ("/a#b", Err(Fragment)),
            ("/a b", Err(NonVisibleAscii)),
            ("/a\tb", Err(NonVisibleAscii)),
            ("/a\x7f", Err(NonVisibleAscii)),
            ("/caf\u{e9}", Err(NonVisibleAscii)),
            ("/a%", Err(MalformedEscape)),
            ("/a%4", Err(MalformedEscape)),
            ("/a%g1", Err(MalformedEscape)),
            ("/a%4g/b", Err(MalformedEscape)),
            ("/a%\u{e9}", Err(MalformedEscape)),
            ("/..", Err(ClimbsAboveRoot)),
            ("/../a", Err(ClimbsAboveRoot)),
            ("/a/../..", Err(ClimbsAboveRoot)),
            ("/a/../../b", Err(ClimbsAboveRoot)),
            ("/%2e%2e", Err(ClimbsAboveRoot)),
            ("/a/%2E%2E/%2e%2e/b", Err(ClimbsAboveRoot)),
            // The leftmost offending byte decides.
            ("/a#%2F", Err(Fragment)),
            ("/%2F#", Err(EncodedSlash)),
            ("/../%00", Err(EncodedNul)),
        ];
        for (input, expected) in cases {
            let actual = canonicalize(input);
            assert_eq!(
                actual.as_deref().map_err(|e| *e),
                *expected,
                "input {input:?}"
            );
        }
    }

    #[test]
    fn canonical_input_is_borrowed() {
        for input in ["/", "/orders/7", "/a%3Ab/", "/x..y/.z"] {
            assert!(
                matches!(canonicalize(input), Ok(Cow::Borrowed(_))),
                "{input:?}"
            );
        }
        for input in ["//", "/a/./b", "/%61", "/%3a"] {
            assert!(
                matches!(canonicalize(input), Ok(Cow::Owned(_))),
                "{input:?}"
            );
        }
    }

    #[test]
    fn every_error_has_a_distinct_lowercase_description() {
        use PathError::*;
        let all = [
            NotAbsolute,
            EncodedSlash,
            EncodedBackslash,
            EncodedNul,
            Backslash,
            Fragment,
            NonVisibleAscii,
            MalformedEscape,
            ClimbsAboveRoot,
        ];
        let mut seen = std::collections::HashSet::new();
        for error in all {
            let text = error.description();
            assert_eq!(text, text.to_lowercase());
            assert!(!text.ends_with('.'));
            assert!(seen.insert(text), "duplicate description {text:?}");
        }
    }

    /// Paths built from pieces that exercise every rule, valid or not.
    fn interesting_path() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("/"),
            Just("//"),
            Just("."),
            Just(".."),
            Just("%2e"),
            Just("%2E%2e"),
            Just("%41"),
            Just("%7e"),
            Just("%3a"),
            Just("%25"),
            Just("%2F"),
            Just("%5c"),
            Just("%00"),
            Just("%"),
            Just("%4"),
            Just("a"),
            Just("bc"),
            Just("~"),
            Just("#"),
            Just("\\"),
            Just(" "),
            Just("\u{e9}"),
        ];
        (any::<bool>(), prop::collection::vec(piece, 0..12)).prop_map(|(rooted, pieces)| {
            let mut path = String::from(if rooted { "/" } else { "" });
            path.extend(pieces);
            path
        })
    }

    proptest! {
        #[test]
        fn idempotent(path in interesting_path()) {
            if let Ok(once) = canonicalize(&path) {
                let twice = canonicalize(&once);
                prop_assert!(matches!(twice, Ok(Cow::Borrowed(_))), "{path:?} -> {once:?}");
                prop_assert_eq!(twice.as_deref(), Ok(&*once));
            }
        }

        #[test]
        fn output_is_canonical(path in interesting_path()) {
            if let Ok(out) = canonicalize(&path) {
                prop_assert!(out.starts_with('/'));
                for bad in ["//", "/./", "/../", "%2F", "%2f", "%5C", "%5c", "%00", "\\", "#"] {
                    prop_assert!(!out.contains(bad), "{path:?} -> {out:?} holds {bad:?}");
                }
                prop_assert!(!out.ends_with("/.") && !out.ends_with("/.."), "{out:?}");
                prop_assert!(out.bytes().all(|b| (0x21..=0x7e).contains(&b)));
            }
        }

        #[test]
        fn never_panics_on_arbitrary_text(path in "\\PC*") {
            let _ = canonicalize(&path);
        }
    }
}
