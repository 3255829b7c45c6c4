//! The gRPC server: binds the listener, serves RunService, health and reflection,
//! and drains on shutdown.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::{TcpListener, UnixStream};
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};
use tokio_stream::StreamExt;
use tonic::codegen::http;
use tonic::transport::server::{Connected, UdsConnectInfo};
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic_health::pb::health_server::{Health, HealthServer};

use crate::auth::AuthLayer;

use crate::api::{status, Api};
use crate::config::{ListenAddr, ServeConfig};
use crate::h2front::H2Front;
use crate::listen::{BindError, Listener};
use crate::liveness::{self, Process};
use crate::net::{Backoff, Idle};
use crate::proto::v1::RunState;
use crate::proto::{self, v1::run_service_server::RunServiceServer};
use crate::runs::Runs;
use crate::shutdown::Shutdown;
use crate::store::write_atomic;
use crate::ui::index::finished::FinishedIndexer;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Listen(#[from] BindError),
    #[error(transparent)]
    DataDirLock(#[from] crate::datadir::LockError),
    #[error("data dir {path}: {source}")]
    DataDir { path: PathBuf, source: io::Error },
    #[error("writing the port file: {0}")]
    PortFile(#[from] crate::store::StoreError),
    #[error("recovering runs: {0}")]
    Recover(#[from] crate::runs::RegistryError),
    #[error("reflection service: {0}")]
    Reflection(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("--socket-group {0}: no such group")]
    NoGroup(String),
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// How long shutdown lets in-flight requests finish before it drops connections.
const CONNECTION_DRAIN: std::time::Duration = std::time::Duration::from_secs(1);

/// The part of the shutdown grace kept for flushing runs after clients had their
/// chance to finish them.
const FLUSH_RESERVE: std::time::Duration = std::time::Duration::from_secs(3);

impl Connected for H2Front<UnixStream> {
    type ConnectInfo = UdsConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.get_ref().connect_info()
    }
}

/// Creates the data dir and locks it for this sidecar (shared with others with
/// `--shared-data-dir`, each run then locked by the sidecar that has it open);
/// returns its absolute path, which run directories are reported in.
fn prepare_data_dir(
    dir: &Path,
    shared: bool,
) -> Result<(PathBuf, crate::datadir::DataDirLock), ServeError> {
    let err = |source| ServeError::DataDir {
        path: dir.to_owned(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    let dir = dir.canonicalize().map_err(err)?;
    let lock = crate::datadir::lock(&dir, shared)?;
    Ok((dir, lock))
}

/// Rewrites tonic's statuses for a unary request it could not read (sent as a
/// headers-only response): OUT_OF_RANGE for an oversized one becomes
/// RESOURCE_EXHAUSTED naming the limit, INTERNAL for one that is not protobuf
/// becomes INVALID_ARGUMENT.
fn fix_too_large<B>(limit: usize) -> impl Fn(http::Response<B>) -> http::Response<B> + Clone {
    move |mut resp| {
        let headers = resp.headers_mut();
        let internal = headers.get("grpc-status").is_some_and(|v| v == "13");
        let undecodable = headers
            .get("grpc-message")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|m| status::is_decode_error(tonic::Code::Internal, m));
        if internal && undecodable {
            headers.insert("grpc-status", http::HeaderValue::from_static("3"));
            headers.insert(
                "grpc-message",
                http::HeaderValue::from_static(status::DECODE_MESSAGE),
            );
        }
        let out_of_range = headers.get("grpc-status").is_some_and(|v| v == "11");
        let too_large = headers
            .get("grpc-message")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|m| {
                m.contains("message%20length%20too%20large")
                    || m.contains("message length too large")
            });
        if out_of_range && too_large {
            headers.insert("grpc-status", http::HeaderValue::from_static("8"));
            if let Ok(v) = http::HeaderValue::from_str(&status::too_large_message(limit)) {
                headers.insert("grpc-message", v);
            }
        }
        resp
    }
}

/// Resolves when process `pid` exits (never, without one).
async fn parent_exit(pid: Option<u32>) {
    let Some(parent) = pid.and_then(Process::find) else {
        return std::future::pending().await;
    };
    let mut check = tokio::time::interval(liveness::PID_CHECK);
    while parent.alive() {
        check.tick().await;
    }
}

/// Gives open runs up to `grace` to be finished by their clients (a pod being
/// terminated: the training process is told too, and finishes its run).
async fn wait_for_open_runs(runs: &Runs, grace: std::time::Duration) {
    let open = runs.open_runs().len();
    if open == 0 {
        return;
    }
    tracing::info!(
        "waiting up to {:.1} s for {open} open run(s) to finish; runs still open then are marked killed",
        grace.as_secs_f64()
    );
    let deadline = tokio::time::Instant::now() + grace;
    let mut check = tokio::time::interval(std::time::Duration::from_millis(50));
    while tokio::time::Instant::now() < deadline && !runs.open_runs().is_empty() {
        check.tick().await;
    }
}

/// Serves until `signal` resolves (or the parent process exits), then stops:
/// open runs get the grace period to be finished by their clients and are then
/// marked killed (crashed, when the parent exited), streams are ended, and every
/// run is flushed and synced.
pub async fn serve(
    listener: Listener,
    config: ServeConfig,
    signal: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let mut config = config;
    let (data_dir, _data_dir_lock) = prepare_data_dir(&config.data_dir, config.shared_data_dir)?;
    config.data_dir = data_dir;
    let config = Arc::new(config);
    let mut shutdown = Shutdown::new();
    let ui_listener = bind_ui(&config).await?;
    let finished = start_finished_indexer(&config);
    let ended = finished.as_ref().map(FinishedIndexer::sender);
    let runs = Runs::start(config.clone(), shutdown.token(), ended).await?;
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<RunServiceServer<Api>>().await;
    let watched = runs.clone();
    let watchdog = tokio::spawn(watch_wedged(
        move || watched.wedged(crate::limits::WEDGED_AFTER),
        health.clone(),
    ));
    let addr = listener.local_addr();
    if let Some(port_file) = &config.port_file {
        write_atomic(port_file, format!("{addr}\n").as_bytes(), false)?;
    }
    tracing::info!(%addr, data_dir = %config.data_dir.display(), "runcore serving");

    let wandb_addr = spawn_wandb(&config, &runs, &shutdown).await?;
    let mut stop = shutdown.token();
    let stopping = async move { stop.stopping().await };
    let mut server = spawn_grpc(&config, runs.clone(), health_service, listener, stopping)?;
    let ui = ui_listener.map(|l| spawn_ui(l, &config, shutdown.token()));
    let parent_gone = tokio::select! {
        _ = signal => false,
        _ = parent_exit(config.parent_pid) => true,
    };
    watchdog.abort();
    // Runs that end from now on are left to the UI.
    finished.iter().for_each(FinishedIndexer::stop);
    health.set_not_serving::<RunServiceServer<Api>>().await;
    // One deadline for the whole stop, so that a pod's termination grace period can
    // match --shutdown-grace: clients get all but a reserve for the final flush.
    let grace = config.shutdown_grace;
    let deadline = tokio::time::Instant::now() + grace;
    let reserve = (grace / 5).min(FLUSH_RESERVE);
    // A run that does not answer by then is left as it is (wedged): its log
    // holds every acknowledged record and the next start recovers it.
    let end_by = deadline - reserve / 2;
    if parent_gone {
        tracing::warn!("the parent process exited: ending open runs as crashed");
        runs.end_open(RunState::Crashed, end_by).await;
    } else {
        wait_for_open_runs(&runs, grace - reserve).await;
        runs.end_open(RunState::Killed, end_by).await;
    }
    tracing::info!("shutting down: ending streams and flushing runs");
    runs.close();
    drop(runs);
    shutdown.signal();
    let result = drain(&mut server, deadline).await;
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    if !shutdown
        .wait(left.max(std::time::Duration::from_millis(100)))
        .await
    {
        tracing::warn!("some runs did not finish flushing within the grace period; their logs hold every acknowledged record");
    }
    if let Some(finished) = finished {
        finished.shut_down(deadline).await;
    }
    if let Some(ui) = ui {
        // Past the grace period a download still in flight is cut off.
        ui.abort();
    }
    remove_sockets([Some(&addr), wandb_addr.as_ref()]);
    tracing::info!("stopped");
    result
}

/// Removes the unix sockets among the listeners' addresses.
fn remove_sockets(addrs: [Option<&ListenAddr>; 2]) {
    for a in addrs.into_iter().flatten() {
        if let ListenAddr::Unix(path) = a {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Starts the W&B service-protocol listener when `--wandb-listen` asks for one;
/// returns its bound address.
async fn spawn_wandb(
    config: &ServeConfig,
    runs: &Arc<Runs>,
    shutdown: &Shutdown,
) -> Result<Option<ListenAddr>, ServeError> {
    let Some(addr) = &config.wandb_listen else {
        return Ok(None);
    };
    let listener = Listener::bind(addr, config.socket_group.as_deref()).await?;
    let bound = listener.local_addr();
    if let Some(port_file) = &config.wandb_port_file {
        write_atomic(port_file, format!("{bound}\n").as_bytes(), false)?;
    }
    tracing::info!(addr = %bound, "serving the W&B service protocol (WANDB_SERVICE={})", crate::wandb_service::service_token(&bound, std::process::id()));
    let settings = crate::wandb_service::listener::Settings {
        max_message_bytes: config.max_message_bytes,
        heartbeat: (config.client_timeout / 4).clamp(
            std::time::Duration::from_millis(500),
            std::time::Duration::from_secs(10),
        ),
        finish_timeout: config.finish_timeout,
    };
    tokio::spawn(crate::wandb_service::serve(
        listener,
        runs.clone(),
        settings,
        shutdown.token(),
    ));
    Ok(Some(bound))
}

/// Binds the web UI's listener when `--ui-listen` asks for one.
async fn bind_ui(config: &ServeConfig) -> Result<Option<tokio::net::TcpListener>, ServeError> {
    let Some(addr) = config.ui_listen else {
        return Ok(None);
    };
    let listener = crate::ui::bind(addr)
        .await
        .map_err(|source| BindError::Bind {
            addr: crate::ui::url(addr),
            source,
        })?;
    Ok(Some(listener))
}

/// Says NOT_SERVING while a run is wedged (`wedged` names the runs whose actor has
/// been on one request for longer than `limits::WEDGED_AFTER`), SERVING again once
/// none is. Checked every second.
async fn watch_wedged(
    wedged: impl Fn() -> Vec<String>,
    health: tonic_health::server::HealthReporter,
) {
    let mut check = tokio::time::interval(std::time::Duration::from_secs(1));
    let mut serving = true;
    loop {
        check.tick().await;
        let wedged = wedged();
        if wedged.is_empty() != serving {
            serving = wedged.is_empty();
            if serving {
                tracing::info!("no run is wedged any more: SERVING");
                health.set_serving::<RunServiceServer<Api>>().await;
            } else {
                tracing::error!(runs = ?wedged, "a run has been on one request for over {:?}: NOT_SERVING", crate::limits::WEDGED_AFTER);
                health.set_not_serving::<RunServiceServer<Api>>().await;
            }
        }
    }
}

/// Serves the gRPC services (RunService, health, reflection), behind the auth
/// layer, on `listener` until `stopping` resolves.
fn spawn_grpc(
    config: &ServeConfig,
    runs: Arc<Runs>,
    health_service: HealthServer<impl Health>,
    listener: Listener,
    stopping: impl Future<Output = ()> + Send + 'static,
) -> Result<tokio::task::JoinHandle<Result<(), tonic::transport::Error>>, ServeError> {
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| ServeError::Reflection(e.to_string()))?;
    let limit = config.max_message_bytes;
    let inflight = crate::inflight::InflightLayer::new(runs.budget().clone());
    let api = RunServiceServer::new(Api::new(runs, limit))
        .max_decoding_message_size(limit)
        .max_encoding_message_size(usize::MAX);
    // A live client answers keepalive pings, so its connection is never idle;
    // one that is gone (or never spoke HTTP/2) is closed by the idle timeout.
    let idle = config.idle_timeout;
    let mut builder = Server::builder()
        .http2_keepalive_interval(Some(idle / 3))
        .http2_keepalive_timeout(Some(idle / 3));
    if let Some((cert, key)) = &config.tls {
        let read = |p: &PathBuf| {
            std::fs::read(p).map_err(|source| ServeError::Tls(format!("{}: {source}", p.display())))
        };
        let identity = Identity::from_pem(read(cert)?, read(key)?);
        builder = builder
            .tls_config(ServerTlsConfig::new().identity(identity))
            .map_err(|e| ServeError::Tls(e.to_string()))?;
    }
    let router = builder
        .layer(AuthLayer::new(config.auth_token.clone()))
        .layer(tower::util::MapResponseLayer::new(fix_too_large(limit)))
        .layer(inflight)
        .add_service(health_service)
        .add_service(reflection)
        .add_service(api);
    Ok(tokio::spawn(async move {
        match listener {
            Listener::Tcp(l) => {
                // Small acks must not wait for Nagle: tonic sets no TCP_NODELAY on
                // streams it did not accept itself.
                let incoming = Backoff::new(TcpListenerStream::new(l)).map(move |s| {
                    s.map(|s| {
                        let _ = s.set_nodelay(true);
                        Idle::new(s, idle)
                    })
                });
                router
                    .serve_with_incoming_shutdown(incoming, stopping)
                    .await
            }
            Listener::Unix(l, _) => {
                // grpc C-core, grpc-java and grpc-swift send the socket path as
                // :authority, which the HTTP/2 layer refuses: the front rewrites it.
                let incoming = Backoff::new(UnixListenerStream::new(l))
                    .map(move |s| s.map(|s| Idle::new(H2Front::new(s), idle)));
                router
                    .serve_with_incoming_shutdown(incoming, stopping)
                    .await
            }
        }
    }))
}

/// The thread indexing finished runs for the web UI, unless
/// `--index-finished-runs false`.
fn start_finished_indexer(config: &ServeConfig) -> Option<FinishedIndexer> {
    if !config.index_finished_runs {
        return None;
    }
    FinishedIndexer::start(crate::ui::index::background::STEP_BYTES)
        .map_err(|e| tracing::warn!("finished runs are not indexed for the UI (starting its thread: {e}); `runcore ui` indexes a run when it is opened"))
        .ok()
}

/// Serves the web UI over the sidecar's data dir until shutdown; the task holds
/// `token` until the UI has stopped.
fn spawn_ui(
    listener: TcpListener,
    config: &ServeConfig,
    token: crate::shutdown::ShutdownToken,
) -> tokio::task::JoinHandle<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(url = %crate::ui::url(addr), "web UI serving");
    }
    let data_dir = config.data_dir.clone();
    let auth = config.auth_token.clone();
    tokio::spawn(async move {
        let mut stop = token.clone();
        let stopping = async move { stop.stopping().await };
        if let Err(e) = crate::ui::serve(listener, data_dir, auth, stopping).await {
            tracing::error!("web UI stopped: {e}");
        }
        drop(token);
    })
}

/// tonic's graceful stop also waits for idle client connections to close, which
/// clients need not do: in-flight requests get a short drain, then connections
/// are dropped (their runs are flushed either way).
async fn drain(
    server: &mut tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
    deadline: tokio::time::Instant,
) -> Result<(), ServeError> {
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    match tokio::time::timeout(left.min(CONNECTION_DRAIN), &mut *server).await {
        Ok(Ok(r)) => r.map_err(ServeError::from),
        Ok(Err(_)) => Ok(()),
        Err(_) => {
            tracing::debug!("closing connections still open after the drain");
            server.abort();
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use tonic::server::NamedService;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_server::Health;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::server::{HealthReporter, HealthService};

    use super::*;

    async fn status(reporter: &HealthReporter) -> ServingStatus {
        let service = HealthService::from_health_reporter(reporter.clone());
        let request = tonic::Request::new(HealthCheckRequest {
            service: <RunServiceServer<Api> as NamedService>::NAME.into(),
        });
        let reply = service.check(request).await.expect("health check");
        reply.into_inner().status()
    }

    /// The watchdog turns health NOT_SERVING within a check of a run being named
    /// wedged, and SERVING again once none is.
    #[tokio::test(start_paused = true)]
    async fn health_follows_whether_a_run_is_wedged() {
        let reporter = HealthReporter::new();
        reporter.set_serving::<RunServiceServer<Api>>().await;
        let wedged: Arc<Mutex<Vec<String>>> = Arc::default();
        let source = wedged.clone();
        let watchdog = tokio::spawn(watch_wedged(
            move || source.lock().unwrap().clone(),
            reporter.clone(),
        ));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(status(&reporter).await, ServingStatus::Serving);

        wedged.lock().unwrap().push("stuck".into());
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(status(&reporter).await, ServingStatus::NotServing);

        wedged.lock().unwrap().clear();
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(status(&reporter).await, ServingStatus::Serving);
        watchdog.abort();
    }
}
