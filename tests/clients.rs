//! Per-client policy, token classes, implied scopes and non-ASCII claims from the outside
//! (SPEC §7.2; issue "every identity provider" items 2-4 and 6): the real gateway over TLS with
//! client certificates, HS256 tokens shaped as the providers mint them, and an echo upstream
//! that shows what was forwarded. Everything binds 127.0.0.1:0.

#[path = "support/pki.rs"]
mod pki;

use http::StatusCode;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use pki::{get_with, Ca, Echo, Gateway, Leaf, Scratch, TlsClient};
use serde_json::{json, Value};

const SECRET: &str = "clients-tests-hmac-secret-0123456789ab";
const ISS: &str = "https://partners-idp.test/";

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// An access token of the provider: HS256, no `typ`, `client_id`, space-separated `scope`.
fn token(client_id: &str, scope: &str, edit: impl FnOnce(&mut Value)) -> String {
    let now = now();
    let mut claims = json!({
        "iss": ISS,
        "aud": "partners-api",
        "sub": format!("{client_id}-svc"),
        "client_id": client_id,
        "scope": scope,
        "token_use": "access",
        "iat": now,
        "exp": now + 600,
    });
    edit(&mut claims);
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("sign")
}

struct Setup {
    server_ca: Ca,
    partner_a: Leaf,
    partner_b: Leaf,
    echo: Echo,
    gateway: Gateway,
    _dir: Scratch,
}

/// TLS with optional client certificates; trusted proxy 127.0.0.1 so that tests choose the
/// client address with X-Forwarded-For. `partner-a` is pinned to its certificate's digest and
/// to 203.0.113.0/24; `partner-b` to its certificate's subject and must also hold `audit`.
async fn setup(network: &str) -> Setup {
    let server_ca = Ca::new("clients server ca");
    let client_ca = Ca::new("clients client ca");
    let server = server_ca.server("localhost");
    let partner_a = client_ca.client("partner-a", "Acme");
    let partner_b = client_ca.client("partner-b", "Globex");
    let dir = Scratch::new("clients");
    let cert = pki::toml_path(&dir.write("server.pem", &server.cert_pem));
    let key = pki::toml_path(&dir.write("server-key.pem", &server.key_pem));
    let ca = pki::toml_path(&dir.write("client-ca.pem", &client_ca.pem()));
    let echo = Echo::start().await;
    let text = format!(
        r#"
[server.tls]
listen = "127.0.0.1:0"
cert_file = {cert}
key_file = {key}
client_ca_file = {ca}
client_cert = "optional"

[admin]
listen = "127.0.0.1:0"

[network]
trusted_proxies = ["127.0.0.1/32"]
{network}

[[issuers]]
name = "partners"
issuer = "{ISS}"
hmac_secret = "{SECRET}"
audiences = ["partners-api"]
required_claims = {{ token_use = "access" }}
max_token_lifetime = "1h"
implied_scopes = {{ "admin" = ["*"], "orders:write" = ["orders:read"] }}
claim_headers = {{ "X-Auth-Region" = "region" }}

[[clients]]
client_id = "partner-a"
allow = ["203.0.113.0/24"]
client_cert_sha256 = ["{a_digest}"]

[[clients]]
client_id = "partner-b"
client_cert_subject = ["CN=partner-b,O=Globex"]
scopes = ["audit"]

[[upstreams]]
name = "echo"
url = "{url}"

[[routes]]
name = "orders"
path_prefix = "/orders"
upstream = "echo"
scopes = ["orders:read"]
"#,
        a_digest = partner_a.sha256_hex().to_uppercase(),
        url = echo.url(),
    );
    let gateway = Gateway::from_toml(&text).await;
    Setup {
        server_ca,
        partner_a,
        partner_b,
        echo,
        gateway,
        _dir: dir,
    }
}

impl Setup {
    fn client(&self, cert: Option<&Leaf>) -> TlsClient {
        TlsClient::new(&[self.server_ca.der()], &[b"http/1.1"], cert)
    }

    async fn call(&self, cert: Option<&Leaf>, from: &str, token: &str) -> pki::Reply {
        let bearer = format!("Bearer {token}");
        let request = get_with(
            "/orders/1",
            &[("authorization", &bearer), ("x-forwarded-for", from)],
        );
        self.client(cert).send(self.gateway.https(), request).await
    }
}

