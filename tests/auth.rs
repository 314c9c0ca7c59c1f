//! End-to-end authentication (SPEC §2, §3 steps 6-7, §4 identity headers, §5, §6): a real
//! gateway on 127.0.0.1:0 in front of an echo upstream, with a test identity provider serving
//! JWKS over loopback http. Every assertion is about what the client, the upstream or the
//! operator (admin endpoints) observe.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{json, Value};
use tokio::net::TcpStream;

use support::echo::Echo;
use support::idp::{keys, sign_raw, Idp};

/// Bound on every single wait in this file.
const WAIT: Duration = Duration::from_secs(5);

// ----------------------------------------------------------------------------------------
// Harness: the support gateway and echo, a client that keeps duplicate headers, metrics.
// ----------------------------------------------------------------------------------------

/// A response as the client saw it.
#[derive(Debug)]
struct Resp {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Resp {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not json ({e}): {}", self.text()))
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }

    /// The JSON error code of a gateway response.
    fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or_default().to_owned()
    }

    /// Every value of `name` the upstream received (echo responses only).
    fn upstream_headers(&self, name: &str) -> Vec<String> {
        let echoed = self.json();
        echoed["headers"]
            .as_array()
            .expect("echo headers")
            .iter()
            .filter(|pair| pair[0].as_str().unwrap().eq_ignore_ascii_case(name))
            .map(|pair| pair[1].as_str().unwrap().to_owned())
            .collect()
    }

    /// The one value of `name` the upstream received; panics on several.
    fn upstream_header(&self, name: &str) -> Option<String> {
        let mut values = self.upstream_headers(name);
        assert!(
            values.len() <= 1,
            "{name} received {} times: {values:?}",
            values.len()
        );
        values.pop()
    }
}

/// Sends one request on a fresh connection. `headers` are appended in order (duplicates kept).
async fn send(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
    let exchange = async {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(connection);
        let mut request = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).expect("method"))
            .uri(path)
            .header("host", addr.to_string())
            .body(Full::new(Bytes::new()))
            .expect("request");
        for (name, value) in headers {
            request.headers_mut().append(
                HeaderName::from_bytes(name.as_bytes()).expect("header name"),
                HeaderValue::from_str(value).expect("header value"),
            );
        }
        let response = sender.send_request(request).await.expect("send");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        Resp {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    };
    tokio::time::timeout(WAIT, exchange)
        .await
        .unwrap_or_else(|_| panic!("{method} {path} timed out"))
}

async fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> Resp {
    match token {
        Some(token) => {
            let value = format!("Bearer {token}");
            send(addr, "GET", path, &[("authorization", &value)]).await
        }
        None => send(addr, "GET", path, &[]).await,
    }
}

/// The support gateway plus its echo upstream and the addresses this file uses.
struct Gateway {
    inner: support::gateway::Gateway,
    http: SocketAddr,
    admin: SocketAddr,
    _echo: Echo,
}

impl Gateway {
    /// Starts the gateway with `[server]`, `[admin]` and the echo upstream `echo` prepended to
    /// `body` (issuers and routes), and waits until /readyz says 200.
    async fn start(body: &str) -> Gateway {
        let gateway = Gateway::start_unready(body).await;
        gateway.wait_ready().await;
        gateway
    }

    /// As `start`, but only waits for /healthz (for gateways that cannot become ready).
    async fn start_unready(body: &str) -> Gateway {
        let echo = Echo::start().await;
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n\n[admin]\nlisten = \"127.0.0.1:0\"\n\n\
             [[upstreams]]\nname = \"echo\"\nurl = \"http://{}\"\n\n{body}",
            echo.addr()
        );
        let inner = support::gateway::Gateway::from_toml(text.clone())
            .try_start()
            .await
            .unwrap_or_else(|e| panic!("gateway start failed: {e:?}\n{text}"));
        let http = inner.http_addr();
        let admin = inner.admin_addr();
        let gateway = Gateway {
            inner,
            http,
            admin,
            _echo: echo,
        };
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if gateway.admin_get("/healthz").await.status == StatusCode::OK {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "never healthy");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        gateway
    }

    async fn wait_ready(&self) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let ready = self.admin_get("/readyz").await;
            if ready.status == StatusCode::OK {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "gateway never ready: {}",
                ready.text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn admin_get(&self, path: &str) -> Resp {
        send(self.admin, "GET", path, &[]).await
    }

    async fn get(&self, path: &str, token: Option<&str>) -> Resp {
        get(self.http, path, token).await
    }

    async fn metrics(&self) -> Metrics {
        let text = self.admin_get("/metrics").await.text();
        Metrics::parse(&text)
    }

    async fn shutdown(self) {
        self.inner.shutdown().await;
    }
}

/// Parsed Prometheus text: (family or series name, labels) -> value.
struct Metrics {
    series: Vec<(String, BTreeMap<String, String>, f64)>,
    text: String,
}

impl Metrics {
    fn parse(text: &str) -> Metrics {
        let mut series = Vec::new();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (head, value) = line.rsplit_once(' ').expect("metric line");
            let value: f64 = value.parse().unwrap_or(f64::NAN);
            let (name, labels) = match head.split_once('{') {
                Some((name, rest)) => {
                    let inner = rest.trim_end_matches('}');
                    let mut labels = BTreeMap::new();
                    for pair in inner.split("\",").filter(|p| !p.is_empty()) {
                        let (k, v) = pair.split_once('=').expect("label");
                        labels.insert(k.trim().to_owned(), v.trim_matches('"').to_owned());
                    }
                    (name.to_owned(), labels)
                }
                None => (head.to_owned(), BTreeMap::new()),
            };
            series.push((name, labels, value));
        }
        Metrics {
            series,
            text: text.to_owned(),
        }
    }

    /// The value of the series `name` whose labels include every pair of `labels`.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.series
            .iter()
            .find(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, _, value)| *value)
    }

    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("no {name} {labels:?} in\n{}", self.text))
    }
}

/// Waits (bounded) until `check` holds on the gateway's metrics.
async fn wait_metrics(gateway: &Gateway, what: &str, check: impl Fn(&Metrics) -> bool) -> Metrics {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let metrics = gateway.metrics().await;
        if check(&metrics) {
            return metrics;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}:\n{}",
            metrics.text
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn assert_invalid_token(resp: &Resp, context: &str) {
    assert_eq!(
        resp.status,
        StatusCode::UNAUTHORIZED,
        "{context}: {}",
        resp.text()
    );
    assert_eq!(resp.error(), "invalid_token", "{context}");
    let challenge = resp.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.starts_with("Bearer realm=\"authgate\"")
            && challenge.contains("error=\"invalid_token\""),
        "{context}: WWW-Authenticate {challenge:?}"
    );
    assert_eq!(
        resp.header("content-type").as_deref(),
        Some("application/json"),
        "{context}"
    );
    assert!(
        resp.header("x-request-id").is_some(),
        "{context}: no X-Request-Id"
    );
}

fn assert_no_token_echo(resp: &Resp, token: &str) {
    let (_, signature) = token.rsplit_once('.').expect("jws");
    let text = resp.text();
    let challenge = resp.header("www-authenticate").unwrap_or_default();
    for part in token.split('.').chain([token, signature]) {
        if part.len() < 8 {
            continue;
        }
        assert!(!text.contains(part), "body echoes the token: {text}");
        assert!(!challenge.contains(part), "challenge echoes the token");
    }
}

