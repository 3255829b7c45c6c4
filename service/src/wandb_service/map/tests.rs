//! Numbers on the hot path, nested updates, metric and file mapping.

use super::*;
use crate::proto::v1::value::Kind;

fn item(key: &str, json: &str) -> wb::Item {
    wb::Item {
        key: key.into(),
        value_json: json.into(),
        ..Default::default()
    }
}

#[test]
fn numbers_are_read_as_python_wrote_them() {
    assert_eq!(scalar("3"), Some(Scalar::Int(3)));
    assert_eq!(scalar("-12"), Some(Scalar::Int(-12)));
    assert_eq!(scalar("0.5"), Some(Scalar::Float(0.5)));
    assert_eq!(scalar("1e-05"), Some(Scalar::Float(1e-5)));
    assert_eq!(scalar("1.0"), Some(Scalar::Float(1.0)));
    assert_eq!(scalar("Infinity"), Some(Scalar::Float(f64::INFINITY)));
    assert_eq!(scalar("-Infinity"), Some(Scalar::Float(f64::NEG_INFINITY)));
    assert!(matches!(scalar("NaN"), Some(Scalar::Float(x)) if x.is_nan()));
    // Beyond int64: a float, as runcore's client sends it.
    assert_eq!(scalar("99999999999999999999"), Some(Scalar::Float(1e20)));
    for not in [
        "\"1\"",
        "true",
        "null",
        "[1]",
        "{}",
        "",
        "Inf",
        "nan",
        "-Inf",
        "NaNa",
        "-",
        "--",
        "+1",
        ".5",
        "1x",
        "1.5\u{e9}",
    ] {
        assert_eq!(scalar(not), None, "{not}");
    }
    assert_eq!(scalar_bytes(b"1\xff"), None, "not UTF-8");
    assert_eq!(scalar("-0"), Some(Scalar::Int(0)));
    assert_eq!(scalar("1E+3"), Some(Scalar::Float(1000.0)));
}

#[test]
fn json_values_keep_their_kinds() {
    let v = item_value(&item("s", "\"str\"")).unwrap();
    assert_eq!(v.kind, Some(Kind::StringValue("str".into())));
    let v = item_value(&item("n", "{\"x\": 2, \"y\": [1, 2.5]}")).unwrap();
    let Some(Kind::MapValue(m)) = v.kind else {
        panic!("not a map")
    };
    assert_eq!(m.fields["x"].kind, Some(Kind::IntValue(2)));
    let v = item_value(&item(
        "h",
        "{\"_type\": \"histogram\", \"values\": [1, 2], \"bins\": [0, 1, 2]}",
    ))
    .unwrap();
    assert!(matches!(v.kind, Some(Kind::Histogram(_))));
    let typed = wb::Item {
        key: "t".into(),
        typed: Some(wb::item::Typed::Number(0.25)),
        ..Default::default()
    };
    assert_eq!(item_value(&typed).unwrap(), value::double(0.25));
    assert!(item_value(&item("bad", "{nope")).is_err());
}

#[test]
fn nested_updates_merge_into_the_current_value() {
    let mut current = BTreeMap::new();
    current.insert(
        "opt".to_owned(),
        parse_json("{\"lr\": 0.1, \"beta\": 0.9}").unwrap(),
    );
    let u = wb::ItemUpdate {
        update: vec![
            wb::Item {
                nested_key: vec!["opt".into(), "lr".into()],
                value_json: "0.01".into(),
                ..Default::default()
            },
            item("_wandb", "{}"),
            item("epochs", "3"),
        ],
        remove: vec![item("old", "")],
    };
    assert!(is_nested(&u));
    let (set, remove) = update(&u, &current).unwrap();
    let mut json = String::new();
    value::write_json(&mut json, &set["opt"]);
    assert_eq!(json, "{\"beta\":0.9,\"lr\":0.01}");
    assert_eq!(set["epochs"], value::int(3));
    assert!(!set.contains_key("_wandb"));
    assert_eq!(remove, vec!["old".to_owned()]);
}

