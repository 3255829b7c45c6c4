//! `define_metric`: parsing definitions, merging them, and finding the one that
//! governs a key (an exact name beats a glob; among globs the longest prefix wins).

use std::collections::HashMap;
use std::sync::Arc;

use crate::proto::v1::{DefineMetricRequest, MetricDefinition};

/// Summary aggregations a metric can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agg {
    Min,
    Max,
    Mean,
    First,
    Last,
    Best,
}

impl Agg {
    pub const ALL: [Agg; 6] = [
        Agg::Min,
        Agg::Max,
        Agg::Mean,
        Agg::First,
        Agg::Last,
        Agg::Best,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Agg::Min => "min",
            Agg::Max => "max",
            Agg::Mean => "mean",
            Agg::First => "first",
            Agg::Last => "last",
            Agg::Best => "best",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goal {
    Minimize,
    Maximize,
}

/// What a definition says about the summary of its keys.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum SummaryRule {
    /// No `summary=` given: the summary holds the last value, as without a definition.
    #[default]
    Default,
    /// `summary="none"`: the key is kept out of the summary.
    Hidden,
    /// The listed aggregations, each under its name: `{"min": .., "max": ..}`.
    Aggs(Vec<Agg>),
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct MetricDef {
    pub name: String,
    pub step_metric: Option<String>,
    pub step_sync: bool,
    pub hidden: bool,
    pub summary: SummaryRule,
    pub goal: Option<Goal>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MetricError {
    #[error("define_metric: name is empty")]
    EmptyName,
    #[error("define_metric: name {0:?} has '*' before its end; only a trailing '*' (a prefix glob such as \"val/*\") is supported")]
    GlobNotTrailing(String),
    #[error("define_metric: unknown summary option {0:?}; use any of min, max, mean, first, last, best, none (comma-separated; copy means last)")]
    UnknownSummary(String),
    #[error("define_metric: summary \"none\" cannot be combined with other options")]
    NoneWithOthers,
    #[error("define_metric: unknown goal {0:?}; use \"minimize\" or \"maximize\"")]
    UnknownGoal(String),
    #[error("define_metric: summary \"best\" needs goal=\"minimize\" or goal=\"maximize\"")]
    BestWithoutGoal,
    #[error("define_metric: step_metric {0:?} may not be a glob")]
    GlobStepMetric(String),
}

fn parse_summary(text: &str) -> Result<Option<SummaryRule>, MetricError> {
    let parts: Vec<&str> = text
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if parts.is_empty() {
        return Ok(None);
    }
    if parts.contains(&"none") {
        return if parts.len() == 1 {
            Ok(Some(SummaryRule::Hidden))
        } else {
            Err(MetricError::NoneWithOthers)
        };
    }
    let mut aggs = Vec::new();
    for p in parts {
        // W&B's deprecated "copy" is its old name for the last value.
        let p = if p.eq_ignore_ascii_case("copy") {
            "last"
        } else {
            p
        };
        let agg = Agg::ALL
            .into_iter()
            .find(|a| a.name() == p.to_ascii_lowercase())
            .ok_or_else(|| MetricError::UnknownSummary(p.to_owned()))?;
        if !aggs.contains(&agg) {
            aggs.push(agg);
        }
    }
    Ok(Some(SummaryRule::Aggs(aggs)))
}

fn parse_goal(text: &str) -> Result<Option<Goal>, MetricError> {
    match text.trim().to_ascii_lowercase().as_str() {
        "" => Ok(None),
        "minimize" | "min" => Ok(Some(Goal::Minimize)),
        "maximize" | "max" => Ok(Some(Goal::Maximize)),
        _ => Err(MetricError::UnknownGoal(text.to_owned())),
    }
}

/// Checks a request; `Ok` means [`Metrics::define`] will accept it.
pub fn check(req: &DefineMetricRequest) -> Result<(), MetricError> {
    match parse(req, None) {
        // With overwrite=false an earlier definition may give the goal: the run
        // checks the merged definition (Metrics::check).
        Err(MetricError::BestWithoutGoal) if req.overwrite == Some(false) => Ok(()),
        other => other.map(|_| ()),
    }
}

/// The definition a request makes, merged into `earlier` when overwrite=false.
fn parse(req: &DefineMetricRequest, earlier: Option<&MetricDef>) -> Result<MetricDef, MetricError> {
    let name = req.name.trim();
    if name.is_empty() {
        return Err(MetricError::EmptyName);
    }
    if name.trim_end_matches('*').contains('*') {
        return Err(MetricError::GlobNotTrailing(name.to_owned()));
    }
    if req.step_metric.contains('*') {
        return Err(MetricError::GlobStepMetric(req.step_metric.clone()));
    }
    let summary = parse_summary(&req.summary)?;
    let goal = parse_goal(&req.goal)?;
    let step_metric = (!req.step_metric.is_empty()).then(|| req.step_metric.clone());
    let base = match (req.overwrite, earlier) {
        (Some(false), Some(e)) => e.clone(),
        _ => MetricDef::default(),
    };
    let step_metric = step_metric.or(base.step_metric);
    let def = MetricDef {
        name: name.to_owned(),
        step_sync: req.step_sync.unwrap_or(if step_metric.is_some() {
            true
        } else {
            base.step_sync
        }),
        step_metric,
        hidden: req.hidden.unwrap_or(base.hidden),
        summary: summary.unwrap_or(base.summary),
        goal: goal.or(base.goal),
    };
    if let SummaryRule::Aggs(aggs) = &def.summary {
        if aggs.contains(&Agg::Best) && def.goal.is_none() {
            return Err(MetricError::BestWithoutGoal);
        }
    }
    Ok(def)
}

impl MetricDef {
    pub fn to_proto(&self) -> MetricDefinition {
        MetricDefinition {
            name: self.name.clone(),
            step_metric: self.step_metric.clone().unwrap_or_default(),
            step_sync: self.step_sync,
            hidden: self.hidden,
            summary: match &self.summary {
                SummaryRule::Default => Vec::new(),
                SummaryRule::Hidden => vec!["none".into()],
                SummaryRule::Aggs(a) => a.iter().map(|a| a.name().to_owned()).collect(),
            },
            goal: match self.goal {
                None => String::new(),
                Some(Goal::Minimize) => "minimize".into(),
                Some(Goal::Maximize) => "maximize".into(),
            },
        }
    }
}

/// A run's metric definitions.
#[derive(Debug, Default)]
pub struct Metrics {
    defs: Vec<MetricDef>,
    exact: HashMap<String, usize>,
    /// (prefix without '*', index), longest prefix first.
    globs: Vec<(String, usize)>,
    /// Memo of key -> governing definition; cleared when definitions change.
    cache: HashMap<Arc<str>, Option<usize>>,
    /// Names used as some definition's step_metric.
    step_metrics: Vec<String>,
}

impl Metrics {
    /// Metric definitions held.
    pub fn len(&self) -> usize {
        self.defs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.defs.is_empty()
    }

    /// Whether `req` makes a valid definition here, merged with an earlier one
    /// when overwrite=false (the request itself was checked with [`check`]).
    pub fn check(&self, req: &DefineMetricRequest) -> Result<(), MetricError> {
        let earlier = self.index_of(req.name.trim()).map(|i| &self.defs[i]);
        parse(req, earlier).map(|_| ())
    }

    /// Adds or replaces a definition.
    pub fn define(&mut self, req: &DefineMetricRequest) -> Result<&MetricDef, MetricError> {
        let name = req.name.trim();
        let existing = self.index_of(name);
        let def = parse(req, existing.map(|i| &self.defs[i]))?;
        let idx = match existing {
            Some(i) => {
                self.defs[i] = def;
                i
            }
            None => {
                self.defs.push(def);
                let i = self.defs.len() - 1;
                match name.strip_suffix('*') {
                    Some(prefix) => {
                        self.globs.push((prefix.to_owned(), i));
                        self.globs.sort_by_key(|g| std::cmp::Reverse(g.0.len()));
                    }
                    None => {
                        self.exact.insert(name.to_owned(), i);
                    }
                }
                i
            }
        };
        self.cache.clear();
        self.step_metrics = self
            .defs
            .iter()
            .filter_map(|d| d.step_metric.clone())
            .collect();
        self.step_metrics.sort();
        self.step_metrics.dedup();
        Ok(&self.defs[idx])
    }

    fn index_of(&self, name: &str) -> Option<usize> {
        match name.strip_suffix('*') {
            Some(prefix) => self
                .globs
                .iter()
                .find(|(p, _)| p == prefix)
                .map(|(_, i)| *i),
            None => self.exact.get(name).copied(),
        }
    }

    /// The definition governing `key`.
    pub fn lookup(&mut self, key: &Arc<str>) -> Option<&MetricDef> {
        if self.defs.is_empty() {
            return None;
        }
        let idx = match self.cache.get(key) {
            Some(i) => *i,
            None => {
                let i = self.exact.get(&**key).copied().or_else(|| {
                    self.globs
                        .iter()
                        .find(|(p, _)| key.starts_with(p.as_str()))
                        .map(|(_, i)| *i)
                });
                self.cache.insert(key.clone(), i);
                i
            }
        };
        idx.map(|i| &self.defs[i])
    }

    /// Whether `key` is some definition's step metric.
    pub fn is_step_metric(&self, key: &str) -> bool {
        self.step_metrics.iter().any(|s| s == key)
    }

    pub fn has_step_metrics(&self) -> bool {
        !self.step_metrics.is_empty()
    }

    pub fn all(&self) -> &[MetricDef] {
        &self.defs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(name: &str) -> DefineMetricRequest {
        DefineMetricRequest {
            name: name.into(),
            ..Default::default()
        }
    }

    #[test]
    fn exact_beats_glob_and_longest_glob_wins() {
        let mut m = Metrics::default();
        m.define(&DefineMetricRequest {
            summary: "min".into(),
            ..req("*")
        })
        .unwrap();
        m.define(&DefineMetricRequest {
            summary: "max".into(),
            ..req("val/*")
        })
        .unwrap();
        m.define(&DefineMetricRequest {
            summary: "mean".into(),
            ..req("val/loss")
        })
        .unwrap();
        let name = |m: &mut Metrics, k: &str| m.lookup(&Arc::from(k)).map(|d| d.name.clone());
        assert_eq!(name(&mut m, "val/loss").as_deref(), Some("val/loss"));
        assert_eq!(name(&mut m, "val/acc").as_deref(), Some("val/*"));
        assert_eq!(name(&mut m, "train").as_deref(), Some("*"));
    }

    #[test]
    fn overwrite_false_merges_and_default_replaces() {
        let mut m = Metrics::default();
        m.define(&DefineMetricRequest {
            step_metric: "epoch".into(),
            summary: "max".into(),
            ..req("acc")
        })
        .unwrap();
        let merged = m
            .define(&DefineMetricRequest {
                hidden: Some(true),
                overwrite: Some(false),
                ..req("acc")
            })
            .unwrap()
            .clone();
        assert_eq!(merged.step_metric.as_deref(), Some("epoch"));
        assert!(merged.step_sync);
        assert!(merged.hidden);
        assert_eq!(merged.summary, SummaryRule::Aggs(vec![Agg::Max]));
        let replaced = m.define(&req("acc")).unwrap();
        assert_eq!(replaced.step_metric, None);
        assert_eq!(replaced.summary, SummaryRule::Default);
    }

    #[test]
    fn bad_definitions_say_what_to_fix() {
        assert_eq!(check(&req("")), Err(MetricError::EmptyName));
        assert!(matches!(
            check(&req("a*b")),
            Err(MetricError::GlobNotTrailing(_))
        ));
        assert!(matches!(
            check(&DefineMetricRequest { summary: "min,median".into(), ..req("a") }),
            Err(MetricError::UnknownSummary(s)) if s == "median"
        ));
        assert_eq!(
            check(&DefineMetricRequest {
                summary: "best".into(),
                ..req("a")
            }),
            Err(MetricError::BestWithoutGoal)
        );
        assert!(matches!(
            check(&DefineMetricRequest {
                goal: "up".into(),
                ..req("a")
            }),
            Err(MetricError::UnknownGoal(_))
        ));
        assert_eq!(
            check(&DefineMetricRequest {
                summary: "none,min".into(),
                ..req("a")
            }),
            Err(MetricError::NoneWithOthers)
        );
    }
}
