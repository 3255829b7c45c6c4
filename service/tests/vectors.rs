//! The shared test vectors (tests/vectors/, written once as data and run by the
//! Rust, Python and Go suites) against the sidecar: each case on a fresh run, every
//! call through the gRPC API (validation, the run actor, the semantics), then the
//! committed rows, dropped rows, steps, summary and metric definitions compared
//! with what the case expects; shared_steps.json the same with several writers of
//! one run. The format is tests/vectors/README.md.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use runcore::proto::v1::run_service_client::RunServiceClient;
use runcore::proto::v1::{
    value::Kind, DefineMetricRequest, FinishRequest, GetRunRequest, GetRunResponse, InitRequest,
    ListValue, LogRequest, MapValue, Resume, ScanHistoryRequest, UpdateSummaryRequest, Value,
    WriterSettings,
};
use serde_json::Value as Json;
use support::InProcess;
use tonic::transport::Channel;

const FORMAT: &str = "runcore.vectors.semantics/1";
const FILES: [&str; 3] = ["log_steps.json", "summary.json", "define_metric.json"];
const SHARED_FORMAT: &str = "runcore.vectors.shared/1";
const SHARED_FILE: &str = "shared_steps.json";

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors")
}

/// A JSON value as the `Value` a client sends (README: VALUE).
fn to_value(j: &Json) -> Value {
    let kind = match j {
        Json::Null => Kind::NullValue(true),
        Json::Bool(b) => Kind::BoolValue(*b),
        Json::String(s) => Kind::StringValue(s.clone()),
        Json::Number(n) => match n.as_i64() {
            Some(i) if !n.to_string().contains(['.', 'e', 'E']) => Kind::IntValue(i),
            _ => Kind::DoubleValue(n.as_f64().expect("number")),
        },
        Json::Array(a) => Kind::ListValue(ListValue {
            values: a.iter().map(to_value).collect(),
        }),
        Json::Object(o) => match o.get("$double").and_then(Json::as_str) {
            Some(special) => Kind::DoubleValue(special.parse().expect("NaN or Infinity")),
            None => Kind::MapValue(MapValue { fields: to_map(j) }),
        },
    };
    Value { kind: Some(kind) }
}

fn to_map(j: &Json) -> BTreeMap<String, Value> {
    j.as_object()
        .expect("an object")
        .iter()
        .map(|(k, v)| (k.clone(), to_value(v)))
        .collect()
}

/// Values equal as README: Comparison says (numbers by value, NaN equals NaN).
fn same(a: &Value, b: &Value) -> bool {
    let num = |v: &Value| match v.kind {
        Some(Kind::IntValue(i)) => Some(i as f64),
        Some(Kind::DoubleValue(d)) => Some(d),
        _ => None,
    };
    if let (Some(x), Some(y)) = (num(a), num(b)) {
        return (x.is_nan() && y.is_nan())
            || x == y
            || (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0);
    }
    match (&a.kind, &b.kind) {
        (Some(Kind::MapValue(x)), Some(Kind::MapValue(y))) => same_map(&x.fields, &y.fields),
        (Some(Kind::ListValue(x)), Some(Kind::ListValue(y))) => {
            x.values.len() == y.values.len()
                && x.values.iter().zip(&y.values).all(|(p, q)| same(p, q))
        }
        (x, y) => x == y,
    }
}

fn same_map(a: &BTreeMap<String, Value>, b: &BTreeMap<String, Value>) -> bool {
    a.len() == b.len() && a.iter().all(|(k, v)| b.get(k).is_some_and(|w| same(v, w)))
}

/// A gRPC code as the vectors name it (`InvalidArgument` -> `INVALID_ARGUMENT`).
fn code_name(code: tonic::Code) -> String {
    let mut out = String::new();
    for (i, ch) in format!("{code:?}").chars().enumerate() {
        if ch.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(ch.to_ascii_uppercase());
    }
    out
}

/// What running one case produced.
#[derive(Default)]
struct Seen {
    steps: Vec<i64>,
    dropped: Vec<(usize, i64, i64)>,
}

/// A run id from a case name (ids are at most 64 of [A-Za-z0-9_-]).
fn run_id(name: &str) -> String {
    name.chars().take(60).collect()
}

