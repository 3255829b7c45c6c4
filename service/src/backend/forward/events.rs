//! From log records to what a backend is told: the mirror state applies each
//! record (the same `RunState::apply` the run uses) and the sink collects events.

use std::path::Path;

use super::super::Event;
use crate::proto::wal::{record::Kind, Record};
use crate::semantics::state::{AlertEvent, CommittedRow, OutputEvent, RunState, Sink, SystemEvent};
use crate::wal::{WalError, WalReader};

/// Turns applied records into events.
#[derive(Default)]
pub(super) struct EventSink {
    events: Vec<Event>,
}

impl Sink for EventSink {
    fn history(&mut self, row: &CommittedRow<'_>) {
        self.events.push(Event::History {
            step: row.step,
            timestamp: row.timestamp,
            runtime: row.runtime,
            values: row
                .values
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        });
    }

    fn system(&mut self, e: &SystemEvent<'_>) {
        self.events.push(Event::System {
            timestamp: e.time,
            metrics: e.metrics().map(|(k, v)| (k.into_owned(), v)).collect(),
        });
    }

    fn output(&mut self, o: &OutputEvent<'_>) {
        self.events.push(Event::Output {
            timestamp: o.time,
            lines: o.lines.to_vec(),
        });
    }

    fn alert(&mut self, a: &AlertEvent<'_>) {
        self.events.push(Event::Alert {
            title: a.request.title.clone(),
            text: a.request.text.clone(),
            level: a.request.level.clone(),
            timestamp: a.time,
            sent: a.sent,
        });
    }
}

/// Reads up to `max` whole records after `offset`; returns them with the offset
/// after the last.
pub(super) fn read_from(
    path: &Path,
    offset: u64,
    max: usize,
) -> Result<(Vec<Record>, u64), WalError> {
    let mut reader = WalReader::open_at(path, offset)?;
    let mut out = Vec::new();
    while out.len() < max {
        match reader.next_record()? {
            Some(r) => out.push(r),
            None => break,
        }
    }
    Ok((out, reader.valid_len()))
}

/// Applies records to the mirror and turns them into events.
pub(super) fn events_of(mirror: &mut RunState, records: &[Record]) -> Vec<Event> {
    let mut sink = EventSink::default();
    let mut config = false;
    let mut summary = false;
    for r in records {
        mirror.apply(r, &mut sink);
        match &r.kind {
            Some(Kind::Start(_)) | Some(Kind::Resume(_)) => {
                sink.events.push(Event::Start);
                config = true;
            }
            Some(Kind::Config(_)) => config = true,
            Some(Kind::Log(_)) | Some(Kind::Summary(_)) | Some(Kind::DefineMetric(_)) => {
                summary = true
            }
            Some(Kind::SavedFiles(f)) => sink.events.push(Event::Files(f.files.clone())),
            // Ended on this sidecar only: the backend's run goes on.
            Some(Kind::State(change)) if change.local_only => summary = true,
            Some(Kind::Artifact(a)) => sink.events.push(Event::Artifact(Box::new(a.clone()))),
            Some(Kind::Edit(e)) => {
                sink.events.push(Event::Edit);
                config |= !e.config.is_empty() || !e.config_remove.is_empty();
                summary |= !e.summary.is_empty() || !e.summary_remove.is_empty();
            }
            Some(Kind::State(change)) => {
                summary = true;
                sink.events.push(Event::State {
                    state: change.state(),
                    exit_code: change.exit_code,
                    timestamp: r.time,
                });
            }
            _ => {}
        }
    }
    let mut events = sink.events;
    // Before a final state, so the backend has them when the run ends.
    let at = events
        .iter()
        .rposition(|e| matches!(e, Event::State { .. }))
        .unwrap_or(events.len());
    if summary {
        events.insert(at, Event::Summary(mirror.summary()));
    }
    if config {
        events.insert(at, Event::Config(mirror.config.clone()));
    }
    events
}
