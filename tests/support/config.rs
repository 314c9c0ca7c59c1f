//! Config text builder: the blocks most tests repeat (`[server]` and `[admin]` on
//! 127.0.0.1:0, an upstream, a public route, the test HMAC issuer), so that a test writes only
//! what it is about. The output is plain TOML text for `Gateway::from_toml` or a file.
//!
//! ```ignore
//! let text = Config::new().server("max_connections = 4").echo(&echo).public("/public").toml();
//! ```

use super::echo::Echo;
use super::gateway::Gateway;
use super::idp::Idp;

/// The test HMAC issuer `test-idp` (`iss` `https://idp.test/`, audience `api`): with it, a
/// route without `public = true` is valid config.
pub const TEST_ISSUER: &str = r#"
[[issuers]]
name = "test-idp"
issuer = "https://idp.test/"
hmac_secret = "0123456789abcdef0123456789abcdef"
audiences = ["api"]
"#;

/// A gateway config under construction.
#[derive(Debug, Clone, Default)]
pub struct Config {
    server: String,
    admin: String,
    rest: String,
}

impl Config {
    /// `[server]` and `[admin]`, both listening on 127.0.0.1:0.
    pub fn new() -> Config {
        Config::default()
    }

    /// Lines inside `[server]` (after `listen`).
    pub fn server(mut self, lines: &str) -> Config {
        self.server.push_str(lines);
        self.server.push('\n');
        self
    }

    /// Lines inside `[admin]` (after `listen`).
    pub fn admin(mut self, lines: &str) -> Config {
        self.admin.push_str(lines);
        self.admin.push('\n');
        self
    }

    /// Any TOML after `[admin]`, as is (tables, issuers, routes).
    pub fn raw(mut self, text: &str) -> Config {
        self.rest.push_str(text);
        self.rest.push('\n');
        self
    }

    /// An `[[issuers]]` entry `name` with `lines` (issuer, keys, audiences, ...).
    pub fn issuer(self, name: &str, lines: &str) -> Config {
        self.raw(&format!("\n[[issuers]]\nname = \"{name}\"\n{lines}"))
    }

    /// An `[[issuers]]` entry `name` for `idp` (its `issuer` and `jwks_uri`, audience `api`),
    /// with `lines` added.
    pub fn idp(self, name: &str, idp: &Idp, lines: &str) -> Config {
        let lines = format!("audiences = [\"api\"]\n{lines}");
        self.jwks_issuer(name, &idp.issuer(), &idp.jwks_uri(), &lines)
    }

    /// An `[[issuers]]` entry `name` for `iss` with keys at `jwks_uri`, with `lines` added
    /// (audiences, ...).
    pub fn jwks_issuer(self, name: &str, iss: &str, jwks_uri: &str, lines: &str) -> Config {
        let keys = format!("issuer = \"{iss}\"\njwks_uri = \"{jwks_uri}\"\n{lines}");
        self.issuer(name, &keys)
    }

    /// An `[[upstreams]]` entry.
    pub fn upstream(self, name: &str, url: &str) -> Config {
        self.upstream_with(name, &format!("url = \"{url}\""))
    }

    /// An `[[upstreams]]` entry `name` with `lines` (url or servers, timeouts, ...).
    pub fn upstream_with(self, name: &str, lines: &str) -> Config {
        self.raw(&format!("\n[[upstreams]]\nname = \"{name}\"\n{lines}"))
    }

    /// The upstream `echo` at the echo's root.
    pub fn echo(self, echo: &Echo) -> Config {
        self.upstream("echo", &echo.url(""))
    }

    /// A route `name` for `prefix` to upstream `echo`, with `lines` added to it.
    pub fn route(self, name: &str, prefix: &str, lines: &str) -> Config {
        self.route_to(name, prefix, "echo", lines)
    }

    /// A route `name` for `prefix` to `upstream`, with `lines` added to it.
    pub fn route_to(self, name: &str, prefix: &str, upstream: &str, lines: &str) -> Config {
        self.raw(&format!(
            "\n[[routes]]\nname = \"{name}\"\npath_prefix = \"{prefix}\"\nupstream = \"{upstream}\"\n{lines}"
        ))
    }

    /// The public route `all` for `/` to `upstream`.
    pub fn catch_all(self, upstream: &str) -> Config {
        self.route_to("all", "/", upstream, "public = true")
    }

    /// The route `public` for `prefix` to upstream `echo`, `public = true`.
    pub fn public(self, prefix: &str) -> Config {
        self.route("public", prefix, "public = true")
    }

    /// [`TEST_ISSUER`].
    pub fn test_issuer(self) -> Config {
        self.raw(TEST_ISSUER)
    }

