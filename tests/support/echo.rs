//! Echo upstream (owned by the proxy-tests helper).
//!
//! A hyper 1 server on `127.0.0.1:0` that answers every request with JSON describing what it
//! received ([`Echoed`]): method, path and query exactly as on the wire, every header in order
//! (repeats kept), HTTP version, body length and SHA-256 (streamed, never buffered).
//!
//! Modes, chosen by the last path segment (so any route or upstream prefix works):
//! - `.../slow?ms=N`: sleeps N ms before answering.
//! - `.../chunks?n=N&ms=M[&gate=1]`: a streamed (chunked) response of N chunks `chunk-<i>\n`,
//!   M ms apart. With `gate=1` the final chunk waits until the test calls [`Echo::open_gate`]
//!   (bounded by 10 s), so a test can prove a chunk arrived before the last one was sent.
//! - any request with `Connection: upgrade` + `Upgrade: websocket`: answers 101 with the
//!   RFC 6455 `Sec-WebSocket-Accept` and echoes every message back.
//!
//! The server stops when the [`Echo`] is dropped.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

type EchoBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// The JSON the echo answers with (and what [`Echo::requests_seen`] records, without body).
#[derive(Debug, Clone, Deserialize)]
pub struct Echoed {
    pub method: String,
    /// Path and query exactly as received (`req.uri()` path_and_query).
    pub path: String,
    pub version: String,
    /// Every header as received, names lowercase, repeats kept in order.
    pub headers: Vec<(String, String)>,
    pub body_len: u64,
    /// Lowercase hex SHA-256 of the body.
    pub body_sha256: String,
}

impl Echoed {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name` (case-insensitive), in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn has_header(&self, name: &str) -> bool {
        self.header(name).is_some()
    }
}

/// A request head as the echo saw it, recorded before the body is read.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
}

struct State {
    seen: Mutex<Vec<Seen>>,
    seen_changed: Notify,
    /// Body bytes received so far, over all requests.
    body_bytes: AtomicU64,
    body_changed: Notify,
    /// Permits for the final chunk of `gate=1` chunked responses.
    gate: Semaphore,
}

/// A running echo upstream; stops on drop.
pub struct Echo {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Echo {
    /// Binds `127.0.0.1:0` and serves in the background.
    pub async fn start() -> Echo {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind echo upstream");
        let addr = listener.local_addr().expect("echo address");
        let state = Arc::new(State {
            seen: Mutex::new(Vec::new()),
            seen_changed: Notify::new(),
            body_bytes: AtomicU64::new(0),
            body_changed: Notify::new(),
            gate: Semaphore::new(0),
        });
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&state)));
        Echo { addr, state, task }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` followed by `path` (e.g. `/base` or ``).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Every request head seen so far, in arrival order.
    pub fn requests_seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    /// Body bytes received so far over all requests.
    pub fn body_bytes_received(&self) -> u64 {
        self.state.body_bytes.load(Ordering::SeqCst)
    }

    /// Waits (bounded) until at least `n` body bytes have arrived; false on timeout.
    pub async fn wait_body_bytes(&self, n: u64, within: Duration) -> bool {
        let wait = async {
            loop {
                let changed = self.state.body_changed.notified();
                if self.body_bytes_received() >= n {
                    return;
                }
                changed.await;
            }
        };
        tokio::time::timeout(within, wait).await.is_ok()
    }

    /// Waits (bounded) until a request whose path contains `fragment` was seen.
    pub async fn wait_seen(&self, fragment: &str, within: Duration) -> Option<Seen> {
        let wait = async {
            loop {
                let changed = self.state.seen_changed.notified();
                if let Some(seen) = self
                    .requests_seen()
                    .into_iter()
                    .find(|s| s.path.contains(fragment))
                {
                    return seen;
                }
                changed.await;
            }
        };
        tokio::time::timeout(within, wait).await.ok()
    }

    /// Lets one gated chunked response send its final chunk.
    pub fn open_gate(&self) {
        self.state.gate.add_permits(1);
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let state = Arc::clone(&state);
                async move { Ok::<_, Infallible>(respond(state, request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
}

fn header_list(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect()
}

fn query_param(query: Option<&str>, key: &str) -> Option<u64> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == key).then(|| v.parse().ok()).flatten()
    })
}

