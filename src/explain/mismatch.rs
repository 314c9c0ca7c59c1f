//! `explain`'s token view: the token's header and claims, each compared value printed beside
//! what the config expected (`iss "https://idp" != configured "https://idp/"`,
//! `aud ["a","b"] ∌ "api://orders"`, times against now and `leeway`, scopes required against
//! granted, `cnf.x5t#S256` against the presented certificate).
//!
//! It only prints: the decision is `pipeline::decide`'s, and this view never changes it. It
//! reads the token without verifying it (the trace says whether the signature holds), so it
//! shows claims as the token states them. It never prints the token, its signature or a key.
//! Values are printed as JSON, so control characters in a claim are escaped, and long values
//! are cut.

use std::fmt::Write as _;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{Map, Value};

use crate::auth::jwt::{TokenPolicy, Unverified};
use crate::snapshot::{Route, Snapshot};

/// Longest rendering of one value.
const MAX_VALUE: usize = 200;

/// What the view compares against besides the config.
pub struct Facts<'a> {
    /// The chosen route, when routing got that far.
    pub route: Option<&'a Route>,
    /// SHA-256 of the presented (and verified) client certificate.
    pub cert_sha256: Option<&'a [u8; 32]>,
    /// Seconds since the epoch.
    pub now: u64,
}

/// Appends the token view for `token` (a bearer value) to `text`; nothing when it is not a
/// JWT (an API key, or a value the trace already called malformed).
pub fn render(snapshot: &Snapshot, token: &str, facts: &Facts<'_>, text: &mut String) {
    if token.split('.').count() != 3 {
        return;
    }
    let Ok(unverified) = Unverified::decode(token) else {
        return;
    };
    let _ = writeln!(text, "token (claims as stated, before verification):");
    let _ = writeln!(
        text,
        "  header   alg {:?}, kid {}, typ {}",
        unverified.algorithm(),
        shown_opt(unverified.kid()),
        shown_opt(unverified.typ())
    );
    let claims = unverified.claims();
    let iss = claims.get("iss");
    let entries: Vec<&crate::snapshot::Issuer> = match facts.route {
        Some(route) => route
            .issuers
            .iter()
            .map(|&i| &snapshot.issuers[i])
            .collect(),
        None => snapshot.issuers.iter().collect(),
    };
    let matching: Vec<_> = entries
        .iter()
        .filter(|entry| iss.and_then(Value::as_str) == Some(entry.policy.issuer.as_str()))
        .collect();
    if matching.is_empty() {
        for entry in &entries {
            line(
                text,
                "iss",
                false,
                format!(
                    "{} != configured {} (issuer entry {})",
                    shown(iss),
                    json(&Value::String(entry.policy.issuer.clone())),
                    entry.name
                ),
            );
        }
        if entries.is_empty() {
            line(
                text,
                "iss",
                false,
                format!("{}: no issuer entry to compare with", shown(iss)),
            );
        }
    }
    for entry in matching {
        let _ = writeln!(
            text,
            "  issuer entry {}: iss {} == configured",
            entry.name,
            shown(iss)
        );
        compare(&unverified, claims, &entry.policy, facts, text);
        if let Some(route) = facts.route {
            scopes(claims, &entry.policy, route, text);
        }
    }
}

/// Every check of `jwt::verify` after the issuer, in its order, as a comparison.
fn compare(
    token: &Unverified<'_>,
    claims: &Map<String, Value>,
    policy: &TokenPolicy,
    facts: &Facts<'_>,
    text: &mut String,
) {
    let alg = token.algorithm();
    let allowed: Vec<String> = policy.algorithms.iter().map(|a| format!("{a:?}")).collect();
    let alg_ok = policy.algorithms.contains(&alg);
    let sign = if alg_ok { "∈" } else { "∉" };
    line(
        text,
        "alg",
        alg_ok,
        format!("{alg:?} {sign} algorithms [{}]", allowed.join(", ")),
    );
    times(claims, policy, facts.now, text);
    audience(claims, &policy.audiences, text);
    client(claims, policy, text);
    if !policy.token_types.is_empty() {
        let typ = token.typ();
        let ok = typ.is_some_and(|typ| {
            let name = |t: &str| {
                t.to_ascii_lowercase()
                    .trim_start_matches("application/")
                    .to_owned()
            };
            policy
                .token_types
                .iter()
                .any(|allowed| name(allowed) == name(typ))
        });
        let sign = if ok { "∈" } else { "∉" };
        line(
            text,
            "typ",
            ok,
            format!(
                "{} {sign} token_types {}",
                shown_opt(typ),
                list(&policy.token_types)
            ),
        );
    }
    for (claim, values) in &policy.required_claims {
        let value = claims.get(claim);
        let ok = match value {
            None => false,
            Some(Value::Array(items)) => items.iter().any(|item| values.contains(item)),
            Some(value) => values.contains(value),
        };
        let expected = match values.as_slice() {
            [one] => json(one),
            _ => format!("one of {}", json(&Value::Array(values.clone()))),
        };
        let sign = if ok { "==" } else { "!=" };
        line(
            text,
            "claim",
            ok,
            format!("{claim} {} {sign} required {expected}", shown(value)),
        );
    }
    binding(claims, policy, facts.cert_sha256, text);
}

