//! Tests of the codec as a whole: hand-checked vectors of real-world
//! shapes, error cases, splitting, and property tests of the round trip.

use super::*;
use proptest::prelude::*;

fn deliver_of(pdu: &Pdu) -> &Deliver {
    match &pdu.tpdu {
        Tpdu::Deliver(deliver) => deliver,
        other => panic!("not a deliver: {other:?}"),
    }
}

fn round_trips(pdu: &Pdu, direction: Direction) {
    let encoded = encode(pdu).unwrap();
    assert_eq!(decode(&encoded.bytes, direction).as_ref(), Ok(pdu));
}

#[test]
fn hex_both_ways() {
    assert_eq!(from_hex(" 00aF10\n").unwrap(), vec![0x00, 0xAF, 0x10]);
    assert_eq!(from_hex("").unwrap(), Vec::<u8>::new());
    assert!(matches!(from_hex("ABC"), Err(PduError::InvalidHex(_))));
    assert!(matches!(from_hex("0G"), Err(PduError::InvalidHex(_))));
    assert!(matches!(from_hex("é0"), Err(PduError::InvalidHex(_))));
    assert_eq!(to_hex(&[0x00, 0xAF, 0x10]), "00AF10");
}

/// The classic example of the PDU-mode tutorials: "How are you?" from
/// +31641600986 through the service centre +31624000000.
#[test]
fn classic_deliver() {
    let hex = "07911326040000F0040B911346610089F60000208062917314080CC8F71D14969741F977FD07";
    let pdu = decode_hex(hex, Direction::ToMobile).unwrap();
    assert_eq!(pdu.smsc, Some(PduAddress::international("31624000000")));
    let deliver = deliver_of(&pdu);
    assert!(!deliver.more_messages_to_send);
    assert!(!deliver.status_report_indication);
    assert_eq!(deliver.originator, PduAddress::international("31641600986"));
    assert_eq!(deliver.protocol_id, 0);
    assert_eq!(deliver.data_coding, DataCoding::GSM7);
    // 02-08-26 19:37:41; the zone octet 0x08 is "minus zero".
    assert_eq!(
        deliver.service_centre_time,
        Timestamp {
            year: 2,
            month: 8,
            day: 26,
            hour: 19,
            minute: 37,
            second: 41,
            tz_quarters: 0
        }
    );
    assert_eq!(deliver.user_data.header, None);
    assert_eq!(deliver.user_data.body, Body::Text("How are you?".into()));
    let encoded = encode(&pdu).unwrap();
    // Written back identically but for the "minus zero" zone.
    assert_eq!(encoded.hex(), hex.replace("7314080C", "7314000C"));
    assert_eq!(encoded.tpdu_length, encoded.bytes.len() - 8);
}

#[test]
fn ucs2_deliver_with_an_emoji() {
    // No SMSC; from +84912345678; DCS 08; 24-03-15 09:30:05 +07:00;
    // "Chào 😀" = 0043 0068 00E0 006F 0020 D83D DE00 (14 octets).
    let hex = "00040B914819325476F80008423051900350820E0043006800E0006F0020D83DDE00";
    let pdu = decode_hex(hex, Direction::ToMobile).unwrap();
    assert_eq!(pdu.smsc, None);
    let deliver = deliver_of(&pdu);
    assert_eq!(deliver.originator.number, "84912345678");
    assert_eq!(deliver.data_coding.alphabet(), Alphabet::Ucs2);
    assert_eq!(deliver.user_data.text(), "Chào 😀");
    assert_eq!(deliver.service_centre_time.tz_quarters, 28);
    assert_eq!(encode(&pdu).unwrap().hex(), hex);
}

#[test]
fn unpaired_surrogates_and_odd_octets_become_replacement_characters() {
    // D83D alone, then 0041, then a dangling octet: UDL 5.
    let hex = "00040B914819325476F800084230519003508205D83D004100";
    let pdu = decode_hex(hex, Direction::ToMobile).unwrap();
    assert_eq!(deliver_of(&pdu).user_data.text(), "\u{FFFD}A\u{FFFD}");
    round_trips(&pdu, Direction::ToMobile);
}

