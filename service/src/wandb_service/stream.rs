//! One run of an SDK connection (the SDK calls it a stream): its settings, its
//! run actor, the history rows and console text not yet sent to it, and the calls
//! to the actor, each with a deadline.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::console::Console;
use super::history::PendingLog;
use super::map::StreamSettings;
use crate::proto::v1::{FinishResponse, GetRunResponse, LogAck, RunState};
use crate::run::{Command, LogReply, Reply, RunError, RunHandle, StreamState};

/// Longest wait for a run's actor to answer one call (Finish gets the backend's
/// finish timeout on top): a stuck actor fails the call instead of hanging the SDK.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Rows gathered before they go to the actor even while more frames are waiting.
pub const MAX_BATCH_ROWS: usize = 1024;

pub struct Stream {
    pub settings: StreamSettings,
    /// The run's actor, once the run record made it.
    pub run: Option<RunHandle>,
    pub run_id: String,
    /// This process as a writer of a shared run (empty otherwise): its rows,
    /// heartbeats, exit and crash are its own.
    pub writer_id: String,
    pub log: PendingLog,
    pub console: Console,
    /// The SDK sent its exit record: the run is finished, not crashed, when the
    /// connection closes.
    pub exited: bool,
    /// The last heartbeat said the run should stop.
    pub should_stop: bool,
    /// The run as Finish left it (its actor has stopped): what the SDK's questions
    /// after the exit are answered from.
    pub finished: Option<FinishResponse>,
}

impl Stream {
    pub fn new(id: &str, settings: StreamSettings) -> Self {
        Stream {
            settings,
            run: None,
            run_id: id.to_owned(),
            writer_id: String::new(),
            log: PendingLog::new(id, ""),
            console: Console::default(),
            exited: false,
            should_stop: false,
            finished: None,
        }
    }

    /// Calls the run's actor with a deadline.
    pub async fn call<T>(
        &self,
        timeout: Duration,
        make: impl FnOnce(Reply<T>) -> Command,
    ) -> Result<T, RunError> {
        let run = self.run.as_ref().ok_or(RunError::Closed)?;
        match tokio::time::timeout(timeout, run.call(make)).await {
            Ok(r) => r,
            Err(_) => Err(RunError::Internal(format!(
                "run {} did not answer within {} s",
                self.run_id,
                timeout.as_secs()
            ))),
        }
    }

    /// The run's details: from its actor, or after the exit from what Finish said.
    pub async fn get(&self) -> Result<GetRunResponse, RunError> {
        if let Some(f) = &self.finished {
            return Ok(GetRunResponse {
                run: f.run.clone(),
                summary: f.summary.clone(),
                ..Default::default()
            });
        }
        self.call(CALL_TIMEOUT, |reply| Command::Get { reply })
            .await
    }

    /// Sends the gathered history rows to the actor. Their acknowledgements go to
    /// `acks` (the SDK does not wait for them); the actor's bounded queue slows this
    /// connection down when the disk is slower than the script.
    pub async fn flush_log(&mut self, acks: &mpsc::Sender<Result<LogAck, RunError>>) {
        let Some(batch) = self.log.take() else {
            return;
        };
        let Some(run) = &self.run else {
            tracing::warn!(run = %self.run_id, "history logged before the run started was dropped");
            return;
        };
        // Each batch has its own failure flag: one failed batch does not refuse the
        // ones after it (the SDK has no way to resend).
        let reply = LogReply::Stream(acks.clone(), Arc::new(StreamState::default()));
        let cmd = Command::Log { batch, reply };
        match tokio::time::timeout(CALL_TIMEOUT, run.send(cmd)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(run = %self.run_id, "logged rows were refused, and are lost: {e}")
            }
            Err(_) => {
                tracing::error!(run = %self.run_id, "the run did not take logged rows within {} s; they are lost", CALL_TIMEOUT.as_secs())
            }
        }
    }

    /// Sends console lines to output.log.
    pub async fn output(&mut self, lines: Vec<String>) {
        if lines.is_empty() || self.run.is_none() || self.exited {
            return;
        }
        if let Err(e) = self
            .call(CALL_TIMEOUT, |reply| Command::Output { lines, reply })
            .await
        {
            tracing::warn!(run = %self.run_id, "console output not recorded: {e}");
        }
    }

    /// The connection closed without an exit record: the run crashed (or was
    /// preempted, if it was preempting), with the console's last lines as the reason.
    pub async fn crash(&mut self, acks: &mpsc::Sender<Result<LogAck, RunError>>) {
        if self.exited || self.run.is_none() {
            return;
        }
        if let Some(line) = self.console.finish() {
            self.output(vec![line]).await;
        }
        self.flush_log(acks).await;
        let mut reason = String::from(
            "the wandb SDK's connection closed without an exit record (an uncaught exception, or the process was killed)",
        );
        let recent: Vec<&str> = self.console.recent().collect();
        if !recent.is_empty() {
            reason.push_str("; its last console lines:\n");
            reason.push_str(&recent.join("\n"));
        }
        let preempting = self
            .run
            .as_ref()
            .is_some_and(|r| r.info().state() == RunState::Preempting);
        let state = if preempting {
            RunState::Preempted
        } else {
            RunState::Crashed
        };
        let writer_id = self.writer_id.clone();
        match self
            .call(CALL_TIMEOUT, |reply| Command::End {
                state,
                reason,
                writer_id,
                reply,
            })
            .await
        {
            Ok(_) => {
                tracing::warn!(run = %self.run_id, "run {}: the wandb SDK's connection closed without an exit record", crate::semantics::state::state_name(state))
            }
            Err(RunError::Ended { .. } | RunError::Closed) => {}
            Err(e) => tracing::error!(run = %self.run_id, "could not end the run: {e}"),
        }
        self.exited = true;
    }
}