fn times(claims: &Map<String, Value>, policy: &TokenPolicy, now: u64, text: &mut String) {
    let leeway = policy.leeway;
    let date = |name: &str| {
        claims
            .get(name)
            .and_then(Value::as_f64)
            .map(|d| d.floor() as i64)
    };
    let now_i = now as i64;
    let lee = leeway as i64;
    match date("exp") {
        None => line(
            text,
            "exp",
            false,
            format!("{} (required)", shown(claims.get("exp"))),
        ),
        Some(exp) => {
            let ok = now_i <= exp.saturating_add(lee);
            let state = if ok { "not expired" } else { "EXPIRED" };
            line(
                text,
                "exp",
                ok,
                format!(
                    "{} ({}): {state}, leeway {leeway}s",
                    when(exp),
                    relative(exp, now_i)
                ),
            );
        }
    }
    for (name, what) in [("nbf", "not valid yet"), ("iat", "issued in the future")] {
        if let Some(at) = date(name) {
            let ok = at <= now_i.saturating_add(lee);
            let state = if ok { "not in the future" } else { what };
            line(
                text,
                name,
                ok,
                format!(
                    "{} ({}): {state}, leeway {leeway}s",
                    when(at),
                    relative(at, now_i)
                ),
            );
        }
    }
    if let Some(limit) = policy.max_token_lifetime {
        let detail = match (date("iat"), date("exp")) {
            (Some(iat), Some(exp)) => {
                let lifetime = exp.saturating_sub(iat);
                let ok = lifetime <= limit as i64;
                let sign = if ok { "<=" } else { ">" };
                (
                    ok,
                    format!("exp - iat = {lifetime}s {sign} max_token_lifetime {limit}s"),
                )
            }
            _ => (
                false,
                format!("no iat/exp to measure; max_token_lifetime {limit}s needs both"),
            ),
        };
        line(text, "lifetime", detail.0, detail.1);
    }
}

fn audience(claims: &Map<String, Value>, audiences: &[String], text: &mut String) {
    let aud = claims.get("aud");
    if audiences.is_empty() {
        line(
            text,
            "aud",
            true,
            format!("{}: not checked (audiences = [])", shown(aud)),
        );
        return;
    }
    let accepted = |v: &Value| v.as_str().is_some_and(|v| audiences.iter().any(|a| a == v));
    let ok = match aud {
        Some(Value::Array(items)) => items.iter().any(accepted),
        Some(value) => accepted(value),
        None => false,
    };
    let expected = match audiences {
        [one] => json(&Value::String(one.clone())),
        _ => format!("one of {}", list(audiences)),
    };
    let sign = match (aud, ok) {
        (Some(Value::Array(_)), true) => "∋",
        (Some(Value::Array(_)), false) => "∌",
        (_, true) => "==",
        (_, false) => "!=",
    };
    line(text, "aud", ok, format!("{} {sign} {expected}", shown(aud)));
}

fn client(claims: &Map<String, Value>, policy: &TokenPolicy, text: &mut String) {
    let found = policy
        .client_id_claims
        .iter()
        .find_map(|name| claims.get(name).map(|value| (name, value)));
    let shown_id = match found {
        Some((name, value)) => format!("{} (claim {name})", json(value)),
        None => format!("absent (none of {})", policy.client_id_claims.join(", ")),
    };
    match &policy.allowed_clients {
        None => line(text, "client", true, shown_id),
        Some(allowed) => {
            let ok = found
                .and_then(|(_, value)| value.as_str())
                .is_some_and(|id| allowed.iter().any(|a| a == id));
            let sign = if ok { "∈" } else { "∉" };
            line(
                text,
                "client",
                ok,
                format!("{shown_id} {sign} allowed_clients {}", list(allowed)),
            );
        }
    }
}

