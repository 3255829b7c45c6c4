//! Routes one connection's requests: records go to their run (by stream id) as
//! the operations runcore's own RPCs perform, and every request the SDK waits on
//! gets a reply with its request id: the real answer, or an empty or error reply
//! for what runcore does not handle, so the SDK is never left waiting.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::history::Entry;
use super::map::{self, StreamSettings};
use super::row_frame::RowFrame;
use super::rows::Rows;
use super::stream::{Stream, CALL_TIMEOUT};
use crate::api::validate;
use crate::proto::wandb as wb;
use crate::run::{Command, RunError};
use crate::runs::Runs;

use wb::record::Kind as Rec;
use wb::result::Kind as Res;
use wb::server_request::Kind as Req;
use wb::server_response::Kind as Resp;

pub struct Router {
    pub(super) runs: Arc<Runs>,
    pub(super) streams: HashMap<String, Stream>,
    replies: mpsc::Sender<wb::ServerResponse>,
    /// The history rows waiting to go to the runs (shared with the reader).
    pub(super) rows: Arc<Rows>,
    /// How long Finish may wait for a remote backend (--finish-timeout).
    finish_timeout: Duration,
}

impl Router {
    pub fn new(
        runs: Arc<Runs>,
        replies: mpsc::Sender<wb::ServerResponse>,
        rows: Arc<Rows>,
        finish_timeout: Duration,
    ) -> Self {
        Router {
            runs,
            streams: HashMap::new(),
            replies,
            rows,
            finish_timeout,
        }
    }

    /// Queues a reply; a full queue (the SDK is not reading) slows this reader, for
    /// at most CALL_TIMEOUT per reply.
    async fn send(&self, request_id: String, kind: Resp) {
        let reply = wb::ServerResponse {
            request_id,
            kind: Some(kind),
        };
        if tokio::time::timeout(CALL_TIMEOUT, self.replies.send(reply))
            .await
            .is_err()
        {
            tracing::warn!(
                "the wandb SDK has not read its replies for {} s; one was dropped",
                CALL_TIMEOUT.as_secs()
            );
        }
    }

    pub async fn handle(&mut self, req: wb::ServerRequest) {
        let id = req.request_id;
        match req.kind {
            Some(Req::RecordPublish(r) | Req::RecordCommunicate(r)) => self.record(id, r).await,
            Some(Req::InformInit(init)) => {
                let stream = init.info.unwrap_or_default().stream_id;
                let settings = StreamSettings::of(&init.settings.unwrap_or_default());
                self.streams
                    .entry(stream.clone())
                    .and_modify(|s| s.settings = settings.clone())
                    .or_insert_with(|| Stream::new(&stream, settings));
                if !id.is_empty() {
                    self.send(id, Resp::InformInitResponse(wb::Empty {})).await;
                }
            }
            Some(Req::InformFinish(_)) => {
                self.send_rows().await;
                if !id.is_empty() {
                    self.send(id, Resp::InformFinishResponse(wb::Empty {}))
                        .await;
                }
            }
            Some(Req::InformAttach(_)) => {
                self.error(id, "runcore's W&B adapter does not support attaching to a run from another process (wandb.attach, or runs shared with multiprocessing); init the run in each process, with settings=wandb.Settings(mode=\"shared\") to write one run, or grouped with group=").await;
            }
            Some(Req::InformDetach(_)) if !id.is_empty() => {
                self.send(id, Resp::InformDetachResponse(wb::Empty {}))
                    .await
            }
            Some(Req::InformTeardown(_)) if !id.is_empty() => {
                self.send(id, Resp::InformTeardownResponse(wb::Empty {}))
                    .await
            }
            Some(_) => {}
            None if !id.is_empty() => {
                self.error(id, "runcore's W&B adapter does not handle this request (it serves runs: wandb.init, log, finish; not wandb sync, the public API or sweeps)").await;
            }
            None => {}
        }
    }

    /// An error reply (SDKs before 0.25 read it as an empty reply).
    async fn error(&self, id: String, message: &str) {
        if id.is_empty() {
            return;
        }
        let reply = wb::ErrorResponse {
            message: message.to_owned(),
        };
        self.send(id, Resp::ErrorResponse(reply)).await;
    }

    /// Sends every run's gathered rows to its actor.
    pub async fn send_rows(&self) {
        self.rows.lock().await.send().await;
    }

