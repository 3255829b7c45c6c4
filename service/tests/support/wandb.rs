//! A fake W&B server for the W&B backend's tests, written from the protocol's
//! public shapes: a real HTTP server on 127.0.0.1:0 (its own thread and runtime)
//! that answers GraphQL (`UpsertBucket`, with `summaryMetrics` for edits,
//! `CreateRunFiles`, `NotifyScriptableRunAlert`, `RunStoppedStatus`, and the
//! artifact protocol in [`artifacts`]), the file_stream endpoint and the
//! signed-URL PUTs it hands out. It records every request, checks each one's
//! shape (operation names and variables, basic auth as user `api`, file_stream
//! bodies and lines, offsets contiguous and never repeated, Content-MD5 and the
//! upload headers of PUTs) and keeps what W&B would show of each run. Anything
//! that breaks the protocol is a violation; every test asserts there are none.
//! It can be told to fail: a status for a while or for a number of requests (with
//! Retry-After), or to leave history uploads unanswered (a sidecar killed while
//! waiting for one).
//!
//! Also here: a sidecar started with `--backend wandb` against a fake, and
//! `runcore sync` to one.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use serde_json::{json, Value as Json};
use tokio::sync::Notify;

use super::{wait_for, Sidecar, BIN};

mod artifacts;
pub use self::artifacts::{ArtifactView, LinkView};

/// The API key the fake accepts.
pub const API_KEY: &str = "fake-wandb-key-0123456789abcdef";
/// The entity of a run upserted without one (the key's default entity).
pub const DEFAULT_ENTITY: &str = "fake-user";
/// The header the fake's CreateRunFiles asks uploads to carry.
const UPLOAD_HEADER: (&str, &str) = ("x-fake-upload", "signed");

const HISTORY: &str = "wandb-history.jsonl";
const EVENTS: &str = "wandb-events.jsonl";
const SUMMARY: &str = "wandb-summary.json";
const OUTPUT: &str = "output.log";

/// One request, as it arrived and was answered.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub at: Instant,
    pub method: String,
    pub path: String,
    /// The GraphQL operation, `file_stream` or `upload`.
    pub op: String,
    /// The run it was about (empty when unknown).
    pub run: String,
    pub body: Json,
    /// The status answered; 0 for a request left unanswered.
    pub status: u16,
}

/// What W&B has of one run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunView {
    pub entity: String,
    pub project: String,
    /// The variables of every UpsertBucket, in order.
    pub upserts: Vec<Json>,
    pub history: Vec<String>,
    pub events: Vec<String>,
    /// output.log lines (`<UTC time> <console line>`).
    pub output: Vec<String>,
    pub summary: Option<String>,
    /// (offset, lines) of each accepted history write, in order.
    pub history_writes: Vec<(u64, usize)>,
    pub preempting: bool,
    pub complete: Option<bool>,
    pub exitcode: Option<i64>,
    /// file_stream requests with nothing in them.
    pub heartbeats: usize,
    /// file_stream requests with and without `X-WANDB-USE-ASYNC-FILESTREAM: true`
    /// (the W&B SDK's shared mode: lines are appended, offsets not checked).
    pub async_requests: usize,
    pub sync_requests: usize,
    /// Uploaded content by name, and the names in PUT order.
    pub files: BTreeMap<String, Vec<u8>>,
    pub puts: Vec<String>,
    /// Names reported in file_stream's `uploaded`.
    pub reported: Vec<String>,
    /// Names CreateRunFiles was asked for.
    pub requested: BTreeSet<String>,
    /// (title, text, severity) of each alert.
    pub alerts: Vec<(String, String, String)>,
}

impl RunView {
    /// The history lines parsed.
    pub fn history_rows(&self) -> Vec<BTreeMap<String, runcore::proto::v1::Value>> {
        self.history
            .iter()
            .map(|l| runcore::value::parse_json_map(l).unwrap())
            .collect()
    }

    /// The config of the latest upsert, in W&B's `{key: {"value": v}}` form.
    pub fn config(&self) -> Json {
        let last = self.upserts.last().expect("the run was upserted");
        serde_json::from_str(last["config"].as_str().unwrap_or("{}")).unwrap()
    }
}

