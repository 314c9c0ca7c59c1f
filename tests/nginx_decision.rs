//! Decision mode behind a real nginx (issue 14): nginx on loopback in front of the echo
//! upstream, `auth_request` to authgate's decision listener, configured with the very files
//! shipped in deploy/nginx/ (`authgate-decision.conf`, `authgate-protect.conf`). Asserts what
//! the client gets and what the upstream receives for allow, 401, 403 and an IdP outage.
//!
//! nginx is required: when it is missing this test FAILS (CI installs it in .ci/run; locally
//! `apt-get install -y nginx`, or set AUTHGATE_NGINX to the binary). It runs as one process
//! (`master_process off`, `daemon off`) with every path in a temporary directory, and is
//! killed (by its pid) when the test ends.
//!
//! nginx cannot listen on port 0, so the test binds 127.0.0.1:0, notes the port, releases it
//! and hands it to nginx. Another process could take the port in between; nginx then fails to
//! bind and exits, and the test retries with a fresh port (at most 5 times).

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Empty;

use support::config::DecisionGateway;
use support::echo::Echo;
use support::gateway::{port_for_child, send, Gateway, Reply};
use support::idp::Idp;

/// The nginx binary: AUTHGATE_NGINX, else `nginx` on PATH, else /usr/sbin/nginx. Panics when
/// there is none: this test must never pass by skipping.
fn nginx_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("AUTHGATE_NGINX") {
        return PathBuf::from(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("nginx"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "nginx is not installed: the decision-mode end-to-end test needs it \
                 (apt-get install -y nginx, or AUTHGATE_NGINX=/path/to/nginx)"
            )
        })
}

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "authgate-nginx-{}-{n}-{}",
            std::process::id(),
            support::idp::now()
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running nginx, killed on drop.
struct Nginx {
    child: Child,
    addr: SocketAddr,
    dir: TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Nginx {
    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("error.log")).unwrap_or_default()
    }
}

fn config(dir: &Path, port: u16, decision: SocketAddr, echo: SocketAddr) -> String {
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/nginx");
    let dir = dir.display();
    let deploy = deploy.display();
    format!(
        r#"
master_process off;
daemon off;
error_log {dir}/error.log info;
pid {dir}/nginx.pid;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;

    upstream authgate_decision {{ server {decision}; keepalive 4; }}

    server {{
        listen 127.0.0.1:{port};
        include {deploy}/authgate-decision.conf;
        location / {{
            include {deploy}/authgate-protect.conf;
            proxy_pass http://{echo};
        }}
    }}
}}
"#
    )
}

