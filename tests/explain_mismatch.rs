//! `authgate explain` (issue 16): the token's header and claims beside what the config
//! expected, `--cert` for client-cert routes and certificate-bound tokens, and `--header`
//! for host routes and header credentials. Runs the real binary, nothing proxied.

#[path = "support/pki.rs"]
mod pki;
mod support;

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use pki::{self_signed_client, toml_path, Ca, Scratch};
use support::config::Config;

const SECRET: &str = "explain-mismatch-secret-0123456789abcdef";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn sign(claims: &Value, kid: Option<&str>) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn claims(overrides: Value) -> Value {
    let mut claims = json!({
        "iss": "https://idp/", "aud": "api://orders", "sub": "svc-7",
        "scope": "orders:read", "exp": now() + 300, "iat": now() - 10,
    });
    for (key, value) in overrides.as_object().unwrap() {
        claims[key] = value.clone();
    }
    claims
}

/// The exit code of `authgate explain`, and its stdout followed by its stderr.
fn explain(config: &std::path::Path, args: &[&str]) -> (i32, String) {
    let run = support::binary::explain(config, args);
    (run.code, run.stdout + &run.stderr)
}

const ISSUER: &str = r#"
[[issuers]]
name = "orders-idp"
issuer = "https://idp/"
hmac_secret = "explain-mismatch-secret-0123456789abcdef"
audiences = ["api://orders"]
"#;

/// [`ISSUER`] and the upstream `orders` (nothing listens there: explain connects to nothing).
fn orders_upstream() -> Config {
    Config::new()
        .raw(ISSUER)
        .upstream("orders", "http://127.0.0.1:9")
}

#[test]
fn explain_prints_each_claim_beside_what_the_config_expected() {
    let scratch = Scratch::new("explain-mismatch");
    let config = scratch.write(
        "explain.toml",
        &orders_upstream()
            .route_to(
                "orders-read",
                "/orders",
                "orders",
                "scopes = [\"orders:read\"]",
            )
            .tables(),
    );
    let run = |token: &str| explain(&config, &["--path", "/orders/7", "--token", token]);

    let (code, out) = run(&sign(&claims(json!({})), Some("k1")));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(r#"header   alg HS256, kid "k1", typ "JWT""#),
        "{out}"
    );
    assert!(out.contains(r#""api://orders" == "api://orders""#), "{out}");
    assert!(
        out.contains("required [orders:read], granted [orders:read]"),
        "{out}"
    );

    let (code, out) = run(&sign(&claims(json!({"iss": "https://idp"})), None));
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains(r#""https://idp" != configured "https://idp/" (issuer entry orders-idp)"#),
        "{out}"
    );

    let (code, out) = run(&sign(&claims(json!({"aud": ["a", "b"]})), None));
    assert_eq!(code, 3, "{out}");
    assert!(out.contains(r#"["a","b"] ∌ "api://orders""#), "{out}");

    let (code, out) = run(&sign(&claims(json!({"exp": now() - 3600})), None));
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("ago): EXPIRED, leeway"), "{out}");

    let (code, out) = run(&sign(&claims(json!({"nbf": now() + 3600})), None));
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("not valid yet, leeway 30s"), "{out}");

    let (code, out) = run(&sign(&claims(json!({"scope": "profile"})), None));
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains(
            "required [orders:read], granted [profile] (from scope, scp): missing orders:read"
        ),
        "{out}"
    );
    assert!(!out.contains(SECRET), "never the secret: {out}");
}

#[test]
fn explain_cert_evaluates_client_cert_routes_and_bound_tokens() {
    let scratch = Scratch::new("explain-cert");
    let ca = Ca::new("explain server ca");
    let server = ca.server("localhost");
    let client_ca = Ca::new("explain client ca");
    let client = client_ca.client("partner-a", "Acme");
    let other = client_ca.client("partner-b", "Acme");
    let stranger = self_signed_client("stranger");
    let write = |name: &str, text: &str| toml_path(&scratch.write(name, text));
    let config = scratch.write(
        "explain.toml",
        &format!(
            r#"
[server.tls]
listen = "127.0.0.1:0"
cert_file = {}
key_file = {}
client_ca_file = {}
client_cert = "optional"
{ISSUER}
[[upstreams]]
name = "orders"
url = "http://127.0.0.1:9"

[[routes]]
name = "admin"
path_prefix = "/admin"
upstream = "orders"
public = true
client_cert = "required"

[[routes]]
name = "orders-read"
path_prefix = "/orders"
upstream = "orders"
scopes = ["orders:read"]
"#,
            write("server.pem", &server.cert_pem),
            write("server-key.pem", &server.key_pem),
            write("client-ca.pem", &client_ca.pem()),
        ),
    );
    let client_pem = scratch.write("client.pem", &client.cert_pem);
    let other_pem = scratch.write("other.pem", &other.cert_pem);
    let stranger_pem = scratch.write("stranger.pem", &stranger.cert_pem);
    let (client_pem, other_pem, stranger_pem) = (
        client_pem.to_str().unwrap(),
        other_pem.to_str().unwrap(),
        stranger_pem.to_str().unwrap(),
    );

    // A client-cert route: the verified certificate lets the request through, none does not.
    let (code, out) = explain(&config, &["--path", "/admin/x", "--cert", client_pem]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("CN=partner-a,O=Acme") && out.contains("verifies against"),
        "{out}"
    );
    let (code, out) = explain(&config, &["--path", "/admin/x"]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("client_certificate_required"), "{out}");
    // A certificate the client CA did not issue fails the handshake.
    let (code, out) = explain(&config, &["--path", "/admin/x", "--cert", stranger_pem]);
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("does not verify") && out.contains("TLS handshake fails"),
        "{out}"
    );

    // A token bound to the client certificate.
    let x5t = URL_SAFE_NO_PAD.encode(client.sha256());
    let bound = sign(&claims(json!({"cnf": {"x5t#S256": x5t}})), None);
    // The bound token on /orders/1, with the certificate `cert` if any.
    let with_cert = |cert: Option<&str>| {
        let mut args = vec!["--path", "/orders/1", "--token", &bound];
        args.extend(cert.map(|cert| ["--cert", cert]).into_iter().flatten());
        explain(&config, &args)
    };
    let (code, out) = with_cert(Some(client_pem));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!(r#"x5t#S256 "{x5t}" == presented certificate"#)),
        "{out}"
    );
    let (code, out) = with_cert(None);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("but no client certificate presented"), "{out}");
    let (code, out) = with_cert(Some(other_pem));
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("!= presented certificate")
            && out.contains("bound to a different client certificate"),
        "{out}"
    );
}

