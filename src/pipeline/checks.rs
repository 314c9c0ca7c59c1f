//! The steps of [`decide`](super::decide) around the credential: the request target and its
//! host (SPEC §3 steps 1-2), the verified client's `[[clients]]` rules (step 6b, SPEC §7.2)
//! and the rate limits (steps 5b and 7b, SPEC §7.4). Each returns `Result<_, Deny>`; the order
//! they run in is `decide`'s alone.

use std::borrow::Cow;
use std::net::IpAddr;

use http::header::{HeaderValue, TRANSFER_ENCODING};
use http::request::Parts;
use http::Method;

use super::{ConnInfo, Step, Trace};
use crate::auth::cache::Verified;
use crate::auth::scopes;
use crate::deny::{Deny, InvalidRequest, RateLimited};
use crate::http_head::{HeadFlag, HeadFlags};
use crate::ratelimit::{self, Facts, Verdict};
use crate::routing::{canonicalize, request_host, PathError, RequestHost};
use crate::snapshot::Snapshot;

/// Steps 5b (`early`: keyed on the client address alone) and 7b (the others) of SPEC §7.4:
/// every limit of the stage (the route's, then the client's `[[clients]]` ones the route does
/// not list) spends one request; the first refusal answers. Passing limits add their
/// `RateLimit` list member to `header`.
///
/// `api_key` limits apply to requests authenticated by an API key only (keyed by the key's
/// source and id); other requests skip them.
pub(super) async fn rate_limits(
    snapshot: &Snapshot,
    (route_limits, client_limits): (&[usize], &[usize]),
    early: bool,
    facts: &Facts<'_>,
    header: &mut String,
    trace: &mut impl Trace,
) -> Result<(), Deny> {
    let client_only = client_limits
        .iter()
        .filter(|index| !route_limits.contains(index));
    for &index in route_limits.iter().chain(client_only) {
        let policy = &snapshot.rate_limits[index];
        if policy.spec.early() != early {
            continue;
        }
        let name = policy.spec.name.as_str();
        let Some(key) = ratelimit::key_for(&policy.spec, facts) else {
            trace.step(Step::RateLimit, true, || {
                format!("{name}: does not apply (no API key on this request)")
            });
            continue;
        };
        if trace.dry_run() {
            trace.step(Step::RateLimit, true, || {
                format!("{name}: key {} (not counted by explain)", key.shown)
            });
            continue;
        }
        let verdict = policy.check(&key).await;
        let item = verdict.item(name);
        match verdict {
            Verdict::Allowed { .. } => {
                if !header.is_empty() {
                    header.push_str(", ");
                }
                header.push_str(&item);
                trace.step(Step::RateLimit, true, || format!("{name}: {item}"));
            }
            Verdict::Limited { retry_after } => {
                trace.step(Step::RateLimit, false, || format!("{name}: {item}"));
                return Err(Deny::RateLimited(RateLimited {
                    policy: policy.policy_header.clone(),
                    limit: HeaderValue::from_str(&item)
                        .unwrap_or_else(|_| HeaderValue::from_static("")),
                    retry_after: ratelimit::whole_seconds(retry_after, 1),
                }));
            }
        }
    }
    Ok(())
}

pub(super) fn rate_limit_header(items: &str) -> Option<HeaderValue> {
    (!items.is_empty())
        .then(|| HeaderValue::from_str(items).ok())
        .flatten()
}