// ----------------------------------------------------------------------------------------
// The main gateway: one IdP, several issuer entries for one `iss`, several routes.
// ----------------------------------------------------------------------------------------

/// A config body with issuer entries for `idp` (all sharing its `iss` and key source):
/// - `main`: audience `api`, RS256 only, claim headers;
/// - `typed`: audience `api-typed`, `token_types = ["at+jwt"]`;
/// - `required`: audience `api-req`, `required_claims`;
/// - `cognito`: `audiences = []`, `allowed_clients = ["client-good"]`;
/// - `other`: another `iss` (`https://other.test/`).
fn main_config(idp: &Idp) -> String {
    let iss = idp.issuer();
    let jwks = idp.jwks_uri();
    format!(
        r#"
[[issuers]]
name = "main"
issuer = "{iss}"
jwks_uri = "{jwks}"
audiences = ["api"]
algorithms = ["RS256"]
claim_headers = {{ "X-Auth-Tenant" = "tid", "X-Auth-Num" = "num", "X-Auth-Flag" = "flag", "X-Auth-Groups" = "groups", "X-Auth-Obj" = "obj", "X-Tenant-Region" = "region" }}

[[issuers]]
name = "typed"
issuer = "{iss}"
jwks_uri = "{jwks}"
audiences = ["api-typed"]
token_types = ["at+jwt"]

[[issuers]]
name = "required"
issuer = "{iss}"
jwks_uri = "{jwks}"
audiences = ["api-req"]
required_claims = {{ token_use = "access", tier = ["gold", "silver"] }}

[[issuers]]
name = "cognito"
issuer = "{iss}"
jwks_uri = "{jwks}"
audiences = []
allowed_clients = ["client-good"]

[[issuers]]
name = "other"
issuer = "https://other.test/"
jwks_uri = "{jwks}"
audiences = ["api"]

[[routes]]
name = "read"
path_prefix = "/read"
upstream = "echo"
issuers = ["main"]
scopes = ["orders:read"]

[[routes]]
name = "any"
path_prefix = "/any"
upstream = "echo"
issuers = ["main"]
scopes = ["orders:read"]
any_scopes = ["a:x", "a:y"]

[[routes]]
name = "open"
path_prefix = "/open"
upstream = "echo"
issuers = ["main"]

[[routes]]
name = "typed"
path_prefix = "/typed"
upstream = "echo"
issuers = ["typed"]

[[routes]]
name = "required"
path_prefix = "/required"
upstream = "echo"
issuers = ["required"]

[[routes]]
name = "cognito"
path_prefix = "/cognito"
upstream = "echo"
issuers = ["cognito"]

[[routes]]
name = "other-only"
path_prefix = "/other-only"
upstream = "echo"
issuers = ["other"]

[[routes]]
name = "everyone"
path_prefix = "/everyone"
upstream = "echo"
"#
    )
}

/// The main IdP serves the RSA key `k1` and an EC key `e1` (for algorithm allowlist tests).
async fn main_setup() -> (Idp, Gateway) {
    let idp = Idp::start_with(&[("k1", keys::rsa()), ("e1", keys::ec_p256())]).await;
    let gateway = Gateway::start(&main_config(&idp)).await;
    (idp, gateway)
}

// ----------------------------------------------------------------------------------------
// 1. Allowed: identity headers
// ----------------------------------------------------------------------------------------

#[tokio::test]
async fn valid_token_reaches_upstream_with_identity_headers() {
    let (idp, gateway) = main_setup().await;
    let token = idp
        .token()
        .sub("svc-1")
        .claim("azp", json!("client-azp"))
        .scope("orders:read extra")
        .scp(&["s1", "orders:read"])
        .claim("tid", json!("t1"))
        .claim("num", json!(42))
        .claim("flag", json!(true))
        .claim("groups", json!(["g1", "g2"]))
        .claim("obj", json!({"k": "v"}))
        .sign();
    let resp = gateway.get("/read/7?x=1", Some(&token)).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    let echoed = resp.json();
    assert_eq!(echoed["path"], "/read/7?x=1");
    assert_eq!(
        resp.upstream_header("x-auth-subject").as_deref(),
        Some("svc-1")
    );
    assert_eq!(resp.upstream_header("x-auth-issuer"), Some(idp.issuer()));
    assert_eq!(
        resp.upstream_header("x-auth-client-id").as_deref(),
        Some("client-azp")
    );
    assert_eq!(
        resp.upstream_header("x-auth-scopes").as_deref(),
        Some("orders:read extra s1")
    );
    assert_eq!(resp.upstream_header("x-auth-tenant").as_deref(), Some("t1"));
    assert_eq!(resp.upstream_header("x-auth-num").as_deref(), Some("42"));
    assert_eq!(resp.upstream_header("x-auth-flag").as_deref(), Some("true"));
    assert_eq!(
        resp.upstream_header("x-auth-groups").as_deref(),
        Some("g1 g2")
    );
    assert_eq!(
        resp.upstream_header("x-auth-obj").as_deref(),
        Some(r#"{"k":"v"}"#)
    );
    // A configured claim the token lacks: no header.
    assert_eq!(resp.upstream_header("x-tenant-region"), None);
    assert_eq!(
        resp.upstream_header("authorization"),
        Some(format!("Bearer {token}"))
    );
    assert!(resp.header("x-request-id").is_some());

    // client_id wins over azp (first of client_id_claims).
    let token = idp
        .token()
        .client_id("client-cid")
        .claim("azp", json!("client-azp"))
        .scope("orders:read")
        .sign();
    let resp = gateway.get("/read", Some(&token)).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    assert_eq!(
        resp.upstream_header("x-auth-client-id").as_deref(),
        Some("client-cid")
    );
    gateway.shutdown().await;
}

#[tokio::test]
async fn claim_that_cannot_be_a_header_value_refuses_the_token() {
    let (idp, gateway) = main_setup().await;
    let token = idp
        .token()
        .scope("orders:read")
        .claim("tid", json!("t1\r\nX-Injected: yes"))
        .sign();
    let resp = gateway.get("/read", Some(&token)).await;
    assert_invalid_token(&resp, "CRLF in a claim header");
    gateway.shutdown().await;
}

// ----------------------------------------------------------------------------------------
// 2. Denials
// ----------------------------------------------------------------------------------------

#[tokio::test]
async fn authorization_header_syntax() {
    let (idp, gateway) = main_setup().await;
    let addr = gateway.http;

    let resp = get(addr, "/read", None).await;
    assert_eq!(resp.status, StatusCode::UNAUTHORIZED);
    assert_eq!(resp.error(), "missing_token");
    assert_eq!(
        resp.header("www-authenticate").as_deref(),
        Some("Bearer realm=\"authgate\"")
    );
    assert_eq!(
        resp.header("content-type").as_deref(),
        Some("application/json")
    );
    assert!(resp.json()["error_description"].is_string());
    assert!(resp.header("x-request-id").is_some());

    let resp = send(
        addr,
        "GET",
        "/read",
        &[("authorization", "Basic dXNlcjpwYXNz")],
    )
    .await;
    assert_eq!(resp.status, StatusCode::UNAUTHORIZED);
    assert_eq!(resp.error(), "missing_token");
    assert_eq!(
        resp.header("www-authenticate").as_deref(),
        Some("Bearer realm=\"authgate\"")
    );

    let token = idp.token().scope("orders:read").sign();
    let bearer = format!("Bearer {token}");
    let resp = send(
        addr,
        "GET",
        "/read",
        &[("authorization", &bearer), ("authorization", &bearer)],
    )
    .await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST, "{}", resp.text());
    assert_eq!(resp.error(), "invalid_request");

    for value in ["Bearer", "Bearer ", "Bearer a b"] {
        let resp = send(addr, "GET", "/read", &[("authorization", value)]).await;
        assert_eq!(
            resp.status,
            StatusCode::BAD_REQUEST,
            "{value:?}: {}",
            resp.text()
        );
        assert_eq!(resp.error(), "invalid_request", "{value:?}");
    }

    let resp = get(addr, "/read", Some("abc")).await;
    assert_invalid_token(&resp, "garbage token");

    // Scheme is case-insensitive.
    let lower = format!("bearer {token}");
    let resp = send(addr, "GET", "/read", &[("authorization", &lower)]).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    gateway.shutdown().await;
}

