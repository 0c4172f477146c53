//! Time as the gateway reads it: now in Unix milliseconds (what every table
//! stores), and Vietnam's local time, UTC+07:00 all year (no daylight
//! saving), in which citizens, the portal and the console read dates. The
//! offset is written here once; every room that shows or computes a local
//! time takes it from here.

use chrono::{DateTime, FixedOffset, NaiveDateTime, Utc};

/// Vietnam's offset from UTC, in seconds (no daylight saving).
pub const VIETNAM_UTC_OFFSET_SECS: i32 = 7 * 3600;

/// Vietnam's offset from UTC, in milliseconds.
pub const VIETNAM_UTC_OFFSET_MS: i64 = VIETNAM_UTC_OFFSET_SECS as i64 * 1000;

/// Current time in Unix milliseconds (0 if the system clock is before 1970).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Vietnam's time zone: the fixed offset +07:00.
pub fn vietnam() -> FixedOffset {
    FixedOffset::east_opt(VIETNAM_UTC_OFFSET_SECS).expect("+07:00 is a valid offset")
}

/// Local Vietnamese time now, which the portal's dates are in.
pub fn vietnam_now() -> NaiveDateTime {
    Utc::now().with_timezone(&vietnam()).naive_local()
}

/// Unix milliseconds as a time in Vietnam; `None` when out of chrono's range.
pub fn in_vietnam(ms: i64) -> Option<DateTime<FixedOffset>> {
    DateTime::from_timestamp_millis(ms).map(|t| t.with_timezone(&vietnam()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vietnam_is_seven_hours_ahead_of_utc() {
        assert_eq!(VIETNAM_UTC_OFFSET_MS, 25_200_000);
        let t = in_vietnam(0).unwrap();
        assert_eq!(t.to_rfc3339(), "1970-01-01T07:00:00+07:00");
        let drift = (vietnam_now() - Utc::now().naive_utc()).num_seconds();
        assert!((25_199..=25_200).contains(&drift), "{drift}");
        assert!(now_ms() > 1_700_000_000_000);
    }
}
