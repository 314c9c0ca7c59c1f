//! Gateway builder (owned by the proxy-tests helper).
//!
//! [`Gateway`] wraps a real `authgate::server::Handle` started from TOML text or a file, and
//! waits (bounded) for `/readyz` to answer 200. Plus small clients: [`send`] (HTTP/1.1, one
//! connection per request), [`open`] (same, response body left streaming), [`send_h2`] (h2c
//! prior knowledge) and [`raw`] (bytes in, bytes out until close or a timeout).
//!
//! Every wait here is bounded; nothing sleeps to wait for readiness.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use authgate::server::{ConfigOrigin, Control, Handle, StartError};
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, Version};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::Response;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::echo::Echoed;

/// The bound on any single client exchange.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// The bound on waiting for readiness (and other eventual states).
pub const READY_TIMEOUT: Duration = Duration::from_secs(5);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A gateway about to start.
pub struct GatewayBuilder {
    origin: ConfigOrigin,
}

impl GatewayBuilder {
    /// Starts the gateway and waits (bounded) until `/readyz` answers 200.
    pub async fn start(self) -> Gateway {
        let gateway = self.try_start().await.expect("gateway starts");
        let ready = eventually(READY_TIMEOUT, || async {
            match tokio::time::timeout(
                Duration::from_secs(1),
                try_send(gateway.admin, get("/readyz")),
            )
            .await
            {
                Ok(Ok(reply)) => reply.status == StatusCode::OK,
                _ => false,
            }
        })
        .await;
        assert!(ready, "gateway not ready within {READY_TIMEOUT:?}");
        gateway
    }

    /// Starts the gateway without waiting for readiness.
    pub async fn try_start(self) -> Result<Gateway, StartError> {
        let handle = Handle::start(self.origin).await?;
        let http = handle.addrs.http.expect("config has a plaintext listener");
        let admin = handle.addrs.admin;
        let decision = handle.addrs.decision;
        Ok(Gateway {
            handle: Some(handle),
            http,
            admin,
            decision,
        })
    }
}

/// A running gateway. Dropping it asks for a shutdown; [`Gateway::shutdown`] waits for one.
pub struct Gateway {
    handle: Option<Handle>,
    http: SocketAddr,
    admin: SocketAddr,
    /// The decision listener, when `[decision] listen` is configured.
    decision: Option<SocketAddr>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(handle) = &self.handle {
            let _ = handle.control().try_send(Control::Shutdown);
        }
    }
}

impl Gateway {
    /// A gateway from TOML text (not reloadable from disk).
    pub fn from_toml(text: impl Into<String>) -> GatewayBuilder {
        GatewayBuilder {
            origin: ConfigOrigin::Text {
                name: "test.toml".into(),
                text: text.into(),
            },
        }
    }

    /// A gateway from a config file (reloadable).
    pub fn from_file(path: impl Into<PathBuf>) -> GatewayBuilder {
        GatewayBuilder {
            origin: ConfigOrigin::File(path.into()),
        }
    }

    pub fn handle(&self) -> &Handle {
        self.handle.as_ref().expect("gateway running")
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    /// The decision listener's address; panics when the config has none.
    pub fn decision_addr(&self) -> SocketAddr {
        self.decision.expect("config has a [decision] listener")
    }

    /// `http://127.0.0.1:PORT{path}` on the plaintext listener.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.http, path)
    }

    /// `http://127.0.0.1:PORT{path}` on the admin listener.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin, path)
    }

    /// Sends `request` to the plaintext listener (HTTP/1.1, fresh connection).
    pub async fn send<B>(&self, request: Request<B>) -> Reply
    where
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        send(self.http, request).await
    }

    /// `GET path` on the plaintext listener.
    pub async fn get(&self, path: &str) -> Reply {
        send(self.http, get(path)).await
    }

    /// `GET path` on the admin listener.
    pub async fn admin_get(&self, path: &str) -> Reply {
        send(self.admin, get(path)).await
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        let reply = self.admin_get("/metrics").await;
        assert_eq!(reply.status, StatusCode::OK, "/metrics");
        reply.text()
    }

    /// Asks for a reload (returns before it is applied; poll for its effect).
    pub async fn reload(&self) {
        self.handle().reload().await;
    }

    /// Reloads and waits (bounded) until the new config is the one serving; panics when it
    /// is not within [`TIMEOUT`] (a refused reload never swaps).
    pub async fn reload_applied(&self) {
        let shared = &self.handle().shared;
        let before = shared.load_full();
        self.reload().await;
        let swapped = eventually(TIMEOUT, || async {
            !std::sync::Arc::ptr_eq(&shared.load_full(), &before)
        })
        .await;
        assert!(swapped, "the reload was not applied within {TIMEOUT:?}");
    }

    /// `Authorization: Bearer <token>` GET of `path`.
    pub async fn get_with_token(&self, path: &str, token: &str) -> Reply {
        let mut request = get(path);
        let value = format!("Bearer {token}").parse().expect("header value");
        request.headers_mut().insert("authorization", value);
        self.send(request).await
    }

    /// Drains and stops; waits (bounded by 10 s) for the drain to finish.
    pub async fn shutdown(mut self) {
        let handle = self.handle.take().expect("gateway running");
        tokio::time::timeout(TIMEOUT, handle.shutdown())
            .await
            .expect("shutdown finishes in time");
    }
}

