//! `[server]`, `[server.tls]`, `[admin]` and `[decision]`: the listeners, the client-side
//! limits and timeouts, and the TLS listener's files, read and checked here as the listener
//! will use them (so `check` catches what `run` would refuse). Nothing binds here.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use toml::Spanned;

use super::ctx::{duration, Ctx};
use super::raw;
use super::ConfigError;
use crate::logging::error_chain;
use crate::snapshot::{ClientCertMode, Readiness, ServerSettings, TlsSettings};
use crate::tls::server::{self as tls_server, ServerFiles, TlsFile};

const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
const DEFAULT_ADMIN: &str = "127.0.0.1:9090";

/// `[server]`: limits must be positive, timeouts non-zero. Without `listen`, the plaintext
/// listener is on [`DEFAULT_LISTEN`] unless `[server.tls]` is set (`tls`).
pub(super) fn server_settings(
    ctx: &Ctx<'_>,
    s: &raw::Server,
    tls: Option<&TlsSettings>,
) -> Result<ServerSettings, ConfigError> {
    let listen = match (&s.listen, tls) {
        (Some(listen), _) => Some(ctx.socket_addr("server.listen", listen)?),
        (None, Some(_)) => None,
        (None, None) => DEFAULT_LISTEN.parse().ok(),
    };
    let positive =
        |value: &Option<Spanned<u64>>, key: &str, default: u64| -> Result<u64, ConfigError> {
            match value {
                Some(v) if *v.get_ref() == 0 => Err(ctx.at(key, v, "must be greater than 0")),
                Some(v) => Ok(*v.get_ref()),
                None => Ok(default),
            }
        };
    let max_header_bytes = positive(&s.max_header_bytes, "server.max_header_bytes", 32_768)?;
    if let Some(value) = &s.max_header_bytes {
        if *value.get_ref() < 8192 {
            return Err(ctx.at("server.max_header_bytes", value, "must be at least 8192"));
        }
    }
    let server = ServerSettings {
        listen,
        header_read_timeout: duration(&s.header_read_timeout, Duration::from_secs(10)),
        request_timeout: duration(&s.request_timeout, Duration::from_secs(60)),
        idle_timeout: duration(&s.idle_timeout, Duration::from_secs(90)),
        max_header_bytes: max_header_bytes as usize,
        max_headers: positive(&s.max_headers, "server.max_headers", 100)? as usize,
        max_request_line_bytes: positive(
            &s.max_request_line_bytes,
            "server.max_request_line_bytes",
            8192,
        )? as usize,
        max_connections: positive(&s.max_connections, "server.max_connections", 10_000)? as usize,
        max_connections_per_client: positive(
            &s.max_connections_per_client,
            "server.max_connections_per_client",
            1024,
        )? as usize,
        http2_max_concurrent_streams: u32::try_from(positive(
            &s.http2_max_concurrent_streams,
            "server.http2_max_concurrent_streams",
            100,
        )?)
        .unwrap_or(u32::MAX),
        max_upstream_requests: positive(
            &s.max_upstream_requests,
            "server.max_upstream_requests",
            1024,
        )? as usize,
        shutdown_timeout: duration(&s.shutdown_timeout, Duration::from_secs(30)),
    };
    for (key, value) in [
        ("server.header_read_timeout", &s.header_read_timeout),
        ("server.request_timeout", &s.request_timeout),
        ("server.idle_timeout", &s.idle_timeout),
    ] {
        if let Some(value) = value {
            if value.get_ref().0.is_zero() {
                return Err(ctx.at(key, value, "must be greater than 0"));
            }
        }
    }
    Ok(server)
}

/// `[admin]` and `[decision]`: the admin listener (default [`DEFAULT_ADMIN`]), the decision
/// listener (off by default) and the `/readyz` rule.
pub(super) fn admin_settings(
    ctx: &Ctx<'_>,
    config: &raw::Config,
) -> Result<(SocketAddr, Option<SocketAddr>, Readiness), ConfigError> {
    let admin_listen = match &config.admin.listen {
        Some(listen) => ctx.socket_addr("admin.listen", listen)?,
        None => DEFAULT_ADMIN
            .parse()
            .map_err(|_| ctx.err("admin.listen", None, "invalid default"))?,
    };

    let decision_listen = match &config.decision.listen {
        Some(listen) => Some(ctx.socket_addr("decision.listen", listen)?),
        None => None,
    };

    let readiness = match &config.admin.readiness {
        None => Readiness::LoadedOnce,
        Some(value) => Readiness::from_name(value.get_ref().as_str()).ok_or_else(|| {
            ctx.at(
                "admin.readiness",
                value,
                "must be \"loaded_once\", \"all_issuers\" or \"listeners\"",
            )
        })?,
    };
    Ok((admin_listen, decision_listen, readiness))
}

/// `[server.tls]`.
pub(super) fn compile_tls(ctx: &Ctx<'_>, tls: &raw::Tls) -> Result<TlsSettings, ConfigError> {
    let client_cert = match &tls.client_cert {
        None => ClientCertMode::Off,
        Some(mode) => match mode.get_ref().as_str() {
            "off" => ClientCertMode::Off,
            "optional" => ClientCertMode::Optional,
            "required" => ClientCertMode::Required,
            other => {
                return Err(ctx.at(
                    "server.tls.client_cert",
                    mode,
                    format!("\"{other}\" is not one of off, optional, required"),
                ))
            }
        },
    };
    let client_ca_file = match &tls.client_ca_file {
        Some(file) => Some(ctx.file("server.tls.client_ca_file", file)?),
        None if client_cert != ClientCertMode::Off => {
            return Err(ctx.err(
                "server.tls.client_ca_file",
                tls.client_cert.as_ref().map(Spanned::span),
                "required when client_cert is not \"off\"",
            ))
        }
        None => None,
    };
    let client_crl_file = match &tls.client_crl_file {
        Some(file) => Some(ctx.file("server.tls.client_crl_file", file)?),
        None => None,
    };
    let listen = ctx.socket_addr("server.tls.listen", &tls.listen)?;
    let cert_file = ctx.file("server.tls.cert_file", &tls.cert_file)?;
    let key_file = ctx.file("server.tls.key_file", &tls.key_file)?;
    // Every file is read and parsed here, as the listener will use it: `check` catches what
    // `run` would refuse, and a reload with a broken file is refused whole.
    let files = ServerFiles {
        cert_file: &cert_file,
        key_file: &key_file,
        client_ca_file: client_ca_file.as_deref(),
        client_crl_file: client_crl_file.as_deref(),
        client_cert,
    };
    let server_config = tls_server::server_config(&files).map_err(|error| {
        let span = match error.file() {
            TlsFile::Cert => Some(tls.cert_file.span()),
            TlsFile::Key => Some(tls.key_file.span()),
            TlsFile::ClientCa => tls.client_ca_file.as_ref().map(Spanned::span),
            TlsFile::ClientCrl => tls.client_crl_file.as_ref().map(Spanned::span),
        };
        ctx.err(error.file().key(), span, error_chain(&error))
    })?;
    Ok(TlsSettings {
        listen,
        client_cert,
        handshake_timeout: duration(&tls.handshake_timeout, Duration::from_secs(10)),
        server_config: Arc::new(server_config),
        expiries: crate::tls::expiry::of_files(
            &cert_file,
            client_ca_file.as_deref(),
            client_crl_file.as_deref(),
        ),
        cert_file,
        key_file,
        client_ca_file,
        client_crl_file,
    })
}
