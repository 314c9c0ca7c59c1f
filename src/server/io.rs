//! The I/O wrapper of client connections and the timers it feeds (SPEC §6).
//!
//! [`Watched`] passes every byte the client sends through a [`Framing`] tracker
//! (crate::http_head) and records in the connection's [`Activity`] what the timers need:
//! when the head (HTTP/1) or header block (HTTP/2) in progress started, how many completed,
//! and the last time something counted as activity. [`expired`] turns that into the rules:
//!
//! - The first request head must be complete within `header_read_timeout` of the
//!   connection's start; a later one within `header_read_timeout` of its first byte. (hyper's
//!   own HTTP/1 header timer is off: it re-arms between keep-alive requests, so it would also
//!   bound the idle wait.) On HTTP/1 a pipelined head's clock starts when the exchange before
//!   it ends, since hyper reads nothing of it before.
//! - With no request waiting for its response head, the connection closes after
//!   `idle_timeout` without activity: a completed head or frame, request body bytes, any
//!   byte written to the client, tunnel bytes either way. Bytes that complete no head or
//!   frame are not activity, so a trickle cannot keep a connection open. A response body
//!   that stalls that long is cut like an idle connection.
//! - A WebSocket tunnel is timed by `idle_timeout` alone.
//!
//! [`Activity`] also counts the exchanges in flight (from the request's head until its
//! response body is done), which the drain waits for and nothing else.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

use crate::http_head::{Fragment, Framing, HeadFlags};
use crate::proxy::TunnelFuture;

/// Milliseconds since the first call: a cheap shared clock for idle tracking.
pub fn clock_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// What one connection's timers and drain need to know; shared by the I/O wrapper, the
/// request service and the connection task.
#[derive(Default)]
pub struct Activity {
    /// When the connection started serving HTTP.
    pub started_ms: AtomicU64,
    /// The last activity (see the module doc).
    pub last_ms: AtomicU64,
    /// Start of the head in progress, plus one; 0 when none is.
    head_since: AtomicU64,
    /// Heads (or header blocks) completed.
    heads: AtomicU64,
    /// Requests waiting for their response head.
    in_flight: AtomicUsize,
    /// Requests from head until their response body is done.
    exchanges: AtomicUsize,
    /// When the last exchange ended.
    exchange_end_ms: AtomicU64,
    /// [`HeadFlags`] of the first request head, once it has been read.
    first_head: AtomicU8,
    pub requests: AtomicU64,
    h2: AtomicBool,
    /// The framing tracker lost track: no head is timed any more.
    untracked: AtomicBool,
    /// A 101 was answered: the connection is a tunnel.
    tunnel: AtomicBool,
    tunnel_future: Mutex<Option<TunnelFuture>>,
    /// HTTP/2 requests whose `:path` held a raw `#`, until their request arrives.
    fragments: Mutex<Vec<Fragment>>,
    /// Wakes the timer when a deadline may have moved earlier.
    changed: Notify,
}

/// The timeouts [`expired`] applies.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub header_read: Duration,
    pub idle: Duration,
}

/// Why [`expired`] resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// A request head was not complete in time.
    Head,
    /// No activity for `idle_timeout`.
    Idle,
}

impl Activity {
    pub fn new() -> Arc<Activity> {
        let activity = Activity::default();
        activity.start();
        Arc::new(activity)
    }

    /// Restarts the clocks (the connection starts serving HTTP now, e.g. after TLS).
    pub fn start(&self) {
        let now = clock_ms();
        self.started_ms.store(now, Ordering::Relaxed);
        self.last_ms.store(now, Ordering::Relaxed);
    }

    fn touch(&self) {
        self.last_ms.store(clock_ms(), Ordering::Relaxed);
    }

    /// What the first request head showed (empty for later requests).
    pub fn head_flags(&self, first_request: bool) -> HeadFlags {
        if first_request {
            HeadFlags::from_bits(self.first_head.load(Ordering::Relaxed))
        } else {
            HeadFlags::default()
        }
    }

    /// A request's exchange begins (its head was parsed); it ends when the guard drops.
    pub fn exchange(self: &Arc<Self>) -> ExchangeGuard {
        self.exchanges.fetch_add(1, Ordering::SeqCst);
        ExchangeGuard(Arc::clone(self))
    }

