//! Phone numbers (MSISDN): parsing what carriers, handsets and agency
//! databases write into one international form, and rendering them redacted
//! so that logs never carry a citizen's full number.
//!
//! `Display` and `Debug` are redacted on purpose; the full number is only
//! reachable through [`Msisdn::as_international`] and [`Msisdn::national`].

use std::fmt;

/// Vietnam's country calling code.
const VN_COUNTRY_CODE: &str = "84";

/// 11-digit mobile prefixes retired in 2018–2019, mapped to their 10-digit
/// replacements (national form without the leading zero).
const LEGACY_MOBILE_PREFIXES: [(&str, &str); 21] = [
    ("162", "32"),
    ("163", "33"),
    ("164", "34"),
    ("165", "35"),
    ("166", "36"),
    ("167", "37"),
    ("168", "38"),
    ("169", "39"),
    ("120", "70"),
    ("121", "79"),
    ("122", "77"),
    ("126", "76"),
    ("128", "78"),
    ("123", "83"),
    ("124", "84"),
    ("125", "85"),
    ("127", "81"),
    ("129", "82"),
    ("186", "56"),
    ("188", "58"),
    ("199", "59"),
];

/// Mobile prefixes (national form) of Vietnam's carriers, for routing a
/// reply through the citizen's own carrier when the link a message came in
/// on is down.
const CARRIER_PREFIXES: [(&str, &[&str]); 8] = [
    (
        "viettel",
        &[
            "032", "033", "034", "035", "036", "037", "038", "039", "086", "096", "097", "098",
        ],
    ),
    (
        "vinaphone",
        &["081", "082", "083", "084", "085", "088", "091", "094"],
    ),
    (
        "mobifone",
        &["070", "076", "077", "078", "079", "089", "090", "093"],
    ),
    ("vietnamobile", &["052", "056", "058", "092"]),
    ("gmobile", &["059", "099"]),
    ("itel", &["087"]),
    ("reddi", &["055"]),
    ("wintel", &["055"]),
];

/// The mobile prefixes of a carrier by name (`viettel`, `vinaphone`,
/// `mobifone`, `vietnamobile`, `gmobile`, `itel`, `reddi`), case-insensitive.
pub fn carrier_prefixes(carrier: &str) -> Option<&'static [&'static str]> {
    CARRIER_PREFIXES
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(carrier.trim()))
        .map(|(_, prefixes)| *prefixes)
}

/// A phone number in international form (digits only, country code first).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Msisdn(String);

/// Why a text is not a phone number.
///
/// Errors end up in log lines and in the journal's `last_error`, so they
/// never carry the number as given: `Display` and `Debug` show its digits
/// with the middle masked ([`mask_middle`]: `091*******901`) and how many
/// there are, enough to see what was wrong without naming anyone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MsisdnError {
    /// Nothing but separators.
    #[error("phone number is empty")]
    Empty,
    /// Letters or symbols other than `+`, spaces, dots, dashes and parentheses.
    #[error("phone number contains {0:?}, which is not a digit (alphanumeric senders such as brand names are not phone numbers)")]
    NotDigits(char),
    /// A Vietnamese number with the wrong number of digits or an unused prefix.
    #[error("{digits} ({len} digits) is not a Vietnamese phone number: expected 0 followed by 9 digits (mobile) or 10 digits (landline 02x)")]
    NotVietnamese {
        /// The digits as given, masked.
        digits: MaskedDigits,
        /// Their count.
        len: usize,
    },
    /// An international number outside E.164's 8–15 digits.
    #[error("international number {digits} has {len} digits; E.164 allows 8 to 15")]
    BadLength {
        /// The digits as given, masked.
        digits: MaskedDigits,
        /// Their count.
        len: usize,
    },
}

/// Digits that did not make a phone number, kept only in masked form
/// (`091*******901`), so that an error can be logged whatever it holds.
#[derive(Clone, PartialEq, Eq)]
pub struct MaskedDigits(String);

impl MaskedDigits {
    /// Masks `digits` at once; the full text is not kept.
    pub fn new(digits: &str) -> Self {
        MaskedDigits(mask_middle(digits))
    }

