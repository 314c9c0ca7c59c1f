//! The admin listener (SPEC §6): `/healthz`, `/readyz`, `/metrics`. Never proxied.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use super::{ServerState, ACCEPT_BACKOFF};
use crate::snapshot::Readiness;

pub async fn serve(listener: TcpListener, state: Arc<ServerState>) {
    let mut stop = state.stop.clone();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(listener = "admin", error = %error, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let service = service_fn(|request: Request<Incoming>| {
                let state = Arc::clone(&state);
                async move { Ok::<_, Infallible>(respond(&state, &request)) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service);
            if let Err(error) = connection.await {
                tracing::debug!(error = %error, "admin connection ended with an error");
            }
        });
    }
}

fn reply(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// The readiness body and whether the gateway is ready (SPEC §6): listeners bound and, per
/// `[admin] readiness`, every issuer's keys loaded once (default), usable now, or not
/// looked at. The body always shows each issuer's state now.
pub fn readiness(state: &ServerState) -> (bool, serde_json::Value) {
    let snapshot = state.shared.load();
    let mut issuers = serde_json::Map::new();
    let mut ready = state.ready.load(Ordering::SeqCst);
    for issuer in &snapshot.issuers {
        let usable = issuer.store.keys().is_some_and(|keys| !keys.is_empty());
        ready &= match snapshot.readiness {
            Readiness::LoadedOnce => issuer.store.loaded_once(),
            Readiness::AllIssuers => usable,
            Readiness::Listeners => true,
        };
        issuers.insert(
            issuer.name.clone(),
            (if usable { "ok" } else { "no key set" }).into(),
        );
    }
    (
        ready,
        serde_json::json!({ "ready": ready, "issuers": issuers }),
    )
}

fn respond(state: &ServerState, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "method not allowed\n",
        );
    }
    match request.uri().path() {
        "/healthz" => reply(StatusCode::OK, "text/plain", "ok\n"),
        "/readyz" => {
            let (ready, body) = readiness(state);
            let status = if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            reply(status, "application/json", body.to_string())
        }
        "/metrics" => {
            let snapshot = state.shared.load();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let text = state.metrics.render(
                snapshot
                    .issuers
                    .iter()
                    .map(|issuer| (issuer.name.as_str(), &*issuer.store)),
                snapshot
                    .api_keys
                    .iter()
                    .map(|source| (source.name.as_str(), source.active(now))),
            );
            reply(StatusCode::OK, "text/plain; version=0.0.4", text)
        }
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
    }
}
