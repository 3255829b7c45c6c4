//! runcore: a gRPC sidecar for ML experiment tracking.
//!
//! Training code calls `runcore.v1.RunService` (see `proto/runcore/v1/runcore.proto`);
//! the sidecar makes each record durable in a per-run transaction log, applies W&B's
//! `Run` semantics, and writes the embedded local store.
//!
//! # Layout
//! From the top layer down (docs/ARCHITECTURE.md has the whole picture; a module
//! imports only modules below it):
//! - [`cli`]: the commands besides `serve` (`runs ls|show|stop`, `sync`, `reap`,
//!   `health`); [`client`]: connecting to a sidecar.
//! - [`limits`]: every limit a client is held to (nesting, keys, steps, sizes);
//!   [`memory`]: the memory budget that run state and requests in flight charge.
//! - [`datadir`]: the data-dir lock (one sidecar per data dir, unless shared).
//! - [`listen`]: binding the listeners (TCP, or a unix socket no other user can
//!   reach); used by the gRPC server and the W&B listener.
//! - [`net`]: accepted connections: accept backoff, idle timeout.
//! - [`server`]: serves gRPC (RunService, health, reflection),
//!   drains on shutdown; [`h2front`] rewrites a unix client's socket-path
//!   `:authority`; [`auth`] is the bearer-token layer; [`inflight`] charges
//!   request bodies to the memory budget; [`shutdown`] owns the stop signal.
//! - [`api`]: gRPC handlers; [`api::validate`] checks requests, [`api::status`] is
//!   the one place errors become gRPC statuses.
//! - [`runs`]: the registry of runs: Init/resume, recovery at start, lookups, reads
//!   (GetRun, ListRuns, ScanHistory, ListFiles, ReadFile), edits and deletes of runs
//!   without an actor (UpdateRun, DeleteRun; [`run::edit`] does them under the
//!   run's log lock).
//! - [`config`]: `runcore serve` settings (flag, env var, default) in one struct;
//!   [`env`](mod@env) names every environment variable and default once (a leaf).
//! - [`backend`]: remote backends (MLflow, W&B) fed from each run's log by a
//!   forwarder ([`backend::forward`]) with one retry policy ([`backend::retry`]).
//! - [`artifacts`]: the content-addressed artifact store (blobs, manifests,
//!   versions, aliases, lineage, the registry) under `<data-dir>/artifacts/`;
//!   read by the backends; it reads client files through [`run::files`].
//! - [`run`]: the per-run actor (commands, durability, live files, SaveFiles and
//!   media rules); it sees a forwarder only as a [`run::Delivery`].
//! - [`store`]: the local store's files, all derived from the log.
//! - [`semantics`]: W&B's `Run` rules as a pure function of log records
//!   ([`semantics::state::RunState::apply`]), with [`semantics::summary`],
//!   [`semantics::metrics`] (define_metric), [`semantics::writers`] (the processes
//!   writing a run) and [`semantics::shared`] (a shared run's steps).
//! - Leaves: [`wal`] (the CRC-framed transaction log), [`value`] (value checks,
//!   histogram binning, the store's JSON), [`liveness`] (is a client still there),
//!   [`monitor`] (system metrics on their own thread), [`metadata`], [`clock`] (all
//!   time), [`proto`] (generated).
//! - [`wandb_service`]: the W&B service protocol (`--wandb-listen`), an adapter
//!   that lets the unchanged `wandb` SDK log into the same runs through the
//!   registry (above [`runs`]).
//! - [`ui`]: the web UI (`runcore ui`, `serve --ui-listen`): charts and tables
//!   over the local store, with its chart index and downsampler (above [`runs`]).

#![forbid(unsafe_code)]

pub mod api;
pub mod artifacts;
pub mod auth;
pub mod backend;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod datadir;
pub mod env;
pub mod h2front;
pub mod inflight;
pub mod limits;
pub mod listen;
pub mod liveness;
pub mod memory;
pub mod metadata;
pub mod monitor;
pub mod net;
pub mod proto;
pub mod run;
pub mod runs;
pub mod semantics;
pub mod server;
pub mod shutdown;
pub mod store;
pub mod ui;
pub mod value;
pub mod wal;
pub mod wandb_service;
