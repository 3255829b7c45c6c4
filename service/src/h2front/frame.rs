//! HTTP/2 frame headers (RFC 7540 §4.1) and the HEADERS payload layout (§6.2):
//! reading what the client sent, writing the re-encoded header block back out.

use std::io;

use super::malformed;

/// Bytes in a frame header: length (24 bits), type, flags, stream id (31 bits).
pub(super) const HEADER_LEN: usize = 9;

/// Largest payload written: SETTINGS_MAX_FRAME_SIZE's initial value, which every
/// peer must accept whatever it advertises (RFC 7540 §6.5.2), so splitting at it
/// is always legal.
pub(super) const MAX_PAYLOAD: usize = 16_384;

/// Frame types the front treats specially (RFC 7540 §6).
pub(super) const HEADERS: u8 = 0x1;
pub(super) const PUSH_PROMISE: u8 = 0x5;
pub(super) const CONTINUATION: u8 = 0x9;

/// HEADERS and CONTINUATION flags (RFC 7540 §6.2, §6.10).
pub(super) const END_STREAM: u8 = 0x1;
pub(super) const END_HEADERS: u8 = 0x4;
pub(super) const PADDED: u8 = 0x8;
pub(super) const PRIORITY: u8 = 0x20;

/// Bytes of the PRIORITY fields in a HEADERS payload: E bit + stream dependency
/// (32 bits) and weight (8 bits).
pub(super) const PRIORITY_LEN: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FrameHeader {
    /// Payload length in bytes.
    pub(super) len: usize,
    pub(super) kind: u8,
    pub(super) flags: u8,
    /// Stream id with the reserved bit cleared.
    pub(super) stream: u32,
}

impl FrameHeader {
    /// Reads a frame header from the start of `src`; `None` until 9 bytes are there.
    pub(super) fn parse(src: &[u8]) -> Option<Self> {
        let head: &[u8; HEADER_LEN] = src.get(..HEADER_LEN)?.try_into().ok()?;
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]);
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        Some(FrameHeader {
            len: len as usize,
            kind: head[3],
            flags: head[4],
            stream,
        })
    }

    /// Appends the 9 header bytes to `out`. `len` must fit in 24 bits.
    pub(super) fn write(&self, out: &mut Vec<u8>) {
        debug_assert!(self.len < 1 << 24);
        out.extend_from_slice(&(self.len as u32).to_be_bytes()[1..]);
        out.push(self.kind);
        out.push(self.flags);
        out.extend_from_slice(&(self.stream & 0x7fff_ffff).to_be_bytes());
    }
}

/// The parts of a HEADERS payload the front keeps: padding is dropped.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct HeadersPayload<'a> {
    /// The PRIORITY fields, when the PRIORITY flag is set.
    pub(super) priority: Option<[u8; PRIORITY_LEN]>,
    /// The header block fragment.
    pub(super) fragment: &'a [u8],
}

/// Splits a HEADERS payload by its `flags`: optional pad length, optional PRIORITY
/// fields, fragment, padding. Padding that does not fit is a protocol error.
pub(super) fn parse_headers(flags: u8, payload: &[u8]) -> io::Result<HeadersPayload<'_>> {
    let mut rest = payload;
    let mut padding = 0;
    if flags & PADDED != 0 {
        let (&pad, tail) = rest
            .split_first()
            .ok_or_else(|| malformed("PADDED HEADERS frame without a pad length"))?;
        padding = usize::from(pad);
        rest = tail;
    }
    let mut priority = None;
    if flags & PRIORITY != 0 {
        if rest.len() < PRIORITY_LEN {
            return Err(malformed("HEADERS frame too short for its PRIORITY fields"));
        }
        let (fields, tail) = rest.split_at(PRIORITY_LEN);
        priority = fields.try_into().ok();
        rest = tail;
    }
    if padding > rest.len() {
        return Err(malformed("HEADERS frame padding longer than its payload"));
    }
    Ok(HeadersPayload {
        priority,
        fragment: &rest[..rest.len() - padding],
    })
}