    /// The masked text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MaskedDigits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for MaskedDigits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl Msisdn {
    /// Parses a number as written by a handset, an SMSC or an agency record:
    /// `0912345678`, `84912345678`, `+84 912 345 678`, `0084912345678`,
    /// `912345678` (national without the trunk zero), or a retired 11-digit
    /// mobile number (`01662345678` becomes `84362345678`). Other countries
    /// need a `+` or `00` prefix.
    pub fn parse(input: &str) -> Result<Self, MsisdnError> {
        let trimmed = input.trim();
        let (explicit_international, rest) = if let Some(r) = trimmed.strip_prefix('+') {
            (true, r)
        } else {
            (false, trimmed)
        };
        let mut digits = String::with_capacity(rest.len());
        for c in rest.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '.' | '-' | '(' | ')' | '\u{a0}' => {}
                other => return Err(MsisdnError::NotDigits(other)),
            }
        }
        if digits.is_empty() {
            return Err(MsisdnError::Empty);
        }
        let (international, digits) = match digits.strip_prefix("00") {
            Some(r) if !explicit_international => (true, r.to_owned()),
            _ => (explicit_international, digits),
        };
        if international {
            if let Some(national) = digits.strip_prefix(VN_COUNTRY_CODE) {
                return Self::from_vietnamese_national(national, &digits);
            }
            let len = digits.len();
            if !(8..=15).contains(&len) {
                return Err(MsisdnError::BadLength {
                    digits: MaskedDigits::new(&digits),
                    len,
                });
            }
            return Ok(Msisdn(digits));
        }
        if let Some(national) = digits.strip_prefix('0') {
            return Self::from_vietnamese_national(national, &digits);
        }
        if digits.starts_with(VN_COUNTRY_CODE) && (digits.len() == 11 || digits.len() == 12) {
            return Self::from_vietnamese_national(&digits[2..], &digits);
        }
        Self::from_vietnamese_national(&digits, &digits)
    }

    /// `national` is the number without country code and without trunk zero.
    fn from_vietnamese_national(national: &str, as_given: &str) -> Result<Self, MsisdnError> {
        let bad = || MsisdnError::NotVietnamese {
            digits: MaskedDigits::new(as_given),
            len: as_given.len(),
        };
        let national = match national.len() {
            9 if matches!(national.as_bytes()[0], b'3' | b'5' | b'7' | b'8' | b'9') => {
                national.to_owned()
            }
            10 if national.starts_with('2') => national.to_owned(),
            10 => LEGACY_MOBILE_PREFIXES
                .iter()
                .find(|(old, _)| national.starts_with(old))
                .map(|(old, new)| format!("{new}{}", &national[old.len()..]))
                .ok_or_else(bad)?,
            _ => return Err(bad()),
        };
        Ok(Msisdn(format!("{VN_COUNTRY_CODE}{national}")))
    }

    /// The number in international form without `+`: `84912345678`.
    pub fn as_international(&self) -> &str {
        &self.0
    }

    /// True for a Vietnamese number.
    pub fn is_vietnamese(&self) -> bool {
        self.0.starts_with(VN_COUNTRY_CODE)
    }

    /// True for a Vietnamese landline (`02x…`), which cannot send an SMS.
    pub fn is_vietnamese_landline(&self) -> bool {
        self.0
            .strip_prefix(VN_COUNTRY_CODE)
            .is_some_and(|national| national.starts_with('2'))
    }

    /// The number as Vietnamese people write it: `0912345678`; other
    /// countries as `+<digits>`.
    pub fn national(&self) -> String {
        match self.0.strip_prefix(VN_COUNTRY_CODE) {
            Some(rest) => format!("0{rest}"),
            None => format!("+{}", self.0),
        }
    }

    /// The number with its middle masked, for logs and viewers: `091****678`.
    pub fn redacted(&self) -> String {
        mask_middle(&self.national())
    }
}

/// `text` with its middle replaced by `*` (how [`Msisdn::redacted`] masks a
/// number; also for numbers that do not parse): the first and last three
/// characters are kept when at least four stay hidden (`091****678`),
/// fewer when the text is shorter, none below five characters.
pub fn mask_middle(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let keep = 3.min(chars.len().saturating_sub(4) / 2);
    let masked = chars.len() - 2 * keep;
    let mut out: String = chars[..keep].iter().collect();
    out.extend(std::iter::repeat_n('*', masked));
    out.extend(&chars[chars.len() - keep..]);
    out
}

impl fmt::Display for Msisdn {
    /// Redacted, so that `%msisdn` in a log line never leaks a number.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for Msisdn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Msisdn({})", self.redacted())
    }
}

impl std::str::FromStr for Msisdn {
    type Err = MsisdnError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn common_spellings_normalise_to_one_form() {
        for input in [
            "0912345678",
            "84912345678",
            "+84 912 345 678",
            "+84912345678",
            "0084912345678",
            "912345678",
            "091.234.5678",
            "(091) 234-5678",
        ] {
            assert_eq!(
                Msisdn::parse(input).unwrap().as_international(),
                "84912345678",
                "{input}"
            );
        }
    }

    #[test]
    fn redaction_masks_the_middle() {
        let m = Msisdn::parse("0912345678").unwrap();
        assert_eq!(m.redacted(), "091****678");
        assert_eq!(m.to_string(), "091****678");
        assert_eq!(format!("{m:?}"), "Msisdn(091****678)");
    }

