//! The client's mirror of the sidecar's step rules (W&B's `run.log`), so that a
//! run's step is current without a round trip and a row at a smaller step is
//! dropped before it is sent. The sidecar applies the same rules;
//! tests/vectors/log_steps.json holds the cases both are tested against.

/// The run's step (the step the next committed row gets) and whether a row is
/// pending at it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepMirror {
    pub step: u64,
    /// Data was logged at `step` without being committed yet.
    pub pending: bool,
}

impl StepMirror {
    pub fn new(step: u64) -> Self {
        StepMirror {
            step,
            pending: false,
        }
    }

    /// Applies one `log(data, step, commit)`; false when the row is dropped (a step
    /// smaller than the current one).
    pub fn advance(&mut self, has_data: bool, step: Option<u64>, commit: Option<bool>) -> bool {
        let commit = match step {
            None => commit.unwrap_or(true),
            Some(step) if step < self.step => return false,
            Some(step) => {
                if step > self.step {
                    // The pending row (if any) is committed at the old step first.
                    self.step = step;
                    self.pending = false;
                }
                commit.unwrap_or(false)
            }
        };
        self.pending |= has_data;
        if commit && self.pending {
            self.step += 1;
            self.pending = false;
        }
        true
    }

    /// Finish commits the pending row.
    pub fn finish(&mut self) {
        if self.pending {
            self.step += 1;
            self.pending = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mirror_follows_every_case_of_log_steps_json() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/vectors/log_steps.json"
        );
        let text = std::fs::read_to_string(path).expect("tests/vectors/log_steps.json");
        let file: serde_json::Value = serde_json::from_str(&text).expect("log_steps.json is JSON");
        assert_eq!(file["format"], "runcore.vectors.semantics/1");
        let cases = file["cases"].as_array().expect("cases");
        assert!(!cases.is_empty());
        for case in cases {
            check_case(case);
        }
    }

    fn check_case(case: &serde_json::Value) {
        let name = case["name"].as_str().expect("name");
        let expect = &case["expect"];
        let mut mirror = StepMirror::new(0);
        let mut steps = Vec::new();
        let mut dropped = Vec::new();
        for (index, call) in case["calls"].as_array().expect("calls").iter().enumerate() {
            if let Some(data) = call.get("log") {
                let has_data = !data.as_object().expect("log data").is_empty();
                let step = call.get("step").map(|s| s.as_u64().expect("step"));
                let commit = call.get("commit").map(|c| c.as_bool().expect("commit"));
                let before = mirror.step;
                if !mirror.advance(has_data, step, commit) {
                    dropped.push((
                        index as u64,
                        step.expect("a dropped row has a step"),
                        before,
                    ));
                }
            } else if call.get("finish").is_some() {
                mirror.finish();
            } else {
                panic!("{name}: call {index} is neither log nor finish: {call}");
            }
            steps.push(mirror.step);
        }
        if let Some(want) = expect.get("steps") {
            let want: Vec<u64> = want
                .as_array()
                .expect("steps")
                .iter()
                .map(|s| s.as_u64().expect("step"))
                .collect();
            assert_eq!(steps, want, "{name}: steps");
        }
        assert_eq!(Some(mirror.step), expect["step"].as_u64(), "{name}: step");
        let want: Vec<(u64, u64, u64)> = expect["dropped"]
            .as_array()
            .expect("dropped")
            .iter()
            .map(|d| {
                let field = |k: &str| d[k].as_u64().expect("dropped field");
                (field("call"), field("step"), field("current_step"))
            })
            .collect();
        assert_eq!(dropped, want, "{name}: dropped");
    }
}
