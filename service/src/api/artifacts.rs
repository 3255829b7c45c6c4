//! The artifact RPCs: the store does the file work ([`crate::artifacts`]); what a
//! run did with a version (logged, used, linked, re-aliased) goes into the run's
//! log through its actor, so it is forwarded and replayed like every record.

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::{Status, Streaming};

use super::{status, validate, Api, BoxStream};
use crate::artifacts::{ArtifactError, Artifacts, BlobWriter, Put};
use crate::limits::quote;
use crate::proto::v1::add_artifact_files_request::Item;
use crate::proto::v1::*;
use crate::proto::wal::{artifact_record, ArtifactRecord};
use crate::run::{Command, RunHandle};

/// Files of one AddArtifactFiles stream hashed and stored at once; the stream is
/// not read further while this many are in flight (the client waits).
const PARALLEL_FILES: usize = 4;
/// Messages of a streamed download queued before the reader waits for the client.
const DOWNLOAD_BUFFER: usize = 4;
/// Bytes per message of a streamed download.
const DOWNLOAD_CHUNK: usize = 1 << 20;

fn invalid(msg: impl Into<String>) -> Status {
    Status::from(ArtifactError::Invalid(msg.into()))
}

/// Appends what a run did with a version to the run's log.
async fn record(handle: &RunHandle, kind: artifact_record::Kind) -> Result<(), Status> {
    let record = Box::new(ArtifactRecord { kind: Some(kind) });
    handle
        .call(|reply| Command::Artifact { record, reply })
        .await?;
    Ok(())
}

impl Api {
    fn store(&self) -> &Artifacts {
        self.runs.artifacts()
    }

    /// The open run `id` and its path.
    fn open_run(&self, id: &str) -> Result<(RunHandle, String), Status> {
        let handle = self.handle(id)?;
        let path = handle.info().path;
        Ok((handle, path))
    }

    pub(super) async fn artifact_create(
        &self,
        mut req: CreateArtifactRequest,
    ) -> Result<CreateArtifactResponse, Status> {
        validate::artifacts::create(&mut req)?;
        let (_, path) = self.open_run(&req.run_id)?;
        let (draft_id, file_count) = self.store().create(req, path).await?;
        Ok(CreateArtifactResponse {
            draft_id,
            file_count,
        })
    }

    pub(super) async fn artifact_add(
        &self,
        mut inbound: Streaming<AddArtifactFilesRequest>,
    ) -> Result<AddArtifactFilesResponse, Status> {
        let store = self.store().clone();
        let mut out = AddArtifactFilesResponse::default();
        let mut draft = String::new();
        let mut streaming: Option<(String, BlobWriter)> = None;
        let mut in_flight: JoinSet<Result<(Put, u64), ArtifactError>> = JoinSet::new();
        while let Some(msg) = inbound
            .message()
            .await
            .map_err(|e| status::stream_error(e, self.max_message_bytes))?
        {
            if draft.is_empty() {
                draft = msg.draft_id.clone();
            }
            if draft.is_empty() || (!msg.draft_id.is_empty() && msg.draft_id != draft) {
                return Err(invalid(
                    "AddArtifactFiles: the first message must name draft_id, and one stream adds to one draft",
                ));
            }
            match msg.item {
                Some(Item::File(f)) => {
                    validate::artifacts::file(&f)?;
                    if in_flight.len() >= PARALLEL_FILES {
                        if let Some(done) = in_flight.join_next().await {
                            count(&mut out, done)?;
                        }
                    }
                    let store = store.clone();
                    let draft = draft.clone();
                    in_flight.spawn(async move {
                        store.add_file(draft, f.path, f.source, f.sha256).await
                    });
                }
                Some(Item::Reference(mut r)) => {
                    validate::artifacts::reference(&mut r)?;
                    out.file_count = store.add_reference(draft.clone(), r).await?;
                    out.added += 1;
                }
                Some(Item::Chunk(c)) => {
                    validate::artifacts::chunk(&c)?;
                    streaming = self.chunk(&store, &draft, streaming, c, &mut out).await?;
                }
                Some(Item::Remove(p)) => out.file_count = store.remove(&draft, &p)?,
                None => {
                    return Err(invalid(
                        "AddArtifactFiles: a message with no file, reference, chunk or remove",
                    ))
                }
            }
        }
        while let Some(done) = in_flight.join_next().await {
            count(&mut out, done)?;
        }
        if let Some((path, _)) = streaming {
            return Err(invalid(format!(
                "AddArtifactFiles: the stream ended inside {} (no chunk with last=true); nothing of it was kept",
                quote(&path)
            )));
        }
        out.file_count = store.draft(&draft)?.files.len() as u64;
        Ok(out)
    }

