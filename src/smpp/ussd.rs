//! USSD over SMPP, in both roles, knowing nothing about dossiers: the
//! `ussd_service_op` (0x0501) and `its_session_info` (0x1383) TLVs, what a
//! USSD PDU means for the dialogue (a new dialogue, the citizen's answer to
//! a menu, a release), and the PDU that carries our answer back.
//!
//! A `deliver_sm` (from a carrier's USSD centre, ESME role) or a `submit_sm`
//! (from a bound peer, listener role), or a `data_sm` in either role, that
//! carries `ussd_service_op` is a USSD turn, not an SMS: it is acknowledged
//! at once and handed to [`SmsHandler::ussd`]. The answer goes back
//! on a connection of the same channel, with the same `its_session_info`
//! session number: a menu as a USSR request (op 2; the dialogue stays open),
//! a final screen as a PSSR response (op 17, end-of-session bit set; the
//! dialogue closes). A dialogue the citizen abandons is released by the
//! handler with [`Routes::answer_ussd`] and `end: true`.
//!
//! Values of `ussd_service_op` (SMPP 3.4 §5.3.2.44): 0 PSSD indication,
//! 1 PSSR indication, 2 USSR request, 3 USSN request, 16 PSSD response,
//! 17 PSSR response, 18 USSR confirm, 19 USSN confirm. `its_session_info`
//! (§5.3.2.43) is two octets: the session number, then the sequence number
//! in bits 7–1 and the end-of-session indicator in bit 0.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::outlet::ReplyCommand;
use super::pdu::{tag, Body, ShortMessage, Tlv};
use super::text::{decode_text, encode_reply, DefaultAlphabet, LongMessageMode};
use super::Address;
use crate::channel::{
    Routes, ServiceOp, SessionInfo, SmsHandler, TurnKind, UssdAnswer, UssdReturn, UssdTurn,
};

/// The `ussd_service_op` of a message, when it carries one (it is a USSD turn then).
pub fn service_op(sm: &ShortMessage) -> Option<ServiceOp> {
    match sm.tlv(super::pdu::tag::USSD_SERVICE_OP) {
        Some([value]) => Some(ServiceOp::from_u8(*value)),
        _ => None,
    }
}

/// The largest `short_message` SMPP allows; a longer answer goes in `message_payload`.
const MAX_SHORT_MESSAGE: usize = 254;

/// Reads a `submit_sm`, `deliver_sm` or `data_sm` (`data_sm` true) received
/// on `channel` as a USSD turn; `None` when it carries no `ussd_service_op`
/// (it is an SMS then). The text is decoded from `short_message` or, when
/// that is empty (always for data_sm), from `message_payload`; an
/// unreadable coding gives an empty text.
///
/// The kind: the end-of-session bit of `its_session_info` is a
/// [`TurnKind::Release`]; otherwise PSSR and PSSD indications open a
/// dialogue and a USSR confirm continues it. Every other operation — a USSN
/// confirm (the handset saw a notice: nothing to answer) and the operations
/// only the application side sends (2, 3, 16, 17, vendor values) — is a
/// `Release` too, so the handler sends nothing and forgets the dialogue.
pub fn turn_from(
    channel: &str,
    sm: &ShortMessage,
    data_sm: bool,
    alphabet: DefaultAlphabet,
) -> Option<UssdTurn> {
    let op = service_op(sm)?;
    let session_info = sm.tlv(tag::ITS_SESSION_INFO).and_then(SessionInfo::decode);
    let text = decode_text(sm, alphabet).unwrap_or_else(|error| {
        tracing::debug!(channel, %error, "USSD text unreadable; taken as empty");
        String::new()
    });
    let kind = if session_info.is_some_and(|info| info.end) {
        TurnKind::Release
    } else {
        match op {
            ServiceOp::PssrIndication | ServiceOp::PssdIndication => TurnKind::Open,
            ServiceOp::UssrConfirm => TurnKind::Continue,
            other => {
                tracing::debug!(
                    channel,
                    op = other.to_u8(),
                    "USSD operation that needs no answer from here: dialogue released"
                );
                TurnKind::Release
            }
        }
    };
    let dialogue = match session_info {
        Some(info) => format!("{channel}|{}|{}", sm.source_addr, info.session),
        None => format!("{channel}|{}|-", sm.source_addr),
    };
    Some(UssdTurn {
        dialogue,
        kind,
        op,
        text,
        ret: UssdReturn {
            channel: channel.to_owned(),
            citizen: Address::new(
                sm.source_addr.clone(),
                sm.source_addr_ton,
                sm.source_addr_npi,
            ),
            service: Address::new(
                sm.destination_addr.clone(),
                sm.dest_addr_ton,
                sm.dest_addr_npi,
            ),
            session_info,
            data_sm,
            service_type: sm.service_type.clone(),
        },
    })
}

