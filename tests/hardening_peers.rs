//! Hardening against misbehaving peers: an identity provider whose key endpoint drips, redirects,
//! floods or lies (SPEC §2 key sources, §3 step 6), and an upstream that resets, lies about its
//! status, never answers, floods its response head or stalls its body (SPEC §4 end).
//!
//! Both peers are raw TCP servers written here, so they can do what no HTTP library would.
//! After each failure the gateway must keep serving: /healthz and a normal request are checked.
//! Everything binds 127.0.0.1:0 and every wait is bounded.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};
use support::config::Config;
use support::echo::Echo;
use support::gateway::{eventually, get, open, Gateway, TIMEOUT};
use support::idp::{keys, now, sign_raw};
use support::upstream::Upstream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The bound on eventual states (keys loaded, fetches retried).
const EVENTUALLY: Duration = Duration::from_secs(8);

/// Reads a request head (bounded); returns its request line, or `None` on EOF or timeout.
async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match tokio::time::timeout(TIMEOUT, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => head.extend_from_slice(&buf[..n]),
            _ => return None,
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    text.lines().next().map(str::to_owned)
}

/// Holds the connection until the peer closes it (bounded by 30 s).
async fn hold(mut stream: TcpStream) {
    let mut buf = [0u8; 1024];
    let _ = tokio::time::timeout(Duration::from_secs(30), async {
        while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
    })
    .await;
}

/// A raw TCP server: `respond` gets each connection after its request line was read.
struct RawServer {
    upstream: Upstream,
    requests: Arc<AtomicUsize>,
}

impl RawServer {
    async fn start<F, Fut>(respond: F) -> RawServer
    where
        F: Fn(String, TcpStream) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&requests);
        let respond = Arc::new(respond);
        let upstream = Upstream::start(move |mut stream| {
            let counter = Arc::clone(&counter);
            let respond = Arc::clone(&respond);
            async move {
                if let Some(line) = read_head(&mut stream).await {
                    counter.fetch_add(1, Ordering::SeqCst);
                    respond(line, stream).await;
                }
            }
        })
        .await;
        RawServer { upstream, requests }
    }

    fn url(&self) -> String {
        self.upstream.url()
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Waits (bounded) until at least `n` requests arrived.
    async fn wait_requests(&self, n: usize) -> bool {
        eventually(EVENTUALLY, || async { self.requests() >= n }).await
    }
}

// ---------------------------------------------------------------------------------------------
// Misbehaving identity provider

/// What the key endpoint does.
#[derive(Clone)]
enum Jwks {
    /// 200 with this document.
    Serve(Value),
    /// The headers at once, then the body one byte every 100 ms.
    Drip,
    /// 302 to this URL.
    Redirect(String),
    /// 200 with a close-delimited, well-formed JSON body over 1 MiB.
    Oversized,
    /// 200 with a body that is not JSON.
    Invalid,
}

fn good_jwks() -> Value {
    json!({ "keys": [keys::rsa().jwk_with_kid("k1")] })
}

/// A real 1024-bit RSA modulus (`openssl genrsa 1024`, base64url); only the public half is
/// kept: the gateway must skip the key, so nothing is ever signed with it.
const RSA_1024_N: &str = "wsj84KaTWgwUHu82XSxPk8oGiGuH-0GzPm9kIO-DBA_zoFdsXcBQgsJF10pbaqQ8cL4rftE9vCvuYSk1O_68KLerfqjLOV4tMW5CqvCNa7KD1XH0vll4itdNkW1lFDWW63RW_XGD_ONlxXdFMx7J1wwBGyAJxWwz1hHsL-oHnVk";

fn weak_jwk() -> Value {
    json!({"kty": "RSA", "kid": "weak", "alg": "RS256", "use": "sig", "n": RSA_1024_N, "e": "AQAB"})
}

