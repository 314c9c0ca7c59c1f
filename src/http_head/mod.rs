//! Request framing as it arrives on a client connection, before hyper parses it: where each
//! request head (HTTP/1) or header block (HTTP/2) starts and ends, and what the first HTTP/1
//! head shows that the parser would hide ([`HeadFlags`]).
//!
//! The server needs request boundaries that hyper does not expose, for the timing rules of
//! SPEC §6: a head must be complete within `header_read_timeout` of its first byte (of the
//! connection's start for the first one), the wait between requests is `idle_timeout`, and
//! bytes that complete no frame or head are not activity. [`Framing`] follows the bytes the
//! client sends, nothing else:
//!
//! - The connection starts in detection: the 24-byte HTTP/2 preface (RFC 9113 §3.4) selects
//!   HTTP/2, any other byte HTTP/1 (`server::sniff` decides the same way).
//! - HTTP/1: empty lines before a request line are skipped (RFC 9112 §2.2; they still start
//!   the head's clock). A head ends at its empty line (CRLF or a bare LF, as the parser
//!   accepts). It is then parsed once with `httparse` to learn the body framing: chunked
//!   when Transfer-Encoding is present (it overrides Content-Length, RFC 9112 §6.3), else
//!   Content-Length, else none. Chunk sizes are read with `httparse::parse_chunk_size`.
//!   Every byte is scanned once (a head dripped a byte at a time costs linear time).
//! - HTTP/2: the 9-byte frame headers are read (length, type, flags; RFC 9113 §4.1); other
//!   payloads are skipped. A header block starts with the first byte of a HEADERS frame and
//!   ends with the frame carrying END_HEADERS (HEADERS or CONTINUATION, §6.10). A trailer
//!   block is timed like a head. Header blocks are also HPACK-decoded, by the `h2` crate's
//!   own frame codec (the decoder hyper's server runs, so both always agree on the dynamic
//!   table), for one thing the parser hides: `http::Uri` cuts a `:path` at `#` silently, and
//!   SPEC §3 refuses a raw `#` over HTTP/2 as over HTTP/1. Each such `:path` is reported as a
//!   [`Fragment`]: the method and the target as the parser will present it (cut at `#`).
//!   If the codec fails, hyper's fails the same way and closes the connection.
//! - Anything the tracker cannot follow (a head or chunk line that does not parse, a transfer
//!   coding hyper refuses, an oversized head) makes it give up: [`Framing::tracking`] turns
//!   false and the connection is then timed by `idle_timeout` alone. Each such case is one
//!   that hyper refuses and closes the connection on, so nothing is lost.
//! - A WebSocket tunnel (after a 101) carries no HTTP: [`Framing::tunnel`] stops parsing.
//!
//! The tracker only measures time and marks activity; it never decides what is forwarded. The
//! first-head flags are the one input to a decision, and they are taken from the first head
//! only, where the byte stream and the parser's view cannot disagree.

/// The HTTP/2 connection preface (RFC 9113 §3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Longest chunk-size line (size and extensions) followed: above hyper's 16 KiB limit on
/// extensions, so the tracker never gives up on a body hyper accepts.
const CHUNK_LINE_LIMIT: usize = 32 * 1024;
/// Longest trailer section followed (hyper's limit is 16 KiB).
const TRAILER_LIMIT: usize = 64 * 1024;

/// An HTTP/2 request whose `:path` held a raw `#`: the method and the target cut at `#`, as
/// hyper presents the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragment {
    pub method: Option<http::Method>,
    pub target: String,
}

mod flags;
mod h2;

pub use flags::{HeadFlag, HeadFlags};
use h2::H2;

/// What one [`Framing::feed`] saw.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Progress {
    /// HTTP/2 requests whose `:path` held a raw `#`.
    pub fragments: Vec<Fragment>,
    /// Heads (HTTP/1) or header blocks (HTTP/2) completed.
    pub heads: u32,
    /// The flags of the connection's first HTTP/1 head, when it completed in this call.
    pub first_head: Option<HeadFlags>,
    /// Bytes that count as activity: a completed head or frame, body bytes, tunnel bytes.
    pub active: bool,
}

