//! authgate: a reverse-proxy authentication gateway.
//!
//! authgate sits in front of HTTP APIs. For every request it canonicalizes the path, picks a
//! route, checks the client address and certificate, validates the bearer JWT against cached
//! key sets, checks the route's scopes, and forwards the request upstream with the caller's
//! identity in headers.
//!
//! ```text
//!             ┌──────────── config (TOML) ── compile ──► Snapshot (immutable, ArcSwap) ◄── SIGHUP
//!             │                                             │
//!  client ──► server::conn ──► pipeline::decide ───────────┤  path → route → client addr →
//!  (h1/h2,    (accept, TLS,     (SPEC §3, one place)        │  allowlists → client cert →
//!   TLS)       limits)                 │                    │  token (cache, JWKS) → scopes
//!                                      ▼                    │
//!                          deny::Deny ──► JSON error        │
//!                          proxy::forward ──► upstream ─────┘  (identity headers, streaming)
//! ```
//!
//! Modules:
//! - [`config`]: TOML -> raw types -> [`snapshot::Snapshot`];
//! - [`pipeline`]: the decision and the request handler;
//! - [`decision`]: decision mode, the same decision asked for by an ingress (SPEC §7.3);
//! - [`routing`], [`network`], [`auth`], [`ratelimit`]: the steps of the pipeline;
//! - [`header_names`]: every header name the gateway reads or writes, in one place;
//! - [`proxy`]: header rewriting and forwarding;
//! - [`server`]: listeners, TLS, admin endpoints, reload, shutdown;
//! - [`tls`]: PEM files, trust roots and the listener's rustls config (one loader for all);
//! - [`http_head`]: request framing as it arrives, for the connection timers and the checks
//!   of what the HTTP parser hides;
//! - [`metrics`], [`access_log`]: what operators see; [`log_writer`] moves finished log
//!   lines to stderr off the request task;
//! - [`demo`], [`explain`]: the newcomer path.

pub mod access_log;
pub mod auth;
pub mod config;
pub mod decision;
pub mod demo;
pub mod deny;
pub mod explain;
pub mod header_names;
pub mod http_head;
pub mod log_writer;
pub mod logging;
pub mod metrics;
pub mod network;
pub mod pipeline;
pub mod proxy;
pub mod ratelimit;
pub mod routing;
pub mod server;
pub mod snapshot;
pub mod tls;
