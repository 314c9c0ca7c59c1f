//! Client connections: the accept loop, per-connection facts, limits and timeouts. The TLS
//! listener config lives in `server::tls`, the client certificate identity in `network::mtls`.
//!
//! The accept loop only accepts: the TLS handshake runs in the connection's own task under a
//! timeout, so a slow or hostile handshake never stalls other clients.

use std::convert::Infallible;
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::{service_fn, HttpService};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};

use super::io::{expired, Activity, Expired, FramingLimits, Timeouts, Watched};
use super::sniff::{sniff, Sniffed, Version};
use super::tls::TlsListener;
use super::ServerState;
use crate::http_head::{HeadFlag, HeadFlags};
use crate::logging::Throttle;
use crate::network::mtls::client_cert;
use crate::pipeline::{self, ConnInfo};
use crate::proxy;
use crate::snapshot::{ServerSettings, Shared};
use crate::tls::HandshakeFailure;

/// Logs a connection refused by `max_connections_per_client`, throttled (a flood must not
/// flood the log too).
fn refused_per_client(addr: std::net::IpAddr) {
    static REFUSED: Throttle = Throttle::every_10s();
    if let Some(suppressed) = REFUSED.admit() {
        tracing::warn!(client = %addr, suppressed, "connection refused: max_connections_per_client reached");
    }
}

/// One connection's share of its client address's `max_connections_per_client`.
struct ClientSlot {
    state: Arc<ServerState>,
    addr: std::net::IpAddr,
}

impl ClientSlot {
    /// `None` when the address already holds its maximum of connections.
    fn take(state: &Arc<ServerState>, addr: std::net::IpAddr) -> Option<ClientSlot> {
        let addr = addr.to_canonical();
        let limit = state.shared.load().server.max_connections_per_client;
        let mut open = state
            .per_client
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let count = open.entry(addr).or_insert(0);
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(ClientSlot {
            state: Arc::clone(state),
            addr,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self
            .state
            .per_client
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Some(count) = open.get_mut(&self.addr) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.addr);
            }
        }
    }
}

/// Accepts connections until the server stops. Errors are logged and backed off, never fatal.
pub async fn accept_loop(
    listener: TcpListener,
    tls: Option<Arc<TlsListener>>,
    state: Arc<ServerState>,
) {
    let name: &'static str = if tls.is_some() { "https" } else { "http" };
    let open = state.metrics.connections(name);
    let mut stop = state.stop.clone();
    loop {
        // At max_connections, stop accepting until a connection closes (the kernel backlog
        // holds the rest), rather than accepting and dropping.
        let permit = tokio::select! {
            permit = Arc::clone(&state.connections).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
            _ = stop.changed() => return,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors, this repeats every backoff: throttled.
                    static FAILED: Throttle = Throttle::every_10s();
                    if let Some(suppressed) = FAILED.admit() {
                        tracing::warn!(listener = name, error = %error, suppressed, "accept failed");
                    }
                    tokio::time::sleep(super::ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let Some(client_slot) = ClientSlot::take(&state, peer.ip()) else {
            refused_per_client(peer.ip());
            continue;
        };
        let _ = stream.set_nodelay(true);
        let state = Arc::clone(&state);
        let tls = tls.clone();
        let open = open.clone();
        let task = async move {
            let _permit = permit;
            let _client_slot = client_slot;
            let _tracked = state.tracker.enter();
            open.inc();
            serve_connection(stream, peer, tls, Service::Proxy, &state).await;
            open.dec();
        };
        tokio::spawn(task);
    }
}

/// What a connection's requests are answered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Service {
    /// The proxy: `pipeline::handle`.
    Proxy,
    /// The decision listener: `decision::handle` (SPEC §7.3), which never proxies.
    Decision,
}

/// Serves one accepted connection (TLS handshake first when `tls` is given) with every
/// connection limit and timer of SPEC §6, whichever listener accepted it.
pub(super) async fn serve_connection(
    stream: TcpStream,
    peer: std::net::SocketAddr,
    tls: Option<Arc<TlsListener>>,
    service: Service,
    state: &Arc<ServerState>,
) {
    // IPv4 clients of a dual-stack listener arrive as ::ffff:a.b.c.d; every rule and header
    // sees them as the IPv4 address they are.
    let peer = std::net::SocketAddr::new(peer.ip().to_canonical(), peer.port());
    let local = stream.local_addr().unwrap_or(peer);
    let activity = Activity::new();
    let settings = state.shared.load().server.clone();
    let limits = FramingLimits {
        // hyper's HTTP/1 read buffer: a longer head is refused there.
        head: settings.max_header_bytes.max(8192) + 1,
        headers: settings.max_headers,
        header_list: settings.max_header_bytes,
    };
    match tls {
        None => {
            let conn = ConnInfo {
                peer,
                local,
                tls: false,
                client_cert: None,
            };
            // Boxed (here and below): the task then holds a pointer, not the largest of the
            // plaintext and TLS connection states; it keeps idle connections small.
            Box::pin(serve_http(
                TokioIo::new(Watched::new(stream, &activity, limits)),
                conn,
                activity,
                settings,
                service,
                state,
            ))
            .await;
        }
        Some(tls) => {
            let Some(stream) = handshake(stream, &tls, peer, state).await else {
                return;
            };
            let client_cert = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(client_cert)
                .map(Arc::new);
            let conn = ConnInfo {
                peer,
                local,
                tls: true,
                client_cert,
            };
            Box::pin(serve_http(
                TokioIo::new(Watched::new(stream, &activity, limits)),
                conn,
                activity,
                settings,
                service,
                state,
            ))
            .await;
        }
    }
}

/// The TLS handshake of one connection, bounded by `handshake_timeout`. A failure is counted
/// by its reason and ends the connection (`None`).
async fn handshake(
    stream: TcpStream,
    tls: &TlsListener,
    peer: std::net::SocketAddr,
    state: &ServerState,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.config.load_full());
    match tokio::time::timeout(tls.handshake_timeout, Box::pin(acceptor.accept(stream))).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(error)) => {
            let reason = HandshakeFailure::of(&error);
            state.metrics.tls_handshake_failed(reason);
            let reason = reason.as_str();
            tracing::debug!(peer = %peer, reason, error = %error, "tls handshake failed");
            None
        }
        Err(_) => {
            state
                .metrics
                .tls_handshake_failed(HandshakeFailure::Timeout);
            None
        }
    }
}

