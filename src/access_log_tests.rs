//! Unit tests of the access log's direct line formatting.

use std::io::Write;
use std::sync::{Arc, Mutex};

use super::*;

/// A timer that always says the same time.
struct Fixed;

impl FormatTime for Fixed {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        w.write_str("2026-12-02T04:47:19.123456Z")
    }
}

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A record with every field set, hostile text in the client-controlled ones.
fn hostile() -> AccessRecord {
    let mut record = AccessRecord::default();
    record.request_id = "req-\"1\"".to_owned();
    record.mode = Mode::Decision;
    record.peer = "[::1]:40000".to_owned();
    record.client = Some("2001:db8::7".parse().unwrap());
    record.method = "GET".to_owned();
    record.path = "/a\n2026 INFO request\u{2028}\u{85}\u{202e}\\\"é\u{1}".to_owned();
    record.route = "orders".to_owned();
    record.status = 403;
    record.reason = "insufficient_scope";
    record.subject = "svc\ttab".to_owned();
    record.client_id = "cli".to_owned();
    record.key_id = "k1".to_owned();
    record.upstream = "orders".to_owned();
    record.upstream_server = "http://127.0.0.1:9000".to_owned();
    record.duration = Duration::from_micros(1500);
    record.bytes_in = Some(12);
    record.bytes_out = Some(34);
    record
}

/// A record as first made: no client, unknown sizes, a whole number of milliseconds.
fn plain() -> AccessRecord {
    let mut record = AccessRecord::default();
    record.request_id = "r".to_owned();
    record.peer = "127.0.0.1:1".to_owned();
    record.method = "POST".to_owned();
    record.path = "/".to_owned();
    record.route = "none".to_owned();
    record.reason = "client_closed";
    record.duration = Duration::from_millis(2);
    record
}

/// What tracing-subscriber writes for the record's event, configured as `logging::init`.
fn through_tracing(record: &AccessRecord, format: LineFormat) -> String {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let builder = tracing_subscriber::fmt()
        .with_timer(Fixed)
        .with_writer(move || writer.clone());
    let dispatch = match format {
        LineFormat::Json => tracing::Dispatch::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .finish(),
        ),
        LineFormat::Text => tracing::Dispatch::new(
            builder
                .with_target(false)
                .with_ansi(false)
                .fmt_fields(crate::logging::EscapedFields)
                .finish(),
        ),
    };
    tracing::dispatcher::with_default(&dispatch, || emit_event(record));
    let bytes = buffer.0.lock().unwrap().clone();
    String::from_utf8(bytes).unwrap()
}

fn direct(record: &AccessRecord, format: LineFormat) -> String {
    let mut line = Vec::new();
    match format {
        LineFormat::Json => write_json(&mut line, record, &Fixed),
        LineFormat::Text => write_text(&mut line, record, &Fixed),
    }
    .unwrap();
    String::from_utf8(line).unwrap()
}

#[test]
fn direct_lines_are_what_tracing_writes() {
    for format in [LineFormat::Json, LineFormat::Text] {
        for record in [hostile(), plain()] {
            let expected = through_tracing(&record, format);
            assert!(expected.ends_with('\n'), "{expected:?}");
            assert_eq!(direct(&record, format), expected, "{format:?}");
        }
    }
}

#[test]
fn direct_lines_match_fixed_expectations() {
    assert_eq!(
        direct(&plain(), LineFormat::Json),
        concat!(
            r#"{"timestamp":"2026-12-02T04:47:19.123456Z","level":"INFO","message":"request","#,
            r#""request_id":"r","mode":"proxy","peer":"127.0.0.1:1","client":"","method":"POST","#,
            r#""path":"/","route":"none","status":0,"decision":"deny","reason":"client_closed","#,
            r#""subject":"","client_id":"","key_id":"","upstream":"","upstream_server":"","#,
            r#""duration_ms":2.0,"target":"authgate::access"}"#,
            "\n"
        )
    );
    let json = direct(&hostile(), LineFormat::Json);
    // serde_json escapes quotes, backslashes and C0 controls, and nothing else.
    assert!(
        json.contains("\"path\":\"/a\\n2026 INFO request\u{2028}\u{85}\u{202e}\\\\\\\"é\\u0001\""),
        "{json}"
    );
    assert!(
        json.contains(r#""duration_ms":1.5,"bytes_in":12,"bytes_out":34,"#),
        "{json}"
    );
    assert_eq!(json.matches('\n').count(), 1);
    assert_eq!(
        direct(&hostile(), LineFormat::Text),
        concat!(
            "2026-12-02T04:47:19.123456Z  INFO request request_id=req-\"1\" mode=decision ",
            "peer=[::1]:40000 client=2001:db8::7 method=GET ",
            "path=/a\\u{000a}2026 INFO request\\u{2028}\\u{0085}\\u{202e}\\\"é\\u{0001} ",
            "route=orders status=403 decision=deny reason=insufficient_scope ",
            "subject=svc\\u{0009}tab client_id=cli key_id=k1 upstream=orders ",
            "upstream_server=http://127.0.0.1:9000 duration_ms=1.5 bytes_in=12 bytes_out=34\n"
        )
    );
}

/// Only the subscriber writing to the log writer (`logging::init`'s) is bypassed.
#[test]
fn only_the_own_subscriber_is_bypassed() {
    crate::logging::install_format_for_tests(LineFormat::Json);
    let own = tracing::Dispatch::new(
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
            .with_writer(crate::log_writer::Stderr)
            .json()
            .finish(),
    );
    let other = tracing::Dispatch::new(
        tracing_subscriber::fmt()
            .with_writer(Buffer::default)
            .finish(),
    );
    let format = tracing::dispatcher::with_default(&own, direct_format);
    assert_eq!(format, crate::logging::installed_format());
    assert!(format.is_some());
    assert_eq!(
        tracing::dispatcher::with_default(&other, direct_format),
        None
    );
    let in_span = tracing::dispatcher::with_default(&own, || {
        let _entered = tracing::info_span!("outer").entered();
        direct_format()
    });
    assert_eq!(in_span, None);
}
