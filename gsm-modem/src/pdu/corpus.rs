//! A deterministic generator of realistic SMS-DELIVER PDUs and of our own
//! reading of each as a JSON line, for comparing this decoder with another
//! one (`examples/pdu_corpus.rs`, `tests/reference_decoder.rs`). Not part of
//! the stable interface.
//!
//! The mix: GSM-7 text with extension characters, UCS-2 Vietnamese and
//! emoji, 8-bit data; single messages and the parts of long ones (8- and
//! 16-bit references), now and then another header element; senders
//! international, unknown, national, alphanumeric and with odd
//! type-of-address octets such as 0x85; time zones east and west;
//! assorted data coding schemes, message waiting groups included.

use super::{
    decode, deliver_parts, encode, to_hex, Body, DataCoding, Deliver, Direction,
    InformationElement, Pdu, PduAddress, SubmitOptions, Timestamp, Tpdu, UserData, UserDataHeader,
};

/// A xorshift64* generator: small, deterministic, good enough for test data.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator from `seed` (0 is replaced by a fixed constant).
    pub fn new(seed: u64) -> Self {
        XorShift(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// A number in `low..=high`.
    pub fn range(&mut self, low: usize, high: usize) -> usize {
        low + self.below(high - low + 1)
    }

    /// One of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

const GSM_WORDS: &[&str] = &[
    "Ho so",
    "cua ban",
    "da duoc",
    "tiep nhan",
    "ma so",
    "H23.45-240315-0001",
    "tra ket qua",
    "ngay",
    "15/03/2024",
    "phi",
    "50.000d",
    "Cam on!",
    "OK",
    "Lien he",
    "1900 1234",
    "Zürich",
    "Ærø",
    "ΔΦΓΛΩ",
    "¿Qué?",
    "¡Hola!",
    "§12",
    "@home",
    "50€",
    "[ma]",
    "{x}",
    "a|b",
    "~/",
    "C:\\tmp",
    "x^2",
    "line\nbreak",
    "cr\r",
    "£5",
    "¥",
    "èéùìò",
    "Ç",
    "ß",
    "Åå",
    "Øø",
];

const VIETNAMESE_WORDS: &[&str] = &[
    "Hồ sơ",
    "của bạn",
    "đã được",
    "tiếp nhận",
    "mã số",
    "trả kết quả",
    "ngày",
    "Ủy ban",
    "nhân dân",
    "phường",
    "Đống Đa",
    "Hà Nội",
    "thủ tục",
    "hành chính",
    "một cửa",
    "Xin cảm ơn",
    "😀",
    "👍🏽",
    "🇻🇳",
    "❤️",
    "📄",
    "✅",
    "đ",
    "Ư ơ ư",
    "quý khách",
    "€",
];

const ALPHANUMERIC_SENDERS: &[&str] = &[
    "Viettel",
    "MobiFone",
    "VNPT",
    "BIDV",
    "Vietcombank",
    "Shopee",
    "Grab",
    "Design@Home",
    "DVC-HN",
    "MOTCUA",
    "Info",
    "Zalo",
    "VinaPhone",
    "TPBank",
    "HCMC_1022",
];

const TIME_ZONES: &[i8] = &[
    28, 28, 28, 0, 4, 8, 22, 23, 36, 39, 57, -3, -12, -16, -20, -28, -40,
];

fn digits(rng: &mut XorShift, count: usize) -> String {
    (0..count)
        .map(|_| char::from(b'0' + rng.below(10) as u8))
        .collect()
}

fn sender(rng: &mut XorShift) -> PduAddress {
    match rng.below(8) {
        0 | 1 => PduAddress::international(&format!("849{}", digits(rng, 8))),
        2 => PduAddress::international(&format!(
            "{}{}",
            rng.pick(&["1", "33", "44", "86", "65"]),
            digits(rng, 9)
        )),
        3 => {
            let count = rng.range(3, 6);
            PduAddress::unknown(&digits(rng, count))
        }
        4 => PduAddress {
            number: format!("0{}", digits(rng, 9)),
            type_of_address: 0xA1,
        },
        5 => PduAddress {
            number: {
                let count = rng.range(4, 11);
                digits(rng, count)
            },
            type_of_address: *rng.pick(&[0x85, 0x85, 0x89, 0xC1, 0x80]),
        },
        _ => {
            let number = if rng.chance(60) {
                (*rng.pick(ALPHANUMERIC_SENDERS)).to_owned()
            } else {
                let set: Vec<char> =
                    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 -_.&"
                        .chars()
                        .collect();
                (0..rng.range(1, 11)).map(|_| *rng.pick(&set)).collect()
            };
            PduAddress {
                number,
                type_of_address: *rng.pick(&[0xD0, 0xD0, 0xD1, 0xD9]),
            }
        }
    }
}

fn timestamp(rng: &mut XorShift) -> Timestamp {
    let year = rng.below(100) as u8;
    let month = rng.range(1, 12) as u8;
    let days = match month {
        2 if year.is_multiple_of(4) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    Timestamp {
        year,
        month,
        day: rng.range(1, days) as u8,
        hour: rng.below(24) as u8,
        minute: rng.below(60) as u8,
        second: rng.below(60) as u8,
        tz_quarters: *rng.pick(TIME_ZONES),
    }
}

fn text_of(rng: &mut XorShift, words: &[&str], length: usize) -> String {
    let mut text = String::new();
    while text.chars().count() < length {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(words[rng.below(words.len())]);
    }
    text
}

fn gsm_text(rng: &mut XorShift, length: usize) -> String {
    if rng.chance(30) {
        let all: Vec<char> = super::gsm7::characters().collect();
        (0..length).map(|_| *rng.pick(&all)).collect()
    } else {
        text_of(rng, GSM_WORDS, length)
    }
}

/// The user data of one message, as one or more parts.
enum Content {
    Gsm(String),
    Ucs2(String),
    Binary(Vec<u8>),
}

/// One generated message: one SMS-DELIVER or the parts of a long one.
fn message(rng: &mut XorShift) -> Vec<Pdu> {
    let smsc = rng
        .chance(85)
        .then(|| PduAddress::international(&format!("849{}", digits(rng, 8))));
    let originator = sender(rng);
    let time = timestamp(rng);
    let long = rng.chance(25);
    let content = match rng.below(10) {
        0..=4 => {
            let length = if long {
                rng.range(161, 500)
            } else {
                rng.range(0, 140)
            };
            Content::Gsm(gsm_text(rng, length))
        }
        5..=7 => {
            let length = if long {
                rng.range(71, 250)
            } else {
                rng.range(1, 60)
            };
            Content::Ucs2(text_of(rng, VIETNAMESE_WORDS, length))
        }
        _ => Content::Binary(
            (0..rng.range(0, 120))
                .map(|_| rng.below(256) as u8)
                .collect(),
        ),
    };
    let options = SubmitOptions {
        wide_reference: rng.chance(40),
        ..SubmitOptions::default()
    };
    let reference = rng.below(65536) as u16;
    let mut parts = match &content {
        Content::Gsm(text) | Content::Ucs2(text) => {
            let options = SubmitOptions {
                force_ucs2: matches!(content, Content::Ucs2(_)),
                ..options
            };
            deliver_parts(&originator, text, reference, time, options)
        }
        Content::Binary(data) => vec![Deliver {
            more_messages_to_send: false,
            reply_path: false,
            status_report_indication: false,
            originator: originator.clone(),
            protocol_id: 0,
            data_coding: DataCoding::EIGHT_BIT,
            service_centre_time: time,
            user_data: UserData {
                header: None,
                body: Body::Binary(data.clone()),
            },
        }],
    };
    let single = parts.len() == 1;
    for part in &mut parts {
        part.more_messages_to_send = rng.chance(10);
        part.status_report_indication = rng.chance(10);
        part.reply_path = rng.chance(5);
        part.data_coding = DataCoding(match (&content, part.data_coding) {
            (Content::Binary(_), _) => *rng.pick(&[0x04, 0x04, 0xF4, 0xF5, 0x15, 0x44]),
            (_, DataCoding::UCS2) => *rng.pick(&[0x08, 0x08, 0x08, 0x18, 0x48, 0xE0]),
            _ => *rng.pick(&[
                0x00, 0x00, 0x00, 0x10, 0x11, 0xF0, 0xF1, 0x40, 0xC0, 0xD0, 0xD8,
            ]),
        });
    }
    if single && rng.chance(25) {
        // A lone part of some other message, and now and then an
        // application port element beside it, when the body leaves room.
        let total = rng.range(2, 9) as u8;
        let sequence = rng.range(1, usize::from(total)) as u8;
        let mut elements = vec![if options.wide_reference {
            InformationElement::Concat16 {
                reference,
                total,
                sequence,
            }
        } else {
            InformationElement::Concat8 {
                reference: reference as u8,
                total,
                sequence,
            }
        }];
        if rng.chance(30) {
            let port = vec![0x0B, 0x84, 0x23, 0xF0];
            let at = rng.below(2);
            elements.insert(
                at,
                InformationElement::Other {
                    id: 0x05,
                    data: port,
                },
            );
        }
        let mut with_header = parts[0].clone();
        with_header.user_data.header = Some(UserDataHeader { elements });
        let pdu = Pdu {
            smsc: None,
            tpdu: Tpdu::Deliver(with_header.clone()),
        };
        if encode(&pdu).is_ok() {
            parts[0] = with_header;
        }
    }
    parts
        .into_iter()
        .map(|deliver| Pdu {
            smsc: smsc.clone(),
            tpdu: Tpdu::Deliver(deliver),
        })
        .collect()
}

fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `time` as `2024-03-15T09:30:05+07:00` (years read as 20xx).
pub fn iso_time(time: &Timestamp) -> String {
    let minutes = i32::from(time.tz_quarters) * 15;
    let sign = if minutes < 0 { '-' } else { '+' };
    format!(
        "20{:02}-{:02}-{:02}T{:02}:{:02}:{:02}{}{:02}:{:02}",
        time.year,
        time.month,
        time.day,
        time.hour,
        time.minute,
        time.second,
        sign,
        minutes.abs() / 60,
        minutes.abs() % 60
    )
}

/// Our reading of the SMS-DELIVER in `bytes` as one JSON object: `hex`,
/// `sender`, `toa`, `text` or `data_hex`, `timestamp`, `concat`, `dcs`.
pub fn json_line(bytes: &[u8]) -> Result<String, super::PduError> {
    let pdu = decode(bytes, Direction::ToMobile)?;
    let Tpdu::Deliver(deliver) = &pdu.tpdu else {
        return Err(super::PduError::BadHeader("not an SMS-DELIVER"));
    };
    let body = match &deliver.user_data.body {
        Body::Text(text) => format!("\"text\": {}", json_string(text)),
        Body::Binary(data) => format!("\"data_hex\": \"{}\"", to_hex(data)),
    };
    let concat = match deliver.user_data.concatenation() {
        Some(c) => format!(
            "{{\"reference\": {}, \"total\": {}, \"sequence\": {}}}",
            c.reference, c.total, c.sequence
        ),
        None => "null".to_owned(),
    };
    Ok(format!(
        "{{\"hex\": \"{}\", \"sender\": {}, \"toa\": {}, {}, \"timestamp\": \"{}\", \"concat\": {}, \"dcs\": {}}}",
        to_hex(bytes),
        json_string(&deliver.originator.number),
        deliver.originator.type_of_address,
        body,
        iso_time(&deliver.service_centre_time),
        concat,
        deliver.data_coding.0
    ))
}

/// `count` generated SMS-DELIVER PDUs from `seed`, each as a JSON line.
/// Panics if a generated PDU does not survive encode and decode: the
/// generator's values are all writable.
pub fn lines(seed: u64, count: usize) -> Vec<String> {
    let mut rng = XorShift::new(seed);
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        for pdu in message(&mut rng) {
            if out.len() == count {
                break;
            }
            let encoded = encode(&pdu).expect("generated PDUs are writable");
            assert_eq!(
                decode(&encoded.bytes, Direction::ToMobile).as_ref(),
                Ok(&pdu),
                "generated PDU {} reads back differently",
                encoded.hex()
            );
            out.push(json_line(&encoded.bytes).expect("generated PDUs decode"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_varied() {
        let a = lines(7, 300);
        assert_eq!(a, lines(7, 300));
        assert_ne!(a, lines(8, 300));
        let joined = a.join("\n");
        for needle in [
            "\"toa\": 133",
            "\"toa\": 208",
            "data_hex",
            "\"reference\"",
            "-0",
            "+07:00",
            "€",
        ] {
            assert!(joined.contains(needle), "no {needle} in the corpus");
        }
    }

    #[test]
    fn json_strings_escape_what_they_must() {
        assert_eq!(
            json_string("a\"b\\c\nd\u{0C}é"),
            "\"a\\\"b\\\\c\\nd\\u000cé\""
        );
    }
}
