//! SMS text encodings, independent of any protocol: the GSM 03.38 default
//! alphabet (with its extension table; unpacked, or packed with the TS 23.038
//! padding rules), UCS-2 (UTF-16 big-endian, surrogate pairs kept whole),
//! ISO-8859-1 and IA5, choosing the cheapest encoding for a text, counting
//! segments, and splitting a long text into parts of any capacity without
//! ever cutting a GSM-7 escape pair or a UTF-16 surrogate pair.
//!
//! SMPP, the modem channel and the reply renderer all speak through this room,
//! so the segment count an admin sees is the one a carrier bills. The
//! alphabet's table itself is `gsm_modem::pdu::gsm7`'s, so the modem's PDUs
//! and SMPP's texts can never disagree on a character.

use gsm_modem::pdu::gsm7::{self as alphabet, ESCAPE as GSM7_ESCAPE};

/// Septets in one GSM-7 message that is not concatenated.
pub const GSM7_SINGLE: usize = 160;
/// Septets per part of a concatenated GSM-7 message (a 6-byte UDH takes 7 septets).
pub const GSM7_PART: usize = 153;
/// UTF-16 code units in one UCS-2 message that is not concatenated.
pub const UCS2_SINGLE: usize = 70;
/// UTF-16 code units per part of a concatenated UCS-2 message.
pub const UCS2_PART: usize = 67;

/// The alphabet a text is sent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// GSM 03.38 default alphabet, 7 bits per character (extension characters take two).
    Gsm7,
    /// UCS-2 / UTF-16BE, 16 bits per code unit.
    Ucs2,
}

impl Encoding {
    /// Short name for logs and admin screens.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Gsm7 => "GSM-7",
            Encoding::Ucs2 => "UCS-2",
        }
    }
}

/// How a text will travel: its encoding and how many SMS parts it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentInfo {
    /// The encoding chosen for the text.
    pub encoding: Encoding,
    /// Septets (GSM-7) or UTF-16 code units (UCS-2) the text occupies.
    pub units: usize,
    /// Number of SMS parts (at least 1, even for an empty text).
    pub segments: usize,
}

fn gsm7_basic_septet(c: char) -> Option<u8> {
    match alphabet::encode_char(c) {
        Some((None, septet)) => Some(septet),
        _ => None,
    }
}

fn gsm7_extension_septet(c: char) -> Option<u8> {
    match alphabet::encode_char(c) {
        Some((Some(_), septet)) => Some(septet),
        _ => None,
    }
}

/// Septets one character takes in GSM-7, or `None` when it has no GSM-7 form.
pub fn gsm7_width(c: char) -> Option<usize> {
    if gsm7_basic_septet(c).is_some() {
        Some(1)
    } else if gsm7_extension_septet(c).is_some() {
        Some(2)
    } else {
        None
    }
}

/// True when every character of `text` has a GSM-7 form.
pub fn is_gsm7(text: &str) -> bool {
    text.chars().all(|c| gsm7_width(c).is_some())
}

/// Picks GSM-7 when the text allows it, UCS-2 otherwise, and counts the parts.
pub fn segment_info(text: &str) -> SegmentInfo {
    if is_gsm7(text) {
        let units: usize = text.chars().filter_map(gsm7_width).sum();
        let segments = if units <= GSM7_SINGLE {
            1
        } else {
            split_gsm7(text).len()
        };
        SegmentInfo {
            encoding: Encoding::Gsm7,
            units,
            segments,
        }
    } else {
        let units = text.encode_utf16().count();
        let segments = if units <= UCS2_SINGLE {
            1
        } else {
            split_ucs2(text).len()
        };
        SegmentInfo {
            encoding: Encoding::Ucs2,
            units,
            segments,
        }
    }
}

/// Encodes a GSM-7 text as unpacked septets (one per byte), extension
/// characters as an escape pair. Characters without a GSM-7 form become `?`.
pub fn gsm7_encode_unpacked(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        if let Some(s) = gsm7_basic_septet(c) {
            out.push(s);
        } else if let Some(s) = gsm7_extension_septet(c) {
            out.push(GSM7_ESCAPE);
            out.push(s);
        } else {
            out.push(b'?');
        }
    }
    out
}

