//! Hardening limits and HTTP/2 (SPEC §2 `[server]`): every connection and header limit
//! configured small, the slow-loris and idle guards, and HTTP/2 requests a compliant client
//! would never send.
//!
//! HTTP/2 cases use a minimal frame writer ([`h2raw`]) rather than the `h2` crate, because
//! `h2`'s client refuses (UserError::MalformedHeaders) to send connection-specific headers, and
//! `http::Uri` refuses a `:path` holding CR LF: the point is to send them anyway.
//!
//! Everything binds 127.0.0.1:0 and every wait is bounded.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::config::start_public as start;
use support::gateway::{eventually, raw, read_until_close, TIMEOUT};
use support::refusal::{assert_refused, assert_upstream_untouched, status_of, REFUSAL};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

// ---------------------------------------------------------------------------------------------
// Limits

/// Reads one response (head plus Content-Length or chunked body) from a kept-alive connection.
/// `None` if none completes within `within` or the peer closes first.
async fn read_response(stream: &mut TcpStream, within: Duration) -> Option<(u16, String)> {
    let deadline = tokio::time::Instant::now() + within;
    let mut bytes = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let head = text[..end].to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|l| l.trim().parse::<usize>().ok());
            let complete = match length {
                Some(length) => bytes.len() >= end + 4 + length,
                None => text[end..].contains("\r\n0\r\n\r\n"),
            };
            if complete {
                let status = text.get(9..12)?.parse().ok()?;
                return Some((status, text));
            }
        }
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => bytes.extend_from_slice(&buf[..n]),
            _ => return None,
        }
    }
}

/// Opens a connection and completes one keep-alive request on it.
async fn held_connection(addr: SocketAddr, path: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let (status, _) = read_response(&mut stream, TIMEOUT).await.expect("response");
    assert_eq!(status, 200, "{path}");
    stream
}

#[tokio::test]
async fn a_header_section_over_max_header_bytes_is_refused() {
    let (echo, gateway) = start("max_header_bytes = 8192").await;
    let bytes = format!(
        "GET /public/a HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "a".repeat(10 * 1024)
    );
    let reply = assert_refused(&gateway, &echo, "10 KB header", bytes.as_bytes()).await;
    assert_eq!(status_of(&reply), Some(431), "{:?}", reply.text());
}

#[tokio::test]
async fn more_headers_than_max_headers_are_refused() {
    let (echo, gateway) = start("max_headers = 10").await;
    let headers: String = (0..20).map(|i| format!("X-H{i}: v\r\n")).collect();
    let bytes = format!("GET /public/a HTTP/1.1\r\nHost: t\r\n{headers}\r\n");
    assert_refused(&gateway, &echo, "20 headers", bytes.as_bytes()).await;
    // Under the limit is fine.
    let headers: String = (0..5).map(|i| format!("X-H{i}: v\r\n")).collect();
    let bytes = format!("GET /public/a HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{headers}\r\n");
    let reply = raw(gateway.http_addr(), bytes.as_bytes(), REFUSAL).await;
    assert_eq!(status_of(&reply), Some(200), "{:?}", reply.text());
}

