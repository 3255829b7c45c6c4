//! Column files: one per numeric key of a source, holding the rows that have the
//! key as fixed-size records `(row: u32 LE, value: f64 LE)`, in row order. A
//! column only grows (a changed source is indexed again from scratch), so a
//! reader that knows a count from the manifest reads a consistent prefix even
//! while a writer appends.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// Bytes per record.
pub const RECORD: u64 = 12;

/// Appends records to a column file.
pub struct ColumnWriter {
    out: BufWriter<File>,
    path: PathBuf,
}

impl ColumnWriter {
    /// Opens a column to append after its first `count` records; anything after
    /// them (left by a writer that stopped before saving its manifest) is cut off.
    pub fn open(path: &Path, count: u64) -> io::Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .truncate(false)
            .open(path)?;
        let want = count * RECORD;
        let len = file.metadata()?.len();
        if len < want {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{} holds {len} bytes, expected {want}", path.display()),
            ));
        }
        if len > want {
            file.set_len(want)?;
        }
        Ok(ColumnWriter {
            out: BufWriter::with_capacity(32 * 1024, file),
            path: path.to_owned(),
        })
    }

    pub fn push(&mut self, row: u32, value: f64) -> io::Result<()> {
        let mut rec = [0u8; RECORD as usize];
        rec[..4].copy_from_slice(&row.to_le_bytes());
        rec[4..].copy_from_slice(&value.to_le_bytes());
        self.out.write_all(&rec)
    }

    pub fn finish(mut self) -> io::Result<()> {
        self.out.flush()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Reads the first `count` records of a column into `buf` (replacing its content).
pub fn read_raw(path: &Path, count: u64, buf: &mut Vec<u8>) -> io::Result<()> {
    let want = count * RECORD;
    buf.clear();
    buf.reserve(want as usize);
    File::open(path)?.take(want).read_to_end(buf)?;
    if (buf.len() as u64) < want {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "{} holds {} bytes, expected {want}",
                path.display(),
                buf.len()
            ),
        ));
    }
    Ok(())
}

/// Reads the first `count` records of a column.
pub fn read_column(path: &Path, count: u64) -> io::Result<Vec<(u32, f64)>> {
    let mut bytes = Vec::new();
    read_raw(path, count, &mut bytes)?;
    let recs = Records(&bytes);
    Ok((0..recs.len())
        .map(|i| (recs.row(i), recs.value(i)))
        .collect())
}

/// A column's records, read in place.
#[derive(Clone, Copy)]
pub struct Records<'a>(pub &'a [u8]);

impl Records<'_> {
    pub fn len(&self) -> usize {
        self.0.len() / RECORD as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[inline]
    pub fn row(&self, i: usize) -> u32 {
        let at = i * RECORD as usize;
        let mut b = [0u8; 4];
        b.copy_from_slice(&self.0[at..at + 4]);
        u32::from_le_bytes(b)
    }

    #[inline]
    pub fn value(&self, i: usize) -> f64 {
        let at = i * RECORD as usize + 4;
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[at..at + 8]);
        f64::from_le_bytes(b)
    }

    /// The index of the first record whose row is at least `row`.
    pub fn lower_bound(&self, row: u32) -> usize {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.row(mid) < row {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_round_trip_and_cut_a_partial_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c0.col");
        let mut w = ColumnWriter::open(&path, 0).unwrap();
        w.push(0, 1.5).unwrap();
        w.push(3, f64::NAN).unwrap();
        w.finish().unwrap();
        // A writer that appended one record but never saved its count.
        let mut w = ColumnWriter::open(&path, 2).unwrap();
        w.push(4, 9.0).unwrap();
        w.finish().unwrap();
        let mut w = ColumnWriter::open(&path, 2).unwrap();
        w.push(5, f64::NEG_INFINITY).unwrap();
        w.finish().unwrap();
        let got = read_column(&path, 3).unwrap();
        assert_eq!(got[0], (0, 1.5));
        assert!(got[1].0 == 3 && got[1].1.is_nan());
        assert_eq!(got[2], (5, f64::NEG_INFINITY));
        assert!(
            ColumnWriter::open(&path, 10).is_err(),
            "a short file is refused"
        );
        assert!(read_column(&path, 4).is_err());
    }
}
