//! A run: its semantics and its actor.
//!
//! Each open run is one task (the actor, `actor.rs`) that owns its state, its
//! transaction log and its store writer; gRPC handlers send it [`Command`]s that
//! carry their reply channel. A record is appended to the log (`durable.rs`) before
//! it is applied and acknowledged. What a record does to a run is
//! [`crate::semantics`], a pure function of the log shared by live logging,
//! recovery, reads and forwarding.
//!
//! This layer knows nothing of backends: a forwarder is a [`Delivery`] that the
//! registry hands the actor.

mod actor;
pub mod command;
pub mod delivery;
mod durable;
pub mod error;
pub mod files;
mod live_files;
pub mod open;
mod requests;
pub mod settings;
mod writers;

pub use actor::spawn;
pub use command::{Command, LogReply, Reply, RunHandle};
pub use delivery::Delivery;
pub use error::RunError;
pub use open::{create, open, replay, OpenedRun};
pub use settings::RunSettings;