    /// A request was handed to the pipeline.
    pub fn request_sent(&self) {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
    }

    /// Its response head is ready: the idle timer applies again once none is waiting.
    pub fn request_answered(&self) {
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.touch();
        self.changed.notify_one();
    }

    /// Whether a request is in flight (head read, response not complete).
    pub fn busy(&self) -> bool {
        self.exchanges.load(Ordering::SeqCst) > 0
    }

    /// Resolves once no request is in flight.
    pub async fn quiet(&self) {
        loop {
            let changed = self.changed.notified();
            if !self.busy() {
                return;
            }
            changed.await;
        }
    }

    /// Whether this HTTP/2 request's `:path` held a raw `#` (which the parser cut): the
    /// oldest matching report of the framing tracker, consumed.
    pub fn take_fragment(&self, method: &http::Method, target: &str) -> bool {
        let mut fragments = self
            .fragments
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let found = fragments.iter().position(|fragment| {
            fragment.target == target && fragment.method.as_ref().is_none_or(|m| m == method)
        });
        found.map(|index| fragments.remove(index)).is_some()
    }

    /// Hands the connection a tunnel to run once hyper releases it (after the 101).
    pub fn set_tunnel(&self, tunnel: TunnelFuture) {
        *self
            .tunnel_future
            .lock()
            .unwrap_or_else(|poison| poison.into_inner()) = Some(tunnel);
        self.tunnel.store(true, Ordering::SeqCst);
        self.changed.notify_one();
    }

    pub fn take_tunnel(&self) -> Option<TunnelFuture> {
        self.tunnel_future
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .take()
    }

    /// The next deadline and what it is for; `None` when no timer applies now.
    fn deadline(&self, timeouts: Timeouts) -> Option<(u64, Expired)> {
        let header_read = timeouts.header_read.as_millis() as u64;
        let idle = timeouts.idle.as_millis() as u64;
        let idle_deadline = (self.in_flight.load(Ordering::SeqCst) == 0)
            .then(|| self.last_ms.load(Ordering::Relaxed).saturating_add(idle));
        let timed = !self.tunnel.load(Ordering::SeqCst) && !self.untracked.load(Ordering::SeqCst);
        let head_since = self.head_since.load(Ordering::SeqCst).checked_sub(1);
        let head_deadline = if !timed {
            None
        } else if self.heads.load(Ordering::SeqCst) == 0 {
            Some(self.started_ms.load(Ordering::Relaxed))
        } else if self.h2.load(Ordering::SeqCst) {
            head_since
        } else if self.busy() {
            // HTTP/1 reads a pipelined head only after the exchange before it.
            None
        } else {
            head_since.map(|since| since.max(self.exchange_end_ms.load(Ordering::SeqCst)))
        }
        .map(|since| since.saturating_add(header_read));
        match (head_deadline, idle_deadline) {
            (Some(head), Some(idle)) if idle < head => Some((idle, Expired::Idle)),
            (Some(head), _) => Some((head, Expired::Head)),
            (None, Some(idle)) => Some((idle, Expired::Idle)),
            (None, None) => None,
        }
    }
}

/// Ends an exchange when dropped (held by the response body).
pub struct ExchangeGuard(Arc<Activity>);

impl Drop for ExchangeGuard {
    fn drop(&mut self) {
        let now = clock_ms();
        self.0.exchange_end_ms.store(now, Ordering::SeqCst);
        self.0.last_ms.store(now, Ordering::Relaxed);
        self.0.exchanges.fetch_sub(1, Ordering::SeqCst);
        self.0.changed.notify_one();
    }
}

/// Resolves when a timer of the module doc runs out.
pub async fn expired(activity: &Activity, timeouts: Timeouts) -> Expired {
    loop {
        let changed = activity.changed.notified();
        let now = clock_ms();
        let wait = match activity.deadline(timeouts) {
            Some((deadline, why)) if deadline <= now => return why,
            Some((deadline, _)) => Duration::from_millis(deadline - now),
            // Requests in flight: their own deadlines apply; look again when they end.
            None => Duration::from_secs(3600),
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = changed => {}
        }
    }
}

