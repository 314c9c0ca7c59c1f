//! Metrics for operating the gateway (issue 16): the process families on Linux (open fds,
//! resident memory, CPU seconds, start time) and `authgate_jwks_max_stale_seconds`, which the
//! key-expiry alert compares each issuer's key age with.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::config::Config;
use support::echo::Echo;
use support::gateway::Gateway;
use support::idp::Idp;
use tokio::net::TcpStream;

/// The value of the sample whose line starts with `series ` (name plus labels as rendered).
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        line.strip_prefix(series)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|value| value.trim().parse().ok())
    })
}

fn config(idp: &Idp, echo: &Echo) -> String {
    Config::new()
        .idp("remote", idp, "max_stale = \"2h\"")
        .issuer(
            "local",
            "issuer = \"https://auth.internal.example\"\n\
             hmac_secret = \"ops-metrics-test-secret-0123456789abcdef\"\naudiences = [\"api\"]",
        )
        .echo(echo)
        .route("public", "/", "public = true")
        .toml()
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn process_metrics_show_fds_memory_cpu_and_start_time() {
    let idp = Idp::start().await;
    let echo = Echo::start().await;
    let gateway = Gateway::from_toml(config(&idp, &echo)).start().await;

    let before = gateway.metrics().await;
    let fds = sample(&before, "process_open_fds").expect("process_open_fds");
    let max_fds = sample(&before, "process_max_fds").expect("process_max_fds");
    assert!(fds > 0.0 && fds <= max_fds, "open {fds}, max {max_fds}");
    let rss = sample(&before, "process_resident_memory_bytes").expect("resident memory");
    assert!(rss > 1_000_000.0, "rss {rss}");
    assert!(sample(&before, "process_virtual_memory_bytes").expect("virtual memory") >= rss);
    assert!(sample(&before, "process_cpu_seconds_total").expect("cpu seconds") >= 0.0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let start = sample(&before, "process_start_time_seconds").expect("start time");
    assert!(
        start <= now + 1.0 && start > now - 3600.0,
        "start {start}, now {now}"
    );

    // The gauge follows the process: 20 idle client connections (20 accepted sockets in
    // the gateway, plus the test's own 20 ends, in this same process) are counted.
    let mut open = Vec::new();
    for _ in 0..20 {
        open.push(TcpStream::connect(gateway.http_addr()).await.unwrap());
    }
    let grew = support::gateway::eventually(Duration::from_secs(3), || async {
        let now = gateway.metrics().await;
        sample(&now, "process_open_fds").is_some_and(|n| n >= fds + 20.0)
    })
    .await;
    assert!(grew, "process_open_fds did not count 20 new connections");
    drop(open);
}

#[tokio::test]
async fn max_stale_is_exposed_for_fetched_key_sets_only() {
    let idp = Idp::start().await;
    let echo = Echo::start().await;
    let gateway = Gateway::from_toml(config(&idp, &echo)).start().await;
    let metrics = gateway.metrics().await;
    assert_eq!(
        sample(
            &metrics,
            r#"authgate_jwks_max_stale_seconds{issuer="remote"}"#
        ),
        Some(7200.0),
        "{metrics}"
    );
    // hmac_secret keys never go stale: no series, so the alert can never fire for it.
    assert!(
        !metrics.contains(r#"authgate_jwks_max_stale_seconds{issuer="local"}"#),
        "{metrics}"
    );
    // Both issuers still have their age.
    assert!(sample(&metrics, r#"authgate_jwks_age_seconds{issuer="local"}"#).is_some());
    assert!(sample(&metrics, r#"authgate_jwks_age_seconds{issuer="remote"}"#).is_some());
}
