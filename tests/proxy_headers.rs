//! The gateway core seen from outside, the headers an upstream receives (SPEC §4): hop-by-hop
//! removal, identity headers a client sends, X-Forwarded-* from untrusted and trusted peers,
//! preserve_host, X-Request-Id and Authorization on public routes. Real gateway, real echo
//! upstream, everything on 127.0.0.1:0.

mod support;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Empty;
use support::config::{start_standard, Config};
use support::echo::{Echo, Echoed};
use support::gateway::{raw, send, with_headers, with_host, Gateway, TIMEOUT};

/// `GET /public/h` with `headers`, in order.
fn public_get(headers: &[(&str, &str)]) -> Request<Empty<Bytes>> {
    with_headers("/public/h", headers)
}

/// `GET /public/h` with `headers` as the echo sees it sent straight (the control: the client
/// really sends them) and through the standard gateway.
async fn direct_and_proxied(headers: &[(&str, &str)]) -> (Echoed, Echoed) {
    let (echo, gateway) = start_standard().await;
    let direct = send(echo.addr(), public_get(headers)).await.echoed();
    let proxied = gateway.send(public_get(headers)).await.echoed();
    (direct, proxied)
}

// ---------------------------------------------------------------------------------------------
// Headers at the upstream (SPEC §4)

#[tokio::test]
async fn hop_by_hop_headers_and_headers_named_by_connection_are_removed() {
    let (direct, echoed) = direct_and_proxied(&[
        ("connection", "close, X-Remove-Me"),
        ("x-remove-me", "secret"),
        ("keep-alive", "timeout=5"),
        ("te", "trailers"),
        ("trailer", "x-checksum"),
        ("upgrade", "h2c"),
        ("proxy-authorization", "Basic dXNlcjpwYXNz"),
        ("proxy-connection", "keep-alive"),
        ("x-kept", "yes"),
    ])
    .await;
    // Control: sent straight to the echo, every header arrives (the client really sends them).
    let hop_by_hop = [
        "connection",
        "x-remove-me",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
    ];
    for name in hop_by_hop {
        assert!(direct.has_header(name), "control: {name} not sent");
    }

    let never_sent = [
        "proxy-authorization",
        "proxy-connection",
        "transfer-encoding",
    ];
    for name in hop_by_hop.into_iter().chain(never_sent) {
        assert!(
            !echoed.has_header(name),
            "{name} reached the upstream: {:?}",
            echoed.headers
        );
    }
    assert_eq!(echoed.header("x-kept"), Some("yes"));
}