/// A part with a 16-bit reference: the header is 7 octets = 56 bits =
/// exactly 8 septets, so there are no fill bits and the text starts at
/// septet 8 (decoders that assume one fill bit shift the text).
#[test]
fn sixteen_bit_concatenation_part_text_starts_after_the_header() {
    // UDL 10 = 8 header septets + "Hi"; H (0x48) in octet 7 bits 0-6,
    // i (0x69) from bit 63: octet 7 = 0xC8, octet 8 = 0x34.
    let hex = "0044038121F30000423051900350820A06080412340201C834";
    let pdu = decode_hex(hex, Direction::ToMobile).unwrap();
    let deliver = deliver_of(&pdu);
    assert_eq!(deliver.originator.number, "123");
    assert_eq!(deliver.user_data.body, Body::Text("Hi".into()));
    assert_eq!(
        deliver.user_data.concatenation(),
        Some(Concatenation {
            reference: 0x1234,
            total: 2,
            sequence: 1
        })
    );
    assert_eq!(encode(&pdu).unwrap().hex(), hex);
}

/// The 8-bit reference header is 6 octets = 48 bits: one fill bit, the
/// text from septet 7.
#[test]
fn eight_bit_concatenation_part_has_one_fill_bit() {
    // UDL 9 = 7 + "Hi"; H << 1 = 0x90 in octet 6, i = 0x69 in octet 7.
    let hex = "0044038121F3000042305190035082090500032A02029069";
    let pdu = decode_hex(hex, Direction::ToMobile).unwrap();
    let deliver = deliver_of(&pdu);
    assert_eq!(deliver.user_data.text(), "Hi");
    assert_eq!(
        deliver.user_data.header.as_ref().unwrap().elements,
        vec![InformationElement::Concat8 {
            reference: 0x2A,
            total: 2,
            sequence: 2
        }]
    );
    assert_eq!(encode(&pdu).unwrap().hex(), hex);
}

#[test]
fn negative_time_zone_in_a_deliver() {
    // 13-03-25 23:01:56 -07:00 (0x8A: sign bit, tens 2, units 8).
    let hex = "00040B914819325476F800003130523210658A05C8329BFD06";
    let pdu = decode_hex(hex, Direction::ToMobile).unwrap();
    let deliver = deliver_of(&pdu);
    assert_eq!(deliver.service_centre_time.tz_quarters, -28);
    assert_eq!(deliver.service_centre_time.hour, 23);
    assert_eq!(deliver.user_data.text(), "Hello");
    assert_eq!(encode(&pdu).unwrap().hex(), hex);
}

#[test]
fn alphanumeric_sender_and_toa_0x85() {
    let hex = "07914889090000F0040BD0CDE6DB5DCE0300004230519003508205C8329BFD06";
    let pdu = decode_hex(hex, Direction::ToMobile).unwrap();
    assert_eq!(deliver_of(&pdu).originator.number, "MMoney");
    assert!(deliver_of(&pdu).originator.is_alphanumeric());
    assert_eq!(encode(&pdu).unwrap().hex(), hex);

    let hex = "0004048501900000423051900350820141";
    let pdu = decode_hex(hex, Direction::ToMobile).unwrap();
    assert_eq!(deliver_of(&pdu).originator.number, "1009");
    assert_eq!(deliver_of(&pdu).originator.type_of_address, 0x85);
    assert_eq!(deliver_of(&pdu).user_data.text(), "A");
    assert_eq!(encode(&pdu).unwrap().hex(), hex);

    // A type-of-address octet without its high bit is accepted too.
    let pdu = decode_hex("0004030021F30000423051900350820141", Direction::ToMobile).unwrap();
    assert_eq!(deliver_of(&pdu).originator.type_of_address, 0x00);
    assert_eq!(deliver_of(&pdu).originator.number, "123");
}

