//! Writes the fuzz targets' seed corpus, `fuzz/corpus/<target>/seed-NNN`,
//! from the project's own encoders and data: SMPP PDUs as the gateway and
//! its peers write them, replies from `encode_reply` in every long-message
//! mode, SMS PDUs from gsm-modem's corpus and `submit_parts`, AT transcripts
//! in the styles of the modems `gsm-modem/tests/at_fixtures.rs` covers, the
//! sample dossiers, codes and numbers as citizens type them, USSD dials.
//!
//! `cargo run --example fuzz_seeds` (from the repository root) replaces the
//! corpus; it is deterministic. `.ci/run` fuzzes each target for a short
//! time starting from these inputs.

use std::collections::BTreeSet;
use std::path::Path;

use gsm_modem::pdu::{encode, submit_parts, PduAddress, SubmitOptions, Tpdu};
use motcua_sms::channel::SessionInfo;
use motcua_sms::smpp::pdu::{tag, Bind, BindKind, Body, Pdu, ShortMessage, Tlv};
use motcua_sms::smpp::text::{encode_reply, DefaultAlphabet, LongMessageMode};

/// Replies and messages as they travel (found, not found, help), accented and not.
const TEXTS: &[&str] = &[
    "TC 000.00.12.H58-240315-0007",
    "tc 000 00 12 h58 240315 7",
    "xin chao",
    "HS 000.00.12.H58-240315-0007: Cấp giấy phép xây dựng nhà ở riêng lẻ. \
     Trạng thái: Đang xử lý. Hẹn trả: 29/03/2024. Chủ hồ sơ: Nguyễn Văn An. \
     Đơn vị: UBND huyện Cái Bè. Tra cứu thêm: 8058",
    "HS 000.00.12.H58-240315-0007: Cap giay phep xay dung nha o rieng le. \
     Trang thai: Dang xu ly. Hen tra: 29/03/2024. Tong dai 8058",
    "Không tìm thấy hồ sơ 000.00.12.H58-240315-9999. Soạn TC <mã hồ sơ> gửi 8058.",
    "Khong tim thay ho so. Soan TC <ma ho so> gui 8058 {€} [^~]",
    "1",
];

/// Dossier codes and numbers as citizens write them.
const CODES: &[&str] = &[
    "TC 000.00.12.H58-240315-0007",
    "tc 000 00 12 h58 240315 7",
    "000.00.12.H58-240315-0007",
    "38.98.H29-210519-0003",
    "Kính gửi, cho hỏi hồ sơ TC 000.00.12.H58-240315-0007 ạ",
    "HS 000.00.12.h58-240315-0007",
    "TC",
    "TC 0000",
    "TC 000.00.12.H58-240315-0007 000.00.12.H58-240315-0008",
    "０００.００.１２.Ｈ５８-２４０３１５-０００７",
];

const NUMBERS: &[&str] = &[
    "0912345678",
    "+84912345678",
    "84912345678",
    "0084912345678",
    "091 234 5678",
    "091-234-5678",
    "(+84) 912.345.678",
    "0987000111",
    "02838123456",
    "8058",
    "0912345678901",
    "+1 202 555 0100",
    "Viettel",
    "",
];

const DIALS: &[&str] = &[
    "*8058#",
    "*8058*1#",
    "*8058*000001200240315007#",
    "*8058*0001200240315007#",
    "*8058**#",
    "1",
    "2",
    "0",
    "000.00.12.H58-240315-0007",
    "0001200240315007",
    "*100#",
    "#",
];

