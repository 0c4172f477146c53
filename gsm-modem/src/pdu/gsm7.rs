//! The GSM 7-bit default alphabet and its extension table (TS 23.038
//! §6.2.1, §6.2.1.1) and the packing of septets into octets (§6.1.2.1.1):
//! text ⇄ septets ⇄ octets, nothing about where the septets sit in a PDU.

/// The escape to the extension table.
pub const ESCAPE: u8 = 0x1B;

/// The default alphabet, indexed by septet. 0x1B (the escape) is never
/// produced as a character; its slot holds a placeholder.
const BASIC: [char; 128] = [
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å', //
    'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', '\u{1B}', 'Æ', 'æ', 'ß', 'É', //
    ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', //
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?', //
    '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', //
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§', //
    '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', //
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à', //
];

/// The extension table: the septet after an escape, and its character.
const EXTENSION: [(u8, char); 10] = [
    (0x0A, '\u{0C}'),
    (0x14, '^'),
    (0x28, '{'),
    (0x29, '}'),
    (0x2F, '\\'),
    (0x3C, '['),
    (0x3D, '~'),
    (0x3E, ']'),
    (0x40, '|'),
    (0x65, '€'),
];

/// Every character the default alphabet and the extension table can write,
/// for generators and tests.
pub fn characters() -> impl Iterator<Item = char> {
    BASIC
        .iter()
        .enumerate()
        .filter(|&(septet, _)| septet != usize::from(ESCAPE))
        .map(|(_, &c)| c)
        .chain(EXTENSION.iter().map(|&(_, c)| c))
}

/// The character of `septet` (its low 7 bits) in the default alphabet. The
/// escape's own slot (0x1B) reads as U+001B; what an escape means is the
/// caller's to decide.
pub fn basic_char(septet: u8) -> char {
    BASIC[usize::from(septet & 0x7F)]
}

/// The character the extension table gives `septet` after an escape, if any.
pub fn extension_char(septet: u8) -> Option<char> {
    EXTENSION
        .iter()
        .find(|&&(s, _)| s == septet)
        .map(|&(_, c)| c)
}

/// The septets that write `c`: one from the default alphabet, or the escape
/// and one from the extension table; `None` when neither has it.
pub fn encode_char(c: char) -> Option<(Option<u8>, u8)> {
    if c != '\u{1B}' {
        if let Some(septet) = BASIC.iter().position(|&b| b == c) {
            return Some((None, septet as u8));
        }
    }
    EXTENSION
        .iter()
        .find(|&&(_, e)| e == c)
        .map(|&(septet, _)| (Some(ESCAPE), septet))
}

/// How many septets `c` costs (1 or 2), `None` when GSM-7 cannot write it.
pub fn char_septets(c: char) -> Option<usize> {
    encode_char(c).map(|(escape, _)| if escape.is_some() { 2 } else { 1 })
}

/// The septets of `text`, `None` when a character is outside the default
/// alphabet and its extension table.
pub(crate) fn encode_text(text: &str) -> Option<Vec<u8>> {
    let mut septets = Vec::with_capacity(text.len());
    for c in text.chars() {
        let (escape, septet) = encode_char(c)?;
        septets.extend(escape);
        septets.push(septet);
    }
    Some(septets)
}

/// The text of `septets` (each < 0x80). An escape followed by a septet the
/// extension table lacks reads as that septet's default character, two
/// escapes as a space (TS 23.038 §6.2.1.1), and an escape at the very end
/// is dropped.
pub(crate) fn decode_septets(septets: &[u8]) -> String {
    let mut text = String::with_capacity(septets.len());
    let mut iter = septets.iter().map(|&s| s & 0x7F);
    while let Some(septet) = iter.next() {
        if septet != ESCAPE {
            text.push(BASIC[usize::from(septet)]);
            continue;
        }
        match iter.next() {
            None => break,
            Some(ESCAPE) => text.push(' '),
            Some(next) => text.push(extension_char(next).unwrap_or(basic_char(next))),
        }
    }
    text
}

/// The first `count` septets packed in `octets` (septet `i` in bits
/// `7i..7i+7`, least significant first). `octets` must hold at least
/// `ceil(7 * count / 8)` octets.
pub(crate) fn unpack(octets: &[u8], count: usize) -> Vec<u8> {
    (0..count)
        .map(|i| {
            let bit = i * 7;
            let (index, shift) = (bit / 8, bit % 8);
            let mut value = u16::from(octets[index]) >> shift;
            if shift > 1 {
                value |= u16::from(octets[index + 1]) << (8 - shift);
            }
            (value & 0x7F) as u8
        })
        .collect()
}

/// Packs `septets` into `out`, the first one at septet position `start`
/// (bit `7 * start`); `out` must hold `ceil(7 * (start + len) / 8)`
/// octets. Bits already set in `out` (a user data header) are kept.
pub(crate) fn pack(septets: &[u8], start: usize, out: &mut [u8]) {
    for (i, &septet) in septets.iter().enumerate() {
        let bit = (start + i) * 7;
        let (index, shift) = (bit / 8, bit % 8);
        let value = u16::from(septet & 0x7F) << shift;
        out[index] |= value as u8;
        if shift > 1 {
            out[index + 1] |= (value >> 8) as u8;
        }
    }
}

/// `septets` packed from bit 0, in `ceil(7 * len / 8)` octets.
pub(crate) fn pack_all(septets: &[u8]) -> Vec<u8> {
    let mut out = vec![0; (septets.len() * 7).div_ceil(8)];
    pack(septets, 0, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_classic_hellohello_packs_as_the_spec_shows() {
        let septets = encode_text("hellohello").unwrap();
        assert_eq!(
            pack_all(&septets),
            vec![0xE8, 0x32, 0x9B, 0xFD, 0x46, 0x97, 0xD9, 0xEC, 0x37]
        );
        assert_eq!(
            decode_septets(&unpack(&pack_all(&septets), 10)),
            "hellohello"
        );
    }

    #[test]
    fn extension_characters_cost_two_septets_and_come_back() {
        let text = "€[]{}\\~^|\u{0C}";
        let septets = encode_text(text).unwrap();
        assert_eq!(septets.len(), 20);
        assert_eq!(decode_septets(&septets), text);
        assert_eq!(char_septets('€'), Some(2));
        assert_eq!(char_septets('a'), Some(1));
        assert_eq!(char_septets('ă'), None);
        assert_eq!(char_septets('\u{1B}'), None);
    }

    #[test]
    fn odd_escapes_read_as_the_standard_says() {
        // Escape + a septet the extension table lacks: the default character.
        assert_eq!(decode_septets(&[ESCAPE, 0x41]), "A");
        // Two escapes: a space, then the next septet as usual.
        assert_eq!(decode_septets(&[ESCAPE, ESCAPE, 0x41]), " A");
        // An escape at the end: nothing.
        assert_eq!(decode_septets(&[0x41, ESCAPE]), "A");
    }

    #[test]
    fn every_character_round_trips() {
        let all: String = characters().collect();
        assert_eq!(all.chars().count(), 127 + 10);
        assert_eq!(decode_septets(&encode_text(&all).unwrap()), all);
    }

    #[test]
    fn packing_at_an_offset_keeps_the_bits_before() {
        let mut out = vec![0xFF, 0, 0];
        pack(&[0x7F, 0x7F], 1, &mut out);
        assert_eq!(out, vec![0xFF, 0xFF, 0x1F]);
        assert_eq!(unpack(&out, 3), vec![0x7F, 0x7F, 0x7F]);
    }
}