#[test]
fn status_report_vector() {
    // SMSC +84900400000; MR 0x2A; recipient +84912345678;
    // SCTS 24-03-15 09:30:05 +7, DT 09:30:55 +7, TP-ST 00 delivered.
    let hex =
        "0791480940000 0F0062A0B914819325476F8423051900350824230519003558200".replace(' ', "");
    let pdu = decode_hex(&hex, Direction::ToMobile).unwrap();
    let Tpdu::StatusReport(report) = &pdu.tpdu else {
        panic!("not a status report: {pdu:?}");
    };
    assert_eq!(report.message_reference, 0x2A);
    assert_eq!(report.recipient, PduAddress::international("84912345678"));
    assert_eq!(report.service_centre_time.second, 5);
    assert_eq!(report.discharge_time.second, 55);
    assert!(report.is_delivered());
    assert!(!report.is_pending());
    let encoded = encode(&pdu).unwrap();
    assert_eq!(encoded.hex(), hex);
    assert_eq!(encoded.tpdu_length, encoded.bytes.len() - 8);
    // Optional parameters after TP-ST (TP-PI 00) are read past.
    let with_pi = format!("{}3000", &hex[..hex.len() - 2]);
    let Tpdu::StatusReport(report) = decode_hex(&with_pi, Direction::ToMobile).unwrap().tpdu else {
        panic!()
    };
    assert!(report.is_pending());
}

#[test]
fn submit_as_a_modem_sends_it() {
    // SMSC from the SIM; SMS-SUBMIT, VPF relative; MR 0; +84912345678;
    // PID 0, DCS 0, VP 0xA7 (24 h); "Hello".
    let hex = "0011000B914819325476F80000A705C8329BFD06";
    let parts = submit_parts(
        &PduAddress::international("+84912345678"),
        "Hello",
        0,
        SubmitOptions::default(),
    );
    assert_eq!(parts.len(), 1);
    let pdu = Pdu {
        smsc: None,
        tpdu: Tpdu::Submit(parts[0].clone()),
    };
    let encoded = encode(&pdu).unwrap();
    assert_eq!(encoded.hex(), hex);
    assert_eq!(encoded.tpdu_length, hex.len() / 2 - 1);
    assert_eq!(decode_hex(hex, Direction::FromMobile).unwrap(), pdu);
}

#[test]
fn submit_validity_formats() {
    let base = submit_parts(
        &PduAddress::unknown("1234"),
        "x",
        0,
        SubmitOptions::default(),
    )
    .remove(0);
    let time = Timestamp {
        year: 24,
        month: 12,
        day: 31,
        hour: 23,
        minute: 59,
        second: 59,
        tz_quarters: -20,
    };
    for (validity, first) in [
        (Validity::None, 0x01),
        (Validity::Relative(0xA7), 0x11),
        (Validity::Enhanced([1, 2, 3, 4, 5, 6, 7]), 0x09),
        (Validity::Absolute(time), 0x19),
    ] {
        let pdu = Pdu {
            smsc: Some(PduAddress::international("84900400000")),
            tpdu: Tpdu::Submit(Submit {
                validity,
                reject_duplicates: true,
                ..base.clone()
            }),
        };
        let encoded = encode(&pdu).unwrap();
        assert_eq!(encoded.bytes[8], first | 0x04);
        assert_eq!(decode(&encoded.bytes, Direction::FromMobile).unwrap(), pdu);
    }
}

#[test]
fn gsm7_stops_at_the_declared_septet_count() {
    // "1234567": 7 septets in 7 octets, the last 7 bits zero: no '@'.
    let pdu = decode_hex(
        "0004038121F30000423051900350820731D98C56B3DD00",
        Direction::ToMobile,
    );
    assert_eq!(deliver_of(&pdu.unwrap()).user_data.text(), "1234567");
    // The same octets declared as 8 septets: the zero septet is an '@'.
    let pdu = decode_hex(
        "0004038121F30000423051900350820831D98C56B3DD00",
        Direction::ToMobile,
    )
    .unwrap();
    assert_eq!(deliver_of(&pdu).user_data.text(), "1234567@");
    round_trips(&pdu, Direction::ToMobile);
}