/// Follows the request direction of one client connection (see the module doc).
pub struct Framing {
    state: State,
    /// Longest HTTP/1 head followed (hyper refuses longer ones).
    head_limit: usize,
    /// Header slots for parsing a head (hyper refuses more headers).
    max_headers: usize,
    /// HTTP/2 header list size limit (as configured for hyper).
    max_header_list: usize,
    heads_seen: u64,
}

enum State {
    /// Matching the HTTP/2 preface; `since` is the first byte's time.
    Detect {
        matched: usize,
        since: Option<u64>,
    },
    H1(H1),
    H2(H2),
    /// After a 101: bytes are the tunnel's, all of them activity.
    Tunnel,
    /// Lost track (see the module doc): bytes are activity, no head is timed.
    Lost,
}

enum H1 {
    Head(HeadScan),
    Body(u64),
    /// Chunk-size line so far.
    ChunkSize(Vec<u8>),
    ChunkData(u64),
    /// The CRLF after a chunk's data; how many bytes of it were seen.
    ChunkEnd(u8),
    /// Trailer section: bytes in the current line, bytes so far.
    Trailers {
        line: usize,
        total: usize,
    },
}

#[derive(Default)]
struct HeadScan {
    /// The head so far, leading empty lines removed.
    buf: Vec<u8>,
    /// Where the current line starts in `buf`.
    line_start: usize,
    /// When the head's first byte (an empty line included) arrived.
    since: Option<u64>,
}

/// Where a head that starts at `bytes[0]` (a request line, not an empty line) ends: just past
/// the line feed of its first empty line (CRLF or a bare LF), if `bytes` holds it.
fn head_end(bytes: &[u8]) -> Option<usize> {
    let mut line_start = 0;
    while let Some(newline) = bytes[line_start..].iter().position(|&b| b == b'\n') {
        let end = line_start + newline;
        let line = &bytes[line_start..end];
        if (line.is_empty() || line == b"\r") && line_start > 0 {
            return Some(end + 1);
        }
        line_start = end + 1;
    }
    None
}

/// How the body of a parsed head is framed.
enum BodyFraming {
    None,
    Length(u64),
    Chunked,
    Unknown,
}

impl Framing {
    pub fn new(head_limit: usize, max_headers: usize, max_header_list: usize) -> Framing {
        Framing {
            state: State::Detect {
                matched: 0,
                since: None,
            },
            head_limit,
            max_headers: max_headers.max(1),
            max_header_list,
            heads_seen: 0,
        }
    }

    /// False once the tracker lost track (or follows a tunnel): no head is timed any more.
    pub fn tracking(&self) -> bool {
        !matches!(self.state, State::Lost | State::Tunnel)
    }

    /// Whether the connection speaks HTTP/2 (known once the preface arrived).
    pub fn is_h2(&self) -> bool {
        matches!(self.state, State::H2(_))
    }

    /// The connection became a tunnel (a 101 was sent): stop parsing.
    pub fn tunnel(&mut self) {
        self.state = State::Tunnel;
    }

    /// When the head or header block in progress started, if one is.
    pub fn head_since(&self) -> Option<u64> {
        match &self.state {
            State::Detect { since, .. } => *since,
            State::H1(H1::Head(scan)) => scan.since,
            State::H2(h2) => h2.block_since,
            State::H1(_) | State::Tunnel | State::Lost => None,
        }
    }