/// AT transcripts in the styles of the modems the fixtures cover.
const AT: &[&str] = &[
    "AT\r\r\nOK\r\n",
    "\r\n+CPIN: READY\r\n\r\nOK\r\n",
    "\r\n+CPIN: SIM PIN\r\n\r\nOK\r\n",
    "\r\n+CME ERROR: 16\r\n",
    "\r\n+CSQ: 14,99\r\n\r\nOK\r\n",
    "\r\n+CREG: 0,1\r\n\r\nOK\r\n",
    "\r\n+CPMS: \"SM\",3,30,\"SM\",3,30,\"SM\",3,30\r\n\r\nOK\r\n",
    "\r\n+CMTI: \"SM\",3\r\n",
    "\r\n^BOOT:27043391,0,0,0,72\r\n\r\n^RSSI:14\r\n",
    "\r\n+ZUSIMR:2\r\n\r\n+PBREADY\r\n",
    "\r\n+CMS ERROR: 500\r\n",
    "\r\n+CMS ERROR: 322\r\n",
    "\r\nERROR\r\n",
    "\r\n> ",
    "\r\n+CMGS: 12\r\n\r\nOK\r\n",
    "\r\n+CMGS: 12,\"24/03/15,10:00:00+28\"\r\n\r\nOK\r\n",
    "\r\n+CDSI: \"SR\",1\r\n",
    "\r\n+CUSD: 0,\"Xin chao\",15\r\n",
    "\r\nRING\r\n\r\nNO CARRIER\r\n",
];

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let deliver_hex = deliver_pdus();
    let submit = submit_pdus();
    let frames = frames();

    write(&root, "smpp_frame", frames.iter().map(|f| f.to_vec()));
    write(&root, "smpp_stream", streams(&frames));
    write(&root, "sms_text_decode", text_decode_inputs());
    write(&root, "smpp_text", short_message_inputs(false));
    write(&root, "delivery_receipt", short_message_inputs(true));
    write(&root, "dossier_code_extract", strings(CODES));
    write(&root, "msisdn_parse", strings(NUMBERS));
    write(&root, "portal_record", portal_records());
    write(&root, "ussd_input", ussd_inputs());
    write(
        &root,
        "sms_pdu",
        deliver_hex
            .iter()
            .take(30)
            .map(|hex| from_hex(hex))
            .chain(submit.iter().cloned()),
    );
    write(&root, "at_lines", at_inputs(&deliver_hex, &submit));
}

/// Replaces `root/target` with `seeds` (duplicates dropped), named by order.
fn write(root: &Path, target: &str, seeds: impl IntoIterator<Item = Vec<u8>>) {
    let dir = root.join(target);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).expect("old corpus removed");
    }
    std::fs::create_dir_all(&dir).expect("corpus directory");
    let unique: BTreeSet<Vec<u8>> = seeds.into_iter().collect();
    // In order of first appearance would need a second set; sorted is
    // deterministic and as good for a corpus.
    for (i, seed) in unique.iter().enumerate() {
        std::fs::write(dir.join(format!("seed-{i:03}")), seed).expect("seed written");
    }
    println!("{target}: {} seeds", unique.len());
}

fn strings(texts: &[&str]) -> Vec<Vec<u8>> {
    texts.iter().map(|t| t.as_bytes().to_vec()).collect()
}

fn from_hex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

/// The reply parts `encode_reply` writes for every text, mode and alphabet.
fn reply_parts() -> Vec<ShortMessage> {
    let mut out = Vec::new();
    for (i, text) in TEXTS.iter().enumerate() {
        for mode in LongMessageMode::ALL {
            for alphabet in [DefaultAlphabet::Gsm7Unpacked, DefaultAlphabet::Gsm7Packed] {
                for part in encode_reply(text, 40 + i as u16, mode, alphabet) {
                    out.push(ShortMessage {
                        source_addr_ton: 0,
                        source_addr: "8058".into(),
                        dest_addr_ton: 1,
                        dest_addr_npi: 1,
                        destination_addr: "84912345678".into(),
                        esm_class: part.esm_class,
                        data_coding: part.data_coding,
                        registered_delivery: 1,
                        short_message: part.short_message,
                        tlvs: part.tlvs,
                        ..ShortMessage::default()
                    });
                }
            }
        }
    }
    out
}

/// A citizen's message as a carrier delivers it.
fn incoming(text: &str) -> ShortMessage {
    ShortMessage {
        source_addr_ton: 1,
        source_addr_npi: 1,
        source_addr: "84912345678".into(),
        destination_addr: "8058".into(),
        short_message: text.as_bytes().to_vec(),
        ..ShortMessage::default()
    }
}

/// Delivery receipts as carriers write them: in the text, in TLVs, both.
fn receipts() -> Vec<ShortMessage> {
    let text = |id: &str, stat: &str, err: &str| {
        format!(
            "id:{id} sub:001 dlvrd:001 submit date:2403151000 done date:2403151001 \
             stat:{stat} err:{err} text:HS 000.00.12.H58"
        )
    };
    let mut out = Vec::new();
    for (id, stat, err) in [
        ("1A2B3C", "DELIVRD", "000"),
        ("0000012345", "UNDELIV", "001"),
        ("9f86d081884c7d65", "EXPIRED", "000"),
        ("42", "REJECTD", "088"),
    ] {
        let mut sm = incoming(&text(id, stat, err));
        sm.esm_class = 0x04;
        out.push(sm.clone());
        sm.tlvs = vec![
            Tlv {
                tag: tag::RECEIPTED_MESSAGE_ID,
                value: format!("{id}\0").into_bytes(),
            },
            Tlv {
                tag: tag::MESSAGE_STATE,
                value: vec![2],
            },
            Tlv {
                tag: tag::NETWORK_ERROR_CODE,
                value: vec![3, 0, 1],
            },
        ];
        out.push(sm.clone());
        sm.short_message.clear();
        out.push(sm);
    }
    out
}