/// Starts nginx on a free loopback port (see the module doc for the retry).
async fn start_nginx(decision: SocketAddr, echo: SocketAddr) -> Nginx {
    let binary = nginx_binary();
    let mut failures = Vec::new();
    for _ in 0..5 {
        let port = port_for_child();
        let dir = TempDir::new();
        let conf = dir.0.join("nginx.conf");
        std::fs::write(&conf, config(&dir.0, port, decision, echo)).expect("write nginx.conf");
        let child = Command::new(&binary)
            .arg("-p")
            .arg(&dir.0)
            .arg("-e")
            .arg(dir.0.join("error.log"))
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
        let mut nginx = Nginx {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir,
        };
        // Ready when it accepts; gone when it exited (port taken, bad config).
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Ok(Some(status)) = nginx.child.try_wait() {
                failures.push(format!("exited with {status}: {}", nginx.error_log()));
                break;
            }
            if tokio::net::TcpStream::connect(nginx.addr).await.is_ok() {
                return nginx;
            }
            if Instant::now() > deadline {
                panic!("nginx did not listen within 5s: {}", nginx.error_log());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    panic!("nginx did not start in 5 attempts: {failures:#?}");
}

async fn gateway(idp: &Idp, echo: &Echo) -> Gateway {
    let config = DecisionGateway {
        issuer: &idp.issuer(),
        jwks_uri: &idp.jwks_uri(),
        echo,
        trusted: "127.0.0.1/32",
        server: "",
        main_lines: "",
        orders_lines: "",
    };
    Gateway::from_toml(config.toml()).start().await
}

async fn get(nginx: &Nginx, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut request = Request::get(path)
        .header("host", "api.test")
        .body(Empty::<Bytes>::new())
        .expect("request");
    for (name, value) in headers {
        let name = http::HeaderName::from_bytes(name.as_bytes()).expect("name");
        request
            .headers_mut()
            .append(name, value.parse().expect("value"));
    }
    send(nginx.addr, request).await
}

#[tokio::test]
async fn nginx_auth_request_in_front_of_the_upstream() {
    let idp = Idp::start().await;
    let echo = Echo::start().await;
    let gateway = gateway(&idp, &echo).await;
    let nginx = start_nginx(gateway.decision_addr(), echo.addr()).await;
    let log = || nginx.error_log();

    // Allow: the upstream gets authgate's identity headers, never the client's.
    let token = idp.token().scope("orders:read").client_id("web").sign();
    let auth = format!("Bearer {token}");
    let spoofed = [
        ("authorization", auth.as_str()),
        ("x-auth-subject", "root"),
        ("x-auth-scopes", "admin"),
        ("x-auth-client-id", "evil"),
        ("x-auth-issuer", "https://evil.test/"),
        ("x-client-cert-subject", "CN=admin"),
        ("x-forwarded-for", "192.0.2.1"),
    ];
    let reply = get(&nginx, "/orders/1?x=1", &spoofed).await;
    assert_eq!(reply.status, StatusCode::OK, "{} {}", reply.text(), log());
    let seen = reply.echoed();
    assert_eq!(seen.path, "/orders/1?x=1");
    assert_eq!(seen.header_all("x-auth-subject"), ["svc-1"]);
    assert_eq!(seen.header_all("x-auth-scopes"), ["orders:read"]);
    assert_eq!(seen.header_all("x-auth-client-id"), ["web"]);
    assert_eq!(seen.header_all("x-auth-issuer"), [idp.issuer().as_str()]);
    assert!(!seen.has_header("x-client-cert-subject"));
    assert_eq!(seen.header("authorization"), Some(auth.as_str()));

    // A public route: allowed, and no identity header reaches the upstream at all.
    let reply = get(&nginx, "/public/a", &spoofed[1..]).await;
    assert_eq!(reply.status, StatusCode::OK, "{} {}", reply.text(), log());
    let seen = reply.echoed();
    for name in [
        "x-auth-subject",
        "x-auth-scopes",
        "x-auth-client-id",
        "x-auth-issuer",
    ] {
        assert!(
            !seen.has_header(name),
            "{name} reached the upstream: {seen:?}"
        );
    }

    let before = echo.requests_seen().len();
    // 401 without a token, with authgate's challenge.
    let reply = get(&nginx, "/orders/1", &[]).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", log());
    assert_eq!(
        reply.header("www-authenticate"),
        Some("Bearer realm=\"authgate\"")
    );
    // 401 for a bad token; the path is canonicalized as the proxy would (`/admin`).
    let bad = format!("Bearer {}", idp.token().sign_bad_signature());
    let reply = get(&nginx, "/public/%2e%2e/admin", &[("authorization", &bad)]).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", log());
    assert!(reply
        .header("www-authenticate")
        .is_some_and(|c| c.contains("error=\"invalid_token\"")));
    // 403 insufficient scope, with its challenge.
    let reply = get(&nginx, "/admin/users", &[("authorization", &auth)]).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", log());
    let challenges: Vec<_> = reply.headers.get_all("www-authenticate").iter().collect();
    assert_eq!(challenges.len(), 1, "{challenges:?}");
    assert!(
        challenges[0].to_str().is_ok_and(
            |c| c.contains("error=\"insufficient_scope\"") && c.contains("scope=\"admin\"")
        )
    );
    // 403 ip_not_allowed: the client address nginx saw (127.0.0.1), not a spoofed chain.
    let reply = get(
        &nginx,
        "/office/a",
        &[("authorization", &auth), ("x-forwarded-for", "192.0.2.1")],
    )
    .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", log());
    assert!(reply.header("www-authenticate").is_none());
    // IdP outage: 503 with Retry-After (not nginx's 500).
    let down = format!("Bearer {}", idp.token().iss("https://down.test/").sign());
    let reply = get(&nginx, "/down/x", &[("authorization", &down)]).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{}", log());
    assert_eq!(reply.header("retry-after"), Some("5"));
    assert_eq!(reply.json()["error"], "unavailable");
    // No refused request reached the upstream.
    assert_eq!(echo.requests_seen().len(), before, "a refusal was proxied");

    // The decisions were counted as decisions of the routes.
    let metrics = gateway.metrics().await;
    for line in [
        r#"authgate_auth_decisions_total{decision="allow",reason="ok",route="orders"} 1"#,
        r#"authgate_auth_decisions_total{decision="deny",reason="insufficient_scope",route="admin"} 1"#,
        r#"authgate_requests_total{code="503",route="down"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} not in:\n{metrics}");
    }
}
