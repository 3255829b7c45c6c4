//! Time, in one place. Wall-clock seconds for records ([`now`]) advance with the
//! runtime's clock, so a test that pauses tokio's time (`tokio::time::pause()`)
//! and advances it moves record times, alert windows and client timeouts with it,
//! without sleeping.

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The wall clock and the monotonic clock, read together once.
fn anchor() -> (f64, Instant) {
    static ANCHOR: OnceLock<(f64, Instant)> = OnceLock::new();
    *ANCHOR.get_or_init(|| {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        (wall, Instant::now())
    })
}

/// Unix seconds now: the wall clock when the process first asked, plus the
/// runtime's monotonic time since (so it never steps back when the system clock
/// is set).
pub fn now() -> f64 {
    let (wall, at) = anchor();
    let mono = tokio::time::Instant::now().into_std();
    wall + mono.saturating_duration_since(at).as_secs_f64()
}

/// The runtime's monotonic clock (paused and advanced by tests).
pub fn instant() -> tokio::time::Instant {
    tokio::time::Instant::now()
}

/// Unix seconds as a UTC date `YYYY-MM-DD` and time `HH:MM:SS.ffffff`.
pub fn utc(unix: f64) -> (String, String) {
    let unix = unix.max(0.0);
    let secs = unix.floor() as i64;
    let micros = ((unix - unix.floor()) * 1e6).round().min(999_999.0) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        format!("{year:04}-{month:02}-{day:02}"),
        format!(
            "{:02}:{:02}:{:02}.{micros:06}",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60
        ),
    )
}

/// `YYYY-MM-DD HH:MM:SS` in UTC (the CLI's tables, recovery notes).
pub fn format_time(unix: f64) -> String {
    let (date, time) = utc(unix.max(0.0).floor());
    format!("{date} {}", &time[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_format_in_utc() {
        assert_eq!(format_time(0.0), "1970-01-01 00:00:00");
        assert_eq!(format_time(1_795_000_000.0), "2026-11-18 11:06:40");
        assert_eq!(format_time(951_782_400.0), "2000-02-29 00:00:00");
    }

    #[tokio::test(start_paused = true)]
    async fn now_follows_the_paused_runtime_clock() {
        let before = now();
        tokio::time::advance(std::time::Duration::from_secs(3600)).await;
        let after = now();
        assert!(
            (after - before - 3600.0).abs() < 0.01,
            "{before} -> {after}"
        );
    }

    #[test]
    fn utc_dates_and_times() {
        assert_eq!(utc(0.0), ("1970-01-01".into(), "00:00:00.000000".into()));
        assert_eq!(
            utc(951_782_400.25),
            ("2000-02-29".into(), "00:00:00.250000".into())
        );
    }

    #[test]
    fn now_is_close_to_the_system_clock() {
        let system = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!((now() - system).abs() < 1.0);
    }
}
