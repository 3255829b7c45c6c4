//! The hot path of `run.log`: a frame holding one `partial_history` row of plain
//! numbers, read in place.
//!
//! The SDK sends one frame per `run.log` call. Decoded with prost, each frame
//! allocates its record, request, item list and two strings per key before the
//! row is packed into a `LogBatch` and the strings are dropped. [`scan`] walks
//! the frame's bytes instead and hands out its keys and numbers as slices of it.
//! It takes only the common shape (a `record_publish` the SDK waits on nothing
//! for, whose request is a `partial_history` of top-level keys with numbers as
//! JSON text or typed numbers); any other frame, or one it cannot walk, is
//! decoded by prost as before, so what a row becomes does not depend on the path.
//! Field numbers are those of `proto/runcore/wandb/v1/service.proto`; fields that
//! file does not name are skipped, as prost skips them.

use super::map::{scalar_bytes, Scalar};

/// One `run.log` row read from its frame.
#[derive(Debug, Clone, PartialEq)]
pub struct RowFrame<'a> {
    /// Not checked to be UTF-8: it is looked up among the connection's streams.
    pub stream_id: &'a [u8],
    pub step: Option<i64>,
    /// The call's `commit` (`action.flush`), when it set one.
    pub commit: Option<bool>,
    /// The row's keys and numbers in the frame's order.
    pub items: Vec<PlainItem<'a>>,
}

/// One item of a row: its key (not checked to be UTF-8: most are compared with
/// the last row's, see [`super::history`]) and its number.
pub type PlainItem<'a> = (&'a [u8], Scalar);

/// The row in `frame` (a `ServerRequest`), if it has the common shape.
pub fn scan(frame: &[u8]) -> Option<RowFrame<'_>> {
    scan_into(frame, Vec::new())
}

/// [`scan`] with the items in `items` (emptied first): a reader of many frames
/// hands the last row's list back rather than allocate one per frame.
pub fn scan_into<'a>(frame: &'a [u8], items: Vec<PlainItem<'a>>) -> Option<RowFrame<'a>> {
    let mut record = None;
    for f in Fields(frame) {
        match f? {
            (1, Wire::Len(r)) if record.is_none() => record = Some(r),
            // A request id: the SDK waits for a reply.
            (10, Wire::Len([])) => {}
            (2..=7 | 1 | 10, _) => return None,
            _ => {}
        }
    }
    scan_record(record?, items)
}

fn scan_record<'a>(record: &'a [u8], items: Vec<PlainItem<'a>>) -> Option<RowFrame<'a>> {
    let (mut request, mut stream_id): (_, &[u8]) = (None, b"");
    let mut seen_info = false;
    for f in Fields(record) {
        match f? {
            (1, Wire::Varint(_)) => {}
            (19, Wire::Len(uuid)) if uuid.is_ascii() || std::str::from_utf8(uuid).is_ok() => {}
            (100, Wire::Len(r)) if request.is_none() => request = Some(r),
            (16, Wire::Len(control)) if no_mailbox_slot(control)? => {}
            (200, Wire::Len(info)) if !seen_info => {
                seen_info = true;
                stream_id = stream_id_of(info)?;
            }
            (1..=6 | 10 | 12 | 13 | 16..=19 | 23 | 100 | 200, _) => return None,
            _ => {}
        }
    }
    let mut history = None;
    for f in Fields(request?) {
        match f? {
            (10, Wire::Len(h)) if history.is_none() => history = Some(h),
            _ => return None,
        }
    }
    scan_history(stream_id, history?, items)
}

fn scan_history<'a>(
    stream_id: &'a [u8],
    history: &'a [u8],
    mut items: Vec<PlainItem<'a>>,
) -> Option<RowFrame<'a>> {
    let (mut step, mut commit) = (None, None);
    items.clear();
    items.reserve(history.len() / 24);
    for f in Fields(history) {
        match f? {
            (1, Wire::Len(item)) => items.push(plain_item(item)?),
            (2, Wire::Len(s)) if step.is_none() => step = Some(single_varint(s)? as i64),
            (3, Wire::Len(a)) if commit.is_none() => commit = Some(single_varint(a)? != 0),
            (1..=3, _) => return None,
            _ => {}
        }
    }
    Some(RowFrame {
        stream_id,
        step,
        commit,
        items,
    })
}

