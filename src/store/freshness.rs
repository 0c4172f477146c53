//! How fresh the read model is: when it was last known to match the core.
//! The sync marks it after every successful exchange with the core; the
//! responder reads it to label replies with their data's date once the data
//! is older than `sync.stale_after_secs`; `/healthz`, `/metrics` and the
//! console show it.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// When the read model was last known to match the core, shared by the
/// sync worker (which marks it) and the responder (which reads it).
#[derive(Debug)]
pub struct Freshness {
    /// Ms since the Unix epoch; 0: never.
    last_ok_ms: AtomicI64,
    stale_after_ms: Option<i64>,
}

impl Freshness {
    /// Data is stale `stale_after` after the last successful exchange
    /// (`None`: never stale); `last_ok_ms` as stored, if any.
    pub fn new(stale_after: Option<Duration>, last_ok_ms: Option<i64>) -> Self {
        Freshness {
            last_ok_ms: AtomicI64::new(last_ok_ms.unwrap_or(0)),
            stale_after_ms: stale_after.map(|d| d.as_millis().min(i64::MAX as u128) as i64),
        }
    }

    /// Never stale (no sync configured).
    pub fn always_fresh() -> Self {
        Freshness::new(None, None)
    }

    /// A successful exchange with the core at `at_ms`.
    pub fn mark_ok(&self, at_ms: i64) {
        self.last_ok_ms.fetch_max(at_ms, Ordering::Relaxed);
    }

    /// The last successful exchange, ms since the Unix epoch.
    pub fn last_ok_ms(&self) -> Option<i64> {
        Some(self.last_ok_ms.load(Ordering::Relaxed)).filter(|&ms| ms > 0)
    }

    /// When the data dates from, if it is stale at `now_ms`.
    pub fn stale_as_of(&self, now_ms: i64) -> Option<i64> {
        let threshold = self.stale_after_ms?;
        let last = self.last_ok_ms()?;
        (now_ms.saturating_sub(last) > threshold).then_some(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freshness_turns_stale_after_the_threshold_and_back_on_success() {
        let f = Freshness::new(Some(Duration::from_secs(60)), Some(1_000));
        assert_eq!(f.stale_as_of(61_000), None);
        assert_eq!(f.stale_as_of(61_001), Some(1_000));
        f.mark_ok(61_001);
        assert_eq!(f.stale_as_of(61_002), None);
        // An older success never moves it back.
        f.mark_ok(5);
        assert_eq!(f.last_ok_ms(), Some(61_001));
        assert_eq!(Freshness::always_fresh().stale_as_of(i64::MAX), None);
        // Never synchronised: no date to show.
        assert_eq!(
            Freshness::new(Some(Duration::from_secs(1)), None).stale_as_of(10_000),
            None
        );
    }
}
