//! History rows from `partial_history` records, packed into `LogBatch`es the way
//! runcore's own clients pack them (numbers in the packed scalar fields, a key
//! table per batch), so a W&B row takes the same path as a LogStream row.

use std::collections::{HashMap, HashSet};

use super::map::{item_path, item_value, scalar, Scalar};
use crate::proto::v1::{LogBatch, Row, Value};
use crate::proto::wandb as wb;
use crate::value;

/// The SDK's own key holding the call's time.
const TIMESTAMP_KEY: &str = "_timestamp";

/// Rows of one run waiting to be sent to its actor as one batch.
pub struct PendingLog {
    batch: LogBatch,
    index: HashMap<String, u32>,
    /// Keys already reported as dropped, so each is reported once per run.
    warned: HashSet<String>,
    /// Packed scalars in the last row: the next row's room for them.
    row_hint: usize,
    /// What each plain number's key of the last row came to, by position: rows
    /// of one script repeat their keys in order, so comparing the bytes finds
    /// most keys (already checked) without a hash lookup or a UTF-8 check.
    guess: Vec<Guess>,
}

/// A plain number's key as it was found at one position of a row.
enum Guess {
    /// The key at this index of the batch's key table.
    Key(u32),
    /// A key that may not be logged (`_runtime`, which the SDK adds to each row).
    Refused(Box<[u8]>),
}

impl PendingLog {
    /// Rows of run `run_id` from writer `writer_id` (empty: the anonymous writer).
    pub fn new(run_id: &str, writer_id: &str) -> Self {
        PendingLog {
            batch: LogBatch {
                run_id: run_id.to_owned(),
                writer_id: writer_id.to_owned(),
                ..Default::default()
            },
            index: HashMap::new(),
            warned: HashSet::new(),
            row_hint: 0,
            guess: Vec::new(),
        }
    }

    pub fn rows(&self) -> usize {
        self.batch.rows.len()
    }

    /// The rows gathered so far, as one batch (None without rows).
    pub fn take(&mut self) -> Option<LogBatch> {
        if self.batch.rows.is_empty() {
            return None;
        }
        self.index.clear();
        let run_id = self.batch.run_id.clone();
        let writer_id = self.batch.writer_id.clone();
        Some(std::mem::replace(
            &mut self.batch,
            LogBatch {
                run_id,
                writer_id,
                ..Default::default()
            },
        ))
    }

