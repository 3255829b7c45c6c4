//! The actor's side of a run's writers (the rules are `semantics::writers`): each
//! attached writer's liveness (its process watched, its last sign of life) and
//! its system-metrics sampling; who may join; a writer that finishes or dies.

use std::collections::HashMap;
use std::path::PathBuf;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{StreamExt, StreamMap};

use super::actor::Actor;
use super::error::RunError;
use crate::liveness::{self, ClientGuard, ClientWatch, Clients};
use crate::monitor::{Monitor, Sample, Watch, WatchGuard};
use crate::proto::v1::{InitRequest, RunInfo, RunState as State};
use crate::proto::wal::{record::Kind, Record, SystemSample, WriterEnd};
use crate::semantics::state::{self, RunState};
use crate::semantics::writers::{self, Writer};

/// Samples queued per writer before the sampler drops one (it never waits).
const SAMPLE_BUFFER: usize = 16;

/// One attached writer as the actor watches it.
struct Link {
    watch: ClientWatch,
    /// Its last sign of life (an RPC naming it, or one it alone can have made).
    last_contact: Instant,
    /// Its samples while attached; dropping the guard stops them.
    _sampling: Option<WatchGuard>,
    /// Its process's exit is told to the run while attached (the check is shared
    /// with the other runs of the same client).
    _exit: Option<ClientGuard>,
}

/// Every attached writer's liveness and sampling.
pub(super) struct Links {
    links: HashMap<String, Link>,
    /// Each sampled writer's samples, keyed by writer id.
    samples: StreamMap<String, ReceiverStream<Sample>>,
    /// The sidecar's client-process checks.
    clients: Clients,
    /// Told when a watched writer's process exits. One slot: a second exit
    /// before the actor looks is found by the same look.
    exits_tx: mpsc::Sender<()>,
    exits: mpsc::Receiver<()>,
}

impl Links {
    fn new(clients: Clients) -> Self {
        let (exits_tx, exits) = mpsc::channel(1);
        Links {
            links: HashMap::new(),
            samples: StreamMap::new(),
            clients,
            exits_tx,
            exits,
        }
    }

    /// Links every attached writer of a run being opened.
    pub(super) fn of(state: &RunState, monitor: Option<&Monitor>, clients: &Clients) -> Self {
        let mut links = Links::new(clients.clone());
        let ids: Vec<String> = state.writers.attached().map(|w| w.id.clone()).collect();
        for id in ids {
            links.link(state, &id, monitor);
        }
        links
    }

    /// (Re)links writer `id` after its Init: its process is watched afresh, its
    /// contact is now, its sampling restarts (unless the run's Init turned system
    /// metrics off).
    pub(super) fn link(&mut self, state: &RunState, id: &str, monitor: Option<&Monitor>) {
        let Some(w) = state.writers.get(id) else {
            return;
        };
        self.samples.remove(id);
        let watch = ClientWatch::of(w.client.as_ref());
        let sampling = monitor.and_then(|m| {
            let settings = state.system_metrics.clone().unwrap_or_default();
            if settings.disabled || !state.is_open() {
                return None;
            }
            let interval = if settings.interval > 0.0 {
                liveness::seconds(settings.interval)
            } else {
                crate::monitor::DEFAULT_INTERVAL
            };
            let (tx, rx) = mpsc::channel(SAMPLE_BUFFER);
            let guard = m.watch(
                Watch {
                    pid: watch.pid(),
                    interval,
                    per_cpu: settings.per_cpu,
                    disk_paths: settings.disk_paths.iter().map(PathBuf::from).collect(),
                },
                tx,
            );
            self.samples.insert(id.to_owned(), ReceiverStream::new(rx));
            Some(guard)
        });
        let exit = watch
            .process()
            .map(|p| self.clients.watch(p, self.exits_tx.clone()));
        self.links.insert(
            id.to_owned(),
            Link {
                watch,
                last_contact: Instant::now(),
                _sampling: sampling,
                _exit: exit,
            },
        );
    }

    /// Stops watching and sampling writer `id`.
    pub(super) fn unlink(&mut self, id: &str) {
        self.links.remove(id);
        self.samples.remove(id);
    }

