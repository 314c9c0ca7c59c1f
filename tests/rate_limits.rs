//! Rate limits from the outside (SPEC §7.4, issue 15), local mode: the real gateway on
//! 127.0.0.1:0 in front of an echo upstream, HS256 tokens. Rates are per hour so that no
//! budget comes back while a test runs: every count below is exact, whatever the machine's
//! speed (the refill arithmetic is tested with a fake clock in `ratelimit::tests`).

mod support;

use http::StatusCode;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use support::config::Config;
use support::echo::Echo;
use support::gateway::{get, ConfigFile, Gateway, Reply};

const SECRET: &str = "rate-limit-tests-hmac-secret-0123456789";
const ISS: &str = "https://rl-idp.test/";

fn token(client_id: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let claims = json!({
        "iss": ISS, "aud": "api", "sub": format!("{client_id}-svc"), "client_id": client_id,
        "iat": now, "exp": now + 600,
    });
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("sign")
}

fn config(echo: &Echo, limits: &str, route_limits: &str) -> String {
    Config::new()
        .raw("[network]\ntrusted_proxies = [\"127.0.0.1/32\"]")
        .raw(&format!(
            "[[issuers]]\nname = \"idp\"\nissuer = \"{ISS}\"\nhmac_secret = \"{SECRET}\"\n\
             audiences = [\"api\"]"
        ))
        .echo(echo)
        .raw(limits)
        .route("api", "/api", &format!("rate_limits = {route_limits}"))
        .route(
            "open",
            "/open",
            "public = true\nrate_limits = [\"per-address\"]",
        )
        .toml()
}

const LIMITS: &str = r#"
[[rate_limits]]
name = "per-client"
key = "client_id"
rate = "2/h"

[[rate_limits]]
name = "per-address"
key = "client_address"
rate = "100/h"
burst = 3
"#;

async fn from(gateway: &Gateway, path: &str, address: &str, token: Option<&str>) -> Reply {
    let mut request = get(path);
    let headers = request.headers_mut();
    headers.insert("x-forwarded-for", address.parse().expect("address"));
    if let Some(token) = token {
        let value = format!("Bearer {token}").parse().expect("token");
        headers.insert("authorization", value);
    }
    gateway.send(request).await
}

#[track_caller]
fn assert_limited(reply: &Reply, policy: &str, quota: &str) {
    reply.assert_error(429, "rate_limited");
    let retry: u64 = reply
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("whole seconds");
    assert!(retry >= 1, "Retry-After {retry}");
    assert_eq!(
        reply.header("ratelimit-policy"),
        Some(format!("\"{policy}\";{quota}").as_str())
    );
    assert_eq!(
        reply.header("ratelimit"),
        Some(format!("\"{policy}\";r=0;t={retry}").as_str())
    );
}

