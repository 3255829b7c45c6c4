//! A broken stream: back off, do what the client contract says for its status,
//! reach the sidecar again, re-attach the run and resend every unacked batch.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::link::AttachError;
use super::stream::{AckSink, Stream};
use super::{GiveUp, Shared};
use crate::contract::{classify, Action, Kind, RETRY_LIMITED_ATTEMPTS};
use crate::status::{code_name, Status};

/// The first wait between reconnects; it doubles from the second failure in a row.
const FIRST_BACK_OFF: Duration = Duration::from_millis(50);
const LONGEST_BACK_OFF: Duration = Duration::from_secs(2);

impl Shared {
    /// The stream broke: back off, do what the contract says, open a new one.
    pub(super) fn repair(self: &Arc<Self>, error: Option<Status>) -> Result<(), GiveUp> {
        if let Some(mut stream) = self.lock().stream.take() {
            stream.cancel();
        }
        self.back_off(error.as_ref())?;
        let recover = self.handle_break(error)?;
        self.open(recover)
    }

    /// Spaces out reconnects that make no progress, and gives up after
    /// reconnect_timeout without an ack.
    fn back_off(&self, error: Option<&Status>) -> Result<(), GiveUp> {
        let now = Instant::now();
        let mut state = self.lock();
        let since = match state.failing_since {
            Some(since) => since,
            None => {
                state.failing_since = Some(now);
                state.failures = 0;
                now
            }
        };
        state.failures += 1;
        let failing_for = now - since;
        if failing_for > self.settings.reconnect_timeout {
            let what = error.map_or("the stream ended".to_owned(), Status::to_string);
            return Err(GiveUp(format!(
                "the log stream kept failing for {:.0} s ({what})",
                failing_for.as_secs_f64()
            )));
        }
        if state.failures > 1 {
            let doublings = (state.failures - 2).min(16);
            let pause = (FIRST_BACK_OFF * 2u32.pow(doublings)).min(LONGEST_BACK_OFF);
            let until = now + pause;
            while Instant::now() < until {
                state = self.wait(&self.wake_sender, state, Some(until));
            }
        }
        Ok(())
    }

    /// What a broken stream means (the contract's action for its status); true when
    /// the sidecar must be reached again (and the run re-attached) before resending.
    fn handle_break(&self, error: Option<Status>) -> Result<bool, GiveUp> {
        // The sidecar ended the stream without an error: reconnect.
        let Some(error) = error else { return Ok(true) };
        match classify(error.code, Kind::Stream) {
            Action::Retry => Ok(true),
            Action::RetryLimited => {
                let mut state = self.lock();
                state.limited += 1;
                if state.limited >= RETRY_LIMITED_ATTEMPTS {
                    return Err(GiveUp(format!(
                        "the log stream failed {} times in a row ({error})",
                        state.limited
                    )));
                }
                Ok(true)
            }
            action @ (Action::Reinit | Action::Ended) => {
                // Ask the sidecar about the run now: a run it does not know is
                // Init-ed again (and the batches resent); one it ended is over.
                match self.link.attach(true) {
                    Err(AttachError::Ended(why)) | Err(AttachError::GaveUp(why)) => {
                        Err(GiveUp(why))
                    }
                    Err(AttachError::Rpc(_)) => Ok(true), // cannot be asked: reconnect first
                    Ok(()) if action == Action::Reinit => Ok(false),
                    Ok(()) => Err(GiveUp(format!(
                        "the sidecar refused the log stream: {error}"
                    ))),
                }
            }
            Action::DropBatch => {
                self.drop_oldest_batch(&error);
                Ok(false)
            }
            Action::None | Action::Fail | Action::Stop => Err(GiveUp(format!(
                "the sidecar refused the log stream: {error}"
            ))),
        }
    }

    fn drop_oldest_batch(&self, error: &Status) {
        let mut state = self.lock();
        let Some((seq, sent)) = state.unacked.pop_first() else {
            return;
        };
        state.stats.rows_lost += sent.rows as u64;
        drop(state);
        self.progress.notify_all();
        self.link.warn(
            &format!("rejected-{}", code_name(error.code)),
            &format!(
                "runcore: the sidecar refused a batch of {} logged rows (seq {seq}) and they were \
                 not recorded: {error}",
                sent.rows
            ),
        );
    }

    /// Opens a new stream (reaching the sidecar again first when `recover`) and
    /// resends every unacked batch on it.
    pub(super) fn open(self: &Arc<Self>, mut recover: bool) -> Result<(), GiveUp> {
        let deadline = Instant::now() + self.settings.reconnect_timeout;
        let mut recovered = false;
        loop {
            if recover {
                let left = deadline.saturating_duration_since(Instant::now());
                let connection = self
                    .link
                    .recover(left.max(Duration::from_millis(100)))
                    .map_err(|why| {
                        GiveUp(format!("the sidecar could not be reached again: {why}"))
                    })?;
                self.lock().connection = connection;
                recovered = true;
            }
            match self.link.attach(false) {
                Ok(()) => break,
                Err(AttachError::Ended(why)) | Err(AttachError::GaveUp(why)) => {
                    return Err(GiveUp(why))
                }
                Err(AttachError::Rpc(status)) => {
                    if classify(status.code, Kind::Unary) == Action::Retry
                        && Instant::now() < deadline
                    {
                        recover = true;
                        continue;
                    }
                    return Err(GiveUp(format!("re-attaching the run failed: {status}")));
                }
            }
        }
        self.start_stream(recovered);
        Ok(())
    }

    fn start_stream(self: &Arc<Self>, resend_counts: bool) {
        let mut state = self.lock();
        state.generation += 1;
        let generation = state.generation;
        let connection = state.connection.clone();
        drop(state);
        let sink: Arc<dyn AckSink> = Arc::clone(self) as Arc<dyn AckSink>;
        let opened = Stream::open(&connection, generation, sink);
        let mut state = self.lock();
        let mut stream = match opened {
            Ok(stream) => stream,
            Err(error) => {
                state.broken = Some(Some(error));
                return;
            }
        };
        for sent in state.unacked.values() {
            stream.send(sent.encoded.clone());
        }
        if resend_counts {
            state.stats.batches_resent += state.unacked.len() as u64;
        }
        state.stream = Some(stream);
    }
}
