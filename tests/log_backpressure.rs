//! A stalled log reader never stalls requests (issue 19): the real binary's stderr is a pipe
//! nobody reads once the gateway has started. Writing access-log lines on the request task
//! blocked every request as soon as the pipe filled; now lines queue for the writer thread,
//! and past its bound they are dropped and counted in `authgate_log_lines_dropped_total`.

mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::time::{Duration, Instant};

use support::config::Config;
use support::gateway::{get, raw, send};

/// The gateway binary; its stderr is read only until the "listening" line, then left full.
struct Stalled {
    child: Child,
    /// Kept open (never read again): closing it would turn the stall into write errors.
    _stderr: BufReader<ChildStderr>,
    http: SocketAddr,
    admin: SocketAddr,
}

impl Stalled {
    fn start(config: &std::path::Path) -> Stalled {
        let mut child = Command::new(env!("CARGO_BIN_EXE_authgate"))
            .args(["--log-format", "text", "run", "-c"])
            .arg(config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start authgate");
        let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
        let started = Instant::now();
        let mut line = String::new();
        // Bounded: the gateway prints its addresses among its first few lines.
        for _ in 0..100 {
            line.clear();
            if stderr.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            if let (Some(http), Some(admin)) = (field(&line, "http="), field(&line, "admin=")) {
                return Stalled {
                    child,
                    _stderr: stderr,
                    http,
                    admin,
                };
            }
            assert!(started.elapsed() < Duration::from_secs(10), "no start");
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("gateway did not print its addresses");
    }
}

/// `name=ADDR` in the text-format "listening" line.
fn field(line: &str, prefix: &str) -> Option<SocketAddr> {
    let rest = line.split(prefix).nth(1)?;
    rest.split([' ', '\n']).next()?.trim().parse().ok()
}

impl Drop for Stalled {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_stalled_stderr_does_not_stall_requests_and_drops_are_counted() {
    let path = std::env::temp_dir().join(format!("authgate-log-stall-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        Config::new()
            .upstream("nowhere", "http://127.0.0.1:9")
            .route_to("only", "/only", "nowhere", "public = true")
            .toml(),
    )
    .unwrap();
    let gateway = Stalled::start(&path);

    // Each request is refused (no route) and logged with its ~1 KB path: 1,500 lines are
    // about 1.6 MB, far more than a pipe (64 KiB) and the writer's queue (1 MiB) hold.
    let long = "a".repeat(1000);
    let request = format!("GET /none/{long} HTTP/1.1\r\nHost: t\r\n\r\n");
    let last = format!("GET /none/{long} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    for round in 0..15 {
        let mut batch = request.repeat(99);
        batch.push_str(&last);
        let reply = raw(gateway.http, batch.as_bytes(), Duration::from_secs(5)).await;
        let answered = reply.text().matches("HTTP/1.1 404").count();
        assert!(
            reply.closed && answered == 100,
            "round {round}: {answered} of 100 answered (closed: {})",
            reply.closed
        );
    }
    let metrics = send(gateway.admin, get("/metrics")).await.text();
    let dropped: u64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("authgate_log_lines_dropped_total "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no drop counter in {metrics}"));
    assert!(dropped > 0, "nothing counted as dropped");
    std::fs::remove_file(path).ok();
}