    /// One piece of a streamed file; the file being written, if not finished.
    async fn chunk(
        &self,
        store: &Artifacts,
        draft: &str,
        current: Option<(String, BlobWriter)>,
        c: ArtifactChunk,
        out: &mut AddArtifactFilesResponse,
    ) -> Result<Option<(String, BlobWriter)>, Status> {
        let (path, w) = match current {
            Some((p, w)) if p == c.path => (p, w),
            Some((p, _)) => {
                return Err(invalid(format!(
                    "AddArtifactFiles: {} started before {} ended (send its chunk with last=true first); nothing of it was kept",
                    quote(&c.path),
                    quote(&p)
                )))
            }
            None => (c.path.clone(), store.writer(draft, &c.path).await?),
        };
        let w = if c.data.is_empty() {
            w
        } else {
            store.write(w, c.data).await?
        };
        if !c.last {
            return Ok(Some((path, w)));
        }
        let done = store.finish_file(draft.to_owned(), path, w, c.sha256).await;
        count(out, Ok(done))?;
        Ok(None)
    }

    pub(super) async fn artifact_commit(
        &self,
        req: CommitArtifactRequest,
    ) -> Result<CommitArtifactResponse, Status> {
        let draft = self.store().draft(&req.draft_id)?;
        let (handle, path) = self.open_run(&draft.run_id)?;
        let (artifact, existing) = self.store().commit(req.draft_id, path).await?;
        record(&handle, artifact_record::Kind::Logged(artifact.clone())).await?;
        Ok(CommitArtifactResponse {
            artifact: Some(artifact),
            existing,
        })
    }

