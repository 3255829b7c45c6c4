//! W&B's file_stream endpoint: history, events and output lines at contiguous offsets,
//! the summary, uploaded files, preempting and the end of the run.

use serde_json::{json, Value as Json};

use super::plan::Plan;
use super::{
    Numbered, Wandb, EVENTS_FILE, HISTORY_FILE, MAX_LINES, MAX_LINE_BYTES, MAX_REQUEST_BYTES,
    OUTPUT_FILE, SUMMARY_FILE,
};
use crate::backend::retry::BackendError;
use crate::backend::{Backend, Batch};
use crate::proto::v1::RunInfo;

/// Numbered lines of one file still to send: (number, line), skipping those the
/// server has and those too long for it.
pub(super) fn pending<'a>(lines: &'a [String], n: &Numbered, file: &str) -> Vec<(u64, &'a str)> {
    lines
        .iter()
        .enumerate()
        .map(|(k, l)| (n.base + k as u64, l.as_str()))
        .filter(|(i, l)| {
            if *i < n.done {
                return false;
            }
            if l.len() > MAX_LINE_BYTES {
                tracing::warn!(
                    "a {file} line of {} bytes is over W&B's limit of {MAX_LINE_BYTES}; not sent (it is in the local store)",
                    l.len()
                );
                return false;
            }
            true
        })
        .collect()
}

/// Lines with their numbers.
pub(super) type NumberedLines<'a> = [(u64, &'a str)];

/// The text of numbered lines.
pub(super) fn content<'a>(lines: &NumberedLines<'a>) -> Vec<&'a str> {
    lines.iter().map(|(_, l)| *l).collect()
}

/// Takes lines for one request from the front of each list (history, events,
/// output), in that order, within the request's limits.
pub(super) fn take_chunk<'a, const N: usize>(
    lists: &mut [&'a NumberedLines<'a>; N],
) -> [&'a NumberedLines<'a>; N] {
    let mut lines = 0;
    let mut bytes = 0;
    let mut taken: [&'a NumberedLines<'a>; N] = [&[]; N];
    for (list, out) in lists.iter_mut().zip(taken.iter_mut()) {
        let mut k = 0;
        for (_, l) in list.iter() {
            if lines >= MAX_LINES || (lines > 0 && bytes + l.len() > MAX_REQUEST_BYTES) {
                break;
            }
            lines += 1;
            bytes += l.len() + 4;
            k += 1;
        }
        let (chunk, rest) = list.split_at(k);
        *out = chunk;
        *list = rest;
    }
    taken
}

impl Wandb {
    pub(super) async fn file_stream(
        &mut self,
        run: &RunInfo,
        body: &Json,
    ) -> Result<Json, BackendError> {
        let url = self.url(&[
            "files",
            &self.st.entity,
            &run.project,
            &run.id,
            "file_stream",
        ])?;
        let reply = self.post(url, body).await?;
        self.st.streamed = true;
        Ok(reply)
    }

    /// Streams the batch's history, events and output lines (in chunks within
    /// W&B's limits), then the summary, uploads, preempting and the end.
    pub(super) async fn stream(
        &mut self,
        batch: &Batch<'_>,
        plan: &Plan,
    ) -> Result<(), BackendError> {
        let run = batch.run;
        let history = pending(&plan.history, &self.st.history, HISTORY_FILE);
        let events = pending(&plan.events, &self.st.events, EVENTS_FILE);
        let output = pending(&plan.output, &self.st.output, OUTPUT_FILE);
        let mut left = [history.as_slice(), events.as_slice(), output.as_slice()];
        loop {
            let chunk = take_chunk(&mut left);
            let last = left.iter().all(|l| l.is_empty());
            let mut files = serde_json::Map::new();
            for (name, lines, offset) in [
                (HISTORY_FILE, chunk[0], self.st.history.sent),
                (EVENTS_FILE, chunk[1], self.st.events.sent),
                (OUTPUT_FILE, chunk[2], self.st.output.sent),
            ] {
                if !lines.is_empty() {
                    files.insert(
                        name.into(),
                        json!({"offset": offset, "content": content(lines)}),
                    );
                }
            }
            let mut body = serde_json::Map::new();
            let reported = if last {
                self.final_fields(run, plan, &mut files, &mut body)
            } else {
                0
            };
            if !files.is_empty() {
                body.insert("files".into(), Json::Object(files));
            }
            if body.is_empty() {
                break;
            }
            self.file_stream(run, &Json::Object(body)).await?;
            for (n, lines) in [
                (&mut self.st.history, chunk[0]),
                (&mut self.st.events, chunk[1]),
                (&mut self.st.output, chunk[2]),
            ] {
                if let Some((i, _)) = lines.last() {
                    n.sent += lines.len() as u64;
                    n.done = i + 1;
                }
            }
            self.st.unreported.drain(..reported);
            batch.checkpoint.save(self.save()).await;
            if last {
                break;
            }
        }
        Ok(())
    }

    /// What the last request of a batch also carries: the summary, the uploads to
    /// report, preempting, the end. Returns how many uploads it reports.
    fn final_fields(
        &self,
        run: &RunInfo,
        plan: &Plan,
        files: &mut serde_json::Map<String, Json>,
        body: &mut serde_json::Map<String, Json>,
    ) -> usize {
        // An ended run's edit carried its summary in UpsertBucket: nothing is
        // streamed to a run that is complete.
        let ended = crate::semantics::state::is_terminal(run.state());
        let summary = plan.summary.as_ref().filter(|_| !(plan.edit && ended));
        if let Some(summary) = summary {
            if summary.len() <= MAX_LINE_BYTES {
                files.insert(
                    SUMMARY_FILE.into(),
                    json!({"offset": 0, "content": [summary]}),
                );
            } else {
                tracing::warn!(run = %run.id, "the summary is over W&B's line limit of {MAX_LINE_BYTES} bytes; not sent");
            }
        }
        let reported = self.st.unreported.len();
        if reported > 0 {
            body.insert("uploaded".into(), json!(self.st.unreported));
        }
        if plan.preempting {
            body.insert("preempting".into(), json!(true));
        }
        if let Some(code) = plan.exit_code {
            body.insert("complete".into(), json!(true));
            body.insert("exitcode".into(), json!(code));
        }
        reported
    }
}
