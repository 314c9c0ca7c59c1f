//! Proxy headers from peers that are not trusted proxies (SPEC §4, issue 12 item 8): what the
//! echo upstream receives. `Forwarded`, `X-Real-IP`, `X-Client-IP`, `True-Client-IP`,
//! `X-Forwarded-Port`, `X-Forwarded-Prefix` and `X-Forwarded-Server` pass only from a trusted
//! proxy; `X-Original-URL` and `X-Rewrite-URL` never pass; the X-Forwarded-For/Proto/Host rules
//! are unchanged.

mod support;

use bytes::Bytes;
use http::Request;
use http_body_util::Empty;

use support::config::Config;
use support::echo::{Echo, Echoed};
use support::gateway::{send, Gateway};

/// Kept from a trusted proxy, removed otherwise.
const TRUSTED_ONLY: [(&str, &str); 7] = [
    ("forwarded", "for=6.6.6.6;proto=https;host=admin.internal"),
    ("x-real-ip", "6.6.6.6"),
    ("x-client-ip", "6.6.6.7"),
    ("true-client-ip", "6.6.6.8"),
    ("x-forwarded-port", "443"),
    ("x-forwarded-prefix", "/admin"),
    ("x-forwarded-server", "internal.example"),
];

/// Removed from every request.
const NEVER: [(&str, &str); 2] = [("x-original-url", "/admin"), ("x-rewrite-url", "/admin")];

/// The same names spelled with `_`, which some frameworks read as the `-` spelling.
const UNDERSCORED: [(&str, &str); 3] = [
    ("x_real_ip", "6.6.6.9"),
    ("true_client_ip", "6.6.6.10"),
    ("x_original_url", "/admin"),
];

async fn gateway(echo: &Echo, trusted_proxies: &str) -> Gateway {
    let config = Config::new()
        .raw(&format!("[network]\ntrusted_proxies = {trusted_proxies}"))
        .echo(echo)
        .public("/public");
    Gateway::from_toml(config.toml()).start().await
}

fn request() -> Request<Empty<Bytes>> {
    let mut builder = Request::get("/public/x")
        .header("x-forwarded-for", "1.2.3.4")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "public.example")
        .header("x-kept", "yes");
    for (name, value) in TRUSTED_ONLY.iter().chain(&NEVER).chain(&UNDERSCORED) {
        builder = builder.header(*name, *value);
    }
    builder.body(Empty::new()).unwrap()
}

#[track_caller]
fn assert_absent(seen: &Echoed, names: &[(&str, &str)], who: &str) {
    for (name, _) in names {
        assert!(
            !seen.has_header(name),
            "{who}: {name} reached the upstream: {:?}",
            seen.headers
        );
    }
}

#[tokio::test]
async fn proxy_headers_pass_only_from_trusted_proxies_and_url_overrides_never() {
    let echo = Echo::start().await;

    // Control: sent straight to the echo, every header arrives (the client really sends them).
    let direct = send(echo.addr(), request()).await.echoed();
    for (name, value) in TRUSTED_ONLY.iter().chain(&NEVER).chain(&UNDERSCORED) {
        assert_eq!(direct.header(name), Some(*value), "control: {name}");
    }

    // An untrusted peer: every one of them is removed; X-Forwarded-* replaced as before.
    let untrusted = gateway(&echo, "[]").await;
    let seen = untrusted.send(request()).await.echoed();
    assert_absent(&seen, &TRUSTED_ONLY, "untrusted peer");
    assert_absent(&seen, &NEVER, "untrusted peer");
    assert_absent(&seen, &UNDERSCORED, "untrusted peer");
    assert_eq!(seen.header_all("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(seen.header_all("x-forwarded-proto"), ["http"]);
    assert_eq!(
        seen.header("x-forwarded-host"),
        Some(untrusted.http_addr().to_string().as_str())
    );
    assert_eq!(seen.header("x-kept"), Some("yes"));

    // A trusted proxy: its proxy headers arrive unchanged, the URL overrides still never do.
    let trusted = gateway(&echo, "[\"127.0.0.1\"]").await;
    let seen = trusted.send(request()).await.echoed();
    for (name, value) in TRUSTED_ONLY.iter().chain(&UNDERSCORED[..2]) {
        assert_eq!(seen.header_all(name), [*value], "trusted proxy: {name}");
    }
    assert_absent(&seen, &NEVER, "trusted proxy");
    assert_absent(&seen, &UNDERSCORED[2..], "trusted proxy");
    assert_eq!(seen.header_all("x-forwarded-for"), ["1.2.3.4, 127.0.0.1"]);
    assert_eq!(seen.header_all("x-forwarded-proto"), ["https"]);
    assert_eq!(seen.header_all("x-forwarded-host"), ["public.example"]);
}
