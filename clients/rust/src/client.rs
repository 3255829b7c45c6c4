//! The blocking API for Rust programs: [`Client`] opens runs, [`Run`] logs to one.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::connection::Connection;
use crate::proto;
use crate::run_link::RunLink;
use crate::sender::{Row, Sender, SenderSettings, SenderStats};
use crate::status::{Code, Status};
use crate::steps::StepMirror;

const HEALTH_SERVICE: &str = "runcore.v1.RunService";
/// How long connecting waits for the sidecar's health check.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long Init may take (the Python client's init_timeout).
const INIT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long Finish may take: it waits up to the sidecar's --finish-timeout for
/// remote backends (the Python client's rpc_timeout).
const FINISH_TIMEOUT: Duration = Duration::from_secs(300);

/// A sidecar to open runs on.
pub struct Client {
    connection: Connection,
    settings: SenderSettings,
}

impl Client {
    /// Connects to the sidecar at `address` (see [`Connection::new`]) and checks
    /// that it serves; UNAVAILABLE when it does not answer.
    pub fn connect(address: &str, token: Option<String>) -> Result<Client, Status> {
        let connection = Connection::new(address, token)?;
        let health = connection.health(HEALTH_SERVICE, CONNECT_TIMEOUT)?;
        if health != "SERVING" {
            return Err(Status::new(
                Code::Unavailable,
                format!("the sidecar at {address} is not serving runs ({health})"),
            ));
        }
        Ok(Client {
            connection,
            settings: SenderSettings::default(),
        })
    }

    /// The same client, its runs' senders set up with `settings`.
    pub fn with_sender_settings(self, settings: SenderSettings) -> Client {
        Client { settings, ..self }
    }

    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// Starts (or resumes, per `request.resume`) a run. Fills in the client info
    /// (pid, hostname, boot id) and a writer id when the request has none; rows are
    /// numbered after the last batch the sidecar holds from this writer.
    pub fn init(&self, mut request: proto::InitRequest) -> Result<Run, Status> {
        fill_client_info(request.client.get_or_insert_with(Default::default));
        if request.writer_id.is_empty() {
            request.writer_id = new_writer_id();
        }
        let started: proto::InitResponse = self.connection.call("Init", &request, INIT_TIMEOUT)?;
        let info = started.run.clone().unwrap_or_default();
        let mut settings = self.settings.clone();
        if info.client_timeout > 0.0 {
            // Any RPC is a sign of life; an idle run heartbeats well inside its timeout.
            let third = Duration::from_secs_f64(info.client_timeout / 3.0);
            settings.heartbeat_every = settings.heartbeat_every.min(third);
        }
        request.id = info.id.clone();
        request.project = info.project.clone();
        let link = Arc::new(RunLink::new(self.connection.clone(), request));
        let sender = Sender::start(
            self.connection.clone(),
            info.id.clone(),
            started.writer_id.clone(),
            started.last_seq + 1,
            settings,
            Arc::clone(&link) as Arc<dyn crate::sender::Link>,
        );
        Ok(Run {
            connection: self.connection.clone(),
            writer_id: started.writer_id,
            info,
            steps: Mutex::new(StepMirror::new(
                u64::try_from(started.starting_step).unwrap_or(0),
            )),
            sender,
            link,
        })
    }
}

/// An open run: log rows to it, then finish it. Rows travel in the background
/// (see [`Sender`]); [`Run::flush`] waits for them.
pub struct Run {
    connection: Connection,
    writer_id: String,
    info: proto::RunInfo,
    /// Also keeps rows in order: a row is queued while it is held.
    steps: Mutex<StepMirror>,
    sender: Sender,
    link: Arc<RunLink>,
}

impl Run {
    /// The run as Init returned it.
    pub fn info(&self) -> &proto::RunInfo {
        &self.info
    }

    pub fn id(&self) -> &str {
        &self.info.id
    }