#[test]
fn extension_characters_and_a_dangling_escape() {
    // "2 € par mois" from the GSM 03.38 examples: 13 septets.
    let pdu = decode_hex(
        "0004038121F30000423051900350820D32D0A60C8287E5A0F63B3D07",
        Direction::ToMobile,
    )
    .unwrap();
    assert_eq!(deliver_of(&pdu).user_data.text(), "2 € par mois");
    round_trips(&pdu, Direction::ToMobile);
    // "A" then an escape as the last septet: dropped. A (0x41) | 0x1B << 7.
    let pdu = decode_hex("0004038121F300004230519003508202C10D", Direction::ToMobile).unwrap();
    assert_eq!(deliver_of(&pdu).user_data.text(), "A");
    round_trips(&pdu, Direction::ToMobile);
}

#[test]
fn data_coding_groups() {
    let cases = [
        (0x00, Alphabet::Gsm7),
        (0x04, Alphabet::EightBit),
        (0x08, Alphabet::Ucs2),
        (0x0C, Alphabet::Gsm7),
        (0x11, Alphabet::Gsm7),
        (0x18, Alphabet::Ucs2),
        (0x24, Alphabet::EightBit),
        (0x20, Alphabet::EightBit), // compressed
        (0x48, Alphabet::Ucs2),
        (0x80, Alphabet::Gsm7),
        (0xB8, Alphabet::Gsm7),
        (0xC8, Alphabet::Gsm7),
        (0xD8, Alphabet::Gsm7),
        (0xE0, Alphabet::Ucs2),
        (0xEB, Alphabet::Ucs2),
        (0xF0, Alphabet::Gsm7),
        (0xF4, Alphabet::EightBit),
        (0xF8, Alphabet::Gsm7),
    ];
    for (dcs, alphabet) in cases {
        assert_eq!(DataCoding(dcs).alphabet(), alphabet, "DCS {dcs:#04x}");
    }
    assert!(DataCoding(0x20).is_compressed());
    assert!(!DataCoding(0xE0).is_compressed());
    assert_eq!(DataCoding(0x11).message_class(), Some(1));
    assert_eq!(DataCoding(0x01).message_class(), None);
    assert_eq!(DataCoding(0xF2).message_class(), Some(2));
    assert!(DataCoding(0xD8).is_message_waiting());
}

#[test]
fn eight_bit_data_with_a_port_header() {
    let hex = "0044038121F3000442305190035082 0B 06 05 04 0B84 23F0 CAFEBABE".replace(' ', "");
    let pdu = decode_hex(&hex, Direction::ToMobile).unwrap();
    let deliver = deliver_of(&pdu);
    assert_eq!(
        deliver.user_data.body,
        Body::Binary(vec![0xCA, 0xFE, 0xBA, 0xBE])
    );
    assert_eq!(deliver.user_data.concatenation(), None);
    assert_eq!(encode(&pdu).unwrap().hex(), hex);
}

#[test]
fn message_types_by_direction() {
    let deliver = "0004038121F30000423051900350820141".to_owned();
    // MTI 11 (reserved) is read as a deliver, as modems do.
    let reserved = deliver.replacen("0004", "0007", 1);
    assert!(matches!(
        decode_hex(&reserved, Direction::ToMobile).unwrap().tpdu,
        Tpdu::Deliver(_)
    ));
    assert_eq!(
        decode_hex(&deliver, Direction::FromMobile),
        Err(PduError::UnexpectedMessageType {
            mti: 0,
            direction: Direction::FromMobile
        })
    );
    assert_eq!(
        decode_hex(
            "0011000B914819325476F80000A705C8329BFD06",
            Direction::ToMobile
        ),
        Err(PduError::UnexpectedMessageType {
            mti: 1,
            direction: Direction::ToMobile
        })
    );
}

#[test]
fn every_truncation_is_an_error() {
    let vectors = [
        "07911326040000F0040B911346610089F60000208062917314080CC8F71D14969741F977FD07",
        "0044038121F30000423051900350820A06080412340201C834",
        "00040B914819325476F80008423051900350820E0043006800E0006F0020D83DDE00",
        "07914809400000F0062A0B914819325476F8423051900350824230519003558200",
    ];
    for hex in vectors {
        let bytes = from_hex(hex).unwrap();
        for len in 0..bytes.len() {
            assert!(
                decode(&bytes[..len], Direction::ToMobile).is_err(),
                "{hex} cut to {len} octets decoded"
            );
        }
    }
    let submit = from_hex("0011000B914819325476F80000A705C8329BFD06").unwrap();
    for len in 0..submit.len() {
        assert!(decode(&submit[..len], Direction::FromMobile).is_err());
    }
}

