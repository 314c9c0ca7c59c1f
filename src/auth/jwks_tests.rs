//! Key store tests against a real HTTP identity provider stub on 127.0.0.1:0.
//!
//! Durations are short real times (tokio's `test-util` is not enabled), every wait is bounded
//! by `eventually`/`timeout`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Mutex as StdMutex;

use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::{header, HeaderMap, HeaderName, HeaderValue, Request, Response};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::*;

const JWKS: &str = "/jwks";
const DISCOVERY: &str = "/.well-known/openid-configuration";

/// What the stub answers on one path.
#[derive(Clone)]
struct Reply {
    status: StatusCode,
    body: Bytes,
    headers: Vec<(HeaderName, HeaderValue)>,
    /// Before the response headers.
    delay: Duration,
    /// Send the body one byte per this interval.
    drip: Option<Duration>,
}

impl Reply {
    fn json(body: impl Into<Bytes>) -> Reply {
        Reply {
            status: StatusCode::OK,
            body: body.into(),
            headers: vec![(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            delay: Duration::ZERO,
            drip: None,
        }
    }

    fn status(status: StatusCode) -> Reply {
        Reply {
            status,
            ..Reply::json("{}")
        }
    }
}

#[derive(Default)]
struct IdpState {
    replies: StdMutex<HashMap<String, Reply>>,
    hits: StdMutex<HashMap<String, usize>>,
    total: AtomicUsize,
}

/// A tiny identity provider: answers configured replies per path, counts requests, stops on
/// drop.
struct Idp {
    addr: SocketAddr,
    state: Arc<IdpState>,
    task: JoinHandle<()>,
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Idp {
    async fn start() -> Idp {
        Idp::serve(None).await
    }

    /// With TLS: the certificate is for 127.0.0.1, issued by the CA whose PEM is returned.
    async fn start_tls() -> (Idp, String) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &ca)
            .unwrap();
        let private = rustls_pki_types::PrivatePkcs8KeyDer::from(leaf_key.serialize_der());
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![leaf.der().clone()], private.into())
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        (Idp::serve(Some(acceptor)).await, ca.pem())
    }

    async fn serve(tls: Option<tokio_rustls::TlsAcceptor>) -> Idp {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(IdpState::default());
        let shared = Arc::clone(&state);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = Arc::clone(&shared);
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let state = Arc::clone(&state);
                        async move { Ok::<_, Infallible>(answer(&state, request).await) }
                    });
                    let http = http1::Builder::new();
                    let _ = match tls {
                        None => http.serve_connection(TokioIo::new(stream), service).await,
                        Some(acceptor) => {
                            let Ok(stream) = acceptor.accept(stream).await else {
                                return;
                            };
                            http.serve_connection(TokioIo::new(stream), service).await
                        }
                    };
                });
            }
        });
        Idp { addr, state, task }
    }

    fn set(&self, path: &str, reply: Reply) {
        self.state
            .replies
            .lock()
            .unwrap()
            .insert(path.to_owned(), reply);
    }

    fn hits(&self, path: &str) -> usize {
        self.state
            .hits
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    fn total(&self) -> usize {
        self.state.total.load(Ordering::SeqCst)
    }

    fn url(&self, path: &str) -> Uri {
        format!("http://{}{path}", self.addr).parse().unwrap()
    }

    fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }
}

type Body = UnsyncBoxBody<Bytes, Infallible>;

async fn answer(state: &IdpState, request: Request<hyper::body::Incoming>) -> Response<Body> {
    let path = request.uri().path().to_owned();
    state.total.fetch_add(1, Ordering::SeqCst);
    *state.hits.lock().unwrap().entry(path.clone()).or_default() += 1;
    let reply = state.replies.lock().unwrap().get(&path).cloned();
    let Some(reply) = reply else {
        let mut response = Response::new(Full::new(Bytes::new()).boxed_unsync());
        *response.status_mut() = StatusCode::NOT_FOUND;
        return response;
    };
    tokio::time::sleep(reply.delay).await;
    let body = match reply.drip {
        None => Full::new(reply.body.clone()).boxed_unsync(),
        Some(every) => {
            let stream = futures_util::stream::unfold(reply.body.clone(), move |rest| async move {
                if rest.is_empty() {
                    return None;
                }
                tokio::time::sleep(every).await;
                let frame = Frame::data(rest.slice(..1));
                Some((Ok::<_, Infallible>(frame), rest.slice(1..)))
            });
            StreamBody::new(stream).boxed_unsync()
        }
    };
    let mut response = Response::new(body);
    *response.status_mut() = reply.status;
    for (name, value) in reply.headers {
        response.headers_mut().append(name, value);
    }
    response
}

