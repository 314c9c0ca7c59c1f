//! The decision listener (`[decision] listen`, SPEC §7.3): plaintext HTTP/1.1 and h2c, served
//! by [`crate::decision::handle`]. It never proxies and never reads a body.
//!
//! Its connections share `max_connections` with the client listeners, count in
//! `authgate_connections_open{listener="decision"}`, use the same header limits and
//! `header_read_timeout` (which also bounds an idle HTTP/1 keep-alive connection), and drain
//! at shutdown. `max_connections_per_client` is not applied: every caller is a trusted ingress,
//! which keeps a pool of connections from one address.

use std::convert::Infallible;
use std::pin::pin;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};

use super::{ServerState, ACCEPT_BACKOFF};
use crate::pipeline::ConnInfo;

/// Accepts decision connections until the server stops.
pub async fn serve(listener: TcpListener, state: Arc<ServerState>) {
    let open = state.metrics.connections("decision");
    let mut stop = state.stop.clone();
    loop {
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
                    tracing::warn!(listener = "decision", error = %error, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let _ = stream.set_nodelay(true);
        let state = Arc::clone(&state);
        let open = open.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _tracked = state.tracker.enter();
            open.inc();
            connection(stream, peer, &state).await;
            open.dec();
        });
    }
}

async fn connection(stream: TcpStream, peer: std::net::SocketAddr, state: &Arc<ServerState>) {
    let peer = std::net::SocketAddr::new(peer.ip().to_canonical(), peer.port());
    let local = stream.local_addr().unwrap_or(peer);
    let settings = state.shared.load().server.clone();
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

    let conn = Arc::new(ConnInfo {
        peer,
        local,
        tls: false,
        client_cert: None,
    });
    let shared = Arc::clone(&state.shared);
    let service = service_fn(move |request: Request<Incoming>| {
        let conn = Arc::clone(&conn);
        let shared = Arc::clone(&shared);
        Box::pin(async move {
            Ok::<_, Infallible>(crate::decision::handle(&shared, &conn, request).await)
        })
    });
    let mut connection = pin!(builder.serve_connection(TokioIo::new(stream), service));
    let mut stop = state.stop.clone();
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(error = %error, "decision connection ended with an error");
            }
            return;
        }
        _ = stop.changed() => {}
    }
    connection.as_mut().graceful_shutdown();
    if tokio::time::timeout(settings.shutdown_timeout, connection)
        .await
        .is_err()
    {
        tracing::debug!("decision connection still busy at the end of the drain; closed");
    }
}