/// Decodes unpacked GSM-7 septets (one per byte; the high bit is ignored).
/// An escape followed by an unknown septet decodes as the basic character,
/// as GSM 03.38 asks; an escape followed by another escape (reserved for a
/// further table) and a lone trailing escape become a space.
pub fn gsm7_decode_unpacked(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    let mut iter = bytes.iter().map(|b| b & 0x7f);
    while let Some(septet) = iter.next() {
        if septet == GSM7_ESCAPE {
            match iter.next() {
                Some(GSM7_ESCAPE) | None => out.push(' '),
                Some(next) => {
                    out.push(alphabet::extension_char(next).unwrap_or(alphabet::basic_char(next)));
                }
            }
        } else {
            out.push(alphabet::basic_char(septet));
        }
    }
    out
}

/// Unpacks GSM-7 septets packed 8 into 7 bytes (3GPP TS 23.038 §6.1.2.1).
/// `skip_bits` leading fill bits are ignored (used after a user data header).
/// Every whole septet is returned, padding included; see
/// [`gsm7_decode_packed`] for a text.
pub fn gsm7_unpack(bytes: &[u8], skip_bits: usize) -> Vec<u8> {
    let total_bits = bytes.len() * 8;
    let mut septets = Vec::with_capacity(total_bits / 7);
    let mut bit = skip_bits;
    while bit + 7 <= total_bits {
        let byte = bit / 8;
        let shift = bit % 8;
        let mut value = u16::from(bytes[byte]) >> shift;
        if shift > 1 && byte + 1 < bytes.len() {
            value |= u16::from(bytes[byte + 1]) << (8 - shift);
        }
        septets.push((value & 0x7f) as u8);
        bit += 7;
    }
    septets
}

/// Packs septets 8 into 7 bytes after `fill_bits` zero bits (the fill that
/// aligns the text after a user data header). When the last byte would end
/// with 7 unused bits, they carry a carriage return, as TS 23.038
/// §6.1.2.3.1 asks, so that they are not read as an `@`.
pub fn gsm7_pack(septets: &[u8], fill_bits: usize) -> Vec<u8> {
    let fill_bits = fill_bits % 8;
    let mut bits = fill_bits + 7 * septets.len();
    let pad = (8 - bits % 8) % 8 == 7;
    if pad {
        bits += 7;
    }
    let mut out = vec![0u8; bits.div_ceil(8)];
    let padding = pad.then_some(GSM7_PAD);
    for (i, &septet) in septets.iter().chain(padding.iter()).enumerate() {
        let bit = fill_bits + 7 * i;
        let value = u16::from(septet & 0x7f) << (bit % 8);
        out[bit / 8] |= value as u8;
        if let Some(next) = out.get_mut(bit / 8 + 1) {
            *next |= (value >> 8) as u8;
        }
    }
    out
}

/// The carriage return that fills 7 spare bits at the end of packed GSM-7.
const GSM7_PAD: u8 = 0x0d;

/// True when `count` septets after `fill_bits` end exactly on a byte
/// boundary, where a final CR or `@` is read as padding.
fn gsm7_ends_on_boundary(count: usize, fill_bits: usize) -> bool {
    (fill_bits % 8 + 7 * count).is_multiple_of(8)
}

/// Septets of `text` ready for packing after `fill_bits`: unpacked GSM-7,
/// except that a final `@` or CR that would end exactly on a byte boundary
/// (where a reader takes it for padding) is written as an escape pair,
/// which GSM 03.38 readers decode as the same basic character.
fn gsm7_septets_for_packing(text: &str, fill_bits: usize) -> Vec<u8> {
    let mut septets = gsm7_encode_unpacked(text);
    if let Some(&last) = septets.last() {
        let escaped = septets.len() >= 2 && septets[septets.len() - 2] == GSM7_ESCAPE;
        if !escaped
            && (last == 0 || last == GSM7_PAD)
            && gsm7_ends_on_boundary(septets.len(), fill_bits)
        {
            septets.insert(septets.len() - 1, GSM7_ESCAPE);
        }
    }
    septets
}

