//! Vietnamese text helpers.
//!
//! This module owns diacritic folding: turning "tra cứu hồ sơ" into
//! "tra cuu ho so" so that text typed with tone marks, without them, or in a
//! mix of both can be compared the same way. It knows nothing about dossier
//! codes or keywords; callers decide what to compare.

use unicode_normalization::char::{decompose_canonical, is_combining_mark};

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
