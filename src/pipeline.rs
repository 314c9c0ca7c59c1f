//! THE request pipeline (SPEC §3): [`decide`] runs the checks in the SPEC's order, [`handle`]
//! turns the decision into a forwarded request or a denial, and records metrics and the access
//! log. Nothing else in the crate decides who gets in.
//!
//! ```text
//!  request ─► canonical path ─► route ─► client addr ─► allowlists ─► client cert ─► token
//!                                                                                     │
//!             response ◄── upstream ◄── identity headers ◄──────────────── scopes ◄───┘
//! ```

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use http::header::{HeaderValue, CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::request::Parts;
use http::{HeaderName, Method, Request, Response};
use hyper::upgrade::OnUpgrade;

use crate::access_log::{self, AccessRecord};
use crate::auth::api_keys::{self, ApiKeyError, ApiKeySource, KeyHeader};
use crate::auth::bearer::{self, BearerError};
use crate::auth::cache::{TokenCache, Verified};
use crate::auth::credential::{self, Credential, CredentialError};
use crate::auth::jwt::{self, TokenError, Unverified};
use crate::auth::scopes;
use crate::deny::{Deny, InvalidRequest, RateLimited};
use crate::header_names::X_REQUEST_ID;
pub use crate::http_head::HeadFlags;
use crate::network::client_addr;
pub use crate::network::mtls::ClientCert;
use crate::proxy::{self, headers, Body};
use crate::ratelimit::{self, Facts, Verdict};
use crate::routing::{canonicalize, request_host, Lookup, PathError, RequestHost};
use crate::snapshot::{Route, Shared, Snapshot};

/// Facts about the client connection, captured once at accept time.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub tls: bool,
    pub client_cert: Option<Arc<ClientCert>>,
}

/// Receives each step's outcome; `explain` prints them, the server ignores them.
pub trait Trace {
    /// `detail` is only called when the trace keeps it.
    fn step(&mut self, step: &'static str, ok: bool, detail: impl FnOnce() -> String);

    /// A dry run (`explain`) shows which rate limits apply and their keys, and spends no
    /// budget.
    fn dry_run(&self) -> bool {
        false
    }
}

/// The server's trace: records nothing, costs nothing.
pub struct NoTrace;

impl Trace for NoTrace {
    #[inline]
    fn step(&mut self, _: &'static str, _: bool, _: impl FnOnce() -> String) {}
}

/// An allowed request.
#[derive(Debug)]
pub struct Allowed<'r> {
    pub route: usize,
    pub path: Cow<'r, str>,
    pub client: Option<IpAddr>,
    /// `None` on public routes.
    pub verified: Option<Arc<Verified>>,
    /// The `RateLimit` header of the limits that passed (SPEC §7.4), if the route has any.
    pub rate_limit: Option<HeaderValue>,
}

/// A denied request, with the route when one was chosen (for metrics).
#[derive(Debug)]
pub struct Denied<'r> {
    pub deny: Deny,
    pub route: Option<usize>,
    pub path: Option<Cow<'r, str>>,
    pub client: Option<IpAddr>,
}

