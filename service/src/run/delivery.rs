//! The seam to the layer above: a remote backend's forwarder, as a run's actor
//! sees it. The backend layer implements [`Delivery`]; this layer never names a
//! backend.

use std::time::Duration;

use crate::proto::v1::BackendStatus;

/// A forwarder that delivers a run's log to a remote backend.
#[async_trait::async_trait]
pub trait Delivery: Send + Sync {
    /// The log grew: deliver what is new.
    fn wake(&self);
    /// Where delivery stands.
    fn status(&self) -> BackendStatus;
    /// Whether the backend asked the run to stop.
    fn stop_requested(&self) -> bool;
    /// Waits until the log is delivered up to `log_len` bytes, at most `timeout`.
    async fn wait_delivered(&mut self, log_len: u64, timeout: Duration) -> BackendStatus;
}
