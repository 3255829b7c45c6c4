//! `run.json`: a run's identity and state as the store shows them, and its last
//! heartbeat, kept as the file's modification time between rewrites.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::{io_err, StoreError, FILES_DIR, RUN_JSON};
use crate::proto::v1::{ClientInfo, RunInfo};
use crate::semantics::state::{state_from_name, state_name, RunState};

/// run.json's text for a run's state.
pub fn run_json(state: &RunState, heartbeat_interval: f64) -> Result<Vec<u8>, String> {
    serde_json::to_vec_pretty(&RunFile::from_state(state, heartbeat_interval))
        .map_err(|e| e.to_string())
}

/// `run.json`.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct RunFile {
    pub id: String,
    pub name: String,
    pub entity: String,
    pub project: String,
    pub group: String,
    pub job_type: String,
    pub tags: Vec<String>,
    pub notes: String,
    pub state: String,
    pub start_time: f64,
    pub end_time: Option<f64>,
    pub exit_code: Option<i32>,
    pub last_heartbeat: f64,
    #[serde(default)]
    pub client_timeout: f64,
    #[serde(default)]
    pub heartbeat_interval: f64,
    #[serde(default)]
    pub stop_requested: bool,
    pub step: i64,
    pub history_rows: i64,
    pub resumed: bool,
    pub client_pid: Option<i64>,
    pub client_host: Option<String>,
    pub client_boot_id: Option<String>,
    /// Why the run ended without its client, when something says (the last
    /// console lines of a W&B SDK script that crashed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<String>,
}

impl RunFile {
    pub fn from_state(s: &RunState, heartbeat_interval: f64) -> Self {
        let i = &s.info;
        let client = s.client.as_ref();
        let opt = |v: &str| (!v.is_empty()).then(|| v.to_owned());
        RunFile {
            id: i.id.clone(),
            name: i.name.clone(),
            entity: i.entity.clone(),
            project: i.project.clone(),
            group: i.group.clone(),
            job_type: i.job_type.clone(),
            tags: i.tags.clone(),
            notes: i.notes.clone(),
            state: state_name(i.state()).to_owned(),
            start_time: i.start_time,
            end_time: (i.end_time > 0.0).then_some(i.end_time),
            exit_code: i.exit_code,
            last_heartbeat: i.last_heartbeat,
            client_timeout: i.client_timeout,
            heartbeat_interval,
            stop_requested: i.stop_requested,
            step: i.step,
            history_rows: i.history_rows,
            resumed: i.resumed,
            client_pid: client.map(|c| c.pid).filter(|p| *p > 0),
            client_host: client.and_then(|c| opt(&c.hostname)),
            client_boot_id: client.and_then(|c| opt(&c.boot_id)),
            end_reason: opt(&s.end_reason),
        }
    }

    pub fn to_info(&self, dir: &Path) -> RunInfo {
        let mut info = RunInfo {
            id: self.id.clone(),
            name: self.name.clone(),
            entity: self.entity.clone(),
            project: self.project.clone(),
            group: self.group.clone(),
            job_type: self.job_type.clone(),
            tags: self.tags.clone(),
            notes: self.notes.clone(),
            path: crate::semantics::state::run_path(&self.entity, &self.project, &self.id),
            dir: dir.join(FILES_DIR).display().to_string(),
            start_time: self.start_time,
            end_time: self.end_time.unwrap_or(0.0),
            exit_code: self.exit_code,
            step: self.step,
            history_rows: self.history_rows,
            last_heartbeat: self.last_heartbeat,
            client_timeout: self.client_timeout,
            stop_requested: self.stop_requested,
            resumed: self.resumed,
            ..Default::default()
        };
        info.set_state(state_from_name(&self.state));
        info
    }

    /// Whether the file says the run is open (running or preempting).
    pub fn is_open(&self) -> bool {
        matches!(self.state.as_str(), "running" | "preempting")
    }

    /// Whether the run says it is open but its heartbeat is too old for that to be
    /// true (its sidecar died): shown as crashed.
    pub fn is_stale(&self, now: f64) -> bool {
        let limit = crate::liveness::stale_after(self.client_timeout, self.heartbeat_interval);
        self.is_open() && limit > 0.0 && now - self.last_heartbeat > limit
    }

    /// The state to show: crashed for a stale run.
    pub fn shown_state(&self, now: f64) -> &str {
        if self.is_stale(now) {
            "crashed"
        } else {
            &self.state
        }
    }

    pub fn client(&self) -> Option<ClientInfo> {
        self.client_pid.map(|pid| ClientInfo {
            pid,
            hostname: self.client_host.clone().unwrap_or_default(),
            boot_id: self.client_boot_id.clone().unwrap_or_default(),
        })
    }
}

/// Reads run.json. An open run's `last_heartbeat` is the later of the field and
/// the file's modification time: a live run's heartbeats only touch the file
/// (see [`stamp_heartbeat`]).
pub fn read_run_file(dir: &Path) -> Result<RunFile, StoreError> {
    let path = dir.join(RUN_JSON);
    let mut file = File::open(&path).map_err(io_err(&path))?;
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(io_err(&path))?;
    let mut run: RunFile = serde_json::from_str(&text).map_err(|e| StoreError::Json {
        path,
        problem: e.to_string(),
    })?;
    if run.is_open() {
        if let Ok(modified) = file.metadata().and_then(|m| m.modified()) {
            run.last_heartbeat = run.last_heartbeat.max(unix_time(modified));
        }
    }
    Ok(run)
}

/// Records a live run's heartbeat at `time` (Unix seconds) as its run.json's
/// modification time: one metadata update instead of a rewrite of the file.
/// Every write of run.json sets that time to the run's last heartbeat too, so
/// the file's time is the heartbeat whoever wrote it last (an edit of a stored
/// run keeps a stale run stale). Blocking, but writes no data.
pub fn stamp_heartbeat(dir: &Path, time: f64) -> Result<(), StoreError> {
    use rustix::fs::{utimensat, AtFlags, Timespec, Timestamps, CWD, UTIME_OMIT};
    let path = dir.join(RUN_JSON);
    // The same conversion as every write of run.json sets (`system_time`).
    let since = system_time(time)
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let times = Timestamps {
        last_access: Timespec {
            tv_sec: 0,
            tv_nsec: UTIME_OMIT,
        },
        last_modification: Timespec {
            tv_sec: since.as_secs() as i64,
            tv_nsec: i64::from(since.subsec_nanos()),
        },
    };
    // One syscall on the path (no open and close of the file).
    utimensat(CWD, &path, &times, AtFlags::empty()).map_err(|e| io_err(&path)(e.into()))
}

pub(super) fn system_time(unix: f64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs_f64(unix.max(0.0))
}

fn unix_time(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
