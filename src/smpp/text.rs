//! Text on the SMPP wire, without I/O: reading a short message's user data
//! header (a sequence of information elements), decoding its text by
//! data_coding (from `short_message` or `message_payload`), telling where a
//! part of a concatenated message sits (UDH or `sar_*` TLVs), and encoding a
//! reply into short messages split the way a connection wants long messages
//! (8-bit or 16-bit UDH references, SAR TLVs, or one `message_payload`).
//!
//! Capacities are those of the air interface: 140 octets of user data per
//! SMS, header included. Unpacked GSM-7 travels one septet per octet on
//! SMPP and is packed by the SMSC, so its parts hold the septets that pack
//! into those 140 octets (160 alone, 153 behind an 8-bit reference UDH).

use super::pdu::{tag, ShortMessage, Tlv};
use crate::channel::PartInfo;
use crate::sms_text::{self, Capacity};

/// esm_class bit: short_message starts with a user data header.
pub const ESM_UDHI: u8 = 0x40;
/// esm_class message-type bits (2–5).
const ESM_TYPE_MASK: u8 = 0x3c;
/// Octets of user data (header included) one SMS carries on the air interface.
pub const MAX_USER_DATA: usize = 140;
/// Largest `message_payload` value a TLV length can state.
const MAX_PAYLOAD: usize = u16::MAX as usize;
/// UDH information element: concatenated message, 8-bit reference.
const IE_CONCAT_8: u8 = 0x00;
/// UDH information element: concatenated message, 16-bit reference.
const IE_CONCAT_16: u8 = 0x08;
/// Septets in one GSM-7 message standing alone.
const GSM7_SINGLE: usize = sms_text::GSM7_SINGLE;
/// UTF-16 code units in one UCS-2 message standing alone.
const UCS2_SINGLE: usize = sms_text::UCS2_SINGLE;

/// How a connection reads (and writes) data_coding 0, the SMSC default alphabet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DefaultAlphabet {
    /// GSM 03.38, one septet per byte (most SMSCs).
    #[default]
    Gsm7Unpacked,
    /// GSM 03.38 packed 8 septets into 7 bytes.
    Gsm7Packed,
    /// ISO-8859-1.
    Latin1,
    /// IA5 / ASCII (SMSCs whose default alphabet is the one of data_coding 1).
    Ascii,
}

impl DefaultAlphabet {
    /// Every default alphabet, for tests and fuzzing.
    pub const ALL: [DefaultAlphabet; 4] = [
        DefaultAlphabet::Gsm7Unpacked,
        DefaultAlphabet::Gsm7Packed,
        DefaultAlphabet::Latin1,
        DefaultAlphabet::Ascii,
    ];
}

/// A data_coding this gateway cannot read as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("data_coding 0x{0:02x} is not a text alphabet this gateway reads")]
pub struct UnsupportedCoding(pub u8);

/// True when the message is a delivery receipt or another SMSC report,
/// not a citizen's text.
pub fn is_receipt(sm: &ShortMessage) -> bool {
    sm.esm_class & ESM_TYPE_MASK != 0
}

/// The concatenation info of an incoming message: from the user data
/// header (IE 0x00, 8-bit reference, or IE 0x08, 16-bit reference; the
/// first sensible one), else from the `sar_msg_ref_num` /
/// `sar_total_segments` / `sar_segment_seqnum` TLVs. `None` for a message
/// without either, or whose numbers make no sense (total 0, index 0 or
/// beyond total). A "part 1 of 1" is returned as such: it is complete by itself.
pub fn concatenation(sm: &ShortMessage) -> Option<PartInfo> {
    let header = user_data(sm).header;
    information_elements(header)
        .find_map(|(id, value)| match (id, value) {
            (IE_CONCAT_8, &[reference, total, index]) => {
                PartInfo::checked(u16::from(reference), total, index)
            }
            (IE_CONCAT_16, &[high, low, total, index]) => {
                PartInfo::checked(u16::from_be_bytes([high, low]), total, index)
            }
            _ => None,
        })
        .or_else(|| sar_concatenation(sm))
}

/// Concatenation from the SAR TLVs (a 1-byte reference is accepted too).
fn sar_concatenation(sm: &ShortMessage) -> Option<PartInfo> {
    let reference = match *sm.tlv(tag::SAR_MSG_REF_NUM)? {
        [high, low] => u16::from_be_bytes([high, low]),
        [reference] => u16::from(reference),
        _ => return None,
    };
    let &[total] = sm.tlv(tag::SAR_TOTAL_SEGMENTS)? else {
        return None;
    };
    let &[index] = sm.tlv(tag::SAR_SEGMENT_SEQNUM)? else {
        return None;
    };
    PartInfo::checked(reference, total, index)
}

/// A message's user data, split at the end of its header.
struct UserData<'a> {
    /// The header's information elements (without the length byte); empty without a header.
    header: &'a [u8],
    /// Octets the header takes, its length byte included (0 without a header).
    header_len: usize,
    /// What follows the header: the encoded text.
    body: &'a [u8],
}

