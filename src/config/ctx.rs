//! What every section compiler shares: [`Ctx`] (the source, for errors that name the key and
//! the line, and the parsers of values that appear in several sections: addresses, files,
//! trust roots, CIDR lists, claim header tables) and small value helpers. It sits below the
//! section compilers (`compile`, `issuers`, `clients`, `api_keys`) and names none of them.

use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::value::{Dur, EnvString};
use super::{ConfigError, Source};
use crate::logging::error_chain;
use crate::network::{allowlist, CidrSet};

pub(super) struct Ctx<'a> {
    pub(super) source: &'a Source,
}

impl Ctx<'_> {
    pub(super) fn err(
        &self,
        key: impl Into<String>,
        span: Option<Range<usize>>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError::Invalid {
            path: self.source.path.clone(),
            key: key.into(),
            line: span.map(|span| self.source.line_of(span.start)),
            message: message.into(),
        }
    }

    pub(super) fn at<T>(
        &self,
        key: impl Into<String>,
        value: &Spanned<T>,
        message: impl Into<String>,
    ) -> ConfigError {
        self.err(key, Some(value.span()), message)
    }

    pub(super) fn socket_addr(
        &self,
        key: &str,
        value: &Spanned<EnvString>,
    ) -> Result<SocketAddr, ConfigError> {
        value.get_ref().as_str().parse().map_err(|_| {
            self.at(
                key,
                value,
                format!(
                    "invalid address \"{}\" (expected ip:port)",
                    value.get_ref().as_str()
                ),
            )
        })
    }

    pub(super) fn file(
        &self,
        key: &str,
        value: &Spanned<EnvString>,
    ) -> Result<PathBuf, ConfigError> {
        let path = self.source.resolve(value.get_ref().as_str());
        std::fs::metadata(&path).map_err(|error| {
            self.at(
                key,
                value,
                format!("cannot read {}: {error}", path.display()),
            )
        })?;
        Ok(path)
    }

    /// A PEM bundle of trust roots (`ca_file`), read and parsed now as the TLS client that
    /// uses it will: a file without a usable certificate is a config error, not a client that
    /// can never connect.
    pub(super) fn roots_file(
        &self,
        key: &str,
        value: &Spanned<EnvString>,
    ) -> Result<PathBuf, ConfigError> {
        let path = self.file(key, value)?;
        crate::tls::pem::roots(&path).map_err(|error| self.at(key, value, error_chain(&error)))?;
        Ok(path)
    }

    /// Every CIDR list of the config goes through the one strict parser
    /// ([`allowlist::parse_cidrs`]): a CIDR with host bits set is refused, never widened.
    /// A `claim_headers` table (header -> claim): valid header names the gateway does not
    /// reserve for itself.
    pub(super) fn claim_headers(
        &self,
        key: &str,
        map: Option<&Spanned<std::collections::BTreeMap<String, EnvString>>>,
    ) -> Result<Vec<(http::HeaderName, String)>, ConfigError> {
        let Some(map) = map else {
            return Ok(Vec::new());
        };
        let mut headers = Vec::with_capacity(map.get_ref().len());
        for (header, claim) in map.get_ref() {
            let name = http::HeaderName::from_bytes(header.as_bytes())
                .map_err(|_| self.at(key, map, format!("invalid header name \"{header}\"")))?;
            if crate::proxy::headers::is_reserved(&name) {
                return Err(self.at(
                    key,
                    map,
                    format!("header \"{header}\" is reserved by the gateway"),
                ));
            }
            headers.push((name, claim.as_str().to_owned()));
        }
        Ok(headers)
    }

    pub(super) fn cidrs(
        &self,
        key: &str,
        values: Option<&Spanned<Vec<EnvString>>>,
    ) -> Result<CidrSet, ConfigError> {
        let Some(values) = values else {
            return Ok(CidrSet::default());
        };
        let texts = strings(values.get_ref());
        let nets = allowlist::parse_cidrs(&texts)
            .map_err(|(index, message)| self.at(format!("{key}[{index}]"), values, message))?;
        Ok(CidrSet::new(&nets))
    }
}

pub(super) fn duration(value: &Option<Spanned<Dur>>, default: Duration) -> Duration {
    value.as_ref().map_or(default, |value| value.get_ref().0)
}

pub(super) fn strings(values: &[EnvString]) -> Vec<String> {
    values
        .iter()
        .map(|value| value.as_str().to_owned())
        .collect()
}
