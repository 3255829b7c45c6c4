//! The writers of a run: every process that Inits it is a writer, named by its
//! `writer_id` (empty: the anonymous writer of clients that send none). Sequence
//! numbers, deduplication and liveness are per writer, never per run.
//!
//! Who may join ([`admit`]): a writer that asks to share the run (W&B's
//! `settings.mode="shared"`) always; any other only while no other live writer has
//! the run open, so two processes never mix their rows by accident. The same
//! writer again (a client re-attaching after a sidecar restart) always resumes.
//!
//! Who ends the run ([`Writer::decides`]): a primary writer, or one allowed to
//! update the finish state (W&B's `x_primary`, `x_update_finish_state`, both true by
//! default). Any other writer that finishes or dies ends only itself.

use std::borrow::Cow;

use indexmap::IndexMap;

use crate::proto::v1::{ClientInfo, InitRequest, RunState as State, WriterInfo};

/// The writer id of clients that send none.
pub const ANONYMOUS: &str = "";

/// One writer of a run.
#[derive(Debug, Clone)]
pub struct Writer {
    pub id: String,
    /// W&B's `x_label`: suffixes its system-metric keys (`/l:<label>`).
    pub label: String,
    /// Joined asking to share the run.
    pub shared: bool,
    pub primary: bool,
    pub update_finish_state: bool,
    /// Its process, for liveness and for naming it in a refusal.
    pub client: Option<ClientInfo>,
    /// Running while attached; how it ended otherwise.
    pub state: State,
    pub exit_code: Option<i32>,
    /// Why it ended, when it did not finish itself.
    pub reason: String,
    /// Highest LogBatch.seq of this writer applied: a batch at or below it is a
    /// duplicate.
    pub last_seq: u64,
    /// In a shared run, the step its next row without a step goes to.
    pub step: i64,
    pub joined: f64,
    pub ended: f64,
}

impl Writer {
    fn new(id: &str, time: f64, step: i64) -> Self {
        Writer {
            id: id.to_owned(),
            label: String::new(),
            shared: false,
            primary: true,
            update_finish_state: true,
            client: None,
            state: State::Running,
            exit_code: None,
            reason: String::new(),
            last_seq: 0,
            step,
            joined: time,
            ended: 0.0,
        }
    }

    /// Whether it is writing the run now (joined and not ended).
    pub fn is_attached(&self) -> bool {
        self.state == State::Running
    }

    /// Whether its end ends the run (W&B's x_primary or x_update_finish_state).
    pub fn decides(&self) -> bool {
        self.primary || self.update_finish_state
    }

    /// "writer 'w1' (label rank-3) of pid 42 on host-a", for messages.
    pub fn describe(&self) -> String {
        let mut s = if self.id.is_empty() {
            "the run's writer".to_owned()
        } else {
            format!("writer {:?}", self.id)
        };
        if !self.label.is_empty() {
            s.push_str(&format!(" (label {:?})", self.label));
        }
        match &self.client {
            Some(c) if c.pid > 0 => {
                s.push_str(&format!(" of pid {} on host {:?}", c.pid, c.hostname))
            }
            Some(c) if !c.hostname.is_empty() => s.push_str(&format!(" on host {:?}", c.hostname)),
            _ => s.push_str(" (no process given in its Init)"),
        }
        s
    }

    pub fn to_proto(&self) -> WriterInfo {
        WriterInfo {
            id: self.id.clone(),
            label: self.label.clone(),
            shared: self.shared,
            primary: self.primary,
            update_finish_state: self.update_finish_state,
            client: self.client.clone(),
            state: self.state as i32,
            exit_code: self.exit_code,
            reason: self.reason.clone(),
            last_seq: self.last_seq,
            step: self.step,
            joined: self.joined,
            ended: self.ended,
        }
    }

    /// Takes the settings of an Init (a new writer, or the same one again).
    fn attach(&mut self, init: &InitRequest, time: f64) {
        let settings = init.writer.clone().unwrap_or_default();
        self.shared = settings.shared;
        self.label = settings.label;
        self.primary = settings.primary.unwrap_or(true);
        self.update_finish_state = settings.update_finish_state.unwrap_or(true);
        if init.client.is_some() {
            self.client.clone_from(&init.client);
        }
        self.state = State::Running;
        self.exit_code = None;
        self.reason.clear();
        self.joined = time;
        self.ended = 0.0;
    }
}

/// Every writer a run has had, in the order they first joined.
#[derive(Debug, Default)]
pub struct Writers {
    list: IndexMap<String, Writer>,
}

