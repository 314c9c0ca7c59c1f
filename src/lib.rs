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
//! - [`proxy`]: upstreams (servers, balancing, health, retries, HTTP/1 and HTTP/2), header
//!   rewriting and forwarding;
//! - [`server`]: listeners, TLS, admin endpoints, reload, shutdown;
//! - [`tls`]: PEM files, trust roots, the listener's rustls config and the TLS client
//!   settings of upstreams and key fetchers (one loader, one meaning of `ca_file`);
//! - [`http_head`]: request framing as it arrives, for the connection timers and the checks
//!   of what the HTTP parser hides;
//! - [`metrics`], [`access_log`]: what operators see; [`log_writer`] moves finished log
//!   lines to stderr off the request task;
//! - [`demo`], [`explain`], [`token`]: the newcomer path.
//!
//! Layers, from the ground up. A module names only modules on its own or a lower layer, never
//! a higher one, so there is no import loop (checked with `farm-studio look`):
//! 1. [`header_names`], [`http_head`], [`log_writer`], [`logging`], [`routing`]: name nothing
//!    of ours;
//! 2. [`tls`], [`network`], [`auth`]: the building blocks of the checks;
//! 3. [`metrics`]: the registry and the children the layers above count with;
//! 4. [`ratelimit`];
//! 5. [`deny`]: every refusal, naming the token, key, path and rate-limit errors;
//! 6. [`proxy`] (owns the compiled `Upstream`), then [`snapshot`]: the compiled config names
//!    everything below it;
//! 7. [`config`] (builds the snapshot), [`access_log`] (takes plain facts, not the pipeline's
//!    types);
//! 8. [`pipeline`];
//! 9. [`decision`]: the pipeline asked by an ingress;
//! 10. [`server`]: listeners, connections, reload;
//! 11. [`explain`], [`demo`], [`token`]; then `main.rs`.

// Lints: no unsafe code anywhere (the one system call that needed it, setrlimit, goes
// through rustix); `auth` and `config` also warn on undocumented public items.
#![forbid(unsafe_code)]

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
pub mod token;