/// The user data of a message: `message_payload` when `short_message` is
/// empty, else `short_message`; split after its header when esm_class says
/// there is one. A header longer than the data leaves no text.
fn user_data(sm: &ShortMessage) -> UserData<'_> {
    let data = match sm.tlv(tag::MESSAGE_PAYLOAD) {
        Some(payload) if sm.short_message.is_empty() => payload,
        _ => sm.short_message.as_slice(),
    };
    if sm.esm_class & ESM_UDHI == 0 {
        return UserData {
            header: &[],
            header_len: 0,
            body: data,
        };
    }
    match data.split_first() {
        Some((&udhl, rest)) if usize::from(udhl) <= rest.len() => {
            let (header, body) = rest.split_at(usize::from(udhl));
            UserData {
                header,
                header_len: 1 + header.len(),
                body,
            }
        }
        _ => UserData {
            header: &[],
            header_len: data.len(),
            body: &[],
        },
    }
}

/// The information elements of a user data header, in order, as
/// (identifier, value). Stops at an element that runs past the header.
fn information_elements(mut header: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        let (&id, rest) = header.split_first()?;
        let (&len, rest) = rest.split_first()?;
        if usize::from(len) > rest.len() {
            header = &[];
            return None;
        }
        let (value, rest) = rest.split_at(usize::from(len));
        header = rest;
        Some((id, value))
    })
}

/// Fill bits that align packed GSM-7 septets after a header of
/// `header_len` octets (the header takes a whole number of septets).
fn fill_bits(header_len: usize) -> usize {
    (7 - (header_len * 8) % 7) % 7
}

/// The alphabet of a message's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Alphabet {
    /// GSM 03.38 (packed or not, as the connection's default alphabet says).
    Gsm7,
    /// ISO-8859-1.
    Latin1,
    /// IA5 / ASCII.
    Ascii,
    /// UCS-2 / UTF-16BE.
    Ucs2,
}

/// Reads a data_coding: SMPP's own values 0x00–0x0F, then the GSM 03.38
/// data coding scheme groups (general data coding without compression,
/// message waiting indication, data coding / message class).
fn alphabet(dc: u8, default: DefaultAlphabet) -> Result<Alphabet, UnsupportedCoding> {
    let general = |bits: u8| match bits & 0x03 {
        0 => Ok(Alphabet::Gsm7),
        2 => Ok(Alphabet::Ucs2),
        // 8-bit data, reserved.
        _ => Err(UnsupportedCoding(dc)),
    };
    match dc {
        0x00 => Ok(match default {
            DefaultAlphabet::Gsm7Unpacked | DefaultAlphabet::Gsm7Packed => Alphabet::Gsm7,
            DefaultAlphabet::Latin1 => Alphabet::Latin1,
            DefaultAlphabet::Ascii => Alphabet::Ascii,
        }),
        0x01 => Ok(Alphabet::Ascii),
        0x03 => Ok(Alphabet::Latin1),
        0x08 => Ok(Alphabet::Ucs2),
        // General data coding (00xx) and automatic deletion (01xx) groups,
        // uncompressed (bit 5 clear): bits 3..2 pick the alphabet.
        0x10..=0x1f | 0x40..=0x5f => general(dc >> 2),
        // Message waiting indication, discard or store: GSM-7.
        0xc0..=0xdf => Ok(Alphabet::Gsm7),
        // Message waiting indication, store: UCS-2.
        0xe0..=0xef => Ok(Alphabet::Ucs2),
        // Data coding / message class: bit 2 clear is GSM-7, set is 8-bit data.
        0xf0..=0xff if dc & 0x04 == 0 => Ok(Alphabet::Gsm7),
        _ => Err(UnsupportedCoding(dc)),
    }
}

/// Decodes the text of a short message (from `message_payload` when
/// `short_message` is empty), after its user data header if esm_class
/// announces one. GSM-7 is read packed only when the connection's default
/// alphabet is [`DefaultAlphabet::Gsm7Packed`]; anything unreadable becomes
/// U+FFFD rather than an error or a panic. Binary and unknown codings are
/// [`UnsupportedCoding`].
pub fn decode_text(
    sm: &ShortMessage,
    default: DefaultAlphabet,
) -> Result<String, UnsupportedCoding> {
    let data = user_data(sm);
    Ok(match alphabet(sm.data_coding, default)? {
        Alphabet::Gsm7 if default == DefaultAlphabet::Gsm7Packed => {
            sms_text::gsm7_decode_packed(data.body, fill_bits(data.header_len))
        }
        Alphabet::Gsm7 => sms_text::gsm7_decode_unpacked(data.body),
        // IA5 has no use for C0 controls but CR/LF in a text; node-smpp (npm
        // `smpp`) sends GSM-7 septets under data_coding 1, where '@' is 0x00,
        // '$' 0x02 and '_' (a separator citizens type in codes) 0x11.
        Alphabet::Ascii
            if sm.data_coding == 0x01
                && data
                    .body
                    .iter()
                    .any(|&b| b < 0x20 && b != b'\n' && b != b'\r') =>
        {
            sms_text::gsm7_decode_unpacked(data.body)
        }
        Alphabet::Latin1 => sms_text::latin1_decode(data.body),
        Alphabet::Ascii => sms_text::ascii_decode(data.body),
        Alphabet::Ucs2 => sms_text::ucs2_decode(data.body),
    })
}

