//! Drafts: artifacts being assembled (CreateArtifact .. CommitArtifact), in
//! memory. A draft's files are already in the blob store, so a draft that is
//! never committed (its client or the sidecar died) leaves no version behind,
//! only content the next upload may reuse. Drafts with a `distributed_id` are
//! shared: every CreateArtifact with that name and id joins the same one until it
//! is committed (W&B's upsert_artifact / finish_artifact). Drafts idle for a day
//! are dropped.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::error::ArtifactError;
use super::manifest::Entry;
use crate::limits::{quote, MAX_DRAFT_FILES, MAX_OPEN_DRAFTS};

/// A draft unused this long is dropped.
const IDLE: Duration = Duration::from_secs(24 * 3600);

/// What a draft will become.
#[derive(Debug, Clone, Default)]
pub struct Draft {
    pub name: String,
    pub ty: String,
    pub description: String,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub aliases: Vec<String>,
    /// The run that opened it (it commits it, and logs it).
    pub run_id: String,
    /// Run paths that contributed (the opener first).
    pub runs: Vec<String>,
    pub distributed_id: String,
    pub files: BTreeMap<String, Entry>,
}

struct Held {
    draft: Draft,
    touched: Instant,
}

#[derive(Default)]
struct Inner {
    drafts: HashMap<String, Held>,
    /// (name, distributed_id) -> draft id.
    distributed: HashMap<(String, String), String>,
    /// Files in all drafts (bounded by [`MAX_DRAFT_FILES`]: they are in memory).
    files: usize,
}

impl Inner {
    /// Drops drafts idle for [`IDLE`] and the distributed ids naming them.
    fn expire(&mut self) {
        let before = self.drafts.len();
        self.drafts.retain(|_, h| h.touched.elapsed() < IDLE);
        if self.drafts.len() != before {
            let live: HashSet<&String> = self.drafts.keys().collect();
            self.distributed.retain(|_, id| live.contains(id));
            self.files = self.drafts.values().map(|h| h.draft.files.len()).sum();
        }
    }

    /// Holds a new draft under a new id.
    fn hold(&mut self, draft: Draft) -> Result<(String, u64), ArtifactError> {
        if self.drafts.len() >= MAX_OPEN_DRAFTS {
            return Err(ArtifactError::TooLarge(format!(
                "{MAX_OPEN_DRAFTS} artifact drafts are open, the most the sidecar keeps; commit some first (a draft idle for a day is dropped)"
            )));
        }
        let n = draft.files.len();
        if self.files + n > MAX_DRAFT_FILES {
            return Err(too_many_files());
        }
        self.files += n;
        let id = new_id();
        let held = Held {
            draft,
            touched: Instant::now(),
        };
        self.drafts.insert(id.clone(), held);
        Ok((id, n as u64))
    }
}

#[derive(Default)]
pub struct Drafts {
    inner: Mutex<Inner>,
}

fn unknown(id: &str) -> ArtifactError {
    ArtifactError::NotFound(format!(
        "no artifact draft {}: it was committed already, or the sidecar restarted since CreateArtifact; create it again",
        quote(id)
    ))
}

fn too_many_files() -> ArtifactError {
    ArtifactError::TooLarge(format!(
        "open artifact drafts hold {MAX_DRAFT_FILES} files, the most the sidecar keeps before they are committed; commit them, or split the files over several artifacts"
    ))
}

