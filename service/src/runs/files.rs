//! ListFiles and ReadFile: a run's files/ directory, read-only. A name is resolved
//! (symbolic links included) and must stay inside that directory.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use tokio::sync::mpsc;

use super::{blocking_err, RegistryError, Runs};
use crate::proto::v1::{FileInfo, ReadFileRequest, ReadFileResponse};
use crate::store::{self, StoreError};

/// Bytes per ReadFile message.
const CHUNK: usize = 256 * 1024;

impl Runs {
    /// One page of the files of run `id`'s files/ directory: at most `limit`,
    /// those named after `after`; and the token of the next page (empty after
    /// the last: the last name of this page otherwise).
    pub async fn list_files(
        &self,
        id: &str,
        after: String,
        limit: usize,
    ) -> Result<(Vec<FileInfo>, String), RegistryError> {
        let dir = self.dir_of(id)?;
        let (files, more) = tokio::task::spawn_blocking(move || file_page(&dir, &after, limit))
            .await
            .map_err(blocking_err)?;
        let next = match files.last() {
            Some(f) if more => f.name.clone(),
            _ => String::new(),
        };
        Ok((files, next))
    }

    /// Streams a file of a run in chunks into `out`: at least one message (empty
    /// for an empty file), then the rest. The file is opened before this returns,
    /// so a missing file is the call's error, not the stream's.
    pub async fn read_file(
        &self,
        req: ReadFileRequest,
        out: mpsc::Sender<Result<ReadFileResponse, RegistryError>>,
    ) -> Result<(), RegistryError> {
        let dir = self.dir_of(&req.run_id)?;
        let opened = tokio::task::spawn_blocking(move || open_file(&dir, &req))
            .await
            .map_err(blocking_err)??;
        // Ends at the end of the file, or early when the client goes away.
        tokio::task::spawn_blocking(move || stream_file(opened, &out));
        Ok(())
    }
}

/// One page of a run's files (names relative to files/, sizes, change times),
/// sorted by name: at most `limit` of those whose name sorts after `after` (all
/// when it is empty); and whether more follow. Only the page's files are
/// stat'ed, so a page costs the same in a run of 100,000 files. Blocking.
fn file_page(dir: &Path, after: &str, limit: usize) -> (Vec<FileInfo>, bool) {
    let names = store::list_files(dir);
    let start = names.partition_point(|n| n.as_str() <= after);
    let rest = &names[start..];
    let root = dir.join(store::FILES_DIR);
    let page = rest
        .iter()
        .take(limit)
        .filter_map(|name| {
            // Not following links, as the walk does not; a file removed since the
            // walk is left out.
            let meta = std::fs::symlink_metadata(root.join(name)).ok()?;
            let updated_at = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0.0, |d| d.as_secs_f64());
            meta.is_file().then(|| FileInfo {
                name: name.clone(),
                size: meta.len(),
                updated_at,
            })
        })
        .collect();
    (page, rest.len() > limit)
}

/// A file opened for ReadFile, positioned at the request's offset.
struct Opened {
    file: File,
    path: PathBuf,
    offset: u64,
    size: u64,
}

/// Resolves `req.name` inside the run's files/ directory and opens it. Blocking.
fn open_file(dir: &Path, req: &ReadFileRequest) -> Result<Opened, RegistryError> {
    let missing = || RegistryError::NoSuchFile {
        id: req.run_id.clone(),
        name: req.name.clone(),
    };
    let root = dir.join(store::FILES_DIR);
    let root = root.canonicalize().map_err(|_| missing())?;
    let path = match root.join(&req.name).canonicalize() {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(missing()),
        Err(e) => {
            return Err(StoreError::Io {
                path: root,
                source: e,
            }
            .into())
        }
    };
    if !path.starts_with(&root) {
        return Err(RegistryError::FileOutsideRun {
            id: req.run_id.clone(),
            name: req.name.clone(),
        });
    }
    let mut file = File::open(&path).map_err(store::io_err(&path))?;
    let meta = file.metadata().map_err(store::io_err(&path))?;
    if !meta.is_file() {
        return Err(missing());
    }
    let size = meta.len();
    if req.offset > size {
        return Err(RegistryError::PastEnd {
            name: req.name.clone(),
            offset: req.offset,
            size,
        });
    }
    file.seek(SeekFrom::Start(req.offset))
        .map_err(store::io_err(&path))?;
    Ok(Opened {
        file,
        path,
        offset: req.offset,
        size,
    })
}

/// Sends the file from its offset in chunks. Blocking.
fn stream_file(mut f: Opened, out: &mpsc::Sender<Result<ReadFileResponse, RegistryError>>) {
    let mut first = true;
    loop {
        let mut data = Vec::with_capacity(CHUNK);
        let read = (&mut f.file).take(CHUNK as u64).read_to_end(&mut data);
        let msg = match read {
            Ok(0) if !first => return,
            Ok(n) => {
                let msg = ReadFileResponse {
                    data,
                    offset: f.offset,
                    size: f.size,
                };
                f.offset += n as u64;
                Ok(msg)
            }
            Err(e) => Err(store::io_err(&f.path)(e).into()),
        };
        let failed = msg.is_err();
        if out.blocking_send(msg).is_err() || failed {
            return;
        }
        first = false;
    }
}
