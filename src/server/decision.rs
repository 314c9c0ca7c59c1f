//! The decision listener (`[decision] listen`, SPEC §7.3): plaintext HTTP/1.1 and h2c, served
//! by [`crate::decision::handle`]. It never proxies and never reads a body.
//!
//! Its connections share `max_connections` with the client listeners, count in
//! `authgate_connections_open{listener="decision"}`, and are served by the same connection
//! code as the proxy's (`conn::serve_connection`): the same header limits, the same
//! `header_read_timeout` for heads over HTTP/1 and HTTP/2, `idle_timeout` between requests,
//! and the drain at shutdown. Only the accept loop is its own. `max_connections_per_client` is not applied: every caller is a trusted ingress,
//! which keeps a pool of connections from one address.

use std::sync::Arc;

use tokio::net::TcpListener;

use super::conn::Service;
use super::{ServerState, ACCEPT_BACKOFF};

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
            super::conn::serve_connection(stream, peer, None, Service::Decision, &state).await;
            open.dec();
        });
    }
}