/// hyper's HTTP/1 settings from `[server]`.
fn http1_builder(settings: &ServerSettings) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // Off: it re-arms between keep-alive requests; heads are timed by `io::expired`.
        .header_read_timeout(None)
        .max_buf_size(settings.max_header_bytes.max(8192))
        .max_headers(settings.max_headers)
        .keep_alive(true);
    builder
}

/// hyper's HTTP/2 settings from `[server]`.
fn http2_builder(settings: &ServerSettings) -> http2::Builder<TokioExecutor> {
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(settings.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(settings.http2_max_concurrent_streams);
    builder
}

pin_project_lite::pin_project! {
    /// One client connection in hyper, in the protocol [`sniff`] found.
    #[project = HttpConnectionProj]
    enum HttpConnection<I, S>
    where
        S: HttpService<Incoming>,
    {
        Http1 { #[pin] conn: http1::UpgradeableConnection<I, S> },
        Http2 { #[pin] conn: http2::Connection<I, S, TokioExecutor> },
    }
}

impl<I, S, B> HttpConnection<I, S>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: HttpService<Incoming, ResBody = B>,
    S::Future: Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    /// hyper's connection for `version`, with `[server]`'s settings.
    fn new(version: Version, io: I, service: S, settings: &ServerSettings) -> Self {
        match version {
            Version::Http1 => HttpConnection::Http1 {
                conn: http1_builder(settings)
                    .serve_connection(io, service)
                    .with_upgrades(),
            },
            Version::Http2 => HttpConnection::Http2 {
                conn: http2_builder(settings).serve_connection(io, service),
            },
        }
    }

    fn graceful_shutdown(self: Pin<&mut Self>) {
        match self.project() {
            HttpConnectionProj::Http1 { conn } => conn.graceful_shutdown(),
            HttpConnectionProj::Http2 { conn } => conn.graceful_shutdown(),
        }
    }
}

impl<I, S, B> Future for HttpConnection<I, S>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: HttpService<Incoming, ResBody = B>,
    S::Future: Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Output = hyper::Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            HttpConnectionProj::Http1 { conn } => conn.poll(cx),
            HttpConnectionProj::Http2 { conn } => conn.poll(cx),
        }
    }
}

/// Answers one request of the connection: the head flags go on the request, `handler`
/// answers, and the response body holds the exchange open (and a WebSocket tunnel is kept for
/// the connection's task).
async fn answer(
    request: Request<Incoming>,
    conn: Arc<ConnInfo>,
    shared: Shared,
    activity: Arc<Activity>,
    handler: Service,
) -> Result<Response<proxy::Body>, Infallible> {
    let exchange = activity.exchange();
    let mut request = request;
    let first = activity.requests.fetch_add(1, Ordering::Relaxed) == 0;
    let mut flags = activity.head_flags(first);
    // HTTP/2: a `:path` the parser cut at `#` (SPEC §3 refuses a raw `#`).
    if request.version() == http::Version::HTTP_2 {
        let target = request.uri().path_and_query().map_or("", |pq| pq.as_str());
        if activity.take_fragment(request.method(), target) {
            flags = flags.with(HeadFlag::Fragment);
        }
    }
    if flags != HeadFlags::default() {
        request.extensions_mut().insert(flags);
    }
    activity.request_sent();
    let mut response = match handler {
        Service::Proxy => pipeline::handle(&shared, &conn, request.map(proxy::boxed)).await,
        Service::Decision => crate::decision::handle(&shared, &conn, request).await,
    };
    activity.request_answered();
    // A WebSocket tunnel runs on this connection's task once hyper releases the
    // connection after the 101: it keeps the connection's limits (SPEC §6).
    if let Some(tunnel) = response
        .extensions_mut()
        .remove::<proxy::Tunnel>()
        .and_then(|tunnel| tunnel.take())
    {
        activity.set_tunnel(tunnel);
    }
    Ok::<_, Infallible>(response.map(|body| proxy::hold(body, exchange)))
}

