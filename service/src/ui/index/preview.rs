//! A quick look at a line file that is not indexed yet: one line read at each of
//! evenly spaced byte offsets (a few milliseconds for any size), so that a big
//! run's charts show at once, labelled as a preview, while its index is built.
//!
//! NaN and ±Inf are kept as values, as in the index: the downsampler turns them
//! into gaps and marks.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::scan::LineScanner;

/// Bytes read at an offset to find the line that starts after it.
const PROBE: usize = 16 << 10;
/// The most bytes read at one offset (a line longer than this is not sampled).
const MAX_PROBE: usize = 1 << 20;

/// The numbers of the sampled lines.
#[derive(Debug, Default)]
pub struct Preview {
    /// The source's length when sampled.
    pub source_len: u64,
    /// Each key with the length of its top-level key (`val` in `val.loss`), in
    /// the order first seen.
    pub keys: Vec<(String, usize)>,
    /// By sampled line, in file order: `(key id, value)`.
    rows: Vec<Vec<(u32, f64)>>,
    /// Bytes of the sampled lines, for estimating the number of lines.
    sampled_bytes: u64,
}

impl Preview {
    /// Samples about `lines` lines of `path`, evenly spaced by bytes. A missing
    /// file is an empty preview. Blocking.
    pub fn sample(path: &Path, lines: usize) -> io::Result<Preview> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Preview::default()),
            Err(e) => return Err(e),
        };
        let len = file.metadata()?.len();
        let mut p = Preview {
            source_len: len,
            ..Preview::default()
        };
        let mut ids: HashMap<String, u32> = HashMap::new();
        let mut scanner = LineScanner::default();
        let mut buf = Vec::new();
        let mut last_start = None;
        for i in 0..lines.max(1) as u64 {
            let offset = len * i / lines.max(1) as u64;
            let Some((start, line)) = line_after(&file, offset, len, &mut buf)? else {
                continue;
            };
            if last_start == Some(start) {
                continue;
            }
            last_start = Some(start);
            let Ok(text) = std::str::from_utf8(line) else {
                continue;
            };
            let mut row = Vec::new();
            let scanned = scanner.scan(text, &mut |key, top, v| {
                let next = ids.len() as u32;
                let id = *ids.entry(key.to_owned()).or_insert_with(|| {
                    p.keys.push((key.to_owned(), top));
                    next
                });
                row.push((id, v));
            });
            if scanned.is_ok() {
                p.sampled_bytes += line.len() as u64 + 1;
                p.rows.push(row);
            }
        }
        Ok(p)
    }

    /// Lines sampled.
    pub fn lines(&self) -> usize {
        self.rows.len()
    }

    /// About how many lines the source has.
    pub fn estimated_lines(&self) -> u64 {
        match self.rows.len() as u64 {
            0 => 0,
            n => self.source_len * n / self.sampled_bytes.max(1),
        }
    }

    /// Sampled lines that have `key`, and of those, how many hold NaN or ±Inf.
    pub fn count(&self, key: &str) -> (u64, u64) {
        let Some(id) = self.id(key) else {
            return (0, 0);
        };
        self.rows
            .iter()
            .filter_map(|r| r.iter().find(|(k, _)| *k == id))
            .fold((0, 0), |(n, bad), (_, v)| {
                (n + 1, bad + u64::from(!v.is_finite()))
            })
    }

    /// Whether a sampled line has `key`.
    pub fn has(&self, key: &str) -> bool {
        self.id(key).is_some()
    }

    fn id(&self, key: &str) -> Option<u32> {
        self.keys
            .iter()
            .position(|(k, _)| k == key)
            .map(|i| i as u32)
    }

    /// `(x, y)` of the sampled lines that have both keys and a finite x, sorted
    /// by x; None when a key was not seen.
    pub fn points(&self, y: &str, x: &str) -> Option<Vec<(f64, f64)>> {
        let (yi, xi) = (self.id(y)?, self.id(x)?);
        let mut pts: Vec<(f64, f64)> = self
            .rows
            .iter()
            .filter_map(|r| {
                let get = |id| r.iter().find(|(k, _)| *k == id).map(|(_, v)| *v);
                Some((get(xi)?, get(yi)?))
            })
            .filter(|(x, _)| x.is_finite())
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        Some(pts)
    }
}

/// The first whole line that starts at or after `offset` (at 0, the first line),
/// with where it starts; None past the last whole line.
fn line_after<'b>(
    file: &File,
    offset: u64,
    len: u64,
    buf: &'b mut Vec<u8>,
) -> io::Result<Option<(u64, &'b [u8])>> {
    // From one byte before, so that a line starting exactly at `offset` is found.
    let from = offset.saturating_sub(1);
    let mut want = PROBE;
    loop {
        let n = want.min((len - from.min(len)) as usize);
        buf.resize(n, 0);
        file.read_exact_at(buf, from)?;
        let start = if offset == 0 {
            Some(0)
        } else {
            buf.iter().position(|b| *b == b'\n').map(|i| i + 1)
        };
        if let Some(s) = start {
            if let Some(e) = buf[s..].iter().position(|b| *b == b'\n') {
                let at = if offset == 0 { 0 } else { from + s as u64 };
                return Ok(Some((at, &buf[s..s + e])));
            }
        }
        if n < want || want >= MAX_PROBE {
            return Ok(None);
        }
        want *= 4;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_lines_spread_over_the_file_and_keeps_non_finite_values() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("history.jsonl");
        let mut text = String::new();
        for step in 0..10_000u32 {
            let loss = match step {
                5_000..=5_999 => "NaN".to_owned(),
                _ => format!("{}", f64::from(step) / 2.0),
            };
            text.push_str(&format!(
                "{{\"loss\":{loss},\"val\":{{\"acc\":{step}}},\"_step\":{step}}}\n"
            ));
        }
        text.push_str("{\"loss\":"); // a partial last line
        std::fs::write(&path, &text).unwrap();
        let p = Preview::sample(&path, 100).unwrap();
        assert_eq!(p.lines(), 100);
        let est = p.estimated_lines();
        assert!((9_000..11_000).contains(&est), "{est}");
        let keys: Vec<&str> = p.keys.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["loss", "val.acc", "_step"]);
        assert_eq!(p.keys[1].1, 3, "val.acc is under val");
        let pts = p.points("loss", "_step").unwrap();
        assert_eq!(pts.len(), 100);
        assert_eq!(pts[0], (0.0, 0.0), "the first line is sampled");
        assert!(pts[99].0 > 9_800.0, "and lines near the end");
        let (n, bad) = p.count("loss");
        assert_eq!(n, 100);
        assert!((8..=12).contains(&bad), "about a tenth are NaN: {bad}");
        assert!(pts.iter().any(|(_, y)| y.is_nan()));
        assert!(p.points("nope", "_step").is_none());
        // A file of fewer lines than asked for: each line once.
        std::fs::write(&path, "{\"a\":1}\n{\"a\":2}\n").unwrap();
        let p = Preview::sample(&path, 50).unwrap();
        assert_eq!(p.points("a", "a").unwrap(), [(1.0, 1.0), (2.0, 2.0)]);
        let missing = Preview::sample(&tmp.path().join("none"), 10).unwrap();
        assert_eq!(missing.lines(), 0);
    }
}
