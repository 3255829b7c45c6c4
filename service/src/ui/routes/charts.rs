//! The charts' API: which metrics a run has (`/metrics`) and one metric's series,
//! downsampled to the chart's width (`/series`), both from the run's index; or,
//! while a big run is indexed in the background, from a preview of sampled
//! lines, said so in the reply (`indexing`, `preview`).

use std::path::Path as FsPath;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use serde::Serialize;

use super::{blocking, json, Params};
use crate::ui::downsample::{downsample, Sampled, MAX_WIDTH};
use crate::ui::error::{ApiError, UiError};
use crate::ui::index::background::{Indexer, Progress};
use crate::ui::index::preview::Preview;
use crate::ui::index::{window, AxisCache, Definitions, Range, RunIndex, Source};
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
    /// Rows of history (estimated from the preview while indexing).
    rows: u64,
    /// Present while the run is indexed in the background: the lists (and every
    /// series) come from `preview_lines` sampled lines until it is gone.
    #[serde(skip_serializing_if = "Option::is_none")]
    indexing: Option<Progress>,
    #[serde(skip_serializing_if = "Option::is_none")]
    preview_lines: Option<usize>,
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
    let indexer = s.indexer.clone();
    let list = blocking(move || {
        let dir = reader::run_dir(&data_dir, &project, &id)?;
        let index = RunIndex::open(&dir)?;
        match indexer.pending(&dir, &index) {
            None => metric_list(&index),
            Some(progress) => preview_list(&indexer, &dir, &index, progress),
        }
    })
    .await?;
    Ok(json(&list))
}

/// A numeric key as the lists need it: key, top-level key, count, non-finite.
struct Col<'a>(&'a str, &'a str, u64, u64);

fn metric_list(index: &RunIndex) -> Result<MetricList, UiError> {
    let mut defs = index.definitions()?;
    let history = index.snapshot(Source::History)?;
    let cols = history
        .manifest
        .columns
        .iter()
        .map(|c| Col(&c.key, &c.top, c.count, c.nonfinite));
    let has = |k: &str| history.column(k).is_some();
    let (x_axes, metrics) = history_list(cols, &has, &mut defs);
    let rows = history.manifest.rows;
    drop(history);
    let events = index.snapshot(Source::Events)?;
    let system = system_list(
        events
            .manifest
            .columns
            .iter()
            .map(|c| Col(&c.key, &c.top, c.count, c.nonfinite)),
    );
    Ok(MetricList {
        rows,
        indexing: None,
        preview_lines: None,
        x_axes,
        system_x_axes: SYSTEM_AXES,
        history: metrics,
        system,
    })
}

/// The lists from previews of the run's files, while its index is built. The
/// definitions are those saved by an earlier index, if any (reading them from
/// the log is part of the background job).
fn preview_list(
    indexer: &Indexer,
    dir: &FsPath,
    index: &RunIndex,
    progress: Progress,
) -> Result<MetricList, UiError> {
    let history = indexer.preview(dir, Source::History)?;
    let events = indexer.preview(dir, Source::Events)?;
    let cols = |p: &'_ Preview| -> Vec<(String, String, u64, u64)> {
        p.keys
            .iter()
            .map(|(k, top)| {
                let (n, bad) = p.count(k);
                (k.clone(), k.get(..*top).unwrap_or(k).to_owned(), n, bad)
            })
            .collect()
    };
    let (hc, ec) = (cols(&history), cols(&events));
    let has = |k: &str| history.has(k);
    let mut defs = index.saved_definitions();
    let (x_axes, metrics) = history_list(hc.iter().map(as_col), &has, &mut defs);
    Ok(MetricList {
        rows: history.estimated_lines(),
        indexing: Some(progress),
        preview_lines: Some(history.lines()),
        x_axes,
        system_x_axes: SYSTEM_AXES,
        history: metrics,
        system: system_list(ec.iter().map(as_col)),
    })
}

fn as_col(c: &(String, String, u64, u64)) -> Col<'_> {
    Col(&c.0, &c.1, c.2, c.3)
}

