//! The text log keeps one record per line (SPEC §1, issue 12 item 11): through the real
//! binary's stderr in `--log-format text`, request targets holding U+2028, U+2029, U+0085 and
//! other separators, raw and percent-encoded, accepted and refused during canonicalization,
//! each give exactly one access-log line, with the separators escaped.

mod support;

use std::time::{Duration, Instant};

use support::binary::Running;
use support::config::public_echo;
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