    /// The step the next committed row gets.
    pub fn step(&self) -> u64 {
        self.steps().step
    }

    /// W&B's `run.log(data, step=, commit=)` for numbers. False when the row is
    /// dropped: a step smaller than the run's (or negative), as the sidecar would.
    pub fn log<'k>(
        &self,
        data: impl IntoIterator<Item = (&'k str, f64)>,
        step: Option<i64>,
        commit: Option<bool>,
    ) -> bool {
        let scalars = data.into_iter().map(|(k, v)| (Arc::from(k), v)).collect();
        self.log_row(Row {
            scalars,
            step,
            commit,
            ..Row::default()
        })
    }

    /// As [`Run::log`], for any values (strings, histograms, nested maps...).
    pub fn log_values<'k>(
        &self,
        data: impl IntoIterator<Item = (&'k str, proto::Value)>,
        step: Option<i64>,
        commit: Option<bool>,
    ) -> bool {
        let values: Vec<(Arc<str>, proto::Value)> =
            data.into_iter().map(|(k, v)| (Arc::from(k), v)).collect();
        let value_bytes = values
            .iter()
            .map(|(_, v)| prost::Message::encoded_len(v))
            .sum();
        self.log_row(Row {
            values,
            value_bytes,
            step,
            commit,
            ..Row::default()
        })
    }

    fn log_row(&self, mut row: Row) -> bool {
        let Ok(step) = row.step.map(u64::try_from).transpose() else {
            return false;
        };
        let has_data = !row.scalars.is_empty() || !row.values.is_empty();
        let mut steps = self.steps();
        if !steps.advance(has_data, step, row.commit) {
            return false;
        }
        row.timestamp = unix_now();
        self.sender.put(row);
        true
    }

    /// Waits until every row logged so far is acknowledged by the sidecar (or
    /// lost: see [`Run::stats`]); false after `timeout`.
    pub fn flush(&self, timeout: Option<Duration>) -> bool {
        self.sender.flush(timeout)
    }

    /// The sender's counters; `dead` says why it gave up, if it did.
    pub fn stats(&self) -> SenderStats {
        self.sender.stats()
    }

    /// The warnings the run gave (each kind once): rows refused or lost, the run
    /// ended by the sidecar, a stop asked for. They are also printed to stderr.
    pub fn warnings(&self) -> Vec<String> {
        self.link.warnings()
    }

    /// An operator asked the run to stop (`runcore runs stop`, StopRun): the
    /// program may end it cleanly.
    pub fn stop_requested(&self) -> bool {
        self.link.stop_requested()
    }

    /// Sends every row, waits for the acks, then finishes the run (exit code 0 or
    /// none: finished; anything else: failed).
    pub fn finish(self, exit_code: Option<i32>) -> Result<proto::FinishResponse, Status> {
        self.sender.close(None);
        self.steps().finish();
        let request = proto::FinishRequest {
            run_id: self.info.id.clone(),
            exit_code,
            writer_id: self.writer_id.clone(),
        };
        self.link.finished();
        self.connection.call("Finish", &request, FINISH_TIMEOUT)
    }

    fn steps(&self) -> MutexGuard<'_, StepMirror> {
        self.steps
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Who is logging, so that the sidecar notices a client process that dies.
fn fill_client_info(client: &mut proto::ClientInfo) {
    if client.pid == 0 {
        client.pid = i64::from(std::process::id());
    }
    if client.hostname.is_empty() {
        client.hostname = read_kernel_value("/proc/sys/kernel/hostname");
    }
    if client.boot_id.is_empty() {
        client.boot_id = read_kernel_value("/proc/sys/kernel/random/boot_id");
    }
}

/// A value the kernel publishes (empty where the OS has no /proc: the sidecar then
/// tells clients apart by pid alone).
fn read_kernel_value(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// A writer id unique to this run object: the process and the time it was made.
fn new_writer_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("rs-{:x}-{nanos:x}", std::process::id())
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
