//! `authgate explain`: the decision trace for one request, nothing proxied.
//!
//! It runs [`pipeline::decide`] — the server's own decision code — with a trace that keeps
//! every step, then renders the response the client would get. Keys come from the config's
//! key sources, fetched or loaded once.
//!
//! For a token it adds a view of the token's header and claims beside what the config
//! expected (`mismatch`). `--cert` presents a client certificate as a TLS connection would:
//! it counts only when it verifies against `[server.tls] client_ca_file` (and CRL), as in the
//! handshake; with client certificates off it is not asked for, so the request goes without
//! it. `--header` adds request headers (host, claim headers, API key headers).

mod mismatch;

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::{Method, Request};
use rustls::pki_types::UnixTime;
use rustls::server::WebPkiClientVerifier;

use crate::deny::Deny;
use crate::metrics::Metrics;
use crate::network::mtls::{client_cert, ClientCert};
use crate::pipeline::{self, ConnInfo, Step, Trace};
use crate::routing::{HostPattern, Lookup};
use crate::server::ConfigOrigin;
use crate::snapshot::{ClientCertMode, Snapshot};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Config file.
    #[arg(short, long)]
    pub config: PathBuf,
    /// Request method.
    #[arg(long, default_value = "GET")]
    pub method: String,
    /// Request target path, with an optional query.
    #[arg(long)]
    pub path: String,
    /// Host header.
    #[arg(long)]
    pub host: Option<String>,
    /// Bearer token (sent as `Authorization: Bearer <token>`).
    #[arg(long)]
    pub token: Option<String>,
    /// Client address.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub ip: IpAddr,
    /// PEM client certificate presented on a TLS connection (client-cert routes,
    /// certificate-bound tokens).
    #[arg(long, value_name = "FILE")]
    pub cert: Option<PathBuf>,
    /// A request header `Name: value`; repeatable.
    #[arg(long = "header", value_name = "K:V")]
    pub headers: Vec<String>,
}

/// Keeps every step.
#[derive(Default)]
pub struct Recorder {
    pub steps: Vec<(Step, bool, String)>,
}

impl Trace for Recorder {
    fn step(&mut self, step: Step, ok: bool, detail: impl FnOnce() -> String) {
        self.steps.push((step, ok, detail()));
    }

    fn dry_run(&self) -> bool {
        true
    }
}

/// The outcome of one explained request.
pub struct Explanation {
    pub allowed: bool,
    pub text: String,
}

