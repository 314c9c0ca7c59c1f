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
    #[error("{path}{}: {message}", line_suffix(*line))]
    Syntax {
        path: String,
        line: Option<usize>,
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
