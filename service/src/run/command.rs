//! What handlers send a run's actor: [`Command`]s that carry their reply channel,
//! through a [`RunHandle`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot, watch};

use super::error::RunError;
use crate::memory::{self, Budget, Charge};
use crate::proto::v1::{
    AlertRequest, AlertResponse, DefineMetricRequest, FinishResponse, GetRunResponse,
    HeartbeatResponse, InitRequest, InitResponse, LogAck, LogBatch, MetricDefinition, RunInfo,
    RunState as State, SaveFilesRequest, UpdateConfigRequest, UpdateRunRequest, UpdateRunResponse,
    UpdateSummaryRequest, Value,
};
use crate::proto::wal::ArtifactRecord;

/// Commands queued per run before senders wait: a burst of batches from several
/// streams fits, and a client that outpaces the disk is slowed down, not dropped.
pub(super) const COMMAND_BUFFER: usize = 256;

pub type Reply<T> = oneshot::Sender<Result<T, RunError>>;

/// Where a log acknowledgement goes: a unary call's one reply, or a stream's
/// ordered acknowledgements.
pub enum LogReply {
    Unary(Reply<LogAck>),
    /// A stream's ack channel and its state, shared by all the runs it feeds.
    Stream(mpsc::Sender<Result<LogAck, RunError>>, Arc<StreamState>),
    /// Nobody waits for the outcome (the wandb SDK does not): the actor logs
    /// what it did not record.
    Unwatched,
}

/// What the runs a LogStream feeds tell its reader.
#[derive(Debug, Default)]
pub struct StreamState {
    /// The seq of the stream's first failed batch (0: none).
    pub failed: AtomicU64,
    /// The client let its acks pile up past the ack queue: the stream is over.
    pub overflowed: AtomicBool,
    /// Wakes the stream's reader when a run ends the stream.
    pub ended: tokio::sync::Notify,
}

impl StreamState {
    pub fn overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Acquire)
    }
}

/// When each run's actor started the command it is on, if it is on one: a run
/// stuck on one command for long is wedged (health reports it).
#[derive(Debug, Default)]
pub struct Busy(Mutex<Option<tokio::time::Instant>>);

impl Busy {
    pub(super) fn set(&self, since: Option<tokio::time::Instant>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = since;
    }

    /// Since when the actor has been on its current command.
    pub fn since(&self) -> Option<tokio::time::Instant> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub enum Command {
    Log {
        batch: LogBatch,
        reply: LogReply,
    },
    DefineMetric {
        req: DefineMetricRequest,
        reply: Reply<MetricDefinition>,
    },
    UpdateConfig {
        req: UpdateConfigRequest,
        reply: Reply<BTreeMap<String, Value>>,
    },
    UpdateSummary {
        req: UpdateSummaryRequest,
        reply: Reply<BTreeMap<String, Value>>,
    },
    Alert {
        req: AlertRequest,
        reply: Reply<AlertResponse>,
    },
    SaveFiles {
        req: SaveFilesRequest,
        reply: Reply<Vec<String>>,
    },
    Heartbeat {
        writer_id: String,
        reply: Reply<HeartbeatResponse>,
    },
    MarkPreempting {
        reply: Reply<RunInfo>,
    },
    /// Finishes the run, or only its writer `writer_id` (a shared run's writer
    /// that does not decide the run's end).
    Finish {
        exit_code: i32,
        writer_id: String,
        reply: Reply<FinishResponse>,
    },
    Get {
        reply: Reply<GetRunResponse>,
    },
    Resume {
        init: Box<InitRequest>,
        reply: Reply<InitResponse>,
    },
    /// The run logged, used, linked or re-aliased an artifact version (the store
    /// has it already): the record goes into the run's log.
    Artifact {
        record: Box<ArtifactRecord>,
        reply: Reply<()>,
    },
    /// An operator asks the run to stop (the client learns it from Heartbeat).
    Stop {
        reply: Reply<RunInfo>,
    },
    /// An edit (UpdateRun) of the run's identity, config or summary.
    Update {
        req: UpdateRunRequest,
        reply: Reply<UpdateRunResponse>,
    },
    /// Ends an open run without its client: crashed (or preempted, if it was
    /// preempting) when the client is gone, killed at shutdown. `reason` (may be
    /// empty) is kept with the run for the user.
    /// Ends the run without its client; or, for `writer_id` a shared run's
    /// writer that does not decide the run's end, only that writer (empty: the run).
    End {
        state: State,
        reason: String,
        writer_id: String,
        reply: Reply<RunInfo>,
    },
    /// Complete lines the client's console printed, for output.log.
    Output {
        lines: Vec<String>,
        reply: Reply<()>,
    },
}

impl Command {
    /// The writer the command names (a sign of life from it).
    pub fn writer(&self) -> Option<&str> {
        match self {
            Command::Log { batch, .. } => Some(&batch.writer_id),
            Command::Heartbeat { writer_id, .. } | Command::Finish { writer_id, .. } => {
                Some(writer_id)
            }
            Command::Resume { init, .. } => Some(&init.writer_id),
            _ => None,
        }
    }