    pub(super) async fn artifact_get(
        &self,
        req: GetArtifactRequest,
    ) -> Result<GetArtifactResponse, Status> {
        let artifact = self
            .store()
            .get(req.name, req.r#type, req.include_files)
            .await?;
        Ok(GetArtifactResponse {
            artifact: Some(artifact),
        })
    }

    pub(super) async fn artifact_use(
        &self,
        req: UseArtifactRequest,
    ) -> Result<UseArtifactResponse, Status> {
        let (handle, path) = self.open_run(&req.run_id)?;
        let artifact = self
            .store()
            .use_version(req.name, req.r#type, path, req.include_files)
            .await?;
        let mut header = artifact.clone();
        header.files.clear();
        record(&handle, artifact_record::Kind::Used(header)).await?;
        Ok(UseArtifactResponse {
            artifact: Some(artifact),
        })
    }

    pub(super) async fn artifact_link(
        &self,
        req: LinkArtifactRequest,
    ) -> Result<LinkArtifactResponse, Status> {
        validate::artifacts::aliases(&req.aliases)?;
        let run = if req.run_id.is_empty() {
            None
        } else {
            Some(self.open_run(&req.run_id)?)
        };
        let by = run.as_ref().map(|(_, p)| p.clone()).unwrap_or_default();
        let link = self
            .store()
            .link(req.name, req.target_path, req.aliases, by)
            .await?;
        if let Some((handle, _)) = &run {
            record(handle, artifact_record::Kind::Linked(link.clone())).await?;
        }
        Ok(LinkArtifactResponse { link: Some(link) })
    }

    pub(super) async fn artifact_aliases(
        &self,
        req: SetArtifactAliasesRequest,
    ) -> Result<SetArtifactAliasesResponse, Status> {
        validate::artifacts::aliases(&req.add)?;
        validate::artifacts::aliases(&req.remove)?;
        let run = if req.run_id.is_empty() {
            None
        } else {
            Some(self.open_run(&req.run_id)?)
        };
        let artifact = self
            .store()
            .set_aliases(req.name, req.add, req.remove)
            .await?;
        if let Some((handle, _)) = &run {
            record(handle, artifact_record::Kind::Aliased(artifact.clone())).await?;
        }
        Ok(SetArtifactAliasesResponse {
            artifact: Some(artifact),
        })
    }

    pub(super) async fn artifact_list(
        &self,
        req: ListArtifactsRequest,
    ) -> Result<ListArtifactsResponse, Status> {
        if !matches!(req.direction.as_str(), "" | "logged" | "used") {
            return Err(invalid(format!(
                "ListArtifacts: direction {} must be \"logged\", \"used\" or empty",
                quote(&req.direction)
            )));
        }
        let run = if req.run_id.is_empty() {
            None
        } else {
            validate::run_id(&req.run_id)?;
            Some(self.runs.run_path(&req.run_id)?)
        };
        Ok(self.store().list(req, run).await?)
    }

    pub(super) async fn artifact_download(
        &self,
        req: DownloadArtifactRequest,
    ) -> Result<BoxStream<DownloadArtifactResponse>, Status> {
        validate::artifacts::download(&req)?;
        if !req.root.is_empty() {
            let placed = self
                .store()
                .download(req.name, req.root, req.copy, req.paths)
                .await?;
            let msgs = placed.into_iter().map(|p| {
                Ok(DownloadArtifactResponse {
                    path: p.path,
                    last: true,
                    linked: p.linked,
                    skipped_ref: p.skipped_ref,
                    ..Default::default()
                })
            });
            return Ok(Box::pin(tokio_stream::iter(msgs.collect::<Vec<_>>())));
        }
        let manifest = self.store().manifest(req.name).await?;
        let store = self.store().clone();
        let (tx, rx) = mpsc::channel(DOWNLOAD_BUFFER);
        // Ends with the last file, or early when the client stops reading.
        tokio::task::spawn_blocking(move || stream_files(&store, &manifest, &req.paths, &tx));
        Ok(Box::pin(
            ReceiverStream::new(rx).map(|r| r.map_err(Status::from)),
        ))
    }
}

/// Adds a stored file's outcome to the reply.
fn count(
    out: &mut AddArtifactFilesResponse,
    done: Result<Result<(Put, u64), ArtifactError>, tokio::task::JoinError>,
) -> Result<(), Status> {
    let (put, n) = done.map_err(ArtifactError::crashed_task)??;
    out.added += 1;
    out.file_count = n;
    if put.stored {
        out.bytes_stored += put.digests.size;
    } else {
        out.bytes_deduplicated += put.digests.size;
    }
    Ok(())
}

/// Sends a version's stored files in pieces (references are named, not fetched).
/// Blocking.
fn stream_files(
    store: &Artifacts,
    m: &crate::artifacts::manifest::Manifest,
    only: &[String],
    tx: &mpsc::Sender<Result<DownloadArtifactResponse, ArtifactError>>,
) {
    use std::io::Read;
    for (path, e) in m
        .files
        .iter()
        .filter(|(p, _)| crate::artifacts::download::wanted(p, only))
    {
        if e.sha256.is_empty() || (!e.reference.is_empty() && !store.blob(&e.sha256).is_file()) {
            let msg = DownloadArtifactResponse {
                path: path.clone(),
                last: true,
                skipped_ref: e.reference.clone(),
                ..Default::default()
            };
            if tx.blocking_send(Ok(msg)).is_err() {
                return;
            }
            continue;
        }
        let blob = store.blob(&e.sha256);
        let mut file = match std::fs::File::open(&blob) {
            Ok(f) => f,
            Err(source) => {
                let _ = tx.blocking_send(Err(ArtifactError::Io { path: blob, source }));
                return;
            }
        };
        let mut offset = 0u64;
        loop {
            let mut buf = vec![0u8; DOWNLOAD_CHUNK];
            let n = match file.read(&mut buf) {
                Ok(n) => n,
                Err(source) => {
                    let _ = tx.blocking_send(Err(ArtifactError::Io { path: blob, source }));
                    return;
                }
            };
            buf.truncate(n);
            let last = offset + n as u64 >= e.size || n == 0;
            let msg = DownloadArtifactResponse {
                path: path.clone(),
                data: buf,
                offset,
                last,
                ..Default::default()
            };
            if tx.blocking_send(Ok(msg)).is_err() {
                return;
            }
            offset += n as u64;
            if last {
                break;
            }
        }
    }
}