async fn get(c: &mut RunServiceClient<Channel>, id: &str) -> GetRunResponse {
    c.get_run(GetRunRequest { run_id: id.into() })
        .await
        .expect("get run")
        .into_inner()
}

/// Applies one call; Err(code name) when the sidecar refused it.
async fn call(
    c: &mut RunServiceClient<Channel>,
    id: &str,
    index: usize,
    logs: &mut u64,
    call: &Json,
    seen: &mut Seen,
) -> Result<(), String> {
    let code = |s: tonic::Status| code_name(s.code());
    if let Some(data) = call.get("log") {
        *logs += 1;
        let reply = c
            .log(LogRequest {
                run_id: id.into(),
                data: to_map(data),
                step: call.get("step").and_then(Json::as_i64),
                commit: call.get("commit").and_then(Json::as_bool),
                seq: *logs,
                timestamp: 0.0,
                ..Default::default()
            })
            .await
            .map_err(code)?
            .into_inner();
        for d in reply.dropped {
            seen.dropped.push((index, d.step, d.current_step));
        }
    } else if let Some(m) = call.get("define_metric") {
        let text = |k: &str| m.get(k).and_then(Json::as_str).unwrap_or("").to_owned();
        c.define_metric(DefineMetricRequest {
            run_id: id.into(),
            name: text("name"),
            step_metric: text("step_metric"),
            step_sync: m.get("step_sync").and_then(Json::as_bool),
            hidden: m.get("hidden").and_then(Json::as_bool),
            summary: text("summary"),
            goal: text("goal"),
            overwrite: m.get("overwrite").and_then(Json::as_bool),
        })
        .await
        .map_err(code)?;
    } else if let Some(values) = call.get("update_summary") {
        let remove = call.get("remove").and_then(Json::as_array);
        c.update_summary(UpdateSummaryRequest {
            run_id: id.into(),
            summary: to_map(values),
            remove: remove
                .into_iter()
                .flatten()
                .filter_map(|k| k.as_str().map(str::to_owned))
                .collect(),
        })
        .await
        .map_err(code)?;
    } else if let Some(f) = call.get("finish") {
        c.finish(FinishRequest {
            run_id: id.into(),
            exit_code: f.get("exit_code").and_then(Json::as_i64).map(|e| e as i32),
            ..Default::default()
        })
        .await
        .map_err(code)?;
    } else {
        panic!("unknown call {call}");
    }
    Ok(())
}

/// Runs one case on a fresh run; returns what differs from its expectation.
async fn run_case(c: &mut RunServiceClient<Channel>, case: &Json) -> Vec<String> {
    let name = case["name"].as_str().expect("name");
    let id = run_id(name);
    c.init(InitRequest {
        id: id.clone(),
        project: "vectors".into(),
        ..Default::default()
    })
    .await
    .expect("init");
    let mut seen = Seen::default();
    let mut logs = 0;
    let mut problems = Vec::new();
    for (i, step) in case["calls"].as_array().expect("calls").iter().enumerate() {
        let result = call(c, &id, i, &mut logs, step, &mut seen).await;
        let want = step.get("error").and_then(Json::as_str).map(str::to_owned);
        if result.clone().err() != want {
            problems.push(format!("call {i}: got {result:?}, expected error {want:?}"));
        }
        let run = get(c, &id).await.run.expect("run");
        seen.steps.push(run.step);
    }
    let expect = &case["expect"];
    problems.extend(compare(c, &id, expect, &seen).await);
    problems
}