    /// The tables after `[admin]` alone, for harnesses that write their own listeners
    /// (`support::auth::Gateway::start`).
    pub fn tables(&self) -> String {
        self.rest.clone()
    }

    /// The TOML text.
    pub fn toml(&self) -> String {
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n{}\n[admin]\nlisten = \"127.0.0.1:0\"\n{}\n{}",
            self.server, self.admin, self.rest
        )
    }
}

/// The most common gateway: `server` lines in `[server]`, the upstream `echo`, and the public
/// route `/public` to it.
pub fn public_echo(server: &str, echo: &Echo) -> String {
    Config::new()
        .server(server)
        .echo(echo)
        .public("/public")
        .toml()
}

/// An echo upstream and a ready gateway running [`public_echo`] with `server` lines.
pub async fn start_public(server: &str) -> (Echo, Gateway) {
    let echo = Echo::start().await;
    let gateway = Gateway::from_toml(public_echo(server, &echo)).start().await;
    (echo, gateway)
}

/// The upstream tests' gateway: upstream `svc` with `lines` (url or servers, timeouts), and
/// the public route `all` for `/` to it.
pub fn svc(lines: &str) -> String {
    Config::new()
        .upstream_with("svc", lines)
        .catch_all("svc")
        .toml()
}

/// `server` lines in `[server]`, then `rest` as is.
pub fn with_server(server: &str, rest: &str) -> String {
    Config::new().server(server).raw(rest).toml()
}

/// The proxy tests' usual setup: upstream `echo` at `<echo>/base`, public routes `/public`,
/// a non-public route `/private` and [`TEST_ISSUER`].
pub fn standard_config(echo: &Echo) -> String {
    Config::new()
        .upstream("echo", &echo.url("/base"))
        .public("/public")
        .route("private", "/private", "")
        .test_issuer()
        .toml()
}

/// A ready gateway running [`standard_config`].
pub async fn standard(echo: &Echo) -> Gateway {
    Gateway::from_toml(standard_config(echo)).start().await
}

/// An echo upstream and a ready gateway running [`standard_config`] for it.
pub async fn start_standard() -> (Echo, Gateway) {
    let echo = Echo::start().await;
    let gateway = standard(&echo).await;
    (echo, gateway)
}

/// The decision-mode gateway of `decision.rs` and `nginx_decision.rs`: a `[decision]`
/// listener on 127.0.0.1:0 trusting `trusted`, readiness on listeners, issuers `main` (the
/// IdP at `issuer`/`jwks_uri`, audience `api`, plus `main_lines`) and `down` (keys never
/// reachable), routes `public` (public), `admin` (scope `admin`), `orders` (scope
/// `orders:read`, plus `orders_lines`), `office` (allow 192.0.2.0/24) and `down` (issuer
/// `down`), all to `echo`; `server` lines in `[server]`.
pub struct DecisionGateway<'a> {
    pub issuer: &'a str,
    pub jwks_uri: &'a str,
    pub echo: &'a Echo,
    pub trusted: &'a str,
    pub server: &'a str,
    pub main_lines: &'a str,
    pub orders_lines: &'a str,
}

impl DecisionGateway<'_> {
    pub fn toml(&self) -> String {
        let DecisionGateway {
            issuer,
            jwks_uri,
            trusted,
            main_lines,
            orders_lines,
            ..
        } = self;
        let absent = super::idp::Idp::absent_jwks_uri();
        Config::new()
            .server(self.server)
            .admin("readiness = \"listeners\"")
            .raw(&format!(
                "\n[decision]\nlisten = \"127.0.0.1:0\"\n\n\
                 [network]\ntrusted_proxies = [\"{trusted}\"]\n\n\
                 [[issuers]]\nname = \"main\"\nissuer = \"{issuer}\"\njwks_uri = \"{jwks_uri}\"\n\
                 audiences = [\"api\"]\n{main_lines}\n\n\
                 [[issuers]]\nname = \"down\"\nissuer = \"https://down.test/\"\n\
                 jwks_uri = \"{absent}\"\naudiences = [\"api\"]"
            ))
            .echo(self.echo)
            .public("/public")
            .route(
                "admin",
                "/admin",
                "issuers = [\"main\"]\nscopes = [\"admin\"]",
            )
            .route(
                "orders",
                "/orders",
                &format!("{orders_lines}\nissuers = [\"main\"]\nscopes = [\"orders:read\"]"),
            )
            .route(
                "office",
                "/office",
                "issuers = [\"main\"]\nallow = [\"192.0.2.0/24\"]",
            )
            .route("down", "/down", "issuers = [\"down\"]")
            .toml()
    }
}
