//! The embedded local store: one directory per run,
//! `<data-dir>/<project>/<run_id>/`, holding plain files that any tool can read.
//! Everything in it is derived from the run's transaction log (`run.wal`), so a run
//! recovered after a crash has its files rewritten from the log.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::proto::v1::Value;
use crate::semantics::state::{
    state_name, AlertEvent, CommittedRow, OutputEvent, RunState, Sink, SystemEvent, WriterEvent,
};
use crate::value::{self, write_json_f64, write_json_str};

mod rewrites;
mod run_file;
pub use self::rewrites::{write_atomic, Rewrites};
use self::run_file::system_time;
pub use self::run_file::{read_run_file, run_json, stamp_heartbeat, RunFile};

pub const RUN_JSON: &str = "run.json";
pub const CONFIG_JSON: &str = "config.json";
pub const METADATA_JSON: &str = "metadata.json";
pub const HISTORY_JSONL: &str = "history.jsonl";
pub const SUMMARY_JSON: &str = "summary.json";
pub const EVENTS_JSONL: &str = "events.jsonl";
pub const ALERTS_JSONL: &str = "alerts.jsonl";
/// Console lines of the client (the W&B SDK's captured stdout and stderr).
pub const OUTPUT_LOG: &str = "output.log";
pub const FILES_DIR: &str = "files";
pub const WAL: &str = "run.wal";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("local store {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("local store {path}: unreadable JSON: {problem}")]
    Json { path: PathBuf, problem: String },
}

pub fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The directory of a run.
pub fn run_dir(data_dir: &Path, project: &str, id: &str) -> PathBuf {
    data_dir.join(project).join(id)
}

/// Finds the directory of run `id` in any project.
pub fn find_run(data_dir: &Path, id: &str) -> Option<PathBuf> {
    // An id is one plain path component (the API checks it; this keeps any
    // other caller inside the data dir too).
    if id.is_empty() || id == "." || id == ".." || id.contains(['/', '\\', '\0']) {
        return None;
    }
    let projects = fs::read_dir(data_dir).ok()?;
    projects
        .flatten()
        .map(|p| p.path().join(id))
        .find(|dir| dir.join(WAL).is_file())
}

/// Every run directory in the store (those holding a transaction log).
pub fn all_runs(data_dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(projects) = fs::read_dir(data_dir) else {
        return out;
    };
    for project in projects.flatten() {
        if let Ok(runs) = fs::read_dir(project.path()) {
            out.extend(
                runs.flatten()
                    .map(|r| r.path())
                    .filter(|dir| dir.join(WAL).is_file()),
            );
        }
    }
    out.sort();
    out
}

/// Reads a JSON object file of the store (config.json, summary.json).
pub fn read_json_map(path: &Path) -> Result<BTreeMap<String, Value>, StoreError> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(io_err(path)(e)),
    };
    value::parse_json_map(&text).map_err(|e| StoreError::Json {
        path: path.to_owned(),
        problem: e.to_string(),
    })
}

/// Lists the regular files under a run's files/ directory, relative to it,
/// sorted by name. Blocking; reads directories only (no file is stat'ed).
pub fn list_files(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => walk(root, &path, out),
                Ok(t) if t.is_file() => {
                    if let Ok(rel) = path.strip_prefix(root) {
                        out.push(rel.display().to_string());
                    }
                }
                _ => {}
            }
        }
    }
    let root = dir.join(FILES_DIR);
    let mut out = Vec::new();
    walk(&root, &root, &mut out);
    out.sort();
    out
}

/// Suffix of the line files a rebuild writes before they replace the store's.
const REBUILD: &str = ".rebuild";

/// Lines in a file (0 if it cannot be read).
fn count_lines(path: &Path) -> usize {
    use std::io::Read;
    let Ok(mut f) = File::open(path) else {
        return 0;
    };
    let mut buf = vec![0u8; 256 * 1024];
    let mut n = 0;
    while let Ok(read) = f.read(&mut buf) {
        if read == 0 {
            break;
        }
        n += buf[..read].iter().filter(|b| **b == b'\n').count();
    }
    n
}