    /// Follows `bytes`, which arrived at `now` (milliseconds on any monotonic clock).
    pub fn feed(&mut self, bytes: &[u8], now: u64) -> Progress {
        let mut progress = Progress::default();
        let mut rest = bytes;
        while !rest.is_empty() {
            rest = match &mut self.state {
                State::Detect { matched, since } => {
                    let since = *since.get_or_insert(now);
                    let want = &PREFACE[*matched..];
                    let n = want.len().min(rest.len());
                    if rest[..n] == want[..n] {
                        *matched += n;
                        if *matched == PREFACE.len() {
                            self.state = State::H2(H2::new(self.max_header_list));
                        }
                        &rest[n..]
                    } else {
                        // HTTP/1: replay what matched so far, then go on.
                        let replay = &PREFACE[..*matched];
                        let scan = HeadScan {
                            since: Some(since),
                            ..HeadScan::default()
                        };
                        self.state = State::H1(H1::Head(scan));
                        if !replay.is_empty() {
                            let replayed = self.feed(replay, now);
                            progress.merge(replayed);
                        }
                        rest
                    }
                }
                State::H1(_) => self.feed_h1(rest, now, &mut progress),
                State::H2(h2) => h2.feed(rest, now, &mut progress),
                State::Tunnel | State::Lost => {
                    progress.active = true;
                    &[]
                }
            };
        }
        progress
    }

    fn lose(&mut self, progress: &mut Progress) {
        self.state = State::Lost;
        progress.active = true;
    }

    /// Consumes a prefix of `bytes` in HTTP/1 state; returns the rest.
    fn feed_h1<'a>(&mut self, bytes: &'a [u8], now: u64, progress: &mut Progress) -> &'a [u8] {
        let State::H1(h1) = &mut self.state else {
            return &[];
        };
        match h1 {
            H1::Head(scan) => {
                scan.since.get_or_insert(now);
                let mut at = 0;
                // Leading empty lines are skipped.
                if scan.buf.is_empty() {
                    while at < bytes.len() && matches!(bytes[at], b'\r' | b'\n') {
                        at += 1;
                    }
                    // The whole head in this one read (the usual case): followed in place,
                    // never copied. The same line rule as below, over the same bytes.
                    if let Some(end) = head_end(&bytes[at..]) {
                        self.head_complete(&bytes[at..at + end], progress);
                        return &bytes[at + end..];
                    }
                }
                while at < bytes.len() {
                    let rest = &bytes[at..];
                    let Some(newline) = rest.iter().position(|&b| b == b'\n') else {
                        scan.buf.extend_from_slice(rest);
                        at = bytes.len();
                        break;
                    };
                    scan.buf.extend_from_slice(&rest[..=newline]);
                    at += newline + 1;
                    let line = &scan.buf[scan.line_start..scan.buf.len() - 1];
                    let empty = line.is_empty() || line == b"\r";
                    if empty && scan.line_start > 0 {
                        let head = std::mem::take(&mut scan.buf);
                        self.head_complete(&head, progress);
                        return &bytes[at..];
                    }
                    scan.line_start = scan.buf.len();
                }
                if scan.buf.len() > self.head_limit {
                    self.lose(progress);
                }
                &bytes[at..]
            }
            H1::Body(remaining) => {
                progress.active = true;
                let n = bytes
                    .len()
                    .min(usize::try_from(*remaining).unwrap_or(usize::MAX));
                *remaining -= n as u64;
                if *remaining == 0 {
                    *h1 = H1::Head(HeadScan::default());
                }
                &bytes[n..]
            }
            H1::ChunkSize(line) => {
                progress.active = true;
                let Some(newline) = bytes.iter().position(|&b| b == b'\n') else {
                    line.extend_from_slice(bytes);
                    if line.len() > CHUNK_LINE_LIMIT {
                        self.lose(progress);
                    }
                    return &[];
                };
                line.extend_from_slice(&bytes[..=newline]);
                match httparse::parse_chunk_size(line) {
                    Ok(httparse::Status::Complete((_, 0))) => {
                        *h1 = H1::Trailers { line: 0, total: 0 }
                    }
                    Ok(httparse::Status::Complete((_, size))) => *h1 = H1::ChunkData(size),
                    Ok(httparse::Status::Partial) | Err(_) => self.lose(progress),
                }
                &bytes[newline + 1..]
            }
            H1::ChunkData(remaining) => {
                progress.active = true;
                let n = bytes
                    .len()
                    .min(usize::try_from(*remaining).unwrap_or(usize::MAX));
                *remaining -= n as u64;
                if *remaining == 0 {
                    *h1 = H1::ChunkEnd(0);
                }
                &bytes[n..]
            }
            H1::ChunkEnd(seen) => {
                progress.active = true;
                match (bytes[0], *seen) {
                    (b'\n', _) => *h1 = H1::ChunkSize(Vec::new()),
                    (b'\r', 0) => *seen = 1,
                    _ => self.lose(progress),
                }
                &bytes[1..]
            }
            H1::Trailers { line, total } => {
                progress.active = true;
                let mut at = 0;
                while at < bytes.len() {
                    let b = bytes[at];
                    at += 1;
                    *total += 1;
                    match b {
                        b'\n' if *line == 0 => {
                            *h1 = H1::Head(HeadScan::default());
                            return &bytes[at..];
                        }
                        b'\n' => *line = 0,
                        b'\r' => {}
                        _ => *line += 1,
                    }
                }
                if *total > TRAILER_LIMIT {
                    self.lose(progress);
                }
                &[]
            }
        }
    }

    fn head_complete(&mut self, head: &[u8], progress: &mut Progress) {
        progress.heads += 1;
        progress.active = true;
        if self.heads_seen == 0 {
            progress.first_head = Some(HeadFlags::inspect(head));
        }
        self.heads_seen += 1;
        self.state = match body_framing(head, self.max_headers) {
            BodyFraming::None | BodyFraming::Length(0) => State::H1(H1::Head(HeadScan::default())),
            BodyFraming::Length(n) => State::H1(H1::Body(n)),
            BodyFraming::Chunked => State::H1(H1::ChunkSize(Vec::new())),
            BodyFraming::Unknown => State::Lost,
        };
    }
}

