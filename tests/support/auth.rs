//! Harness of the end-to-end authentication tests (`tests/auth_*.rs`): the support gateway
//! with `[server]`, `[admin]` and an echo upstream prepended to a config body, a client that
//! keeps duplicate request headers, a Prometheus text parser, the SPEC §5 `invalid_token`
//! assertion, and the "main" config (several issuer entries for one IdP, several routes).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, StatusCode};
use http_body_util::Empty;

use super::config::Config;
use super::echo::Echo;
use super::gateway::{self, Reply};
use super::idp::{keys, Idp};

/// Bound on every single wait of the auth tests.
pub const WAIT: Duration = Duration::from_secs(5);

/// Sends one request on a fresh connection. `headers` are appended in order (duplicates kept).
pub async fn send(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut request = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).expect("method"))
        .uri(path)
        .body(Empty::<Bytes>::new())
        .expect("request");
    for (name, value) in headers {
        request.headers_mut().append(
            HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            HeaderValue::from_str(value).expect("header value"),
        );
    }
    gateway::send(addr, request).await
}

/// `GET path`, with `Authorization: Bearer <token>` when given.
pub async fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> Reply {
    match token {
        Some(token) => {
            let value = format!("Bearer {token}");
            send(addr, "GET", path, &[("authorization", &value)]).await
        }
        None => send(addr, "GET", path, &[]).await,
    }
}

/// The support gateway plus its echo upstream and the addresses the auth tests use.
pub struct Gateway {
    inner: gateway::Gateway,
    pub http: SocketAddr,
    pub admin: SocketAddr,
    _echo: Echo,
}

impl Gateway {
    /// Starts the gateway with `[server]`, `[admin]` and the echo upstream `echo` prepended to
    /// `body` (issuers and routes), and waits until /readyz says 200.
    pub async fn start(body: &str) -> Gateway {
        let gateway = Gateway::start_unready(body).await;
        gateway.wait_ready().await;
        gateway
    }

    /// As `start`, but only waits for /healthz (for gateways that cannot become ready).
    pub async fn start_unready(body: &str) -> Gateway {
        let echo = Echo::start().await;
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n\n[admin]\nlisten = \"127.0.0.1:0\"\n\n\
             [[upstreams]]\nname = \"echo\"\nurl = \"http://{}\"\n\n{body}",
            echo.addr()
        );
        let inner = gateway::Gateway::from_toml(text.clone())
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
        let healthy = gateway::eventually(WAIT, || async {
            gateway.admin_get("/healthz").await.status == StatusCode::OK
        })
        .await;
        assert!(healthy, "never healthy");
        gateway
    }

    pub async fn wait_ready(&self) {
        let ready = gateway::eventually(WAIT, || async {
            self.admin_get("/readyz").await.status == StatusCode::OK
        })
        .await;
        assert!(
            ready,
            "gateway never ready: {}",
            self.admin_get("/readyz").await.text()
        );
    }

    pub async fn admin_get(&self, path: &str) -> Reply {
        send(self.admin, "GET", path, &[]).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        get(self.http, path, token).await
    }

    pub async fn metrics(&self) -> Metrics {
        let text = self.admin_get("/metrics").await.text();
        Metrics::parse(&text)
    }

    pub async fn shutdown(self) {
        self.inner.shutdown().await;
    }
}

/// URL-safe base64 without padding.
pub fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Parsed Prometheus text: (family or series name, labels) -> value.
pub struct Metrics {
    series: Vec<(String, BTreeMap<String, String>, f64)>,
    pub text: String,
}

impl Metrics {
    pub fn parse(text: &str) -> Metrics {
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
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
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

    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("no {name} {labels:?} in\n{}", self.text))
    }
}