/// A failure to answer with, instead of handling requests.
#[derive(Debug, Clone)]
struct Rule {
    status: u16,
    retry_after: Option<String>,
    until: Option<Instant>,
    times: Option<usize>,
}

#[derive(Default)]
struct Inner {
    requests: Vec<Recorded>,
    violations: Vec<String>,
    runs: BTreeMap<String, RunView>,
    rules: VecDeque<Rule>,
    stopped: BTreeSet<String>,
    /// Leave history file_stream requests unanswered once this many were accepted.
    hang_after: Option<usize>,
    history_accepted: usize,
    hung: usize,
    artifacts: artifacts::State,
}

struct Shared {
    inner: Mutex<Inner>,
    base: String,
    release: Notify,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The fake server; it stops when dropped.
pub struct FakeWandb {
    pub url: String,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeWandb {
    pub fn start() -> Self {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        std_listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", std_listener.local_addr().unwrap());
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner::default()),
            base: url.clone(),
            release: Notify::new(),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let server = shared.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(serve(std_listener, server, stopped));
        });
        FakeWandb {
            url,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Answers every request with `status` for `duration`.
    pub fn fail_for(&self, duration: Duration, status: u16) {
        self.shared.lock().rules.push_back(Rule {
            status,
            retry_after: None,
            until: Some(Instant::now() + duration),
            times: None,
        });
    }

    /// Then answers the next `times` requests with `status` (and Retry-After).
    pub fn fail_times(&self, times: usize, status: u16, retry_after: Option<u64>) {
        self.shared.lock().rules.push_back(Rule {
            status,
            retry_after: retry_after.map(|s| s.to_string()),
            until: None,
            times: Some(times),
        });
    }

    /// Leaves file_stream requests with history unanswered once `n` were accepted.
    pub fn hang_history_after(&self, n: usize) {
        self.shared.lock().hang_after = Some(n);
    }

    /// Answers normally again; requests left hanging get a 503, unapplied.
    pub fn release(&self) {
        self.shared.lock().hang_after = None;
        self.shared.release.notify_waiters();
    }

    /// (history requests accepted, requests left hanging).
    pub fn history_progress(&self) -> (usize, usize) {
        let i = self.shared.lock();
        (i.history_accepted, i.hung)
    }

    /// Marks a run stopped (the Stop button of W&B's UI).
    pub fn stop_run(&self, run: &str) {
        self.shared.lock().stopped.insert(run.to_owned());
    }

    pub fn run(&self, run: &str) -> Option<RunView> {
        self.shared.lock().runs.get(run).cloned()
    }

    /// Every artifact version W&B has, in creation order.
    pub fn artifacts(&self) -> Vec<ArtifactView> {
        self.shared.lock().artifacts.list.clone()
    }

    pub fn links(&self) -> Vec<LinkView> {
        self.shared.lock().artifacts.links.clone()
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.lock().requests.clone()
    }

    pub fn violations(&self) -> Vec<String> {
        self.shared.lock().violations.clone()
    }

    /// Fails the test if any request broke the protocol.
    pub fn assert_clean(&self) {
        let v = self.violations();
        assert!(v.is_empty(), "protocol violations: {v:#?}");
    }

    /// Waits until `f` holds of run `run`; the view then.
    pub async fn wait_run(&self, run: &str, f: impl Fn(&RunView) -> bool) -> RunView {
        super::wait_for_async(|| async { self.run(run).filter(|v| f(v)) }).await
    }
}

impl Drop for FakeWandb {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let shared = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| handle(shared.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
            _ = &mut stop => return,
        }
    }
}

fn reply(status: u16, body: &Json, retry_after: Option<&str>) -> Response<Full<Bytes>> {
    let mut r = Response::builder()
        .status(status)
        .header("content-type", "application/json");
    if let Some(s) = retry_after {
        r = r.header("retry-after", s);
    }
    r.body(Full::new(Bytes::from(body.to_string()))).unwrap()
}

