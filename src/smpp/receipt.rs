//! Delivery receipts over SMPP, without I/O: reading the report an SMSC
//! delivers about a message we submitted into a
//! [`DeliveryReport`](crate::channel::DeliveryReport), from the SMPP 3.4
//! Appendix B text (`id:… sub:… dlvrd:… submit date:… done date:… stat:…
//! err:… text:…`, read tolerantly) and from the receipt TLVs
//! (`receipted_message_id`, `message_state`, `network_error_code`), which
//! win when present.

use std::sync::LazyLock;

use regex::Regex;

use super::pdu::{tag, ShortMessage};
use super::text::{decode_text, DefaultAlphabet};
use crate::channel::{DeliveryReport, ReceiptState};

/// Why a message could not be read as a delivery receipt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    /// Neither a `receipted_message_id` TLV nor an `id:` field names the message.
    #[error("delivery receipt without a message id")]
    MissingId,
    /// Neither a `message_state` TLV nor a `stat:` field gives the state.
    #[error("delivery receipt without a state")]
    MissingState,
    /// The `stat:` field holds a value no SMPP version defines (and no
    /// usable `message_state` TLV came with it).
    #[error("delivery receipt with unknown state {0:?}")]
    UnknownState(String),
    /// The `message_state` TLV is not one byte of 0–9, and there is no
    /// `stat:` field to fall back on.
    #[error("delivery receipt with an invalid message_state TLV {0:02x?}")]
    InvalidMessageState(Vec<u8>),
}

/// Reads a receipt from a deliver_sm / data_sm body: the text of
/// `short_message` (or `message_payload` when it is empty), keys in any
/// case and order, fields optional, and the receipt TLVs, which win over
/// the text. Does not look at esm_class: some SMSCs send receipts
/// marked as ordinary messages.
pub fn parse(sm: &ShortMessage) -> Result<DeliveryReport, ReceiptError> {
    let text = decode_text(sm, DefaultAlphabet::Latin1).unwrap_or_else(|_| {
        let data = if sm.short_message.is_empty() {
            sm.tlv(tag::MESSAGE_PAYLOAD).unwrap_or_default()
        } else {
            &sm.short_message
        };
        crate::sms_text::latin1_decode(data)
    });
    let fields = Fields::read(&text);

    let tlv_id = sm.tlv(tag::RECEIPTED_MESSAGE_ID).map(|value| {
        let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
        crate::sms_text::latin1_decode(&value[..end])
            .trim()
            .to_owned()
    });
    let message_id = tlv_id
        .filter(|id| !id.is_empty())
        .or_else(|| fields.get(Key::Id).map(str::to_owned))
        .ok_or(ReceiptError::MissingId)?;

    let tlv_state = sm.tlv(tag::MESSAGE_STATE);
    let state_from_tlv = match tlv_state {
        Some(&[value]) => ReceiptState::from_message_state(value),
        _ => None,
    };
    let state = match (state_from_tlv, fields.get(Key::Stat), tlv_state) {
        (Some(state), _, _) => state,
        (None, Some(stat), _) => ReceiptState::from_stat(stat)
            .ok_or_else(|| ReceiptError::UnknownState(stat.to_owned()))?,
        (None, None, Some(bad)) => return Err(ReceiptError::InvalidMessageState(bad.to_vec())),
        (None, None, None) => return Err(ReceiptError::MissingState),
    };

    let number = |key| fields.get(key).and_then(|v| v.parse::<u32>().ok());
    let date = |key| {
        fields
            .get(key)
            .filter(|v| matches!(v.len(), 10 | 12 | 14) && v.bytes().all(|b| b.is_ascii_digit()))
            .map(str::to_owned)
    };
    Ok(DeliveryReport {
        message_id,
        state,
        error: fields.get(Key::Err).map(str::to_owned),
        submitted: number(Key::Sub),
        delivered: number(Key::Dlvrd),
        submit_date: date(Key::SubmitDate),
        done_date: date(Key::DoneDate),
        network_error: sm.tlv(tag::NETWORK_ERROR_CODE).and_then(network_error),
    })
}

/// `network_error_code`: one byte of network type, two of error code.
fn network_error(value: &[u8]) -> Option<String> {
    let &[network, high, low] = value else {
        return None;
    };
    let code = u16::from_be_bytes([high, low]);
    let network = match network {
        1 => "ansi-136-access-denied",
        2 => "is-95-access-denied",
        3 => "gsm",
        4 => "ansi-136-cause",
        5 => "is-95-cause",
        6 => "ansi-41",
        7 => "smpp",
        8 => "message-center",
        other => return Some(format!("type-{other}:{code}")),
    };
    Some(format!("{network}:{code}"))
}

/// The keys of an Appendix B receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Id,
    Sub,
    Dlvrd,
    SubmitDate,
    DoneDate,
    Stat,
    Err,
    Text,
}

impl Key {
    const COUNT: usize = 8;

