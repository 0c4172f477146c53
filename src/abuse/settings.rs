//! `[rate_limit]` in `config.toml`: the knobs of abuse protection, their
//! defaults, and their validation into the millisecond figures the guard
//! works with.

use std::collections::HashSet;
use std::fmt;

use serde::Deserialize;

use super::gcra::{Tier, TIERS};
use super::AbuseError;
use crate::db::redact_url;
use crate::domain::Msisdn;

/// Longest window or block length accepted, in minutes (366 days).
const MAX_MINUTES: u64 = 366 * 24 * 60;
/// Largest `loop_repeats` accepted: loop detection remembers a sender's last
/// `2 * loop_repeats` messages.
const MAX_LOOP_REPEATS: u32 = 100;
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// `[rate_limit]`: per-sender rate limits, scanner blocking, flagged codes
/// and auto-responder loops.
///
/// Every key has a default, so an absent section is a working configuration.
/// The thresholds `failed_lookups_before_block`,
/// `distinct_codes_before_block`, `code_flag_senders` and `loop_repeats` turn
/// their rule off when set to 0.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitSettings {
    /// Rate limits, scanner blocking, code flags and loop detection are on.
    /// When false every sender is answered, except our own service numbers,
    /// blocked senders (admin or earlier automatic blocks still apply) and
    /// nobody is blocked automatically.
    pub enabled: bool,
    /// Messages a sender gets answered back-to-back before the hourly rate
    /// applies (at most `per_hour`).
    pub burst: u32,
    /// Sustained answers per sender per hour: after a burst, one more answer
    /// every `60 / per_hour` minutes.
    pub per_hour: u32,
    /// Sustained answers per sender per day: a sender idle for a day may use
    /// up to `per_day` (at the hourly pace), then gets one more every
    /// `24 / per_day` hours.
    pub per_day: u32,
    /// Unknown (well-formed but non-existent) codes from one sender within
    /// `scan_window_minutes` that get it blocked as a scanner. 0: off.
    pub failed_lookups_before_block: u32,
    /// Distinct codes (found or not) looked up by one sender within
    /// `scan_window_minutes` that get it blocked as a scanner. 0: off.
    pub distinct_codes_before_block: u32,
    /// The sliding window, in minutes, of the scanner and code-flag rules.
    pub scan_window_minutes: u64,
    /// How long, in minutes, a sender caught scanning is blocked.
    pub block_minutes: u64,
    /// A dossier code looked up by at least this many distinct numbers within
    /// `scan_window_minutes` is flagged for admins (a warn event); nobody is
    /// blocked for it. 0: off.
    pub code_flag_senders: u32,
    /// The same text (trimmed, lower-cased) from the same sender this many
    /// times within `loop_window_secs` is an auto-responder loop: the sender
    /// is silenced for `loop_window_secs`. 0: off; 1 is not accepted.
    pub loop_repeats: u32,
    /// The window, in seconds, of loop detection and the silence after it.
    pub loop_window_secs: u64,
    /// Our own numbers, never answered (a message from one of them is a loop
    /// between gateways), in any form `Msisdn::parse` accepts. Short codes
    /// cannot be senders and are not accepted here.
    pub service_numbers: Vec<String>,
    /// When set (`redis://host:6379/0`), the per-sender `burst`, `per_hour`
    /// and `per_day` limits are kept in Redis and shared by every gateway
    /// instance using the same URL and `redis_key_prefix`. The gateway does
    /// not start when Redis cannot be reached.
    pub redis_url: Option<String>,
    /// Prefix of the Redis keys (one hash per sender:
    /// `<prefix><international number>`).
    pub redis_key_prefix: String,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        RateLimitSettings {
            enabled: true,
            burst: 3,
            per_hour: 20,
            per_day: 60,
            failed_lookups_before_block: 8,
            distinct_codes_before_block: 15,
            scan_window_minutes: 60,
            block_minutes: 1440,
            code_flag_senders: 5,
            loop_repeats: 4,
            loop_window_secs: 600,
            service_numbers: Vec::new(),
            redis_url: None,
            redis_key_prefix: "motcua:rl:".to_owned(),
        }
    }
}

