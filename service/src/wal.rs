//! A run's transaction log (`run.wal`): CRC-framed protobuf records, appended with one
//! `write(2)` each, so that a record is in the page cache (and survives a kill of the
//! sidecar) before its caller is acknowledged.
//!
//! Frame: `u32 LE length | u32 LE CRC-32 of payload | payload (wal.v1.Record)`.
//! Opening a log for append truncates a torn tail: the first frame that is short,
//! fails its CRC or does not decode ends the log.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use prost::Message;

use crate::proto::wal::Record;

/// When the transaction log is fsynced. Every record is written to the log (and so
/// survives a crash of the sidecar) before it is acknowledged; this decides what
/// survives a power cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FsyncPolicy {
    /// Before every acknowledgement.
    Always,
    /// At most once per flush interval (1 s) per run, and at finish.
    Batch,
    /// Never (the OS writes back when it likes); finish still syncs.
    Never,
}

/// No legitimate record is this large (the API's message limit is far below it); a
/// header claiming more is a torn or corrupt frame.
const MAX_FRAME: u32 = 1 << 30;
const HEADER: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("transaction log {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("run {0} is open in another runcore sidecar (its transaction log is locked); use that sidecar, or stop it first")]
    InUse(PathBuf),
}

/// An exclusive lock on a log, held by the one writer of a run. Two sidecars may
/// share a data dir; a run is open in at most one of them.
pub struct WalLock {
    file: File,
    path: PathBuf,
}

impl WalLock {
    /// Locks an existing log for writing; `InUse` if another process holds it.
    pub fn acquire(path: &Path) -> Result<Self, WalError> {
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(io_err(path))?;
        lock(&file, path)?;
        Ok(WalLock {
            file,
            path: path.to_owned(),
        })
    }
}

fn lock(file: &File, path: &Path) -> Result<(), WalError> {
    match file.try_lock() {
        Ok(()) => Ok(()),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err(WalError::InUse(path.parent().unwrap_or(path).to_owned()))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(io_err(path)(e)),
    }
}

