//! Streaming through the gateway (SPEC §4): large uploads and chunked responses are streamed,
//! not buffered; WebSocket upgrades pass through on public routes; HTTP/2 (h2c) clients work.
//!
//! "Not buffered" is shown by causality, not by timing: the test holds back part of a body
//! until the other side has observed the first part through the gateway, so a buffering
//! gateway deadlocks into a bounded timeout instead of passing.

mod support;

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use support::config::Config;
use support::echo::Echo;
use support::gateway::{get, open, send_h2, Gateway, TIMEOUT};
use tokio_tungstenite::tungstenite::Message;

fn config(echo: &Echo) -> String {
    Config::new()
        .upstream("echo", &echo.url("/base"))
        .public("/public")
        .route("ws", "/ws", "public = true")
        .route("private", "/private", "")
        .test_issuer()
        .toml()
}

const CHUNK: usize = 64 * 1024;
const CHUNKS: usize = 1024; // 64 MiB in total

/// Chunk `i` of the upload: deterministic, different per chunk.
fn chunk(i: usize) -> Bytes {
    let mut data = vec![0u8; CHUNK];
    for (j, byte) in data.iter_mut().enumerate() {
        *byte = (i.wrapping_mul(31) ^ j) as u8;
    }
    Bytes::from(data)
}

#[tokio::test]
async fn a_64_mib_upload_is_streamed_through_without_buffering() {
    let echo = Echo::start().await;
    let gateway = Gateway::from_toml(config(&echo)).start().await;

    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|data| (Ok::<_, Infallible>(Frame::data(data)), rx))
    });
    let request = Request::builder()
        .method(Method::POST)
        .uri("/public/upload")
        .body(StreamBody::new(stream))
        .unwrap();
    let addr = gateway.http_addr();
    let response = tokio::spawn(async move {
        let response = open(addr, request).await;
        let status = response.status();
        let body = tokio::time::timeout(Duration::from_secs(60), response.into_body().collect())
            .await
            .expect("response body within 60 s")
            .expect("response body")
            .to_bytes();
        (status, body)
    });

    let mut digest = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    // The first 1 MiB, then wait until the upstream has received body bytes: a gateway that
    // buffers the whole body would never forward them while the rest is held back.
    let head = 16;
    for i in 0..head {
        let data = chunk(i);
        digest.update(&data);
        tx.send(data).await.expect("client body open");
    }
    assert!(
        echo.wait_body_bytes(1, Duration::from_secs(5)).await,
        "the upstream received body bytes before the client finished sending"
    );
    let send_rest = async {
        for i in head..CHUNKS {
            let data = chunk(i);
            digest.update(&data);
            tx.send(data).await.expect("client body open");
        }
        drop(tx);
    };
    tokio::time::timeout(Duration::from_secs(60), send_rest)
        .await
        .expect("upload finishes within 60 s");

    let (status, body) = tokio::time::timeout(Duration::from_secs(60), response)
        .await
        .expect("response within 60 s")
        .expect("client task");
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let echoed: support::echo::Echoed = serde_json::from_slice(&body).expect("echo json");
    assert_eq!(echoed.method, "POST");
    assert_eq!(echoed.path, "/base/public/upload");
    assert_eq!(echoed.body_len, 67_108_864);
    assert_eq!(echoed.body_sha256, hex::encode(digest.finish().as_ref()));
}

#[tokio::test]
async fn a_chunked_response_arrives_incrementally() {
    let echo = Echo::start().await;
    let gateway = Gateway::from_toml(config(&echo)).start().await;

    // The echo sends chunks 0..3, then holds the last one until the gate opens; the test opens
    // it only after chunk 0 came through the gateway. A buffering gateway times out here.
    let response = open(gateway.http_addr(), get("/public/chunks?n=5&ms=200&gate=1")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();

    let mut received = Vec::new();
    let first = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let frame = body.frame().await.expect("body not ended").expect("frame");
            if let Ok(data) = frame.into_data() {
                if !data.is_empty() {
                    return data;
                }
            }
        }
    })
    .await
    .expect("the first chunk arrives before the last one is sent");
    received.extend_from_slice(&first);
    assert!(received.starts_with(b"chunk-0\n"), "{received:?}");

    echo.open_gate();
    let rest = tokio::time::timeout(TIMEOUT, body.collect())
        .await
        .expect("the rest arrives")
        .expect("body")
        .to_bytes();
    received.extend_from_slice(&rest);
    assert_eq!(
        String::from_utf8_lossy(&received),
        "chunk-0\nchunk-1\nchunk-2\nchunk-3\nchunk-4\n"
    );
}

