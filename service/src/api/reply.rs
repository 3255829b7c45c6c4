//! Replies kept within what clients accept: GetRun and UpdateRun under 4 MiB (gRPC
//! clients' default receive limit), with what was left out named in the reply's
//! metadata.

use std::collections::BTreeMap;

use prost::Message;
use tonic::metadata::{MetadataMap, MetadataValue};

use crate::limits::{GET_RUN_MAX_FILES, GET_RUN_REPLY_BYTES};
use crate::proto::v1::{GetRunResponse, UpdateRunResponse, Value};

/// Metadata key naming what a GetRun reply left out.
pub const OMITTED: &str = "runcore-omitted";
/// Metadata key carrying the problems recovery found with the run's files.
pub const PROBLEMS: &str = "runcore-problems";

/// Longest metadata value sent.
const MAX_METADATA: usize = 4096;

/// Trims a GetRun reply to fit [`GET_RUN_REPLY_BYTES`]: files past
/// [`GET_RUN_MAX_FILES`] are counted, not listed, and the largest config and
/// summary values are left out (they are in the run's config.json and
/// summary.json). Returns what was left out.
pub fn fit_get_run(reply: &mut GetRunResponse) -> Vec<String> {
    let mut omitted = Vec::new();
    if reply.files.len() > GET_RUN_MAX_FILES {
        omitted.push(format!(
            "files ({} of {} listed)",
            GET_RUN_MAX_FILES,
            reply.files.len()
        ));
        reply.files.truncate(GET_RUN_MAX_FILES);
    }
    let size = reply.encoded_len();
    omitted.extend(fit_values(size, &mut reply.config, &mut reply.summary));
    omitted
}

/// Trims an UpdateRun reply (the run, its config and summary after the edit) to
/// fit [`GET_RUN_REPLY_BYTES`] as [`fit_get_run`] does. Returns what was left out.
pub fn fit_update(reply: &mut UpdateRunResponse) -> Vec<String> {
    let size = reply.encoded_len();
    fit_values(size, &mut reply.config, &mut reply.summary)
}

/// Leaves the largest config and summary values out of a reply of `size` bytes
/// until it fits [`GET_RUN_REPLY_BYTES`]; returns them as `section.key`.
fn fit_values(
    mut size: usize,
    config: &mut BTreeMap<String, Value>,
    summary: &mut BTreeMap<String, Value>,
) -> Vec<String> {
    let mut omitted = Vec::new();
    if size <= GET_RUN_REPLY_BYTES {
        return omitted;
    }
    // (bytes, section, key), largest first; a map entry costs its key, its value
    // and a few bytes of framing.
    let mut values: Vec<(usize, bool, String)> = summary
        .iter()
        .map(|(k, v)| (k.len() + v.encoded_len() + 8, true, k.clone()))
        .chain(
            config
                .iter()
                .map(|(k, v)| (k.len() + v.encoded_len() + 8, false, k.clone())),
        )
        .collect();
    values.sort_by_key(|v| std::cmp::Reverse(v.0));
    for (bytes, in_summary, key) in values {
        if size <= GET_RUN_REPLY_BYTES {
            break;
        }
        let (map, section) = if in_summary {
            (&mut *summary, "summary")
        } else {
            (&mut *config, "config")
        };
        map.remove(&key);
        size = size.saturating_sub(bytes);
        omitted.push(format!("{section}.{key}"));
    }
    omitted
}

/// Puts a list in a reply's metadata under `key`: printable ASCII, bounded.
pub fn put(metadata: &mut MetadataMap, key: &'static str, items: &[String]) {
    if items.is_empty() {
        return;
    }
    let mut text: String = items
        .join("; ")
        .chars()
        .flat_map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                vec![c]
            } else {
                c.escape_default().collect()
            }
        })
        .collect();
    if text.len() > MAX_METADATA {
        text.truncate(MAX_METADATA);
        text.push_str("...");
    }
    if let Ok(v) = MetadataValue::try_from(text.as_str()) {
        metadata.insert(key, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_reply_is_trimmed_largest_first() {
        let mut reply = GetRunResponse::default();
        for i in 0..6 {
            reply.summary.insert(
                format!("blob{i}"),
                crate::value::string("x".repeat(1 << 20)),
            );
        }
        reply
            .summary
            .insert("small".into(), crate::value::double(1.0));
        reply.files = (0..2000).map(|i| format!("f{i}")).collect();
        let omitted = fit_get_run(&mut reply);
        assert!(reply.encoded_len() <= GET_RUN_REPLY_BYTES);
        assert!(reply.summary.contains_key("small"));
        assert_eq!(reply.files.len(), GET_RUN_MAX_FILES);
        assert!(omitted[0].starts_with("files (1000 of 2000"), "{omitted:?}");
        assert_eq!(omitted.len(), 4, "{omitted:?}");
    }

    #[test]
    fn a_huge_update_reply_is_trimmed_largest_first() {
        let mut reply = UpdateRunResponse::default();
        for i in 0..5 {
            reply
                .config
                .insert(format!("c{i}"), crate::value::string("x".repeat(1 << 20)));
        }
        reply
            .summary
            .insert("small".into(), crate::value::double(1.0));
        let omitted = fit_update(&mut reply);
        assert!(reply.encoded_len() <= GET_RUN_REPLY_BYTES);
        assert!(reply.summary.contains_key("small"));
        assert_eq!(omitted.len(), 2, "{omitted:?}");
        assert!(
            omitted.iter().all(|o| o.starts_with("config.c")),
            "{omitted:?}"
        );
    }
}
