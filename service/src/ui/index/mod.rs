//! The charts' index of a run: each numeric key of `history.jsonl` and
//! `events.jsonl` as a column file, so that a chart's request reads two columns
//! (the metric and its x axis) instead of parsing the whole history.
//!
//! It lives in `<run dir>/.ui-index/` (or, when the run directory is read-only,
//! under the system's temp directory), is built the first time a run's charts
//! are asked for, and grows by reading only what was appended since (live runs).
//! A run far behind its index is indexed in the background instead, its charts
//! drawn meanwhile from a preview of sampled lines ([`background`], [`preview`]).
//! A lock file keeps two UI processes from writing it at once: readers share the
//! lock, the one bringing it up to date holds it alone.

pub mod background;
pub mod cache;
pub mod column;
mod defs;
pub mod finished;
pub mod preview;
mod scan;
pub mod source;

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

pub use cache::AxisCache;
pub use defs::{Definitions, StoredDef};
pub use source::{ColumnMeta, Manifest};

use crate::store::{StoreError, EVENTS_JSONL, HISTORY_JSONL, WAL};
use crate::ui::downsample::{downsample, Downsampler, Sampled};
use crate::wal::WalError;

/// The index's directory inside a run directory.
pub const INDEX_DIR: &str = ".ui-index";
const LOCK: &str = "lock";

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("chart index: {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("chart index: reading the run's log: {0}")]
    Wal(#[from] WalError),
    #[error("chart index: {0}")]
    Store(#[from] StoreError),
    #[error("chart index: a line file has more than 4294967295 lines")]
    TooManyRows,
}

impl IndexError {
    pub fn io(path: &Path, source: io::Error) -> Self {
        IndexError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// The line files that are indexed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// `history.jsonl`: the logged rows.
    History,
    /// `events.jsonl`: the system-metric samples.
    Events,
}

impl Source {
    fn file(self) -> &'static str {
        match self {
            Source::History => HISTORY_JSONL,
            Source::Events => EVENTS_JSONL,
        }
    }

    fn dir(self) -> &'static str {
        match self {
            Source::History => "history",
            Source::Events => "events",
        }
    }
}

/// The index of one run.
pub struct RunIndex {
    run_dir: PathBuf,
    root: PathBuf,
}

impl RunIndex {
    /// Opens (creating it) the index of the run in `run_dir`. Blocking.
    pub fn open(run_dir: &Path) -> Result<Self, IndexError> {
        let local = run_dir.join(INDEX_DIR);
        let root = match make_subdir(&local) {
            Ok(()) => local,
            Err(e) if is_read_only(&e) => {
                let fallback = std::env::temp_dir().join("runcore-ui-index").join(format!(
                    "{:016x}",
                    fnv1a(run_dir.as_os_str().as_encoded_bytes())
                ));
                make_dir(&fallback).map_err(|e| IndexError::io(&fallback, e))?;
                fallback
            }
            Err(e) => return Err(IndexError::io(&local, e)),
        };
        Ok(RunIndex {
            run_dir: run_dir.to_owned(),
            root,
        })
    }

    fn lock(&self) -> Result<File, IndexError> {
        let path = self.root.join(LOCK);
        File::options()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| IndexError::io(&path, e))
    }

    /// The index of `source`, brought up to date, readable for as long as the
    /// snapshot lives. Blocking.
    pub fn snapshot(&self, source: Source) -> Result<Snapshot, IndexError> {
        let dir = self.root.join(source.dir());
        make_subdir(&dir).map_err(|e| IndexError::io(&dir, e))?;
        let src = self.run_dir.join(source.file());
        let lock = self.lock()?;
        let locked = |r: io::Result<()>| r.map_err(|e| IndexError::io(&self.root.join(LOCK), e));
        locked(lock.lock_shared())?;
        let manifest = source::load(&dir);
        if source::is_current(&manifest, &src) {
            return Ok(Snapshot {
                manifest,
                dir,
                _lock: lock,
            });
        }
        locked(lock.lock())?;
        let manifest = source::refresh(&dir, &src, u64::MAX)?;
        locked(lock.lock_shared())?;
        Ok(Snapshot {
            manifest,
            dir,
            _lock: lock,
        })
    }

    /// Bytes of `source` indexed, and its length. Blocking, takes no lock.
    pub fn progress(&self, source: Source) -> (u64, u64) {
        source::progress(
            &self.root.join(source.dir()),
            &self.run_dir.join(source.file()),
        )
    }

    /// Indexes about `step` more bytes of `source` under the exclusive lock
    /// (released on return, so that readers get a turn); returns whether the
    /// index is now current. Blocking.
    pub fn step(&self, source: Source, step: u64) -> Result<bool, IndexError> {
        let dir = self.root.join(source.dir());
        make_subdir(&dir).map_err(|e| IndexError::io(&dir, e))?;
        let src = self.run_dir.join(source.file());
        let lock = self.lock()?;
        lock.lock()
            .map_err(|e| IndexError::io(&self.root.join(LOCK), e))?;
        let m = source::refresh(&dir, &src, step)?;
        Ok(source::is_current(&m, &src))
    }

    /// The metric definitions saved by the last [`RunIndex::definitions`],
    /// without reading the log (for a preview). Blocking, takes no lock.
    pub fn saved_definitions(&self) -> Definitions {
        defs::saved(&self.root)
    }

    /// The run's metric definitions, read from its log. Blocking.
    pub fn definitions(&self) -> Result<Definitions, IndexError> {
        let lock = self.lock()?;
        lock.lock()
            .map_err(|e| IndexError::io(&self.root.join(LOCK), e))?;
        defs::refresh(&self.root, &self.run_dir.join(WAL))
    }
}

