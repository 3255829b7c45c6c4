//! Acks and the end of a stream, as its ack thread reports them.

use std::time::{SystemTime, UNIX_EPOCH};

use super::stream::AckSink;
use super::Shared;
use crate::proto;
use crate::status::Status;

impl AckSink for Shared {
    fn on_ack(&self, ack: proto::LogAck) {
        // Drops are reported before the batch is retired: a flush that returns has
        // seen them.
        for dropped in &ack.dropped {
            self.link.on_dropped(dropped);
        }
        let mut state = self.lock();
        if let Some(sent) = state.unacked.remove(&ack.seq) {
            state.stats.rows_acked += sent.rows as u64;
            state.stats.batches_acked += 1;
        }
        state.stats.last_ack_time = unix_now();
        state.failing_since = None;
        state.limited = 0;
        drop(state);
        self.progress.notify_all();
        self.wake_sender.notify_one();
    }

    fn on_stream_end(&self, generation: u64, error: Option<Status>) {
        let mut state = self.lock();
        if state.stream.as_ref().map(|s| s.generation) != Some(generation) {
            return; // a stream replaced or cancelled meanwhile
        }
        if error.is_none() && state.closing && state.unacked.is_empty() {
            state.stream_done = true; // the normal end after close
        } else {
            state.broken = Some(error);
        }
        drop(state);
        self.wake_sender.notify_one();
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
