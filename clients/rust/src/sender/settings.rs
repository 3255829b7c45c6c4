//! How the sender batches and how long it keeps trying, and what it reports.

use std::time::Duration;

/// The sender's knobs; the defaults are the Python client's (`Settings` in
/// clients/python/src/runcore/_settings.py).
#[derive(Clone, Debug)]
pub struct SenderSettings {
    /// Longest a queued row waits for more rows to share its batch.
    pub batch_interval: Duration,
    /// Most rows in one batch.
    pub batch_rows: usize,
    /// Rows queued and not yet sent, beyond which `put` blocks (rows are never
    /// dropped for lack of room).
    pub queue_size: usize,
    /// Batches sent and not yet acknowledged, beyond which the sender waits.
    pub max_in_flight: usize,
    /// How often the run shows a sign of life (a Heartbeat call): well inside the
    /// run's client timeout.
    pub heartbeat_every: Duration,
    /// How long the sender keeps trying without progress (an ack) before it gives
    /// up and counts the rows it holds lost.
    pub reconnect_timeout: Duration,
}

impl Default for SenderSettings {
    fn default() -> Self {
        SenderSettings {
            batch_interval: Duration::from_millis(20),
            batch_rows: 512,
            queue_size: 10_000,
            max_in_flight: 32,
            heartbeat_every: Duration::from_secs(15),
            reconnect_timeout: Duration::from_secs(120),
        }
    }
}

/// A snapshot of the sender's counters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SenderStats {
    pub rows_queued: u64,
    pub rows_acked: u64,
    /// Rows the sidecar refused (a dropped batch) or the sender gave up on.
    pub rows_lost: u64,
    pub batches_sent: u64,
    pub batches_acked: u64,
    /// Batches sent again on a new stream after the sidecar came back.
    pub batches_resent: u64,
    /// Unix seconds of the last ack; 0 before the first.
    pub last_ack_time: f64,
    /// The seq the next batch gets.
    pub next_seq: u64,
    /// Rows queued and not yet in a batch.
    pub queued: usize,
    /// Why the sender gave up, once it has: rows are no longer sent.
    pub dead: Option<String>,
    /// Closing waited the whole half-close wait (5 s) for the sidecar to end the
    /// stream, and cancelled it: every row was acked, but close returned late.
    pub half_close_timed_out: bool,
}