/// What a request came with.
struct Arrived {
    method: String,
    path: String,
    headers: hyper::HeaderMap,
    body: Bytes,
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let at = Instant::now();
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let headers = req.headers().clone();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let r = Arrived {
        method,
        path,
        headers,
        body,
    };
    let mut rec = Recorded {
        at,
        method: r.method.clone(),
        path: r.path.clone(),
        op: String::new(),
        run: String::new(),
        body: serde_json::from_slice(&r.body).unwrap_or(Json::Null),
        status: 0,
    };
    // Told to fail?
    let injected = {
        let mut i = shared.lock();
        loop {
            let Some(rule) = i.rules.front_mut() else {
                break None;
            };
            let over = rule.until.is_some_and(|u| Instant::now() >= u) || rule.times == Some(0);
            if over {
                i.rules.pop_front();
                continue;
            }
            if let Some(t) = rule.times.as_mut() {
                *t -= 1;
            }
            break Some(rule.clone());
        }
    };
    if let Some(rule) = injected {
        rec.op = "injected".into();
        rec.status = rule.status;
        shared.lock().requests.push(rec);
        return Ok(reply(
            rule.status,
            &json!({"error": "injected failure"}),
            rule.retry_after.as_deref(),
        ));
    }
    let (status, body) = route(&shared, &r, &mut rec).await;
    rec.status = status;
    shared.lock().requests.push(rec);
    Ok(reply(status, &body, None))
}

/// Checks HTTP basic auth: user `api`, the fake's key. Err: the status to answer.
fn check_auth(i: &mut Inner, r: &Arrived) -> Result<(), u16> {
    let Some(value) = r.headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        i.violations
            .push(format!("{} {}: no authorization header", r.method, r.path));
        return Err(401);
    };
    let decoded = value
        .strip_prefix("Basic ")
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    match decoded.as_deref().and_then(|d| d.split_once(':')) {
        Some(("api", key)) if key == API_KEY => Ok(()),
        Some(("api", _)) => Err(401),
        _ => {
            i.violations.push(format!(
                "{} {}: authorization is not HTTP basic with user \"api\"",
                r.method, r.path
            ));
            Err(401)
        }
    }
}

async fn route(shared: &Shared, r: &Arrived, rec: &mut Recorded) -> (u16, Json) {
    let segments: Vec<&str> = r.path.trim_start_matches('/').split('/').collect();
    match (r.method.as_str(), segments.as_slice()) {
        ("POST", ["graphql"]) => {
            let mut i = shared.lock();
            if let Err(status) = check_auth(&mut i, r) {
                return (status, json!({"errors": [{"message": "unauthorized"}]}));
            }
            graphql(&mut i, &shared.base, rec)
        }
        ("POST", ["files", entity, project, run, "file_stream"]) => {
            rec.op = "file_stream".into();
            rec.run = (*run).to_owned();
            {
                let mut i = shared.lock();
                if let Err(status) = check_auth(&mut i, r) {
                    return (status, json!({"error": "unauthorized"}));
                }
            }
            // Left unanswered: never applied.
            let hang = {
                let mut i = shared.lock();
                let has_history = rec.body["files"].get(HISTORY).is_some();
                let hang = has_history && i.hang_after.is_some_and(|n| i.history_accepted >= n);
                if hang {
                    i.hung += 1;
                }
                hang
            };
            if hang {
                shared.release.notified().await;
                return (503, json!({"error": "released"}));
            }
            let async_mode = r
                .headers
                .get("x-wandb-use-async-filestream")
                .and_then(|v| v.to_str().ok())
                == Some("true");
            let mut i = shared.lock();
            file_stream(&mut i, (entity, project, run), &rec.body, async_mode)
        }
        ("PUT", ["artifact-storage", id, name @ ..]) => {
            rec.op = "artifact-upload".into();
            let mut i = shared.lock();
            match artifacts::upload(&mut i, r, id, &name.join("/")) {
                Ok(()) => (200, Json::Null),
                Err(why) => {
                    i.violations.push(format!("PUT {}: {why}", r.path));
                    (400, json!({"error": why}))
                }
            }
        }
        ("PUT", ["storage", entity, project, run, name @ ..]) => {
            rec.op = "upload".into();
            rec.run = (*run).to_owned();
            let mut i = shared.lock();
            upload(&mut i, r, entity, project, run, &name.join("/"))
        }
        _ => {
            let mut i = shared.lock();
            i.violations
                .push(format!("unexpected request {} {}", r.method, r.path));
            (404, json!({"error": "not found"}))
        }
    }
}