/// Compares the run with `expect` (README: EXPECT).
async fn compare(
    c: &mut RunServiceClient<Channel>,
    id: &str,
    expect: &Json,
    seen: &Seen,
) -> Vec<String> {
    let mut problems = Vec::new();
    let got = get(c, id).await;
    let step = got.run.as_ref().expect("run").step;
    if Some(step) != expect["step"].as_i64() {
        problems.push(format!("step {step}, expected {}", expect["step"]));
    }
    if let Some(steps) = expect.get("steps") {
        let want: Vec<i64> = steps
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Json::as_i64)
            .collect();
        if want != seen.steps {
            problems.push(format!("steps {:?}, expected {want:?}", seen.steps));
        }
    }
    let want_dropped: Vec<(usize, i64, i64)> = expect["dropped"]
        .as_array()
        .expect("dropped")
        .iter()
        .map(|d| {
            let n = |k: &str| d[k].as_i64().expect("number");
            (n("call") as usize, n("step"), n("current_step"))
        })
        .collect();
    if want_dropped != seen.dropped {
        problems.push(format!(
            "dropped {:?}, expected {want_dropped:?}",
            seen.dropped
        ));
    }
    problems.extend(compare_rows(c, id, &expect["rows"]).await);
    if let Some(summary) = expect.get("summary") {
        let mut have = got.summary.clone();
        have.remove("_runtime");
        have.remove("_timestamp");
        if !same_map(&have, &to_map(summary)) {
            problems.push(format!("summary {have:?}, expected {summary}"));
        }
    }
    if let Some(metrics) = expect.get("metrics") {
        let have: Vec<Json> = got
            .metrics
            .iter()
            .map(|m| {
                serde_json::json!({"name": m.name, "step_metric": m.step_metric,
                    "step_sync": m.step_sync, "hidden": m.hidden,
                    "summary": m.summary, "goal": m.goal})
            })
            .collect();
        if &Json::Array(have.clone()) != metrics {
            problems.push(format!("metrics {have:?}, expected {metrics}"));
        }
    }
    problems
}

async fn compare_rows(c: &mut RunServiceClient<Channel>, id: &str, rows: &Json) -> Vec<String> {
    let mut stream = c
        .scan_history(ScanHistoryRequest {
            run_id: id.into(),
            ..Default::default()
        })
        .await
        .expect("scan history")
        .into_inner();
    let mut have = Vec::new();
    while let Some(chunk) = stream.message().await.expect("history") {
        have.extend(chunk.rows);
    }
    let want = rows.as_array().expect("rows");
    let mut problems = Vec::new();
    if have.len() != want.len() {
        problems.push(format!("{} rows, expected {}", have.len(), want.len()));
    }
    for (i, (h, w)) in have.iter().zip(want).enumerate() {
        let mut values = h.values.clone();
        for k in ["_step", "_runtime", "_timestamp"] {
            values.remove(k);
        }
        if Some(h.step) != w["step"].as_i64() || !same_map(&values, &to_map(&w["values"])) {
            problems.push(format!("row {i}: step {} {values:?}, expected {w}", h.step));
        }
    }
    problems
}

