//! The access log names the upstream server that answered (issue #17). This binary installs
//! its own capturing subscriber before any gateway starts (`authgate::logging::init` keeps
//! the first subscriber), as tests/access_log.rs does.

mod support;

use http::StatusCode;
use support::config::svc;
use support::echo::Echo;
use support::gateway::Gateway;
use support::logs::capture_text_at;

#[tokio::test]
async fn the_access_log_names_the_server_that_answered() {
    let captured = capture_text_at(tracing::Level::INFO);
    let (a, b) = (Echo::start().await, Echo::start().await);
    let config = svc(&format!("servers = [\"{}\", \"{}\"]", a.url(""), b.url("")));
    let gateway = Gateway::from_toml(config).start().await;
    for i in 0..10 {
        let reply = gateway.get(&format!("/logged-{i}")).await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    let text = captured.text();
    for (echo, url) in [(&a, a.url("")), (&b, b.url(""))] {
        for seen in echo.requests_seen() {
            let line = text
                .lines()
                .find(|line| line.contains(&format!("path={} ", seen.path)))
                .unwrap_or_else(|| panic!("no access-log line for {}", seen.path));
            assert!(
                line.contains(&format!("upstream_server={url}")),
                "{} was served by {url}: {line}",
                seen.path
            );
        }
    }
}
