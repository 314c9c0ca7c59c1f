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
//!   HTTP/2, any other byte HTTP/1 (hyper's `auto` builder decides the same way).
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

/// One thing in a raw request head that the HTTP parser accepts or hides, but the gateway
/// refuses (SPEC §3 step 1, RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadFlag {
    /// A raw `#` in the request target (the parser cuts the target there).
    Fragment,
    /// Both Content-Length and Transfer-Encoding (the parser drops Content-Length).
    ConflictingLength,
    /// A line ended by a bare LF (the parser accepts it, other hops may not).
    BareLf,
}

impl HeadFlag {
    /// The flag's name, for logs and test messages.
    pub fn as_str(self) -> &'static str {
        match self {
            HeadFlag::Fragment => "fragment",
            HeadFlag::ConflictingLength => "conflicting_length",
            HeadFlag::BareLf => "bare_lf",
        }
    }

    /// The flag's bit in [`HeadFlags::bits`].
    fn bit(self) -> u8 {
        match self {
            HeadFlag::Fragment => 1,
            HeadFlag::ConflictingLength => 2,
            HeadFlag::BareLf => 4,
        }
    }
}

/// The [`HeadFlag`]s of one request head: a set kept in one byte, so the connection can hand
/// it from its reader to its service through an atomic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeadFlags(pub(crate) u8);

impl HeadFlags {
    pub fn has(self, flag: HeadFlag) -> bool {
        self.0 & flag.bit() != 0
    }

    /// These flags and `flag`.
    #[must_use]
    pub fn with(self, flag: HeadFlag) -> HeadFlags {
        HeadFlags(self.0 | flag.bit())
    }

    pub fn bits(self) -> u8 {
        self.0
    }

    pub fn from_bits(bits: u8) -> HeadFlags {
        HeadFlags(bits)
    }

    /// Inspects one complete request head (request line and headers, leading empty lines
    /// already removed), in one pass per property.
    pub fn inspect(head: &[u8]) -> HeadFlags {
        let mut flags = HeadFlags::default();
        let request_line_end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
        if head[..request_line_end].contains(&b'#') {
            flags = flags.with(HeadFlag::Fragment);
        }
        if head
            .iter()
            .enumerate()
            .any(|(i, &b)| b == b'\n' && (i == 0 || head[i - 1] != b'\r'))
        {
            flags = flags.with(HeadFlag::BareLf);
        }
        let (mut length, mut encoding) = (false, false);
        for line in head.split(|&b| b == b'\n').skip(1) {
            let name = line.split(|&b| b == b':').next().unwrap_or_default();
            length |= name.eq_ignore_ascii_case(b"content-length");
            encoding |= name.eq_ignore_ascii_case(b"transfer-encoding");
        }
        if length && encoding {
            flags = flags.with(HeadFlag::ConflictingLength);
        }
        flags
    }
}

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

mod h2;

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
mod tests {
    use super::*;

    #[test]
    fn head_inspection() {
        let none = HeadFlags::default();
        let cases: &[(&[u8], HeadFlags)] = &[
            (b"GET /a HTTP/1.1\r\nHost: x\r\n", none),
            (
                b"GET /a#b HTTP/1.1\r\nHost: x\r\n",
                none.with(HeadFlag::Fragment),
            ),
            (b"GET /a HTTP/1.1\r\nX-A: #1\r\n", none),
            (b"GET /a HTTP/1.1\nHost: x\n", none.with(HeadFlag::BareLf)),
            (
                b"GET /a HTTP/1.1\r\nHost: x\nX: y\r\n",
                none.with(HeadFlag::BareLf),
            ),
            (
                b"POST /a HTTP/1.1\r\nContent-Length: 5\r\ntransfer-encoding: chunked\r\n",
                none.with(HeadFlag::ConflictingLength),
            ),
            (b"POST /a HTTP/1.1\r\nContent-Length: 5\r\n", none),
            (
                b"POST /a HTTP/1.1\r\nX-Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
                none,
            ),
        ];
        for (head, want) in cases {
            assert_eq!(
                HeadFlags::inspect(head),
                *want,
                "{}",
                String::from_utf8_lossy(head)
            );
        }
    }

    /// Feeds `bytes` in pieces of `step`, returning the summed progress.
    fn feed_all(framing: &mut Framing, bytes: &[u8], step: usize) -> Progress {
        let mut total = Progress::default();
        for (i, piece) in bytes.chunks(step).enumerate() {
            total.merge(framing.feed(piece, i as u64));
        }
        total
    }

    #[test]
    fn http1_heads_and_bodies_are_followed_in_any_split() {
        let stream: &[u8] = b"\r\nPOST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
GET /b HTTP/1.1\nHost: x\n\n\
POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\n\
PUT /d HTTP/1.1\r\nContent-Length: 2, 2\r\n\r\nokGET /e";
        for step in [1, 2, 3, 7, 64, stream.len()] {
            let mut framing = Framing::new(64 * 1024, 100, 65536);
            let progress = feed_all(&mut framing, stream, step);
            assert_eq!(progress.heads, 4, "step {step}");
            assert_eq!(progress.first_head, Some(HeadFlags(0)), "step {step}");
            assert!(framing.tracking(), "step {step}");
            assert!(
                framing.head_since().is_some(),
                "step {step}: /e in progress"
            );
        }
    }

