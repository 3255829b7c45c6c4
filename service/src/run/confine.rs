//! Opening a file a client names (SaveFiles, media) without races. Over TCP the
//! file is opened relative to an open allowed root with `openat2`
//! (`RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`), or, on kernels without it, by an
//! `O_NOFOLLOW` walk from the root, one component at a time: no symlink in any
//! component is followed, so swapping a directory for a symlink between a check
//! and the copy cannot reach outside the root. What is checked (a regular file,
//! its size) is the opened file itself, and the copy reads that same file.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::files::{FilesError, FilesPolicy};

/// A file opened for saving: the open file, its size, and the path it was
/// opened by (absolute; symlinks resolved over a unix socket, where they may be
/// followed).
pub struct Admitted {
    pub file: File,
    pub len: u64,
    pub path: PathBuf,
}

/// Opens `path` for reading as `policy` allows: any regular file (over a unix
/// socket), or only one under an allowed root, reached without symlinks (TCP).
/// A fifo or device is refused without blocking on it.
pub fn open(policy: &FilesPolicy, path: &Path) -> Result<Admitted, FilesError> {
    let copy_err = |e: io::Error| FilesError::Copy {
        from: path.to_owned(),
        source: e,
    };
    let (file, shown) = match &policy.roots {
        None => {
            let real = std::fs::canonicalize(path).map_err(copy_err)?;
            let fd = rustix::fs::open(&real, read_flags(), Mode::empty())
                .map_err(|e| copy_err(e.into()))?;
            (File::from(fd), real)
        }
        Some(roots) => (open_beneath(roots, path)?, path.to_owned()),
    };
    let meta = file.metadata().map_err(copy_err)?;
    if !meta.is_file() {
        return Err(FilesError::NotRegular(path.to_owned()));
    }
    if meta.len() > policy.max_bytes {
        return Err(FilesError::TooLarge {
            path: path.to_owned(),
            size: meta.len(),
            limit: policy.max_bytes,
        });
    }
    Ok(Admitted {
        file,
        len: meta.len(),
        path: shown,
    })
}

/// O_NONBLOCK: opening a fifo must not wait for a writer (it is refused after).
fn read_flags() -> OFlags {
    OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY
}