async fn respond_jwks(mode: Jwks, mut stream: TcpStream) {
    let head = |status: &str, extra: &str| {
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nConnection: close\r\n{extra}"
        )
    };
    match mode {
        Jwks::Serve(document) => {
            let body = document.to_string();
            let text = head(
                "200 OK",
                &format!("Content-Length: {}\r\n\r\n{body}", body.len()),
            );
            let _ = stream.write_all(text.as_bytes()).await;
        }
        Jwks::Drip => {
            let body = good_jwks().to_string();
            let text = head("200 OK", &format!("Content-Length: {}\r\n\r\n", body.len()));
            let _ = stream.write_all(text.as_bytes()).await;
            for byte in body.as_bytes() {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if stream.write_all(&[*byte]).await.is_err() {
                    return;
                }
            }
        }
        Jwks::Redirect(location) => {
            let text = head(
                "302 Found",
                &format!("Location: {location}\r\nContent-Length: 0\r\n\r\n"),
            );
            let _ = stream.write_all(text.as_bytes()).await;
        }
        Jwks::Oversized => {
            let mut document = good_jwks();
            document["padding"] = json!("x".repeat(1024 * 1024 + 1024));
            let text = head("200 OK", "\r\n");
            let _ = stream.write_all(text.as_bytes()).await;
            let _ = stream.write_all(document.to_string().as_bytes()).await;
        }
        Jwks::Invalid => {
            let body = "{\"keys\": [{\"kty\": \"RSA\", ";
            let text = head(
                "200 OK",
                &format!("Content-Length: {}\r\n\r\n{body}", body.len()),
            );
            let _ = stream.write_all(text.as_bytes()).await;
        }
    }
    let _ = stream.shutdown().await;
}

/// A key endpoint whose behaviour the test switches at run time.
struct KeyServer {
    server: RawServer,
    mode: Arc<Mutex<Jwks>>,
}

impl KeyServer {
    async fn start(mode: Jwks) -> KeyServer {
        let mode = Arc::new(Mutex::new(mode));
        let current = Arc::clone(&mode);
        let server = RawServer::start(move |_, stream| {
            let mode = current.lock().unwrap().clone();
            respond_jwks(mode, stream)
        })
        .await;
        KeyServer { server, mode }
    }

    fn set(&self, mode: Jwks) {
        *self.mode.lock().unwrap() = mode;
    }

    fn jwks_uri(&self) -> String {
        format!("{}/jwks.json", self.server.url())
    }
}

const ISSUER: &str = "https://bad-idp.test/";

/// A gateway whose issuer `bad-idp` fetches from `jwks_uri` with short timings; routes
/// `/secure` (token) and `/public`, both to the echo. Started without waiting for /readyz (the
/// issuer may never get keys), then waits (bounded) for /healthz.
async fn idp_gateway(jwks_uri: &str, echo: &Echo) -> Gateway {
    let config = Config::new()
        .raw(&format!(
            "[[issuers]]\nname = \"bad-idp\"\nissuer = \"{ISSUER}\"\njwks_uri = \"{jwks_uri}\"\n\
             audiences = [\"api\"]\nfetch_timeout = \"300ms\"\nrefresh_interval = \"200ms\"\n\
             min_refresh = \"100ms\""
        ))
        .echo(echo)
        .route("secure", "/secure", "")
        .public("/public")
        .toml();
    let gateway = Gateway::from_toml(config)
        .try_start()
        .await
        .expect("gateway starts");
    let admin = gateway.admin_addr();
    let healthy = eventually(EVENTUALLY, || async {
        tokio::time::timeout(Duration::from_secs(1), async {
            support::gateway::send(admin, get("/healthz")).await.status == 200
        })
        .await
        .unwrap_or(false)
    })
    .await;
    assert!(healthy, "gateway healthy");
    gateway
}

/// A fresh token (unique `jti`, so never a token-cache hit) from the bad IdP for `kid`.
fn token(kid: &str) -> String {
    static SERIAL: AtomicUsize = AtomicUsize::new(0);
    let claims = json!({
        "iss": ISSUER, "sub": "svc", "aud": "api", "iat": now(), "exp": now() + 300,
        "jti": SERIAL.fetch_add(1, Ordering::SeqCst).to_string(),
    });
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": kid});
    sign_raw(&header, &claims, &keys::rsa().encoding, Algorithm::RS256)
}

