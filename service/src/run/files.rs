//! Files a run keeps under its `files/` directory: `SaveFiles` globs laid out as
//! W&B's `Run.save` does, media values copied into `files/media/`, and the change
//! check behind the `live` policy. Everything here does blocking file I/O and runs
//! on a blocking thread.

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

pub use super::confine::{make_dir_at, open_dir, Admitted};
use super::glob::GlobError;
use crate::proto::v1::{value::Kind, Media, MediaKind, Value};
use crate::proto::wal::SavedFile;
use crate::value::media_dir;

/// When a saved file is copied (the W&B `Run.save` policies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SavePolicy {
    /// Now, again whenever it changes, and at the end (the default).
    Live,
    /// Now only.
    Now,
    /// At the end of the run only.
    End,
}

impl SavePolicy {
    /// A policy by name; empty means `live`.
    pub fn parse(name: &str) -> Result<Self, FilesError> {
        match name {
            "" | "live" => Ok(SavePolicy::Live),
            "now" => Ok(SavePolicy::Now),
            "end" => Ok(SavePolicy::End),
            other => Err(FilesError::Policy(other.to_owned())),
        }
    }

    /// The name written in the log.
    pub fn as_str(self) -> &'static str {
        match self {
            SavePolicy::Live => "live",
            SavePolicy::Now => "now",
            SavePolicy::End => "end",
        }
    }

    /// A saved file's policy, as logged (only valid names are ever logged).
    pub fn of(file: &SavedFile) -> Self {
        Self::parse(&file.policy).unwrap_or(SavePolicy::Live)
    }

    /// Whether a backend uploads the file when it is saved: `now` and `live`
    /// files were just copied; `end` files are not there until the end.
    pub fn uploads_on_save(self) -> bool {
        self != SavePolicy::End
    }

    /// Whether a backend uploads the file when the run ends: `live` and `end`
    /// files have their final copies then; `now` files were uploaded when saved.
    pub fn uploads_at_end(self) -> bool {
        self != SavePolicy::Now
    }
}

/// Where SaveFiles and media values may read files from.
#[derive(Debug, Clone)]
pub struct FilesPolicy {
    /// None: any regular file the sidecar can read (a unix socket, which only the
    /// sidecar's own user, or --socket-group, can reach). Some: only files under
    /// these directories, symlinks resolved (TCP).
    pub roots: Option<Vec<PathBuf>>,
    /// Largest file copied, in bytes.
    pub max_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("save: unknown policy {0:?}; use \"live\", \"now\" or \"end\"")]
    Policy(String),
    #[error("save: glob is empty; give a path or a pattern such as \"checkpoints/*.pt\"")]
    EmptyGlob,
    #[error("{what} {path:?} is relative but the run has no working_dir; send an absolute path, or working_dir in Init or SaveFiles")]
    NoWorkingDir { what: &'static str, path: String },
    #[error("working_dir {0:?} must be an absolute path")]
    RelativeWorkingDir(String),
    #[error("save: {0:?} contains '..'; name files below a directory without walking up")]
    DotDot(String),
    #[error("save: base_path {base:?} is not a prefix of the glob {glob:?}")]
    BaseNotPrefix { base: String, glob: String },
    #[error("save: bad pattern {glob:?}: {problem}")]
    Pattern { glob: String, problem: String },
    #[error("save: {glob:?}: {problem}")]
    GlobTooLarge { glob: String, problem: String },
    #[error("media {key:?}: cannot read {path}: {source}")]
    Media {
        key: String,
        path: PathBuf,
        source: io::Error,
    },
    #[error("copying {from} to the run's files: {source}")]
    Copy { from: PathBuf, source: io::Error },
    #[error("{0} is not a regular file (directories, devices, fifos and sockets are not saved)")]
    NotRegular(PathBuf),
    #[error("{path} is outside the directories this sidecar may read files from over TCP ({roots}); save files under them, use a unix socket, or start the sidecar with --files-root")]
    OutsideRoots { path: PathBuf, roots: String },
    #[error("{path} is {size} bytes, over the limit of {limit} bytes (--max-file-bytes)")]
    TooLarge {
        path: PathBuf,
        size: u64,
        limit: u64,
    },
}

