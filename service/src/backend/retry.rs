//! Retry policy shared by every remote backend: which failures are worth another
//! try, how long to wait (exponential backoff with full jitter, or what the server
//! asked for with Retry-After / rate-limit headers), and which are final.

use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;
use reqwest::StatusCode;

use super::{Backend, Batch};
use crate::shutdown::ShutdownToken;

/// A failed delivery.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum BackendError {
    /// Worth another try (network error, 408, 429, 5xx), after `after` if the
    /// server said.
    #[error("{reason}")]
    Retryable {
        reason: String,
        after: Option<Duration>,
    },
    /// Credentials refused (401, 403): every later request would fail the same way,
    /// so delivery stops until the sidecar is restarted with working ones.
    #[error("{reason}")]
    Unauthorized { reason: String },
    /// The server refused this request for good (400, 404, 409, 410, 413, 422, other
    /// 4xx): retrying cannot help.
    #[error("{reason}")]
    Rejected { reason: String },
}

impl BackendError {
    pub fn retryable(reason: impl Into<String>) -> Self {
        BackendError::Retryable {
            reason: reason.into(),
            after: None,
        }
    }
}

/// Statuses that are final: the request itself is wrong.
const NOT_RETRYABLE: [u16; 8] = [400, 401, 403, 404, 409, 410, 413, 422];

/// Classifies an HTTP response status; None for success.
pub fn classify(status: StatusCode, headers: &HeaderMap, body: &str) -> Option<BackendError> {
    if status.is_success() {
        return None;
    }
    let code = status.as_u16();
    let mut text: String = body.chars().take(300).collect();
    if text.is_empty() {
        text = status.canonical_reason().unwrap_or("").to_owned();
    }
    let reason = format!("HTTP {code}: {text}");
    Some(match code {
        401 | 403 => BackendError::Unauthorized { reason },
        c if NOT_RETRYABLE.contains(&c) => BackendError::Rejected { reason },
        408 | 429 => BackendError::Retryable {
            reason,
            after: retry_after(headers),
        },
        c if c >= 500 => BackendError::Retryable {
            reason,
            after: retry_after(headers),
        },
        _ => BackendError::Rejected { reason },
    })
}

/// Classifies a transport error (connection refused, reset, timeout): retryable.
pub fn transport(err: &reqwest::Error) -> BackendError {
    let mut reason = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        reason.push_str(": ");
        reason.push_str(&s.to_string());
        source = s.source();
    }
    BackendError::retryable(reason)
}

/// How long the server asked us to wait: `Retry-After` (seconds or an HTTP date),
/// else `X-RateLimit-Reset` / `RateLimit-Reset` (seconds from now).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(v) = text("retry-after") {
        if let Ok(secs) = v.parse::<f64>() {
            return (secs.is_finite() && secs >= 0.0).then(|| crate::liveness::seconds(secs));
        }
        if let Some(at) = parse_http_date(v) {
            return Some(at.duration_since(SystemTime::now()).unwrap_or_default());
        }
    }
    for name in ["x-ratelimit-reset", "ratelimit-reset"] {
        if let Some(secs) = text(name).and_then(|v| v.parse::<f64>().ok()) {
            if secs.is_finite() && secs >= 0.0 {
                return Some(crate::liveness::seconds(secs));
            }
        }
    }
    None
}

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn parse_http_date(s: &str) -> Option<SystemTime> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    if parts.len() != 6 || parts[5] != "GMT" {
        return None;
    }
    let day: i64 = parts[1].parse().ok()?;
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| *m == parts[2])? as i64 + 1;
    let year: i64 = parts[3].parse().ok()?;
    let hms: Vec<i64> = parts[4].split(':').filter_map(|p| p.parse().ok()).collect();
    if hms.len() != 3 {
        return None;
    }
    // Days from civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hms[0] * 3600 + hms[1] * 60 + hms[2];
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