/// Writes a whole header block as one HEADERS frame followed by as many
/// CONTINUATION frames as it takes, no payload over [`MAX_PAYLOAD`]. The HEADERS
/// frame carries `end_stream` and `priority`; the last frame carries END_HEADERS.
pub(super) fn write_block(
    stream: u32,
    end_stream: bool,
    priority: Option<[u8; PRIORITY_LEN]>,
    block: &[u8],
    out: &mut Vec<u8>,
) {
    let prefix = if priority.is_some() { PRIORITY_LEN } else { 0 };
    let first_len = block.len().min(MAX_PAYLOAD - prefix);
    let (first, mut rest) = block.split_at(first_len);
    let mut flags = if end_stream { END_STREAM } else { 0 };
    if priority.is_some() {
        flags |= PRIORITY;
    }
    if rest.is_empty() {
        flags |= END_HEADERS;
    }
    let len = prefix + first.len();
    FrameHeader {
        len,
        kind: HEADERS,
        flags,
        stream,
    }
    .write(out);
    if let Some(fields) = priority {
        out.extend_from_slice(&fields);
    }
    out.extend_from_slice(first);
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(rest.len().min(MAX_PAYLOAD));
        let flags = if tail.is_empty() { END_HEADERS } else { 0 };
        let len = chunk.len();
        FrameHeader {
            len,
            kind: CONTINUATION,
            flags,
            stream,
        }
        .write(out);
        out.extend_from_slice(chunk);
        rest = tail;
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::frames;
    use super::*;

    #[test]
    fn header_round_trips_and_drops_the_reserved_bit() {
        let bytes = [0x01, 0x02, 0x03, 0x09, 0x04, 0xff, 0xff, 0xff, 0xff];
        let head = FrameHeader::parse(&bytes).unwrap();
        let want = FrameHeader {
            len: 0x010203,
            kind: CONTINUATION,
            flags: END_HEADERS,
            stream: 0x7fff_ffff,
        };
        assert_eq!(head, want);
        let mut out = Vec::new();
        head.write(&mut out);
        assert_eq!(out, [0x01, 0x02, 0x03, 0x09, 0x04, 0x7f, 0xff, 0xff, 0xff]);
    }

    #[test]
    fn header_needs_nine_bytes() {
        assert_eq!(FrameHeader::parse(&[0; 8]), None);
        assert!(FrameHeader::parse(&[0; 9]).is_some());
    }

    #[test]
    fn headers_payload_drops_padding_and_keeps_priority() {
        let payload = [3, 0x80, 0, 0, 1, 15, b'a', b'b', 0, 0, 0];
        let parsed = parse_headers(PADDED | PRIORITY, &payload).unwrap();
        assert_eq!(parsed.priority, Some([0x80, 0, 0, 1, 15]));
        assert_eq!(parsed.fragment, b"ab");
        let plain = parse_headers(END_HEADERS, b"ab").unwrap();
        assert_eq!(
            plain,
            HeadersPayload {
                priority: None,
                fragment: b"ab"
            }
        );
    }

    #[test]
    fn headers_payload_that_does_not_fit_its_flags_is_refused() {
        assert!(parse_headers(PADDED, &[]).is_err());
        assert!(parse_headers(PADDED, &[2, b'a']).is_err());
        assert!(parse_headers(PRIORITY, &[0, 0, 0, 1]).is_err());
        assert!(parse_headers(PADDED | PRIORITY, &[1, 0, 0, 0, 0, 16]).is_err());
        // Padding that exactly fills the payload leaves an empty fragment.
        let parsed = parse_headers(PADDED, &[2, 0, 0]).unwrap();
        assert_eq!(parsed.fragment, b"");
    }

    #[test]
    fn small_block_is_one_headers_frame() {
        let mut out = Vec::new();
        write_block(3, true, None, b"abc", &mut out);
        let frames = frames(&out);
        assert_eq!(frames.len(), 1);
        let want = FrameHeader {
            len: 3,
            kind: HEADERS,
            flags: END_STREAM | END_HEADERS,
            stream: 3,
        };
        assert_eq!(frames[0], (want, b"abc".to_vec()));
    }

    #[test]
    fn empty_block_is_one_empty_headers_frame() {
        let mut out = Vec::new();
        write_block(1, false, None, b"", &mut out);
        let want = FrameHeader {
            len: 0,
            kind: HEADERS,
            flags: END_HEADERS,
            stream: 1,
        };
        assert_eq!(frames(&out), [(want, Vec::new())]);
    }

    #[test]
    fn large_block_splits_into_continuations_of_at_most_16384() {
        let block: Vec<u8> = (0..40_000u32).map(|i| i as u8).collect();
        let priority = [0, 0, 0, 1, 200];
        let mut out = Vec::new();
        write_block(5, true, Some(priority), &block, &mut out);
        let frames = frames(&out);
        let kinds: Vec<(u8, u8, usize)> = frames
            .iter()
            .map(|(h, _)| (h.kind, h.flags, h.len))
            .collect();
        let want = [
            (HEADERS, END_STREAM | PRIORITY, MAX_PAYLOAD),
            (CONTINUATION, 0, MAX_PAYLOAD),
            (
                CONTINUATION,
                END_HEADERS,
                40_000 + PRIORITY_LEN - 2 * MAX_PAYLOAD,
            ),
        ];
        assert_eq!(kinds, want);
        assert!(frames.iter().all(|(h, _)| h.stream == 5));
        assert_eq!(frames[0].1[..PRIORITY_LEN], priority);
        let joined: Vec<u8> = frames
            .iter()
            .flat_map(|(_, p)| p.clone())
            .skip(PRIORITY_LEN)
            .collect();
        assert_eq!(joined, block);
    }
}