/// A top-level key and a number as JSON text (`value_json`, what the SDK sends
/// unless `x_history_value_encoding` asks for typed values).
fn plain_item(item: &[u8]) -> Option<PlainItem<'_>> {
    if let Some((key, json)) = key_then_json(item) {
        return Some((key, scalar_bytes(json)?));
    }
    let (mut key, mut json): (&[u8], &[u8]) = (b"", b"");
    let (mut seen_key, mut seen_json) = (false, false);
    for f in Fields(item) {
        match f? {
            (1, Wire::Len(k)) if !seen_key => (key, seen_key) = (k, true),
            (16, Wire::Len(j)) if !seen_json => (json, seen_json) = (j, true),
            // A nested key, a typed value, a repeated field.
            (1..=8 | 16, _) => return None,
            _ => {}
        }
    }
    Some((key, scalar_bytes(json)?))
}

/// The item as the SDK writes it, read without the general walk: the key
/// (field 1) then the JSON text (field 16), each shorter than 128 bytes, and
/// nothing else; None for any other layout, which [`plain_item`] walks.
fn key_then_json(item: &[u8]) -> Option<(&[u8], &[u8])> {
    let [0x0a, key_len @ 0..=0x7f, rest @ ..] = item else {
        return None;
    };
    let (key, rest) = rest.split_at_checked(usize::from(*key_len))?;
    let [0x82, 0x01, json_len @ 0..=0x7f, json @ ..] = rest else {
        return None;
    };
    (usize::from(*json_len) == json.len()).then_some((key, json))
}

/// A message of one varint field 1 (`HistoryStep.num`, `HistoryAction.flush`);
/// 0 when absent, as prost reads it.
fn single_varint(msg: &[u8]) -> Option<u64> {
    let mut v = 0;
    for f in Fields(msg) {
        match f? {
            (1, Wire::Varint(x)) => v = x,
            (1, _) => return None,
            _ => {}
        }
    }
    Some(v)
}

/// `Control.mailbox_slot` is empty: the SDK waits for no result.
fn no_mailbox_slot(control: &[u8]) -> Option<bool> {
    for f in Fields(control) {
        match f? {
            (4, Wire::Len(slot)) if !slot.is_empty() => return Some(false),
            (4, Wire::Len(_)) => {}
            (4, _) => return None,
            _ => {}
        }
    }
    Some(true)
}

/// `StreamInfo.stream_id`.
fn stream_id_of(info: &[u8]) -> Option<&[u8]> {
    let mut id: &[u8] = b"";
    for f in Fields(info) {
        match f? {
            (1, Wire::Len(s)) => id = s,
            (1, _) => return None,
            _ => {}
        }
    }
    Some(id)
}

/// A field's value on the wire.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Wire<'a> {
    Varint(u64),
    Fixed64,
    Len(&'a [u8]),
    Fixed32,
}

/// The fields of a message: `Some((number, value))` each, `None` (then nothing
/// more) where the bytes are not a well-formed message.
struct Fields<'a>(&'a [u8]);

impl<'a> Iterator for Fields<'a> {
    type Item = Option<(u32, Wire<'a>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        let field = self.field();
        if field.is_none() {
            self.0 = &[];
        }
        Some(field)
    }
}

