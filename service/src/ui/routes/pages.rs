//! Pages: the HTML shell for each page (its scripts read the URL and call the
//! API), after checking that the project, run or runs the URL names exist, so a
//! wrong URL is a 404 or 400 page; and the embedded assets.

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::{blocking, Params};
use crate::ui::assets;
use crate::ui::error::{PageError, UiError};
use crate::ui::reader;
use crate::ui::UiState;

/// Most runs one compare page overlays.
pub const MAX_COMPARE: usize = 12;

fn shell() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        assets::SHELL,
    )
        .into_response()
}

pub async fn projects() -> Response {
    shell()
}

pub async fn project(
    State(s): State<Arc<UiState>>,
    Path(project): Path<String>,
) -> Result<Response, PageError> {
    let data_dir = s.data_dir.clone();
    blocking(move || reader::project_dir(&data_dir, &project)).await?;
    Ok(shell())
}

pub async fn run(
    State(s): State<Arc<UiState>>,
    Path((project, id)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let data_dir = s.data_dir.clone();
    blocking(move || reader::run_dir(&data_dir, &project, &id)).await?;
    Ok(shell())
}

/// Parses `runs=project/id,project/id`.
pub fn compare_list(params: &Params) -> Result<Vec<(String, String)>, UiError> {
    let list = params.required("runs")?;
    let runs: Vec<(String, String)> = list
        .split(',')
        .map(|item| {
            item.split_once('/')
                .filter(|(p, id)| !p.is_empty() && !id.is_empty() && !id.contains('/'))
                .map(|(p, id)| (p.to_owned(), id.to_owned()))
                .ok_or_else(|| {
                    UiError::bad(format!(
                        "`runs` is a comma-separated list of project/run-id; {item:?} is not"
                    ))
                })
        })
        .collect::<Result<_, _>>()?;
    if runs.len() > MAX_COMPARE {
        return Err(UiError::bad(format!(
            "compare takes at most {MAX_COMPARE} runs, got {}",
            runs.len()
        )));
    }
    Ok(runs)
}

pub async fn compare(
    State(s): State<Arc<UiState>>,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    let runs = compare_list(&Params::new(query))?;
    let data_dir = s.data_dir.clone();
    blocking(move || {
        runs.iter()
            .map(|(p, id)| reader::run_dir(&data_dir, p, id))
            .collect::<Result<Vec<PathBuf>, _>>()
    })
    .await?;
    Ok(shell())
}

pub async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    let Some(asset) = assets::find(&name) else {
        return UiError::NoPage(format!("/assets/{name}")).page();
    };
    let etag = asset.etag();
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes());
    let head = [
        (header::CONTENT_TYPE, HeaderValue::from_static(asset.mime)),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            header::ETAG,
            HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"0\"")),
        ),
    ];
    if fresh {
        (StatusCode::NOT_MODIFIED, head).into_response()
    } else {
        (head, asset.bytes).into_response()
    }
}

pub async fn not_found(uri: Uri) -> Response {
    UiError::NoPage(uri.path().to_owned()).page()
}