/// Waits (bounded) until `check` holds on the gateway's metrics.
pub async fn wait_metrics(
    gateway: &Gateway,
    what: &str,
    check: impl Fn(&Metrics) -> bool,
) -> Metrics {
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

#[track_caller]
pub fn assert_invalid_token(resp: &Reply, context: &str) {
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
        resp.header("content-type"),
        Some("application/json"),
        "{context}"
    );
    assert!(
        resp.header("x-request-id").is_some(),
        "{context}: no X-Request-Id"
    );
}

#[track_caller]
pub fn assert_no_token_echo(resp: &Reply, token: &str) {
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
pub fn main_config(idp: &Idp) -> String {
    let iss = idp.issuer();
    let jwks = idp.jwks_uri();
    let claim_headers = "claim_headers = { \"X-Auth-Tenant\" = \"tid\", \"X-Auth-Num\" = \"num\", \
        \"X-Auth-Flag\" = \"flag\", \"X-Auth-Groups\" = \"groups\", \"X-Auth-Obj\" = \"obj\", \
        \"X-Tenant-Region\" = \"region\" }";
    let entry = |name: &str| format!("issuers = [\"{name}\"]");
    Config::new()
        .jwks_issuer(
            "main",
            &iss,
            &jwks,
            &format!("audiences = [\"api\"]\nalgorithms = [\"RS256\"]\n{claim_headers}"),
        )
        .jwks_issuer(
            "typed",
            &iss,
            &jwks,
            "audiences = [\"api-typed\"]\ntoken_types = [\"at+jwt\"]",
        )
        .jwks_issuer(
            "required",
            &iss,
            &jwks,
            "audiences = [\"api-req\"]\n\
             required_claims = { token_use = \"access\", tier = [\"gold\", \"silver\"] }",
        )
        .jwks_issuer(
            "cognito",
            &iss,
            &jwks,
            "audiences = []\nallowed_clients = [\"client-good\"]",
        )
        .jwks_issuer(
            "other",
            "https://other.test/",
            &jwks,
            "audiences = [\"api\"]",
        )
        .route(
            "read",
            "/read",
            &format!("{}\nscopes = [\"orders:read\"]", entry("main")),
        )
        .route(
            "any",
            "/any",
            &format!(
                "{}\nscopes = [\"orders:read\"]\nany_scopes = [\"a:x\", \"a:y\"]",
                entry("main")
            ),
        )
        .route("open", "/open", &entry("main"))
        .route("typed", "/typed", &entry("typed"))
        .route("required", "/required", &entry("required"))
        .route("cognito", "/cognito", &entry("cognito"))
        .route("other-only", "/other-only", &entry("other"))
        .route("everyone", "/everyone", "")
        .tables()
}

/// The main IdP serves the RSA key `k1` and an EC key `e1` (for algorithm allowlist tests).
pub async fn main_setup() -> (Idp, Gateway) {
    let idp = Idp::start_with(&[("k1", keys::rsa()), ("e1", keys::ec_p256())]).await;
    let gateway = Gateway::start(&main_config(&idp)).await;
    (idp, gateway)
}

/// One issuer entry `name` (`iss`, audience `api`, the `key_source` line such as `jwks_uri =
/// "..."`, then `lines`) and the route named after `prefix` (`/r` → `r`) that accepts it.
pub fn issuer_with_route(
    name: &str,
    iss: &str,
    key_source: &str,
    lines: &str,
    prefix: &str,
) -> String {
    let route = prefix.trim_start_matches('/');
    format!(
        "[[issuers]]\nname = \"{name}\"\nissuer = \"{iss}\"\n{key_source}\naudiences = [\"api\"]\n\
         {lines}\n\n[[routes]]\nname = \"{route}\"\npath_prefix = \"{prefix}\"\nupstream = \"echo\"\n"
    )
}

/// [`issuer_with_route`] for `idp` (its `iss`, keys at its `jwks_uri`) with the route `/r`.
pub fn idp_route(name: &str, idp: &Idp, lines: &str) -> String {
    let key_source = format!("jwks_uri = \"{}\"", idp.jwks_uri());
    issuer_with_route(name, &idp.issuer(), &key_source, lines, "/r")
}
