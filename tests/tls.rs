//! The TLS listener from the outside (SPEC §2 `[server.tls]`, §3 step 5, §4 X-Client-Cert-*,
//! §6 reload): ALPN, client certificates in optional and required mode, certificate-bound
//! tokens (RFC 8705), certificate reload and config errors.
//!
//! The PKI is generated with rcgen at test time; PEM files go to a scratch directory under the
//! system temp dir. Every gateway and upstream binds 127.0.0.1:0.

#[path = "support/pki.rs"]
mod pki;

use authgate::metrics::Metrics;
use authgate::server::ConfigOrigin;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::StatusCode;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use pki::{eventually, get, get_with, Ca, Echo, Gateway, Leaf, Scratch, TlsClient, EVENTUALLY};
use serde_json::json;

const HMAC_SECRET: &str = "tls-tests-hmac-secret-0123456789abcdef";
const LOOSE_ISS: &str = "https://bound-idp.test/";
const STRICT_ISS: &str = "https://strict-idp.test/";
const AUDIENCE: &str = "api://tls-tests";

/// Two CAs (server, client), their leaves and the PEM files the gateway reads.
struct Pki {
    server_ca: Ca,
    client_ca: Ca,
    server: Leaf,
    client: Leaf,
    dir: Scratch,
}

impl Pki {
    fn new(label: &str) -> Pki {
        let server_ca = Ca::new("authgate test server ca");
        let client_ca = Ca::new("authgate test client ca");
        let server = server_ca.server("localhost");
        let client = client_ca.client("client-1", "Example");
        let dir = Scratch::new(label);
        dir.write("server.pem", &server.cert_pem);
        dir.write("server-key.pem", &server.key_pem);
        dir.write("client-ca.pem", &client_ca.pem());
        Pki {
            server_ca,
            client_ca,
            server,
            client,
            dir,
        }
    }

    fn file(&self, name: &str) -> String {
        pki::toml_path(&self.dir.path(name))
    }

    /// A `[server.tls]` table in `mode` (`off`, `optional`, `required`).
    fn tls_table(&self, mode: &str) -> String {
        let client_ca = if mode == "off" {
            String::new()
        } else {
            format!("client_ca_file = {}\n", self.file("client-ca.pem"))
        };
        format!(
            r#"
[server.tls]
listen = "127.0.0.1:0"
cert_file = {cert}
key_file = {key}
{client_ca}client_cert = "{mode}"
handshake_timeout = "5s"

[admin]
listen = "127.0.0.1:0"
"#,
            cert = self.file("server.pem"),
            key = self.file("server-key.pem"),
        )
    }

    fn client(&self, alpn: &[&[u8]], cert: Option<&Leaf>) -> TlsClient {
        TlsClient::new(&[self.server_ca.der()], alpn, cert)
    }
}

/// Public routes `/public` and `/mtls` (client_cert = "required", only when client
/// certificates are on), and token routes `/api` (issuer `loose`) and `/strict` (issuer
/// `strict`, require_bound_tokens), all to `echo`.
fn routes(echo: &Echo, mtls_route: bool) -> String {
    let mtls = if mtls_route { MTLS_ROUTE } else { "" };
    format!(
        r#"
[[issuers]]
name = "loose"
issuer = "{LOOSE_ISS}"
hmac_secret = "{HMAC_SECRET}"
audiences = ["{AUDIENCE}"]

[[issuers]]
name = "strict"
issuer = "{STRICT_ISS}"
hmac_secret = "{HMAC_SECRET}"
audiences = ["{AUDIENCE}"]
require_bound_tokens = true

[[upstreams]]
name = "echo"
url = "{url}"

[[routes]]
name = "public"
path_prefix = "/public"
upstream = "echo"
public = true
{mtls}
[[routes]]
name = "api"
path_prefix = "/api"
upstream = "echo"
issuers = ["loose"]
scopes = ["read"]

[[routes]]
name = "strict"
path_prefix = "/strict"
upstream = "echo"
issuers = ["strict"]
scopes = ["read"]
"#,
        url = echo.url()
    )
}

const MTLS_ROUTE: &str = r#"
[[routes]]
name = "mtls"
path_prefix = "/mtls"
upstream = "echo"
public = true
client_cert = "required"

