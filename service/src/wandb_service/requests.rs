//! The SDK's requests (records of kind `request`): history rows, and the
//! questions it waits on (summary, step, stop status, exit polling, ...). A
//! request kind runcore does not know gets an empty response.

use super::map;
use super::router::{report, Router};
use crate::proto::wandb as wb;

use wb::request::Kind as Ask;
use wb::response::Kind as Answer;

impl Router {
    /// Handles a request; returns the response for the SDK.
    pub(super) async fn request(
        &mut self,
        stream_id: &str,
        r: wb::Request,
    ) -> Option<wb::Response> {
        let answer = match r.kind {
            Some(Ask::PartialHistory(h)) => {
                self.partial_history(stream_id, h).await;
                return None;
            }
            Some(kind) => self.answer(stream_id, kind).await,
            None => None,
        };
        Some(wb::Response { kind: answer })
    }

    async fn answer(&mut self, stream_id: &str, kind: Ask) -> Option<Answer> {
        let empty = wb::Empty {};
        Some(match kind {
            Ask::GetSummary(_) => Answer::GetSummaryResponse(self.summary(stream_id).await),
            Ask::HistoryStep(_) => Answer::HistoryStepResponse(self.step(stream_id).await),
            // The sparklines the SDK prints at the end would need a replay of the
            // whole history; runcore sends none (`runcore runs show` has the summary).
            Ask::SampledHistory(_) => Answer::SampledHistoryResponse(wb::SampledHistory::default()),
            Ask::StopStatus(_) => {
                let stop = self.streams.get(stream_id).is_some_and(|s| s.should_stop);
                Answer::StopStatusResponse(wb::StopStatusResponse {
                    run_should_stop: stop,
                })
            }
            // Everything is in the local store once the exit record is answered.
            Ask::PollExit(_) => Answer::PollExitResponse(wb::PollExitResponse {
                done: true,
                exit_result: Some(wb::ExitResult::default()),
            }),
            Ask::InternalMessages(_) => {
                Answer::InternalMessagesResponse(wb::InternalMessagesResponse::default())
            }
            Ask::RunStart(_) => Answer::RunStartResponse(empty),
            Ask::Keepalive(_) => Answer::KeepaliveResponse(empty),
            Ask::NetworkStatus(_) => Answer::NetworkStatusResponse(empty),
            Ask::RunStatus(_) => Answer::RunStatusResponse(empty),
            Ask::Shutdown(_) => Answer::ShutdownResponse(empty),
            Ask::Status(_) => Answer::StatusResponse(empty),
            Ask::ServerInfo(_) => Answer::ServerInfoResponse(empty),
            Ask::Operations(_) => Answer::OperationsResponse(empty),
            Ask::FinishWithoutExit(_) => {
                self.finish_without_exit(stream_id).await;
                Answer::FinishWithoutExitResponse(empty)
            }
            Ask::PartialHistory(_) => return None,
        })
    }

    async fn summary(&mut self, stream_id: &str) -> wb::SummaryItems {
        self.send_rows().await;
        let Some(stream) = self.streams.get_mut(stream_id) else {
            return wb::SummaryItems::default();
        };
        match stream.get().await {
            Ok(g) => wb::SummaryItems {
                item: map::items(&g.summary),
            },
            Err(e) => {
                report(stream, "get_summary", Some(e));
                wb::SummaryItems::default()
            }
        }
    }

    async fn step(&mut self, stream_id: &str) -> wb::HistoryStepResponse {
        self.send_rows().await;
        let Some(stream) = self.streams.get_mut(stream_id) else {
            return wb::HistoryStepResponse::default();
        };
        match stream.get().await {
            Ok(g) => wb::HistoryStepResponse {
                step: g.run.map_or(0, |r| r.step),
            },
            Err(e) => {
                report(stream, "history_step", Some(e));
                wb::HistoryStepResponse::default()
            }
        }
    }
}
