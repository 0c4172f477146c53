//! Text on the SMPP wire: decoding a short message by its data_coding (and
//! stripping a user data header), and encoding a reply into one or more
//! short messages with concatenation headers.

use super::pdu::{tag, ShortMessage};
use crate::sms_text::{self, Encoding};

/// esm_class bit: short_message starts with a user data header.
pub const ESM_UDHI: u8 = 0x40;
/// esm_class message-type bits (2–5).
const ESM_TYPE_MASK: u8 = 0x3c;

/// How a connection reads data_coding 0 (the SMSC default alphabet).
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
}

/// How a long reply is split on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LongMessageMode {
    /// Parts with a user data header, 8-bit reference.
    #[default]
    Udh8,
    /// Parts with a user data header, 16-bit reference.
    Udh16,
    /// Parts numbered with the sar_* TLVs.
    Sar,
    /// One PDU carrying the whole text in message_payload.
    Payload,
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

/// The user data of a message: `message_payload` when present, else
/// `short_message`, without its user data header.
fn user_data(sm: &ShortMessage) -> (&[u8], usize) {
    let data = match sm.tlv(tag::MESSAGE_PAYLOAD) {
        Some(payload) if sm.short_message.is_empty() => payload,
        _ => sm.short_message.as_slice(),
    };
    if sm.esm_class & ESM_UDHI != 0 {
        if let Some(&udhl) = data.first() {
            let header = 1 + udhl as usize;
            if header <= data.len() {
                return (&data[header..], header);
            }
        }
        return (&[], data.len());
    }
    (data, 0)
}

/// Decodes the text of a short message.
pub fn decode_text(
    sm: &ShortMessage,
    default: DefaultAlphabet,
) -> Result<String, UnsupportedCoding> {
    let (data, header_len) = user_data(sm);
    let dc = sm.data_coding;
    let gsm7 = |data: &[u8]| match default {
        DefaultAlphabet::Gsm7Packed => {
            // Septets start after the header and its fill bits.
            let skip = (7 - (header_len * 8) % 7) % 7;
            let mut septets = sms_text::gsm7_unpack(data, skip);
            // A trailing zero septet from padding is not a character.
            if septets.last() == Some(&0) && !(data.len() * 8 - skip).is_multiple_of(7) {
                septets.pop();
            }
            sms_text::gsm7_decode_unpacked(&septets)
        }
        _ => sms_text::gsm7_decode_unpacked(data),
    };
    match dc {
        0x00 => Ok(match default {
            DefaultAlphabet::Latin1 => sms_text::latin1_decode(data),
            _ => gsm7(data),
        }),
        // IA5 has no use for C0 controls but CR/LF in a text; node-smpp (npm
        // `smpp`) sends GSM-7 septets under data_coding 1, where '@' is 0x00,
        // '$' 0x02 and '_' (a separator citizens type in codes) 0x11.
        0x01 if data.iter().any(|&b| b < 0x20 && b != b'\n' && b != b'\r') => {
            Ok(sms_text::gsm7_decode_unpacked(data))
        }
        0x01 => Ok(data.iter().map(|&b| char::from(b & 0x7f)).collect()),
        0x03 => Ok(sms_text::latin1_decode(data)),
        0x08 => Ok(sms_text::ucs2_decode(data)),
        // General data coding group 00xx: bits 3..2 pick the alphabet.
        0x10..=0x1f => match (dc >> 2) & 0x03 {
            0 => Ok(sms_text::gsm7_decode_unpacked(data)),
            2 => Ok(sms_text::ucs2_decode(data)),
            _ => Err(UnsupportedCoding(dc)),
        },
        // Data coding / message class group: bit 2 set = 8-bit data.
        0xf0..=0xff if dc & 0x04 == 0 => Ok(sms_text::gsm7_decode_unpacked(data)),
        _ => Err(UnsupportedCoding(dc)),
    }
}

/// One short message of an outgoing reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingPart {
    /// 0, or [`ESM_UDHI`] for a concatenated part.
    pub esm_class: u8,
    /// 0 (GSM-7, unpacked) or 8 (UCS-2).
    pub data_coding: u8,
    /// Header (if any) and encoded text.
    pub short_message: Vec<u8>,
    /// TLVs the part carries (SAR numbering, message_payload).
    pub tlvs: Vec<super::pdu::Tlv>,
}

