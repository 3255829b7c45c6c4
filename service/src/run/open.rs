//! Making a run's actor ready: create a new run directory, or replay an existing
//! run's log into its state (recovery, resume, reads).

use std::path::Path;

use super::error::RunError;
use crate::clock::now;
use crate::proto::v1::InitRequest;
use crate::proto::wal::{record::Kind, Record};
use crate::semantics::state::{RunState, Sink};
use crate::store::{self, StoreWriter};
use crate::wal::{WalLock, WalReader, WalWriter};

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
/// the state and the length of the log's valid prefix. Blocking.
pub fn replay(dir: &Path, sink: &mut impl Sink) -> Result<(RunState, u64), RunError> {
    let path = dir.join(store::WAL);
    let mut reader = WalReader::open(&path)?;
    let mut state = RunState::default();
    state.info.dir = dir.join(store::FILES_DIR).display().to_string();
    while let Some(record) = reader.next_record()? {
        state.apply(&record, sink);
    }
    if reader.torn_bytes() > 0 {
        tracing::warn!(
            log = %path.display(),
            "transaction log ends in {} bytes of a torn or corrupt record; they are cut off",
            reader.torn_bytes()
        );
    }
    Ok((state, reader.valid_len()))
}

/// Opens an existing run: replays its log, rewrites its store files from it and
/// cuts a torn tail. Blocking.
pub fn open(dir: &Path, heartbeat_interval: f64) -> Result<OpenedRun, RunError> {
    // Lock first: another sidecar sharing the data dir may have the run open.
    let lock = WalLock::acquire(&dir.join(store::WAL))?;
    let mut store = StoreWriter::open(dir, true)?;
    let (mut state, valid_len) = replay(dir, &mut store)?;
    let wal = WalWriter::open_truncated(lock, valid_len)?;
    store.flush();
    if let Some(e) = store.take_error() {
        return Err(e.into());
    }
    store.write_config(&state.config)?;
    store.write_summary(&state.summary(), false)?;
    store.write_run(&state, heartbeat_interval, false)?;
    Ok(OpenedRun { state, wal, store })
}
