//! What [`decide`](super::decide) reports of each step: the step's name ([`Step`]) and its
//! outcome, to a [`Trace`]. `explain` keeps them; the server's [`NoTrace`] costs nothing.
//! A trace only observes: it never changes a decision (a dry run only skips spending rate-limit
//! budget).

/// A step of [`decide`] as a trace names it, in the order the steps run (SPEC §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The request target's form and length.
    Target,
    /// The message framing (Content-Length, Transfer-Encoding, line ends).
    Framing,
    /// The canonical path.
    CanonicalPath,
    /// The request host.
    Host,
    /// The route lookup.
    Route,
    /// The client address (the peer, or X-Forwarded-For from a trusted proxy).
    ClientAddress,
    /// The gateway-wide allowlist.
    GatewayAllowlist,
    /// The route's allowlist.
    RouteAllowlist,
    /// The route's demand for a client certificate.
    ClientCertificate,
    /// One rate-limit policy.
    RateLimit,
    /// Which credential the request carries (token or API key).
    Credential,
    /// The bearer token.
    Token,
    /// The issuers' key sets.
    Keys,
    /// The API key.
    ApiKey,
    /// The verified client's `[[clients]]` entry.
    ClientPolicy,
    /// The route's scopes.
    Scopes,
}

impl Step {
    /// The step's name as `explain` prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Target => "target",
            Step::Framing => "framing",
            Step::CanonicalPath => "canonical path",
            Step::Host => "host",
            Step::Route => "route",
            Step::ClientAddress => "client address",
            Step::GatewayAllowlist => "gateway allowlist",
            Step::RouteAllowlist => "route allowlist",
            Step::ClientCertificate => "client certificate",
            Step::RateLimit => "rate limit",
            Step::Credential => "credential",
            Step::Token => "token",
            Step::Keys => "keys",
            Step::ApiKey => "api key",
            Step::ClientPolicy => "client policy",
            Step::Scopes => "scopes",
        }
    }
}

/// Receives each step's outcome; `explain` prints them, the server ignores them.
pub trait Trace {
    /// `detail` is only called when the trace keeps it.
    fn step(&mut self, step: Step, ok: bool, detail: impl FnOnce() -> String);

    /// A dry run (`explain`) shows which rate limits apply and their keys, and spends no
    /// budget.
    fn dry_run(&self) -> bool {
        false
    }
}

/// The server's trace: records nothing, costs nothing.
pub struct NoTrace;

impl Trace for NoTrace {
    #[inline]
    fn step(&mut self, _: Step, _: bool, _: impl FnOnce() -> String) {}
}