#[tokio::test]
async fn expired_token_is_refused_without_echoing_it() {
    let (idp, gateway) = main_setup().await;
    let token = idp.token().scope("orders:read").exp_in(-3600).sign();
    let resp = gateway.get("/read", Some(&token)).await;
    assert_invalid_token(&resp, "expired");
    let description = resp.json()["error_description"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(description.contains("expired"), "{description}");
    assert!(
        resp.header("www-authenticate").unwrap().contains("expired"),
        "challenge should say why"
    );
    assert_no_token_echo(&resp, &token);

    // Within leeway (default 30 s): still good.
    let token = idp.token().scope("orders:read").exp_in(-5).sign();
    let resp = gateway.get("/read", Some(&token)).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());

    // No exp at all.
    let token = idp.token().scope("orders:read").without("exp").sign();
    assert_invalid_token(&gateway.get("/read", Some(&token)).await, "no exp");

    // nbf in the future.
    let token = idp
        .token()
        .scope("orders:read")
        .claim("nbf", json!(support::idp::now() + 3600))
        .sign();
    assert_invalid_token(&gateway.get("/read", Some(&token)).await, "nbf");
    gateway.shutdown().await;
}

#[tokio::test]
async fn forged_and_mismatched_tokens_are_refused() {
    let (idp, gateway) = main_setup().await;
    let good = idp.token().scope("orders:read");

    // Bad signature.
    let token = good.sign_bad_signature();
    let resp = gateway.get("/read", Some(&token)).await;
    assert_invalid_token(&resp, "bad signature");
    assert!(resp.json()["error_description"]
        .as_str()
        .unwrap()
        .contains("signature"));
    assert_no_token_echo(&resp, &token);

    // Signed by a key the IdP never published, under the published kid.
    let token = good.clone().key(keys::attacker()).sign();
    assert_invalid_token(&gateway.get("/read", Some(&token)).await, "attacker key");

    // Wrong audience.
    let token = good.clone().aud("someone-else").sign();
    let resp = gateway.get("/read", Some(&token)).await;
    assert_invalid_token(&resp, "wrong audience");
    assert!(resp.json()["error_description"]
        .as_str()
        .unwrap()
        .contains("audience"));
    // aud as an array containing ours is fine.
    let token = good.clone().claim("aud", json!(["x", "api"])).sign();
    assert_eq!(
        gateway.get("/read", Some(&token)).await.status,
        StatusCode::OK
    );
    // No aud at all.
    let token = good.clone().without("aud").sign();
    assert_invalid_token(&gateway.get("/read", Some(&token)).await, "no aud");

    // Unknown issuer.
    let token = good.clone().iss("https://evil.test/").sign();
    let resp = gateway.get("/read", Some(&token)).await;
    assert_invalid_token(&resp, "unknown issuer");
    assert!(resp.json()["error_description"]
        .as_str()
        .unwrap()
        .contains("issuer"));

    // A configured issuer that the route does not allow.
    let token = good.clone().sign();
    assert_eq!(
        gateway.get("/read", Some(&token)).await.status,
        StatusCode::OK
    );
    assert_invalid_token(
        &gateway.get("/other-only", Some(&token)).await,
        "issuer not allowed on route",
    );
    // ... and the right issuer for that route passes (same key source).
    let token = good.clone().iss("https://other.test/").sign();
    assert_eq!(
        gateway.get("/other-only", Some(&token)).await.status,
        StatusCode::OK
    );
    // The other iss is not accepted on /read, which only allows `main`.
    assert_invalid_token(
        &gateway.get("/read", Some(&token)).await,
        "other iss on read",
    );
    gateway.shutdown().await;
}

#[tokio::test]
async fn algorithm_attacks_are_refused() {
    let (idp, gateway) = main_setup().await;
    let good = idp.token().scope("orders:read");
    let claims = good.claims();

    // ES256 with a published EC key, but `main` allows RS256 only.
    let token = good.clone().kid("e1").sign();
    let resp = gateway.get("/read", Some(&token)).await;
    assert_invalid_token(&resp, "ES256 to an RS256-only issuer");
    // The same token is fine for an issuer entry with the default algorithms.
    let token = good.clone().kid("e1").iss("https://other.test/").sign();
    assert_eq!(
        gateway.get("/other-only", Some(&token)).await.status,
        StatusCode::OK,
        "ES256 with default algorithms"
    );

    // alg: none, with an empty and with a non-empty signature; every spelling.
    for alg in ["none", "None", "NONE"] {
        let header = json!({"alg": alg, "typ": "JWT", "kid": "k1"});
        let input = format!(
            "{}.{}",
            b64(&serde_json::to_vec(&header).unwrap()),
            b64(&serde_json::to_vec(&claims).unwrap())
        );
        for token in [format!("{input}."), format!("{input}.{}", b64(b"sig"))] {
            assert_invalid_token(&gateway.get("/read", Some(&token)).await, alg);
        }
    }

    // HS256 keyed with the RSA public key as an attacker has it: the SPKI PEM (with and
    // without its final newline), the JWK's `n` as published (base64url text, no quotes) and
    // the decoded modulus bytes; on a route whose issuer allows RS256 only and on one with the
    // default algorithms. `confusion_secrets_make_valid_tokens_for_an_hmac_issuer` shows that
    // the same tokens pass where those bytes are the configured secret.
    for (what, secret) in confusion_secrets(keys::rsa()) {
        for (path, iss) in [
            ("/read", idp.issuer()),
            ("/other-only", "https://other.test/".into()),
        ] {
            let token = hs256_keyed_with(&good.clone().iss(&iss).claims(), &secret);
            assert_invalid_token(
                &gateway.get(path, Some(&token)).await,
                &format!("alg confusion, HS256 keyed with {what}"),
            );
        }
    }

    // A `jwk` header carrying the attacker's key, signed by the attacker; with and without
    // a kid, and also `jku`/`x5u` pointing at the attacker.
    let attacker_jwk = keys::attacker().jwk_with_kid("k1");
    let headers = [
        json!({"alg": "RS256", "kid": "k1", "jwk": attacker_jwk}),
        json!({"alg": "RS256", "jwk": attacker_jwk}),
        json!({"alg": "RS256", "kid": "k1", "jku": "http://127.0.0.1:1/evil.json"}),
        json!({"alg": "RS256", "kid": "k1", "x5u": "http://127.0.0.1:1/evil.pem"}),
    ];
    for header in headers {
        let token = good
            .clone()
            .key(keys::attacker())
            .sign_with_header(&header, Algorithm::RS256);
        assert_invalid_token(
            &gateway.get("/read", Some(&token)).await,
            &header.to_string(),
        );
    }

    // A `crit` header, otherwise valid (signed by the real key).
    let token = good.sign_with_header(
        &json!({"alg": "RS256", "kid": "k1", "crit": ["exp"], "exp": 1}),
        Algorithm::RS256,
    );
    let resp = gateway.get("/read", Some(&token)).await;
    assert_invalid_token(&resp, "crit");
    // Control: the same header without crit passes.
    let token = good.sign_with_header(&json!({"alg": "RS256", "kid": "k1"}), Algorithm::RS256);
    assert_eq!(
        gateway.get("/read", Some(&token)).await.status,
        StatusCode::OK
    );
    gateway.shutdown().await;
}

