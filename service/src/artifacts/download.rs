//! Materialising a version: its files placed under a directory as hard links to
//! the blobs (read-only, like the blobs: edit a copy) or, across file systems or
//! when asked, as copies. Each file lands by a rename, so a reader never sees half
//! of one and a symlink already at a file's place is replaced, not followed.
//! `file://` references are copied from where they point (and checked against
//! their digest); other references are not fetched. Blocking.

use std::fs;
use std::path::{Path, PathBuf};

use super::blobs::{digest_reader, Blobs};
use super::error::{io_err, ArtifactError};
use super::manifest::{Entry, Manifest};
use crate::run::files::FilesPolicy;

/// What became of one file.
#[derive(Debug, Clone, PartialEq)]
pub struct Placed {
    pub path: String,
    pub linked: bool,
    /// A reference that was not fetched.
    pub skipped_ref: String,
}

/// Whether `path` is asked for by `only` (exact paths or directory prefixes).
pub fn wanted(path: &str, only: &[String]) -> bool {
    only.is_empty()
        || only.iter().any(|p| {
            let p = p.trim_end_matches('/');
            path == p
                || path
                    .strip_prefix(p)
                    .is_some_and(|rest| rest.starts_with('/'))
        })
}

/// Checks a download root: absolute, and under the allowed roots (over TCP);
/// creates it. Returns the real path.
pub fn prepare_root(root: &str, policy: &FilesPolicy) -> Result<PathBuf, ArtifactError> {
    let path = Path::new(root);
    if !path.is_absolute() {
        return Err(ArtifactError::Invalid(format!(
            "download root {root:?} must be an absolute path on the sidecar's host"
        )));
    }
    if let Some(roots) = &policy.roots {
        // The nearest existing ancestor decides, before anything is created.
        let mut probe = path.to_owned();
        while !probe.exists() {
            if !probe.pop() {
                break;
            }
        }
        let real = fs::canonicalize(&probe).map_err(io_err(&probe))?;
        if !roots.iter().any(|r| real.starts_with(r)) {
            return Err(crate::run::files::FilesError::OutsideRoots {
                path: path.to_owned(),
                roots: roots
                    .iter()
                    .map(|r| r.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            }
            .into());
        }
    }
    fs::create_dir_all(path).map_err(io_err(path))?;
    fs::canonicalize(path).map_err(io_err(path))
}

fn temp_beside(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("file");
    target.with_file_name(format!(".{name}.{:08x}.part", fastrand::u32(..)))
}

/// Whether `target` is already the blob (the same inode).
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::symlink_metadata(a), fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.is_file() && x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// Places one stored file at `target`; true when hard-linked.
fn place_blob(blob: &Path, target: &Path, copy: bool) -> Result<bool, ArtifactError> {
    if !copy && same_file(target, blob) {
        return Ok(true);
    }
    let tmp = temp_beside(target);
    let linked = !copy && fs::hard_link(blob, &tmp).is_ok();
    if !linked {
        fs::copy(blob, &tmp).map_err(io_err(blob))?;
        // A copy is the user's to edit.
        use std::os::unix::fs::PermissionsExt;
        let _ = fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644));
    }
    fs::rename(&tmp, target).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io_err(target)(e)
    })?;
    Ok(linked)
}

/// Copies a `file://` reference to `target`, checking its digest when known.
fn place_reference(path: &str, e: &Entry, target: &Path) -> Result<(), ArtifactError> {
    let source = e.reference.trim_start_matches("file://");
    let source = Path::new(source);
    let tmp = temp_beside(target);
    fs::copy(source, &tmp).map_err(io_err(source))?;
    if !e.sha256.is_empty() {
        let d = fs::File::open(&tmp)
            .and_then(digest_reader)
            .map_err(io_err(&tmp))?;
        if d.sha256 != e.sha256 {
            let _ = fs::remove_file(&tmp);
            return Err(ArtifactError::Invalid(format!(
                "artifact file {path:?} refers to {}, which changed since it was logged (its SHA-256 is now {})",
                e.reference, d.sha256
            )));
        }
    }
    fs::rename(&tmp, target).map_err(io_err(target))
}

/// Places the files of `m` (those `only` asks for) under `root`.
pub fn place_all(
    blobs: &Blobs,
    m: &Manifest,
    root: &Path,
    copy: bool,
    only: &[String],
) -> Result<Vec<Placed>, ArtifactError> {
    let mut out = Vec::new();
    for (path, e) in m.files.iter().filter(|(p, _)| wanted(p, only)) {
        // Paths were checked when added; check again before writing anywhere.
        super::names::check_path(path)?;
        let target = root.join(path);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        let placed = if !e.sha256.is_empty() && blobs.has(&e.sha256) {
            let linked = place_blob(&blobs.path(&e.sha256), &target, copy)?;
            Placed {
                path: path.clone(),
                linked,
                skipped_ref: String::new(),
            }
        } else if e.reference.starts_with("file://") {
            place_reference(path, e, &target)?;
            Placed {
                path: path.clone(),
                linked: false,
                skipped_ref: String::new(),
            }
        } else if !e.reference.is_empty() {
            Placed {
                path: path.clone(),
                linked: false,
                skipped_ref: e.reference.clone(),
            }
        } else {
            return Err(ArtifactError::Corrupt {
                path: blobs.path(&e.sha256),
                problem: format!("the content of {path:?} is missing from the store"),
            });
        };
        out.push(placed);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_selects_paths_and_directories() {
        assert!(wanted("a/b.txt", &[]));
        assert!(wanted("a/b.txt", &["a".into()]));
        assert!(wanted("a/b.txt", &["a/".into()]));
        assert!(wanted("a/b.txt", &["a/b.txt".into()]));
        assert!(!wanted("ab/c.txt", &["a".into()]));
    }
}
