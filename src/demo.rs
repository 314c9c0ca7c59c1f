//! `authgate demo`: the gateway with a built-in identity provider and echo upstream, all on
//! loopback, needing no file and no network.
//!
//! The identity provider generates an EC P-256 key in memory at start, serves its JWKS and
//! openid-configuration, and mints client-credentials tokens in process. The echo upstream
//! answers every request with JSON showing what it received, so the identity headers the
//! gateway injects are visible.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::server::{ConfigOrigin, Handle, StartError};

const DEMO_CONFIG: &str = include_str!("../config/demo.toml");
const KID: &str = "demo-key-1";
const AUDIENCE: &str = "api://demo";
const CLIENT_ID: &str = "demo-client";

/// Why the demo could not start.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot bind a loopback port")]
    Bind(#[source] std::io::Error),
    #[error("cannot generate the demo key")]
    Key,
    #[error("config/demo.toml (built in) lacks a key the demo sets")]
    Config,
    #[error("cannot start the gateway")]
    Start(#[source] StartError),
    #[error("cannot wait for Ctrl-C")]
    Signal(#[source] std::io::Error),
}

/// The demo identity provider's signing side.
pub struct DemoIdp {
    issuer: String,
    key: EncodingKey,
    jwks: Value,
}

impl DemoIdp {
    fn new(issuer: String) -> Result<DemoIdp, DemoError> {
        let pair =
            EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).map_err(|_| DemoError::Key)?;
        let pkcs8 = pair.to_pkcs8v1().map_err(|_| DemoError::Key)?;
        // An uncompressed P-256 point: 0x04 || x (32 bytes) || y (32 bytes).
        let point = pair.public_key().as_ref();
        if point.len() != 65 {
            return Err(DemoError::Key);
        }
        let jwks = json!({ "keys": [{
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": KID,
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        }]});
        Ok(DemoIdp {
            issuer,
            key: EncodingKey::from_ec_der(pkcs8.as_ref()),
            jwks,
        })
    }

    /// A client-credentials access token with `scope`, expiring `lifetime` seconds from now
    /// (negative: already expired).
    pub fn mint(&self, scope: &str, lifetime: i64) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let claims = json!({
            "iss": self.issuer, "sub": CLIENT_ID, "aud": AUDIENCE, "client_id": CLIENT_ID,
            "scope": scope, "tid": "tenant-demo", "iat": now.min(now + lifetime) - 60,
            "exp": now + lifetime,
        });
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(KID.to_owned());
        header.typ = Some("at+jwt".to_owned());
        // Signing with a key we just generated cannot fail; an empty token would simply be
        // refused by the gateway.
        jsonwebtoken::encode(&header, &claims, &self.key).unwrap_or_default()
    }
}

/// A running demo: the gateway, its identity provider and echo upstream.
pub struct Demo {
    pub gateway: Handle,
    pub idp: std::sync::Arc<DemoIdp>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn bind_preferred(port: u16) -> Result<TcpListener, DemoError> {
    match TcpListener::bind(("127.0.0.1", port)).await {
        Ok(listener) => Ok(listener),
        Err(_) => TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(DemoError::Bind),
    }
}

/// Free-or-preferred address: the port is probed, then released for the gateway to bind.
async fn pick(port: u16) -> Result<SocketAddr, DemoError> {
    let listener = bind_preferred(port).await?;
    listener.local_addr().map_err(DemoError::Bind)
}

fn serve<F>(listener: TcpListener, respond: F) -> JoinHandle<()>
where
    F: Fn(
            Request<Incoming>,
        )
            -> std::pin::Pin<Box<dyn std::future::Future<Output = Response<Full<Bytes>>> + Send>>
        + Send
        + Sync
        + Clone
        + 'static,
{
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let respond = respond.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let respond = respond.clone();
                    async move { Ok::<_, Infallible>(respond(request).await) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await;
            });
        }
    })
}

