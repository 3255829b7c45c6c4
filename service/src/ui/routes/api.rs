//! The API's store reads: projects, a project's runs, a run, a run's status.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::Uri;
use axum::response::Response;
use serde_json::json;

use super::{blocking, json};
use crate::ui::error::{ApiError, UiError};
use crate::ui::reader;
use crate::ui::UiState;

/// `GET /api/info`: what this UI shows.
pub async fn info(State(s): State<Arc<UiState>>) -> Response {
    json(&json!({
        "data_dir": s.data_dir.display().to_string(),
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

/// `GET /api/projects`.
pub async fn projects(State(s): State<Arc<UiState>>) -> Result<Response, ApiError> {
    let data_dir = s.data_dir.clone();
    let rows = blocking(move || Ok(reader::projects(&data_dir))).await?;
    Ok(json(&rows))
}

/// `GET /api/projects/{project}/runs`.
pub async fn runs(
    State(s): State<Arc<UiState>>,
    Path(project): Path<String>,
) -> Result<Response, ApiError> {
    let data_dir = s.data_dir.clone();
    let rows = blocking(move || reader::runs(&data_dir, &project)).await?;
    Ok(json(&rows))
}

/// `GET /api/runs/{project}/{id}`.
pub async fn run(
    State(s): State<Arc<UiState>>,
    Path((project, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let data_dir = s.data_dir.clone();
    let detail = blocking(move || {
        let dir = reader::run_dir(&data_dir, &project, &id)?;
        reader::run_detail(&dir)
    })
    .await?;
    Ok(json(&detail))
}

/// `GET /api/runs/{project}/{id}/status`: polled by live pages.
pub async fn status(
    State(s): State<Arc<UiState>>,
    Path((project, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let data_dir = s.data_dir.clone();
    let status = blocking(move || {
        let dir = reader::run_dir(&data_dir, &project, &id)?;
        reader::status(&dir)
    })
    .await?;
    Ok(json(&status))
}

pub async fn not_found(uri: Uri) -> ApiError {
    ApiError(UiError::NoPage(uri.path().to_owned()))
}
