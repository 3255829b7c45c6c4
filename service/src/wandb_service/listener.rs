//! Accepting SDK connections and running each: a reader that decodes frames and
//! hands them to the [`Router`], a writer for the replies, and a drain for the
//! acknowledgements of logged rows (the SDK does not wait for them).

use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

use super::framing::{self, FrameReader};
use super::router::Router;
use crate::proto::v1::LogAck;
use crate::proto::wandb as wb;
use crate::run::RunError;
use crate::runs::Runs;
use crate::server::Listener;
use crate::shutdown::ShutdownToken;

/// Replies queued per connection before the reader waits for the SDK to read them:
/// an SDK that stops reading stops being read, rather than growing a queue.
const REPLY_BUFFER: usize = 64;
/// Row acknowledgements queued per connection before the run actors wait; the
/// drain only logs dropped rows, so it never falls far behind.
const ACK_BUFFER: usize = 64;
/// How long logged rows may wait for more before they go to their run's actor:
/// the SDK sends one frame per `run.log` and waits for none, so rows arriving
/// within this window become one batch (one log record), as runcore's own client
/// packs them. Anything the SDK waits on, any other record of the run, and the
/// connection's end send them at once.
const LINGER: Duration = Duration::from_millis(20);
/// How long a closing connection waits for its replies and acks to drain.
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
                tokio::spawn(connection(s, runs.clone(), settings.clone(), conn_token));
            }
            Ok(Conn::Unix(s)) => {
                tokio::spawn(connection(s, runs.clone(), settings.clone(), conn_token));
            }
            Err(e) => {
                tracing::warn!("W&B listener: accepting a connection failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
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
pub async fn connection<S>(io: S, runs: Arc<Runs>, settings: Settings, mut token: ShutdownToken)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (rd, wr) = tokio::io::split(io);
    let (reply_tx, reply_rx) = mpsc::channel(REPLY_BUFFER);
    let (ack_tx, ack_rx) = mpsc::channel(ACK_BUFFER);
    let mut writer = tokio::spawn(write_replies(wr, reply_rx));
    let mut drain = tokio::spawn(drain_acks(ack_rx));
    let mut router = Router::new(runs, reply_tx, ack_tx, settings.finish_timeout);
    let mut frames = FrameReader::new(rd, settings.max_message_bytes);
    let mut beat = tokio::time::interval(settings.heartbeat);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // When gathered rows go to their runs if no other frame sends them first.
    let mut flush_at: Option<tokio::time::Instant> = None;
    loop {
        let at = flush_at;
        let linger = async move {
            match at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let frame = tokio::select! {
            f = frames.next() => f,
            _ = linger => {
                router.flush_logs().await;
                flush_at = None;
                continue;
            }
            _ = beat.tick() => {
                router.heartbeat().await;
                continue;
            }
            _ = token.stopping() => break,
        };
        match frame {
            Ok(Some(bytes)) => match wb::ServerRequest::decode(bytes) {
                Ok(req) => router.handle(req).await,
                Err(e) => {
                    tracing::warn!("W&B connection: undecodable request, closing: {e}");
                    break;
                }
            },
            Ok(None) => break,
            Err(e) => {
                tracing::warn!("W&B connection: {e}; closing");
                break;
            }
        }
        if router.has_rows() {
            flush_at.get_or_insert_with(|| tokio::time::Instant::now() + LINGER);
        } else {
            flush_at = None;
        }
    }
    router.flush_logs().await;
    router.close().await;
    drop(router);
    // Both end once the router (their senders) is gone; an SDK that stopped
    // reading gets DRAIN to take its last replies.
    for task in [&mut writer, &mut drain] {
        if tokio::time::timeout(DRAIN, &mut *task).await.is_err() {
            task.abort();
        }
    }
    drop(token);
}

/// Writes replies as they come, several per write when they queue up.
async fn write_replies(
    mut wr: impl AsyncWrite + Unpin,
    mut rx: mpsc::Receiver<wb::ServerResponse>,
) {
    let mut buf = Vec::with_capacity(4096);
    while let Some(reply) = rx.recv().await {
        buf.clear();
        framing::encode(&reply.encode_to_vec(), &mut buf);
        while let Ok(more) = rx.try_recv() {
            framing::encode(&more.encode_to_vec(), &mut buf);
        }
        if let Err(e) = framing::write_all(&mut wr, &buf).await {
            tracing::debug!("W&B connection: the SDK stopped reading replies: {e}");
            break;
        }
    }
}

/// Logs what the runs did not apply of the rows they were sent (the SDK does not
/// wait for acknowledgements, so this is where dropped rows are reported).
async fn drain_acks(mut rx: mpsc::Receiver<Result<LogAck, RunError>>) {
    while let Some(ack) = rx.recv().await {
        match ack {
            Ok(ack) => {
                for d in ack.dropped {
                    tracing::warn!(run = %ack.run_id, "a logged row was dropped: {}", d.reason);
                }
            }
            Err(e) => tracing::warn!("logged rows not recorded: {e}"),
        }
    }
}
