//! Configuration: the TOML file (SPEC §2) read into raw serde types, environment variables
//! interpolated, then compiled once into an immutable [`Snapshot`](crate::snapshot::Snapshot).
//!
//! Loading never binds a port or fetches anything, so `authgate check` is `load` alone.
//!
//! Every public item is documented (`missing_docs`): the raw types are the config reference
//! in code, unit and default included.

#![warn(missing_docs)]

mod api_keys;
mod clients;
mod compile;
mod ctx;
pub(crate) mod env;
mod error;
mod issuers;
mod rate_limits;
pub mod raw;
mod routes;
mod secrets;
mod server;
mod upstreams;
mod value;

use std::path::{Path, PathBuf};

pub use compile::{compile, CompileContext};
pub use error::ConfigError;
pub use value::{parse_duration, EnvString};

/// Reads and parses `path` into the raw config, with line-numbered errors.
pub fn read(path: &Path) -> Result<(raw::Config, Source), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let source = Source {
        path: path.display().to_string(),
        text,
    };
    let config = parse(&source)?;
    Ok((config, source))
}

/// The config text, kept so compile errors can point at a line.
#[derive(Debug, Clone)]
pub struct Source {
    /// The file's path as given, for error messages.
    pub path: String,
    /// The file's text.
    pub text: String,
}

impl Source {
    /// The dotted key whose value sits at `offset` (`upstreams[0].timeout`), read off the text
    /// by the nearest table header above it. Best effort: used to name the key in errors.
    pub fn key_at(&self, offset: usize) -> Option<String> {
        let end = offset.min(self.text.len());
        let before = &self.text[..end];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let line = self.text[line_start..].lines().next().unwrap_or("");
        let key = line
            .split_once('=')
            .map(|(key, _)| key.trim().trim_matches('"').to_owned());
        let mut table = String::new();
        let mut counts: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        for header in before[..line_start].lines().map(str::trim) {
            if let Some(name) = header.strip_prefix("[[").and_then(|h| h.split("]]").next()) {
                let name = name.trim().to_owned();
                let index = counts
                    .entry(name.clone())
                    .and_modify(|n| *n += 1)
                    .or_insert(0);
                table = format!("{name}[{index}]");
            } else if let Some(name) = header.strip_prefix('[').and_then(|h| h.split(']').next()) {
                table = name.trim().to_owned();
            }
        }
        match (table.is_empty(), key) {
            (_, None) if table.is_empty() => None,
            (_, None) => Some(table),
            (true, Some(key)) => Some(key),
            (false, Some(key)) => Some(format!("{table}.{key}")),
        }
    }

    /// The directory relative paths in this config resolve against: the config file's own
    /// (SPEC §2; systemd and containers start in `/`). Empty (the working directory) for
    /// text without a directory, such as the embedded demo config.
    pub fn base_dir(&self) -> PathBuf {
        Path::new(&self.path)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }

    /// `path` as written in this config, resolved against [`Source::base_dir`].
    pub fn resolve(&self, path: &str) -> PathBuf {
        env::resolve(&self.base_dir(), path)
    }

    /// 1-based line of a byte offset.
    pub fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }
}

/// Parses config text (used for files and for the embedded demo config).
pub fn parse(source: &Source) -> Result<raw::Config, ConfigError> {
    value::with_base_dir(&source.base_dir(), || toml::from_str(&source.text)).map_err(|err| {
        let line = err.span().map(|span| source.line_of(span.start));
        let key = err.span().and_then(|span| source.key_at(span.start));
        ConfigError::Syntax {
            path: source.path.clone(),
            line,
            key,
            message: err.message().to_owned(),
        }
    })
}

#[cfg(test)]
mod tests;
