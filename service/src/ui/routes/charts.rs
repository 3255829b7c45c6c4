//! The charts' API: which metrics a run has (`/metrics`) and one metric's series,
//! downsampled to the chart's width (`/series`), both from the run's index.

use std::path::Path as FsPath;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use serde::Serialize;

use super::{blocking, json, Params};
use crate::ui::downsample::{Sampled, MAX_WIDTH};
use crate::ui::error::{ApiError, UiError};
use crate::ui::index::{AxisCache, Range, RunIndex, Source};
use crate::ui::{reader, sections, UiState};

/// The x axes every history row has.
const HISTORY_AXES: [&str; 3] = ["_step", "_runtime", "_timestamp"];
/// The x axes every system sample has.
const SYSTEM_AXES: [&str; 2] = ["_runtime", "_timestamp"];
/// A chart's width when the request names none.
const DEFAULT_WIDTH: usize = 800;

#[derive(Debug, Serialize)]
struct MetricInfo {
    key: String,
    section: String,
    /// Rows that have it, and of those, rows where it is NaN or ±Inf.
    count: u64,
    nonfinite: u64,
    /// From define_metric: its x axis, and whether it is hidden.
    step_metric: Option<String>,
    hidden: bool,
}

#[derive(Debug, Serialize)]
struct MetricList {
    rows: u64,
    x_axes: Vec<String>,
    system_x_axes: [&'static str; 2],
    history: Vec<MetricInfo>,
    system: Vec<MetricInfo>,
}

/// `GET /api/runs/{project}/{id}/metrics`.
pub async fn metrics(
    State(s): State<Arc<UiState>>,
    Path((project, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let data_dir = s.data_dir.clone();
    let list = blocking(move || {
        let dir = reader::run_dir(&data_dir, &project, &id)?;
        metric_list(&dir)
    })
    .await?;
    Ok(json(&list))
}

fn metric_list(dir: &FsPath) -> Result<MetricList, UiError> {
    let index = RunIndex::open(dir)?;
    let mut defs = index.definitions()?;
    let history = index.snapshot(Source::History)?;
    let mut x_axes: Vec<String> = HISTORY_AXES.iter().map(|s| s.to_string()).collect();
    let mut metrics = Vec::new();
    for col in history
        .manifest
        .columns
        .iter()
        .filter(|c| !c.key.starts_with('_'))
    {
        let def = defs.lookup(&col.key, &col.top);
        let step_metric = def
            .as_ref()
            .and_then(|d| d.step_metric.clone())
            .filter(|sm| history.column(sm).is_some());
        if let Some(sm) = &step_metric {
            if !x_axes.contains(sm) {
                x_axes.push(sm.clone());
            }
        }
        metrics.push(MetricInfo {
            section: sections::history_section(&col.key, &col.top),
            key: col.key.clone(),
            count: col.count,
            nonfinite: col.nonfinite,
            hidden: def.is_some_and(|d| d.hidden),
            step_metric,
        });
    }
    let rows = history.manifest.rows;
    drop(history);
    let events = index.snapshot(Source::Events)?;
    let mut system: Vec<MetricInfo> = events
        .manifest
        .columns
        .iter()
        .filter(|c| !c.key.starts_with('_'))
        .map(|c| MetricInfo {
            section: sections::system_section(&c.key),
            key: c.key.clone(),
            count: c.count,
            nonfinite: c.nonfinite,
            step_metric: None,
            hidden: false,
        })
        .collect();
    for list in [&mut metrics, &mut system] {
        list.sort_by(|a, b| {
            (sections::section_rank(&a.section), &a.key)
                .cmp(&(sections::section_rank(&b.section), &b.key))
        });
    }
    Ok(MetricList {
        rows,
        x_axes,
        system_x_axes: SYSTEM_AXES,
        history: metrics,
        system,
    })
}

#[derive(Debug, Serialize)]
struct SeriesReply {
    key: String,
    x_key: String,
    /// Points in the requested x range before downsampling.
    total: usize,
    #[serde(flatten)]
    sampled: Sampled,
}

/// What a series request asks for.
struct SeriesQuery {
    source: Source,
    key: String,
    x_key: String,
    width: usize,
    lo: Option<f64>,
    hi: Option<f64>,
}

fn series_query(params: &Params) -> Result<SeriesQuery, UiError> {
    let source = match params.get("source").unwrap_or("history") {
        "history" => Source::History,
        "system" => Source::Events,
        other => {
            return Err(UiError::bad(format!(
                "`source={other}`: use history or system"
            )))
        }
    };
    let default_x = if source == Source::History {
        "_step"
    } else {
        "_runtime"
    };
    let width = params
        .parsed::<usize>("width", "a width in pixels")?
        .unwrap_or(DEFAULT_WIDTH);
    if !(1..=MAX_WIDTH).contains(&width) {
        return Err(UiError::bad(format!(
            "`width={width}` must be 1..={MAX_WIDTH}"
        )));
    }
    let lo = params.parsed::<f64>("min", "a number")?;
    let hi = params.parsed::<f64>("max", "a number")?;
    if lo.is_some_and(|v| !v.is_finite()) || hi.is_some_and(|v| !v.is_finite()) {
        return Err(UiError::bad("`min` and `max` must be finite numbers"));
    }
    Ok(SeriesQuery {
        source,
        key: params.required("key")?.to_owned(),
        x_key: params.get("x").unwrap_or(default_x).to_owned(),
        width,
        lo,
        hi,
    })
}

/// `GET /api/runs/{project}/{id}/series?key=K[&x=X][&width=W][&min=A&max=B][&source=system]`.
pub async fn series(
    State(s): State<Arc<UiState>>,
    Path((project, id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let q = series_query(&Params::new(query))?;
    let data_dir = s.data_dir.clone();
    let axes = s.axes.clone();
    let reply = blocking(move || {
        let dir = reader::run_dir(&data_dir, &project, &id)?;
        read_series(&dir, q, &axes)
    })
    .await?;
    Ok(json(&reply))
}

fn read_series(dir: &FsPath, q: SeriesQuery, axes: &AxisCache) -> Result<SeriesReply, UiError> {
    let index = RunIndex::open(dir)?;
    let snap = index.snapshot(q.source)?;
    let y = snap
        .column(&q.key)
        .filter(|c| !c.key.starts_with('_'))
        .ok_or_else(|| UiError::NoMetric(q.key.clone()))?;
    let x = snap.column(&q.x_key).ok_or_else(|| {
        UiError::bad(format!(
            "x axis {:?} is not in this run; use _step, _runtime, _timestamp or a metric's step_metric (see /metrics)",
            q.x_key
        ))
    })?;
    let range = Range { lo: q.lo, hi: q.hi };
    let (total, sampled) = snap.sample(y, x, range, q.width, axes)?;
    Ok(SeriesReply {
        total,
        sampled,
        key: q.key,
        x_key: q.x_key,
    })
}