/// USSD turns as a USSD centre sends them over SMPP.
fn ussd() -> Vec<ShortMessage> {
    let mut out = Vec::new();
    for (dial, op, end) in [("*8058#", 1u8, false), ("1", 18, false), ("0", 18, true)] {
        let mut sm = incoming(dial);
        sm.service_type = "USSD".into();
        sm.tlvs = vec![
            Tlv {
                tag: tag::USSD_SERVICE_OP,
                value: vec![op],
            },
            Tlv {
                tag: tag::ITS_SESSION_INFO,
                value: SessionInfo {
                    session: 7,
                    sequence: 1,
                    end,
                }
                .encode()
                .to_vec(),
            },
        ];
        out.push(sm);
    }
    out
}

/// Whole PDUs as the gateway and its peers exchange them.
fn frames() -> Vec<Vec<u8>> {
    let mut bodies = vec![
        Body::Bind(Bind::new(BindKind::Transceiver, "demo", "demo")),
        Body::Bind(Bind::new(BindKind::Transmitter, "motcua", "secret")),
        Body::Bind(Bind::new(BindKind::Receiver, "carrier-test", "s3cr3t")),
        Body::BindResp {
            kind: BindKind::Transceiver,
            system_id: "motcua".into(),
            tlvs: vec![Tlv {
                tag: tag::SC_INTERFACE_VERSION,
                value: vec![0x34],
            }],
        },
        Body::SubmitSmResp {
            message_id: "1A2B3C".into(),
        },
        Body::DeliverSmResp {
            message_id: String::new(),
        },
        Body::DataSmResp {
            message_id: "77".into(),
        },
        Body::EnquireLink,
        Body::EnquireLinkResp,
        Body::Unbind,
        Body::UnbindResp,
        Body::GenericNack,
    ];
    for sm in reply_parts().into_iter().step_by(3) {
        bodies.push(Body::SubmitSm(sm.clone()));
        bodies.push(Body::DeliverSm(sm));
    }
    for text in CODES.iter().take(4) {
        bodies.push(Body::SubmitSm(incoming(text)));
        bodies.push(Body::DeliverSm(incoming(text)));
        let mut data = incoming("");
        data.tlvs.push(Tlv {
            tag: tag::MESSAGE_PAYLOAD,
            value: text.as_bytes().to_vec(),
        });
        bodies.push(Body::DataSm(data));
    }
    for sm in receipts().into_iter().chain(ussd()) {
        bodies.push(Body::DeliverSm(sm));
    }
    bodies
        .into_iter()
        .enumerate()
        .map(|(i, body)| Pdu::new(i as u32 + 1, body).to_bytes().to_vec())
        .collect()
}

/// Several frames back to back, the last one cut short.
fn streams(frames: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = frames.iter().take(12).cloned().collect();
    for window in frames.chunks(3).take(20) {
        let mut stream: Vec<u8> = window.concat();
        out.push(stream.clone());
        stream.truncate(stream.len() - 3);
        out.push(stream);
    }
    out
}

/// `sms_text_decode`: data_coding, esm_class, then the text bytes (in the
/// message_payload TLV when data_coding is odd).
fn text_decode_inputs() -> Vec<Vec<u8>> {
    reply_parts()
        .into_iter()
        .filter(|sm| sm.data_coding % 2 == 0)
        .map(|sm| {
            let body = if sm.short_message.is_empty() {
                sm.tlv(tag::MESSAGE_PAYLOAD).unwrap_or_default().to_vec()
            } else {
                sm.short_message
            };
            let mut input = vec![sm.data_coding, sm.esm_class];
            input.extend(body);
            input
        })
        .step_by(2)
        .collect()
}

