//! What this test binary logs, captured in memory: [`capture_text`] (text, no colours, every
//! level), [`capture_text_at`] (text from a level up) and [`capture_json`] (JSON lines, INFO
//! and above) install a tracing subscriber writing into a [`Captured`] buffer, once per
//! binary; a binary uses one of them (the first call wins).

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::Value;
use tracing::Level;

/// Everything logged by this test binary.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// The whole log so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log lock")).into_owned()
    }

    /// The access-log lines (JSON objects) of request id `id` ([`capture_json`] only).
    pub fn access_lines(&self, id: &str) -> Vec<Value> {
        self.text()
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|line| line["target"] == "authgate::access" && line["request_id"] == id)
            .collect()
    }
}

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log lock").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the text capturing subscriber once per binary (no colours, TRACE).
pub fn capture_text() -> Captured {
    capture_text_at(Level::TRACE)
}

/// Installs the text capturing subscriber once per binary (no colours, `level` and above).
pub fn capture_text_at(level: Level) -> Captured {
    capture(Format::Text(level))
}

/// Installs the JSON capturing subscriber once per binary (flattened events, INFO).
pub fn capture_json() -> Captured {
    capture(Format::Json)
}

enum Format {
    Text(Level),
    Json,
}

/// The first call in a binary installs the subscriber; later calls return its buffer.
fn capture(format: Format) -> Captured {
    static CAPTURED: OnceLock<Captured> = OnceLock::new();
    CAPTURED
        .get_or_init(|| {
            let captured = Captured::default();
            let writer = captured.clone();
            let builder = tracing_subscriber::fmt().with_writer(move || writer.clone());
            let installed = match format {
                Format::Text(level) => builder.with_ansi(false).with_max_level(level).try_init(),
                Format::Json => builder
                    .json()
                    .flatten_event(true)
                    .with_max_level(Level::INFO)
                    .try_init(),
            };
            installed.expect("first subscriber in this binary");
            captured
        })
        .clone()
}