/// Opens `path` as `policy` allows (see [`super::confine`]): a regular file,
/// under the allowed roots without symlinks over TCP, within the size cap.
pub fn admit(policy: &FilesPolicy, path: &Path) -> Result<Admitted, FilesError> {
    super::confine::open(policy, path)
}

/// Copies an admitted file (checked again now: it may have changed since it was
/// saved) into the run's files.
pub fn copy_admitted(
    policy: &FilesPolicy,
    from: &Path,
    to: &Path,
) -> Result<Option<Fingerprint>, FilesError> {
    let opened = admit(policy, from)?;
    copy_into(opened, to)
}

/// Resolves `path` against `working_dir` when it is relative.
pub fn resolve(what: &'static str, path: &str, working_dir: &str) -> Result<PathBuf, FilesError> {
    let p = Path::new(path);
    if p.is_absolute() {
        return Ok(p.to_owned());
    }
    if working_dir.is_empty() {
        return Err(FilesError::NoWorkingDir {
            what,
            path: path.to_owned(),
        });
    }
    if !Path::new(working_dir).is_absolute() {
        return Err(FilesError::RelativeWorkingDir(working_dir.to_owned()));
    }
    Ok(Path::new(working_dir).join(p))
}

fn has_dot_dot(p: &Path) -> bool {
    p.components().any(|c| c == Component::ParentDir)
}

/// Expands a `SaveFiles` glob into the files to save and their names under
/// files/, following W&B's layout: with `base_path`, the path below it; else for a
/// relative glob the path below the working directory; else (absolute) the last
/// directory and below (`/a/b/run123/*.txt` -> `run123/x.txt`).
pub fn expand(
    glob_str: &str,
    base_path: &str,
    working_dir: &str,
    policy: &str,
    files: &FilesPolicy,
) -> Result<Vec<SavedFile>, FilesError> {
    if glob_str.is_empty() {
        return Err(FilesError::EmptyGlob);
    }
    let policy = SavePolicy::parse(policy)?;
    let pattern = resolve("glob", glob_str, working_dir)?;
    if has_dot_dot(&pattern) {
        return Err(FilesError::DotDot(glob_str.to_owned()));
    }
    let base = if !base_path.is_empty() {
        let base = resolve("base_path", base_path, working_dir)?;
        if has_dot_dot(&base) {
            return Err(FilesError::DotDot(base_path.to_owned()));
        }
        if !pattern.starts_with(&base) {
            return Err(FilesError::BaseNotPrefix {
                base: base_path.to_owned(),
                glob: glob_str.to_owned(),
            });
        }
        base
    } else if Path::new(glob_str).is_absolute() {
        pattern
            .parent()
            .and_then(Path::parent)
            .unwrap_or(Path::new("/"))
            .to_owned()
    } else {
        PathBuf::from(working_dir)
    };
    let paths = super::glob::expand(&pattern).map_err(|e| match e {
        GlobError::Pattern(problem) => FilesError::Pattern {
            glob: glob_str.to_owned(),
            problem,
        },
        GlobError::TooLarge(problem) => FilesError::GlobTooLarge {
            glob: glob_str.to_owned(),
            problem,
        },
    })?;
    let literal = !glob_str.contains(['*', '?', '[']);
    let mut out = Vec::new();
    for path in paths {
        // Regular files only: a pattern skips directories, fifos, sockets and
        // devices; a path naming one is refused.
        let real = match admit(files, &path) {
            Ok(opened) => opened.path,
            Err(FilesError::NotRegular(_)) if !literal => continue,
            Err(e) => return Err(e),
        };
        let Ok(rel) = path.strip_prefix(&base) else {
            continue;
        };
        out.push(SavedFile {
            source: real.display().to_string(),
            name: rel.display().to_string(),
            policy: policy.as_str().to_owned(),
        });
    }
    Ok(out)
}

