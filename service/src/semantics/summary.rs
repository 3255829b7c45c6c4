//! The run summary: per key, the last value by default, or the aggregations a
//! metric definition asks for. NaN is ignored by min, max, mean and best (it never
//! poisons them); an explicit summary update wins over aggregation for its key.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::metrics::{Agg, Goal, Metrics, SummaryRule};
use crate::memory::{entry_bytes, value_bytes};
use crate::proto::v1::Value;
use crate::value::{self, as_f64};

#[derive(Debug)]
struct Entry {
    first: Value,
    last: Value,
    /// Over the non-NaN numeric values seen.
    min: f64,
    max: f64,
    sum: f64,
    count: u64,
}

impl Entry {
    fn new(v: &Value) -> Self {
        let mut e = Entry {
            first: v.clone(),
            last: v.clone(),
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            sum: 0.0,
            count: 0,
        };
        e.fold(v);
        e
    }

    /// Folds `v` in; returns the bytes the entry holds now minus before.
    fn update(&mut self, v: &Value) -> isize {
        let before = value_bytes(&self.last);
        self.last.clone_from(v);
        self.fold(v);
        value_bytes(v) as isize - before as isize
    }

    /// Bytes the entry holds, keyed `key`.
    fn bytes(&self, key: &str) -> usize {
        entry_bytes(key)
            + std::mem::size_of::<Entry>()
            + value_bytes(&self.first)
            + value_bytes(&self.last)
    }

    fn fold(&mut self, v: &Value) {
        if let Some(x) = as_f64(v) {
            if !x.is_nan() {
                self.min = self.min.min(x);
                self.max = self.max.max(x);
                self.sum += x;
                self.count += 1;
            }
        }
    }

    fn agg(&self, agg: Agg, goal: Option<Goal>) -> Option<Value> {
        let numeric = self.count > 0;
        match agg {
            Agg::First => Some(self.first.clone()),
            Agg::Last => Some(self.last.clone()),
            Agg::Min if numeric => Some(value::double(self.min)),
            Agg::Max if numeric => Some(value::double(self.max)),
            Agg::Mean if numeric => Some(value::double(self.sum / self.count as f64)),
            Agg::Best if numeric => Some(value::double(match goal {
                Some(Goal::Maximize) => self.max,
                _ => self.min,
            })),
            _ => None,
        }
    }
}

/// The values of the last committed row's system keys, for the summary.
#[derive(Debug, Default, Clone, Copy)]
pub struct LastRow {
    pub step: i64,
    pub runtime: f64,
    pub timestamp: f64,
}

#[derive(Debug, Default)]
pub struct Summary {
    entries: HashMap<Arc<str>, Entry>,
    explicit: BTreeMap<String, Value>,
    last_row: Option<LastRow>,
    /// What `entries` and `explicit` hold in memory, for the memory budget.
    bytes: usize,
}

impl Summary {
    /// Folds one committed value in.
    pub fn observe(&mut self, key: &Arc<str>, v: &Value) {
        match self.entries.get_mut(key) {
            Some(e) => self.bytes = self.bytes.saturating_add_signed(e.update(v)),
            None => {
                let e = Entry::new(v);
                self.bytes += e.bytes(key);
                self.entries.insert(key.clone(), e);
            }
        }
    }