/// `<dir>/<prefix><unix time>`, with `.1`, `.2`... if that is taken.
pub fn unused_name(dir: &Path, prefix: &str) -> PathBuf {
    let base = dir.join(format!("{prefix}{}", crate::clock::now() as u64));
    let mut path = base.clone();
    let mut i = 0;
    while fs::symlink_metadata(&path).is_ok() {
        i += 1;
        path = PathBuf::from(format!("{}.{i}", base.display()));
    }
    path
}

/// The writer of a run's store files. Line files are buffered and flushed by the
/// run's periodic tick and at finish; a write error is kept for the run to report
/// (the transaction log still holds the data).
pub struct StoreWriter {
    dir: PathBuf,
    history: BufWriter<File>,
    events: BufWriter<File>,
    alerts: BufWriter<File>,
    output: BufWriter<File>,
    /// Second handles on the line files, fsynced on a blocking thread.
    line_files: Vec<(PathBuf, Arc<File>)>,
    line: String,
    error: Option<StoreError>,
}

impl StoreWriter {
    /// Opens the store files of a run directory. `fresh` truncates the line files
    /// (a new run, or a run whose files are rebuilt from its log).
    pub fn open(dir: &Path, fresh: bool) -> Result<Self, StoreError> {
        Self::open_files(dir, "", fresh)
    }

    /// A writer that rebuilds the line files from the log into `<name>.rebuild`
    /// files; [`StoreWriter::finish_rebuild`] puts them in place, so a rebuild
    /// that fails (a full disk) leaves the store as it was.
    pub fn rebuild(dir: &Path) -> Result<Self, StoreError> {
        Self::open_files(dir, REBUILD, true)
    }

    /// Syncs the rebuilt line files, moves them over the store's and reopens them
    /// for appending. With `keep_longer`, an old history.jsonl with more rows than
    /// the rebuilt one is not overwritten: it is kept as
    /// `history.jsonl.before-recovery-<unix time>`, whose path is returned.
    pub fn finish_rebuild(
        mut self,
        keep_longer: bool,
    ) -> Result<(StoreWriter, Option<PathBuf>), StoreError> {
        self.flush();
        for (path, file) in &self.line_files {
            if let Err(e) = file.sync_data() {
                self.error.get_or_insert_with(|| io_err(path)(e));
            }
        }
        if let Some(e) = self.take_error() {
            return Err(e);
        }
        let dir = self.dir.clone();
        drop(self);
        let mut kept = None;
        for name in [HISTORY_JSONL, EVENTS_JSONL, ALERTS_JSONL, OUTPUT_LOG] {
            let (old, new) = (dir.join(name), dir.join(format!("{name}{REBUILD}")));
            if name == HISTORY_JSONL && keep_longer && count_lines(&old) > count_lines(&new) {
                let to = unused_name(&dir, &format!("{name}.before-recovery-"));
                fs::rename(&old, &to).map_err(io_err(&old))?;
                kept = Some(to);
            }
            fs::rename(&new, &old).map_err(io_err(&old))?;
        }
        Ok((StoreWriter::open(&dir, false)?, kept))
    }

    /// Drops a rebuild that cannot be finished, removing its files.
    pub fn abandon(self) {
        let dir = self.dir.clone();
        drop(self);
        for name in [HISTORY_JSONL, EVENTS_JSONL, ALERTS_JSONL, OUTPUT_LOG] {
            let _ = fs::remove_file(dir.join(format!("{name}{REBUILD}")));
        }
    }

