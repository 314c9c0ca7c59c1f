//! Forwarding (SPEC §4): the authorized request goes to a server of its upstream with the
//! canonical path, bodies streamed both ways (trailers included), WebSocket upgrades spliced
//! after authorization. Which server ([`balance`]), whether to try again ([`retry`]), how
//! long to wait ([`Timeouts`], [`idle`]) are decided in those modules; this one sends.
//! It never decides access and never reads the config.

mod aged;
pub mod balance;
pub mod capacity;
pub mod client;
pub mod headers;
pub mod health;
mod idle;
pub mod retry;
mod upstream;

pub use upstream::{Timeouts, Upstream};

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::HOST;
use http::uri::{PathAndQuery, Uri};
use http::{Request, Response, StatusCode, Version};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::capture_connection;
use tokio::time::Instant;

use self::balance::{InFlight, Server};
use self::capacity::Permits;
use self::retry::{Outcome, Replayable};
use crate::deny::Deny;
use crate::logging::{error_chain, Throttle};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type of every request and response the gateway handles.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// Wraps any body into [`Body`].
pub fn boxed<B>(body: B) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

/// A body from fixed bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    boxed(http_body_util::Full::new(bytes.into()))
}

/// The origin-form target the upstream gets: the canonical path and the query unchanged. Each
/// attempt puts its server's scheme, authority and path prefix before it.
pub fn origin_form(path: &str, query: Option<&str>) -> Result<Uri, Deny> {
    let mut target = String::with_capacity(path.len() + query.map_or(0, str::len) + 1);
    target.push_str(path);
    if let Some(query) = query {
        target.push('?');
        target.push_str(query);
    }
    let path_and_query = PathAndQuery::try_from(target).map_err(|_| Deny::BadGateway)?;
    Ok(Uri::from(path_and_query))
}

/// `target` (origin-form) on `server`.
fn server_uri(server: &Server, target: &Uri) -> Result<Uri, Deny> {
    let path_and_query = target.path_and_query().map_or("/", PathAndQuery::as_str);
    let path_and_query = if server.path_prefix.is_empty() {
        PathAndQuery::try_from(path_and_query)
    } else {
        PathAndQuery::try_from(format!("{}{path_and_query}", server.path_prefix))
    }
    .map_err(|_| Deny::BadGateway)?;
    Uri::builder()
        .scheme(server.scheme.clone())
        .authority(server.authority.clone())
        .path_and_query(path_and_query)
        .build()
        .map_err(|_| Deny::BadGateway)
}

/// The upstream server that answered, in the response's extensions (for the access log).
#[derive(Debug, Clone)]
pub struct ServedBy(pub Arc<str>);

/// How one attempt ended.
enum Attempt {
    /// A response to pass on.
    Answer(Response<Incoming>),
    /// A 5xx response, passed on unless a retry replaces it.
    ServerError(Response<Incoming>),
    /// No response: nothing reached the upstream, or the exchange broke.
    Failed(Outcome),
}

