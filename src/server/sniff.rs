//! Which HTTP a client connection speaks: HTTP/2 when its first 24 bytes are the HTTP/2
//! connection preface (prior knowledge, RFC 9113 §3.4; over TLS, what ALPN `h2` clients send
//! first), HTTP/1 otherwise.
//!
//! Owns the first read of every connection and the stream handed to hyper afterwards, which
//! returns the bytes read here first. It must never drop, reorder or invent a byte: hyper
//! sees exactly what the client sent.
//!
//! Why not hyper-util's `auto` builder, which does the same: its rewind stream returns the
//! sniffed bytes alone from hyper's first read. hyper's HTTP/1 parser then finds a partial
//! head in its 8 KiB read buffer and reserves 8 KiB more, so every connection kept a 16 KiB
//! buffer for its whole life. Here the first read returns the sniffed bytes *and* whatever
//! the socket already holds, so the head arrives in one read and the buffer stays at 8 KiB.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::rt::{Read, ReadBuf, ReadBufCursor, Write};

/// The HTTP/2 connection preface (RFC 9113 §3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The protocol a connection opened with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Version {
    Http1,
    Http2,
}

/// Reads until the bytes either complete the HTTP/2 preface or depart from it (or the client
/// closes), and returns the verdict with a stream that replays those bytes.
pub(super) async fn sniff<I: Read + Unpin>(mut io: I) -> io::Result<(Version, Sniffed<I>)> {
    let mut prefix = [0u8; PREFACE.len()];
    let mut filled = 0;
    let version = loop {
        let read = poll_fn(|cx| {
            let mut buf = ReadBuf::new(&mut prefix[filled..]);
            match Pin::new(&mut io).poll_read(cx, buf.unfilled()) {
                Poll::Ready(Ok(())) => Poll::Ready(Ok(buf.filled().len())),
                Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
                Poll::Pending => Poll::Pending,
            }
        })
        .await?;
        let before = filled;
        filled += read;
        if read == 0 || prefix[before..filled] != PREFACE[before..filled] {
            break Version::Http1;
        }
        if filled == PREFACE.len() {
            break Version::Http2;
        }
    };
    Ok((
        version,
        Sniffed {
            inner: io,
            prefix,
            replayed: 0,
            len: filled,
        },
    ))
}

/// A connection's stream after [`sniff`]: the sniffed bytes come first.
pub(super) struct Sniffed<I> {
    inner: I,
    prefix: [u8; PREFACE.len()],
    /// How many of the sniffed bytes hyper has read.
    replayed: usize,
    /// How many bytes were sniffed.
    len: usize,
}

impl<I: Read + Unpin> Read for Sniffed<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.replayed == this.len {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        let n = buf.remaining().min(this.len - this.replayed);
        buf.put_slice(&this.prefix[this.replayed..this.replayed + n]);
        this.replayed += n;
        if buf.remaining() > 0 {
            // The rest of the head, when the socket already has it (see the module doc). The
            // sniffed bytes are delivered either way: an error or end of stream shows again
            // on hyper's next read, and a pending read only leaves a wake-up registered.
            let _ = Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        Poll::Ready(Ok(()))
    }
}

impl<I: Write + Unpin> Write for Sniffed<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper_util::rt::TokioIo;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Sniffs what `chunks` deliver (written one by one, in order), then reads the rest
    /// through the returned stream.
    async fn run(chunks: &[&[u8]]) -> (Version, Vec<u8>, usize) {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let chunks: Vec<Vec<u8>> = chunks.iter().map(|c| c.to_vec()).collect();
        let writer = tokio::spawn(async move {
            let mut client = client;
            for chunk in chunks {
                client.write_all(&chunk).await.unwrap();
                tokio::task::yield_now().await;
            }
            client.shutdown().await.unwrap();
        });
        let (version, sniffed) = sniff(TokioIo::new(server)).await.unwrap();
        // The first read after sniffing: how much one read of a roomy buffer returns.
        let mut sniffed = TokioIo::new(sniffed);
        let mut first = vec![0u8; 8192];
        let first_len = sniffed.read(&mut first).await.unwrap();
        let mut all = first[..first_len].to_vec();
        sniffed.read_to_end(&mut all).await.unwrap();
        writer.await.unwrap();
        (version, all, first_len)
    }

    #[tokio::test]
    async fn versions_and_bytes_as_sent() {
        let head: &[u8] = b"GET /orders HTTP/1.1\r\nhost: a\r\n\r\n";
        let h2: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";
        // (what the client writes, read by read; the verdict; the bytes hyper then reads)
        type Case<'a> = (&'a [&'a [u8]], Version, &'a [u8]);
        let cases: &[Case] = &[
            (&[head], Version::Http1, head),
            // Departs from the preface at its first byte, or only at the last.
            (
                &[b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\r"],
                Version::Http1,
                b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\r",
            ),
            (&[h2], Version::Http2, h2),
            // The preface split across reads.
            (
                &[b"PRI * HT", b"TP/2.0\r\n\r\nSM\r\n\r\n"],
                Version::Http2,
                PREFACE,
            ),
            // Shorter than the preface, then the client closes.
            (&[b"PRI"], Version::Http1, b"PRI"),
            (&[b""], Version::Http1, b""),
        ];
        for (chunks, version, bytes) in cases {
            let (got, all, _) = run(chunks).await;
            assert_eq!(got, *version, "{chunks:?}");
            assert_eq!(all, *bytes, "{chunks:?}");
        }
    }

    #[tokio::test]
    async fn the_first_read_carries_the_whole_head() {
        // hyper-util's rewind returned 24 bytes here; the head in one read is the point.
        let head = b"GET /orders/42 HTTP/1.1\r\nhost: gateway\r\nauthorization: Bearer abc\r\n\r\n";
        let (version, all, first_len) = run(&[head]).await;
        assert_eq!(version, Version::Http1);
        assert_eq!(all, head);
        assert_eq!(first_len, head.len());
    }
}