/// The bytes an algorithm-confusion attacker would use as the HMAC secret for `key`.
fn confusion_secrets(key: &keys::TestKey) -> Vec<(&'static str, Vec<u8>)> {
    use base64::Engine as _;
    let n = key.jwk["n"].as_str().expect("RSA JWK has n");
    let modulus = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(n)
        .expect("n is base64url");
    vec![
        ("the SPKI PEM", key.public_pem.as_bytes().to_vec()),
        (
            "the SPKI PEM without its final newline",
            key.public_pem.trim_end().as_bytes().to_vec(),
        ),
        ("the JWK's n as text", n.as_bytes().to_vec()),
        ("the decoded modulus", modulus),
    ]
}

/// An HS256 token for `claims` (header with kid `k1`) keyed with `secret`.
fn hs256_keyed_with(claims: &Value, secret: &[u8]) -> String {
    sign_raw(
        &json!({"alg": "HS256", "typ": "JWT", "kid": "k1"}),
        claims,
        &EncodingKey::from_secret(secret),
        Algorithm::HS256,
    )
}

/// The control for the algorithm-confusion cases: where the attacker's bytes (those that are
/// text, as `hmac_secret` is) are the configured HMAC secret, the very same tokens verify, so
/// their refusal in `algorithm_attacks_are_refused` comes from the key set, not from a
/// malformed token.
#[tokio::test]
async fn confusion_secrets_make_valid_tokens_for_an_hmac_issuer() {
    let idp = Idp::start_with(&[("k1", keys::rsa())]).await;
    let secrets: Vec<(&str, String)> = confusion_secrets(keys::rsa())
        .into_iter()
        .filter_map(|(what, secret)| Some((what, String::from_utf8(secret).ok()?)))
        .collect();
    assert_eq!(secrets.len(), 3, "the PEM twice and n are text");
    let mut body = String::new();
    for (index, (_, secret)) in secrets.iter().enumerate() {
        // A TOML literal string keeps the PEM's newlines; the one after ''' is dropped.
        body.push_str(&format!(
            "[[issuers]]\nname = \"h{index}\"\nissuer = \"https://h{index}.test/\"\n\
             audiences = [\"api\"]\nhmac_secret = '''\n{secret}'''\n\n\
             [[routes]]\nname = \"h{index}\"\npath_prefix = \"/h{index}\"\n\
             upstream = \"echo\"\nissuers = [\"h{index}\"]\n\n"
        ));
    }
    let gateway = Gateway::start(&body).await;
    for (index, (what, secret)) in secrets.iter().enumerate() {
        let claims = idp
            .token()
            .iss(&format!("https://h{index}.test/"))
            .aud("api")
            .claims();
        let token = hs256_keyed_with(&claims, secret.as_bytes());
        let resp = gateway.get(&format!("/h{index}"), Some(&token)).await;
        assert_eq!(resp.status, StatusCode::OK, "{what}: {}", resp.text());
    }
    gateway.shutdown().await;
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test]
async fn token_type_required_claims_and_allowed_clients() {
    let (idp, gateway) = main_setup().await;

    // token_types = ["at+jwt"].
    let typed = idp.token().aud("api-typed");
    assert_invalid_token(
        &gateway
            .get("/typed", Some(&typed.clone().typ("JWT").sign()))
            .await,
        "typ JWT",
    );
    assert_invalid_token(
        &gateway
            .get(
                "/typed",
                Some(
                    &typed
                        .clone()
                        .sign_with_header(&json!({"alg": "RS256", "kid": "k1"}), Algorithm::RS256),
                ),
            )
            .await,
        "no typ",
    );
    for typ in ["at+jwt", "application/at+jwt", "AT+JWT"] {
        let resp = gateway
            .get("/typed", Some(&typed.clone().typ(typ).sign()))
            .await;
        assert_eq!(resp.status, StatusCode::OK, "typ {typ}: {}", resp.text());
    }

    // required_claims = { token_use = "access", tier = ["gold", "silver"] }.
    let required = idp.token().aud("api-req");
    let cases = [
        (json!("access"), json!("gold"), StatusCode::OK),
        (json!("access"), json!("silver"), StatusCode::OK),
        (json!("access"), json!(["bronze", "silver"]), StatusCode::OK),
        (json!("id"), json!("gold"), StatusCode::UNAUTHORIZED),
        (json!("access"), json!("bronze"), StatusCode::UNAUTHORIZED),
        (json!(["id"]), json!("gold"), StatusCode::UNAUTHORIZED),
    ];
    for (token_use, tier, expected) in cases {
        let token = required
            .clone()
            .claim("token_use", token_use.clone())
            .claim("tier", tier.clone())
            .sign();
        let resp = gateway.get("/required", Some(&token)).await;
        assert_eq!(
            resp.status,
            expected,
            "token_use {token_use} tier {tier}: {}",
            resp.text()
        );
    }
    let token = required.clone().claim("tier", json!("gold")).sign();
    assert_invalid_token(
        &gateway.get("/required", Some(&token)).await,
        "token_use missing",
    );

    // audiences = [] with allowed_clients: aud is not checked, the client id is.
    let cognito = idp.token().without("aud");
    let resp = gateway
        .get(
            "/cognito",
            Some(&cognito.clone().client_id("client-good").sign()),
        )
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    assert_eq!(
        resp.upstream_header("x-auth-client-id").as_deref(),
        Some("client-good")
    );
    let resp = gateway
        .get(
            "/cognito",
            Some(
                &cognito
                    .clone()
                    .client_id("client-good")
                    .aud("anything")
                    .sign(),
            ),
        )
        .await;
    assert_eq!(resp.status, StatusCode::OK, "aud present but not checked");
    let resp = gateway
        .get(
            "/cognito",
            Some(&cognito.clone().client_id("client-bad").sign()),
        )
        .await;
    assert_invalid_token(&resp, "client not allowed");
    let resp = gateway.get("/cognito", Some(&cognito.clone().sign())).await;
    assert_invalid_token(&resp, "no client id");
    gateway.shutdown().await;
}

