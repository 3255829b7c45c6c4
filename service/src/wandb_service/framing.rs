//! The W&B service protocol's framing: the byte `W`, a little-endian u32 length,
//! then that many bytes of one encoded message, in both directions.

use std::io::{ErrorKind, Read, Write};

use bytes::{Buf, BytesMut};

/// The first byte of every frame.
pub const MAGIC: u8 = b'W';
/// Magic byte and length.
pub const HEADER_LEN: usize = 5;
/// Bytes asked of the socket per read: many small frames at once, and a pause's
/// worth of wide rows (a unix socket queues at most the sender's buffer, 208 KiB
/// by default, counting each write's overhead, so one read usually takes all).
const READ_CHUNK: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("the peer does not speak the W&B service protocol (a frame began with byte {0:#04x}, not 'W')")]
    BadMagic(u8),
    #[error("a frame of {len} bytes is over the limit of {limit} bytes (--max-message-bytes)")]
    TooLarge { len: usize, limit: usize },
    #[error("the connection closed in the middle of a frame")]
    Truncated,
    #[error("reading from the SDK: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads frames from a blocking byte stream, buffering what arrived beyond the
/// frames returned (one read may bring many small frames, and half of the next).
pub struct FrameReader<R> {
    inner: R,
    buf: BytesMut,
    /// What one read fills, before it joins `buf`.
    scratch: Box<[u8]>,
    limit: usize,
    /// The last read filled `scratch`: more may be waiting in the socket.
    full: bool,
}

impl<R: Read> FrameReader<R> {
    pub fn new(inner: R, limit: usize) -> Self {
        FrameReader {
            inner,
            buf: BytesMut::with_capacity(READ_CHUNK),
            scratch: vec![0; READ_CHUNK].into_boxed_slice(),
            limit,
            full: false,
        }
    }

    /// Whether the last read took all it asked for, so the stream likely holds
    /// more already.
    pub fn more_waiting(&self) -> bool {
        self.full
    }

    /// The payload of a whole frame already in the buffer, if there is one.
    fn parse(&mut self) -> Result<Option<BytesMut>, FrameError> {
        if self.buf.len() < HEADER_LEN {
            return Ok(None);
        }
        if self.buf[0] != MAGIC {
            return Err(FrameError::BadMagic(self.buf[0]));
        }
        let len = u32::from_le_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if len > self.limit {
            return Err(FrameError::TooLarge {
                len,
                limit: self.limit,
            });
        }
        if self.buf.len() < HEADER_LEN + len {
            return Ok(None);
        }
        self.buf.advance(HEADER_LEN);
        Ok(Some(self.buf.split_to(len)))
    }

    /// Blocks until at least one whole frame is in, then returns every whole frame
    /// buffered; an empty list at a clean end of the stream.
    pub fn next_batch(&mut self) -> Result<Vec<BytesMut>, FrameError> {
        let batch = self.gather(|r, buf| r.read(buf))?;
        Ok(batch.expect("a blocking read returns something"))
    }

    /// Every whole frame buffered, and whatever the stream holds now read first;
    /// None when no whole frame is in and the stream has nothing more now.
    pub fn next_batch_now(&mut self) -> Result<Option<Vec<BytesMut>>, FrameError>
    where
        R: ReadNow,
    {
        self.gather(|r, buf| r.read_now(buf))
    }

    /// Reads with `read` until at least one whole frame is in (None if `read`
    /// would block first), then returns every whole frame buffered.
    fn gather(
        &mut self,
        mut read: impl FnMut(&mut R, &mut [u8]) -> std::io::Result<usize>,
    ) -> Result<Option<Vec<BytesMut>>, FrameError> {
        let mut frames = Vec::new();
        loop {
            while let Some(frame) = self.parse()? {
                frames.push(frame);
            }
            if !frames.is_empty() {
                return Ok(Some(frames));
            }
            let n = loop {
                match read(&mut self.inner, &mut self.scratch) {
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(None),
                    r => break r?,
                }
            };
            self.buf.extend_from_slice(&self.scratch[..n]);
            self.full = n == self.scratch.len();
            if n == 0 {
                return if self.buf.is_empty() {
                    Ok(Some(frames))
                } else {
                    Err(FrameError::Truncated)
                };
            }
        }
    }
}

/// A byte stream that can also be read without waiting.
pub trait ReadNow: Read {
    /// Reads what the stream holds now; `WouldBlock` when it holds nothing.
    fn read_now(&mut self, buf: &mut [u8]) -> std::io::Result<usize>;
}

/// Bytes in memory are all there now.
impl ReadNow for &[u8] {
    fn read_now(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.read(buf)
    }
}

/// Whether a `ServerRequest` is anything but a record the SDK does not wait on:
/// a `record_publish` (field 1) without a `request_id` (field 10). Reads only the
/// top-level tags; a payload it cannot walk counts as waiting.
pub fn awaits_reply(payload: &[u8]) -> bool {
    let mut rest = payload;
    let mut publish = false;
    while !rest.is_empty() {
        let Some((tag, after)) = varint(rest) else {
            return true;
        };
        let (field, wire) = (tag >> 3, tag & 7);
        let Some(len) = (wire == 2).then(|| varint(after)).flatten() else {
            return true;
        };
        let (len, after) = (len.0 as usize, len.1);
        if after.len() < len || (field == 10 && len > 0) {
            return true;
        }
        publish |= field == 1;
        rest = &after[len..];
    }
    !publish
}

