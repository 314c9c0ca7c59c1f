//! Several servers behind one upstream (issue #17): balancing spread, passive health (ejection
//! and recovery), all servers down, per-server metrics. Real echo upstreams on loopback.

mod support;

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use support::config::svc;
use support::echo::Echo;
use support::gateway::{eventually, Gateway};
use support::upstream::{refused_addr, Upstream};

/// An upstream answering 503 while `failing`, else 200; counts requests and connections.
struct Flaky {
    upstream: Upstream,
    failing: Arc<AtomicBool>,
    hits: Arc<AtomicU64>,
}

impl Flaky {
    async fn start() -> Flaky {
        let failing = Arc::new(AtomicBool::new(true));
        let hits = Arc::new(AtomicU64::new(0));
        let (f, h) = (Arc::clone(&failing), Arc::clone(&hits));
        let upstream = Upstream::start(move |stream| {
            let (f, h) = (Arc::clone(&f), Arc::clone(&h));
            let service = service_fn(move |_request| {
                h.fetch_add(1, Ordering::SeqCst);
                let status = if f.load(Ordering::SeqCst) {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::OK
                };
                let mut response = Response::new(Full::new(Bytes::from_static(b"flaky")));
                *response.status_mut() = status;
                async move { Ok::<_, Infallible>(response) }
            });
            async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            }
        })
        .await;
        Flaky {
            upstream,
            failing,
            hits,
        }
    }

    fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }
}

fn config(servers: &[String], extra: &str) -> String {
    let list = servers
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ");
    svc(&format!(
        "servers = [{list}]\nconnect_timeout = \"1s\"\ntimeout = \"3s\"\n{extra}"
    ))
}

/// The value of the first sample of `family` whose labels contain every `filter` fragment.
fn metric(text: &str, family: &str, filters: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|line| line.starts_with(family) && line[family.len()..].starts_with('{'))
        .find(|line| filters.iter().all(|f| line.contains(f)))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
}

#[tokio::test]
async fn requests_spread_over_every_server() {
    let echoes = [
        Echo::start().await,
        Echo::start().await,
        Echo::start().await,
    ];
    let urls: Vec<String> = echoes.iter().map(|e| e.url("")).collect();
    let gateway = Gateway::from_toml(config(&urls, "")).start().await;
    for _ in 0..60 {
        assert_eq!(gateway.get("/spread").await.status, StatusCode::OK);
    }
    let counts: Vec<usize> = echoes.iter().map(|e| e.requests_seen().len()).collect();
    assert_eq!(counts.iter().sum::<usize>(), 60);
    // Uniform would be 20 each; below 5 is a broken balancer, not bad luck (p < 1e-4).
    assert!(counts.iter().all(|&n| n >= 5), "spread {counts:?}");
    let metrics = gateway.metrics().await;
    let first = format!("server=\"{}\"", urls[0]);
    assert_eq!(
        metric(
            &metrics,
            "authgate_upstream_server_requests_total",
            &[&first]
        ),
        Some(counts[0] as f64)
    );
}

#[tokio::test]
async fn failing_server_is_ejected_then_comes_back() {
    let echo = Echo::start().await;
    let flaky = Flaky::start().await;
    let flaky_url = flaky.upstream.url();
    let extra = "max_failures = 2\nejection_time = \"1500ms\"\nretries = 0";
    let gateway = Gateway::from_toml(config(&[echo.url(""), flaky_url.clone()], extra))
        .start()
        .await;
    let started = Instant::now();
    let mut unavailable = 0;
    for _ in 0..30 {
        if gateway.get("/x").await.status == StatusCode::SERVICE_UNAVAILABLE {
            unavailable += 1;
        }
    }
    // Two consecutive 5xx eject it; the rest go to the healthy server.
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "the loop ran within the ejection"
    );
    assert_eq!(flaky.hits(), 2, "ejected after max_failures");
    assert_eq!(unavailable, 2, "no retries: the 503s reach the client");
    let label = format!("server=\"{flaky_url}\"");
    let metrics = gateway.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "authgate_upstream_server_ejections_total",
            &[&label]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(&metrics, "authgate_upstream_server_healthy", &[&label]),
        Some(0.0)
    );
    assert_eq!(
        metric(&metrics, "authgate_upstream_server_errors_total", &[&label]),
        Some(2.0)
    );

    // Healthy again: after the ejection it takes requests and stays in.
    flaky.failing.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1600).saturating_sub(started.elapsed())).await;
    let back = eventually(Duration::from_secs(3), || async {
        assert_eq!(gateway.get("/y").await.status, StatusCode::OK);
        flaky.hits() > 2
    })
    .await;
    assert!(back, "the server takes requests again after its ejection");
    let metrics = gateway.metrics().await;
    assert_eq!(
        metric(&metrics, "authgate_upstream_server_healthy", &[&label]),
        Some(1.0)
    );
}