/// How a long reply is split on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LongMessageMode {
    /// Parts with a UDH concatenation element, 8-bit reference (`05 00 03 ref total index`).
    #[default]
    Udh8,
    /// Parts with a UDH concatenation element, 16-bit reference (`06 08 04 ref ref total index`).
    Udh16,
    /// Parts without a header, numbered by the `sar_*` TLVs.
    Sar,
    /// One PDU, the whole text in `message_payload`.
    Payload,
}

impl LongMessageMode {
    /// Every mode, for tests and fuzzing.
    pub const ALL: [LongMessageMode; 4] = [
        LongMessageMode::Udh8,
        LongMessageMode::Udh16,
        LongMessageMode::Sar,
        LongMessageMode::Payload,
    ];

    /// Octets of user data header each part carries.
    fn header_len(self) -> usize {
        match self {
            LongMessageMode::Udh8 => 6,
            LongMessageMode::Udh16 => 7,
            LongMessageMode::Sar | LongMessageMode::Payload => 0,
        }
    }
}

/// One PDU of an outgoing reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingPart {
    /// 0, or [`ESM_UDHI`] for a part that starts with a concatenation header.
    pub esm_class: u8,
    /// 0 (the default alphabet) or 8 (UCS-2).
    pub data_coding: u8,
    /// Header (if any) and encoded text; empty in [`LongMessageMode::Payload`].
    pub short_message: Vec<u8>,
    /// `sar_*` TLVs of a SAR part, or the `message_payload` TLV; to be sent
    /// with the PDU beside any TLVs of the caller's own.
    pub tlvs: Vec<Tlv>,
}

/// How the text of a reply is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// data_coding 0, one septet per octet.
    Gsm7Unpacked,
    /// data_coding 0, septets packed.
    Gsm7Packed,
    /// data_coding 0, one ISO-8859-1 (or ASCII) octet per character.
    Octets,
    /// data_coding 8.
    Ucs2,
}

impl Form {
    /// GSM-7 when the text has a GSM-7 form (so a reply costs the segments
    /// [`sms_text::segment_info`] counted), written as the connection's
    /// default alphabet asks; UCS-2 otherwise, or when that alphabet cannot
    /// write the text.
    fn choose(text: &str, alphabet: DefaultAlphabet) -> Form {
        if !sms_text::is_gsm7(text) {
            return Form::Ucs2;
        }
        match alphabet {
            DefaultAlphabet::Gsm7Unpacked => Form::Gsm7Unpacked,
            DefaultAlphabet::Gsm7Packed => Form::Gsm7Packed,
            DefaultAlphabet::Latin1 if sms_text::latin1_encode(text).is_some() => Form::Octets,
            DefaultAlphabet::Ascii if text.is_ascii() => Form::Octets,
            DefaultAlphabet::Latin1 | DefaultAlphabet::Ascii => Form::Ucs2,
        }
    }

    fn data_coding(self) -> u8 {
        match self {
            Form::Ucs2 => 0x08,
            Form::Gsm7Unpacked | Form::Gsm7Packed | Form::Octets => 0x00,
        }
    }

    /// Splits `text` into pieces that fit one SMS each, behind a header of
    /// `header_len` octets when there is more than one.
    fn split(self, text: &str, header_len: usize) -> Vec<String> {
        let room = MAX_USER_DATA - header_len;
        let fill = fill_bits(header_len);
        let septets = Capacity {
            single: GSM7_SINGLE,
            part: (room * 8 - fill) / 7,
        };
        match self {
            Form::Gsm7Unpacked => sms_text::split_gsm7_within(text, septets),
            Form::Gsm7Packed => sms_text::split_gsm7_packed_within(text, septets, fill),
            Form::Octets => sms_text::split_octets_within(
                text,
                Capacity {
                    single: MAX_USER_DATA,
                    part: room,
                },
            ),
            Form::Ucs2 => sms_text::split_ucs2_within(
                text,
                Capacity {
                    single: UCS2_SINGLE,
                    part: room / 2,
                },
            ),
        }
    }

    /// The longest beginning of `text` one `message_payload` TLV holds (all
    /// of it, for any reply this gateway writes).
    fn payload_piece(self, text: &str) -> String {
        let within = |units: usize| Capacity {
            single: units,
            part: units,
        };
        let pieces = match self {
            Form::Gsm7Unpacked => sms_text::split_gsm7_within(text, within(MAX_PAYLOAD)),
            Form::Gsm7Packed => {
                sms_text::split_gsm7_packed_within(text, within(MAX_PAYLOAD * 8 / 7), 0)
            }
            Form::Octets => sms_text::split_octets_within(text, within(MAX_PAYLOAD)),
            Form::Ucs2 => sms_text::split_ucs2_within(text, within(MAX_PAYLOAD / 2)),
        };
        pieces.into_iter().next().unwrap_or_default()
    }

    /// Encodes one piece, packed GSM-7 after `fill` fill bits.
    fn encode(self, piece: &str, fill: usize) -> Vec<u8> {
        match self {
            Form::Gsm7Unpacked => sms_text::gsm7_encode_unpacked(piece),
            Form::Gsm7Packed => sms_text::gsm7_encode_packed(piece, fill),
            // Chosen only for texts that fit ISO-8859-1 (ASCII is a subset).
            Form::Octets => sms_text::latin1_encode(piece).unwrap_or_default(),
            Form::Ucs2 => sms_text::ucs2_encode(piece),
        }
    }
}