/// What a file looked like when it was last seen: enough to notice a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    len: u64,
    modified: Option<SystemTime>,
}

pub fn fingerprint(path: &Path) -> Option<Fingerprint> {
    let m = fs::metadata(path).ok()?;
    Some(Fingerprint {
        len: m.len(),
        modified: m.modified().ok(),
    })
}

/// Copies an opened file to `to` by way of a temporary file, so the run's copy
/// is never half-written. Returns the source's fingerprint as copied.
pub fn copy_into(mut from: Admitted, to: &Path) -> Result<Option<Fingerprint>, FilesError> {
    let err = |source| FilesError::Copy {
        from: from.path.clone(),
        source,
    };
    let before = from.file.metadata().ok().map(|m| Fingerprint {
        len: m.len(),
        modified: m.modified().ok(),
    });
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent).map_err(err)?;
    }
    let name = to.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = to.with_file_name(format!(".{name}.copy"));
    let copied = fs::File::create(&tmp).and_then(|mut out| io::copy(&mut from.file, &mut out));
    if let Err(e) = copied {
        let _ = fs::remove_file(&tmp);
        return Err(err(e));
    }
    fs::rename(&tmp, to).map_err(err)?;
    Ok(before)
}

/// Copies every media value in `values` into `files_dir/media/...` and rewrites its
/// path to the copy's name relative to files/.
pub fn copy_media(
    key: &str,
    value: &mut Value,
    step: i64,
    working_dir: &str,
    files_dir: &Path,
    files: &FilesPolicy,
) -> Result<(), FilesError> {
    match &mut value.kind {
        Some(Kind::Media(m)) => copy_one_media(key, m, step, working_dir, files_dir, files),
        Some(Kind::MapValue(map)) => map
            .fields
            .values_mut()
            .try_for_each(|v| copy_media(key, v, step, working_dir, files_dir, files)),
        Some(Kind::ListValue(list)) => list
            .values
            .iter_mut()
            .try_for_each(|v| copy_media(key, v, step, working_dir, files_dir, files)),
        _ => Ok(()),
    }
}

/// A media read error, named by the logged key.
fn media_err(key: &str) -> impl Fn(FilesError) -> FilesError + '_ {
    move |e| match e {
        FilesError::Copy { from, source } => FilesError::Media {
            key: key.to_owned(),
            path: from,
            source,
        },
        other => other,
    }
}

/// Copies one media file and points the value at the copy (with its digest).
fn copy_one_media(
    key: &str,
    m: &mut Media,
    step: i64,
    working_dir: &str,
    files_dir: &Path,
    files: &FilesPolicy,
) -> Result<(), FilesError> {
    let source = resolve("media path", &m.path, working_dir)?;
    let mut opened = admit(files, &source).map_err(media_err(key))?;
    let read_err = |e| FilesError::Media {
        key: key.to_owned(),
        path: source.clone(),
        source: e,
    };
    let mut bytes = Vec::with_capacity(opened.len as usize);
    io::Read::read_to_end(&mut opened.file, &mut bytes).map_err(read_err)?;
    let name = media_name(key, m.kind, &source, step, &bytes);
    let to = files_dir.join(&name);
    if !to.exists() {
        // The bytes read are what is written: the file may change after.
        write_copy(&bytes, &to).map_err(read_err)?;
    }
    m.path = name;
    m.sha256 = ring::digest::digest(&ring::digest::SHA256, &bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    m.size = bytes.len() as u64;
    Ok(())
}

/// `media/<kind dir>/<key>_<step>_<crc32><ext>`, as W&B lays media out.
fn media_name(key: &str, kind: i32, source: &Path, step: i64, bytes: &[u8]) -> String {
    let ext = match MediaKind::try_from(kind) {
        // W&B's name for table files.
        Ok(MediaKind::Table) => ".table.json".to_owned(),
        _ => source
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| format!(".{e}"))
            .unwrap_or_default(),
    };
    let safe: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "media/{}/{safe}_{step}_{:08x}{ext}",
        media_dir(kind),
        crc32fast::hash(bytes)
    )
}