#[tokio::test]
async fn scopes_are_enforced_with_a_challenge() {
    let (idp, gateway) = main_setup().await;

    let token = idp.token().scope("orders:write").sign();
    let resp = gateway.get("/read", Some(&token)).await;
    assert_eq!(resp.status, StatusCode::FORBIDDEN, "{}", resp.text());
    assert_eq!(resp.error(), "insufficient_scope");
    assert_eq!(
        resp.header("www-authenticate").as_deref(),
        Some("Bearer realm=\"authgate\", error=\"insufficient_scope\", scope=\"orders:read\"")
    );

    // No scope claim at all.
    let token = idp.token().sign();
    assert_eq!(
        gateway.get("/read", Some(&token)).await.status,
        StatusCode::FORBIDDEN
    );
    // Exact matching: a prefix or a different case is not the scope.
    for scope in ["orders", "Orders:Read", "orders:read:all"] {
        let token = idp.token().scope(scope).sign();
        assert_eq!(
            gateway.get("/read", Some(&token)).await.status,
            StatusCode::FORBIDDEN,
            "{scope}"
        );
    }
    // From `scp` alone.
    let token = idp.token().scp(&["orders:read"]).sign();
    assert_eq!(
        gateway.get("/read", Some(&token)).await.status,
        StatusCode::OK
    );

    // any_scopes: scopes then any_scopes in the challenge.
    let token = idp.token().scope("orders:read").sign();
    let resp = gateway.get("/any", Some(&token)).await;
    assert_eq!(resp.status, StatusCode::FORBIDDEN, "{}", resp.text());
    assert_eq!(resp.error(), "insufficient_scope");
    assert_eq!(
        resp.header("www-authenticate").as_deref(),
        Some("Bearer realm=\"authgate\", error=\"insufficient_scope\", scope=\"orders:read a:x a:y\"")
    );
    let token = idp.token().scope("orders:read a:y").sign();
    assert_eq!(
        gateway.get("/any", Some(&token)).await.status,
        StatusCode::OK
    );
    let token = idp.token().scope("a:x").sign();
    assert_eq!(
        gateway.get("/any", Some(&token)).await.status,
        StatusCode::FORBIDDEN,
        "any_scopes alone does not replace scopes"
    );
    gateway.shutdown().await;
}

// ----------------------------------------------------------------------------------------
// 3. One `iss`, several entries: the cache never widens access
// ----------------------------------------------------------------------------------------

