//! Client connections: the accept loop, per-connection facts, limits and timeouts. The TLS
//! listener config lives in `server::tls`, the client certificate identity in `network::mtls`.
//!
//! The accept loop only accepts: the TLS handshake runs in the connection's own task under a
//! timeout, so a slow or hostile handshake never stalls other clients.

use std::convert::Infallible;
use std::pin::pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};

use super::io::{clock_ms, idle_for, Activity, HeadFlags, Watched};
use super::tls::{handshake_reason, TlsListener};
use super::ServerState;
use crate::network::mtls::client_cert;
use crate::pipeline::{self, ConnInfo};
use crate::proxy;

/// Logs a connection refused by `max_connections_per_client`, at most once per 10 s (a flood
/// must not flood the log too).
fn refused_per_client(addr: std::net::IpAddr) {
    static LAST: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let now = clock_ms();
    let last = LAST.load(Ordering::Relaxed);
    if (last == 0 || now.saturating_sub(last) >= 10_000)
        && LAST
            .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        tracing::warn!(client = %addr, "connection refused: max_connections_per_client reached");
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
                    tracing::warn!(listener = name, error = %error, "accept failed");
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
            serve_connection(stream, peer, tls, &state).await;
            open.dec();
        };
        tokio::spawn(task);
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: std::net::SocketAddr,
    tls: Option<Arc<TlsListener>>,
    state: &Arc<ServerState>,
) {
    // IPv4 clients of a dual-stack listener arrive as ::ffff:a.b.c.d; every rule and header
    // sees them as the IPv4 address they are.
    let peer = std::net::SocketAddr::new(peer.ip().to_canonical(), peer.port());
    let local = stream.local_addr().unwrap_or(peer);
    let activity = Activity::new();
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
                TokioIo::new(Watched::new(stream, &activity)),
                conn,
                activity,
                state,
            ))
            .await;
        }
        Some(tls) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(tls.config.load_full());
            let stream = match tokio::time::timeout(
                tls.handshake_timeout,
                Box::pin(acceptor.accept(stream)),
            )
            .await
            {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => {
                    let reason = handshake_reason(&error);
                    state.metrics.tls_handshake_failed(reason);
                    tracing::debug!(peer = %peer, reason, error = %error, "tls handshake failed");
                    return;
                }
                Err(_) => {
                    state.metrics.tls_handshake_failed("timeout");
                    return;
                }
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
                TokioIo::new(Watched::new(stream, &activity)),
                conn,
                activity,
                state,
            ))
            .await;
        }
    }
}

async fn serve_http<I>(io: I, conn: ConnInfo, activity: Arc<Activity>, state: &Arc<ServerState>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let snapshot = state.shared.load();
    let settings = snapshot.server.clone();
    drop(snapshot);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        .max_buf_size(settings.max_header_bytes.max(8192))
        .max_headers(settings.max_headers)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(settings.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(settings.http2_max_concurrent_streams);

    let conn = Arc::new(conn);
    let shared = Arc::clone(&state.shared);
    let service_activity = Arc::clone(&activity);
    let service = service_fn(move |request: Request<Incoming>| {
        let conn = Arc::clone(&conn);
        let shared = Arc::clone(&shared);
        let activity = Arc::clone(&service_activity);
        // Boxed: hyper keeps a slot of the service future's size for the whole life of every
        // connection, and this future is large. Boxing costs one allocation per request and
        // saves kilobytes per idle keep-alive connection.
        Box::pin(async move {
            let mut request = request;
            let first = activity.requests.fetch_add(1, Ordering::Relaxed) == 0;
            let flags = activity.head_flags(first);
            if flags != HeadFlags::default() {
                request.extensions_mut().insert(flags);
            }
            activity.in_flight.fetch_add(1, Ordering::Relaxed);
            let response = pipeline::handle(&shared, &conn, request.map(proxy::boxed)).await;
            activity.in_flight.fetch_sub(1, Ordering::Relaxed);
            activity.last_ms.store(clock_ms(), Ordering::Relaxed);
            Ok::<_, Infallible>(response)
        })
    });

    let mut connection = pin!(builder.serve_connection_with_upgrades(io, service));
    let mut stop = state.stop.clone();
    let idle = idle_for(&activity, settings.idle_timeout);
    let mut idle = pin!(idle);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(error = %error, "connection ended with an error");
            }
            return;
        }
        // No I/O and no request waiting for its response for idle_timeout: a response body
        // that stalls that long is cut, like an idle keep-alive connection is closed.
        _ = &mut idle => {
            tracing::debug!("closing idle connection");
            return;
        }
        _ = stop.changed() => {}
    }
    // Shutting down: finish the request in flight (bounded), then close.
    connection.as_mut().graceful_shutdown();
    match tokio::time::timeout(settings.shutdown_timeout, connection).await {
        Ok(Err(error)) => {
            tracing::debug!(error = %error, "connection ended with an error while closing")
        }
        Ok(Ok(())) => {}
        Err(_) => tracing::debug!("connection still busy at the end of the drain; closed"),
    }
}
