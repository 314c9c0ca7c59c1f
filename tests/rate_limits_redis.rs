//! Shared rate limits against a real `redis-server` (SPEC §7.4, issue 15): each test starts
//! its own server on a free loopback port (`--save '' --appendonly no`, nothing on disk) and
//! stops it by pid. A missing `redis-server` fails the tests: install the Debian package
//! `redis-server` (`.ci/run` does).

#[path = "support/pki.rs"]
mod pki;
mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use support::config::Config;
use support::echo::Echo;
use support::gateway::{eventually, get, port_for_child, Gateway, Reply};

/// A `redis-server` child process on 127.0.0.1.
struct Redis {
    port: u16,
    child: Child,
    tls: bool,
}

impl Redis {
    fn start() -> Redis {
        let port = port_for_child();
        Redis::start_on(port)
    }

    /// Starts on `port` and waits (bounded, 5 s) until it answers PING.
    fn start_on(port: u16) -> Redis {
        Redis::start_with(port, &[])
    }

    /// TLS only, on `port` (the plaintext port is off).
    fn start_tls(port: u16, cert: &Path, key: &Path, ca: &Path) -> Redis {
        let text = |path: &Path| path.to_str().expect("utf-8 path").to_owned();
        let (cert, key, ca) = (text(cert), text(key), text(ca));
        let port_text = port.to_string();
        let args = [
            "--port",
            "0",
            "--tls-port",
            &port_text,
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
            "--tls-ca-cert-file",
            &ca,
            "--tls-auth-clients",
            "no",
        ];
        Redis::start_with(port, &args)
    }