    /// Bytes the summary holds in memory (an over-estimate).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn set_last_row(&mut self, row: LastRow) {
        self.last_row = Some(row);
    }

    /// An explicit update: wins over aggregation for these keys from now on.
    pub fn set(&mut self, key: String, v: Value) {
        let key_bytes = entry_bytes(&key);
        self.bytes += key_bytes + value_bytes(&v);
        if let Some(old) = self.explicit.insert(key, v) {
            self.bytes -= key_bytes + value_bytes(&old);
        }
    }

    /// Whether `key` has an explicit value.
    pub fn is_explicit(&self, key: &str) -> bool {
        self.explicit.contains_key(key)
    }

    /// Keys with an explicit value.
    pub fn explicit_len(&self) -> usize {
        self.explicit.len()
    }

    /// Removes a key, explicit and aggregated.
    pub fn remove(&mut self, key: &str) {
        if let Some(old) = self.explicit.remove(key) {
            self.bytes -= entry_bytes(key) + value_bytes(&old);
        }
        if let Some(e) = self.entries.remove(key) {
            self.bytes -= e.bytes(key);
        }
    }

    /// The summary as it is shown and stored.
    pub fn to_map(&self, metrics: &mut Metrics) -> BTreeMap<String, Value> {
        let mut out = BTreeMap::new();
        for (key, e) in &self.entries {
            if self.explicit.contains_key(&**key) {
                continue;
            }
            let v = match metrics.lookup(key).map(|d| (d.summary.clone(), d.goal)) {
                None | Some((SummaryRule::Default, _)) => e.last.clone(),
                Some((SummaryRule::Hidden, _)) => continue,
                Some((SummaryRule::Aggs(aggs), goal)) => value::map(
                    aggs.iter()
                        .filter_map(|a| Some((a.name().to_owned(), e.agg(*a, goal)?)))
                        .collect(),
                ),
            };
            out.insert(key.to_string(), v);
        }
        for (k, v) in &self.explicit {
            out.insert(k.clone(), v.clone());
        }
        if let Some(r) = self.last_row {
            out.insert("_step".into(), value::int(r.step));
            out.insert("_runtime".into(), value::double(r.runtime));
            out.insert("_timestamp".into(), value::double(r.timestamp));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::v1::DefineMetricRequest;

    fn define(m: &mut Metrics, name: &str, summary: &str, goal: &str) {
        m.define(&DefineMetricRequest {
            name: name.into(),
            summary: summary.into(),
            goal: goal.into(),
            ..Default::default()
        })
        .unwrap();
    }

    fn num(v: &Value) -> f64 {
        as_f64(v).unwrap()
    }

    #[test]
    fn aggregations_skip_nan() {
        let mut m = Metrics::default();
        define(&mut m, "loss", "min,max,mean,first,last", "");
        define(&mut m, "acc", "best", "maximize");
        define(&mut m, "secret", "none", "");
        let mut s = Summary::default();
        let k = |s: &str| Arc::<str>::from(s);
        for v in [3.0, f64::NAN, 1.0, 2.0] {
            s.observe(&k("loss"), &value::double(v));
            s.observe(&k("acc"), &value::double(v));
            s.observe(&k("secret"), &value::double(v));
            s.observe(&k("plain"), &value::double(v));
        }
        let out = s.to_map(&mut m);
        let Some(crate::proto::v1::value::Kind::MapValue(loss)) = &out["loss"].kind else {
            panic!("loss summary is not a map: {:?}", out["loss"])
        };
        assert_eq!(num(&loss.fields["min"]), 1.0);
        assert_eq!(num(&loss.fields["max"]), 3.0);
        assert_eq!(num(&loss.fields["mean"]), 2.0);
        assert_eq!(num(&loss.fields["first"]), 3.0);
        assert_eq!(num(&loss.fields["last"]), 2.0);
        let Some(crate::proto::v1::value::Kind::MapValue(acc)) = &out["acc"].kind else {
            panic!("acc summary is not a map")
        };
        assert_eq!(num(&acc.fields["best"]), 3.0);
        assert!(!out.contains_key("secret"));
        assert_eq!(num(&out["plain"]), 2.0);
    }

    #[test]
    fn explicit_update_wins_until_removed() {
        let mut m = Metrics::default();
        let mut s = Summary::default();
        let key = Arc::<str>::from("acc");
        s.observe(&key, &value::double(0.5));
        s.set("acc".into(), value::double(0.9));
        s.observe(&key, &value::double(0.7));
        assert_eq!(num(&s.to_map(&mut m)["acc"]), 0.9);
        s.remove("acc");
        assert!(!s.to_map(&mut m).contains_key("acc"));
        s.observe(&key, &value::double(0.1));
        assert_eq!(num(&s.to_map(&mut m)["acc"]), 0.1);
    }
}
