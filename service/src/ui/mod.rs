//! The web UI: `runcore ui`, or `runcore serve --ui-listen`, serves pages of
//! charts and tables over the local store, read-only (its only writes are its own
//! chart index, [`index`]).
//!
//! - [`config`]: `runcore ui` flags and the listen rule shared with `serve`.
//! - [`routes`]: the HTTP routes (axum, on the caller's tokio runtime): pages,
//!   the JSON API they use (docs/UI.md), downloads, assets; [`auth`] in front.
//! - [`reader`]: projects, runs, config, summary, alerts, files, output from the
//!   store's files; [`artifacts`]: the versions a run logged and used, with
//!   lineage; [`media`]: its images, tables and plots, and table pages.
//! - [`index`]: per-run column files of every numeric history and system key,
//!   brought up to date incrementally; [`downsample`] reduces a series to a
//!   chart's pixel width.
//! - [`assets`]: the HTML, scripts and chart library built into the binary.
//! - [`error`]: the UI's errors and the one place they become HTTP responses.

pub mod artifacts;
pub mod assets;
mod auth;
pub mod config;
pub mod downsample;
pub mod error;
pub mod index;
pub mod media;
pub mod reader;
mod routes;
pub mod sections;

use std::future::Future;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;

pub use config::{UiArgs, UiConfig};

use crate::env::Secret;

/// What the routes share.
pub struct UiState {
    /// The local store shown.
    pub data_dir: PathBuf,
    /// The token requests must carry; None on loopback without one.
    pub token: Option<Secret>,
    /// The bound address (its port names the cookie; its IP is an allowed Host).
    pub listen: SocketAddr,
    /// Chart axes kept in memory between requests.
    pub axes: Arc<index::AxisCache>,
    /// Big runs' indexes being built off the request path, and their previews.
    pub indexer: Arc<index::background::Indexer>,
}

impl UiState {
    pub fn new(data_dir: PathBuf, token: Option<Secret>, listen: SocketAddr) -> Self {
        // An absolute path when there is one, for the page to show.
        let data_dir = data_dir.canonicalize().unwrap_or(data_dir);
        UiState {
            data_dir,
            token,
            listen,
            axes: Arc::new(index::AxisCache::new(index::cache::DEFAULT_AXIS_BUDGET)),
            indexer: Arc::default(),
        }
    }
}

/// The UI's address for people: `http://IP:PORT/`.
pub fn url(addr: SocketAddr) -> String {
    format!("http://{addr}/")
}

/// Binds the UI's listener.
pub async fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves the UI over `data_dir` on `listener` until `shutdown` resolves; then
/// open requests finish, idle connections are closed, and background indexing
/// stops after its current step.
pub async fn serve(
    listener: TcpListener,
    data_dir: PathBuf,
    token: Option<Secret>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let listen = listener.local_addr()?;
    let state = Arc::new(UiState::new(data_dir, token, listen));
    let indexer = state.indexer.clone();
    let served = axum::serve(listener, routes::router(state))
        .with_graceful_shutdown(shutdown)
        .await;
    indexer.shut_down().await;
    served
}

/// `runcore ui`: binds, says where it is (and writes the port file, opens a
/// browser when asked), then serves until `signal`.
pub async fn run_standalone(
    config: UiConfig,
    signal: impl Future<Output = ()> + Send + 'static,
    out: &mut (impl Write + Send),
) -> io::Result<()> {
    let listener = bind(config.listen).await.map_err(|e| {
        io::Error::new(e.kind(), format!("cannot listen on {}: {e}", config.listen))
    })?;
    let url = url(listener.local_addr()?);
    if !config.data_dir.is_dir() {
        writeln!(
            out,
            "runcore ui: {} does not exist yet; runs appear once a sidecar writes there",
            config.data_dir.display()
        )?;
    }
    writeln!(
        out,
        "runcore ui: {url} (data dir {}; Ctrl-C stops)",
        config.data_dir.display()
    )?;
    out.flush()?;
    if let Some(path) = &config.port_file {
        crate::store::write_atomic(path, format!("{url}\n").as_bytes(), false)
            .map_err(io::Error::other)?;
    }
    if config.open {
        open_browser(&url);
    }
    serve(listener, config.data_dir, config.auth_token, signal).await
}

/// Asks the desktop to open `url`; says so when it cannot.
fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    let spawned = std::process::Command::new(opener)
        .arg(url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    match spawned {
        // Reaped when it exits, which it does once the browser has the URL.
        Ok(mut child) => {
            std::thread::spawn(move || child.wait());
        }
        Err(e) => eprintln!(
            "runcore ui: could not start {opener} to open a browser ({e}); open {url} yourself"
        ),
    }
}
