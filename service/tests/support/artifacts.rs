//! Logging and reading artifacts over the gRPC API, for the artifact tests.

use std::path::Path;

use runcore::proto::v1::add_artifact_files_request::Item;
use runcore::proto::v1::run_service_client::RunServiceClient;
use runcore::proto::v1::{
    AddArtifactFilesRequest, AddArtifactFilesResponse, Artifact, ArtifactChunk, ArtifactFileSource,
    CommitArtifactRequest, CommitArtifactResponse, CreateArtifactRequest, DownloadArtifactRequest,
    DownloadArtifactResponse, GetArtifactRequest,
};
use tonic::transport::Channel;
use tonic::Status;

pub type Client = RunServiceClient<Channel>;

/// A draft of `name` for run `run`.
pub async fn create(c: &mut Client, run: &str, name: &str, ty: &str) -> Result<String, Status> {
    let r = c
        .create_artifact(CreateArtifactRequest {
            run_id: run.into(),
            name: name.into(),
            r#type: ty.into(),
            ..Default::default()
        })
        .await?;
    Ok(r.into_inner().draft_id)
}

/// Adds files by path: (path in the artifact, source on this host).
pub async fn add_paths(
    c: &mut Client,
    draft: &str,
    files: &[(String, std::path::PathBuf)],
) -> Result<AddArtifactFilesResponse, Status> {
    let msgs: Vec<AddArtifactFilesRequest> = files
        .iter()
        .map(|(p, src)| AddArtifactFilesRequest {
            draft_id: draft.into(),
            item: Some(Item::File(ArtifactFileSource {
                path: p.clone(),
                source: src.display().to_string(),
                sha256: String::new(),
            })),
        })
        .collect();
    Ok(c.add_artifact_files(tokio_stream::iter(msgs))
        .await?
        .into_inner())
}

/// Sends any messages to AddArtifactFiles.
pub async fn add(
    c: &mut Client,
    msgs: Vec<AddArtifactFilesRequest>,
) -> Result<AddArtifactFilesResponse, Status> {
    Ok(c.add_artifact_files(tokio_stream::iter(msgs))
        .await?
        .into_inner())
}

/// A streamed file's messages: its bytes in two pieces, the digest on the last.
pub fn chunks(draft: &str, path: &str, data: &[u8], sha256: &str) -> Vec<AddArtifactFilesRequest> {
    let (a, b) = data.split_at(data.len() / 2);
    [(a, false), (b, true)]
        .into_iter()
        .map(|(part, last)| AddArtifactFilesRequest {
            draft_id: draft.into(),
            item: Some(Item::Chunk(ArtifactChunk {
                path: path.into(),
                data: part.to_vec(),
                last,
                sha256: if last { sha256.into() } else { String::new() },
            })),
        })
        .collect()
}

pub async fn commit(c: &mut Client, draft: &str) -> Result<CommitArtifactResponse, Status> {
    Ok(c.commit_artifact(CommitArtifactRequest {
        draft_id: draft.into(),
    })
    .await?
    .into_inner())
}

/// Logs every file under `dir` as artifact `name`; returns the commit's reply.
pub async fn log_dir(
    c: &mut Client,
    run: &str,
    name: &str,
    ty: &str,
    dir: &Path,
) -> (CommitArtifactResponse, AddArtifactFilesResponse) {
    let draft = create(c, run, name, ty).await.expect("create");
    let files = files_under(dir)
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            (rel, p)
        })
        .collect::<Vec<_>>();
    let added = add_paths(c, &draft, &files).await.expect("add files");
    (commit(c, &draft).await.expect("commit"), added)
}

pub async fn get(c: &mut Client, name: &str, files: bool) -> Result<Artifact, Status> {
    Ok(c.get_artifact(GetArtifactRequest {
        name: name.into(),
        include_files: files,
        ..Default::default()
    })
    .await?
    .into_inner()
    .artifact
    .unwrap_or_default())
}

pub async fn download(
    c: &mut Client,
    name: &str,
    root: &str,
) -> Result<Vec<DownloadArtifactResponse>, Status> {
    let mut stream = c
        .download_artifact(DownloadArtifactRequest {
            name: name.into(),
            root: root.into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let mut out = Vec::new();
    while let Some(m) = stream.message().await? {
        out.push(m);
    }
    Ok(out)
}

/// Every regular file under `dir`, sorted.
pub fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Hex SHA-256 of bytes.
pub fn sha256(data: &[u8]) -> String {
    runcore::artifacts::blobs::digest_bytes(data).sha256
}

/// Number of blobs in a data dir's artifact store.
pub fn blob_count(data_dir: &Path) -> usize {
    files_under(&data_dir.join("artifacts").join("blobs")).len()
}