    /// Bytes the command holds in memory plus the most it can add to its run's
    /// state while it is handled (`shared`: the run is a shared run). A log
    /// batch is charged [`memory::log_bytes`]: the batch, its log record, the
    /// row being built (one row at a time, every row in a shared run), the
    /// summary and key names (one entry per distinct key, not per row) and one
    /// store line; wide rows of packed scalars are charged about 2.6 times
    /// their encoded size, a long value about six times. A config or summary
    /// value is charged twice. 0 for a command that adds nothing, so that it is
    /// never refused for memory.
    pub fn bytes(&self, shared: bool) -> usize {
        let maps = |a: &BTreeMap<String, Value>, b: &BTreeMap<String, Value>| {
            2 * (memory::map_bytes(a) + memory::map_bytes(b))
        };
        match self {
            Command::Log { batch, .. } => memory::log_bytes(batch, shared),
            Command::UpdateConfig { req, .. } => 2 * memory::map_bytes(&req.config),
            Command::UpdateSummary { req, .. } => 2 * memory::map_bytes(&req.summary),
            Command::Update { req, .. } => maps(&req.config, &req.summary),
            Command::Resume { init, .. } => 2 * memory::map_bytes(&init.config),
            Command::Output { lines, .. } => 2 * memory::strings_bytes(lines),
            Command::Alert { req, .. } => 2 * prost::Message::encoded_len(req),
            Command::DefineMetric { req, .. } => 2 * prost::Message::encoded_len(req),
            Command::Artifact { record, .. } => 2 * prost::Message::encoded_len(&**record),
            // What SaveFiles adds (the files it matches) is measured after it ran.
            _ => 0,
        }
    }

    /// Bytes the command holds in memory now, of [`Command::bytes`]: what a
    /// log batch waiting for room holds while it waits (the decoded batch), 0
    /// for the rest (they do not wait).
    fn held_bytes(&self) -> usize {
        match self {
            Command::Log { batch, .. } => memory::batch_bytes(batch),
            _ => 0,
        }
    }

    /// Whether the command is a sign of life from the run's client (reads, edits,
    /// stops and ends come from elsewhere).
    pub(super) fn is_sign_of_life(&self) -> bool {
        !matches!(
            self,
            Command::Get { .. }
                | Command::Stop { .. }
                | Command::End { .. }
                | Command::Update { .. }
        )
    }
}

/// A command on its way to a run, with the memory it was charged.
pub(super) type Queued = (Command, Charge);

/// A handle on an open run's actor.
#[derive(Clone)]
pub struct RunHandle {
    pub(super) tx: mpsc::Sender<Queued>,
    /// Charged for each command from when it is queued until the actor takes it.
    pub(super) budget: Arc<Budget>,
    pub(super) status: watch::Receiver<RunInfo>,
    /// The client process (host, pid) that opened the run, for the per-client cap.
    pub(super) client: Option<(String, i64)>,
    /// What the actor is on, for the health check.
    pub(super) busy: Arc<Busy>,
}

impl RunHandle {
    /// Sends a command and waits for its reply.
    pub async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, RunError> {
        let (tx, rx) = oneshot::channel();
        self.send(make(tx)).await?;
        rx.await.map_err(|_| RunError::Closed)?
    }

    /// Queues a command whose reply goes elsewhere (a stream's ack channel);
    /// RESOURCE_EXHAUSTED when its memory does not fit the budget (nothing is
    /// queued then). A log batch that does not fit waits for room first, up to
    /// [`memory::ROOM_WAIT`] or until the run's actor stops (refused at once
    /// when it would pass the share of the budget that waiting batches may
    /// hold uncharged, [`memory::WAITING_SHARE`]): the room it waits for is
    /// mostly held by batches queued ahead of it, given back as the
    /// actor applies them, and the actor never waits on the budget, so it
    /// always gets there. Its caller is held back meanwhile (a LogStream reads
    /// nothing more from its client: this is where a client that logs faster
    /// than its run applies is slowed down, not refused). Other commands are
    /// refused at once.
    pub async fn send(&self, cmd: Command) -> Result<(), RunError> {
        // A run becomes shared when a shared writer joins (its Init or Resume),
        // and its status is published before that Init is answered.
        let shared = self.status.borrow().shared;
        let bytes = cmd.bytes(shared);
        let charge = if matches!(cmd, Command::Log { .. }) {
            tokio::select! {
                c = self.budget.charge_waiting(bytes, cmd.held_bytes(), memory::ROOM_WAIT) => c?,
                _ = self.tx.closed() => return Err(RunError::Closed),
            }
        } else {
            self.budget.charge(bytes)?
        };
        self.tx
            .send((cmd, charge))
            .await
            .map_err(|_| RunError::Closed)
    }

    /// The run as last published (at most one flush interval old).
    pub fn info(&self) -> RunInfo {
        self.status.borrow().clone()
    }

    /// The client process (host, pid) that opened the run.
    pub fn client(&self) -> Option<&(String, i64)> {
        self.client.as_ref()
    }

    /// Whether the actor has stopped (the run ended or the sidecar is stopping).
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Waits until the actor has stopped taking commands.
    pub async fn closed(&self) {
        self.tx.closed().await
    }

    /// Since when the actor has been on its current command, if it is on one.
    pub fn busy_since(&self) -> Option<tokio::time::Instant> {
        self.busy.since()
    }
}