#[tokio::test]
async fn max_connections_holds_a_third_connection_until_one_closes() {
    let (_echo, gateway) = start("max_connections = 2").await;
    let addr = gateway.http_addr();
    let first = held_connection(addr, "/public/one").await;
    let _second = held_connection(addr, "/public/two").await;

    let mut third = TcpStream::connect(addr)
        .await
        .expect("connect (kernel backlog)");
    third
        .write_all(b"GET /public/three HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .expect("write");
    assert!(
        read_response(&mut third, Duration::from_millis(500))
            .await
            .is_none(),
        "a third connection is served while two are held"
    );
    drop(first);
    let (status, _) = read_response(&mut third, REFUSAL)
        .await
        .expect("the third connection is served once one closes");
    assert_eq!(status, 200);
}

#[tokio::test]
async fn max_connections_per_client_closes_a_third_connection() {
    let (_echo, gateway) = start("max_connections_per_client = 2").await;
    let addr = gateway.http_addr();
    let first = held_connection(addr, "/public/one").await;
    let _second = held_connection(addr, "/public/two").await;

    let mut third = TcpStream::connect(addr).await.expect("connect");
    let _ = third
        .write_all(b"GET /public/three HTTP/1.1\r\nHost: t\r\n\r\n")
        .await;
    let started = Instant::now();
    let reply = read_until_close(&mut third, REFUSAL).await;
    assert!(reply.closed, "third connection from one address is closed");
    assert!(reply.bytes.is_empty(), "and not served: {:?}", reply.text());
    assert!(started.elapsed() < Duration::from_secs(2), "closed at once");

    drop(first);
    let served = eventually(REFUSAL, || async {
        let reply = raw(
            addr,
            b"GET /public/again HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
            Duration::from_secs(2),
        )
        .await;
        status_of(&reply) == Some(200)
    })
    .await;
    assert!(served, "a slot frees once a held connection closes");
}

#[tokio::test]
async fn header_read_timeout_closes_a_slow_loris() {
    let (echo, gateway) = start("header_read_timeout = \"300ms\"").await;
    let addr = gateway.http_addr();

    // Half a request line, then silence.
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(b"GET /public/lor").await.expect("write");
    let started = Instant::now();
    let reply = read_until_close(&mut stream, REFUSAL).await;
    assert!(
        reply.closed,
        "stalled request head not closed within {REFUSAL:?}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "closed after {:?}",
        started.elapsed()
    );

    // A head dripped one byte every 50 ms keeps the connection busy but must still be cut:
    // the timeout covers the whole head, not the gap between bytes.
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(b"GET /public/drip HTTP/1.1\r\nHost: t\r\nX-Drip: ")
        .await
        .expect("write");
    let started = Instant::now();
    let mut closed = false;
    while started.elapsed() < REFUSAL {
        if stream.write_all(b"a").await.is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 1024];
        match tokio::time::timeout(Duration::from_millis(50), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            _ => {}
        }
    }
    assert!(closed, "dripping head not cut within {REFUSAL:?}");
    assert!(
        started.elapsed() < Duration::from_millis(2000),
        "dripping head cut after {:?}",
        started.elapsed()
    );
    assert_upstream_untouched(&echo, "slow loris");
}

#[tokio::test]
async fn idle_timeout_closes_an_idle_keep_alive_connection() {
    let (_echo, gateway) = start("idle_timeout = \"300ms\"").await;
    let mut stream = held_connection(gateway.http_addr(), "/public/once").await;
    let started = Instant::now();
    let reply = read_until_close(&mut stream, REFUSAL).await;
    assert!(
        reply.closed,
        "idle connection not closed within {REFUSAL:?}"
    );
    assert!(reply.bytes.is_empty(), "{:?}", reply.text());
    let idle = started.elapsed();
    assert!(idle < Duration::from_millis(1500), "closed after {idle:?}");
}

// ---------------------------------------------------------------------------------------------
// HTTP/2 (h2c prior knowledge), with raw frames

#[tokio::test]
async fn h2_connection_specific_headers_are_refused_and_never_forwarded() {
    let (echo, gateway) = start("").await;
    let addr = gateway.http_addr();

    // Control: the raw client works, so a refusal below is the server's doing.
    let mut conn = h2raw::H2Raw::connect(addr).await;
    conn.request(1, "/public/control", &[]).await;
    let outcome = conn.outcome(1, TIMEOUT).await;
    assert_eq!(outcome, h2raw::Outcome::Status(200));
    assert_eq!(echo.requests_seen().len(), 1);

    for (name, value) in [
        ("connection", "keep-alive"),
        ("transfer-encoding", "chunked"),
        ("te", "gzip"),
        ("keep-alive", "timeout=5"),
        ("upgrade", "websocket"),
    ] {
        let mut conn = h2raw::H2Raw::connect(addr).await;
        conn.request(1, "/public/bad", &[(name, value)]).await;
        let outcome = conn.outcome(1, REFUSAL).await;
        assert!(
            matches!(
                outcome,
                h2raw::Outcome::Reset(_) | h2raw::Outcome::GoAway(_) | h2raw::Outcome::Status(400)
            ),
            "{name}: {value}: {outcome:?}"
        );
    }
    let seen: Vec<String> = echo.requests_seen().into_iter().map(|s| s.path).collect();
    assert_eq!(
        seen,
        ["/public/control"],
        "nothing but the control was forwarded"
    );
}

