//! Citizens' personal data kept out of what others see: the admin console's
//! message log for viewers, and log lines that quote what a citizen or the
//! core sent (a USSD dial, a rejected record, a sync error). Phone
//! numbers masked (`091****678`), whether they stand alone, are typed in a
//! message without separators, or are written in groups (`0912 345 678`,
//! `+84 912.345.678`, `024-3825-1234`), and the applicant's name, which a
//! reply to the dossier's own number carries, cut to initials (`N***** V** A*`)
//! however the reply spelled it (accented, unaccented for GSM-7, upper case).
//!
//! Pure text functions: the caller gives the name (where the journal
//! recorded it in the reply, or the read model's `owner_name` for the
//! looked-up code) and decides who is a viewer.

use std::sync::LazyLock;

use regex::Regex;

use crate::domain::msisdn::mask_middle;
use crate::domain::vietnamese::find_name;
use crate::domain::Msisdn;

/// Digits from which a run in a text is taken for a phone number and masked.
const MASKED_RUN: usize = 9;
/// Digits a masked number keeps at each end (as [`Msisdn::redacted`]).
const KEPT_DIGITS: usize = 3;
/// Most digits of a number written in groups after `+` (E.164).
const MAX_INTERNATIONAL_DIGITS: usize = 15;
/// Fewest digits of a number written in groups after `+` that is not Vietnamese.
const MIN_INTERNATIONAL_DIGITS: usize = 8;

/// Digit groups joined by one space, dot or dash, with an optional `+`.
static GROUPED_DIGITS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\+?[0-9]+(?:[ .\-][0-9]+)+").expect("a valid pattern"));

/// A number redacted for viewers; short numbers (service numbers like
/// `8058`), names and erased ('') numbers as they are.
pub fn mask_number(address: &str) -> String {
    if address.chars().filter(char::is_ascii_digit).count() < MASKED_RUN {
        return address.to_owned();
    }
    match Msisdn::parse(address) {
        Ok(number) => number.redacted(),
        Err(_) => mask_middle(address),
    }
}

/// `text` with the phone numbers in it masked: numbers written in groups
/// (see [`mask_grouped_numbers`]), then every run of 9 or more digits (with a
/// `+` just before it) masked like [`mask_number`]. A dossier code's digit
/// groups (`000.00.12`, `240315-0007`) do not begin like a phone number and
/// stay; a code typed without any separator is one long run and is masked.
pub fn mask_numbers_in(text: &str) -> String {
    mask_digit_runs(&mask_grouped_numbers(text))
}