/// Polls `check` every 20 ms until it returns true; false if `within` passes first.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A collected response.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ascii header"))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }

    /// The JSON `error` code of a gateway response ("" when there is none).
    pub fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or_default().to_owned()
    }

    /// Every value of `name` the upstream received, in order (echo replies only).
    pub fn upstream_headers(&self, name: &str) -> Vec<String> {
        let echoed: Echoed = serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not an echo reply ({e}): {}", self.text()));
        echoed
            .header_all(name)
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    /// The one value of `name` the upstream received; panics on several.
    #[track_caller]
    pub fn upstream_header(&self, name: &str) -> Option<String> {
        let mut values = self.upstream_headers(name);
        assert!(
            values.len() <= 1,
            "{name} received {} times: {values:?}",
            values.len()
        );
        values.pop()
    }

    /// The echo upstream's description of what it received.
    pub fn echoed(&self) -> Echoed {
        assert_eq!(self.status, StatusCode::OK, "echo reply: {}", self.text());
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not an echo reply ({e}): {}", self.text()))
    }

    /// Asserts a gateway error response: status, JSON `error` code, Content-Type and
    /// X-Request-Id (SPEC §5).
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(
            self.status.as_u16(),
            status,
            "status; body: {}",
            self.text()
        );
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "content-type"
        );
        assert!(self.header("x-request-id").is_some(), "x-request-id");
        let json = self.json();
        assert_eq!(json["error"], code, "error code in {json}");
        assert!(
            json["error_description"].is_string(),
            "error_description in {json}"
        );
    }
}

/// A bodiless request with an origin-form target.
pub fn request(method: Method, path: &str) -> Request<Empty<Bytes>> {
    Request::builder()
        .method(method)
        .uri(path)
        .body(Empty::new())
        .expect("valid request")
}

/// `GET path`.
pub fn get(path: &str) -> Request<Empty<Bytes>> {
    request(Method::GET, path)
}

/// `GET path` with `Host: host`.
pub fn with_host(path: &str, host: &str) -> Request<Empty<Bytes>> {
    let mut request = get(path);
    request
        .headers_mut()
        .insert("host", host.parse().expect("host value"));
    request
}

/// `GET path` with `headers`, in order (a repeated name is sent repeated).
pub fn with_headers(path: &str, headers: &[(&str, &str)]) -> Request<Empty<Bytes>> {
    let mut builder = Request::get(path);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Empty::new()).expect("valid request")
}

/// A request with a fixed body.
pub fn with_body(method: Method, path: &str, body: impl Into<Bytes>) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(path)
        .body(Full::new(body.into()))
        .expect("valid request")
}

/// Sends `request` on a fresh HTTP/1.1 connection and returns the response head with its body
/// still streaming. Adds `Host: <addr>` unless the request has one. Bounded by [`TIMEOUT`].
pub async fn open<B>(addr: SocketAddr, request: Request<B>) -> Response<Incoming>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    tokio::time::timeout(TIMEOUT, try_open(addr, request))
        .await
        .expect("response head within the timeout")
        .expect("request succeeds")
}

async fn try_open<B>(
    addr: SocketAddr,
    mut request: Request<B>,
) -> Result<Response<Incoming>, BoxError>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    if !request.headers().contains_key(http::header::HOST) {
        let host = http::HeaderValue::from_str(&addr.to_string())?;
        request.headers_mut().insert(http::header::HOST, host);
    }
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.with_upgrades().await;
    });
    Ok(sender.send_request(request).await?)
}

async fn try_send<B>(addr: SocketAddr, request: Request<B>) -> Result<Reply, BoxError>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    collect(try_open(addr, request).await?).await
}

async fn collect(response: Response<Incoming>) -> Result<Reply, BoxError> {
    let (parts, body) = response.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Reply {
        status: parts.status,
        version: parts.version,
        headers: parts.headers,
        body,
    })
}

/// Sends `request` on a fresh HTTP/1.1 connection and collects the response. Bounded by
/// [`TIMEOUT`]; panics on failure.
pub async fn send<B>(addr: SocketAddr, request: Request<B>) -> Reply
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    tokio::time::timeout(TIMEOUT, try_send(addr, request))
        .await
        .expect("response within the timeout")
        .expect("request succeeds")
}