    fn open_files(dir: &Path, suffix: &str, fresh: bool) -> Result<Self, StoreError> {
        fs::create_dir_all(dir.join(FILES_DIR)).map_err(io_err(dir))?;
        let open = |name: &str| -> Result<BufWriter<File>, StoreError> {
            let path = dir.join(format!("{name}{suffix}"));
            let file = if fresh {
                File::create(&path)
            } else {
                fs::OpenOptions::new().create(true).append(true).open(&path)
            }
            .map_err(io_err(&path))?;
            Ok(BufWriter::with_capacity(64 * 1024, file))
        };
        let (history, events, alerts, output) = (
            open(HISTORY_JSONL)?,
            open(EVENTS_JSONL)?,
            open(ALERTS_JSONL)?,
            open(OUTPUT_LOG)?,
        );
        let mut line_files = Vec::new();
        for (w, name) in [
            (&history, HISTORY_JSONL),
            (&events, EVENTS_JSONL),
            (&alerts, ALERTS_JSONL),
            (&output, OUTPUT_LOG),
        ] {
            let path = dir.join(format!("{name}{suffix}"));
            let clone = w.get_ref().try_clone().map_err(io_err(&path))?;
            line_files.push((path, Arc::new(clone)));
        }
        Ok(StoreWriter {
            dir: dir.to_owned(),
            history,
            events,
            alerts,
            output,
            line_files,
            line: String::with_capacity(1024),
            error: None,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// After a write: keeps its first error; drops a long line's buffer.
    fn keep(&mut self, r: io::Result<()>, name: &str) {
        if self.line.capacity() > crate::memory::SCRATCH_BYTES {
            self.line = String::new();
        }
        if let Err(e) = r {
            if self.error.is_none() {
                self.error = Some(io_err(&self.dir.join(name))(e));
            }
        }
    }

    /// Whether a write failed since the last [`StoreWriter::take_error`].
    pub fn failed(&self) -> bool {
        self.error.is_some()
    }

    /// The first write error since the last call.
    pub fn take_error(&mut self) -> Option<StoreError> {
        self.error.take()
    }

    /// Pushes buffered lines to the files.
    pub fn flush(&mut self) {
        let r = self.history.flush();
        self.keep(r, HISTORY_JSONL);
        let r = self.events.flush();
        self.keep(r, EVENTS_JSONL);
        let r = self.alerts.flush();
        self.keep(r, ALERTS_JSONL);
        let r = self.output.flush();
        self.keep(r, OUTPUT_LOG);
    }

    /// The line files, to fsync on another thread once flushed.
    pub fn line_files(&self) -> Vec<(PathBuf, Arc<File>)> {
        self.line_files.clone()
    }

    /// Rewrites run.json. Blocking.
    pub fn write_run(
        &self,
        state: &RunState,
        heartbeat_interval: f64,
        durable: bool,
    ) -> Result<(), StoreError> {
        let text = run_json(state, heartbeat_interval).map_err(|problem| StoreError::Json {
            path: self.dir.join(RUN_JSON),
            problem,
        })?;
        let stamp = Some(system_time(state.info.last_heartbeat));
        rewrites::write_stamped(&self.dir.join(RUN_JSON), &text, durable, stamp)
    }

    /// Writes the buffered events.jsonl lines now (a system-metrics sample's
    /// line is written at once, so an idle run needs no timed flush for it).
    pub fn flush_events(&mut self) {
        let r = self.events.flush();
        self.keep(r, EVENTS_JSONL);
    }

    pub fn write_config(&self, config: &BTreeMap<String, Value>) -> Result<(), StoreError> {
        write_atomic(
            &self.dir.join(CONFIG_JSON),
            value::map_to_json(config).as_bytes(),
            false,
        )
    }

    pub fn write_summary(
        &self,
        summary: &BTreeMap<String, Value>,
        durable: bool,
    ) -> Result<(), StoreError> {
        write_atomic(
            &self.dir.join(SUMMARY_JSON),
            value::map_to_json(summary).as_bytes(),
            durable,
        )
    }

    /// Writes metadata.json unless it exists.
    pub fn write_metadata(&self, metadata: &str) -> Result<(), StoreError> {
        let path = self.dir.join(METADATA_JSON);
        if path.exists() {
            return Ok(());
        }
        write_atomic(&path, metadata.as_bytes(), false)
    }
}

impl Sink for StoreWriter {
    fn history(&mut self, row: &CommittedRow<'_>) {
        self.line.clear();
        value::write_history_line(
            &mut self.line,
            row.values.iter(),
            row.step,
            row.runtime,
            row.timestamp,
        );
        self.line.push('\n');
        let r = self.history.write_all(self.line.as_bytes());
        self.keep(r, HISTORY_JSONL);
    }

    fn system(&mut self, e: &SystemEvent<'_>) {
        self.line.clear();
        let metrics: Vec<_> = e.metrics().collect();
        let metrics = metrics.iter().map(|(k, v)| (k.as_ref(), *v));
        value::write_events_line(&mut self.line, metrics, "", e.runtime, e.time);
        self.line.push('\n');
        let r = self.events.write_all(self.line.as_bytes());
        self.keep(r, EVENTS_JSONL);
    }

    fn output(&mut self, o: &OutputEvent<'_>) {
        for line in o.lines {
            let r = self
                .output
                .write_all(line.as_bytes())
                .and_then(|()| self.output.write_all(b"\n"));
            self.keep(r, OUTPUT_LOG);
        }
    }

    fn writer(&mut self, e: &WriterEvent<'_>) {
        self.line.clear();
        writer_line(&mut self.line, e);
        let r = self.events.write_all(self.line.as_bytes());
        self.keep(r, EVENTS_JSONL);
    }

    fn alert(&mut self, a: &AlertEvent<'_>) {
        let line = &mut self.line;
        line.clear();
        line.push_str("{\"title\":");
        write_json_str(line, &a.request.title);
        line.push_str(",\"text\":");
        write_json_str(line, &a.request.text);
        line.push_str(",\"level\":");
        write_json_str(line, &a.request.level);
        line.push_str(",\"wait_duration\":");
        write_json_f64(
            line,
            a.request
                .wait_duration
                .unwrap_or(crate::semantics::state::DEFAULT_ALERT_WAIT),
        );
        line.push_str(",\"outcome\":");
        line.push_str(if a.sent { "\"sent\"" } else { "\"throttled\"" });
        line.push_str(",\"throttled_until\":");
        write_json_f64(line, a.throttled_until);
        line.push_str(",\"_runtime\":");
        write_json_f64(line, a.runtime);
        line.push_str(",\"_timestamp\":");
        write_json_f64(line, a.time);
        line.push_str("}\n");
        let r = self.alerts.write_all(self.line.as_bytes());
        self.keep(r, ALERTS_JSONL);
    }
}

/// The events.jsonl line of a shared run's writer joining or ending:
/// `{"_event":"writer_ended","writer":{"id":..,"label":..,"state":..,"exit_code":..,"reason":..},"_runtime":..,"_timestamp":..}`.
fn writer_line(line: &mut String, e: &WriterEvent<'_>) {
    let w = e.writer;
    line.push_str(if e.joined {
        "{\"_event\":\"writer_joined\",\"writer\":{\"id\":"
    } else {
        "{\"_event\":\"writer_ended\",\"writer\":{\"id\":"
    });
    write_json_str(line, &w.id);
    line.push_str(",\"label\":");
    write_json_str(line, &w.label);
    line.push_str(",\"primary\":");
    line.push_str(if w.primary { "true" } else { "false" });
    line.push_str(",\"state\":");
    write_json_str(line, state_name(w.state));
    if let Some(code) = w.exit_code {
        line.push_str(&format!(",\"exit_code\":{code}"));
    }
    line.push_str(",\"reason\":");
    write_json_str(line, &w.reason);
    line.push_str("},\"_runtime\":");
    write_json_f64(line, e.runtime);
    line.push_str(",\"_timestamp\":");
    write_json_f64(line, e.time);
    line.push_str("}\n");
}