/// Decides one request per SPEC §3; the first failing step answers.
pub async fn decide<'r>(
    snapshot: &Snapshot,
    parts: &'r Parts,
    conn: &ConnInfo,
    trace: &mut impl Trace,
) -> Result<Allowed<'r>, Denied<'r>> {
    let deny = |deny: Deny| Denied {
        deny,
        route: None,
        path: None,
        client: None,
    };

    // 1. Framing, target form and canonical path: routing and forwarding both use the
    //    canonical path, so the upstream receives exactly the path that was authorized.
    let path = canonical_target(snapshot, parts, trace).map_err(deny)?;
    trace.step("canonical path", true, || path.to_string());

    // 2. Route: a valid host (one trailing dot removed), host tier, longest whole-segment
    //    prefix, then method. Forwarding uses the same host (`forward`).
    let host = routed_host(parts, trace).map_err(|deny| Denied {
        deny,
        route: None,
        path: Some(path.clone()),
        client: None,
    })?;
    let host = host.as_ref().map(RequestHost::as_str);
    let route_index = match snapshot.table.lookup(host, &path, &parts.method) {
        Lookup::Matched(index) => index,
        Lookup::NoRoute => {
            trace.step("route", false, || "no route matches".into());
            return Err(Denied {
                deny: Deny::NoRoute,
                route: None,
                path: Some(path),
                client: None,
            });
        }
        Lookup::MethodNotAllowed(allow) => {
            trace.step("route", false, || {
                format!("method not allowed (Allow: {allow:?})")
            });
            let deny = Deny::MethodNotAllowed(allow.clone());
            return Err(Denied {
                deny,
                route: None,
                path: Some(path),
                client: None,
            });
        }
    };
    let route = &snapshot.routes[route_index];
    trace.step("route", true, || route.name.clone());
    let denied = |deny: Deny, path: Cow<'r, str>, client: Option<IpAddr>| Denied {
        deny,
        route: Some(route_index),
        path: Some(path),
        client,
    };

    // 3. Client address: the peer, or X-Forwarded-For when the peer is a trusted proxy.
    let client = client_addr(conn.peer.ip(), &parts.headers, &snapshot.trusted_proxies);
    trace.step("client address", client.is_some(), || match client {
        Some(addr) => addr.to_string(),
        None => "unknown (malformed X-Forwarded-For)".into(),
    });

    // 4. Allowlists, gateway-wide then the route's, before any token work: a refused address
    //    must not be able to make the gateway verify signatures.
    for (name, list) in [
        ("gateway allowlist", &snapshot.allow),
        ("route allowlist", &route.allow),
    ] {
        if list.is_empty() {
            continue;
        }
        let allowed = client.is_some_and(|addr| list.contains(addr));
        trace.step(name, allowed, || {
            if allowed { "allowed" } else { "refused" }.into()
        });
        if !allowed {
            return Err(denied(Deny::IpNotAllowed, path, client));
        }
    }

    // 5. Client certificate: the route may demand a verified one.
    if route.client_cert_required {
        let present = conn.client_cert.is_some();
        trace.step("client certificate", present, || {
            if present {
                "verified certificate present"
            } else {
                "none"
            }
            .into()
        });
        if !present {
            return Err(denied(Deny::ClientCertificateRequired, path, client));
        }
    }

    // 5b. Rate limits keyed on the client address alone, before any token work (SPEC §7.4).
    let mut limits = String::new();
    let facts = Facts {
        route: &route.name,
        client,
        ..Facts::default()
    };
    let route_limits = (route.rate_limits.as_slice(), &[][..]);
    if let Err(deny) = rate_limits(snapshot, route_limits, true, &facts, &mut limits, trace).await {
        return Err(denied(deny, path, client));
    }

    // 6. Token, skipped on public routes.
    if route.public {
        trace.step("token", true, || "public route: no token needed".into());
        if let Err(deny) =
            rate_limits(snapshot, route_limits, false, &facts, &mut limits, trace).await
        {
            return Err(denied(deny, path, client));
        }
        return Ok(Allowed {
            route: route_index,
            path,
            client,
            verified: None,
            rate_limit: rate_limit_header(&limits),
        });
    }
    let verified = match authenticate_credential(snapshot, route, parts, conn, trace).await {
        Ok(verified) => verified,
        Err(deny) => return Err(denied(deny, path, client)),
    };

    // 6b. Client policy: the verified client's `[[clients]]` rules, on every request (the
    //     address and certificate belong to the connection, not to the cached token).
    if let Err(deny) = client_rules(snapshot, &verified, client, conn, trace) {
        return Err(denied(deny, path, client));
    }

    // 7. Scopes: every `scopes` entry, and one of `any_scopes` when given, after the issuer's
    //    implied scopes.
    let granted = &verified.principal.granted;
    let shown = || {
        let held = verified.principal.scopes.join(" ");
        match (
            granted.every,
            granted.scopes.len() > verified.principal.scopes.len(),
        ) {
            (true, _) => format!("granted: {held} (implies every scope)"),
            (false, true) => format!(
                "granted: {held} (with implied: {})",
                granted.scopes.join(" ")
            ),
            (false, false) => format!("granted: {held}"),
        }
    };
    if !scopes::satisfied(granted, &route.scopes, &route.any_scopes) {
        trace.step("scopes", false, shown);
        let deny = Deny::InsufficientScope(route.scope_challenge.clone());
        return Err(denied(deny, path, client));
    }
    trace.step("scopes", true, shown);

    // 7b. The other rate limits, the route's then the client's, after authentication
    //     (SPEC §7.4).
    let principal = &verified.principal;
    // An API key is named by its source and id: ids are unique within one source only.
    let api_key = principal
        .key_id
        .as_ref()
        .map(|id| format!("{}/{id}", principal.issuer));
    let facts = Facts {
        client_id: principal.client_id.as_deref(),
        subject: principal.subject.as_deref(),
        api_key: api_key.as_deref(),
        ..facts
    };
    let client_limits = facts
        .client_id
        .and_then(|id| snapshot.client_rate_limits.get(id))
        .map_or(&[][..], Vec::as_slice);
    let limits_here = (route.rate_limits.as_slice(), client_limits);
    if let Err(deny) = rate_limits(snapshot, limits_here, false, &facts, &mut limits, trace).await {
        return Err(denied(deny, path, client));
    }
    Ok(Allowed {
        route: route_index,
        path,
        client,
        verified: Some(verified),
        rate_limit: rate_limit_header(&limits),
    })
}