    /// Adds one `run.log` call: its items, its step and its commit flag.
    pub fn push<'a>(
        &mut self,
        items: impl IntoIterator<Item = Entry<'a>>,
        step: Option<i64>,
        commit: Option<bool>,
    ) {
        let mut row = Row {
            step,
            commit,
            scalar_keys: Vec::with_capacity(self.row_hint),
            scalar_values: Vec::with_capacity(self.row_hint),
            ..Default::default()
        };
        for item in items {
            self.add(&mut row, item);
        }
        self.row_hint = row.scalar_keys.len();
        self.batch.rows.push(row);
    }

    fn add(&mut self, row: &mut Row, entry: Entry<'_>) {
        let item = match entry {
            Entry::Plain(key, x) => return self.add_plain(row, key, x),
            Entry::Item(item) => item,
        };
        let top = item.nested_key.first().unwrap_or(&item.key).as_str();
        if top == TIMESTAMP_KEY {
            if let Some(Scalar::Float(t)) = scalar(&item.value_json).map(widen) {
                row.timestamp = t;
            }
            return;
        }
        if !self.check_key(top) {
            return;
        }
        match item_value(item) {
            Ok(mut v) => {
                if let Err(e) = value::check_value(top, &v, &mut 0) {
                    self.warn(top, &e.to_string());
                    return;
                }
                value::bin_histograms(&mut v);
                let top = top.to_owned();
                self.put(row, &item_path(item), top, v);
            }
            Err(e) => self.warn(top, &e.to_string()),
        }
    }

    /// A top-level key and a plain number: floats packed, integers kept exact.
    fn add_plain(&mut self, row: &mut Row, key: &[u8], x: Scalar) {
        if key == TIMESTAMP_KEY.as_bytes() {
            if let Scalar::Float(t) = widen(x) {
                row.timestamp = t;
            }
            return;
        }
        match x {
            Scalar::Float(x) => {
                if let Some(k) = self.key(key, row.scalar_keys.len()) {
                    row.scalar_keys.push(k);
                    row.scalar_values.push(x);
                }
            }
            Scalar::Int(i) => {
                if let Some(top) = self.utf8(key).filter(|top| self.check_key(top)) {
                    row.values.insert(top.to_owned(), value::int(i));
                }
            }
        }
    }

    /// A key read in place as text; reports one that is not UTF-8, once.
    fn utf8<'k>(&mut self, key: &'k [u8]) -> Option<&'k str> {
        let text = std::str::from_utf8(key);
        if text.is_err() {
            self.warn(&String::from_utf8_lossy(key), "a key must be UTF-8 text");
        }
        text.ok()
    }

    /// Whether `top` may be logged; reports a key that may not, once.
    fn check_key(&mut self, top: &str) -> bool {
        let Err(e) = value::check_key(top) else {
            return true;
        };
        if !matches!(top, "_step" | "_runtime") && self.warned.insert(top.to_owned()) {
            tracing::warn!(run = %self.batch.run_id, "a logged key is not recorded: {e}");
        }
        false
    }

    fn put(&mut self, row: &mut Row, path: &[String], top: String, v: Value) {
        if path.len() <= 1 {
            row.values.insert(top, v);
            return;
        }
        let mut whole = std::collections::BTreeMap::new();
        if let Some(now) = row.values.remove(&top) {
            whole.insert(top, now);
        }
        super::map::deep_set(&mut whole, path, Some(v));
        row.values.extend(whole);
    }

    fn warn(&mut self, key: &str, why: &str) {
        if self.warned.insert(key.to_owned()) {
            tracing::warn!(run = %self.batch.run_id, "{key:?} is not recorded: {why}");
        }
    }

    /// The batch's index of a packed scalar's key (None for a key that may not
    /// be logged): a key already in the table was checked when it was added.
    /// `pos`: the scalar's position in its row.
    fn key(&mut self, bytes: &[u8], pos: usize) -> Option<u32> {
        match self.guess.get(pos) {
            Some(Guess::Key(g))
                if self
                    .batch
                    .keys
                    .get(*g as usize)
                    .is_some_and(|k| k.as_bytes() == bytes) =>
            {
                return Some(*g)
            }
            Some(Guess::Refused(k)) if **k == *bytes => return None,
            _ => {}
        }
        let key = self.utf8(bytes)?;
        let found = match self.index.get(key).copied() {
            Some(i) => Some(i),
            None if !self.check_key(key) => None,
            None => {
                let i = self.batch.keys.len() as u32;
                self.batch.keys.push(key.to_owned());
                self.index.insert(key.to_owned(), i);
                Some(i)
            }
        };
        let guess = match found {
            Some(i) => Guess::Key(i),
            None => Guess::Refused(bytes.into()),
        };
        if pos < self.guess.len() {
            self.guess[pos] = guess;
        } else if pos == self.guess.len() {
            self.guess.push(guess);
        }
        found
    }
}