    /// The key a matched name stands for (any case; `submit date` with any spacing).
    fn from_name(name: &str) -> Option<Key> {
        let name = name.to_ascii_lowercase();
        Some(match name.as_str() {
            "id" => Key::Id,
            "sub" => Key::Sub,
            "dlvrd" => Key::Dlvrd,
            "stat" => Key::Stat,
            "err" | "error" => Key::Err,
            "text" => Key::Text,
            n if n.starts_with("submit") => Key::SubmitDate,
            n if n.starts_with("done") => Key::DoneDate,
            _ => return None,
        })
    }
}

/// A key at the start of the text or after a space, and its colon.
static KEY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)(?:^|\s)(id|sub|dlvrd|submit[ _]*date|done[ _]*date|stat|err|error|text)[ \t]*:",
    )
    .expect("receipt key pattern compiles")
});

/// The fields of a receipt text: each key's value runs to the next key.
/// A key seen a second time is part of the value before it (a `text:`
/// quoting "id:" does not replace the id).
struct Fields<'a> {
    values: [Option<&'a str>; Key::COUNT],
}

impl<'a> Fields<'a> {
    fn read(text: &'a str) -> Self {
        let mut marks: Vec<(Key, usize, usize)> = Vec::new();
        for caps in KEY.captures_iter(text) {
            let (Some(name), Some(whole)) = (caps.get(1), caps.get(0)) else {
                continue;
            };
            let Some(key) = Key::from_name(name.as_str()) else {
                continue;
            };
            if marks.iter().all(|(seen, ..)| *seen != key) {
                marks.push((key, name.start(), whole.end()));
            }
        }
        let mut values = [None; Key::COUNT];
        for (i, &(key, _, value_start)) in marks.iter().enumerate() {
            let value_end = marks.get(i + 1).map_or(text.len(), |&(_, start, _)| start);
            let value = text[value_start..value_end].trim();
            // Every field but the text is one word; anything after it is noise.
            let value = if key == Key::Text {
                value
            } else {
                value.split_whitespace().next().unwrap_or("")
            };
            values[key as usize] = Some(value);
        }
        Fields { values }
    }

    /// A field's value, unless missing or empty.
    fn get(&self, key: Key) -> Option<&'a str> {
        self.values[key as usize].filter(|v| !v.is_empty())
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::id_spellings;
    use crate::smpp::pdu::Tlv;
    use proptest::prelude::*;

    fn receipt(text: &str) -> ShortMessage {
        ShortMessage {
            esm_class: 0x04,
            short_message: text.as_bytes().to_vec(),
            ..ShortMessage::default()
        }
    }

    fn with_tlv(mut sm: ShortMessage, tag: u16, value: &[u8]) -> ShortMessage {
        sm.tlvs.push(Tlv {
            tag,
            value: value.to_vec(),
        });
        sm
    }

    #[test]
    fn appendix_b_receipt() {
        let r = parse(&receipt(
            "id:0123456789 sub:001 dlvrd:001 submit date:2403151200 done date:2403151201 stat:DELIVRD err:000 text:HS 000.00.12.H58",
        ))
        .unwrap();
        assert_eq!(
            r,
            DeliveryReport {
                message_id: "0123456789".into(),
                state: ReceiptState::Delivered,
                error: Some("000".into()),
                submitted: Some(1),
                delivered: Some(1),
                submit_date: Some("2403151200".into()),
                done_date: Some("2403151201".into()),
                network_error: None,
            }
        );
        assert!(r.state.is_final() && r.state.is_success());
    }

    #[test]
    fn kannel_style_receipt_with_capital_text_and_hex_id() {
        // Kannel's SMSC simulators and many carriers write `Text:` and hex ids.
        let r = parse(&receipt(
            "id:1A2B3C4D sub:001 dlvrd:000 submit date:240315120005 done date:240315120510 stat:UNDELIV err:001 Text:Ho so 000.00.12",
        ))
        .unwrap();
        assert_eq!(r.message_id, "1A2B3C4D");
        assert_eq!(r.state, ReceiptState::Undeliverable);
        assert_eq!(r.submit_date.as_deref(), Some("240315120005"));
        assert_eq!(r.done_date.as_deref(), Some("240315120510"));
        assert_eq!(r.delivered, Some(0));
        assert!(r.state.is_final() && !r.state.is_success());
    }

    #[test]
    fn lowercase_shuffled_sparse_and_spaced_receipts() {
        let r = parse(&receipt(
            "stat:delivrd   ID: 77  done  date:2403151201 text:id:99 stat:REJECTD",
        ))
        .unwrap();
        assert_eq!(r.message_id, "77");
        assert_eq!(r.state, ReceiptState::Delivered);
        assert_eq!(r.done_date.as_deref(), Some("2403151201"));
        assert_eq!((r.submitted, r.error, r.submit_date), (None, None, None));

        let r = parse(&receipt(
            "ID:abc SUB:1 DLVRD:1 SUBMIT_DATE:2403151200 DONE_DATE:bad STAT:Expired ERR: TEXT:",
        ))
        .unwrap();
        assert_eq!(r.state, ReceiptState::Expired);
        assert_eq!(r.submit_date.as_deref(), Some("2403151200"));
        assert_eq!(r.done_date, None);
        assert_eq!(r.error, None);
    }

