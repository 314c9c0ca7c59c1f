//! Logging setup: everything goes to stderr, through [`crate::log_writer`]'s writer thread;
//! `json` makes every line one JSON object.
//! `RUST_LOG` overrides the default level (`info`). Warnings that a flood can repeat (one per
//! request or per connection) go through a [`Throttle`].
//!
//! One line is always one record (SPEC §1). JSON escapes control characters itself; the text
//! format writes field values as they are, so [`EscapedFields`] escapes, in every field (the
//! message included), each character that could end a line or disguise one: control
//! characters (C0, DEL, C1 such as U+0085 NEL), U+2028 LINE SEPARATOR, U+2029 PARAGRAPH
//! SEPARATOR and the bidirectional formatting characters. Client-controlled text reaches the
//! log (a path refused before canonicalization is logged raw, a token's subject), and without
//! this one request could forge what looks like a second access-log entry.

use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::{MakeVisitor, VisitFmt, VisitOutput};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::EnvFilter;

/// The format of the lines [`init`]'s subscriber writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineFormat {
    /// `--log-format json`: one flattened JSON object.
    Json,
    /// `--log-format text` without colours: `timestamp  INFO request key=value ...`.
    Text,
}

/// Set once [`init`] installed the process's subscriber: the format it writes.
static INSTALLED: OnceLock<LineFormat> = OnceLock::new();

/// The format of the process's own subscriber, once [`init`] installed it. `access_log`
/// writes its lines directly in this format, byte for byte what the subscriber would write.
pub fn installed_format() -> Option<LineFormat> {
    INSTALLED.get().copied()
}

/// What [`init`] records, for tests of the direct access-log path without a subscriber.
#[cfg(test)]
pub(crate) fn install_format_for_tests(format: LineFormat) {
    let _ = INSTALLED.set(format);
}

pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(crate::log_writer::Stderr);
    // A second init (tests) keeps the first subscriber.
    let direct = if json {
        let installed = builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init();
        installed.ok().map(|()| LineFormat::Json)
    } else {
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let installed = builder
            .with_target(false)
            .with_ansi(ansi)
            .fmt_fields(EscapedFields)
            .try_init();
        // With colours, access lines go through the formatter (a terminal, not production).
        installed.ok().filter(|()| !ansi).map(|()| LineFormat::Text)
    };
    // Access lines are formatted in `access_log`, the same way, when this subscriber is used.
    if let Some(format) = direct {
        let _ = INSTALLED.set(format);
    }
}

/// Writes every log line still queued (before the process exits).
pub fn flush() {
    crate::log_writer::flush();
}

/// `error: cause: cause`: an error and its sources on one line, for logs and `explain`.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

/// The text format's field formatter: `message key=value ...` as tracing's default, with every
/// value (the message included) passed through [`Escaped`].
#[derive(Debug, Clone, Copy, Default)]
pub struct EscapedFields;

impl<'a> MakeVisitor<Writer<'a>> for EscapedFields {
    type Visitor = EscapingVisitor<'a>;

    fn make_visitor(&self, writer: Writer<'a>) -> EscapingVisitor<'a> {
        EscapingVisitor {
            writer,
            first: true,
            result: Ok(()),
        }
    }
}

/// Writes one event's or span's fields for [`EscapedFields`].
pub struct EscapingVisitor<'a> {
    writer: Writer<'a>,
    first: bool,
    result: fmt::Result,
}

impl Visit for EscapingVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.record_debug(field, &format_args!("{value}"));
        } else {
            self.record_debug(field, &value);
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.record_debug(field, &format_args!("{}", error_chain(value)));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_err() {
            return;
        }
        let separator = if self.first { "" } else { " " };
        self.first = false;
        let name = field.name();
        let name = name.strip_prefix("r#").unwrap_or(name);
        self.result = if name == "message" {
            write!(self.writer, "{separator}")
        } else {
            write!(self.writer, "{separator}{name}=")
        }
        .and_then(|()| write!(Escaped(&mut self.writer), "{value:?}"));
    }
}

impl VisitOutput<fmt::Result> for EscapingVisitor<'_> {
    fn finish(self) -> fmt::Result {
        self.result
    }
}

impl VisitFmt for EscapingVisitor<'_> {
    fn writer(&mut self) -> &mut dyn fmt::Write {
        &mut self.writer
    }
}

/// A writer that escapes, as `\u{XXXX}`, every character for which [`must_escape`] holds
/// (also used by `access_log`, which writes its text lines itself).
pub(crate) struct Escaped<W>(pub(crate) W);

impl<W: fmt::Write> fmt::Write for Escaped<W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut rest = text;
        while let Some(at) = rest.find(must_escape) {
            self.0.write_str(&rest[..at])?;
            let mut chars = rest[at..].chars();
            if let Some(c) = chars.next() {
                write!(self.0, "\\u{{{:04x}}}", u32::from(c))?;
            }
            rest = chars.as_str();
        }
        self.0.write_str(rest)
    }
}