/// Encodes a GSM-7 text packed 8 septets into 7 bytes after `fill_bits`
/// fill bits, so that [`gsm7_decode_packed`] reads back the same text.
/// Characters without a GSM-7 form become `?`.
pub fn gsm7_encode_packed(text: &str, fill_bits: usize) -> Vec<u8> {
    gsm7_pack(&gsm7_septets_for_packing(text, fill_bits), fill_bits)
}

/// Decodes packed GSM-7 that starts after `fill_bits` fill bits. A final
/// septet that exactly fills the last 7 bits and is a CR (TS 23.038 padding)
/// or zero (the padding of senders that ignore that rule) is not text.
pub fn gsm7_decode_packed(bytes: &[u8], fill_bits: usize) -> String {
    let mut septets = gsm7_unpack(bytes, fill_bits);
    let exact = (bytes.len() * 8)
        .checked_sub(fill_bits)
        .is_some_and(|bits| bits.is_multiple_of(7));
    if exact && matches!(septets.last(), Some(&0) | Some(&GSM7_PAD)) {
        septets.pop();
    }
    gsm7_decode_unpacked(&septets)
}

/// Encodes text as UCS-2 (UTF-16 big-endian; characters outside the BMP as surrogate pairs).
pub fn ucs2_encode(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_be_bytes).collect()
}

/// Decodes UCS-2 / UTF-16BE. An odd trailing byte and unpaired surrogates
/// become U+FFFD, so a broken handset never stops a reply.
pub fn ucs2_decode(bytes: &[u8]) -> String {
    let pairs = bytes.chunks_exact(2);
    let odd = !pairs.remainder().is_empty();
    let mut out: String =
        char::decode_utf16(pairs.map(|pair| u16::from_be_bytes([pair[0], pair[1]])))
            .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect();
    if odd {
        out.push(char::REPLACEMENT_CHARACTER);
    }
    out
}

/// Decodes ISO-8859-1 (every byte is the code point of the same value).
pub fn latin1_decode(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// Encodes text as ISO-8859-1, or `None` when a character lies beyond U+00FF.
pub fn latin1_encode(text: &str) -> Option<Vec<u8>> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).ok())
        .collect()
}

/// Decodes IA5 (ASCII); a byte above 0x7F, which IA5 does not have, becomes U+FFFD.
pub fn ascii_decode(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if b.is_ascii() {
                char::from(b)
            } else {
                char::REPLACEMENT_CHARACTER
            }
        })
        .collect()
}

/// How much text one SMS holds, in the unit of its alphabet (septets,
/// octets or UTF-16 code units): standing alone, and as one part of a
/// concatenated message (less, as the concatenation header takes room).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    /// Units in a message that is not concatenated.
    pub single: usize,
    /// Units in each part of a concatenated message.
    pub part: usize,
}

/// GSM-7 septets with a 6-byte concatenation header (the usual case).
pub const GSM7_CAPACITY: Capacity = Capacity {
    single: GSM7_SINGLE,
    part: GSM7_PART,
};
/// UTF-16 code units with a 6-byte concatenation header (the usual case).
pub const UCS2_CAPACITY: Capacity = Capacity {
    single: UCS2_SINGLE,
    part: UCS2_PART,
};

/// Splits a GSM-7 text into parts of at most [`GSM7_PART`] septets, keeping
/// every escape pair inside one part. A text that fits one SMS is one part.
pub fn split_gsm7(text: &str) -> Vec<String> {
    split_gsm7_within(text, GSM7_CAPACITY)
}

/// Splits a text into UCS-2 parts of at most [`UCS2_PART`] code units,
/// keeping every surrogate pair inside one part.
pub fn split_ucs2(text: &str) -> Vec<String> {
    split_ucs2_within(text, UCS2_CAPACITY)
}

/// [`split_gsm7`] for any capacity in septets (unpacked GSM-7).
pub fn split_gsm7_within(text: &str, capacity: Capacity) -> Vec<String> {
    split_by_width(text, capacity, gsm7_char_width, |_, _| 0)
}

