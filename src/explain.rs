//! `authgate explain`: the decision trace for one request, nothing proxied.
//!
//! It runs [`pipeline::decide`] — the server's own decision code — with a trace that keeps
//! every step, then renders the response the client would get. Keys come from the config's
//! key sources, fetched or loaded once.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context as _;
use http::{Method, Request};

use crate::deny::Deny;
use crate::metrics::Metrics;
use crate::pipeline::{self, ConnInfo, Trace};
use crate::routing::{HostPattern, Lookup};
use crate::server::ConfigOrigin;
use crate::snapshot::Snapshot;

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
}

/// Keeps every step.
#[derive(Default)]
pub struct Recorder {
    pub steps: Vec<(&'static str, bool, String)>,
}

impl Trace for Recorder {
    fn step(&mut self, step: &'static str, ok: bool, detail: impl FnOnce() -> String) {
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
    let (parts, ()) = builder
        .body(())
        .context("invalid --path or --host")?
        .into_parts();
    let conn = ConnInfo {
        peer: SocketAddr::new(args.ip, 0),
        local: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
        tls: false,
        client_cert: None,
    };

    let mut trace = Recorder::default();
    let decision = pipeline::decide(snapshot, &parts, &conn, &mut trace).await;
    let mut text = String::new();
    let _ = writeln!(
        text,
        "request: {} {} (client {})",
        args.method, args.path, args.ip
    );
    for (step, ok, detail) in &trace.steps {
        let _ = writeln!(
            text,
            "  {:<20} {:<5} {}",
            step,
            if *ok { "ok" } else { "FAIL" },
            detail
        );
        if *step == "route" {
            candidates(snapshot, &parts, &mut text);
        }
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
