//! runcore: a gRPC sidecar for ML experiment tracking.
//!
//! Training code calls `runcore.v1.RunService` (see `proto/runcore/v1/runcore.proto`);
//! the sidecar makes each record durable in a per-run transaction log, applies W&B's
//! `Run` semantics, and writes the embedded local store.
//!
//! # Layout
//! - [`config`]: `runcore serve` settings (flag, env var, default) in one struct.
//! - [`server`]: binds the listener, serves gRPC (RunService, health, reflection),
//!   drains on shutdown. [`shutdown`] owns the stop signal and waits for tasks.
//! - [`auth`]: the bearer-token layer in front of every service.
//! - [`api`]: gRPC handlers; [`api::validate`] checks requests, [`api::status`] is
//!   the one place errors become gRPC statuses.
//! - [`runs`]: the registry of runs: Init/resume, recovery at start, lookups.
//! - [`run`]: the per-run actor; [`run::state`] holds the log step/commit rules and
//!   is a pure function of log records; [`run::summary`], [`run::metrics`]
//!   (define_metric) and [`run::files`] (SaveFiles, media) are its parts.
//! - [`backend`]: remote backends (MLflow, W&B) fed from each run's log by a
//!   forwarder ([`backend::forward`]) with one retry policy ([`backend::retry`]).
//! - [`wal`]: the CRC-framed transaction log.
//! - [`store`]: the local store's files, all derived from the log.
//! - [`value`]: value checks, histogram binning, the store's JSON.
//! - [`liveness`]: is a run's client still there (pid watch, timeouts).
//! - [`metadata`]: system metadata probed at Init.
//! - [`monitor`]: the system-metrics sampler (host, process tree, GPUs) on its own thread.
//! - [`artifacts`]: the content-addressed artifact store (blobs, manifests,
//!   versions, aliases, lineage, the registry) under `<data-dir>/artifacts/`.
//! - [`cli`]: `runcore runs ls|show|stop`; [`client`]: connecting to a sidecar.

#![forbid(unsafe_code)]

pub mod api;
pub mod artifacts;
pub mod auth;
pub mod backend;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod h2front;
pub mod liveness;
pub mod metadata;
pub mod monitor;
pub mod proto;
pub mod run;
pub mod runs;
pub mod semantics;
pub mod server;
pub mod shutdown;
pub mod store;
pub mod value;
pub mod wal;