/// Splits a GSM-7 text for packing: `capacity` in septets, each part
/// starting after `part_fill_bits` fill bits (a text standing alone has
/// none). Counts the escape [`gsm7_encode_packed`] adds before a final `@`
/// or CR that would end on a byte boundary, so every part packs within
/// its capacity.
pub fn split_gsm7_packed_within(
    text: &str,
    capacity: Capacity,
    part_fill_bits: usize,
) -> Vec<String> {
    let total: usize = text.chars().map(gsm7_char_width).sum();
    let single_extra = text
        .chars()
        .last()
        .map_or(0, |c| packing_extra(total, c, 0));
    if total + single_extra <= capacity.single {
        return vec![text.to_owned()];
    }
    split_by_width(
        text,
        Capacity {
            single: 0,
            part: capacity.part,
        },
        gsm7_char_width,
        |used, last| packing_extra(used, last, part_fill_bits),
    )
}

/// The extra escape septet [`gsm7_septets_for_packing`] writes when a part
/// of `septets` ends with `last` on a byte boundary.
fn packing_extra(septets: usize, last: char, fill_bits: usize) -> usize {
    usize::from(matches!(last, '@' | '\r') && gsm7_ends_on_boundary(septets, fill_bits))
}

/// [`split_ucs2`] for any capacity in UTF-16 code units.
pub fn split_ucs2_within(text: &str, capacity: Capacity) -> Vec<String> {
    split_by_width(text, capacity, char::len_utf16, |_, _| 0)
}

/// Splits a text sent one octet per character (ISO-8859-1, IA5) into parts
/// of at most `capacity` characters.
pub fn split_octets_within(text: &str, capacity: Capacity) -> Vec<String> {
    split_by_width(text, capacity, |_| 1, |_, _| 0)
}

fn gsm7_char_width(c: char) -> usize {
    gsm7_width(c).unwrap_or(1)
}

/// One part when the text's total width fits `capacity.single`, otherwise
/// parts of at most `capacity.part` width, cut only between characters.
/// `end_extra(width, last)` is what a part of that width ending with `last`
/// costs on top (the escape before a packed GSM-7 padding look-alike).
fn split_by_width(
    text: &str,
    capacity: Capacity,
    width: impl Fn(char) -> usize,
    end_extra: impl Fn(usize, char) -> usize,
) -> Vec<String> {
    let total: usize = text.chars().map(&width).sum();
    if total <= capacity.single {
        return vec![text.to_owned()];
    }
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = width(c);
        if !current.is_empty() && used + w + end_extra(used + w, c) > capacity.part {
            parts.push(std::mem::take(&mut current));
            used = 0;
        }
        current.push(c);
        used += w;
    }
    if !current.is_empty() || parts.is_empty() {
        parts.push(current);
    }
    parts
}