fn json_response(value: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// The echo upstream: answers with the method, path and headers it received. A header
/// received once shows as a string; one received several times as an array of every value in
/// order, so a smuggled duplicate (an `X-Auth-Subject: admin` next to the gateway's own) shows.
async fn echo(request: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let headers: serde_json::Map<String, Value> = parts
        .headers
        .keys()
        .map(|name| {
            let mut values: Vec<Value> = parts
                .headers
                .get_all(name)
                .iter()
                .map(|value| Value::String(String::from_utf8_lossy(value.as_bytes()).into()))
                .collect();
            let shown = match values.len() {
                1 => values.remove(0),
                _ => Value::Array(values),
            };
            (name.to_string(), shown)
        })
        .collect();
    json_response(&json!({
        "upstream": "echo",
        "method": parts.method.as_str(),
        "path": parts.uri.path_and_query().map_or("/", |p| p.as_str()),
        "headers": headers,
        "body_bytes": body.len(),
    }))
}

/// Starts the identity provider, the echo upstream and the gateway. The gateway prefers
/// 127.0.0.1:8080 (admin 9090) and takes free ports when those are taken.
pub async fn start(preferred: Option<(u16, u16)>) -> Result<Demo, DemoError> {
    let idp_listener = bind_preferred(0).await?;
    let idp_addr = idp_listener.local_addr().map_err(DemoError::Bind)?;
    let issuer = format!("http://{idp_addr}");
    let idp = std::sync::Arc::new(DemoIdp::new(issuer.clone())?);

    let jwks = idp.jwks.clone();
    let discovery = json!({ "issuer": issuer, "jwks_uri": format!("{issuer}/jwks.json") });
    let idp_task = serve(idp_listener, move |request| {
        let jwks = jwks.clone();
        let discovery = discovery.clone();
        Box::pin(async move {
            match request.uri().path() {
                "/jwks.json" => json_response(&jwks),
                "/.well-known/openid-configuration" => json_response(&discovery),
                _ => {
                    let mut response = json_response(&json!({"error": "not_found"}));
                    *response.status_mut() = http::StatusCode::NOT_FOUND;
                    response
                }
            }
        })
    });
    let echo_listener = bind_preferred(0).await?;
    let echo_addr = echo_listener.local_addr().map_err(DemoError::Bind)?;
    let echo_task = serve(echo_listener, |request| Box::pin(echo(request)));

    let (listen, admin) = match preferred {
        Some((listen, admin)) => (pick(listen).await?, pick(admin).await?),
        None => (pick(0).await?, pick(0).await?),
    };
    let text = demo_config(&[
        (&["server", "listen"], listen.to_string()),
        (&["admin", "listen"], admin.to_string()),
        (&["issuers", "issuer"], issuer.clone()),
        (&["issuers", "jwks_uri"], format!("{issuer}/jwks.json")),
        (&["upstreams", "url"], format!("http://{echo_addr}")),
    ])?;
    let gateway = Handle::start(ConfigOrigin::Text {
        name: "demo.toml".into(),
        text,
    })
    .await
    .map_err(DemoError::Start)?;
    // Wait (bounded) until the gateway has the demo keys, so the printed commands work at once.
    for _ in 0..100 {
        if gateway
            .shared
            .load()
            .issuers
            .iter()
            .all(|issuer| issuer.store.keys().is_some())
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    Ok(Demo {
        gateway,
        idp,
        tasks: vec![idp_task, echo_task],
    })
}

/// `config/demo.toml` (a valid config of its own) with this run's addresses set at `paths`
/// (keys; an array of tables stands for its first table).
fn demo_config(values: &[(&[&str], String)]) -> Result<String, DemoError> {
    let mut table: toml::Table = DEMO_CONFIG.parse().map_err(|_| DemoError::Config)?;
    for (path, value) in values {
        let (last, parents) = path.split_last().ok_or(DemoError::Config)?;
        let mut current = &mut table;
        for key in parents {
            current = match current.get_mut(*key) {
                Some(toml::Value::Table(inner)) => inner,
                Some(toml::Value::Array(items)) => items
                    .first_mut()
                    .and_then(toml::Value::as_table_mut)
                    .ok_or(DemoError::Config)?,
                _ => return Err(DemoError::Config),
            };
        }
        current.insert((*last).to_owned(), toml::Value::String(value.clone()));
    }
    toml::to_string(&table).map_err(|_| DemoError::Config)
}

/// One printed example: what to run and what it answers.
pub struct Example {
    pub title: &'static str,
    pub expect_status: u16,
    pub expect: &'static str,
    pub method: &'static str,
    pub path: &'static str,
    pub headers: Vec<(String, String)>,
}

impl Example {
    pub fn curl(&self, base: &str) -> String {
        let mut line = String::from("curl -s -i");
        if self.method != "GET" {
            line.push_str(&format!(" -X {}", self.method));
        }
        for (name, value) in &self.headers {
            line.push_str(&format!(" -H '{name}: {value}'"));
        }
        line.push_str(&format!(" {base}{}", self.path));
        line
    }
}

/// The examples the demo prints, with freshly minted tokens.
pub fn examples(idp: &DemoIdp) -> Vec<Example> {
    let bearer = |token: String| vec![("Authorization".to_owned(), format!("Bearer {token}"))];
    let reader = idp.mint("orders:read", 3600);
    let mut spoofed = bearer(reader.clone());
    spoofed.push(("X-Auth-Subject".to_owned(), "admin".to_owned()));
    vec![
        Example {
            title: "allowed: a token with scope orders:read",
            expect_status: 200,
            expect:
                "200, and the echo shows X-Auth-Subject: demo-client, X-Auth-Scopes: orders:read",
            method: "GET",
            path: "/orders/42",
            headers: bearer(reader),
        },
        Example {
            title: "insufficient scope: the token lacks orders:write",
            expect_status: 403,
            expect: "403 insufficient_scope",
            method: "POST",
            path: "/orders",
            headers: bearer(idp.mint("orders:read", 3600)),
        },
        Example {
            title: "expired token",
            expect_status: 401,
            expect: "401 invalid_token (the token has expired)",
            method: "GET",
            path: "/orders/42",
            headers: bearer(idp.mint("orders:read", -3600)),
        },
        Example {
            title: "no token",
            expect_status: 401,
            expect: "401 missing_token",
            method: "GET",
            path: "/orders/42",
            headers: vec![],
        },
        Example {
            title: "spoofed identity header: X-Auth-Subject: admin is removed",
            expect_status: 200,
            expect: "200, and the echo shows X-Auth-Subject: demo-client, never admin",
            method: "GET",
            path: "/orders/42",
            headers: spoofed,
        },
        Example {
            title: "public route: no token needed",
            expect_status: 200,
            expect: "200",
            method: "GET",
            path: "/public/status",
            headers: vec![],
        },
    ]
}

/// Runs the demo until Ctrl-C, printing ready-to-paste commands on stdout.
pub async fn run() -> Result<(), DemoError> {
    let demo = start(Some((8080, 9090))).await?;
    let addrs = demo.gateway.addrs;
    let http = addrs
        .http
        .map_or_else(String::new, |addr| format!("http://{addr}"));
    let mut out = String::new();
    out.push_str(&format!(
        "authgate demo: gateway {http}, admin http://{}\n",
        addrs.admin
    ));
    out.push_str(
        "Each command below prints the HTTP response; the expected answer is above it.\n\n",
    );
    for (index, example) in examples(&demo.idp).iter().enumerate() {
        out.push_str(&format!(
            "# {}. {}\n# expect: {}\n{}\n\n",
            index + 1,
            example.title,
            example.expect,
            example.curl(&http)
        ));
    }
    out.push_str(&format!(
        "# metrics\ncurl -s http://{}/metrics\n\n",
        addrs.admin
    ));
    out.push_str("# Ctrl-C stops the demo.\n");
    print!("{out}");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    tokio::signal::ctrl_c().await.map_err(DemoError::Signal)?;
    demo.gateway
        .control()
        .send(crate::server::Control::Shutdown)
        .await
        .ok();
    Ok(())
}
