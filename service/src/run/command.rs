//! What handlers send a run's actor: [`Command`]s that carry their reply channel,
//! through a [`RunHandle`].

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};

use super::error::RunError;
use crate::proto::v1::{
    AlertRequest, AlertResponse, DefineMetricRequest, FinishResponse, GetRunResponse,
    HeartbeatResponse, InitRequest, InitResponse, LogAck, LogBatch, MetricDefinition, RunInfo,
    RunState as State, SaveFilesRequest, UpdateConfigRequest, UpdateSummaryRequest, Value,
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
    /// A stream's ack channel, and the seq of the stream's first failed batch (0:
    /// none), shared by all the runs the stream feeds.
    Stream(mpsc::Sender<Result<LogAck, RunError>>, Arc<AtomicU64>),
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
        reply: Reply<HeartbeatResponse>,
    },
    MarkPreempting {
        reply: Reply<RunInfo>,
    },
    Finish {
        exit_code: i32,
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
    /// Ends an open run without its client: crashed (or preempted, if it was
    /// preempting) when the client is gone, killed at shutdown.
    End {
        state: State,
        reply: Reply<RunInfo>,
    },
}

/// A handle on an open run's actor.
#[derive(Clone)]
pub struct RunHandle {
    pub(super) tx: mpsc::Sender<Command>,
    pub(super) status: watch::Receiver<RunInfo>,
    /// The client process (host, pid) that opened the run, for the per-client cap.
    pub(super) client: Option<(String, i64)>,
}

impl RunHandle {
    /// Sends a command and waits for its reply.
    pub async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, RunError> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(make(tx)).await.map_err(|_| RunError::Closed)?;
        rx.await.map_err(|_| RunError::Closed)?
    }

    /// Queues a command whose reply goes elsewhere (a stream's ack channel).
    pub async fn send(&self, cmd: Command) -> Result<(), RunError> {
        self.tx.send(cmd).await.map_err(|_| RunError::Closed)
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
}