/// Steps 5b (`early`: keyed on the client address alone) and 7b (the others) of SPEC §7.4:
/// every limit of the stage (the route's, then the client's `[[clients]]` ones the route does
/// not list) spends one request; the first refusal answers. Passing limits add their
/// `RateLimit` list member to `header`.
///
/// `api_key` limits apply to requests authenticated by an API key only (keyed by the key's
/// source and id); other requests skip them.
async fn rate_limits(
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
            trace.step("rate limit", true, || {
                format!("{name}: does not apply (no API key on this request)")
            });
            continue;
        };
        if trace.dry_run() {
            trace.step("rate limit", true, || {
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
                trace.step("rate limit", true, || format!("{name}: {item}"));
            }
            Verdict::Limited { retry_after } => {
                trace.step("rate limit", false, || format!("{name}: {item}"));
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

fn rate_limit_header(items: &str) -> Option<HeaderValue> {
    (!items.is_empty())
        .then(|| HeaderValue::from_str(items).ok())
        .flatten()
}

/// Step 6b (SPEC §7.2): the `[[clients]]` entry of the verified client id. Every rule of the
/// entry must hold; a client without an entry is governed by the route alone, unless
/// `require_client_entry` is set.
fn client_rules(
    snapshot: &Snapshot,
    verified: &Verified,
    client: Option<IpAddr>,
    conn: &ConnInfo,
    trace: &mut impl Trace,
) -> Result<(), Deny> {
    let client_id = verified.principal.client_id.as_deref();
    let Some(policy) = client_id.and_then(|id| snapshot.clients.get(id)) else {
        if snapshot.require_client_entry {
            trace.step("client policy", false, || {
                "no [[clients]] entry for this client id (require_client_entry)".into()
            });
            return Err(Deny::ClientNotAllowed);
        }
        return Ok(());
    };
    if !policy.allow.is_empty() && !client.is_some_and(|addr| policy.allow.contains(addr)) {
        trace.step("client policy", false, || {
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
            trace.step("client policy", false, || {
                "no client certificate of this client on the connection".into()
            });
            return Err(Deny::ClientCertificateRequired);
        }
    }
    let granted = &verified.principal.granted;
    if !scopes::satisfied(granted, &policy.scopes, &[]) {
        trace.step("client policy", false, || {
            format!("the client must hold: {}", policy.scopes.join(" "))
        });
        let challenge = policy
            .scope_challenge
            .clone()
            .unwrap_or_else(|| HeaderValue::from_static(""));
        return Err(Deny::InsufficientScope(challenge));
    }
    trace.step("client policy", true, || {
        format!("[[clients]] entry {} holds", client_id.unwrap_or_default())
    });
    Ok(())
}

/// Step 1: the request target's form, its framing, and its canonical path (SPEC §3 step 1).
fn canonical_target<'r>(
    snapshot: &Snapshot,
    parts: &'r Parts,
    trace: &mut impl Trace,
) -> Result<Cow<'r, str>, Deny> {
    let target_length = parts
        .uri
        .path_and_query()
        .map_or(0, |target| target.as_str().len());
    if target_length > snapshot.server.max_request_line_bytes {
        trace.step("target", false, || {
            format!("request target of {target_length} bytes")
        });
        return Err(Deny::InvalidRequest(InvalidRequest::TargetTooLong));
    }
    if parts.method == Method::CONNECT || parts.uri.path() == "*" {
        trace.step("target", false, || {
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
    if head.has(HeadFlags::CONFLICTING_LENGTH) || head.has(HeadFlags::BARE_LF) || odd_coding {
        trace.step("framing", false, || "ambiguous message framing".into());
        return Err(Deny::InvalidRequest(InvalidRequest::Framing));
    }
    // The parser cuts a raw `#` off the target; SPEC §3 step 1 refuses it.
    if head.has(HeadFlags::FRAGMENT) {
        trace.step("canonical path", false, || {
            PathError::Fragment.description().into()
        });
        return Err(Deny::InvalidRequest(InvalidRequest::Path(
            PathError::Fragment,
        )));
    }
    canonicalize(parts.uri.path()).map_err(|error| {
        trace.step("canonical path", false, || error.description().into());
        Deny::InvalidRequest(InvalidRequest::Path(error))
    })
}

/// Step 2's host: [`request_host`] (the one Host rule), refused with 400 when malformed.
fn routed_host<'r>(
    parts: &'r Parts,
    trace: &mut impl Trace,
) -> Result<Option<RequestHost<'r>>, Deny> {
    request_host(parts).map_err(|error| {
        trace.step("host", false, || error.description().into());
        Deny::InvalidRequest(InvalidRequest::Host(error))
    })
}

fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Step 6: bearer token, cache, then verification under the route's issuers.
async fn authenticate(
    snapshot: &Snapshot,
    route: &Route,
    parts: &Parts,
    conn: &ConnInfo,
    trace: &mut impl Trace,
) -> Result<Arc<Verified>, Deny> {
    let token = match bearer::extract(&parts.headers) {
        Ok(token) => token,
        Err(BearerError::Missing) => {
            trace.step("token", false, || "no bearer token".into());
            return Err(Deny::MissingToken);
        }
        Err(BearerError::Malformed) => {
            trace.step("token", false, || "malformed Authorization header".into());
            return Err(Deny::InvalidRequest(InvalidRequest::Authorization));
        }
    };
    let now = now_seconds();
    let cert = conn.client_cert.as_ref().map(|cert| &cert.sha256);
    let key = TokenCache::key(token);

    // A cached verification counts only for an issuer entry this route allows, under the same
    // rules and key source (generation), while that issuer's current key set still holds the
    // exact key that verified it (SPEC §6: removing a key revokes what it signed), and a
    // certificate-bound token only on a connection with that certificate. Scopes are checked
    // by the caller on every request.
    if let Some(hit) = snapshot.token_cache.get(&key, now) {
        // An issuer whose keys are gone (stale past max_stale) counts as having no key set,
        // also for tokens it verified earlier.
        let allowed_here = route.issuers.iter().any(|&index| {
            let issuer = &snapshot.issuers[index];
            issuer.generation == hit.issuer_generation
                && issuer
                    .store
                    .keys()
                    .is_some_and(|keys| hit.principal.verified_by.still_in(&keys))
        });
        let binding_holds = hit
            .principal
            .bound_cert_sha256
            .is_none_or(|bound| Some(&bound) == cert);
        if allowed_here && binding_holds {
            snapshot.metrics.token_cache_hits.inc();
            trace.step("token", true, || "valid (cached verification)".into());
            return Ok(hit);
        }
    }
    snapshot.metrics.token_cache_misses.inc();

    let unverified = Unverified::decode(token).map_err(|error| {
        trace.step("token", false, || error.description().into());
        Deny::InvalidToken(error)
    })?;
    let iss = unverified.issuer();
    // Collected (not a lazy iterator) so no closure is held across the refresh await below.
    let candidates: Vec<&crate::snapshot::Issuer> = route
        .issuers
        .iter()
        .map(|&index| &snapshot.issuers[index])
        .filter(|issuer| Some(issuer.policy.issuer.as_str()) == iss)
        .collect();
    if candidates.is_empty() {
        trace.step("token", false, || {
            "the token's issuer is not allowed on this route".into()
        });
        return Err(Deny::InvalidToken(TokenError::UnknownIssuer));
    }

    // Several issuer entries may share one `iss` (one per audience or tenant): the first entry
    // under which the token verifies wins; otherwise the first failure is reported.
    let mut first_error = None;
    let mut without_keys = Vec::new();
    for issuer in candidates {
        let Some(keys) = issuer.store.keys() else {
            without_keys.push(issuer.name.as_str());
            continue;
        };
        let mut result = jwt::verify(&unverified, &issuer.policy, &keys, now, cert);
        if result.as_ref().err() == Some(&TokenError::UnknownKey) {
            // An unknown kid may be a key the provider just rotated in: one coalesced refresh.
            if let Some(fresh) = issuer.store.refresh_for_unknown_kid().await {
                result = jwt::verify(&unverified, &issuer.policy, &fresh, now, cert);
            }
        }
        match result {
            Ok(principal) => {
                trace.step("token", true, || {
                    format!("valid for issuer entry {}", issuer.name)
                });
                let verified = Verified {
                    issuer_generation: issuer.generation,
                    principal,
                };
                return Ok(snapshot.token_cache.insert(key, verified));
            }
            Err(error) => {
                trace.step("token", false, || {
                    format!("issuer entry {}: {}", issuer.name, error.description())
                });
                first_error.get_or_insert(error);
            }
        }
    }
    match first_error {
        // Only when every candidate judged the token is a refusal final: an entry without keys
        // might have accepted it, and clients must not throw away good tokens (503, not 401).
        Some(error) if without_keys.is_empty() => Err(Deny::InvalidToken(error)),
        Some(_) | None => {
            trace.step("keys", false, || {
                format!("no usable key set for {}", without_keys.join(", "))
            });
            Err(Deny::Unavailable)
        }
    }
}

/// Step 6 with API keys: picks the credential by where it is and its shape (auth::credential),
/// then judges it as a key or as a token, never both. Routes without `api_keys` go straight
/// to [`authenticate`].
async fn authenticate_credential(
    snapshot: &Snapshot,
    route: &Route,
    parts: &Parts,
    conn: &ConnInfo,
    trace: &mut impl Trace,
) -> Result<Arc<Verified>, Deny> {
    let key_headers = route
        .api_keys
        .iter()
        .map(|&index| &snapshot.api_keys[index].header);
    let takes_tokens = !route.issuers.is_empty();
    let chosen =
        credential::choose(&parts.headers, key_headers, takes_tokens).map_err(|error| {
            let deny = match error {
                CredentialError::Missing => Deny::MissingToken,
                CredentialError::MalformedAuthorization => {
                    Deny::InvalidRequest(InvalidRequest::Authorization)
                }
                CredentialError::MalformedKeyHeader => {
                    Deny::InvalidRequest(InvalidRequest::ApiKeyHeader)
                }
                CredentialError::TwoCredentials => {
                    Deny::InvalidRequest(InvalidRequest::TwoCredentials)
                }
                CredentialError::NotAnApiKey => Deny::InvalidApiKey(ApiKeyError::NotAnApiKey),
            };
            trace.step("credential", false, || deny.description().into());
            deny
        })?;
    match chosen {
        Credential::Token => authenticate(snapshot, route, parts, conn, trace).await,
        Credential::Key { key, header } => {
            authenticate_api_key(snapshot, route, key, header, trace).await
        }
    }
}

/// Step 6 for an API key: looked up in the route's sources that read where it came from.
/// Not put in the token cache: the lookup is one SHA-256 and a map probe (argon2id entries
/// remember their verified digest themselves).
async fn authenticate_api_key(
    snapshot: &Snapshot,
    route: &Route,
    key: &str,
    header: Option<&HeaderName>,
    trace: &mut impl Trace,
) -> Result<Arc<Verified>, Deny> {
    let sources: Vec<Arc<ApiKeySource>> = route
        .api_keys
        .iter()
        .map(|&index| &snapshot.api_keys[index])
        .filter(|source| match (&source.header, header) {
            (KeyHeader::Authorization, None) => true,
            (KeyHeader::Named(name), Some(presented)) => name == presented,
            (KeyHeader::Authorization, Some(_)) | (KeyHeader::Named(_), None) => false,
        })
        .cloned()
        .collect();
    match api_keys::authenticate(&sources, key, now_seconds()).await {
        Ok((verified, source)) => {
            trace.step("api key", true, || {
                let id = verified.principal.key_id.as_deref().unwrap_or_default();
                format!("valid API key, id {id}, source {source}")
            });
            Ok(verified)
        }
        Err(error) => {
            trace.step("api key", false, || error.description().into());
            Err(Deny::InvalidApiKey(error))
        }
    }
}

/// A process-unique request id: a random prefix per process and a counter.
pub(crate) fn new_request_id() -> HeaderValue {
    static PREFIX: OnceLock<u32> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(rand::random::<u32>);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let text = format!("{prefix:08x}{n:016x}");
    // Hex digits are always a valid header value.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

fn request_has_body(parts: &Parts) -> bool {
    parts.headers.contains_key(TRANSFER_ENCODING)
        || parts
            .headers
            .get(CONTENT_LENGTH)
            .is_some_and(|length| length.as_bytes() != b"0")
}

/// Handles one request on `conn`: decide, then forward or deny; metrics and the access log
/// are recorded here and nowhere else.
pub async fn handle(shared: &Shared, conn: &ConnInfo, request: Request<Body>) -> Response<Body> {
    let snapshot = shared.load_full();
    let started = std::time::Instant::now();
    let deadline = proxy::deadline_after(snapshot.server.request_timeout);
    let (mut parts, body) = request.into_parts();
    let request_id = match parts.headers.get(X_REQUEST_ID) {
        Some(id) if headers::acceptable_request_id(id) => id.clone(),
        _ => new_request_id(),
    };

    let decision = decide(&snapshot, &parts, conn, &mut NoTrace).await;
    let grpc_request = crate::deny::is_grpc(&parts.headers);
    // Unread body bytes must never be parsed as the next request: a response the gateway makes
    // itself to a request with a body closes the connection.
    let has_body = request_has_body(&parts);
    let mut record = AccessRecord::new(&parts, conn, &request_id);
    let (mut response, route) = match decision {
        Ok(allowed) => {
            let route = &snapshot.routes[allowed.route];
            route.metrics.allowed(route.public);
            record.allowed(&allowed, route, &snapshot);
            // End the borrow of `parts` so forwarding can take its headers.
            let Allowed {
                route: index,
                path,
                verified,
                rate_limit,
                ..
            } = allowed;
            let path = path.into_owned();
            let outbound = Outbound {
                route,
                path: &path,
                verified: verified.as_deref(),
                request_id: &request_id,
            };
            let mut response =
                match forward(&snapshot, conn, &mut parts, body, &outbound, deadline).await {
                    Ok(response) => {
                        record.served_by(&response);
                        response
                    }
                    Err(deny) => {
                        record.failed(&deny);
                        deny_response_as(deny, has_body, grpc_request || route.grpc)
                    }
                };
            if let Some(value) = rate_limit {
                response.headers_mut().insert(ratelimit::RATELIMIT, value);
            }
            (response, Some(index))
        }
        Err(denied) => {
            let route = denied.route.map(|index| &snapshot.routes[index]);
            if let Some(route) = route {
                route.metrics.denied(denied.deny.reason());
            }
            record.denied(&denied, route);
            // Unread body bytes must never be parsed as the next request: close the connection
            // after a denial when the client sent a body.
            let grpc = grpc_request || route.is_some_and(|route| route.grpc);
            (deny_response_as(denied.deny, has_body, grpc), denied.route)
        }
    };
    headers::set_request_id(response.headers_mut(), &request_id);

    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    match route {
        Some(index) => snapshot.routes[index]
            .metrics
            .request(status, elapsed.as_secs_f64()),
        None => snapshot.unrouted.request(status, elapsed.as_secs_f64()),
    }
    record.finish(status, elapsed, &response);
    access_log::emit(&record);
    response
}

/// [`deny_response`], or its gRPC rendering for gRPC requests and routes.
fn deny_response_as(deny: Deny, close: bool, grpc: bool) -> Response<Body> {
    if !grpc {
        return deny_response(deny, close);
    }
    let close = close || matches!(deny, Deny::InvalidRequest(_));
    let mut response = deny.into_grpc_response().map(proxy::full);
    // Over HTTP/1 the same rule as for JSON denials (HTTP/2 drops the header).
    if close {
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

pub(crate) fn deny_response(deny: Deny, close: bool) -> Response<Body> {
    // A malformed request says nothing good about what follows it on the connection.
    let close = close || matches!(deny, Deny::InvalidRequest(_));
    let mut response = deny.into_response().map(proxy::full);
    if close {
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

struct Outbound<'a> {
    route: &'a Route,
    path: &'a str,
    verified: Option<&'a Verified>,
    request_id: &'a HeaderValue,
}

/// Step 8: rewrite the headers (SPEC §4) and send upstream.
async fn forward(
    snapshot: &Snapshot,
    conn: &ConnInfo,
    parts: &mut Parts,
    body: Body,
    outbound: &Outbound<'_>,
    deadline: tokio::time::Instant,
) -> Result<Response<Body>, Deny> {
    let route = outbound.route;
    if let Some(limit) = route.max_body_bytes {
        let declared = parts
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|length| length.to_str().ok())
            .and_then(|length| length.parse::<u64>().ok());
        if declared.is_some_and(|length| length > limit) {
            return Err(Deny::PayloadTooLarge);
        }
    }
    let upstream = &snapshot.upstreams[route.upstream];
    let websocket = headers::is_websocket_upgrade(&parts.headers);
    // The host that chose the route (validated, one trailing dot removed), never the raw one.
    let original_host = routed_host(parts, &mut NoTrace)?.and_then(|host| host.header_value());

    let headers = &mut parts.headers;
    // `TE: trailers` (gRPC) survives toward HTTP/2 upstreams and for gRPC requests.
    let te_trailers = headers::te_trailers(headers)
        && (crate::deny::is_grpc(headers) || upstream.client.identity.protocol.may_use_h2());
    // Remove first, add after: nothing the client sends can remove or spoof what we add.
    headers::remove_hop_by_hop(headers, websocket);
    if te_trailers {
        headers.insert(http::header::TE, HeaderValue::from_static("trailers"));
    }
    headers::remove_identity_headers(headers, &snapshot.claim_header_names);
    let peer = conn.peer.ip();
    let forwarded = headers::Forwarded {
        peer,
        peer_trusted: snapshot.trusted_proxies.contains(peer),
        proto: if conn.tls { "https" } else { "http" },
        host: original_host.as_ref(),
    };
    headers::set_forwarded(headers, &forwarded);
    headers.insert(X_REQUEST_ID, outbound.request_id.clone());
    if let Some(verified) = outbound.verified {
        for (name, value) in &verified.principal.headers {
            headers.insert(name.clone(), value.clone());
        }
    }
    if let Some(cert) = &conn.client_cert {
        headers::set_client_cert(headers, &cert.subject, &cert.sha256_hex);
    }
    if upstream.preserve_host {
        if let Some(host) = original_host {
            headers.insert(HOST, host);
        }
    }

    let uri = proxy::origin_form(outbound.path, parts.uri.query())?;
    let mut request = Request::new(match route.max_body_bytes {
        Some(limit) => proxy::boxed(http_body_util::Limited::new(body, limit as usize)),
        None => body,
    });
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = uri;
    *request.headers_mut() = std::mem::take(&mut parts.headers);
    // The client side of a WebSocket upgrade, spliced to the upstream's after its 101.
    let client_upgrade = if websocket {
        parts.extensions.remove::<OnUpgrade>()
    } else {
        None
    };
    proxy::forward(upstream, request, deadline, client_upgrade, route.timeouts).await
}