    fn start_with(port: u16, extra: &[&str]) -> Redis {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "cannot start redis-server ({error}): these tests need a real Redis; \
                     install the Debian package redis-server (apt-get install -y redis-server)"
                )
            });
        let tls = extra.contains(&"--tls-port");
        let redis = Redis { port, child, tls };
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if redis.ping() {
                return redis;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer within 5 s"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn ping(&self) -> bool {
        use std::io::{Read, Write};
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1))
        else {
            return false;
        };
        if self.tls {
            return true; // listening is enough: the test's handshake is the real check
        }
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let mut reply = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut reply).is_ok()
            // A server with a password answers `-NOAUTH ...`: up all the same.
            && (&reply == b"+PONG\r\n" || &reply == b"-NOAUTH")
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Kills the server by its pid and waits for it to exit.
    fn kill(mut self) -> u16 {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.port
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(echo: &Echo, store: &str) -> String {
    Config::new()
        .echo(echo)
        .raw("[[rate_limits]]\nname = \"shared\"\nkey = \"route\"\nrate = \"1/h\"\nburst = 5")
        .raw(&format!("[rate_limit_store]\n{store}"))
        .route("open", "/open", "public = true\nrate_limits = [\"shared\"]")
        .toml()
}

async fn status(gateway: &Gateway) -> u16 {
    let reply: Reply = gateway.send(get("/open/x")).await;
    if reply.status == StatusCode::TOO_MANY_REQUESTS {
        reply.assert_error(429, "rate_limited");
        assert!(reply.header("ratelimit").is_some());
    }
    reply.status.as_u16()
}

fn metric(metrics: &str, result: &str) -> u64 {
    let prefix =
        format!("authgate_rate_limit_decisions_total{{policy=\"shared\",result=\"{result}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn two_gateways_sharing_redis_keep_one_budget_in_exact_mode() {
    let redis = Redis::start();
    let echo = Echo::start().await;
    let text = config(
        &echo,
        &format!("redis = \"{}\"\nmode = \"exact\"", redis.url()),
    );
    let a = Gateway::from_toml(text.clone()).start().await;
    let b = Gateway::from_toml(text).start().await;
    let mut passed = 0;
    for n in 0..12 {
        let gateway = if n % 2 == 0 { &a } else { &b };
        match status(gateway).await {
            200 => passed += 1,
            429 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(
        passed, 5,
        "the two gateways together pass exactly the burst"
    );
    assert_eq!(echo.requests_seen().len(), 5);
    let (ma, mb) = (a.metrics().await, b.metrics().await);
    assert_eq!(metric(&ma, "allowed") + metric(&mb, "allowed"), 5);
    assert_eq!(metric(&ma, "limited") + metric(&mb, "limited"), 7);
    assert_eq!(metric(&ma, "store_error") + metric(&mb, "store_error"), 0);
    let operations = |text: &str| -> u64 {
        text.lines()
            .find_map(|line| line.strip_prefix("authgate_rate_limit_store_duration_seconds_count "))
            .and_then(|value| value.parse().ok())
            .unwrap_or(0)
    };
    assert_eq!(
        operations(&ma) + operations(&mb),
        12,
        "one Redis operation per request"
    );
}

#[tokio::test]
async fn redis_down_follows_on_store_error_deny_and_redis_back_is_used_again() {
    let redis = Redis::start();
    let echo = Echo::start().await;
    let text = config(
        &echo,
        &format!("redis = \"{}\"\non_store_error = \"deny\"", redis.url()),
    );
    let gateway = Gateway::from_toml(text).start().await;
    assert_eq!(status(&gateway).await, 200);
    let port = redis.kill();
    let started = Instant::now();
    for _ in 0..3 {
        assert_eq!(status(&gateway).await, 429, "deny while Redis is down");
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a failed store never hangs"
    );
    let metrics = gateway.metrics().await;
    assert_eq!(metric(&metrics, "store_error"), 3);
    assert!(
        metrics.contains("authgate_rate_limit_store_errors_total 3"),
        "{metrics}"
    );

    // Back (empty: a fresh budget): picked up within a bounded time.
    let _redis = Redis::start_on(port);
    let back = eventually(Duration::from_secs(3), || async {
        status(&gateway).await == 200
    })
    .await;
    assert!(
        back,
        "the gateway did not use Redis again after it came back"
    );
}

#[tokio::test]
async fn redis_down_with_on_store_error_local_limits_each_instance_alone() {
    let redis = Redis::start();
    let echo = Echo::start().await;
    let text = config(&echo, &format!("redis = \"{}\"", redis.url()));
    let gateway = Gateway::from_toml(text).start().await;
    for _ in 0..2 {
        assert_eq!(status(&gateway).await, 200);
    }
    redis.kill();
    // The local fallback has its own full burst of 5, then refuses.
    let statuses: Vec<u16> = {
        let mut out = Vec::new();
        for _ in 0..6 {
            out.push(status(&gateway).await);
        }
        out
    };
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429]);
    assert_eq!(metric(&gateway.metrics().await, "store_error"), 6);
}

#[tokio::test]
async fn a_store_that_never_answers_costs_at_most_the_timeout_then_allow_applies() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = tokio::time::timeout(Duration::from_millis(1), stream.read(&mut buf)).await;
            let _ = stream.flush().await;
            held.push(stream);
        }
    });
    let echo = Echo::start().await;
    let text = config(
        &echo,
        &format!(
            "redis = \"redis://127.0.0.1:{port}/0\"\ntimeout = \"100ms\"\non_store_error = \"allow\""
        ),
    );
    let gateway = Gateway::from_toml(text).start().await;
    let started = Instant::now();
    for _ in 0..8 {
        assert_eq!(
            status(&gateway).await,
            200,
            "allow while the store is silent"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "8 requests took {:?}",
        started.elapsed()
    );
    assert_eq!(metric(&gateway.metrics().await, "store_error"), 8);
    silent.abort();
}

