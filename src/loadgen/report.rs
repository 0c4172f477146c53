//! What a load run measured: counts, throughput, and latency percentiles
//! from an HDR histogram, printed for people or written as JSON for scripts.

use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Largest latency the histogram tracks, in microseconds (one hour);
/// anything slower is recorded as one hour.
const MAX_TRACKABLE_US: u64 = 3_600_000_000;

/// Latencies in microseconds.
///
/// An HDR histogram rather than a vector of samples: recording is a constant
/// time increment with no allocation on the hot path (the load generator
/// must not be the bottleneck at 50k+ msg/s), its memory is fixed (about
/// 100 KB for 3 significant digits over 1 µs – 1 h) however long the run,
/// and every percentile — p99.9 and the max included — comes out with a
/// bounded relative error of 0.1 % instead of being skewed by bucket edges
/// chosen in advance.
#[derive(Debug, Clone)]
pub struct Latencies {
    histogram: Histogram<u64>,
}

impl Default for Latencies {
    fn default() -> Self {
        Latencies {
            histogram: Histogram::new_with_bounds(1, MAX_TRACKABLE_US, 3)
                .unwrap_or_else(|_| unreachable!("1 µs – 1 h at 3 digits is a valid range")),
        }
    }
}

impl Latencies {
    /// Records one latency (clamped to 1 µs – 1 h).
    pub fn record(&mut self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.histogram.saturating_record(us.max(1));
    }

