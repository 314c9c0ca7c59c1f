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
//!
//! Implied scopes (SPEC §7.2, `implied_scopes`) are the one exception, and it is the operator's
//! word, not a pattern: a granted scope named as a key adds the scopes it maps to, followed
//! transitively, and the value `"*"` means every scope. There is no wildcard inside a name
//! (`orders:*` is an ordinary, literal scope). Implications widen only route checks: what goes
//! upstream in `X-Auth-Scopes` is what the token or key holds.

use std::collections::{BTreeMap, BTreeSet};

/// The value of `implied_scopes` that stands for every scope.
pub const EVERY_SCOPE: &str = "*";

/// The scopes route checks see: what the credential holds plus what that implies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Granted {
    /// Held and implied scopes, without duplicates.
    pub scopes: Vec<String>,
    /// An implication to `"*"` applied: every scope counts as granted.
    pub every: bool,
}

impl Granted {
    /// Exactly `scopes`, nothing implied.
    pub fn exactly(scopes: &[String]) -> Granted {
        Granted {
            scopes: scopes.to_vec(),
            every: false,
        }
    }

    /// Whether `scope` is granted (held, implied, or every scope is).
    pub fn has(&self, scope: &str) -> bool {
        self.every || self.scopes.iter().any(|granted| granted == scope)
    }
}

/// An issuer's `implied_scopes`, closed transitively at compile time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Implications {
    /// scope -> everything it implies (transitively), and whether that includes `"*"`.
    closure: BTreeMap<String, (Vec<String>, bool)>,
}

impl Implications {
    /// Closes `direct` (scope -> scopes it implies) transitively. Cycles are harmless.
    pub fn new(direct: &BTreeMap<String, Vec<String>>) -> Implications {
        let mut closure = BTreeMap::new();
        for start in direct.keys() {
            let mut seen = BTreeSet::new();
            let mut every = false;
            let mut pending = vec![start.as_str()];
            while let Some(scope) = pending.pop() {
                for implied in direct.get(scope).into_iter().flatten() {
                    if implied == EVERY_SCOPE {
                        every = true;
                    } else if seen.insert(implied.clone()) {
                        pending.push(implied);
                    }
                }
            }
            closure.insert(start.clone(), (seen.into_iter().collect(), every));
        }
        Implications { closure }
    }

    /// No `implied_scopes` configured.
    pub fn is_empty(&self) -> bool {
        self.closure.is_empty()
    }

    /// `held` plus everything it implies.
    pub fn expand(&self, held: &[String]) -> Granted {
        let mut granted = Granted::exactly(held);
        if self.is_empty() {
            return granted;
        }
        for scope in held {
            let Some((implied, every)) = self.closure.get(scope) else {
                continue;
            };
            granted.every |= every;
            for scope in implied {
                if !granted.scopes.contains(scope) {
                    granted.scopes.push(scope.clone());
                }
            }
        }
        granted
    }
}

/// Every `all` entry and, when `any` is non-empty, one `any` entry must be in `granted`. Empty
/// `all` and `any` require nothing.
pub fn satisfied(granted: &Granted, all: &[String], any: &[String]) -> bool {
    let has = |scope: &String| granted.has(scope);
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
                satisfied(
                    &Granted::exactly(&strings(granted)),
                    &strings(all),
                    &strings(any)
                ),
                *expected,
                "granted {granted:?}, all {all:?}, any {any:?}"
            );
        }
    }

    #[test]
    fn implications_are_transitive_and_star_means_every_scope() {
        let direct: BTreeMap<String, Vec<String>> = [
            ("admin", vec!["*"]),
            ("orders:write", vec!["orders:read"]),
            ("orders:read", vec!["orders:list"]),
            ("loop-a", vec!["loop-b"]),
            ("loop-b", vec!["loop-a"]),
        ]
        .into_iter()
        .map(|(scope, implied)| (scope.to_owned(), strings(&implied)))
        .collect();
        let implications = Implications::new(&direct);

        let writer = implications.expand(&strings(&["orders:write"]));
        assert!(!writer.every);
        assert_eq!(
            writer.scopes,
            strings(&["orders:write", "orders:list", "orders:read"])
        );
        assert!(satisfied(&writer, &strings(&["orders:list"]), &[]));
        assert!(!satisfied(&writer, &strings(&["orders:delete"]), &[]));

        let admin = implications.expand(&strings(&["admin"]));
        assert!(admin.every);
        assert!(satisfied(
            &admin,
            &strings(&["anything", "else"]),
            &strings(&["x"])
        ));

        let looped = implications.expand(&strings(&["loop-a"]));
        assert_eq!(looped.scopes, strings(&["loop-a", "loop-b"]));

        // Names are literal: no pattern matching, no implication from an implied-to scope
        // that is only a value.
        let reader = implications.expand(&strings(&["orders:read"]));
        assert!(!satisfied(&reader, &strings(&["orders:write"]), &[]));
        let literal = Implications::default().expand(&strings(&["orders:*"]));
        assert!(!satisfied(&literal, &strings(&["orders:read"]), &[]));
    }
}
