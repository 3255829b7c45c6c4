//! The index of one line file (`history.jsonl` or `events.jsonl`): a manifest
//! and a column file per numeric key. It is brought up to date by reading only
//! what was appended since the manifest was saved; a source that shrank or whose
//! bytes before that point changed (a run whose files were rebuilt from its log)
//! is indexed again from the start.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::column::{read_column, ColumnWriter};
use super::scan::LineScanner;
use super::IndexError;
use crate::store::write_atomic;

/// Changes whenever the files' layout or what they hold does: an index of another
/// version is rebuilt (2: media values' numeric fields are no longer columns).
const VERSION: u32 = 2;
const MANIFEST: &str = "manifest.json";
/// Bytes of the source kept in the manifest to notice a rewritten source.
const TAIL: u64 = 32;
/// Bytes read from the source at a time.
const BLOCK: usize = 8 << 20;

/// One numeric key of the source.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ColumnMeta {
    pub key: String,
    /// The top-level key it is under (`val` for `val.loss`); the key itself when
    /// not nested.
    pub top: String,
    pub file: String,
    /// Rows that have the key.
    pub count: u64,
    /// Of those, rows where it is NaN or ±Inf.
    pub nonfinite: u64,
    /// Whether its finite values never decrease from row to row (a usable x axis
    /// without sorting).
    pub sorted: bool,
    /// Its last finite value (to keep `sorted` true across appends).
    pub last: Option<f64>,
}

/// What the index holds, saved as `manifest.json` after the columns.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    /// Bytes of the source indexed (always the end of a line).
    pub source_len: u64,
    /// Hex of the source's last bytes before `source_len`.
    pub tail: String,
    /// Lines indexed: row numbers are line numbers.
    pub rows: u64,
    /// Lines that were not a JSON object.
    pub bad_lines: u64,
    pub columns: Vec<ColumnMeta>,
}

impl Manifest {
    pub fn column(&self, key: &str) -> Option<&ColumnMeta> {
        self.columns.iter().find(|c| c.key == key)
    }
}

/// Reads the index in `dir`, or an empty one.
pub fn load(dir: &Path) -> Manifest {
    fs::read(dir.join(MANIFEST))
        .ok()
        .and_then(|b| serde_json::from_slice::<Manifest>(&b).ok())
        .filter(|m| m.version == VERSION)
        .unwrap_or_default()
}

/// Whether the index covers the whole source as it is now.
pub fn is_current(m: &Manifest, source: &Path) -> bool {
    source_len(source).is_ok_and(|len| len == m.source_len) && tail_matches(m, source)
}

fn source_len(source: &Path) -> io::Result<u64> {
    match fs::metadata(source) {
        Ok(md) => Ok(md.len()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
    }
}

fn tail_of(source: &Path, end: u64) -> io::Result<String> {
    let start = end.saturating_sub(TAIL);
    let mut f = File::open(source)?;
    f.seek(SeekFrom::Start(start))?;
    let mut buf = vec![0u8; (end - start) as usize];
    f.read_exact(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

fn tail_matches(m: &Manifest, source: &Path) -> bool {
    m.source_len == 0 || tail_of(source, m.source_len).is_ok_and(|t| t == m.tail)
}

/// Bytes of `source` the index in `dir` covers, and the source's length (a
/// rewritten source counts as not indexed). Reads the manifest without the
/// lock: it is replaced whole, never written in place.
pub fn progress(dir: &Path, source: &Path) -> (u64, u64) {
    let m = load(dir);
    let len = source_len(source).unwrap_or(0);
    if m.source_len > len || !tail_matches(&m, source) {
        return (0, len);
    }
    (m.source_len, len)
}

/// Brings the index in `dir` up to date with `source`, reading at most about
/// `step` bytes of it (whole lines: a line longer than that is read whole);
/// returns its manifest. Blocking; the caller holds the index's exclusive lock.
pub fn refresh(dir: &Path, source: &Path, step: u64) -> Result<Manifest, IndexError> {
    let io = |e| IndexError::io(source, e);
    let mut m = load(dir);
    let len = source_len(source).map_err(io)?;
    if m.version != VERSION || len < m.source_len || !tail_matches(&m, source) {
        clear(dir)?;
        m = Manifest {
            version: VERSION,
            ..Manifest::default()
        };
    }
    if len == m.source_len {
        return Ok(m);
    }
    let mut builder = Builder::new(dir, &mut m);
    let from = builder.m.source_len;
    let mut end = builder.read(source, len.min(from.saturating_add(step)));
    if matches!(end, Ok(e) if e == from) {
        // No whole line within the step: the next line is read whole.
        end = builder.read(source, len);
    }
    let finished = builder.finish();
    let end = end?;
    finished?;
    if end > m.source_len {
        m.source_len = end;
        m.tail = tail_of(source, end).map_err(io)?;
    }
    let text = serde_json::to_vec(&m).map_err(|e| IndexError::io(dir, io::Error::other(e)))?;
    write_atomic(&dir.join(MANIFEST), &text, false)?;
    Ok(m)
}

/// Removes an index's files.
fn clear(dir: &Path) -> Result<(), IndexError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(IndexError::io(dir, e)),
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".col") || name == MANIFEST {
            fs::remove_file(e.path()).map_err(|err| IndexError::io(&e.path(), err))?;
        }
    }
    Ok(())
}

