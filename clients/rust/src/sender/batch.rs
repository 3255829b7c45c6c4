//! Rows as the caller queues them, and the `LogBatch` they are sent in.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use prost::Message;

use crate::proto;

/// Largest batch the sender builds (roughly: the rows' encoded size); the
/// sidecar's default message limit is 16 MiB.
pub(crate) const MAX_BATCH_BYTES: usize = 4 << 20;

/// Encoded bytes a packed scalar adds to a batch, about: its key index and value.
const SCALAR_BYTES: usize = 10;

/// One `log` call, ready to send.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Row {
    /// Numeric scalars, sent in the packed fields. The caller interns the keys: a
    /// batch's key table is built by comparing them.
    pub scalars: Vec<(Arc<str>, f64)>,
    /// Everything else.
    pub values: Vec<(Arc<str>, proto::Value)>,
    pub step: Option<i64>,
    pub commit: Option<bool>,
    /// Client time of the call, unix seconds.
    pub timestamp: f64,
    /// Encoded size of `values` (the caller knows it), for the batch size limit.
    pub value_bytes: usize,
}

impl Row {
    /// Roughly what this row adds to an encoded batch.
    pub(crate) fn size(&self) -> usize {
        self.value_bytes + self.scalars.len() * SCALAR_BYTES
    }
}

/// A batch sent and waiting for its ack, kept encoded for resends.
#[derive(Clone, Debug)]
pub(crate) struct Sent {
    pub encoded: Bytes,
    pub rows: usize,
}

/// Encodes `rows` as one `LogBatch`: one key table for the batch, the scalars in
/// the packed fields.
pub(crate) fn encode(run_id: &str, writer_id: &str, seq: u64, rows: Vec<Row>) -> Bytes {
    let mut keys: Vec<String> = Vec::new();
    let mut index: HashMap<Arc<str>, u32> = HashMap::new();
    let mut encoded_rows = Vec::with_capacity(rows.len());
    for row in rows {
        let mut scalar_keys = Vec::with_capacity(row.scalars.len());
        let mut scalar_values = Vec::with_capacity(row.scalars.len());
        for (key, value) in row.scalars {
            let next = keys.len() as u32;
            let at = *index.entry(key).or_insert_with_key(|key| {
                keys.push(key.to_string());
                next
            });
            scalar_keys.push(at);
            scalar_values.push(value);
        }
        encoded_rows.push(proto::Row {
            scalar_keys,
            scalar_values,
            values: row
                .values
                .into_iter()
                .map(|(key, value)| (key.to_string(), value))
                .collect(),
            step: row.step,
            commit: row.commit,
            timestamp: row.timestamp,
        });
    }
    let batch = proto::LogBatch {
        run_id: run_id.to_owned(),
        seq,
        keys,
        rows: encoded_rows,
        writer_id: writer_id.to_owned(),
    };
    Bytes::from(batch.encode_to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar_row(pairs: &[(&Arc<str>, f64)]) -> Row {
        Row {
            scalars: pairs.iter().map(|(k, v)| (Arc::clone(k), *v)).collect(),
            timestamp: 1.5,
            ..Default::default()
        }
    }

    #[test]
    fn one_key_table_per_batch_indexes_every_rows_scalars() {
        let (loss, acc, lr): (Arc<str>, Arc<str>, Arc<str>) =
            ("loss".into(), "acc".into(), "lr".into());
        let mut with_value = scalar_row(&[(&lr, 0.1), (&loss, 3.0)]);
        with_value.values.push((
            "name".into(),
            proto::Value {
                kind: Some(proto::value::Kind::StringValue("x".into())),
            },
        ));
        with_value.step = Some(7);
        with_value.commit = Some(false);
        let rows = vec![
            scalar_row(&[(&loss, 1.0), (&acc, 0.5)]),
            scalar_row(&[(&acc, 0.6)]),
            with_value,
        ];

        let batch = proto::LogBatch::decode(encode("run", "writer", 42, rows)).expect("a LogBatch");

        assert_eq!(
            (batch.run_id.as_str(), batch.writer_id.as_str(), batch.seq),
            ("run", "writer", 42)
        );
        assert_eq!(batch.keys, ["loss", "acc", "lr"]);
        let packed: Vec<(Vec<u32>, Vec<f64>)> = batch
            .rows
            .iter()
            .map(|r| (r.scalar_keys.clone(), r.scalar_values.clone()))
            .collect();
        assert_eq!(
            packed,
            [
                (vec![0, 1], vec![1.0, 0.5]),
                (vec![1], vec![0.6]),
                (vec![2, 0], vec![0.1, 3.0])
            ]
        );
        let last = &batch.rows[2];
        assert_eq!(
            (last.step, last.commit, last.timestamp),
            (Some(7), Some(false), 1.5)
        );
        assert!(last.values.contains_key("name"));
        assert_eq!((batch.rows[0].step, batch.rows[0].commit), (None, None));
    }
}
