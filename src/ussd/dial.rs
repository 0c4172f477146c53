//! What a citizen types on a phone keypad for USSD, parsed: the service code
//! (`*8058#`), a direct dial (`*8058*<code>#`), and a dossier code typed as
//! digits alone (the keypad has no letters, so `000.00.12.H58-240315-0007` is
//! typed `0000012582403150007`). Pure: no I/O.

use std::fmt;

use chrono::NaiveDate;

use crate::domain::DossierCode;

/// The USSD service code, as digits (`*8058#` → `8058`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceCode(String);

/// Why a configured service code is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "USSD service code {0:?} is not valid: write it as dialled, e.g. \"*8058#\" \
     (digits, optionally starting with * and ending with #; sub-codes as *8058*1#)"
)]
pub struct ServiceCodeError(pub String);

impl ServiceCode {
    /// Reads `*8058#`, `*8058*1#` or `8058`.
    ///
    /// # Errors
    ///
    /// [`ServiceCodeError`] unless it is digits and `*` separators.
    pub fn parse(text: &str) -> Result<Self, ServiceCodeError> {
        let trimmed = text.trim();
        let inner = trimmed.strip_prefix('*').unwrap_or(trimmed);
        let inner = inner.strip_suffix('#').unwrap_or(inner);
        let valid = !inner.is_empty()
            && inner.split('*').all(|group| {
                !group.is_empty() && group.len() <= 8 && group.bytes().all(|b| b.is_ascii_digit())
            });
        if valid {
            Ok(ServiceCode(inner.to_owned()))
        } else {
            Err(ServiceCodeError(text.to_owned()))
        }
    }

    /// As dialled: `*8058#`.
    pub fn dialled(&self) -> String {
        format!("*{}#", self.0)
    }

    /// The digits and inner `*` (`8058`, `8058*1`).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ServiceCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.dialled())
    }
}

/// What a dial string asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dial {
    /// The bare service code: open the menu.
    Menu,
    /// The service code followed by more (`*8058*<code>#`): look it up at
    /// once. The text after the service code, `*` kept between groups.
    Direct(String),
}

/// Why a dial string is not for this service.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("dial string {dialled:?} is not for service code {service}")]
pub struct DialError {
    /// What was dialled, phone numbers in it masked (`*101*091****678#`):
    /// the error is logged.
    pub dialled: String,
    /// Our service code.
    pub service: String,
}

impl Dial {
    /// Reads a dial string (`*8058#`, `*8058*0000012582403150007#`) for `service`.
    ///
    /// # Errors
    ///
    /// [`DialError`] when it does not start with the service code.
    pub fn parse(dialled: &str, service: &ServiceCode) -> Result<Dial, DialError> {
        let error = || DialError {
            dialled: crate::privacy::mask_numbers_in(dialled),
            service: service.dialled(),
        };
        let text = dialled.trim();
        let text = text.strip_prefix('*').unwrap_or(text);
        let text = text.strip_suffix('#').unwrap_or(text);
        let rest = text.strip_prefix(service.as_str()).ok_or_else(error)?;
        if rest.is_empty() {
            return Ok(Dial::Menu);
        }
        let rest = rest.strip_prefix('*').ok_or_else(error)?;
        if rest.trim_matches('*').is_empty() {
            Ok(Dial::Menu)
        } else {
            Ok(Dial::Direct(rest.to_owned()))
        }
    }
}

/// A dossier code typed as digits only: every digit of the canonical code,
/// in order, its letters left out. The last ten digits are the receipt date
/// (YYMMDD) and the day's order number.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeypadDigits(String);

/// Fewest digits a code has: the agency's last group always keeps its two
/// digits (`H58`), and the date and order number are ten more.
pub const MIN_CODE_DIGITS: usize = 12;
/// Most digits a code has: four agency groups of digits (3, 2, 2, and the
/// last group's two after its letter), then the date and order number.
pub const MAX_CODE_DIGITS: usize = 19;

