//! Dossier codes ("mã hồ sơ") of the one-stop administrative service.
//!
//! This module owns the [`DossierCode`] value: its official layout, its
//! validation, its canonical text, and finding one in the free text a citizen
//! sends by SMS.
//!
//! The layout is fixed by Circular 01/2018/TT-VPCP:
//! `V1V2V3.Z1Z2.Y1Y2.MX1X2-YYMMDD-XXXX`, e.g. `000.00.12.H58-240315-0007`.
//!
//! * The agency part has four dot-separated groups of 3, 2, 2 and 3
//!   characters. The first three groups may hold letters
//!   (`000.A0.01.H26`); the last one is a letter followed by two digits
//!   (the province or ministry code, such as `H58`).
//!   Some systems print a three-group agency instead (`38.98.H29`, groups of
//!   2, 2 and 3 characters).
//! * `YYMMDD` is the receipt date, in the years 2000–2099.
//! * `XXXX` is the order number of the dossier that day, `0001`–`9999`.
//!
//! A code is 25 characters long with separators (20 without); the
//! three-group form is 21 (17).
//!
//! [`DossierCode::parse`] accepts only that canonical layout (any case,
//! surrounding whitespace ignored). [`DossierCode::extract`] is lenient and
//! is meant for what people really type; see its documentation for the rules
//! it follows.

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use chrono::NaiveDate;
use regex::{Captures, Match, Regex};

use super::vietnamese::fold_diacritics;

/// Length of the `-YYMMDD-XXXX` tail of a canonical code.
const TAIL_LEN: usize = 12;

/// Most look-alike variants [`DossierCode::look_alikes`] gives: the lookups
/// a code not found as typed may cost.
pub const MAX_LOOK_ALIKES: usize = 16;

/// A validated dossier code, e.g. `000.00.12.H58-240315-0007`.
///
/// The canonical text (upper case, dots between agency groups, dashes before
/// the date and the order number) is built once and returned by
/// [`DossierCode::as_str`] and by `Display`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DossierCode {
    /// Canonical text; the agency groups are its first `agency_len` bytes.
    code: String,
    agency_len: usize,
    receipt_date: NaiveDate,
    order: u16,
}

/// Why a text is not a valid dossier code in the canonical layout.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DossierCodeError {
    /// The text does not follow the official layout.
    #[error(
        "not a dossier code: expected the layout 000.00.12.H58-240315-0007 \
         (or 38.98.H29-210519-0003)"
    )]
    Layout,
    /// The receipt date has the right shape but names a day that does not
    /// exist (month 13, 31 February, 29 February of a common year, …).
    #[error("impossible receipt date {yymmdd} (YYMMDD, year 20YY): no such day")]
    ImpossibleDate {
        /// The six date digits as written in the code.
        yymmdd: String,
    },
    /// The order number is `0000`; numbering starts at `0001` every day.
    #[error("order number 0000 is not valid: a day's numbering starts at 0001")]
    ZeroOrder,
}

/// Why [`DossierCode::extract`] found no usable code in a text.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExtractError {
    /// Nothing in the text looks like a dossier code.
    #[error("no dossier code found in the text")]
    NoCode,
    /// Something in the text looks like a dossier code, but its receipt date
    /// cannot exist (e.g. `240231`), and no valid code was found.
    #[error("{found} looks like a dossier code, but its receipt date cannot exist")]
    ImpossibleDate {
        /// The code that was found, in canonical layout.
        found: String,
    },
}

impl DossierCode {
    /// Parses a code written in the canonical layout
    /// (`000.00.12.H58-240315-0007` or `38.98.H29-210519-0003`).
    ///
    /// Letters may be in any case and surrounding whitespace is ignored;
    /// nothing else is tolerated (use [`DossierCode::extract`] for text typed
    /// by people).
    ///
    /// # Errors
    ///
    /// [`DossierCodeError::Layout`] when the layout is wrong,
    /// [`DossierCodeError::ImpossibleDate`] when the receipt date does not
    /// exist and [`DossierCodeError::ZeroOrder`] for order number `0000`.
    pub fn parse(s: &str) -> Result<Self, DossierCodeError> {
        let upper = s.trim().to_ascii_uppercase();
        let mut parts = upper.split('-');
        let (Some(agency), Some(yymmdd), Some(order), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(DossierCodeError::Layout);
        };
        let groups: Vec<&str> = agency.split('.').collect();
        if !is_agency(&groups) || !is_digits(yymmdd, 6) || !is_digits(order, 4) {
            return Err(DossierCodeError::Layout);
        }
        Self::from_canonical(assemble(&groups, yymmdd, order))
    }

    /// Finds a dossier code in free text, as citizens type it in an SMS.
    ///
    /// What is tolerated:
    ///
    /// * any case, and any words around the code: keywords such as `TC`,
    ///   `HS`, `TRA CUU`, `tra cứu hồ sơ`, `mã hồ sơ`, `MHS` (with or without
    ///   diacritics, even glued to the code as in `TC000.00.12.H58-…`),
    ///   greetings after it, surrounding punctuation, a URL around it;
    /// * any run of spaces and symbols between the groups (`.` `-` `_` `/`
    ///   `,` `:` `–` `—`, and any other character that is not a letter or a
    ///   digit: `§` as an ASCII `_` arrives under the GSM-7 alphabet, `·`,
    ///   `+`, `#`, `*`, `~`, …), or no separators at all;
    /// * `O` for `0` and `I`/`l` for `1` in the digit groups (the two digits
    ///   of the province code, the date and the order number); the other
    ///   agency groups may legitimately hold letters and are kept as typed
    ///   (a code not found as typed is looked up again as its
    ///   [`DossierCode::look_alikes`]);
    /// * an order number without its leading zeros when a separator comes
    ///   before it (`…-240315-12` is order `0012`).
    ///
    /// A first agency group made only of letters is read as a word, not as
    /// part of the code, when a space follows it or when it is (the end of) a
    /// keyword: `tra cuu 38.98.H29-210519-0003` is `38.98.H29-210519-0003`,
    /// not `CUU.38.98.H29-210519-0003`.
    ///
    /// The first valid code in the text is returned. Candidates with order
    /// number `0000` are ignored. The search runs in time linear in the
    /// length of the text and never panics.
    ///
    /// # Errors
    ///
    /// [`ExtractError::ImpossibleDate`] when the only code-like candidates
    /// have a receipt date that cannot exist (the first one is reported),
    /// [`ExtractError::NoCode`] when nothing looks like a code.
    pub fn extract(text: &str) -> Result<Self, ExtractError> {
        let normalized = normalize(text);
        let mut impossible = None;
        let mut from = 0;
        while let Some(caps) = CANDIDATE.captures_at(&normalized, from) {
            let Some(whole) = caps.get(0) else { break };
            // Candidates may overlap (a rejected four-group reading contains
            // a three-group one), so resume right after the start.
            from = whole.start() + 1;
            let Some(canonical) = candidate(&normalized, &caps) else {
                continue;
            };
            match Self::from_canonical(canonical.clone()) {
                Ok(code) => return Ok(code),
                Err(DossierCodeError::ImpossibleDate { .. }) => {
                    impossible.get_or_insert(canonical);
                }
                Err(DossierCodeError::Layout | DossierCodeError::ZeroOrder) => {}
            }
        }
        Err(match impossible {
            Some(found) => ExtractError::ImpossibleDate { found },
            None => ExtractError::NoCode,
        })
    }