impl<'a> Fields<'a> {
    fn field(&mut self) -> Option<(u32, Wire<'a>)> {
        let tag = self.varint()?;
        let number = u32::try_from(tag >> 3).ok().filter(|n| *n > 0)?;
        let wire = match tag & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => {
                self.0 = self.0.get(8..)?;
                Wire::Fixed64
            }
            2 => {
                let len = usize::try_from(self.varint()?).ok()?;
                let bytes = self.0.get(..len)?;
                self.0 = &self.0[len..];
                Wire::Len(bytes)
            }
            5 => {
                self.0 = self.0.get(4..)?;
                Wire::Fixed32
            }
            // Groups (3, 4) and what is not a wire type at all.
            _ => return None,
        };
        Some((number, wire))
    }

    fn varint(&mut self) -> Option<u64> {
        // Most tags and lengths here take one byte.
        if let Some((&b, rest)) = self.0.split_first() {
            if b < 0x80 {
                self.0 = rest;
                return Some(u64::from(b));
            }
        }
        let mut v = 0u64;
        for (i, byte) in self.0.iter().enumerate().take(10) {
            v |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                self.0 = &self.0[i + 1..];
                return Some(v);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::wandb as wb;
    use crate::wandb_service::history::{Entry, PendingLog};
    use prost::Message;

    fn item(key: &str, json: &str) -> wb::Item {
        wb::Item {
            key: key.into(),
            value_json: json.into(),
            ..Default::default()
        }
    }

    fn history(items: Vec<wb::Item>) -> wb::PartialHistory {
        wb::PartialHistory {
            item: items,
            step: Some(wb::HistoryStep { num: 41 }),
            action: Some(wb::HistoryAction { flush: true }),
        }
    }

    fn record(kind: wb::record::Kind) -> wb::Record {
        wb::Record {
            num: 9,
            kind: Some(kind),
            control: Some(wb::Control::default()),
            uuid: "u-1".into(),
            info: Some(wb::StreamInfo {
                stream_id: "run1".into(),
            }),
        }
    }

    fn row_record(h: wb::PartialHistory) -> wb::Record {
        record(wb::record::Kind::Request(wb::Request {
            kind: Some(wb::request::Kind::PartialHistory(h)),
        }))
    }

    fn frame(id: &str, rec: wb::Record) -> Vec<u8> {
        wb::ServerRequest {
            request_id: id.into(),
            kind: Some(wb::server_request::Kind::RecordPublish(rec)),
        }
        .encode_to_vec()
    }

    fn plain() -> Vec<wb::Item> {
        vec![
            item("loss", "0.5"),
            item("epoch", "3"),
            item("_timestamp", "1700000000.25"),
            item("_private", "1"),
            item("acc", "NaN"),
            item("loss", "-1e-3"),
        ]
    }

    /// What the decoded path makes of `h`, and what the in-place path makes of
    /// the same frame, as batches.
    fn both_paths(bytes: &[u8]) -> (wb::PartialHistory, PendingLog, PendingLog) {
        let req = wb::ServerRequest::decode(bytes).unwrap();
        let Some(wb::server_request::Kind::RecordPublish(rec)) = req.kind else {
            panic!("not a publish")
        };
        let Some(wb::record::Kind::Request(wb::Request {
            kind: Some(wb::request::Kind::PartialHistory(h)),
        })) = rec.kind
        else {
            panic!("not a row")
        };
        let mut decoded = PendingLog::new("r", "");
        decoded.push(
            h.item.iter().map(Entry::of),
            h.step.map(|s| s.num),
            h.action.map(|a| a.flush),
        );
        let row = scan(bytes).expect("the common row is read in place");
        assert_eq!(row.stream_id, b"run1");
        let mut in_place = PendingLog::new("r", "");
        in_place.push(
            row.items.iter().map(|&(k, x)| Entry::Plain(k, x)),
            row.step,
            row.commit,
        );
        (h, decoded, in_place)
    }

    fn same(mut a: PendingLog, mut b: PendingLog) {
        let bytes = |l: &mut PendingLog| l.take().unwrap().encode_to_vec();
        assert_eq!(bytes(&mut a), bytes(&mut b));
    }

    #[test]
    fn the_common_row_reads_in_place_as_it_decodes() {
        let bytes = frame("", row_record(history(plain())));
        let (h, mut decoded, mut in_place) = both_paths(&bytes);
        let (a, b) = (decoded.take().unwrap(), in_place.take().unwrap());
        assert_eq!(
            a.encode_to_vec(),
            b.encode_to_vec(),
            "NaN compares bytewise"
        );
        assert_eq!(a.rows[0].step, Some(41));
        assert_eq!(a.rows[0].commit, Some(true));
        assert_eq!(a.rows[0].timestamp, 1_700_000_000.25);
        assert_eq!(a.keys, ["loss", "acc"]);
        assert_eq!(a.rows[0].scalar_values.len(), 3);
        assert_eq!(h.item.len(), 6);
    }

    #[test]
    fn absent_step_and_commit_stay_absent() {
        let h = wb::PartialHistory {
            item: plain(),
            ..Default::default()
        };
        let bytes = frame("", row_record(h));
        let row = scan(&bytes).unwrap();
        assert_eq!((row.step, row.commit), (None, None));
        let (_, decoded, in_place) = both_paths(&bytes);
        same(decoded, in_place);
    }

    #[test]
    fn fields_this_proto_does_not_name_are_skipped_as_prost_skips_them() {
        let mut bytes = frame("", row_record(history(plain())));
        // ServerRequest field 99 (varint) and field 98 (bytes) after the record.
        bytes.extend_from_slice(&[0x98, 0x06, 0x01, 0x92, 0x06, 0x02, b'x', b'y']);
        let (_, decoded, in_place) = both_paths(&bytes);
        same(decoded, in_place);
    }

    #[test]
    fn anything_else_is_left_to_the_decoder() {
        let nested = wb::Item {
            nested_key: vec!["a".into(), "b".into()],
            value_json: "1".into(),
            ..Default::default()
        };
        let typed = wb::Item {
            key: "x".into(),
            typed: Some(wb::item::Typed::Number(1.5)),
            ..Default::default()
        };
        let mut slot = row_record(history(plain()));
        slot.control = Some(wb::Control {
            mailbox_slot: "m1".into(),
        });
        let summary = wb::Request {
            kind: Some(wb::request::Kind::GetSummary(wb::Empty {})),
        };
        let whole = frame("", row_record(history(plain())));
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("a request id", frame("q1", row_record(history(plain())))),
            ("a mailbox slot", frame("", slot)),
            ("a nested key", frame("", row_record(history(vec![nested])))),
            ("a typed value", frame("", row_record(history(vec![typed])))),
            (
                "a string",
                frame("", row_record(history(vec![item("t", "\"hi\"")]))),
            ),
            (
                "a list",
                frame("", row_record(history(vec![item("t", "[1]")]))),
            ),
            (
                "another request",
                frame("", record(wb::record::Kind::Request(summary))),
            ),
            (
                "a history record",
                frame(
                    "",
                    record(wb::record::Kind::History(wb::History::default())),
                ),
            ),
            ("a cut frame", whole[..whole.len() - 3].to_vec()),
            ("no record", Vec::new()),
        ];
        for (what, bytes) in cases {
            assert!(scan(&bytes).is_none(), "{what} was read in place");
        }
    }

    #[test]
    fn the_common_item_layout_is_read_directly_and_any_other_walked() {
        use prost::Message;
        let common = item("loss", "0.5").encode_to_vec();
        assert_eq!(key_then_json(&common), Some((&b"loss"[..], &b"0.5"[..])));
        assert_eq!(
            plain_item(&common),
            Some((&b"loss"[..], Scalar::Float(0.5)))
        );
        // The same fields the other way round, or with another field after them:
        // not the direct layout, the same item.
        let mut reversed = Vec::new();
        prost::encoding::string::encode(16, &"0.5".to_owned(), &mut reversed);
        prost::encoding::string::encode(1, &"loss".to_owned(), &mut reversed);
        let mut extra = common.clone();
        prost::encoding::int32::encode(9, &3, &mut extra);
        for other in [reversed, extra] {
            assert_eq!(key_then_json(&other), None);
            assert_eq!(plain_item(&other), Some((&b"loss"[..], Scalar::Float(0.5))));
        }
        // A key of 128 bytes or more has a two-byte length.
        let long = item(&"k".repeat(200), "1").encode_to_vec();
        assert_eq!(key_then_json(&long), None);
        assert_eq!(plain_item(&long).map(|(k, _)| k.len()), Some(200));
        // Not a number: no plain item on either path.
        assert_eq!(plain_item(&item("text", "\"hi\"").encode_to_vec()), None);
    }
}
