//! Logging setup: everything goes to stderr; `json` makes every line one JSON object.
//! `RUST_LOG` overrides the default level (`info`). Warnings that a flood can repeat (one per
//! request or per connection) go through a [`Throttle`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tracing_subscriber::EnvFilter;

pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests) keeps the first subscriber.
    let _ = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init()
    } else {
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
        builder.with_target(false).with_ansi(ansi).try_init()
    };
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
    use super::*;

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