/// `text` with each run of [`MASKED_RUN`] or more digits (with a `+` just
/// before it) masked like a number.
fn mask_digit_runs(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(|c: char| c.is_ascii_digit()) {
        let run_len = rest[start..]
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len() - start);
        let end = start + run_len;
        let start = if rest[..start].ends_with('+') {
            start - 1
        } else {
            start
        };
        out.push_str(&rest[..start]);
        let run = &rest[start..end];
        if run_len >= MASKED_RUN {
            out.push_str(&mask_number(run));
        } else {
            out.push_str(run);
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// `text` with phone numbers written in digit groups masked digit by digit,
/// the separators kept: `0912 345 678` → `091* *** 678`.
///
/// In a chain of groups joined by single spaces, dots or dashes, a number
/// starts at a group (not one glued to the letters before it, like `58` in
/// `H58-240315-0007`) and ends exactly at a group's end with as many digits
/// as its kind has:
/// - `0` then `2` (a landline with its area code): 11 digits;
/// - `0` then another non-zero digit (a mobile): 10 digits;
/// - `84`, with or without `+`, then the national number without its `0`:
///   12 digits for a landline, 11 for a mobile;
/// - `+` and another country code: the rest of the chain when it holds 8 to
///   15 digits.
fn mask_grouped_numbers(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut copied_to = 0;
    for chain in GROUPED_DIGITS.find_iter(text) {
        // A first group glued to a word (`H58-…`) is the end of that word.
        let follows_a_word = text[..chain.start()]
            .chars()
            .next_back()
            .is_some_and(char::is_alphanumeric);
        let groups = digit_groups(chain.as_str());
        let mut first = usize::from(follows_a_word);
        while first < groups.len() {
            match number_span(chain.as_str(), &groups[first..]) {
                Some(taken) => {
                    let start = chain.start() + groups[first].start;
                    let end = chain.start() + groups[first + taken - 1].end;
                    out.push_str(&text[copied_to..start]);
                    out.push_str(&mask_digits(&text[start..end]));
                    copied_to = end;
                    first += taken;
                }
                None => first += 1,
            }
        }
    }
    out.push_str(&text[copied_to..]);
    out
}

/// One group of a chain: byte range (including a leading `+`) and digits.
struct DigitGroup {
    start: usize,
    end: usize,
    digits: usize,
}

fn digit_groups(chain: &str) -> Vec<DigitGroup> {
    let mut groups = Vec::new();
    let mut start = 0;
    for (index, c) in chain.char_indices() {
        if matches!(c, ' ' | '.' | '-') {
            groups.push(DigitGroup {
                start,
                end: index,
                digits: chain[start..index].trim_start_matches('+').len(),
            });
            start = index + 1;
        }
    }
    groups.push(DigitGroup {
        start,
        end: chain.len(),
        digits: chain[start..].trim_start_matches('+').len(),
    });
    groups
}

/// How many of `groups` (from the first) make one phone number, if they do.
fn number_span(chain: &str, groups: &[DigitGroup]) -> Option<usize> {
    let first = &chain[groups[0].start..groups[0].end];
    let international = first.starts_with('+');
    let digits: String = groups
        .iter()
        .flat_map(|group| chain[group.start..group.end].chars())
        .filter(char::is_ascii_digit)
        .take(3)
        .collect();
    let mut lead = digits.chars();
    let wanted = match (lead.next(), lead.next(), lead.next()) {
        (Some('0'), Some('2'), _) => Some(11),
        (Some('0'), Some('1'..='9'), _) => Some(10),
        (Some('8'), Some('4'), Some('2')) => Some(12),
        (Some('8'), Some('4'), Some('1'..='9')) => Some(11),
        _ if international => None,
        _ => return None,
    };
    match wanted {
        Some(wanted) => {
            let mut total = 0;
            for (taken, group) in groups.iter().enumerate() {
                total += group.digits;
                if total == wanted {
                    return Some(taken + 1);
                }
                if total > wanted {
                    return None;
                }
            }
            None
        }
        None => {
            let total: usize = groups.iter().map(|group| group.digits).sum();
            (MIN_INTERNATIONAL_DIGITS..=MAX_INTERNATIONAL_DIGITS)
                .contains(&total)
                .then_some(groups.len())
        }
    }
}

/// `number` with all digits but the first and last [`KEPT_DIGITS`] starred;
/// `+` and separators kept.
fn mask_digits(number: &str) -> String {
    let digits = number.chars().filter(char::is_ascii_digit).count();
    let mut seen = 0;
    number
        .chars()
        .map(|c| {
            if !c.is_ascii_digit() {
                return c;
            }
            seen += 1;
            if seen <= KEPT_DIGITS || seen > digits.saturating_sub(KEPT_DIGITS) {
                c
            } else {
                '*'
            }
        })
        .collect()
}

/// `text` with each whole-word occurrence of `name` cut to its initials
/// (`Nguyễn Văn An` → `N***** V** A*`), matched without regard to accents,
/// case or the spaces between the words (see [`find_name`]). A name of
/// fewer than two letters is not looked for.
pub fn mask_name(text: &str, name: &str) -> String {
    mask_spans(text, &find_name(text, name))
}

/// `text` with the characters in each of `spans` (character offsets, end
/// exclusive, as [`find_name`] gives and the journal records for a reply)
/// cut to initials: the first letter of each word is kept, the other
/// letters and digits starred. Spans past the text's end are cut to it.
pub fn mask_spans(text: &str, spans: &[(usize, usize)]) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut masked = chars.clone();
    for &(start, end) in spans {
        let end = end.min(chars.len());
        for index in start.min(end)..end {
            let word_start = index == start || chars[index - 1].is_whitespace();
            if chars[index].is_alphanumeric() && !word_start {
                masked[index] = '*';
            }
        }
    }
    masked.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn short_numbers_and_names_stay_long_ones_are_masked() {
        assert_eq!(mask_number("8058"), "8058");
        assert_eq!(mask_number("VIETTEL"), "VIETTEL");
        assert_eq!(mask_number(""), "");
        assert_eq!(mask_number("+14155550100"), "+14******100");
        assert_eq!(mask_numbers_in("12345678 is short"), "12345678 is short");
        assert_eq!(mask_numbers_in("goi 0912345678."), "goi 091****678.");
        assert_eq!(mask_numbers_in("999999999999999999"), "999************999");
    }

    #[test]
    fn numbers_written_in_groups_are_masked_with_their_separators() {
        assert_eq!(mask_numbers_in("goi 0912 345 678"), "goi 091* *** 678");
        assert_eq!(mask_numbers_in("sdt: 0912.345.678."), "sdt: 091*.***.678.");
        assert_eq!(mask_numbers_in("0912-345-678"), "091*-***-678");
        assert_eq!(mask_numbers_in("+84 912 345 678"), "+84 9** *** 678");
        assert_eq!(mask_numbers_in("84 912 345 678"), "84 9** *** 678");
        assert_eq!(mask_numbers_in("024 3825 1234"), "024 **** *234");
        assert_eq!(mask_numbers_in("+84 24 3825 1234"), "+84 2* **** *234");
        assert_eq!(mask_numbers_in("+1 415 555 0100"), "+1 41* *** *100");
        // A number after a code, on the same chain of groups.
        assert_eq!(
            mask_numbers_in("TC 000.00.12.H58-240315-0007 0912 345 678"),
            "TC 000.00.12.H58-240315-0007 091* *** 678"
        );
        assert_eq!(
            mask_numbers_in("tc 000 00 12 h58 240315 7 0987 654 321"),
            "tc 000 00 12 h58 240315 7 098* *** 321"
        );
    }

    #[test]
    fn dossier_codes_and_dates_are_not_taken_for_numbers() {
        for text in [
            "TC 000.00.12.H58-240315-0007",
            "tc 000 00 12 h58 240315 7",
            "000.00.12.H58 240315 0007",
            "ho so 240315-0007 ngay 15/03/2024",
            "G22.99-240315-0012",
            "0912 345 67 is too short",
            "0912 345 6789 is too long",
        ] {
            assert_eq!(mask_numbers_in(text), text);
        }
    }

    #[test]
    fn the_name_is_cut_to_initials_however_the_reply_spells_it() {
        let name = "Nguyễn Văn An";
        assert_eq!(
            mask_name("Chào Nguyễn Văn An, hồ sơ đã xong", name),
            "Chào N***** V** A*, hồ sơ đã xong"
        );
        assert_eq!(
            mask_name("Chao Nguyen Van An, ho so da xong", name),
            "Chao N***** V** A*, ho so da xong"
        );
        assert_eq!(mask_name("NGUYEN  VAN AN:", name), "N*****  V** A*:");
        // Part of a longer word, or another name, is not the name.
        assert_eq!(mask_name("Nguyễn Văn Anh", name), "Nguyễn Văn Anh");
        assert_eq!(mask_name("XNguyễn Văn An", name), "XNguyễn Văn An");
        assert_eq!(mask_name("Nguyễn Văn", name), "Nguyễn Văn");
        // A name too short to look for.
        assert_eq!(mask_name("a b", "A"), "a b");
        assert_eq!(mask_name("anything", "  "), "anything");
    }

    #[test]
    fn spans_are_cut_to_initials_and_a_span_past_the_end_stops_there() {
        assert_eq!(
            mask_spans("Chào Nguyễn Văn An, xong", &[(5, 18)]),
            "Chào N***** V** A*, xong"
        );
        assert_eq!(mask_spans("Le Thi Hoa", &[(7, 40)]), "Le Thi H**");
        assert_eq!(mask_spans("abc", &[]), "abc");
    }

    proptest! {
        #[test]
        fn masking_never_changes_a_text_without_long_numbers_or_the_name(
            text in "[a-zA-Z .,:\\-]{0,40}[0-9]{0,8}[a-z .]{0,20}",
        ) {
            prop_assert_eq!(mask_numbers_in(&text), text.clone());
        }

        #[test]
        fn masking_keeps_the_length_in_characters_of_grouped_numbers_and_names(
            text in "\\PC{0,60}",
            name in "[A-ZĐ][a-zăâđêôơư]{1,6}( [A-Z][a-z]{0,5}){0,3}",
        ) {
            let grouped = mask_grouped_numbers(&text);
            prop_assert_eq!(grouped.chars().count(), text.chars().count());
            let named = mask_name(&text, &name);
            prop_assert_eq!(named.chars().count(), text.chars().count());
        }

        #[test]
        fn a_vietnamese_mobile_in_any_grouping_keeps_only_its_ends(
            rest in "[0-9]{8}",
            lead in "[35789]",
            cuts in proptest::collection::btree_set(1usize..10, 0..4),
            separator in "[ .\\-]",
        ) {
            let digits = format!("0{lead}{rest}");
            let mut written = String::new();
            for (index, c) in digits.chars().enumerate() {
                if cuts.contains(&index) {
                    written.push_str(&separator);
                }
                written.push(c);
            }
            let masked = mask_numbers_in(&format!("goi {written} nhe"));
            let kept: String = masked.chars().filter(char::is_ascii_digit).collect();
            prop_assert_eq!(kept, format!("{}{}", &digits[..3], &digits[7..]));
        }
    }
}
