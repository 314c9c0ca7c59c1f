//! TLS to upstreams (issue #17): client certificates (mTLS), `ca_file` as extra roots,
//! HTTP/2 by `protocol` (ALPN), the client certificate's expiry metric. The upstream is a real
//! rustls server on loopback that requires a client certificate from the test CA.

#[path = "support/pki.rs"]
mod pki;
mod support;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use pki::{toml_path, Ca, Scratch};
use support::config::svc;
use support::gateway::Gateway;
use support::upstream::Upstream;
use x509_parser::prelude::{FromDer, X509Certificate};

/// An https upstream (HTTP/1.1 and h2 by ALPN) that requires a client certificate issued by
/// `client_ca`, and answers "<version> <client CN>".
async fn mtls_upstream(server: &pki::Leaf, client_ca: &Ca) -> Upstream {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(client_ca.der()).expect("client ca");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::clone(&provider),
    )
    .build()
    .expect("verifier");
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![server.der.clone()], server.key())
        .expect("server config");
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    Upstream::start(move |stream| {
        let acceptor = acceptor.clone();
        async move {
            let Ok(tls) = acceptor.accept(stream).await else {
                return;
            };
            let cn = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(|der| {
                    let (_, cert) = X509Certificate::from_der(der.as_ref()).ok()?;
                    let cn = cert.subject().iter_common_name().next()?;
                    cn.as_str().ok().map(str::to_owned)
                })
                .unwrap_or_default();
            let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                let text = format!("{:?} {cn}", request.version());
                async move { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(text)))) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), service)
                .await;
        }
    })
    .await
}

struct Setup {
    _scratch: Scratch,
    upstream: Upstream,
    ca_file: String,
    cert_file: String,
    key_file: String,
    other_key_file: String,
}

async fn setup() -> Setup {
    let ca = Ca::new("upstream ca");
    let scratch = Scratch::new("upstream-tls");
    let server = ca.server("upstream");
    let client = ca.client("gateway-client", "authgate");
    let other = ca.client("other", "authgate");
    let upstream = mtls_upstream(&server, &ca).await;
    Setup {
        ca_file: toml_path(&scratch.write("ca.pem", &ca.pem())),
        cert_file: toml_path(&scratch.write("client.pem", &client.cert_pem)),
        key_file: toml_path(&scratch.write("client-key.pem", &client.key_pem)),
        other_key_file: toml_path(&scratch.write("other-key.pem", &other.key_pem)),
        _scratch: scratch,
        upstream,
    }
}

fn config(upstream: &str) -> String {
    svc(&format!(
        "connect_timeout = \"2s\"\nretries = 0\n{upstream}"
    ))
}

#[tokio::test]
async fn the_client_certificate_is_presented_and_required() {
    let s = setup().await;
    let url = format!("url = \"https://localhost:{}\"", s.upstream.addr().port());
    let with_cert = format!(
        "{url}\nca_file = {}\nclient_cert_file = {}\nclient_key_file = {}",
        s.ca_file, s.cert_file, s.key_file
    );
    let gateway = Gateway::from_toml(config(&with_cert)).start().await;
    let reply = gateway.get("/who").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.text(), "HTTP/1.1 gateway-client");
    let metrics = gateway.metrics().await;
    assert!(
        metrics.lines().any(|l| l.starts_with(
            "authgate_certificate_expiry_timestamp_seconds{kind=\"upstream_client\",name=\"svc\"}"
        )),
        "expiry of the upstream client certificate"
    );

    // Same upstream without a client certificate: the upstream refuses the handshake.
    let without = format!("{url}\nca_file = {}", s.ca_file);
    let gateway = Gateway::from_toml(config(&without)).start().await;
    gateway.get("/who").await.assert_error(502, "bad_gateway");
}

#[tokio::test]
async fn ca_file_is_needed_for_a_private_ca_and_protocols_negotiate() {
    let s = setup().await;
    let url = format!("url = \"https://localhost:{}\"", s.upstream.addr().port());
    let cert = format!(
        "client_cert_file = {}\nclient_key_file = {}",
        s.cert_file, s.key_file
    );
    // The system roots alone do not trust the test CA.
    let gateway = Gateway::from_toml(config(&format!("{url}\n{cert}")))
        .start()
        .await;
    gateway.get("/who").await.assert_error(502, "bad_gateway");

    for (protocol, version) in [
        ("h2", "HTTP/2.0"),
        ("auto", "HTTP/2.0"),
        ("http1", "HTTP/1.1"),
    ] {
        let upstream = format!(
            "{url}\n{cert}\nca_file = {}\nprotocol = \"{protocol}\"",
            s.ca_file
        );
        let gateway = Gateway::from_toml(config(&upstream)).start().await;
        let reply = gateway.get("/who").await;
        assert_eq!(reply.status, StatusCode::OK, "{protocol}: {}", reply.text());
        assert_eq!(
            reply.text(),
            format!("{version} gateway-client"),
            "{protocol}"
        );
    }
}

#[tokio::test]
async fn client_certificate_settings_are_checked_at_load() {
    let s = setup().await;
    let url = format!("url = \"https://localhost:{}\"", s.upstream.addr().port());
    let cases = [
        (
            format!("{url}\nclient_cert_file = {}", s.cert_file),
            "client_key_file",
        ),
        (
            format!(
                "{url}\nclient_cert_file = {}\nclient_key_file = {}",
                s.cert_file, s.other_key_file
            ),
            "client_cert_file",
        ),
        (
            "url = \"http://127.0.0.1:1\"\nprotocol = \"h2\"".to_owned(),
            "needs an https URL",
        ),
        (format!("{url}\nprotocol = \"h3\""), "protocol"),
    ];
    for (upstream, expected) in cases {
        let error = match Gateway::from_toml(config(&upstream)).try_start().await {
            Ok(_) => panic!("{upstream}: starts"),
            Err(error) => error.to_string(),
        };
        assert!(error.contains(expected), "{upstream}: {error}");
    }
}
