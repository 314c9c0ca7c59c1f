//! A raw HTTP/2 client (prior knowledge, no TLS) for what a well-behaved client library will
//! not send: hand-made frames and HPACK blocks, streams left open, header lists over a limit.
//! [`H2Raw`] does the preface and SETTINGS exchange, then reports per stream what became of it
//! ([`Outcome`]) or just its `:status`. Every read is bounded by a deadline.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::gateway::TIMEOUT;

pub const MAX_CONCURRENT_STREAMS: u16 = 0x3;
pub const MAX_HEADER_LIST_SIZE: u16 = 0x6;

pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const END_STREAM: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;

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
    /// The connection, for writing frames by hand.
    pub stream: TcpStream,
    buf: Vec<u8>,
    settings: Vec<(u16, u32)>,
}

/// One frame: 9-byte header and `payload`.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let length = payload.len() as u32;
    let mut out = length.to_be_bytes()[1..].to_vec();
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// HPACK literal without indexing, name and value as plain strings (RFC 7541 §6.2.2).
fn literal(out: &mut Vec<u8>, name: &str, value: &str) {
    out.push(0);
    for text in [name, value] {
        assert!(text.len() < 127);
        out.push(text.len() as u8);
        out.extend_from_slice(text.as_bytes());
    }
}

/// A GET header block for `path` in one HEADERS frame.
pub fn headers_frame(stream: u32, path: &str, end_stream: bool) -> Vec<u8> {
    let mut block = vec![0x82, 0x86]; // :method GET, :scheme http (static table)
    literal(&mut block, ":path", path);
    literal(&mut block, ":authority", "t");
    let flags = END_HEADERS | if end_stream { END_STREAM } else { 0 };
    frame(HEADERS, flags, stream, &block)
}

/// A GET header block whose `:path` is added to the HPACK dynamic table (RFC 7541
/// §6.2.1), or taken from it (`indexed`: dynamic index 62, the newest entry).
pub fn indexed_path_frame(stream: u32, path: Option<&str>) -> Vec<u8> {
    let mut block = vec![0x82, 0x86];
    match path {
        Some(path) => {
            block.push(0x44); // literal with incremental indexing, name :path (static 4)
            block.push(path.len() as u8);
            block.extend_from_slice(path.as_bytes());
        }
        None => block.push(0x80 | 62),
    }
    literal(&mut block, ":authority", "t");
    frame(HEADERS, END_HEADERS | END_STREAM, stream, &block)
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
        let stream = tokio::time::timeout(TIMEOUT, TcpStream::connect(addr))
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
        let deadline = tokio::time::Instant::now() + TIMEOUT;
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
                    let id =
                        u32::from_be_bytes([self.buf[5], self.buf[6], self.buf[7], self.buf[8]])
                            & 0x7fff_ffff;
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

    /// The `:status` of the response on `stream` when it is a static-table status (0 for
    /// another one); `None` on GOAWAY, close or when `within` passes.
    pub async fn status(&mut self, stream: u32, within: Duration) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let (kind, _, id, payload) = self.read_frame(deadline).await.ok()?;
            if kind == GOAWAY {
                return None;
            }
            if kind == HEADERS && id == stream {
                return match payload.first()? & 0x7f {
                    8 => Some(200),
                    13 => Some(404),
                    12 => Some(400),
                    14 => Some(500),
                    _ => Some(0),
                };
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
                    let code = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
                    done.push((id, Outcome::Reset(code)));
                }
                GOAWAY => {
                    let last = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]])
                        & 0x7fff_ffff;
                    let code = u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]]);
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
