//! Decision mode (SPEC §7.3): an ingress (nginx `auth_request`, Traefik ForwardAuth, Envoy or
//! Istio ext_authz) asks before it proxies, and authgate answers for the request the ingress
//! describes, judged by [`pipeline::decide`], the one decision the proxy uses too. Nothing is
//! ever forwarded and no body is ever read.
//!
//! # Rules, and why
//!
//! - **Only a trusted ingress may ask.** The caller (the TCP peer of the decision listener)
//!   must be in `[network] trusted_proxies`, else 403 `ip_not_allowed` before anything else is
//!   looked at. The caller vouches for the client address and the described request; an
//!   untrusted caller could claim any address and probe the policy.
//! - **The dialect is chosen by the path**, never by what the caller claims:
//!
//!   | path | method | target | host |
//!   | --- | --- | --- | --- |
//!   | `/authz/nginx` | `X-Original-Method` | `X-Original-URI` | `X-Original-Host`, else Host |
//!   | `/authz/traefik` | `X-Forwarded-Method` | `X-Forwarded-Uri` | `X-Forwarded-Host`, else Host |
//!   | `/authz/envoy/<path>` | the request's own | `/<path>` and its query | Host / `:authority` |
//!
//!   Any other path: 404 `no_route`.
//! - **A missing or malformed description is 400 `invalid_request`**, never a default: a
//!   missing method is not `GET`, a missing target is not `/`. A description header given
//!   twice, a method that is not a token, a target that is not origin-form (`/...`) or holds a
//!   byte the request line could not hold are malformed. A raw `#` is refused like the proxy
//!   refuses it (the HTTP parser would cut the target there).
//! - **The described request is judged exactly as the proxy judges it**: a synthetic request
//!   head (method, target, host, and the caller's other headers: Authorization, the
//!   forwarded chain, ...) goes through [`pipeline::decide`], so canonicalization, routing,
//!   allowlists, client policy, token and scopes are the proxy's, not a copy.
//! - **Client address** (§3.3): from the caller's `X-Forwarded-For`, read right to left past
//!   trusted proxies; `X-Real-IP` when there is no `X-Forwarded-For` (two `X-Real-IP` headers
//!   are malformed: 400); the caller's own address when it sends neither.
//! - **Client certificates**: the decision request carries no verified certificate of the
//!   client (the TLS session was the ingress's), so routes with `client_cert = "required"` or
//!   client entries pinning certificates are refused (403), and no `X-Client-Cert-*` header is
//!   answered. Certificates forwarded in headers are not believed.
//! - **Allowed**: 200 with an empty body and the identity headers the upstream would get
//!   (`X-Auth-Subject`, `X-Auth-Issuer`, `X-Auth-Client-Id`, `X-Auth-Scopes`, the issuer's
//!   `claim_headers`), for the ingress to copy upstream. **Denied**: the proxy's refusal (same
//!   status, JSON body, WWW-Authenticate, Allow, Retry-After). An Envoy answer also names, in
//!   `x-envoy-auth-headers-to-remove`, every identity header it does not set, so Envoy strips
//!   a client's spoofed ones (nginx and Traefik clear them by configuration).
//! - **Metrics and logs**: the same families and labels as proxied requests; access-log lines
//!   carry `mode = "decision"`. Refusals before a request is described (untrusted caller,
//!   unknown path, malformed description) count under the route `none`.

use std::net::IpAddr;

use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::request::Parts;
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};

use crate::access_log::{self, AccessRecord};
use crate::deny::{Deny, DescriptionError, InvalidRequest};
use crate::header_names::{
    X_AUTH_CLIENT_ID, X_AUTH_ISSUER, X_AUTH_SCOPES, X_AUTH_SUBJECT, X_CLIENT_CERT_SHA256,
    X_CLIENT_CERT_SUBJECT, X_FORWARDED_FOR,
};
use crate::pipeline::{self, ConnInfo, NoTrace};
use crate::proxy::{self, Body};
use crate::routing::PathError;
use crate::snapshot::Shared;

/// The decision path prefix of the Envoy dialect; the described path follows it.
pub const ENVOY_PREFIX: &str = "/authz/envoy";

const X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");
const X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");
const X_ORIGINAL_HOST: HeaderName = HeaderName::from_static("x-original-host");
const X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
const X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
const X_ENVOY_AUTH_HEADERS_TO_REMOVE: HeaderName =
    HeaderName::from_static("x-envoy-auth-headers-to-remove");

/// Which ingress is asking, by the decision request's path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// nginx `auth_request` (also ingress-nginx `auth-url`).
    Nginx,
    /// Traefik ForwardAuth.
    Traefik,
    /// Envoy / Istio ext_authz, HTTP service: the described path follows [`ENVOY_PREFIX`].
    Envoy,
}