#[tokio::test]
async fn approximate_mode_shares_the_budget_after_one_sync_interval() {
    let redis = Redis::start();
    let echo = Echo::start().await;
    let text = config(
        &echo,
        &format!(
            "redis = \"{}\"\nmode = \"approximate\"\nsync_interval = \"20ms\"",
            redis.url()
        ),
    );
    let a = Gateway::from_toml(text.clone()).start().await;
    let b = Gateway::from_toml(text).start().await;
    // Gateway a spends the whole burst: exactly 5 pass, judged locally.
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(status(&a).await);
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429]);
    // Ten sync intervals later the shared state holds a's spending. Gateway b has never seen
    // the key: its first request passes on its stale view (the overshoot of one interval),
    // then its bucket is synced and it refuses. Without sharing b would pass 5.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut b_passed = 0;
    for _ in 0..5 {
        match status(&b).await {
            200 => b_passed += 1,
            429 => break,
            other => panic!("unexpected status {other}"),
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert!(
        (1..=2).contains(&b_passed),
        "b passed {b_passed}: the budget is not shared within one sync interval"
    );
    assert_eq!(status(&a).await, 429);
    assert_eq!(echo.requests_seen().len(), 5 + b_passed);
}

#[tokio::test]
async fn approximate_mode_follows_on_store_error_while_syncs_fail() {
    let redis = Redis::start();
    let echo = Echo::start().await;
    let text = config(
        &echo,
        &format!(
            "redis = \"{}\"\nmode = \"approximate\"\nsync_interval = \"20ms\"\non_store_error = \"deny\"",
            redis.url()
        ),
    );
    let gateway = Gateway::from_toml(text).start().await;
    assert_eq!(status(&gateway).await, 200);
    let port = redis.kill();
    // The next sync fails; from then on `deny` judges.
    let denied = eventually(Duration::from_secs(3), || async {
        status(&gateway).await == 429
    })
    .await;
    assert!(
        denied,
        "approximate mode did not follow on_store_error = deny"
    );
    assert!(metric(&gateway.metrics().await, "store_error") >= 1);
    let _redis = Redis::start_on(port);
    let back = eventually(Duration::from_secs(3), || async {
        status(&gateway).await == 200
    })
    .await;
    assert!(
        back,
        "approximate mode did not sync again after Redis came back"
    );
}

#[tokio::test]
async fn redis_auth_comes_from_the_url_and_a_wrong_password_is_a_store_error() {
    let port = port_for_child();
    let _redis = Redis::start_with(port, &["--requirepass", "s3cret-pw"]);
    let echo = Echo::start().await;
    let url = |password: &str| format!("redis = \"redis://:{password}@127.0.0.1:{port}/0\"");
    let good = Gateway::from_toml(config(&echo, &url("s3cret-pw")))
        .start()
        .await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(status(&good).await);
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429]);
    assert_eq!(metric(&good.metrics().await, "store_error"), 0);

    let bad = Gateway::from_toml(config(
        &echo,
        &format!("{}\non_store_error = \"deny\"", url("wrong")),
    ))
    .start()
    .await;
    assert_eq!(status(&bad).await, 429);
    assert_eq!(metric(&bad.metrics().await, "store_error"), 1);
}

#[tokio::test]
async fn rediss_with_a_ca_file_works_and_an_untrusted_server_is_a_store_error() {
    let ca = pki::Ca::new("redis test ca");
    let server = ca.server("localhost");
    let dir = pki::Scratch::new("redis-tls");
    let cert = dir.write("redis.pem", &server.cert_pem);
    let key = dir.write("redis-key.pem", &server.key_pem);
    let ca_path = dir.write("ca.pem", &ca.pem());
    let port = port_for_child();
    let _redis = Redis::start_tls(port, &cert, &key, &ca_path);
    let echo = Echo::start().await;
    let store = format!(
        "redis = \"rediss://127.0.0.1:{port}/0\"\non_store_error = \"deny\"\ntimeout = \"1s\""
    );
    let trusted = format!("{store}\nca_file = {}", pki::toml_path(&ca_path));
    let gateway = Gateway::from_toml(config(&echo, &trusted)).start().await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(status(&gateway).await);
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429]);
    assert_eq!(metric(&gateway.metrics().await, "store_error"), 0);

    // The system roots do not know the test CA: the handshake fails, `deny` judges.
    let untrusted = Gateway::from_toml(config(&echo, &store)).start().await;
    assert_eq!(status(&untrusted).await, 429);
    assert_eq!(metric(&untrusted.metrics().await, "store_error"), 1);
}
