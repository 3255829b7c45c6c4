//! A run's transaction log (`run.wal`): CRC-framed protobuf records, appended with one
//! `write(2)` each, so that a record is in the page cache (and survives a kill of the
//! sidecar) before its caller is acknowledged.
//!
//! Frame: `u32 LE length | u32 LE CRC-32 of payload | payload (wal.v1.Record)`.
//! A frame that is short, empty, fails its CRC or does not decode is bad: the
//! reader skips to the next good frame (what follows a corrupt record is kept)
//! and says what it skipped. A bad stretch at the end that no frame could fill
//! (a write cut short by a crash) is a torn tail, cut when the log is opened for
//! append; anything else is corruption, which `run::open` keeps a copy of.

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
    #[error("transaction log {path} holds no records ({len} bytes, none a valid record); the run cannot be read (its store files, if any, are as they were)")]
    NoRecords { path: PathBuf, len: u64 },
}

/// Bytes past a bad frame searched for the next good one; a longer bad stretch
/// loses what follows it.
const RESYNC_LIMIT: u64 = 64 * 1024 * 1024;

/// A stretch of a log the reader skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadStretch {
    pub start: u64,
    pub end: u64,
    /// At the end of the log, and shorter than the frame its header announces:
    /// a write cut short, not a damaged record.
    pub torn: bool,
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

/// Reads a log's records in order, skipping bad frames.
pub struct WalReader {
    reader: BufReader<File>,
    path: PathBuf,
    /// Where the next frame starts.
    pos: u64,
    /// End of the last good frame read.
    valid_len: u64,
    file_len: u64,
    done: bool,
    /// What was skipped (the first [`MAX_BAD_LISTED`]), and how many in all.
    bad: Vec<BadStretch>,
    bad_count: usize,
    records: u64,
    /// The good frames read, as merged byte ranges.
    good: Vec<(u64, u64)>,
}

const MAX_BAD_LISTED: usize = 100;

/// Why a frame at some position is not a record.
enum Frame {
    Good(Box<Record>, u64),
    /// Header announces more than the file holds (or the header itself is cut).
    Short,
    Bad,
}

