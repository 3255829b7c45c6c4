//! A run's artifacts, media values, table pages, and media files shown inline.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

use super::{blocking, json, Params};
use crate::ui::error::{ApiError, PageError, UiError};
use crate::ui::media::{self, TableQuery};
use crate::ui::{artifacts, reader, UiState};

/// Rows a table page gets when it does not say.
const DEFAULT_LIMIT: usize = 50;

/// `GET /api/runs/{project}/{id}/artifacts`: what the run logged and used.
pub async fn artifacts(
    State(s): State<Arc<UiState>>,
    Path((project, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let data_dir = s.data_dir.clone();
    let out = blocking(move || {
        let dir = reader::run_dir(&data_dir, &project, &id)?;
        let run = crate::store::read_run_file(&dir)?;
        let path = crate::semantics::state::run_path(&run.entity, &run.project, &run.id);
        Ok(artifacts::of_run(&data_dir, &path))
    })
    .await?;
    Ok(json(&out))
}

/// `GET /api/runs/{project}/{id}/media`: media values by key.
pub async fn list(
    State(s): State<Arc<UiState>>,
    Path((project, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let data_dir = s.data_dir.clone();
    let keys = blocking(move || media::media(&reader::run_dir(&data_dir, &project, &id)?)).await?;
    Ok(json(&keys))
}

/// `GET /api/runs/{project}/{id}/table?path=&offset=&limit=&sort=&desc=`.
pub async fn table(
    State(s): State<Arc<UiState>>,
    Path((project, id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::new(query);
    let rel = params.required("path")?.to_owned();
    let limit = params
        .parsed::<usize>("limit", "a number of rows")?
        .unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > media::MAX_LIMIT {
        return Err(UiError::bad(format!("`limit` must be 1..={}", media::MAX_LIMIT)).into());
    }
    let q = TableQuery {
        offset: params.parsed("offset", "a row number")?.unwrap_or(0),
        limit,
        sort: params
            .get("sort")
            .filter(|v| !v.is_empty())
            .map(str::to_owned),
        desc: params.parsed("desc", "true or false")?.unwrap_or(false),
    };
    let data_dir = s.data_dir.clone();
    let page = blocking(move || {
        let dir = reader::run_dir(&data_dir, &project, &id)?;
        media::table(&dir, &rel, &q)
    })
    .await?;
    Ok(json(&page))
}

/// `GET /media/{project}/{id}/{path}`: an image under files/, inline with its
/// type. Only raster images: anything else is a download (`/files/...`), so no
/// saved file runs as a page of this origin.
pub async fn image(
    State(s): State<Arc<UiState>>,
    Path((project, id, rel)): Path<(String, String, String)>,
) -> Result<Response, PageError> {
    let ext = rel
        .rsplit('.')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let ctype = match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "bmp" => "image/bmp",
        _ => {
            return Err(UiError::bad(format!(
                "{rel:?} is not an image shown inline (png, jpeg, gif, webp, bmp); /files/ downloads it"
            ))
            .into())
        }
    };
    let data_dir = s.data_dir.clone();
    let bytes = blocking(move || {
        let dir = reader::run_dir(&data_dir, &project, &id)?;
        let path = reader::saved_file(&dir, &rel)?;
        std::fs::read(&path).map_err(|e| crate::store::io_err(&path)(e).into())
    })
    .await?;
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(ctype)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, max-age=3600"),
            ),
        ],
        bytes,
    )
        .into_response())
}