    /// Stops every writer's sampling (the run ended).
    pub(super) fn clear(&mut self) {
        self.links.clear();
        self.samples = StreamMap::new();
    }

    /// A sign of life from writer `id`; without an id, from the run's only
    /// attached writer, if it has one.
    pub(super) fn touch(&mut self, id: Option<&str>) {
        let link = match id {
            Some(id) => self.links.get_mut(id),
            None if self.links.len() == 1 => self.links.values_mut().next(),
            None => None,
        };
        if let Some(l) = link {
            l.last_contact = Instant::now();
        }
    }

    /// Why writer `w` counts as gone; None while it is there (or not watched here).
    fn gone_why(&self, w: &Writer, client_timeout: f64) -> Option<&'static str> {
        let link = self.links.get(&w.id)?;
        link.watch.gone_why(link.last_contact, client_timeout)
    }

    /// The attached writers that are gone, and why.
    fn gone(&self, state: &RunState) -> Vec<(String, &'static str)> {
        state
            .writers
            .attached()
            .filter_map(|w| Some((w.id.clone(), self.gone_why(w, state.info.client_timeout)?)))
            .collect()
    }

    /// When the next writer counts as gone unless it shows a sign of life first
    /// (None: no writer is watched).
    pub(super) fn deadline(&self, client_timeout: f64) -> Option<Instant> {
        self.links
            .values()
            .map(|l| l.watch.deadline(l.last_contact, client_timeout))
            .min()
    }

    /// The next sample of a writer, or the exit of a watched writer's process.
    pub(super) async fn next_event(&mut self) -> LinkEvent {
        tokio::select! {
            // The sender lives in `self`: the channel never closes.
            Some(()) = self.exits.recv() => LinkEvent::Exited,
            (id, sample) = next_sample(&mut self.samples) => LinkEvent::Sample(id, sample),
        }
    }
}

/// What the writers' watches tell the actor.
pub(super) enum LinkEvent {
    /// A system-metrics sample of a writer.
    Sample(String, Sample),
    /// A watched writer's process has exited: check the writers now.
    Exited,
}

/// The next sample of any writer; never, while no writer is sampled.
async fn next_sample(samples: &mut StreamMap<String, ReceiverStream<Sample>>) -> (String, Sample) {
    if samples.is_empty() {
        return std::future::pending().await;
    }
    match samples.next().await {
        Some(next) => next,
        None => std::future::pending().await,
    }
}

impl Actor {
    /// Logs a system-metrics sample of writer `id` (through the log, like every
    /// record, but with no sync of its own), labelled as the writer is, and
    /// writes its events.jsonl line at once. False when that left anything for
    /// a flush to do or report (a store write failed).
    pub(super) fn record_sample(&mut self, id: String, sample: Sample) -> bool {
        let Some(w) = self.state.writers.get(&id).filter(|w| w.is_attached()) else {
            return true;
        };
        if !self.state.is_open() || sample.metrics.is_empty() {
            return true;
        }
        let label = w.label.clone();
        let (keys, values) = sample.metrics.into_iter().unzip();
        let record = Record {
            time: sample.time,
            kind: Some(Kind::System(SystemSample {
                keys,
                values,
                writer_id: id,
                label,
            })),
        };
        if let Err(e) = self.append_unwaited(&record) {
            tracing::error!(run = %self.state.info.id, "system-metrics sample not recorded: {e}");
            return true;
        }
        self.state.apply(&record, &mut self.store);
        self.store.flush_events();
        !self.store.failed()
    }

    /// Checks that the run's writers are still there; ends the run (true) when
    /// the one it depends on is not. While one is, records a heartbeat at least
    /// every heartbeat interval.
    pub(super) async fn check_writers(&mut self) -> bool {
        if !self.state.is_open() {
            return false;
        }
        let gone = self.links.gone(&self.state);
        if gone.is_empty() {
            self.beat();
            return false;
        }
        match self.writers_gone(gone).await {
            Ok(ended) => ended,
            Err(e) => {
                tracing::error!(run = %self.state.info.id, "could not end the run or a writer: {e}");
                false
            }
        }
    }

