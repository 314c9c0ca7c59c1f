//! The request handler: runs [`decide`](super::decide), then forwards the request (SPEC §4)
//! or answers the denial, and records the metrics and the access log, here and nowhere else.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

use http::header::{HeaderValue, CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::request::Parts;
use http::{Request, Response};
use hyper::upgrade::OnUpgrade;

use super::checks::routed_host;
use super::{decide, Allowed, ConnInfo, Denied, NoTrace};
use crate::access_log::{self, AccessRecord};
use crate::auth::cache::Verified;
use crate::deny::Deny;
use crate::header_names::X_REQUEST_ID;
use crate::proxy::{self, headers, Body};
use crate::ratelimit;
use crate::snapshot::{Route, Shared, Snapshot};

/// A process-unique request id: a random prefix per process and a counter.
pub(crate) fn new_request_id() -> HeaderValue {
    static PREFIX: OnceLock<u32> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(rand::random::<u32>);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // 8 + 16 lowercase hex digits, written in place (`format!` cost ~2 k instructions here).
    let mut text = [0u8; 24];
    let (high, low) = text.split_at_mut(8);
    let written = hex::encode_to_slice(prefix.to_be_bytes(), high)
        .and_then(|()| hex::encode_to_slice(n.to_be_bytes(), low));
    // Hex digits are always a valid header value (and the lengths above always fit).
    match written {
        Ok(()) => HeaderValue::from_bytes(&text).unwrap_or_else(|_| HeaderValue::from_static("0")),
        Err(_) => HeaderValue::from_static("0"),
    }
}

/// The request's own `x-request-id` when it is acceptable, else a new one.
pub(crate) fn request_id(parts: &Parts) -> HeaderValue {
    match parts.headers.get(X_REQUEST_ID) {
        Some(id) if headers::acceptable_request_id(id) => id.clone(),
        _ => new_request_id(),
    }
}

/// Whether the client sent (or announced) a body: a response the gateway makes itself to such
/// a request closes the connection, so unread body bytes are never parsed as the next request.
pub(crate) fn request_has_body(parts: &Parts) -> bool {
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
    let started = Instant::now();
    let deadline = proxy::deadline_after(snapshot.server.request_timeout);
    let (mut parts, body) = request.into_parts();
    let request_id = request_id(&parts);

    let decision = decide(&snapshot, &parts, conn, &mut NoTrace).await;
    let grpc_request = crate::deny::is_grpc(&parts.headers);
    // Unread body bytes must never be parsed as the next request: a response the gateway makes
    // itself to a request with a body closes the connection.
    let has_body = request_has_body(&parts);
    let mut record = AccessRecord::new(&parts, conn.peer, &request_id);
    let (mut response, route) = match decision {
        Ok(allowed) => {
            let route = count_allowed(&snapshot, &allowed, &mut record);
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
            let route = count_denial(&snapshot, &denied, &mut record);
            // Unread body bytes must never be parsed as the next request: close the connection
            // after a denial when the client sent a body.
            let grpc = grpc_request || route.is_some_and(|route| route.grpc);
            (deny_response_as(denied.deny, has_body, grpc), denied.route)
        }
    };
    finish(
        &snapshot,
        route,
        started,
        &request_id,
        &mut record,
        &mut response,
    );
    response
}

/// Ends one request, proxied or decided alike: the request id on the response, the request
/// counted on its route (or as unrouted), and the access-log line.
pub(crate) fn finish(
    snapshot: &Snapshot,
    route: Option<usize>,
    started: Instant,
    request_id: &HeaderValue,
    record: &mut AccessRecord,
    response: &mut Response<Body>,
) {
    headers::set_request_id(response.headers_mut(), request_id);
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    match route {
        Some(index) => snapshot.routes[index]
            .metrics
            .request(status, elapsed.as_secs_f64()),
        None => snapshot.unrouted.request(status, elapsed.as_secs_f64()),
    }
    record.finish(status, elapsed, response);
    access_log::emit(record);
}

/// Counts an allowed request on its route and writes it into the access record; returns the
/// route. Proxy and decision mode record allowed requests alike.
pub(crate) fn count_allowed<'s>(
    snapshot: &'s Snapshot,
    allowed: &Allowed<'_>,
    record: &mut AccessRecord,
) -> &'s Route {
    let route = &snapshot.routes[allowed.route];
    route.metrics.allowed(route.public);
    record.allowed(
        &allowed.path,
        allowed.client,
        allowed.verified.as_deref(),
        route,
        snapshot,
    );
    route
}

/// Counts a denial on its route (when one was chosen) and writes it into the access record;
/// returns the route. Proxy and decision mode record denials alike.
pub(crate) fn count_denial<'s>(
    snapshot: &'s Snapshot,
    denied: &Denied<'_>,
    record: &mut AccessRecord,
) -> Option<&'s Route> {
    let route = denied.route.map(|index| &snapshot.routes[index]);
    if let Some(route) = route {
        route.metrics.denied(denied.deny.reason());
    }
    record.denied(
        &denied.deny,
        denied.path.as_deref(),
        denied.client,
        denied.verified.as_deref(),
        route,
    );
    route
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_24_hex_digits_and_unique() {
        let (a, b) = (new_request_id(), new_request_id());
        for id in [&a, &b] {
            assert_eq!(id.len(), 24);
            assert!(id
                .as_bytes()
                .iter()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b)));
        }
        assert_eq!(
            a.as_bytes()[..8],
            b.as_bytes()[..8],
            "one prefix per process"
        );
        assert_ne!(a, b);
        // The counter, as 16 hex digits: later ids count up.
        let counter = |id: &HeaderValue| u64::from_str_radix(&id.to_str().unwrap()[8..], 16);
        assert!(counter(&b).unwrap() > counter(&a).unwrap());
    }
}
