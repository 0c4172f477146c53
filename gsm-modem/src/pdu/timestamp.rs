//! Time stamps (TS 23.040 §9.2.3.11): seven octets of swapped BCD, the
//! last one the offset from UTC in quarters of an hour with its sign in
//! bit 3 (the high bit of the tens digit).
//!
//! Real networks sometimes send digits above 9; such a semi-octet pair is
//! read as `tens * 10 + units` all the same (a wrong date is better than a
//! lost message) and written back so that it reads the same again.

use super::{PduError, Timestamp};

fn read_pair(octet: u8) -> u8 {
    (octet & 0x0F) * 10 + (octet >> 4)
}

/// The swapped semi-octets of `value`: tens (at most 15) in the low
/// nibble, units in the high one.
fn write_pair(value: u8, field: &str) -> Result<u8, PduError> {
    let tens = (value / 10).min(15);
    let units = value - tens * 10;
    if units > 15 {
        return Err(PduError::Unencodable(format!("time stamp {field} {value}")));
    }
    Ok(tens | (units << 4))
}

/// Reads a time stamp.
pub(crate) fn decode(octets: [u8; 7]) -> Timestamp {
    let tz = octets[6];
    let quarters = (tz & 0x07) * 10 + (tz >> 4);
    let tz_quarters = if tz & 0x08 != 0 {
        -(quarters as i8)
    } else {
        quarters as i8
    };
    Timestamp {
        year: read_pair(octets[0]),
        month: read_pair(octets[1]),
        day: read_pair(octets[2]),
        hour: read_pair(octets[3]),
        minute: read_pair(octets[4]),
        second: read_pair(octets[5]),
        tz_quarters,
    }
}

/// Writes a time stamp.
pub(crate) fn encode(time: &Timestamp) -> Result<[u8; 7], PduError> {
    let quarters = i16::from(time.tz_quarters).unsigned_abs();
    let tens = (quarters / 10).min(7);
    let units = quarters - tens * 10;
    if units > 15 {
        return Err(PduError::Unencodable(format!(
            "time zone of {} quarters",
            time.tz_quarters
        )));
    }
    let sign = if time.tz_quarters < 0 { 0x08 } else { 0 };
    Ok([
        write_pair(time.year, "year")?,
        write_pair(time.month, "month")?,
        write_pair(time.day, "day")?,
        write_pair(time.hour, "hour")?,
        write_pair(time.minute, "minute")?,
        write_pair(time.second, "second")?,
        tens as u8 | sign | ((units as u8) << 4),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vietnam_plus_seven_hours() {
        // 2024-03-15 09:30:05 +07:00 = +28 quarters.
        let octets = [0x42, 0x30, 0x51, 0x90, 0x03, 0x50, 0x82];
        let time = decode(octets);
        assert_eq!(
            time,
            Timestamp {
                year: 24,
                month: 3,
                day: 15,
                hour: 9,
                minute: 30,
                second: 5,
                tz_quarters: 28,
            }
        );
        assert_eq!(encode(&time).unwrap(), octets);
    }

    #[test]
    fn negative_time_zone() {
        // 2013-03-25 23:01:56 -07:00: tz octet 0x8A = tens 2 with the sign bit, units 8.
        let octets = [0x31, 0x30, 0x52, 0x32, 0x10, 0x65, 0x8A];
        let time = decode(octets);
        assert_eq!((time.year, time.month, time.day), (13, 3, 25));
        assert_eq!((time.hour, time.minute, time.second), (23, 1, 56));
        assert_eq!(time.tz_quarters, -28);
        assert_eq!(encode(&time).unwrap(), octets);
    }

    #[test]
    fn non_decimal_digits_read_and_write_the_same() {
        let octets = [0xFF, 0xAF, 0x0F, 0xF0, 0x9A, 0x00, 0xFF];
        let time = decode(octets);
        assert_eq!(decode(encode(&time).unwrap()), time);
    }

    #[test]
    fn impossible_offsets_are_refused() {
        let mut time = decode([0; 7]);
        time.tz_quarters = i8::MIN;
        assert!(encode(&time).is_err());
        time.tz_quarters = -85;
        assert_eq!(decode(encode(&time).unwrap()), time);
    }
}
