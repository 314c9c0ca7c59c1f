use super::*;

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
fn head_end_finds_the_first_empty_line_after_the_request_line() {
    let cases: &[(&[u8], Option<usize>)] = &[
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\nrest", Some(27)),
        (b"GET / HTTP/1.1\nHost: x\n\nrest", Some(24)),
        (b"GET / HTTP/1.1\r\n\r\n", Some(18)),
        // A bare LF ends the head after CRLF lines too, as the parser accepts.
        (b"GET / HTTP/1.1\r\nHost: x\r\n\n", Some(26)),
        (b"GET / HTTP/1.1\r\nHost: x\r\n", None),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r", None),
        (b"GET / HTTP/1.1", None),
        (b"", None),
    ];
    for (bytes, end) in cases {
        assert_eq!(
            head_end(bytes),
            *end,
            "{:?}",
            String::from_utf8_lossy(bytes)
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
