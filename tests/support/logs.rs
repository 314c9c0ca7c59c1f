//! What this test binary logs, captured in memory: [`capture_text`] (text, no colours, every
//! level) and [`capture_json`] (JSON lines, INFO and above) install a tracing subscriber
//! writing into a [`Captured`] buffer, once per binary; a binary uses one of the two.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::Value;

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
    static CAPTURED: OnceLock<Captured> = OnceLock::new();
    CAPTURED
        .get_or_init(|| {
            let captured = Captured::default();
            let writer = captured.clone();
            tracing_subscriber::fmt()
                .with_writer(move || writer.clone())
                .with_ansi(false)
                .with_max_level(tracing::Level::TRACE)
                .try_init()
                .expect("first subscriber in this binary");
            captured
        })
        .clone()
}

/// Installs the JSON capturing subscriber once per binary (flattened events, INFO).
pub fn capture_json() -> Captured {
    static CAPTURED: OnceLock<Captured> = OnceLock::new();
    CAPTURED
        .get_or_init(|| {
            let captured = Captured::default();
            let writer = captured.clone();
            tracing_subscriber::fmt()
                .json()
                .flatten_event(true)
                .with_writer(move || writer.clone())
                .with_max_level(tracing::Level::INFO)
                .try_init()
                .expect("first subscriber in this binary");
            captured
        })
        .clone()
}