async fn serve_http<I>(
    io: I,
    conn: ConnInfo,
    activity: Arc<Activity>,
    settings: ServerSettings,
    handler: Service,
    state: &Arc<ServerState>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    activity.start();
    let conn = Arc::new(conn);
    let shared = Arc::clone(&state.shared);
    let service_activity = Arc::clone(&activity);
    let service = service_fn(move |request: Request<Incoming>| {
        // Boxed: hyper keeps a slot of the service future's size for the whole life of every
        // connection, and this future is large. Boxing costs one allocation per request and
        // saves kilobytes per idle keep-alive connection.
        Box::pin(answer(
            request,
            Arc::clone(&conn),
            Arc::clone(&shared),
            Arc::clone(&service_activity),
            handler,
        ))
    });

    let timeouts = Timeouts {
        header_read: settings.header_read_timeout,
        idle: settings.idle_timeout,
    };
    let mut stop = state.stop.clone();
    let Some((version, io)) = first_bytes(io, &activity, timeouts, &mut stop).await else {
        return;
    };
    let mut connection = pin!(HttpConnection::new(version, io, service, &settings));
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(error = %error, "connection ended with an error");
            }
            if let Some(tunnel) = activity.take_tunnel() {
                run_tunnel(tunnel, &activity, timeouts, &mut stop).await;
            }
            return;
        }
        why = expired(&activity, timeouts) => return closing(why),
        _ = stop.changed() => {}
    }
    // Shutting down. Nothing in flight (idle, or a head not complete): close at once.
    if !activity.busy() {
        return;
    }
    // Finish the requests in flight (bounded), then close.
    connection.as_mut().graceful_shutdown();
    let deadline = tokio::time::Instant::now() + settings.shutdown_timeout;
    let finished = tokio::select! {
        result = tokio::time::timeout_at(deadline, connection.as_mut()) => Some(result),
        _ = activity.quiet() => None,
    };
    let result = match finished {
        Some(result) => result,
        // The last response is out: let hyper flush and close (an HTTP/2 client that does
        // not answer the shutdown PING gets a short grace, not the whole drain).
        None => {
            let grace = deadline.min(tokio::time::Instant::now() + DRAIN_GRACE);
            tokio::time::timeout_at(grace, connection.as_mut()).await
        }
    };
    match result {
        Ok(Err(error)) => {
            tracing::debug!(error = %error, "connection ended with an error while closing")
        }
        Ok(Ok(())) => {}
        Err(_) => {
            state.tracker.cut.fetch_add(1, Ordering::SeqCst);
            tracing::debug!("connection still busy at the end of the drain; closed");
        }
    }
}

/// Reads a connection's first bytes to tell HTTP/1 from HTTP/2, under the same timers as a
/// request head; `None` when the connection ends, times out or the server stops first (nothing
/// is in flight yet, so it closes at once).
async fn first_bytes<I: hyper::rt::Read + Unpin>(
    io: I,
    activity: &Activity,
    timeouts: Timeouts,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> Option<(Version, Sniffed<I>)> {
    tokio::select! {
        sniffed = sniff(io) => match sniffed {
            Ok(sniffed) => Some(sniffed),
            Err(error) => {
                tracing::debug!(error = %error, "connection ended before its first request");
                None
            }
        },
        why = expired(activity, timeouts) => {
            closing(why);
            None
        }
        _ = stop.changed() => None,
    }
}

/// Logs why a connection is closed by its timers.
fn closing(why: Expired) {
    match why {
        Expired::Head => tracing::debug!("closing connection: request head not complete in time"),
        Expired::Idle => tracing::debug!("closing idle connection"),
    }
}

/// How long a draining connection may take to close once its last response is out.
const DRAIN_GRACE: Duration = Duration::from_secs(1);

/// Runs a WebSocket tunnel until either side closes, `idle_timeout` passes without a byte
/// either way, or the server shuts down.
async fn run_tunnel(
    tunnel: proxy::TunnelFuture,
    activity: &Activity,
    timeouts: Timeouts,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) {
    if *stop.borrow() {
        return;
    }
    tokio::select! {
        _ = tunnel => {}
        _ = expired(activity, timeouts) => tracing::debug!("closing idle websocket tunnel"),
        _ = stop.changed() => tracing::debug!("shutting down: websocket tunnel closed"),
    }
}
