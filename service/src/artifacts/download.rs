//! Materialising a version: its files placed under a directory as hard links to
//! the blobs (read-only, like the blobs: edit a copy) or, across file systems or
//! when asked, as copies. Everything is written relative to the open download
//! directory: over TCP the directory is reached from an allowed root without
//! symlinks, and so is every directory below it ([`crate::run::files::open_dir`]),
//! so a symlink planted in the tree cannot send a file outside it. Each file
//! lands by a rename in its directory, so a reader never sees half of one and a
//! symlink already at a file's place is replaced, not followed. A download root
//! inside the sidecar's data dir is refused. `file://` references are read as
//! SaveFiles reads a file (confined the same way) and checked against their
//! digest; other references are not fetched. Blocking.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use super::blobs::{Blobs, Digests};
use super::error::{io_err, ArtifactError};
use super::manifest::{Entry, Manifest};
use crate::limits::quote;
use crate::run::files::{self, FilesPolicy};

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

/// An open download directory.
pub struct Root {
    dir: OwnedFd,
    /// Its real path (for messages).
    path: PathBuf,
    /// Symlinks below it may be followed (a unix socket's client: the sidecar's
    /// own user); over TCP they are refused.
    follow: bool,
}

/// Opens (making it) a download root: absolute, under the allowed roots (over
/// TCP), and not inside the data dir `data_dir` (canonical).
pub fn prepare_root(
    root: &str,
    policy: &FilesPolicy,
    data_dir: &Path,
) -> Result<Root, ArtifactError> {
    let path = Path::new(root);
    if !path.is_absolute() {
        return Err(ArtifactError::Invalid(format!(
            "download root {} must be an absolute path on the sidecar's host",
            quote(root)
        )));
    }
    let (dir, real) = files::open_dir(policy, path)?;
    if real.starts_with(data_dir) {
        return Err(ArtifactError::Invalid(format!(
            "download root {} is inside the sidecar's data dir; download to a directory outside it",
            quote(root)
        )));
    }
    Ok(Root {
        dir,
        path: real,
        follow: policy.roots.is_none(),
    })
}

fn errno_at(path: &Path) -> impl FnOnce(rustix::io::Errno) -> ArtifactError + '_ {
    move |e| {
        match e {
        rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR => ArtifactError::Invalid(format!(
            "{} has a symlink or a file where the artifact needs a directory; download to an empty directory",
            path.display()
        )),
        e => io_err(path)(e.into()),
    }
    }
}

/// The directory an artifact path's file goes in (made as needed) and the
/// file's name.
fn parent_of<'p>(root: &Root, path: &'p str) -> Result<(OwnedFd, &'p str), ArtifactError> {
    let (dirs, name) = path.rsplit_once('/').unwrap_or(("", path));
    let mut dir = root.dir.try_clone().map_err(io_err(&root.path))?;
    for part in dirs.split('/').filter(|p| !p.is_empty()) {
        dir = files::make_dir_at(&dir, Path::new(part), root.follow)
            .map_err(errno_at(&root.path.join(dirs)))?;
    }
    Ok((dir, name))
}

fn temp_name(name: &str) -> String {
    format!(".{name}.{:08x}.part", fastrand::u32(..))
}

/// Whether `name` in `dir` is already `blob` (the same inode).
fn same_file(dir: &OwnedFd, name: &str, blob: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).is_ok_and(|st| {
        FileType::from_raw_mode(st.st_mode) == FileType::RegularFile
            && st.st_dev == blob.dev()
            && st.st_ino == blob.ino()
    })
}

/// A new file `tmp` in `dir`, for writing (never through a symlink).
fn create_at(dir: &OwnedFd, tmp: &str) -> rustix::io::Result<File> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    rustix::fs::openat(dir, tmp, flags, Mode::from_raw_mode(0o644)).map(File::from)
}