impl fmt::Debug for RateLimitSettings {
    /// Like a derived `Debug`, with the password of `redis_url` masked.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitSettings")
            .field("enabled", &self.enabled)
            .field("burst", &self.burst)
            .field("per_hour", &self.per_hour)
            .field("per_day", &self.per_day)
            .field(
                "failed_lookups_before_block",
                &self.failed_lookups_before_block,
            )
            .field(
                "distinct_codes_before_block",
                &self.distinct_codes_before_block,
            )
            .field("scan_window_minutes", &self.scan_window_minutes)
            .field("block_minutes", &self.block_minutes)
            .field("code_flag_senders", &self.code_flag_senders)
            .field("loop_repeats", &self.loop_repeats)
            .field("loop_window_secs", &self.loop_window_secs)
            .field("service_numbers", &self.service_numbers)
            .field("redis_url", &self.redis_url.as_deref().map(redact_url))
            .field("redis_key_prefix", &self.redis_key_prefix)
            .finish()
    }
}

/// The settings, checked and converted to milliseconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub enabled: bool,
    /// `burst` at the `per_hour` pace, then `per_day` at the daily pace.
    pub tiers: [Tier; TIERS],
    pub failed_lookups_before_block: u32,
    pub distinct_codes_before_block: u32,
    pub scan_window_ms: i64,
    pub scan_window_minutes: u64,
    pub block_ms: i64,
    pub code_flag_senders: u32,
    pub loop_repeats: u32,
    pub loop_window_ms: i64,
}

impl RateLimitSettings {
    /// Checks every value.
    ///
    /// # Errors
    ///
    /// [`AbuseError::Settings`] or [`AbuseError::ServiceNumber`] naming the first bad one.
    pub fn check(&self) -> Result<(), AbuseError> {
        self.validate().map(|_| ())
    }

    /// Checks every value; returns the limits and our own numbers
    /// (international form).
    pub(crate) fn validate(&self) -> Result<(Limits, HashSet<String>), AbuseError> {
        let invalid = |field: &'static str, problem: &str| AbuseError::Settings {
            field,
            problem: problem.to_owned(),
        };
        let at_least_one = |field: &'static str, value: u32| {
            if value == 0 {
                Err(invalid(field, "must be at least 1"))
            } else {
                Ok(i64::from(value))
            }
        };
        let burst = at_least_one("burst", self.burst)?;
        let per_hour = at_least_one("per_hour", self.per_hour)?;
        let per_day = at_least_one("per_day", self.per_day)?;
        if per_hour > HOUR_MS {
            return Err(invalid("per_hour", "must be at most 3600000"));
        }
        if per_day > DAY_MS {
            return Err(invalid("per_day", "must be at most 86400000"));
        }
        let minutes = |field: &'static str, value: u64| match i64::try_from(value) {
            Ok(m) if (1..=MAX_MINUTES).contains(&value) => Ok(m * 60_000),
            _ => Err(invalid(field, "must be between 1 and 527040 (366 days)")),
        };
        let scan_window_ms = minutes("scan_window_minutes", self.scan_window_minutes)?;
        let block_ms = minutes("block_minutes", self.block_minutes)?;
        let loop_window_ms = match i64::try_from(self.loop_window_secs) {
            Ok(s) if (1..=MAX_MINUTES * 60).contains(&self.loop_window_secs) => s * 1000,
            _ => {
                return Err(invalid(
                    "loop_window_secs",
                    "must be between 1 and 31622400 (366 days)",
                ))
            }
        };
        if self.loop_repeats == 1 || self.loop_repeats > MAX_LOOP_REPEATS {
            return Err(invalid(
                "loop_repeats",
                "must be 0 (off) or between 2 and 100",
            ));
        }
        if self.redis_url.is_some() && self.redis_key_prefix.is_empty() {
            return Err(invalid(
                "redis_key_prefix",
                "must not be empty when redis_url is set",
            ));
        }
        let mut own = HashSet::with_capacity(self.service_numbers.len());
        for number in &self.service_numbers {
            let msisdn = Msisdn::parse(number).map_err(|source| AbuseError::ServiceNumber {
                number: number.clone(),
                source,
            })?;
            own.insert(msisdn.as_international().to_owned());
        }
        let tiers = [
            Tier {
                interval_ms: ceil_div(HOUR_MS, per_hour),
                capacity: burst.min(per_hour),
            },
            Tier {
                interval_ms: ceil_div(DAY_MS, per_day),
                capacity: per_day,
            },
        ];
        let limits = Limits {
            enabled: self.enabled,
            tiers,
            failed_lookups_before_block: self.failed_lookups_before_block,
            distinct_codes_before_block: self.distinct_codes_before_block,
            scan_window_ms,
            scan_window_minutes: self.scan_window_minutes,
            block_ms,
            code_flag_senders: self.code_flag_senders,
            loop_repeats: self.loop_repeats,
            loop_window_ms,
        };
        Ok((limits, own))
    }
}

