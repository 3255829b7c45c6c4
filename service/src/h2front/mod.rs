//! A front for the unix socket's HTTP/2 clients that send the socket path as
//! `:authority`.
//!
//! # Why it exists
//! gRPC clients built on grpc C-core (Python grpcio, Ruby, C++), grpc-java and
//! grpc-swift, dialing a unix socket, send the socket path as the `:authority`
//! pseudo-header: `/tmp/x/runcore.sock`, a percent-encoded form of it, or
//! `unix:/tmp/...`. The server's HTTP/2 layer (h2) parses `:authority` as a URI
//! authority, fails, and resets the stream with PROTOCOL_ERROR before any tonic or
//! tower layer sees the request; h2 has no setting to relax that. So the fix sits
//! below h2: [`H2Front`] wraps each accepted unix-socket connection and rewrites the
//! client's header blocks so that every `:authority` reads `localhost`. TCP
//! connections are not wrapped, and h2 checks their authority as before.
//!
//! # Why it is correct
//! - **Only client header blocks change.** The preface and every other frame
//!   (SETTINGS, DATA, WINDOW_UPDATE, PING, RST_STREAM, GOAWAY, PRIORITY, unknown
//!   types) reach the server byte for byte, and the server-to-client direction is
//!   not touched at all. Flow control counts DATA payloads only (RFC 7540 §6.9),
//!   so header frames changing size moves no window.
//! - **Both HPACK contexts stay in step.** HPACK is stateful: the client's encoder
//!   and its peer's decoder each keep a dynamic table that header blocks update.
//!   The front decodes every header block the client sends, in order, so its table
//!   is the client encoder's (PUSH_PROMISE, the only other frame with a header
//!   block, is never sent by a client, and the front refuses it). What the front
//!   writes uses static-table indexes and literals that are not indexed, and no
//!   table size updates, so the server's dynamic table stays empty and every
//!   index it reads means what the front meant.
//! - **The framing stays legal.** A header block goes out as one HEADERS frame
//!   and CONTINUATION frames on the same stream, back to back (the client's was
//!   too, or the front refuses it, as RFC 7540 §6.10 requires), none with a payload
//!   over 16,384 bytes, the frame size every peer must accept. Padding is dropped
//!   (it carries nothing and counts toward no window); END_STREAM and the PRIORITY
//!   fields are kept.
//! - **The header list is the client's.** Every field keeps its name, value, place
//!   and "never indexed" mark (RFC 7541 §6.2.3); only `:authority`'s value is
//!   replaced. On a unix socket the authority names nothing the server uses.
//! - **Bad input ends the connection, never the process.** A malformed frame or
//!   header block, a header block over 1 MiB (`MAX_HEADER_BYTES`), or a table size
//!   update over 64 KiB is an `InvalidData` read error, which ends the connection
//!   as h2's own COMPRESSION_ERROR or PROTOCOL_ERROR would have. A client that does
//!   not open with the HTTP/2 preface has its bytes passed through untouched, and
//!   the server answers it as it would without the front.
//!
//! # Layout
//! - `rewrite`: the frame-by-frame state machine, without I/O.
//! - `frame`: frame headers, HEADERS payloads, writing a block as frames.
//! - `hpack`: decoding the client's header blocks, encoding the new ones; `table`
//!   (static and dynamic table) and `huffman` (Appendix B) beneath it.

use std::fmt;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use self::rewrite::Rewriter;

mod frame;
mod hpack;
mod huffman;
mod rewrite;
mod table;
#[cfg(test)]
mod testing;

/// Largest header block the front collects, and largest header list (counted as
/// RFC 7540 §6.5.2 counts it) it decodes from one: far above what a gRPC request
/// carries, and the bound on what one connection makes the front buffer.
const MAX_HEADER_BYTES: usize = 1 << 20;

/// Bytes asked of the client per read when the next frame must be looked at.
const READ_CHUNK: usize = 16 * 1024;

/// The error for client bytes that are not valid HTTP/2; it ends the connection.
fn malformed(what: impl fmt::Display) -> io::Error {
    let message = format!("HTTP/2 from the unix-socket client: {what}");
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// A unix-socket connection as the server should read it: client header blocks
/// carry `:authority: localhost`; everything else, and every write, is the inner
/// stream's.
#[derive(Debug)]
pub struct H2Front<S> {
    inner: S,
    rewriter: Rewriter,
    /// Client bytes read but not yet consumed: the start of a header frame.
    input: Vec<u8>,
    /// Bytes for the server; `output[out_pos..]` has not been read yet.
    output: Vec<u8>,
    out_pos: usize,
    /// The client shut its side: reads end once `output` is drained. A partial
    /// frame left in `input` is dropped, as the server would drop it.
    eof: bool,
}

impl<S> H2Front<S> {
    pub fn new(inner: S) -> Self {
        H2Front {
            inner,
            rewriter: Rewriter::new(),
            input: Vec::new(),
            output: Vec::new(),
            out_pos: 0,
            eof: false,
        }
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead + Unpin> H2Front<S> {
    /// Reads more client bytes onto the end of `input`.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let start = self.input.len();
        self.input.resize(start + READ_CHUNK, 0);
        let mut buf = ReadBuf::new(&mut self.input[start..]);
        let polled = Pin::new(&mut self.inner).poll_read(cx, &mut buf);
        let n = buf.filled().len();
        self.input.truncate(start + n);
        ready!(polled)?;
        self.eof = n == 0;
        Poll::Ready(Ok(()))
    }

    /// Reads up to `budget` pass-through bytes straight into the caller's buffer.
    fn poll_direct(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
        budget: usize,
    ) -> Poll<io::Result<()>> {
        let mut direct = ReadBuf::new(buf.initialize_unfilled_to(budget.min(buf.remaining())));
        ready!(Pin::new(&mut self.inner).poll_read(cx, &mut direct))?;
        let n = direct.filled().len();
        buf.advance(n);
        self.rewriter.passed(n);
        self.eof = n == 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for H2Front<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            if this.out_pos < this.output.len() {
                let n = buf.remaining().min(this.output.len() - this.out_pos);
                buf.put_slice(&this.output[this.out_pos..this.out_pos + n]);
                this.out_pos += n;
                return Poll::Ready(Ok(()));
            }
            this.output.clear();
            this.out_pos = 0;
            if !this.input.is_empty() {
                let used = this.rewriter.feed(&this.input, &mut this.output)?;
                this.input.drain(..used);
                if !this.output.is_empty() {
                    continue;
                }
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            if this.input.is_empty() {
                if let Some(budget) = this.rewriter.passthrough() {
                    return this.poll_direct(cx, buf, budget);
                }
            }
            ready!(this.poll_fill(cx))?;
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for H2Front<S> {
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
        bufs: &[IoSlice<'_>],
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
mod tests;
