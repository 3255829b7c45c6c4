//! Remote backends. The local store is always written; a remote backend (MLflow,
//! W&B) is fed from each run's transaction log by a forwarder task
//! ([`forward`]) that replays the log into [`Event`]s, delivers them in batches
//! with the shared retry policy ([`retry`]) and keeps a persisted cursor, so a
//! restart resumes where delivery stopped and a retry never duplicates a row.

pub mod forward;
pub mod mlflow;
pub mod retry;
pub mod wandb;

use std::collections::BTreeMap;
use std::path::Path;

use self::retry::BackendError;
use crate::proto::v1::{value::Kind, RunInfo, RunState, Value};
use crate::proto::wal::{ArtifactRecord, SavedFile};
use crate::run::files::SavePolicy;

/// What a backend is told, in log order.
#[derive(Debug, Clone)]
pub enum Event {
    /// The run started or was resumed (identity in the batch's `run`).
    Start,
    /// The whole config, after a change.
    Config(BTreeMap<String, Value>),
    /// A committed history row.
    History {
        step: i64,
        timestamp: f64,
        runtime: f64,
        values: Vec<(String, Value)>,
    },
    /// A system-metrics sample (`system.` prefix not included).
    System {
        timestamp: f64,
        metrics: Vec<(String, f64)>,
    },
    /// The whole summary, after a change.
    Summary(BTreeMap<String, Value>),
    /// An alert and whether it was sent (false: throttled).
    Alert {
        title: String,
        text: String,
        level: String,
        timestamp: f64,
        sent: bool,
    },
    /// Lines the client's console printed (output.log).
    Output { timestamp: f64, lines: Vec<String> },
    /// Files saved (copied into the run's files/ directory).
    Files(Vec<SavedFile>),
    /// The run was edited (UpdateRun), open or ended: its name, tags, notes, group
    /// and job type are now the batch's `run`; a changed config or summary follows
    /// as a Config or Summary event. The backend sends the identity again.
    Edit,
    /// The run is preempting, or has ended.
    State {
        state: RunState,
        exit_code: Option<i32>,
        timestamp: f64,
    },
    /// The run logged, used, linked or re-aliased an artifact version (its
    /// manifest and files are in the artifact store, [`Batch::artifacts`]).
    Artifact(Box<ArtifactRecord>),
}

/// A batch of events for one run.
pub struct Batch<'a> {
    /// The run as of the end of the batch.
    pub run: &'a RunInfo,
    /// The run's directory (files/ holds what Files events name).
    pub dir: &'a Path,
    /// The artifact store of the run's data dir (what Artifact events name).
    pub artifacts: &'a Path,
    /// Every file saved so far (for the final upload at the end of a run).
    pub saved: &'a [SavedFile],
    pub events: Vec<Event>,
    /// Saves the backend's state before the batch is wholly delivered, for a
    /// backend whose delivery of one batch takes several requests that must not be
    /// repeated (W&B's file_stream offsets, alerts).
    pub checkpoint: &'a forward::Checkpoint,
}

/// Names of saved files to upload when they are saved: `now` and `live` files were
/// just copied; `end` files are not there until the end.
pub fn uploads_on_save(files: &[SavedFile]) -> impl Iterator<Item = String> + '_ {
    files
        .iter()
        .filter(|f| SavePolicy::of(f).uploads_on_save())
        .map(|f| f.name.clone())
}

/// Paths (under the run's files/) of the media files a history row's values
/// name, anywhere inside them.
pub fn media_paths(values: &[(String, Value)]) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match &v.kind {
            Some(Kind::Media(m)) if !m.path.is_empty() => out.push(m.path.clone()),
            Some(Kind::MapValue(m)) => m.fields.values().for_each(|v| walk(v, out)),
            Some(Kind::ListValue(l)) => l.values.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for (_, v) in values {
        walk(v, &mut out);
    }
    out
}

impl Batch<'_> {
    /// A version's manifest, read from the artifact store.
    pub async fn manifest(
        &self,
        a: &crate::proto::v1::Artifact,
    ) -> Result<crate::artifacts::manifest::Manifest, BackendError> {
        let (root, name, version) = (self.artifacts.to_owned(), a.name.clone(), a.version_index);
        tokio::task::spawn_blocking(move || crate::artifacts::read_manifest(&root, &name, version))
            .await
            .map_err(|e| BackendError::retryable(e.to_string()))?
            .map_err(|e| BackendError::Rejected {
                reason: format!("artifact {}:{} is not in the store: {e}", a.name, a.version),
            })
    }

    /// Names of saved files to upload when the run ends: `live` and `end` files have
    /// their final copies then; `now` files were uploaded when saved.
    pub fn uploads_at_end(&self) -> impl Iterator<Item = String> + '_ {
        self.saved
            .iter()
            .filter(|f| SavePolicy::of(f).uploads_at_end())
            .map(|f| f.name.clone())
    }
}

/// A remote tracking backend.
#[async_trait::async_trait]
pub trait Backend: Send {
    /// Short name, used for the cursor file and in status (`mlflow`, `wandb`).
    fn name(&self) -> &'static str;
    /// Restores what the backend saved in the cursor (remote ids, params sent).
    fn restore(&mut self, state: serde_json::Value);
    /// What to save in the cursor after a delivery.
    fn save(&self) -> serde_json::Value;
    /// Delivers a batch. Must be idempotent: after a failure the same batch is
    /// delivered again.
    async fn deliver(&mut self, batch: &Batch<'_>) -> Result<(), BackendError>;
    /// Records that the run is alive; Ok(true) when the backend asks the run to
    /// stop. Called at least every heartbeat interval while the run is open.
    async fn heartbeat(&mut self, run: &RunInfo) -> Result<bool, BackendError>;
    /// Shortest time between two deliveries while a run is open and nobody waits
    /// for it (records arriving meanwhile join the next batch): for backends that
    /// rate-limit many small requests. Zero delivers as soon as records arrive.
    fn min_interval(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
    /// The log is delivered and nothing more will come for now (`runcore sync` of
    /// a run that has not ended): sends whatever the backend was holding back.
    async fn flush(&mut self, _run: &RunInfo) -> Result<(), BackendError> {
        Ok(())
    }
}

/// Which remote backend, and how to reach it.
#[derive(Debug, Clone, Default)]
pub enum BackendSettings {
    /// The local store only.
    #[default]
    Local,
    Mlflow(mlflow::MlflowSettings),
    Wandb(wandb::WandbSettings),
}

impl BackendSettings {
    /// A fresh backend for one run; None for the local store only.
    pub fn make(&self) -> Option<Box<dyn Backend>> {
        match self {
            BackendSettings::Local => None,
            BackendSettings::Mlflow(s) => Some(Box::new(mlflow::Mlflow::new(s.clone()))),
            BackendSettings::Wandb(s) => Some(Box::new(wandb::Wandb::new(s.clone()))),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            BackendSettings::Local => "local",
            BackendSettings::Mlflow(_) => "mlflow",
            BackendSettings::Wandb(_) => "wandb",
        }
    }
}

/// The HTTP client every backend uses: rustls with the ring provider.
pub fn http_client(timeout: std::time::Duration) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(std::time::Duration::from_secs(10))
        .user_agent(concat!("runcore/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}
