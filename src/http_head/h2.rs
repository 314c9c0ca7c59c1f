//! HTTP/2 framing of the request direction (see the parent module doc): frame headers for
//! timing, and header blocks HPACK-decoded by the `h2` crate's own codec for the raw `:path`.
//!
//! The decoder is a second `h2::Codec` fed only the HEADERS and CONTINUATION frames, created
//! with the connection's first header block; it keeps the HPACK dynamic table in step with
//! hyper's (same implementation, same settings: the server's header table size is never
//! configured, so both use the default 4096 bytes). It costs its buffers, about 30 KiB per HTTP/2 connection.

use super::{Fragment, Progress};

const H2_HEADERS: u8 = 0x1;
const H2_CONTINUATION: u8 = 0x9;
const H2_END_HEADERS: u8 = 0x4;

#[derive(Default)]
pub(super) struct H2 {
    header: [u8; 9],
    have: usize,
    /// Payload bytes of the current frame still to come.
    remaining: u32,
    /// When the current frame's first byte arrived.
    frame_since: u64,
    /// When the header block in progress started (its HEADERS frame's first byte).
    pub(super) block_since: Option<u64>,
    max_header_list: usize,
    /// Decodes header blocks; created with the first one, dropped if it fails.
    decoder: Option<Box<BlockDecoder>>,
    decoder_failed: bool,
}

/// In-memory input of the header block decoder.
#[derive(Default)]
struct Feed(bytes::BytesMut);

impl tokio::io::AsyncRead for Feed {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.0.is_empty() {
            return std::task::Poll::Pending;
        }
        let n = buf.remaining().min(self.0.len());
        let chunk = self.0.split_to(n);
        buf.put_slice(&chunk);
        std::task::Poll::Ready(Ok(()))
    }
}

impl tokio::io::AsyncWrite for Feed {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// The `h2` frame codec over the header-block frames of one connection (see the module doc).
struct BlockDecoder(h2::Codec<Feed, bytes::Bytes>);

impl BlockDecoder {
    fn new(max_header_list: usize) -> BlockDecoder {
        let mut codec = h2::Codec::new(Feed::default());
        codec.set_max_recv_header_list_size(max_header_list);
        BlockDecoder(codec)
    }

    fn push(&mut self, bytes: &[u8]) {
        self.0.get_mut().0.extend_from_slice(bytes);
    }

    /// Decodes the complete frames pushed so far; `Err` once the codec failed.
    fn decode(&mut self, fragments: &mut Vec<Fragment>) -> Result<(), ()> {
        use futures_util::Stream;
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        loop {
            match std::pin::Pin::new(&mut self.0).poll_next(&mut cx) {
                std::task::Poll::Ready(Some(Ok(h2::frame::Frame::Headers(headers)))) => {
                    let (pseudo, _) = headers.into_parts();
                    if let Some((target, _)) =
                        pseudo.path.as_deref().and_then(|p| p.split_once('#'))
                    {
                        fragments.push(Fragment {
                            method: pseudo.method,
                            target: target.to_owned(),
                        });
                    }
                }
                std::task::Poll::Ready(Some(Ok(_))) => {}
                std::task::Poll::Ready(Some(Err(_)) | None) => return Err(()),
                std::task::Poll::Pending => return Ok(()),
            }
        }
    }
}

impl H2 {
    pub(super) fn new(max_header_list: usize) -> H2 {
        H2 {
            max_header_list,
            ..H2::default()
        }
    }

    /// Consumes a prefix of `bytes`; returns the rest.
    pub(super) fn feed<'a>(
        &mut self,
        bytes: &'a [u8],
        now: u64,
        progress: &mut Progress,
    ) -> &'a [u8] {
        if self.have < 9 {
            if self.have == 0 {
                self.frame_since = now;
            }
            let n = (9 - self.have).min(bytes.len());
            self.header[self.have..self.have + n].copy_from_slice(&bytes[..n]);
            self.have += n;
            // The type is the fourth byte: a HEADERS frame starts a block from its first byte.
            if self.have >= 4 && self.header[3] == H2_HEADERS && self.block_since.is_none() {
                self.block_since = Some(self.frame_since);
            }
            if self.have == 9 && self.is_block_frame() {
                let header = self.header;
                self.decode_push(&header);
            }
            if self.have == 9 {
                self.remaining =
                    u32::from_be_bytes([0, self.header[0], self.header[1], self.header[2]]);
                if self.remaining == 0 {
                    self.frame_complete(progress);
                }
            }
            return &bytes[n..];
        }
        let n = bytes.len().min(self.remaining as usize);
        if self.is_block_frame() {
            self.decode_push(&bytes[..n]);
        }
        self.remaining -= n as u32;
        if self.remaining == 0 {
            self.frame_complete(progress);
        }
        &bytes[n..]
    }

    fn is_block_frame(&self) -> bool {
        matches!(self.header[3], H2_HEADERS | H2_CONTINUATION) && !self.decoder_failed
    }

    fn decode_push(&mut self, bytes: &[u8]) {
        let max_header_list = self.max_header_list;
        self.decoder
            .get_or_insert_with(|| Box::new(BlockDecoder::new(max_header_list)))
            .push(bytes);
    }

    fn frame_complete(&mut self, progress: &mut Progress) {
        progress.active = true;
        if self.is_block_frame() {
            if let Some(decoder) = self.decoder.as_mut() {
                if decoder.decode(&mut progress.fragments).is_err() {
                    self.decoder = None;
                    self.decoder_failed = true;
                }
            }
        }
        let (kind, flags) = (self.header[3], self.header[4]);
        if matches!(kind, H2_HEADERS | H2_CONTINUATION)
            && flags & H2_END_HEADERS != 0
            && self.block_since.take().is_some()
        {
            progress.heads += 1;
        }
        self.have = 0;
    }
}
