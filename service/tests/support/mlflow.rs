//! A real MLflow tracking server for the MLflow backend's tests, and reads of its
//! REST API. The server comes from the venv `scripts/mlflow-env.sh` makes; its path
//! is in RUNCORE_MLFLOW (scripts/test.sh sets it).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};

pub struct MlflowServer {
    child: Option<Child>,
    pub port: u16,
    pub dir: PathBuf,
}

fn mlflow_bin() -> String {
    std::env::var("RUNCORE_MLFLOW").unwrap_or_else(|_| {
        panic!("RUNCORE_MLFLOW is not set: run the tests with scripts/test.sh, or set it to the `mlflow` that scripts/mlflow-env.sh prints")
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl MlflowServer {
    /// Starts a server on a free loopback port with its store under `dir`.
    pub fn start(dir: &Path) -> Self {
        let mut s = MlflowServer {
            child: None,
            port: free_port(),
            dir: dir.to_owned(),
        };
        s.spawn();
        s
    }

    /// One server shared by the tests of a test binary (it stops when they exit).
    pub fn shared() -> &'static MlflowServer {
        static SERVER: OnceLock<MlflowServer> = OnceLock::new();
        SERVER.get_or_init(|| {
            let dir = std::env::temp_dir().join(format!("runcore-mlflow-{}", std::process::id()));
            MlflowServer::start(&dir)
        })
    }

    fn spawn(&mut self) {
        use std::os::unix::process::CommandExt;
        std::fs::create_dir_all(&self.dir).unwrap();
        // A watchdog shell in its own process group: when the test process exits,
        // it takes the server (and its workers) down with it.
        let script = format!(
            "trap 'kill -TERM -- -$$ 2>/dev/null' EXIT; \
             MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false \"{bin}\" server \
               --backend-store-uri sqlite:///{dir}/mlflow.db --artifacts-destination {dir}/artifacts \
               --host 127.0.0.1 --port {port} --workers 1 >>{dir}/server.log 2>&1 & \
             srv=$!; while kill -0 {me} 2>/dev/null && kill -0 $srv 2>/dev/null; do sleep 0.5; done",
            bin = mlflow_bin(),
            dir = self.dir.display(),
            port = self.port,
            me = std::process::id(),
        );
        let child = Command::new("bash")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start mlflow");
        self.child = Some(child);
        let url = format!("{}/health", self.uri());
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let ok = Command::new("curl")
                .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", &url])
                .output()
                .map(|o| o.stdout == b"200")
                .unwrap_or(false);
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "mlflow did not start; see {}/server.log",
                self.dir.display()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    pub fn uri(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops the server (its whole process group).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", "--", &format!("-{}", c.id())])
                .status();
            let _ = c.wait();
            // Wait until the port is free again.
            let deadline = Instant::now() + Duration::from_secs(30);
            while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// Starts it again on the same port and store.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for MlflowServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A client of the MLflow REST API.
pub struct Rest {
    base: String,
    http: reqwest::Client,
}

impl Rest {
    pub fn new(uri: &str) -> Self {
        Rest {
            base: uri.to_owned(),
            http: runcore::backend::http_client(Duration::from_secs(30)),
        }
    }

    pub async fn get(&self, path: &str, query: &[(&str, &str)]) -> Json {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .query(query)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.unwrap()
    }

    pub async fn post(&self, path: &str, body: Json) -> Json {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "POST {path}: {}", r.status());
        r.json().await.unwrap()
    }

    /// The MLflow run that runcore made for `run_id` in `experiment`.
    pub async fn find_run(&self, experiment: &str, run_id: &str) -> Option<Json> {
        let runs = self.tagged_runs(experiment, run_id).await?;
        assert!(
            runs.len() <= 1,
            "{} MLflow runs for one runcore run",
            runs.len()
        );
        runs.first().cloned()
    }

    /// Every live MLflow run tagged with runcore id `run_id` in `experiment` (None
    /// while the experiment does not exist).
    pub async fn tagged_runs(&self, experiment: &str, run_id: &str) -> Option<Vec<Json>> {
        let exp = self
            .http
            .get(format!(
                "{}/api/2.0/mlflow/experiments/get-by-name",
                self.base
            ))
            .query(&[("experiment_name", experiment)])
            .send()
            .await
            .ok()?;
        if !exp.status().is_success() {
            return None;
        }
        let exp: Json = exp.json().await.ok()?;
        let id = exp["experiment"]["experiment_id"].as_str()?.to_owned();
        let found = self
            .post(
                "/api/2.0/mlflow/runs/search",
                json!({"experiment_ids": [id], "filter": format!("tags.`runcore.run_id` = '{run_id}'")}),
            )
            .await;
        Some(found["runs"].as_array().cloned().unwrap_or_default())
    }

    /// Every (step, value) of a metric, in the order MLflow returns them.
    pub async fn history(&self, mlflow_run: &str, key: &str) -> Vec<(i64, f64)> {
        let h = self
            .get(
                "/api/2.0/mlflow/metrics/get-history",
                &[
                    ("run_id", mlflow_run),
                    ("metric_key", key),
                    ("max_results", "25000"),
                ],
            )
            .await;
        let mut out: Vec<(i64, f64)> = h["metrics"]
            .as_array()
            .map(|m| {
                m.iter()
                    .map(|p| {
                        (
                            p["step"].as_i64().unwrap_or(0),
                            p["value"].as_f64().unwrap_or(f64::NAN),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.sort_by_key(|p| p.0);
        out
    }

    pub async fn artifacts(&self, mlflow_run: &str, path: &str) -> Vec<String> {
        let l = self
            .get(
                "/api/2.0/mlflow/artifacts/list",
                &[("run_id", mlflow_run), ("path", path)],
            )
            .await;
        l["files"]
            .as_array()
            .map(|f| {
                f.iter()
                    .filter_map(|x| x["path"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub async fn artifact(&self, mlflow_run: &Json, path: &str) -> String {
        match self.try_artifact(mlflow_run, path).await {
            Ok(text) => text,
            Err(e) => panic!("artifact {path}: {e}"),
        }
    }

    /// An artifact's text, or why it could not be read: for a poll while the
    /// sidecar may still be uploading it (MLflow can cut a read short while the
    /// file is replaced).
    pub async fn try_artifact(&self, mlflow_run: &Json, path: &str) -> Result<String, String> {
        let uri = mlflow_run["info"]["artifact_uri"].as_str().unwrap();
        let root = uri
            .trim_start_matches("mlflow-artifacts:")
            .trim_start_matches('/');
        let r = self
            .http
            .get(format!(
                "{}/api/2.0/mlflow-artifacts/artifacts/{root}/{path}",
                self.base
            ))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !r.status().is_success() {
            return Err(r.status().to_string());
        }
        r.text().await.map_err(|e| e.to_string())
    }
}

/// A tag's value of an MLflow run.
pub fn tag(run: &Json, key: &str) -> Option<String> {
    run["data"]["tags"]
        .as_array()?
        .iter()
        .find(|t| t["key"] == key)
        .and_then(|t| t["value"].as_str().map(str::to_owned))
}

/// A param's value of an MLflow run.
pub fn param(run: &Json, key: &str) -> Option<String> {
    run["data"]["params"]
        .as_array()?
        .iter()
        .find(|t| t["key"] == key)
        .and_then(|t| t["value"].as_str().map(str::to_owned))
}
