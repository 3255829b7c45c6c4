//! Helpers shared by the front's tests: hex literals, frames, client-side string
//! literals, and the server's view of what the front wrote.

use super::frame::{FrameHeader, CONTINUATION, END_HEADERS, END_STREAM, HEADERS};
use super::frame::{HEADER_LEN, MAX_PAYLOAD, PRIORITY, PRIORITY_LEN};
use super::hpack::{Decoder, Field};
use super::huffman;
use super::rewrite::PREFACE;

/// Bytes from hex digits, whitespace ignored.
pub(super) fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let byte = |pair: &[u8]| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap();
    digits.chunks(2).map(byte).collect()
}

pub(super) fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    FrameHeader {
        len: payload.len(),
        kind,
        flags,
        stream,
    }
    .write(&mut out);
    out.extend_from_slice(payload);
    out
}

/// Every frame in `src` as (header, payload).
pub(super) fn frames(mut src: &[u8]) -> Vec<(FrameHeader, Vec<u8>)> {
    let mut out = Vec::new();
    while let Some(head) = FrameHeader::parse(src) {
        let end = HEADER_LEN + head.len;
        out.push((head, src[HEADER_LEN..end].to_vec()));
        src = &src[end..];
    }
    assert!(src.is_empty(), "trailing partial frame");
    out
}

/// A short string literal as a client's encoder writes it, Huffman-coded or not.
pub(super) fn string(value: &str, huffman: bool) -> Vec<u8> {
    let bytes = if huffman {
        huffman::encode(value.as_bytes())
    } else {
        value.as_bytes().to_vec()
    };
    assert!(bytes.len() < 127, "one-byte length only");
    let flag = if huffman { 0x80 } else { 0x00 };
    [vec![flag | bytes.len() as u8], bytes].concat()
}

/// Fields sent without "never indexed", as (name, value).
pub(super) fn plain(list: &[(&str, &str)]) -> Vec<Field> {
    let field = |&(name, value): &(&str, &str)| Field {
        name: name.into(),
        value: value.into(),
        sensitive: false,
    };
    list.iter().map(field).collect()
}

/// A frame as the server sees it.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Seen {
    /// A header block, joined from its frames and decoded.
    Headers {
        stream: u32,
        end_stream: bool,
        priority: Option<[u8; PRIORITY_LEN]>,
        fields: Vec<Field>,
    },
    /// Any other frame, as it is.
    Frame(FrameHeader, Vec<u8>),
}

/// Reads the front's output as the server does: the preface, then frames. Header
/// blocks must be a HEADERS frame and CONTINUATION frames on its stream, no
/// payload over 16384 and no padding; a fresh decoder (the server's) decodes them
/// and its dynamic table must stay empty.
pub(super) fn server_view(output: &[u8]) -> Vec<Seen> {
    let rest = output
        .strip_prefix(&PREFACE[..])
        .expect("the preface first");
    let mut decoder = Decoder::new(usize::MAX);
    let mut seen = Vec::new();
    let mut frames = frames(rest).into_iter();
    while let Some((head, payload)) = frames.next() {
        assert_ne!(
            head.kind, CONTINUATION,
            "CONTINUATION outside a header block"
        );
        if head.kind != HEADERS {
            seen.push(Seen::Frame(head, payload));
            continue;
        }
        assert!(head.len <= MAX_PAYLOAD);
        assert_eq!(
            head.flags & !(END_STREAM | END_HEADERS | PRIORITY),
            0,
            "HEADERS flags"
        );
        let priority =
            (head.flags & PRIORITY != 0).then(|| payload[..PRIORITY_LEN].try_into().unwrap());
        let skip = if priority.is_some() { PRIORITY_LEN } else { 0 };
        let mut block = payload[skip..].to_vec();
        let mut last = head;
        while last.flags & END_HEADERS == 0 {
            let (next, more) = frames.next().expect("a CONTINUATION frame");
            assert_eq!((next.kind, next.stream), (CONTINUATION, head.stream));
            assert!(next.len <= MAX_PAYLOAD);
            block.extend_from_slice(&more);
            last = next;
        }
        let fields = decoder
            .decode(&block)
            .expect("the server decodes the block");
        assert_eq!(
            decoder.table().dynamic().1,
            0,
            "the server's table stays empty"
        );
        let end_stream = head.flags & END_STREAM != 0;
        seen.push(Seen::Headers {
            stream: head.stream,
            end_stream,
            priority,
            fields,
        });
    }
    seen
}
