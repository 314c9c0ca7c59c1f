//! `authgate demo` end to end (issue 6): run the real binary, execute every printed curl
//! command with an HTTP client, and check the printed expectation.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// One printed example: the expected status and the parsed curl command.
struct Printed {
    expect: String,
    method: String,
    headers: Vec<(String, String)>,
    url: String,
}

/// Parses `curl -s -i [-X M] [-H 'k: v']... URL`.
fn parse_curl(line: &str) -> (String, Vec<(String, String)>, String) {
    let mut method = "GET".to_owned();
    let mut headers = Vec::new();
    let mut rest = line.strip_prefix("curl").expect("a curl line").trim();
    let mut url = String::new();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("-s -i") {
            rest = after.trim_start();
        } else if let Some(after) = rest.strip_prefix("-X ") {
            let (m, after) = after.split_once(' ').expect("method then more");
            method = m.to_owned();
            rest = after.trim_start();
        } else if let Some(after) = rest.strip_prefix("-H '") {
            let (header, after) = after.split_once('\'').expect("closing quote");
            let (name, value) = header.split_once(": ").expect("name: value");
            headers.push((name.to_owned(), value.to_owned()));
            rest = after.trim_start();
        } else {
            url = rest.to_owned();
            break;
        }
    }
    (method, headers, url)
}

#[tokio::test]
async fn demo_prints_commands_that_give_the_printed_answers() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_authgate"))
        .arg("demo")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start authgate demo");
    let stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let done = line.starts_with("# Ctrl-C");
            lines.push(line);
            if done {
                break;
            }
        }
        lines
    });
    let started = Instant::now();
    while !reader.is_finished() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "demo printed nothing in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let lines = reader.join().expect("reader thread");

    let mut examples = Vec::new();
    let mut expect = None;
    for line in &lines {
        if let Some(text) = line.strip_prefix("# expect: ") {
            expect = Some(text.to_owned());
        } else if line.starts_with("curl -s -i") {
            let (method, headers, url) = parse_curl(line);
            let expect = expect
                .take()
                .expect("every command has an expectation above it");
            examples.push(Printed {
                expect,
                method,
                headers,
                url,
            });
        }
    }
    assert!(examples.len() >= 5, "too few examples printed: {lines:#?}");
    assert!(
        lines.iter().any(|l| l.contains("/metrics")),
        "the metrics URL is printed"
    );

    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
    for example in &examples {
        let mut request = http::Request::builder()
            .method(example.method.as_str())
            .uri(&example.url);
        for (name, value) in &example.headers {
            request = request.header(name, value);
        }
        let response = tokio::time::timeout(
            Duration::from_secs(10),
            client.request(request.body(Empty::new()).unwrap()),
        )
        .await
        .expect("answer in time")
        .expect("response");
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let body = String::from_utf8_lossy(&body);
        let expected_status: u16 = example.expect[..3]
            .parse()
            .expect("expectation starts with the status");
        assert_eq!(
            status, expected_status,
            "{} {}: {body}",
            example.method, example.url
        );
        // The expectation names the error code or the identity the echo must show.
        for word in example.expect.split([' ', ',', '(', ')']) {
            if word.contains('_') && !word.contains("X-Auth") {
                assert!(body.contains(word), "expected {word} in {body}");
            }
        }
        if example.expect.contains("X-Auth-Subject: demo-client") {
            // The echo shows a repeated header as an array of its values, so a client's
            // `X-Auth-Subject: admin` forwarded next to the gateway's own fails here.
            let echo: serde_json::Value = serde_json::from_str(&body).expect("echo JSON");
            assert_eq!(echo["headers"]["x-auth-subject"], "demo-client", "{body}");
        }
        if example.expect.contains("never admin") {
            let sent_admin = example.headers.iter().any(|(name, value)| {
                name.eq_ignore_ascii_case("x-auth-subject") && value == "admin"
            });
            assert!(sent_admin, "the example sends the spoofed header");
            let echo: serde_json::Value = serde_json::from_str(&body).expect("echo JSON");
            let headers = echo["headers"].as_object().expect("echo headers");
            // Every header but the token itself (base64 text) must be free of "admin".
            for (name, shown) in headers.iter().filter(|(name, _)| *name != "authorization") {
                let values = match shown {
                    serde_json::Value::Array(values) => values.clone(),
                    value => vec![value.clone()],
                };
                assert!(
                    values
                        .iter()
                        .all(|value| value.as_str().is_some_and(|v| !v.contains("admin"))),
                    "{name}: the upstream received {shown}"
                );
            }
        }
    }

    // Ctrl-C exits cleanly.
    let pid = child.id().to_string();
    Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("send SIGINT");
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(status.success(), "demo exited with {status}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "demo did not exit on SIGINT"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