/// Encodes a reply: GSM-7 when the text allows it, UCS-2 otherwise; longer
/// texts as concatenated parts with an 8-bit reference (`reference`).
pub fn encode_reply(text: &str, reference: u8) -> Vec<OutgoingPart> {
    let info = sms_text::segment_info(text);
    let (data_coding, parts): (u8, Vec<Vec<u8>>) = match info.encoding {
        Encoding::Gsm7 => (
            0x00,
            sms_text::split_gsm7(text)
                .iter()
                .map(|p| sms_text::gsm7_encode_unpacked(p))
                .collect(),
        ),
        Encoding::Ucs2 => (
            0x08,
            sms_text::split_ucs2(text)
                .iter()
                .map(|p| sms_text::ucs2_encode(p))
                .collect(),
        ),
    };
    if parts.len() == 1 {
        return vec![OutgoingPart {
            esm_class: 0,
            data_coding,
            short_message: parts.into_iter().next().unwrap_or_default(),
            tlvs: Vec::new(),
        }];
    }
    let total = parts.len().min(255) as u8;
    parts
        .into_iter()
        .take(255)
        .enumerate()
        .map(|(i, body)| {
            let mut short_message = vec![0x05, 0x00, 0x03, reference, total, i as u8 + 1];
            short_message.extend_from_slice(&body);
            OutgoingPart {
                esm_class: ESM_UDHI,
                data_coding,
                short_message,
                tlvs: Vec::new(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smpp::pdu::Tlv;
    use proptest::prelude::*;

    fn sm(data_coding: u8, esm_class: u8, short_message: Vec<u8>) -> ShortMessage {
        ShortMessage {
            data_coding,
            esm_class,
            short_message,
            ..ShortMessage::default()
        }
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
        assert_eq!(decode_text(&sm(3, 0, vec![0xe9]), d).unwrap(), "é");
        assert_eq!(
            decode_text(&sm(8, 0, sms_text::ucs2_encode("tra cứu hồ sơ")), d).unwrap(),
            "tra cứu hồ sơ"
        );
        assert_eq!(
            decode_text(&sm(0, 0, vec![0xe9]), DefaultAlphabet::Latin1).unwrap(),
            "é"
        );
        assert_eq!(
            decode_text(&sm(4, 0, vec![1]), d),
            Err(UnsupportedCoding(4))
        );
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
    fn packed_gsm7_decodes() {
        let packed = vec![0xe8, 0x32, 0x9b, 0xfd, 0x06];
        assert_eq!(
            decode_text(&sm(0, 0, packed), DefaultAlphabet::Gsm7Packed).unwrap(),
            "hello"
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
        with_payload.tlvs.push(Tlv {
            tag: tag::MESSAGE_PAYLOAD,
            value: b"TC 1".to_vec(),
        });
        assert_eq!(
            decode_text(&with_payload, DefaultAlphabet::default()).unwrap(),
            "TC 1"
        );
    }

    #[test]
    fn long_ucs2_reply_becomes_two_parts() {
        let text = "ư".repeat(100);
        let parts = encode_reply(&text, 9);
        assert_eq!(parts.len(), 2);
        for (i, p) in parts.iter().enumerate() {
            assert_eq!(p.esm_class, ESM_UDHI);
            assert_eq!(p.data_coding, 8);
            assert_eq!(&p.short_message[..6], &[5, 0, 3, 9, 2, i as u8 + 1]);
            assert!(p.short_message.len() <= 140);
        }
        let joined: String = parts
            .iter()
            .map(|p| {
                decode_text(
                    &sm(8, ESM_UDHI, p.short_message.clone()),
                    DefaultAlphabet::default(),
                )
                .unwrap()
            })
            .collect();
        assert_eq!(joined, text);
    }

    #[test]
    fn short_gsm7_reply_is_one_plain_part() {
        let parts = encode_reply("HS 000.00.12.H58-240315-0007: Dang xu ly", 1);
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].esm_class, 0);
        assert_eq!(parts[0].data_coding, 0);
    }

    proptest! {
        #[test]
        fn any_reply_round_trips_through_parts(text in "\\PC{0,500}", reference in any::<u8>()) {
            let parts = encode_reply(&text, reference);
            let joined: String = parts.iter().map(|p| {
                decode_text(&sm(p.data_coding, p.esm_class, p.short_message.clone()), DefaultAlphabet::default()).unwrap()
            }).collect();
            prop_assert_eq!(joined, text);
            for p in &parts {
                prop_assert!(p.short_message.len() <= 160);
            }
        }

        #[test]
        fn decode_never_panics(data in proptest::collection::vec(any::<u8>(), 0..254), dc in any::<u8>(), esm in any::<u8>()) {
            for alphabet in [DefaultAlphabet::Gsm7Unpacked, DefaultAlphabet::Gsm7Packed, DefaultAlphabet::Latin1] {
                let _ = decode_text(&sm(dc, esm, data.clone()), alphabet);
            }
        }
    }
}
