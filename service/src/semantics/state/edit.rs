//! An edit of a run after Init (UpdateRun): name, notes, tags, group, job type,
//! config and summary. A record like any other, so a replay of the log (recovery,
//! reads, a forwarder, `runcore sync`) sees the run as edited; it applies the same
//! to open and ended runs and never changes the run's state.

use std::collections::BTreeMap;

use super::RunState;
use crate::proto::v1::{UpdateRunRequest, Value};
use crate::semantics::writers;

impl RunState {
    pub(super) fn edit(&mut self, e: &UpdateRunRequest) {
        let info = &mut self.info;
        for (field, new) in [
            (&mut info.name, &e.name),
            (&mut info.notes, &e.notes),
            (&mut info.group, &e.group),
            (&mut info.job_type, &e.job_type),
        ] {
            if let Some(v) = new {
                field.clone_from(v);
            }
        }
        if let Some(tags) = &e.tags {
            info.tags.clone_from(&tags.tags);
        }
        self.change_config(&e.config_remove, &e.config);
        self.change_summary(&e.summary_remove, &e.summary);
    }

    /// Removes config keys, then sets others (an UpdateConfig or an edit).
    pub(super) fn change_config(&mut self, remove: &[String], set: &BTreeMap<String, Value>) {
        for k in remove {
            self.config.remove(k);
        }
        for (k, v) in set {
            self.config.insert(k.clone(), v.clone());
        }
        self.config_changed();
    }

    /// Removes explicit summary keys, then sets others (an UpdateSummary or an
    /// edit).
    pub(super) fn change_summary(&mut self, remove: &[String], set: &BTreeMap<String, Value>) {
        for k in remove {
            self.summary.remove(k);
        }
        for (k, v) in set {
            self.summary.set(k.clone(), v.clone());
        }
    }

    /// The latest system-metrics sample as W&B shows it: `system.<key>`, plus
    /// `_runtime` and `_timestamp`; empty before the first sample. A shared run's
    /// labelled writers each add their latest, keyed `system.<key>/l:<label>`, and
    /// the times are the latest one's.
    pub fn system_metrics(&self) -> BTreeMap<String, f64> {
        let Some(time) = self.last_system.values().map(|(t, _)| *t).reduce(f64::max) else {
            return BTreeMap::new();
        };
        let mut out = BTreeMap::new();
        for (_, sample) in self.last_system.values() {
            for (k, v) in sample.keys.iter().zip(&sample.values) {
                let key = writers::labelled(k, &sample.label);
                out.insert(format!("system.{key}"), *v);
            }
        }
        out.insert("_runtime".into(), (time - self.info.start_time).max(0.0));
        out.insert("_timestamp".into(), time);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::started;
    use super::*;
    use crate::proto::v1::{RunState as State, Tags};
    use crate::proto::wal::{record::Kind, Record, StateChange};
    use crate::semantics::state::{CommittedRow, Sink};
    use crate::value;

    struct Nothing;

    impl Sink for Nothing {
        fn history(&mut self, _row: &CommittedRow<'_>) {}
    }

    fn apply(s: &mut RunState, kind: Kind) {
        s.apply(
            &Record {
                time: 200.0,
                kind: Some(kind),
            },
            &mut Nothing,
        );
    }

    #[test]
    fn an_edit_changes_only_what_it_names_and_works_on_an_ended_run() {
        let mut s = started();
        apply(
            &mut s,
            Kind::State(StateChange {
                state: State::Finished as i32,
                exit_code: Some(0),
                ..Default::default()
            }),
        );
        s.config.insert("lr".into(), value::double(0.1));
        s.config.insert("old".into(), value::int(1));
        apply(
            &mut s,
            Kind::Edit(UpdateRunRequest {
                name: Some("renamed".into()),
                tags: Some(Tags {
                    tags: vec!["a".into()],
                }),
                config: [("lr".to_string(), value::double(0.2))].into(),
                config_remove: vec!["old".into()],
                summary: [("acc".to_string(), value::double(0.9))].into(),
                ..Default::default()
            }),
        );
        assert_eq!(s.info.name, "renamed");
        assert_eq!(s.info.tags, ["a"]);
        assert_eq!(s.info.notes, "", "notes were not named");
        assert_eq!(s.state(), State::Finished, "an edit never reopens a run");
        assert_eq!(s.config.keys().collect::<Vec<_>>(), ["lr"]);
        assert_eq!(value::as_f64(&s.config["lr"]), Some(0.2));
        assert_eq!(value::as_f64(&s.summary()["acc"]), Some(0.9));
        apply(
            &mut s,
            Kind::Edit(UpdateRunRequest {
                tags: Some(Tags::default()),
                summary_remove: vec!["acc".into()],
                ..Default::default()
            }),
        );
        assert!(s.info.tags.is_empty(), "an empty Tags clears them");
        assert!(!s.summary().contains_key("acc"));
    }
}