/// What the citizen typed as a dossier code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeQuery {
    /// A whole code with its letters (a phone that can type letters, a pasted code).
    Exact(DossierCode),
    /// Digits only: matched against every code's digits.
    Digits(KeypadDigits),
}

/// Why the typed text cannot be a dossier code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeInputError {
    /// Nothing typed.
    #[error("nothing typed")]
    Empty,
    /// Fewer digits than any code has.
    #[error("{count} digits: a dossier code has at least {MIN_CODE_DIGITS}")]
    TooShort {
        /// Digits typed.
        count: usize,
    },
    /// More digits than any code has.
    #[error("{count} digits: a dossier code has at most {MAX_CODE_DIGITS}")]
    TooLong {
        /// Digits typed.
        count: usize,
    },
    /// The receipt date in the code cannot exist.
    #[error("impossible receipt date {yymmdd}")]
    ImpossibleDate {
        /// The date digits as typed.
        yymmdd: String,
    },
    /// The order number is 0000.
    #[error("order number 0000 does not exist")]
    ZeroOrder,
    /// Letters and digits that do not make a code.
    #[error("not a dossier code")]
    NotACode,
}

impl KeypadDigits {
    /// The digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The receipt date's digits, `YYMMDD`.
    pub fn yymmdd(&self) -> &str {
        &self.0[self.0.len() - 10..self.0.len() - 4]
    }
}

impl fmt::Display for KeypadDigits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl CodeQuery {
    /// Reads what the citizen typed where a code is expected. Digits may be
    /// separated by `*`, spaces, dots or dashes (keypad users type `*`
    /// between groups); any letter makes it a whole code, read leniently.
    ///
    /// # Errors
    ///
    /// [`CodeInputError`] saying what is wrong, for the re-prompt.
    pub fn parse(input: &str) -> Result<CodeQuery, CodeInputError> {
        let text = input.trim().trim_end_matches('#');
        if text
            .trim_matches(|c: char| c == '*' || c.is_whitespace())
            .is_empty()
        {
            return Err(CodeInputError::Empty);
        }
        if text.chars().any(|c| c.is_alphabetic()) {
            return match DossierCode::extract(text) {
                Ok(code) => Ok(CodeQuery::Exact(code)),
                Err(crate::domain::ExtractError::ImpossibleDate { found }) => {
                    Err(CodeInputError::ImpossibleDate {
                        yymmdd: found.chars().filter(char::is_ascii_digit).collect(),
                    })
                }
                Err(crate::domain::ExtractError::NoCode) => Err(CodeInputError::NotACode),
            };
        }
        if !text
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '*' | ' ' | '.' | '-' | '_' | ','))
        {
            return Err(CodeInputError::NotACode);
        }
        let digits: String = text.chars().filter(char::is_ascii_digit).collect();
        let count = digits.len();
        if count < MIN_CODE_DIGITS {
            return Err(CodeInputError::TooShort { count });
        }
        if count > MAX_CODE_DIGITS {
            return Err(CodeInputError::TooLong { count });
        }
        let keypad = KeypadDigits(digits);
        let yymmdd = keypad.yymmdd();
        let number = |range: std::ops::Range<usize>| yymmdd[range].parse::<u32>().unwrap_or(0);
        if NaiveDate::from_ymd_opt(2000 + number(0..2) as i32, number(2..4), number(4..6)).is_none()
        {
            return Err(CodeInputError::ImpossibleDate {
                yymmdd: yymmdd.to_owned(),
            });
        }
        if keypad.0.ends_with("0000") {
            return Err(CodeInputError::ZeroOrder);
        }
        Ok(CodeQuery::Digits(keypad))
    }
}

