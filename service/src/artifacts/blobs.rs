//! The content-addressed blobs: every file once, at `blobs/sha256/ab/cdef...`,
//! read-only. A file is hashed (SHA-256 and W&B's MD5 in one read) and copied in
//! only when its content is new, so no source is read more than twice; hashes
//! are cached by the file's identity and change time, so an unchanged file is
//! not read again at all. Bytes streamed by a client are written to a temporary
//! file while they are hashed and renamed into place once whole. Blocking.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::Engine as _;

use super::error::{io_err, ArtifactError};
use crate::run::files::Admitted;

/// Bytes read per call while hashing.
const CHUNK: usize = 1 << 20;
/// Cached digests at most; the cache starts over when it is full.
const CACHE_LIMIT: usize = 1 << 20;
/// Temporary files older than this are left over by a dead upload.
const STALE_TMP: std::time::Duration = std::time::Duration::from_secs(3600);

/// A file's content digests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    /// Hex SHA-256: the blob's name.
    pub sha256: String,
    /// Base64 MD5: what W&B manifests carry.
    pub md5: String,
    pub size: u64,
}

/// What adding a file did.
#[derive(Debug, Clone)]
pub struct Put {
    pub digests: Digests,
    /// The content was new and copied in (false: the store had it).
    pub stored: bool,
}