/// One EC P-256 public key as a JWK (fresh key per call; generation is cheap).
fn ec_jwk(kid: &str) -> serde_json::Value {
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    // Uncompressed SEC1 point: 0x04 || x (32 bytes) || y (32 bytes).
    let point = pair.public_key().as_ref();
    assert_eq!(point.len(), 65);
    json!({
        "kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
    })
}

fn jwks(kids: &[&str]) -> String {
    json!({ "keys": kids.iter().map(|kid| ec_jwk(kid)).collect::<Vec<_>>() }).to_string()
}

fn policy(refresh: u64, min_refresh: u64, max_stale: u64, fetch_timeout: u64) -> RefreshPolicy {
    RefreshPolicy {
        refresh_interval: Duration::from_millis(refresh),
        min_refresh: Duration::from_millis(min_refresh),
        max_stale: Duration::from_millis(max_stale),
        fetch_timeout: Duration::from_millis(fetch_timeout),
    }
}

/// Long refresh, long staleness: for tests that drive fetches by hand.
fn manual() -> RefreshPolicy {
    policy(600_000, 600_000, 600_000, 2_000)
}

fn jwks_store(idp: &Idp, policy: RefreshPolicy) -> Arc<KeyStore> {
    KeyStore::new(
        KeySource::JwksUri {
            url: idp.url(JWKS),
            ca_file: None,
        },
        policy,
    )
}

async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let wait = async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(5), wait)
        .await
        .is_err()
    {
        panic!("timed out waiting for: {what}");
    }
}

#[tokio::test]
async fn start_fetches_and_serves_keys() {
    let idp = Idp::start().await;
    idp.set(JWKS, Reply::json(jwks(&["k1", "k2"])));
    let store = jwks_store(&idp, manual());
    assert!(store.keys().is_none(), "no keys before the first fetch");
    assert!(!store.has_keys());
    store.start();
    eventually("first fetch", || store.has_keys()).await;
    let stats = store.stats();
    assert_eq!(stats.keys, 2);
    assert_eq!(stats.refresh_success, 1);
    assert!(!stats.stale);
    assert!(stats.last_success.is_some());
}

#[tokio::test]
async fn start_is_idempotent() {
    let idp = Idp::start().await;
    idp.set(JWKS, Reply::json(jwks(&["k1"])));
    let store = jwks_store(&idp, manual());
    store.start();
    store.start();
    eventually("first fetch", || store.has_keys()).await;
    store.start();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(idp.hits(JWKS), 1, "one task, one fetch");
}

#[tokio::test]
async fn retries_with_backoff_until_first_good_fetch() {
    let idp = Idp::start().await;
    idp.set(JWKS, Reply::status(StatusCode::SERVICE_UNAVAILABLE));
    let store = jwks_store(&idp, policy(600_000, 50, 600_000, 1_000));
    store.start();
    eventually("two failed attempts", || idp.hits(JWKS) >= 2).await;
    assert!(store.keys().is_none());
    assert!(!store.stats().stale, "nothing served, so nothing stale");
    idp.set(JWKS, Reply::json(jwks(&["k1"])));
    eventually("recovery", || store.has_keys()).await;
}

#[tokio::test]
async fn failed_refresh_keeps_last_set_and_marks_stale() {
    let idp = Idp::start().await;
    idp.set(JWKS, Reply::json(jwks(&["k1"])));
    let store = jwks_store(&idp, policy(50, 50, 600_000, 1_000));
    store.start();
    eventually("first fetch", || store.has_keys()).await;
    idp.set(JWKS, Reply::status(StatusCode::INTERNAL_SERVER_ERROR));
    eventually("a failed refresh", || store.stats().refresh_error >= 1).await;
    let stats = store.stats();
    assert!(stats.stale);
    assert_eq!(stats.keys, 1);
    assert!(store.keys().is_some(), "stale-if-error");
    idp.set(JWKS, Reply::json(jwks(&["k1"])));
    eventually("stale cleared by a good refresh", || !store.stats().stale).await;
}