    /// The codes this one may have been meant as, when it is not found as
    /// typed: the agency groups that may hold letters (all but the province
    /// group, whose digits [`DossierCode::extract`] already reads) read with
    /// look-alike characters swapped, `O`↔`0` and `I`/`L`↔`1`. Most likely
    /// first: the look-alike letters typed read as digits (all of them, then
    /// fewer), then one `0` or `1` read as a letter. At most
    /// [`MAX_LOOK_ALIKES`], never this code itself, no repeats.
    pub fn look_alikes(&self) -> Vec<DossierCode> {
        let groups_end = self.agency().rfind('.').unwrap_or(0);
        let bytes = self.code.as_bytes();
        let letters: Vec<usize> = (0..groups_end)
            .filter(|&i| matches!(bytes[i], b'O' | b'I' | b'L'))
            .collect();
        let digits: Vec<usize> = (0..groups_end)
            .filter(|&i| matches!(bytes[i], b'0' | b'1'))
            .collect();
        let mut variants: Vec<DossierCode> = Vec::new();
        let mut offer = |changes: &[(usize, u8)]| {
            if variants.len() >= MAX_LOOK_ALIKES || changes.is_empty() {
                return;
            }
            let mut text = self.code.clone().into_bytes();
            for &(at, to) in changes {
                text[at] = to;
            }
            let Ok(text) = String::from_utf8(text) else {
                return;
            };
            if let Ok(code) = Self::from_canonical(text) {
                if code != *self && !variants.contains(&code) {
                    variants.push(code);
                }
            }
        };
        // Typed letters read as digits: every subset, larger ones first.
        let mut subsets: Vec<u32> = (1..1u32 << letters.len().min(16)).collect();
        subsets.sort_by_key(|subset| std::cmp::Reverse(subset.count_ones()));
        for subset in subsets {
            let changes: Vec<(usize, u8)> = letters
                .iter()
                .enumerate()
                .filter(|(bit, _)| subset & (1 << bit) != 0)
                .map(|(_, &at)| (at, if bytes[at] == b'O' { b'0' } else { b'1' }))
                .collect();
            offer(&changes);
        }
        // One digit read as a letter.
        for &at in &digits {
            let alternatives: &[u8] = if bytes[at] == b'0' { b"O" } else { b"IL" };
            for &to in alternatives {
                offer(&[(at, to)]);
            }
        }
        variants
    }

    /// The agency part, e.g. `000.00.12.H58` or `38.98.H29`.
    pub fn agency(&self) -> &str {
        self.code.get(..self.agency_len).unwrap_or_default()
    }

    /// The day the dossier was received.
    pub fn receipt_date(&self) -> NaiveDate {
        self.receipt_date
    }

    /// The order number of the dossier on its receipt day (1–9999).
    pub fn order(&self) -> u16 {
        self.order
    }

    /// The canonical text, e.g. `000.00.12.H58-240315-0007`.
    pub fn as_str(&self) -> &str {
        &self.code
    }

    /// Validates a code already assembled in canonical layout (upper case,
    /// ASCII, correct group shapes), checking its date and order number.
    fn from_canonical(code: String) -> Result<Self, DossierCodeError> {
        let agency_len = code
            .len()
            .checked_sub(TAIL_LEN)
            .ok_or(DossierCodeError::Layout)?;
        let tail = code.get(agency_len..).ok_or(DossierCodeError::Layout)?;
        let yymmdd = tail.get(1..7).ok_or(DossierCodeError::Layout)?;
        let order = tail.get(8..).ok_or(DossierCodeError::Layout)?;
        let receipt_date =
            date_from_yymmdd(yymmdd).ok_or_else(|| DossierCodeError::ImpossibleDate {
                yymmdd: yymmdd.to_owned(),
            })?;
        let order: u16 = order.parse().map_err(|_| DossierCodeError::Layout)?;
        if order == 0 {
            return Err(DossierCodeError::ZeroOrder);
        }
        Ok(Self {
            code,
            agency_len,
            receipt_date,
            order,
        })
    }
}

impl fmt::Display for DossierCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.code)
    }
}

impl FromStr for DossierCode {
    type Err = DossierCodeError;

    /// Same as [`DossierCode::parse`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Joins canonical parts into the canonical text.
fn assemble<S: AsRef<str>>(groups: &[S], yymmdd: &str, order: &str) -> String {
    let mut code = String::with_capacity(25);
    for (i, group) in groups.iter().enumerate() {
        if i > 0 {
            code.push('.');
        }
        code.push_str(group.as_ref());
    }
    code.push('-');
    code.push_str(yymmdd);
    code.push('-');
    code.push_str(order);
    code
}

/// Whether `groups` (already upper case) form a canonical agency part.
fn is_agency(groups: &[&str]) -> bool {
    let Some((province, others)) = groups.split_last() else {
        return false;
    };
    let lengths_ok = match others {
        [a, b, c] => a.len() == 3 && b.len() == 2 && c.len() == 2,
        [a, b] => a.len() == 2 && b.len() == 2,
        _ => false,
    };
    let others_ok = others.iter().all(|g| {
        g.bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
    });
    let province_ok = match province.as_bytes() {
        [letter, d1, d2] => {
            letter.is_ascii_uppercase() && d1.is_ascii_digit() && d2.is_ascii_digit()
        }
        _ => false,
    };
    lengths_ok && others_ok && province_ok
}

fn is_digits(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_digit())
}

/// `YYMMDD` (six ASCII digits) to a date in 2000–2099, if that day exists.
fn date_from_yymmdd(yymmdd: &str) -> Option<NaiveDate> {
    let number = |range: std::ops::Range<usize>| yymmdd.get(range)?.parse::<u32>().ok();
    let year = i32::try_from(number(0..2)?).ok()?;
    NaiveDate::from_ymd_opt(2000 + year, number(2..4)?, number(4..6)?)
}

// ---------------------------------------------------------------------------
// Extraction from free text.
//
// The text is first normalized to a plain ASCII string:
//   * diacritics folded, letters upper-cased;
//   * every run of separators (whitespace, and any character that is not a
//     letter or a digit: punctuation, symbols such as `§` (an ASCII `_`
//     read as GSM-7), `·`, `+`, `#`, `*`, `~`, emoji, controls) becomes one
//     ' ' if it holds whitespace, otherwise one '.';
//   * a letter or digit outside ASCII (after folding) becomes '#', which no
//     code may span.
// A single regex then finds code candidates in that string. The regex
// engine guarantees linear time; candidates are short and bounded, so
// resuming after each candidate's start keeps the whole search linear.
// ---------------------------------------------------------------------------