/// `a / b` rounded up, for positive numbers: an emission interval rounded
/// up never lets more than the configured rate through.
fn ceil_div(a: i64, b: i64) -> i64 {
    (a + b - 1) / b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_into_a_three_minute_pace_and_a_daily_tier() {
        let (limits, own) = RateLimitSettings::default().validate().unwrap();
        assert!(limits.enabled);
        assert_eq!(
            limits.tiers,
            [
                Tier {
                    interval_ms: 180_000,
                    capacity: 3
                },
                Tier {
                    interval_ms: 1_440_000,
                    capacity: 60
                },
            ]
        );
        assert_eq!(limits.scan_window_ms, 3_600_000);
        assert_eq!(limits.block_ms, 86_400_000);
        assert_eq!(limits.loop_window_ms, 600_000);
        assert!(own.is_empty());
    }

    #[test]
    fn an_empty_section_is_the_defaults_and_unknown_keys_are_refused() {
        let empty: RateLimitSettings = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, RateLimitSettings::default());
        let partial: RateLimitSettings =
            serde_json::from_str(r#"{"burst": 5, "service_numbers": ["0912 000 111"]}"#).unwrap();
        assert_eq!(partial.burst, 5);
        assert_eq!(partial.per_hour, 20);
        let err = serde_json::from_str::<RateLimitSettings>(r#"{"brust": 5}"#).unwrap_err();
        assert!(err.to_string().contains("brust"), "{err}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases: [(&str, RateLimitSettings); 6] = [
            (
                "burst",
                RateLimitSettings {
                    burst: 0,
                    ..Default::default()
                },
            ),
            (
                "per_day",
                RateLimitSettings {
                    per_day: 0,
                    ..Default::default()
                },
            ),
            (
                "scan_window_minutes",
                RateLimitSettings {
                    scan_window_minutes: 0,
                    ..Default::default()
                },
            ),
            (
                "block_minutes",
                RateLimitSettings {
                    block_minutes: u64::MAX,
                    ..Default::default()
                },
            ),
            (
                "loop_repeats",
                RateLimitSettings {
                    loop_repeats: 1,
                    ..Default::default()
                },
            ),
            (
                "loop_window_secs",
                RateLimitSettings {
                    loop_window_secs: 0,
                    ..Default::default()
                },
            ),
        ];
        for (field, settings) in cases {
            let err = settings.validate().unwrap_err();
            assert!(
                matches!(err, AbuseError::Settings { field: f, .. } if f == field),
                "{field}: {err}"
            );
            assert!(err.to_string().contains(field), "{err}");
        }
    }

    #[test]
    fn service_numbers_are_parsed_and_short_codes_refused() {
        let settings = RateLimitSettings {
            service_numbers: vec!["+84 912 000 111".to_owned(), "0987000222".to_owned()],
            ..Default::default()
        };
        let (_, own) = settings.validate().unwrap();
        assert!(own.contains("84912000111") && own.contains("84987000222"));

        let settings = RateLimitSettings {
            service_numbers: vec!["8058".to_owned()],
            ..Default::default()
        };
        let err = settings.validate().unwrap_err();
        assert!(matches!(err, AbuseError::ServiceNumber { .. }), "{err}");
        assert!(err.to_string().contains("8058"), "{err}");
    }

    #[test]
    fn burst_never_exceeds_the_hourly_rate() {
        let settings = RateLimitSettings {
            burst: 50,
            per_hour: 10,
            ..Default::default()
        };
        let (limits, _) = settings.validate().unwrap();
        assert_eq!(limits.tiers[0].capacity, 10);
        assert_eq!(limits.tiers[0].interval_ms, 360_000);
    }

    #[test]
    fn redis_passwords_are_masked() {
        assert_eq!(
            redact_url("redis://:s3cret@10.0.0.5:6379/0"),
            "redis://:***@10.0.0.5:6379/0"
        );
        // The user name is kept; a password holding an unencoded `@` is
        // still masked whole.
        assert_eq!(
            redact_url("rediss://user:p@ss@host/1"),
            "rediss://user:***@host/1"
        );
        let with_query = redact_url("rediss://user:p@ss@host/1?x=@");
        assert!(
            with_query.starts_with("rediss://user:***@") && !with_query.contains("p@ss"),
            "{with_query}"
        );
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        assert_eq!(redact_url("not a url"), "not a url");
        let settings = RateLimitSettings {
            redis_url: Some("redis://:s3cret@host:6379".to_owned()),
            ..Default::default()
        };
        assert!(!format!("{settings:?}").contains("s3cret"));
    }
}