/// The operation a GraphQL document declares (`mutation X(` / `query X(`).
fn operation_of(query: &str) -> Option<&str> {
    let rest = query
        .trim_start()
        .strip_prefix("mutation ")
        .or_else(|| query.trim_start().strip_prefix("query "))?;
    let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_'))?;
    Some(&rest[..end])
}

fn is_str(v: &Json) -> bool {
    v.is_string() && !v.as_str().unwrap_or_default().is_empty()
}

fn is_str_or_null(v: &Json) -> bool {
    v.is_null() || v.is_string()
}

fn graphql(i: &mut Inner, base: &str, rec: &mut Recorded) -> (u16, Json) {
    let body = rec.body.clone();
    let bad = |i: &mut Inner, why: String| {
        i.violations.push(format!("graphql: {why}"));
        (400, json!({"errors": [{"message": why}]}))
    };
    let (Some(query), Some(vars)) = (body["query"].as_str(), body["variables"].as_object()) else {
        return bad(i, format!("body is not {{query, variables}}: {body}"));
    };
    let Some(op) = operation_of(query) else {
        return bad(i, format!("no operation name in {query:?}"));
    };
    rec.op = op.to_owned();
    if let Some(name) = body.get("operationName").filter(|n| !n.is_null()) {
        if name != op {
            return bad(
                i,
                format!("operationName {name} but the document declares {op}"),
            );
        }
    }
    // Every variable sent is declared.
    for k in vars.keys() {
        if !query.contains(&format!("${k}:")) {
            return bad(i, format!("{op}: variable ${k} is not declared"));
        }
    }
    let v = |k: &str| vars.get(k).cloned().unwrap_or(Json::Null);
    match op {
        "UpsertBucket" => {
            if !query.contains("upsertBucket(input:") {
                return bad(
                    i,
                    "UpsertBucket does not call upsertBucket(input: ...)".into(),
                );
            }
            for k in ["name", "project"] {
                if !is_str(&v(k)) {
                    return bad(i, format!("UpsertBucket: {k} must be a non-empty string"));
                }
            }
            for k in [
                "entity",
                "displayName",
                "groupName",
                "jobType",
                "notes",
                "host",
                "program",
            ] {
                if !is_str_or_null(&v(k)) {
                    return bad(i, format!("UpsertBucket: {k} must be a string or null"));
                }
            }
            let tags_ok = v("tags").is_null()
                || v("tags")
                    .as_array()
                    .is_some_and(|t| t.iter().all(Json::is_string));
            if !tags_ok {
                return bad(i, "UpsertBucket: tags must be a list of strings".into());
            }
            if let Some(text) = v("config").as_str() {
                let Ok(Json::Object(config)) = serde_json::from_str::<Json>(text) else {
                    return bad(
                        i,
                        format!("UpsertBucket: config is not a JSON object: {text}"),
                    );
                };
                for (k, item) in &config {
                    let ok = item.as_object().is_some_and(|o| {
                        o.contains_key("value") && o.keys().all(|x| x == "value" || x == "desc")
                    });
                    if !ok {
                        return bad(
                            i,
                            format!(
                                "UpsertBucket: config key {k} is not {{\"value\": ...}}: {item}"
                            ),
                        );
                    }
                }
            } else if !v("config").is_null() {
                return bad(i, "UpsertBucket: config must be a JSON string".into());
            }
            // W&B's public API edits a finished run's summary this way.
            let summary = match v("summaryMetrics") {
                Json::Null => None,
                Json::String(text) if runcore::value::parse_json_map(&text).is_ok() => Some(text),
                other => {
                    return bad(
                        i,
                        format!(
                            "UpsertBucket: summaryMetrics is not a JSON object string: {other}"
                        ),
                    )
                }
            };
            let name = v("name").as_str().unwrap_or_default().to_owned();
            let project = v("project").as_str().unwrap_or_default().to_owned();
            let entity = v("entity")
                .as_str()
                .filter(|e| !e.is_empty())
                .unwrap_or(DEFAULT_ENTITY)
                .to_owned();
            rec.run.clone_from(&name);
            let run = i.runs.entry(name.clone()).or_default();
            let inserted = run.upserts.is_empty();
            if !inserted && (run.entity != entity || run.project != project) {
                let why = format!(
                    "UpsertBucket moved run {name} from {}/{} to {entity}/{project}",
                    run.entity, run.project
                );
                return bad(i, why);
            }
            run.entity.clone_from(&entity);
            run.project.clone_from(&project);
            run.upserts.push(Json::Object(vars.clone()));
            if summary.is_some() {
                run.summary = summary;
            }
            (
                200,
                json!({"data": {"upsertBucket": {
                    "bucket": {
                        "id": format!("run-{name}"),
                        "name": name,
                        "displayName": v("displayName"),
                        "project": {"id": format!("project-{project}"), "name": project,
                            "entity": {"id": format!("entity-{entity}"), "name": entity}},
                    },
                    "inserted": inserted,
                }}}),
            )
        }
        "CreateRunFiles" => {
            if !query.contains("createRunFiles(input:") {
                return bad(
                    i,
                    "CreateRunFiles does not call createRunFiles(input: ...)".into(),
                );
            }
            for k in ["entity", "project", "run"] {
                if !is_str(&v(k)) {
                    return bad(i, format!("CreateRunFiles: {k} must be a non-empty string"));
                }
            }
            let files: Vec<String> = v("files")
                .as_array()
                .map(|f| {
                    f.iter()
                        .filter_map(|x| x.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            if files.is_empty() || Some(files.len()) != v("files").as_array().map(Vec::len) {
                return bad(
                    i,
                    "CreateRunFiles: files must be a non-empty list of names".into(),
                );
            }
            let (entity, project, run) = (
                v("entity").as_str().unwrap_or_default().to_owned(),
                v("project").as_str().unwrap_or_default().to_owned(),
                v("run").as_str().unwrap_or_default().to_owned(),
            );
            rec.run.clone_from(&run);
            let Some(view) = i
                .runs
                .get_mut(&run)
                .filter(|x| x.entity == entity && x.project == project)
            else {
                return bad(
                    i,
                    format!("CreateRunFiles for {entity}/{project}/{run}, which was not upserted"),
                );
            };
            view.requested.extend(files.iter().cloned());
            let urls: Vec<Json> = files
                .iter()
                .map(|f| json!({"name": f, "uploadUrl": format!("{base}/storage/{entity}/{project}/{run}/{f}?signature=fake")}))
                .collect();
            (
                200,
                json!({"data": {"createRunFiles": {
                    "runID": format!("run-{run}"),
                    "uploadHeaders": [format!("{}:{}", UPLOAD_HEADER.0, UPLOAD_HEADER.1)],
                    "files": urls,
                }}}),
            )
        }
        "NotifyScriptableRunAlert" => {
            if !query.contains("notifyScriptableRunAlert(input:") {
                return bad(
                    i,
                    "NotifyScriptableRunAlert does not call notifyScriptableRunAlert(input: ...)"
                        .into(),
                );
            }
            for k in ["entityName", "projectName", "runName", "title"] {
                if !is_str(&v(k)) {
                    return bad(
                        i,
                        format!("NotifyScriptableRunAlert: {k} must be a non-empty string"),
                    );
                }
            }
            if !v("text").is_string() {
                return bad(i, "NotifyScriptableRunAlert: text must be a string".into());
            }
            let severity = v("severity").as_str().unwrap_or("INFO").to_owned();
            if !["INFO", "WARN", "ERROR"].contains(&severity.as_str()) {
                return bad(
                    i,
                    format!(
                        "NotifyScriptableRunAlert: severity {severity} is not an AlertSeverity"
                    ),
                );
            }
            let run = v("runName").as_str().unwrap_or_default().to_owned();
            rec.run.clone_from(&run);
            let Some(view) = i.runs.get_mut(&run) else {
                return bad(i, format!("alert for run {run}, which was not upserted"));
            };
            view.alerts.push((
                v("title").as_str().unwrap_or_default().to_owned(),
                v("text").as_str().unwrap_or_default().to_owned(),
                severity,
            ));
            (
                200,
                json!({"data": {"notifyScriptableRunAlert": {"success": true}}}),
            )
        }
        "RunStoppedStatus" => {
            if !query.contains("project(name:") || !query.contains("stopped") {
                return bad(
                    i,
                    "RunStoppedStatus does not ask project(name: ...) { run { stopped } }".into(),
                );
            }
            if !is_str(&v("runId")) || !is_str_or_null(&v("projectName")) {
                return bad(i, "RunStoppedStatus: runId and projectName".into());
            }
            let run = v("runId").as_str().unwrap_or_default().to_owned();
            rec.run.clone_from(&run);
            let stopped = i.stopped.contains(&run);
            (
                200,
                json!({"data": {"project": {"run": {"stopped": stopped}}}}),
            )
        }
        op if artifacts::OPS.contains(&op) => match artifacts::graphql(i, base, op, query, vars) {
            Ok(data) => (200, json!({ "data": data })),
            Err(why) => bad(i, format!("{op}: {why}")),
        },
        other => bad(i, format!("unknown operation {other}")),
    }
}

/// Checks a jsonl line: a JSON object (Python's NaN/Infinity allowed) with the
/// keys its file needs.
fn check_line(file: &str, line: &Json) -> Result<(), String> {
    let text = line
        .as_str()
        .ok_or_else(|| format!("{file}: a line is not a string: {line}"))?;
    if file == OUTPUT {
        // `2026-01-02T03:04:05.123456 text`: W&B's console shows the time.
        let stamped = text.len() > 27
            && text.as_bytes()[10] == b'T'
            && text.as_bytes()[26] == b' '
            && text[..4].bytes().all(|b| b.is_ascii_digit());
        return if stamped {
            Ok(())
        } else {
            Err(format!("{file}: a line lacks its UTC time prefix: {text}"))
        };
    }
    let map = runcore::value::parse_json_map(text).map_err(|e| format!("{file}: {e}: {text}"))?;
    let required: &[&str] = match file {
        HISTORY => &["_step", "_runtime", "_timestamp"],
        EVENTS => &["_runtime", "_timestamp"],
        _ => &[],
    };
    if let Some(k) = required
        .iter()
        .find(|k| map.get(**k).and_then(runcore::value::as_f64).is_none())
    {
        return Err(format!("{file}: a line lacks {k}: {text}"));
    }
    let reserved = ["_wandb", "_runtime", "_timestamp"];
    if let Some(k) = map
        .keys()
        .find(|k| file == EVENTS && !k.starts_with("system.") && !reserved.contains(&k.as_str()))
    {
        return Err(format!("{file}: key {k} is not a system.* metric"));
    }
    Ok(())
}

/// A file_stream request; `async_mode` (the shared-mode header): lines are appended
/// whatever their offsets, as several writers of one run send them.
fn file_stream(
    i: &mut Inner,
    (entity, project, run): (&str, &str, &str),
    body: &Json,
    async_mode: bool,
) -> (u16, Json) {
    let bad = |i: &mut Inner, why: String| {
        i.violations
            .push(format!("file_stream {entity}/{project}/{run}: {why}"));
        (400, json!({"error": why}))
    };
    let Some(obj) = body.as_object() else {
        return bad(i, format!("body is not a JSON object: {body}"));
    };
    if let Some(k) = obj.keys().find(|k| {
        ![
            "files",
            "complete",
            "exitcode",
            "preempting",
            "failed",
            "uploaded",
            "dropped",
        ]
        .contains(&k.as_str())
    }) {
        return bad(i, format!("unknown field {k}"));
    }
    match i.runs.get(run) {
        Some(v) if v.entity == entity && v.project == project => {}
        _ => {
            return bad(
                i,
                "the run was not upserted (or not in this entity/project)".into(),
            )
        }
    }
    // Check everything before applying anything.
    let files = match obj.get("files") {
        None => serde_json::Map::new(),
        Some(Json::Object(f)) => f.clone(),
        Some(other) => return bad(i, format!("files is not an object: {other}")),
    };
    let mut writes: Vec<(&str, u64, Vec<String>)> = Vec::new();
    for (name, chunk) in &files {
        let file = match name.as_str() {
            HISTORY => HISTORY,
            EVENTS => EVENTS,
            SUMMARY => SUMMARY,
            OUTPUT => OUTPUT,
            other => return bad(i, format!("unknown file {other}")),
        };
        let shape_ok = chunk
            .as_object()
            .is_some_and(|c| c.len() == 2 && c["offset"].is_u64() && c["content"].is_array());
        if !shape_ok {
            return bad(i, format!("{file} is not {{offset, content}}: {chunk}"));
        }
        let offset = chunk["offset"].as_u64().unwrap_or_default();
        let lines = chunk["content"].as_array().cloned().unwrap_or_default();
        if lines.is_empty() {
            return bad(i, format!("{file}: empty content"));
        }
        for l in &lines {
            if let Err(why) = check_line(file, l) {
                return bad(i, why);
            }
        }
        let view = &i.runs[run];
        let have = match file {
            HISTORY => view.history.len() as u64,
            EVENTS => view.events.len() as u64,
            OUTPUT => view.output.len() as u64,
            _ => 0,
        };
        if file == SUMMARY && (offset != 0 || lines.len() != 1) {
            return bad(
                i,
                format!(
                    "{file}: one line at offset 0, got {} at {offset}",
                    lines.len()
                ),
            );
        }
        if (file == HISTORY || file == EVENTS || file == OUTPUT) && offset != have && !async_mode {
            let kind = if offset < have {
                "repeats lines"
            } else {
                "leaves a gap"
            };
            // A real server would overwrite; the protocol says never to.
            i.violations.push(format!(
                "file_stream {run}: {file} offset {offset} {kind} (the server has {have} lines)"
            ));
        }
        let text = lines
            .iter()
            .filter_map(|l| l.as_str().map(str::to_owned))
            .collect();
        writes.push((file, offset, text));
    }
    for (k, is_type) in [
        ("complete", Json::is_boolean as fn(&Json) -> bool),
        ("failed", Json::is_boolean),
        ("preempting", Json::is_boolean),
        ("exitcode", Json::is_i64),
        ("dropped", Json::is_i64),
    ] {
        if let Some(v) = obj.get(k) {
            if !is_type(v) {
                return bad(i, format!("{k} has the wrong type: {v}"));
            }
        }
    }
    if obj.get("complete") == Some(&json!(true)) && !obj.contains_key("exitcode") {
        return bad(i, "complete without exitcode".into());
    }
    let uploaded: Vec<String> = match obj.get("uploaded") {
        None => Vec::new(),
        Some(Json::Array(a)) if a.iter().all(Json::is_string) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_owned))
            .collect(),
        Some(other) => return bad(i, format!("uploaded is not a list of names: {other}")),
    };
    if let Some(n) = uploaded
        .iter()
        .find(|n| !i.runs[run].files.contains_key(*n))
    {
        let why = format!("uploaded names {n}, which was never PUT");
        return bad(i, why);
    }
    // Apply.
    let has_history = files.contains_key(HISTORY);
    let view = i.runs.get_mut(run).unwrap();
    for (file, offset, lines) in writes {
        let target = match file {
            HISTORY => {
                view.history_writes.push((offset, lines.len()));
                &mut view.history
            }
            EVENTS => &mut view.events,
            OUTPUT => &mut view.output,
            SUMMARY => {
                view.summary = lines.into_iter().next();
                continue;
            }
            _ => continue,
        };
        let offset = if async_mode {
            target.len() as u64
        } else {
            offset
        };
        for (k, line) in lines.into_iter().enumerate() {
            let at = offset as usize + k;
            if at < target.len() {
                target[at] = line;
            } else {
                target.resize(at, String::new());
                target.push(line);
            }
        }
    }
    if files.is_empty()
        && uploaded.is_empty()
        && obj.get("complete") != Some(&json!(true))
        && obj.get("preempting").is_none()
    {
        view.heartbeats += 1;
    }
    if async_mode {
        view.async_requests += 1;
    } else {
        view.sync_requests += 1;
    }
    view.reported.extend(uploaded);
    if obj.get("preempting") == Some(&json!(true)) {
        view.preempting = true;
    }
    if let Some(c) = obj.get("complete").and_then(Json::as_bool) {
        view.complete = Some(c);
        if c {
            view.exitcode = obj.get("exitcode").and_then(Json::as_i64);
        }
    }
    if has_history {
        i.history_accepted += 1;
    }
    (200, json!({"exitcode": null, "limits": {}}))
}

fn upload(
    i: &mut Inner,
    r: &Arrived,
    entity: &str,
    project: &str,
    run: &str,
    name: &str,
) -> (u16, Json) {
    let bad = |i: &mut Inner, why: String| {
        i.violations.push(format!("PUT {}: {why}", r.path));
        (400, json!({"error": why}))
    };
    if r.headers.contains_key("authorization") {
        return bad(
            i,
            "a signed-URL upload carries the API key's authorization".into(),
        );
    }
    if r.headers.get(UPLOAD_HEADER.0).and_then(|v| v.to_str().ok()) != Some(UPLOAD_HEADER.1) {
        let why = format!(
            "the uploadHeaders from CreateRunFiles ({}) were not sent",
            UPLOAD_HEADER.0
        );
        return bad(i, why);
    }
    let md5 = base64::engine::general_purpose::STANDARD.encode(md5::compute(&r.body).0);
    match r.headers.get("content-md5").and_then(|v| v.to_str().ok()) {
        Some(m) if m == md5 => {}
        Some(m) => return bad(i, format!("Content-MD5 {m} but the body's is {md5}")),
        None => return bad(i, "no Content-MD5".into()),
    }
    let known = i
        .runs
        .get(run)
        .is_some_and(|v| v.entity == entity && v.project == project && v.requested.contains(name));
    if !known {
        return bad(
            i,
            format!("{name} was not asked for in CreateRunFiles of this run"),
        );
    }
    let view = i.runs.get_mut(run).unwrap();
    view.files.insert(name.to_owned(), r.body.to_vec());
    view.puts.push(name.to_owned());
    (200, Json::Null)
}

// ---------------------------------------------------------------------------------
// The sidecar and `runcore sync` against a fake.

/// A sidecar forwarding to `fake` with API key `key`, on a unix socket (so it may
/// save any file), its data under `root`.
pub fn sidecar_in(root: &Path, fake: &FakeWandb, key: &str, extra: &[&str]) -> Sidecar {
    let mut args = vec!["--backend", "wandb", "--wandb-base-url", fake.url.as_str()];
    args.extend_from_slice(extra);
    Sidecar::start_in_env(
        root,
        super::Transport::Unix,
        &args,
        &[("WANDB_API_KEY", key)],
    )
}

/// A sidecar forwarding to `fake` on a fresh temp dir.
pub fn sidecar(fake: &FakeWandb, extra: &[&str]) -> Sidecar {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut s = sidecar_in(tmp.path(), fake, API_KEY, extra);
    s._tmp = Some(tmp);
    s
}

/// `runcore sync DIR --backend wandb` to `fake`.
pub fn sync(dir: &Path, fake: &FakeWandb) -> Output {
    Command::new(BIN)
        .arg("sync")
        .arg(dir)
        .args(["--backend", "wandb", "--wandb-base-url", &fake.url])
        .env("WANDB_API_KEY", API_KEY)
        .env("RUNCORE_LOG", "warn")
        .output()
        .expect("run runcore sync")
}

/// Copies a run directory, leaving out its delivery cursors (`forward/`): the
/// run as written offline.
pub fn copy_run_offline(from: &Path, to: &Path) {
    fn copy(from: &Path, to: &Path, top: bool) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap().flatten() {
            let target: PathBuf = to.join(entry.file_name());
            // The forwarder's cursor, and the chart index the sidecar's indexing
            // thread may still be writing (derived, not part of the run).
            if top && (entry.file_name() == "forward" || entry.file_name() == ".ui-index") {
                continue;
            }
            if entry.file_type().unwrap().is_dir() {
                copy(&entry.path(), &target, false);
            } else {
                std::fs::copy(entry.path(), &target).unwrap();
            }
        }
    }
    copy(from, to, true);
}
