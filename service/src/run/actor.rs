//! The per-run actor: one task owns the run's state, log and store writer, and
//! handles [`Command`]s one at a time; status goes out through a `watch`.

use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::command::{Busy, Command, LogReply, Queued, Reply, RunHandle, COMMAND_BUFFER};
use super::delivery::Delivery;
use super::error::RunError;
use super::files::{Fingerprint, SavePolicy};
use super::open::OpenedRun;
use super::settings::RunSettings;
use super::timers::Timers;
use super::writers::{LinkEvent, Links};
use crate::liveness::Clients;
use crate::memory::{Charge, RUN_BASE_BYTES};
use crate::monitor::Monitor;
use crate::proto::v1::{HeartbeatResponse, RunInfo};
use crate::semantics::state::RunState;
use crate::shutdown::ShutdownToken;
use crate::store::{self, StoreWriter};
use crate::wal::WalWriter;

/// A file saved with policy `live`: copied again when it changes.
pub(super) struct LiveFile {
    pub(super) source: PathBuf,
    /// As it was when last copied (None: not copied since the sidecar started).
    pub(super) copied: Option<Fingerprint>,
    /// As it was at the previous check: a copy waits until it stops changing.
    pub(super) seen: Option<Fingerprint>,
}

/// Spawns the actor of an opened run.
pub fn spawn(
    opened: OpenedRun,
    config: Arc<RunSettings>,
    token: ShutdownToken,
    forward: Option<Box<dyn Delivery>>,
    monitor: Option<Monitor>,
    clients: &Clients,
) -> RunHandle {
    let (tx, rx) = mpsc::channel(COMMAND_BUFFER);
    let (status_tx, status) = watch::channel(opened.state.info.clone());
    let busy = Arc::new(Busy::default());
    let live = opened
        .state
        .saved
        .values()
        .filter(|f| SavePolicy::of(f) == SavePolicy::Live)
        .map(|f| {
            (
                f.name.clone(),
                LiveFile {
                    source: PathBuf::from(&f.source),
                    copied: None,
                    seen: None,
                },
            )
        })
        .collect();
    let sync_file = opened.wal.try_clone_file();
    // A run opened (created, resumed, recovered) is charged what it holds without
    // being refused: Init admits a new run against the budget before creating it.
    let mut charge = Charge::empty(&config.budget);
    charge.settle(RUN_BASE_BYTES + opened.state.retained_bytes());
    let budget = config.budget.clone();
    let links = Links::of(&opened.state, monitor.as_ref(), clients);
    let client = opened
        .state
        .client
        .as_ref()
        .filter(|c| c.pid > 0)
        .map(|c| (c.hostname.clone(), c.pid));
    let actor = Actor {
        forward,
        monitor,
        links,
        files_dir: opened.store.dir().join(store::FILES_DIR),
        state: opened.state,
        wal: opened.wal,
        store: opened.store,
        sync_file,
        config,
        status: status_tx,
        summary_dirty: false,
        written: None,
        live,
        store_behind: false,
        busy: busy.clone(),
        charge,
    };
    tokio::spawn(actor.run(rx, token));
    RunHandle {
        tx,
        budget,
        status,
        client,
        busy,
    }
}

pub(super) struct Actor {
    pub(super) state: RunState,
    pub(super) wal: WalWriter,
    pub(super) store: StoreWriter,
    /// A second handle on the log, fsynced on a blocking thread.
    pub(super) sync_file: Option<Arc<File>>,
    pub(super) files_dir: PathBuf,
    pub(super) config: Arc<RunSettings>,
    pub(super) status: watch::Sender<RunInfo>,
    pub(super) summary_dirty: bool,
    /// run.json as last written, to skip unchanged rewrites.
    pub(super) written: Option<RunInfo>,
    pub(super) live: HashMap<String, LiveFile>,
    /// Each attached writer's liveness and system-metrics sampling.
    pub(super) links: Links,
    /// The forwarder to the remote backend, if one is configured.
    pub(super) forward: Option<Box<dyn Delivery>>,
    /// The sidecar's system-metrics sampler.
    pub(super) monitor: Option<Monitor>,
    /// A store write failed (a full disk): the store files may be behind the
    /// log, and are rebuilt from it when the run ends.
    pub(super) store_behind: bool,
    /// When the actor took up the command it is on.
    pub(super) busy: Arc<Busy>,
    /// What the run holds against the memory budget: its base cost and state,
    /// settled after each command.
    pub(super) charge: Charge,
}