/// One item of a row, as [`PendingLog::push`] takes it.
#[derive(Debug, Clone, Copy)]
pub enum Entry<'a> {
    /// A top-level key and a plain number: read in place from the frame
    /// ([`super::row_frame`]; the key's bytes not yet checked to be UTF-8) or
    /// from a decoded item.
    Plain(&'a [u8], Scalar),
    /// Any other item, decoded.
    Item(&'a wb::Item),
}

impl<'a> Entry<'a> {
    /// A decoded item: plain when it is a top-level key whose JSON text is a
    /// number, as the frame reader reads it.
    pub fn of(item: &'a wb::Item) -> Self {
        if item.nested_key.len() <= 1 && item.typed.is_none() {
            if let Some(x) = scalar(&item.value_json) {
                let key = item.nested_key.first().unwrap_or(&item.key);
                return Entry::Plain(key.as_bytes(), x);
            }
        }
        Entry::Item(item)
    }
}

/// An integer time as a float one.
fn widen(s: Scalar) -> Scalar {
    match s {
        Scalar::Int(i) => Scalar::Float(i as f64),
        f => f,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::v1::value::Kind;

    fn item(key: &str, json: &str) -> wb::Item {
        wb::Item {
            key: key.into(),
            value_json: json.into(),
            ..Default::default()
        }
    }

    #[test]
    fn rows_pack_floats_keep_ints_and_drop_reserved_keys() {
        let mut log = PendingLog::new("r", "");
        let items = [
            item("loss", "0.5"),
            item("epoch", "3"),
            item("_timestamp", "1700000000.25"),
            item("_step", "4"),
            item("_private", "1"),
            item("text", "\"hi\""),
            wb::Item {
                nested_key: vec!["a".into(), "b".into()],
                value_json: "1.5".into(),
                ..Default::default()
            },
        ];
        log.push(items.iter().map(Entry::of), Some(7), None);
        log.push([Entry::of(&item("loss", "0.25"))], None, Some(true));
        assert_eq!(log.rows(), 2);
        let batch = log.take().unwrap();
        assert!(log.take().is_none());
        assert_eq!(batch.keys, vec!["loss".to_owned()]);
        let row = &batch.rows[0];
        assert_eq!(
            (row.step, row.commit, row.timestamp),
            (Some(7), None, 1_700_000_000.25)
        );
        assert_eq!(
            (row.scalar_keys.clone(), row.scalar_values.clone()),
            (vec![0], vec![0.5])
        );
        assert_eq!(row.values["epoch"], value::int(3));
        assert_eq!(row.values["text"], value::string("hi"));
        assert!(!row.values.contains_key("_private") && !row.values.contains_key("_step"));
        let Some(Kind::MapValue(a)) = &row.values["a"].kind else {
            panic!("a is not a map")
        };
        assert_eq!(a.fields["b"], value::double(1.5));
        assert_eq!(batch.rows[1].scalar_keys, vec![0]);
        assert_eq!(batch.rows[1].commit, Some(true));
    }

    #[test]
    fn keys_read_in_place_are_found_by_position_checked_once_and_refused_alike() {
        let mut log = PendingLog::new("r", "");
        let plain = |k: &'static [u8], x: f64| Entry::Plain(k, Scalar::Float(x));
        let row = |a: f64| [plain(b"_runtime", a), plain(b"loss", a), plain(b"acc", -a)];
        log.push(row(1.0), None, None);
        log.push(row(2.0), None, None);
        // Another order, a key that is not UTF-8, and an integer under a byte key.
        log.push(
            [
                plain(b"acc", 5.0),
                plain(b"\xff\xfe", 9.0),
                plain(b"loss", 6.0),
                Entry::Plain(b"epoch", Scalar::Int(3)),
            ],
            None,
            None,
        );
        let batch = log.take().unwrap();
        assert_eq!(batch.keys, ["loss", "acc"]);
        let packed: Vec<_> = batch
            .rows
            .iter()
            .map(|r| (r.scalar_keys.clone(), r.scalar_values.clone()))
            .collect();
        assert_eq!(
            packed,
            [
                (vec![0, 1], vec![1.0, -1.0]),
                (vec![0, 1], vec![2.0, -2.0]),
                (vec![1, 0], vec![5.0, 6.0]),
            ]
        );
        assert_eq!(batch.rows[2].values["epoch"], value::int(3));
        // The next batch has its own key table; the guesses still hold.
        log.push(row(3.0), None, None);
        let batch = log.take().unwrap();
        assert_eq!(batch.keys, ["loss", "acc"]);
        assert_eq!(batch.rows[0].scalar_values, [3.0, -3.0]);
    }
}
