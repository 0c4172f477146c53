//! Vietnamese text helpers.
//!
//! This module owns diacritic folding: turning "tra cứu hồ sơ" into
//! "tra cuu ho so" so that text typed with tone marks, without them, or in a
//! mix of both can be compared the same way, and finding a person's name in
//! a text however it was spelled ([`find_name`]). It knows nothing about
//! dossier codes or keywords; callers decide what to compare.

use unicode_normalization::char::{decompose_canonical, is_combining_mark};

/// Where `name` stands in `text` as whole words: character offsets (start,
/// end exclusive), in order. Matched without regard to accents, case or the
/// spaces between the words, so a reply folded to GSM-7 or upper-cased by
/// its template is found too. A name of fewer than two letters is not
/// looked for.
pub fn find_name(text: &str, name: &str) -> Vec<(usize, usize)> {
    let name_words: Vec<Vec<char>> = name
        .split_whitespace()
        .map(|word| word.chars().map(comparable).collect())
        .filter(|word: &Vec<char>| !word.is_empty())
        .collect();
    if name_words.iter().map(Vec::len).sum::<usize>() < 2 {
        return Vec::new();
    }
    let chars: Vec<char> = text.chars().collect();
    let keys: Vec<char> = chars.iter().copied().map(comparable).collect();
    let mut found = Vec::new();
    let mut at = 0;
    while at < chars.len() {
        let starts_a_word = at == 0 || !chars[at - 1].is_alphanumeric();
        match starts_a_word
            .then(|| name_at(&chars, &keys, at, &name_words))
            .flatten()
        {
            Some(end) => {
                found.push((at, end));
                at = end;
            }
            None => at += 1,
        }
    }
    found
}

/// Where the name that starts at `at` ends (exclusive), if it does.
fn name_at(chars: &[char], keys: &[char], at: usize, name_words: &[Vec<char>]) -> Option<usize> {
    let mut index = at;
    for (number, word) in name_words.iter().enumerate() {
        if number > 0 {
            let spaces_from = index;
            while index < chars.len() && chars[index].is_whitespace() {
                index += 1;
            }
            if index == spaces_from {
                return None;
            }
        }
        if keys.get(index..index + word.len())? != word.as_slice() {
            return None;
        }
        index += word.len();
    }
    let ends_a_word = chars.get(index).is_none_or(|c| !c.is_alphanumeric());
    ends_a_word.then_some(index)
}

/// `c` without its diacritics, in lower case, as one character (itself
/// when folding or lower-casing would make it several).
fn comparable(c: char) -> char {
    let folded = fold_diacritics(c.encode_utf8(&mut [0; 4]));
    let mut folded = folded.chars();
    let base = match (folded.next(), folded.next()) {
        (Some(base), None) => base,
        _ => c,
    };
    let mut lower = base.to_lowercase();
    match (lower.next(), lower.next()) {
        (Some(lower), None) => lower,
        _ => base,
    }
}