/// Whether some process holds a log's writer lock (a sidecar has the run open).
pub fn is_locked(path: &Path) -> bool {
    File::open(path)
        .is_ok_and(|f| matches!(f.try_lock_shared(), Err(std::fs::TryLockError::WouldBlock)))
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> WalError + '_ {
    move |source| WalError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Reads a log's records in order, stopping at the first bad frame.
pub struct WalReader {
    reader: BufReader<File>,
    path: PathBuf,
    /// Bytes of whole, valid frames read so far.
    valid_len: u64,
    file_len: u64,
    done: bool,
}

impl WalReader {
    pub fn open(path: &Path) -> Result<Self, WalError> {
        let file = File::open(path).map_err(io_err(path))?;
        let file_len = file.metadata().map_err(io_err(path))?.len();
        Ok(WalReader {
            reader: BufReader::with_capacity(256 * 1024, file),
            path: path.to_owned(),
            valid_len: 0,
            file_len,
            done: false,
        })
    }

    /// Opens a log to read the records after byte `offset` (the end of a record).
    pub fn open_at(path: &Path, offset: u64) -> Result<Self, WalError> {
        use std::io::{Seek, SeekFrom};
        let mut r = WalReader::open(path)?;
        if offset > 0 {
            r.reader
                .seek(SeekFrom::Start(offset))
                .map_err(io_err(path))?;
            r.valid_len = offset.min(r.file_len);
        }
        Ok(r)
    }

    /// Length of the valid prefix read so far.
    pub fn valid_len(&self) -> u64 {
        self.valid_len
    }

    /// Bytes after the valid prefix: a torn tail, once the reader is exhausted.
    pub fn torn_bytes(&self) -> u64 {
        self.file_len.saturating_sub(self.valid_len)
    }

    /// The next record, None at the end or at the first bad frame.
    pub fn next_record(&mut self) -> Result<Option<Record>, WalError> {
        if self.done {
            return Ok(None);
        }
        let mut header = [0u8; HEADER];
        if !read_full(&mut self.reader, &mut header).map_err(io_err(&self.path))? {
            self.done = true;
            return Ok(None);
        }
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let remaining = self.file_len.saturating_sub(self.valid_len + HEADER as u64);
        if len > MAX_FRAME || u64::from(len) > remaining {
            self.done = true;
            return Ok(None);
        }
        let mut payload = vec![0u8; len as usize];
        if !read_full(&mut self.reader, &mut payload).map_err(io_err(&self.path))?
            || crc32fast::hash(&payload) != crc
        {
            self.done = true;
            return Ok(None);
        }
        match Record::decode(payload.as_slice()) {
            Ok(record) => {
                self.valid_len += HEADER as u64 + u64::from(len);
                Ok(Some(record))
            }
            Err(_) => {
                self.done = true;
                Ok(None)
            }
        }
    }
}

/// Fills `buf`; false on a clean or short end of file.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => return Ok(false),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Appends records to a log.
pub struct WalWriter {
    file: File,
    path: PathBuf,
    len: u64,
    /// Reused encode buffer.
    buf: Vec<u8>,
    unsynced: bool,
}

impl WalWriter {
    /// Creates a new, empty log, locked; fails if one exists.
    pub fn create(path: &Path) -> Result<Self, WalError> {
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(path)
            .map_err(io_err(path))?;
        lock(&file, path)?;
        Ok(Self::with_file(file, path, 0))
    }

    /// Opens a locked log for append, cutting it to `valid_len` (from a
    /// [`WalReader`] that read it to its end).
    pub fn open_truncated(lock: WalLock, valid_len: u64) -> Result<Self, WalError> {
        let WalLock { file, path } = lock;
        if file.metadata().map_err(io_err(&path))?.len() != valid_len {
            file.set_len(valid_len).map_err(io_err(&path))?;
            file.sync_all().map_err(io_err(&path))?;
        }
        Ok(Self::with_file(file, &path, valid_len))
    }

    fn with_file(file: File, path: &Path, len: u64) -> Self {
        WalWriter {
            file,
            path: path.to_owned(),
            len,
            buf: Vec::with_capacity(4096),
            unsynced: false,
        }
    }

    /// Appends one record with a single write; returns its offset.
    pub fn append(&mut self, record: &Record) -> Result<u64, WalError> {
        self.buf.clear();
        self.buf.extend_from_slice(&[0u8; HEADER]);
        // Encoding into a Vec cannot run out of capacity.
        let _ = record.encode(&mut self.buf);
        let len = (self.buf.len() - HEADER) as u32;
        let crc = crc32fast::hash(&self.buf[HEADER..]);
        self.buf[0..4].copy_from_slice(&len.to_le_bytes());
        self.buf[4..8].copy_from_slice(&crc.to_le_bytes());
        let offset = self.len;
        if let Err(e) = self.file.write_all(&self.buf) {
            // A partial write leaves a torn frame: cut it so the log stays appendable.
            let _ = self.file.set_len(offset);
            return Err(io_err(&self.path)(e));
        }
        self.len += self.buf.len() as u64;
        self.unsynced = true;
        Ok(offset)
    }

    /// Bytes in the log.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the log is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether anything was appended since the last sync.
    pub fn unsynced(&self) -> bool {
        self.unsynced
    }

    /// fsyncs the log on the calling thread (blocking).
    pub fn sync(&mut self) -> Result<(), WalError> {
        self.file.sync_data().map_err(io_err(&self.path))?;
        self.unsynced = false;
        Ok(())
    }

    /// A second handle on the log, to fsync it off the caller's thread.
    pub fn try_clone_file(&self) -> Option<Arc<File>> {
        self.file.try_clone().ok().map(Arc::new)
    }

    /// Records that a sync through another handle covered everything appended.
    pub fn mark_synced(&mut self) {
        self.unsynced = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::wal::{record::Kind, StateChange};

    fn rec(i: i32) -> Record {
        Record {
            time: f64::from(i),
            kind: Some(Kind::State(StateChange {
                state: 1,
                exit_code: Some(i),
                ..Default::default()
            })),
        }
    }

    fn read_all(path: &Path) -> (Vec<Record>, u64) {
        let mut r = WalReader::open(path).unwrap();
        let mut out = Vec::new();
        while let Some(x) = r.next_record().unwrap() {
            out.push(x);
        }
        (out, r.valid_len())
    }

    #[test]
    fn torn_tail_is_cut_and_log_stays_appendable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.wal");
        let mut w = WalWriter::create(&path).unwrap();
        for i in 0..3 {
            w.append(&rec(i)).unwrap();
        }
        let good = w.len();
        drop(w);
        // A torn frame: a header promising more bytes than follow.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[50, 0, 0, 0, 1, 2, 3, 4, 9, 9]).unwrap();
        drop(f);
        let (records, valid) = read_all(&path);
        assert_eq!(records.len(), 3);
        assert_eq!(valid, good);
        let mut w = WalWriter::open_truncated(WalLock::acquire(&path).unwrap(), valid).unwrap();
        w.append(&rec(3)).unwrap();
        drop(w);
        let (records, _) = read_all(&path);
        assert_eq!(records, (0..4).map(rec).collect::<Vec<_>>());
    }

    #[test]
    fn one_writer_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.wal");
        let w = WalWriter::create(&path).unwrap();
        assert!(is_locked(&path));
        assert!(matches!(WalLock::acquire(&path), Err(WalError::InUse(_))));
        drop(w);
        assert!(!is_locked(&path));
        let _again = WalLock::acquire(&path).unwrap();
    }

    #[test]
    fn a_flipped_byte_ends_the_log_at_that_frame() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.wal");
        let mut w = WalWriter::create(&path).unwrap();
        w.append(&rec(0)).unwrap();
        let second = w.append(&rec(1)).unwrap();
        w.append(&rec(2)).unwrap();
        drop(w);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[second as usize + HEADER] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        let (records, valid) = read_all(&path);
        assert_eq!(records, vec![rec(0)]);
        assert_eq!(valid, second);
    }
}
