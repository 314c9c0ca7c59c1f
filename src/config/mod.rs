//! Configuration: the TOML file (SPEC §2) read into raw serde types, environment variables
//! interpolated, then compiled once into an immutable [`Snapshot`](crate::snapshot::Snapshot).
//!
//! Loading never binds a port or fetches anything, so `authgate check` is `load` alone.

mod compile;
mod env;
mod error;
pub mod raw;
mod value;

use std::path::Path;

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
    pub path: String,
    pub text: String,
}

impl Source {
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
    toml::from_str(&source.text).map_err(|err| {
        let line = err.span().map(|span| source.line_of(span.start));
        ConfigError::Syntax {
            path: source.path.clone(),
            line,
            message: err.message().to_owned(),
        }
    })
}