impl Actor {
    async fn run(mut self, mut rx: mpsc::Receiver<Queued>, mut token: ShutdownToken) {
        // No periodic timer: each is armed for what waits (see `timers`).
        let mut timers = Timers::new();
        // Whether the run ended here: ending it already flushed and synced it.
        let ended = loop {
            self.set_timers(&mut timers);
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some((cmd, charge)) => {
                        self.busy.set(Some(Instant::now()));
                        // The command's estimate stays held until what the run
                        // holds after it has been measured.
                        self.charge.absorb(charge);
                        let ended = self.handle(cmd).await;
                        self.charge.settle(RUN_BASE_BYTES + self.state.retained_bytes());
                        self.busy.set(None);
                        if ended {
                            break true;
                        }
                    }
                    None => break false,
                },
                _ = timers.flush.fired() => {
                    timers.flushing(self.wal.len());
                    self.tick().await;
                }
                _ = timers.check.fired() => {
                    timers.checked();
                    if self.check_writers().await {
                        break true;
                    }
                }
                event = self.links.next_event() => match event {
                    LinkEvent::Sample(writer, sample) => {
                        let before = self.wal.len();
                        if self.record_sample(writer, sample) {
                            timers.sampled(before, self.wal.len());
                        }
                    }
                    LinkEvent::Exited => {
                        timers.checked();
                        if self.check_writers().await {
                            break true;
                        }
                    }
                },
                _ = token.stopping() => break false,
            }
        };
        rx.close();
        if !ended {
            self.flush(true).await;
        }
        let tell = self.config.ended.clone().filter(|_| ended);
        let dir = self.store.dir().to_owned();
        // Lets go of the run's log and files before the run is named as ended.
        drop(self);
        if let Some(tx) = tell {
            if tx.try_send(dir).is_err() {
                tracing::debug!("the queue of finished runs to index is full; the UI indexes this one when it is opened");
            }
        }
        drop(token);
    }

    /// Handles one command; true when the actor should stop (the run ended).
    async fn handle(&mut self, cmd: Command) -> bool {
        if cmd.is_sign_of_life() {
            self.links.touch(cmd.writer());
            self.beat();
        }
        match cmd {
            Command::Log { batch, reply } => self.handle_log(batch, reply).await,
            Command::DefineMetric { req, reply } => {
                let r = self.define_metric(req).await;
                let _ = reply.send(r);
            }
            Command::UpdateConfig { req, reply } => {
                let r = self.update_config(req).await;
                let _ = reply.send(r);
            }
            Command::UpdateSummary { req, reply } => {
                let r = self.update_summary(req).await;
                let _ = reply.send(r);
            }
            Command::Alert { req, reply } => {
                let r = self.alert(req).await;
                let _ = reply.send(r);
            }
            Command::SaveFiles { req, reply } => {
                let r = self.save_files(req).await;
                let _ = reply.send(r);
            }
            Command::Heartbeat { reply, .. } => {
                let _ = reply.send(Ok(self.heartbeat()));
            }
            Command::MarkPreempting { reply } => {
                let r = self.mark_preempting().await;
                let _ = reply.send(r);
            }
            Command::Finish {
                exit_code,
                writer_id,
                reply,
            } => {
                let r = self.finish(exit_code, &writer_id).await;
                return self.ended(r, reply);
            }
            Command::Get { reply } => {
                let _ = reply.send(Ok(self.get().await));
            }
            Command::Resume { init, reply } => {
                let r = self.resume(*init).await;
                let _ = reply.send(r);
            }
            Command::Artifact { record, reply } => {
                let r = self.record_artifact(*record).await;
                let _ = reply.send(r);
            }
            Command::Stop { reply } => {
                let r = self.stop().await;
                let _ = reply.send(r);
            }
            Command::Update { req, reply } => {
                let r = self.update(req).await;
                let _ = reply.send(r);
            }
            Command::Output { lines, reply } => {
                let r = self.output(lines).await;
                let _ = reply.send(r);
            }
            Command::End {
                state,
                reason,
                writer_id,
                reply,
            } => {
                let r = self.end_as(state, reason, &writer_id).await;
                return self.ended(r, reply);
            }
        }
        false
    }

    /// Answers a Finish or End; true when the run ended (a writer of a shared run
    /// may end alone: the run goes on).
    fn ended<T>(&self, r: Result<T, RunError>, reply: Reply<T>) -> bool {
        let ended = r.is_ok() && !self.state.is_open();
        let _ = reply.send(r);
        ended
    }

    /// The run's state, and whether an operator or the backend asked it to stop.
    fn heartbeat(&self) -> HeartbeatResponse {
        let backend_stop = self.forward.as_ref().is_some_and(|f| f.stop_requested());
        HeartbeatResponse {
            state: self.state.info.state,
            should_stop: self.state.info.stop_requested || backend_stop,
        }
    }

    /// Logs a batch and sends its acknowledgement where it goes.
    async fn handle_log(&mut self, batch: crate::proto::v1::LogBatch, reply: LogReply) {
        match reply {
            LogReply::Unary(tx) => {
                let _ = tx.send(self.log(batch, false).await);
            }
            LogReply::Unwatched => match self.log(batch, true).await {
                Ok(ack) => {
                    for d in ack.dropped {
                        tracing::warn!(run = %ack.run_id, "a logged row was dropped: {}", d.reason);
                    }
                }
                Err(e) => {
                    tracing::warn!(run = %self.state.info.id, "logged rows not recorded: {e}")
                }
            },
            LogReply::Stream(tx, stream) => {
                if stream.overflowed() {
                    // The stream is over; its reader refuses what is left.
                    return;
                }
                // After a batch of a stream failed, the stream's later batches are
                // refused too: the client resends from the failed one, and the seq
                // high-water mark must not have moved past it.
                let earlier = stream.failed.load(Ordering::Acquire);
                let result = if earlier != 0 {
                    Err(RunError::StreamBroken { seq: earlier })
                } else {
                    let seq = batch.seq.max(1);
                    let r = self.log(batch, true).await;
                    if r.is_err() {
                        stream.failed.store(seq, Ordering::Release);
                    }
                    r
                };
                // Backpressure decision: the run never waits for a stream's client.
                // Acks queue on the stream's bounded channel; a client that lets it
                // fill has stopped reading, and its stream is ended (the batch is in
                // the log; the client resends what it has no ack for, and gets
                // `duplicate`), while the run and its other clients go on.
                if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(result) {
                    tracing::warn!(run = %self.state.info.id, "a LogStream client is not reading its acknowledgements; ending that stream");
                    stream.overflowed.store(true, Ordering::Release);
                    stream.ended.notify_one();
                }
            }
        }
    }
}