impl Dialect {
    /// The dialect of a decision path; `None` for any other path.
    pub fn from_path(path: &str) -> Option<Dialect> {
        match path {
            "/authz/nginx" => Some(Dialect::Nginx),
            "/authz/traefik" => Some(Dialect::Traefik),
            _ if path
                .strip_prefix(ENVOY_PREFIX)
                .is_some_and(|rest| rest.starts_with('/')) =>
            {
                Some(Dialect::Envoy)
            }
            _ => None,
        }
    }

    /// The headers naming the method, target and host (`None`: taken from the request itself).
    fn description_headers(self) -> Option<[HeaderName; 3]> {
        match self {
            Dialect::Nginx => Some([X_ORIGINAL_METHOD, X_ORIGINAL_URI, X_ORIGINAL_HOST]),
            Dialect::Traefik => Some([X_FORWARDED_METHOD, X_FORWARDED_URI, X_FORWARDED_HOST]),
            Dialect::Envoy => None,
        }
    }
}

fn invalid(error: DescriptionError) -> Deny {
    Deny::InvalidRequest(InvalidRequest::Description(error))
}

/// Exactly one value of `name`.
fn single<'h>(
    headers: &'h HeaderMap,
    name: &HeaderName,
    error: DescriptionError,
) -> Result<&'h HeaderValue, Deny> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (Some(value), None) => Ok(value),
        _ => Err(invalid(error)),
    }
}

/// An origin-form target: `/`, then bytes a request line can hold; `#` is the proxy's 400.
fn origin_form(target: &[u8]) -> Result<Uri, Deny> {
    if target.first() != Some(&b'/') {
        return Err(invalid(DescriptionError::Target));
    }
    if target.contains(&b'#') {
        return Err(Deny::InvalidRequest(InvalidRequest::Path(
            PathError::Fragment,
        )));
    }
    let uri = Uri::try_from(target).map_err(|_| invalid(DescriptionError::Target))?;
    // `//host/x` would parse as a path, never as an authority here; check anyway.
    if uri.scheme().is_some() || uri.authority().is_some() {
        return Err(invalid(DescriptionError::Target));
    }
    Ok(uri)
}

/// The request head the caller describes, for [`pipeline::decide`] (see the module rules).
pub fn describe(dialect: Dialect, request: &Parts) -> Result<Parts, Deny> {
    let (method, uri, host_name) = match dialect.description_headers() {
        Some([method, target, host]) => {
            let method_value = single(&request.headers, &method, DescriptionError::Method)?;
            let method = Method::from_bytes(method_value.as_bytes())
                .map_err(|_| invalid(DescriptionError::Method))?;
            let target = single(&request.headers, &target, DescriptionError::Target)?;
            (method, origin_form(target.as_bytes())?, Some(host))
        }
        None => {
            let target = request
                .uri
                .path_and_query()
                .and_then(|target| target.as_str().strip_prefix(ENVOY_PREFIX))
                .ok_or(invalid(DescriptionError::Target))?;
            (
                request.method.clone(),
                origin_form(target.as_bytes())?,
                None,
            )
        }
    };

    let mut described = HeaderMap::with_capacity(request.headers.len());
    let dropped = |name: &HeaderName| {
        *name == HOST
            || *name == CONTENT_LENGTH
            || *name == TRANSFER_ENCODING
            || dialect
                .description_headers()
                .is_some_and(|names| names.contains(name))
    };
    for (name, value) in &request.headers {
        if !dropped(name) {
            described.append(name.clone(), value.clone());
        }
    }
    // The host: the dialect's header when sent (every value, so two are refused as the proxy
    // refuses two Host headers), else the request's own authority or Host.
    let from_header = host_name.filter(|name| request.headers.contains_key(name));
    match (from_header, request.uri.authority()) {
        (Some(name), _) => {
            for value in request.headers.get_all(name) {
                described.append(HOST, value.clone());
            }
        }
        (None, Some(authority)) => {
            let value = HeaderValue::from_str(authority.as_str())
                .map_err(|_| invalid(DescriptionError::Target))?;
            described.insert(HOST, value);
        }
        (None, None) => {
            for value in request.headers.get_all(HOST) {
                described.append(HOST, value.clone());
            }
        }
    }
    // The client address: X-Real-IP stands in for an absent X-Forwarded-For (§3.3 then reads
    // it like a one-entry chain: malformed means unknown).
    if !described.contains_key(X_FORWARDED_FOR) {
        let mut real_ip = request.headers.get_all(X_REAL_IP).iter();
        match (real_ip.next(), real_ip.next()) {
            (Some(value), None) => {
                described.insert(X_FORWARDED_FOR, value.clone());
            }
            (Some(_), Some(_)) => return Err(invalid(DescriptionError::RealIp)),
            (None, _) => {}
        }
    }

    let (mut parts, ()) = Request::new(()).into_parts();
    parts.method = method;
    parts.uri = uri;
    parts.headers = described;
    Ok(parts)
}