/// Code candidates in normalized text. `[ .]?` is an optional separator
/// run, `[0-9OIL]` a digit as people type it.
static CANDIDATE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        "(?:",
        // Four agency groups: V1V2V3 . Z1Z2 . Y1Y2 . MX1X2
        r"(?P<a1>[0-9A-Z]{3})(?P<s1>[ .]?)(?P<a2>[0-9A-Z]{2})[ .]?(?P<a3>[0-9A-Z]{2})[ .]?",
        r"(?P<a4>[A-Z][0-9OIL]{2})",
        "|",
        // Three agency groups of 2, 2 and 3 characters: 38.98.H29
        r"(?P<b1>[0-9A-Z]{2})[ .]?(?P<b2>[0-9A-Z]{2})[ .]?(?P<b3>[A-Z][0-9OIL]{2})",
        ")",
        r"[ .]?(?P<date>[0-9OIL]{6})",
        // Order: 1-4 digits after a separator, exactly 4 without one.
        r"(?:[ .](?P<short>[0-9OIL]{1,4})|(?P<full>[0-9OIL]{4}))",
        r"(?:[^0-9]|$)",
    ))
    .expect("the dossier code pattern is a valid regex")
});

/// Keywords people put before a code, folded, upper case, without spaces.
/// Longer phrases are sequences of these (`TRACUU`, `MAHOSO`, `MASOHOSO`).
const KEYWORDS: &[&str] = &[
    "TC", "HS", "MHS", "MSHS", "TRA", "CUU", "MA", "SO", "HO", "KIEM", "XEM",
];

/// Longest run of glued keywords considered by [`is_keyword_run`].
const MAX_KEYWORD_RUN: usize = 24;

/// Normalizes free text for [`CANDIDATE`] (see the comment above it).
fn normalize(text: &str) -> String {
    let folded = fold_diacritics(text);
    let mut out = String::with_capacity(folded.len());
    let mut pending_separator = None;
    for c in folded.chars() {
        if c.is_whitespace() {
            pending_separator = Some(' ');
        } else if !c.is_alphanumeric() {
            pending_separator.get_or_insert('.');
        } else {
            if let Some(separator) = pending_separator.take() {
                out.push(separator);
            }
            out.push(if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '#'
            });
        }
    }
    out.extend(pending_separator);
    out
}

/// Turns a regex match into a canonical code text, or `None` when the
/// four-group reading is rejected because its first group is a word.
fn candidate(normalized: &str, caps: &Captures<'_>) -> Option<String> {
    let (groups, province) = match caps.name("a1") {
        Some(first) => {
            if is_word(normalized, first, caps.name("s1")) {
                return None;
            }
            (
                vec![
                    first.as_str(),
                    caps.name("a2")?.as_str(),
                    caps.name("a3")?.as_str(),
                ],
                caps.name("a4")?.as_str(),
            )
        }
        None => (
            vec![caps.name("b1")?.as_str(), caps.name("b2")?.as_str()],
            caps.name("b3")?.as_str(),
        ),
    };
    let mut province_chars = province.chars();
    let letter = province_chars.next()?;
    let province = format!("{letter}{}", as_digits(province_chars.as_str()));
    let date = as_digits(caps.name("date")?.as_str());
    let order = caps.name("short").or_else(|| caps.name("full"))?;
    let order = format!("{:0>4}", as_digits(order.as_str()));
    let mut all_groups = groups;
    all_groups.push(&province);
    Some(assemble(&all_groups, &date, &order))
}

/// Reads `O` as `0` and `I`/`L` as `1` (the input is upper case).
fn as_digits(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'O' => '0',
            'I' | 'L' => '1',
            c => c,
        })
        .collect()
}

/// Whether the first group of a four-group candidate is really a word
/// before a three-group code: it is all letters and either a space follows
/// it or it ends a run of glued keywords (`MHS`, `TRACUU`).
fn is_word(normalized: &str, first: Match<'_>, separator: Option<Match<'_>>) -> bool {
    if !first.as_str().bytes().all(|b| b.is_ascii_alphabetic()) {
        return false;
    }
    if separator.is_some_and(|s| s.as_str() == " ") {
        return true;
    }
    let glued = normalized
        .get(..first.start())
        .unwrap_or_default()
        .bytes()
        .rev()
        .take(MAX_KEYWORD_RUN + 1)
        .take_while(u8::is_ascii_alphanumeric)
        .count();
    normalized
        .get(first.start() - glued..first.end())
        .is_some_and(is_keyword_run)
}