    /// Writers whose process is gone: in a shared run each ends alone (crashed),
    /// unless it decides the run's end; otherwise the run ends, crashed (preempted
    /// if it was preempting). True when the run ended.
    async fn writers_gone(&mut self, gone: Vec<(String, &'static str)>) -> Result<bool, RunError> {
        let run_state = if self.state.state() == State::Preempting {
            State::Preempted
        } else {
            State::Crashed
        };
        for (id, why) in gone {
            let decides = self.state.writers.get(&id).is_none_or(Writer::decides);
            if !self.state.info.shared || decides {
                tracing::warn!(run = %self.state.info.id, writer = %id, "run {}: {why}", state::state_name(run_state));
                self.end(run_state, String::new()).await?;
                return Ok(true);
            }
            tracing::warn!(run = %self.state.info.id, writer = %id, "writer crashed, the run goes on: {why}");
            self.end_writer(&id, State::Crashed, None, why).await?;
            if !self.state.is_open() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Ends the run without its client (`end`); or only writer `writer_id`, when
    /// it is a shared run's writer that does not decide the run's end (its
    /// connection closed without an exit: crashed, the run goes on).
    pub(super) async fn end_as(
        &mut self,
        state: State,
        reason: String,
        writer_id: &str,
    ) -> Result<RunInfo, RunError> {
        let writer = self.state.writers.get(writer_id);
        let alone =
            !writer_id.is_empty() && self.state.info.shared && writer.is_some_and(|w| !w.decides());
        if !alone {
            return self.end(state, reason).await;
        }
        if writer.is_some_and(Writer::is_attached) && self.state.is_open() {
            self.end_writer(writer_id, state, None, &reason).await?;
            self.flush(false).await;
        }
        Ok(self.state.info.clone())
    }

    /// One writer ends while the run goes on. When it was the last attached one
    /// here, the run ends on this sidecar only (none of its writers here may set
    /// the run's final state: remote backends are not told).
    pub(super) async fn end_writer(
        &mut self,
        id: &str,
        state: State,
        exit_code: Option<i32>,
        reason: &str,
    ) -> Result<(), RunError> {
        self.commit(Kind::WriterEnd(WriterEnd {
            writer_id: id.to_owned(),
            state: state as i32,
            exit_code,
            reason: reason.to_owned(),
        }))
        .await?;
        self.links.unlink(id);
        if self.state.writers.attached().next().is_none() {
            self.close(state, exit_code, String::new(), true).await?;
        }
        self.publish();
        Ok(())
    }

    /// Whether the writer of `init` may join the open run: another live writer
    /// that it did not ask to share the run with refuses it. Attached writers
    /// whose process is gone are ended first.
    pub(super) async fn admit(&mut self, init: &InitRequest) -> Result<(), RunError> {
        let timeout = self.state.info.client_timeout;
        let dead: Vec<(String, &'static str)> = self
            .state
            .writers
            .attached()
            .filter(|w| w.id != init.writer_id)
            .filter_map(|w| Some((w.id.clone(), self.links.gone_why(w, timeout)?)))
            .collect();
        let links = &self.links;
        if let Err(other) = writers::admit(&self.state.writers, init, |w| {
            links.gone_why(w, timeout).is_none()
        }) {
            return Err(RunError::WriterConflict {
                id: self.state.info.id.clone(),
                other: other.describe(),
            });
        }
        for (id, why) in dead {
            self.commit(Kind::WriterEnd(WriterEnd {
                writer_id: id.clone(),
                state: State::Crashed as i32,
                exit_code: None,
                reason: why.to_owned(),
            }))
            .await?;
            self.links.unlink(&id);
        }
        Ok(())
    }

    /// Refuses rows of a writer that has ended, or that never joined the run.
    pub(super) fn ensure_writer(&self, id: &str) -> Result<(), RunError> {
        match self.state.writers.get(id) {
            Some(w) if !w.is_attached() => Err(RunError::WriterEnded {
                id: self.state.info.id.clone(),
                writer: w.describe(),
                state: state::state_name(w.state),
            }),
            None if !id.is_empty() => Err(RunError::UnknownWriter {
                id: self.state.info.id.clone(),
                writer: id.to_owned(),
            }),
            _ => Ok(()),
        }
    }
}