/// Writes `bytes` to `to` by way of a temporary file.
fn write_copy(bytes: &[u8], to: &Path) -> io::Result<()> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent)?;
    }
    let name = to.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = to.with_file_name(format!(".{name}.copy"));
    fs::write(&tmp, bytes)?;
    fs::rename(&tmp, to)
}

/// Whether a value holds media anywhere inside it.
pub fn has_media(value: &Value) -> bool {
    match &value.kind {
        Some(Kind::Media(_)) => true,
        Some(Kind::MapValue(m)) => m.fields.values().any(has_media),
        Some(Kind::ListValue(l)) => l.values.iter().any(has_media),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(root: &Path, rel: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, rel).unwrap();
    }

    fn any() -> FilesPolicy {
        FilesPolicy {
            roots: None,
            max_bytes: u64::MAX,
        }
    }

    fn names(v: Vec<SavedFile>) -> Vec<String> {
        let mut n: Vec<String> = v.into_iter().map(|f| f.name).collect();
        n.sort();
        n
    }

    #[test]
    fn layouts_follow_the_wandb_save_doc() {
        let dir = tempfile::tempdir().unwrap();
        let wd = dir.path().to_str().unwrap();
        touch(dir.path(), "these/are/myfiles/a.txt");
        touch(dir.path(), "these/are/myfiles/b.txt");
        touch(dir.path(), "files/x/saveme.txt");
        touch(dir.path(), "files/y/saveme.txt");
        touch(dir.path(), "files/y/other.txt");
        assert_eq!(
            names(expand("these/are/myfiles/*", "", wd, "now", &any()).unwrap()),
            ["these/are/myfiles/a.txt", "these/are/myfiles/b.txt"]
        );
        assert_eq!(
            names(expand("these/are/myfiles/*", "these", wd, "now", &any()).unwrap()),
            ["are/myfiles/a.txt", "are/myfiles/b.txt"]
        );
        let abs = format!("{wd}/these/are/myfiles/*.txt");
        assert_eq!(
            names(expand(&abs, "", "", "now", &any()).unwrap()),
            ["myfiles/a.txt", "myfiles/b.txt"]
        );
        assert_eq!(
            names(expand(&abs, &format!("{wd}/these"), "", "now", &any()).unwrap()),
            ["are/myfiles/a.txt", "are/myfiles/b.txt"]
        );
        assert_eq!(
            names(expand("files/*/saveme.txt", "", wd, "end", &any()).unwrap()),
            ["files/x/saveme.txt", "files/y/saveme.txt"]
        );
        // Directories matched by a glob are not files.
        assert!(expand("files/*", "", wd, "now", &any()).unwrap().is_empty());
    }

    #[test]
    fn bad_saves_are_refused() {
        assert!(matches!(
            expand("a/*", "", "", "now", &any()),
            Err(FilesError::NoWorkingDir { .. })
        ));
        assert!(matches!(
            expand("../a", "", "/tmp", "now", &any()),
            Err(FilesError::DotDot(_))
        ));
        assert!(matches!(
            expand("a/*", "b", "/tmp", "now", &any()),
            Err(FilesError::BaseNotPrefix { .. })
        ));
        assert!(matches!(
            expand("a/*", "", "/tmp", "sometimes", &any()),
            Err(FilesError::Policy(_))
        ));
        assert!(matches!(
            expand("", "", "/tmp", "now", &any()),
            Err(FilesError::EmptyGlob)
        ));
    }
}