impl WalReader {
    pub fn open(path: &Path) -> Result<Self, WalError> {
        let file = File::open(path).map_err(io_err(path))?;
        let file_len = file.metadata().map_err(io_err(path))?.len();
        Ok(WalReader {
            reader: BufReader::with_capacity(256 * 1024, file),
            path: path.to_owned(),
            pos: 0,
            valid_len: 0,
            file_len,
            done: false,
            bad: Vec::new(),
            bad_count: 0,
            records: 0,
            good: Vec::new(),
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
            r.pos = r.valid_len;
        }
        Ok(r)
    }

    /// Length of the valid prefix read so far.
    pub fn valid_len(&self) -> u64 {
        self.valid_len
    }

    /// Bytes after the last good frame: a torn tail, once the reader is exhausted.
    pub fn torn_bytes(&self) -> u64 {
        self.file_len.saturating_sub(self.valid_len)
    }

    /// The stretches skipped so far (the first 100 of them).
    pub fn bad_stretches(&self) -> &[BadStretch] {
        &self.bad
    }

    /// Whether a stretch other than a torn tail was skipped: records were lost
    /// or damaged, not just a write cut short.
    pub fn corrupt(&self) -> bool {
        self.bad.iter().any(|b| !b.torn)
    }

    /// Records read so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Bad stretches skipped so far, all of them.
    pub fn bad_count(&self) -> usize {
        self.bad_count
    }

    /// Bytes in the bad stretches listed.
    pub fn bad_bytes(&self) -> u64 {
        self.bad.iter().map(|b| b.end - b.start).sum()
    }

    /// The good frames read, as byte ranges in order.
    pub fn good_ranges(&self) -> &[(u64, u64)] {
        &self.good
    }

    /// The log's length when it was opened.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    /// The next record, None at the end. A bad frame is skipped: the reader looks
    /// for the next good one (up to 64 MiB on) and records the stretch between.
    pub fn next_record(&mut self) -> Result<Option<Record>, WalError> {
        while !self.done {
            if self.pos >= self.file_len {
                self.done = true;
                break;
            }
            let start = self.pos;
            match self.frame()? {
                Frame::Good(record, end) => {
                    self.pos = end;
                    self.valid_len = end;
                    self.records += 1;
                    match self.good.last_mut() {
                        Some(last) if last.1 == start => last.1 = end,
                        _ => self.good.push((start, end)),
                    }
                    return Ok(Some(*record));
                }
                outcome => {
                    let next = self.resync(start + 1)?;
                    let end = next.unwrap_or(self.file_len);
                    // Torn: a write cut short, or the zeroes a crash can leave
                    // past the last write; not a damaged record.
                    let torn = next.is_none()
                        && (matches!(outcome, Frame::Short) || self.all_zero(start, end)?);
                    self.note_bad(BadStretch { start, end, torn });
                    match next {
                        Some(at) => self.seek(at)?,
                        None => self.done = true,
                    }
                }
            }
        }
        Ok(None)
    }

    fn note_bad(&mut self, b: BadStretch) {
        self.bad_count += 1;
        if self.bad.len() < MAX_BAD_LISTED {
            self.bad.push(b);
        }
    }

    fn seek(&mut self, at: u64) -> Result<(), WalError> {
        use std::io::{Seek, SeekFrom};
        self.reader
            .seek(SeekFrom::Start(at))
            .map_err(io_err(&self.path))?;
        self.pos = at;
        Ok(())
    }

    /// Reads the frame at `self.pos` through the buffered reader.
    fn frame(&mut self) -> Result<Frame, WalError> {
        let mut header = [0u8; HEADER];
        if !read_full(&mut self.reader, &mut header).map_err(io_err(&self.path))? {
            return Ok(Frame::Short);
        }
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let remaining = self.file_len.saturating_sub(self.pos + HEADER as u64);
        if len == 0 || len > MAX_FRAME {
            return Ok(Frame::Bad);
        }
        if u64::from(len) > remaining {
            return Ok(Frame::Short);
        }
        let mut payload = vec![0u8; len as usize];
        if !read_full(&mut self.reader, &mut payload).map_err(io_err(&self.path))? {
            return Ok(Frame::Short);
        }
        Ok(match decode(&payload, crc) {
            Some(r) => Frame::Good(Box::new(r), self.pos + HEADER as u64 + u64::from(len)),
            None => Frame::Bad,
        })
    }

    /// Whether bytes `start..end` are all zero (at most 16 MiB looked at).
    fn all_zero(&self, start: u64, end: u64) -> Result<bool, WalError> {
        use std::os::unix::fs::FileExt;
        if end - start > 16 * 1024 * 1024 {
            return Ok(false);
        }
        let mut buf = vec![0u8; (end - start) as usize];
        self.reader
            .get_ref()
            .read_exact_at(&mut buf, start)
            .map_err(io_err(&self.path))?;
        Ok(buf.iter().all(|b| *b == 0))
    }

    /// The first offset at or after `from` where a good frame starts.
    fn resync(&mut self, from: u64) -> Result<Option<u64>, WalError> {
        use std::os::unix::fs::FileExt;
        let file = self.reader.get_ref();
        let limit = self.file_len.min(from.saturating_add(RESYNC_LIMIT));
        let mut window = vec![0u8; 64 * 1024];
        let mut base = from;
        while base + HEADER as u64 <= limit {
            let n = file
                .read_at(&mut window, base)
                .map_err(io_err(&self.path))?;
            if n < HEADER {
                break;
            }
            for i in 0..=(n - HEADER) {
                let at = base + i as u64;
                if at + HEADER as u64 > limit {
                    return Ok(None);
                }
                let h = &window[i..i + HEADER];
                let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
                let crc = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
                if len == 0 || u64::from(len) > self.file_len - at - HEADER as u64 {
                    continue;
                }
                let mut payload = vec![0u8; len as usize];
                if file.read_exact_at(&mut payload, at + HEADER as u64).is_ok()
                    && decode(&payload, crc).is_some()
                {
                    return Ok(Some(at));
                }
            }
            base += (n - HEADER + 1) as u64;
        }
        Ok(None)
    }
}

/// A frame's payload as a record, if its CRC matches and it decodes.
fn decode(payload: &[u8], crc: u32) -> Option<Record> {
    if crc32fast::hash(payload) != crc {
        return None;
    }
    Record::decode(payload).ok()
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
    /// Records appended since the last sync that a timed sync must cover.
    unsynced: bool,
    /// Bytes appended since the last sync, waited for or not (see
    /// [`WalWriter::append_unwaited`]).
    behind: bool,
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

    /// Opens a locked log for append after moving its `good` byte ranges (from a
    /// [`WalReader`] that read it to its end) to its front, in order, and cutting
    /// the rest. Keep a copy of the log first: this rewrites it in place.
    pub fn open_compacted(lock: WalLock, good: &[(u64, u64)]) -> Result<Self, WalError> {
        use std::os::unix::fs::FileExt;
        let WalLock { file, path } = lock;
        // pwrite on an O_APPEND handle appends (Linux): rewrite through another.
        let out = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        let err = io_err(&path);
        let mut at = 0u64;
        let mut chunk = vec![0u8; 1024 * 1024];
        for &(start, end) in good {
            let mut from = start;
            while from < end {
                let n = ((end - from) as usize).min(chunk.len());
                out.read_exact_at(&mut chunk[..n], from)
                    .and_then(|()| out.write_all_at(&chunk[..n], at))
                    .map_err(|e| io_err(&path)(e))?;
                from += n as u64;
                at += n as u64;
            }
        }
        out.set_len(at).map_err(io_err(&path))?;
        out.sync_all().map_err(err)?;
        Ok(Self::with_file(file, &path, at))
    }

    fn with_file(file: File, path: &Path, len: u64) -> Self {
        WalWriter {
            file,
            path: path.to_owned(),
            len,
            buf: Vec::with_capacity(4096),
            unsynced: false,
            behind: false,
        }
    }

    /// Appends one record with a single write; returns its offset.
    pub fn append(&mut self, record: &Record) -> Result<u64, WalError> {
        let offset = self.write_frame(record)?;
        self.unsynced = true;
        Ok(offset)
    }

    /// Appends a record no client waits for (a system-metrics sample): written
    /// at once, so it survives a crash of the sidecar like any other, but no
    /// timed sync is made for it alone; the next sync covers it (the next
    /// acknowledged record's, or the one at finish).
    pub fn append_unwaited(&mut self, record: &Record) -> Result<u64, WalError> {
        self.write_frame(record)
    }

    fn write_frame(&mut self, record: &Record) -> Result<u64, WalError> {
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
        self.behind = true;
        if self.buf.capacity() > crate::memory::SCRATCH_BYTES {
            // Each open run has one: a long record's buffer is not kept.
            self.buf = Vec::new();
        }
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

    /// Whether a record a timed sync must cover was appended since the last sync.
    pub fn unsynced(&self) -> bool {
        self.unsynced
    }

    /// Whether anything at all was appended since the last sync (what a sync at
    /// finish or shutdown must cover).
    pub fn behind(&self) -> bool {
        self.behind
    }

    /// fsyncs the log on the calling thread (blocking).
    pub fn sync(&mut self) -> Result<(), WalError> {
        self.file.sync_data().map_err(io_err(&self.path))?;
        self.mark_synced();
        Ok(())
    }

    /// A second handle on the log, to fsync it off the caller's thread.
    pub fn try_clone_file(&self) -> Option<Arc<File>> {
        self.file.try_clone().ok().map(Arc::new)
    }

    /// Records that a sync through another handle covered everything appended.
    pub fn mark_synced(&mut self) {
        self.unsynced = false;
        self.behind = false;
    }
}

#[cfg(test)]
#[path = "wal_tests.rs"]
mod tests;
