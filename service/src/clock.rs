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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn now_is_close_to_the_system_clock() {
        let system = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!((now() - system).abs() < 1.0);
    }
}
