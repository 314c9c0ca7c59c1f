//! The text log keeps one record per line (SPEC §1, issue 12 item 11): through the real
//! binary's stderr in `--log-format text`, request targets holding U+2028, U+2029, U+0085 and
//! other separators, raw and percent-encoded, accepted and refused during canonicalization,
//! each give exactly one access-log line, with the separators escaped.

mod support;

use std::time::{Duration, Instant};

use support::binary::Running;
use support::config::{public_echo, Config};
use support::echo::Echo;
use support::gateway::{raw, ConfigFile};
use support::refusal::{status_of, REFUSAL};

/// The lines naming `request_id`, once at least one is there (bounded).
async fn lines_with(gateway: &Running, request_id: &str) -> Vec<String> {
    let started = Instant::now();
    loop {
        let found: Vec<String> = gateway
            .lines()
            .into_iter()
            .filter(|line| line.contains(request_id))
            .collect();
        if !found.is_empty() || started.elapsed() > Duration::from_secs(5) {
            // A moment more, so a second line of the same record would be seen too.
            tokio::time::sleep(Duration::from_millis(50)).await;
            return gateway
                .lines()
                .into_iter()
                .filter(|line| line.contains(request_id))
                .collect();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn text_log_escapes_separators_in_every_field() {
    let echo = Echo::start().await;
    let config = ConfigFile::new(&public_echo("", &echo));
    // Stderr is split on `\n` only, as `tail` or a log shipper would: a record split by
    // anything else shows up as a separator inside a line.
    let gateway = Running::start(&config.0, "text");
    let addr = gateway.bound().await.http;

    // What would follow a separator if it split the line: a forged second entry.
    let forged =
        "2026-01-01T00:00:00.000000Z\u{20}INFO request request_id=forged path=/admin status=200";
    let forged = forged.replace(' ', "_");
    // (request id, raw request target, expected status, text the access line must hold)
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "text-raw-ls",
            format!("/public/a\u{2028}{forged}").into_bytes(),
            400,
            "path=/public/a\\u{2028}2026",
        ),
        (
            "text-raw-ps-nel",
            format!("/public/b\u{2029}{forged}\u{85}x").into_bytes(),
            400,
            "path=/public/b\\u{2029}2026",
        ),
        (
            "text-refused-escape",
            format!("/public/%00\u{2028}{forged}").into_bytes(),
            400,
            "path=/public/%00\\u{2028}2026",
        ),
        (
            "text-bidi",
            "/public/c\u{202e}d".as_bytes().to_vec(),
            400,
            "path=/public/c\\u{202e}d",
        ),
        (
            "text-percent",
            b"/public/p%E2%80%A8q%E2%80%A9r%C2%85s%0At".to_vec(),
            200,
            "path=/public/p%E2%80%A8q%E2%80%A9r%C2%85s%0At",
        ),
    ];
    for (id, target, status, _) in &cases {
        let mut request = b"GET ".to_vec();
        request.extend_from_slice(target);
        request.extend_from_slice(
            format!(" HTTP/1.1\r\nHost: t\r\nX-Request-Id: {id}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        let reply = raw(addr, &request, REFUSAL).await;
        assert_eq!(status_of(&reply), Some(*status), "{id}: {}", reply.text());
    }
    for (id, _, _, expected) in &cases {
        let lines = lines_with(&gateway, id).await;
        assert_eq!(lines.len(), 1, "{id}: one line per request: {lines:#?}");
        assert!(
            lines[0].contains(expected),
            "{id}: {expected} not in {:?}",
            lines[0]
        );
    }
    let lines = gateway.lines();
    for line in &lines {
        assert!(
            !line
                .chars()
                .any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202e}')),
            "an unescaped separator or control character in {line:?}"
        );
        assert!(!line.starts_with("2026-01-01"), "a forged entry: {line:?}");
    }
}
const SECRET: &str = "text-log-test-secret-0123456789abcdef";

fn hmac_token(scope: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({
        "iss": "https://auth.text-log.example", "aud": "orders", "sub": "svc-7",
        "client_id": "partner-a", "scope": scope, "exp": now + 300, "iat": now - 10,
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn identity_config(echo: &Echo, extra_server: &str) -> ConfigFile {
    let issuer = format!(
        "issuer = \"https://auth.text-log.example\"\nhmac_secret = \"{SECRET}\"\naudiences = [\"orders\"]"
    );
    ConfigFile::new(
        &Config::new()
            .server(extra_server)
            .issuer("internal", &issuer)
            .echo(echo)
            .route("orders", "/orders", "scopes = [\"orders:read\"]")
            .public("/public")
            .toml(),
    )
}

fn request(path: &str, id: &str, token: Option<&str>) -> Vec<u8> {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    format!(
        "GET {path} HTTP/1.1\r\nHost: t\r\nX-Request-Id: {id}\r\n{auth}Connection: close\r\n\r\n"
    )
    .into_bytes()
}

/// Issue 16: text lines carry plain values (no `Some(...)`), durations in whole microseconds,
/// and the verified identity on a 403 after authentication; so do JSON lines.
#[tokio::test]
async fn access_lines_are_plain_and_name_the_caller_of_a_403() {
    let echo = Echo::start().await;
    let config = identity_config(&echo, "");
    let good = hmac_token("orders:read");
    let unscoped = hmac_token("profile");
    for format in ["text", "json"] {
        let gateway = Running::start(&config.0, format);
        let addr = gateway.bound().await.http;
        let allowed = format!("{format}-allowed");
        let forbidden = format!("{format}-forbidden");
        let reply = raw(addr, &request("/orders/1", &allowed, Some(&good)), REFUSAL).await;
        assert_eq!(status_of(&reply), Some(200), "{}", reply.text());
        let reply = raw(
            addr,
            &request("/orders/2", &forbidden, Some(&unscoped)),
            REFUSAL,
        )
        .await;
        assert_eq!(status_of(&reply), Some(403), "{}", reply.text());
        for id in [&allowed, &forbidden] {
            let lines = lines_with(&gateway, id).await;
            assert_eq!(lines.len(), 1, "{lines:#?}");
            let line = &lines[0];
            let (subject, client_id, duration) = if format == "json" {
                let json: serde_json::Value = serde_json::from_str(line).expect("json line");
                (
                    json["subject"].as_str().unwrap_or_default().to_owned(),
                    json["client_id"].as_str().unwrap_or_default().to_owned(),
                    json["duration_ms"].to_string(),
                )
            } else {
                let field = |name: &str| {
                    line.split(' ')
                        .find_map(|part| part.strip_prefix(&format!("{name}=")))
                        .unwrap_or_default()
                        .to_owned()
                };
                (field("subject"), field("client_id"), field("duration_ms"))
            };
            assert_eq!(subject, "svc-7", "{id}: {line}");
            assert_eq!(client_id, "partner-a", "{id}: {line}");
            let decimals = duration.split('.').nth(1).map_or(0, str::len);
            assert!(
                decimals <= 3,
                "{id}: duration in whole microseconds: {line}"
            );
        }
        for line in gateway.lines() {
            assert!(!line.contains("Some("), "a debug rendering in {line:?}");
        }
    }
}

/// Issue 16: a request still in flight when the drain times out gets its access line, the
/// drain warning is logged, and the last line says the gateway stopped and why.
#[tokio::test]
async fn shutdown_logs_the_cut_request_the_drain_warning_and_a_final_stopped_line() {
    let echo = Echo::start().await;
    let config = identity_config(&echo, r#"shutdown_timeout = "300ms""#);
    let mut gateway = Running::start(&config.0, "text");
    let addr = gateway.bound().await.http;
    let slow = tokio::spawn(async move {
        raw(
            addr,
            &request("/public/slow?ms=4000", "cut-at-shutdown", None),
            Duration::from_secs(5),
        )
        .await
    });
    assert!(
        echo.wait_seen("/public/slow", Duration::from_secs(5))
            .await
            .is_some(),
        "the slow request reached the upstream"
    );
    gateway.signal("TERM");
    let status = gateway.wait_exit(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0));
    let _ = slow.await;
    // The stderr reader may still be draining the pipe.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let lines = gateway.lines();
    let cut: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("cut-at-shutdown"))
        .collect();
    assert_eq!(
        cut.len(),
        1,
        "one access line for the cut request: {lines:#?}"
    );
    assert!(
        cut[0].contains("status=0") && cut[0].contains("reason=shutdown"),
        "{}",
        cut[0]
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("WARN") && l.contains("drain timed out")),
        "the drain warning: {lines:#?}"
    );
    let last = lines.last().expect("some lines");
    assert!(
        last.contains("stopped") && last.contains("reason=SIGTERM"),
        "the final line: {lines:#?}"
    );
}