    #[test]
    fn retired_eleven_digit_numbers_are_converted() {
        assert_eq!(
            Msisdn::parse("01662345678").unwrap().national(),
            "0362345678"
        );
        assert_eq!(
            Msisdn::parse("841232345678").unwrap().national(),
            "0832345678"
        );
    }

    #[test]
    fn landlines_and_foreign_numbers() {
        assert_eq!(
            Msisdn::parse("02733 123 456").unwrap().as_international(),
            "842733123456"
        );
        let foreign = Msisdn::parse("+1 415 555 0100").unwrap();
        assert_eq!(foreign.as_international(), "14155550100");
        assert_eq!(foreign.national(), "+14155550100");
        assert!(!foreign.is_vietnamese());
        assert!(!foreign.is_vietnamese_landline());
        assert!(Msisdn::parse("02438251234")
            .unwrap()
            .is_vietnamese_landline());
        assert!(!Msisdn::parse("0912345678")
            .unwrap()
            .is_vietnamese_landline());
    }

    #[test]
    fn garbage_is_rejected_with_a_reason() {
        assert_eq!(Msisdn::parse(""), Err(MsisdnError::Empty));
        assert_eq!(Msisdn::parse(" - "), Err(MsisdnError::Empty));
        assert_eq!(Msisdn::parse("VIETTEL"), Err(MsisdnError::NotDigits('V')));
        assert!(matches!(
            Msisdn::parse("0123"),
            Err(MsisdnError::NotVietnamese { .. })
        ));
        assert!(matches!(
            Msisdn::parse("0112345678"),
            Err(MsisdnError::NotVietnamese { .. })
        ));
        assert!(matches!(
            Msisdn::parse("+1234"),
            Err(MsisdnError::BadLength { .. })
        ));
    }

    /// True when `shown` holds four or more consecutive digits of `input`.
    fn shows_digits_of(shown: &str, input: &str) -> bool {
        let digits: Vec<char> = input.chars().filter(char::is_ascii_digit).collect();
        digits
            .windows(4)
            .any(|w| shown.contains(&w.iter().collect::<String>()))
    }

    #[test]
    fn errors_never_show_the_number_as_given() {
        for input in [
            "0912345678901",
            "09123456789 0987654321",
            "0112345678",
            "+1234567890123456789",
            "84 1987 654 321",
            "0273 123 45",
        ] {
            let error = Msisdn::parse(input).unwrap_err();
            for shown in [error.to_string(), format!("{error:?}")] {
                assert!(
                    !shows_digits_of(&shown, input),
                    "{input:?} shown as {shown:?}"
                );
            }
        }
        let error = Msisdn::parse("0912345678901").unwrap_err();
        assert_eq!(
            error.to_string(),
            "091*******901 (13 digits) is not a Vietnamese phone number: expected 0 followed by 9 digits (mobile) or 10 digits (landline 02x)"
        );
        let error = Msisdn::parse("+1234567890123456789").unwrap_err();
        assert_eq!(
            error.to_string(),
            "international number 123*************789 has 19 digits; E.164 allows 8 to 15"
        );
    }

    #[test]
    fn masking_hides_at_least_four_characters() {
        assert_eq!(mask_middle("0912345678"), "091****678");
        assert_eq!(mask_middle("123456789"), "12*****89");
        assert_eq!(mask_middle("12345678"), "12****78");
        assert_eq!(mask_middle("123456"), "1****6");
        assert_eq!(mask_middle("0123"), "****");
        assert_eq!(mask_middle(""), "");
    }

    proptest! {
        #[test]
        fn no_error_shows_four_digits_of_its_input(input in "(\\+|00)?[0-9 .()-]{0,30}") {
            if let Err(error) = Msisdn::parse(&input) {
                prop_assert!(!shows_digits_of(&error.to_string(), &input), "{}", error);
                prop_assert!(!shows_digits_of(&format!("{error:?}"), &input), "{:?}", error);
            }
        }

        #[test]
        fn vietnamese_mobiles_round_trip(first in "[35789]", rest in "[0-9]{8}") {
            let national = format!("0{first}{rest}");
            let m = Msisdn::parse(&national).unwrap();
            prop_assert_eq!(m.national(), national.clone());
            let international = format!("+{}", m.as_international());
            prop_assert_eq!(Msisdn::parse(&international).unwrap(), m.clone());
            prop_assert_eq!(Msisdn::parse(m.as_international()).unwrap(), m.clone());
            let redacted = m.redacted();
            prop_assert_eq!(redacted.len(), 10);
            prop_assert!(redacted.contains("****"));
        }

        #[test]
        fn never_panics(input in "\\PC{0,40}") {
            let _ = Msisdn::parse(&input);
        }
    }
}
