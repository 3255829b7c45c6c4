//! Histograms: raw values binned by the sidecar.

use crate::proto::v1::{value::Kind, Histogram, Value};

/// Default bin count when the sidecar bins raw values (W&B's default).
pub const DEFAULT_HISTOGRAM_BINS: u32 = 64;
/// The most bins a histogram may have.
pub const MAX_HISTOGRAM_BINS: usize = 512;

/// Turns raw histogram values into bins and counts, in place, recursively.
/// Non-finite values are left out of the bins.
pub fn bin_histograms(value: &mut Value) {
    match &mut value.kind {
        Some(Kind::Histogram(h)) if !h.values.is_empty() => {
            let bins = if h.num_bins == 0 {
                DEFAULT_HISTOGRAM_BINS
            } else {
                h.num_bins
            };
            let (edges, counts) = bin(&h.values, bins as usize);
            *h = Histogram {
                bins: edges,
                counts,
                values: Vec::new(),
                num_bins: 0,
            };
        }
        Some(Kind::MapValue(m)) => m.fields.values_mut().for_each(bin_histograms),
        Some(Kind::ListValue(l)) => l.values.iter_mut().for_each(bin_histograms),
        _ => {}
    }
}

fn bin(values: &[f64], bins: usize) -> (Vec<f64>, Vec<i64>) {
    let finite = || values.iter().copied().filter(|v| v.is_finite());
    let (lo, hi) = finite().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if lo > hi {
        return (vec![0.0, 1.0], vec![0]);
    }
    let (lo, hi) = if lo == hi {
        (lo - 0.5, hi + 0.5)
    } else {
        (lo, hi)
    };
    // Halves keep the span finite for any finite range (-MAX..MAX).
    let half_span = hi / 2.0 - lo / 2.0;
    let n = bins as f64;
    let edges = (0..=bins)
        .map(|i| {
            let t = i as f64 / n;
            lo + half_span * t + half_span * t
        })
        .collect();
    let mut counts = vec![0i64; bins];
    for v in finite() {
        let frac = (v / 2.0 - lo / 2.0) / half_span;
        // NaN (an empty span) becomes bin 0.
        let i = ((frac * n) as usize).min(bins - 1);
        counts[i] += 1;
    }
    (edges, counts)
}
