//! gRPC end to end through the gateway (issue #17): a real tonic server behind an h2c upstream
//! and a real tonic client, over h2c and over TLS to the gateway. Unary and server streaming
//! pass (trailers carry `grpc-status` back; `te: trailers` reaches the upstream); denials
//! reach the client as gRPC statuses (16 UNAUTHENTICATED, 7 PERMISSION_DENIED).
//!
//! No protoc and no codegen: messages are raw bytes ([`BytesCodec`]), framed by tonic.

#[path = "support/pki.rs"]
mod pki;
mod support;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes};
use http::uri::PathAndQuery;
use http::Uri;
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::config::Config;
use support::gateway::Gateway;
use support::idp::Idp;
use support::upstream::{refused_addr, Upstream};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::{Code, Request, Response, Status};

// ---------------------------------------------------------------------------------------------
// A bytes codec: tonic frames the messages, the test reads them as bytes.

#[derive(Clone, Copy, Default)]
struct BytesCodec;

impl Codec for BytesCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = BytesCodec;
    type Decoder = BytesCodec;
    fn encoder(&mut self) -> Self::Encoder {
        BytesCodec
    }
    fn decoder(&mut self) -> Self::Decoder {
        BytesCodec
    }
}

impl Encoder for BytesCodec {
    type Item = Bytes;
    type Error = Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for BytesCodec {
    type Item = Bytes;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

// ---------------------------------------------------------------------------------------------
// The upstream: `/test.Echo/Unary` answers "<te>|<x-auth-subject>|<message>",
// `/test.Echo/Stream` answers three messages "<message>-<i>".

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

struct Unary;

impl tonic::server::UnaryService<Bytes> for Unary {
    type Response = Bytes;
    type Future = BoxFuture<Result<Response<Bytes>, Status>>;
    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let header = |name: &str| {
            request
                .metadata()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_owned()
        };
        let text = format!(
            "{}|{}|{}",
            header("te"),
            header("x-auth-subject"),
            String::from_utf8_lossy(request.get_ref())
        );
        Box::pin(async move { Ok(Response::new(Bytes::from(text))) })
    }
}

struct Stream;

type MessageStream = tokio_stream::Iter<std::vec::IntoIter<Result<Bytes, Status>>>;

impl tonic::server::ServerStreamingService<Bytes> for Stream {
    type Response = Bytes;
    type ResponseStream = MessageStream;
    type Future = BoxFuture<Result<Response<MessageStream>, Status>>;
    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let base = String::from_utf8_lossy(request.get_ref()).into_owned();
        let items: Vec<Result<Bytes, Status>> = (0..3)
            .map(|i| Ok(Bytes::from(format!("{base}-{i}"))))
            .collect();
        Box::pin(async move { Ok(Response::new(tokio_stream::iter(items))) })
    }
}

