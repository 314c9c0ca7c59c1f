//! The first-head flags: what a raw HTTP/1 request head shows that the parser accepts or
//! hides, and the gateway refuses (SPEC §3 step 1). They are read off the bytes of the
//! connection's first head only (see the module doc of [`http_head`](super)); the pipeline
//! refuses a request that carries any.

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
}