    /// Adds one `run.log` call to its run's rows, sent when due; dropped (and
    /// said so, once per stream) while the stream has no open run.
    async fn push_row<'a>(
        &mut self,
        stream_id: &[u8],
        items: impl IntoIterator<Item = Entry<'a>>,
        step: Option<i64>,
        commit: Option<bool>,
    ) {
        let mut rows = self.rows.lock().await;
        if rows.push(stream_id, items, step, commit) {
            if rows.due(Instant::now()) {
                rows.send().await;
            }
            return;
        }
        drop(rows);
        let stream = std::str::from_utf8(stream_id).ok();
        if let Some(s) = stream.and_then(|id| self.streams.get_mut(id)) {
            if !std::mem::replace(&mut s.rows_dropped, true) {
                tracing::warn!(run = %s.run_id, "history logged while the run was not open (before it started, or after it finished) was dropped");
            }
        }
    }

    async fn record(&mut self, id: String, rec: wb::Record) {
        let slot = if id.is_empty() {
            rec.control
                .as_ref()
                .map(|c| c.mailbox_slot.clone())
                .unwrap_or_default()
        } else {
            id
        };
        let stream_id = rec.info.unwrap_or_default().stream_id;
        let result = match rec.kind {
            Some(Rec::Request(r)) => self.request(&stream_id, r).await.map(Res::Response),
            Some(kind) => self.run_record(&stream_id, kind).await,
            None => None,
        };
        if slot.is_empty() {
            return;
        }
        let result = wb::Result {
            kind: result,
            control: Some(wb::Control {
                mailbox_slot: slot.clone(),
            }),
            uuid: rec.uuid,
        };
        self.send(slot, Resp::ResultCommunicate(result)).await;
    }

    /// A record other than a request: what it does to its run, and its result.
    async fn run_record(&mut self, stream_id: &str, kind: Rec) -> Option<Res> {
        if let Rec::Run(run) = kind {
            return Some(Res::RunResult(self.start(stream_id, run).await));
        }
        let finish_timeout = self.finish_timeout;
        self.streams.get(stream_id)?;
        if let Rec::History(h) = &kind {
            let items = h.item.iter().map(Entry::of);
            let step = h.step.map(|s| s.num);
            self.push_row(stream_id.as_bytes(), items, step, Some(true))
                .await;
            return Some(Res::LogResult(wb::Empty {}));
        }
        let rows = self.rows.clone();
        let stream = self.streams.get_mut(stream_id)?;
        if let Rec::Output(o) | Rec::OutputRaw(o) = &kind {
            let lines = stream.console.push(&o.line);
            stream.output(lines).await;
            return Some(Res::OutputResult(wb::Empty {}));
        }
        // Anything else applies after the rows logged before it.
        rows.lock().await.send().await;
        match kind {
            Rec::Summary(u) => {
                update_summary(stream, &u).await;
                Some(Res::SummaryResult(wb::Empty {}))
            }
            Rec::Config(u) => {
                update_config(stream, &u).await;
                Some(Res::ConfigResult(wb::Empty {}))
            }
            Rec::Files(f) => {
                save_files(stream, &f).await;
                None
            }
            Rec::Alert(a) => {
                alert(stream, &a).await;
                None
            }
            Rec::Metric(m) => {
                define_metric(stream, &m).await;
                None
            }
            Rec::Preempting(_) => {
                let r = stream
                    .call(CALL_TIMEOUT, |reply| Command::MarkPreempting { reply })
                    .await;
                report(stream, "preempting", r.err());
                None
            }
            Rec::Exit(e) => {
                let timeout = CALL_TIMEOUT + finish_timeout;
                let result = exit(stream, e.exit_code, timeout).await;
                rows.lock().await.remove(stream_id);
                Some(Res::ExitResult(result))
            }
            _ => None,
        }
    }

    /// A history row from `run.log`: gathered, sent with the rows after it.
    pub(super) async fn partial_history(&mut self, stream_id: &str, h: wb::PartialHistory) {
        let commit = h.action.map(|a| a.flush);
        let items = h.item.iter().map(Entry::of);
        let step = h.step.map(|s| s.num);
        self.push_row(stream_id.as_bytes(), items, step, commit)
            .await;
    }

    /// A history row read in place from its frame (see [`super::row_frame`]):
    /// what [`Router::partial_history`] does with the same row decoded.
    pub async fn row(&mut self, row: RowFrame<'_>) {
        let items = row.items.iter().map(|&(k, x)| Entry::Plain(k, x));
        self.push_row(row.stream_id, items, row.step, row.commit)
            .await;
    }

    /// The run record: Init (a new run, or a resumed one).
    async fn start(&mut self, stream_id: &str, run: wb::Run) -> wb::RunUpdateResult {
        let stream = self
            .streams
            .entry(stream_id.to_owned())
            .or_insert_with(|| Stream::new(stream_id, StreamSettings::default()));
        if let Some(handle) = &stream.run {
            // A later run record: the script set run.name, tags, notes, group or
            // job_type. What changed becomes an edit of the run (as UpdateRun);
            // its id and project stay what Init gave it. The SDK is told the run.
            if let Some(mut edit) = map::run_edit(&handle.info(), &run) {
                let applied = match validate::update(&mut edit) {
                    Ok(()) => stream
                        .call(CALL_TIMEOUT, |reply| Command::Update { req: edit, reply })
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                if let Err(e) = applied {
                    tracing::warn!(run = %stream.run_id, "the script's change of the run's name, tags or notes is not applied: {e}");
                }
            }
            let Some(handle) = &stream.run else {
                return failed_run("the run is gone".into(), wb::ErrorCode::Unknown);
            };
            let reply = crate::proto::v1::InitResponse {
                run: Some(handle.info()),
                ..Default::default()
            };
            return ok_run(map::run_reply(&reply));
        }
        // Used in shared mode only: this process as one writer of the run.
        let writer_id = format!("wandb-{}-{}", stream.settings.pid, crate::runs::random_id());
        let mut req = match map::init_request(&run, &stream.settings, &writer_id) {
            Ok(r) => r,
            Err(e) => return failed_run(e.to_string(), wb::ErrorCode::Usage),
        };
        let writer_id = req.writer_id.clone();
        if let Err(e) = validate::init(&mut req) {
            return failed_run(e.to_string(), wb::ErrorCode::Usage);
        }
        let reply = match tokio::time::timeout(CALL_TIMEOUT, self.runs.init(req)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return failed_run(e.to_string(), wb::ErrorCode::Usage),
            Err(_) => {
                let why = format!("starting the run took over {} s", CALL_TIMEOUT.as_secs());
                return failed_run(why, wb::ErrorCode::Communication);
            }
        };
        let id = reply.run.as_ref().map(|r| r.id.clone()).unwrap_or_default();
        match self.runs.handle(&id) {
            Ok(h) => {
                let mut rows = self.rows.lock().await;
                rows.open(stream_id, h.clone(), &id, &writer_id);
                stream.run = Some(h);
                stream.run_id = id.clone();
                stream.writer_id = writer_id;
                ok_run(map::run_reply(&reply))
            }
            Err(e) => failed_run(e.to_string(), wb::ErrorCode::Unknown),
        }
    }

    /// A shared-mode writer that may not set the run's final state finishing
    /// (wandb before 0.31 sends no exit record for it): Finish of its writer, exit
    /// code 0, as an exit record would.
    pub(super) async fn finish_without_exit(&mut self, stream_id: &str) {
        let timeout = CALL_TIMEOUT + self.finish_timeout;
        if let Some(stream) = self.streams.get_mut(stream_id) {
            if stream.run.is_some() && !stream.exited {
                self.rows.lock().await.send().await;
                exit(stream, 0, timeout).await;
                self.rows.lock().await.remove(stream_id);
            }
        }
    }

    /// The connection closed: the rows read go to their runs, and runs without
    /// an exit record crashed.
    pub async fn close(&mut self) {
        self.rows.lock().await.close().await;
        for s in self.streams.values_mut() {
            s.crash().await;
        }
    }

    /// A sign of life for each open run (the connection is open), and whether it
    /// should stop.
    pub async fn heartbeat(&mut self) {
        for s in self.streams.values_mut() {
            if s.run.is_none() || s.exited {
                continue;
            }
            let writer_id = s.writer_id.clone();
            if let Ok(h) = s
                .call(CALL_TIMEOUT, |reply| Command::Heartbeat {
                    writer_id,
                    reply,
                })
                .await
            {
                s.should_stop = h.should_stop;
            }
        }
    }
}