#[tokio::test]
async fn keys_expire_after_max_stale() {
    let idp = Idp::start().await;
    idp.set(JWKS, Reply::json(jwks(&["k1"])));
    let store = jwks_store(&idp, policy(50, 50, 150, 1_000));
    store.start();
    eventually("first fetch", || store.has_keys()).await;
    idp.set(JWKS, Reply::status(StatusCode::INTERNAL_SERVER_ERROR));
    eventually("keys withdrawn past max_stale", || store.keys().is_none()).await;
    let stats = store.stats();
    assert_eq!(stats.keys, 0);
    assert!(stats.stale);
}

#[tokio::test]
async fn oversized_body_is_refused_and_old_set_kept() {
    let idp = Idp::start().await;
    let store = jwks_store(&idp, manual());
    idp.set(JWKS, Reply::json(vec![b' '; MAX_DOCUMENT_BYTES + 1]));
    assert!(matches!(
        store.load().await,
        Err(FetchError::TooLarge { .. })
    ));

    idp.set(JWKS, Reply::json(jwks(&["k1"])));
    store.load_once().await.unwrap();
    idp.set(JWKS, Reply::json(vec![b' '; MAX_DOCUMENT_BYTES + 1]));
    let error = store.load_once().await.unwrap_err();
    assert!(error.contains("larger than 1 MiB"), "{error}");
    assert_eq!(store.keys().map(|keys| keys.len()), Some(1));
    assert!(store.stats().stale);
}

#[tokio::test]
async fn invalid_json_is_refused_and_old_set_kept() {
    let idp = Idp::start().await;
    let store = jwks_store(&idp, manual());
    idp.set(JWKS, Reply::json(jwks(&["k1"])));
    store.load_once().await.unwrap();
    idp.set(JWKS, Reply::json("{\"keys\": [ not json"));
    assert!(matches!(store.load().await, Err(FetchError::KeySet { .. })));
    let error = store.load_once().await.unwrap_err();
    assert!(
        error.starts_with("jwks_uri http://127.0.0.1:"),
        "names the source: {error}"
    );
    assert_eq!(store.keys().map(|keys| keys.len()), Some(1));
}

#[tokio::test]
async fn set_without_usable_keys_is_refused() {
    let idp = Idp::start().await;
    let store = jwks_store(&idp, manual());
    idp.set(JWKS, Reply::json(r#"{"keys": []}"#));
    assert!(store.load_once().await.is_err());
    assert!(store.keys().is_none());
    idp.set(JWKS, Reply::json(jwks(&["k1"])));
    store.load_once().await.unwrap();
    let unsupported = json!({"keys": [{"kty": "XYZ", "kid": "odd"}]}).to_string();
    idp.set(JWKS, Reply::json(unsupported));
    assert!(store.load_once().await.is_err());
    assert!(store.keys().is_some(), "old set kept");
}

#[tokio::test]
async fn slow_drip_body_is_bounded_by_fetch_timeout() {
    let idp = Idp::start().await;
    let mut reply = Reply::json(jwks(&["k1"]));
    reply.drip = Some(Duration::from_millis(20));
    idp.set(JWKS, reply);
    let store = jwks_store(&idp, policy(600_000, 600_000, 600_000, 200));
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(5), store.load())
        .await
        .unwrap();
    assert!(
        matches!(result, Err(FetchError::Timeout { .. })),
        "{result:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn slow_headers_are_bounded_by_fetch_timeout() {
    let idp = Idp::start().await;
    let mut reply = Reply::json(jwks(&["k1"]));
    reply.delay = Duration::from_secs(3);
    idp.set(JWKS, reply);
    let store = jwks_store(&idp, policy(600_000, 600_000, 600_000, 100));
    let result = tokio::time::timeout(Duration::from_secs(2), store.load())
        .await
        .unwrap();
    assert!(
        matches!(result, Err(FetchError::Timeout { .. })),
        "{result:?}"
    );
}

#[tokio::test]
async fn redirect_is_not_followed() {
    let idp = Idp::start().await;
    idp.set("/keys", Reply::json(jwks(&["k1"])));
    let mut redirect = Reply::status(StatusCode::FOUND);
    redirect.headers.push((
        header::LOCATION,
        HeaderValue::from_str(&idp.url("/keys").to_string()).unwrap(),
    ));
    idp.set(JWKS, redirect);
    let store = jwks_store(&idp, manual());
    let result = store.load().await;
    assert!(
        matches!(result, Err(FetchError::Status(_, StatusCode::FOUND))),
        "{result:?}"
    );
    assert!(store.load_once().await.is_err());
    assert_eq!(store.stats().refresh_error, 1);
    assert_eq!(idp.hits("/keys"), 0);
}

#[tokio::test]
async fn unknown_kid_refreshes_are_coalesced_and_rate_limited() {
    let idp = Idp::start().await;
    idp.set(JWKS, Reply::json(jwks(&["k1"])));
    let store = jwks_store(&idp, policy(600_000, 600_000, 600_000, 2_000));
    store.load_once().await.unwrap();
    assert_eq!(idp.hits(JWKS), 1);

    // The rotated set, served slowly so all callers pile up behind one fetch.
    let mut rotated = Reply::json(jwks(&["k1", "k2"]));
    rotated.delay = Duration::from_millis(100);
    idp.set(JWKS, rotated);
    let callers: Vec<_> = (0..20)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.refresh_for_unknown_kid().await })
        })
        .collect();
    for caller in callers {
        let keys = tokio::time::timeout(Duration::from_secs(5), caller)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            keys.map(|keys| keys.len()),
            Some(2),
            "every caller sees the new set"
        );
    }
    assert_eq!(idp.hits(JWKS), 2, "twenty callers, one fetch");
    assert_eq!(store.stats().unknown_kid_refreshes, 1);

    // Inside min_refresh: the rest of the burst fetches, then the current set, no fetch.
    for _ in 1..UNKNOWN_KID_BURST {
        assert!(store.refresh_for_unknown_kid().await.is_some());
    }
    let burst = u64::from(UNKNOWN_KID_BURST);
    assert_eq!(idp.hits(JWKS), 1 + UNKNOWN_KID_BURST as usize);
    assert_eq!(store.stats().unknown_kid_refreshes, burst);
    for _ in 0..5 {
        assert!(store.refresh_for_unknown_kid().await.is_some());
    }
    assert_eq!(idp.hits(JWKS), 1 + UNKNOWN_KID_BURST as usize);
    assert_eq!(store.stats().unknown_kid_refreshes, burst);
}