/// Removes Vietnamese diacritics from `s`, keeping every other character.
///
/// Each character is canonically decomposed (NFD) and its combining marks
/// (tone marks, breve, circumflex, horn, …) are dropped; `đ`/`Đ`, which have
/// no decomposition, become `d`/`D`. Case is kept. Characters that carry no
/// combining mark (ASCII, punctuation, emoji, CJK, Hangul, …) are kept
/// exactly as written, and stray combining marks (text that arrived already
/// decomposed) are dropped. For precomposed Vietnamese text the number of
/// characters does not change: "Đã trả kết quả" becomes "Da tra ket qua".
pub fn fold_diacritics(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            'đ' => out.push('d'),
            'Đ' => out.push('D'),
            c if c.is_ascii() => out.push(c),
            c if is_combining_mark(c) => {}
            c => {
                let start = out.len();
                let mut dropped_mark = false;
                decompose_canonical(c, |part| {
                    if is_combining_mark(part) {
                        dropped_mark = true;
                    } else {
                        out.push(part);
                    }
                });
                if !dropped_mark {
                    // Nothing to fold: keep the character as typed rather
                    // than its decomposition (e.g. Hangul syllables).
                    out.truncate(start);
                    out.push(c);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::fold_diacritics;
    use proptest::prelude::*;

    /// Every Vietnamese letter, grouped by the base letter it folds to.
    const ALPHABET: &[(&str, char)] = &[
        ("aàáảãạăằắẳẵặâầấẩẫậ", 'a'),
        ("eèéẻẽẹêềếểễệ", 'e'),
        ("iìíỉĩị", 'i'),
        ("oòóỏõọôồốổỗộơờớởỡợ", 'o'),
        ("uùúủũụưừứửữự", 'u'),
        ("yỳýỷỹỵ", 'y'),
        ("dđ", 'd'),
    ];

    #[test]
    fn folds_sentences() {
        assert_eq!(fold_diacritics("Đã trả kết quả"), "Da tra ket qua");
        assert_eq!(fold_diacritics("tra cứu hồ sơ"), "tra cuu ho so");
        assert_eq!(fold_diacritics("Mã số hồ sơ"), "Ma so ho so");
        assert_eq!(fold_diacritics("Ừ ờ ỹ"), "U o y");
        assert_eq!(fold_diacritics("xin cảm ơn!"), "xin cam on!");
        assert_eq!(fold_diacritics("ĐƯỜNG Đỗ Đức Dục"), "DUONG Do Duc Duc");
    }

    #[test]
    fn folds_the_whole_alphabet_in_both_cases() {
        for &(letters, base) in ALPHABET {
            let expected = base.to_string().repeat(letters.chars().count());
            assert_eq!(fold_diacritics(letters), expected);
            assert_eq!(
                fold_diacritics(&letters.to_uppercase()),
                expected.to_uppercase()
            );
        }
        assert_eq!(
            ALPHABET
                .iter()
                .map(|(l, _)| l.chars().count())
                .sum::<usize>(),
            74
        );
    }

    #[test]
    fn folds_text_that_is_already_decomposed() {
        // "hồ sơ" written as base letters followed by combining marks.
        let decomposed = "ho\u{302}\u{300} so\u{31b}";
        assert_eq!(fold_diacritics(decomposed), "ho so");
    }

    #[test]
    fn keeps_everything_else() {
        for s in [
            "",
            "000.00.12.H58-240315-0007",
            "Hello, world! 123 – — _ / :",
            "你好 한국어 😀 ß",
            "\u{212a}", // KELVIN SIGN has a singleton decomposition, no mark
        ] {
            assert_eq!(fold_diacritics(s), s);
        }
    }

    proptest! {
        #[test]
        fn keeps_length_and_yields_ascii_for_vietnamese(
            s in "[aàáảãạăằắẳẵặâầấẩẫậeèéẻẽẹêềếểễệiìíỉĩịoòóỏõọôồốổỗộơờớởỡợuùúủũụưừứửữựyỳýỷỹỵđ \
                  AÀÁẢÃẠĂẰẮẲẴẶÂẦẤẨẪẬEÈÉẺẼẸÊỀẾỂỄỆIÌÍỈĨỊOÒÓỎÕỌÔỒỐỔỖỘƠỜỚỞỠỢUÙÚỦŨỤƯỪỨỬỮỰYỲÝỶỸỴĐ0-9 .,!?-]{0,40}"
        ) {
            let folded = fold_diacritics(&s);
            prop_assert_eq!(folded.chars().count(), s.chars().count());
            prop_assert!(folded.is_ascii());
        }

        #[test]
        fn is_idempotent_and_never_panics(s in "\\PC*") {
            let once = fold_diacritics(&s);
            prop_assert_eq!(fold_diacritics(&once), once.clone());
        }
    }
}