#[tokio::test]
async fn h2_a_path_with_cr_lf_is_refused() {
    let (echo, gateway) = start("").await;
    let mut conn = h2raw::H2Raw::connect(gateway.http_addr()).await;
    conn.request(
        1,
        "/public/a HTTP/1.1\r\nX-Injected: 1\r\n\r\nGET /public/b",
        &[],
    )
    .await;
    let outcome = conn.outcome(1, REFUSAL).await;
    assert!(
        matches!(
            outcome,
            h2raw::Outcome::Reset(_) | h2raw::Outcome::GoAway(_) | h2raw::Outcome::Status(400)
        ),
        "{outcome:?}"
    );
    assert_upstream_untouched(&echo, "CR LF in :path");
}

#[tokio::test]
async fn h2_headers_over_max_header_list_size_are_refused() {
    let (echo, gateway) = start("max_header_bytes = 8192").await;
    let mut conn = h2raw::H2Raw::connect(gateway.http_addr()).await;
    assert_eq!(conn.setting(h2raw::MAX_HEADER_LIST_SIZE), Some(8192));
    let big = "a".repeat(10 * 1024);
    conn.request(1, "/public/big", &[("x-big", &big)]).await;
    let outcome = conn.outcome(1, REFUSAL).await;
    assert!(
        matches!(
            outcome,
            h2raw::Outcome::Reset(_) | h2raw::Outcome::GoAway(_) | h2raw::Outcome::Status(431)
        ),
        "{outcome:?}"
    );
    assert_upstream_untouched(&echo, "h2 header list too large");
}

#[tokio::test]
async fn h2_max_concurrent_streams_is_advertised_and_enforced() {
    let (echo, gateway) = start("http2_max_concurrent_streams = 2").await;
    let mut conn = h2raw::H2Raw::connect(gateway.http_addr()).await;
    assert_eq!(conn.setting(h2raw::MAX_CONCURRENT_STREAMS), Some(2));

    // A client that ignores the setting opens three slow streams at once.
    for id in [1, 3, 5] {
        conn.request(id, &format!("/public/slow?ms=1000&id={id}"), &[])
            .await;
    }
    let outcomes = conn.outcomes(&[1, 3, 5], TIMEOUT).await;
    let of = |id| {
        outcomes
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, o)| o.clone())
    };
    assert_eq!(of(1), Some(h2raw::Outcome::Status(200)), "{outcomes:?}");
    assert_eq!(of(3), Some(h2raw::Outcome::Status(200)), "{outcomes:?}");
    // The third is refused, or (if queued) answered only after the first two.
    match of(5) {
        Some(h2raw::Outcome::Reset(_)) => {
            let seen = echo.requests_seen();
            assert_eq!(seen.len(), 2, "refused stream not forwarded: {seen:?}");
        }
        Some(h2raw::Outcome::Status(200)) => {
            assert_eq!(outcomes.last().map(|(id, _)| *id), Some(5), "{outcomes:?}");
        }
        other => panic!("third stream: {other:?} in {outcomes:?}"),
    }
}

/// A minimal HTTP/2 client that writes frames as given: HPACK literals without Huffman or
/// indexing on the way out, only `:status` decoded on the way in.
mod h2raw {
    use std::net::SocketAddr;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    pub const MAX_CONCURRENT_STREAMS: u16 = 0x3;
    pub const MAX_HEADER_LIST_SIZE: u16 = 0x6;

    const DATA: u8 = 0x0;
    const HEADERS: u8 = 0x1;
    const RST_STREAM: u8 = 0x3;
    const SETTINGS: u8 = 0x4;
    const PING: u8 = 0x6;
    const GOAWAY: u8 = 0x7;