/// Creates `dir` in a directory that exists (a run directory, the index's root):
/// never the parent, so that indexing a run deleted meanwhile (the sidecar's
/// thread of finished runs) fails instead of bringing its directory back.
fn make_subdir(dir: &Path) -> io::Result<()> {
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        r => r,
    }
}

fn make_dir(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

fn is_read_only(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem
    )
}

/// A stable 64-bit hash (FNV-1a) for the fallback directory's name.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// An index read under its shared lock.
pub struct Snapshot {
    pub manifest: Manifest,
    dir: PathBuf,
    _lock: File,
}

impl Snapshot {
    pub fn column(&self, key: &str) -> Option<&ColumnMeta> {
        self.manifest.column(key)
    }

    /// The points `(x, y)` of column `y` against column `x`, for the rows that
    /// have both and a finite x, sorted by x.
    pub fn points(&self, y: &ColumnMeta, x: &ColumnMeta) -> Result<Vec<(f64, f64)>, IndexError> {
        let ys = source::read(&self.dir, y)?;
        let xs = source::read(&self.dir, x)?;
        let mut pts = Vec::with_capacity(ys.len());
        if x.count == self.manifest.rows {
            // Every row has x: row r is xs[r].
            for (row, v) in ys {
                if let Some(&(_, xv)) = xs.get(row as usize) {
                    if xv.is_finite() {
                        pts.push((xv, v));
                    }
                }
            }
        } else {
            let mut xi = xs.iter().peekable();
            for (row, v) in ys {
                while xi.next_if(|(r, _)| *r < row).is_some() {}
                if let Some(&&(r, xv)) = xi.peek() {
                    if r == row && xv.is_finite() {
                        pts.push((xv, v));
                    }
                }
            }
        }
        if !pts.windows(2).all(|w| w[0].0 <= w[1].0) {
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
        Ok(pts)
    }
}

/// An x range; None leaves that side open.
#[derive(Debug, Clone, Copy, Default)]
pub struct Range {
    pub lo: Option<f64>,
    pub hi: Option<f64>,
}

impl Snapshot {
    /// Column `y` against column `x` in `range`, downsampled to `width`; also the
    /// number of points in the range. An axis that every row has, in order and
    /// finite (`_step`, `_runtime`, `_timestamp`), comes from `axes` and is read
    /// in one pass with the metric; any other x goes through [`Snapshot::points`].
    pub fn sample(
        &self,
        y: &ColumnMeta,
        x: &ColumnMeta,
        range: Range,
        width: usize,
        axes: &AxisCache,
    ) -> Result<(usize, Sampled), IndexError> {
        let dense = x.count == self.manifest.rows && x.sorted && x.nonfinite == 0;
        if !dense {
            let points = self.points(y, x)?;
            let inside = window(&points, range.lo, range.hi);
            return Ok((inside.len(), downsample(inside, width)));
        }
        let xs = axes.dense(&self.dir, x, &self.manifest)?;
        cache::with_column_bytes(&self.dir.join(&y.file), y.count, |recs| {
            let x_of = |i: usize| xs.get(recs.row(i) as usize).copied().unwrap_or(f64::NAN);
            // The records whose rows are in range, plus one on each side.
            let from_row = range.lo.map_or(0, |lo| xs.partition_point(|v| *v < lo));
            let to_row = range
                .hi
                .map_or(xs.len(), |hi| xs.partition_point(|v| *v <= hi));
            let first = range
                .lo
                .map_or(0, |_| recs.lower_bound(from_row as u32).saturating_sub(1));
            let end = range.hi.map_or(recs.len(), |_| {
                (recs.lower_bound(to_row as u32) + 1).min(recs.len())
            });
            if first >= end {
                return (0, Sampled::default());
            }
            let mut d = Downsampler::new(end - first, x_of(first), x_of(end - 1), width);
            for i in first..end {
                d.push(x_of(i), recs.value(i));
            }
            (end - first, d.finish())
        })
    }
}

/// The points with x in `[lo, hi]`, plus one on each side so that lines reach the
/// edges of a zoomed chart.
pub fn window(points: &[(f64, f64)], lo: Option<f64>, hi: Option<f64>) -> &[(f64, f64)] {
    let start = lo.map_or(0, |lo| {
        points.partition_point(|p| p.0 < lo).saturating_sub(1)
    });
    let end = hi.map_or(points.len(), |hi| {
        (points.partition_point(|p| p.0 <= hi) + 1).min(points.len())
    });
    &points[start..end.max(start)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_join_a_metric_to_its_x_axis() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path();
        fs::write(run.join(WAL), b"").unwrap();
        fs::write(
            run.join(HISTORY_JSONL),
            concat!(
                "{\"loss\":4,\"_step\":0,\"_runtime\":0.5}\n",
                "{\"loss\":NaN,\"_step\":1,\"_runtime\":1.5}\n",
                "{\"epoch\":0,\"val\":9,\"_step\":2,\"_runtime\":2.5}\n",
                "{\"loss\":1,\"_step\":3,\"_runtime\":3.5}\n",
                "{\"epoch\":1,\"val\":8,\"loss\":0.5,\"_step\":4,\"_runtime\":4.5}\n",
            ),
        )
        .unwrap();
        let index = RunIndex::open(run).unwrap();
        let snap = index.snapshot(Source::History).unwrap();
        assert!(run
            .join(INDEX_DIR)
            .join("history")
            .join("manifest.json")
            .exists());
        let col = |k: &str| snap.column(k).unwrap().clone();
        let by_step = snap.points(&col("loss"), &col("_step")).unwrap();
        assert_eq!(by_step.len(), 4);
        assert_eq!((by_step[0], by_step[3]), ((0.0, 4.0), (4.0, 0.5)));
        assert!(by_step[1].1.is_nan(), "NaN is kept for the chart to show");
        let by_epoch = snap.points(&col("val"), &col("epoch")).unwrap();
        assert_eq!(by_epoch, vec![(0.0, 9.0), (1.0, 8.0)]);
        let loss_by_epoch = snap.points(&col("loss"), &col("epoch")).unwrap();
        assert_eq!(
            loss_by_epoch,
            vec![(1.0, 0.5)],
            "rows without x are left out"
        );
        assert_eq!(window(&by_step, Some(2.0), Some(3.0)).len(), 3);
        assert_eq!(window(&by_step, Some(9.0), None).len(), 1);
        assert!(window(&by_step, Some(5.0), Some(1.0)).len() <= 1);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn the_one_pass_path_matches_join_then_downsample() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path();
        fs::write(run.join(WAL), b"").unwrap();
        let mut text = String::new();
        for step in 0..5000u32 {
            let loss = match step % 997 {
                13 => "NaN".to_owned(),
                14 => "-Infinity".to_owned(),
                _ => format!("{}", (step % 89) as f64 / 7.0),
            };
            // Every third row lacks the metric.
            if step % 3 == 0 {
                text.push_str(&format!(
                    "{{\"_step\":{step},\"_runtime\":{}}}\n",
                    step as f64 / 10.0
                ));
            } else {
                text.push_str(&format!(
                    "{{\"loss\":{loss},\"_step\":{step},\"_runtime\":{}}}\n",
                    step as f64 / 10.0
                ));
            }
        }
        fs::write(run.join(HISTORY_JSONL), text).unwrap();
        let index = RunIndex::open(run).unwrap();
        let snap = index.snapshot(Source::History).unwrap();
        let axes = AxisCache::new(1 << 20);
        let (loss, step) = (
            snap.column("loss").unwrap(),
            snap.column("_runtime").unwrap(),
        );
        let all = snap.points(loss, step).unwrap();
        for (lo, hi) in [
            (None, None),
            (Some(10.0), Some(55.5)),
            (Some(-5.0), None),
            (None, Some(0.0)),
            (Some(900.0), None),
        ] {
            for width in [1, 7, 100, 5000] {
                let inside = window(&all, lo, hi);
                let want = (inside.len(), downsample(inside, width));
                let got = snap
                    .sample(loss, step, Range { lo, hi }, width, &axes)
                    .unwrap();
                assert_eq!(got.0, want.0, "{lo:?}..{hi:?} @{width}");
                assert_eq!(
                    format!("{:?}", got.1),
                    format!("{:?}", want.1),
                    "{lo:?}..{hi:?} @{width}"
                );
            }
        }
    }
}