/// hyper's limits, which the framing tracker follows (past them hyper refuses the request).
#[derive(Debug, Clone, Copy)]
pub struct FramingLimits {
    /// Longest HTTP/1 head.
    pub head: usize,
    /// Most HTTP/1 header fields.
    pub headers: usize,
    /// HTTP/2 header list size.
    pub header_list: usize,
}

/// Most HTTP/2 `#` targets remembered per connection until their request arrives (a stream
/// hyper refuses never does; the oldest are forgotten).
const FRAGMENTS_KEPT: usize = 64;

/// Wraps a client connection's (decrypted) stream: every read goes through the framing
/// tracker, every write marks activity (see the module doc).
pub struct Watched<T> {
    inner: T,
    activity: Arc<Activity>,
    framing: Framing,
}

impl<T> Watched<T> {
    pub fn new(inner: T, activity: &Arc<Activity>, limits: FramingLimits) -> Watched<T> {
        Watched {
            inner,
            activity: Arc::clone(activity),
            framing: Framing::new(limits.head, limits.headers, limits.header_list),
        }
    }

    fn wrote(&self, poll: &Poll<io::Result<usize>>) {
        if matches!(poll, Poll::Ready(Ok(n)) if *n > 0) {
            self.activity.touch();
        }
    }

    fn read(&mut self, bytes: &[u8]) {
        let activity = &self.activity;
        if self.framing.tracking() && activity.tunnel.load(Ordering::SeqCst) {
            self.framing.tunnel();
        }
        let before = self.framing.head_since();
        let progress = self.framing.feed(bytes, clock_ms());
        if !progress.fragments.is_empty() {
            let mut fragments = activity
                .fragments
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            fragments.extend(progress.fragments);
            let excess = fragments.len().saturating_sub(FRAGMENTS_KEPT);
            fragments.drain(..excess);
        }
        if let Some(flags) = progress.first_head {
            activity.first_head.store(flags.bits(), Ordering::Relaxed);
        }
        if progress.heads > 0 {
            activity
                .heads
                .fetch_add(u64::from(progress.heads), Ordering::SeqCst);
        }
        if progress.active {
            activity.touch();
        }
        if self.framing.is_h2() {
            activity.h2.store(true, Ordering::Relaxed);
        }
        if !self.framing.tracking() {
            activity.untracked.store(true, Ordering::SeqCst);
        }
        let after = self.framing.head_since();
        if after != before {
            activity
                .head_since
                .store(after.map_or(0, |since| since + 1), Ordering::SeqCst);
            if before.is_none() {
                activity.changed.notify_one();
            }
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
            self.read(new);
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

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUTS: Timeouts = Timeouts {
        header_read: Duration::from_millis(100),
        idle: Duration::from_millis(1000),
    };

    #[test]
    fn the_first_head_is_timed_from_the_start_later_ones_from_their_first_byte() {
        let activity = Activity::new();
        let start = activity.started_ms.load(Ordering::Relaxed);
        assert_eq!(
            activity.deadline(TIMEOUTS),
            Some((start + 100, Expired::Head))
        );

        activity.heads.store(1, Ordering::SeqCst);
        activity.last_ms.store(start + 50, Ordering::Relaxed);
        assert_eq!(
            activity.deadline(TIMEOUTS),
            Some((start + 1050, Expired::Idle))
        );

        activity.head_since.store(start + 200 + 1, Ordering::SeqCst);
        assert_eq!(
            activity.deadline(TIMEOUTS),
            Some((start + 300, Expired::Head))
        );

        // HTTP/1: not while an exchange is in flight, then from its end.
        let exchange = activity.exchange();
        assert_eq!(
            activity.deadline(TIMEOUTS),
            Some((start + 1050, Expired::Idle))
        );
        drop(exchange);
        let end = activity.exchange_end_ms.load(Ordering::SeqCst);
        assert_eq!(
            activity
                .deadline(TIMEOUTS)
                .map(|(at, why)| (at >= end + 100, why)),
            Some((true, Expired::Head))
        );

        // A tunnel is timed by idle_timeout alone.
        activity.set_tunnel(Box::pin(async {}));
        let last = activity.last_ms.load(Ordering::Relaxed);
        assert_eq!(
            activity.deadline(TIMEOUTS),
            Some((last + 1000, Expired::Idle))
        );
    }
}
