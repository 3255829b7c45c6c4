//! gRPC handlers of `runcore.v1.RunService`: validate a request, hand it to the run's
//! actor (or the registry), and turn the answer into a reply.

mod artifacts;
pub mod status;
pub mod validate;

use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use crate::proto::v1::run_service_server::RunService;
use crate::proto::v1::*;
use crate::run::{Command, LogReply, RunError, RunHandle};
use crate::runs::{RegistryError, Runs};

/// Acknowledgements buffered per LogStream before the runs feeding it wait for the
/// client to read them.
const ACK_BUFFER: usize = 64;

pub struct Api {
    runs: Arc<Runs>,
    max_message_bytes: usize,
}

impl Api {
    pub fn new(runs: Arc<Runs>, max_message_bytes: usize) -> Self {
        Api {
            runs,
            max_message_bytes,
        }
    }

    fn handle(&self, run_id: &str) -> Result<RunHandle, Status> {
        validate::run_id(run_id)?;
        Ok(self.runs.handle(run_id)?)
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl RunService for Api {
    async fn init(&self, request: Request<InitRequest>) -> Result<Response<InitResponse>, Status> {
        let mut req = request.into_inner();
        validate::init(&mut req)?;
        Ok(Response::new(self.runs.init(req).await?))
    }

    async fn log(&self, request: Request<LogRequest>) -> Result<Response<LogResponse>, Status> {
        let batch = validate::log(request.into_inner())?;
        let handle = self.handle(&batch.run_id)?;
        let ack = handle
            .call(|reply| Command::Log {
                batch,
                reply: LogReply::Unary(reply),
            })
            .await?;
        Ok(Response::new(LogResponse {
            step: ack.step,
            dropped: ack.dropped,
        }))
    }

    type LogStreamStream = BoxStream<LogAck>;

    async fn log_stream(
        &self,
        request: Request<Streaming<LogBatch>>,
    ) -> Result<Response<Self::LogStreamStream>, Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel::<Result<LogAck, RunError>>(ACK_BUFFER);
        // Errors found by this reader (bad batch, unknown run) end the stream; they
        // travel on their own channel so that acks already queued arrive first.
        let (err_tx, err_rx) = mpsc::channel::<Status>(1);
        let runs = self.runs.clone();
        let mut token = self.runs.token()?;
        let limit = self.max_message_bytes;
        // The reader ends with the client's stream, at its first error, or at
        // shutdown; it holds a shutdown token, so shutdown waits for it.
        tokio::spawn(async move {
            let mut cached: Option<(String, RunHandle)> = None;
            let failed = Arc::new(std::sync::atomic::AtomicU64::new(0));
            let error = loop {
                let next = tokio::select! {
                    m = inbound.message() => m,
                    _ = token.stopping() => break Some(Status::from(RunError::Closed)),
                };
                let mut batch = match next {
                    Ok(Some(b)) => b,
                    Ok(None) => break None,
                    Err(e) => break Some(status::stream_error(e, limit)),
                };
                if let Err(e) = validate::batch(&mut batch) {
                    break Some(e.into());
                }
                let handle = match cached.take() {
                    Some((id, h)) if !h.is_closed() && id == batch.run_id => h,
                    _ => match runs.handle(&batch.run_id) {
                        Ok(h) => h,
                        Err(e) => break Some(e.into()),
                    },
                };
                let run_id = batch.run_id.clone();
                let cmd = Command::Log {
                    batch,
                    reply: LogReply::Stream(tx.clone(), failed.clone()),
                };
                if let Err(e) = handle.send(cmd).await {
                    break Some(e.into());
                }
                cached = Some((run_id, handle));
            };
            drop(tx);
            if let Some(e) = error {
                let _ = err_tx.send(e).await;
            }
            drop(token);
        });
        let acks = ReceiverStream::new(rx).map(|r| r.map_err(Status::from));
        let errors = ReceiverStream::new(err_rx).map(Err);
        Ok(Response::new(Box::pin(acks.chain(errors))))
    }

    async fn define_metric(
        &self,
        request: Request<DefineMetricRequest>,
    ) -> Result<Response<DefineMetricResponse>, Status> {
        let req = request.into_inner();
        crate::semantics::metrics::check(&req).map_err(validate::Invalid::from)?;
        let handle = self.handle(&req.run_id)?;
        let metric = handle
            .call(|reply| Command::DefineMetric { req, reply })
            .await?;
        Ok(Response::new(DefineMetricResponse {
            metric: Some(metric),
        }))
    }

    async fn update_config(
        &self,
        request: Request<UpdateConfigRequest>,
    ) -> Result<Response<UpdateConfigResponse>, Status> {
        let mut req = request.into_inner();
        validate::map(&mut req.config, "config")?;
        let handle = self.handle(&req.run_id)?;
        let config = handle
            .call(|reply| Command::UpdateConfig { req, reply })
            .await?;
        Ok(Response::new(UpdateConfigResponse { config }))
    }

    async fn update_summary(
        &self,
        request: Request<UpdateSummaryRequest>,
    ) -> Result<Response<UpdateSummaryResponse>, Status> {
        let mut req = request.into_inner();
        validate::map(&mut req.summary, "summary")?;
        let handle = self.handle(&req.run_id)?;
        let summary = handle
            .call(|reply| Command::UpdateSummary { req, reply })
            .await?;
        Ok(Response::new(UpdateSummaryResponse { summary }))
    }

    async fn alert(
        &self,
        request: Request<AlertRequest>,
    ) -> Result<Response<AlertResponse>, Status> {
        let mut req = request.into_inner();
        validate::alert(&mut req)?;
        let handle = self.handle(&req.run_id)?;
        Ok(Response::new(
            handle.call(|reply| Command::Alert { req, reply }).await?,
        ))
    }

    async fn save_files(
        &self,
        request: Request<SaveFilesRequest>,
    ) -> Result<Response<SaveFilesResponse>, Status> {
        let req = request.into_inner();
        validate::save(&req)?;
        let handle = self.handle(&req.run_id)?;
        let saved = handle
            .call(|reply| Command::SaveFiles { req, reply })
            .await?;
        Ok(Response::new(SaveFilesResponse { saved }))
    }

    async fn heartbeat(
        &self,
        request: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        let handle = self.handle(&request.into_inner().run_id)?;
        Ok(Response::new(
            handle.call(|reply| Command::Heartbeat { reply }).await?,
        ))
    }

    async fn mark_preempting(
        &self,
        request: Request<MarkPreemptingRequest>,
    ) -> Result<Response<MarkPreemptingResponse>, Status> {
        let handle = self.handle(&request.into_inner().run_id)?;
        let run = handle
            .call(|reply| Command::MarkPreempting { reply })
            .await?;
        Ok(Response::new(MarkPreemptingResponse { run: Some(run) }))
    }

    async fn finish(
        &self,
        request: Request<FinishRequest>,
    ) -> Result<Response<FinishResponse>, Status> {
        let req = request.into_inner();
        validate::run_id(&req.run_id)?;
        let exit_code = req.exit_code.unwrap_or(0);
        match self.runs.handle(&req.run_id) {
            Ok(handle) => Ok(Response::new(
                handle
                    .call(|reply| Command::Finish { exit_code, reply })
                    .await?,
            )),
            // Finish is idempotent: an ended run answers with how it ended.
            Err(RegistryError::Run(RunError::Ended { .. })) => {
                let run = self.runs.get(&req.run_id).await?;
                Ok(Response::new(FinishResponse {
                    run: run.run,
                    summary: run.summary,
                    backends: run.backends,
                }))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn stop_run(
        &self,
        request: Request<StopRunRequest>,
    ) -> Result<Response<StopRunResponse>, Status> {
        let handle = self.handle(&request.into_inner().run_id)?;
        let run = handle.call(|reply| Command::Stop { reply }).await?;
        Ok(Response::new(StopRunResponse { run: Some(run) }))
    }

    async fn get_run(
        &self,
        request: Request<GetRunRequest>,
    ) -> Result<Response<GetRunResponse>, Status> {
        let req = request.into_inner();
        validate::run_id(&req.run_id)?;
        Ok(Response::new(self.runs.get(&req.run_id).await?))
    }

    async fn list_runs(
        &self,
        request: Request<ListRunsRequest>,
    ) -> Result<Response<ListRunsResponse>, Status> {
        let runs = self.runs.list(&request.into_inner().project).await?;
        Ok(Response::new(ListRunsResponse { runs }))
    }

    type ScanHistoryStream = BoxStream<ScanHistoryResponse>;

    async fn scan_history(
        &self,
        request: Request<ScanHistoryRequest>,
    ) -> Result<Response<Self::ScanHistoryStream>, Status> {
        let req = request.into_inner();
        validate::run_id(&req.run_id)?;
        let (tx, rx) = mpsc::channel(4);
        self.runs.scan(req, tx)?;
        let rows = ReceiverStream::new(rx).map(|chunk| {
            chunk
                .map(|rows| ScanHistoryResponse { rows })
                .map_err(Status::from)
        });
        Ok(Response::new(Box::pin(rows)))
    }

    async fn create_artifact(
        &self,
        request: Request<CreateArtifactRequest>,
    ) -> Result<Response<CreateArtifactResponse>, Status> {
        Ok(Response::new(
            self.artifact_create(request.into_inner()).await?,
        ))
    }

    async fn add_artifact_files(
        &self,
        request: Request<Streaming<AddArtifactFilesRequest>>,
    ) -> Result<Response<AddArtifactFilesResponse>, Status> {
        Ok(Response::new(
            self.artifact_add(request.into_inner()).await?,
        ))
    }

    async fn commit_artifact(
        &self,
        request: Request<CommitArtifactRequest>,
    ) -> Result<Response<CommitArtifactResponse>, Status> {
        Ok(Response::new(
            self.artifact_commit(request.into_inner()).await?,
        ))
    }

    async fn get_artifact(
        &self,
        request: Request<GetArtifactRequest>,
    ) -> Result<Response<GetArtifactResponse>, Status> {
        Ok(Response::new(
            self.artifact_get(request.into_inner()).await?,
        ))
    }

    async fn use_artifact(
        &self,
        request: Request<UseArtifactRequest>,
    ) -> Result<Response<UseArtifactResponse>, Status> {
        Ok(Response::new(
            self.artifact_use(request.into_inner()).await?,
        ))
    }

    async fn link_artifact(
        &self,
        request: Request<LinkArtifactRequest>,
    ) -> Result<Response<LinkArtifactResponse>, Status> {
        Ok(Response::new(
            self.artifact_link(request.into_inner()).await?,
        ))
    }

    async fn set_artifact_aliases(
        &self,
        request: Request<SetArtifactAliasesRequest>,
    ) -> Result<Response<SetArtifactAliasesResponse>, Status> {
        Ok(Response::new(
            self.artifact_aliases(request.into_inner()).await?,
        ))
    }

    async fn list_artifacts(
        &self,
        request: Request<ListArtifactsRequest>,
    ) -> Result<Response<ListArtifactsResponse>, Status> {
        Ok(Response::new(
            self.artifact_list(request.into_inner()).await?,
        ))
    }

    type DownloadArtifactStream = BoxStream<DownloadArtifactResponse>;

    async fn download_artifact(
        &self,
        request: Request<DownloadArtifactRequest>,
    ) -> Result<Response<Self::DownloadArtifactStream>, Status> {
        Ok(Response::new(
            self.artifact_download(request.into_inner()).await?,
        ))
    }
}
