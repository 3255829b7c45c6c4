//! A connection's socket, read and written by two threads of its own, outside
//! tokio's reactor.
//!
//! The SDK sends one small frame per `run.log` call. Registered with the reactor,
//! the socket woke the runtime once per frame (epoll reports every arrival), and
//! those wake-ups were most of what a logged row cost the sidecar. A blocking
//! reader instead reads whatever has piled up: after a read that brought only
//! records the SDK waits on none of (rows, in a burst of `run.log` calls) it waits
//! [`READ_PAUSE`] before it reads again, so one wake-up brings many frames. The
//! rows among them it packs itself and sends to their runs when due (see
//! [`super::rows`]), so a burst of `run.log` calls wakes the runtime only to log
//! them; every other frame goes to the connection's task. Replies go out through
//! a blocking writer fed by a channel. Two threads per SDK process (one
//! connection each) is cheap.

use std::io;
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use bytes::BytesMut;
use prost::Message;
use tokio::sync::{mpsc, oneshot};

use super::framing::{self, FrameError, FrameReader, ReadNow};
use super::rows::RowIntake;
use crate::proto::wandb as wb;

/// After a read that brought only records the SDK waits on none of (a burst of
/// `run.log` calls), how long the reader lets frames pile up in the socket before
/// it reads again: the rows of one read go to their run together, so this is how
/// long a row may wait for others. A question the SDK asks in such a burst is
/// answered at most this much later; anything else is read as it comes.
pub const READ_PAUSE: Duration = Duration::from_millis(20);
/// Batches of frames read ahead of the connection's task before the reader waits
/// (and the SDK, once the socket's buffer is full, with it).
const READ_AHEAD: usize = 16;

/// A blocking stream socket the two threads can share.
pub trait Socket: ReadNow + io::Write + Send + Sized + 'static {
    fn try_clone(&self) -> io::Result<Self>;
    /// Blocking mode (an accepted socket comes out of tokio non-blocking).
    fn set_blocking(&self) -> io::Result<()>;
    /// Ends both directions: a blocked read returns, later writes fail.
    fn close(&self);
}

impl Socket for UnixStream {
    fn try_clone(&self) -> io::Result<Self> {
        UnixStream::try_clone(self)
    }
    fn set_blocking(&self) -> io::Result<()> {
        self.set_nonblocking(false)
    }
    fn close(&self) {
        let _ = self.shutdown(std::net::Shutdown::Both);
    }
}

impl ReadNow for UnixStream {
    fn read_now(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        recv_now(self, buf)
    }
}

impl ReadNow for TcpStream {
    fn read_now(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        recv_now(self, buf)
    }
}

/// One read of a blocking socket that does not wait (`MSG_DONTWAIT`).
fn recv_now(socket: &impl std::os::fd::AsFd, buf: &mut [u8]) -> io::Result<usize> {
    let flags = rustix::net::RecvFlags::DONTWAIT;
    Ok(rustix::net::recv(socket, buf, flags)?.0)
}

impl Socket for TcpStream {
    fn try_clone(&self) -> io::Result<Self> {
        TcpStream::try_clone(self)
    }
    fn set_blocking(&self) -> io::Result<()> {
        self.set_nonblocking(false)
    }
    fn close(&self) {
        let _ = self.shutdown(std::net::Shutdown::Both);
    }
}

/// What the reader hands the connection's task: the frames of one read it did
/// not take itself (none at the stream's clean end), or why reading stopped.
pub type FrameBatch = Result<Vec<BytesMut>, FrameError>;

/// The connection's side of the two threads.
pub struct SocketThreads<S: Socket> {
    socket: S,
    /// Frames as they are read.
    pub frames: mpsc::Receiver<FrameBatch>,
    /// Replies to write.
    pub replies: mpsc::Sender<wb::ServerResponse>,
    /// Dropped to wake the reader from a pause at the end.
    stop: std_mpsc::Sender<()>,
    written: oneshot::Receiver<()>,
}

