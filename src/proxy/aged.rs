//! Connection age, so that upstream host names are resolved again (`dns_refresh`).
//!
//! The system resolver runs at every new connection, but a pooled connection that stays busy
//! is reused for ever and keeps the address it was opened to. So every connection to an
//! upstream carries its birth time ([`Born`], through the connector), and after a response
//! from a server named by a host name, a connection older than `dns_refresh` is poisoned: it
//! finishes what it carries and is not reused, and the next request opens a new connection,
//! resolving the name again. Servers given as IP addresses are never affected.
//!
//! This module only wraps the connector's streams; it never reads or writes bytes itself.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::{Extensions, Uri};
use hyper_util::client::legacy::connect::{Connected, Connection};

/// When a connection was opened, in its `Connected` extras.
#[derive(Debug, Clone, Copy)]
pub struct Born(pub Instant);

/// A connector whose streams carry their birth time.
#[derive(Clone)]
pub struct AgedConnector<C>(pub C);

impl<C> tower_service::Service<Uri> for AgedConnector<C>
where
    C: tower_service::Service<Uri>,
    C::Future: Send + 'static,
    C::Response: Send + 'static,
    C::Error: 'static,
{
    type Response = Aged<C::Response>;
    type Error = C::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.0.call(uri);
        Box::pin(async move {
            let stream = connecting.await?;
            Ok(Aged {
                stream,
                born: Instant::now(),
            })
        })
    }
}

/// A stream and its birth time.
pub struct Aged<T> {
    stream: T,
    born: Instant,
}

impl<T: Connection> Connection for Aged<T> {
    fn connected(&self) -> Connected {
        self.stream.connected().extra(Born(self.born))
    }
}

impl<T: hyper::rt::Read + Unpin> hyper::rt::Read for Aged<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl<T: hyper::rt::Write + Unpin> hyper::rt::Write for Aged<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }
}

/// Poisons the connection of a finished exchange when it is older than `refresh`.
pub fn retire_if_old(connected: Option<&Connected>, refresh: Duration) {
    let Some(connected) = connected else {
        return;
    };
    let mut extras = Extensions::new();
    connected.get_extras(&mut extras);
    if extras
        .get::<Born>()
        .is_some_and(|born| born.0.elapsed() >= refresh)
    {
        connected.poison();
    }
}