#[tokio::test]
async fn every_semantics_vector_holds_on_the_sidecar() {
    let s = InProcess::start().await;
    let mut c = s.client().await;
    let mut failures = Vec::new();
    let mut cases = 0;
    for file in FILES {
        let path = vectors_dir().join(file);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        let doc: Json = serde_json::from_str(&text).expect("vector JSON");
        assert_eq!(doc["format"], FORMAT, "{file}: unknown format");
        for case in doc["cases"].as_array().expect("cases") {
            cases += 1;
            for p in run_case(&mut c, case).await {
                failures.push(format!("{file} {}: {p}", case["name"]));
            }
        }
    }
    assert!(cases >= 30, "only {cases} cases found");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A writer joining a shared case's run: the first of the case is primary, the
/// others may not end the run (README: shared_steps.json).
fn writer_init(id: &str, writer: &str, primary: bool) -> InitRequest {
    InitRequest {
        id: id.into(),
        project: "vectors".into(),
        resume: Resume::Allow as i32,
        writer_id: writer.into(),
        writer: Some(WriterSettings {
            shared: true,
            label: writer.into(),
            primary: Some(primary),
            update_finish_state: Some(primary),
        }),
        ..Default::default()
    }
}

/// Applies one call of a shared case; Err(code name) when the sidecar refused it.
async fn shared_call(
    c: &mut RunServiceClient<Channel>,
    id: &str,
    index: usize,
    logs: &mut HashMap<String, u64>,
    call: &Json,
    seen: &mut Seen,
) -> Result<(), String> {
    let code = |s: tonic::Status| code_name(s.code());
    let writer = call["writer"].as_str().expect("writer").to_owned();
    if call.get("join").is_some() {
        c.init(writer_init(id, &writer, false))
            .await
            .map_err(code)?;
    } else if let Some(data) = call.get("log") {
        let seq = logs.entry(writer.clone()).or_default();
        *seq += 1;
        let reply = c
            .log(LogRequest {
                run_id: id.into(),
                data: to_map(data),
                step: call.get("step").and_then(Json::as_i64),
                commit: call.get("commit").and_then(Json::as_bool),
                seq: *seq,
                writer_id: writer,
                ..Default::default()
            })
            .await
            .map_err(code)?
            .into_inner();
        for d in reply.dropped {
            seen.dropped.push((index, d.step, d.current_step));
        }
    } else if let Some(f) = call.get("finish") {
        c.finish(FinishRequest {
            run_id: id.into(),
            exit_code: f.get("exit_code").and_then(Json::as_i64).map(|e| e as i32),
            writer_id: writer,
        })
        .await
        .map_err(code)?;
    } else {
        panic!("unknown shared call {call}");
    }
    Ok(())
}

/// Runs one shared case on a fresh run; returns what differs from its expectation.
async fn run_shared_case(c: &mut RunServiceClient<Channel>, case: &Json) -> Vec<String> {
    let id = run_id(case["name"].as_str().expect("name"));
    for (i, w) in case["writers"]
        .as_array()
        .expect("writers")
        .iter()
        .enumerate()
    {
        c.init(writer_init(&id, w.as_str().expect("writer name"), i == 0))
            .await
            .expect("init");
    }
    let mut seen = Seen::default();
    let mut logs = HashMap::new();
    let mut problems = Vec::new();
    for (i, step) in case["calls"].as_array().expect("calls").iter().enumerate() {
        let result = shared_call(c, &id, i, &mut logs, step, &mut seen).await;
        let want = step.get("error").and_then(Json::as_str).map(str::to_owned);
        if result.clone().err() != want {
            problems.push(format!("call {i}: got {result:?}, expected error {want:?}"));
        }
        seen.steps.push(get(c, &id).await.run.expect("run").step);
    }
    let expect = &case["expect"];
    problems.extend(compare(c, &id, expect, &seen).await);
    problems.extend(compare_writers(c, &id, expect).await);
    problems
}

/// The run's state and each writer's step and state (README: shared_steps.json).
async fn compare_writers(
    c: &mut RunServiceClient<Channel>,
    id: &str,
    expect: &Json,
) -> Vec<String> {
    let got = get(c, id).await;
    let name = |s: i32| {
        runcore::semantics::state::state_name(
            runcore::proto::v1::RunState::try_from(s).unwrap_or_default(),
        )
    };
    let mut problems = Vec::new();
    if let Some(state) = expect.get("state").and_then(Json::as_str) {
        let have = name(got.run.as_ref().expect("run").state);
        if have != state {
            problems.push(format!("state {have}, expected {state}"));
        }
    }
    for (field, key) in [("writer_steps", "step"), ("writer_states", "state")] {
        for (writer, want) in expect
            .get(field)
            .and_then(Json::as_object)
            .into_iter()
            .flatten()
        {
            let Some(w) = got.writers.iter().find(|w| &w.id == writer) else {
                problems.push(format!("no writer {writer}"));
                continue;
            };
            let have = match key {
                "step" => Json::from(w.step),
                _ => Json::from(name(w.state)),
            };
            if &have != want {
                problems.push(format!("writer {writer} {key} {have}, expected {want}"));
            }
        }
    }
    problems
}

#[tokio::test]
async fn every_shared_vector_holds_on_the_sidecar() {
    let s = InProcess::start().await;
    let mut c = s.client().await;
    let path = vectors_dir().join(SHARED_FILE);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let doc: Json = serde_json::from_str(&text).expect("vector JSON");
    assert_eq!(
        doc["format"], SHARED_FORMAT,
        "{SHARED_FILE}: unknown format"
    );
    let mut failures = Vec::new();
    let cases = doc["cases"].as_array().expect("cases");
    for case in cases {
        for p in run_shared_case(&mut c, case).await {
            failures.push(format!("{SHARED_FILE} {}: {p}", case["name"]));
        }
    }
    assert!(cases.len() >= 8, "only {} cases found", cases.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
