//! Files saved with policy `live` (copied again when they change and then stop
//! changing) and the last copy of `live` and `end` files at the end of a run.

use std::path::{Path, PathBuf};

use super::actor::Actor;
use super::files::{self, Fingerprint, SavePolicy};
use crate::proto::wal::SavedFile;

impl Actor {
    /// Copies `live` and `end` files one last time (at finish).
    pub(super) async fn copy_final_files(&mut self) {
        let files: Vec<SavedFile> = self
            .state
            .saved
            .values()
            .filter(|f| SavePolicy::of(f) != SavePolicy::Now)
            .cloned()
            .collect();
        if files.is_empty() {
            return;
        }
        let files_dir = self.files_dir.clone();
        let id = self.state.info.id.clone();
        let policy = self.config.files.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for f in files {
                if let Err(e) =
                    files::copy_admitted(&policy, Path::new(&f.source), &files_dir.join(&f.name))
                {
                    tracing::warn!(run = %id, "saved file {} not copied at finish: {e}", f.name);
                }
            }
        })
        .await;
        self.live.clear();
    }

    /// Copies `live` files that changed and have since stopped changing.
    pub(super) async fn copy_live_files(&mut self) {
        if self.live.is_empty() {
            return;
        }
        let checks: Vec<(String, PathBuf, Option<Fingerprint>, Option<Fingerprint>)> = self
            .live
            .iter()
            .map(|(n, l)| (n.clone(), l.source.clone(), l.copied, l.seen))
            .collect();
        let files_dir = self.files_dir.clone();
        let id = self.state.info.id.clone();
        let policy = self.config.files.clone();
        let Ok(results) = tokio::task::spawn_blocking(move || {
            checks
                .into_iter()
                .map(|(name, source, copied, seen)| {
                    let now = files::fingerprint(&source);
                    let mut copied = copied;
                    if now.is_some() && now != copied && now == seen {
                        match files::copy_admitted(&policy, &source, &files_dir.join(&name)) {
                            Ok(print) => copied = print,
                            Err(e) => tracing::warn!(run = %id, "live file {name} not copied: {e}"),
                        }
                    }
                    (name, copied, now)
                })
                .collect::<Vec<_>>()
        })
        .await
        else {
            return;
        };
        for (name, copied, seen) in results {
            if let Some(l) = self.live.get_mut(&name) {
                l.copied = copied;
                l.seen = seen;
            }
        }
    }
}
