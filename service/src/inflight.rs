//! Request bodies being received, charged against the memory budget
//! ([`crate::memory`]). tonic's decoder allocates a buffer of each gRPC message's
//! announced length as soon as it reads the message's 5-byte header, and keeps it
//! for the life of the stream; so each body is charged the largest message it
//! has announced, from that header until the body is dropped. A message that
//! does not fit ends its request with RESOURCE_EXHAUSTED before the decoder sees
//! its header.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tonic::codegen::http;
use tower::{Layer, Service};

use crate::memory::{Budget, Charge};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Wraps every request body in a [`Charged`] one.
#[derive(Clone)]
pub struct InflightLayer {
    budget: Arc<Budget>,
}

impl InflightLayer {
    pub fn new(budget: Arc<Budget>) -> Self {
        InflightLayer { budget }
    }
}

impl<S> Layer<S> for InflightLayer {
    type Service = Inflight<S>;

    fn layer(&self, inner: S) -> Inflight<S> {
        Inflight {
            inner,
            budget: self.budget.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Inflight<S> {
    inner: S,
    budget: Arc<Budget>,
}

impl<S, B> Service<http::Request<B>> for Inflight<S>
where
    S: Service<http::Request<Charged<B>>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> S::Future {
        let budget = &self.budget;
        self.inner.call(req.map(|body| Charged {
            inner: body,
            charge: Charge::empty(budget),
            framing: Framing::default(),
        }))
    }
}

/// A request body that charges the largest gRPC message it announced.
pub struct Charged<B> {
    inner: B,
    charge: Charge,
    framing: Framing,
}

impl<B> Body for Charged<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let frame = match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            Some(Ok(frame)) => frame,
            Some(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
            None => return Poll::Ready(None),
        };
        if let Some(data) = frame.data_ref() {
            let need = this.framing.scan(data);
            if need > this.charge.bytes() {
                if let Err(e) = this.charge.grow(need - this.charge.bytes()) {
                    let status = tonic::Status::resource_exhausted(e.to_string());
                    return Poll::Ready(Some(Err(Box::new(status))));
                }
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Where a body is in its gRPC framing: each message is a flag byte, a
/// big-endian u32 length, then that many bytes.
#[derive(Debug, Default)]
struct Framing {
    header: [u8; HEADER],
    /// Bytes of the current header seen.
    have: usize,
    /// Bytes of the current message still to come.
    left: usize,
}

const HEADER: usize = 5;

impl Framing {
    /// Walks `data`; returns the largest message (header included) whose header
    /// ended in it, 0 when none did.
    fn scan(&mut self, mut data: &[u8]) -> usize {
        let mut largest = 0;
        while !data.is_empty() {
            if self.left > 0 {
                let n = self.left.min(data.len());
                self.left -= n;
                data = &data[n..];
                continue;
            }
            let n = (HEADER - self.have).min(data.len());
            self.header[self.have..self.have + n].copy_from_slice(&data[..n]);
            self.have += n;
            data = &data[n..];
            if self.have == HEADER {
                let [_, a, b, c, d] = self.header;
                self.left = u32::from_be_bytes([a, b, c, d]) as usize;
                self.have = 0;
                largest = largest.max(HEADER + self.left);
            }
        }
        largest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(len: u32) -> Vec<u8> {
        let mut m = vec![0];
        m.extend_from_slice(&len.to_be_bytes());
        m.resize(HEADER + len as usize, 7);
        m
    }

    #[test]
    fn headers_are_found_across_any_split() {
        let mut stream = message(10);
        stream.extend(message(300));
        stream.extend(message(0));
        stream.extend(message(20));
        for chunk in [1, 2, 3, 5, 7, 64, 1000] {
            let mut f = Framing::default();
            let largest = stream.chunks(chunk).map(|c| f.scan(c)).max();
            assert_eq!(largest, Some(305), "chunks of {chunk}");
            assert_eq!((f.have, f.left), (0, 0), "chunks of {chunk}");
        }
    }

    #[test]
    fn a_header_is_charged_before_its_message_arrives() {
        let mut f = Framing::default();
        assert_eq!(f.scan(&message(1 << 20)[..HEADER]), HEADER + (1 << 20));
        assert_eq!(f.left, 1 << 20);
    }

    #[tokio::test]
    async fn a_message_past_the_budget_ends_the_body_with_resource_exhausted() {
        use http_body_util::{BodyExt, Full};
        let budget = Budget::new(1000);
        let body = |len| Charged {
            inner: Full::new(Bytes::from(message(len))),
            charge: Charge::empty(&budget),
            framing: Framing::default(),
        };
        let mut small = body(500);
        assert!(small.frame().await.unwrap().is_ok());
        assert_eq!(budget.used(), 505);
        let err = body(600).frame().await.unwrap().unwrap_err();
        let status = err.downcast::<tonic::Status>().unwrap();
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert!(status.message().contains("--memory-budget"), "{status:?}");
        drop(small);
        assert_eq!(budget.used(), 0);
    }
}
