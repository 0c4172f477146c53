//! How fast a link may send: the carrier's TPS cap (counted in parts, the
//! unit carriers bill and throttle by) and the pause after the peer answers
//! `ESME_RTHROTTLED` / `ESME_RMSGQFUL`. One [`Pacing`] is shared by every
//! connection of a configured carrier link and outlives reconnects, so a
//! rebind cannot reset the budget.
//!
//! The cap uses governor's GCRA with a burst of one: parts leave at least
//! `1 / max_tps` apart, so no one-second window ever holds more than the
//! cap — the way a carrier measures it — rather than a full second's
//! budget bunched at the start of each second.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::time::Instant;

/// First pause after a throttling answer; doubles on each one in a row.
const FIRST_THROTTLE_PAUSE: Duration = Duration::from_millis(100);
/// Longest pause after throttling answers.
const MAX_THROTTLE_PAUSE: Duration = Duration::from_secs(10);

/// The pace of one carrier link (or one listener session).
pub struct Pacing {
    limiter: Option<DefaultDirectRateLimiter>,
    max_tps: Option<NonZeroU32>,
    throttle: Mutex<Throttle>,
}

#[derive(Debug)]
struct Throttle {
    paused_until: Option<Instant>,
    next_pause: Duration,
}

impl std::fmt::Debug for Pacing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pacing")
            .field("max_tps", &self.max_tps)
            .finish_non_exhaustive()
    }
}

impl Default for Pacing {
    fn default() -> Self {
        Pacing::new(None)
    }
}

impl Pacing {
    /// A pace of at most `max_tps` parts per second (`None`: no cap, as in
    /// Kannel when `throughput` is unset).
    pub fn new(max_tps: Option<NonZeroU32>) -> Self {
        let limiter = max_tps.map(|tps| {
            let period = Duration::from_nanos(1_000_000_000 / u64::from(tps.get()));
            let quota = Quota::with_period(period.max(Duration::from_nanos(1)))
                .expect("a period of at least one nanosecond")
                .allow_burst(NonZeroU32::MIN);
            RateLimiter::direct(quota)
        });
        Pacing {
            limiter,
            max_tps,
            throttle: Mutex::new(Throttle {
                paused_until: None,
                next_pause: FIRST_THROTTLE_PAUSE,
            }),
        }
    }

    /// The configured cap.
    pub fn max_tps(&self) -> Option<NonZeroU32> {
        self.max_tps
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Throttle> {
        self.throttle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until one more part may leave: past any throttling pause, then
    /// within the TPS cap.
    pub async fn ready(&self) {
        loop {
            let paused_until = self.lock().paused_until;
            match paused_until {
                Some(until) if until > Instant::now() => tokio::time::sleep_until(until).await,
                _ => break,
            }
        }
        if let Some(limiter) = &self.limiter {
            limiter.until_ready().await;
        }
    }

    /// The peer answered with a throttling status: pauses every sender of
    /// this link, longer each time in a row. Returns the pause.
    pub fn throttled(&self) -> Duration {
        let mut t = self.lock();
        let now = Instant::now();
        // Parts refused together share one pause rather than doubling it each.
        if let Some(until) = t.paused_until.filter(|until| *until > now) {
            return until - now;
        }
        let pause = t.next_pause;
        t.paused_until = Some(now + pause);
        t.next_pause = (pause * 2).min(MAX_THROTTLE_PAUSE);
        pause
    }

    /// A part was accepted: the next throttling starts from the shortest pause.
    pub fn accepted(&self) {
        let mut t = self.lock();
        if t.next_pause != FIRST_THROTTLE_PAUSE {
            t.next_pause = FIRST_THROTTLE_PAUSE;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Governor keeps its own clock, so this one runs in real time (0.5 s).
    #[tokio::test]
    async fn parts_leave_evenly_spaced_under_the_cap() {
        let pacing = Pacing::new(NonZeroU32::new(50));
        let start = std::time::Instant::now();
        for _ in 0..26 {
            pacing.ready().await;
        }
        // 25 gaps of 20 ms: a burst of one, never faster than the cap.
        assert!(
            start.elapsed() >= Duration::from_millis(490),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_pauses_and_backs_off_then_resets() {
        let pacing = Pacing::default();
        assert_eq!(pacing.throttled(), Duration::from_millis(100));
        // A second refusal during the pause shares it.
        assert_eq!(pacing.throttled(), Duration::from_millis(100));
        let start = Instant::now();
        pacing.ready().await;
        assert!(start.elapsed() >= Duration::from_millis(100));
        assert_eq!(pacing.throttled(), Duration::from_millis(200));
        pacing.ready().await;
        assert_eq!(pacing.throttled(), Duration::from_millis(400));
        pacing.ready().await;
        pacing.accepted();
        assert_eq!(pacing.throttled(), Duration::from_millis(100));
    }

    #[test]
    fn pause_never_exceeds_the_maximum() {
        let pacing = Pacing::default();
        for _ in 0..20 {
            let pause = pacing.throttled();
            assert!(pause <= MAX_THROTTLE_PAUSE);
            pacing.lock().paused_until = None;
        }
    }
}