/// Reads one column's values, by row.
pub fn read(dir: &Path, col: &ColumnMeta) -> Result<Vec<(u32, f64)>, IndexError> {
    let path = dir.join(&col.file);
    read_column(&path, col.count).map_err(|e| IndexError::io(&path, e))
}

/// Appends the lines of a source to an index's columns.
struct Builder<'a> {
    dir: &'a Path,
    m: &'a mut Manifest,
    ids: HashMap<String, usize>,
    /// By column id, opened on first use.
    writers: Vec<Option<ColumnWriter>>,
    /// The keys of the previous line, in order, with their column: most lines
    /// repeat them, and a comparison is cheaper than a hash lookup.
    previous: Vec<(String, usize)>,
    scanner: LineScanner,
}

impl<'a> Builder<'a> {
    fn new(dir: &'a Path, m: &'a mut Manifest) -> Self {
        let ids = m
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| (c.key.clone(), i))
            .collect();
        Builder {
            dir,
            m,
            ids,
            writers: Vec::new(),
            previous: Vec::new(),
            scanner: LineScanner::default(),
        }
    }

    /// Indexes whole lines from `m.source_len` up to `len`; returns the offset
    /// after the last whole line.
    fn read(&mut self, source: &Path, len: u64) -> Result<u64, IndexError> {
        let io = |e| IndexError::io(source, e);
        let mut f = File::open(source).map_err(io)?;
        let mut pos = self.m.source_len;
        f.seek(SeekFrom::Start(pos)).map_err(io)?;
        let mut buf: Vec<u8> = Vec::with_capacity(BLOCK);
        let mut left = len - pos;
        while left > 0 {
            let keep = buf.len();
            let want = (BLOCK as u64).min(left) as usize;
            buf.resize(keep + want, 0);
            f.read_exact(&mut buf[keep..]).map_err(io)?;
            left -= want as u64;
            let Some(last_nl) = buf.iter().rposition(|b| *b == b'\n') else {
                continue;
            };
            for line in buf[..last_nl].split(|b| *b == b'\n') {
                self.line(line)?;
            }
            pos += last_nl as u64 + 1;
            buf.drain(..=last_nl);
        }
        Ok(pos)
    }

    fn line(&mut self, line: &[u8]) -> Result<(), IndexError> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let row = u32::try_from(self.m.rows).map_err(|_| IndexError::TooManyRows)?;
        self.m.rows += 1;
        let Ok(text) = std::str::from_utf8(line) else {
            self.m.bad_lines += 1;
            return Ok(());
        };
        let mut scanner = std::mem::take(&mut self.scanner);
        let mut nth = 0;
        let mut failed = None;
        let result = scanner.scan(text, &mut |key, top, v| {
            if failed.is_none() {
                failed = self.add(nth, key, top, row, v).err();
            }
            nth += 1;
        });
        self.scanner = scanner;
        if result.is_err() {
            self.m.bad_lines += 1;
        }
        failed.map_or(Ok(()), Err)
    }

    fn add(
        &mut self,
        nth: usize,
        key: &str,
        top: usize,
        row: u32,
        v: f64,
    ) -> Result<(), IndexError> {
        let id = match self.previous.get(nth) {
            Some((k, id)) if k == key => *id,
            _ => {
                let id = self.column_id(key, top);
                self.previous.truncate(nth);
                self.previous.push((key.to_owned(), id));
                id
            }
        };
        let col = &mut self.m.columns[id];
        col.count += 1;
        if v.is_finite() {
            if col.last.is_some_and(|last| v < last) {
                col.sorted = false;
            }
            col.last = Some(v);
        } else {
            col.nonfinite += 1;
        }
        if self.writers.len() <= id {
            self.writers.resize_with(id + 1, || None);
        }
        let writer = match &mut self.writers[id] {
            Some(w) => w,
            slot => {
                let path = self.dir.join(&col.file);
                let w = ColumnWriter::open(&path, col.count - 1)
                    .map_err(|err| IndexError::io(&path, err))?;
                slot.insert(w)
            }
        };
        writer.push(row, v).map_err(|e| IndexError::io(self.dir, e))
    }

    fn column_id(&mut self, key: &str, top: usize) -> usize {
        if let Some(id) = self.ids.get(key) {
            return *id;
        }
        let id = self.m.columns.len();
        self.m.columns.push(ColumnMeta {
            key: key.to_owned(),
            top: key.get(..top).unwrap_or(key).to_owned(),
            file: format!("c{id}.col"),
            count: 0,
            nonfinite: 0,
            sorted: true,
            last: None,
        });
        self.ids.insert(key.to_owned(), id);
        id
    }

    /// Flushes every column written to.
    fn finish(self) -> Result<(), IndexError> {
        for w in self.writers.into_iter().flatten() {
            let path = w.path().to_owned();
            w.finish().map_err(|e| IndexError::io(&path, e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn append(path: &Path, text: &str) {
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn grows_with_its_source_and_rebuilds_when_it_is_rewritten() {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, src) = (tmp.path().join("idx"), tmp.path().join("history.jsonl"));
        fs::create_dir(&dir).unwrap();
        append(
            &src,
            "{\"a\":1,\"_step\":0}\n{\"a\":NaN,\"v\":{\"x\":2},\"_step\":1}\n{\"a\":",
        );
        let m = refresh(&dir, &src, u64::MAX).unwrap();
        assert_eq!(m.rows, 2, "the partial last line waits");
        let a = m.column("a").unwrap();
        assert_eq!((a.count, a.nonfinite), (2, 1));
        assert_eq!(m.column("v.x").unwrap().top, "v");
        assert!(!is_current(&m, &src));
        append(&src, "0.5,\"_step\":2}\nnot json\n");
        let m = refresh(&dir, &src, u64::MAX).unwrap();
        assert!(is_current(&m, &src));
        assert_eq!((m.rows, m.bad_lines), (4, 1));
        let a = read(&dir, m.column("a").unwrap()).unwrap();
        assert_eq!((a[0], a[2]), ((0, 1.0), (2, 0.5)));
        assert!(a[1].1.is_nan());
        assert!(m.column("_step").unwrap().sorted);
        // Rewritten with other content of the same length: indexed again.
        let text = fs::read_to_string(&src).unwrap().replace("\"a\"", "\"b\"");
        fs::write(&src, text).unwrap();
        let m = refresh(&dir, &src, u64::MAX).unwrap();
        assert_eq!(m.rows, 4);
        assert!(m.column("a").is_none() && m.column("b").is_some());
        assert_eq!(load(&dir).rows, 4, "the manifest is saved");
        // Shorter: indexed again too.
        fs::write(&src, "{\"c\":1}\n").unwrap();
        let m = refresh(&dir, &src, u64::MAX).unwrap();
        assert_eq!((m.rows, m.columns.len()), (1, 1));
    }

    #[test]
    fn steps_index_a_bounded_part_and_say_how_far_they_got() {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, src) = (tmp.path().join("idx"), tmp.path().join("history.jsonl"));
        fs::create_dir(&dir).unwrap();
        let text: String = (0..1000)
            .map(|s| format!("{{\"a\":{s},\"_step\":{s}}}\n"))
            .collect();
        append(&src, &text);
        let total = text.len() as u64;
        assert_eq!(progress(&dir, &src), (0, total));
        let m = refresh(&dir, &src, 4096).unwrap();
        assert!(m.rows > 0 && m.source_len <= 4096, "{} rows", m.rows);
        assert_eq!(progress(&dir, &src), (m.source_len, total));
        let mut steps = 1;
        while !is_current(&load(&dir), &src) {
            refresh(&dir, &src, 4096).unwrap();
            steps += 1;
        }
        assert!(steps >= total.div_ceil(4096), "{steps} steps");
        let m = load(&dir);
        assert_eq!(m.rows, 1000);
        let a = read(&dir, m.column("a").unwrap()).unwrap();
        assert!(a
            .iter()
            .enumerate()
            .all(|(i, (row, v))| *row as usize == i && *v == i as f64));
        // A step smaller than a line still reads that line.
        append(&src, "{\"a\":5}\n");
        assert_eq!(refresh(&dir, &src, 1).unwrap().rows, 1001);
    }
}
