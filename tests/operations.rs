//! Operating the real binary (issue 5): SIGTERM drains an in-flight request and exits 0,
//! SIGHUP reloads good and refuses bad configs, the access log has one line per request in
//! both formats, and /metrics carries every SPEC family after traffic.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::binary::{Bound, Running};
use support::config::Config;
use support::echo::Echo;
use support::gateway::{get, send};

const SECRET: &str = "operations-test-secret-0123456789abcdef";

/// Listeners on port 0 (the addresses are read back from the gateway's log): an HMAC issuer,
/// the routes `public` and `orders` (scope `orders:read`) to the echo, then `extra_route`.
fn config(echo: &Echo, extra_route: &str) -> String {
    Config::new()
        .server("shutdown_timeout = \"10s\"")
        .raw(&format!(
            "[[issuers]]\nname = \"internal\"\nissuer = \"https://auth.internal.example\"\n\
             hmac_secret = \"{SECRET}\"\naudiences = [\"orders\"]"
        ))
        .echo(echo)
        .public("/public")
        .route("orders", "/orders", "scopes = [\"orders:read\"]")
        .raw(extra_route)
        .toml()
}

/// The binary running `config` in log `format`, with the addresses it bound.
async fn start(config: &Path, format: &str) -> (Running, Bound) {
    let running = Running::start(config, format);
    let bound = running.bound().await;
    (running, bound)
}

