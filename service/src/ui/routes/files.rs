//! A run's saved files (listed, and downloaded as attachments, streamed) and
//! its console output.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

use super::{blocking, json, Params};
use crate::ui::error::{ApiError, PageError, UiError};
use crate::ui::{reader, UiState};

/// Output sent at most per request (a page asks again from where it stopped).
const MAX_OUTPUT: u64 = 4 << 20;
/// Output a page gets first: the end of the log.
const DEFAULT_OUTPUT: u64 = 256 << 10;

/// `GET /api/runs/{project}/{id}/files`.
pub async fn list(
    State(s): State<Arc<UiState>>,
    Path((project, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let data_dir = s.data_dir.clone();
    let files = blocking(move || {
        let dir = reader::run_dir(&data_dir, &project, &id)?;
        Ok(reader::files(&dir))
    })
    .await?;
    Ok(json(&files))
}

/// `GET /files/{project}/{id}/{path}`: a saved file, as a download.
pub async fn download(
    State(s): State<Arc<UiState>>,
    Path((project, id, rel)): Path<(String, String, String)>,
) -> Result<Response, PageError> {
    let data_dir = s.data_dir.clone();
    let (file, len, name) = blocking(move || {
        let dir = reader::run_dir(&data_dir, &project, &id)?;
        let path = reader::saved_file(&dir, &rel)?;
        let file = std::fs::File::open(&path).map_err(crate::store::io_err(&path))?;
        let len = file.metadata().map_err(crate::store::io_err(&path))?.len();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok((file, len, name))
    })
    .await?;
    // Streamed in chunks as the client reads; a slow client slows the reads.
    let stream = tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(file));
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let disposition = format!("attachment; filename=\"{safe}\"");
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&disposition)
                    .unwrap_or(HeaderValue::from_static("attachment")),
            ),
            (header::CONTENT_LENGTH, HeaderValue::from(len)),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// `GET /api/runs/{project}/{id}/output[?from=BYTE][&max=BYTES]`.
pub async fn output(
    State(s): State<Arc<UiState>>,
    Path((project, id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::new(query);
    let from = params.parsed::<u64>("from", "a byte offset")?;
    let max = params
        .parsed::<u64>("max", "a number of bytes")?
        .unwrap_or(DEFAULT_OUTPUT);
    if max == 0 || max > MAX_OUTPUT {
        return Err(UiError::bad(format!("`max` must be 1..={MAX_OUTPUT}")).into());
    }
    let data_dir = s.data_dir.clone();
    let out = blocking(move || {
        let dir = reader::run_dir(&data_dir, &project, &id)?;
        reader::output(&dir, from, max)
    })
    .await?;
    Ok(json(&out))
}
