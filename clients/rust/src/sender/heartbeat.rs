//! The heartbeat thread: a sign of life every `heartbeat_every`, so that the
//! sidecar does not crash an idle run, and the way an idle run learns that it was
//! ended, lost, or asked to stop.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Shared;
use crate::connection::Connection;
use crate::contract::{classify, Action, Kind};
use crate::proto::{HeartbeatRequest, HeartbeatResponse};

/// A heartbeat that takes longer is abandoned; the next one comes on time.
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) fn run(shared: &Arc<Shared>) {
    let mut last = Instant::now();
    let mut stop_reported = false;
    while let Some(connection) = wait_until_due(shared, last) {
        last = Instant::now();
        let request = HeartbeatRequest {
            run_id: shared.run_id.clone(),
            writer_id: shared.writer_id.clone(),
        };
        match connection.call::<_, HeartbeatResponse>("Heartbeat", &request, HEARTBEAT_TIMEOUT) {
            Ok(reply) if reply.should_stop && !stop_reported => {
                stop_reported = true;
                shared.link.should_stop();
            }
            Ok(_) => {}
            // A sidecar that went away is the stream's business; a run it ended or
            // lost is found out here when the run is idle. What attach finds is the
            // Link's to report.
            Err(status) => {
                if matches!(
                    classify(status.code, Kind::Unary),
                    Action::Ended | Action::Reinit
                ) {
                    let _ = shared.link.attach(true);
                }
            }
        }
    }
}

/// Sleeps until a heartbeat is due after `last`; None once the sender ended.
fn wait_until_due(shared: &Shared, last: Instant) -> Option<Connection> {
    let mut state = shared.lock();
    loop {
        if state.finished {
            return None;
        }
        let due = last + state.heartbeat_every;
        if Instant::now() >= due {
            return Some(state.connection.clone());
        }
        state = shared.wait(&shared.wake_heartbeat, state, Some(due));
    }
}