fn temp_config(name: &str, text: &str) -> PathBuf {
    let path =
        std::env::temp_dir().join(format!("authgate-ops-{}-{name}.toml", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn sigterm_drains_an_in_flight_request_and_exits_zero() {
    let echo = Echo::start().await;
    let path = temp_config("drain", &config(&echo, ""));
    let (mut gateway, bound) = start(&path, "json").await;

    let addr = bound.http;
    let slow = tokio::spawn(async move { send(addr, get("/public/slow?ms=800")).await });
    assert!(echo
        .wait_seen("/public/slow", Duration::from_secs(5))
        .await
        .is_some());
    gateway.signal("TERM");
    let reply = tokio::time::timeout(Duration::from_secs(10), slow)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        reply.status, 200,
        "the in-flight request finishes during the drain"
    );
    let status = gateway.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "exit status {status}");
    std::fs::remove_file(path).ok();
}

#[tokio::test]
async fn sighup_reloads_a_good_config_and_refuses_a_bad_one() {
    let echo = Echo::start().await;
    let path = temp_config("reload", &config(&echo, ""));
    let (gateway, bound) = start(&path, "json").await;
    assert_eq!(send(bound.http, get("/extra/x")).await.status, 404);

    let extra = "[[routes]]\nname = \"extra\"\npath_prefix = \"/extra\"\nupstream = \"echo\"\npublic = true\n";
    std::fs::write(&path, config(&echo, extra)).unwrap();
    gateway.signal("HUP");
    assert!(
        gateway
            .wait_log("config reloaded", Duration::from_secs(5))
            .await,
        "{:?}",
        gateway.lines()
    );
    assert_eq!(send(bound.http, get("/extra/x")).await.status, 200);

    std::fs::write(&path, "[[routes]]\nname = 1\n").unwrap();
    gateway.signal("HUP");
    assert!(
        gateway
            .wait_log("config reload refused", Duration::from_secs(5))
            .await,
        "{:?}",
        gateway.lines()
    );
    assert_eq!(
        send(bound.http, get("/extra/x")).await.status,
        200,
        "the old config keeps serving"
    );
    let metrics = send(bound.admin, get("/metrics")).await.text();
    assert!(
        metrics.contains("authgate_config_reloads_total{result=\"error\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("authgate_config_reloads_total{result=\"success\"} 2"),
        "{metrics}"
    );
    std::fs::remove_file(path).ok();
}

#[tokio::test]
async fn access_log_has_one_line_per_request_in_json_and_text() {
    let echo = Echo::start().await;
    for format in ["json", "text"] {
        let path = temp_config(&format!("log-{format}"), &config(&echo, ""));
        let (gateway, bound) = start(&path, format).await;
        let mut request = get("/orders/7?q=secret-query");
        request
            .headers_mut()
            .insert("x-request-id", "log-test-1".parse().unwrap());
        request.headers_mut().insert(
            "authorization",
            "Bearer not.a.token-SENSITIVE".parse().unwrap(),
        );
        assert_eq!(send(bound.http, request).await.status, 401);
        assert!(
            gateway.wait_log("log-test-1", Duration::from_secs(5)).await,
            "{:?}",
            gateway.lines()
        );
        let lines = gateway.lines();
        let access: Vec<&String> = lines
            .iter()
            .filter(|line| line.contains("log-test-1"))
            .collect();
        assert_eq!(access.len(), 1, "one line per request: {access:?}");
        let line = access[0];
        assert!(
            !line.contains("SENSITIVE"),
            "the token must never be logged: {line}"
        );
        if format == "json" {
            let record: serde_json::Value =
                serde_json::from_str(line).expect("one JSON object per line");
            assert_eq!(record["request_id"], "log-test-1");
            assert_eq!(record["method"], "GET");
            assert_eq!(record["path"], "/orders/7");
            assert_eq!(record["route"], "orders");
            assert_eq!(record["status"], 401);
            assert_eq!(record["decision"], "deny");
            assert_eq!(record["reason"], "malformed", "the token failure kind");
            assert!(record["duration_ms"].is_number());
            for line in &lines {
                assert!(
                    serde_json::from_str::<serde_json::Value>(line).is_ok(),
                    "not JSON: {line}"
                );
            }
        } else {
            for field in [
                "request_id=log-test-1",
                "method=GET",
                "path=/orders/7",
                "route=orders",
                "status=401",
                "decision=deny",
                "reason=malformed",
            ] {
                assert!(line.contains(field), "{field} missing in {line}");
            }
        }
        std::fs::remove_file(path).ok();
    }
}

#[tokio::test]
async fn metrics_carry_every_spec_family_after_traffic() {
    let echo = Echo::start().await;
    let path = temp_config("metrics", &config(&echo, ""));
    let (_gateway, bound) = start(&path, "json").await;
    assert_eq!(send(bound.http, get("/public/a")).await.status, 200);
    assert_eq!(send(bound.http, get("/orders/1")).await.status, 401);
    assert_eq!(send(bound.http, get("/nowhere")).await.status, 404);
    let metrics = send(bound.admin, get("/metrics")).await.text();
    for family in [
        "authgate_requests_total{code=\"200\",route=\"public\"} 1",
        "authgate_requests_total{code=\"401\",route=\"orders\"} 1",
        "authgate_requests_total{code=\"404\",route=\"none\"} 1",
        "authgate_auth_decisions_total{decision=\"allow\",reason=\"public\",route=\"public\"} 1",
        "authgate_auth_decisions_total{decision=\"deny\",reason=\"missing_token\",route=\"orders\"} 1",
        "authgate_request_duration_seconds_bucket{route=\"public\",le=\"0.0001\"}",
        "authgate_upstream_duration_seconds_count{upstream=\"echo\"} 1",
        "authgate_jwks_refresh_total{issuer=\"internal\"",
        "authgate_jwks_unknown_kid_refresh_total{issuer=\"internal\"} 0",
        "authgate_jwks_keys{issuer=\"internal\"} 1",
        "authgate_jwks_age_seconds{issuer=\"internal\"}",
        "authgate_jwks_stale{issuer=\"internal\"} 0",
        "authgate_token_cache_requests_total{result=\"miss\"}",
        "authgate_connections_open{listener=\"http\"}",
        "authgate_tls_handshake_failures_total{reason=\"bad_certificate\"} 0",
        "authgate_config_reloads_total{result=\"success\"} 1",
        "authgate_config_last_reload_success_timestamp_seconds",
        "authgate_build_info{version=\"",
    ] {
        assert!(metrics.contains(family), "{family} missing from /metrics:\n{metrics}");
    }
    assert!(!metrics.contains(SECRET), "no secret in metrics");
    std::fs::remove_file(path).ok();
}