#[tokio::test]
async fn issuer_entries_sharing_an_iss_stay_separate_also_when_cached() {
    let idp = Idp::start().await;
    let iss = idp.issuer();
    let jwks = idp.jwks_uri();
    let gateway = Gateway::start(&format!(
        r#"
[[issuers]]
name = "tenant-a"
issuer = "{iss}"
jwks_uri = "{jwks}"
audiences = ["aud-a"]

[[issuers]]
name = "tenant-b"
issuer = "{iss}"
jwks_uri = "{jwks}"
audiences = ["aud-b"]

[[routes]]
name = "a"
path_prefix = "/a"
upstream = "echo"
issuers = ["tenant-a"]

[[routes]]
name = "b"
path_prefix = "/b"
upstream = "echo"
issuers = ["tenant-b"]

[[routes]]
name = "b-scoped"
path_prefix = "/b-scoped"
upstream = "echo"
issuers = ["tenant-b"]
scopes = ["b:write"]

[[routes]]
name = "both"
path_prefix = "/both"
upstream = "echo"
issuers = ["tenant-a", "tenant-b"]
"#
    ))
    .await;
    // Entries with one key source share one key cache: one fetch at start.
    assert_eq!(idp.jwks_requests(), 1, "shared key store fetches once");

    // Audience a: passes /a, refused on /b, also after /a cached it.
    let token_a = idp.token().aud("aud-a").sign();
    assert_eq!(
        gateway.get("/a", Some(&token_a)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        gateway.get("/a", Some(&token_a)).await.status,
        StatusCode::OK
    );
    let resp = gateway.get("/b", Some(&token_a)).await;
    assert_invalid_token(&resp, "aud-a token on route b after caching");
    // A route allowing both entries accepts it.
    assert_eq!(
        gateway.get("/both", Some(&token_a)).await.status,
        StatusCode::OK
    );
    // And caching via /both does not open /b either.
    assert_invalid_token(&gateway.get("/b", Some(&token_a)).await, "after /both");

    // The other way round, cache first on /b.
    let token_b = idp.token().aud("aud-b").sign();
    assert_eq!(
        gateway.get("/b", Some(&token_b)).await.status,
        StatusCode::OK
    );
    assert_invalid_token(&gateway.get("/a", Some(&token_b)).await, "aud-b token on a");

    // A token cached on a route without scope requirements is still refused (403) where a
    // scope is needed; first on an uncached token, then cached.
    let resp = gateway.get("/b-scoped", Some(&token_b)).await;
    assert_eq!(resp.status, StatusCode::FORBIDDEN, "{}", resp.text());
    assert_eq!(resp.error(), "insufficient_scope");
    let scoped = idp.token().aud("aud-b").scope("b:write").sign();
    assert_eq!(
        gateway.get("/b-scoped", Some(&scoped)).await.status,
        StatusCode::OK
    );

    let metrics = gateway.metrics().await;
    assert!(
        metrics.value("authgate_token_cache_requests_total", &[("result", "hit")]) >= 1.0,
        "repeated tokens must hit the cache"
    );
    gateway.shutdown().await;
}

// ----------------------------------------------------------------------------------------
// 4. Unknown kid: one coalesced refresh, bounded by min_refresh
// ----------------------------------------------------------------------------------------

#[tokio::test]
async fn unknown_kid_refreshes_once_and_is_rate_limited() {
    let idp = Idp::start().await;
    let gateway = Gateway::start(&format!(
        r#"
[[issuers]]
name = "rot"
issuer = "{}"
jwks_uri = "{}"
audiences = ["api"]
min_refresh = "1s"

[[routes]]
name = "r"
path_prefix = "/r"
upstream = "echo"
"#,
        idp.issuer(),
        idp.jwks_uri()
    ))
    .await;
    assert_eq!(idp.jwks_requests(), 1);
    let k1 = idp.token().sign();
    assert_eq!(gateway.get("/r", Some(&k1)).await.status, StatusCode::OK);
    assert_eq!(idp.jwks_requests(), 1, "a known kid fetches nothing");

    // Rotation: the IdP adds k2; a k2 token passes after exactly one extra fetch.
    idp.add_key("k2", keys::rsa2());
    let k2 = idp.token().kid("k2").sign();
    let resp = gateway.get("/r", Some(&k2)).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    assert_eq!(idp.jwks_requests(), 2, "exactly one unknown-kid fetch");
    assert_eq!(gateway.get("/r", Some(&k1)).await.status, StatusCode::OK);

    // After min_refresh: 20 concurrent requests with a newly rotated kid share one fetch.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    idp.add_key("k3", keys::rsa3());
    let k3 = idp.token().kid("k3").sign();
    let before = idp.jwks_requests();
    let requests = (0..20).map(|_| {
        let token = k3.clone();
        let addr = gateway.http;
        tokio::spawn(async move { get(addr, "/r", Some(&token)).await.status })
    });
    let statuses = futures_util::future::join_all(requests).await;
    for status in statuses {
        assert_eq!(status.expect("task"), StatusCode::OK);
    }
    assert_eq!(
        idp.jwks_requests(),
        before + 1,
        "concurrent unknown kids coalesce"
    );

    // Unknown kids within min_refresh: the rest of the burst of 3 fetches, then no fetch;
    // each is a 401.
    idp.register_signer("k9", keys::attacker());
    let k9 = idp.token().kid("k9").sign();
    let before = idp.jwks_requests();
    for _ in 0..4 {
        let resp = gateway.get("/r", Some(&k9)).await;
        assert_invalid_token(&resp, "unknown kid within min_refresh");
    }
    assert_eq!(
        idp.jwks_requests(),
        before + 2,
        "the burst bounds unknown-kid fetches: k3 left two of three refreshes, k9 takes them"
    );

    // After min_refresh, 20 concurrent requests with a kid the IdP never publishes cause at
    // most one fetch, and all fail.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let before = idp.jwks_requests();
    let requests = (0..20).map(|_| {
        let token = k9.clone();
        let addr = gateway.http;
        tokio::spawn(async move { get(addr, "/r", Some(&token)).await.status })
    });
    for status in futures_util::future::join_all(requests).await {
        assert_eq!(status.expect("task"), StatusCode::UNAUTHORIZED);
    }
    let extra = idp.jwks_requests() - before;
    assert!(extra <= 1, "{extra} fetches for one unknown kid flood");

    let metrics = gateway.metrics().await;
    assert!(
        metrics.value(
            "authgate_jwks_unknown_kid_refresh_total",
            &[("issuer", "rot")]
        ) >= 2.0
    );
    assert_eq!(
        metrics.value("authgate_jwks_keys", &[("issuer", "rot")]),
        3.0,
        "k1, k2, k3"
    );
    gateway.shutdown().await;
}

// ----------------------------------------------------------------------------------------
// 5. IdP down, stale-if-error
// ----------------------------------------------------------------------------------------

#[tokio::test]
async fn idp_down_at_start_gives_503_and_not_ready() {
    let idp = Idp::start().await; // only used to mint tokens
    let gateway = Gateway::start_unready(&format!(
        r#"
[[issuers]]
name = "down-idp"
issuer = "{}"
jwks_uri = "{}"
audiences = ["api"]
min_refresh = "1s"

[[routes]]
name = "r"
path_prefix = "/r"
upstream = "echo"
"#,
        idp.issuer(),
        Idp::absent_jwks_uri()
    ))
    .await;

    let token = idp.token().sign();
    let resp = gateway.get("/r", Some(&token)).await;
    assert_eq!(
        resp.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        resp.text()
    );
    assert_eq!(resp.error(), "unavailable");
    assert!(
        resp.header("retry-after").is_some(),
        "503 needs Retry-After"
    );
    assert_eq!(
        resp.header("content-type").as_deref(),
        Some("application/json")
    );
    assert!(resp.json()["error_description"].is_string());

    // No token is still 401: the client must send one anyway.
    assert_eq!(
        gateway.get("/r", None).await.status,
        StatusCode::UNAUTHORIZED
    );

    let ready = gateway.admin_get("/readyz").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    let body = ready.json();
    assert_eq!(body["ready"], json!(false));
    assert_eq!(body["issuers"]["down-idp"], json!("no key set"), "{body}");
    assert_eq!(gateway.admin_get("/healthz").await.status, StatusCode::OK);
    gateway.shutdown().await;
}

#[tokio::test]
async fn idp_recovering_after_start_makes_the_gateway_ready() {
    let idp = Idp::start().await;
    idp.set_failing(true);
    let gateway = Gateway::start_unready(&format!(
        r#"
[[issuers]]
name = "late"
issuer = "{}"
jwks_uri = "{}"
audiences = ["api"]
min_refresh = "200ms"

[[routes]]
name = "r"
path_prefix = "/r"
upstream = "echo"
"#,
        idp.issuer(),
        idp.jwks_uri()
    ))
    .await;
    assert!(idp.wait_jwks_requests(1, WAIT).await, "no fetch at start");
    let token = idp.token().sign();
    assert_eq!(
        gateway.get("/r", Some(&token)).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // Backoff from (min(1 s, min_refresh)) up to min_refresh: the next attempt succeeds.
    idp.set_failing(false);
    gateway.wait_ready().await;
    assert_eq!(gateway.get("/r", Some(&token)).await.status, StatusCode::OK);
    gateway.shutdown().await;
}

#[tokio::test]
async fn stale_keys_are_served_while_the_idp_fails() {
    let idp = Idp::start().await;
    let gateway = Gateway::start(&format!(
        r#"
[[issuers]]
name = "flaky"
issuer = "{}"
jwks_uri = "{}"
audiences = ["api"]
refresh_interval = "200ms"
min_refresh = "100ms"
max_stale = "1h"

[[routes]]
name = "r"
path_prefix = "/r"
upstream = "echo"
"#,
        idp.issuer(),
        idp.jwks_uri()
    ))
    .await;
    let token = idp.token().sign();
    assert_eq!(gateway.get("/r", Some(&token)).await.status, StatusCode::OK);
    let metrics = gateway.metrics().await;
    assert_eq!(
        metrics.value("authgate_jwks_stale", &[("issuer", "flaky")]),
        0.0
    );

    idp.set_failing(true);
    let failing_from = idp.jwks_requests();
    assert!(
        idp.wait_jwks_requests(failing_from + 2, WAIT).await,
        "background refreshes should keep trying"
    );
    let metrics = wait_metrics(&gateway, "jwks_stale 1", |m| {
        m.get("authgate_jwks_stale", &[("issuer", "flaky")]) == Some(1.0)
    })
    .await;
    assert!(
        metrics.value(
            "authgate_jwks_refresh_total",
            &[("issuer", "flaky"), ("result", "error")]
        ) >= 1.0
    );
    assert_eq!(
        metrics.value("authgate_jwks_keys", &[("issuer", "flaky")]),
        1.0
    );

    // A fresh (uncached) token still verifies with the stale set; so does the cached one.
    let fresh = idp.token().sub("svc-2").sign();
    let resp = gateway.get("/r", Some(&fresh)).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    assert_eq!(
        resp.upstream_header("x-auth-subject").as_deref(),
        Some("svc-2")
    );
    assert_eq!(gateway.get("/r", Some(&token)).await.status, StatusCode::OK);
    assert_eq!(gateway.admin_get("/readyz").await.status, StatusCode::OK);

    // Recovery clears the stale flag.
    idp.set_failing(false);
    wait_metrics(&gateway, "jwks_stale 0", |m| {
        m.get("authgate_jwks_stale", &[("issuer", "flaky")]) == Some(0.0)
    })
    .await;
    gateway.shutdown().await;
}

#[tokio::test]
async fn keys_past_max_stale_are_not_used() {
    let idp = Idp::start().await;
    let gateway = Gateway::start(&format!(
        r#"
[[issuers]]
name = "expiring"
issuer = "{}"
jwks_uri = "{}"
audiences = ["api"]
refresh_interval = "200ms"
min_refresh = "100ms"
max_stale = "300ms"

[[routes]]
name = "r"
path_prefix = "/r"
upstream = "echo"
"#,
        idp.issuer(),
        idp.jwks_uri()
    ))
    .await;
    // A token verified (and cached) while the keys were good...
    let cached = idp.token().sub("svc-cached").sign();
    assert_eq!(
        gateway.get("/r", Some(&cached)).await.status,
        StatusCode::OK
    );
    idp.set_failing(true);
    // Bounded poll: fresh tokens (never cached) until the gateway answers 503.
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut n = 0;
    loop {
        n += 1;
        let token = idp.token().sub(&format!("svc-{n}")).sign();
        let resp = gateway.get("/r", Some(&token)).await;
        if resp.status == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(resp.error(), "unavailable");
            assert!(resp.header("retry-after").is_some());
            break;
        }
        assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
        assert!(
            tokio::time::Instant::now() < deadline,
            "keys were still used long past max_stale"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // ...is not served from the cache either once the issuer has no usable key set.
    let resp = gateway.get("/r", Some(&cached)).await;
    assert_eq!(
        resp.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        resp.text()
    );
    // The instance stays ready (SPEC §6, readiness "loaded_once"): the issuer loaded keys
    // once, its outage shows in the body, the metrics and its routes' 503s.
    let ready = gateway.admin_get("/readyz").await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text());
    assert_eq!(ready.json()["issuers"]["expiring"], json!("no key set"));
    gateway.shutdown().await;
}

// ----------------------------------------------------------------------------------------
// 6. HMAC issuers
// ----------------------------------------------------------------------------------------

#[tokio::test]
async fn hmac_issuer_with_secret_from_the_environment() {
    let idp = Idp::start().await; // only mints
    let secret = "an-hmac-secret-that-is-at-least-32-bytes-long";
    let var = format!("AUTHGATE_AUTH_TEST_HMAC_{}", std::process::id());
    std::env::set_var(&var, secret);
    let gateway = Gateway::start(&format!(
        r#"
[[issuers]]
name = "shared"
issuer = "https://hmac.test/"
hmac_secret = "${{{var}}}"
audiences = ["api"]

[[routes]]
name = "h"
path_prefix = "/h"
upstream = "echo"
scopes = ["h:read"]
"#
    ))
    .await;
    let builder = idp.token().iss("https://hmac.test/").scope("h:read");
    let resp = gateway
        .get("/h", Some(&builder.sign_with_hmac(secret.as_bytes())))
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    assert_eq!(
        resp.upstream_header("x-auth-issuer").as_deref(),
        Some("https://hmac.test/")
    );
    let no_kid = builder.clone().no_kid().sign_with_hmac(secret.as_bytes());
    assert_eq!(
        gateway.get("/h", Some(&no_kid)).await.status,
        StatusCode::OK
    );

    let wrong = builder.sign_with_hmac(b"another-secret-that-is-also-32-bytes-long!");
    assert_invalid_token(&gateway.get("/h", Some(&wrong)).await, "wrong hmac secret");
    // HS512 is not in the default algorithms of an HMAC issuer (HS256).
    let hs512 = builder
        .clone()
        .alg(Algorithm::HS512)
        .sign_with_hmac(secret.as_bytes());
    assert_invalid_token(&gateway.get("/h", Some(&hs512)).await, "HS512");
    // An RSA token claiming this issuer has no key here.
    let rsa = builder.sign();
    assert_invalid_token(
        &gateway.get("/h", Some(&rsa)).await,
        "RS256 to an hmac issuer",
    );

    // The secret never appears in what the operator sees.
    let metrics = gateway.admin_get("/metrics").await.text();
    assert!(!metrics.contains(secret));
    assert!(!gateway.admin_get("/readyz").await.text().contains(secret));
    gateway.shutdown().await;
}

// ----------------------------------------------------------------------------------------
// 7. Discovery
// ----------------------------------------------------------------------------------------

#[tokio::test]
async fn discovery_finds_the_jwks() {
    let idp = Idp::start().await;
    let gateway = Gateway::start(&format!(
        r#"
[[issuers]]
name = "oidc"
issuer = "{}"
discovery = true
audiences = ["api"]

[[routes]]
name = "d"
path_prefix = "/d"
upstream = "echo"
"#,
        idp.issuer()
    ))
    .await;
    assert!(idp.discovery_requests() >= 1);
    assert!(idp.jwks_requests() >= 1);
    let resp = gateway.get("/d", Some(&idp.token().sign())).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    gateway.shutdown().await;
}

#[tokio::test]
async fn discovery_document_for_another_issuer_is_not_used() {
    let idp = Idp::start().await;
    idp.set_discovery_issuer("https://impostor.test");
    let gateway = Gateway::start_unready(&format!(
        r#"
[[issuers]]
name = "oidc"
issuer = "{}"
discovery = true
audiences = ["api"]
min_refresh = "1s"

[[routes]]
name = "d"
path_prefix = "/d"
upstream = "echo"
"#,
        idp.issuer()
    ))
    .await;
    // Bounded wait for the first discovery attempt.
    let deadline = tokio::time::Instant::now() + WAIT;
    while idp.discovery_requests() == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(idp.discovery_requests() >= 1);
    let resp = gateway.get("/d", Some(&idp.token().sign())).await;
    assert_eq!(
        resp.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        resp.text()
    );
    assert_eq!(
        idp.jwks_requests(),
        0,
        "the document's jwks_uri must not be followed"
    );
    assert_eq!(
        gateway.admin_get("/readyz").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    gateway.shutdown().await;
}

// ----------------------------------------------------------------------------------------
// 8. Metrics
// ----------------------------------------------------------------------------------------

#[tokio::test]
async fn metrics_after_traffic() {
    let (idp, gateway) = main_setup().await;
    let token = idp.token().scope("orders:read").sign();
    for _ in 0..3 {
        assert_eq!(
            gateway.get("/read", Some(&token)).await.status,
            StatusCode::OK
        );
    }
    assert_eq!(
        gateway.get("/read", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    let expired = idp.token().scope("orders:read").exp_in(-3600).sign();
    assert_eq!(
        gateway.get("/read", Some(&expired)).await.status,
        StatusCode::UNAUTHORIZED
    );
    let unscoped = idp.token().sign();
    assert_eq!(
        gateway.get("/read", Some(&unscoped)).await.status,
        StatusCode::FORBIDDEN
    );
    let forged = idp.token().scope("orders:read").sign_bad_signature();
    assert_eq!(
        gateway.get("/read", Some(&forged)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        gateway.get("/nowhere", None).await.status,
        StatusCode::NOT_FOUND
    );

    let m = gateway.metrics().await;
    let decision = |decision: &str, reason: &str| {
        m.get(
            "authgate_auth_decisions_total",
            &[
                ("route", "read"),
                ("decision", decision),
                ("reason", reason),
            ],
        )
        .unwrap_or_else(|| panic!("no decision {decision}/{reason}:\n{}", m.text))
    };
    assert_eq!(decision("allow", "ok"), 3.0);
    assert_eq!(decision("deny", "missing_token"), 1.0);
    assert_eq!(decision("deny", "expired"), 1.0);
    assert_eq!(decision("deny", "insufficient_scope"), 1.0);
    assert_eq!(decision("deny", "bad_signature"), 1.0);
    assert_eq!(
        m.value(
            "authgate_requests_total",
            &[("route", "read"), ("code", "200")]
        ),
        3.0
    );
    assert_eq!(
        m.value(
            "authgate_requests_total",
            &[("route", "read"), ("code", "401")]
        ),
        3.0
    );
    assert_eq!(
        m.value(
            "authgate_requests_total",
            &[("route", "none"), ("code", "404")]
        ),
        1.0
    );
    assert!(m.value("authgate_token_cache_requests_total", &[("result", "hit")]) >= 2.0);
    assert!(m.value("authgate_token_cache_requests_total", &[("result", "miss")]) >= 1.0);
    for issuer in ["main", "typed", "required", "cognito", "other"] {
        assert_eq!(
            m.value("authgate_jwks_keys", &[("issuer", issuer)]),
            idp.key_count() as f64,
            "{issuer}"
        );
        assert!(
            m.value(
                "authgate_jwks_refresh_total",
                &[("issuer", issuer), ("result", "success")]
            ) >= 1.0,
            "{issuer}"
        );
        assert_eq!(m.value("authgate_jwks_stale", &[("issuer", issuer)]), 0.0);
        let age = m.value("authgate_jwks_age_seconds", &[("issuer", issuer)]);
        assert!((0.0..60.0).contains(&age), "{issuer} age {age}");
    }
    // Labels are bounded: no subject, token or path in the exposition.
    assert!(!m.text.contains(&token));
    assert!(!m.text.contains("svc-1"));
    assert!(!m.text.contains("/nowhere"));
    gateway.shutdown().await;
}

// ----------------------------------------------------------------------------------------
// 10. Identity spoofing
// ----------------------------------------------------------------------------------------

#[tokio::test]
async fn client_cannot_spoof_identity_headers() {
    let (idp, gateway) = main_setup().await;
    let token = idp
        .token()
        .sub("real-svc")
        .scope("orders:read")
        .claim("tid", json!("real-tenant"))
        .sign();
    let bearer = format!("Bearer {token}");
    let resp = send(
        gateway.http,
        "GET",
        "/read",
        &[
            ("authorization", &bearer),
            ("X-Auth-Subject", "admin"),
            ("X_Auth_Subject", "admin"),
            ("x-auth-issuer", "https://evil.test/"),
            ("X-Auth-Scopes", "admin:all"),
            ("X-Auth-Client-Id", "admin-client"),
            ("X-Auth-Tenant", "evil-tenant"),
            ("X_Auth_Tenant", "evil-tenant"),
            ("X-Auth-Anything", "evil"),
            ("X-Tenant-Region", "evil-region"),
            ("X_Tenant_Region", "evil-region"),
            ("X-Client-Cert-Subject", "CN=admin"),
            ("X-Client-Cert-Sha256", "00"),
            ("Connection", "X-Auth-Subject"),
        ],
    )
    .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    assert_eq!(resp.upstream_headers("x-auth-subject"), vec!["real-svc"]);
    assert!(resp.upstream_headers("x_auth_subject").is_empty());
    assert_eq!(resp.upstream_headers("x-auth-issuer"), vec![idp.issuer()]);
    assert_eq!(resp.upstream_headers("x-auth-scopes"), vec!["orders:read"]);
    assert!(resp.upstream_headers("x-auth-client-id").is_empty());
    assert_eq!(resp.upstream_headers("x-auth-tenant"), vec!["real-tenant"]);
    assert!(resp.upstream_headers("x_auth_tenant").is_empty());
    assert!(resp.upstream_headers("x-auth-anything").is_empty());
    // A configured claim header the token does not carry: the client's value is gone too.
    assert!(resp.upstream_headers("x-tenant-region").is_empty());
    assert!(resp.upstream_headers("x_tenant_region").is_empty());
    assert!(resp.upstream_headers("x-client-cert-subject").is_empty());
    assert!(resp.upstream_headers("x-client-cert-sha256").is_empty());
    assert!(
        resp.upstream_headers("connection").is_empty()
            || !resp
                .upstream_headers("connection")
                .iter()
                .any(|v| v.to_ascii_lowercase().contains("x-auth"))
    );
    let echoed = resp.json().to_string();
    assert!(
        !echoed.contains("admin"),
        "a spoofed value reached the upstream: {echoed}"
    );
    assert!(
        !echoed.contains("evil"),
        "a spoofed value reached the upstream: {echoed}"
    );

    // A route open to every issuer entry strips them the same way.
    let resp = send(
        gateway.http,
        "GET",
        "/everyone",
        &[("authorization", &bearer), ("X-Auth-Subject", "admin")],
    )
    .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    assert_eq!(resp.upstream_headers("x-auth-subject"), vec!["real-svc"]);
    gateway.shutdown().await;
}

#[tokio::test]
async fn client_identity_headers_are_dropped_when_the_token_has_no_such_claim() {
    let (idp, gateway) = main_setup().await;
    // No scope, no client id, no tid: the gateway adds none of those headers, and the
    // client's copies must not survive in their place.
    let token = idp.token().sign();
    let bearer = format!("Bearer {token}");
    let resp = send(
        gateway.http,
        "GET",
        "/open",
        &[
            ("authorization", &bearer),
            ("X-Auth-Scopes", "admin:all"),
            ("X-Auth-Client-Id", "admin-client"),
            ("X-Auth-Tenant", "evil-tenant"),
        ],
    )
    .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    assert!(resp.upstream_headers("x-auth-scopes").is_empty());
    assert!(resp.upstream_headers("x-auth-client-id").is_empty());
    assert!(resp.upstream_headers("x-auth-tenant").is_empty());
    assert_eq!(resp.upstream_headers("x-auth-subject"), vec!["svc-1"]);
    gateway.shutdown().await;
}

#[tokio::test]
async fn oversized_token_is_an_invalid_token() {
    let (idp, gateway) = main_setup().await;
    let padding = "p".repeat(20 * 1024);
    let token = idp
        .token()
        .scope("orders:read")
        .claim("padding", json!(padding))
        .sign();
    assert!(token.len() > 16 * 1024);
    let resp = gateway.get("/read", Some(&token)).await;
    assert_invalid_token(&resp, "20 KiB token");
    gateway.shutdown().await;
}

/// SPEC §3 step 6: "If an issuer has never had a usable key set, the answer is 503 ... not
/// 401: clients must not throw away good tokens because the gateway cannot see keys." With two
/// entries for one `iss`, the one whose key source is down cannot judge the token, so a 401
/// from the other entry (audience mismatch) must not be the answer.
#[tokio::test]
async fn entry_without_keys_is_not_overruled_by_another_entrys_refusal() {
    let idp = Idp::start().await;
    let iss = idp.issuer();
    let gateway = Gateway::start_unready(&format!(
        r#"
[[issuers]]
name = "up"
issuer = "{iss}"
jwks_uri = "{}"
audiences = ["aud-up"]

[[issuers]]
name = "down"
issuer = "{iss}"
jwks_uri = "{}"
audiences = ["aud-down"]
min_refresh = "1s"

[[routes]]
name = "both"
path_prefix = "/both"
upstream = "echo"
issuers = ["up", "down"]
"#,
        idp.jwks_uri(),
        Idp::absent_jwks_uri()
    ))
    .await;
    assert!(idp.wait_jwks_requests(1, WAIT).await);
    // Wait (bounded) until "up" has its keys: a token for it passes.
    let up = idp.token().aud("aud-up").sign();
    let deadline = tokio::time::Instant::now() + WAIT;
    while gateway.get("/both", Some(&up)).await.status != StatusCode::OK {
        assert!(
            tokio::time::Instant::now() < deadline,
            "entry up never got keys"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let down = idp.token().aud("aud-down").sign();
    let resp = gateway.get("/both", Some(&down)).await;
    assert_eq!(
        resp.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "a token for the entry without keys was judged by another entry: {}",
        resp.text()
    );
    gateway.shutdown().await;
}

#[tokio::test]
async fn cache_control_max_age_is_clamped_to_min_refresh() {
    let idp = Idp::start().await;
    idp.set_cache_control(Some("max-age=0"));
    let gateway = Gateway::start(&format!(
        r#"
[[issuers]]
name = "cc"
issuer = "{}"
jwks_uri = "{}"
audiences = ["api"]
refresh_interval = "10m"
min_refresh = "300ms"

[[routes]]
name = "r"
path_prefix = "/r"
upstream = "echo"
"#,
        idp.issuer(),
        idp.jwks_uri()
    ))
    .await;
    // max-age=0 is clamped up to min_refresh: background refreshes continue (not every
    // 10 minutes), but not in a busy loop.
    let start = idp.jwks_requests();
    assert!(
        idp.wait_jwks_requests(start + 2, WAIT).await,
        "max-age should shorten refresh_interval"
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let in_a_second = idp.jwks_requests() - start - 2;
    assert!(
        in_a_second <= 5,
        "{in_a_second} fetches in 1 s with min_refresh 300ms"
    );
    gateway.shutdown().await;
}