/// Step 6b (SPEC §7.2): the `[[clients]]` entry of the verified client id. Every rule of the
/// entry must hold; a client without an entry is governed by the route alone, unless
/// `require_client_entry` is set.
pub(super) fn client_rules(
    snapshot: &Snapshot,
    verified: &Verified,
    client: Option<IpAddr>,
    conn: &ConnInfo,
    trace: &mut impl Trace,
) -> Result<(), Deny> {
    let client_id = verified.principal.client_id.as_deref();
    let Some(policy) = client_id.and_then(|id| snapshot.clients.get(id)) else {
        if snapshot.require_client_entry {
            trace.step(Step::ClientPolicy, false, || {
                "no [[clients]] entry for this client id (require_client_entry)".into()
            });
            return Err(Deny::ClientNotAllowed);
        }
        return Ok(());
    };
    if !policy.allow.is_empty() && !client.is_some_and(|addr| policy.allow.contains(addr)) {
        trace.step(Step::ClientPolicy, false, || {
            "the client address is not in the client's allow list".into()
        });
        return Err(Deny::IpNotAllowed);
    }
    if policy.pins_certificates() {
        let pinned = conn.client_cert.as_ref().is_some_and(|cert| {
            policy.cert_sha256.contains(&cert.sha256)
                || cert
                    .subject
                    .to_str()
                    .is_ok_and(|subject| policy.cert_subjects.iter().any(|s| s == subject))
        });
        if !pinned {
            trace.step(Step::ClientPolicy, false, || {
                "no client certificate of this client on the connection".into()
            });
            return Err(Deny::ClientCertificateRequired);
        }
    }
    let granted = &verified.principal.granted;
    if !scopes::satisfied(granted, &policy.scopes, &[]) {
        trace.step(Step::ClientPolicy, false, || {
            format!("the client must hold: {}", policy.scopes.join(" "))
        });
        let challenge = policy
            .scope_challenge
            .clone()
            .unwrap_or_else(|| HeaderValue::from_static(""));
        return Err(Deny::InsufficientScope(challenge));
    }
    trace.step(Step::ClientPolicy, true, || {
        format!("[[clients]] entry {} holds", client_id.unwrap_or_default())
    });
    Ok(())
}

/// Step 1: the request target's form, its framing, and its canonical path (SPEC §3 step 1).
pub(super) fn canonical_target<'r>(
    snapshot: &Snapshot,
    parts: &'r Parts,
    trace: &mut impl Trace,
) -> Result<Cow<'r, str>, Deny> {
    let target_length = parts
        .uri
        .path_and_query()
        .map_or(0, |target| target.as_str().len());
    if target_length > snapshot.server.max_request_line_bytes {
        trace.step(Step::Target, false, || {
            format!("request target of {target_length} bytes")
        });
        return Err(Deny::InvalidRequest(InvalidRequest::TargetTooLong));
    }
    if parts.method == Method::CONNECT || parts.uri.path() == "*" {
        trace.step(Step::Target, false, || {
            "authority-form and asterisk-form are refused".into()
        });
        return Err(Deny::InvalidRequest(InvalidRequest::Target));
    }
    // Framing the HTTP parser would normalize silently (RFC 9112 6.1, 6.3): both
    // Transfer-Encoding and Content-Length, a transfer coding other than plain `chunked`
    // (the gateway removes Transfer-Encoding, so an upstream would read coded bytes as the
    // body), or bare-LF line endings. Each is a smuggling vector between hops: refused.
    let head = parts
        .extensions
        .get::<HeadFlags>()
        .copied()
        .unwrap_or_default();
    let odd_coding = parts
        .headers
        .get_all(TRANSFER_ENCODING)
        .iter()
        .any(|coding| !coding.as_bytes().eq_ignore_ascii_case(b"chunked"));
    if head.has(HeadFlag::ConflictingLength) || head.has(HeadFlag::BareLf) || odd_coding {
        trace.step(Step::Framing, false, || "ambiguous message framing".into());
        return Err(Deny::InvalidRequest(InvalidRequest::Framing));
    }
    // The parser cuts a raw `#` off the target; SPEC §3 step 1 refuses it.
    if head.has(HeadFlag::Fragment) {
        trace.step(Step::CanonicalPath, false, || {
            PathError::Fragment.description().into()
        });
        return Err(Deny::InvalidRequest(InvalidRequest::Path(
            PathError::Fragment,
        )));
    }
    canonicalize(parts.uri.path()).map_err(|error| {
        trace.step(Step::CanonicalPath, false, || error.description().into());
        Deny::InvalidRequest(InvalidRequest::Path(error))
    })
}

/// Step 2's host: [`request_host`] (the one Host rule), refused with 400 when malformed.
pub(super) fn routed_host<'r>(
    parts: &'r Parts,
    trace: &mut impl Trace,
) -> Result<Option<RequestHost<'r>>, Deny> {
    request_host(parts).map_err(|error| {
        trace.step(Step::Host, false, || error.description().into());
        Deny::InvalidRequest(InvalidRequest::Host(error))
    })
}
