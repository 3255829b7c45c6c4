//! The [`Link`] of a [`Run`](crate::Run): how its sender re-attaches the run,
//! waits for the sidecar, and reports.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::connection::Connection;
use crate::contract::{classify, Action, Kind};
use crate::proto::{self, RunState};
use crate::runtime::runtime;
use crate::sender::{AttachError, Link};

/// How long asking the sidecar about the run may take.
const GET_RUN_TIMEOUT: Duration = Duration::from_secs(30);
const REINIT_TIMEOUT: Duration = Duration::from_secs(30);
/// Waits between looks for a sidecar that went away: short first, then at most
/// this.
const FIRST_LOOK: Duration = Duration::from_millis(50);
const LONGEST_LOOK: Duration = Duration::from_secs(1);

pub(crate) struct RunLink {
    connection: Connection,
    /// The Init that opened the run (its id and project filled in), sent again with
    /// resume ALLOW to a sidecar that lost the run.
    init: proto::InitRequest,
    /// The sidecar was away since the last attach: ask it about the run.
    reconnected: AtomicBool,
    /// The run finished through this client: nothing to report about it ending.
    finished: AtomicBool,
    stop_requested: AtomicBool,
    /// Kinds warned about, and the messages, in order.
    warned: Mutex<(HashSet<String>, Vec<String>)>,
}

impl RunLink {
    pub fn new(connection: Connection, init: proto::InitRequest) -> Self {
        RunLink {
            connection,
            init,
            reconnected: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            stop_requested: AtomicBool::new(false),
            warned: Mutex::new((HashSet::new(), Vec::new())),
        }
    }

    pub fn warnings(&self) -> Vec<String> {
        self.warned().1.clone()
    }

    pub fn stop_requested(&self) -> bool {
        self.stop_requested.load(Ordering::Relaxed)
    }

    pub fn finished(&self) {
        self.finished.store(true, Ordering::Relaxed);
    }

    fn warned(&self) -> std::sync::MutexGuard<'_, (HashSet<String>, Vec<String>)> {
        self.warned
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn reinit(&self) -> Result<(), AttachError> {
        let mut request = self.init.clone();
        request.resume = proto::Resume::Allow as i32;
        self.connection
            .call::<_, proto::InitResponse>("Init", &request, REINIT_TIMEOUT)
            .map(|_| ())
            .map_err(AttachError::Rpc)
    }
}

impl Link for RunLink {
    fn attach(&self, force: bool) -> Result<(), AttachError> {
        if !force && !self.reconnected.load(Ordering::Relaxed) {
            return Ok(());
        }
        let asked = proto::GetRunRequest {
            run_id: self.init.id.clone(),
        };
        match self
            .connection
            .call::<_, proto::GetRunResponse>("GetRun", &asked, GET_RUN_TIMEOUT)
        {
            Ok(reply) => {
                let state = reply.run.map_or(RunState::Unspecified, |run| run.state());
                if !matches!(state, RunState::Running | RunState::Preempting) {
                    let why = format!(
                        "run {} was ended by the sidecar ({}); it is not resumed automatically",
                        self.init.id,
                        state
                            .as_str_name()
                            .trim_start_matches("RUN_STATE_")
                            .to_lowercase()
                    );
                    if !self.finished.load(Ordering::Relaxed) {
                        self.warn("ended", &format!("runcore: {why}"));
                    }
                    return Err(AttachError::Ended(why));
                }
            }
            Err(status) if classify(status.code, Kind::Unary) == Action::Reinit => self.reinit()?,
            Err(status) => return Err(AttachError::Rpc(status)),
        }
        self.reconnected.store(false, Ordering::Relaxed);
        Ok(())
    }

    fn recover(&self, timeout: Duration) -> Result<Connection, String> {
        let deadline = Instant::now() + timeout;
        let mut pause = FIRST_LOOK;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let answer = self
                .connection
                .health("runcore.v1.RunService", left.max(FIRST_LOOK));
            if answer.as_deref() == Ok("SERVING") {
                self.reconnected.store(true, Ordering::Relaxed);
                return Ok(self.connection.clone());
            }
            if Instant::now() + pause >= deadline {
                let last = answer.unwrap_or_else(|e| e.to_string());
                return Err(format!(
                    "no sidecar served at {} within {timeout:?} (last answer: {last})",
                    self.connection.address()
                ));
            }
            // The timer is made inside the runtime: it needs its clock.
            runtime().block_on(async move { tokio::time::sleep(pause).await });
            pause = (pause * 2).min(LONGEST_LOOK);
        }
    }

    fn on_dropped(&self, row: &proto::DroppedRow) {
        self.warn(
            "dropped",
            &format!(
                "runcore: run {}: the sidecar dropped a row at step {} (the run is at step {}): {}",
                self.init.id, row.step, row.current_step, row.reason
            ),
        );
    }

    fn warn(&self, kind: &str, message: &str) {
        let mut warned = self.warned();
        if warned.0.insert(kind.to_owned()) {
            warned.1.push(message.to_owned());
            eprintln!("{message}");
        }
    }

    fn should_stop(&self) {
        self.stop_requested.store(true, Ordering::Relaxed);
        self.warn(
            "stop",
            &format!(
                "runcore: run {} was asked to stop (runcore runs stop, or StopRun)",
                self.init.id
            ),
        );
    }
}
