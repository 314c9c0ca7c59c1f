//! Value types of the raw config: strings with `${VAR}` interpolation and durations.
//!
//! Interpolation happens inside `Deserialize`, so toml attaches the value's line to any error.

use std::cell::RefCell;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{self, Deserializer};
use serde::Deserialize;

use super::env::interpolate;

/// A string value after `${VAR}` interpolation.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct EnvString(pub String);

impl EnvString {
    /// The interpolated text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for EnvString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

thread_local! {
    /// The directory of the config file being parsed, for relative `${file:PATH}` values.
    /// Set by `config::parse` around deserialization (serde gives `Deserialize` no context).
    static BASE_DIR: RefCell<PathBuf> = RefCell::new(PathBuf::new());
}

/// Runs `parse` with `dir` as the base of relative `${file:PATH}` values.
pub fn with_base_dir<T>(dir: &Path, parse: impl FnOnce() -> T) -> T {
    let previous = BASE_DIR.with(|base| base.replace(dir.to_path_buf()));
    let result = parse();
    BASE_DIR.with(|base| base.replace(previous));
    result
}

impl<'de> Deserialize<'de> for EnvString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        BASE_DIR
            .with(|base| interpolate(&raw, &base.borrow(), |name| std::env::var(name).ok()))
            .map(EnvString)
            .map_err(de::Error::custom)
    }
}

/// A duration written as `"500ms"`, `"30s"`, `"5m"`, `"1h"`, `"1d"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = EnvString::deserialize(deserializer)?;
        parse_duration(text.as_str())
            .map(Dur)
            .map_err(de::Error::custom)
    }
}

/// Parses `<integer><unit>` with unit `ms`, `s`, `m`, `h` or `d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let invalid =
        || format!("invalid duration \"{text}\" (expected e.g. \"500ms\", \"30s\", \"5m\")");
    let amount: u64 = digits.parse().map_err(|_| invalid())?;
    let millis_per_unit: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(invalid()),
    };
    amount
        .checked_mul(millis_per_unit)
        .map(Duration::from_millis)
        .ok_or_else(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        for bad in [
            "",
            "30",
            "s",
            "1.5s",
            "-1s",
            "10 parsecs",
            "99999999999999999999s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