/// A tonic gRPC server over h2c on loopback.
async fn grpc_upstream() -> Upstream {
    Upstream::start(|stream| async move {
        let service = service_fn(|request: http::Request<hyper::body::Incoming>| async move {
            let mut grpc = tonic::server::Grpc::new(BytesCodec);
            let response = match request.uri().path() {
                "/test.Echo/Unary" => grpc.unary(Unary, request).await,
                "/test.Echo/Stream" => grpc.server_streaming(Stream, request).await,
                _ => Status::unimplemented("no such method").into_http(),
            };
            Ok::<_, Infallible>(response)
        });
        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .serve_connection(TokioIo::new(stream), service)
            .await;
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// The client side

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// A tonic client over HTTP/2 to `origin` (h2c for http://, ALPN h2 for https://).
fn client(
    origin: Uri,
    roots: &[rustls::pki_types::CertificateDer<'static>],
) -> tonic::client::Grpc<Client<Connector, tonic::body::Body>> {
    let mut store = rustls::RootCertStore::empty();
    for root in roots {
        store.add(root.clone()).expect("root");
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(store)
    .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http2()
        .build();
    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build(connector);
    tonic::client::Grpc::with_origin(client, origin)
}

fn with_token(message: &str, token: Option<&str>) -> Request<Bytes> {
    let mut request = Request::new(Bytes::from(message.to_owned()));
    if let Some(token) = token {
        let value = format!("Bearer {token}").parse().expect("metadata");
        request.metadata_mut().insert("authorization", value);
    }
    request
}

async fn unary(
    grpc: &mut tonic::client::Grpc<Client<Connector, tonic::body::Body>>,
    message: &str,
    token: Option<&str>,
) -> Result<String, Status> {
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let response = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        grpc.unary(
            with_token(message, token),
            PathAndQuery::from_static("/test.Echo/Unary"),
            BytesCodec,
        ),
    )
    .await
    .expect("answer within the bound")?;
    Ok(String::from_utf8_lossy(response.get_ref()).into_owned())
}

async fn stream(
    grpc: &mut tonic::client::Grpc<Client<Connector, tonic::body::Body>>,
    message: &str,
    token: Option<&str>,
) -> Result<Vec<String>, Status> {
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let response = grpc
        .server_streaming(
            with_token(message, token),
            PathAndQuery::from_static("/test.Echo/Stream"),
            BytesCodec,
        )
        .await?;
    let mut messages = Vec::new();
    let mut body = response.into_inner();
    for _ in 0..10 {
        match tokio::time::timeout(std::time::Duration::from_secs(10), body.message())
            .await
            .expect("message within the bound")?
        {
            Some(message) => messages.push(String::from_utf8_lossy(&message).into_owned()),
            None => return Ok(messages),
        }
    }
    panic!("more messages than sent");
}

fn config(idp: &Idp, upstream: SocketAddr, tls: &str) -> String {
    Config::new()
        .server(tls)
        .idp("idp", idp, "")
        .upstream_with(
            "grpc",
            &format!("url = \"http://{upstream}\"\nprotocol = \"h2c\""),
        )
        .route_to(
            "echo",
            "/test.Echo",
            "grpc",
            "scopes = [\"echo\"]\ngrpc = true",
        )
        .toml()
}

/// Allowed unary and streaming calls, 16 without a token, 7 without the scope.
async fn outcomes(grpc: &mut tonic::client::Grpc<Client<Connector, tonic::body::Body>>, idp: &Idp) {
    let good = idp.token().scope("echo").sign();
    let answer = unary(grpc, "hello", Some(&good))
        .await
        .expect("allowed call");
    assert_eq!(
        answer, "trailers|svc-1|hello",
        "te: trailers and the identity reach the upstream"
    );
    let messages = stream(grpc, "tick", Some(&good))
        .await
        .expect("allowed stream");
    assert_eq!(messages, ["tick-0", "tick-1", "tick-2"]);

    let status = unary(grpc, "hello", None).await.expect_err("no token");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(status.message().contains("bearer token"), "{status:?}");
    let status = stream(grpc, "tick", None).await.expect_err("no token");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");

    let other = idp.token().scope("other").sign();
    let status = unary(grpc, "hello", Some(&other))
        .await
        .expect_err("lacks the scope");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    // A gRPC answer (grpc-status and grpc-message), not an HTTP error mapped by the client.
    assert!(status.message().contains("lacks a scope"), "{status:?}");
}

#[tokio::test]
async fn grpc_over_h2c_unary_streaming_and_denials() {
    let idp = Idp::start().await;
    let upstream = grpc_upstream().await;
    let gateway = Gateway::from_toml(config(&idp, upstream.addr(), ""))
        .start()
        .await;
    let origin: Uri = format!("http://{}", gateway.http_addr())
        .parse()
        .expect("uri");
    let mut grpc = client(origin, &[]);
    outcomes(&mut grpc, &idp).await;
}

#[tokio::test]
async fn grpc_over_tls_unary_streaming_and_denials() {
    let idp = Idp::start().await;
    let upstream = grpc_upstream().await;
    let ca = pki::Ca::new("grpc test ca");
    let leaf = ca.server("gateway");
    let scratch = pki::Scratch::new("grpc");
    let cert = scratch.write("server.pem", &leaf.cert_pem);
    let key = scratch.write("server-key.pem", &leaf.key_pem);
    let tls = format!(
        "[server.tls]\nlisten = \"127.0.0.1:0\"\ncert_file = {}\nkey_file = {}\n",
        pki::toml_path(&cert),
        pki::toml_path(&key)
    );
    let gateway = Gateway::from_toml(config(&idp, upstream.addr(), &tls))
        .start()
        .await;
    let https = gateway.handle().addrs.https.expect("tls listener");
    let origin: Uri = format!("https://localhost:{}", https.port())
        .parse()
        .expect("uri");
    let mut grpc = client(origin, &[ca.der()]);
    outcomes(&mut grpc, &idp).await;
}

#[tokio::test]
async fn an_unreachable_grpc_upstream_is_unavailable() {
    let idp = Idp::start().await;
    let dead = refused_addr().await;
    let gateway = Gateway::from_toml(config(&idp, dead, "")).start().await;
    let origin: Uri = format!("http://{}", gateway.http_addr())
        .parse()
        .expect("uri");
    let mut grpc = client(origin, &[]);
    let good = idp.token().scope("echo").sign();
    let status = unary(&mut grpc, "hello", Some(&good))
        .await
        .expect_err("no upstream");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("upstream"), "{status:?}");
}

/// An h2c upstream that reads the whole request body and answers with the request trailer
/// `x-checksum` it received in a response header, and a response trailer of its own. It also
/// reports the `:authority` it saw and how many `host` header fields came beside it.
async fn trailer_upstream() -> Upstream {
    use http_body_util::BodyExt;
    Upstream::start(|stream| async move {
        let service = service_fn(|request: http::Request<hyper::body::Incoming>| async move {
            let hosts = request.headers().get_all(http::header::HOST).iter().count();
            let authority = request
                .uri()
                .authority()
                .map_or("none".to_owned(), |a| a.to_string());
            let collected = request.into_body().collect().await;
            let seen = collected
                .ok()
                .and_then(|c| c.trailers().cloned())
                .and_then(|t| t.get("x-checksum").cloned())
                .map_or("none".to_owned(), |v| v.to_str().unwrap_or("?").to_owned());
            let mut trailers = http::HeaderMap::new();
            trailers.insert("x-upstream-trailer", "done".parse().expect("value"));
            let frames = vec![
                Ok::<_, Infallible>(hyper::body::Frame::data(Bytes::from_static(b"body"))),
                Ok(hyper::body::Frame::trailers(trailers)),
            ];
            let body = http_body_util::StreamBody::new(tokio_stream::iter(frames));
            let response = http::Response::builder()
                .header("x-seen-trailer", seen)
                .header("x-host-fields", hosts.to_string())
                .header("x-authority", authority)
                .body(body)
                .expect("response");
            Ok::<_, Infallible>(response)
        });
        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .serve_connection(TokioIo::new(stream), service)
            .await;
    })
    .await
}

#[tokio::test]
async fn trailers_pass_both_ways_over_http2() {
    use http_body_util::BodyExt;
    let upstream = trailer_upstream().await;
    let config = Config::new()
        .upstream_with(
            "h2",
            &format!("url = \"{}\"\nprotocol = \"h2c\"", upstream.url()),
        )
        .catch_all("h2")
        .toml();
    let gateway = Gateway::from_toml(config).start().await;
    let stream = tokio::net::TcpStream::connect(gateway.http_addr())
        .await
        .expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2c handshake");
    tokio::spawn(connection);
    let mut trailers = http::HeaderMap::new();
    trailers.insert("x-checksum", "abc123".parse().expect("value"));
    let frames = vec![
        Ok::<_, Infallible>(hyper::body::Frame::data(Bytes::from_static(b"payload"))),
        Ok(hyper::body::Frame::trailers(trailers)),
    ];
    let request = http::Request::post(format!("http://{}/upload", gateway.http_addr()))
        .header("te", "trailers")
        .body(http_body_util::StreamBody::new(tokio_stream::iter(frames)))
        .expect("request");
    let response = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        sender.send_request(request),
    )
    .await
    .expect("answer within the bound")
    .expect("response");
    assert_eq!(response.status(), http::StatusCode::OK);
    assert_eq!(
        response
            .headers()
            .get("x-seen-trailer")
            .and_then(|v| v.to_str().ok()),
        Some("abc123"),
        "the request trailer reached the upstream"
    );
    // RFC 9113 §8.3.1: the upstream authority travels as `:authority`, with no `host` field
    // beside it (nginx answers 400 to a request carrying both).
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(
        header("x-host-fields").as_deref(),
        Some("0"),
        "no host field over h2"
    );
    assert_eq!(
        header("x-authority"),
        Some(upstream.addr().to_string()),
        "the upstream authority"
    );
    let collected = response.into_body().collect().await.expect("body");
    let trailers = collected.trailers().cloned().expect("response trailers");
    assert_eq!(
        trailers
            .get("x-upstream-trailer")
            .and_then(|v| v.to_str().ok()),
        Some("done"),
        "the response trailer reached the client"
    );
}