fn ok_run(run: wb::Run) -> wb::RunUpdateResult {
    wb::RunUpdateResult {
        run: Some(run),
        error: None,
    }
}

fn failed_run(message: String, code: wb::ErrorCode) -> wb::RunUpdateResult {
    tracing::warn!("a wandb run was refused: {message}");
    wb::RunUpdateResult {
        run: None,
        error: Some(wb::ErrorInfo {
            message,
            code: code as i32,
        }),
    }
}

/// Logs what went wrong with a record the SDK does not wait for.
pub(super) fn report(stream: &Stream, what: &str, e: Option<impl std::fmt::Display>) {
    if let Some(e) = e {
        tracing::warn!(run = %stream.run_id, "{what} from the wandb SDK not applied: {e}");
    }
}

async fn update_summary(stream: &mut Stream, u: &wb::ItemUpdate) {
    let current = if map::is_nested(u) {
        match stream.get().await {
            Ok(g) => g.summary,
            Err(e) => return report(stream, "a summary update", Some(e)),
        }
    } else {
        Default::default()
    };
    let (summary, remove) = match map::update(u, &current) {
        Ok(x) => x,
        Err(e) => return report(stream, "a summary update", Some(e)),
    };
    let mut req = crate::proto::v1::UpdateSummaryRequest {
        run_id: stream.run_id.clone(),
        summary,
        remove,
    };
    if let Err(e) = validate::map(&mut req.summary, "summary") {
        return report(stream, "a summary update", Some(e));
    }
    let r = stream
        .call(CALL_TIMEOUT, |reply| Command::UpdateSummary { req, reply })
        .await;
    report(stream, "a summary update", r.err());
}