fn outside(path: &Path, roots: &[PathBuf]) -> FilesError {
    FilesError::OutsideRoots {
        path: path.to_owned(),
        roots: roots
            .iter()
            .map(|r| r.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// Opens `path`, which must lie under one of `roots` as written (absolute, no
/// `..`), without following a symlink anywhere below the root.
fn open_beneath(roots: &[PathBuf], path: &Path) -> Result<File, FilesError> {
    if !path.is_absolute() || path.components().any(|c| c == Component::ParentDir) {
        return Err(outside(path, roots));
    }
    let Some((root, rel)) = roots
        .iter()
        .find_map(|r| Some((r, path.strip_prefix(r).ok()?)))
    else {
        // A path that is not there is reported as such (as before confinement).
        if let Err(e) = std::fs::symlink_metadata(path) {
            return Err(FilesError::Copy {
                from: path.to_owned(),
                source: e,
            });
        }
        return Err(outside(path, roots));
    };
    if rel.as_os_str().is_empty() {
        return Err(FilesError::NotRegular(path.to_owned()));
    }
    let fail = |e: Errno| match e {
        // A symlink on the way (ELOOP), or a path leaving the root (EXDEV).
        Errno::LOOP | Errno::XDEV => outside(path, roots),
        e => FilesError::Copy {
            from: path.to_owned(),
            source: e.into(),
        },
    };
    let dir = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(fail)?;
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    match rustix::fs::openat2(
        &dir,
        rel,
        read_flags() | OFlags::NOFOLLOW,
        Mode::empty(),
        resolve,
    ) {
        Ok(fd) => Ok(File::from(fd)),
        Err(Errno::NOSYS) | Err(Errno::PERM) => walk(dir, rel).map(File::from).map_err(fail),
        Err(e) => Err(fail(e)),
    }
}

/// Opens directory `name` in `dir`, making it first when it is not there. With
/// `follow` false a symlink in its place is refused (ELOOP or ENOTDIR), never
/// followed.
pub fn make_dir_at(dir: impl AsFd, name: &Path, follow: bool) -> Result<OwnedFd, Errno> {
    match rustix::fs::mkdirat(dir.as_fd(), name, Mode::from_raw_mode(0o755)) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(e),
    }
    let mut flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    if !follow {
        flags |= OFlags::NOFOLLOW;
    }
    rustix::fs::openat(dir.as_fd(), name, flags, Mode::empty())
}

/// Opens directory `path` to write files into, making it (and what is missing
/// above it) as `policy` allows: anywhere (over a unix socket), or only under an
/// allowed root, each directory below the root reached without symlinks (TCP).
/// Returns the directory and its real path.
pub fn open_dir(policy: &FilesPolicy, path: &Path) -> Result<(OwnedFd, PathBuf), FilesError> {
    let copy_err = |e: io::Error| FilesError::Copy {
        from: path.to_owned(),
        source: e,
    };
    let Some(roots) = &policy.roots else {
        std::fs::create_dir_all(path).map_err(copy_err)?;
        let real = std::fs::canonicalize(path).map_err(copy_err)?;
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let fd = rustix::fs::open(&real, flags, Mode::empty()).map_err(|e| copy_err(e.into()))?;
        return Ok((fd, real));
    };
    let fail = |e: Errno| match e {
        Errno::LOOP | Errno::NOTDIR | Errno::XDEV => outside(path, roots),
        e => copy_err(e.into()),
    };
    if !path.is_absolute() || path.components().any(|c| c == Component::ParentDir) {
        return Err(outside(path, roots));
    }
    let Some((root, rel)) = roots
        .iter()
        .find_map(|r| Some((r, path.strip_prefix(r).ok()?)))
    else {
        return Err(outside(path, roots));
    };
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let mut dir = rustix::fs::open(root, flags, Mode::empty()).map_err(fail)?;
    for part in rel.components() {
        let Component::Normal(name) = part else {
            continue;
        };
        dir = make_dir_at(&dir, Path::new(name), false).map_err(fail)?;
    }
    Ok((dir, path.to_owned()))
}

/// The `O_NOFOLLOW` walk, for kernels without openat2: each directory is opened
/// relative to the one before, never through a symlink.
fn walk(root: OwnedFd, rel: &Path) -> Result<OwnedFd, Errno> {
    let parts: Vec<_> = rel.components().collect();
    let mut dir = root;
    for (i, part) in parts.iter().enumerate() {
        let Component::Normal(name) = part else {
            return Err(Errno::XDEV);
        };
        let last = i + 1 == parts.len();
        let flags = if last {
            read_flags() | OFlags::NOFOLLOW
        } else {
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
        };
        dir = rustix::fs::openat(dir.as_fd(), *name, flags, Mode::empty())?;
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(root: &Path) -> FilesPolicy {
        FilesPolicy {
            roots: Some(vec![root.canonicalize().unwrap()]),
            max_bytes: 1 << 20,
        }
    }

    #[test]
    fn no_symlink_under_the_root_is_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("real")).unwrap();
        std::fs::write(root.join("real/f"), "ok").unwrap();
        std::os::unix::fs::symlink(root.join("real"), root.join("dirlink")).unwrap();
        std::os::unix::fs::symlink(root.join("real/f"), root.join("filelink")).unwrap();
        let p = tcp(&root);
        assert_eq!(open(&p, &root.join("real/f")).unwrap().len, 2);
        for bad in ["dirlink/f", "filelink"] {
            assert!(
                matches!(
                    open(&p, &root.join(bad)),
                    Err(FilesError::OutsideRoots { .. })
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            open(&p, Path::new("/etc/passwd")),
            Err(FilesError::OutsideRoots { .. })
        ));
    }

    #[test]
    fn the_nofollow_walk_refuses_symlinks_too() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("a")).unwrap();
        std::fs::write(root.join("a/f"), "ok").unwrap();
        std::os::unix::fs::symlink(root.join("a"), root.join("l")).unwrap();
        let fd = |p: &Path| {
            rustix::fs::open(p, OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).unwrap()
        };
        assert!(walk(fd(&root), Path::new("a/f")).is_ok());
        assert!(walk(fd(&root), Path::new("l/f")).is_err());
    }

    #[test]
    fn a_directory_to_write_in_is_reached_without_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), root.join("link")).unwrap();
        let p = tcp(&root);
        let (_, real) = open_dir(&p, &root.join("new/deeper")).unwrap();
        assert_eq!(real, root.join("new/deeper"));
        assert!(root.join("new/deeper").is_dir());
        for bad in ["link/x", "link", "new/../../x"] {
            assert!(
                matches!(
                    open_dir(&p, &root.join(bad)),
                    Err(FilesError::OutsideRoots { .. })
                ),
                "{bad}"
            );
        }
        assert!(!elsewhere.path().join("x").exists());
        assert!(matches!(
            open_dir(&p, Path::new("/elsewhere")),
            Err(FilesError::OutsideRoots { .. })
        ));
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        let fifo = root.join("pipe");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        assert!(matches!(
            open(&tcp(&root), &fifo),
            Err(FilesError::NotRegular(_))
        ));
        let any = FilesPolicy {
            roots: None,
            max_bytes: u64::MAX,
        };
        assert!(matches!(open(&any, &fifo), Err(FilesError::NotRegular(_))));
    }
}
