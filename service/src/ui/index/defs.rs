//! A run's `define_metric` definitions, for the charts' x axes and hidden metrics.
//! The store keeps no file of them: they are read from the run's log (its
//! DefineMetric records, through the library's own definition rules in
//! [`crate::semantics::metrics`]) and kept in `defs.json` with the log offset read up
//! to, so that a live run's log is read only from there on.

use std::fs;
use std::io;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::IndexError;
use crate::proto::v1::DefineMetricRequest;
use crate::proto::wal::record::Kind;
use crate::semantics::metrics::{MetricDef, Metrics};
use crate::store::write_atomic;
use crate::wal::WalReader;

const VERSION: u32 = 1;
const DEFS: &str = "defs.json";

/// One definition as it stands after every record so far.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct StoredDef {
    pub name: String,
    pub step_metric: String,
    pub step_sync: bool,
    pub hidden: bool,
    pub summary: Vec<String>,
    pub goal: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct DefsFile {
    version: u32,
    /// Bytes of the log read (the end of a whole record).
    wal_offset: u64,
    defs: Vec<StoredDef>,
}

impl StoredDef {
    fn request(&self) -> DefineMetricRequest {
        DefineMetricRequest {
            name: self.name.clone(),
            step_metric: self.step_metric.clone(),
            step_sync: Some(self.step_sync),
            hidden: Some(self.hidden),
            summary: self.summary.join(","),
            goal: self.goal.clone(),
            ..Default::default()
        }
    }

    fn from_def(d: &MetricDef) -> Self {
        let p = d.to_proto();
        StoredDef {
            name: p.name,
            step_metric: p.step_metric,
            step_sync: p.step_sync,
            hidden: p.hidden,
            summary: p.summary,
            goal: p.goal,
        }
    }
}

/// A run's definitions, answering "what governs this key".
pub struct Definitions {
    metrics: Metrics,
}

impl Definitions {
    fn new(defs: &[StoredDef]) -> Self {
        let mut metrics = Metrics::default();
        for d in defs {
            // Each was accepted when it was logged; one the rules now refuse is
            // left out rather than failing the page.
            let _ = metrics.define(&d.request());
        }
        Definitions { metrics }
    }

    /// The definition of a key: its own (or a glob's), else its top-level key's
    /// (a definition of `val` governs the nested `val.loss`, as in the run).
    pub fn lookup(&mut self, key: &str, top: &str) -> Option<MetricDef> {
        let found = self.metrics.lookup(&Arc::from(key)).cloned();
        if found.is_some() || top == key {
            return found;
        }
        self.metrics.lookup(&Arc::from(top)).cloned()
    }
}

/// The definitions `dir/defs.json` holds (none when it is missing or stale).
pub fn saved(dir: &Path) -> Definitions {
    let file = fs::read(dir.join(DEFS))
        .ok()
        .and_then(|b| serde_json::from_slice::<DefsFile>(&b).ok())
        .filter(|f| f.version == VERSION)
        .unwrap_or_default();
    Definitions::new(&file.defs)
}

/// Reads the definitions in the log `wal` past what `dir/defs.json` holds, saves
/// the result and returns it. Blocking; the caller holds the index's lock.
pub fn refresh(dir: &Path, wal: &Path) -> Result<Definitions, IndexError> {
    let path = dir.join(DEFS);
    let mut file = fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice::<DefsFile>(&b).ok())
        .filter(|f| f.version == VERSION)
        .unwrap_or_default();
    let len = fs::metadata(wal).map_err(|e| IndexError::io(wal, e))?.len();
    if len < file.wal_offset {
        file = DefsFile::default();
    }
    if len == file.wal_offset {
        return Ok(Definitions::new(&file.defs));
    }
    let mut defs = Definitions::new(&file.defs);
    let mut reader = WalReader::open_at(wal, file.wal_offset)?;
    let mut changed = false;
    while let Some(record) = reader.next_record()? {
        if let Some(Kind::DefineMetric(req)) = &record.kind {
            changed |= defs.metrics.define(req).is_ok();
        }
    }
    let offset = reader.valid_len();
    if offset != file.wal_offset || changed {
        let saved = DefsFile {
            version: VERSION,
            wal_offset: offset,
            defs: defs.metrics.all().iter().map(StoredDef::from_def).collect(),
        };
        let text =
            serde_json::to_vec(&saved).map_err(|e| IndexError::io(&path, io::Error::other(e)))?;
        write_atomic(&path, &text, false)?;
    }
    Ok(defs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::wal::Record;
    use crate::wal::WalWriter;

    fn define(wal: &mut WalWriter, req: DefineMetricRequest) {
        wal.append(&Record {
            time: 1.0,
            kind: Some(Kind::DefineMetric(req)),
        })
        .unwrap();
    }

    #[test]
    fn definitions_come_from_the_log_and_follow_it() {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, log) = (tmp.path().join("idx"), tmp.path().join("run.wal"));
        fs::create_dir(&dir).unwrap();
        let mut wal = WalWriter::create(&log).unwrap();
        define(
            &mut wal,
            DefineMetricRequest {
                name: "val/*".into(),
                step_metric: "epoch".into(),
                ..Default::default()
            },
        );
        define(
            &mut wal,
            DefineMetricRequest {
                name: "epoch".into(),
                hidden: Some(true),
                ..Default::default()
            },
        );
        let mut defs = refresh(&dir, &log).unwrap();
        let sm = |d: Option<MetricDef>| d.and_then(|d| d.step_metric);
        assert_eq!(
            sm(defs.lookup("val/acc", "val/acc")).as_deref(),
            Some("epoch")
        );
        assert!(defs.lookup("epoch", "epoch").unwrap().hidden);
        assert!(defs.lookup("loss", "loss").is_none());
        // A later record merges (overwrite=false), read from where the last read ended.
        define(
            &mut wal,
            DefineMetricRequest {
                name: "val/*".into(),
                hidden: Some(true),
                overwrite: Some(false),
                ..Default::default()
            },
        );
        define(
            &mut wal,
            DefineMetricRequest {
                name: "opt".into(),
                hidden: Some(true),
                ..Default::default()
            },
        );
        drop(wal);
        let mut defs = refresh(&dir, &log).unwrap();
        let acc = defs.lookup("val/acc", "val/acc").unwrap();
        assert!(acc.hidden && acc.step_metric.as_deref() == Some("epoch"));
        assert!(
            defs.lookup("opt.lr", "opt").unwrap().hidden,
            "a top-level key's definition governs its nested keys"
        );
        let saved: DefsFile = serde_json::from_slice(&fs::read(dir.join(DEFS)).unwrap()).unwrap();
        assert_eq!(saved.wal_offset, fs::metadata(&log).unwrap().len());
        // A shorter log (a new run under the same name) is read again from the start.
        fs::remove_file(&log).unwrap();
        WalWriter::create(&log).unwrap();
        let mut defs = refresh(&dir, &log).unwrap();
        assert!(defs.lookup("val/acc", "val/acc").is_none());
    }
}