/// `smpp_text` and `delivery_receipt` read a short message from
/// `arbitrary::Unstructured`: data_coding, esm_class, the text's length
/// (one byte for a range of at most 256) and bytes, a TLV count, then each
/// TLV's tag choice, length and value. Written that way from real messages.
fn short_message_inputs(receipt_tags: bool) -> Vec<Vec<u8>> {
    let choices: &[u16] = if receipt_tags {
        &[
            tag::RECEIPTED_MESSAGE_ID,
            tag::MESSAGE_STATE,
            tag::NETWORK_ERROR_CODE,
            tag::MESSAGE_PAYLOAD,
        ]
    } else {
        &[
            tag::MESSAGE_PAYLOAD,
            tag::SAR_MSG_REF_NUM,
            tag::SAR_TOTAL_SEGMENTS,
            tag::SAR_SEGMENT_SEQNUM,
        ]
    };
    let messages = if receipt_tags {
        receipts()
    } else {
        reply_parts().into_iter().step_by(2).collect()
    };
    messages
        .into_iter()
        .map(|sm| {
            let mut input = vec![sm.data_coding, sm.esm_class];
            let text = &sm.short_message[..sm.short_message.len().min(254)];
            input.push(text.len() as u8);
            input.extend_from_slice(text);
            let tlvs: Vec<&Tlv> = sm
                .tlvs
                .iter()
                .filter(|t| choices.contains(&t.tag))
                .take(4)
                .collect();
            input.push(tlvs.len() as u8);
            for tlv in tlvs {
                let choice = choices.iter().position(|t| *t == tlv.tag).unwrap_or(0);
                input.push(choice as u8);
                // A length in 0..=300 takes two bytes.
                let value = &tlv.value[..tlv.value.len().min(300)];
                input.extend_from_slice(&(value.len() as u16).to_be_bytes());
                input.extend_from_slice(value);
            }
            input
        })
        .collect()
}

fn portal_records() -> Vec<Vec<u8>> {
    let sample = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/sample-dossiers.jsonl"),
    )
    .expect("docs/sample-dossiers.jsonl");
    sample
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| line.as_bytes().to_vec())
        .collect()
}

fn ussd_inputs() -> Vec<Vec<u8>> {
    let mut out = strings(DIALS);
    for (session, sequence, end) in [(0, 0, false), (7, 1, false), (255, 127, true)] {
        out.push(
            SessionInfo {
                session,
                sequence,
                end,
            }
            .encode()
            .to_vec(),
        );
    }
    out
}

/// SMS-DELIVER PDUs (hex, service centre first) from gsm-modem's corpus.
fn deliver_pdus() -> Vec<String> {
    gsm_modem::pdu::corpus::lines(20240315, 60)
        .iter()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            value["hex"].as_str().expect("hex").to_owned()
        })
        .collect()
}

/// The SMS-SUBMITs the modem channel writes for replies.
fn submit_pdus() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (i, text) in TEXTS.iter().enumerate() {
        for (force_ucs2, wide_reference, status_report) in
            [(false, false, false), (true, true, true)]
        {
            let options = SubmitOptions {
                status_report,
                force_ucs2,
                wide_reference,
                ..SubmitOptions::default()
            };
            for submit in submit_parts(
                &PduAddress::international("84912345678"),
                text,
                300 + i as u16,
                options,
            ) {
                let pdu = gsm_modem::pdu::Pdu {
                    smsc: None,
                    tpdu: Tpdu::Submit(submit),
                };
                out.push(encode(&pdu).expect("our submits encode").bytes);
            }
        }
    }
    out
}

/// `at_lines`: a cut position, then a modem's output.
fn at_inputs(deliver_hex: &[String], submit: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (i, text) in AT.iter().enumerate() {
        let mut input = vec![(i * 7) as u8];
        input.extend_from_slice(text.as_bytes());
        out.push(input);
    }
    for (i, hex) in deliver_hex.iter().take(8).enumerate() {
        let listing = format!(
            "\r\n+CMGL: {i},0,,{}\r\n{hex}\r\n\r\nOK\r\n",
            hex.len() / 2 - 1
        );
        out.push([vec![(i * 11) as u8], listing.into_bytes()].concat());
        let read = format!("\r\n+CMGR: 0,,{}\r\n{hex}\r\n\r\nOK\r\n", hex.len() / 2 - 1);
        out.push([vec![3], read.into_bytes()].concat());
    }
    for pdu in submit.iter().take(4) {
        let hex: String = pdu.iter().map(|b| format!("{b:02X}")).collect();
        let echo = format!(
            "AT+CMGS={}\r\r\n> {hex}\x1a\r\n+CMGS: 12\r\n\r\nOK\r\n",
            pdu.len() - 1
        );
        out.push([vec![9], echo.into_bytes()].concat());
    }
    out
}
