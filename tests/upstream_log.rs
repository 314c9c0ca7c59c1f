//! The access log names the upstream server that answered (issue #17). This binary installs
//! its own capturing subscriber before any gateway starts (`authgate::logging::init` keeps
//! the first subscriber), as tests/access_log.rs does.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use http::StatusCode;
use support::echo::Echo;
use support::gateway::Gateway;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log lock").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture() -> Captured {
    static CAPTURED: OnceLock<Captured> = OnceLock::new();
    CAPTURED
        .get_or_init(|| {
            let captured = Captured::default();
            let writer = captured.clone();
            tracing_subscriber::fmt()
                .with_writer(move || writer.clone())
                .with_ansi(false)
                .with_max_level(tracing::Level::INFO)
                .try_init()
                .expect("first subscriber in this binary");
            captured
        })
        .clone()
}

#[tokio::test]
async fn the_access_log_names_the_server_that_answered() {
    let captured = capture();
    let (a, b) = (Echo::start().await, Echo::start().await);
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"

[[upstreams]]
name = "svc"
servers = ["{}", "{}"]

[[routes]]
name = "all"
path_prefix = "/"
upstream = "svc"
public = true
"#,
        a.url(""),
        b.url("")
    );
    let gateway = Gateway::from_toml(config).start().await;
    for i in 0..10 {
        let reply = gateway.get(&format!("/logged-{i}")).await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    let text = String::from_utf8_lossy(&captured.0.lock().expect("lock")).into_owned();
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