/// Renames `tmp` over `name` in `dir`, or removes it when `result` failed.
fn settle(
    dir: &OwnedFd,
    tmp: &str,
    name: &str,
    target: &Path,
    result: Result<(), ArtifactError>,
) -> Result<(), ArtifactError> {
    let result = result.and_then(|()| {
        rustix::fs::renameat(dir, tmp, dir, name).map_err(|e| io_err(target)(e.into()))
    });
    if result.is_err() {
        let _ = rustix::fs::unlinkat(dir, tmp, AtFlags::empty());
    }
    result
}

/// Places one stored file at `path` under the root; true when hard-linked.
fn place_blob(blob: &Path, root: &Root, path: &str, copy: bool) -> Result<bool, ArtifactError> {
    let target = root.path.join(path);
    let (dir, name) = parent_of(root, path)?;
    let meta = std::fs::metadata(blob).map_err(io_err(blob))?;
    if !copy && same_file(&dir, name, &meta) {
        return Ok(true);
    }
    let tmp = temp_name(name);
    let linked = !copy
        && rustix::fs::linkat(rustix::fs::CWD, blob, &dir, tmp.as_str(), AtFlags::empty()).is_ok();
    let written = if linked {
        Ok(())
    } else {
        // A copy is the user's to edit (0644).
        create_at(&dir, &tmp)
            .map_err(|e| io_err(&target)(e.into()))
            .and_then(|mut out| {
                let mut from = File::open(blob).map_err(io_err(blob))?;
                io::copy(&mut from, &mut out).map_err(io_err(&target))?;
                Ok(())
            })
    };
    settle(&dir, &tmp, name, &target, written)?;
    Ok(linked)
}

/// Copies a `file://` reference (read as SaveFiles reads a file) to `path` under
/// the root, checking its digest when known; a changed file leaves nothing.
fn place_reference(
    policy: &FilesPolicy,
    root: &Root,
    path: &str,
    e: &Entry,
) -> Result<(), ArtifactError> {
    let source = Path::new(e.reference.trim_start_matches("file://"));
    let mut opened = files::admit(policy, source)?;
    let target = root.path.join(path);
    let (dir, name) = parent_of(root, path)?;
    let tmp = temp_name(name);
    let mut out = create_at(&dir, &tmp).map_err(|err| io_err(&target)(err.into()))?;
    let copied = copy_hashing(&mut opened.file, &mut out).map_err(io_err(source));
    let checked = copied.and_then(|d| {
        if e.sha256.is_empty() || d.sha256 == e.sha256 {
            return Ok(());
        }
        Err(ArtifactError::Invalid(format!(
            "artifact file {} refers to {}, which changed since it was logged (its SHA-256 is now {})",
            quote(path),
            quote(&e.reference),
            d.sha256
        )))
    });
    settle(&dir, &tmp, name, &target, checked)
}

/// Copies `from` into `to`, hashing what passes.
fn copy_hashing(from: &mut File, to: &mut File) -> io::Result<Digests> {
    let mut hasher = super::blobs::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            return Ok(hasher.finish());
        }
        to.write_all(&buf[..n])?;
        hasher.update(&buf[..n]);
    }
}

/// Places the files of `m` (those `only` asks for) under `root`.
pub fn place_all(
    blobs: &Blobs,
    policy: &FilesPolicy,
    m: &Manifest,
    root: &Root,
    copy: bool,
    only: &[String],
) -> Result<Vec<Placed>, ArtifactError> {
    let mut out = Vec::new();
    for (path, e) in m.files.iter().filter(|(p, _)| wanted(p, only)) {
        // Paths were checked when added; check again before writing anywhere.
        super::names::check_path(path)?;
        let mut placed = Placed {
            path: path.clone(),
            linked: false,
            skipped_ref: String::new(),
        };
        if !e.sha256.is_empty() && blobs.has(&e.sha256) {
            placed.linked = place_blob(&blobs.path(&e.sha256), root, path, copy)?;
        } else if e.reference.starts_with("file://") {
            place_reference(policy, root, path, e)?;
        } else if !e.reference.is_empty() {
            placed.skipped_ref = e.reference.clone();
        } else {
            return Err(ArtifactError::Corrupt {
                path: blobs.path(&e.sha256),
                problem: format!("the content of {} is missing from the store", quote(path)),
            });
        }
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