/// Sends `request` (headers already rewritten, target in origin-form) to a server of
/// `upstream` and returns the response head with its body streaming. Balancing, passive
/// health and retries: see [`balance`] and [`retry`]. `deadline` is the server's request
/// deadline; `timeouts` the route's and upstream's, already merged.
pub async fn forward(
    upstream: &Upstream,
    request: Request<Body>,
    deadline: Instant,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    timeouts: Timeouts,
) -> Result<Response<Body>, Deny> {
    let websocket = client_upgrade.is_some();
    // A place under the upstream request caps, held until the response body is done.
    let Some(permits) = upstream.capacity.try_take(&upstream.metrics.in_flight) else {
        upstream.metrics.refused.inc();
        static REFUSED: Throttle = Throttle::every_10s();
        if let Some(suppressed) = REFUSED.admit() {
            tracing::warn!(upstream = %upstream.name, suppressed, "upstream request refused: request cap reached");
        }
        return Err(Deny::UpstreamBusy);
    };
    let (parts, body) = request.into_parts();
    let body = Replayable::new(body);
    let mut headers = parts.headers;
    let limit = match timeouts.timeout {
        Some(timeout) => (Instant::now() + timeout).min(deadline),
        None => deadline,
    };
    let mut tried: Vec<usize> = Vec::new();
    // The retry in flight, if any, holds its budget place until the answer is chosen.
    let mut _retry: Option<retry::RetryGuard> = None;
    let mut attempt: u32 = 0;
    loop {
        let Some(index) = balance::pick(&upstream.servers, &tried) else {
            static NONE: Throttle = Throttle::every_10s();
            if let Some(suppressed) = NONE.admit() {
                tracing::warn!(upstream = %upstream.name, suppressed, "no upstream server available: every server is ejected");
            }
            return Err(Deny::BadGateway);
        };
        tried.push(index);
        let server = &upstream.servers[index];
        let last = attempt >= upstream.retry.retries;
        let mut request = Request::new(body.attempt());
        *request.method_mut() = parts.method.clone();
        *request.uri_mut() = server_uri(server, &parts.uri)?;
        *request.version_mut() = Version::HTTP_11;
        *request.headers_mut() = if last {
            std::mem::take(&mut headers)
        } else {
            headers.clone()
        };
        if !upstream.preserve_host {
            // The server's authority is in the URI: the client writes it as `Host` on an
            // HTTP/1.1 connection and as `:authority` on HTTP/2, where a `host` field beside it
            // is refused by strict servers (RFC 9113 §8.3.1; nginx answers 400).
            request.headers_mut().remove(HOST);
        }
        // Connections to a host name are retired after `dns_refresh` (see `aged`).
        let capture = server
            .dns_refresh
            .map(|refresh| (refresh, capture_connection(&mut request)));
        let alone = upstream.servers.len() == 1;
        let in_flight = server.start();
        let started = std::time::Instant::now();
        let sent = tokio::time::timeout_at(limit, upstream.client.client.request(request)).await;
        upstream
            .metrics
            .duration
            .observe(started.elapsed().as_secs_f64());
        if let (Some((refresh, capture)), Ok(Ok(_))) = (&capture, &sent) {
            aged::retire_if_old(capture.connection_metadata().as_ref(), *refresh);
        }
        let outcome = match sent {
            Ok(Ok(response)) if response.status().is_server_error() => {
                server.failed(&upstream.ejection, alone);
                Attempt::ServerError(response)
            }
            Ok(Ok(response)) => {
                server.succeeded();
                Attempt::Answer(response)
            }
            Ok(Err(error)) => match classify(upstream, &error) {
                Deny::BadGateway => {
                    server.failed(&upstream.ejection, alone);
                    Attempt::Failed(if error.is_connect() {
                        Outcome::ConnectFailed
                    } else {
                        Outcome::Reset
                    })
                }
                // The client's body is at fault, not the server.
                deny => return Err(deny),
            },
            Err(_) => {
                server.failed(&upstream.ejection, alone);
                static SLOW: Throttle = Throttle::every_10s();
                if let Some(suppressed) = SLOW.admit() {
                    tracing::warn!(upstream = %upstream.name, server = %server.url, suppressed, "upstream did not answer in time");
                }
                return Err(Deny::GatewayTimeout);
            }
        };
        let retry_outcome = match &outcome {
            Attempt::Answer(_) => None,
            Attempt::ServerError(response) => Some(Outcome::Status(response.status())),
            Attempt::Failed(outcome) => Some(*outcome),
        };
        if let Some(retry_outcome) = retry_outcome {
            if !last
                && upstream.retry.allows(attempt, &parts.method, retry_outcome)
                && body.untouched()
            {
                let in_flight_requests =
                    usize::try_from(upstream.metrics.in_flight.get()).unwrap_or(0);
                if let Some(guard) = upstream
                    .budget
                    .try_take(&upstream.retry, in_flight_requests)
                {
                    tracing::debug!(upstream = %upstream.name, server = %server.url, ?retry_outcome, "retrying upstream request");
                    _retry = Some(guard);
                    attempt += 1;
                    continue;
                }
            }
        }
        let response = match outcome {
            Attempt::Answer(response) | Attempt::ServerError(response) => response,
            Attempt::Failed(_) => return Err(Deny::BadGateway),
        };
        let served = ServedBy(Arc::clone(&server.url));
        return Ok(finish(
            response,
            (permits, in_flight),
            client_upgrade,
            websocket,
            timeouts.idle_timeout,
            served,
        ));
    }
}