impl Writers {
    /// Writers the run has had, attached or ended.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn get(&self, id: &str) -> Option<&Writer> {
        self.list.get(id)
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut Writer> {
        self.list.get_mut(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Writer> {
        self.list.values()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Writer> {
        self.list.values_mut()
    }

    /// The writers writing the run now.
    pub fn attached(&self) -> impl Iterator<Item = &Writer> {
        self.list.values().filter(|w| w.is_attached())
    }

    /// The writer of an Init joins (or re-joins) the run; a new one starts at `step`.
    pub fn join(&mut self, init: &InitRequest, time: f64, step: i64) -> &mut Writer {
        let w = self
            .list
            .entry(init.writer_id.clone())
            .or_insert_with(|| Writer::new(&init.writer_id, time, step));
        if !w.is_attached() {
            w.step = w.step.max(step);
        }
        w.attach(init, time);
        w
    }

    /// The writer `id`, added as attached if the log never named it (the anonymous
    /// writer's rows need no Init of their own).
    pub fn ensure(&mut self, id: &str, time: f64, step: i64) -> &mut Writer {
        self.list
            .entry(id.to_owned())
            .or_insert_with(|| Writer::new(id, time, step))
    }

    /// The highest seq of writer `id` applied (0 for a writer not seen).
    pub fn last_seq(&self, id: &str) -> u64 {
        self.list.get(id).map_or(0, |w| w.last_seq)
    }

    /// Ends every attached writer with the run.
    pub fn end_all(&mut self, state: State, exit_code: Option<i32>, time: f64) {
        for w in self.list.values_mut().filter(|w| w.is_attached()) {
            w.state = state;
            w.exit_code = exit_code;
            w.ended = time;
        }
    }
}

/// Whether the writer of `init` may join: Ok, or the live writer that has the run
/// and makes this one wait (`live` says whether an attached writer's process is
/// still there).
pub fn admit<'a>(
    writers: &'a Writers,
    init: &InitRequest,
    live: impl Fn(&Writer) -> bool,
) -> Result<(), &'a Writer> {
    if init.writer.as_ref().is_some_and(|w| w.shared) {
        return Ok(());
    }
    for other in writers.attached() {
        let same = other.id == init.writer_id
            && (!other.id.is_empty() || same_process(other.client.as_ref(), init.client.as_ref()));
        if !same && live(other) {
            return Err(other);
        }
    }
    Ok(())
}

/// Whether two Inits of the anonymous writer came from one process (or cannot be
/// told apart: one of them named none).
fn same_process(a: Option<&ClientInfo>, b: Option<&ClientInfo>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) if a.pid > 0 && b.pid > 0 => {
            a.pid == b.pid && a.hostname == b.hostname && a.boot_id == b.boot_id
        }
        _ => true,
    }
}

/// Longest writer id and label.
const MAX_WRITER_ID: usize = 128;

/// Checks an Init's writer fields; the message says what to fix.
pub fn check(init: &InitRequest) -> Result<(), String> {
    let shared = init.writer.as_ref().is_some_and(|w| w.shared);
    if shared && init.writer_id.is_empty() {
        return Err("a shared writer needs a writer_id: any string unique to the writing process (a random UUID will do)".into());
    }
    check_text(&init.writer_id, "writer_id")?;
    check_text(
        init.writer.as_ref().map_or("", |w| w.label.as_str()),
        "writer.label",
    )
}

/// Checks a writer id or label as every request naming one does: at most
/// [`MAX_WRITER_ID`] characters, no control characters.
pub fn check_text(text: &str, what: &str) -> Result<(), String> {
    if text.chars().count() > MAX_WRITER_ID || text.chars().any(char::is_control) {
        return Err(format!(
            "{what} {} must be at most {MAX_WRITER_ID} characters, without control characters",
            crate::limits::quote(text)
        ));
    }
    Ok(())
}

/// A system-metric key as a labelled writer's samples show it (W&B's legacy form:
/// `cpu` of writer `rank-3` is `cpu/l:rank-3`).
pub fn labelled<'a>(key: &'a str, label: &str) -> Cow<'a, str> {
    if label.is_empty() {
        Cow::Borrowed(key)
    } else {
        Cow::Owned(format!("{key}/l:{label}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::v1::WriterSettings;

    fn init(id: &str, pid: i64, shared: bool) -> InitRequest {
        InitRequest {
            writer_id: id.into(),
            client: Some(ClientInfo {
                pid,
                hostname: "h".into(),
                boot_id: "b".into(),
            }),
            writer: Some(WriterSettings {
                shared,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_second_live_writer_must_ask_to_share() {
        let mut ws = Writers::default();
        ws.join(&init("a", 1, false), 0.0, 0);
        let refused = admit(&ws, &init("b", 2, false), |_| true).unwrap_err();
        assert_eq!(refused.id, "a");
        assert!(refused.describe().contains("pid 1 on host \"h\""));
        assert!(admit(&ws, &init("b", 2, true), |_| true).is_ok());
        // The same writer again, or any writer once the other is gone.
        assert!(admit(&ws, &init("a", 1, false), |_| true).is_ok());
        assert!(admit(&ws, &init("b", 2, false), |_| false).is_ok());
    }

    #[test]
    fn anonymous_writers_are_told_apart_by_their_process() {
        let mut ws = Writers::default();
        ws.join(&init("", 1, false), 0.0, 0);
        assert!(admit(&ws, &init("", 1, false), |_| true).is_ok());
        assert!(admit(&ws, &init("", 2, false), |_| true).is_err());
        let mut no_client = init("", 0, false);
        no_client.client = None;
        assert!(admit(&ws, &no_client, |_| true).is_ok());
    }

    #[test]
    fn labels_suffix_keys_as_wandb_does() {
        assert_eq!(labelled("cpu", ""), "cpu");
        assert_eq!(labelled("gpu.0.gpu", "rank-3"), "gpu.0.gpu/l:rank-3");
    }
}