/// RFC 8705 `cnf.x5t#S256` against the presented certificate.
fn binding(
    claims: &Map<String, Value>,
    policy: &TokenPolicy,
    cert: Option<&[u8; 32]>,
    text: &mut String,
) {
    let presented = cert.map(|digest| URL_SAFE_NO_PAD.encode(digest));
    let thumbprint = claims
        .get("cnf")
        .and_then(|cnf| cnf.get("x5t#S256"))
        .and_then(Value::as_str);
    match (thumbprint, presented) {
        (None, _) if claims.get("cnf").is_some() => line(
            text,
            "cnf",
            false,
            format!(
                "{}: no x5t#S256, a binding authgate cannot check",
                shown(claims.get("cnf"))
            ),
        ),
        (None, _) if policy.require_bound_token => line(
            text,
            "cnf",
            false,
            "absent, but the issuer sets require_bound_tokens".into(),
        ),
        (None, _) => {}
        (Some(bound), None) => line(
            text,
            "cnf",
            false,
            format!(
                "x5t#S256 {} but no client certificate presented (--cert)",
                json_str(bound)
            ),
        ),
        (Some(bound), Some(presented)) => {
            let ok = bound == presented;
            let sign = if ok { "==" } else { "!=" };
            line(
                text,
                "cnf",
                ok,
                format!(
                    "x5t#S256 {} {sign} presented certificate {}",
                    json_str(bound),
                    json_str(&presented)
                ),
            );
        }
    }
}

/// The route's scopes against the union of the issuer's `scope_claims` (plus implications).
fn scopes(claims: &Map<String, Value>, policy: &TokenPolicy, route: &Route, text: &mut String) {
    if route.public {
        return;
    }
    let mut held: Vec<String> = Vec::new();
    for name in &policy.scope_claims {
        let items: Vec<&str> = match claims.get(name) {
            Some(Value::String(list)) => list.split(' ').collect(),
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        for item in items {
            if !item.is_empty() && !held.iter().any(|h| h == item) {
                held.push(item.to_owned());
            }
        }
    }
    let granted = policy.implied_scopes.expand(&held);
    let missing: Vec<&str> = route
        .scopes
        .iter()
        .filter(|scope| !granted.has(scope))
        .map(String::as_str)
        .collect();
    let any_ok = route.any_scopes.is_empty() || route.any_scopes.iter().any(|s| granted.has(s));
    let mut detail = format!("required [{}]", route.scopes.join(" "));
    if !route.any_scopes.is_empty() {
        let _ = write!(detail, " and one of [{}]", route.any_scopes.join(" "));
    }
    let _ = write!(
        detail,
        ", granted [{}] (from {})",
        held.join(" "),
        policy.scope_claims.join(", ")
    );
    if !missing.is_empty() {
        let _ = write!(detail, ": missing {}", missing.join(" "));
    }
    if !any_ok {
        let _ = write!(detail, ": none of any_scopes");
    }
    line(text, "scopes", missing.is_empty() && any_ok, detail);
}

fn line(text: &mut String, name: &str, ok: bool, detail: String) {
    let mark = if ok { "ok" } else { "FAIL" };
    let _ = writeln!(text, "    {name:<8} {mark:<5} {detail}");
}

/// A claim's value as compact JSON, or `absent`.
fn shown(value: Option<&Value>) -> String {
    value.map_or_else(|| "absent".to_owned(), json)
}

fn shown_opt(value: Option<&str>) -> String {
    value.map_or_else(|| "absent".to_owned(), json_str)
}

fn json_str(value: &str) -> String {
    json(&Value::String(value.to_owned()))
}

fn list(values: &[String]) -> String {
    json(&Value::Array(
        values.iter().cloned().map(Value::String).collect(),
    ))
}

/// Compact JSON (control characters escaped), cut at [`MAX_VALUE`] characters.
fn json(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(MAX_VALUE) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text,
    }
}

/// A Unix time as RFC 3339 UTC, or the number when out of range.
fn when(at: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(at)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| at.to_string())
}

/// `in 4m 50s` or `1h 0m ago`.
fn relative(at: i64, now: i64) -> String {
    let span = |seconds: i64| {
        let d = Duration::from_secs(seconds.unsigned_abs());
        let s = d.as_secs();
        match s {
            0..=59 => format!("{s}s"),
            60..=3599 => format!("{}m {}s", s / 60, s % 60),
            3600..=86399 => format!("{}h {}m", s / 3600, s % 3600 / 60),
            _ => format!("{}d {}h", s / 86400, s % 86400 / 3600),
        }
    };
    match at.cmp(&now) {
        std::cmp::Ordering::Greater => format!("in {}", span(at - now)),
        std::cmp::Ordering::Less => format!("{} ago", span(now - at)),
        std::cmp::Ordering::Equal => "now".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_read_as_durations() {
        assert_eq!(relative(1000, 1000), "now");
        assert_eq!(relative(1290, 1000), "in 4m 50s");
        assert_eq!(relative(1000, 4600), "1h 0m ago");
        assert_eq!(relative(0, 200_000), "2d 7h ago");
        assert_eq!(when(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn values_are_json_and_cut() {
        assert_eq!(json(&serde_json::json!(["a", "b"])), r#"["a","b"]"#);
        assert_eq!(json_str("a\nb"), r#""a\nb""#);
        let long = json_str(&"x".repeat(500));
        assert!(long.ends_with("...") && long.len() < 220, "{long}");
    }
}
