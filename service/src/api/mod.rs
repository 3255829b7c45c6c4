//! gRPC handlers of `runcore.v1.RunService`: validate a request, hand it to the run's
//! actor (or the registry), and turn the answer into a reply.

mod artifacts;
pub mod reply;
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
use crate::run::{Command, LogReply, RunError, RunHandle, StreamState};
use crate::runs::{RegistryError, Runs};

/// Acknowledgements queued per LogStream. The runs feeding a stream never wait for
/// its client: one that lets this many acks pile up (it stopped reading) has its
/// stream ended with RESOURCE_EXHAUSTED. A client reading as it goes never gets
/// near it (at most this many batches are in flight between its reads).
const ACK_BUFFER: usize = 1024;

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
            let stream = Arc::new(StreamState::default());
            let error = read_batches(&mut inbound, &runs, &tx, &stream, &mut token, limit).await;
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
        validate::metric(&req)?;
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
        validate::removed(&req.remove)?;
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
        validate::removed(&req.remove)?;
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
        let HeartbeatRequest { run_id, writer_id } = request.into_inner();
        validate::writer_id(&writer_id)?;
        let handle = self.handle(&run_id)?;
        Ok(Response::new(
            handle
                .call(|reply| Command::Heartbeat { writer_id, reply })
                .await?,
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
        validate::writer_id(&req.writer_id)?;
        let exit_code = req.exit_code.unwrap_or(0);
        match self.runs.handle(&req.run_id) {
            Ok(handle) => Ok(Response::new(
                handle
                    .call(|reply| Command::Finish {
                        exit_code,
                        writer_id: req.writer_id,
                        reply,
                    })
                    .await?,
            )),
            // Finish is idempotent: an ended run answers with how it ended.
            Err(RegistryError::Run(RunError::Ended { .. })) => {
                let run = self.runs.get(&req.run_id).await?;
                let writer = run.writers.into_iter().find(|w| w.id == req.writer_id);
                Ok(Response::new(FinishResponse {
                    run: run.run,
                    summary: run.summary,
                    backends: run.backends,
                    writer,
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
        let (mut run, problems) = self.runs.get_checked(&req.run_id).await?;
        let omitted = reply::fit_get_run(&mut run);
        let mut response = Response::new(run);
        reply::put(response.metadata_mut(), reply::OMITTED, &omitted);
        reply::put(response.metadata_mut(), reply::PROBLEMS, &problems);
        Ok(response)
    }

    async fn list_runs(
        &self,
        request: Request<ListRunsRequest>,
    ) -> Result<Response<ListRunsResponse>, Status> {
        let project = request.into_inner().project;
        validate::project(&project, "project")?;
        let runs = self.runs.list(&project).await?;
        Ok(Response::new(ListRunsResponse { runs }))
    }

    type ScanHistoryStream = BoxStream<ScanHistoryResponse>;

    async fn scan_history(
        &self,
        request: Request<ScanHistoryRequest>,
    ) -> Result<Response<Self::ScanHistoryStream>, Status> {
        let req = request.into_inner();
        validate::scan(&req)?;
        // Four pages in flight: a client that reads slowly holds the replay back.
        let (tx, rx) = mpsc::channel(4);
        self.runs.scan(req, tx)?;
        let rows = ReceiverStream::new(rx).map(|chunk| {
            chunk
                .map(|rows| ScanHistoryResponse { rows })
                .map_err(Status::from)
        });
        Ok(Response::new(Box::pin(rows)))
    }

    async fn update_run(
        &self,
        request: Request<UpdateRunRequest>,
    ) -> Result<Response<UpdateRunResponse>, Status> {
        let mut req = request.into_inner();
        validate::update(&mut req)?;
        let mut updated = self.runs.update(req).await?;
        let omitted = reply::fit_update(&mut updated);
        let mut response = Response::new(updated);
        reply::put(response.metadata_mut(), reply::OMITTED, &omitted);
        Ok(response)
    }

    async fn delete_run(
        &self,
        request: Request<DeleteRunRequest>,
    ) -> Result<Response<DeleteRunResponse>, Status> {
        let req = request.into_inner();
        validate::run_id(&req.run_id)?;
        self.runs.delete(&req.run_id).await?;
        Ok(Response::new(DeleteRunResponse {}))
    }

    async fn list_files(
        &self,
        request: Request<ListFilesRequest>,
    ) -> Result<Response<ListFilesResponse>, Status> {
        let req = request.into_inner();
        let limit = validate::list_files(&req)?;
        let (files, next_page_token) = self
            .runs
            .list_files(&req.run_id, req.page_token, limit)
            .await?;
        Ok(Response::new(ListFilesResponse {
            files,
            next_page_token,
        }))
    }

    type ReadFileStream = BoxStream<ReadFileResponse>;

    async fn read_file(
        &self,
        request: Request<ReadFileRequest>,
    ) -> Result<Response<Self::ReadFileStream>, Status> {
        let req = request.into_inner();
        validate::read_file(&req)?;
        // Two chunks in flight: a client that reads slowly holds the reader back.
        let (tx, rx) = mpsc::channel(2);
        self.runs.read_file(req, tx).await?;
        let chunks = ReceiverStream::new(rx).map(|c| c.map_err(Status::from));
        Ok(Response::new(Box::pin(chunks)))
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

/// A LogStream's reader: hands each batch to its run until the client's stream
/// ends, a batch is refused, a run ends the stream (its acks piled up), or
/// shutdown. Returns the error that ends the stream, if any.
async fn read_batches(
    inbound: &mut Streaming<LogBatch>,
    runs: &Runs,
    tx: &mpsc::Sender<Result<LogAck, RunError>>,
    stream: &Arc<StreamState>,
    token: &mut crate::shutdown::ShutdownToken,
    limit: usize,
) -> Option<Status> {
    let mut cached: Option<(String, RunHandle)> = None;
    loop {
        let next = tokio::select! {
            m = inbound.message() => m,
            _ = stream.ended.notified() => Ok(None),
            _ = token.stopping() => return Some(Status::from(RunError::Closed)),
        };
        if stream.overflowed() {
            return Some(RunError::AcksNotRead(tx.max_capacity()).into());
        }
        let mut batch = match next {
            Ok(Some(b)) => b,
            Ok(None) => return None,
            Err(e) => return Some(status::stream_error(e, limit)),
        };
        if let Err(e) = validate::batch(&mut batch) {
            return Some(e.into());
        }
        let handle = match cached.take() {
            Some((id, h)) if !h.is_closed() && id == batch.run_id => h,
            _ => match runs.handle(&batch.run_id) {
                Ok(h) => h,
                Err(e) => return Some(e.into()),
            },
        };
        let run_id = batch.run_id.clone();
        let cmd = Command::Log {
            batch,
            reply: LogReply::Stream(tx.clone(), stream.clone()),
        };
        if let Err(e) = handle.send(cmd).await {
            return Some(e.into());
        }
        cached = Some((run_id, handle));
    }
}
