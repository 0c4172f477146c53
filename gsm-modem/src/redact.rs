//! What a modem prints can name people: `+CLIP` gives a caller's number,
//! a text-mode header its sender, and a PDU line (hex) encodes the sender's
//! or recipient's number and carries the text. [`redact`] makes such a line
//! fit for a log or an error message; every log line of this crate, and the
//! message of every error that quotes the modem, goes through it.

use std::fmt::Write as _;

/// A run of this many hex digits or more (with a decimal digit in it) is
/// taken for a PDU, or part of one, and never shown.
const PDU_RUN: usize = 16;

/// A run of this many decimal digits or more is taken for a phone number
/// and masked.
const NUMBER_RUN: usize = 5;

/// Digits a masked number keeps at each end, when at least four are hidden.
const KEPT_DIGITS: usize = 3;

/// `text` with what could name someone taken out: every run of 16 or more
/// hex digits (a PDU) replaced by `<N hex digits>`, every other run of 5 or
/// more decimal digits masked in the middle (`+84912345678` →
/// `+849*****678`; 5 to 9 digits keep fewer or none). Everything else (the
/// code's name, short fields like an index or a length, words) is kept.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(|c: char| c.is_ascii_hexdigit()) {
        out.push_str(&rest[..start]);
        let len = rest[start..]
            .find(|c: char| !c.is_ascii_hexdigit())
            .unwrap_or(rest.len() - start);
        let run = &rest[start..start + len];
        if len >= PDU_RUN && run.bytes().any(|b| b.is_ascii_digit()) {
            let _ = write!(out, "<{len} hex digits>");
        } else {
            mask_numbers(run, &mut out);
        }
        rest = &rest[start + len..];
    }
    out.push_str(rest);
    out
}

/// An AT command as it may be logged: the PIN and PUK of `AT+CPIN=` left
/// out, the rest [`redact`]ed.
pub fn command(command: &str) -> String {
    match command.get(..8) {
        Some(head) if head.eq_ignore_ascii_case("AT+CPIN=") => format!("{head}<hidden>"),
        _ => redact(command),
    }
}

/// Writes `run` (ASCII) with each run of [`NUMBER_RUN`] or more decimal
/// digits masked in the middle.
fn mask_numbers(run: &str, out: &mut String) {
    let bytes = run.as_bytes();
    let mut at = 0;
    while at < bytes.len() {
        let digits = bytes[at..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits == 0 {
            out.push(char::from(bytes[at]));
            at += 1;
            continue;
        }
        let number = &run[at..at + digits];
        if digits < NUMBER_RUN {
            out.push_str(number);
        } else {
            let keep = KEPT_DIGITS.min((digits - 4) / 2);
            out.push_str(&number[..keep]);
            out.extend(std::iter::repeat_n('*', digits - 2 * keep));
            out.push_str(&number[digits - keep..]);
        }
        at += digits;
    }
}

#[cfg(test)]
mod tests {
    use super::{command, redact};

    #[test]
    fn numbers_are_masked_and_pdus_left_out() {
        assert_eq!(
            redact(r#"+CLIP: "+84912345678",145,,,,0"#),
            r#"+CLIP: "+849*****678",145,,,,0"#
        );
        assert_eq!(redact("0912345678"), "091****678");
        assert_eq!(redact("12345"), "*****");
        let pdu = "07914889200000F0040B914819325476F8000042103221000000046F79D804";
        assert_eq!(redact(pdu), format!("<{} hex digits>", pdu.len()));
        assert_eq!(
            redact(&format!("+CMGR: 0,,27\n{pdu}")),
            format!("+CMGR: 0,,27\n<{} hex digits>", pdu.len())
        );
    }

    #[test]
    fn what_the_layer_logs_of_the_modem_is_redacted() {
        use crate::at::{AtError, AtEvent, Urc};
        let pdu = "07914889200000F0040B914819325476F8000042103221000000046F79D804";
        let clip = Urc::parse(r#"+CLIP: "+84912345678",145,,,,0"#).expect("a code");
        assert_eq!(
            AtEvent::Unsolicited(clip).to_string(),
            r#"unsolicited +CLIP: "+849*****678",145,,,,0"#
        );
        for shown in [
            AtEvent::Line(pdu.to_owned()).to_string(),
            AtEvent::Line(r#"+CLIP: "0912345678",129"#.to_owned()).to_string(),
            AtEvent::Unsolicited(Urc::Message {
                length: 24,
                pdu: crate::pdu::from_hex(pdu).unwrap(),
            })
            .to_string(),
            AtError::Unexpected {
                command: "+CMGR",
                line: pdu.to_owned(),
            }
            .to_string(),
            crate::session::ModemError::Timeout {
                command: r#"AT+CPIN="1234""#.to_owned(),
                after: std::time::Duration::from_secs(1),
            }
            .to_string(),
        ] {
            for secret in ["4819325476", "912345678", "1234\""] {
                assert!(!shown.contains(secret), "{shown}");
            }
        }
    }

    #[test]
    fn a_pin_is_never_shown() {
        assert_eq!(command(r#"AT+CPIN="1234""#), "AT+CPIN=<hidden>");
        assert_eq!(command(r#"at+cpin="12345678","1234""#), "at+cpin=<hidden>");
        assert_eq!(command("AT+CPIN?"), "AT+CPIN?");
        assert_eq!(command("AT+CMGR=3"), "AT+CMGR=3");
    }

    #[test]
    fn what_names_nobody_is_kept() {
        for line in [
            "+CMTI: \"SM\",3",
            "^BOOT:2084,0,0,0,75",
            "^MODE: 5,4",
            "+CREG: 2,1,4CA,81DE",
            "+CMS ERROR: 500",
            "COMMAND NOT SUPPORT",
            "+CPIN: READY",
            "Đã nhận",
            "",
        ] {
            assert_eq!(redact(line), line);
        }
    }
}
