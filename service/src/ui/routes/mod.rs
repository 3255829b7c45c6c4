//! The UI's routes: pages (one HTML shell that the scripts fill in, after the
//! server has checked that what the URL names exists), the JSON API the pages
//! use (documented in docs/UI.md), saved-file downloads and the embedded assets.

mod api;
mod charts;
mod files;
mod media;
mod pages;

use std::str::FromStr;
use std::sync::Arc;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Serialize;

use super::error::UiError;
use super::UiState;

/// Every route.
pub fn router(state: Arc<UiState>) -> Router {
    Router::new()
        .route("/", get(pages::projects))
        .route("/projects/{project}", get(pages::project))
        .route("/runs/{project}/{id}", get(pages::run))
        .route("/compare", get(pages::compare))
        .route("/assets/{*name}", get(pages::asset))
        .route("/files/{project}/{id}/{*path}", get(files::download))
        .route("/media/{project}/{id}/{*path}", get(media::image))
        .route("/api/info", get(api::info))
        .route("/api/projects", get(api::projects))
        .route("/api/projects/{project}/runs", get(api::runs))
        .route("/api/runs/{project}/{id}", get(api::run))
        .route("/api/runs/{project}/{id}/status", get(api::status))
        .route("/api/runs/{project}/{id}/metrics", get(charts::metrics))
        .route("/api/runs/{project}/{id}/series", get(charts::series))
        .route("/api/runs/{project}/{id}/files", get(files::list))
        .route("/api/runs/{project}/{id}/output", get(files::output))
        .route("/api/runs/{project}/{id}/artifacts", get(media::artifacts))
        .route("/api/runs/{project}/{id}/media", get(media::list))
        .route("/api/runs/{project}/{id}/table", get(media::table))
        .route("/api/{*rest}", get(api::not_found))
        .fallback(pages::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            super::auth::gate,
        ))
        .with_state(state)
}

/// Runs blocking work (file reads, index updates) off the runtime's threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, UiError> + Send + 'static,
) -> Result<T, UiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| UiError::Worker(e.to_string()))?
}

/// A JSON answer that browsers do not cache.
fn json(value: &impl Serialize) -> Response {
    match serde_json::to_string(value) {
        Ok(body) => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
            body,
        )
            .into_response(),
        Err(e) => UiError::Worker(format!("encoding JSON: {e}")).json(),
    }
}

/// A request's query parameters.
struct Params(Vec<(String, String)>);

impl Params {
    fn new(query: Option<String>) -> Self {
        Params(
            form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn required(&self, key: &str) -> Result<&str, UiError> {
        self.get(key)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| UiError::bad(format!("the query needs `{key}`")))
    }

    /// A parsed parameter, or None when absent; a malformed one is a 400.
    fn parsed<T: FromStr>(&self, key: &str, what: &str) -> Result<Option<T>, UiError> {
        match self.get(key).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| UiError::bad(format!("`{key}={v}` is not {what}"))),
        }
    }
}
