//! The I/O wrapper of client connections: activity for the idle timeout, and the first
//! request line's raw `#`.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Milliseconds since the first call: a cheap shared clock for idle tracking.
pub fn clock_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// Last I/O time and in-flight requests of one connection, for the idle timeout.
#[derive(Default)]
pub struct Activity {
    pub last_ms: AtomicU64,
    pub in_flight: AtomicUsize,
    /// The first request line held a raw `#` (see [`Watched`]).
    pub first_line_fragment: AtomicBool,
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
}

/// Longest first line inspected for a raw `#`.
const FIRST_LINE_LIMIT: usize = 16 * 1024;

/// Wraps a client connection's (decrypted) stream: every read and write marks activity, and
/// the first request line is watched for a raw `#`.
///
/// The HTTP parser silently cuts a request target at `#` (a fragment), so the gateway would
/// never see it; SPEC §3 step 1 wants such a request refused with 400. Request boundaries of
/// later requests are only known to the parser, so this covers the first request of each
/// connection (what curl and most clients send); on later requests the target is still cut
/// at `#` before routing, so what is authorized is what is forwarded.
pub struct Watched<T> {
    inner: T,
    activity: Arc<Activity>,
    seen: usize,
    first_line_done: bool,
}

impl<T> Watched<T> {
    pub fn new(inner: T, activity: &Arc<Activity>) -> Watched<T> {
        Watched {
            inner,
            activity: Arc::clone(activity),
            seen: 0,
            first_line_done: false,
        }
    }

    fn wrote(&self, poll: &Poll<io::Result<usize>>) {
        if matches!(poll, Poll::Ready(Ok(n)) if *n > 0) {
            self.activity.touch();
        }
    }
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
        }
        if !self.first_line_done {
            let line_end = new.iter().position(|&b| b == b'\n');
            if new[..line_end.unwrap_or(new.len())].contains(&b'#') {
                self.activity
                    .first_line_fragment
                    .store(true, Ordering::Relaxed);
            }
            let seen = self.seen + new.len();
            self.seen = seen;
            self.first_line_done = line_end.is_some() || seen > FIRST_LINE_LIMIT;
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
