//! Configuration errors: each names the file, the TOML key and the line.

use std::path::PathBuf;

/// Why a config was refused. Messages never contain secrets.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}{}: {}{message}", line_suffix(*line), key_prefix(key.as_deref()))]
    Syntax {
        path: String,
        line: Option<usize>,
        key: Option<String>,
        message: String,
    },
    #[error("{path}{}: {key}: {message}", line_suffix(*line))]
    Invalid {
        path: String,
        key: String,
        line: Option<usize>,
        message: String,
    },
}

fn line_suffix(line: Option<usize>) -> String {
    match line {
        Some(line) => format!(":{line}"),
        None => String::new(),
    }
}

fn key_prefix(key: Option<&str>) -> String {
    key.map(|key| format!("{key}: ")).unwrap_or_default()
}
