//! Accepting SDK connections and running each: a reader thread that takes the
//! rows it reads and hands every other frame to the [`Router`] on the
//! connection's task, and a writer thread for the replies.

use std::sync::Arc;
use std::time::Duration;

use prost::Message;

use super::router::Router;
use super::row_frame;
use super::rows::{RowIntake, Rows};
use super::socket::{FrameBatch, Socket, SocketThreads};
use crate::listen::Listener;
use crate::proto::wandb as wb;
use crate::runs::Runs;
use crate::shutdown::ShutdownToken;

/// Replies queued per connection before the reader waits for the SDK to read them:
/// an SDK that stops reading stops being read, rather than growing a queue.
const REPLY_BUFFER: usize = 64;
/// How long a closing connection waits for its replies to drain.
const DRAIN: Duration = Duration::from_secs(5);

/// What each connection needs.
#[derive(Clone)]
pub struct Settings {
    /// Largest frame accepted (--max-message-bytes).
    pub max_message_bytes: usize,
    /// How often an open connection counts as a sign of life for its runs.
    pub heartbeat: Duration,
    /// How long Finish may wait for a remote backend (--finish-timeout).
    pub finish_timeout: Duration,
}

/// Accepts connections until shutdown; each runs on its own task, holding a
/// shutdown token so that shutdown waits for it.
pub async fn serve(
    listener: Listener,
    runs: Arc<Runs>,
    settings: Settings,
    mut token: ShutdownToken,
) {
    loop {
        let accepted = tokio::select! {
            a = accept(&listener) => a,
            _ = token.stopping() => break,
        };
        let conn_token = match runs.token() {
            Ok(t) => t,
            Err(_) => break,
        };
        match accepted {
            Ok(Conn::Tcp(s)) => {
                let _ = s.set_nodelay(true);
                if let Some(s) = blocking(s.into_std()) {
                    tokio::spawn(connection(s, runs.clone(), settings.clone(), conn_token));
                }
            }
            Ok(Conn::Unix(s)) => {
                if let Some(s) = blocking(s.into_std()) {
                    tokio::spawn(connection(s, runs.clone(), settings.clone(), conn_token));
                }
            }
            Err(e) => {
                tracing::warn!("W&B listener: accepting a connection failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The accepted socket out of tokio's reactor, in blocking mode for its threads
/// (see [`super::socket`]).
fn blocking<S: Socket>(s: std::io::Result<S>) -> Option<S> {
    match s.and_then(|s| s.set_blocking().map(|()| s)) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!("W&B listener: could not take over an accepted connection: {e}");
            None
        }
    }
}

enum Conn {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

async fn accept(listener: &Listener) -> std::io::Result<Conn> {
    match listener {
        Listener::Tcp(l) => Ok(Conn::Tcp(l.accept().await?.0)),
        Listener::Unix(l, _) => Ok(Conn::Unix(l.accept().await?.0)),
    }
}

/// Runs one SDK connection to its end (EOF, a protocol error, or shutdown); runs
/// it leaves without an exit record crash.
pub async fn connection<S: Socket>(
    socket: S,
    runs: Arc<Runs>,
    settings: Settings,
    mut token: ShutdownToken,
) {
    let rows = Rows::new();
    let intake = RowIntake::new(rows.clone());
    let max = settings.max_message_bytes;
    let mut io = match SocketThreads::start(socket, max, REPLY_BUFFER, intake) {
        Ok(io) => io,
        Err(e) => {
            tracing::warn!("W&B connection: could not start its threads, closing: {e}");
            return;
        }
    };
    let replies = io.replies.clone();
    let mut router = Router::new(runs, replies, rows.clone(), settings.finish_timeout);
    let mut beat = tokio::time::interval(settings.heartbeat);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let batch = tokio::select! {
            b = io.frames.recv() => b,
            _ = beat.tick() => {
                router.heartbeat().await;
                continue;
            }
            _ = token.stopping() => break,
        };
        if !handle_frames(&mut router, batch).await {
            break;
        }
        // The rows among these frames go to their runs now: the reader takes
        // rows again once the router has caught up.
        router.send_rows().await;
        rows.handled();
    }
    router.close().await;
    drop(router);
    // The writer ends once the router (its last sender) is gone; an SDK that
    // stopped reading gets DRAIN to take its last replies.
    io.close(DRAIN).await;
    drop(token);
}

/// Hands a batch of frames to the router; false when the connection ends (the
/// stream's end, a read error, an undecodable request).
async fn handle_frames(router: &mut Router, batch: Option<FrameBatch>) -> bool {
    let frames = match batch {
        Some(Ok(frames)) if !frames.is_empty() => frames,
        Some(Ok(_)) | None => return false,
        Some(Err(e)) => {
            tracing::warn!("W&B connection: {e}; closing");
            return false;
        }
    };
    for bytes in frames {
        if let Some(row) = row_frame::scan(&bytes) {
            router.row(row).await;
            continue;
        }
        match wb::ServerRequest::decode(bytes) {
            Ok(req) => router.handle(req).await,
            Err(e) => {
                tracing::warn!("W&B connection: undecodable request, closing: {e}");
                return false;
            }
        }
    }
    true
}
