//! Making a run's actor ready: create a new run directory, or replay an existing
//! run's log into its state (recovery, resume, reads). A log with corrupt records
//! is kept as `run.wal.corrupt-<time>` before it is rewritten without them.

use std::path::{Path, PathBuf};

use super::error::RunError;
use super::recovery;
use crate::clock::now;
use crate::proto::v1::InitRequest;
use crate::proto::wal::{record::Kind, Record};
use crate::semantics::state::{RunState, Sink};
use crate::store::{self, StoreWriter};
use crate::wal::{WalError, WalLock, WalReader, WalWriter};

/// A run loaded into memory, ready to become an actor.
pub struct OpenedRun {
    pub(super) state: RunState,
    pub(super) wal: WalWriter,
    pub(super) store: StoreWriter,
}

impl OpenedRun {
    pub fn state(&self) -> &RunState {
        &self.state
    }
}

/// Creates a new run directory with its first record. Blocking.
pub fn create(
    dir: &Path,
    init: InitRequest,
    metadata: &str,
    heartbeat_interval: f64,
) -> Result<OpenedRun, RunError> {
    std::fs::create_dir_all(dir).map_err(store::io_err(dir))?;
    let mut wal = WalWriter::create(&dir.join(store::WAL))?;
    let mut store = StoreWriter::open(dir, true)?;
    let mut state = RunState::default();
    state.info.dir = dir.join(store::FILES_DIR).display().to_string();
    let record = Record {
        time: now(),
        kind: Some(Kind::Start(init)),
    };
    wal.append(&record)?;
    state.apply(&record, &mut store);
    store.write_metadata(metadata)?;
    store.write_config(&state.config)?;
    store.write_run(&state, heartbeat_interval, false)?;
    Ok(OpenedRun { state, wal, store })
}

/// Replays a run's log into its state, sending committed rows to `sink`; returns
/// the state and the reader, which says what it skipped. A log without a single
/// record (empty, zeroed) is an error. Blocking.
pub fn replay_log(dir: &Path, sink: &mut impl Sink) -> Result<(RunState, WalReader), RunError> {
    let path = dir.join(store::WAL);
    let mut reader = WalReader::open(&path)?;
    let mut state = RunState::default();
    state.info.dir = dir.join(store::FILES_DIR).display().to_string();
    while let Some(record) = reader.next_record()? {
        state.apply(&record, sink);
    }
    if reader.records() == 0 {
        return Err(WalError::NoRecords {
            path,
            len: reader.file_len(),
        }
        .into());
    }
    if reader.torn_bytes() > 0 && !reader.corrupt() {
        tracing::warn!(
            log = %path.display(),
            "transaction log ends in {} bytes of a record cut short; they are cut off",
            reader.torn_bytes()
        );
    }
    Ok((state, reader))
}

/// [`replay_log`], returning the length of the log's valid prefix.
pub fn replay(dir: &Path, sink: &mut impl Sink) -> Result<(RunState, u64), RunError> {
    replay_log(dir, sink).map(|(state, reader)| (state, reader.valid_len()))
}

/// Opens an existing run: replays its log, rebuilds its store files from it, cuts
/// a torn tail, and rewrites a log with corrupt records without them (keeping the
/// original). Blocking.
pub fn open(dir: &Path, heartbeat_interval: f64) -> Result<OpenedRun, RunError> {
    // Lock first: another sidecar sharing the data dir may have the run open.
    let path = dir.join(store::WAL);
    let lock = WalLock::acquire(&path)?;
    let mut rebuilt = StoreWriter::rebuild(dir)?;
    let (mut state, reader) = match replay_log(dir, &mut rebuilt) {
        Ok(r) => r,
        Err(e) => {
            rebuilt.abandon();
            return Err(e);
        }
    };
    let problem = recovery::describe(&reader);
    let wal = match &problem {
        None => WalWriter::open_truncated(lock, reader.valid_len())?,
        Some(what) => {
            let kept = keep_copy(&path)?;
            recovery::note(
                dir,
                &format!(
                    "{what}; the log as it was is kept in {}",
                    kept.file_name().unwrap_or_default().to_string_lossy()
                ),
            );
            WalWriter::open_compacted(lock, reader.good_ranges())?
        }
    };
    let (store, kept) = rebuilt.finish_rebuild(problem.is_some())?;
    if let Some(kept) = kept {
        recovery::note(
            dir,
            &format!(
                "history.jsonl had more rows than the recovered log; it is kept as {}",
                kept.file_name().unwrap_or_default().to_string_lossy()
            ),
        );
    }
    store.write_config(&state.config)?;
    store.write_summary(&state.summary(), false)?;
    store.write_run(&state, heartbeat_interval, false)?;
    Ok(OpenedRun { state, wal, store })
}

/// Rebuilds a run's line files (history, events, alerts) from its log, when
/// they may be behind it (a write the disk refused). Blocking.
pub fn rebuild_store(dir: &Path) -> Result<StoreWriter, RunError> {
    let mut rebuilt = StoreWriter::rebuild(dir)?;
    if let Err(e) = replay_log(dir, &mut rebuilt) {
        rebuilt.abandon();
        return Err(e);
    }
    Ok(rebuilt.finish_rebuild(false)?.0)
}

/// Copies the log to `run.wal.corrupt-<unix time>`, synced, before it is
/// rewritten.
fn keep_copy(path: &Path) -> Result<PathBuf, RunError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let to = store::unused_name(dir, &format!("{}.corrupt-", store::WAL));
    std::fs::copy(path, &to)
        .and_then(|_| std::fs::File::open(&to)?.sync_all())
        .map_err(store::io_err(&to))?;
    Ok(to)
}