/// The PDU body that carries `answer` back: a `data_sm` when the turn came
/// as one, else a `submit_sm` or `deliver_sm` as `command` says. From the
/// service to the citizen (TON/NPI as received), `service_type` echoed,
/// `ussd_service_op` 2 (USSR request: a menu, the dialogue stays open) or,
/// with `answer.end`, 17 (PSSR response: the final screen), and, when the
/// turn had one, `its_session_info` with the same session number, the next
/// sequence number (modulo 128) and the end bit set as `answer.end` says.
///
/// The text is one screen, never split: GSM-7 when every character has a
/// GSM-7 form (data_coding 0, written as `alphabet` says, as SMS replies
/// are), UCS-2 (data_coding 8) otherwise. It goes in `short_message`, or in
/// `message_payload` for a data_sm or when longer than 254 octets. Keeping
/// it within one screen is the caller's task.
pub fn answer_pdu_body(
    ret: &UssdReturn,
    answer: &UssdAnswer,
    command: ReplyCommand,
    alphabet: DefaultAlphabet,
) -> Body {
    let op = if answer.end {
        ServiceOp::PssrResponse
    } else {
        ServiceOp::UssrRequest
    };
    let mut tlvs = vec![Tlv {
        tag: tag::USSD_SERVICE_OP,
        value: vec![op.to_u8()],
    }];
    if let Some(info) = ret.session_info {
        let next = SessionInfo {
            session: info.session,
            sequence: (info.sequence + 1) & 0x7F,
            end: answer.end,
        };
        tlvs.push(Tlv {
            tag: tag::ITS_SESSION_INFO,
            value: next.encode().to_vec(),
        });
    }
    // One part whatever the length: the whole text in one payload.
    let part = encode_reply(&answer.text, 0, LongMessageMode::Payload, alphabet)
        .into_iter()
        .next();
    let (data_coding, encoded) = part.map_or((0, Vec::new()), |part| {
        let encoded = part
            .tlvs
            .into_iter()
            .find(|t| t.tag == tag::MESSAGE_PAYLOAD)
            .map(|t| t.value)
            .unwrap_or_default();
        (part.data_coding, encoded)
    });
    let in_payload = ret.data_sm || encoded.len() > MAX_SHORT_MESSAGE;
    let short_message = if in_payload {
        tlvs.push(Tlv {
            tag: tag::MESSAGE_PAYLOAD,
            value: encoded,
        });
        Vec::new()
    } else {
        encoded
    };
    let sm = ShortMessage {
        service_type: ret.service_type.clone(),
        source_addr_ton: ret.service.ton,
        source_addr_npi: ret.service.npi,
        source_addr: ret.service.addr.clone(),
        dest_addr_ton: ret.citizen.ton,
        dest_addr_npi: ret.citizen.npi,
        destination_addr: ret.citizen.addr.clone(),
        data_coding,
        short_message,
        tlvs,
        ..ShortMessage::default()
    };
    if ret.data_sm {
        return Body::DataSm(sm);
    }
    match command {
        ReplyCommand::SubmitSm => Body::SubmitSm(sm),
        ReplyCommand::DeliverSm => Body::DeliverSm(sm),
    }
}

/// Numbers the message ids USSD turns are acknowledged with.
static ACKNOWLEDGED: AtomicU64 = AtomicU64::new(1);

/// The message id a USSD turn is acknowledged with (`u1`, `u2`, …): the
/// turn is not journaled, so it has no id of the journal's.
pub(super) fn acknowledgement_id() -> String {
    format!("u{}", ACKNOWLEDGED.fetch_add(1, Ordering::Relaxed))
}