/// The digits of a canonical code, as the read model indexes them.
pub fn digits_of(code: &DossierCode) -> String {
    code.as_str().chars().filter(char::is_ascii_digit).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn service() -> ServiceCode {
        ServiceCode::parse("*8058#").unwrap()
    }

    #[test]
    fn a_dial_for_another_service_is_logged_without_the_number_in_it() {
        let error = Dial::parse("*101*0912345678#", &service()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "dial string \"*101*091****678#\" is not for service code *8058#"
        );
        assert!(!format!("{error:?}").contains("0912345678"));
    }

    #[test]
    fn service_codes_are_read_as_dialled() {
        assert_eq!(service().as_str(), "8058");
        assert_eq!(ServiceCode::parse("8058").unwrap().dialled(), "*8058#");
        assert_eq!(ServiceCode::parse("*8058*1#").unwrap().as_str(), "8058*1");
        for bad in ["", "*#", "*80a8#", "**8058#", "*8058**1#"] {
            assert!(ServiceCode::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn dial_strings_open_the_menu_or_look_up_at_once() {
        let s = service();
        assert_eq!(Dial::parse("*8058#", &s), Ok(Dial::Menu));
        assert_eq!(Dial::parse("*8058*#", &s), Ok(Dial::Menu));
        assert_eq!(
            Dial::parse("*8058*0000012582403150007#", &s),
            Ok(Dial::Direct("0000012582403150007".into()))
        );
        assert_eq!(
            Dial::parse("*8058*000*00*12*58*240315*0007#", &s),
            Ok(Dial::Direct("000*00*12*58*240315*0007".into()))
        );
        assert!(Dial::parse("*101#", &s).is_err());
        assert!(
            Dial::parse("*80581#", &s).is_err(),
            "another code sharing the prefix"
        );
    }

    #[test]
    fn keypad_digits_and_whole_codes_are_told_apart() {
        let digits = |s: &str| match CodeQuery::parse(s) {
            Ok(CodeQuery::Digits(d)) => d.to_string(),
            other => panic!("{s:?}: {other:?}"),
        };
        assert_eq!(digits("0000012582403150007"), "0000012582403150007");
        assert_eq!(digits("000*00*12*58*240315*0007#"), "0000012582403150007");
        assert_eq!(digits("3898292105190003"), "3898292105190003");
        match CodeQuery::parse("000.00.12.h58-240315-0007") {
            Ok(CodeQuery::Exact(code)) => assert_eq!(code.as_str(), "000.00.12.H58-240315-0007"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_inputs_say_what_is_wrong() {
        assert_eq!(CodeQuery::parse(" * "), Err(CodeInputError::Empty));
        assert_eq!(
            CodeQuery::parse("12345"),
            Err(CodeInputError::TooShort { count: 5 })
        );
        assert_eq!(
            CodeQuery::parse("12345678901234567890"),
            Err(CodeInputError::TooLong { count: 20 })
        );
        assert_eq!(
            CodeQuery::parse("0000012582402310007"),
            Err(CodeInputError::ImpossibleDate {
                yymmdd: "240231".into()
            })
        );
        assert_eq!(
            CodeQuery::parse("0000012582403150000"),
            Err(CodeInputError::ZeroOrder)
        );
        assert_eq!(CodeQuery::parse("xin chao"), Err(CodeInputError::NotACode));
        assert_eq!(CodeQuery::parse("12#34?"), Err(CodeInputError::NotACode));
    }

    #[test]
    fn a_canonical_codes_digits_parse_back_to_themselves() {
        let code = DossierCode::parse("000.A0.01.H26-210212-9090").unwrap();
        let digits = digits_of(&code);
        assert_eq!(digits, "000001262102129090");
        assert_eq!(
            CodeQuery::parse(&digits),
            Ok(CodeQuery::Digits(KeypadDigits(digits)))
        );
    }

    proptest! {
        #[test]
        fn any_input_is_parsed_or_refused_without_panicking(s in "\\PC{0,40}") {
            let _ = CodeQuery::parse(&s);
            let _ = Dial::parse(&s, &service());
        }

        #[test]
        fn digit_groups_join_whatever_separates_them(
            groups in proptest::collection::vec("[0-9]{1,5}", 1..6),
            separator in prop_oneof![Just("*"), Just(" "), Just("."), Just("-")],
        ) {
            let digits: String = groups.concat();
            let typed = groups.join(separator);
            let parsed = CodeQuery::parse(&typed);
            let direct = CodeQuery::parse(&digits);
            prop_assert_eq!(parsed, direct);
        }
    }
}
