//! What recovery found wrong with a run's files, kept in `recovery.jsonl` in the
//! run directory (one JSON object per problem: `time`, `problem`) so that GetRun
//! and `runcore runs show` can say it long after the sidecar that found it.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::wal::WalReader;

/// The file problems are noted in.
pub const RECOVERY_JSONL: &str = "recovery.jsonl";

/// Most problems reported back (the file keeps them all).
const MAX_REPORTED: usize = 20;

#[derive(Serialize, Deserialize)]
struct Note {
    time: f64,
    problem: String,
}

/// Notes a problem (and logs it); a note that cannot be written is logged only.
pub fn note(dir: &Path, problem: &str) {
    tracing::error!(dir = %dir.display(), "{problem}");
    let line = Note {
        time: crate::clock::now(),
        problem: problem.to_owned(),
    };
    let written = serde_json::to_string(&line).map(|mut l| {
        l.push('\n');
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(RECOVERY_JSONL))
            .and_then(|mut f| f.write_all(l.as_bytes()))
    });
    if !matches!(written, Ok(Ok(()))) {
        tracing::error!(dir = %dir.display(), "could not note the problem in {RECOVERY_JSONL}");
    }
}

/// The problems noted for a run, oldest first (the last 20).
pub fn problems(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join(RECOVERY_JSONL)).unwrap_or_default();
    let all: Vec<String> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Note>(l).ok())
        .map(|n| format!("{}: {}", crate::clock::format_time(n.time), n.problem))
        .collect();
    let skip = all.len().saturating_sub(MAX_REPORTED);
    all.into_iter().skip(skip).collect()
}

/// What a reader skipped, in words; None when it skipped nothing but a torn tail.
pub fn describe(reader: &WalReader) -> Option<String> {
    if !reader.corrupt() {
        return None;
    }
    Some(format!(
        "the transaction log had {} corrupt stretch(es) ({} bytes) among its {} good records; the records after each were recovered",
        reader.bad_count(),
        reader.bad_bytes(),
        reader.records()
    ))
}