/// Hands an acknowledged turn to the handler and sends its answer, if any,
/// back on the turn's channel; a failure is logged (the citizen's number is not).
pub(super) async fn serve_turn<H: SmsHandler>(
    handler: Arc<H>,
    routes: Arc<Routes>,
    turn: UssdTurn,
) {
    let ret = turn.ret.clone();
    let (kind, op) = (turn.kind, turn.op);
    let Some(answer) = handler.ussd(turn).await else {
        tracing::debug!(channel = %ret.channel, ?kind, op = op.to_u8(), "USSD turn needs no answer");
        return;
    };
    if let Err(error) = routes.answer_ussd(&ret, &answer).await {
        tracing::warn!(
            channel = %ret.channel,
            ?kind,
            end = answer.end,
            session = ret.session_info.map(|info| info.session),
            %error,
            "USSD answer not sent"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sms_text;
    use proptest::prelude::*;

    const CHANNEL: &str = "listener:demo";

    fn ussd_sm(op: u8, session: Option<[u8; 2]>, text: &[u8]) -> ShortMessage {
        let mut tlvs = vec![Tlv {
            tag: tag::USSD_SERVICE_OP,
            value: vec![op],
        }];
        if let Some(info) = session {
            tlvs.push(Tlv {
                tag: tag::ITS_SESSION_INFO,
                value: info.to_vec(),
            });
        }
        ShortMessage {
            service_type: "USSD".into(),
            source_addr_ton: 1,
            source_addr_npi: 1,
            source_addr: "84912345678".into(),
            dest_addr_ton: 0,
            dest_addr_npi: 1,
            destination_addr: "*8058#".into(),
            short_message: text.to_vec(),
            tlvs,
            ..ShortMessage::default()
        }
    }

    fn turn(op: u8, session: Option<[u8; 2]>) -> UssdTurn {
        turn_from(
            CHANNEL,
            &ussd_sm(op, session, b"*8058#"),
            false,
            DefaultAlphabet::Gsm7Unpacked,
        )
        .expect("a USSD turn")
    }

    #[test]
    fn session_info_reads_session_sequence_and_end_bit() {
        let info = SessionInfo::decode(&[0x2A, 0x07]).unwrap();
        assert_eq!(
            info,
            SessionInfo {
                session: 0x2A,
                sequence: 3,
                end: true
            }
        );
        assert_eq!(info.encode(), [0x2A, 0x07]);
        assert_eq!(
            SessionInfo {
                session: 1,
                sequence: 127,
                end: false
            }
            .encode(),
            [1, 0xFE]
        );
        assert_eq!(SessionInfo::decode(&[1]), None);
        assert_eq!(SessionInfo::decode(&[1, 2, 3]), None);
    }

    #[test]
    fn a_message_without_ussd_service_op_is_no_turn() {
        let mut sm = ussd_sm(1, None, b"TC 123");
        sm.tlvs.clear();
        assert_eq!(
            turn_from(CHANNEL, &sm, false, DefaultAlphabet::default()),
            None
        );
        // A malformed value (two octets) is not an operation either.
        sm.tlvs.push(Tlv {
            tag: tag::USSD_SERVICE_OP,
            value: vec![0, 1],
        });
        assert_eq!(
            turn_from(CHANNEL, &sm, false, DefaultAlphabet::default()),
            None
        );
    }

    #[test]
    fn turn_kinds_follow_the_operation_and_the_end_bit() {
        assert_eq!(turn(1, Some([5, 0])).kind, TurnKind::Open);
        assert_eq!(turn(0, None).kind, TurnKind::Open);
        assert_eq!(turn(18, Some([5, 2])).kind, TurnKind::Continue);
        // The end bit releases whatever the operation.
        assert_eq!(turn(18, Some([5, 3])).kind, TurnKind::Release);
        assert_eq!(turn(1, Some([5, 1])).kind, TurnKind::Release);
        // A USSN confirm and operations only the application side sends.
        for op in [19, 2, 3, 16, 17, 0x20] {
            let t = turn(op, Some([5, 2]));
            assert_eq!(t.kind, TurnKind::Release, "op {op}");
            assert_eq!(t.op, ServiceOp::from_u8(op));
        }
    }

    #[test]
    fn a_turn_carries_its_dialogue_text_and_return_address() {
        let t = turn(1, Some([0x42, 0]));
        assert_eq!(t.dialogue, "listener:demo|84912345678|66");
        assert_eq!(t.op, ServiceOp::PssrIndication);
        assert_eq!(t.text, "*8058#");
        assert_eq!(t.ret.channel, CHANNEL);
        assert_eq!(t.ret.citizen, Address::new("84912345678", 1, 1));
        assert_eq!(t.ret.service, Address::new("*8058#", 0, 1));
        assert_eq!(
            t.ret.session_info,
            Some(SessionInfo {
                session: 0x42,
                sequence: 0,
                end: false
            })
        );
        assert!(!t.ret.data_sm);
        assert_eq!(t.ret.service_type, "USSD");
        assert_eq!(turn(1, None).dialogue, "listener:demo|84912345678|-");
    }

    #[test]
    fn data_sm_text_comes_from_message_payload_in_any_coding() {
        let mut sm = ussd_sm(18, Some([7, 2]), b"");
        sm.data_coding = 8;
        sm.tlvs.push(Tlv {
            tag: tag::MESSAGE_PAYLOAD,
            value: sms_text::ucs2_encode("Một"),
        });
        let t = turn_from("smsc:vt", &sm, true, DefaultAlphabet::default()).unwrap();
        assert_eq!(t.text, "Một");
        assert_eq!(t.kind, TurnKind::Continue);
        assert!(t.ret.data_sm);
        assert_eq!(t.dialogue, "smsc:vt|84912345678|7");
        // An unreadable coding is an empty text, not a lost turn.
        sm.data_coding = 0x04;
        let t = turn_from("smsc:vt", &sm, true, DefaultAlphabet::default()).unwrap();
        assert_eq!(t.text, "");
    }

    fn answer(text: &str, end: bool) -> UssdAnswer {
        UssdAnswer {
            text: text.into(),
            end,
        }
    }

    fn short_message_of(body: &Body) -> &ShortMessage {
        match body {
            Body::SubmitSm(sm) | Body::DeliverSm(sm) | Body::DataSm(sm) => sm,
            other => panic!("not a message: {other:?}"),
        }
    }

    #[test]
    fn a_menu_is_a_ussr_request_and_a_final_screen_a_pssr_response() {
        let ret = turn(1, Some([9, 0])).ret;
        let menu = answer_pdu_body(
            &ret,
            &answer("1. A\n2. B", false),
            ReplyCommand::DeliverSm,
            DefaultAlphabet::Gsm7Unpacked,
        );
        let Body::DeliverSm(sm) = &menu else {
            panic!("{menu:?}")
        };
        assert_eq!(sm.source_addr, "*8058#");
        assert_eq!((sm.source_addr_ton, sm.source_addr_npi), (0, 1));
        assert_eq!(sm.destination_addr, "84912345678");
        assert_eq!((sm.dest_addr_ton, sm.dest_addr_npi), (1, 1));
        assert_eq!(sm.service_type, "USSD");
        assert_eq!(sm.tlv(tag::USSD_SERVICE_OP), Some(&[2u8][..]));
        assert_eq!(sm.tlv(tag::ITS_SESSION_INFO), Some(&[9u8, 2][..]));
        assert_eq!(sm.data_coding, 0);
        assert_eq!(
            sm.short_message,
            sms_text::gsm7_encode_unpacked("1. A\n2. B")
        );
        assert_eq!(sm.tlv(tag::MESSAGE_PAYLOAD), None);

        let ret = turn(18, Some([9, 2])).ret;
        let last = answer_pdu_body(
            &ret,
            &answer("A!", true),
            ReplyCommand::SubmitSm,
            DefaultAlphabet::Gsm7Unpacked,
        );
        let Body::SubmitSm(sm) = &last else {
            panic!("{last:?}")
        };
        assert_eq!(sm.tlv(tag::USSD_SERVICE_OP), Some(&[17u8][..]));
        // Sequence 1 → 2, end bit set.
        assert_eq!(sm.tlv(tag::ITS_SESSION_INFO), Some(&[9u8, 0b101][..]));
    }

    #[test]
    fn the_sequence_number_wraps_and_a_turn_without_session_info_gets_none() {
        let ret = turn(18, Some([3, 0xFE])).ret;
        let body = answer_pdu_body(
            &ret,
            &answer("x", false),
            ReplyCommand::DeliverSm,
            DefaultAlphabet::default(),
        );
        assert_eq!(
            short_message_of(&body).tlv(tag::ITS_SESSION_INFO),
            Some(&[3u8, 0][..])
        );
        let ret = turn(1, None).ret;
        let body = answer_pdu_body(
            &ret,
            &answer("x", true),
            ReplyCommand::DeliverSm,
            DefaultAlphabet::default(),
        );
        let sm = short_message_of(&body);
        assert_eq!(sm.tlv(tag::ITS_SESSION_INFO), None);
        assert_eq!(sm.tlv(tag::USSD_SERVICE_OP), Some(&[17u8][..]));
    }

    #[test]
    fn answers_are_gsm7_as_the_link_writes_it_else_ucs2() {
        let ret = turn(1, Some([1, 0])).ret;
        let packed = answer_pdu_body(
            &ret,
            &answer("Chon 1", false),
            ReplyCommand::DeliverSm,
            DefaultAlphabet::Gsm7Packed,
        );
        let sm = short_message_of(&packed);
        assert_eq!(sm.data_coding, 0);
        assert_eq!(sm.short_message, sms_text::gsm7_encode_packed("Chon 1", 0));
        assert_eq!(
            decode_text(sm, DefaultAlphabet::Gsm7Packed).unwrap(),
            "Chon 1"
        );

        let accented = answer_pdu_body(
            &ret,
            &answer("Chọn 1", false),
            ReplyCommand::DeliverSm,
            DefaultAlphabet::Gsm7Unpacked,
        );
        let sm = short_message_of(&accented);
        assert_eq!(sm.data_coding, 8);
        assert_eq!(sm.short_message, sms_text::ucs2_encode("Chọn 1"));
    }

    #[test]
    fn data_sm_answers_and_long_texts_travel_in_message_payload() {
        let mut ret = turn(1, Some([4, 0])).ret;
        ret.data_sm = true;
        let body = answer_pdu_body(
            &ret,
            &answer("Sai", true),
            ReplyCommand::SubmitSm,
            DefaultAlphabet::Gsm7Unpacked,
        );
        let Body::DataSm(sm) = &body else {
            panic!("{body:?}")
        };
        assert!(sm.short_message.is_empty());
        assert_eq!(sm.tlv(tag::MESSAGE_PAYLOAD), Some(&b"Sai"[..]));
        assert_eq!(sm.tlv(tag::USSD_SERVICE_OP), Some(&[17u8][..]));
        assert_eq!(sm.tlv(tag::ITS_SESSION_INFO), Some(&[4u8, 3][..]));
        // It encodes as a data_sm and reads back the same.
        let pdu = super::super::pdu::Pdu::new(1, body.clone());
        assert_eq!(
            super::super::pdu::Pdu::decode(&pdu.to_bytes())
                .unwrap()
                .body,
            body
        );

        // 200 UCS-2 characters are 400 octets: beyond short_message.
        let ret = turn(1, Some([4, 0])).ret;
        let long = "ạ".repeat(200);
        let body = answer_pdu_body(
            &ret,
            &answer(&long, true),
            ReplyCommand::DeliverSm,
            DefaultAlphabet::default(),
        );
        let sm = short_message_of(&body);
        assert!(matches!(body, Body::DeliverSm(_)));
        assert!(sm.short_message.is_empty());
        assert_eq!(sm.tlv(tag::MESSAGE_PAYLOAD).map(<[u8]>::len), Some(400));
        assert_eq!(decode_text(sm, DefaultAlphabet::default()).unwrap(), long);
    }

    #[test]
    fn acknowledgement_ids_are_distinct() {
        let (a, b) = (acknowledgement_id(), acknowledgement_id());
        assert!(a.starts_with('u') && b.starts_with('u'));
        assert_ne!(a, b);
    }

    proptest! {
        #[test]
        fn session_info_round_trips(session in any::<u8>(), sequence in 0u8..128, end in any::<bool>()) {
            let info = SessionInfo { session, sequence, end };
            prop_assert_eq!(SessionInfo::decode(&info.encode()), Some(info));
        }

        #[test]
        fn any_two_octets_read_back_the_same(value in any::<[u8; 2]>()) {
            let info = SessionInfo::decode(&value).unwrap();
            prop_assert_eq!(info.encode(), value);
        }

        #[test]
        fn service_ops_round_trip(value in any::<u8>()) {
            prop_assert_eq!(ServiceOp::from_u8(value).to_u8(), value);
        }
    }
}
