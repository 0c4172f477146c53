//! The generic cell rate algorithm (GCRA) over explicit times, shared by the
//! in-process limiter and, line for line, by the Redis script `gcra.lua`.
//!
//! A limit (a [`Tier`]) lets `capacity` requests through back-to-back and
//! then one every `interval_ms`. Its whole state is one number per sender:
//! the theoretical arrival time (TAT), in Unix milliseconds; a TAT at or
//! before `now` is the same as no state at all. A request passes when it
//! passes every tier, and only then are the tiers charged, so a request
//! refused by the daily tier costs nothing in the hourly one.

/// How many tiers a sender is held to: `burst` at the hourly pace, and the
/// daily limit.
pub(crate) const TIERS: usize = 2;

/// One GCRA limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tier {
    /// Time between two requests at the sustained rate.
    pub interval_ms: i64,
    /// Requests allowed back-to-back (at least 1).
    pub capacity: i64,
}

/// What the limiter says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Under every limit; the tiers were charged.
    Allow,
    /// Over a limit; nothing was charged. Every tier allows again at
    /// `retry_at_ms`.
    Deny {
        /// Unix milliseconds.
        retry_at_ms: i64,
    },
}

/// Decides one request at `now_ms` and, when it is allowed, charges `tats`.
pub(crate) fn decide(tats: &mut [i64; TIERS], tiers: &[Tier; TIERS], now_ms: i64) -> Decision {
    let mut retry_at_ms = now_ms;
    let mut next = [0; TIERS];
    for ((tat, tier), next) in tats.iter().zip(tiers).zip(&mut next) {
        let start = (*tat).max(now_ms);
        *next = start.saturating_add(tier.interval_ms);
        let allow_at = next.saturating_sub(tier.capacity.saturating_mul(tier.interval_ms));
        retry_at_ms = retry_at_ms.max(allow_at);
    }
    if retry_at_ms <= now_ms {
        *tats = next;
        Decision::Allow
    } else {
        Decision::Deny { retry_at_ms }
    }
}

/// The time from which `tats` is the same as a fresh state (every tier at
/// full capacity): the state may be forgotten then.
pub(crate) fn fresh_at(tats: &[i64; TIERS]) -> i64 {
    tats.iter().copied().max().unwrap_or(i64::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    /// Burst 3 at 20 per hour; 60 per day.
    const TIERS_DEFAULT: [Tier; TIERS] = [
        Tier {
            interval_ms: 3 * MIN,
            capacity: 3,
        },
        Tier {
            interval_ms: 24 * MIN,
            capacity: 60,
        },
    ];

    #[test]
    fn a_burst_then_one_per_interval() {
        let mut tats = [0; TIERS];
        let t0 = 1_700_000_000_000;
        for _ in 0..3 {
            assert_eq!(decide(&mut tats, &TIERS_DEFAULT, t0), Decision::Allow);
        }
        let denied = decide(&mut tats, &TIERS_DEFAULT, t0);
        assert_eq!(
            denied,
            Decision::Deny {
                retry_at_ms: t0 + 3 * MIN
            }
        );
        // A refused request is not charged: asking again changes nothing.
        assert_eq!(decide(&mut tats, &TIERS_DEFAULT, t0 + MIN), denied);
        assert_eq!(decide(&mut tats, &TIERS_DEFAULT, t0 + 3 * MIN - 1), denied);
        assert_eq!(
            decide(&mut tats, &TIERS_DEFAULT, t0 + 3 * MIN),
            Decision::Allow
        );
        assert!(matches!(
            decide(&mut tats, &TIERS_DEFAULT, t0 + 3 * MIN),
            Decision::Deny { .. }
        ));
        assert_eq!(fresh_at(&tats), t0 + 4 * 24 * MIN);
    }

    #[test]
    fn the_daily_tier_caps_a_patient_sender() {
        let mut tats = [0; TIERS];
        let t0 = 1_700_000_000_000;
        let mut allowed = 0;
        let mut t = t0;
        // One request every 3 minutes for a day: the hourly pace alone
        // would allow 480.
        while t < t0 + 24 * 60 * MIN {
            if decide(&mut tats, &TIERS_DEFAULT, t) == Decision::Allow {
                allowed += 1;
            }
            t += 3 * MIN;
        }
        // 60 at once capacity, refilled at one per 24 minutes while used.
        assert!((60..=120).contains(&allowed), "{allowed}");
        decide(&mut tats, &TIERS_DEFAULT, t);
        let Decision::Deny { retry_at_ms } = decide(&mut tats, &TIERS_DEFAULT, t) else {
            panic!("the daily tier should refuse");
        };
        assert!(retry_at_ms > t && retry_at_ms <= t + 24 * MIN);
    }

    #[test]
    fn an_idle_sender_is_fresh_again() {
        let mut tats = [0; TIERS];
        let t0 = 1_700_000_000_000;
        for _ in 0..3 {
            decide(&mut tats, &TIERS_DEFAULT, t0);
        }
        let later = fresh_at(&tats);
        let mut fresh = [0; TIERS];
        for _ in 0..4 {
            assert_eq!(
                decide(&mut tats, &TIERS_DEFAULT, later),
                decide(&mut fresh, &TIERS_DEFAULT, later)
            );
        }
    }
}