#[test]
fn inconsistent_lengths_are_errors() {
    let prefix = "0044038121F30000423051900350";
    // Header longer than the user data (GSM-7, UDL 7 cannot hold 7 octets of header).
    assert!(matches!(
        decode_hex(
            &format!("{prefix}8207060804123402010000"),
            Direction::ToMobile
        ),
        Err(PduError::BadLength { .. })
    ));
    // UDL over 160 septets.
    let long = format!("{prefix}82A1{}", "00".repeat(141));
    assert!(matches!(
        decode_hex(&long, Direction::ToMobile),
        Err(PduError::BadLength { .. })
    ));
    // UDHI set, UDL 0.
    assert!(decode_hex(&format!("{prefix}8200"), Direction::ToMobile).is_err());
    // An element running past the header.
    assert!(matches!(
        decode_hex(
            &format!("{prefix}820A040005010000000000"),
            Direction::ToMobile
        ),
        Err(PduError::BadHeader(_))
    ));
}

#[test]
fn bodies_that_do_not_fit_their_coding_are_refused() {
    let mut pdu = decode_hex("0004038121F30000423051900350820141", Direction::ToMobile).unwrap();
    let Tpdu::Deliver(deliver) = &mut pdu.tpdu else {
        panic!()
    };
    deliver.user_data.body = Body::Text("ă".into());
    assert!(matches!(encode(&pdu), Err(PduError::Unencodable(_))));
    let Tpdu::Deliver(deliver) = &mut pdu.tpdu else {
        panic!()
    };
    deliver.user_data.body = Body::Binary(vec![1]);
    assert!(matches!(encode(&pdu), Err(PduError::Unencodable(_))));
    let Tpdu::Deliver(deliver) = &mut pdu.tpdu else {
        panic!()
    };
    deliver.user_data.body = Body::Text("a".repeat(161));
    assert!(matches!(encode(&pdu), Err(PduError::Unencodable(_))));
}

fn part_texts(parts: &[Submit]) -> Vec<String> {
    parts.iter().map(|p| p.user_data.text()).collect()
}

#[test]
fn splitting_sizes() {
    let to = PduAddress::international("84912345678");
    let opts = SubmitOptions::default();
    let wide = SubmitOptions {
        wide_reference: true,
        ..opts
    };
    assert_eq!(submit_parts(&to, &"a".repeat(160), 1, opts).len(), 1);
    let parts = submit_parts(&to, &"a".repeat(161), 0x1FF, opts);
    assert_eq!(
        part_texts(&parts)
            .iter()
            .map(String::len)
            .collect::<Vec<_>>(),
        vec![153, 8]
    );
    assert_eq!(
        parts[1].user_data.header.as_ref().unwrap().elements,
        vec![InformationElement::Concat8 {
            reference: 0xFF,
            total: 2,
            sequence: 2
        }]
    );
    let parts = submit_parts(&to, &"a".repeat(161), 0x1FF, wide);
    assert_eq!(
        part_texts(&parts)
            .iter()
            .map(String::len)
            .collect::<Vec<_>>(),
        vec![152, 9]
    );
    assert_eq!(parts[0].user_data.concatenation().unwrap().reference, 0x1FF);
    // An escape pair is not split: 152 + 2 septets do not fit in 153.
    let text = format!("{}€{}", "a".repeat(152), "b".repeat(10));
    let parts = submit_parts(&to, &text, 0, opts);
    assert_eq!(
        part_texts(&parts),
        vec!["a".repeat(152), format!("€{}", "b".repeat(10))]
    );
    // 80 euros = 160 septets: one part.
    assert_eq!(submit_parts(&to, &"€".repeat(80), 0, opts).len(), 1);
    assert_eq!(submit_parts(&to, &"€".repeat(81), 0, opts).len(), 2);
    // UCS-2: 70 units in one part, 67 or 66 per part beyond.
    assert_eq!(submit_parts(&to, &"ă".repeat(70), 0, opts).len(), 1);
    let parts = submit_parts(&to, &"ă".repeat(71), 0, opts);
    assert_eq!(parts[0].data_coding, DataCoding::UCS2);
    assert_eq!(
        part_texts(&parts)
            .iter()
            .map(|t| t.chars().count())
            .collect::<Vec<_>>(),
        vec![67, 4]
    );
    let parts = submit_parts(&to, &"ă".repeat(71), 0, wide);
    assert_eq!(
        part_texts(&parts)
            .iter()
            .map(|t| t.chars().count())
            .collect::<Vec<_>>(),
        vec![66, 5]
    );
    // A surrogate pair is not split: 66 + 2 units do not fit in 67.
    let text = format!("{}😀{}", "ă".repeat(66), "ă".repeat(10));
    let parts = submit_parts(&to, &text, 0, opts);
    assert_eq!(part_texts(&parts)[1].chars().next(), Some('😀'));
    // Forced UCS-2, status report, no validity.
    let parts = submit_parts(
        &to,
        "hi",
        0,
        SubmitOptions {
            force_ucs2: true,
            status_report: true,
            validity: None,
            wide_reference: false,
        },
    );
    assert_eq!(parts[0].data_coding, DataCoding::UCS2);
    assert!(parts[0].status_report_request);
    assert_eq!(parts[0].validity, Validity::None);
    // Empty text: one empty part.
    assert_eq!(
        part_texts(&submit_parts(&to, "", 0, opts)),
        vec![String::new()]
    );
}

