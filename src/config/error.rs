//! Configuration errors: each names the file, the TOML key and the line.

use std::path::PathBuf;

/// Why a config was refused. Messages never contain secrets.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file cannot be read.
    #[error("cannot read config file {path}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML, has an unknown key or a value of the wrong type.
    #[error("{path}{}: {}{message}", line_suffix(*line), key_prefix(key.as_deref()))]
    Syntax {
        /// The config file.
        path: String,
        /// The line of the error, when known.
        line: Option<usize>,
        /// The dotted key of the error, when known.
        key: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// A value is parsed but not accepted (a bad address, a reference to nothing, ...).
    #[error("{path}{}: {key}: {message}", line_suffix(*line))]
    Invalid {
        /// The config file.
        path: String,
        /// The dotted key at fault (`routes[2].upstream`).
        key: String,
        /// The line of the key, when known.
        line: Option<usize>,
        /// What is wrong.
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
