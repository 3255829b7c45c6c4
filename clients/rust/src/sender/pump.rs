//! The sender thread: sleeps until there is something to send, sends batches,
//! and at close drains and half-closes the stream.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::batch::{self, Row, Sent};
use super::{GiveUp, Shared, State};
use crate::status::Status;

/// How long closing waits for the sidecar to end a half-closed stream.
const HALF_CLOSE_WAIT: Duration = Duration::from_secs(5);

/// What the sender thread does next.
enum Work {
    Repair(Option<Status>),
    Open,
    Send(Vec<Row>),
    Drain,
}

impl Shared {
    pub(super) fn run(self: &Arc<Self>) {
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.send_until_closed()));
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(GiveUp(why))) => self.give_up(why),
            // A bug here must not leave flush() and close() waiting forever.
            Err(panic) => self.give_up(format!(
                "the sender thread failed: {}",
                panic_message(&*panic)
            )),
        }
        self.finish();
    }

    fn send_until_closed(self: &Arc<Self>) -> Result<(), GiveUp> {
        loop {
            match self.next_work()? {
                Work::Repair(error) => self.repair(error)?,
                Work::Open => self.open(false)?,
                Work::Send(rows) => self.send(rows),
                Work::Drain => {
                    self.half_close();
                    return Ok(());
                }
            }
        }
    }

    /// Sleeps until there is something to do, and says what.
    fn next_work(&self) -> Result<Work, GiveUp> {
        let settings = &self.settings;
        let mut state = self.lock();
        loop {
            if state.closing && state.rows.is_empty() && state.unacked.is_empty() {
                // Everything is acked: a stream that broke meanwhile needs no repair.
                state.broken = None;
                return Ok(Work::Drain);
            }
            if let Some(error) = state.broken.take() {
                return Ok(Work::Repair(error));
            }
            if state.stream.is_none() {
                return Ok(Work::Open);
            }
            let room = state.unacked.len() < settings.max_in_flight;
            let now = Instant::now();
            let send_by = state.oldest_row_at.map(|t| t + settings.batch_interval);
            let due = state.rows.len() >= settings.batch_rows
                || state.flush_wanted
                || state.closing
                || send_by.is_some_and(|t| t <= now);
            if room && !state.rows.is_empty() && due {
                let rows = take_batch(&mut state.rows, settings.batch_rows);
                if state.rows.is_empty() {
                    state.oldest_row_at = None;
                }
                self.progress.notify_all(); // room in the queue
                return Ok(Work::Send(rows));
            }
            if state.rows.is_empty() {
                state.flush_wanted = false;
            }
            let ack_due = self.check_progress(&mut state, now)?;
            let rows_due = send_by.filter(|_| room);
            let deadline = match (rows_due, ack_due) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            state = self.wait(&self.wake_sender, state, deadline);
        }
    }

    /// Gives up when batches wait for acks that do not come (a hung sidecar) for
    /// reconnect_timeout; otherwise returns when to look again.
    fn check_progress(&self, state: &mut State, now: Instant) -> Result<Option<Instant>, GiveUp> {
        if state.unacked.is_empty() {
            state.waiting_since = None;
            return Ok(None);
        }
        let mark = (state.stats.batches_acked, state.generation);
        let since = match state.waiting_since {
            Some((since, acked, generation)) if (acked, generation) == mark => since,
            _ => {
                state.waiting_since = Some((now, mark.0, mark.1));
                now
            }
        };
        let waited = now - since;
        if waited > self.settings.reconnect_timeout {
            return Err(GiveUp(format!(
                "the sidecar acknowledged nothing for {:.0} s ({} batches waiting)",
                waited.as_secs_f64(),
                state.unacked.len()
            )));
        }
        // Just past the limit, so that the look then sees it passed.
        Ok(Some(
            since + self.settings.reconnect_timeout + Duration::from_millis(1),
        ))
    }

    fn send(&self, rows: Vec<Row>) {
        let count = rows.len();
        let mut state = self.lock();
        let seq = state.next_seq;
        state.next_seq += 1;
        drop(state);
        let encoded = batch::encode(&self.run_id, &self.writer_id, seq, rows);
        let mut state = self.lock();
        if let Some(stream) = state.stream.as_mut() {
            stream.send(encoded.clone());
        }
        state.unacked.insert(
            seq,
            Sent {
                encoded,
                rows: count,
            },
        );
        state.stats.batches_sent += 1;
    }

    /// At close, everything acked: half-close the stream and wait (a little) for
    /// the sidecar to end it. A stream never opened (close came before the sender
    /// thread's first look) or one that carried no batch has nothing to wait for:
    /// it is cancelled at once.
    fn half_close(&self) {
        let mut state = self.lock();
        state.stream_done = false;
        if let Some(stream) = state.stream.as_mut().filter(|s| s.carried()) {
            stream.half_close();
            let deadline = Instant::now() + HALF_CLOSE_WAIT;
            while !state.stream_done && state.broken.is_none() && Instant::now() < deadline {
                state = self.wait(&self.wake_sender, state, Some(deadline));
            }
            if !state.stream_done && state.broken.is_none() {
                state.stats.half_close_timed_out = true;
            }
        }
        if let Some(mut stream) = state.stream.take() {
            stream.cancel();
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic")
}

/// Pops the rows of the next batch: at most `batch_rows`, and no more than
/// MAX_BATCH_BYTES unless a single row is larger.
fn take_batch(queue: &mut VecDeque<Row>, batch_rows: usize) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut size = 0;
    while rows.len() < batch_rows {
        let Some(next) = queue.front() else { break };
        if !rows.is_empty() && size + next.size() > batch::MAX_BATCH_BYTES {
            break;
        }
        size += next.size();
        rows.extend(queue.pop_front());
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row_of(value_bytes: usize) -> Row {
        Row {
            value_bytes,
            ..Row::default()
        }
    }

    #[test]
    fn a_batch_holds_at_most_batch_rows() {
        let mut queue: VecDeque<Row> = (0..5).map(|_| row_of(10)).collect();
        assert_eq!(take_batch(&mut queue, 3).len(), 3);
        assert_eq!(take_batch(&mut queue, 3).len(), 2);
        assert!(take_batch(&mut queue, 3).is_empty());
    }

    #[test]
    fn a_batch_stays_under_the_byte_limit_unless_one_row_is_larger() {
        let third = batch::MAX_BATCH_BYTES / 3;
        let mut queue: VecDeque<Row> = [third, third, third, third, 2 * batch::MAX_BATCH_BYTES, 1]
            .into_iter()
            .map(row_of)
            .collect();
        assert_eq!(take_batch(&mut queue, 512).len(), 3);
        assert_eq!(
            take_batch(&mut queue, 512).len(),
            1,
            "the fourth third alone"
        );
        assert_eq!(
            take_batch(&mut queue, 512).len(),
            1,
            "the oversized row alone"
        );
        assert_eq!(take_batch(&mut queue, 512).len(), 1);
    }
}