/// Identifies a file's content without reading it: same inode, size and change
/// times means the same bytes (as W&B's own cache assumes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Identity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Identity {
    fn of(meta: &fs::Metadata) -> Self {
        Identity {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// SHA-256 and MD5 over the same bytes.
pub struct Hasher {
    sha: ring::digest::Context,
    md5: md5::Context,
    size: u64,
}

impl Default for Hasher {
    fn default() -> Self {
        Self::new()
    }
}

impl Hasher {
    pub fn new() -> Self {
        Hasher {
            sha: ring::digest::Context::new(&ring::digest::SHA256),
            md5: md5::Context::new(),
            size: 0,
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        self.sha.update(data);
        self.md5.consume(data);
        self.size += data.len() as u64;
    }

    pub fn finish(self) -> Digests {
        Digests {
            sha256: hex(self.sha.finish().as_ref()),
            md5: base64::engine::general_purpose::STANDARD.encode(self.md5.finalize().0),
            size: self.size,
        }
    }
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Hashes bytes in memory (small files, manifests).
pub fn digest_bytes(data: &[u8]) -> Digests {
    let mut h = Hasher::new();
    h.update(data);
    h.finish()
}

/// Hashes a file, reading it once.
pub fn digest_reader(mut r: impl Read) -> io::Result<Digests> {
    let mut h = Hasher::new();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            return Ok(h.finish());
        }
        h.update(&buf[..n]);
    }
}

pub struct Blobs {
    /// `<data-dir>/artifacts`.
    root: PathBuf,
    /// fsync blobs before they count as stored (unless `--fsync never`).
    durable: bool,
    cache: Mutex<HashMap<Identity, Digests>>,
}

impl Blobs {
    /// Opens the blobs under `root`, making the directories and removing
    /// temporary files a dead upload left. Blocking.
    pub fn open(root: &Path, durable: bool) -> Result<Self, ArtifactError> {
        let blobs = Blobs {
            root: root.to_owned(),
            durable,
            cache: Mutex::new(HashMap::new()),
        };
        for dir in [blobs.blob_dir(), blobs.tmp_dir()] {
            fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        }
        blobs.sweep_tmp();
        Ok(blobs)
    }

    fn blob_dir(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Where the blob of `sha256` lives.
    pub fn path(&self, sha256: &str) -> PathBuf {
        let (head, tail) = sha256.split_at(sha256.len().min(2));
        self.blob_dir().join(head).join(tail)
    }

    pub fn has(&self, sha256: &str) -> bool {
        self.path(sha256).is_file()
    }

    fn sweep_tmp(&self) {
        let Ok(entries) = fs::read_dir(self.tmp_dir()) else {
            return;
        };
        for e in entries.flatten() {
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > STALE_TMP);
            if old {
                let _ = fs::remove_file(e.path());
            }
        }
    }

    fn cached(&self, id: &Identity) -> Option<Digests> {
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    fn remember(&self, id: Identity, d: &Digests) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(id, d.clone());
    }

    /// The digests of an opened file, from the cache when it has not changed.
    /// The file is read (at most once) through the handle it was opened by.
    pub fn digest_file(&self, opened: &mut Admitted) -> Result<Digests, ArtifactError> {
        let path = opened.path.clone();
        let id = Identity::of(&opened.file.metadata().map_err(io_err(&path))?);
        if let Some(d) = self.cached(&id) {
            return Ok(d);
        }
        let d = digest_reader(&mut opened.file).map_err(io_err(&path))?;
        if Identity::of(&opened.file.metadata().map_err(io_err(&path))?) != id {
            return Err(ArtifactError::Changed(path));
        }
        self.remember(id, &d);
        Ok(d)
    }

    /// Adds an opened file as artifact path `path`: hashes it (or finds its
    /// digests cached), checks them against `expected` (hex SHA-256, when given),
    /// and copies it in, through the same handle, if the store lacks its
    /// content. A file that changes meanwhile is refused.
    pub fn put_file(
        &self,
        mut opened: Admitted,
        path: &str,
        expected: &str,
    ) -> Result<Put, ArtifactError> {
        let source = opened.path.clone();
        let before = opened.file.metadata().map_err(io_err(&source))?;
        let digests = self.digest_file(&mut opened)?;
        if !expected.is_empty() && !expected.eq_ignore_ascii_case(&digests.sha256) {
            return Err(ArtifactError::DigestMismatch {
                path: path.to_owned(),
                expected: expected.to_owned(),
                actual: digests.sha256,
            });
        }
        if self.has(&digests.sha256) {
            return Ok(Put {
                digests,
                stored: false,
            });
        }
        let tmp = self.tmp_name();
        let copied = opened
            .file
            .seek(SeekFrom::Start(0))
            .and_then(|_| File::create(&tmp))
            .and_then(|mut out| io::copy(&mut opened.file, &mut out))
            .map_err(io_err(&source));
        let after = opened.file.metadata().map_err(io_err(&source));
        let result = copied.and_then(|_| {
            if Identity::of(&after?) != Identity::of(&before) {
                return Err(ArtifactError::Changed(source.clone()));
            }
            self.settle(&tmp, &digests.sha256)
        });
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map(|stored| Put { digests, stored })
    }

    fn tmp_name(&self) -> PathBuf {
        self.tmp_dir().join(format!(
            "{}-{:016x}.part",
            std::process::id(),
            fastrand::u64(..)
        ))
    }

    /// Moves a finished temporary file into place as blob `sha256` (read-only,
    /// synced when durable); false when the blob was there already.
    fn settle(&self, tmp: &Path, sha256: &str) -> Result<bool, ArtifactError> {
        let dest = self.path(sha256);
        if dest.is_file() {
            let _ = fs::remove_file(tmp);
            return Ok(false);
        }
        fs::set_permissions(tmp, fs::Permissions::from_mode(0o444)).map_err(io_err(tmp))?;
        if self.durable {
            File::open(tmp)
                .and_then(|f| f.sync_all())
                .map_err(io_err(tmp))?;
        }
        let parent = dest.parent().unwrap_or(&self.root);
        fs::create_dir_all(parent).map_err(io_err(parent))?;
        fs::rename(tmp, &dest).map_err(io_err(&dest))?;
        if self.durable {
            File::open(parent)
                .and_then(|d| d.sync_all())
                .map_err(io_err(parent))?;
        }
        Ok(true)
    }

    /// Starts a blob whose bytes arrive in pieces.
    pub fn writer(&self) -> Result<BlobWriter, ArtifactError> {
        let tmp = self.tmp_name();
        let file = File::create(&tmp).map_err(io_err(&tmp))?;
        Ok(BlobWriter {
            file: Some(file),
            tmp,
            hasher: Some(Hasher::new()),
        })
    }

    /// Reads a blob back and checks it still has its digest.
    pub fn verify(&self, sha256: &str) -> Result<bool, ArtifactError> {
        let path = self.path(sha256);
        let file = File::open(&path).map_err(io_err(&path))?;
        Ok(digest_reader(file).map_err(io_err(&path))?.sha256 == sha256)
    }
}

/// A blob being written from streamed pieces; dropped unfinished, its temporary
/// file is removed.
pub struct BlobWriter {
    file: Option<File>,
    tmp: PathBuf,
    hasher: Option<Hasher>,
}

impl BlobWriter {
    pub fn write(&mut self, data: &[u8]) -> Result<(), ArtifactError> {
        if let (Some(f), Some(h)) = (self.file.as_mut(), self.hasher.as_mut()) {
            f.write_all(data).map_err(io_err(&self.tmp))?;
            h.update(data);
        }
        Ok(())
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.hasher.as_ref().map_or(0, |h| h.size)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Ends the blob: checks `expected` (hex SHA-256, when given) and moves it
    /// into place. On a mismatch nothing is kept.
    pub fn finish(
        mut self,
        blobs: &Blobs,
        path: &str,
        expected: &str,
    ) -> Result<Put, ArtifactError> {
        let digests = self
            .hasher
            .take()
            .map(Hasher::finish)
            .unwrap_or_else(|| digest_bytes(b""));
        drop(self.file.take());
        if !expected.is_empty() && !expected.eq_ignore_ascii_case(&digests.sha256) {
            return Err(ArtifactError::DigestMismatch {
                path: path.to_owned(),
                expected: expected.to_owned(),
                actual: digests.sha256,
            });
        }
        let stored = blobs.settle(&self.tmp, &digests.sha256)?;
        Ok(Put { digests, stored })
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn any_file() -> crate::run::files::FilesPolicy {
        crate::run::files::FilesPolicy {
            roots: None,
            max_bytes: u64::MAX,
        }
    }

    #[test]
    fn a_file_is_stored_once_and_its_digests_are_cached() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::open(&dir.path().join("artifacts"), false).unwrap();
        let src = dir.path().join("a.txt");
        fs::write(&src, b"hello").unwrap();
        let open = |p: &Path| crate::run::files::admit(&any_file(), p).unwrap();
        let first = blobs.put_file(open(&src), "a", "").unwrap();
        assert!(first.stored);
        assert_eq!(
            first.digests.sha256,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(first.digests.md5, "XUFAKrxLKna5cZ2REBfFkg==");
        let copy = dir.path().join("b.txt");
        fs::write(&copy, b"hello").unwrap();
        assert!(!blobs.put_file(open(&copy), "b", "").unwrap().stored);
        let blob = blobs.path(&first.digests.sha256);
        assert!(fs::metadata(&blob).unwrap().permissions().readonly());
        assert!(blobs.verify(&first.digests.sha256).unwrap());
        assert!(fs::read_dir(blobs.tmp_dir()).unwrap().next().is_none());
    }

    #[test]
    fn a_streamed_blob_with_a_wrong_digest_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::open(&dir.path().join("artifacts"), false).unwrap();
        let mut w = blobs.writer().unwrap();
        w.write(b"abc").unwrap();
        let err = w.finish(&blobs, "x", &"0".repeat(64)).unwrap_err();
        assert!(matches!(err, ArtifactError::DigestMismatch { .. }));
        assert!(fs::read_dir(blobs.tmp_dir()).unwrap().next().is_none());
        let d = digest_bytes(b"abc");
        assert!(!blobs.has(&d.sha256));
        let mut w = blobs.writer().unwrap();
        w.write(b"abc").unwrap();
        assert!(w.finish(&blobs, "x", &d.sha256).unwrap().stored);
        assert!(blobs.has(&d.sha256));
    }
}