/// A protobuf varint and what follows it.
fn varint(b: &[u8]) -> Option<(u64, &[u8])> {
    let mut v = 0u64;
    for (i, byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, &b[i + 1..]));
        }
    }
    None
}

/// Appends one frame holding `payload` to `out`.
pub fn encode(payload: &[u8], out: &mut Vec<u8>) {
    out.push(MAGIC);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Writes already encoded frames and flushes.
pub fn write_all(writer: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    writer.write_all(bytes)?;
    writer.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gives its bytes `n` at a time, as a socket may.
    struct Pieces<'a>(&'a [u8], usize);

    impl Read for Pieces<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.len().min(self.1).min(out.len());
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    /// Its pieces, then nothing for now (but not the end).
    struct Quiet<'a>(Pieces<'a>);

    impl Read for Quiet<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            self.0.read(out)
        }
    }

    impl ReadNow for Quiet<'_> {
        fn read_now(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            match self.0.read(out)? {
                0 => Err(ErrorKind::WouldBlock.into()),
                n => Ok(n),
            }
        }
    }

    #[test]
    fn reading_now_returns_nothing_rather_than_wait() {
        let mut wire = Vec::new();
        encode(b"one", &mut wire);
        encode(b"two", &mut wire);
        // Two whole frames and half of a third, three bytes at a time.
        wire.extend_from_slice(b"W\x09\x00\x00\x00half");
        let mut r = FrameReader::new(Quiet(Pieces(&wire, 3)), 1024);
        let got = r.next_batch_now().unwrap().expect("a whole frame");
        assert_eq!(&got[0][..], b"one");
        let got = r.next_batch_now().unwrap().expect("the second");
        assert_eq!(&got[0][..], b"two");
        assert!(
            r.next_batch_now().unwrap().is_none(),
            "half a frame is not one"
        );
        assert!(r.next_batch_now().unwrap().is_none());
    }

    #[test]
    fn frames_split_anywhere_are_reassembled() {
        let mut wire = Vec::new();
        encode(b"hello", &mut wire);
        encode(b"", &mut wire);
        encode(&[7u8; 300], &mut wire);
        let mut r = FrameReader::new(Pieces(&wire, 3), 1024);
        let mut got = Vec::new();
        loop {
            let batch = r.next_batch().unwrap();
            if batch.is_empty() {
                break;
            }
            got.extend(batch);
        }
        let lens: Vec<usize> = got.iter().map(|f| f.len()).collect();
        assert_eq!(lens, [5, 0, 300]);
        assert_eq!(&got[0][..], b"hello");
    }

    #[test]
    fn one_read_returns_every_whole_frame_it_brought() {
        let mut wire = Vec::new();
        for i in 0..10u8 {
            encode(&[i; 20], &mut wire);
        }
        let mut r = FrameReader::new(Pieces(&wire, wire.len() - 7), 1024);
        assert_eq!(r.next_batch().unwrap().len(), 9);
        assert!(!r.more_waiting(), "a read shorter than the buffer");
        assert_eq!(r.next_batch().unwrap()[0][..], [9u8; 20]);
        assert!(r.next_batch().unwrap().is_empty());
    }

    #[test]
    fn a_read_that_fills_the_buffer_says_more_is_waiting() {
        let mut wire = Vec::new();
        while wire.len() <= READ_CHUNK {
            encode(&[1u8; 1000], &mut wire);
        }
        let mut r = FrameReader::new(Pieces(&wire, usize::MAX), 4096);
        let first = r.next_batch().unwrap().len();
        assert!(r.more_waiting());
        let rest = r.next_batch().unwrap().len();
        assert!(!r.more_waiting());
        assert_eq!(first + rest, wire.len() / 1005);
    }

    #[test]
    fn only_a_publish_without_request_id_awaits_nothing() {
        use crate::proto::wandb as wb;
        use prost::Message;
        let request = |kind, id: &str| {
            wb::ServerRequest {
                request_id: id.into(),
                kind: Some(kind),
            }
            .encode_to_vec()
        };
        let record = || wb::Record::default();
        let publish = wb::server_request::Kind::RecordPublish(record());
        assert!(!awaits_reply(&request(publish.clone(), "")));
        assert!(awaits_reply(&request(publish, "q1")));
        let ask = wb::server_request::Kind::RecordCommunicate(record());
        assert!(awaits_reply(&request(ask, "q2")));
        assert!(awaits_reply(&[0x0a, 0x05, 0x01]), "a field past the end");
        assert!(awaits_reply(&[]), "no record at all");
    }

    #[test]
    fn bad_magic_oversize_and_truncation_are_errors() {
        let mut r = FrameReader::new(&b"X\x00\x00\x00\x00"[..], 1024);
        assert!(matches!(r.next_batch(), Err(FrameError::BadMagic(b'X'))));
        let mut r = FrameReader::new(&b"W\xff\xff\x00\x00"[..], 1024);
        assert!(matches!(r.next_batch(), Err(FrameError::TooLarge { .. })));
        let mut r = FrameReader::new(&b"W\x05\x00\x00\x00ab"[..], 1024);
        assert!(matches!(r.next_batch(), Err(FrameError::Truncated)));
    }
}