/// Encodes a reply: GSM-7 (data_coding 0, written as `alphabet` says) when
/// the text allows it, UCS-2 (data_coding 8) otherwise. A text that does
/// not fit one SMS becomes parts of at most 140 octets on the air
/// interface, never cutting a GSM-7 escape pair or a UTF-16 surrogate pair,
/// numbered as `mode` says with `reference` (its low byte for
/// [`LongMessageMode::Udh8`]); in [`LongMessageMode::Payload`] it is one
/// PDU whatever its length. At most 255 parts are sent (the numbering's
/// limit; a reply is never near it).
pub fn encode_reply(
    text: &str,
    reference: u16,
    mode: LongMessageMode,
    alphabet: DefaultAlphabet,
) -> Vec<OutgoingPart> {
    let form = Form::choose(text, alphabet);
    let data_coding = form.data_coding();
    if mode == LongMessageMode::Payload {
        return vec![OutgoingPart {
            esm_class: 0,
            data_coding,
            short_message: Vec::new(),
            tlvs: vec![Tlv {
                tag: tag::MESSAGE_PAYLOAD,
                value: form.encode(&form.payload_piece(text), 0),
            }],
        }];
    }
    let header_len = mode.header_len();
    let pieces = form.split(text, header_len);
    if pieces.len() <= 1 {
        let piece = pieces.into_iter().next().unwrap_or_default();
        return vec![OutgoingPart {
            esm_class: 0,
            data_coding,
            short_message: form.encode(&piece, 0),
            tlvs: Vec::new(),
        }];
    }
    let total = pieces.len().min(usize::from(u8::MAX)) as u8;
    let [ref_high, ref_low] = reference.to_be_bytes();
    pieces
        .iter()
        .take(usize::from(total))
        .zip(1..=total)
        .map(|(piece, index)| {
            let body = form.encode(piece, fill_bits(header_len));
            match mode {
                LongMessageMode::Udh8 | LongMessageMode::Udh16 => {
                    let mut short_message = if mode == LongMessageMode::Udh8 {
                        vec![0x05, IE_CONCAT_8, 0x03, ref_low, total, index]
                    } else {
                        vec![0x06, IE_CONCAT_16, 0x04, ref_high, ref_low, total, index]
                    };
                    short_message.extend_from_slice(&body);
                    OutgoingPart {
                        esm_class: ESM_UDHI,
                        data_coding,
                        short_message,
                        tlvs: Vec::new(),
                    }
                }
                LongMessageMode::Sar | LongMessageMode::Payload => OutgoingPart {
                    esm_class: 0,
                    data_coding,
                    short_message: body,
                    tlvs: vec![
                        Tlv {
                            tag: tag::SAR_MSG_REF_NUM,
                            value: reference.to_be_bytes().to_vec(),
                        },
                        Tlv {
                            tag: tag::SAR_TOTAL_SEGMENTS,
                            value: vec![total],
                        },
                        Tlv {
                            tag: tag::SAR_SEGMENT_SEQNUM,
                            value: vec![index],
                        },
                    ],
                },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sm(data_coding: u8, esm_class: u8, short_message: Vec<u8>) -> ShortMessage {
        ShortMessage {
            data_coding,
            esm_class,
            short_message,
            ..ShortMessage::default()
        }
    }

    fn tlv(tag: u16, value: &[u8]) -> Tlv {
        Tlv {
            tag,
            value: value.to_vec(),
        }
    }

    /// The message a peer would receive for `part`.
    fn received(part: &OutgoingPart) -> ShortMessage {
        ShortMessage {
            tlvs: part.tlvs.clone(),
            ..sm(part.data_coding, part.esm_class, part.short_message.clone())
        }
    }

    /// Decodes the parts of a reply and joins them in [`PartInfo`] order.
    fn reassemble(parts: &[OutgoingPart], alphabet: DefaultAlphabet) -> String {
        let mut pieces: Vec<(u8, String)> = parts
            .iter()
            .map(|p| {
                let m = received(p);
                let index = concatenation(&m).map_or(1, |info| info.index);
                (index, decode_text(&m, alphabet).unwrap())
            })
            .collect();
        pieces.sort_by_key(|(index, _)| *index);
        pieces.into_iter().map(|(_, text)| text).collect()
    }

    #[test]
    fn coding_1_with_gsm7_septets_as_node_smpp_sends_it_decodes() {
        let d = DefaultAlphabet::default();
        // node-smpp's "TC 000_12 @$": '_' 0x11, '@' 0x00, '$' 0x02.
        let septets = b"TC 000\x1112 \x00\x02".to_vec();
        assert_eq!(decode_text(&sm(1, 0, septets), d).unwrap(), "TC 000_12 @$");
        assert_eq!(
            decode_text(&sm(1, 0, b"TC 000_12 @$\r\n".to_vec()), d).unwrap(),
            "TC 000_12 @$\r\n",
            "plain IA5 is still IA5"
        );
    }

    #[test]
    fn codings_0_1_3_8_decode() {
        let d = DefaultAlphabet::default();
        assert_eq!(
            decode_text(&sm(0, 0, b"TC 000".to_vec()), d).unwrap(),
            "TC 000"
        );
        assert_eq!(decode_text(&sm(0, 0, vec![0x11]), d).unwrap(), "_");
        assert_eq!(decode_text(&sm(1, 0, b"hs 1".to_vec()), d).unwrap(), "hs 1");
        assert_eq!(
            decode_text(&sm(1, 0, vec![b'a', 0xe9]), d).unwrap(),
            "a\u{fffd}"
        );
        assert_eq!(decode_text(&sm(3, 0, vec![0xe9]), d).unwrap(), "é");
        assert_eq!(
            decode_text(&sm(8, 0, sms_text::ucs2_encode("tra cứu hồ sơ")), d).unwrap(),
            "tra cứu hồ sơ"
        );
        assert_eq!(
            decode_text(&sm(0, 0, vec![0xe9]), DefaultAlphabet::Latin1).unwrap(),
            "é"
        );
        // '@' and '_' are ASCII on an IA5 SMSC, '¡' and '§' in GSM-7.
        assert_eq!(
            decode_text(&sm(0, 0, b"a@b_".to_vec()), DefaultAlphabet::Ascii).unwrap(),
            "a@b_"
        );
        assert_eq!(decode_text(&sm(0, 0, b"a@b_".to_vec()), d).unwrap(), "a¡b§");
        for binary in [0x02, 0x04, 0x05, 0x06, 0x09, 0x0e] {
            assert_eq!(
                decode_text(&sm(binary, 0, vec![1]), d),
                Err(UnsupportedCoding(binary))
            );
        }
    }

    #[test]
    fn gsm7_extension_table_decodes() {
        let mut data = Vec::new();
        for code in [0x14, 0x28, 0x29, 0x2f, 0x3c, 0x3d, 0x3e, 0x40, 0x65, 0x0a] {
            data.extend([0x1b, code]);
        }
        assert_eq!(
            decode_text(&sm(0, 0, data), DefaultAlphabet::default()).unwrap(),
            "^{}\\[~]|€\u{0c}"
        );
        // An unknown extension reads as the basic character; ESC ESC and a
        // lone final ESC as spaces.
        assert_eq!(
            decode_text(
                &sm(0, 0, vec![0x1b, 0x41, 0x1b, 0x1b, 0x42, 0x1b]),
                DefaultAlphabet::default()
            )
            .unwrap(),
            "A B "
        );
    }

    #[test]
    fn ucs2_surrogates_and_odd_bytes_never_panic() {
        let d = DefaultAlphabet::default();
        assert_eq!(
            decode_text(&sm(8, 0, vec![0xd8, 0x3d, 0xde, 0x00]), d).unwrap(),
            "😀"
        );
        assert_eq!(
            decode_text(&sm(8, 0, vec![0x00, 0x41, 0xd8, 0x3d]), d).unwrap(),
            "A\u{fffd}"
        );
        assert_eq!(
            decode_text(&sm(8, 0, vec![0xde, 0x00, 0x00, 0x42]), d).unwrap(),
            "\u{fffd}B"
        );
        assert_eq!(
            decode_text(&sm(8, 0, vec![0x00, 0x41, 0x00]), d).unwrap(),
            "A\u{fffd}"
        );
    }

    #[test]
    fn dcs_groups_decode() {
        let d = DefaultAlphabet::default();
        let ucs2 = sms_text::ucs2_encode("hồ sơ");
        for dc in [0x10, 0x11, 0x13, 0x40, 0x51, 0xc0, 0xd8, 0xf0, 0xf1, 0xf3] {
            assert_eq!(
                decode_text(&sm(dc, 0, b"HS 1".to_vec()), d).unwrap(),
                "HS 1",
                "{dc:#x}"
            );
        }
        for dc in [0x18, 0x19, 0x48, 0xe0, 0xe8] {
            assert_eq!(
                decode_text(&sm(dc, 0, ucs2.clone()), d).unwrap(),
                "hồ sơ",
                "{dc:#x}"
            );
        }
        // 8-bit data, compressed, reserved.
        for dc in [0x14, 0x1c, 0x20, 0x38, 0x60, 0x80, 0xb3, 0xf4, 0xf7] {
            assert_eq!(
                decode_text(&sm(dc, 0, vec![1]), d),
                Err(UnsupportedCoding(dc))
            );
        }
        // A DCS group's GSM-7 is packed on a packed connection.
        assert_eq!(
            decode_text(
                &sm(0xf1, 0, vec![0xe8, 0x32, 0x9b, 0xfd, 0x06]),
                DefaultAlphabet::Gsm7Packed
            )
            .unwrap(),
            "hello"
        );
    }

    #[test]
    fn packed_gsm7_decodes() {
        let packed = vec![0xe8, 0x32, 0x9b, 0xfd, 0x06];
        assert_eq!(
            decode_text(&sm(0, 0, packed), DefaultAlphabet::Gsm7Packed).unwrap(),
            "hello"
        );
    }

    #[test]
    fn packed_gsm7_after_a_udh_skips_the_fill_bit() {
        // "hello" behind a 6-octet header: one fill bit, then the septets
        // (worked out by hand from TS 23.038 §6.1.2.1).
        let mut data = vec![0x05, 0x00, 0x03, 0xcc, 0x02, 0x01];
        data.extend([0xd0, 0x65, 0x36, 0xfb, 0x0d]);
        let m = sm(0, ESM_UDHI, data);
        assert_eq!(
            decode_text(&m, DefaultAlphabet::Gsm7Packed).unwrap(),
            "hello"
        );
        assert_eq!(
            concatenation(&m),
            Some(PartInfo {
                reference: 0xcc,
                total: 2,
                index: 1
            })
        );
        // The encoder writes the same bytes.
        let text = "hello".repeat(40);
        let parts = encode_reply(
            &text,
            0xcc,
            LongMessageMode::Udh8,
            DefaultAlphabet::Gsm7Packed,
        );
        assert_eq!(
            &parts[1].short_message[..6],
            &[0x05, 0x00, 0x03, 0xcc, 0x02, 0x02]
        );
        let first = sms_text::gsm7_encode_packed("hello", 1);
        assert_eq!(first, vec![0xd0, 0x65, 0x36, 0xfb, 0x0d]);
    }

    #[test]
    fn packed_padding_is_not_read_as_text() {
        // Seven septets leave 7 spare bits: a sender that zero-fills them
        // and one that puts a CR there both mean "1234567".
        let zero = sms_text::gsm7_pack(b"1234567", 0);
        let mut cr = zero.clone();
        cr[6] |= 0x0d << 1;
        for data in [zero, cr] {
            assert_eq!(
                decode_text(&sm(0, 0, data), DefaultAlphabet::Gsm7Packed).unwrap(),
                "1234567"
            );
        }
        // A real final '@' or CR on a byte boundary survives the trip.
        for text in ["1234567@", "1234567\r", "123456@", "@"] {
            let parts = encode_reply(text, 1, LongMessageMode::Udh8, DefaultAlphabet::Gsm7Packed);
            assert_eq!(reassemble(&parts, DefaultAlphabet::Gsm7Packed), text);
        }
    }

    #[test]
    fn udh_is_parsed_as_information_elements() {
        // Unknown IE 0x24 (national language single shift), then a 16-bit
        // concatenation IE, then an unknown IE 0x70 of length 0.
        let mut data = vec![
            0x0b, 0x24, 0x01, 0x00, 0x08, 0x04, 0x12, 0x34, 0x03, 0x02, 0x70, 0x00,
        ];
        data.extend(sms_text::ucs2_encode("mã"));
        let m = sm(8, ESM_UDHI, data);
        assert_eq!(decode_text(&m, DefaultAlphabet::default()).unwrap(), "mã");
        assert_eq!(
            concatenation(&m),
            Some(PartInfo {
                reference: 0x1234,
                total: 3,
                index: 2
            })
        );
        // A header longer than the data leaves no text and no part info.
        let broken = sm(0, ESM_UDHI, vec![0x09, 0x00, 0x03, 1, 2, 1]);
        assert_eq!(
            decode_text(&broken, DefaultAlphabet::default()).unwrap(),
            ""
        );
        assert_eq!(concatenation(&broken), None);
        // An IE that overruns the header ends the element list.
        let overrun = sm(0, ESM_UDHI, vec![0x05, 0x24, 0x09, 0x00, 0x03, 1, b'A']);
        assert_eq!(concatenation(&overrun), None);
        assert_eq!(
            decode_text(&overrun, DefaultAlphabet::default()).unwrap(),
            "A"
        );
    }

    #[test]
    fn udh_is_stripped_and_payload_is_read() {
        let mut data = vec![0x05, 0x00, 0x03, 0x01, 0x02, 0x01];
        data.extend(sms_text::ucs2_encode("mã"));
        assert_eq!(
            decode_text(&sm(8, ESM_UDHI, data), DefaultAlphabet::default()).unwrap(),
            "mã"
        );
        let mut with_payload = sm(0, 0, Vec::new());
        with_payload.tlvs.push(tlv(tag::MESSAGE_PAYLOAD, b"TC 1"));
        assert_eq!(
            decode_text(&with_payload, DefaultAlphabet::default()).unwrap(),
            "TC 1"
        );
        // short_message wins when both are there.
        with_payload.short_message = b"TC 2".to_vec();
        assert_eq!(
            decode_text(&with_payload, DefaultAlphabet::default()).unwrap(),
            "TC 2"
        );
    }

    #[test]
    fn concatenation_from_sar_tlvs_and_nonsense() {
        let mut m = sm(0, 0, b"abc".to_vec());
        assert_eq!(concatenation(&m), None);
        m.tlvs = vec![
            tlv(tag::SAR_MSG_REF_NUM, &[0x01, 0x02]),
            tlv(tag::SAR_TOTAL_SEGMENTS, &[3]),
            tlv(tag::SAR_SEGMENT_SEQNUM, &[3]),
        ];
        assert_eq!(
            concatenation(&m),
            Some(PartInfo {
                reference: 0x0102,
                total: 3,
                index: 3
            })
        );
        m.tlvs[2].value = vec![4];
        assert_eq!(concatenation(&m), None);
        m.tlvs[2].value = vec![0];
        assert_eq!(concatenation(&m), None);
        m.tlvs[1].value = vec![0];
        assert_eq!(concatenation(&m), None);
        for nonsense in [
            [0x05, 0x00, 0x03, 7, 0, 0],
            [0x05, 0x00, 0x03, 7, 2, 0],
            [0x05, 0x00, 0x03, 7, 2, 3],
        ] {
            assert_eq!(concatenation(&sm(0, ESM_UDHI, nonsense.to_vec())), None);
        }
        // Without the UDHI bit the same bytes are text, not a header.
        assert_eq!(
            concatenation(&sm(0, 0, vec![0x05, 0x00, 0x03, 7, 2, 1])),
            None
        );
    }

    #[test]
    fn long_ucs2_reply_becomes_two_parts() {
        let text = "ư".repeat(100);
        let parts = encode_reply(&text, 9, LongMessageMode::Udh8, DefaultAlphabet::default());
        assert_eq!(parts.len(), 2);
        for (i, p) in parts.iter().enumerate() {
            assert_eq!(p.esm_class, ESM_UDHI);
            assert_eq!(p.data_coding, 8);
            assert_eq!(&p.short_message[..6], &[5, 0, 3, 9, 2, i as u8 + 1]);
            assert!(p.short_message.len() <= 140);
            assert!(p.tlvs.is_empty());
        }
        assert_eq!(reassemble(&parts, DefaultAlphabet::default()), text);
    }

    #[test]
    fn short_gsm7_reply_is_one_plain_part() {
        for mode in LongMessageMode::ALL {
            let parts = encode_reply(
                "HS 000.00.12.H58-240315-0007: Dang xu ly",
                1,
                mode,
                DefaultAlphabet::default(),
            );
            assert_eq!(parts.len(), 1);
            assert_eq!(parts[0].esm_class, 0);
            assert_eq!(parts[0].data_coding, 0);
        }
    }

    #[test]
    fn every_mode_numbers_its_parts() {
        let text = "a".repeat(200);
        let d = DefaultAlphabet::default();

        let udh16 = encode_reply(&text, 0xabcd, LongMessageMode::Udh16, d);
        assert_eq!(udh16.len(), 2);
        assert_eq!(&udh16[1].short_message[..7], &[6, 8, 4, 0xab, 0xcd, 2, 2]);
        // 152 septets behind a 7-octet header.
        assert_eq!(udh16[0].short_message.len(), 7 + 152);

        let udh8 = encode_reply(&text, 0xabcd, LongMessageMode::Udh8, d);
        assert_eq!(&udh8[0].short_message[..6], &[5, 0, 3, 0xcd, 2, 1]);
        assert_eq!(udh8[0].short_message.len(), 6 + 153);

        let sar = encode_reply(&"a".repeat(400), 0xabcd, LongMessageMode::Sar, d);
        assert_eq!(sar.len(), 3);
        assert_eq!(sar[0].short_message.len(), 160);
        assert_eq!(sar[0].esm_class, 0);
        assert_eq!(
            sar[2].tlvs,
            vec![
                tlv(tag::SAR_MSG_REF_NUM, &[0xab, 0xcd]),
                tlv(tag::SAR_TOTAL_SEGMENTS, &[3]),
                tlv(tag::SAR_SEGMENT_SEQNUM, &[3]),
            ]
        );

        let payload = encode_reply(&text, 0xabcd, LongMessageMode::Payload, d);
        assert_eq!(payload.len(), 1);
        assert!(payload[0].short_message.is_empty());
        assert_eq!(
            payload[0].tlvs,
            vec![tlv(tag::MESSAGE_PAYLOAD, text.as_bytes())]
        );
    }

    #[test]
    fn the_default_alphabet_picks_the_bytes_of_data_coding_0() {
        let packed = encode_reply(
            "hello",
            1,
            LongMessageMode::Udh8,
            DefaultAlphabet::Gsm7Packed,
        );
        assert_eq!(packed[0].short_message, vec![0xe8, 0x32, 0x9b, 0xfd, 0x06]);
        let latin1 = encode_reply("café @", 1, LongMessageMode::Udh8, DefaultAlphabet::Latin1);
        assert_eq!(
            (latin1[0].data_coding, &latin1[0].short_message[..]),
            (0, &b"caf\xe9 @"[..])
        );
        // '€' is GSM-7 but not Latin-1; 'é' is GSM-7 but not ASCII.
        let euro = encode_reply("5 €", 1, LongMessageMode::Udh8, DefaultAlphabet::Latin1);
        assert_eq!(euro[0].data_coding, 8);
        let ascii = encode_reply("café", 1, LongMessageMode::Udh8, DefaultAlphabet::Ascii);
        assert_eq!(ascii[0].data_coding, 8);
        let ascii = encode_reply("a@b", 1, LongMessageMode::Udh8, DefaultAlphabet::Ascii);
        assert_eq!(ascii[0].short_message, b"a@b".to_vec());
        // 141 octets do not fit one 8-bit message; 134 per part behind an 8-bit UDH.
        let long = encode_reply(
            &"x".repeat(141),
            1,
            LongMessageMode::Udh8,
            DefaultAlphabet::Latin1,
        );
        assert_eq!(long.len(), 2);
        assert_eq!(long[0].short_message.len(), 140);
    }

    #[test]
    fn escape_pairs_and_surrogate_pairs_stay_whole() {
        let text = format!("{}€{}", "a".repeat(152), "b".repeat(20));
        let parts = encode_reply(&text, 1, LongMessageMode::Udh8, DefaultAlphabet::default());
        assert_eq!(parts[0].short_message.len(), 6 + 152);
        assert_eq!(&parts[1].short_message[6..8], &[0x1b, 0x65]);

        let text = format!("{}😀{}", "ư".repeat(66), "ư".repeat(10));
        let parts = encode_reply(&text, 1, LongMessageMode::Udh8, DefaultAlphabet::default());
        assert_eq!(parts[0].short_message.len(), 6 + 132);
        assert_eq!(&parts[1].short_message[6..10], &[0xd8, 0x3d, 0xde, 0x00]);
    }

    /// Octets a part takes on the air interface (unpacked GSM-7 is packed by the SMSC).
    fn air_octets(part: &OutgoingPart, alphabet: DefaultAlphabet) -> usize {
        if part.data_coding == 0 && alphabet == DefaultAlphabet::Gsm7Unpacked {
            let header = concatenation_header_len(part);
            let septets = part.short_message.len() - header;
            header + (fill_bits(header) + 7 * septets).div_ceil(8)
        } else {
            part.short_message.len()
        }
    }

    fn concatenation_header_len(part: &OutgoingPart) -> usize {
        if part.esm_class & ESM_UDHI != 0 {
            1 + usize::from(part.short_message[0])
        } else {
            0
        }
    }

    /// The septets of a GSM-7 part, padding removed as a reader removes it.
    fn septets(part: &OutgoingPart, alphabet: DefaultAlphabet) -> Vec<u8> {
        let header = concatenation_header_len(part);
        let body = &part.short_message[header..];
        if alphabet == DefaultAlphabet::Gsm7Packed {
            let mut septets = sms_text::gsm7_unpack(body, fill_bits(header));
            if (body.len() * 8 - fill_bits(header)).is_multiple_of(7)
                && matches!(septets.last(), Some(0) | Some(0x0d))
            {
                septets.pop();
            }
            septets
        } else {
            body.to_vec()
        }
    }

    /// Texts that exercise every form: anything, GSM-7 with its extension
    /// table and padding look-alikes, and GSM-7 that is also Latin-1.
    fn any_text() -> impl Strategy<Value = String> {
        prop_oneof![
            "\\PC{0,400}",
            "[a-zA-Z0-9 @£$¥èéùìòÇ\n\rØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ!\"#¤%&'()*+,\\-./:;<=>?¡ÄÖÑÜ§¿äöñüà€{}\\[\\]~|^\\\\\u{0c}]{0,500}",
            "[a-z@\r\n é£Ü€ư😀]{0,500}",
            "[A-Z0-9 @\r.\\-éà]{0,450}",
        ]
    }

    proptest! {
        #[test]
        fn every_reply_round_trips_in_every_mode_and_alphabet(text in any_text(), reference in any::<u16>()) {
            for mode in LongMessageMode::ALL {
                for alphabet in DefaultAlphabet::ALL {
                    let parts = encode_reply(&text, reference, mode, alphabet);
                    prop_assert_eq!(&reassemble(&parts, alphabet), &text, "{:?} {:?}", mode, alphabet);
                    if mode == LongMessageMode::Payload {
                        prop_assert_eq!(parts.len(), 1);
                        continue;
                    }
                    let total = parts.len();
                    for (i, part) in parts.iter().enumerate() {
                        prop_assert!(air_octets(part, alphabet) <= MAX_USER_DATA, "{:?} {:?} part {}", mode, alphabet, i);
                        prop_assert!(part.short_message.len() <= 160);
                        if part.data_coding == 0 && matches!(alphabet, DefaultAlphabet::Gsm7Unpacked | DefaultAlphabet::Gsm7Packed) {
                            prop_assert_ne!(septets(part, alphabet).last().copied(), Some(0x1b));
                        }
                        if part.data_coding == 8 {
                            let header = concatenation_header_len(part);
                            let body = &part.short_message[header..];
                            prop_assert!(body.len() % 2 == 0);
                            if let [.., high, low] = body {
                                prop_assert!(!(0xd800..=0xdbff).contains(&u16::from_be_bytes([*high, *low])));
                            }
                        }
                        let info = concatenation(&received(part));
                        if total == 1 {
                            prop_assert_eq!(info, None);
                        } else {
                            let reference = if mode == LongMessageMode::Udh8 { reference & 0xff } else { reference };
                            prop_assert_eq!(info, Some(PartInfo { reference, total: total as u8, index: i as u8 + 1 }));
                        }
                    }
                }
            }
        }

        #[test]
        fn decode_never_panics(data in proptest::collection::vec(any::<u8>(), 0..254), dc in any::<u8>(), esm in any::<u8>(),
                               payload in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..400))) {
            let mut m = sm(dc, esm, data);
            if let Some(payload) = payload {
                m.tlvs.push(Tlv { tag: tag::MESSAGE_PAYLOAD, value: payload });
            }
            for alphabet in DefaultAlphabet::ALL {
                let _ = decode_text(&m, alphabet);
            }
            let _ = concatenation(&m);
        }
    }
}