    #[test]
    fn leading_empty_lines_are_skipped_before_the_first_head_is_inspected() {
        for prefix in [&b"\r\n"[..], b"\n", b"\r\n\r\n", b"\n\n"] {
            let mut bytes = prefix.to_vec();
            bytes.extend_from_slice(
                b"POST /a#f HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            );
            let mut framing = Framing::new(64 * 1024, 100, 65536);
            let progress = framing.feed(&bytes, 0);
            assert_eq!(
                progress.first_head,
                Some(
                    HeadFlags::default()
                        .with(HeadFlag::Fragment)
                        .with(HeadFlag::ConflictingLength)
                ),
                "{prefix:?}"
            );
        }
    }

    #[test]
    fn a_head_fed_a_byte_at_a_time_costs_linear_time() {
        let mut head = b"GET /a HTTP/1.1\r\n".to_vec();
        while head.len() < 60_000 {
            head.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        head.extend_from_slice(b"\r\n");
        let mut framing = Framing::new(64 * 1024, 2000, 65536);
        let started = std::time::Instant::now();
        let progress = feed_all(&mut framing, &head, 1);
        assert_eq!(progress.heads, 1);
        // Quadratic rescanning costs ~1.8e9 byte comparisons here (seconds, even optimized).
        assert!(
            started.elapsed() < std::time::Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn unparsable_framing_stops_tracking() {
        for bytes in [
            &b"POST /a HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"[..],
            b"POST /a HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"POST /a HTTP/1.1\r\nContent-Length: 1, 2\r\n\r\n",
            b"POST /a HTTP/1.1\r\nContent-Length: +1\r\n\r\n",
            b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"\x00\x01 garbage\r\n\r\n",
        ] {
            let mut framing = Framing::new(64 * 1024, 100, 65536);
            framing.feed(bytes, 0);
            assert!(!framing.tracking(), "{:?}", String::from_utf8_lossy(bytes));
        }
    }

    fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = (payload.len() as u32).to_be_bytes()[1..].to_vec();
        out.extend_from_slice(&[kind, flags, 0, 0, 0, 1]);
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn http2_header_blocks_are_timed_from_their_first_byte() {
        let mut framing = Framing::new(64 * 1024, 100, 65536);
        let mut hello = PREFACE.to_vec();
        hello.extend(frame(4, 0, &[]));
        let progress = framing.feed(&hello, 1);
        assert!(framing.is_h2());
        assert!(progress.active);
        assert_eq!(framing.head_since(), None);

        // HEADERS without END_HEADERS, then CONTINUATION with it, fed a byte at a time.
        let mut block = frame(1, 0, b"abc");
        block.extend(frame(9, 4, b"de"));
        for (i, byte) in block.iter().enumerate() {
            let progress = framing.feed(std::slice::from_ref(byte), 10 + i as u64);
            if i < 3 {
                assert_eq!(framing.head_since(), None, "byte {i}: type not known yet");
            } else if i + 1 < block.len() {
                assert_eq!(framing.head_since(), Some(10), "byte {i}");
                assert_eq!(progress.heads, 0, "byte {i}");
            } else {
                assert_eq!(progress.heads, 1);
                assert_eq!(framing.head_since(), None);
            }
        }

        // A partial PING is no activity; its last byte is.
        let ping = frame(6, 0, &[0; 8]);
        assert!(!framing.feed(&ping[..16], 50).active);
        assert_eq!(framing.head_since(), None);
        assert!(framing.feed(&ping[16..], 51).active);
    }

    #[test]
    fn http2_paths_with_a_raw_hash_are_reported_across_continuation_frames() {
        let mut framing = Framing::new(64 * 1024, 100, 65536);
        framing.feed(PREFACE, 0);
        // :method GET, :scheme http, :path literal (not indexed), split over two frames.
        let path = b"/a?q#frag";
        let mut block = vec![0x82, 0x86, 0x04, path.len() as u8];
        block.extend_from_slice(path);
        let mut bytes = frame(1, 0x1, &block[..5]); // END_STREAM, no END_HEADERS
        bytes.extend(frame(9, 0x4, &block[5..]));
        let mut fragments = Vec::new();
        for byte in &bytes {
            fragments.extend(framing.feed(std::slice::from_ref(byte), 1).fragments);
        }
        assert_eq!(
            fragments,
            [Fragment {
                method: Some(http::Method::GET),
                target: "/a?q".into(),
            }]
        );
        // A clean path reports nothing.
        let block = [0x82, 0x86, 0x84]; // :path "/" (static 4)
        assert!(framing.feed(&frame(1, 0x5, &block), 2).fragments.is_empty());
    }

    #[test]
    fn a_tunnel_is_all_activity() {
        let mut framing = Framing::new(64 * 1024, 100, 65536);
        framing.feed(b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n", 0);
        framing.tunnel();
        let progress = framing.feed(b"\x81\x05hello", 1);
        assert!(progress.active);
        assert_eq!(progress.heads, 0);
        assert_eq!(framing.head_since(), None);
    }
}
