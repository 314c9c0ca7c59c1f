//! `authgate explain` (issue 6): the offline trace, its exit codes, allow and every deny
//! reason it can meet without a connection.

mod support;

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use support::config::Config;

const SECRET: &str = "explain-test-secret-0123456789abcdef";

fn config(dir: &std::path::Path) -> std::path::PathBuf {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let internal = format!(
        "issuer = \"https://auth.internal.example\"\nhmac_secret = \"{SECRET}\"\naudiences = [\"orders\"]"
    );
    let text = Config::new()
        .issuer("internal", &internal)
        .jwks_issuer(
            "down",
            "https://down.example",
            &format!("http://{closed}/jwks.json"),
            "audiences = [\"orders\"]\nfetch_timeout = \"500ms\"",
        )
        .upstream("orders", "http://127.0.0.1:9/base")
        .route_to(
            "orders-read",
            "/orders",
            "orders",
            "methods = [\"GET\"]\nissuers = [\"internal\"]\nscopes = [\"orders:read\"]",
        )
        .route_to(
            "orders-admin",
            "/orders/admin",
            "orders",
            "issuers = [\"internal\"]\nallow = [\"10.0.0.0/8\"]",
        )
        .route_to("legacy", "/legacy", "orders", "issuers = [\"down\"]")
        .tables();
    let path = dir.join("explain.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn token(scope: &str, exp_offset: i64, secret: &str) -> String {
    token_from("https://auth.internal.example", scope, exp_offset, secret)
}

fn token_from(iss: &str, scope: &str, exp_offset: i64, secret: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = json!({
        "iss": iss, "aud": "orders", "sub": "svc-7",
        "scope": scope, "exp": now + exp_offset, "iat": now - 10,
    });
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// The exit code and stdout of `authgate explain`.
fn explain(config: &std::path::Path, args: &[&str]) -> (i32, String) {
    let run = support::binary::explain(config, args);
    (run.code, run.stdout)
}

#[test]
fn explain_traces_allow_and_every_deny_reason() {
    let dir = std::env::temp_dir().join(format!("authgate-explain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = config(&dir);
    let good = token("orders:read", 300, SECRET);

    let (code, out) = explain(
        &config,
        &[
            "--method",
            "GET",
            "--path",
            "/orders/../orders/7?x=1",
            "--token",
            &good,
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("canonical path") && out.contains("/orders/7"),
        "{out}"
    );
    assert!(
        out.contains("orders-read") && out.contains("decision: allow"),
        "{out}"
    );
    assert!(out.contains("x-auth-subject: svc-7"), "{out}");
    assert!(!out.contains(&good), "the token must not be echoed: {out}");

    let expired = token("orders:read", -3600, SECRET);
    let forged = token("orders:read", 300, "another-secret-0123456789abcdefgh");
    let no_scope = token("profile", 300, SECRET);
    let down = token_from("https://down.example", "", 300, SECRET);
    let cases: &[(&[&str], &str, &str)] = &[
        (&["--path", "/orders/%2F"], "400", "invalid_request"),
        (&["--path", "/nothing"], "404", "no_route"),
        (
            &["--method", "DELETE", "--path", "/orders/7"],
            "405",
            "method_not_allowed",
        ),
        (&["--path", "/orders/7"], "401", "missing_token"),
        (
            &["--path", "/orders/7", "--token", &expired],
            "401",
            "expired",
        ),
        (
            &["--path", "/orders/7", "--token", &forged],
            "401",
            "bad_signature",
        ),
        (
            &["--path", "/orders/7", "--token", "not-a-jwt"],
            "401",
            "invalid_token",
        ),
        (
            &["--path", "/orders/7", "--token", &no_scope],
            "403",
            "insufficient_scope",
        ),
        (
            &["--path", "/orders/admin/x", "--token", &good],
            "403",
            "ip_not_allowed",
        ),
        (
            &["--path", "/legacy/x", "--token", &down],
            "503",
            "unavailable",
        ),
    ];
    for (args, status, reason) in cases {
        let (code, out) = explain(&config, args);
        assert_eq!(code, 3, "{args:?} should be denied: {out}");
        assert!(
            out.contains(&format!("response: {status}")),
            "{args:?}: {out}"
        );
        assert!(
            out.contains(reason),
            "{args:?} should mention {reason}: {out}"
        );
    }
    // The route step shows close candidates that lost.
    let (_, out) = explain(
        &config,
        &[
            "--method",
            "DELETE",
            "--path",
            "/orders/admin/1",
            "--ip",
            "10.1.1.1",
        ],
    );
    assert!(out.contains("candidate orders-read"), "{out}");

    let (code, _) = explain(&config, &["--method", "G E T", "--path", "/orders"]);
    assert_eq!(code, 1, "bad input exits 1");
    std::fs::remove_dir_all(&dir).ok();
}

/// Issue "every identity provider": explain shows which client entry and which implied
/// scopes applied (the API key credential is covered by tests/api_keys.rs).
#[test]
fn explain_shows_the_client_entry_and_implied_scopes() {
    let dir = std::env::temp_dir().join(format!("authgate-explain-client-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("explain.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[[issuers]]
name = "internal"
issuer = "https://auth.internal.example"
hmac_secret = "{SECRET}"
audiences = ["orders"]
implied_scopes = {{ "admin" = ["*"], "orders:write" = ["orders:read"] }}

[[clients]]
client_id = "partner-a"
allow = ["127.0.0.0/8"]

[[upstreams]]
name = "orders"
url = "http://127.0.0.1:9/base"

[[routes]]
name = "orders-read"
path_prefix = "/orders"
upstream = "orders"
scopes = ["orders:read"]
"#
        ),
    )
    .unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token = |scope: &str| {
        let claims = json!({
            "iss": "https://auth.internal.example", "aud": "orders", "sub": "svc-7",
            "client_id": "partner-a", "scope": scope, "exp": now + 300, "iat": now - 10,
        });
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    };

    let (code, out) = explain(
        &config,
        &["--path", "/orders/1", "--token", &token("orders:write")],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("[[clients]] entry partner-a holds"), "{out}");
    assert!(
        out.contains("with implied: orders:write orders:read"),
        "{out}"
    );
    let (code, out) = explain(
        &config,
        &["--path", "/orders/1", "--token", &token("admin")],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("implies every scope"), "{out}");
    // From an address outside the client's allow list: denied by the client entry.
    let (code, out) = explain(
        &config,
        &[
            "--path",
            "/orders/1",
            "--ip",
            "192.0.2.1",
            "--token",
            &token("admin"),
        ],
    );
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("not in the client's allow list"), "{out}");
    assert!(out.contains("ip_not_allowed"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}
