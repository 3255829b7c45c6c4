//! Downsampling a series to a chart's pixel width, so that a chart of a million
//! steps gets a few thousand points that draw the same picture.
//!
//! The method is min/max per bucket in its M4 form: the x range is cut into
//! `width` equal buckets (one per pixel column), and each bucket keeps its first,
//! smallest, largest and last finite point, in x order. A line through those
//! points covers exactly the pixels the full series would.
//!
//! NaN and ±Inf are never drawn as numbers: each becomes a gap (`None`) at its x
//! and a [`Mark`] saying what it was, so the chart breaks the line there and can
//! draw a marker. A bucket keeps the first value of each non-finite kind.

use serde::Serialize;

/// What a non-finite value was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum NonFinite {
    #[serde(rename = "nan")]
    Nan,
    #[serde(rename = "inf")]
    Inf,
    #[serde(rename = "-inf")]
    NegInf,
}

impl NonFinite {
    /// None for a finite value.
    pub fn of(v: f64) -> Option<NonFinite> {
        if v.is_nan() {
            Some(NonFinite::Nan)
        } else if v == f64::INFINITY {
            Some(NonFinite::Inf)
        } else if v == f64::NEG_INFINITY {
            Some(NonFinite::NegInf)
        } else {
            None
        }
    }
}

/// A non-finite value at `x`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Mark {
    pub x: f64,
    pub kind: NonFinite,
}

/// A series ready to draw: `y[i]` is None where the line has a gap.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Sampled {
    pub x: Vec<f64>,
    pub y: Vec<Option<f64>>,
    pub marks: Vec<Mark>,
    /// Whether points were dropped (false: every point is here).
    pub sampled: bool,
}

impl Sampled {
    fn push(&mut self, x: f64, y: f64) {
        self.x.push(x);
        match NonFinite::of(y) {
            None => self.y.push(Some(y)),
            Some(kind) => {
                self.y.push(None);
                self.marks.push(Mark { x, kind });
            }
        }
    }
}

/// Most buckets a request may ask for.
pub const MAX_WIDTH: usize = 16_384;

/// Downsamples `points` (sorted by x, every x finite) to at most about four points
/// per bucket of `width` (clamped to 1..=[`MAX_WIDTH`]). A series that is already
/// that small comes back whole.
pub fn downsample(points: &[(f64, f64)], width: usize) -> Sampled {
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return Sampled::default();
    };
    let mut d = Downsampler::new(points.len(), first.0, last.0, width);
    for &(x, y) in points {
        d.push(x, y);
    }
    d.finish()
}

/// A point as a bucket keeps it: its position in the series, x, y.
type Kept = (u64, f64, f64);

/// [`downsample`] for points that arrive one at a time (in x order), so that a
/// caller need not gather them first.
pub struct Downsampler {
    out: Sampled,
    /// Every point is kept (the series is small enough).
    exact: bool,
    x0: f64,
    /// Buckets per unit of x.
    scale: f64,
    width: usize,
    bucket: usize,
    kept: Bucket,
    seq: u64,
}

impl Downsampler {
    /// For `total` points whose x runs from `x0` to `x1`.
    pub fn new(total: usize, x0: f64, x1: f64, width: usize) -> Self {
        let width = width.clamp(1, MAX_WIDTH);
        let span = x1 - x0;
        let exact = total <= 4 * width;
        Downsampler {
            out: Sampled {
                sampled: !exact,
                ..Sampled::default()
            },
            exact,
            x0,
            scale: if span > 0.0 { width as f64 / span } else { 0.0 },
            width,
            bucket: 0,
            kept: Bucket::default(),
            seq: 0,
        }
    }

    #[inline]
    pub fn push(&mut self, x: f64, y: f64) {
        if self.exact {
            self.out.push(x, y);
            return;
        }
        let b = (((x - self.x0) * self.scale) as usize).min(self.width - 1);
        if b != self.bucket {
            self.kept.emit(&mut self.out);
            self.kept = Bucket::default();
            self.bucket = b;
        }
        self.kept.add((self.seq, x, y));
        self.seq += 1;
    }

    pub fn finish(mut self) -> Sampled {
        self.kept.emit(&mut self.out);
        self.out
    }
}

/// The points a bucket keeps so far.
#[derive(Default)]
struct Bucket {
    first: Option<Kept>,
    last: Option<Kept>,
    min: Option<Kept>,
    max: Option<Kept>,
    /// First NaN, +Inf and -Inf.
    odd: [Option<Kept>; 3],
}