[[routes]]
name = "mtls-elsewhere"
path_prefix = "/mtls-elsewhere"
upstream = "echo"
public = true
client_cert = "required"
allow = ["10.0.0.0/8"]
"#;

async fn gateway(pki: &Pki, mode: &str, echo: &Echo) -> Gateway {
    let text = format!("{}{}", pki.tls_table(mode), routes(echo, mode != "off"));
    Gateway::from_toml(&text).await
}

/// An HS256 token for `iss`, bound to `bound_to` when given (RFC 8705 `cnf.x5t#S256`).
fn token(iss: &str, bound_to: Option<&Leaf>) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut claims = json!({
        "iss": iss,
        "aud": AUDIENCE,
        "sub": "machine-1",
        "scope": "read",
        "iat": now,
        "exp": now + 300,
    });
    if let Some(leaf) = bound_to {
        claims["cnf"] = json!({ "x5t#S256": URL_SAFE_NO_PAD.encode(leaf.sha256()) });
    }
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(HMAC_SECRET.as_bytes()),
    )
    .expect("sign token")
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

const HANDSHAKE_FAILURES: &str = "authgate_tls_handshake_failures_total";

// ---------------------------------------------------------------------------------------------
// 1. ALPN

#[tokio::test]
async fn alpn_h2_and_http1_reach_the_upstream_as_https() {
    let pki = Pki::new("tls-alpn");
    let echo = Echo::start().await;
    let gateway = gateway(&pki, "off", &echo).await;

    // The client offers h2 (and http/1.1): the gateway picks h2.
    let h2 = pki.client(&[b"h2", b"http/1.1"], None);
    let (reply, negotiated) = h2
        .request(gateway.https(), get("/public/x"))
        .await
        .expect("h2 request");
    assert_eq!(negotiated.alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(reply.version, http::Version::HTTP_2);
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(
        reply.upstream_header("x-forwarded-proto").as_deref(),
        Some("https")
    );
    assert_eq!(reply.json()["path"], "/public/x");

    // Only http/1.1 offered: HTTP/1.1.
    let h1 = pki.client(&[b"http/1.1"], None);
    let (reply, negotiated) = h1
        .request(gateway.https(), get("/public/y"))
        .await
        .expect("http/1.1 request");
    assert_eq!(negotiated.alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(reply.version, http::Version::HTTP_11);
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(
        reply.upstream_header("x-forwarded-proto").as_deref(),
        Some("https")
    );

    // No ALPN at all: HTTP/1.1 still works.
    let plain = pki.client(&[], None);
    let (reply, negotiated) = plain
        .request(gateway.https(), get("/public/z"))
        .await
        .expect("request without alpn");
    assert_eq!(negotiated.alpn, None);
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());

    // A client-sent X-Forwarded-Proto from an untrusted peer is overwritten.
    let reply = h1
        .send(
            gateway.https(),
            get_with("/public/forged", &[("x-forwarded-proto", "http")]),
        )
        .await;
    assert_eq!(
        reply.upstream_headers("x-forwarded-proto"),
        vec!["https".to_string()]
    );
}

// ---------------------------------------------------------------------------------------------
// 2. mTLS optional

#[tokio::test]
async fn optional_client_cert_headers_and_required_routes() {
    let pki = Pki::new("tls-optional");
    let echo = Echo::start().await;
    let gateway = gateway(&pki, "optional", &echo).await;
    let forged = [
        ("x-client-cert-subject", "CN=forged,O=Evil"),
        ("x-client-cert-sha256", "00"),
        ("x_client_cert_subject", "CN=forged-underscore"),
        ("X-Client-Cert-Chain", "forged"),
    ];

    // No client certificate: public routes pass, no cert headers (forged ones stripped).
    for alpn in [&[&b"h2"[..]][..], &[&b"http/1.1"[..]][..]] {
        let anonymous = pki.client(alpn, None);
        let reply = anonymous
            .send(gateway.https(), get_with("/public", &forged))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        for (name, _) in forged {
            assert_eq!(reply.upstream_headers(name), Vec::<String>::new(), "{name}");
        }

        // A route that requires a certificate refuses, with the SPEC's JSON error.
        let reply = anonymous.send(gateway.https(), get("/mtls")).await;
        reply.assert_error(403, "client_certificate_required");
        // The allowlist (step 4) answers before the certificate check (step 5).
        let reply = anonymous
            .send(gateway.https(), get("/mtls-elsewhere"))
            .await;
        reply.assert_error(403, "ip_not_allowed");
    }

    // With a verified certificate: the route passes and the upstream learns who it is.
    for alpn in [&[&b"h2"[..]][..], &[&b"http/1.1"[..]][..]] {
        let authenticated = pki.client(alpn, Some(&pki.client));
        for path in ["/mtls/x", "/public/x"] {
            let reply = authenticated
                .send(gateway.https(), get_with(path, &forged))
                .await;
            assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text());
            assert_eq!(
                reply.upstream_headers("x-client-cert-subject"),
                vec!["CN=client-1,O=Example".to_string()],
                "{path}"
            );
            // Compared with openssl's fingerprint of the PEM, not with a hash of our own.
            assert_eq!(
                reply.upstream_headers("x-client-cert-sha256"),
                vec![pki.client.openssl_sha256_hex()],
                "{path}"
            );
            assert_eq!(
                reply.upstream_headers("x_client_cert_subject"),
                Vec::<String>::new()
            );
            assert_eq!(
                reply.upstream_headers("x-client-cert-chain"),
                Vec::<String>::new()
            );
        }
    }
    // The hex is lowercase and 64 characters long.
    let hex = pki.client.openssl_sha256_hex();
    assert_eq!(hex.len(), 64);
    assert_eq!(hex, hex.to_lowercase());
}

