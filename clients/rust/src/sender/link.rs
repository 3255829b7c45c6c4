//! [`Link`]: what the sender needs from the run it sends for.

use std::time::Duration;

use crate::connection::Connection;
use crate::proto;
use crate::status::Status;

/// Why [`Link::attach`] could not make sure the run is open.
#[derive(Clone, Debug, thiserror::Error)]
pub enum AttachError {
    /// The sidecar ended the run (finished, crashed, killed...): it is never
    /// resumed automatically. The message names the state.
    #[error("{0}")]
    Ended(String),
    /// The sidecar could not be asked.
    #[error("{0}")]
    Rpc(Status),
    /// The run's owner gave up on the sidecar.
    #[error("{0}")]
    GaveUp(String),
}

/// What the sender needs from its run. Called on the sender's threads (rarely),
/// never while the sender holds a lock, never from async code: an implementation
/// may make blocking calls on a [`Connection`].
pub trait Link: Send + Sync + 'static {
    /// Make sure the sidecar has the run open (`force`: ask now, otherwise only
    /// after a reconnect): re-Init a run it lost; `Ended` if it ended the run.
    fn attach(&self, force: bool) -> Result<(), AttachError>;
    /// The sidecar seems gone: wait up to `timeout` for it (restarting one the
    /// process spawned) and return the connection to use from now on. Err(message)
    /// to give up.
    fn recover(&self, timeout: Duration) -> Result<Connection, String>;
    /// A row the sidecar did not apply (a step smaller than the run's...).
    fn on_dropped(&self, row: &proto::DroppedRow);
    /// Something was not recorded as asked (`kind`: "sender-gave-up",
    /// "rejected-INVALID_ARGUMENT", ...); say it once per kind.
    fn warn(&self, kind: &str, message: &str);
    /// A heartbeat said should_stop (an operator asked the run to stop).
    fn should_stop(&self);
}