    /// How many latencies were recorded.
    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    /// The percentiles of what was recorded.
    pub fn summary(&self) -> LatencySummary {
        let h = &self.histogram;
        if h.is_empty() {
            return LatencySummary::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        LatencySummary {
            count: h.len(),
            mean_ms: h.mean() / 1000.0,
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Samples.
    pub count: u64,
    /// Mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Slowest.
    pub max_ms: f64,
}

/// The result of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    /// `flat-out` or `rate`.
    pub mode: String,
    /// Offered messages per second (rate mode).
    pub offered_rate: Option<f64>,
    /// Most deliver_sm left unacknowledged at once.
    pub window: usize,
    /// The message mix.
    pub mix: String,
    /// Messages the run was asked to send.
    pub requested: u64,
    /// deliver_sm written.
    pub sent: u64,
    /// deliver_sm_resp with status 0.
    pub acknowledged: u64,
    /// deliver_sm_resp with an error status, or generic_nack (not expected to be answered).
    pub refused: u64,
    /// Messages whose whole reply (every part) arrived.
    pub replies: u64,
    /// submit_sm received in all (parts of replies included).
    pub reply_parts: u64,
    /// submit_sm for nobody this run sent as, or beyond a reply's last part.
    pub unexpected: u64,
    /// Sent, not refused, and not (completely) answered by the end.
    pub missing: u64,
    /// From the first deliver_sm to the last reply (or the end of the wait).
    pub elapsed_secs: f64,
    /// From the first deliver_sm to the last.
    pub send_secs: f64,
    /// Replies per second over `elapsed_secs` (MO→MT/s).
    pub throughput: f64,
    /// deliver_sm per second over `send_secs`.
    pub send_rate: f64,
    /// How far behind its schedule sending fell at worst (rate mode), in ms.
    pub max_schedule_lag_ms: f64,
    /// From the deliver_sm (its scheduled time in rate mode) to the reply's last submit_sm.
    pub latency: LatencySummary,
    /// The bound peers (`transceiver system_id@address`).
    pub binds: Vec<String>,
}

impl Report {
    /// True when every message sent got its whole reply.
    pub fn all_answered(&self) -> bool {
        self.sent > 0 && self.missing == 0 && self.refused == 0 && self.sent == self.requested
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let offered = match self.offered_rate {
            Some(r) => format!("{r:.0} msg/s offered"),
            None => "flat out".to_owned(),
        };
        writeln!(
            f,
            "loadgen: {} messages, {offered}, window {}, mix {}",
            self.requested, self.window, self.mix
        )?;
        writeln!(f, "  bound:        {}", self.binds.join(", "))?;
        writeln!(
            f,
            "  sent:         {} ({:.0}/s over {:.2} s, worst lag behind schedule {:.1} ms)",
            self.sent, self.send_rate, self.send_secs, self.max_schedule_lag_ms
        )?;
        writeln!(
            f,
            "  acknowledged: {} (refused {})",
            self.acknowledged, self.refused
        )?;
        writeln!(
            f,
            "  replies:      {} ({} parts, {} unexpected), missing {}",
            self.replies, self.reply_parts, self.unexpected, self.missing
        )?;
        writeln!(
            f,
            "  throughput:   {:.0} MO->MT/s over {:.2} s",
            self.throughput, self.elapsed_secs
        )?;
        let l = &self.latency;
        write!(
            f,
            "  latency:      p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms (mean {:.2} ms, {} samples)",
            l.p50_ms, l.p90_ms, l.p99_ms, l.p999_ms, l.max_ms, l.mean_ms, l.count
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut lat = Latencies::default();
        // 1..=1000 ms, once each.
        for ms in 1..=1000u64 {
            lat.record(Duration::from_millis(ms));
        }
        let s = lat.summary();
        assert_eq!(s.count, 1000);
        let close = |got: f64, want: f64| (got - want).abs() <= want * 0.001 + 0.001;
        assert!(close(s.p50_ms, 500.0), "{s:?}");
        assert!(close(s.p90_ms, 900.0), "{s:?}");
        assert!(close(s.p99_ms, 990.0), "{s:?}");
        assert!(close(s.p999_ms, 999.0), "{s:?}");
        assert!(close(s.max_ms, 1000.0), "{s:?}");
        assert!(close(s.mean_ms, 500.5), "{s:?}");
    }

    #[test]
    fn a_rare_outlier_shows_in_the_tail_only() {
        let mut lat = Latencies::default();
        for _ in 0..9_990 {
            lat.record(Duration::from_micros(800));
        }
        for _ in 0..10 {
            lat.record(Duration::from_millis(250));
        }
        let s = lat.summary();
        assert!((s.p99_ms - 0.8).abs() < 0.01, "{s:?}");
        assert!((s.p999_ms - 0.8).abs() < 0.01, "{s:?}");
        assert!((s.max_ms - 250.0).abs() < 0.5, "{s:?}");
        lat.record(Duration::from_millis(300));
        assert!(lat.summary().p999_ms > 200.0);
    }

    #[test]
    fn extremes_are_clamped_and_empty_is_zero() {
        let mut lat = Latencies::default();
        assert_eq!(lat.summary(), LatencySummary::default());
        lat.record(Duration::ZERO);
        lat.record(Duration::from_secs(10_000));
        let s = lat.summary();
        assert_eq!(s.count, 2);
        assert!(s.p50_ms <= 0.002, "{s:?}");
        assert!(s.max_ms >= 3_599_000.0, "{s:?}");
    }

    #[test]
    fn the_report_prints_and_serialises() {
        let report = Report {
            mode: "rate".into(),
            offered_rate: Some(2000.0),
            window: 10,
            requested: 5,
            sent: 5,
            acknowledged: 5,
            replies: 4,
            missing: 1,
            ..Report::default()
        };
        assert!(!report.all_answered());
        let text = report.to_string();
        assert!(text.contains("2000 msg/s offered"), "{text}");
        assert!(text.contains("missing 1"), "{text}");
        let json: serde_json::Value = serde_json::to_value(&report).unwrap();
        assert_eq!(json["missing"], 1);
        assert_eq!(json["latency"]["p999_ms"], 0.0);
        assert!(Report {
            missing: 0,
            replies: 5,
            ..report
        }
        .all_answered());
    }
}