#[tokio::test]
async fn a_client_entry_binds_address_and_certificate_on_every_request() {
    let setup = setup("").await;
    let a = token("partner-a", "orders:read", |_| {});

    let reply = setup.call(Some(&setup.partner_a), "203.0.113.7", &a).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    // The same token, now cached: the address and certificate are checked again.
    setup
        .call(Some(&setup.partner_a), "198.51.100.7", &a)
        .await
        .assert_error(403, "ip_not_allowed");
    setup
        .call(None, "203.0.113.7", &a)
        .await
        .assert_error(403, "client_certificate_required");
    setup
        .call(Some(&setup.partner_b), "203.0.113.7", &a)
        .await
        .assert_error(403, "client_certificate_required");

    // partner-b: pinned by subject, and must hold `audit` besides the route's scopes.
    let b_without_audit = token("partner-b", "orders:read", |_| {});
    let reply = setup
        .call(Some(&setup.partner_b), "198.51.100.9", &b_without_audit)
        .await;
    reply.assert_error(403, "insufficient_scope");
    let b = token("partner-b", "orders:read audit", |_| {});
    let reply = setup.call(Some(&setup.partner_b), "198.51.100.9", &b).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    setup
        .call(Some(&setup.partner_a), "198.51.100.9", &b)
        .await
        .assert_error(403, "client_certificate_required");

    // A client without an entry is governed by the route alone.
    let other = token("partner-z", "orders:read", |_| {});
    assert_eq!(
        setup.call(None, "198.51.100.1", &other).await.status,
        StatusCode::OK
    );
    drop(setup.echo);
}

#[tokio::test]
async fn require_client_entry_refuses_unknown_clients() {
    let setup = setup("require_client_entry = true").await;
    let other = token("partner-z", "orders:read", |_| {});
    setup
        .call(None, "198.51.100.1", &other)
        .await
        .assert_error(403, "client_not_allowed");
    let anonymous = token("partner-z", "orders:read", |claims| {
        claims.as_object_mut().expect("object").remove("client_id");
    });
    setup
        .call(None, "198.51.100.1", &anonymous)
        .await
        .assert_error(403, "client_not_allowed");
    let a = token("partner-a", "orders:read", |_| {});
    assert_eq!(
        setup
            .call(Some(&setup.partner_a), "203.0.113.7", &a)
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn refresh_and_id_shaped_tokens_are_refused() {
    let setup = setup("").await;
    let cert = Some(&setup.partner_b);
    // A 180-day refresh token signed with the same secret, same scopes.
    let refresh = token("partner-b", "orders:read audit", |claims| {
        claims["token_use"] = json!("refresh");
        claims["exp"] = json!(now() + 180 * 86_400);
    });
    let reply = setup.call(cert, "198.51.100.9", &refresh).await;
    reply.assert_error(401, "invalid_token");
    // Long-lived even with the right class, or without iat: refused by max_token_lifetime.
    let long = token("partner-b", "orders:read audit", |claims| {
        claims["exp"] = json!(now() + 30 * 86_400);
    });
    let reply = setup.call(cert, "198.51.100.9", &long).await;
    reply.assert_error(401, "invalid_token");
    assert!(reply.text().contains("lifetime"), "{}", reply.text());
    let no_iat = token("partner-b", "orders:read audit", |claims| {
        claims.as_object_mut().expect("object").remove("iat");
    });
    setup
        .call(cert, "198.51.100.9", &no_iat)
        .await
        .assert_error(401, "invalid_token");
}

#[tokio::test]
async fn implied_scopes_and_non_ascii_claims() {
    let setup = setup("").await;
    let cert = Some(&setup.partner_b);
    // `orders:write` implies `orders:read`; `admin` implies every scope (`audit` included).
    for scope in ["orders:write audit", "admin"] {
        let implied = token("partner-b", scope, |_| {});
        let reply = setup.call(cert, "198.51.100.9", &implied).await;
        assert_eq!(reply.status, StatusCode::OK, "{scope}: {}", reply.text());
        assert_eq!(
            reply.upstream_header("x-auth-scopes").as_deref(),
            Some(scope),
            "the upstream sees what the token holds, not what it implies"
        );
    }
    let unrelated = token("partner-b", "billing:read audit", |_| {});
    setup
        .call(cert, "198.51.100.9", &unrelated)
        .await
        .assert_error(403, "insufficient_scope");

    // A region such as Zürich is forwarded RFC 8187-encoded; a control character still fails.
    let zurich = token("partner-b", "orders:read audit", |claims| {
        claims["region"] = json!("Z\u{fc}rich");
    });
    let reply = setup.call(cert, "198.51.100.9", &zurich).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(
        reply.upstream_header("x-auth-region").as_deref(),
        Some("UTF-8''Z%C3%BCrich")
    );
    let broken = token("partner-b", "orders:read audit", |claims| {
        claims["region"] = json!("Z\u{fc}rich\u{85}");
    });
    setup
        .call(cert, "198.51.100.9", &broken)
        .await
        .assert_error(401, "invalid_token");
}