#[test]
fn deliver_parts_encode() {
    let from = PduAddress {
        number: "DVC-HN".into(),
        type_of_address: 0xD0,
    };
    let time = Timestamp {
        year: 24,
        month: 3,
        day: 15,
        hour: 9,
        minute: 30,
        second: 5,
        tz_quarters: 28,
    };
    let text = "Hồ sơ của bạn đã được tiếp nhận. ".repeat(5);
    let parts = deliver_parts(&from, &text, 7, time, SubmitOptions::default());
    assert_eq!(parts.len(), 3);
    let joined: String = parts.iter().map(|p| p.user_data.text()).collect();
    assert_eq!(joined, text);
    for part in parts {
        round_trips(
            &Pdu {
                smsc: None,
                tpdu: Tpdu::Deliver(part),
            },
            Direction::ToMobile,
        );
    }
}

// ---- property tests ----

fn gsm_char() -> impl Strategy<Value = char> {
    let all: Vec<char> = gsm7::characters().collect();
    proptest::sample::select(all)
}

fn gsm_text(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(gsm_char(), 0..=max).prop_map(|c| c.into_iter().collect())
}

fn unicode_text(max: usize) -> impl Strategy<Value = String> {
    let emoji = proptest::sample::select(vec!['😀', '👍', '🇻', '🇳', '❤', '𝄞', 'ă', 'Đ', 'ữ', '€']);
    proptest::collection::vec(prop_oneof![any::<char>(), emoji], 0..=max)
        .prop_map(|c| c.into_iter().collect())
}

fn address() -> impl Strategy<Value = PduAddress> {
    let digits = proptest::sample::select("0123456789*#abc".chars().collect::<Vec<_>>());
    prop_oneof![
        (
            proptest::collection::vec(digits, 0..=20),
            any::<u8>().prop_filter("not alphanumeric", |t| t & 0x70 != 0x50)
        )
            .prop_map(|(d, t)| PduAddress {
                number: d.into_iter().collect(),
                type_of_address: t
            }),
        (
            gsm_text(11),
            prop_oneof![Just(0xD0u8), Just(0x50), Just(0xD9)]
        )
            .prop_map(|(n, t)| PduAddress {
                number: n,
                type_of_address: t
            }),
    ]
}

fn smsc() -> impl Strategy<Value = Option<PduAddress>> {
    let digits = proptest::sample::select("0123456789*#abc".chars().collect::<Vec<_>>());
    proptest::option::of(
        (proptest::collection::vec(digits, 0..=20), any::<u8>()).prop_map(|(d, t)| PduAddress {
            number: d.into_iter().collect(),
            type_of_address: t,
        }),
    )
}