#[tokio::test]
async fn a_websocket_round_trips_through_a_public_route() {
    let echo = Echo::start().await;
    let gateway = Gateway::from_toml(config(&echo)).start().await;

    let exchange = async {
        let stream = tokio::net::TcpStream::connect(gateway.http_addr())
            .await
            .expect("connect");
        let url = format!("ws://{}/ws/echo", gateway.http_addr());
        let (mut ws, response) = tokio_tungstenite::client_async(url, stream)
            .await
            .expect("websocket handshake through the gateway");
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);

        ws.send(Message::text("hello through the gateway"))
            .await
            .expect("send text");
        let reply = ws.next().await.expect("a reply").expect("a message");
        assert_eq!(reply, Message::text("hello through the gateway"));

        ws.send(Message::binary(vec![0u8, 1, 2, 255]))
            .await
            .expect("send binary");
        let reply = ws.next().await.expect("a reply").expect("a message");
        assert_eq!(reply, Message::binary(vec![0u8, 1, 2, 255]));

        ws.close(None).await.expect("close");
    };
    tokio::time::timeout(TIMEOUT, exchange)
        .await
        .expect("websocket exchange within the timeout");

    let seen = echo
        .wait_seen("/ws/echo", TIMEOUT)
        .await
        .expect("upstream saw the upgrade");
    assert_eq!(seen.path, "/base/ws/echo");
    let header = |name: &str| {
        seen.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.to_ascii_lowercase())
    };
    assert_eq!(header("upgrade").as_deref(), Some("websocket"));
    assert_eq!(header("connection").as_deref(), Some("upgrade"));
}

#[tokio::test]
async fn a_websocket_upgrade_on_a_non_public_route_needs_a_token_first() {
    let echo = Echo::start().await;
    let gateway = Gateway::from_toml(config(&echo)).start().await;

    let attempt = async {
        let stream = tokio::net::TcpStream::connect(gateway.http_addr())
            .await
            .expect("connect");
        let url = format!("ws://{}/private/ws", gateway.http_addr());
        tokio_tungstenite::client_async(url, stream).await
    };
    let result = tokio::time::timeout(TIMEOUT, attempt)
        .await
        .expect("handshake attempt finishes");
    match result {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        }
        Err(other) => panic!("expected an HTTP 401, got {other:?}"),
        Ok(_) => panic!("the upgrade passed without a token"),
    }
    assert!(
        echo.requests_seen().is_empty(),
        "nothing reached the upstream"
    );
}

#[tokio::test]
async fn an_http2_prior_knowledge_request_works() {
    let echo = Echo::start().await;
    let gateway = Gateway::from_toml(config(&echo)).start().await;

    let reply = send_h2(gateway.http_addr(), get("/public/h2?x=1")).await;
    assert_eq!(reply.version, http::Version::HTTP_2);
    assert!(reply.header("x-request-id").is_some());
    let echoed = reply.echoed();
    assert_eq!(echoed.method, "GET");
    assert_eq!(echoed.path, "/base/public/h2?x=1");
    assert_eq!(echoed.header_all("x-forwarded-proto"), ["http"]);
    assert_eq!(
        echoed.header_all("x-forwarded-host"),
        [gateway.http_addr().to_string().as_str()]
    );

    let post = Request::builder()
        .method(Method::POST)
        .uri("/public/h2post")
        .body(http_body_util::Full::new(Bytes::from_static(b"h2 body")))
        .unwrap();
    let echoed = send_h2(gateway.http_addr(), post).await.echoed();
    assert_eq!(echoed.body_len, 7);

    let missing = send_h2(gateway.http_addr(), get("/nowhere")).await;
    missing.assert_error(404, "no_route");
}