    #[test]
    fn every_stat_spelling() {
        for (stat, state) in [
            ("DELIVRD", ReceiptState::Delivered),
            ("EXPIRED", ReceiptState::Expired),
            ("DELETED", ReceiptState::Deleted),
            ("UNDELIV", ReceiptState::Undeliverable),
            ("ACCEPTD", ReceiptState::Accepted),
            ("UNKNOWN", ReceiptState::Unknown),
            ("REJECTD", ReceiptState::Rejected),
            ("ENROUTE", ReceiptState::Enroute),
            ("SKIPPED", ReceiptState::Skipped),
        ] {
            let r = parse(&receipt(&format!("id:1 stat:{stat} err:000"))).unwrap();
            assert_eq!(r.state, state);
            assert_eq!(state.as_str(), stat);
            assert_eq!(ReceiptState::from_stat(&stat.to_lowercase()), Some(state));
        }
        assert!(!ReceiptState::Enroute.is_final());
        assert!(ReceiptState::Accepted.is_final() && !ReceiptState::Accepted.is_success());
    }

    #[test]
    fn tlvs_win_over_the_text() {
        let sm = receipt("id:0000001 stat:ENROUTE err:000");
        let sm = with_tlv(sm, tag::RECEIPTED_MESSAGE_ID, b"1a2b\0");
        let sm = with_tlv(sm, tag::MESSAGE_STATE, &[5]);
        let sm = with_tlv(sm, tag::NETWORK_ERROR_CODE, &[3, 0x00, 0x22]);
        let r = parse(&sm).unwrap();
        assert_eq!(r.message_id, "1a2b");
        assert_eq!(r.state, ReceiptState::Undeliverable);
        assert_eq!(r.error.as_deref(), Some("000"));
        assert_eq!(r.network_error.as_deref(), Some("gsm:34"));
    }

    #[test]
    fn tlv_only_and_payload_receipts() {
        let sm = with_tlv(ShortMessage::default(), tag::RECEIPTED_MESSAGE_ID, b"42\0");
        let sm = with_tlv(sm, tag::MESSAGE_STATE, &[2]);
        let r = parse(&sm).unwrap();
        assert_eq!(
            (r.message_id.as_str(), r.state),
            ("42", ReceiptState::Delivered)
        );

        let sm = with_tlv(
            ShortMessage::default(),
            tag::MESSAGE_PAYLOAD,
            b"id:5 sub:001 dlvrd:001 stat:DELIVRD",
        );
        assert_eq!(parse(&sm).unwrap().message_id, "5");

        // A receipt text in UCS-2.
        let sm = ShortMessage {
            data_coding: 8,
            short_message: crate::sms_text::ucs2_encode("id:9 stat:EXPIRED"),
            ..ShortMessage::default()
        };
        assert_eq!(parse(&sm).unwrap().state, ReceiptState::Expired);
    }

    #[test]
    fn broken_receipts_say_what_is_missing() {
        assert_eq!(
            parse(&receipt("stat:DELIVRD")),
            Err(ReceiptError::MissingId)
        );
        assert_eq!(
            parse(&receipt("id:1 err:000")),
            Err(ReceiptError::MissingState)
        );
        assert_eq!(
            parse(&receipt("id:1 stat:FOOBAR")),
            Err(ReceiptError::UnknownState("FOOBAR".into()))
        );
        let bad_state = with_tlv(receipt("id:1"), tag::MESSAGE_STATE, &[0x20]);
        assert_eq!(
            parse(&bad_state),
            Err(ReceiptError::InvalidMessageState(vec![0x20]))
        );
        // An invalid TLV falls back to the text.
        let fallback = with_tlv(receipt("id:1 stat:DELIVRD"), tag::MESSAGE_STATE, &[2, 2]);
        assert_eq!(parse(&fallback).unwrap().state, ReceiptState::Delivered);
        // An empty receipted_message_id falls back to the text.
        let empty_id = with_tlv(
            receipt("id:7 stat:DELIVRD"),
            tag::RECEIPTED_MESSAGE_ID,
            b"\0",
        );
        assert_eq!(parse(&empty_id).unwrap().message_id, "7");
    }

    proptest! {
        #[test]
        fn parse_never_panics(text in proptest::collection::vec(any::<u8>(), 0..254), dc in any::<u8>(),
                              state in proptest::collection::vec(any::<u8>(), 0..3),
                              id in proptest::collection::vec(any::<u8>(), 0..70)) {
            let sm = ShortMessage { data_coding: dc, short_message: text, ..ShortMessage::default() };
            let _ = parse(&sm);
            let sm = with_tlv(with_tlv(sm, tag::MESSAGE_STATE, &state), tag::RECEIPTED_MESSAGE_ID, &id);
            if let Ok(r) = parse(&sm) {
                let _ = id_spellings(&r.message_id);
            }
        }

    }
}