#[test]
fn unknown_kid_budget_is_a_burst_that_refills_one_per_min_refresh() {
    let every = Duration::from_secs(30);
    let start = Instant::now();
    let mut budget = RefreshBudget::full(every);
    for _ in 0..UNKNOWN_KID_BURST {
        assert!(budget.take(start));
    }
    assert!(!budget.take(start), "burst spent");
    assert!(!budget.take(start + every - Duration::from_millis(1)));
    assert!(budget.take(start + every), "one back after min_refresh");
    assert!(!budget.take(start + every));
    // A long quiet time refills the burst, never more.
    let later = start + every * 100;
    for _ in 0..UNKNOWN_KID_BURST {
        assert!(budget.take(later));
    }
    assert!(!budget.take(later));
}

#[tokio::test]
async fn unknown_kid_refresh_allowed_again_after_min_refresh() {
    let idp = Idp::start().await;
    idp.set(JWKS, Reply::json(jwks(&["k1"])));
    let store = jwks_store(&idp, policy(600_000, 50, 600_000, 2_000));
    store.refresh_for_unknown_kid().await;
    tokio::time::sleep(Duration::from_millis(80)).await;
    store.refresh_for_unknown_kid().await;
    assert_eq!(idp.hits(JWKS), 2);
    assert_eq!(store.stats().unknown_kid_refreshes, 2);
}

#[test]
fn refresh_delay_clamps_max_age() {
    let policy = policy(600_000, 30_000, 86_400_000, 5_000);
    let secs = Duration::from_secs;
    let cases = [
        (None, secs(600)),
        (Some(secs(0)), secs(30)),
        (Some(secs(29)), secs(30)),
        (Some(secs(30)), secs(30)),
        (Some(secs(3_600)), secs(3_600)),
        (Some(secs(86_400)), secs(86_400)),
        (Some(secs(86_401)), secs(86_400)),
        (Some(secs(u64::MAX)), secs(86_400)),
    ];
    for (max_age, expected) in cases {
        assert_eq!(
            refresh_delay(max_age, &policy),
            expected,
            "max-age {max_age:?}"
        );
    }
    // min_refresh above the ceiling must not panic; min_refresh wins.
    let odd = RefreshPolicy {
        min_refresh: secs(100_000),
        ..policy
    };
    assert_eq!(refresh_delay(Some(secs(5)), &odd), secs(100_000));
}

