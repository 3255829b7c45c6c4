//! A run: its semantics and its actor.
//!
//! Each open run is one task (the actor, `actor.rs`) that owns its state, its
//! transaction log and its store writer; gRPC handlers send it [`Command`]s that
//! carry their reply channel. A record is appended to the log (`durable.rs`) before
//! it is applied and acknowledged. An idle actor sleeps: its flush and liveness
//! deadlines are set from what waits (`timers.rs`). What a record does to a run is
//! [`crate::semantics`], a pure function of the log shared by live logging,
//! recovery, reads and forwarding.
//!
//! This layer knows nothing of backends: a forwarder is a [`Delivery`] that the
//! registry hands the actor.

mod actor;
pub mod command;
mod confine;
pub mod delivery;
mod durable;
pub mod edit;
pub mod error;
pub mod files;
mod glob;
mod live_files;
pub mod open;
pub mod recovery;
mod requests;
pub mod settings;
mod timers;
mod writers;

pub use actor::spawn;
pub use command::{Busy, Command, LogReply, Reply, RunHandle, StreamState};
pub use delivery::Delivery;
pub use edit::{delete_stored, edit_stored};
pub use error::RunError;
pub use open::{create, open, rebuild_store, replay, replay_log, OpenedRun};
pub use settings::RunSettings;