#[tokio::test]
async fn address_limit_refuses_exactly_after_the_burst_before_the_token_step() {
    let echo = Echo::start().await;
    let gateway = Gateway::from_toml(config(&echo, LIMITS, r#"["per-address"]"#))
        .start()
        .await;
    // Without a token: the address limit judges first, so the 4th request is 429, not 401.
    for _ in 0..3 {
        from(&gateway, "/api/x", "198.51.100.7", None)
            .await
            .assert_error(401, "missing_token");
    }
    let refused = from(&gateway, "/api/x", "198.51.100.7", None).await;
    assert_limited(&refused, "per-address", "q=100;w=3600");
    // Another address has its own budget; passing requests carry RateLimit.
    let token = token("partner-a");
    for remaining in (0..3).rev() {
        let reply = from(&gateway, "/api/x", "198.51.100.8", Some(&token)).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        let header = reply.header("ratelimit").expect("RateLimit on a pass");
        assert!(
            header.starts_with(&format!("\"per-address\";r={remaining};t=")),
            "{header}"
        );
    }
    assert_limited(
        &from(&gateway, "/api/x", "198.51.100.8", Some(&token)).await,
        "per-address",
        "q=100;w=3600",
    );
    assert_eq!(
        echo.requests_seen().len(),
        3,
        "refused requests never reach the upstream"
    );
    // Public routes are limited too.
    for _ in 0..3 {
        let reply = from(&gateway, "/open/x", "198.51.100.9", None).await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    from(&gateway, "/open/x", "198.51.100.9", None)
        .await
        .assert_error(429, "rate_limited");

    let metrics = gateway.metrics().await;
    for line in [
        "authgate_rate_limit_decisions_total{policy=\"per-address\",result=\"allowed\"} 9",
        "authgate_rate_limit_decisions_total{policy=\"per-address\",result=\"limited\"} 3",
        "authgate_requests_total{code=\"429\",route=\"api\"} 2",
    ] {
        assert!(metrics.contains(line), "missing {line} in:\n{metrics}");
    }
}

#[tokio::test]
async fn identity_limits_run_after_authentication_and_all_listed_limits_apply() {
    let echo = Echo::start().await;
    let gateway = Gateway::from_toml(config(&echo, LIMITS, r#"["per-address", "per-client"]"#))
        .start()
        .await;
    // Unauthenticated requests spend nothing of a client's budget.
    for n in 0..5 {
        from(
            &gateway,
            "/api/x",
            &format!("192.0.2.{n}"),
            Some("not-a-token"),
        )
        .await
        .assert_error(401, "invalid_token");
    }
    let a = token("partner-a");
    for n in 0..2 {
        let reply = from(&gateway, "/api/x", &format!("192.0.2.{}", 10 + n), Some(&a)).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        let header = reply.header("ratelimit").expect("RateLimit");
        // Both limits report, in the route's order.
        assert!(
            header.starts_with("\"per-address\";r=2;t=") && header.contains(", \"per-client\";r="),
            "{header}"
        );
    }
    // A third request of partner-a from a fresh address: the client limit refuses.
    let refused = from(&gateway, "/api/x", "192.0.2.20", Some(&a)).await;
    assert_limited(&refused, "per-client", "q=2;w=3600");
    // Another client is not affected.
    let b = token("partner-b");
    let reply = from(&gateway, "/api/x", "192.0.2.21", Some(&b)).await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn budgets_survive_a_reload_while_the_policy_is_unchanged() {
    let echo = Echo::start().await;
    let file = ConfigFile::new(&config(&echo, LIMITS, r#"["per-client"]"#));
    let gateway = Gateway::from_file(&file.0).start().await;
    let a = token("partner-a");
    for _ in 0..2 {
        let reply = from(&gateway, "/api/x", "192.0.2.1", Some(&a)).await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    // An unrelated change: the budget stays spent.
    let changed = config(&echo, LIMITS, r#"["per-client"]"#).replace(
        "trusted_proxies = [\"127.0.0.1/32\"]",
        "trusted_proxies = [\"127.0.0.0/8\"]",
    );
    file.write(&changed);
    gateway.reload_applied().await;
    from(&gateway, "/api/x", "192.0.2.1", Some(&a))
        .await
        .assert_error(429, "rate_limited");
    // A changed rate is a new policy with a fresh budget.
    file.write(&changed.replace("rate = \"2/h\"", "rate = \"3/h\""));
    gateway.reload_applied().await;
    let reply = from(&gateway, "/api/x", "192.0.2.1", Some(&a)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply
        .header("ratelimit")
        .is_some_and(|h| h.starts_with("\"per-client\";r=2;")));
}

#[tokio::test]
async fn explain_shows_each_policy_and_its_key_without_spending() {
    let echo = Echo::start().await;
    let file = ConfigFile::new(&config(&echo, LIMITS, r#"["per-address", "per-client"]"#));
    let token = token("partner-a");
    for _ in 0..3 {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_authgate"))
            .args(["explain", "--config"])
            .arg(&file.0)
            .args(["--path", "/api/x", "--ip", "192.0.2.1", "--token", &token])
            .output()
            .expect("run authgate explain");
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{text}");
        for expected in [
            "per-address: key client_address=\"192.0.2.1\" (not counted by explain)",
            "per-client: key client_id=\"partner-a\" (not counted by explain)",
            "decision: allow",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
        }
    }
}

#[tokio::test]
async fn a_clients_entry_adds_its_limits_on_every_route() {
    let echo = Echo::start().await;
    let limits = format!(
        "{LIMITS}\n[[rate_limits]]\nname = \"partner-a-only\"\nkey = \"subject\"\nrate = \"1/h\"\n\n\
         [[clients]]\nclient_id = \"partner-a\"\nrate_limits = [\"partner-a-only\"]\n"
    );
    let gateway = Gateway::from_toml(config(&echo, &limits, "[]"))
        .start()
        .await;
    let a = token("partner-a");
    let reply = from(&gateway, "/api/x", "192.0.2.1", Some(&a)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply
        .header("ratelimit")
        .is_some_and(|h| h.starts_with("\"partner-a-only\";r=0;")));
    assert_limited(
        &from(&gateway, "/api/x", "192.0.2.1", Some(&a)).await,
        "partner-a-only",
        "q=1;w=3600",
    );
    // Other clients are not under partner-a's limits.
    let b = token("partner-b");
    for _ in 0..3 {
        let reply = from(&gateway, "/api/x", "192.0.2.1", Some(&b)).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(
            reply.header("ratelimit"),
            None,
            "no limit applies to partner-b"
        );
    }
}