impl Progress {
    fn merge(&mut self, other: Progress) {
        self.fragments.extend(other.fragments);
        self.heads += other.heads;
        self.first_head = self.first_head.or(other.first_head);
        self.active |= other.active;
    }
}

/// The body framing of a complete head (RFC 9112 §6.3, as hyper applies it).
fn body_framing(head: &[u8], max_headers: usize) -> BodyFraming {
    let mut headers = vec![httparse::EMPTY_HEADER; max_headers];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) | Err(_) => return BodyFraming::Unknown,
    }
    let mut chunked = None;
    let mut length: Option<u64> = None;
    for header in request.headers.iter() {
        if header.name.eq_ignore_ascii_case("transfer-encoding") {
            let last = header
                .value
                .rsplit(|&b| b == b',')
                .next()
                .unwrap_or_default();
            chunked = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if header.name.eq_ignore_ascii_case("content-length") {
            // As hyper reads it: a list of equal decimal values, in one field or several.
            for item in header.value.split(|&b| b == b',') {
                let digits = item.trim_ascii();
                let value = (!digits.is_empty() && digits.iter().all(u8::is_ascii_digit))
                    .then(|| std::str::from_utf8(digits).ok()?.parse::<u64>().ok())
                    .flatten();
                match (value, length) {
                    (Some(value), None) => length = Some(value),
                    (Some(value), Some(seen)) if value == seen => {}
                    (Some(_), Some(_)) | (None, _) => return BodyFraming::Unknown,
                }
            }
        }
    }
    match (chunked, length) {
        (Some(true), _) => BodyFraming::Chunked,
        (Some(false), _) => BodyFraming::Unknown,
        (None, Some(n)) => BodyFraming::Length(n),
        (None, None) => BodyFraming::None,
    }
}

#[cfg(test)]
mod tests;