/// Envoy's HTTP ext_authz sets the answered identity headers upstream but keeps the client's
/// other ones; `x-envoy-auth-headers-to-remove` names every identity header this answer does
/// not set (the fixed ones and the configured claim headers), so Envoy removes the client's.
fn envoy_headers_to_remove(headers: &mut HeaderMap, snapshot: &crate::snapshot::Snapshot) {
    let fixed = [
        X_AUTH_SUBJECT,
        X_AUTH_ISSUER,
        X_AUTH_CLIENT_ID,
        X_AUTH_SCOPES,
        X_CLIENT_CERT_SUBJECT,
        X_CLIENT_CERT_SHA256,
    ];
    let names: Vec<&str> = fixed
        .iter()
        .map(HeaderName::as_str)
        .chain(snapshot.claim_header_names.iter().map(String::as_str))
        .filter(|name| !headers.contains_key(*name))
        .collect();
    if let Ok(value) = HeaderValue::from_str(&names.join(",")) {
        headers.insert(X_ENVOY_AUTH_HEADERS_TO_REMOVE, value);
    }
}

/// Answers one decision request on `conn` (the caller's connection). The body is never read.
pub async fn handle<B>(shared: &Shared, conn: &ConnInfo, request: Request<B>) -> Response<Body> {
    let snapshot = shared.load_full();
    let started = std::time::Instant::now();
    let (parts, body) = request.into_parts();
    // Dropped unread: a decision never depends on a body.
    drop(body);
    let request_id = pipeline::request_id(&parts);
    let has_body = pipeline::request_has_body(&parts);

    let caller_trusted = snapshot
        .trusted_proxies
        .contains(conn.peer.ip().to_canonical());
    let described = if caller_trusted {
        match Dialect::from_path(parts.uri.path()) {
            Some(dialect) => describe(dialect, &parts).map(|described| (dialect, described)),
            None => Err(Deny::NoRoute),
        }
    } else {
        Err(Deny::IpNotAllowed)
    };
    // What the described request looks like to `decide`; the caller's connection, with no
    // client certificate (see the module rules).
    let described_conn = ConnInfo {
        client_cert: None,
        ..conn.clone()
    };

    let (mut response, route, mut record) = match &described {
        Err(deny) => {
            let mut record = AccessRecord::new(&parts, conn.peer, &request_id);
            record.decision = access_log::Decision::Deny;
            record.reason = deny.reason();
            let client: Option<IpAddr> = Some(conn.peer.ip().to_canonical());
            record.client = client;
            (
                pipeline::deny_response(deny.clone(), has_body),
                None,
                record,
            )
        }
        Ok((dialect, described)) => {
            let mut record = AccessRecord::new(described, conn.peer, &request_id);
            match pipeline::decide(&snapshot, described, &described_conn, &mut NoTrace).await {
                Ok(allowed) => {
                    pipeline::count_allowed(&snapshot, &allowed, &mut record);
                    let mut response = Response::new(proxy::full(bytes::Bytes::new()));
                    *response.status_mut() = StatusCode::OK;
                    if let Some(verified) = &allowed.verified {
                        for (name, value) in &verified.principal.headers {
                            response.headers_mut().insert(name.clone(), value.clone());
                        }
                    }
                    // SPEC §7.4: passing requests carry `RateLimit`; the ingress may copy it.
                    if let Some(value) = &allowed.rate_limit {
                        response
                            .headers_mut()
                            .insert(http::HeaderName::from_static("ratelimit"), value.clone());
                    }
                    if *dialect == Dialect::Envoy {
                        envoy_headers_to_remove(response.headers_mut(), &snapshot);
                    }
                    if has_body {
                        response
                            .headers_mut()
                            .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
                    }
                    (response, Some(allowed.route), record)
                }
                Err(denied) => {
                    crate::pipeline::count_denial(&snapshot, &denied, &mut record);
                    let index = denied.route;
                    (
                        pipeline::deny_response(denied.deny, has_body),
                        index,
                        record,
                    )
                }
            }
        }
    };
    record.mode = access_log::Mode::Decision;
    pipeline::finish(
        &snapshot,
        route,
        started,
        &request_id,
        &mut record,
        &mut response,
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(path: &str, headers: &[(&str, &str)]) -> Parts {
        let mut builder = Request::get(path);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn dialects_by_path() {
        assert_eq!(Dialect::from_path("/authz/nginx"), Some(Dialect::Nginx));
        assert_eq!(Dialect::from_path("/authz/traefik"), Some(Dialect::Traefik));
        assert_eq!(Dialect::from_path("/authz/envoy/"), Some(Dialect::Envoy));
        assert_eq!(Dialect::from_path("/authz/envoy/a/b"), Some(Dialect::Envoy));
        for other in [
            "/authz/envoy",
            "/authz/envoyx/a",
            "/authz/nginx/",
            "/",
            "/authz",
        ] {
            assert_eq!(Dialect::from_path(other), None, "{other}");
        }
    }

    #[test]
    fn nginx_description() {
        let request = parts(
            "/authz/nginx",
            &[
                ("host", "authgate.internal"),
                ("x-original-method", "POST"),
                ("x-original-uri", "/orders/1?x=y"),
                ("x-original-host", "api.test"),
                ("authorization", "Bearer t"),
                ("content-length", "0"),
            ],
        );
        let described = describe(Dialect::Nginx, &request).unwrap();
        assert_eq!(described.method, Method::POST);
        assert_eq!(described.uri, "/orders/1?x=y");
        assert_eq!(described.headers.get_all(HOST).iter().count(), 1);
        assert_eq!(described.headers[HOST], "api.test");
        assert_eq!(described.headers["authorization"], "Bearer t");
        assert!(!described.headers.contains_key("x-original-uri"));
        assert!(!described.headers.contains_key(CONTENT_LENGTH));
    }

    #[test]
    fn host_falls_back_to_the_request() {
        let request = parts(
            "/authz/traefik",
            &[
                ("host", "api.test"),
                ("x-forwarded-method", "GET"),
                ("x-forwarded-uri", "/"),
            ],
        );
        let described = describe(Dialect::Traefik, &request).unwrap();
        assert_eq!(described.headers[HOST], "api.test");
    }

    #[test]
    fn envoy_takes_the_path_after_the_prefix() {
        let request = parts("/authz/envoy/orders/%2e%2e/x?q=1", &[("host", "api.test")]);
        let described = describe(Dialect::Envoy, &request).unwrap();
        assert_eq!(described.uri, "/orders/%2e%2e/x?q=1");
        assert_eq!(described.method, Method::GET);
    }

    #[test]
    fn malformed_descriptions_are_refused() {
        let bad = |headers: &[(&str, &str)]| {
            describe(Dialect::Nginx, &parts("/authz/nginx", headers)).unwrap_err()
        };
        let code = |deny: Deny| deny.code();
        assert_eq!(code(bad(&[("x-original-uri", "/")])), "invalid_request");
        assert_eq!(
            code(bad(&[("x-original-method", "GET")])),
            "invalid_request"
        );
        for target in ["", "orders", "http://evil/x", "*", "/a b", "/a#b"] {
            let deny = bad(&[("x-original-method", "GET"), ("x-original-uri", target)]);
            assert_eq!(code(deny), "invalid_request", "{target:?}");
        }
        let deny = bad(&[("x-original-method", "G E T"), ("x-original-uri", "/")]);
        assert_eq!(code(deny), "invalid_request");
        let deny = bad(&[
            ("x-original-method", "GET"),
            ("x-original-method", "POST"),
            ("x-original-uri", "/"),
        ]);
        assert_eq!(deny, invalid(DescriptionError::Method));
        let deny = bad(&[
            ("x-original-method", "GET"),
            ("x-original-uri", "/"),
            ("x-real-ip", "192.0.2.1"),
            ("x-real-ip", "192.0.2.2"),
        ]);
        assert_eq!(deny, invalid(DescriptionError::RealIp));
    }

    #[test]
    fn real_ip_stands_in_only_without_a_forwarded_chain() {
        let request = parts(
            "/authz/nginx",
            &[
                ("x-original-method", "GET"),
                ("x-original-uri", "/"),
                ("x-real-ip", "192.0.2.9"),
            ],
        );
        let described = describe(Dialect::Nginx, &request).unwrap();
        assert_eq!(described.headers[X_FORWARDED_FOR], "192.0.2.9");
        let request = parts(
            "/authz/nginx",
            &[
                ("x-original-method", "GET"),
                ("x-original-uri", "/"),
                ("x-real-ip", "192.0.2.9"),
                ("x-forwarded-for", "198.51.100.1"),
            ],
        );
        let described = describe(Dialect::Nginx, &request).unwrap();
        assert_eq!(described.headers[X_FORWARDED_FOR], "198.51.100.1");
    }
}