/// The response to pass on: hop-by-hop headers removed, the guards travelling with the body
/// (or the tunnel), the idle timer on the body.
fn finish(
    mut response: Response<Incoming>,
    guards: (Permits, InFlight),
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    websocket: bool,
    idle_timeout: Option<Duration>,
    served: ServedBy,
) -> Response<Body> {
    let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
    // The permits go with the tunnel, or with the response body.
    let (tunnel, guards) = match (switching, client_upgrade) {
        (true, Some(client_upgrade)) => {
            let upstream_upgrade = hyper::upgrade::on(&mut response);
            let splice = splice(client_upgrade, upstream_upgrade);
            let tunnel = Tunnel::new(Box::pin(async move {
                let _guards = guards;
                splice.await;
            }));
            (Some(tunnel), None)
        }
        (true, None) | (false, _) => (None, Some(guards)),
    };
    headers::remove_hop_by_hop(response.headers_mut(), switching && websocket);
    let mut response = response.map(|body| {
        let body = match idle_timeout {
            Some(idle) => boxed(idle::IdleTimeout::new(body, idle)),
            None => boxed::<Incoming>(body),
        };
        match guards {
            Some(guards) => hold(body, guards),
            None => body,
        }
    });
    if let Some(tunnel) = tunnel {
        response.extensions_mut().insert(tunnel);
    }
    response.extensions_mut().insert(served);
    response
}

/// A running tunnel's work: copies both ways until either side closes.
pub type TunnelFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A WebSocket tunnel travelling in its 101 response's extensions to the connection that
/// carries it: the connection runs it on its own task, so the tunnel keeps the connection's
/// limits, timers and drain tracking (SPEC §6). Dropped unrun, it closes both sides.
#[derive(Clone)]
pub struct Tunnel(Arc<Mutex<Option<TunnelFuture>>>);

impl Tunnel {
    fn new(future: TunnelFuture) -> Tunnel {
        Tunnel(Arc::new(Mutex::new(Some(future))))
    }

    /// The tunnel's future, once.
    pub fn take(&self) -> Option<TunnelFuture> {
        self.0
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .take()
    }
}

/// `body` holding `guard` until it is dropped (when its response is done).
pub fn hold<G: Send + Unpin + 'static>(body: Body, guard: G) -> Body {
    boxed(Held {
        body,
        _guard: guard,
    })
}

struct Held<G> {
    body: Body,
    _guard: G,
}

impl<G: Unpin> http_body::Body for Held<G> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Who is at fault when sending failed: the client's body (too long: 413; unreadable: 400) or
/// the upstream (502).
fn classify(upstream: &Upstream, error: &(dyn std::error::Error + 'static)) -> Deny {
    let chain = || std::iter::successors(Some(error), |cause| cause.source());
    if chain().any(|cause| cause.is::<http_body_util::LengthLimitError>()) {
        return Deny::PayloadTooLarge;
    }
    if chain().any(|cause| {
        cause
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_user)
    }) {
        tracing::debug!(upstream = %upstream.name, error = %error_chain(error), "client body failed");
        return Deny::InvalidRequest(crate::deny::InvalidRequest::Body);
    }
    static FAILED: Throttle = Throttle::every_10s();
    if let Some(suppressed) = FAILED.admit() {
        tracing::warn!(upstream = %upstream.name, error = %error_chain(error), suppressed, "upstream request failed");
    }
    Deny::BadGateway
}

/// Copies bytes both ways between the two upgraded connections until either side closes.
async fn splice(client: hyper::upgrade::OnUpgrade, upstream: hyper::upgrade::OnUpgrade) {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(pair) => pair,
        Err(error) => {
            tracing::debug!(error = %error, "websocket upgrade failed");
            return;
        }
    };
    let mut client = hyper_util::rt::TokioIo::new(client);
    let mut upstream = hyper_util::rt::TokioIo::new(upstream);
    if let Err(error) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        tracing::debug!(error = %error, "websocket connection ended");
    }
}

/// Keeps `Duration` in this module's public vocabulary for callers computing deadlines.
pub fn deadline_after(timeout: Duration) -> Instant {
    Instant::now() + timeout
}