/// Explains the request of `args` against `snapshot` (keys already loaded).
pub async fn explain(snapshot: &Snapshot, args: &Args) -> anyhow::Result<Explanation> {
    let method = Method::from_bytes(args.method.as_bytes()).context("invalid --method")?;
    let mut builder = Request::builder().method(method).uri(args.path.as_str());
    if let Some(host) = &args.host {
        builder = builder.header(http::header::HOST, host.as_str());
    }
    if let Some(token) = &args.token {
        builder = builder.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    for header in &args.headers {
        let (name, value) = header
            .split_once(':')
            .with_context(|| format!("invalid --header {header:?}: expected Name: value"))?;
        let name = http::HeaderName::from_bytes(name.trim().as_bytes())
            .with_context(|| format!("invalid --header name {:?}", name.trim()))?;
        let value = http::HeaderValue::from_str(value.trim())
            .with_context(|| format!("invalid --header value for {name}"))?;
        builder = builder.header(name, value);
    }
    let (parts, ()) = builder
        .body(())
        .context("invalid --path or --host")?
        .into_parts();
    let mut text = String::new();
    let _ = writeln!(
        text,
        "request: {} {} (client {})",
        args.method, args.path, args.ip
    );
    let client_cert = match &args.cert {
        None => None,
        Some(path) => match presented_cert(snapshot, path, &mut text)? {
            Presented::Verified(cert) => Some(Arc::new(cert)),
            Presented::NotAsked => None,
            Presented::Refused => {
                let _ = writeln!(text, "decision: deny (tls handshake)");
                let _ = writeln!(text, "response: none: the TLS handshake fails");
                return Ok(Explanation {
                    allowed: false,
                    text,
                });
            }
        },
    };
    let conn = ConnInfo {
        peer: SocketAddr::new(args.ip, 0),
        local: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
        tls: client_cert.is_some(),
        client_cert,
    };

    let mut trace = Recorder::default();
    let decision = pipeline::decide(snapshot, &parts, &conn, &mut trace).await;
    for (step, ok, detail) in &trace.steps {
        let _ = writeln!(
            text,
            "  {:<20} {:<5} {}",
            step.as_str(),
            if *ok { "ok" } else { "FAIL" },
            detail
        );
        if *step == Step::Route {
            candidates(snapshot, &parts, &mut text);
        }
    }
    let route = match &decision {
        Ok(allowed) => Some(allowed.route),
        Err(denied) => denied.route,
    };
    if let Some(token) = &args.token {
        let facts = mismatch::Facts {
            route: route.map(|index| &snapshot.routes[index]),
            cert_sha256: conn.client_cert.as_ref().map(|cert| &cert.sha256),
            now: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        };
        mismatch::render(snapshot, token, &facts, &mut text);
    }
    let allowed = decision.is_ok();
    match decision {
        Ok(allowed) => {
            let route = &snapshot.routes[allowed.route];
            let upstream = &snapshot.upstreams[route.upstream];
            let _ = writeln!(text, "decision: allow");
            let _ = writeln!(
                text,
                "forward: {} {}{}{}",
                parts.method,
                upstream.name,
                upstream
                    .servers
                    .first()
                    .map_or("", |server| server.path_prefix.as_str()),
                allowed.path
            );
            if let Some(verified) = &allowed.verified {
                for (name, value) in &verified.principal.headers {
                    let _ = writeln!(text, "  {}: {}", name, value.to_str().unwrap_or("<binary>"));
                }
            }
        }
        Err(denied) => {
            let _ = writeln!(text, "decision: deny ({})", denied.deny.reason());
            render(denied.deny, &mut text);
        }
    }
    Ok(Explanation { allowed, text })
}

/// What `--cert` amounts to on this config's TLS listener.
enum Presented {
    /// Verified against the client CAs: the connection carries it.
    Verified(ClientCert),
    /// Client certificates are off (or there is no TLS listener): never asked for.
    NotAsked,
    /// It does not verify: the handshake fails.
    Refused,
}

/// Reads `--cert` and judges it as the TLS handshake would.
fn presented_cert(
    snapshot: &Snapshot,
    path: &std::path::Path,
    text: &mut String,
) -> anyhow::Result<Presented> {
    let chain = crate::tls::pem::certificates(path)
        .with_context(|| format!("cannot read --cert {}", path.display()))?;
    let (leaf, intermediates) = chain
        .split_first()
        .with_context(|| format!("--cert {}: no certificate in the file", path.display()))?;
    let cert = client_cert(leaf)
        .with_context(|| format!("--cert {}: cannot parse the certificate", path.display()))?;
    let subject = cert.subject.to_str().unwrap_or("<binary>").to_owned();
    let x5t = URL_SAFE_NO_PAD.encode(cert.sha256);
    let _ = writeln!(
        text,
        "  client certificate   {subject}, sha256 {}, x5t#S256 {x5t}",
        cert.sha256_hex.to_str().unwrap_or_default()
    );
    let (ca_file, crl_file) = match &snapshot.tls {
        Some(tls) if tls.client_cert != ClientCertMode::Off => (
            tls.client_ca_file.as_deref(),
            tls.client_crl_file.as_deref(),
        ),
        _ => (None, None),
    };
    let Some(ca_file) = ca_file else {
        let _ = writeln!(
            text,
            "  {:<20} {:<5} not asked for ([server.tls] client_cert is off): the request goes without it",
            "tls handshake", "ok"
        );
        return Ok(Presented::NotAsked);
    };
    let provider = crate::tls::crypto_provider();
    let roots = crate::tls::pem::roots(ca_file).context("client_ca_file")?;
    let mut builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
    if let Some(crl_file) = crl_file {
        builder = builder.with_crls(crate::tls::pem::crls(crl_file).context("client_crl_file")?);
    }
    let verifier = builder.build().context("client_ca_file")?;
    match verifier.verify_client_cert(leaf, intermediates, UnixTime::now()) {
        Ok(_) => {
            let _ = writeln!(
                text,
                "  {:<20} {:<5} the certificate verifies against {}",
                "tls handshake",
                "ok",
                ca_file.display()
            );
            Ok(Presented::Verified(cert))
        }
        Err(error) => {
            let _ = writeln!(
                text,
                "  {:<20} {:<5} the certificate does not verify against {}: {error}",
                "tls handshake",
                "FAIL",
                ca_file.display()
            );
            Ok(Presented::Refused)
        }
    }
}

fn render(deny: Deny, text: &mut String) {
    let response = deny.into_response();
    let _ = writeln!(text, "response: {}", response.status());
    for (name, value) in response.headers() {
        let _ = writeln!(text, "  {}: {}", name, value.to_str().unwrap_or("<binary>"));
    }
    let _ = writeln!(text, "  {}", String::from_utf8_lossy(response.body()));
}

/// Routes whose prefix matches the path, and why each lost (offline: a linear scan is fine).
fn candidates(snapshot: &Snapshot, parts: &http::request::Parts, text: &mut String) {
    let Ok(path) = crate::routing::canonicalize(parts.uri.path()) else {
        return;
    };
    let Ok(host) = crate::routing::request_host(parts) else {
        return;
    };
    let host = host.as_ref().map(crate::routing::RequestHost::as_str);
    let chosen = match snapshot.table.lookup(host, &path, &parts.method) {
        Lookup::Matched(index) => Some(index),
        Lookup::NoRoute | Lookup::MethodNotAllowed(_) => None,
    };
    for (index, route) in snapshot.routes.iter().enumerate() {
        let spec = &route.spec;
        let prefix = spec.path_prefix.as_str();
        let prefix_matches = prefix == "/"
            || path.as_ref() == prefix
            || path
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/'));
        if !prefix_matches || Some(index) == chosen {
            continue;
        }
        let method_ok = spec
            .methods
            .as_ref()
            .is_none_or(|methods| methods.contains(&parts.method));
        let host_text = match &spec.host {
            HostPattern::Any => "any host".to_owned(),
            HostPattern::Exact(host) => format!("host {host}"),
            HostPattern::Wildcard(suffix) => format!("host *.{suffix}"),
        };
        let why = if !method_ok {
            "method not in its methods"
        } else {
            "another host tier or a longer prefix won"
        };
        let _ = writeln!(
            text,
            "    candidate {} (prefix {prefix}, {host_text}): lost, {why}",
            route.name
        );
    }
}

/// `authgate explain`: Ok(true) if allowed, Ok(false) if denied.
pub async fn run(args: &Args) -> anyhow::Result<bool> {
    let metrics = Metrics::new();
    let snapshot = ConfigOrigin::File(args.config.clone()).load(&metrics, None)?;
    // Load the keys the request could need, once, as `run` would at start.
    for issuer in &snapshot.issuers {
        if let Err(error) = issuer.store.load_once().await {
            eprintln!("authgate: keys of issuer {}: {error}", issuer.name);
        }
    }
    let explanation = explain(&snapshot, args).await?;
    print!("{}", explanation.text);
    Ok(explanation.allowed)
}
