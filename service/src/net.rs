//! Connections the server accepts: an accept loop that backs off when the
//! process is out of file descriptors (instead of spinning on EMFILE), and an
//! idle timeout that closes a connection the client stopped talking on.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use tokio_stream::Stream;
use tonic::transport::server::Connected;

/// First wait after a failed accept; it doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// An accept stream that waits after each error, doubling the wait while they
/// last: at the file-descriptor limit the server sleeps instead of spinning, and
/// goes on accepting once descriptors are free again.
pub struct Backoff<S> {
    inner: S,
    wait: Option<Pin<Box<Sleep>>>,
    delay: Duration,
}

impl<S> Backoff<S> {
    pub fn new(inner: S) -> Self {
        Backoff {
            inner,
            wait: None,
            delay: MIN_BACKOFF,
        }
    }
}

/// Errors that say the process or the system is out of something.
fn out_of_resources(e: &io::Error) -> bool {
    const EMFILE: i32 = 24;
    const ENFILE: i32 = 23;
    const ENOBUFS: i32 = 105;
    const ENOMEM: i32 = 12;
    matches!(e.raw_os_error(), Some(EMFILE | ENFILE | ENOBUFS | ENOMEM))
}

impl<S, T> Stream for Backoff<S>
where
    S: Stream<Item = io::Result<T>> + Unpin,
{
    type Item = io::Result<T>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(wait) = self.wait.as_mut() {
                ready!(wait.as_mut().poll(cx));
                self.wait = None;
            }
            match ready!(Pin::new(&mut self.inner).poll_next(cx)) {
                Some(Ok(conn)) => {
                    self.delay = MIN_BACKOFF;
                    return Poll::Ready(Some(Ok(conn)));
                }
                Some(Err(e)) => {
                    if out_of_resources(&e) {
                        tracing::warn!(
                            "cannot accept a connection: {e}; retrying in {:?} (raise the open-files limit, or close idle clients)",
                            self.delay
                        );
                    } else {
                        tracing::debug!("accepting a connection failed: {e}");
                    }
                    let delay = self.delay;
                    self.wait = Some(Box::pin(tokio::time::sleep(delay)));
                    self.delay = (delay * 2).min(MAX_BACKOFF);
                }
                None => return Poll::Ready(None),
            }
        }
    }
}

/// A connection closed when nothing has been read from it for `timeout`. HTTP/2
/// keepalive pings (sent every third of the timeout) keep a live client's
/// connection busy; a client that is gone, or never spoke, is let go.
pub struct Idle<T> {
    inner: T,
    timeout: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl<T> Idle<T> {
    pub fn new(inner: T, timeout: Duration) -> Self {
        Idle {
            inner,
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Idle<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    let next = Instant::now() + self.timeout;
                    self.deadline.as_mut().reset(next);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection idle past --idle-timeout",
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Idle<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl<T: Connected> Connected for Idle<T> {
    type ConnectInfo = T::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tokio_stream::StreamExt;

    /// An accept stream at the descriptor limit: every accept fails.
    struct Exhausted(Arc<AtomicUsize>);

    impl Stream for Exhausted {
        type Item = io::Result<()>;
        fn poll_next(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Poll::Ready(Some(Err(io::Error::from_raw_os_error(24))))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn at_the_descriptor_limit_accepts_back_off() {
        let tries = Arc::new(AtomicUsize::new(0));
        let mut accept = Backoff::new(Exhausted(tries.clone()));
        let ten_seconds = tokio::time::timeout(Duration::from_secs(10), accept.next()).await;
        assert!(ten_seconds.is_err(), "an error was passed on");
        // 10 ms doubling to 1 s: about 16 tries in 10 s, not millions.
        let n = tries.load(Ordering::Relaxed);
        assert!((5..30).contains(&n), "{n} accepts in 10 s");
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_times_out_and_a_talking_one_does_not() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (client, server) = tokio::io::duplex(64);
        let mut idle = Idle::new(server, Duration::from_secs(5));
        let mut client = client;
        let mut buf = [0u8; 8];
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_secs(4)).await;
            client.write_all(b"x").await.unwrap();
            assert_eq!(idle.read(&mut buf).await.unwrap(), 1);
        }
        let e = idle.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }
}