impl Drafts {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a draft (or joins the open distributed one); returns its id and how
    /// many files it holds.
    pub fn open(&self, draft: Draft) -> Result<(String, u64), ArtifactError> {
        let mut inner = self.lock();
        inner.expire();
        if draft.distributed_id.is_empty() {
            return inner.hold(draft);
        }
        let key = (draft.name.clone(), draft.distributed_id.clone());
        let joined = inner.distributed.get(&key).cloned();
        if let Some(h) = joined.and_then(|id| Some((inner.drafts.get_mut(&id)?, id))) {
            let (h, id) = h;
            if h.draft.ty != draft.ty {
                return Err(ArtifactError::TypeMismatch {
                    name: draft.name,
                    existing: h.draft.ty.clone(),
                    asked: draft.ty,
                });
            }
            for run in draft.runs {
                if !h.draft.runs.contains(&run) {
                    h.draft.runs.push(run);
                }
            }
            for a in draft.aliases {
                if !h.draft.aliases.contains(&a) {
                    h.draft.aliases.push(a);
                }
            }
            h.touched = Instant::now();
            return Ok((id, h.draft.files.len() as u64));
        }
        let (id, n) = inner.hold(draft)?;
        inner.distributed.insert(key, id.clone());
        Ok((id, n))
    }

    /// Checks a draft exists (and marks it used).
    pub fn touch(&self, id: &str) -> Result<(), ArtifactError> {
        let mut inner = self.lock();
        let h = inner.drafts.get_mut(id).ok_or_else(|| unknown(id))?;
        h.touched = Instant::now();
        Ok(())
    }

    /// Adds (or replaces) a file; returns the draft's file count.
    pub fn insert(&self, id: &str, path: String, entry: Entry) -> Result<u64, ArtifactError> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let h = inner.drafts.get_mut(id).ok_or_else(|| unknown(id))?;
        let new = !h.draft.files.contains_key(&path);
        if new && inner.files >= MAX_DRAFT_FILES {
            return Err(too_many_files());
        }
        h.draft.files.insert(path, entry);
        h.touched = Instant::now();
        inner.files += usize::from(new);
        Ok(h.draft.files.len() as u64)
    }

    pub fn remove(&self, id: &str, path: &str) -> Result<u64, ArtifactError> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let h = inner.drafts.get_mut(id).ok_or_else(|| unknown(id))?;
        if h.draft.files.remove(path).is_none() {
            return Err(ArtifactError::NotFound(format!(
                "the artifact draft has no file {} to remove",
                quote(path)
            )));
        }
        h.touched = Instant::now();
        inner.files = inner.files.saturating_sub(1);
        Ok(h.draft.files.len() as u64)
    }

    /// A copy of a draft (to commit it).
    pub fn get(&self, id: &str) -> Result<Draft, ArtifactError> {
        self.lock()
            .drafts
            .get(id)
            .map(|h| h.draft.clone())
            .ok_or_else(|| unknown(id))
    }

    /// Forgets a committed draft.
    pub fn close(&self, id: &str) {
        let mut inner = self.lock();
        if let Some(h) = inner.drafts.remove(id) {
            inner.files = inner.files.saturating_sub(h.draft.files.len());
            let key = (h.draft.name, h.draft.distributed_id);
            if inner.distributed.get(&key).is_some_and(|d| d == id) {
                inner.distributed.remove(&key);
            }
        }
    }
}

fn new_id() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(name: &str, dist: &str, run: &str) -> Draft {
        Draft {
            name: name.into(),
            ty: "dataset".into(),
            distributed_id: dist.into(),
            runs: vec![run.into()],
            ..Default::default()
        }
    }

    #[test]
    fn distributed_drafts_are_shared_until_committed() {
        let d = Drafts::default();
        let (a, _) = d.open(draft("x", "job1", "p/r1")).unwrap();
        let (b, _) = d.open(draft("x", "job1", "p/r2")).unwrap();
        assert_eq!(a, b);
        d.insert(&a, "f".into(), Entry::default()).unwrap();
        assert_eq!(d.get(&a).unwrap().runs, ["p/r1", "p/r2"]);
        let (c, _) = d.open(draft("x", "", "p/r1")).unwrap();
        assert_ne!(a, c);
        d.close(&a);
        assert!(d.get(&a).is_err());
        let (e, n) = d.open(draft("x", "job1", "p/r1")).unwrap();
        assert_ne!(a, e);
        assert_eq!(n, 0);
    }
}