/// Sends `request` over HTTP/2 with prior knowledge (h2c). A relative URI gets
/// `http://<addr>` as scheme and authority. Bounded by [`TIMEOUT`].
pub async fn send_h2<B>(addr: SocketAddr, mut request: Request<B>) -> Reply
where
    B: hyper::body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    if request.uri().authority().is_none() {
        let uri = format!("http://{addr}{}", request.uri());
        *request.uri_mut() = uri.parse().expect("absolute uri");
    }
    *request.version_mut() = Version::HTTP_2;
    let exchange = async move {
        let stream = TcpStream::connect(addr).await?;
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let response = sender.send_request(request).await?;
        collect(response).await
    };
    tokio::time::timeout(TIMEOUT, exchange)
        .await
        .expect("h2 response within the timeout")
        .expect("h2 request succeeds")
}

/// What [`raw`] read.
#[derive(Debug)]
pub struct RawReply {
    pub bytes: Vec<u8>,
    /// The peer closed the connection (EOF or reset) before the timeout.
    pub closed: bool,
}

impl RawReply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    /// The status code of the first response.
    pub fn status(&self) -> u16 {
        let text = self.text();
        let line = text.lines().next().unwrap_or("");
        line.split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {text:?}"))
    }

    fn head_and_body(&self) -> (String, &[u8]) {
        let end = self
            .bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no complete head in {:?}", self.text()));
        (
            String::from_utf8_lossy(&self.bytes[..end]).into_owned(),
            &self.bytes[end + 4..],
        )
    }

    /// The first value of header `name` in the first response (case-insensitive).
    pub fn header(&self, name: &str) -> Option<String> {
        let (head, _) = self.head_and_body();
        head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }

    /// The body of the first response, by its Content-Length.
    pub fn body(&self) -> Vec<u8> {
        let length: usize = self
            .header("content-length")
            .and_then(|l| l.parse().ok())
            .unwrap_or_else(|| panic!("no content-length in {:?}", self.text()));
        let (_, body) = self.head_and_body();
        body[..length.min(body.len())].to_vec()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body())
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }

    /// Asserts a gateway error response (status, JSON code, Content-Type, X-Request-Id).
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status(), status, "status in {:?}", self.text());
        assert_eq!(
            self.header("content-type").as_deref(),
            Some("application/json"),
            "content-type in {:?}",
            self.text()
        );
        assert!(self.header("x-request-id").is_some(), "x-request-id");
        assert_eq!(
            self.json()["error"],
            code,
            "error code in {:?}",
            self.text()
        );
    }
}

/// Writes `bytes` on a fresh connection, then reads until the peer closes or `within` passes.
pub async fn raw(addr: SocketAddr, bytes: &[u8], within: Duration) -> RawReply {
    let mut stream = tokio::time::timeout(TIMEOUT, TcpStream::connect(addr))
        .await
        .expect("connect within the timeout")
        .expect("connect");
    stream.write_all(bytes).await.expect("write request");
    read_until_close(&mut stream, within).await
}

/// Reads until the peer closes or `within` passes.
pub async fn read_until_close(stream: &mut TcpStream, within: Duration) -> RawReply {
    let deadline = tokio::time::Instant::now() + within;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => {
                return RawReply {
                    bytes: out,
                    closed: false,
                }
            }
            Ok(Ok(0)) | Ok(Err(_)) => {
                return RawReply {
                    bytes: out,
                    closed: true,
                }
            }
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// A loopback port for a child program that cannot listen on port 0 and report the port it
/// got (redis-server, nginx): bound, read back and released. Another process may take it in
/// between, so callers fail loudly or retry; the gateway itself always binds port 0.
pub fn port_for_child() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A loopback port that refuses connections: bound (so no other test can take it while the
/// socket lives) but never listening. Keep the socket alive as long as the port must stay
/// closed.
pub fn closed_port() -> (tokio::net::TcpSocket, u16) {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .expect("bind 127.0.0.1:0");
    let port = socket.local_addr().expect("bound address").port();
    (socket, port)
}

/// A config file that tests rewrite between reloads; removed on drop.
pub struct ConfigFile(pub PathBuf);

impl ConfigFile {
    pub fn new(text: &str) -> ConfigFile {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "authgate-test-{}-{}.toml",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let config = ConfigFile(path);
        config.write(text);
        config
    }

    /// Replaces the content: write then rename, so a reload never reads a half-written file.
    pub fn write(&self, text: &str) {
        let tmp = self.0.with_extension("tmp");
        std::fs::write(&tmp, text).expect("write config");
        std::fs::rename(&tmp, &self.0).expect("replace config");
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