    /// What became of a stream.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Outcome {
        /// Response headers; 0 when the status was not decodable (dynamic table).
        Status(u16),
        Reset(u32),
        GoAway(u32),
        Closed,
        TimedOut,
    }

    pub struct H2Raw {
        stream: TcpStream,
        buf: Vec<u8>,
        settings: Vec<(u16, u32)>,
    }

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let length = payload.len() as u32;
        let mut out = length.to_be_bytes()[1..].to_vec();
        out.push(kind);
        out.push(flags);
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    fn hpack_int(out: &mut Vec<u8>, prefix_bits: u8, flags: u8, mut value: usize) {
        let max = (1usize << prefix_bits) - 1;
        if value < max {
            out.push(flags | value as u8);
            return;
        }
        out.push(flags | max as u8);
        value -= max;
        while value >= 128 {
            out.push((value % 128) as u8 | 0x80);
            value /= 128;
        }
        out.push(value as u8);
    }

    fn hpack_str(out: &mut Vec<u8>, text: &str) {
        hpack_int(out, 7, 0, text.len());
        out.extend_from_slice(text.as_bytes());
    }

    /// `:status` from the start of a response header block, if it is static or literal.
    fn decode_status(block: &[u8]) -> u16 {
        let mut i = 0;
        // Dynamic table size updates may come first.
        while i < block.len() && block[i] & 0xe0 == 0x20 {
            i += 1;
            if block[i - 1] & 0x1f == 0x1f {
                while i < block.len() && block[i] & 0x80 != 0 {
                    i += 1;
                }
                i += 1;
            }
        }
        let Some(&first) = block.get(i) else { return 0 };
        if first & 0x80 != 0 {
            return match first & 0x7f {
                8 => 200,
                9 => 204,
                10 => 206,
                11 => 304,
                12 => 400,
                13 => 404,
                14 => 500,
                _ => 0,
            };
        }
        let name_index = if first & 0xc0 == 0x40 {
            first & 0x3f
        } else {
            first & 0x0f
        };
        if !(8..=14).contains(&name_index) {
            return 0;
        }
        let Some(&len_byte) = block.get(i + 1) else {
            return 0;
        };
        let len = (len_byte & 0x7f) as usize;
        let Some(value) = block.get(i + 2..i + 2 + len) else {
            return 0;
        };
        let digits = if len_byte & 0x80 == 0 {
            String::from_utf8_lossy(value).into_owned()
        } else {
            huffman_digits(value)
        };
        digits.parse().unwrap_or(0)
    }

    /// HPACK Huffman for the digits only: `0`-`2` are 5 bits, `3`-`9` are 6 bits (RFC 7541 B).
    fn huffman_digits(bytes: &[u8]) -> String {
        let bits: Vec<u8> = bytes
            .iter()
            .flat_map(|b| (0..8).rev().map(move |i| (b >> i) & 1))
            .collect();
        let take = |at: usize, n: usize| -> Option<u8> {
            bits.get(at..at + n)
                .map(|s| s.iter().fold(0u8, |acc, b| acc << 1 | b))
        };
        let mut out = String::new();
        let mut at = 0;
        while out.len() < 3 {
            let Some(five) = take(at, 5) else { break };
            if five < 3 {
                out.push((b'0' + five) as char);
                at += 5;
            } else {
                let Some(six) = take(at, 6) else { break };
                if !(0x19..=0x1f).contains(&six) {
                    break;
                }
                out.push((b'3' + six - 0x19) as char);
                at += 6;
            }
        }
        out
    }

    impl H2Raw {
        /// Preface and an empty SETTINGS; waits (bounded) for the server's SETTINGS and acks it.
        pub async fn connect(addr: SocketAddr) -> H2Raw {
            let stream = tokio::time::timeout(super::TIMEOUT, TcpStream::connect(addr))
                .await
                .expect("connect in time")
                .expect("connect");
            let mut conn = H2Raw {
                stream,
                buf: Vec::new(),
                settings: Vec::new(),
            };
            let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
            hello.extend(frame(SETTINGS, 0, 0, &[]));
            conn.stream.write_all(&hello).await.expect("preface");
            let deadline = tokio::time::Instant::now() + super::TIMEOUT;
            loop {
                let (kind, flags, _, payload) =
                    conn.read_frame(deadline).await.expect("server SETTINGS");
                if kind == SETTINGS && flags & 1 == 0 {
                    conn.settings = payload
                        .chunks(6)
                        .map(|c| {
                            (
                                u16::from_be_bytes([c[0], c[1]]),
                                u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
                            )
                        })
                        .collect();
                    let ack = frame(SETTINGS, 1, 0, &[]);
                    conn.stream.write_all(&ack).await.expect("settings ack");
                    return conn;
                }
            }
        }

        /// A setting the server advertised.
        pub fn setting(&self, id: u16) -> Option<u32> {
            self.settings
                .iter()
                .find(|(i, _)| *i == id)
                .map(|(_, v)| *v)
        }

        /// A GET with exactly these fields after the pseudo-headers, one HEADERS frame with
        /// END_STREAM and END_HEADERS.
        pub async fn request(&mut self, id: u32, path: &str, extra: &[(&str, &str)]) {
            let mut block = Vec::new();
            let pseudo = [
                (":method", "GET"),
                (":scheme", "http"),
                (":path", path),
                (":authority", "t"),
            ];
            for (name, value) in pseudo.iter().chain(extra) {
                block.push(0x00);
                hpack_str(&mut block, name);
                hpack_str(&mut block, value);
            }
            let bytes = frame(HEADERS, 0x1 | 0x4, id, &block);
            self.stream.write_all(&bytes).await.expect("write HEADERS");
        }

        /// `Err` is `Closed` or `TimedOut`.
        async fn read_frame(
            &mut self,
            deadline: tokio::time::Instant,
        ) -> Result<(u8, u8, u32, Vec<u8>), Outcome> {
            loop {
                if self.buf.len() >= 9 {
                    let length = u32::from_be_bytes([0, self.buf[0], self.buf[1], self.buf[2]]);
                    let total = 9 + length as usize;
                    if self.buf.len() >= total {
                        let kind = self.buf[3];
                        let flags = self.buf[4];
                        let id = u32::from_be_bytes([
                            self.buf[5],
                            self.buf[6],
                            self.buf[7],
                            self.buf[8],
                        ]) & 0x7fff_ffff;
                        let payload = self.buf[9..total].to_vec();
                        self.buf.drain(..total);
                        return Ok((kind, flags, id, payload));
                    }
                }
                let mut chunk = [0u8; 16 * 1024];
                match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                    Err(_) => return Err(Outcome::TimedOut),
                    Ok(Ok(0)) | Ok(Err(_)) => return Err(Outcome::Closed),
                    Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
                }
            }
        }

        pub async fn outcome(&mut self, id: u32, within: Duration) -> Outcome {
            self.outcomes(&[id], within).await.remove(0).1
        }

        /// The outcome of each stream, in the order they arrived.
        pub async fn outcomes(&mut self, ids: &[u32], within: Duration) -> Vec<(u32, Outcome)> {
            let deadline = tokio::time::Instant::now() + within;
            let mut done: Vec<(u32, Outcome)> = Vec::new();
            let pending = |done: &Vec<(u32, Outcome)>| -> Vec<u32> {
                ids.iter()
                    .copied()
                    .filter(|id| !done.iter().any(|(d, _)| d == id))
                    .collect()
            };
            while !pending(&done).is_empty() {
                let (kind, flags, id, payload) = match self.read_frame(deadline).await {
                    Ok(frame) => frame,
                    Err(end) => {
                        for id in pending(&done) {
                            done.push((id, end.clone()));
                        }
                        break;
                    }
                };
                let waiting = pending(&done);
                match kind {
                    SETTINGS if flags & 1 == 0 => {
                        let ack = frame(SETTINGS, 1, 0, &[]);
                        let _ = self.stream.write_all(&ack).await;
                    }
                    PING if flags & 1 == 0 => {
                        let pong = frame(PING, 1, 0, &payload);
                        let _ = self.stream.write_all(&pong).await;
                    }
                    HEADERS if waiting.contains(&id) => {
                        let mut block = &payload[..];
                        if flags & 0x8 != 0 {
                            let pad = block[0] as usize;
                            block = &block[1..block.len() - pad];
                        }
                        if flags & 0x20 != 0 {
                            block = &block[5..];
                        }
                        done.push((id, Outcome::Status(decode_status(block))));
                    }
                    RST_STREAM if waiting.contains(&id) => {
                        let code =
                            u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
                        done.push((id, Outcome::Reset(code)));
                    }
                    GOAWAY => {
                        let last =
                            u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]])
                                & 0x7fff_ffff;
                        let code =
                            u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]]);
                        for id in waiting {
                            if code != 0 || id > last {
                                done.push((id, Outcome::GoAway(code)));
                            }
                        }
                    }
                    DATA => {}
                    _ => {}
                }
            }
            done
        }
    }
}