/// Characters that end a line or disguise one: Unicode controls (C0, DEL, C1), the line and
/// paragraph separators, and the bidirectional formatting characters.
fn must_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{061c}' | '\u{200e}' | '\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// A warning of one kind logged at most once per interval; the occurrences in between are
/// counted and reported with the next one logged (`suppressed = N`), so a flood (an upstream
/// outage under load, a connection flood) costs a few lines, not thousands per second. The
/// access log is separate and still has every request.
///
/// One `static` per kind of warning, at the call site:
///
/// ```
/// use authgate::logging::Throttle;
/// static FAILED: Throttle = Throttle::every_10s();
/// if let Some(suppressed) = FAILED.admit() {
///     tracing::warn!(suppressed, "upstream request failed");
/// }
/// ```
pub struct Throttle {
    interval_ms: u64,
    /// When the last warning was logged, plus one; 0 = never.
    last: AtomicU64,
    suppressed: AtomicU64,
}

impl Throttle {
    pub const fn new(interval: Duration) -> Throttle {
        Throttle {
            interval_ms: interval.as_millis() as u64,
            last: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// The interval of every warning throttled so far.
    pub const fn every_10s() -> Throttle {
        Throttle::new(Duration::from_secs(10))
    }

    /// `Some(suppressed since the last one)` when this occurrence is to be logged.
    pub fn admit(&self) -> Option<u64> {
        static START: OnceLock<Instant> = OnceLock::new();
        let now = START.get_or_init(Instant::now).elapsed().as_millis() as u64;
        self.admit_at(now)
    }

    fn admit_at(&self, now_ms: u64) -> Option<u64> {
        let stamp = now_ms + 1;
        let last = self.last.load(Ordering::Relaxed);
        let due = last == 0 || stamp.saturating_sub(last) >= self.interval_ms;
        if due
            && self
                .last
                .compare_exchange(last, stamp, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn escaped_writer_table() {
        let cases = [
            ("/orders/7", "/orders/7"),
            ("a\nb", "a\\u{000a}b"),
            ("a\r\nb", "a\\u{000d}\\u{000a}b"),
            ("tab\there", "tab\\u{0009}here"),
            ("nel\u{85}x", "nel\\u{0085}x"),
            ("ls\u{2028}ps\u{2029}", "ls\\u{2028}ps\\u{2029}"),
            ("del\u{7f}", "del\\u{007f}"),
            ("esc\u{1b}[31m", "esc\\u{001b}[31m"),
            ("bidi\u{202e}rtl\u{2066}", "bidi\\u{202e}rtl\\u{2066}"),
            ("é ü 日本", "é ü 日本"),
            ("", ""),
        ];
        for (input, expected) in cases {
            let mut out = String::new();
            write!(Escaped(&mut out), "{input}").unwrap();
            assert_eq!(out, expected, "{input:?}");
        }
    }

    /// Every field of an event, the message included, comes out on one line.
    #[test]
    fn text_events_are_one_line_whatever_their_fields_hold() {
        #[derive(Clone, Default)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .fmt_fields(EscapedFields)
            .finish();
        let hostile = "/x\n2026-01-01T00:00:00Z INFO request path=/admin status=200\u{2028}\u{85}";
        let error = std::io::Error::other("bad\nthing");
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(path = %hostile, raw = hostile, count = 3, error = &error as &dyn std::error::Error, "msg\u{2029}{}", hostile);
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.matches('\n').count(), 1, "{text:?}");
        assert!(text.ends_with('\n'));
        for c in ['\r', '\u{85}', '\u{2028}', '\u{2029}'] {
            assert!(!text.contains(c), "{c:?} in {text:?}");
        }
        assert!(text.contains("path=/x\\u{000a}2026"), "{text}");
        assert!(text.contains("count=3"), "{text}");
        assert!(text.contains("error=bad\\u{000a}thing"), "{text}");
        assert!(text.contains(" msg\\u{2029}/x\\u{000a}"), "{text}");
    }

    #[test]
    fn a_throttle_logs_once_per_interval_and_counts_the_rest() {
        let throttle = Throttle::new(Duration::from_millis(1000));
        assert_eq!(throttle.admit_at(0), Some(0));
        for ms in 1..=500 {
            assert_eq!(throttle.admit_at(ms), None, "{ms}");
        }
        assert_eq!(throttle.admit_at(999), None);
        assert_eq!(throttle.admit_at(1000), Some(501));
        assert_eq!(throttle.admit_at(1500), None);
        assert_eq!(throttle.admit_at(5000), Some(1));
        assert_eq!(throttle.admit_at(6000), Some(0));
    }

    #[test]
    fn concurrent_callers_log_once_per_interval() {
        let throttle = std::sync::Arc::new(Throttle::new(Duration::from_secs(3600)));
        let admitted: u64 = (0..8)
            .map(|_| {
                let throttle = std::sync::Arc::clone(&throttle);
                std::thread::spawn(move || {
                    (0..1000).filter(|_| throttle.admit().is_some()).count() as u64
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|thread| thread.join().expect("thread"))
            .sum();
        assert_eq!(admitted, 1);
        assert_eq!(throttle.suppressed.load(Ordering::Relaxed), 7999);
    }
}
