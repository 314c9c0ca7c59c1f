//! Forwarding (SPEC §4): the authorized request goes to its upstream with the canonical path,
//! bodies streamed both ways, WebSocket upgrades spliced after authorization.

pub mod capacity;
pub mod client;
pub mod headers;
mod upstream;

pub use upstream::Upstream;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, HOST};
use http::uri::{PathAndQuery, Uri};
use http::{Request, Response, StatusCode, Version};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::time::Instant;

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

/// The upstream URI: scheme and authority of the upstream, its path prefix, the canonical path
/// and the query unchanged.
pub fn upstream_uri(upstream: &Upstream, path: &str, query: Option<&str>) -> Result<Uri, Deny> {
    let mut target = String::with_capacity(
        upstream.path_prefix.len() + path.len() + query.map_or(0, str::len) + 1,
    );
    target.push_str(&upstream.path_prefix);
    target.push_str(path);
    if let Some(query) = query {
        target.push('?');
        target.push_str(query);
    }
    let path_and_query = PathAndQuery::try_from(target).map_err(|_| Deny::BadGateway)?;
    Uri::builder()
        .scheme(upstream.scheme.clone())
        .authority(upstream.authority.clone())
        .path_and_query(path_and_query)
        .build()
        .map_err(|_| Deny::BadGateway)
}

/// Sends `request` (headers already rewritten) and returns the upstream's response head with
/// its body streaming. `deadline` is the server's request deadline.
pub async fn forward(
    upstream: &Upstream,
    mut request: Request<Body>,
    deadline: Instant,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
) -> Result<Response<Body>, Deny> {
    *request.version_mut() = Version::HTTP_11;
    if !upstream.preserve_host {
        request.headers_mut().insert(HOST, upstream.host.clone());
    }
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

    let limit = Instant::now() + upstream.timeout;
    let started = std::time::Instant::now();
    let sent =
        tokio::time::timeout_at(limit.min(deadline), upstream.client.client.request(request)).await;
    upstream
        .metrics
        .duration
        .observe(started.elapsed().as_secs_f64());
    let mut response = match sent {
        Ok(Ok(response)) => response,
        Ok(Err(error)) => return Err(classify(upstream, &error)),

        Err(_) => {
            static SLOW: Throttle = Throttle::every_10s();
            if let Some(suppressed) = SLOW.admit() {
                tracing::warn!(upstream = %upstream.name, suppressed, "upstream did not answer in time");
            }
            return Err(Deny::GatewayTimeout);
        }
    };

    let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
    // The permits go with the tunnel, or with the response body.
    let (tunnel, permits) = match (switching, client_upgrade) {
        (true, Some(client_upgrade)) => {
            let upstream_upgrade = hyper::upgrade::on(&mut response);
            let splice = splice(client_upgrade, upstream_upgrade);
            let tunnel = Tunnel::new(Box::pin(async move {
                let _permits = permits;
                splice.await;
            }));
            (Some(tunnel), None)
        }
        (true, None) | (false, _) => (None, Some(permits)),
    };
    headers::remove_hop_by_hop(response.headers_mut(), switching && websocket);
    let mut response = response.map(|body| match permits {
        Some(permits) => hold(boxed::<Incoming>(body), permits),
        None => boxed::<Incoming>(body),
    });
    if let Some(tunnel) = tunnel {
        response.extensions_mut().insert(tunnel);
    }
    Ok(response)
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

/// The Host header value for an upstream authority.
pub fn host_value(authority: &http::uri::Authority) -> HeaderValue {
    HeaderValue::from_str(authority.as_str())
        .unwrap_or_else(|_| HeaderValue::from_static("localhost"))
}

/// Keeps `Duration` in this module's public vocabulary for callers computing deadlines.
pub fn deadline_after(timeout: Duration) -> Instant {
    Instant::now() + timeout
}