/// The history metrics (keys not starting with `_`) in display order, and the
/// x axes they offer.
fn history_list<'a>(
    cols: impl Iterator<Item = Col<'a>>,
    has: &dyn Fn(&str) -> bool,
    defs: &mut Definitions,
) -> (Vec<String>, Vec<MetricInfo>) {
    let mut x_axes: Vec<String> = HISTORY_AXES.iter().map(|s| s.to_string()).collect();
    let mut metrics = Vec::new();
    for Col(key, top, count, nonfinite) in cols.filter(|c| !c.0.starts_with('_')) {
        let def = defs.lookup(key, top);
        let step_metric = def
            .as_ref()
            .and_then(|d| d.step_metric.clone())
            .filter(|sm| has(sm));
        if let Some(sm) = &step_metric {
            if !x_axes.contains(sm) {
                x_axes.push(sm.clone());
            }
        }
        metrics.push(MetricInfo {
            section: sections::history_section(key, top),
            key: key.to_owned(),
            count,
            nonfinite,
            hidden: def.is_some_and(|d| d.hidden),
            step_metric,
        });
    }
    sort(&mut metrics);
    (x_axes, metrics)
}

/// The system metrics in display order.
fn system_list<'a>(cols: impl Iterator<Item = Col<'a>>) -> Vec<MetricInfo> {
    let mut system: Vec<MetricInfo> = cols
        .filter(|c| !c.0.starts_with('_'))
        .map(|Col(key, _, count, nonfinite)| MetricInfo {
            section: sections::system_section(key),
            key: key.to_owned(),
            count,
            nonfinite,
            step_metric: None,
            hidden: false,
        })
        .collect();
    sort(&mut system);
    system
}

fn sort(list: &mut [MetricInfo]) {
    list.sort_by(|a, b| {
        (sections::section_rank(&a.section), &a.key)
            .cmp(&(sections::section_rank(&b.section), &b.key))
    });
}

#[derive(Debug, Serialize)]
struct SeriesReply {
    key: String,
    x_key: String,
    /// Points in the requested x range before downsampling.
    total: usize,
    /// Drawn from a preview's sampled lines (the run is being indexed).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    preview: bool,
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
    let indexer = s.indexer.clone();
    let reply = blocking(move || {
        let dir = reader::run_dir(&data_dir, &project, &id)?;
        let index = RunIndex::open(&dir)?;
        match indexer.pending(&dir, &index) {
            None => read_series(&index, q, &axes),
            Some(_) => preview_series(&*indexer.preview(&dir, q.source)?, q),
        }
    })
    .await?;
    Ok(json(&reply))
}

fn no_x_axis(x_key: &str) -> UiError {
    UiError::bad(format!(
        "x axis {x_key:?} is not in this run; use _step, _runtime, _timestamp or a metric's step_metric (see /metrics)"
    ))
}

fn read_series(index: &RunIndex, q: SeriesQuery, axes: &AxisCache) -> Result<SeriesReply, UiError> {
    let snap = index.snapshot(q.source)?;
    let y = snap
        .column(&q.key)
        .filter(|c| !c.key.starts_with('_'))
        .ok_or_else(|| UiError::NoMetric(q.key.clone()))?;
    let x = snap.column(&q.x_key).ok_or_else(|| no_x_axis(&q.x_key))?;
    let range = Range { lo: q.lo, hi: q.hi };
    let (total, sampled) = snap.sample(y, x, range, q.width, axes)?;
    Ok(SeriesReply {
        total,
        preview: false,
        sampled,
        key: q.key,
        x_key: q.x_key,
    })
}

fn preview_series(p: &Preview, q: SeriesQuery) -> Result<SeriesReply, UiError> {
    if q.key.starts_with('_') || !p.has(&q.key) {
        return Err(UiError::NoMetric(q.key));
    }
    let points = p
        .points(&q.key, &q.x_key)
        .ok_or_else(|| no_x_axis(&q.x_key))?;
    let inside = window(&points, q.lo, q.hi);
    Ok(SeriesReply {
        total: inside.len(),
        preview: true,
        sampled: downsample(inside, q.width),
        key: q.key,
        x_key: q.x_key,
    })
}