fn timestamp() -> impl Strategy<Value = Timestamp> {
    (
        0u8..100,
        1u8..13,
        1u8..32,
        0u8..24,
        0u8..60,
        0u8..60,
        -79i8..=79,
    )
        .prop_map(
            |(year, month, day, hour, minute, second, tz_quarters)| Timestamp {
                year,
                month,
                day,
                hour,
                minute,
                second,
                tz_quarters,
            },
        )
}

fn element() -> impl Strategy<Value = InformationElement> {
    prop_oneof![
        any::<(u8, u8, u8)>().prop_map(|(reference, total, sequence)| {
            InformationElement::Concat8 {
                reference,
                total,
                sequence,
            }
        }),
        any::<(u16, u8, u8)>().prop_map(|(reference, total, sequence)| {
            InformationElement::Concat16 {
                reference,
                total,
                sequence,
            }
        }),
        (
            any::<u8>().prop_filter("not a concatenation", |id| *id != 0 && *id != 8),
            proptest::collection::vec(any::<u8>(), 0..=4)
        )
            .prop_map(|(id, data)| InformationElement::Other { id, data }),
    ]
}

/// A data coding scheme and a body it can carry (at most 133 octets,
/// leaving room for a header of up to 13).
fn coding_and_body() -> impl Strategy<Value = (DataCoding, Body)> {
    let coding_of = |alphabet: Alphabet| {
        any::<u8>().prop_filter_map("alphabet", move |dcs| {
            (DataCoding(dcs).alphabet() == alphabet).then_some(DataCoding(dcs))
        })
    };
    prop_oneof![
        (coding_of(Alphabet::Gsm7), gsm_text(70)).prop_map(|(c, t)| (c, Body::Text(t))),
        (coding_of(Alphabet::Ucs2), unicode_text(30)).prop_map(|(c, t)| (c, Body::Text(t))),
        (
            coding_of(Alphabet::EightBit),
            proptest::collection::vec(any::<u8>(), 0..=120)
        )
            .prop_map(|(c, b)| (c, Body::Binary(b))),
    ]
}

fn user_data() -> impl Strategy<Value = (DataCoding, UserData)> {
    (
        coding_and_body(),
        proptest::option::of(proptest::collection::vec(element(), 0..=2)),
    )
        .prop_map(|((coding, body), elements)| {
            (
                coding,
                UserData {
                    header: elements.map(|elements| UserDataHeader { elements }),
                    body,
                },
            )
        })
}

fn deliver() -> impl Strategy<Value = Deliver> {
    (
        any::<(bool, bool, bool, u8)>(),
        address(),
        timestamp(),
        user_data(),
    )
        .prop_map(
            |((mms, rp, sri, pid), originator, time, (data_coding, user_data))| Deliver {
                more_messages_to_send: mms,
                reply_path: rp,
                status_report_indication: sri,
                originator,
                protocol_id: pid,
                data_coding,
                service_centre_time: time,
                user_data,
            },
        )
}

fn validity() -> impl Strategy<Value = Validity> {
    prop_oneof![
        Just(Validity::None),
        any::<u8>().prop_map(Validity::Relative),
        timestamp().prop_map(Validity::Absolute),
        any::<[u8; 7]>().prop_map(Validity::Enhanced),
    ]
}

fn submit() -> impl Strategy<Value = Submit> {
    (
        any::<(bool, bool, bool, u8, u8)>(),
        address(),
        validity(),
        user_data(),
    )
        .prop_map(
            |((rd, srr, rp, mr, pid), destination, validity, (data_coding, user_data))| Submit {
                reject_duplicates: rd,
                status_report_request: srr,
                reply_path: rp,
                message_reference: mr,
                destination,
                protocol_id: pid,
                data_coding,
                validity,
                user_data,
            },
        )
}

fn status_report() -> impl Strategy<Value = StatusReport> {
    (any::<(u8, u8)>(), address(), timestamp(), timestamp()).prop_map(
        |((mr, status), recipient, scts, dt)| StatusReport {
            message_reference: mr,
            recipient,
            service_centre_time: scts,
            discharge_time: dt,
            status,
        },
    )
}