impl<S: Socket> SocketThreads<S> {
    /// Starts the reader and the writer of `socket` (blocking mode); the reader
    /// gives `intake` the rows it reads.
    pub fn start(
        socket: S,
        max_frame: usize,
        reply_buffer: usize,
        intake: RowIntake,
    ) -> io::Result<Self> {
        let (frame_tx, frames) = mpsc::channel(READ_AHEAD);
        let (replies, reply_rx) = mpsc::channel(reply_buffer);
        let (stop, stopped) = std_mpsc::channel();
        let (written_tx, written) = oneshot::channel();
        let reader = FrameReader::new(socket.try_clone()?, max_frame);
        std::thread::Builder::new()
            .name("wandb-read".into())
            .spawn(move || read_frames(reader, frame_tx, &stopped, intake))?;
        let out = socket.try_clone()?;
        let writer = std::thread::Builder::new()
            .name("wandb-write".into())
            .spawn(move || {
                write_replies(out, reply_rx);
                let _ = written_tx.send(());
            });
        if let Err(e) = writer {
            socket.close();
            return Err(e);
        }
        Ok(SocketThreads {
            socket,
            frames,
            replies,
            stop,
            written,
        })
    }

    /// Ends the connection: the writer gets up to `drain` to write the replies
    /// queued before (every sender of `replies` must be gone by then, or it waits
    /// the whole `drain`), then the socket closes and the reader ends.
    pub async fn close(self, drain: Duration) {
        let SocketThreads {
            socket,
            frames,
            replies,
            stop,
            written,
            ..
        } = self;
        drop(replies);
        drop(stop);
        if tokio::time::timeout(drain, written).await.is_err() {
            tracing::debug!("W&B connection: the SDK did not take its last replies");
        }
        socket.close();
        drop(frames);
    }
}

/// The reader thread: takes the rows it can, hands every other frame over in
/// batches, until the stream ends, fails, or the connection's task stops listening.
fn read_frames<S: Socket>(
    mut reader: FrameReader<S>,
    out: mpsc::Sender<FrameBatch>,
    stop: &std_mpsc::Receiver<()>,
    mut intake: RowIntake,
) {
    loop {
        // Rows waiting go to their runs before the reader waits for the socket.
        let now = if intake.waiting() {
            reader.next_batch_now().transpose()
        } else {
            None
        };
        let read = now.unwrap_or_else(|| {
            intake.idle();
            reader.next_batch()
        });
        let more = reader.more_waiting();
        let mut frames = match read {
            Ok(frames) if !frames.is_empty() => frames,
            // The end, or a broken stream: the rows read before go first.
            end => {
                intake.idle();
                intake.hand();
                let _ = out.blocking_send(end);
                return;
            }
        };
        // The SDK waits on nothing it sent: more rows are likely on their way.
        // A read that filled its buffer left more to read at once.
        let pause = !more && !frames.iter().any(|f| framing::awaits_reply(f));
        let taken = intake.take(&frames);
        if taken < frames.len() {
            frames.drain(..taken);
            intake.hand();
            if out.blocking_send(Ok(frames)).is_err() {
                return;
            }
        }
        if pause {
            match stop.recv_timeout(READ_PAUSE) {
                Err(std_mpsc::RecvTimeoutError::Timeout) => {}
                _ => return,
            }
        }
    }
}

/// The writer thread: replies as they come, several per write when they queue up.
fn write_replies<S: Socket>(mut socket: S, mut rx: mpsc::Receiver<wb::ServerResponse>) {
    let mut buf = Vec::with_capacity(4096);
    while let Some(reply) = rx.blocking_recv() {
        buf.clear();
        framing::encode(&reply.encode_to_vec(), &mut buf);
        while let Ok(more) = rx.try_recv() {
            framing::encode(&more.encode_to_vec(), &mut buf);
        }
        if let Err(e) = framing::write_all(&mut socket, &buf) {
            tracing::debug!("W&B connection: the SDK stopped reading replies: {e}");
            return;
        }
    }
}
