//! Scope checks (SPEC §3 step 7): whether the scopes a verified token grants meet a route's
//! `scopes` (all required) and `any_scopes` (one required when non-empty). It runs after the token
//! verified, and its failure is 403 `insufficient_scope`.
//!
//! This module owns only the set logic. Collecting granted scopes from the issuer's
//! `scope_claims` belongs to JWT verification.
//!
//! Matching is exact and case-sensitive: scope strings are opaque (RFC 6749 §3.3), and folding
//! case or prefixes (`orders` for `orders:read`) would grant what the issuer never granted. Lists
//! are short, so linear scans beat building a set per request.

/// Every `all` entry and, when `any` is non-empty, one `any` entry must be in `granted`. Empty
/// `all` and `any` require nothing.
pub fn satisfied(granted: &[String], all: &[String], any: &[String]) -> bool {
    let has = |scope: &String| granted.contains(scope);
    all.iter().all(has) && (any.is_empty() || any.iter().any(has))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|s| s.to_string()).collect()
    }

    /// (granted, all, any, expected)
    type Case<'a> = (&'a [&'a str], &'a [&'a str], &'a [&'a str], bool);

    #[test]
    fn satisfied_table() {
        #[rustfmt::skip]
        let cases: &[Case] = &[
            // No requirement.
            (&[], &[], &[], true),
            (&["a"], &[], &[], true),
            // `all`: every entry.
            (&["a", "b"], &["a"], &[], true),
            (&["a", "b"], &["a", "b"], &[], true),
            (&["a", "b"], &["b", "a"], &[], true),
            (&["a"], &["a", "b"], &[], false),
            (&[], &["a"], &[], false),
            // `any`: at least one entry, when non-empty.
            (&["b"], &[], &["a", "b"], true),
            (&["c"], &[], &["a", "b"], false),
            (&[], &[], &["a"], false),
            // Both must hold.
            (&["a", "x"], &["a"], &["x", "y"], true),
            (&["a"], &["a"], &["x", "y"], false),
            (&["x"], &["a"], &["x", "y"], false),
            // Exact, case-sensitive, no prefix or substring matches.
            (&["Orders:Read"], &["orders:read"], &[], false),
            (&["orders"], &["orders:read"], &[], false),
            (&["orders:read:all"], &["orders:read"], &[], false),
            (&["orders:read orders:write"], &["orders:read"], &[], false),
            (&[""], &["a"], &[], false),
            (&["ORDERS"], &[], &["orders"], false),
        ];
        for (granted, all, any, expected) in cases {
            assert_eq!(
                satisfied(&strings(granted), &strings(all), &strings(any)),
                *expected,
                "granted {granted:?}, all {all:?}, any {any:?}"
            );
        }
    }
}