/// Whether `s` is a sequence of [`KEYWORDS`] (e.g. `MASOHOSO`).
fn is_keyword_run(s: &str) -> bool {
    if s.len() > MAX_KEYWORD_RUN {
        return false;
    }
    let mut reachable = vec![false; s.len() + 1];
    reachable[0] = true;
    for i in 0..s.len() {
        if !reachable[i] {
            continue;
        }
        let rest = s.get(i..).unwrap_or_default();
        for keyword in KEYWORDS {
            if rest.starts_with(keyword) {
                reachable[i + keyword.len()] = true;
            }
        }
    }
    reachable[s.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const CODE: &str = "000.00.12.H58-240315-0007";
    const REAL_LETTERS: &str = "000.A0.01.H26-210212-9090";
    const REAL_THREE_GROUPS: &str = "38.98.H29-210519-0003";

    fn code(s: &str) -> DossierCode {
        DossierCode::parse(s).expect("test code is valid")
    }

    fn extracted(text: &str) -> String {
        match DossierCode::extract(text) {
            Ok(code) => code.as_str().to_owned(),
            Err(e) => panic!("no code extracted from {text:?}: {e}"),
        }
    }

    fn assert_extracts(expected: &str, texts: &[&str]) {
        for text in texts {
            assert_eq!(extracted(text), expected, "input: {text:?}");
        }
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("test date exists")
    }

    // --- parse -----------------------------------------------------------

    #[test]
    fn parses_the_canonical_layout() {
        let c = code(CODE);
        assert_eq!(c.as_str(), CODE);
        assert_eq!(c.agency(), "000.00.12.H58");
        assert_eq!(c.receipt_date(), date(2024, 3, 15));
        assert_eq!(c.order(), 7);
        assert_eq!(c.to_string(), CODE);
        assert_eq!(c.as_str().len(), 25);
    }

    #[test]
    fn parses_the_real_codes() {
        let c = code(REAL_LETTERS);
        assert_eq!(c.agency(), "000.A0.01.H26");
        assert_eq!(c.receipt_date(), date(2021, 2, 12));
        assert_eq!(c.order(), 9090);

        let c = code(REAL_THREE_GROUPS);
        assert_eq!(c.agency(), "38.98.H29");
        assert_eq!(c.receipt_date(), date(2021, 5, 19));
        assert_eq!(c.order(), 3);
        assert_eq!(c.as_str().len(), 21);
    }

    #[test]
    fn parse_ignores_case_and_surrounding_whitespace() {
        assert_eq!(code(" 000.a0.01.h26-210212-9090\n").as_str(), REAL_LETTERS);
        assert_eq!(code("\t38.98.h29-210519-0003 ").as_str(), REAL_THREE_GROUPS);
    }

    #[test]
    fn parse_is_from_str() {
        let c: DossierCode = CODE.parse().expect("valid");
        assert_eq!(c, code(CODE));
        assert_eq!("nope".parse::<DossierCode>(), Err(DossierCodeError::Layout));
    }

    #[test]
    fn parse_rejects_wrong_layouts() {
        for s in [
            "",
            "   ",
            "000.00.12.H58",
            "000.00.12.H58-240315",
            "000.00.12.H58-240315-0007-1",
            "000 00 12 H58 240315 0007",
            "0000012H582403150007",
            "000.00.12.H58-240315-007",
            "000.00.12.H58-240315-00007",
            "000.00.12.H58-24031-0007",
            "000.00.12.H58-24O315-0007",
            "000.00.12.H58-240315-OOO7",
            "000.00.12.H5O-240315-0007",
            "000.00.12.158-240315-0007",
            "000.00.12.HH8-240315-0007",
            "00.00.12.H58-240315-0007",
            "000.000.12.H58-240315-0007",
            "000.00.12.H58.1-240315-0007",
            "000-00-12-H58-240315-0007",
            "000.00.12.H58–240315–0007",
            "000.00.12.H58_240315-0007",
            "000.0#.12.H58-240315-0007",
            "000.00.12.H58-240315-0007 cam on",
            "TC 000.00.12.H58-240315-0007",
            "38.98.H29",
            "8.98.H29-210519-0003",
            "38.98.H2-210519-0003",
            "ĐĐĐ.00.12.H58-240315-0007",
            "000.00.12.Ḣ58-240315-0007",
        ] {
            assert_eq!(
                DossierCode::parse(s),
                Err(DossierCodeError::Layout),
                "{s:?}"
            );
        }
    }

    #[test]
    fn parse_rejects_impossible_dates() {
        for (s, yymmdd) in [
            ("000.00.12.H58-241315-0007", "241315"), // month 13
            ("000.00.12.H58-240015-0007", "240015"), // month 0
            ("000.00.12.H58-240231-0007", "240231"), // 31 February
            ("000.00.12.H58-230229-0007", "230229"), // 2023 is not a leap year
            ("000.00.12.H58-240431-0007", "240431"), // 31 April
            ("38.98.H29-210500-0003", "210500"),     // day 0
        ] {
            assert_eq!(
                DossierCode::parse(s),
                Err(DossierCodeError::ImpossibleDate {
                    yymmdd: yymmdd.to_owned()
                }),
                "{s:?}"
            );
        }
        assert_eq!(
            code("000.00.12.H58-240229-0007").receipt_date(),
            date(2024, 2, 29)
        );
        assert_eq!(
            code("000.00.12.H58-000229-0007").receipt_date(),
            date(2000, 2, 29)
        );
        assert_eq!(
            code("000.00.12.H58-991231-0007").receipt_date(),
            date(2099, 12, 31)
        );
    }

    #[test]
    fn parse_rejects_order_zero() {
        assert_eq!(
            DossierCode::parse("000.00.12.H58-240315-0000"),
            Err(DossierCodeError::ZeroOrder)
        );
        assert_eq!(code("000.00.12.H58-240315-9999").order(), 9999);
        assert_eq!(code("000.00.12.H58-240315-0001").order(), 1);
    }

    #[test]
    fn error_messages_are_clear() {
        assert!(DossierCodeError::Layout
            .to_string()
            .contains("000.00.12.H58-240315-0007"));
        assert_eq!(
            DossierCodeError::ImpossibleDate {
                yymmdd: "240231".into()
            }
            .to_string(),
            "impossible receipt date 240231 (YYMMDD, year 20YY): no such day"
        );
        assert!(DossierCodeError::ZeroOrder.to_string().contains("0000"));
        assert_eq!(
            ExtractError::ImpossibleDate {
                found: "000.00.12.H58-240231-0007".into()
            }
            .to_string(),
            "000.00.12.H58-240231-0007 looks like a dossier code, but its receipt date cannot exist"
        );
        assert_eq!(
            ExtractError::NoCode.to_string(),
            "no dossier code found in the text"
        );
    }

    #[test]
    fn equal_codes_hash_equal() {
        use std::collections::HashSet;
        let set: HashSet<DossierCode> =
            [code(CODE), code(&CODE.to_lowercase()), code(REAL_LETTERS)]
                .into_iter()
                .collect();
        assert_eq!(set.len(), 2);
        assert_ne!(code(CODE), code("000.00.12.H58-240315-0008"));
    }

    // --- extract: the canonical forms --------------------------------------

    #[test]
    fn extracts_canonical_codes() {
        assert_extracts(CODE, &[CODE]);
        assert_extracts(REAL_LETTERS, &[REAL_LETTERS]);
        assert_extracts(REAL_THREE_GROUPS, &[REAL_THREE_GROUPS]);
        let c = DossierCode::extract(REAL_LETTERS).expect("valid");
        assert_eq!(c, code(REAL_LETTERS));
    }

    // --- any case, keywords before it ---------------------------------------

    #[test]
    fn extracts_in_any_case() {
        assert_extracts(
            CODE,
            &["000.00.12.h58-240315-0007", "Tc 000.00.12.h58-240315-0007"],
        );
        assert_extracts(REAL_LETTERS, &["000.a0.01.h26-210212-9090"]);
        assert_extracts(REAL_THREE_GROUPS, &["38.98.h29-210519-0003"]);
    }

    #[test]
    fn extracts_after_keywords_with_or_without_diacritics() {
        assert_extracts(
            CODE,
            &[
                "TC 000.00.12.H58-240315-0007",
                "tc 000.00.12.H58-240315-0007",
                "HS 000.00.12.H58-240315-0007",
                "TRA CUU 000.00.12.H58-240315-0007",
                "TRACUU 000.00.12.H58-240315-0007",
                "tra cứu hồ sơ 000.00.12.H58-240315-0007",
                "Tra cuu ho so: 000.00.12.H58-240315-0007",
                "ma ho so 000.00.12.H58-240315-0007",
                "Mã hồ sơ: 000.00.12.H58-240315-0007",
                "MÃ SỐ HỒ SƠ 000.00.12.H58-240315-0007",
                "mã số hồ sơ là 000.00.12.H58-240315-0007",
                "MHS 000.00.12.H58-240315-0007",
                "Cho tôi hỏi hồ sơ 000.00.12.H58-240315-0007 đã xong chưa",
            ],
        );
    }

    #[test]
    fn extracts_codes_glued_to_keywords() {
        assert_extracts(
            CODE,
            &[
                "TC000.00.12.H58-240315-0007",
                "tc:000.00.12.H58-240315-0007",
                "HS:000.00.12.H58-240315-0007",
                "MHS000.00.12.H58-240315-0007",
                "TRACUU000.00.12.H58-240315-0007",
                "mãhồsơ000.00.12.H58-240315-0007",
                "TC0000012H582403150007",
            ],
        );
        assert_extracts(
            REAL_LETTERS,
            &[
                "TC000.A0.01.H26-210212-9090",
                "hs:000.a0.01.h26-210212-9090",
            ],
        );
        assert_extracts(
            "A01.00.12.H58-240315-0007",
            &["TCA01.00.12.H58-240315-0007"],
        );
    }

    #[test]
    fn keyword_or_word_before_a_three_group_code_is_not_an_agency_group() {
        assert_extracts(
            REAL_THREE_GROUPS,
            &[
                "TC 38.98.H29-210519-0003",
                "TC38.98.H29-210519-0003",
                "HS38.98.H29-210519-0003",
                "MHS38.98.H29-210519-0003",
                "MHS 38.98.H29-210519-0003",
                "mhs:38.98.H29-210519-0003",
                "MSHS38.98.H29-210519-0003",
                "TRACUU38.98.H29-210519-0003",
                "tra cứu 38.98.H29-210519-0003",
                "Tra cứu:38.98.H29-210519-0003",
                "TRA CUU 3898H292105190003",
                "MHS3898H292105190003",
                "kiểm tra 38.98.H29-210519-0003",
                "hồ sơ của tôi 38 98 H29 210519 0003",
                "mã hồ sơ 38.98.H29-210519-0003",
            ],
        );
    }

    #[test]
    fn all_letter_first_group_is_kept_when_written_as_part_of_the_code() {
        assert_extracts("ABC.00.12.H58-240315-0007", &["ABC.00.12.H58-240315-0007"]);
        assert_extracts("OOO.OO.I2.H58-240315-0007", &["ooo.oo.i2.h58-240315-0007"]);
        // ...but followed by a space it reads as a word.
        assert_extracts("00.12.H58-240315-0007", &["ABC 00.12.H58-240315-0007"]);
    }

    // --- separators -------------------------------------------------------------

    #[test]
    fn extracts_with_any_separators() {
        assert_extracts(
            CODE,
            &[
                "000 00 12 h58 240315 0007",
                "000,00,12,H58_240315/0007",
                "000.00.12.H58–240315—0007",
                "000:00:12:H58:240315:0007",
                "000/00/12/H58/240315/0007",
                "000_00_12_H58_240315_0007",
                "000-00-12-H58-240315-0007",
                "000 . 00 .. 12 -- H58 - 240315 —— 0007",
                "000,  00 ,12__H58  –  240315/ /0007",
                "000.00.12.H58 - 240315 - 0007",
                "000.00.12H58240315-0007",
                "000\t00\n12 H58 240315 0007",
                "000\u{a0}00\u{a0}12\u{a0}H58\u{a0}240315\u{a0}0007",
            ],
        );
        assert_extracts(REAL_LETTERS, &["000 a0 01 h26 210212 9090"]);
        assert_extracts(
            REAL_THREE_GROUPS,
            &["38 98 h29 210519 0003", "38,98_H29/210519—0003"],
        );
    }

    #[test]
    fn any_symbol_between_the_groups_is_a_separator() {
        assert_extracts(
            CODE,
            &[
                // An ASCII `_` read under the GSM-7 default alphabet.
                "TC 000§00§12§H58§240315§0007",
                "000·00·12·H58·240315·0007",
                "000+00+12+H58+240315+0007",
                "000#00#12#H58#240315#0007",
                "000*00*12*H58*240315*0007",
                "000~00~12~H58~240315~0007",
                "000|00|12|H58|240315|0007",
                "000 § 00 § 12 § H58 § 240315 § 7",
                "000😀00😀12😀H58😀240315😀0007",
                "000.00.12.H58=240315=0007",
                "[000.00.12.H58-240315-0007]",
            ],
        );
        assert_extracts(REAL_THREE_GROUPS, &["38§98§H29§210519§0003"]);
    }

    #[test]
    fn look_alikes_read_typed_letters_as_digits_first_then_one_digit_as_a_letter() {
        let typed = code("000.00.3O.H58-240315-0007");
        let alikes: Vec<String> = typed
            .look_alikes()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(alikes[0], "000.00.30.H58-240315-0007");
        assert!(
            alikes.contains(&"O00.00.3O.H58-240315-0007".to_owned()),
            "{alikes:?}"
        );
        assert!(!alikes.contains(&typed.to_string()));
        // Every typed letter read as a digit comes first.
        let typed = code("OOO.OO.I2.H58-240315-0007");
        assert_eq!(typed.look_alikes()[0].as_str(), "000.00.12.H58-240315-0007");
        // A digit typed for a letter.
        let typed = code("000.01.01.H26-210212-9090");
        let alikes: Vec<String> = typed
            .look_alikes()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert!(
            alikes.contains(&"000.0I.01.H26-210212-9090".to_owned()),
            "{alikes:?}"
        );
        assert!(
            alikes.contains(&"000.0L.01.H26-210212-9090".to_owned()),
            "{alikes:?}"
        );
        // The province group, the date and the order number never change.
        assert!(
            alikes.iter().all(|a| a.ends_with(".H26-210212-9090")),
            "{alikes:?}"
        );
        // Nothing to swap: no variant.
        assert!(code("234.56.78.H58-240315-0007").look_alikes().is_empty());
        assert!(code("ABC.DE.FG.H58-240315-0007").look_alikes().is_empty());
    }

    #[test]
    fn extracts_without_separators() {
        assert_extracts(CODE, &["0000012H582403150007", "0000012h582403150007"]);
        assert_extracts(REAL_LETTERS, &["000A001H262102129090"]);
        assert_extracts(
            REAL_THREE_GROUPS,
            &["3898H292105190003", "tc 3898h292105190003"],
        );
        assert_eq!("0000012H582403150007".len(), 20);
        assert_eq!("3898H292105190003".len(), 17);
    }

    // --- O/I/l typed for digits ---------------------------------------------------

    #[test]
    fn reads_letters_typed_for_digits_in_digit_groups() {
        assert_extracts(
            CODE,
            &[
                "000.00.12.H58-24O3I5-OOO7",
                "000.00.12.H58-24o3l5-ooo7",
                "000 00 12 H58 24O3L5 O7",
            ],
        );
        assert_extracts(
            REAL_LETTERS,
            &["000.A0.01.H26-2I0212-9O9O", "000.a0.01.h26-2lo2i2-9o9o"],
        );
        assert_extracts(REAL_THREE_GROUPS, &["38.98.H29-2IO5I9-OOO3"]);
        assert_extracts("000.00.12.H10-240315-0007", &["000.00.12.HlO-240315-0007"]);
    }

    #[test]
    fn keeps_letters_in_agency_groups_as_typed() {
        // O and I in the first three agency groups may be real letters.
        assert_extracts("0O0.A0.I1.H26-210212-9090", &["0o0.a0.i1.H26-210212-9090"]);
        assert_extracts("1O.9L.H29-210519-0003", &["1o.9l.h29-210519-0003"]);
    }

    // --- short order numbers ------------------------------------------------------

    #[test]
    fn pads_order_numbers_after_a_separator() {
        assert_extracts("000.00.12.H58-240315-0012", &["000.00.12.H58-240315-12"]);
        assert_extracts(
            CODE,
            &[
                "000.00.12.H58-240315-7",
                "000 00 12 H58 240315 07",
                "TC 0000012H58240315 7",
            ],
        );
        assert_extracts(
            "000.00.12.H58-240315-0123",
            &["000.00.12.H58-240315-123 cam on"],
        );
        assert_extracts("38.98.H29-210519-0003", &["38.98.H29-210519-3."]);
    }

    #[test]
    fn requires_four_order_digits_without_a_separator() {
        for text in [
            "0000012H5824031512",
            "000.00.12.H58-24031512",
            "000.00.12.H58-240315007",
        ] {
            assert_eq!(
                DossierCode::extract(text),
                Err(ExtractError::NoCode),
                "{text:?}"
            );
        }
    }

    #[test]
    fn rejects_too_long_order_numbers() {
        for text in ["000.00.12.H58-240315-00071", "0000012H5824031500071"] {
            assert_eq!(
                DossierCode::extract(text),
                Err(ExtractError::NoCode),
                "{text:?}"
            );
        }
    }

    // --- words and punctuation after it ----------------------------------------------

    #[test]
    fn extracts_with_words_and_punctuation_after() {
        assert_extracts(
            CODE,
            &[
                "000.00.12.H58-240315-0007 cam on",
                "000.00.12.H58-240315-0007 xin cảm ơn!",
                "000.00.12.H58-240315-0007.",
                "000.00.12.H58-240315-0007!",
                "000.00.12.H58-240315-0007?",
                "(000.00.12.H58-240315-0007)",
                "TC 000.00.12.H58-240315-0007, cảm ơn ạ.",
                "000.00.12.H58-240315-0007... xin cam on!!!",
                "\"000.00.12.H58-240315-0007\"",
                "Ma HS: 000.00.12.H58-240315-0007 (nop ngay 15/3)",
            ],
        );
    }

    // --- QR / URL text --------------------------------------------------------------

    #[test]
    fn extracts_from_pasted_urls_and_qr_text() {
        assert_extracts(
            CODE,
            &[
                "https://dichvucong.example/tra-cuu?ma=000.00.12.H58-240315-0007",
                "https://dichvucong.example/tra-cuu?ma=000.00.12.H58-240315-0007&lang=vi",
                "https://dichvucong.example/ho-so/000.00.12.H58-240315-0007/trang-thai",
                "MaHoSo:000.00.12.H58-240315-0007|NgayNhan:15/03/2024|CoQuan:UBND",
                "ma%3D000.00.12.H58-240315-0007",
            ],
        );
    }

    // --- impossible dates, other numbers ------------------------------------------

    #[test]
    fn reports_impossible_dates() {
        for (text, found) in [
            ("000.00.12.H58-241315-0007", "000.00.12.H58-241315-0007"),
            ("TC 000 00 12 h58 240231 7", "000.00.12.H58-240231-0007"),
            ("0000012H582302290007", "000.00.12.H58-230229-0007"),
            ("38.98.H29-210532-0003", "38.98.H29-210532-0003"),
        ] {
            assert_eq!(
                DossierCode::extract(text),
                Err(ExtractError::ImpossibleDate {
                    found: found.to_owned()
                }),
                "{text:?}"
            );
        }
        assert_extracts("000.00.12.H58-240229-0007", &["000.00.12.H58-240229-0007"]);
    }

    #[test]
    fn ignores_order_zero() {
        assert_eq!(
            DossierCode::extract("000.00.12.H58-240315-0000"),
            Err(ExtractError::NoCode)
        );
        assert_eq!(
            DossierCode::extract("000.00.12.H58-240315-0"),
            Err(ExtractError::NoCode)
        );
    }

    #[test]
    fn other_numbers_are_not_codes() {
        for text in [
            "",
            " ",
            "TC",
            "tra cứu hồ sơ",
            "xin chào, hồ sơ của tôi đâu rồi?",
            "03706/2026/07906",
            "BHXH 03706/2026/07906",
            "BHXH03706/2026/07906",
            "so so BHXH: 0123456789",
            "0912345678",
            "0912 345 678",
            "+84 912 345 678",
            "15/03/2024",
            "2024-03-15",
            "240315",
            "240315-0007",
            "ngay 15.03.2024 luc 08:30",
            "CCCD 001089012345",
            "bien so 29A-123.45",
            "000.00.12.H58",
            "000.00.12.H58-240315",
            "H58-240315-0007",
            "12.H58-240315-0007",
        ] {
            assert_eq!(
                DossierCode::extract(text),
                Err(ExtractError::NoCode),
                "{text:?}"
            );
        }
    }

    // --- several candidates -------------------------------------------------------

    #[test]
    fn returns_the_first_valid_candidate() {
        assert_extracts(
            CODE,
            &[
                "000.00.12.H58-240315-0007 hoac 38.98.H29-210519-0003",
                "HS 000.00.12.H58-241315-0001 nham, dung la 000.00.12.H58-240315-0007",
                "000.00.12.H58-240315-0000 000.00.12.H58-240315-0007",
            ],
        );
        assert_extracts(
            REAL_THREE_GROUPS,
            &["38.98.H29-210519-0003 va 000.00.12.H58-240315-0007"],
        );
        assert_eq!(
            DossierCode::extract("000.00.12.H58-241315-0001 va 38.98.H29-210532-0003"),
            Err(ExtractError::ImpossibleDate {
                found: "000.00.12.H58-241315-0001".to_owned()
            })
        );
    }

    // --- robustness ---------------------------------------------------------------

    #[test]
    fn never_panics_on_odd_input() {
        for text in [
            "-",
            ".",
            "ừ",
            "😀😀😀",
            "\u{0}",
            "\u{301}\u{301}",
            "ǅ",
            "İ",
            "ﬀ",
            "000.00.12.H58-240315-",
            "000.00.12.H58-999999-9999",
            "\u{10ffff}",
        ] {
            let _ = DossierCode::extract(text);
            let _ = DossierCode::parse(text);
        }
    }

    #[test]
    fn handles_very_long_input() {
        let junk = "0000012H58240315 xin cam on ừ 😀 ".repeat(20_000);
        assert_eq!(DossierCode::extract(&junk), Err(ExtractError::NoCode));

        let impossible = "000.00.12.H58-241315-0007 ".repeat(20_000);
        assert!(matches!(
            DossierCode::extract(&impossible),
            Err(ExtractError::ImpossibleDate { .. })
        ));

        let glued = "0".repeat(500_000);
        assert_eq!(DossierCode::extract(&glued), Err(ExtractError::NoCode));

        let letters = "MHS".repeat(100_000);
        assert_eq!(DossierCode::extract(&letters), Err(ExtractError::NoCode));

        let at_the_end = format!("{}{CODE}", "a ".repeat(200_000));
        assert_eq!(extracted(&at_the_end), CODE);
    }

    // --- property tests -----------------------------------------------------------

    mod properties {
        use super::super::*;
        use chrono::{Datelike, Days};
        use proptest::prelude::*;
        use proptest::sample::select;

        /// A valid code, kept as parts so noisy variants can be typed from it.
        #[derive(Debug, Clone)]
        struct Parts {
            /// Agency groups before the province group (3 or 2 of them).
            groups: Vec<String>,
            /// Province letter (never O, I or L, like the real codes).
            letter: char,
            /// The province's two digits.
            province_digits: String,
            yymmdd: String,
            order: u16,
        }

        impl Parts {
            fn canonical(&self) -> String {
                format!(
                    "{}.{}{}-{}-{:04}",
                    self.groups.join("."),
                    self.letter,
                    self.province_digits,
                    self.yymmdd,
                    self.order
                )
            }
        }

        const PROVINCE_LETTERS: &[char] = &[
            'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'J', 'K', 'M', 'N', 'P', 'Q', 'R', 'S', 'T',
            'U', 'V', 'W', 'X', 'Y', 'Z',
        ];

        /// Keyword prefixes, with and without diacritics.
        const PREFIXES: &[&str] = &[
            "",
            "TC",
            "tc",
            "HS",
            "TRA CUU",
            "TRACUU",
            "tra cứu",
            "Tra cứu hồ sơ",
            "tra cuu ho so",
            "ma ho so",
            "Mã hồ sơ",
            "mã số hồ sơ",
            "MA SO HO SO",
            "MHS",
            "mhs",
            "MSHS",
            "Mã HS",
            "(",
        ];

        /// What comes between the prefix and the code.
        const JOINERS: &[&str] = &["", " ", ":", ": ", " : ", " - ", "  ", "\t", "="];

        /// Separator characters (besides the ones around them): the usual
        /// ones and any other symbol (`§` is an ASCII `_` read as GSM-7).
        const SEPARATORS: &[char] = &[
            ' ', ',', '_', '/', '-', '–', '—', '.', ':', '§', '·', '+', '#', '*', '~', '|', '=',
            '&', '\'', '"', '(', ')', '[', '!', '?', '€', '¤', '😀', '\u{7f}',
        ];

        /// What comes after the code: punctuation and words.
        const TRAILERS: &[&str] = &[
            "",
            ".",
            "!",
            "?",
            ")",
            "!!",
            "...",
            " cam on",
            " xin cảm ơn!",
            ". Cảm ơn ạ",
            " thanks",
            "? nhé",
            ", 0912345678",
            " 15/03/2024",
        ];

        fn agency_group(len: usize) -> impl Strategy<Value = String> {
            let chars = prop_oneof![
                3 => proptest::char::range('0', '9'),
                1 => proptest::char::range('A', 'Z'),
            ];
            proptest::collection::vec(chars, len).prop_map(|c| c.into_iter().collect())
        }

        /// A valid code; a four-group code's first group holds at least one
        /// digit (an all-letter one reads as a word when a space follows it).
        fn parts() -> impl Strategy<Value = Parts> {
            let four = (
                agency_group(3).prop_filter("a digit in the first group", |g| {
                    g.bytes().any(|b| b.is_ascii_digit())
                }),
                agency_group(2),
                agency_group(2),
            )
                .prop_map(|(a, b, c)| vec![a, b, c]);
            let three = (agency_group(2), agency_group(2)).prop_map(|(a, b)| vec![a, b]);
            (
                prop_oneof![four, three],
                select(PROVINCE_LETTERS),
                0u8..100,
                0u64..36_525,
                1u16..=9999,
            )
                .prop_map(|(groups, letter, province, days, order)| {
                    let date = NaiveDate::from_ymd_opt(2000, 1, 1)
                        .and_then(|d| d.checked_add_days(Days::new(days)))
                        .expect("2000-01-01 + less than 100 years");
                    Parts {
                        groups,
                        letter,
                        province_digits: format!("{province:02}"),
                        yymmdd: format!(
                            "{:02}{:02}{:02}",
                            date.year() - 2000,
                            date.month(),
                            date.day()
                        ),
                        order,
                    }
                })
        }

        /// A non-empty separator: 1-3 separator characters, maybe with
        /// spaces around.
        fn separator() -> impl Strategy<Value = String> {
            (
                proptest::collection::vec(select(SEPARATORS), 1..=3),
                any::<bool>(),
                any::<bool>(),
            )
                .prop_map(|(chars, before, after)| {
                    let mut s = String::new();
                    if before {
                        s.push(' ');
                    }
                    s.extend(chars);
                    if after {
                        s.push(' ');
                    }
                    s
                })
        }

        /// A separator or nothing.
        fn maybe_separator() -> impl Strategy<Value = String> {
            prop_oneof![1 => Just(String::new()), 3 => separator()]
        }

        /// Writes digits as people may type them: `0` as `O`, `1` as `I` or
        /// `L` (case is randomized later), driven by `tape`.
        fn misspell(digits: &str, tape: &mut impl Iterator<Item = u8>) -> String {
            digits
                .chars()
                .map(|c| {
                    let roll = tape.next().unwrap_or(0);
                    match (c, roll % 4) {
                        ('0', 0) => 'O',
                        ('1', 0) => 'I',
                        ('1', 1) => 'L',
                        (c, _) => c,
                    }
                })
                .collect()
        }

        /// Random case for every character, driven by `tape`.
        fn scramble_case(s: &str, tape: &mut impl Iterator<Item = u8>) -> String {
            s.chars()
                .flat_map(|c| {
                    let upper = tape.next().unwrap_or(0).is_multiple_of(2);
                    let changed: Vec<char> = if upper {
                        c.to_uppercase().collect()
                    } else {
                        c.to_lowercase().collect()
                    };
                    changed
                })
                .collect()
        }

        #[derive(Debug, Clone)]
        struct Noise {
            prefix: &'static str,
            joiner: &'static str,
            /// Separators between the agency groups, and before the date.
            separators: Vec<String>,
            /// Separator before the order number (may be empty unless the
            /// order loses its leading zeros).
            order_separator: String,
            drop_leading_zeros: bool,
            trailer: &'static str,
            tape: Vec<u8>,
        }

        fn noise() -> impl Strategy<Value = Noise> {
            (
                select(PREFIXES),
                select(JOINERS),
                proptest::collection::vec(maybe_separator(), 4),
                maybe_separator(),
                any::<bool>(),
                select(TRAILERS),
                proptest::collection::vec(any::<u8>(), 96),
            )
                .prop_map(
                    |(
                        prefix,
                        joiner,
                        separators,
                        order_separator,
                        drop_leading_zeros,
                        trailer,
                        tape,
                    )| {
                        Noise {
                            prefix,
                            joiner,
                            separators,
                            order_separator,
                            drop_leading_zeros,
                            trailer,
                            tape,
                        }
                    },
                )
        }

        /// Types `parts` the way a citizen might.
        fn noisy(parts: &Parts, noise: &Noise) -> String {
            let mut tape = noise.tape.iter().copied().cycle();
            let mut separators = noise.separators.iter();
            let mut next_separator = || separators.next().cloned().unwrap_or_default();

            let mut text = format!("{}{}", noise.prefix, noise.joiner);
            for group in &parts.groups {
                text.push_str(group);
                text.push_str(&next_separator());
            }
            text.push(parts.letter);
            text.push_str(&misspell(&parts.province_digits, &mut tape));
            text.push_str(&next_separator());
            text.push_str(&misspell(&parts.yymmdd, &mut tape));

            let order = format!("{:04}", parts.order);
            let short = noise.drop_leading_zeros && !noise.order_separator.is_empty();
            let order = if short {
                order.trim_start_matches('0')
            } else {
                &order
            };
            text.push_str(&noise.order_separator);
            text.push_str(&misspell(order, &mut tape));
            text.push_str(noise.trailer);
            scramble_case(&text, &mut tape)
        }

        /// Strings made of what codes are made of.
        const CODE_ISH: &str = "[0-9A-Za-zOIl .\\-_/,–—]{0,60}";

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1000))]

            #[test]
            fn extract_finds_noisy_codes(parts in parts(), noise in noise()) {
                let text = noisy(&parts, &noise);
                let found = DossierCode::extract(&text).map(|c| c.to_string());
                prop_assert_eq!(found, Ok(parts.canonical()), "text: {:?}", text);
            }
        }

        /// Agency groups typed with `O` for `0` and `I`/`L` for `1`, driven by `tape`.
        fn misspell_groups(parts: &Parts, tape: &mut impl Iterator<Item = u8>) -> Parts {
            Parts {
                groups: parts.groups.iter().map(|g| misspell(g, tape)).collect(),
                ..parts.clone()
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(500))]

            #[test]
            fn look_alikes_are_valid_distinct_and_bounded(
                parts in parts(),
                tape in proptest::collection::vec(any::<u8>(), 16),
            ) {
                let typed = misspell_groups(&parts, &mut tape.iter().copied().cycle());
                let Ok(code) = DossierCode::parse(&typed.canonical()) else {
                    return Err(TestCaseError::fail(format!("{:?}", typed.canonical())));
                };
                let alikes = code.look_alikes();
                prop_assert!(alikes.len() <= MAX_LOOK_ALIKES);
                let class = |c: char| match c {
                    'O' | '0' => '0',
                    'I' | 'L' | '1' => '1',
                    c => c,
                };
                for (i, alike) in alikes.iter().enumerate() {
                    prop_assert_eq!(DossierCode::parse(alike.as_str()), Ok(alike.clone()));
                    prop_assert_ne!(alike, &code);
                    prop_assert!(!alikes[..i].contains(alike));
                    prop_assert_eq!(alike.as_str().len(), code.as_str().len());
                    let agency_groups = code.agency().rfind('.').unwrap_or(0);
                    for (at, (a, b)) in alike.as_str().chars().zip(code.as_str().chars()).enumerate() {
                        if a != b {
                            prop_assert!(at < agency_groups, "{} vs {}", alike, code);
                            prop_assert_eq!(class(a), class(b));
                        }
                    }
                }
            }

            #[test]
            fn a_code_typed_with_letters_for_digits_has_its_digits_first(
                parts in parts(),
                tape in proptest::collection::vec(any::<u8>(), 16),
            ) {
                // Real agency groups without look-alike letters (most codes).
                let real = Parts {
                    groups: parts
                        .groups
                        .iter()
                        .map(|g| g.replace('O', "0").replace(['I', 'L'], "1"))
                        .collect(),
                    ..parts
                };
                let typed = misspell_groups(&real, &mut tape.iter().copied().cycle());
                let code = DossierCode::parse(&typed.canonical())
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                if code.as_str() != real.canonical() {
                    let first = code.look_alikes().first().map(ToString::to_string);
                    prop_assert_eq!(first, Some(real.canonical()));
                }
            }

            #[test]
            fn one_digit_typed_for_a_letter_is_among_the_look_alikes(
                parts in parts(),
                at in any::<proptest::sample::Index>(),
                letter in select(&['O', 'I', 'L'][..]),
            ) {
                let canonical = parts.canonical();
                let agency_groups = canonical.rfind('.').unwrap_or(0);
                let positions: Vec<usize> = canonical[..agency_groups]
                    .char_indices()
                    .filter(|(_, c)| *c != '.')
                    .map(|(i, _)| i)
                    .collect();
                let i = positions[at.index(positions.len())];
                let mut real = canonical.into_bytes();
                real[i] = letter as u8;
                let real = String::from_utf8(real).unwrap_or_default();
                // Within the bound: at most two other look-alike letters.
                prop_assume!(
                    real[..agency_groups].chars().filter(|c| matches!(c, 'O' | 'I' | 'L')).count() <= 3
                );
                let mut typed = real.clone().into_bytes();
                typed[i] = if letter == 'O' { b'0' } else { b'1' };
                let typed = DossierCode::parse(std::str::from_utf8(&typed).unwrap_or_default())
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                let alikes: Vec<String> = typed.look_alikes().iter().map(ToString::to_string).collect();
                prop_assert!(alikes.contains(&real), "{} not in {:?}", real, alikes);
            }
        }

        proptest! {
            #[test]
            fn canonical_codes_round_trip(parts in parts()) {
                let canonical = parts.canonical();
                let code = match DossierCode::parse(&canonical) {
                    Ok(code) => code,
                    Err(e) => return Err(TestCaseError::fail(format!("{canonical:?}: {e}"))),
                };
                prop_assert_eq!(code.as_str(), canonical.as_str());
                prop_assert_eq!(DossierCode::parse(&code.to_string()), Ok(code.clone()));
                prop_assert_eq!(code.to_string().parse::<DossierCode>(), Ok(code.clone()));
                prop_assert_eq!(DossierCode::parse(&canonical.to_lowercase()), Ok(code.clone()));
                prop_assert_eq!(DossierCode::extract(&canonical), Ok(code.clone()));
                prop_assert_eq!(
                    format!("{}-{}-{:04}", code.agency(), parts.yymmdd, code.order()),
                    canonical
                );
                prop_assert_eq!(code.order(), parts.order);
            }

            #[test]
            fn impossible_dates_are_reported(
                parts in parts(),
                impossible in prop_oneof![
                    // No such month.
                    (prop_oneof![Just(0u32), 13u32..100], 0u32..100).prop_map(|(m, d)| (m, Err(d))),
                    // Day 0 or past the end of a real month.
                    (1u32..=12, 0u32..72).prop_map(|(m, past_end)| (m, Ok(past_end))),
                ],
            ) {
                let yy = &parts.yymmdd[..2];
                let year = 2000 + yy.parse::<i32>().unwrap_or_default();
                let (mm, dd) = match impossible {
                    (mm, Err(dd)) => (mm, dd),
                    (mm, Ok(0)) => (mm, 0),
                    (mm, Ok(past_end)) => {
                        let last = (28..=31)
                            .rev()
                            .find(|&d| NaiveDate::from_ymd_opt(year, mm, d).is_some())
                            .unwrap_or(31);
                        (mm, (last + past_end).min(99))
                    }
                };
                prop_assert!(NaiveDate::from_ymd_opt(year, mm, dd).is_none());
                let yymmdd = format!("{yy}{mm:02}{dd:02}");
                let impossible = Parts { yymmdd: yymmdd.clone(), ..parts };
                let canonical = impossible.canonical();
                prop_assert_eq!(
                    DossierCode::parse(&canonical),
                    Err(DossierCodeError::ImpossibleDate { yymmdd })
                );
                prop_assert_eq!(
                    DossierCode::extract(&format!("TC {canonical} cam on")),
                    Err(ExtractError::ImpossibleDate { found: canonical })
                );
            }

            #[test]
            fn never_panics_on_any_string(s in ".*") {
                check_consistency(&s)?;
            }

            #[test]
            fn never_panics_on_printable_strings(s in "\\PC*") {
                check_consistency(&s)?;
            }

            #[test]
            fn never_panics_on_code_ish_strings(s in CODE_ISH) {
                check_consistency(&s)?;
            }

            #[test]
            fn never_panics_on_code_ish_strings_with_keywords(
                prefix in select(PREFIXES),
                s in CODE_ISH,
                tail in CODE_ISH,
            ) {
                check_consistency(&format!("{prefix}{s}đ ồ{tail}"))?;
            }
        }

        /// Runs both entry points; whatever `extract` finds must be a valid
        /// canonical code.
        fn check_consistency(s: &str) -> Result<(), TestCaseError> {
            let _ = DossierCode::parse(s);
            if let Ok(code) = DossierCode::extract(s) {
                prop_assert_eq!(DossierCode::parse(code.as_str()), Ok(code.clone()));
            }
            Ok(())
        }
    }
}