/// Rewrites a text so that it fits the GSM-7 alphabet: Vietnamese diacritics
/// removed, typographic punctuation replaced by its plain form, anything else
/// without a GSM-7 form replaced by `?`.
pub fn to_gsm7_lossy(text: &str) -> String {
    let folded = crate::domain::vietnamese::fold_diacritics(text);
    let mut out = String::with_capacity(folded.len());
    for c in folded.chars() {
        match c {
            '…' => out.push_str("..."),
            '–' | '—' | '‐' | '‑' => out.push('-'),
            '“' | '”' | '„' => out.push('"'),
            '‘' | '’' | '‚' => out.push('\''),
            '\u{a0}' | '\t' => out.push(' '),
            c if gsm7_width(c).is_some() => out.push(c),
            _ => out.push('?'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn plain_ascii_is_one_gsm7_segment() {
        let info = segment_info("HS 000.00.12.H58-240315-0007: Dang xu ly");
        assert_eq!(info.encoding, Encoding::Gsm7);
        assert_eq!(info.segments, 1);
    }

    #[test]
    fn one_vietnamese_accent_forces_ucs2() {
        let info = segment_info("Đang xử lý");
        assert_eq!(info.encoding, Encoding::Ucs2);
        assert_eq!(info.units, 10);
        assert_eq!(info.segments, 1);
    }

    #[test]
    fn segment_boundaries_match_carrier_billing() {
        assert_eq!(segment_info(&"a".repeat(160)).segments, 1);
        assert_eq!(segment_info(&"a".repeat(161)).segments, 2);
        assert_eq!(segment_info(&"a".repeat(306)).segments, 2);
        assert_eq!(segment_info(&"a".repeat(307)).segments, 3);
        assert_eq!(segment_info(&"ư".repeat(70)).segments, 1);
        assert_eq!(segment_info(&"ư".repeat(71)).segments, 2);
        assert_eq!(segment_info(&"ư".repeat(134)).segments, 2);
        assert_eq!(segment_info(&"ư".repeat(135)).segments, 3);
    }

    #[test]
    fn extension_characters_count_twice() {
        let info = segment_info("€{}");
        assert_eq!(info.encoding, Encoding::Gsm7);
        assert_eq!(info.units, 6);
        assert_eq!(gsm7_encode_unpacked("€"), vec![0x1b, 0x65]);
    }

    #[test]
    fn escape_pair_never_split() {
        let text = format!("{}€{}", "a".repeat(152), "b".repeat(20));
        let parts = split_gsm7(&text);
        assert_eq!(parts[0], "a".repeat(152));
        assert!(parts[1].starts_with('€'));
    }

    #[test]
    fn surrogate_pair_never_split() {
        let text = format!("{}😀{}", "ư".repeat(66), "ư".repeat(10));
        let parts = split_ucs2(&text);
        assert_eq!(parts[0], "ư".repeat(66));
        assert!(parts[1].starts_with('😀'));
    }

    #[test]
    fn packed_gsm7_unpacks() {
        // "hello" packed: e8 32 9b fd 06
        let septets = gsm7_unpack(&[0xe8, 0x32, 0x9b, 0xfd, 0x06], 0);
        assert_eq!(gsm7_decode_unpacked(&septets[..5]), "hello");
    }

    #[test]
    fn packing_matches_the_standard() {
        assert_eq!(
            gsm7_pack(&[0x68, 0x65, 0x6c, 0x6c, 0x6f], 0),
            vec![0xe8, 0x32, 0x9b, 0xfd, 0x06]
        );
        assert_eq!(
            gsm7_encode_packed("hello", 0),
            vec![0xe8, 0x32, 0x9b, 0xfd, 0x06]
        );
        assert_eq!(
            gsm7_decode_packed(&[0xe8, 0x32, 0x9b, 0xfd, 0x06], 0),
            "hello"
        );
        // Seven septets leave 7 spare bits, filled with CR (TS 23.038 §6.1.2.3.1).
        let seven = gsm7_pack(b"1234567", 0);
        assert_eq!(seven.len(), 7);
        assert_eq!(seven[6] >> 1, 0x0d);
        assert_eq!(gsm7_decode_packed(&seven, 0), "1234567");
        // Eight septets ending with '@' would look like padding: the '@' is escaped.
        assert_eq!(
            gsm7_unpack(&gsm7_encode_packed("1234567@", 0), 0)[7..9],
            [0x1b, 0x00]
        );
        assert_eq!(
            gsm7_decode_packed(&gsm7_encode_packed("1234567@", 0), 0),
            "1234567@"
        );
    }

    #[test]
    fn odd_ucs2_byte_and_escape_escape_are_replaced() {
        assert_eq!(ucs2_decode(&[0x00, 0x41, 0x00]), "A\u{fffd}");
        assert_eq!(ucs2_decode(&[0xd8, 0x3d]), "\u{fffd}");
        assert_eq!(gsm7_decode_unpacked(&[0x1b, 0x1b, 0x41]), " A");
        assert_eq!(gsm7_decode_unpacked(&[0x41, 0x1b]), "A ");
    }

    #[test]
    fn capacities_other_than_the_usual() {
        // A 7-octet UDH leaves 152 septets or 66 code units per part.
        let gsm = split_gsm7_within(
            &"a".repeat(305),
            Capacity {
                single: 160,
                part: 152,
            },
        );
        assert_eq!(
            gsm.iter().map(String::len).collect::<Vec<_>>(),
            vec![152, 152, 1]
        );
        let ucs = split_ucs2_within(
            &"ư".repeat(133),
            Capacity {
                single: 70,
                part: 66,
            },
        );
        assert_eq!(ucs.len(), 3);
        let octets = split_octets_within(
            &"é".repeat(141),
            Capacity {
                single: 140,
                part: 134,
            },
        );
        assert_eq!(
            octets.iter().map(|p| p.chars().count()).collect::<Vec<_>>(),
            vec![134, 7]
        );
        assert_eq!(latin1_encode("café"), Some(b"caf\xe9".to_vec()));
        assert_eq!(latin1_encode("€"), None);
        assert_eq!(ascii_decode(b"a\xe9"), "a\u{fffd}");
    }

    #[test]
    fn lossy_gsm7_folds_vietnamese() {
        assert_eq!(
            to_gsm7_lossy("Đã trả kết quả – “đúng hạn”…"),
            "Da tra ket qua - \"dung han\"..."
        );
        assert!(is_gsm7(&to_gsm7_lossy(
            "Yêu cầu thực hiện nghĩa vụ tài chính 😀"
        )));
    }

    proptest! {
        #[test]
        fn gsm7_round_trips(text in "[A-Za-z0-9 @£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ!\"#¤%&'()*+,\\-./:;<=>?¡ÄÖÑÜ§¿äöñüà€{}\\[\\]~|^\\\\]{0,400}") {
            let bytes = gsm7_encode_unpacked(&text);
            prop_assert_eq!(gsm7_decode_unpacked(&bytes), text);
        }

        #[test]
        fn ucs2_round_trips(text in "\\PC{0,200}") {
            prop_assert_eq!(ucs2_decode(&ucs2_encode(&text)), text);
        }

        #[test]
        fn ucs2_parts_rejoin_and_fit(text in "\\PC{0,400}") {
            let parts = split_ucs2(&text);
            prop_assert_eq!(parts.concat(), text.clone());
            if parts.len() > 1 {
                for p in &parts {
                    prop_assert!(p.encode_utf16().count() <= UCS2_PART);
                }
            }
        }

        #[test]
        fn gsm7_parts_rejoin_and_fit(text in "[a-z€{ ]{0,500}") {
            let parts = split_gsm7(&text);
            prop_assert_eq!(parts.concat(), text.clone());
            if parts.len() > 1 {
                for p in &parts {
                    prop_assert!(gsm7_encode_unpacked(p).len() <= GSM7_PART);
                }
            }
        }

        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400), skip in 0usize..8) {
            let _ = gsm7_decode_unpacked(&bytes);
            let _ = gsm7_unpack(&bytes, skip);
            let _ = gsm7_decode_packed(&bytes, skip);
            let _ = ucs2_decode(&bytes);
            let _ = latin1_decode(&bytes);
            let _ = ascii_decode(&bytes);
        }

        #[test]
        fn packed_gsm7_round_trips(text in "[a-z @\r€{]{0,200}", fill in 0usize..7) {
            let packed = gsm7_encode_packed(&text, fill);
            prop_assert_eq!(gsm7_decode_packed(&packed, fill), text);
        }

        #[test]
        fn packed_parts_rejoin_and_pack_within_capacity(text in "[a@\r€ ]{0,600}", fill in 0usize..7) {
            let capacity = Capacity { single: 160, part: 150 };
            let parts = split_gsm7_packed_within(&text, capacity, fill);
            prop_assert_eq!(parts.concat(), text.clone());
            if parts.len() > 1 {
                for p in &parts {
                    let packed = gsm7_encode_packed(p, fill);
                    prop_assert!(packed.len() <= (fill + 7 * capacity.part).div_ceil(8));
                    prop_assert_eq!(&gsm7_decode_packed(&packed, fill), p);
                }
            } else {
                prop_assert!(gsm7_encode_packed(&parts[0], 0).len() <= 140);
            }
        }
    }
}