#[tokio::test]
async fn all_servers_down_is_502_at_once() {
    let urls = vec![
        format!("http://{}", refused_addr().await),
        format!("http://{}", refused_addr().await),
    ];
    let extra = "max_failures = 1\nejection_time = \"30s\"";
    let gateway = Gateway::from_toml(config(&urls, extra)).start().await;
    // Each refused connect ejects its server (the retry takes the other one).
    gateway.get("/a").await.assert_error(502, "bad_gateway");
    let metrics = gateway.metrics().await;
    let attempts = |text: &str| {
        urls.iter()
            .map(|u| {
                metric(
                    text,
                    "authgate_upstream_server_requests_total",
                    &[&format!("server=\"{u}\"")],
                )
                .unwrap_or(0.0)
            })
            .sum::<f64>()
    };
    assert_eq!(
        attempts(&metrics),
        2.0,
        "first request: one try and one retry"
    );
    let started = Instant::now();
    gateway.get("/b").await.assert_error(502, "bad_gateway");
    assert!(started.elapsed() < Duration::from_secs(1), "no waiting");
    assert_eq!(
        attempts(&gateway.metrics().await),
        2.0,
        "every server ejected: no attempt at all"
    );
}

#[tokio::test]
async fn url_and_servers_are_exclusive() {
    let text = config(
        &["http://127.0.0.1:1".into()],
        "url = \"http://127.0.0.1:2\"",
    );
    let error = match Gateway::from_toml(text).try_start().await {
        Ok(_) => panic!("a config with url and servers starts"),
        Err(error) => error.to_string(),
    };
    assert!(error.contains("exactly one of url and servers"), "{error}");
}

#[tokio::test]
async fn active_health_checks_take_a_server_out_and_bring_it_back() {
    let echo = Echo::start().await;
    let flaky = Flaky::start().await;
    let flaky_url = flaky.upstream.url();
    let extra = "max_failures = 1000\nretries = 0\nhealth_check = { path = \"/healthz\", interval = \"50ms\", timeout = \"500ms\", healthy = 1, unhealthy = 2 }";
    let gateway = Gateway::from_toml(config(&[echo.url(""), flaky_url.clone()], extra))
        .start()
        .await;
    let label = format!("server=\"{flaky_url}\"");
    let gauge = |text: &str| metric(text, "authgate_upstream_server_healthy", &[&label]);
    let out = eventually(Duration::from_secs(3), || async {
        gauge(&gateway.metrics().await) == Some(0.0)
    })
    .await;
    assert!(out, "two failed checks take the server out");
    let probes = flaky.hits();
    assert!(probes >= 2, "the checks reached the server");
    for _ in 0..20 {
        assert_eq!(gateway.get("/x").await.status, StatusCode::OK);
    }
    let requests = metric(
        &gateway.metrics().await,
        "authgate_upstream_server_requests_total",
        &[&label],
    );
    assert_eq!(
        requests.unwrap_or(0.0),
        0.0,
        "no request went to the checked-down server"
    );

    flaky.failing.store(false, Ordering::SeqCst);
    let back = eventually(Duration::from_secs(3), || async {
        gauge(&gateway.metrics().await) == Some(1.0)
    })
    .await;
    assert!(back, "a passed check brings it back");
    let served = eventually(Duration::from_secs(3), || async {
        assert_eq!(gateway.get("/y").await.status, StatusCode::OK);
        metric(
            &gateway.metrics().await,
            "authgate_upstream_server_requests_total",
            &[&label],
        )
        .unwrap_or(0.0)
            > 0.0
    })
    .await;
    assert!(served, "requests reach it again");
}

#[tokio::test]
async fn connections_to_a_host_name_are_renewed_after_dns_refresh() {
    let flaky = Flaky::start().await;
    flaky.failing.store(false, Ordering::SeqCst);
    let port = flaky.upstream.addr().port();
    // Same server by name (re-resolved) and by address (never): four requests each, with a
    // pause longer than dns_refresh after the second.
    let cases = [
        (format!("http://localhost:{port}"), 2),
        (format!("http://127.0.0.1:{port}"), 1),
    ];
    for (url, expected) in cases {
        let gateway = Gateway::from_toml(config(
            std::slice::from_ref(&url),
            "dns_refresh = \"200ms\"",
        ))
        .start()
        .await;
        let before = flaky.upstream.connections();
        for round in 0..4 {
            if round == 2 {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            assert_eq!(gateway.get("/dns").await.status, StatusCode::OK, "{url}");
        }
        let opened = flaky.upstream.connections() - before;
        assert_eq!(opened, expected, "{url}: connections opened");
    }
}