#[test]
fn explain_header_reaches_host_routes_and_header_credentials() {
    let scratch = Scratch::new("explain-header");
    let key = "ag_k1_0123456789abcdefghijklmnopqrstuv";
    let hash = hex::encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        key.as_bytes(),
    ));
    scratch.write(
        "keys.toml",
        &format!(
            r#"
[[keys]]
id = "k1"
hash = "sha256:{hash}"
client_id = "partner-a"
scopes = ["orders:read"]
"#
        ),
    );
    let config = scratch.write(
        "explain.toml",
        &orders_upstream()
            .raw("[[api_keys]]\nname = \"partners\"\nfile = \"keys.toml\"\nheader = \"X-API-Key\"")
            .route_to(
                "tenant-api",
                "/v1",
                "orders",
                "host = \"api.example.com\"\napi_keys = [\"partners\"]\nscopes = [\"orders:read\"]",
            )
            .tables(),
    );
    let (code, out) = explain(&config, &["--path", "/v1/x"]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("no_route"), "{out}");
    let (code, out) = explain(
        &config,
        &["--path", "/v1/x", "--header", "Host: api.example.com"],
    );
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("tenant-api") && out.contains("missing_token"),
        "{out}"
    );
    let header = format!("X-API-Key: {key}");
    let (code, out) = explain(
        &config,
        &[
            "--path",
            "/v1/x",
            "--header",
            "host: api.example.com",
            "--header",
            &header,
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("valid API key, id k1"), "{out}");
    assert!(!out.contains(key), "never the key: {out}");
    let (code, _) = explain(&config, &["--path", "/v1/x", "--header", "no colon"]);
    assert_eq!(code, 1, "a malformed --header is bad input");
}