impl Bucket {
    #[inline]
    fn add(&mut self, p: Kept) {
        let y = p.2;
        if y.is_finite() {
            self.first.get_or_insert(p);
            self.last = Some(p);
            if self.min.is_none_or(|m| y < m.2) {
                self.min = Some(p);
            }
            if self.max.is_none_or(|m| y > m.2) {
                self.max = Some(p);
            }
        } else if let Some(kind) = NonFinite::of(y) {
            self.odd[kind as usize].get_or_insert(p);
        }
    }

    fn emit(&self, out: &mut Sampled) {
        let mut keep: Vec<Kept> = [self.first, self.min, self.max, self.last]
            .into_iter()
            .chain(self.odd)
            .flatten()
            .collect();
        keep.sort_unstable_by_key(|p| p.0);
        keep.dedup_by_key(|p| p.0);
        for (_, x, y) in keep {
            out.push(x, y);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(n: usize, f: impl Fn(usize) -> f64) -> Vec<(f64, f64)> {
        (0..n).map(|i| (i as f64, f(i))).collect()
    }

    #[test]
    fn a_small_series_comes_back_exactly() {
        let pts = vec![
            (0.0, 1.0),
            (1.0, f64::NAN),
            (2.0, 3.0),
            (5.0, f64::INFINITY),
        ];
        let s = downsample(&pts, 10);
        assert!(!s.sampled);
        assert_eq!(s.x, vec![0.0, 1.0, 2.0, 5.0]);
        assert_eq!(s.y, vec![Some(1.0), None, Some(3.0), None]);
        assert_eq!(
            s.marks,
            vec![
                Mark {
                    x: 1.0,
                    kind: NonFinite::Nan
                },
                Mark {
                    x: 5.0,
                    kind: NonFinite::Inf
                }
            ]
        );
        assert_eq!(downsample(&[], 10), Sampled::default());
    }

    #[test]
    fn buckets_keep_first_min_max_last_within_their_bounds() {
        let n = 100_000;
        let width = 100;
        let pts = series(n, |i| ((i * 7919) % 1000) as f64);
        let s = downsample(&pts, width);
        assert!(s.sampled);
        assert!(s.x.len() <= 4 * width, "{} points", s.x.len());
        assert!(s.x.windows(2).all(|w| w[0] <= w[1]), "x stays sorted");
        let per = n as f64 / width as f64;
        for b in 0..width {
            let (lo, hi) = (b as f64 * per, (b + 1) as f64 * per);
            let inside: Vec<f64> =
                s.x.iter()
                    .zip(&s.y)
                    .filter(|(x, _)| **x >= lo && **x < hi)
                    .map(|(_, y)| y.unwrap())
                    .collect();
            assert!(
                (2..=4).contains(&inside.len()),
                "bucket {b}: {}",
                inside.len()
            );
            let truth = &pts[lo.ceil() as usize..(hi.ceil() as usize).min(n)];
            let min = truth.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
            let max = truth.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
            assert!(inside.contains(&min) && inside.contains(&max), "bucket {b}");
        }
        assert_eq!(s.x[0], 0.0);
        assert_eq!(*s.x.last().unwrap(), (n - 1) as f64);
    }

    #[test]
    fn nan_and_infinities_stay_visible_as_gaps_never_zeros() {
        let n = 10_000;
        let pts = series(n, |i| match i {
            1234 => f64::NAN,
            5000 => f64::INFINITY,
            5001 => f64::NEG_INFINITY,
            7000..=7099 => f64::NAN,
            _ => 1.0 + (i % 10) as f64,
        });
        let s = downsample(&pts, 50);
        assert!(s.sampled);
        let kinds: Vec<(f64, NonFinite)> = s.marks.iter().map(|m| (m.x, m.kind)).collect();
        assert!(kinds.contains(&(1234.0, NonFinite::Nan)));
        assert!(kinds.contains(&(5000.0, NonFinite::Inf)));
        assert!(kinds.contains(&(5001.0, NonFinite::NegInf)));
        assert!(kinds.contains(&(7000.0, NonFinite::Nan)));
        for m in &s.marks {
            let i = s.x.iter().position(|x| *x == m.x).unwrap();
            assert_eq!(s.y[i], None, "a gap at {}", m.x);
        }
        assert!(s.y.iter().flatten().all(|v| *v >= 1.0), "no zeros, no NaN");
    }

    #[test]
    fn a_series_at_one_x_and_odd_widths_work() {
        let pts: Vec<(f64, f64)> = (0..1000).map(|i| (5.0, i as f64)).collect();
        let s = downsample(&pts, 3);
        assert_eq!(s.y, vec![Some(0.0), Some(999.0)]);
        let s = downsample(&series(100, |i| i as f64), 0);
        assert_eq!(s.x.len(), 2, "width 0 counts as 1");
    }
}
