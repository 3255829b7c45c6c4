//! The client's bytes, frame by frame, with no I/O: the preface and every frame
//! pass through as they are, except header blocks, which are decoded, given
//! `:authority: localhost`, and written out again without the dynamic table.

use std::io;

use super::frame::{self, FrameHeader, PRIORITY_LEN};
use super::frame::{CONTINUATION, END_HEADERS, END_STREAM, HEADERS, HEADER_LEN, PUSH_PROMISE};
use super::hpack::{self, Decoder};
use super::{malformed, MAX_HEADER_BYTES};

/// The client connection preface (RFC 7540 §3.5).
pub(super) const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

const AUTHORITY: &[u8] = b":authority";

/// What every `:authority` becomes: a valid authority that says nothing.
pub(super) const LOCALHOST: &[u8] = b"localhost";

#[derive(Debug)]
enum Stage {
    /// The first `matched` bytes of the preface have been passed on.
    Preface { matched: usize },
    /// At the start of a frame.
    FrameStart,
    /// `left` bytes of a passed-through frame's payload are still to come.
    Passthrough { left: usize },
    /// The client did not open with the HTTP/2 preface: everything passes as it
    /// is, and the server answers the client as it would without the front.
    Transparent,
}

/// A header block collected from a HEADERS frame and its CONTINUATION frames.
#[derive(Debug)]
struct Block {
    stream: u32,
    end_stream: bool,
    priority: Option<[u8; PRIORITY_LEN]>,
    /// The fragments so far, joined, padding removed.
    fragments: Vec<u8>,
}

#[derive(Debug)]
pub(super) struct Rewriter {
    stage: Stage,
    /// A header block still waiting for its END_HEADERS frame.
    pending: Option<Block>,
    /// Follows the client's HPACK encoder across every header block.
    decoder: Decoder,
}

impl Rewriter {
    pub(super) fn new() -> Self {
        Rewriter {
            stage: Stage::Preface { matched: 0 },
            pending: None,
            decoder: Decoder::new(MAX_HEADER_BYTES),
        }
    }

    /// Consumes bytes from the start of `input`, appending what the server is to
    /// read to `out`, and returns how many it consumed. What it leaves is the
    /// start of a header frame not yet whole: call again with it and more bytes.
    pub(super) fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> io::Result<usize> {
        let mut used = 0;
        loop {
            let rest = &input[used..];
            let n = match self.stage {
                Stage::Preface { matched } => self.preface(matched, rest, out),
                Stage::FrameStart => self.frame(rest, out)?,
                Stage::Passthrough { left } => {
                    let n = left.min(rest.len());
                    out.extend_from_slice(&rest[..n]);
                    self.passed(n);
                    n
                }
                Stage::Transparent => {
                    out.extend_from_slice(rest);
                    rest.len()
                }
            };
            if n == 0 {
                return Ok(used);
            }
            used += n;
        }
    }

    /// How many of the next client bytes pass through without being looked at:
    /// the rest of a passed-through frame, or all of them on a connection that is
    /// not HTTP/2. `None` while the next bytes need reading here.
    pub(super) fn passthrough(&self) -> Option<usize> {
        match self.stage {
            Stage::Passthrough { left } => Some(left),
            Stage::Transparent => Some(usize::MAX),
            Stage::Preface { .. } | Stage::FrameStart => None,
        }
    }

    /// Records `n` bytes (at most [`Self::passthrough`]) passed on by the caller.
    pub(super) fn passed(&mut self, n: usize) {
        if let Stage::Passthrough { left } = self.stage {
            let left = left.saturating_sub(n);
            self.stage = if left == 0 {
                Stage::FrameStart
            } else {
                Stage::Passthrough { left }
            };
        }
    }

    fn preface(&mut self, matched: usize, rest: &[u8], out: &mut Vec<u8>) -> usize {
        let want = &PREFACE[matched..];
        let n = want.len().min(rest.len());
        if rest[..n] != want[..n] {
            self.stage = Stage::Transparent;
            out.extend_from_slice(rest);
            return rest.len();
        }
        out.extend_from_slice(&rest[..n]);
        self.stage = if n == want.len() {
            Stage::FrameStart
        } else {
            Stage::Preface {
                matched: matched + n,
            }
        };
        n
    }

    /// Handles the frame at the start of `rest`: a header frame once it is whole,
    /// any other frame's header at once (its payload then passes through).
    fn frame(&mut self, rest: &[u8], out: &mut Vec<u8>) -> io::Result<usize> {
        let Some(head) = FrameHeader::parse(rest) else {
            return Ok(0);
        };
        if let Some(block) = &self.pending {
            if head.kind != CONTINUATION || head.stream != block.stream {
                return Err(malformed("header block interrupted by another frame"));
            }
        }
        match head.kind {
            HEADERS | CONTINUATION => {}
            PUSH_PROMISE => return Err(malformed("client sent PUSH_PROMISE")),
            _ => {
                out.extend_from_slice(&rest[..HEADER_LEN]);
                self.stage = Stage::Passthrough { left: head.len };
                self.passed(0);
                return Ok(HEADER_LEN);
            }
        }
        if head.len > MAX_HEADER_BYTES {
            return Err(malformed(format!("header frame of {} bytes", head.len)));
        }
        let Some(payload) = rest.get(HEADER_LEN..HEADER_LEN + head.len) else {
            return Ok(0);
        };
        let block = if head.kind == HEADERS {
            start_block(head, payload)?
        } else {
            self.continue_block(payload)?
        };
        if head.flags & END_HEADERS != 0 {
            self.finish_block(block, out)?;
        } else {
            self.pending = Some(block);
        }
        Ok(HEADER_LEN + head.len)
    }

    fn continue_block(&mut self, payload: &[u8]) -> io::Result<Block> {
        let mut block = self
            .pending
            .take()
            .ok_or_else(|| malformed("CONTINUATION frame without a header block"))?;
        if block.fragments.len() + payload.len() > MAX_HEADER_BYTES {
            return Err(malformed(format!(
                "header block over {MAX_HEADER_BYTES} bytes"
            )));
        }
        block.fragments.extend_from_slice(payload);
        Ok(block)
    }

    fn finish_block(&mut self, block: Block, out: &mut Vec<u8>) -> io::Result<()> {
        let mut fields = self.decoder.decode(&block.fragments).map_err(malformed)?;
        for field in &mut fields {
            if field.name == AUTHORITY {
                field.value = LOCALHOST.to_vec();
            }
        }
        let mut encoded = Vec::with_capacity(block.fragments.len());
        hpack::encode(&fields, &mut encoded);
        frame::write_block(
            block.stream,
            block.end_stream,
            block.priority,
            &encoded,
            out,
        );
        Ok(())
    }
}

fn start_block(head: FrameHeader, payload: &[u8]) -> io::Result<Block> {
    if head.stream == 0 {
        return Err(malformed("HEADERS frame on stream 0"));
    }
    let parsed = frame::parse_headers(head.flags, payload)?;
    Ok(Block {
        stream: head.stream,
        end_stream: head.flags & END_STREAM != 0,
        priority: parsed.priority,
        fragments: parsed.fragment.to_vec(),
    })
}

#[cfg(test)]
mod tests;
