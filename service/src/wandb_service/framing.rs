//! The W&B service protocol's framing: the byte `W`, a little-endian u32 length,
//! then that many bytes of one encoded message, in both directions.

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The first byte of every frame.
pub const MAGIC: u8 = b'W';
/// Magic byte and length.
pub const HEADER_LEN: usize = 5;

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

/// Reads frames from a byte stream, buffering what arrived beyond the current one
/// (one read may bring many small frames).
pub struct FrameReader<R> {
    inner: R,
    buf: BytesMut,
    limit: usize,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(inner: R, limit: usize) -> Self {
        FrameReader {
            inner,
            buf: BytesMut::with_capacity(64 * 1024),
            limit,
        }
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
            self.buf.reserve(HEADER_LEN + len - self.buf.len());
            return Ok(None);
        }
        self.buf.advance(HEADER_LEN);
        Ok(Some(self.buf.split_to(len)))
    }

    /// The next frame's payload; None at a clean end of the stream.
    pub async fn next(&mut self) -> Result<Option<BytesMut>, FrameError> {
        loop {
            if let Some(frame) = self.parse()? {
                return Ok(Some(frame));
            }
            if self.inner.read_buf(&mut self.buf).await? == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(FrameError::Truncated)
                };
            }
        }
    }
}

/// Appends one frame holding `payload` to `out`.
pub fn encode(payload: &[u8], out: &mut Vec<u8>) {
    out.push(MAGIC);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Writes already encoded frames and flushes.
pub async fn write_all(
    writer: &mut (impl AsyncWrite + Unpin),
    bytes: &[u8],
) -> std::io::Result<()> {
    writer.write_all(bytes).await?;
    writer.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_split_anywhere_are_reassembled() {
        let mut wire = Vec::new();
        encode(b"hello", &mut wire);
        encode(b"", &mut wire);
        encode(&[7u8; 300], &mut wire);
        // A reader that gets the bytes in 3-byte pieces.
        let (mut tx, rx) = tokio::io::duplex(3);
        let feed = tokio::spawn(async move {
            for chunk in wire.chunks(3) {
                tx.write_all(chunk).await.unwrap();
            }
        });
        let mut r = FrameReader::new(rx, 1024);
        assert_eq!(&r.next().await.unwrap().unwrap()[..], b"hello");
        assert_eq!(r.next().await.unwrap().unwrap().len(), 0);
        assert_eq!(r.next().await.unwrap().unwrap().len(), 300);
        feed.await.unwrap();
        assert!(r.next().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn bad_magic_oversize_and_truncation_are_errors() {
        let mut r = FrameReader::new(&b"X\x00\x00\x00\x00"[..], 1024);
        assert!(matches!(r.next().await, Err(FrameError::BadMagic(b'X'))));
        let mut r = FrameReader::new(&b"W\xff\xff\x00\x00"[..], 1024);
        assert!(matches!(r.next().await, Err(FrameError::TooLarge { .. })));
        let mut r = FrameReader::new(&b"W\x05\x00\x00\x00ab"[..], 1024);
        assert!(matches!(r.next().await, Err(FrameError::Truncated)));
    }
}