#[tokio::test]
async fn connection_may_name_authorization_but_never_the_gateways_own_headers() {
    let (echo, gateway) = start_standard().await;

    let connection =
        "Authorization, X-Forwarded-For, X-Forwarded-Proto, X-Forwarded-Host, X-Request-Id, Host";
    let request = public_get(&[
        ("connection", connection),
        ("authorization", "Bearer abc"),
        ("x-request-id", "client-id-1"),
    ]);
    let echoed = gateway.send(request).await.echoed();
    assert!(
        !echoed.has_header("authorization"),
        "the client asked for Authorization to be dropped"
    );
    assert_eq!(echoed.header_all("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(echoed.header_all("x-forwarded-proto"), ["http"]);
    assert_eq!(
        echoed.header_all("x-forwarded-host"),
        [gateway.http_addr().to_string().as_str()]
    );
    assert_eq!(
        echoed.header_all("host"),
        [echo.addr().to_string().as_str()]
    );
    // The id is removed from the client's headers, so the gateway generates its own.
    let id = echoed.header("x-request-id").expect("x-request-id");
    assert!(!id.is_empty());
}

#[tokio::test]
async fn identity_headers_sent_by_a_client_are_removed() {
    let (direct, echoed) = direct_and_proxied(&[
        ("x-auth-subject", "admin"),
        ("x-auth-scopes", "everything"),
        ("x_auth_issuer", "https://evil/"),
        ("X_Auth-Client-Id", "root"),
        ("x-auth-tenant", "other"),
        ("x-client-cert-subject", "CN=admin"),
        ("x_client_cert_sha256", "00"),
        ("x-authority", "not an identity header"),
    ])
    .await;
    assert!(
        direct.has_header("x_auth_issuer"),
        "control: underscore names are sent"
    );
    assert!(direct.has_header("x_client_cert_sha256"), "control");

    let leaked: Vec<_> = echoed
        .headers
        .iter()
        .filter(|(name, _)| {
            let name = name.replace('_', "-");
            name.starts_with("x-auth-") || name.starts_with("x-client-cert-")
        })
        .collect();
    assert!(leaked.is_empty(), "identity headers leaked: {leaked:?}");
    assert_eq!(echoed.header("x-authority"), Some("not an identity header"));
}

#[tokio::test]
async fn forwarded_headers_are_set_from_the_connection_for_an_untrusted_peer() {
    let (echo, gateway) = start_standard().await;

    let request = public_get(&[
        ("host", "Public.Example:8080"),
        ("x-forwarded-for", "6.6.6.6"),
        ("x-forwarded-for", "7.7.7.7"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "evil.example"),
    ]);
    let echoed = gateway.send(request).await.echoed();
    assert_eq!(echoed.header_all("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(echoed.header_all("x-forwarded-proto"), ["http"]);
    assert_eq!(
        echoed.header_all("x-forwarded-host"),
        ["Public.Example:8080"]
    );
    // Host is the upstream's authority by default.
    assert_eq!(
        echoed.header_all("host"),
        [echo.addr().to_string().as_str()]
    );
}

#[tokio::test]
async fn forwarded_headers_from_a_trusted_proxy_are_kept_and_extended() {
    let echo = Echo::start().await;
    let gateway = Gateway::from_toml(
        Config::new()
            .raw("[network]\ntrusted_proxies = [\"127.0.0.1/32\"]")
            .upstream("echo", &echo.url(""))
            .public("/public")
            .toml(),
    )
    .start()
    .await;

    let request = public_get(&[
        ("host", "internal:8080"),
        ("x-forwarded-for", "203.0.113.7"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "public.example"),
    ]);
    let echoed = gateway.send(request).await.echoed();
    assert_eq!(
        echoed.header_all("x-forwarded-for"),
        ["203.0.113.7, 127.0.0.1"]
    );
    assert_eq!(echoed.header_all("x-forwarded-proto"), ["https"]);
    assert_eq!(echoed.header_all("x-forwarded-host"), ["public.example"]);
}

#[tokio::test]
async fn preserve_host_forwards_the_original_host() {
    let echo = Echo::start().await;
    let gateway = Gateway::from_toml(
        Config::new()
            .upstream("keep", &echo.url(""))
            .raw("preserve_host = true")
            .route_to("keep", "/keep", "keep", "public = true")
            .toml(),
    )
    .start()
    .await;

    let echoed = gateway
        .send(with_host("/keep/x", "Public.Example:8080"))
        .await
        .echoed();
    assert_eq!(echoed.header_all("host"), ["Public.Example:8080"]);
    assert_eq!(
        echoed.header("x-forwarded-host"),
        Some("Public.Example:8080")
    );
}

#[tokio::test]
async fn a_valid_client_request_id_is_kept_and_echoed() {
    let (_echo, gateway) = start_standard().await;

    let id = "req-1_2.3:4";
    let request = public_get(&[("x-request-id", id)]);
    let reply = gateway.send(request).await;
    assert_eq!(reply.header("x-request-id"), Some(id));
    assert_eq!(reply.echoed().header_all("x-request-id"), [id]);

    let long = "x".repeat(128);
    let request = public_get(&[("x-request-id", long.as_str())]);
    let reply = gateway.send(request).await;
    assert_eq!(reply.header("x-request-id"), Some(long.as_str()));

    // Kept on the gateway's own responses too.
    let request = with_headers("/nowhere", &[("x-request-id", id)]);
    let reply = gateway.send(request).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.header("x-request-id"), Some(id));
}

#[tokio::test]
async fn an_invalid_client_request_id_is_replaced() {
    let (_echo, gateway) = start_standard().await;

    let too_long = "x".repeat(129);
    for bad in ["has space", "semi;colon", too_long.as_str()] {
        let request = public_get(&[("x-request-id", bad)]);
        let reply = gateway.send(request).await;
        let returned = reply
            .header("x-request-id")
            .expect("x-request-id")
            .to_owned();
        assert_ne!(returned, bad);
        assert!(!returned.is_empty());
        assert_eq!(
            reply.echoed().header_all("x-request-id"),
            [returned.as_str()]
        );
    }
}

#[tokio::test]
async fn a_generated_request_id_is_on_every_response() {
    let (_echo, gateway) = start_standard().await;

    let proxied = gateway.get("/public/h").await;
    let id = proxied
        .header("x-request-id")
        .expect("x-request-id")
        .to_owned();
    assert_eq!(proxied.echoed().header("x-request-id"), Some(id.as_str()));

    let other = gateway.get("/public/h").await;
    assert_ne!(
        other.header("x-request-id"),
        Some(id.as_str()),
        "ids differ"
    );

    gateway.get("/nowhere").await.assert_error(404, "no_route");
    gateway
        .get("/private")
        .await
        .assert_error(401, "missing_token");
    let raw_reply = raw(
        gateway.http_addr(),
        b"GET /public/%2F HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        TIMEOUT,
    )
    .await;
    raw_reply.assert_error(400, "invalid_request");
}

#[tokio::test]
async fn authorization_is_forwarded_unchanged_on_a_public_route() {
    let (_echo, gateway) = start_standard().await;

    let request = public_get(&[("authorization", "Bearer not.a.jwt")]);
    let echoed = gateway.send(request).await.echoed();
    assert_eq!(echoed.header_all("authorization"), ["Bearer not.a.jwt"]);
}
