//! The I/O wrapper of client connections: activity for the idle timeout, and what the first
//! request head shows before the HTTP parser normalizes it.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Milliseconds since the first call: a cheap shared clock for idle tracking.
pub fn clock_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// Last I/O time and in-flight requests of one connection, for the idle timeout, and what
/// the first request head showed.
#[derive(Default)]
pub struct Activity {
    pub last_ms: AtomicU64,
    pub in_flight: AtomicUsize,
    /// [`HeadFlags`] of the first request head, once it has been read.
    pub first_head: AtomicU8,
    pub requests: AtomicU64,
}

impl Activity {
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            last_ms: AtomicU64::new(clock_ms()),
            ..Activity::default()
        })
    }

    fn touch(&self) {
        self.last_ms.store(clock_ms(), Ordering::Relaxed);
    }

    /// What the first request head showed (empty for later requests).
    pub fn head_flags(&self, first_request: bool) -> HeadFlags {
        if first_request {
            HeadFlags(self.first_head.load(Ordering::Relaxed))
        } else {
            HeadFlags::default()
        }
    }
}

/// Things in a raw request head that the HTTP parser accepts or hides, but the gateway refuses
/// (SPEC §3 step 1, RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeadFlags(u8);

impl HeadFlags {
    /// A raw `#` in the request target (the parser cuts the target there).
    pub const FRAGMENT: u8 = 1;
    /// Both Content-Length and Transfer-Encoding (the parser drops Content-Length).
    pub const CONFLICTING_LENGTH: u8 = 2;
    /// A line ended by a bare LF (the parser accepts it, other hops may not).
    pub const BARE_LF: u8 = 4;

    pub fn has(self, flag: u8) -> bool {
        self.0 & flag != 0
    }

    /// Inspects one complete request head (request line and headers).
    pub fn inspect(head: &[u8]) -> HeadFlags {
        let mut flags = 0;
        let request_line_end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
        if head[..request_line_end].contains(&b'#') {
            flags |= Self::FRAGMENT;
        }
        if head
            .iter()
            .enumerate()
            .any(|(i, &b)| b == b'\n' && (i == 0 || head[i - 1] != b'\r'))
        {
            flags |= Self::BARE_LF;
        }
        let (mut length, mut encoding) = (false, false);
        for line in head.split(|&b| b == b'\n').skip(1) {
            let name = line.split(|&b| b == b':').next().unwrap_or_default();
            length |= name.eq_ignore_ascii_case(b"content-length");
            encoding |= name.eq_ignore_ascii_case(b"transfer-encoding");
        }
        if length && encoding {
            flags |= Self::CONFLICTING_LENGTH;
        }
        HeadFlags(flags)
    }
}

/// Longest first head inspected; a longer one is refused by the parser anyway.
const FIRST_HEAD_LIMIT: usize = 64 * 1024;

/// Wraps a client connection's (decrypted) stream: every read and write marks activity, and
/// the first request head is inspected for what the HTTP parser would hide ([`HeadFlags`]).
///
/// Request boundaries of later requests are only known to the parser, so this covers the
/// first request of each connection (what a raw attack or a curl call sends). On later
/// requests the parser still cuts targets at `#` before routing (what is authorized is what
/// is forwarded), lets Transfer-Encoding override Content-Length and closes the connection
/// after such a message (RFC 9112 §6.3), so nothing is forwarded ambiguously.
pub struct Watched<T> {
    inner: T,
    activity: Arc<Activity>,
    /// The first head so far; `None` once it is complete (or too long).
    head: Option<Vec<u8>>,
}

impl<T> Watched<T> {
    pub fn new(inner: T, activity: &Arc<Activity>) -> Watched<T> {
        Watched {
            inner,
            activity: Arc::clone(activity),
            head: Some(Vec::new()),
        }
    }

    fn wrote(&self, poll: &Poll<io::Result<usize>>) {
        if matches!(poll, Poll::Ready(Ok(n)) if *n > 0) {
            self.activity.touch();
        }
    }

    fn inspect_first_head(&mut self, new: &[u8]) {
        let Some(head) = self.head.as_mut() else {
            return;
        };
        head.extend_from_slice(new);
        let end = find(head, b"\r\n\r\n").or_else(|| find(head, b"\n\n"));
        if let Some(end) = end {
            let flags = HeadFlags::inspect(&head[..end]);
            self.activity.first_head.store(flags.0, Ordering::Relaxed);
            self.head = None;
        } else if head.len() > FIRST_HEAD_LIMIT {
            self.head = None;
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        let new = &buf.filled()[before..];
        if !new.is_empty() {
            self.activity.touch();
            if self.head.is_some() {
                self.inspect_first_head(new);
            }
        }
        poll
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wrote(&poll);
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(&poll);
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Resolves once the connection has been idle (no I/O, no request in flight) for `idle`.
pub async fn idle_for(activity: &Activity, idle: Duration) {
    let idle_ms = idle.as_millis() as u64;
    loop {
        let quiet = clock_ms().saturating_sub(activity.last_ms.load(Ordering::Relaxed));
        if quiet >= idle_ms && activity.in_flight.load(Ordering::Relaxed) == 0 {
            return;
        }
        let wait = idle_ms.saturating_sub(quiet).max(10);
        tokio::time::sleep(Duration::from_millis(wait)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::HeadFlags;

    #[test]
    fn head_inspection() {
        let cases: &[(&[u8], u8)] = &[
            (b"GET /a HTTP/1.1\r\nHost: x\r\n", 0),
            (b"GET /a#b HTTP/1.1\r\nHost: x\r\n", HeadFlags::FRAGMENT),
            (b"GET /a HTTP/1.1\r\nX-A: #1\r\n", 0),
            (b"GET /a HTTP/1.1\nHost: x\n", HeadFlags::BARE_LF),
            (b"GET /a HTTP/1.1\r\nHost: x\nX: y\r\n", HeadFlags::BARE_LF),
            (
                b"POST /a HTTP/1.1\r\nContent-Length: 5\r\ntransfer-encoding: chunked\r\n",
                HeadFlags::CONFLICTING_LENGTH,
            ),
            (b"POST /a HTTP/1.1\r\nContent-Length: 5\r\n", 0),
            (
                b"POST /a HTTP/1.1\r\nX-Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
                0,
            ),
        ];
        for (head, want) in cases {
            assert_eq!(
                HeadFlags::inspect(head),
                HeadFlags(*want),
                "{}",
                String::from_utf8_lossy(head)
            );
        }
    }
}