#[test]
fn metric_records_become_definitions() {
    let m = wb::Metric {
        glob_name: "val/*".into(),
        step_metric: "epoch".into(),
        options: Some(wb::MetricOptions {
            step_sync: true,
            hidden: false,
            defined: true,
        }),
        summary: Some(wb::MetricSummary {
            min: true,
            best: true,
            ..Default::default()
        }),
        goal: wb::MetricGoal::GoalMaximize as i32,
        ..Default::default()
    };
    let d = define_metric("r", &m).unwrap();
    assert_eq!(d.name, "val/*");
    assert_eq!(d.summary, "min,best");
    assert_eq!(d.goal, "maximize");
    assert_eq!(d.step_sync, Some(true));
    assert_eq!(d.overwrite, Some(false));
    let expanded = wb::Metric {
        name: "val/acc".into(),
        expanded_from_glob: true,
        ..Default::default()
    };
    assert!(define_metric("r", &expanded).is_none());
}

#[test]
fn saved_files_keep_their_layout_and_skip_the_sdks_own() {
    let files = wb::Files {
        files: vec![
            wb::FileItem {
                path: "ckpt/model.pt".into(),
                policy: wb::FilePolicy::End as i32,
                r#type: wb::FileType::Other as i32,
            },
            wb::FileItem {
                path: "wandb-metadata.json".into(),
                policy: wb::FilePolicy::Now as i32,
                r#type: wb::FileType::Wandb as i32,
            },
        ],
    };
    let reqs = save_files("r", &files, "/w/files");
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].glob, "ckpt/model.pt");
    assert_eq!(reqs[0].policy, "end");
    assert_eq!(reqs[0].working_dir, "/w/files");
}

#[test]
fn settings_find_the_files_dir_in_old_and_new_sdks() {
    let text = |s: &str| Some(wb::StringValue { value: s.into() });
    let old = wb::Settings {
        files_dir: text("/a/files"),
        sync_dir: text("/a"),
        ..Default::default()
    };
    assert_eq!(StreamSettings::of(&old).files_dir, "/a/files");
    let new = wb::Settings {
        sync_dir: text("/b"),
        resume: text("allow"),
        stats_pid: Some(wb::Int32Value { value: 12 }),
        ..Default::default()
    };
    let s = StreamSettings::of(&new);
    assert_eq!(
        (s.files_dir.as_str(), s.resume.as_str(), s.pid),
        ("/b/files", "allow", 12)
    );
}

#[test]
fn shared_mode_makes_the_process_a_writer_with_its_label_and_role() {
    let settings = wb::Settings {
        mode: Some(wb::StringValue {
            value: "shared".into(),
        }),
        label: Some(wb::StringValue {
            value: "rank-3".into(),
        }),
        primary: Some(wb::BoolValue { value: false }),
        ..Default::default()
    };
    let s = StreamSettings::of(&settings);
    let req = init_request(&wb::Run::default(), &s, "wandb-7-abc").unwrap();
    assert_eq!(req.writer_id, "wandb-7-abc");
    let w = req.writer.unwrap();
    assert!(w.shared);
    assert_eq!(
        (w.label.as_str(), w.primary, w.update_finish_state),
        ("rank-3", Some(false), None)
    );
    // Any other mode: the anonymous writer, as before.
    let plain = init_request(&wb::Run::default(), &StreamSettings::default(), "x").unwrap();
    assert!(plain.writer_id.is_empty() && plain.writer.is_none());
}

#[test]
fn a_later_run_record_edits_only_what_it_changes() {
    let now = RunInfo {
        id: "r".into(),
        name: "first".into(),
        tags: vec!["a".into()],
        notes: "n".into(),
        ..Default::default()
    };
    let same = wb::Run {
        display_name: "first".into(),
        tags: vec!["a".into()],
        ..Default::default()
    };
    assert!(
        run_edit(&now, &same).is_none(),
        "empty fields keep the run's"
    );
    let renamed = wb::Run {
        display_name: "second".into(),
        tags: vec!["b".into()],
        notes: "n".into(),
        ..Default::default()
    };
    let edit = run_edit(&now, &renamed).expect("an edit");
    assert_eq!(edit.run_id, "r");
    assert_eq!(edit.name.as_deref(), Some("second"));
    assert_eq!(edit.tags.map(|t| t.tags), Some(vec!["b".to_owned()]));
    assert!(edit.notes.is_none() && edit.group.is_none());
}
