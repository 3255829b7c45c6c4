//! One run of an SDK connection (the SDK calls it a stream): its settings, its
//! run actor, the console text not yet sent to it, and the calls to the actor,
//! each with a deadline. Its history rows wait in [`super::rows`].

use std::time::Duration;

use super::console::Console;
use super::map::StreamSettings;
use crate::proto::v1::{FinishResponse, GetRunResponse, RunState};
use crate::run::{Command, Reply, RunError, RunHandle};

/// Longest wait for a run's actor to answer one call (Finish gets the backend's
/// finish timeout on top): a stuck actor fails the call instead of hanging the SDK.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Stream {
    pub settings: StreamSettings,
    /// The run's actor, once the run record made it.
    pub run: Option<RunHandle>,
    pub run_id: String,
    /// This process as a writer of a shared run (empty otherwise): its rows,
    /// heartbeats, exit and crash are its own.
    pub writer_id: String,
    pub console: Console,
    /// History arrived for this stream while it had no open run (it was
    /// dropped, and said so once).
    pub rows_dropped: bool,
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
            console: Console::default(),
            rows_dropped: false,
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
    pub async fn crash(&mut self) {
        if self.exited || self.run.is_none() {
            return;
        }
        if let Some(line) = self.console.finish() {
            self.output(vec![line]).await;
        }
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
