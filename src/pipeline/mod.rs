//! THE request pipeline (SPEC §3): [`decide`] runs the checks in the SPEC's order, [`handle`]
//! turns the decision into a forwarded request or a denial, and records metrics and the access
//! log. Nothing else in the crate decides who gets in.
//!
//! ```text
//!  request ─► canonical path ─► route ─► client addr ─► allowlists ─► client cert ─► token
//!                                                                                     │
//!             response ◄── upstream ◄── identity headers ◄──────────────── scopes ◄───┘
//! ```
//!
//! The steps live in submodules: `checks` (target, host, client rules, rate limits) and
//! `authenticate` (the credential: token or API key); [`trace`] names the steps for
//! `explain`, and `handle` forwards and records. Only [`decide`], here, says in which order the
//! steps run.

mod authenticate;
mod checks;
mod handle;
pub mod trace;

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::header::HeaderValue;
use http::request::Parts;

use self::authenticate::authenticate_credential;
use self::checks::{canonical_target, client_rules, rate_limit_header, rate_limits, routed_host};
pub use self::handle::handle;
pub(crate) use self::handle::{
    count_allowed, count_denial, deny_response, finish, request_has_body, request_id,
};
pub use self::trace::{NoTrace, Step, Trace};
use crate::auth::cache::Verified;
use crate::auth::scopes;
use crate::deny::Deny;
pub use crate::http_head::{HeadFlag, HeadFlags};
use crate::network::client_addr;
pub use crate::network::mtls::ClientCert;
use crate::ratelimit::Facts;
use crate::routing::{Lookup, RequestHost};
use crate::snapshot::Snapshot;

/// Facts about the client connection, captured once at accept time.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub tls: bool,
    pub client_cert: Option<Arc<ClientCert>>,
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
    /// The verified caller, when the denial came after authentication (for the access log).
    pub verified: Option<Arc<Verified>>,
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
        verified: None,
    };

    // 1. Framing, target form and canonical path: routing and forwarding both use the
    //    canonical path, so the upstream receives exactly the path that was authorized.
    let path = canonical_target(snapshot, parts, trace).map_err(deny)?;
    trace.step(Step::CanonicalPath, true, || path.to_string());

    // 2. Route: a valid host (one trailing dot removed), host tier, longest whole-segment
    //    prefix, then method. Forwarding uses the same host (`forward`).
    let host = routed_host(parts, trace).map_err(|deny| Denied {
        deny,
        route: None,
        path: Some(path.clone()),
        client: None,
        verified: None,
    })?;
    let host = host.as_ref().map(RequestHost::as_str);
    let route_index = match snapshot.table.lookup(host, &path, &parts.method) {
        Lookup::Matched(index) => index,
        Lookup::NoRoute => {
            trace.step(Step::Route, false, || "no route matches".into());
            return Err(Denied {
                deny: Deny::NoRoute,
                route: None,
                path: Some(path),
                client: None,
                verified: None,
            });
        }
        Lookup::MethodNotAllowed(allow) => {
            trace.step(Step::Route, false, || {
                format!("method not allowed (Allow: {allow:?})")
            });
            let deny = Deny::MethodNotAllowed(allow.clone());
            return Err(Denied {
                deny,
                route: None,
                path: Some(path),
                client: None,
                verified: None,
            });
        }
    };
    let route = &snapshot.routes[route_index];
    trace.step(Step::Route, true, || route.name.clone());
    let denied = |deny: Deny, path: Cow<'r, str>, client: Option<IpAddr>| Denied {
        deny,
        route: Some(route_index),
        path: Some(path),
        client,
        verified: None,
    };

    // 3. Client address: the peer, or X-Forwarded-For when the peer is a trusted proxy.
    let client = client_addr(conn.peer.ip(), &parts.headers, &snapshot.trusted_proxies);
    trace.step(Step::ClientAddress, client.is_some(), || match client {
        Some(addr) => addr.to_string(),
        None => "unknown (malformed X-Forwarded-For)".into(),
    });

    // 4. Allowlists, gateway-wide then the route's, before any token work: a refused address
    //    must not be able to make the gateway verify signatures.
    for (name, list) in [
        (Step::GatewayAllowlist, &snapshot.allow),
        (Step::RouteAllowlist, &route.allow),
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
        trace.step(Step::ClientCertificate, present, || {
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
        trace.step(Step::Token, true, || "public route: no token needed".into());
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
    // Denials from here on name the verified caller (access log).
    let denied = |deny: Deny, path: Cow<'r, str>, client: Option<IpAddr>| Denied {
        verified: Some(Arc::clone(&verified)),
        ..denied(deny, path, client)
    };
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
        trace.step(Step::Scopes, false, shown);
        let deny = Deny::InsufficientScope(route.scope_challenge.clone());
        return Err(denied(deny, path, client));
    }
    trace.step(Step::Scopes, true, shown);

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