async fn update_config(stream: &mut Stream, u: &wb::ItemUpdate) {
    let current = if map::is_nested(u) {
        match stream.get().await {
            Ok(g) => g.config,
            Err(e) => return report(stream, "a config update", Some(e)),
        }
    } else {
        Default::default()
    };
    let (config, remove) = match map::update(u, &current) {
        Ok(x) => x,
        Err(e) => return report(stream, "a config update", Some(e)),
    };
    if config.is_empty() && remove.is_empty() {
        return;
    }
    let mut req = crate::proto::v1::UpdateConfigRequest {
        run_id: stream.run_id.clone(),
        config,
        remove,
    };
    if let Err(e) = validate::map(&mut req.config, "config") {
        return report(stream, "a config update", Some(e));
    }
    let r = stream
        .call(CALL_TIMEOUT, |reply| Command::UpdateConfig { req, reply })
        .await;
    report(stream, "a config update", r.err());
}

async fn save_files(stream: &mut Stream, f: &wb::Files) {
    let dir = stream.settings.files_dir.clone();
    for req in map::save_files(&stream.run_id, f, &dir) {
        if let Err(e) = validate::save(&req) {
            report(stream, "a save", Some(e));
            continue;
        }
        let r = stream
            .call(CALL_TIMEOUT, |reply| Command::SaveFiles { req, reply })
            .await;
        report(stream, "a save", r.err());
    }
}

async fn alert(stream: &mut Stream, a: &wb::Alert) {
    let mut req = map::alert(&stream.run_id, a);
    if let Err(e) = validate::alert(&mut req) {
        return report(stream, "an alert", Some(e));
    }
    let r = stream
        .call(CALL_TIMEOUT, |reply| Command::Alert { req, reply })
        .await;
    report(stream, "an alert", r.err());
}

async fn define_metric(stream: &mut Stream, m: &wb::Metric) {
    let Some(req) = map::define_metric(&stream.run_id, m) else {
        return;
    };
    if let Err(e) = crate::semantics::metrics::check(&req) {
        return report(stream, "a metric definition", Some(e));
    }
    let r = stream
        .call(CALL_TIMEOUT, |reply| Command::DefineMetric { req, reply })
        .await;
    report(stream, "a metric definition", r.err());
}

/// The exit record (the rows before it sent): the console's last partial line,
/// then Finish with the code.
async fn exit(stream: &mut Stream, code: i32, timeout: Duration) -> wb::ExitResult {
    if let Some(line) = stream.console.finish() {
        stream.output(vec![line]).await;
    }
    let writer_id = stream.writer_id.clone();
    let r = stream
        .call(timeout, |reply| Command::Finish {
            exit_code: code,
            writer_id,
            reply,
        })
        .await;
    let timed_out = matches!(&r, Err(RunError::Internal(_)));
    match r {
        Ok(f) => stream.finished = Some(f),
        Err(RunError::Ended { .. }) => {}
        Err(e) => report(stream, "the exit", Some(e)),
    }
    stream.exited = true;
    wb::ExitResult { timed_out }
}