fn check_round_trip(pdu: Pdu, direction: Direction) -> Result<(), TestCaseError> {
    if pdu
        .smsc
        .as_ref()
        .is_some_and(|a| a.number.len() % 2 == 0 && a.number.ends_with('f'))
    {
        return Ok(());
    }
    let encoded = encode(&pdu).map_err(|e| TestCaseError::fail(format!("{e}")))?;
    let smsc_len = usize::from(encoded.bytes[0]) + 1;
    prop_assert_eq!(encoded.tpdu_length, encoded.bytes.len() - smsc_len);
    prop_assert_eq!(decode(&encoded.bytes, direction), Ok(pdu));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn deliver_round_trips(smsc in smsc(), deliver in deliver()) {
        check_round_trip(Pdu { smsc, tpdu: Tpdu::Deliver(deliver) }, Direction::ToMobile)?;
    }

    #[test]
    fn submit_round_trips(smsc in smsc(), submit in submit()) {
        check_round_trip(Pdu { smsc, tpdu: Tpdu::Submit(submit) }, Direction::FromMobile)?;
    }

    #[test]
    fn status_report_round_trips(smsc in smsc(), report in status_report()) {
        check_round_trip(Pdu { smsc, tpdu: Tpdu::StatusReport(report) }, Direction::ToMobile)?;
    }

    #[test]
    fn parts_join_to_the_text(
        text in prop_oneof![gsm_text(700), unicode_text(300)],
        reference: u16,
        force_ucs2: bool,
        wide_reference: bool,
    ) {
        let options = SubmitOptions { force_ucs2, wide_reference, ..SubmitOptions::default() };
        let parts = submit_parts(&PduAddress::unknown("1234"), &text, reference, options);
        let joined: String = parts.iter().map(|p| p.user_data.text()).collect();
        prop_assert_eq!(&joined, &text);
        for (index, part) in parts.iter().enumerate() {
            let pdu = Pdu { smsc: None, tpdu: Tpdu::Submit(part.clone()) };
            let encoded = encode(&pdu).map_err(|e| TestCaseError::fail(format!("{e}")))?;
            // SMSC 1, first octet, MR, address 2 + 2, PID, DCS, VP, UDL.
            let user_data_octets = encoded.bytes.len() - 1 - 9 - 1;
            prop_assert!(user_data_octets <= 140);
            prop_assert_eq!(decode(&encoded.bytes, Direction::FromMobile), Ok(pdu));
            if parts.len() > 1 {
                let concat = part.user_data.concatenation().unwrap();
                prop_assert_eq!(usize::from(concat.sequence), index + 1);
                prop_assert_eq!(usize::from(concat.total), parts.len());
                prop_assert_eq!(concat.reference, if wide_reference { reference } else { reference & 0xFF });
            } else {
                prop_assert_eq!(&part.user_data.header, &None);
            }
        }
    }

    #[test]
    fn any_octets_decode_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        for direction in [Direction::ToMobile, Direction::FromMobile] {
            if let Ok(pdu) = decode(&bytes, direction) {
                if let Ok(encoded) = encode(&pdu) {
                    prop_assert_eq!(decode(&encoded.bytes, direction), Ok(pdu));
                }
            }
        }
    }

    #[test]
    fn mutated_pdus_decode_or_fail_cleanly(
        smsc in smsc(),
        deliver in deliver(),
        submit in submit(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        for (tpdu, direction) in [
            (Tpdu::Deliver(deliver), Direction::ToMobile),
            (Tpdu::Submit(submit), Direction::FromMobile),
        ] {
            let Ok(encoded) = encode(&Pdu { smsc: smsc.clone(), tpdu }) else { continue };
            let mut bytes = encoded.bytes;
            for (index, value) in &edits {
                let at = index.index(bytes.len());
                bytes[at] = *value;
            }
            bytes.truncate(cut.index(bytes.len() + 1).max(1));
            if let Ok(pdu) = decode(&bytes, direction) {
                if let Ok(again) = encode(&pdu) {
                    prop_assert_eq!(decode(&again.bytes, direction), Ok(pdu));
                }
            }
        }
    }
}