fn full(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<EchoBody> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(body.into()).boxed())
        .unwrap()
}

fn has_token(headers: &HeaderMap, name: &str, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value
            .to_str()
            .unwrap_or("")
            .split(',')
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    })
}

async fn respond(state: Arc<State>, mut request: Request<Incoming>) -> Response<EchoBody> {
    let path = request
        .uri()
        .path_and_query()
        .map_or_else(|| request.uri().to_string(), |pq| pq.as_str().to_owned());
    let headers = header_list(request.headers());
    state.seen.lock().unwrap().push(Seen {
        method: request.method().as_str().to_owned(),
        path: path.clone(),
        headers: headers.clone(),
    });
    state.seen_changed.notify_waiters();

    if has_token(request.headers(), "connection", "upgrade")
        && has_token(request.headers(), "upgrade", "websocket")
    {
        return websocket(&mut request);
    }

    let last_segment = request.uri().path().rsplit('/').next().unwrap_or("");
    let query = request.uri().query().map(str::to_owned);
    match last_segment {
        "slow" => {
            let ms = query_param(query.as_deref(), "ms").unwrap_or(1000);
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        "chunks" => return chunks(state, query.as_deref()),
        _ => {}
    }

    let method = request.method().as_str().to_owned();
    let version = format!("{:?}", request.version());
    let mut body = request.into_body();
    let mut digest = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut body_len = 0u64;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return full(StatusCode::BAD_REQUEST, "text/plain", "body read failed\n");
        };
        if let Ok(data) = frame.into_data() {
            digest.update(&data);
            body_len += data.len() as u64;
            state
                .body_bytes
                .fetch_add(data.len() as u64, Ordering::SeqCst);
            state.body_changed.notify_waiters();
        }
    }
    let json = serde_json::json!({
        "method": method,
        "path": path,
        "version": version,
        "headers": headers,
        "body_len": body_len,
        "body_sha256": hex::encode(digest.finish().as_ref()),
    });
    full(StatusCode::OK, "application/json", json.to_string())
}

/// `n` chunks `chunk-<i>\n`, `ms` apart; with `gate=1` the last waits for [`Echo::open_gate`].
fn chunks(state: Arc<State>, query: Option<&str>) -> Response<EchoBody> {
    let n = query_param(query, "n").unwrap_or(5);
    let ms = query_param(query, "ms").unwrap_or(100);
    let gated = query_param(query, "gate") == Some(1);
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1);
    tokio::spawn(async move {
        for i in 0..n {
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            if gated && i + 1 == n {
                let permit = tokio::time::timeout(Duration::from_secs(10), state.gate.acquire());
                if let Ok(Ok(permit)) = permit.await {
                    permit.forget();
                }
            }
            if tx.send(Bytes::from(format!("chunk-{i}\n"))).await.is_err() {
                return;
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, Infallible>(Frame::data(chunk)), rx))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/plain")
        .body(BodyExt::boxed(StreamBody::new(stream)))
        .unwrap()
}

/// RFC 6455 4.2.2: base64(SHA-1(key + GUID)).
pub fn websocket_accept(key: &[u8]) -> String {
    const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY);
    context.update(key);
    context.update(GUID);
    base64::engine::general_purpose::STANDARD.encode(context.finish().as_ref())
}

fn websocket(request: &mut Request<Incoming>) -> Response<EchoBody> {
    let Some(key) = request.headers().get("sec-websocket-key") else {
        return full(StatusCode::BAD_REQUEST, "text/plain", "no key\n");
    };
    let accept = websocket_accept(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(request);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let mut ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        while let Some(Ok(message)) = ws.next().await {
            if message.is_close() {
                let _ = ws.close(None).await;
                return;
            }
            if (message.is_text() || message.is_binary()) && ws.send(message).await.is_err() {
                return;
            }
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-accept", accept)
        .body(Full::new(Bytes::new()).boxed())
        .unwrap()
}
