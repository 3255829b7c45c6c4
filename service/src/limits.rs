//! Every limit the sidecar holds a client to, in one place (the README's
//! "Reliability limits" lists them with what happens past each). Requests past a
//! shape limit are INVALID_ARGUMENT; past a size or count limit, RESOURCE_EXHAUSTED.

use std::time::Duration;

/// Deepest nesting of maps and lists in one logged value (config, summary and
/// history alike). A plain value is depth 1; each enclosing map or list adds one.
pub const MAX_DEPTH: usize = 20;

/// prost's decoder refuses messages nested deeper than this many message levels
/// (`prost::encoding::RECURSION_LIMIT`); the transaction log is read with it.
pub const DECODE_RECURSION_LIMIT: usize = 100;

/// Message levels above a logged value in the deepest log record:
/// Record > LogBatch > Row > values entry > Value.
pub const LOG_ENVELOPE_LEVELS: usize = 5;

/// Message levels one container adds in the worst case: a Value holding a
/// MapValue holding a map entry (a list adds two: Value > ListValue).
pub const LEVELS_PER_CONTAINER: usize = 3;

/// Message levels the innermost value may add (a Histogram or Media message).
pub const LEAF_LEVELS: usize = 1;

/// Levels left unused, so that a record the API accepts always decodes.
pub const DECODE_MARGIN: usize = 20;

// What the API accepts is provably readable from the log: the deepest accepted
// value, in the deepest record, with a message at its bottom, stays below prost's
// recursion limit with a margin.
const _: () = assert!(
    LOG_ENVELOPE_LEVELS + LEVELS_PER_CONTAINER * MAX_DEPTH + LEAF_LEVELS + DECODE_MARGIN
        <= DECODE_RECURSION_LIMIT
);

/// Largest step a row may be logged at (2^53 - 1: exact as a JSON number in every
/// language). A run whose next step would pass it takes no more rows.
pub const MAX_STEP: i64 = (1 << 53) - 1;

/// Largest LogBatch/Log `seq` (fits a signed 64-bit integer, for Java and Go).
pub const MAX_SEQ: u64 = i64::MAX as u64;

/// Latest client timestamp accepted: 9999-12-31T23:59:59Z, unix seconds.
pub const MAX_TIMESTAMP: f64 = 253_402_300_799.0;

/// Longest interval or timeout a client or flag may give, seconds (100 years).
pub const MAX_SECONDS: f64 = 100.0 * 365.0 * 86_400.0;

/// Distinct top-level keys in one Log/LogStream batch (its key table and its rows'
/// `values`), or in one config/summary update.
pub const MAX_KEYS_PER_BATCH: usize = 10_000;

/// Map entries and list elements inside the values of one request, all levels.
pub const MAX_NESTED_ENTRIES: usize = 100_000;

/// Distinct top-level history keys one run may hold; the same bound applies to
/// its config keys, its explicit summary keys and its metric definitions.
pub const MAX_KEYS_PER_RUN: usize = 10_000;

/// Writers one run may have had (a shared run's processes, each Init with a new
/// `writer_id`; one that ended still counts).
pub const MAX_WRITERS_PER_RUN: usize = 4_096;

/// Writers listed in one GetRun reply (the attached ones first; the rest are
/// counted, not listed).
pub const GET_RUN_MAX_WRITERS: usize = 1_000;

/// Directory entries one SaveFiles glob may look at.
pub const GLOB_MAX_ENTRIES: usize = 100_000;

/// Files one SaveFiles call may save.
pub const GLOB_MAX_FILES: usize = 10_000;

/// Time one SaveFiles glob may spend expanding.
pub const GLOB_MAX_TIME: Duration = Duration::from_secs(10);

/// Files held by all open artifact drafts together (each file costs the sidecar
/// memory until its draft is committed); also the most files one version has.
pub const MAX_DRAFT_FILES: usize = 1_000_000;

/// Artifact drafts open at once (created, not yet committed; a draft idle for a
/// day is dropped).
pub const MAX_OPEN_DRAFTS: usize = 1_000;

/// Aliases one artifact request may name.
pub const MAX_ALIASES: usize = 100;

/// Characters of an artifact's description.
pub const MAX_DESCRIPTION: usize = 65_536;

/// Bytes of an artifact path, a source path on the sidecar's host, or a
/// reference URI (Linux's PATH_MAX).
pub const MAX_PATH_BYTES: usize = 4096;

/// Bytes of one component of an artifact path (Linux's NAME_MAX).
pub const MAX_PATH_COMPONENT: usize = 255;

/// Paths one DownloadArtifact may select.
pub const MAX_DOWNLOAD_PATHS: usize = 10_000;

/// Largest size a reference may declare (2^53 - 1: exact as a JSON number in
/// every language).
pub const MAX_REFERENCE_SIZE: u64 = (1 << 53) - 1;

/// Largest GetRun reply: under the 4 MiB most gRPC clients accept by default.
pub const GET_RUN_REPLY_BYTES: usize = 4 * 1024 * 1024 - 64 * 1024;

/// Files listed in one GetRun reply (the rest are counted, not listed).
pub const GET_RUN_MAX_FILES: usize = 1_000;

/// Longest file name ReadFile takes, bytes (Linux's PATH_MAX).
pub const MAX_FILE_NAME_BYTES: usize = 4096;

/// Characters of a client's input quoted back in an error message.
pub const QUOTE_CHARS: usize = 200;

/// A run whose actor has spent this long on one request is wedged: health says
/// NOT_SERVING until it returns.
pub const WEDGED_AFTER: Duration = Duration::from_secs(30);

/// Quotes client input for an error message: Debug-escaped, at most
/// [`QUOTE_CHARS`] characters of it, with how much was left out.
pub fn quote(text: &str) -> String {
    let total = text.chars().count();
    if total <= QUOTE_CHARS {
        return format!("{text:?}");
    }
    let head: String = text.chars().take(QUOTE_CHARS).collect();
    format!("{head:?}... ({} more characters)", total - QUOTE_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_bounded() {
        assert_eq!(quote("ab"), "\"ab\"");
        let long = "x".repeat(10_000);
        let q = quote(&long);
        assert!(q.len() < QUOTE_CHARS + 60, "{q}");
        assert!(q.ends_with("(9800 more characters)"), "{q}");
    }
}