/// Issue 12 item 12 (SPEC §4): a subject with non-ASCII text, a bidi override and a C1 control
/// reaches the upstream as ASCII, each UTF-8 byte as `\XX`.
#[tokio::test]
async fn a_non_ascii_client_subject_reaches_the_upstream_escaped() {
    let pki = Pki::new("tls-subject");
    let echo = Echo::start().await;
    let gateway = gateway(&pki, "optional", &echo).await;
    let leaf = pki
        .client_ca
        .client("J\u{fc}rgen\u{202e}txt.exe\u{85}", "Caf\u{e9}, Ltd");
    let reply = pki
        .client(&[b"http/1.1"], Some(&leaf))
        .send(gateway.https(), get("/mtls/x"))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(
        reply.upstream_headers("x-client-cert-subject"),
        vec![r"CN=J\C3\BCrgen\E2\80\AEtxt.exe\C2\85,O=Caf\C3\A9\, Ltd".to_string()]
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Handshake failures

#[tokio::test]
async fn required_listener_refuses_missing_and_foreign_certificates() {
    let pki = Pki::new("tls-required");
    let echo = Echo::start().await;
    let gateway = gateway(&pki, "required", &echo).await;
    let before = gateway.metric_sum(HANDSHAKE_FAILURES, "").await;

    // A valid certificate passes.
    let good = pki.client(&[b"h2", b"http/1.1"], Some(&pki.client));
    let reply = good.send(gateway.https(), get("/public")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());

    // No certificate: the handshake fails (with TLS 1.3 the client learns it on first read).
    let anonymous = pki.client(&[b"http/1.1"], None);
    let result = anonymous.request(gateway.https(), get("/public")).await;
    assert!(
        result.is_err(),
        "no client cert must fail: {:?}",
        result.map(|r| r.0)
    );

    // A certificate from another CA: the handshake fails.
    let other_ca = Ca::new("some other ca");
    let foreign = other_ca.client("client-1", "Example");
    let stranger = pki.client(&[b"http/1.1"], Some(&foreign));
    let result = stranger.request(gateway.https(), get("/public")).await;
    assert!(
        result.is_err(),
        "foreign client cert must fail: {:?}",
        result.map(|r| r.0)
    );

    let counted = eventually(EVENTUALLY, || async {
        gateway.metric_sum(HANDSHAKE_FAILURES, "").await >= before + 2.0
    })
    .await;
    assert!(
        counted,
        "{HANDSHAKE_FAILURES} did not grow by 2:\n{}",
        gateway.metrics().await
    );
}

#[tokio::test]
async fn optional_listener_refuses_a_certificate_that_does_not_verify() {
    let pki = Pki::new("tls-optional-foreign");
    let echo = Echo::start().await;
    let gateway = gateway(&pki, "optional", &echo).await;
    let before = gateway.metric_sum(HANDSHAKE_FAILURES, "").await;

    let other_ca = Ca::new("some other ca");
    let foreign = other_ca.client("client-1", "Example");
    let stranger = pki.client(&[b"h2", b"http/1.1"], Some(&foreign));
    let result = stranger.request(gateway.https(), get("/public")).await;
    assert!(
        result.is_err(),
        "a presented certificate that does not verify must fail the handshake: {:?}",
        result.map(|r| r.0)
    );
    // A self-signed client certificate fails too.
    let leaf = pki::self_signed_client("client-1");
    let stranger = pki.client(&[b"http/1.1"], Some(&leaf));
    assert!(stranger
        .request(gateway.https(), get("/public"))
        .await
        .is_err());

    let counted = eventually(EVENTUALLY, || async {
        gateway.metric_sum(HANDSHAKE_FAILURES, "").await >= before + 2.0
    })
    .await;
    assert!(
        counted,
        "{HANDSHAKE_FAILURES} did not grow by 2:\n{}",
        gateway.metrics().await
    );

    // Without a certificate the same listener still serves.
    let anonymous = pki.client(&[b"http/1.1"], None);
    let reply = anonymous.send(gateway.https(), get("/public")).await;
    assert_eq!(reply.status, StatusCode::OK);
}

// ---------------------------------------------------------------------------------------------
// 4. Certificate-bound tokens (RFC 8705)

#[tokio::test]
async fn certificate_bound_tokens() {
    let pki = Pki::new("tls-bound");
    let echo = Echo::start().await;
    let gateway = gateway(&pki, "optional", &echo).await;
    let second = pki.client_ca.client("client-2", "Example");
    let with_cert = pki.client(&[b"h2", b"http/1.1"], Some(&pki.client));
    let with_other_cert = pki.client(&[b"http/1.1"], Some(&second));
    let anonymous = pki.client(&[b"http/1.1"], None);
    let bound = token(LOOSE_ISS, Some(&pki.client));
    let auth = bearer(&bound);

    // Over a connection with the bound certificate: accepted (twice: the second is a cache hit).
    for _ in 0..2 {
        let reply = with_cert
            .send(
                gateway.https(),
                get_with("/api/orders", &[("authorization", &auth)]),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        assert_eq!(
            reply.upstream_header("x-auth-subject").as_deref(),
            Some("machine-1")
        );
    }

    // Another valid certificate of the same CA, or none: refused, also after caching.
    for client in [&with_other_cert, &anonymous] {
        let reply = client
            .send(
                gateway.https(),
                get_with("/api/orders", &[("authorization", &auth)]),
            )
            .await;
        reply.assert_error(401, "invalid_token");
        let challenge = reply
            .headers
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(challenge.contains("invalid_token"), "{challenge}");
    }

    // A token bound to the second certificate works over the second certificate only.
    let auth_second = bearer(&token(LOOSE_ISS, Some(&second)));
    let reply = with_other_cert
        .send(
            gateway.https(),
            get_with("/api/orders", &[("authorization", &auth_second)]),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let reply = with_cert
        .send(
            gateway.https(),
            get_with("/api/orders", &[("authorization", &auth_second)]),
        )
        .await;
    reply.assert_error(401, "invalid_token");

    // An unbound token is fine for the loose issuer, with or without a certificate.
    let unbound = bearer(&token(LOOSE_ISS, None));
    for client in [&with_cert, &anonymous] {
        let reply = client
            .send(
                gateway.https(),
                get_with("/api/orders", &[("authorization", &unbound)]),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    }

    // require_bound_tokens: an unbound token is refused even over a certificate connection;
    // a bound one passes.
    let strict_unbound = bearer(&token(STRICT_ISS, None));
    for client in [&with_cert, &anonymous] {
        let reply = client
            .send(
                gateway.https(),
                get_with("/strict", &[("authorization", &strict_unbound)]),
            )
            .await;
        reply.assert_error(401, "invalid_token");
    }
    let strict_bound = bearer(&token(STRICT_ISS, Some(&pki.client)));
    let reply = with_cert
        .send(
            gateway.https(),
            get_with("/strict", &[("authorization", &strict_bound)]),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
}

// ---------------------------------------------------------------------------------------------
// 5. Certificate reload

#[tokio::test]
async fn reload_swaps_the_certificate_for_new_connections_and_refuses_broken_keys() {
    let pki = Pki::new("tls-reload");
    let echo = Echo::start().await;
    let config = pki.dir.write(
        "authgate.toml",
        &format!("{}{}", pki.tls_table("off"), routes(&echo, false)),
    );
    let gateway = Gateway::start(ConfigOrigin::File(config))
        .await
        .expect("gateway starts");
    let client = pki.client(&[b"http/1.1"], None);
    let addr = gateway.https();

    // A keep-alive connection opened before the reload.
    let mut kept = client.open_h1(addr).await.expect("keep-alive connection");
    assert_eq!(kept.server_cert.as_ref(), Some(&pki.server.der));
    let reply = kept
        .send(get("/public/before"))
        .await
        .expect("first request");
    assert_eq!(reply.status, StatusCode::OK);

    // New certificate (new key, serial and CN), then reload.
    let renewed = pki.server_ca.server("localhost-renewed");
    assert_ne!(renewed.der, pki.server.der);
    pki.dir.write("server.pem", &renewed.cert_pem);
    pki.dir.write("server-key.pem", &renewed.key_pem);
    gateway.handle.reload().await;
    let swapped = eventually(EVENTUALLY, || async {
        match client.connect(addr).await {
            Ok(conn) => conn.server_cert.as_ref() == Some(&renewed.der),
            Err(_) => false,
        }
    })
    .await;
    assert!(swapped, "new connections never saw the renewed certificate");
    assert!(
        gateway
            .metric_sum("authgate_config_reloads_total", r#"result="success""#)
            .await
            >= 2.0,
        "{}",
        gateway.metrics().await
    );
    let reply = client.send(addr, get("/public/after")).await;
    assert_eq!(reply.status, StatusCode::OK);

    // The connection opened before still works.
    let reply = kept
        .send(get("/public/kept"))
        .await
        .expect("keep-alive connection survives the reload");
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["path"], "/public/kept");

    // A broken key (with yet another certificate): the reload is refused and counted, new
    // connections still get the renewed certificate.
    let third = pki.server_ca.server("localhost-third");
    pki.dir.write("server.pem", &third.cert_pem);
    pki.dir.write(
        "server-key.pem",
        "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n",
    );
    let errors_before = gateway
        .metric_sum("authgate_config_reloads_total", r#"result="error""#)
        .await;
    gateway.handle.reload().await;
    let refused = eventually(EVENTUALLY, || async {
        gateway
            .metric_sum("authgate_config_reloads_total", r#"result="error""#)
            .await
            >= errors_before + 1.0
    })
    .await;
    assert!(
        refused,
        "no reload error counted:\n{}",
        gateway.metrics().await
    );
    let conn = client
        .connect(addr)
        .await
        .expect("connect after refused reload");
    assert_eq!(conn.server_cert.as_ref(), Some(&renewed.der));
    let reply = client.send(addr, get("/public/still")).await;
    assert_eq!(reply.status, StatusCode::OK);

    // A key file that is not PEM at all, likewise.
    pki.dir.write("server-key.pem", "garbage\n");
    gateway.handle.reload().await;
    let refused = eventually(EVENTUALLY, || async {
        gateway
            .metric_sum("authgate_config_reloads_total", r#"result="error""#)
            .await
            >= errors_before + 2.0
    })
    .await;
    assert!(refused, "{}", gateway.metrics().await);
    let conn = client
        .connect(addr)
        .await
        .expect("connect after refused reload");
    assert_eq!(conn.server_cert.as_ref(), Some(&renewed.der));
}

// ---------------------------------------------------------------------------------------------
// 6. Config errors

fn load(text: &str) -> Result<(), String> {
    ConfigOrigin::Text {
        name: "test.toml".into(),
        text: text.into(),
    }
    .load(&Metrics::new(), None)
    .map(|_| ())
    .map_err(|e| e.to_string())
}

#[tokio::test]
async fn required_route_cert_with_certificates_off_is_invalid() {
    let pki = Pki::new("tls-config");
    let echo = Echo::start().await;
    let text = format!("{}{}", pki.tls_table("off"), routes(&echo, true));
    // The `client_cert = "required"` of route `mtls`.
    let line = text
        .lines()
        .position(|l| l.trim() == r#"client_cert = "required""#)
        .expect("route line")
        + 1;
    let error = load(&text).expect_err("client_cert = required with tls client_cert off");
    assert!(error.contains("client_cert"), "{error}");
    assert!(error.contains(&format!(":{line}:")), "line {line}: {error}");

    // Handle::start refuses it the same way, without binding anything.
    let error = match Gateway::start(ConfigOrigin::Text {
        name: "test.toml".into(),
        text: text.clone(),
    })
    .await
    {
        Ok(_) => panic!("gateway started with an invalid config"),
        Err(error) => error.to_string(),
    };
    assert!(error.contains("client_cert"), "{error}");

    // Without any [server.tls] it is invalid too.
    let no_tls = format!("[admin]\nlisten = \"127.0.0.1:0\"\n{}", routes(&echo, true));
    let error = load(&no_tls).expect_err("client_cert = required without tls");
    assert!(error.contains("client_cert"), "{error}");

    // The same config with optional client certificates loads.
    load(&format!(
        "{}{}",
        pki.tls_table("optional"),
        routes(&echo, true)
    ))
    .expect("optional loads");
}

#[tokio::test]
async fn missing_tls_files_are_named() {
    let pki = Pki::new("tls-missing");
    let echo = Echo::start().await;
    let good = format!("{}{}", pki.tls_table("optional"), routes(&echo, true));
    for file in ["server.pem", "server-key.pem", "client-ca.pem"] {
        let missing = pki.dir.path(&format!("missing-{file}"));
        let text = good.replace(&pki.file(file), &pki::toml_path(&missing));
        let error = load(&text).expect_err("a missing file is an error");
        assert!(
            error.contains(&missing.display().to_string()),
            "error names {}: {error}",
            missing.display()
        );
        // The key file's contents never appear; only its path.
        assert!(!error.contains("PRIVATE KEY"), "{error}");
    }
}

// ---------------------------------------------------------------------------------------------
// Handshake timeout and client CA reload

#[tokio::test]
async fn a_silent_client_is_dropped_after_the_handshake_timeout() {
    use tokio::io::AsyncReadExt;

    let pki = Pki::new("tls-timeout");
    let echo = Echo::start().await;
    let text = format!("{}{}", pki.tls_table("off"), routes(&echo, false)).replace(
        r#"handshake_timeout = "5s""#,
        r#"handshake_timeout = "300ms""#,
    );
    let gateway = Gateway::from_toml(&text).await;

    // Connect and say nothing: the gateway closes the connection after the timeout.
    let mut silent = tokio::net::TcpStream::connect(gateway.https())
        .await
        .expect("connect");
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), silent.read(&mut buf))
        .await
        .expect("the gateway closes a silent connection well before 5s");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    let counted = eventually(EVENTUALLY, || async {
        gateway
            .metric_sum(HANDSHAKE_FAILURES, r#"reason="timeout""#)
            .await
            >= 1.0
    })
    .await;
    assert!(counted, "{}", gateway.metrics().await);

    // Other clients were never stalled.
    let reply = pki
        .client(&[b"h2"], None)
        .send(gateway.https(), get("/public"))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn reload_applies_a_new_client_ca_to_new_connections() {
    let pki = Pki::new("tls-client-ca-reload");
    let echo = Echo::start().await;
    let config = pki.dir.write(
        "authgate.toml",
        &format!("{}{}", pki.tls_table("required"), routes(&echo, true)),
    );
    let gateway = Gateway::start(ConfigOrigin::File(config))
        .await
        .expect("gateway starts");
    let addr = gateway.https();
    let old_client = pki.client(&[b"http/1.1"], Some(&pki.client));
    let reply = old_client.send(addr, get("/mtls")).await;
    assert_eq!(reply.status, StatusCode::OK);
    let mut kept = old_client
        .open_h1(addr)
        .await
        .expect("keep-alive connection");
    assert_eq!(
        kept.send(get("/mtls")).await.expect("request").status,
        StatusCode::OK
    );

    // The operator rotates the client CA.
    let new_ca = Ca::new("rotated client ca");
    let new_leaf = new_ca.client("client-9", "Rotated");
    pki.dir.write("client-ca.pem", &new_ca.pem());
    gateway.handle.reload().await;
    let new_client = pki.client(&[b"http/1.1"], Some(&new_leaf));
    let swapped = eventually(EVENTUALLY, || async {
        matches!(
            new_client.request(addr, get("/mtls")).await,
            Ok((reply, _)) if reply.status == StatusCode::OK
        )
    })
    .await;
    assert!(swapped, "the new client CA never applied");
    let reply = new_client.send(addr, get("/mtls")).await;
    assert_eq!(
        reply.upstream_header("x-client-cert-subject").as_deref(),
        Some("CN=client-9,O=Rotated")
    );
    // New connections with the old CA's certificate fail; the open one keeps working.
    assert!(old_client.request(addr, get("/mtls")).await.is_err());
    assert_eq!(
        kept.send(get("/mtls"))
            .await
            .expect("kept connection")
            .status,
        StatusCode::OK
    );
}

// ---------------------------------------------------------------------------------------------
// Revocation

#[tokio::test]
async fn a_revoked_client_certificate_fails_the_handshake() {
    let pki = Pki::new("tls-crl");
    let echo = Echo::start().await;
    let revoked = pki.client_ca.client("client-revoked", "Example");
    pki.dir
        .write("client.crl", &pki.client_ca.crl_pem(&[&revoked]));
    let table = pki.tls_table("optional").replace(
        "client_cert = \"optional\"",
        &format!(
            "client_crl_file = {}\nclient_cert = \"optional\"",
            pki.file("client.crl")
        ),
    );
    let gateway = Gateway::from_toml(&format!("{table}{}", routes(&echo, true))).await;

    let good = pki.client(&[b"http/1.1"], Some(&pki.client));
    let reply = good.send(gateway.https(), get("/mtls")).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "an unrevoked certificate passes: {}",
        reply.text()
    );

    let bad = pki.client(&[b"http/1.1"], Some(&revoked));
    let result = bad.request(gateway.https(), get("/public")).await;
    assert!(
        result.is_err(),
        "a revoked certificate must fail the handshake: {:?}",
        result.map(|r| r.0)
    );

    // The control: without the CRL the very same certificate is accepted, so the failure
    // above is the revocation and nothing else about that certificate.
    let without_crl = Gateway::from_toml(&format!(
        "{}{}",
        pki.tls_table("optional"),
        routes(&echo, true)
    ))
    .await;
    let reply = bad.send(without_crl.https(), get("/mtls")).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "the revoked certificate passes without the CRL: {}",
        reply.text()
    );
    assert_eq!(
        reply.upstream_headers("x-client-cert-subject"),
        vec!["CN=client-revoked,O=Example".to_string()]
    );
}

/// SPEC §6: `authgate_certificate_expiry_timestamp_seconds` for the server certificate, each
/// client CA and each CRL's next update.
#[tokio::test]
async fn certificate_expiries_are_exported() {
    let pki = Pki::new("tls-expiry");
    let echo = Echo::start().await;
    pki.dir.write("client.crl", &pki.client_ca.crl_pem(&[]));
    let table = pki.tls_table("optional").replace(
        "client_cert = \"optional\"",
        &format!(
            "client_crl_file = {}\nclient_cert = \"optional\"",
            pki.file("client.crl")
        ),
    );
    let gateway = Gateway::from_toml(&format!("{table}{}", routes(&echo, true))).await;
    let metrics = gateway.metrics().await;
    let family = "authgate_certificate_expiry_timestamp_seconds";
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let server = pki::metric_sum(&metrics, family, "kind=\"server\"");
    assert!(server > now, "server certificate expiry: {metrics}");
    assert!(metrics.contains("name=\"CN=localhost\""), "{metrics}");
    let ca = pki::metric_sum(&metrics, family, "kind=\"client_ca\"");
    assert!(ca > now, "client CA expiry: {metrics}");
    // The test CRL's nextUpdate is 2100-01-01T00:00:00Z.
    let crl = pki::metric_sum(&metrics, family, "kind=\"crl_next_update\"");
    assert_eq!(crl, 4_102_444_800.0, "{metrics}");
}