#[test]
fn cache_control_max_age_is_parsed() {
    let cases: &[(&[&str], Option<u64>)] = &[
        (&[], None),
        (&["max-age=300"], Some(300)),
        (&["public, Max-Age=60, must-revalidate"], Some(60)),
        (&["no-cache"], None),
        (&["max-age=abc"], None),
        (&["max-age=-5"], None),
        (&["max-age=\"120\""], Some(120)),
        (&["public", "max-age=7"], Some(7)),
    ];
    for (values, expected) in cases {
        let mut headers = HeaderMap::new();
        for value in *values {
            headers.append(header::CACHE_CONTROL, HeaderValue::from_static(value));
        }
        assert_eq!(
            cache_max_age(&headers),
            expected.map(Duration::from_secs),
            "{values:?}"
        );
    }
}

#[test]
fn key_urls_must_be_https_or_loopback() {
    let cases = [
        ("https://idp.example.com/jwks", true),
        ("https://10.0.0.1/jwks", true),
        ("http://127.0.0.1:8080/jwks", true),
        ("http://127.9.8.7/jwks", true),
        ("http://[::1]:8080/jwks", true),
        ("http://localhost/jwks", true),
        ("http://LOCALHOST:1/jwks", true),
        ("http://idp.example.com/jwks", false),
        ("http://10.0.0.1/jwks", false),
        ("http://127.0.0.1.example.com/jwks", false),
        ("http://localhost.example.com/jwks", false),
        ("http://[::2]/jwks", false),
        ("ftp://127.0.0.1/jwks", false),
        ("/relative/jwks", false),
    ];
    for (url, allowed) in cases {
        let uri: Uri = url.parse().unwrap();
        assert_eq!(check_key_url(&uri).is_ok(), allowed, "{url}");
    }
}

#[tokio::test]
async fn plain_http_to_a_remote_host_is_refused_without_a_request() {
    let url: Uri = "http://192.0.2.1/jwks".parse().unwrap();
    let store = KeyStore::new(KeySource::JwksUri { url, ca_file: None }, manual());
    let result = tokio::time::timeout(Duration::from_secs(2), store.load())
        .await
        .unwrap();
    assert!(
        matches!(result, Err(FetchError::InsecureUrl { .. })),
        "{result:?}"
    );
}

fn discovery_store(issuer: &str) -> Arc<KeyStore> {
    KeyStore::new(
        KeySource::Discovery {
            issuer: issuer.to_owned(),
            ca_file: None,
        },
        manual(),
    )
}

#[tokio::test]
async fn discovery_with_matching_issuer_loads_its_jwks_uri() {
    let idp = Idp::start().await;
    // A trailing slash on the issuer is dropped when building the discovery URL only.
    let issuer = format!("{}/", idp.origin());
    let document = json!({ "issuer": issuer, "jwks_uri": idp.url("/other/jwks").to_string() });
    idp.set(DISCOVERY, Reply::json(document.to_string()));
    idp.set("/other/jwks", Reply::json(jwks(&["k1"])));
    let store = discovery_store(&issuer);
    store.load_once().await.unwrap();
    assert_eq!(store.keys().map(|keys| keys.len()), Some(1));
    assert_eq!((idp.hits(DISCOVERY), idp.hits("/other/jwks")), (1, 1));
}

#[tokio::test]
async fn discovery_with_mismatching_issuer_is_refused() {
    let idp = Idp::start().await;
    let document =
        json!({ "issuer": "https://evil.example", "jwks_uri": idp.url(JWKS).to_string() });
    idp.set(DISCOVERY, Reply::json(document.to_string()));
    idp.set(JWKS, Reply::json(jwks(&["k1"])));
    let store = discovery_store(&idp.origin());
    let result = store.load().await;
    assert!(
        matches!(result, Err(FetchError::IssuerMismatch { .. })),
        "{result:?}"
    );
    assert_eq!(
        idp.hits(JWKS),
        0,
        "keys of another issuer are never fetched"
    );
}

#[tokio::test]
async fn discovery_with_insecure_jwks_uri_is_refused() {
    let idp = Idp::start().await;
    let document = json!({ "issuer": idp.origin(), "jwks_uri": "http://idp.example.com/jwks" });
    idp.set(DISCOVERY, Reply::json(document.to_string()));
    let store = discovery_store(&idp.origin());
    let result = store.load().await;
    assert!(
        matches!(result, Err(FetchError::InsecureUrl { .. })),
        "{result:?}"
    );
    assert_eq!(idp.total(), 1);
}