/// Exponential backoff with full jitter: attempt n waits a random time in
/// [0, min(cap, base * 2^n)], or what the server asked for (plus up to 10 %).
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Self {
        Backoff {
            base,
            cap,
            attempt: 0,
        }
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// The wait before the next try.
    pub fn next(&mut self, asked: Option<Duration>) -> Duration {
        self.attempt = self.attempt.saturating_add(1);
        if let Some(after) = asked {
            return after + after.mul_f64(0.1 * fastrand::f64());
        }
        let exp = self
            .base
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.cap);
        exp.mul_f64(fastrand::f64())
    }
}

/// How delivering one batch ended.
#[derive(Debug, PartialEq)]
pub enum Delivered {
    Yes,
    /// The backend refused the batch for good: it is skipped (and reported).
    Skipped(String),
    /// The backend refused the credentials.
    Unauthorized(String),
    /// The sidecar is stopping.
    Shutdown,
}

/// Delivers `batch`, retrying what is worth another try with `backoff` until it
/// is delivered, refused for good, or the sidecar stops; `report` hears each
/// failure.
pub async fn deliver(
    backend: &mut dyn Backend,
    batch: &Batch<'_>,
    backoff: &mut Backoff,
    token: &mut ShutdownToken,
    report: impl Fn(&str) + Send,
) -> Delivered {
    let name = backend.name();
    backoff.reset();
    loop {
        match backend.deliver(batch).await {
            Ok(()) => return Delivered::Yes,
            Err(BackendError::Retryable { reason, after }) => {
                let wait = backoff.next(after);
                tracing::warn!(run = %batch.run.id, backend = name, "delivery failed, retrying in {:.1} s: {reason}", wait.as_secs_f64());
                report(&reason);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = token.stopping() => return Delivered::Shutdown,
                }
            }
            Err(BackendError::Unauthorized { reason }) => {
                report(&reason);
                return Delivered::Unauthorized(reason);
            }
            Err(BackendError::Rejected { reason }) => {
                report(&reason);
                return Delivered::Skipped(reason);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn statuses_are_classified() {
        let none = HeaderMap::new();
        assert_eq!(classify(StatusCode::OK, &none, ""), None);
        for code in [400u16, 404, 409, 410, 413, 422] {
            let e = classify(StatusCode::from_u16(code).unwrap(), &none, "no").unwrap();
            assert!(matches!(e, BackendError::Rejected { .. }), "{code}");
        }
        for code in [401u16, 403] {
            let e = classify(StatusCode::from_u16(code).unwrap(), &none, "").unwrap();
            assert!(matches!(e, BackendError::Unauthorized { .. }), "{code}");
        }
        for code in [408u16, 429, 500, 502, 503, 504] {
            let e = classify(StatusCode::from_u16(code).unwrap(), &none, "").unwrap();
            assert!(matches!(e, BackendError::Retryable { .. }), "{code}");
        }
        let e = classify(
            StatusCode::TOO_MANY_REQUESTS,
            &headers(&[("retry-after", "7")]),
            "",
        )
        .unwrap();
        assert_eq!(
            e,
            BackendError::Retryable {
                reason: "HTTP 429: Too Many Requests".into(),
                after: Some(Duration::from_secs(7))
            }
        );
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(
            retry_after(&headers(&[("retry-after", "2.5")])),
            Some(Duration::from_millis(2500))
        );
        assert_eq!(
            retry_after(&headers(&[("x-ratelimit-reset", "3")])),
            Some(Duration::from_secs(3))
        );
        // A date in the past means now.
        assert_eq!(
            retry_after(&headers(&[(
                "retry-after",
                "Sun, 06 Nov 1994 08:49:37 GMT"
            )])),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777))
        );
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    #[test]
    fn backoff_grows_to_its_cap_and_honours_the_server() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        for _ in 0..30 {
            assert!(b.next(None) <= Duration::from_secs(2));
        }
        let asked = b.next(Some(Duration::from_secs(5)));
        assert!(asked >= Duration::from_secs(5) && asked <= Duration::from_millis(5500));
    }
}
