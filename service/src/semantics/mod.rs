//! What a record does to a run: W&B's `Run` semantics as a pure function of the
//! transaction log. [`state::RunState::apply`] is shared by live logging (the run
//! actor), recovery, ScanHistory and every forwarder; committed rows, samples and
//! alerts go out through a [`state::Sink`] (the local store, a backend's events).
//! [`summary`] aggregates, [`metrics`] holds define_metric's rules, [`writers`]
//! the processes writing a run and who may join, [`shared`] the steps of a run
//! several writers share.
//!
//! This is the bottom of the run's layers: it imports nothing but the protos and
//! values.

pub mod metrics;
pub mod shared;
pub mod state;
pub mod summary;
pub mod writers;