async fn secure_status(gateway: &Gateway, kid: &str) -> u16 {
    let bearer = format!("Bearer {}", token(kid));
    let mut request = get("/secure/x");
    let value = bearer.parse().expect("header value");
    request.headers_mut().insert("authorization", value);
    let started = Instant::now();
    let reply = tokio::time::timeout(Duration::from_secs(3), gateway.send(request))
        .await
        .expect("an answer without waiting for the key endpoint");
    if reply.status == 503 {
        reply.assert_error(503, "unavailable");
        assert!(reply.header("retry-after").is_some(), "503 has Retry-After");
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    reply.status.as_u16()
}

async fn assert_still_serving(gateway: &Gateway) {
    assert_eq!(gateway.get("/public/ok").await.status, 200, "other routes");
    assert_eq!(gateway.admin_get("/healthz").await.status, 200, "/healthz");
}

/// A bad key endpoint from the start leaves the issuer without keys (503, other routes fine);
/// once it recovers keys load; when it turns bad again the last good set keeps serving.
async fn bad_then_good_then_bad(bad: Jwks, keys: &KeyServer, gateway: &Gateway) {
    keys.set(bad.clone());
    assert!(
        keys.server.wait_requests(3).await,
        "key fetches are retried"
    );
    assert_eq!(secure_status(gateway, "k1").await, 503, "no key set yet");
    assert_still_serving(gateway).await;
    assert_eq!(gateway.admin_get("/readyz").await.status, 503, "/readyz");

    keys.set(Jwks::Serve(good_jwks()));
    let loaded = eventually(EVENTUALLY, || async {
        secure_status(gateway, "k1").await == 200
    })
    .await;
    assert!(loaded, "keys load once the endpoint recovers");

    keys.set(bad);
    let seen = keys.server.requests();
    assert!(
        keys.server.wait_requests(seen + 3).await,
        "refreshes continue"
    );
    assert_eq!(
        secure_status(gateway, "k1").await,
        200,
        "the last good set serves"
    );
    let metrics = gateway.metrics().await;
    assert!(
        metrics.contains("authgate_jwks_stale{issuer=\"bad-idp\"} 1"),
        "stale gauge: {}",
        metrics
            .lines()
            .filter(|l| l.contains("jwks"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_still_serving(gateway).await;
}

#[tokio::test]
async fn a_slow_drip_key_endpoint_is_cut_by_fetch_timeout() {
    let echo = Echo::start().await;
    let keys = KeyServer::start(Jwks::Drip).await;
    let gateway = idp_gateway(&keys.jwks_uri(), &echo).await;
    // The drip would take ~40 s; every fetch is cut at 300 ms and retried.
    bad_then_good_then_bad(Jwks::Drip, &keys, &gateway).await;
}

#[tokio::test]
async fn a_redirecting_key_endpoint_is_not_followed() {
    let echo = Echo::start().await;
    // The redirect target serves good keys: following it would make the issuer usable.
    let target = KeyServer::start(Jwks::Serve(good_jwks())).await;
    let redirect = Jwks::Redirect(target.jwks_uri());
    let keys = KeyServer::start(redirect.clone()).await;
    let gateway = idp_gateway(&keys.jwks_uri(), &echo).await;
    bad_then_good_then_bad(redirect, &keys, &gateway).await;
    assert_eq!(
        target.server.requests(),
        0,
        "the redirect target was never asked"
    );
}

#[tokio::test]
async fn an_oversized_key_set_is_refused() {
    let echo = Echo::start().await;
    let keys = KeyServer::start(Jwks::Oversized).await;
    let gateway = idp_gateway(&keys.jwks_uri(), &echo).await;
    bad_then_good_then_bad(Jwks::Oversized, &keys, &gateway).await;
}

#[tokio::test]
async fn an_invalid_json_key_set_is_refused() {
    let echo = Echo::start().await;
    let keys = KeyServer::start(Jwks::Invalid).await;
    let gateway = idp_gateway(&keys.jwks_uri(), &echo).await;
    bad_then_good_then_bad(Jwks::Invalid, &keys, &gateway).await;
}

#[tokio::test]
async fn an_rsa_1024_key_is_never_usable() {
    let echo = Echo::start().await;
    let keys = KeyServer::start(Jwks::Serve(json!({ "keys": [weak_jwk()] }))).await;
    let gateway = idp_gateway(&keys.jwks_uri(), &echo).await;
    assert!(keys.server.wait_requests(2).await, "fetched");
    // A set holding only a weak key counts as no key set.
    assert_eq!(secure_status(&gateway, "weak").await, 503);
    assert_eq!(secure_status(&gateway, "k1").await, 503);

    // Next to an RSA-2048 key, the 2048 key works and the weak one stays unusable.
    keys.set(Jwks::Serve(
        json!({ "keys": [weak_jwk(), keys::rsa().jwk_with_kid("k1")] }),
    ));
    let loaded = eventually(EVENTUALLY, || async {
        secure_status(&gateway, "k1").await == 200
    })
    .await;
    assert!(loaded, "the RSA-2048 key of the same set works");
    assert_eq!(secure_status(&gateway, "weak").await, 401);
    assert_still_serving(&gateway).await;
}

// ---------------------------------------------------------------------------------------------
// Misbehaving upstream

/// The upstream's behaviour, by a word in the request path.
async fn respond_upstream(line: String, mut stream: TcpStream) {
    const HEAD_100: &[u8] =
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\nhello";
    if line.contains("reset-head") {
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Ty").await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let _ = stream.set_zero_linger();
        return;
    }
    if line.contains("close-head") {
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Ty").await;
        let _ = stream.shutdown().await;
        return;
    }
    if line.contains("bad-status") {
        let _ = stream
            .write_all(b"HTTP/1.1 abc\r\nContent-Length: 0\r\n\r\n")
            .await;
    } else if line.contains("never") {
        return hold(stream).await;
    } else if line.contains("big-head") {
        let head = format!(
            "HTTP/1.1 200 OK\r\nX-Big: {}\r\nContent-Length: 2\r\n\r\nok",
            "a".repeat(20 * 1024)
        );
        let _ = stream.write_all(head.as_bytes()).await;
    } else if line.contains("stall-body") {
        let _ = stream.write_all(HEAD_100).await;
        return hold(stream).await;
    } else if line.contains("reset-body") {
        let _ = stream.write_all(HEAD_100).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let _ = stream.set_zero_linger();
        return;
    } else {
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            .await;
    }
    let _ = stream.shutdown().await;
}

/// Upstream `bad` (the raw server, `timeout = 300ms`, 8 KiB response heads) under `/bad`, and
/// the echo under `/public`; `idle_timeout = 1s`.
async fn upstream_gateway(bad: &RawServer, echo: &Echo) -> Gateway {
    let bad_lines = format!(
        "url = \"{}\"\ntimeout = \"300ms\"\nmax_response_header_bytes = 8192",
        bad.url()
    );
    let config = Config::new()
        .server("idle_timeout = \"1s\"")
        .upstream_with("bad", &bad_lines)
        .echo(echo)
        .route_to("bad", "/bad", "bad", "public = true")
        .public("/public")
        .toml();
    Gateway::from_toml(config).start().await
}

async fn upstream_error(path: &str, status: u16, code: &str) {
    let echo = Echo::start().await;
    let bad = RawServer::start(respond_upstream).await;
    let gateway = upstream_gateway(&bad, &echo).await;
    let started = Instant::now();
    let reply = tokio::time::timeout(Duration::from_secs(5), gateway.get(path))
        .await
        .unwrap_or_else(|_| panic!("{path}: an answer within 5 s"));
    reply.assert_error(status, code);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{path}: {:?}",
        started.elapsed()
    );
    assert_eq!(bad.requests(), 1, "{path}: one upstream request");
    assert_still_serving(&gateway).await;
}

#[tokio::test]
async fn an_upstream_reset_mid_headers_is_502() {
    upstream_error("/bad/reset-head", 502, "bad_gateway").await;
}

#[tokio::test]
async fn an_upstream_closing_mid_headers_is_502() {
    upstream_error("/bad/close-head", 502, "bad_gateway").await;
}

#[tokio::test]
async fn an_invalid_upstream_status_line_is_502() {
    upstream_error("/bad/bad-status", 502, "bad_gateway").await;
}

#[tokio::test]
async fn an_upstream_that_never_answers_is_504() {
    upstream_error("/bad/never", 504, "gateway_timeout").await;
}

#[tokio::test]
async fn an_upstream_response_head_over_max_response_header_bytes_is_502() {
    upstream_error("/bad/big-head", 502, "bad_gateway").await;
}

#[tokio::test]
async fn an_upstream_body_that_stalls_is_cut_and_the_gateway_stays_healthy() {
    let echo = Echo::start().await;
    let bad = RawServer::start(respond_upstream).await;
    let gateway = upstream_gateway(&bad, &echo).await;

    let response = open(gateway.http_addr(), get("/bad/stall-body")).await;
    assert_eq!(response.status(), 200, "the head is forwarded");
    let mut body = response.into_body();
    let first = tokio::time::timeout(TIMEOUT, body.frame())
        .await
        .expect("first bytes in time");
    let first = first.expect("a frame").expect("first bytes");
    assert_eq!(first.into_data().ok().as_deref(), Some(&b"hello"[..]));
    // The rest never comes: the client must not wait forever. With idle_timeout = 1s the
    // connection is cut well within 5 s.
    let started = Instant::now();
    let rest = tokio::time::timeout(Duration::from_secs(5), body.collect()).await;
    match rest {
        Ok(Err(_)) => {}
        Ok(Ok(rest)) => panic!("stalled body completed with {:?}", rest.to_bytes()),
        Err(_) => panic!(
            "stalled upstream body still holds the client after {:?} (idle_timeout 1s)",
            started.elapsed()
        ),
    }
    assert_still_serving(&gateway).await;
}

#[tokio::test]
async fn an_upstream_reset_mid_body_cuts_the_client_body() {
    let echo = Echo::start().await;
    let bad = RawServer::start(respond_upstream).await;
    let gateway = upstream_gateway(&bad, &echo).await;

    let response = open(gateway.http_addr(), get("/bad/reset-body")).await;
    assert_eq!(response.status(), 200);
    let body = tokio::time::timeout(TIMEOUT, response.into_body().collect())
        .await
        .expect("the cut arrives in time");
    assert!(
        body.is_err(),
        "a truncated body must not look complete: {:?}",
        body.map(|b| b.to_bytes())
    );
    assert_still_serving(&gateway).await;
}

#[tokio::test]
async fn after_every_upstream_failure_the_gateway_still_serves() {
    let echo = Echo::start().await;
    let bad = RawServer::start(respond_upstream).await;
    let gateway = upstream_gateway(&bad, &echo).await;
    for path in [
        "/bad/reset-head",
        "/bad/close-head",
        "/bad/bad-status",
        "/bad/never",
        "/bad/big-head",
    ] {
        let reply = tokio::time::timeout(Duration::from_secs(5), gateway.get(path))
            .await
            .unwrap_or_else(|_| panic!("{path}: an answer within 5 s"));
        assert!(
            matches!(reply.status.as_u16(), 502 | 504),
            "{path}: {}",
            reply.status
        );
    }
    for path in ["/bad/stall-body", "/bad/reset-body"] {
        let response = open(gateway.http_addr(), get(path)).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), response.into_body().collect()).await;
    }
    assert_eq!(gateway.admin_get("/healthz").await.status, 200);
    assert_eq!(
        gateway.get("/bad/ok").await.status,
        200,
        "the bad upstream when it behaves"
    );
    let reply = gateway.get("/public/normal").await;
    assert_eq!(reply.echoed().path, "/public/normal");
}