/// A file under the temp dir, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, contents: &str) -> TempFile {
        let path = std::env::temp_dir().join(format!(
            "authgate-jwks-{}-{name}-{:?}",
            std::process::id(),
            Instant::now()
        ));
        std::fs::write(&path, contents).unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[tokio::test]
async fn jwks_file_is_loaded_at_start_and_never_stale() {
    let file = TempFile::new("good", &jwks(&["k1", "k2"]));
    let store = KeyStore::new(KeySource::File(file.0.clone()), policy(1, 1, 1, 1_000));
    store.start();
    assert_eq!(store.keys().map(|keys| keys.len()), Some(2));
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(store.keys().is_some(), "max_stale does not apply to files");
    assert!(store.refresh_for_unknown_kid().await.is_some());
    assert_eq!(store.stats().unknown_kid_refreshes, 0);

    // A broken rewrite on reload keeps the old set.
    std::fs::write(&file.0, "not json").unwrap();
    store.start();
    assert_eq!(store.keys().map(|keys| keys.len()), Some(2));
    assert_eq!(store.stats().refresh_error, 1);
}

#[tokio::test]
async fn missing_jwks_file_is_an_error_naming_the_file() {
    let path = std::env::temp_dir().join("authgate-jwks-does-not-exist.json");
    let store = KeyStore::new(KeySource::File(path), manual());
    store.start();
    assert!(store.keys().is_none());
    let error = store.load_once().await.unwrap_err();
    assert!(
        error.contains("authgate-jwks-does-not-exist.json"),
        "{error}"
    );
}

#[tokio::test]
async fn hmac_secret_is_one_key_and_never_printed() {
    let secret = Secret::new(b"a-very-secret-hmac-key-of-32-bytes!!".to_vec());
    let store = KeyStore::new(KeySource::Hmac(secret), policy(1, 1, 1, 1_000));
    store.start();
    let first = store.stats().last_success.expect("loaded");
    std::thread::sleep(Duration::from_millis(5));
    // Every start (a reload reuses the store) installs it again: its age restarts.
    store.start();
    assert_eq!(store.keys().map(|keys| keys.len()), Some(1));
    assert_eq!(store.stats().refresh_success, 2);
    assert!(store.stats().last_success.expect("loaded") > first);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(store.has_keys());
    assert!(!format!("{store:?} {}", store.source()).contains("very-secret"));
}

#[tokio::test]
async fn https_with_ca_file_is_trusted_and_without_it_is_not() {
    let (idp, ca_pem) = Idp::start_tls().await;
    idp.set(JWKS, Reply::json(jwks(&["k1"])));
    let url: Uri = format!("https://{}{JWKS}", idp.addr).parse().unwrap();

    let ca = TempFile::new("ca", &ca_pem);
    let source = KeySource::JwksUri {
        url: url.clone(),
        ca_file: Some(ca.0.clone()),
    };
    let store = KeyStore::new(source, manual());
    store.load_once().await.unwrap();
    assert_eq!(store.keys().map(|keys| keys.len()), Some(1));

    // System roots do not know the test CA: the handshake fails, nothing is served.
    let store = KeyStore::new(
        KeySource::JwksUri {
            url: url.clone(),
            ca_file: None,
        },
        manual(),
    );
    let result = store.load().await;
    assert!(
        matches!(result, Err(FetchError::Request { .. })),
        "{result:?}"
    );
    assert_eq!(idp.hits(JWKS), 1);

    // A ca_file without certificates is a configuration error, not an empty trust store.
    let empty = TempFile::new("empty-ca", "not a certificate");
    let store = KeyStore::new(
        KeySource::JwksUri {
            url,
            ca_file: Some(empty.0.clone()),
        },
        manual(),
    );
    let result = store.load().await;
    assert!(
        matches!(
            result,
            Err(FetchError::CaFile(crate::tls::PemError::Missing { .. }))
        ),
        "{result:?}"
    );
}

#[tokio::test]
async fn dropping_the_store_stops_its_task() {
    let idp = Idp::start().await;
    idp.set(JWKS, Reply::json(jwks(&["k1"])));
    let store = jwks_store(&idp, policy(30, 30, 600_000, 1_000));
    store.start();
    eventually("a few refreshes", || idp.hits(JWKS) >= 2).await;
    drop(store);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let after_drop = idp.hits(JWKS);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(idp.hits(JWKS), after_drop);
}
