//! The AT line codec: bytes from a modem → [`AtEvent`]s. This module owns
//! cutting the stream into lines, the `> ` prompt, telling final result
//! codes, information lines and unsolicited codes apart, and the
//! multi-line cases (`+CMT` / `+CDS` with their PDU line, a `+CUSD` string
//! with line breaks in it).

use bytes::{Buf, BytesMut};
use tokio_util::codec::Decoder;

use super::text::{decode_hex, name_value, split_fields};
use super::urc::Urc;
use super::{AtError, AtEvent, ErrorCode, FinalResult};

/// The longest line the codec accepts, in bytes (line end excluded). The
/// longest real line is a PDU line: 2 × (12 + 164) hex digits.
pub const MAX_LINE_LEN: usize = 4096;

/// The most continuation lines joined into one `+CUSD` string whose quote
/// does not close.
pub const MAX_USSD_LINES: usize = 32;

/// Cuts a modem's output into events. Lines end in `\r\n`, `\r\r\n`, a
/// bare `\r` or `\n`; empty lines are skipped; `> ` with no line end is the
/// prompt. A line an unsolicited result code starts is given as
/// [`AtEvent::Unsolicited`], unless the command in progress expects a
/// response with that prefix ([`AtCodec::expect`]): `+CREG: 0,1` after
/// `AT+CREG?` is a response, on its own it is news. `+CMT:` / `+CDS:` take
/// the next line as their PDU. Bytes that are not UTF-8 are read lossily.
/// Echoed command lines (`AT+CMGL=4`) are plain [`AtEvent::Line`]s.
///
/// The details, for the ambiguous cases:
///
/// - Every `\r` and every `\n` ends a line and empty (or blank) lines are
///   skipped, so `\r\n`, `\r\r\n`, `\n\r` all read the same however the
///   bytes are split between reads. Lines are trimmed.
/// - The prompt is `>` and a space at the start of a line; it is given as
///   soon as those two bytes are in, whatever follows. A line that is just
///   `>` (a modem ending the prompt with a line end) is a prompt too.
/// - Final result codes are recognised whatever is expected: `OK`,
///   `ERROR`, `+CME ERROR: <n|text>`, `+CMS ERROR: <n|text>`,
///   `NO CARRIER` / `BUSY` / `NO ANSWER` / `NO DIALTONE` (a
///   [`FinalResult::CallResult`]), `COMMAND NOT SUPPORT` and
///   `TOO MANY PARAMETERS` (a [`FinalResult::NotSupported`]).
/// - `+CMT: [<alpha>],<length>` and `+CDS: <length>`, when not expected,
///   wait for the next non-empty line. If it is hex, the two make one
///   [`Urc::Message`] / [`Urc::StatusReport`] (the announced length is
///   passed on, not checked against the octets: that is the PDU decoder's
///   business). If it is not hex (or a prompt, or a line too long comes),
///   the header is given alone as an [`AtEvent::Line`] and the other line
///   is then read on its own, so an `OK` after a truncated `+CMT` is still
///   seen and nothing is silently eaten.
/// - A `+CUSD:` line with an odd number of `"` continues on the following
///   non-empty lines, joined with `\n`, until the quote closes. The join
///   stops early (and what was joined is given as it is) before a final
///   result code, a prompt, a line too long, past [`MAX_USSD_LINES`] lines
///   or [`MAX_LINE_LEN`] bytes. The joined line is unsolicited or a `Line`
///   like any other, by [`AtCodec::expect`].
/// - A line longer than [`MAX_LINE_LEN`] gives [`AtError::LineTooLong`];
///   its bytes are dropped up to the next line end, and decoding goes on
///   after it if called again (a `FramedRead` ends its stream after an
///   error; a session that wants to go on keeps its own loop over
///   [`Decoder::decode`] or builds a new `FramedRead` from the parts).
/// - At the end of the stream ([`Decoder::decode_eof`]) an unterminated
///   last line is read as a line, and a waiting `+CMT` header or `+CUSD`
///   join is given as it is.
#[derive(Debug, Default)]
pub struct AtCodec {
    /// Prefixes of the command in progress's response lines.
    expected: Vec<String>,
    /// A multi-line event under way.
    pending: Pending,
    /// Dropping the rest of a line that was too long.
    discarding: bool,
}

/// A multi-line event waiting for its next line.
#[derive(Debug, Default)]
enum Pending {
    #[default]
    Nothing,
    /// A `+CMT:` / `+CDS:` header waiting for its PDU line.
    Pdu {
        header: String,
        length: u16,
        report: bool,
    },
    /// A `+CUSD:` line whose quoted string is not closed yet.
    Ussd { text: String, lines: usize },
}

impl AtCodec {
    /// A codec expecting no response.
    pub fn new() -> Self {
        AtCodec::default()
    }

    /// The prefixes (e.g. `["+CREG:"]`) the command now in progress answers
    /// with; lines starting with them are [`AtEvent::Line`], not unsolicited.
    ///
    /// Matching is by `starts_with`, case-sensitive: give the prefix with its
    /// colon (see [`command::response_prefix`](super::command::response_prefix)).
    pub fn expect(&mut self, prefixes: &[&str]) {
        self.expected = prefixes.iter().map(|p| (*p).to_owned()).collect();
    }

    /// No command in progress.
    pub fn expect_nothing(&mut self) {
        self.expected.clear();
    }

    /// True when a line with this text is a response of the command in progress.
    fn is_expected(&self, line: &str) -> bool {
        self.expected
            .iter()
            .any(|p| !p.is_empty() && line.starts_with(p.as_str()))
    }

    /// A complete line outside any multi-line event: a response line or an
    /// unsolicited code.
    fn classify(&self, line: String) -> AtEvent {
        if self.is_expected(&line) {
            return AtEvent::Line(line);
        }
        match Urc::parse(&line) {
            Some(urc) => AtEvent::Unsolicited(urc),
            None => AtEvent::Line(line),
        }
    }

    /// Gives up on the multi-line event under way, giving what it has.
    fn flush(&mut self) -> Option<AtEvent> {
        match std::mem::take(&mut self.pending) {
            Pending::Nothing => None,
            Pending::Pdu { header, .. } => Some(AtEvent::Line(header)),
            Pending::Ussd { text, .. } => Some(self.classify(text)),
        }
    }
}

/// Where the first line end (`\r` or `\n`) is.
fn find_line_end(buf: &[u8]) -> Option<usize> {
    buf.iter().position(|&b| b == b'\r' || b == b'\n')
}

/// The final result code `line` is, if it is one.
pub fn parse_final(line: &str) -> Option<FinalResult> {
    let line = line.trim();
    Some(match line {
        "OK" => FinalResult::Ok,
        "ERROR" => FinalResult::Error,
        "NO CARRIER" | "BUSY" | "NO ANSWER" | "NO DIALTONE" => {
            FinalResult::CallResult(line.to_owned())
        }
        "COMMAND NOT SUPPORT" | "TOO MANY PARAMETERS" => FinalResult::NotSupported(line.to_owned()),
        _ => {
            if let Some(code) = line.strip_prefix("+CME ERROR:") {
                FinalResult::CmeError(error_code(code))
            } else if let Some(code) = line.strip_prefix("+CMS ERROR:") {
                FinalResult::CmsError(error_code(code))
            } else {
                return None;
            }
        }
    })
}

fn error_code(code: &str) -> ErrorCode {
    let code = super::text::unquote(code);
    match super::text::dec(code) {
        Some(n) => ErrorCode::Number(n),
        None => ErrorCode::Text(code.to_owned()),
    }
}

/// The announced length of a `+CMT: [<alpha>],<length>` / `+CDS: <length>`
/// header, and whether it is a status report; `None` for other lines.
fn two_line_header(line: &str) -> Option<(u16, bool)> {
    let (name, value) = name_value(line);
    let report = match name {
        "+CMT" => false,
        "+CDS" => true,
        _ => return None,
    };
    if !line.contains(':') {
        return None;
    }
    let fields = split_fields(value);
    let length = super::text::dec(fields.last()?)?;
    Some((length, report))
}

/// True when a `+CUSD:` line opens a quote it does not close.
fn opens_ussd(line: &str) -> bool {
    line.starts_with("+CUSD:") && quotes(line) % 2 == 1
}

fn quotes(text: &str) -> usize {
    text.bytes().filter(|&b| b == b'"').count()
}

/// A line that ends any multi-line event.
fn breaks_join(line: &str) -> bool {
    line == ">" || parse_final(line).is_some()
}

impl Decoder for AtCodec {
    type Item = AtEvent;
    type Error = AtError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<AtEvent>, AtError> {
        // Every path through the loop either consumes bytes or returns, and
        // every return without consuming leaves `pending` empty, so the
        // next call makes progress.
        loop {
            if self.discarding {
                match find_line_end(src) {
                    Some(end) => {
                        src.advance(end + 1);
                        self.discarding = false;
                    }
                    None => {
                        src.clear();
                        return Ok(None);
                    }
                }
            }
            let ends = src
                .iter()
                .take_while(|&&b| b == b'\r' || b == b'\n')
                .count();
            src.advance(ends);
            match src.first() {
                None => return Ok(None),
                Some(b'>') => match src.get(1) {
                    None => return Ok(None),
                    Some(b' ') => {
                        if let Some(event) = self.flush() {
                            return Ok(Some(event));
                        }
                        src.advance(2);
                        return Ok(Some(AtEvent::Prompt));
                    }
                    Some(_) => {}
                },
                Some(_) => {}
            }
            let end = find_line_end(src);
            if end.unwrap_or(src.len()) > MAX_LINE_LEN {
                if let Some(event) = self.flush() {
                    return Ok(Some(event));
                }
                match end {
                    Some(end) => src.advance(end + 1),
                    None => {
                        src.clear();
                        self.discarding = true;
                    }
                }
                return Err(AtError::LineTooLong(MAX_LINE_LEN));
            }
            let Some(end) = end else {
                return Ok(None);
            };
            let line = String::from_utf8_lossy(&src[..end]).trim().to_owned();
            if line.is_empty() {
                src.advance(end + 1);
                continue;
            }
            match std::mem::take(&mut self.pending) {
                Pending::Nothing => {}
                Pending::Pdu {
                    header,
                    length,
                    report,
                } => {
                    let Some(pdu) = decode_hex(&line) else {
                        // Not a PDU: the header goes alone, this line is
                        // read afresh on the next call.
                        return Ok(Some(AtEvent::Line(header)));
                    };
                    src.advance(end + 1);
                    let urc = if report {
                        Urc::StatusReport { length, pdu }
                    } else {
                        Urc::Message { length, pdu }
                    };
                    return Ok(Some(AtEvent::Unsolicited(urc)));
                }
                Pending::Ussd { mut text, lines } => {
                    if breaks_join(&line)
                        || lines >= MAX_USSD_LINES
                        || text.len() + 1 + line.len() > MAX_LINE_LEN
                    {
                        return Ok(Some(self.classify(text)));
                    }
                    src.advance(end + 1);
                    text.push('\n');
                    text.push_str(&line);
                    if quotes(&text).is_multiple_of(2) {
                        return Ok(Some(self.classify(text)));
                    }
                    self.pending = Pending::Ussd {
                        text,
                        lines: lines + 1,
                    };
                    continue;
                }
            }
            src.advance(end + 1);
            if line == ">" {
                return Ok(Some(AtEvent::Prompt));
            }
            if let Some(result) = parse_final(&line) {
                return Ok(Some(AtEvent::Final(result)));
            }
            if !self.is_expected(&line) {
                if let Some((length, report)) = two_line_header(&line) {
                    self.pending = Pending::Pdu {
                        header: line,
                        length,
                        report,
                    };
                    continue;
                }
            }
            if opens_ussd(&line) {
                self.pending = Pending::Ussd {
                    text: line,
                    lines: 0,
                };
                continue;
            }
            return Ok(Some(self.classify(line)));
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<AtEvent>, AtError> {
        if let Some(event) = self.decode(src)? {
            return Ok(Some(event));
        }
        if !src.is_empty() {
            // An unterminated last line (or a lone `>`): end it and read it.
            src.extend_from_slice(b"\n");
            if let Some(event) = self.decode(src)? {
                return Ok(Some(event));
            }
        }
        src.clear();
        self.discarding = false;
        Ok(self.flush())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::at::urc::Registration;
    use proptest::prelude::*;

    /// One decode result, comparable.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Got {
        Event(AtEvent),
        TooLong,
        Io,
    }

    /// Feeds `chunks` one after the other, decoding after each until the
    /// codec wants more; then the end of the stream.
    fn run(codec: &mut AtCodec, chunks: &[&[u8]]) -> Vec<Got> {
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for chunk in chunks {
            buf.extend_from_slice(chunk);
            loop {
                match codec.decode(&mut buf) {
                    Ok(Some(e)) => out.push(Got::Event(e)),
                    Ok(None) => break,
                    Err(e) => out.push(err(e)),
                }
                assert!(out.len() < 100_000, "decoder loops");
            }
        }
        loop {
            match codec.decode_eof(&mut buf) {
                Ok(Some(e)) => out.push(Got::Event(e)),
                Ok(None) => break,
                Err(e) => out.push(err(e)),
            }
            assert!(out.len() < 100_000, "decoder loops at eof");
        }
        out
    }

    fn err(e: AtError) -> Got {
        match e {
            AtError::LineTooLong(_) => Got::TooLong,
            _ => Got::Io,
        }
    }

    fn events(bytes: &[u8]) -> Vec<Got> {
        run(&mut AtCodec::new(), &[bytes])
    }

    fn expecting(prefixes: &[&str], bytes: &[u8]) -> Vec<Got> {
        let mut codec = AtCodec::new();
        codec.expect(prefixes);
        run(&mut codec, &[bytes])
    }

    fn line(s: &str) -> Got {
        Got::Event(AtEvent::Line(s.into()))
    }
    fn ok() -> Got {
        Got::Event(AtEvent::Final(FinalResult::Ok))
    }
    fn prompt() -> Got {
        Got::Event(AtEvent::Prompt)
    }
    fn urc(u: Urc) -> Got {
        Got::Event(AtEvent::Unsolicited(u))
    }
    fn fin(f: FinalResult) -> Got {
        Got::Event(AtEvent::Final(f))
    }
    fn cmti(index: u32) -> Got {
        urc(Urc::MessageStored {
            storage: "SM".into(),
            index,
        })
    }

    #[test]
    fn line_ends_of_every_kind() {
        let want = vec![line("+CSQ: 14,99"), ok()];
        for bytes in [
            &b"\r\n+CSQ: 14,99\r\n\r\nOK\r\n"[..],
            b"+CSQ: 14,99\r\r\nOK\r\r\n",
            b"+CSQ: 14,99\rOK\r",
            b"+CSQ: 14,99\nOK\n",
            b"\n\r+CSQ: 14,99  \n\r\n \r\nOK",
        ] {
            assert_eq!(expecting(&["+CSQ:"], bytes), want, "{bytes:?}");
        }
    }

    #[test]
    fn final_results() {
        let got = events(
            b"OK\r\nERROR\r\n+CME ERROR: 10\r\n+CME ERROR: SIM not inserted\r\n\
              +CMS ERROR: 500\r\n+CMS ERROR:304\r\nNO CARRIER\r\nBUSY\r\nNO ANSWER\r\n\
              NO DIALTONE\r\nCOMMAND NOT SUPPORT\r\nTOO MANY PARAMETERS\r\n",
        );
        assert_eq!(
            got,
            vec![
                ok(),
                fin(FinalResult::Error),
                fin(FinalResult::CmeError(ErrorCode::Number(10))),
                fin(FinalResult::CmeError(ErrorCode::Text(
                    "SIM not inserted".into()
                ))),
                fin(FinalResult::CmsError(ErrorCode::Number(500))),
                fin(FinalResult::CmsError(ErrorCode::Number(304))),
                fin(FinalResult::CallResult("NO CARRIER".into())),
                fin(FinalResult::CallResult("BUSY".into())),
                fin(FinalResult::CallResult("NO ANSWER".into())),
                fin(FinalResult::CallResult("NO DIALTONE".into())),
                fin(FinalResult::NotSupported("COMMAND NOT SUPPORT".into())),
                fin(FinalResult::NotSupported("TOO MANY PARAMETERS".into())),
            ]
        );
    }

    #[test]
    fn prompt_without_line_end_is_given_at_once() {
        let mut codec = AtCodec::new();
        let mut buf = BytesMut::from(&b"AT+CMGS=23\r\r\n> "[..]);
        assert_eq!(
            codec.decode(&mut buf).unwrap(),
            Some(AtEvent::Line("AT+CMGS=23".into()))
        );
        assert_eq!(codec.decode(&mut buf).unwrap(), Some(AtEvent::Prompt));
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        // A lone `>` waits for the next byte.
        let mut buf = BytesMut::from(&b"\r\n>"[..]);
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        buf.extend_from_slice(b" ");
        assert_eq!(codec.decode(&mut buf).unwrap(), Some(AtEvent::Prompt));
        // `>` then a line end: a prompt too; `>` inside a line is not.
        assert_eq!(events(b">\r\n"), vec![prompt()]);
        assert_eq!(events(b"a > b\r\n"), vec![line("a > b")]);
        assert_eq!(events(b">x\r\n"), vec![line(">x")]);
    }

    #[test]
    fn cmgs_with_cmti_between_prompt_and_result() {
        let mut codec = AtCodec::new();
        codec.expect(&["+CMGS:"]);
        let got = run(
            &mut codec,
            &[b"AT+CMGS=23\r\r\n> 0011000B914889...\x1a\r\n+CMTI: \"SM\",5\r\n+CMGS: 12\r\n\r\nOK\r\n"],
        );
        assert_eq!(
            got,
            vec![
                line("AT+CMGS=23"),
                prompt(),
                line("0011000B914889...\u{1a}"),
                cmti(5),
                line("+CMGS: 12"),
                ok(),
            ]
        );
    }

    #[test]
    fn zte_urcs_before_the_prompt() {
        let got = expecting(
            &["+CMGS:"],
            b"AT+CMGS=20\r\r\n+ZDONR: \"45204\",1,1,\"CS_PS\",\"ROAM_OFF\"\r\n+ZPASR: \"UMTS\"\r\n\r\n> ",
        );
        assert_eq!(
            got,
            vec![
                line("AT+CMGS=20"),
                urc(Urc::Other {
                    name: "+ZDONR".into(),
                    value: "\"45204\",1,1,\"CS_PS\",\"ROAM_OFF\"".into()
                }),
                urc(Urc::Other {
                    name: "+ZPASR".into(),
                    value: "\"UMTS\"".into()
                }),
                prompt(),
            ]
        );
    }

    #[test]
    fn urcs_between_cmgl_entries() {
        let got = expecting(
            &["+CMGL:"],
            b"AT+CMGL=4\r\r\n+CMGL: 0,1,,24\r\n0791448720003023040C914889\r\n\
              ^RSSI: 14\r\n+CMTI: \"SM\",2\r\n\
              +CMGL: 1,0,,24\r\n0791448720003023040C914890\r\n\r\nOK\r\n",
        );
        assert_eq!(
            got,
            vec![
                line("AT+CMGL=4"),
                line("+CMGL: 0,1,,24"),
                line("0791448720003023040C914889"),
                urc(Urc::SignalQuality(14)),
                cmti(2),
                line("+CMGL: 1,0,,24"),
                line("0791448720003023040C914890"),
                ok(),
            ]
        );
    }

    #[test]
    fn expect_turns_urcs_into_lines() {
        let bytes = b"+CREG: 0,1\r\n";
        assert_eq!(expecting(&["+CREG:"], bytes), vec![line("+CREG: 0,1")]);
        assert_eq!(
            events(bytes),
            vec![urc(Urc::Registration(Registration {
                stat: 1,
                lac: None,
                cell_id: None,
                act: None
            }))]
        );
        // Other codes stay unsolicited while +CREG: is expected.
        assert_eq!(
            expecting(&["+CREG:"], b"+CGREG: 1\r\n"),
            vec![urc(Urc::Registration(Registration {
                stat: 1,
                lac: None,
                cell_id: None,
                act: None
            }))]
        );
        let mut codec = AtCodec::new();
        codec.expect(&["+CPIN:"]);
        codec.expect_nothing();
        assert_eq!(
            run(&mut codec, &[b"+CPIN: READY\r\n"]),
            vec![urc(Urc::Other {
                name: "+CPIN".into(),
                value: "READY".into()
            })]
        );
    }

    #[test]
    fn cmt_and_cds_take_the_pdu_line() {
        let got = events(
            b"\r\n+CMT: ,24\r\n07914487200030230\r\n+CMT: \"Bob\",3\r\n\r\n00aBcd\r\n+CDS: 25\r\n0006D60B911326880736F4\r\n",
        );
        assert_eq!(
            got,
            vec![
                // odd number of digits: not a PDU, given as lines.
                line("+CMT: ,24"),
                line("07914487200030230"),
                urc(Urc::Message {
                    length: 3,
                    pdu: vec![0x00, 0xab, 0xcd]
                }),
                urc(Urc::StatusReport {
                    length: 25,
                    pdu: vec![0x00, 0x06, 0xd6, 0x0b, 0x91, 0x13, 0x26, 0x88, 0x07, 0x36, 0xf4]
                }),
            ]
        );
        // A final result after a header is not eaten.
        assert_eq!(
            events(b"+CMT: ,24\r\nOK\r\n"),
            vec![line("+CMT: ,24"), ok()]
        );
        // Nor is a prompt.
        assert_eq!(events(b"+CDS: 25\r\n> "), vec![line("+CDS: 25"), prompt()]);
        // A header at the end of the stream.
        assert_eq!(events(b"+CMT: ,24\r\n"), vec![line("+CMT: ,24")]);
        // A header without a length is just a line; expected, it is a line too.
        assert_eq!(
            events(b"+CMT: x\r\n00\r\n"),
            vec![line("+CMT: x"), line("00")]
        );
        assert_eq!(
            expecting(&["+CMT:"], b"+CMT: ,1\r\n00\r\n"),
            vec![line("+CMT: ,1"), line("00")]
        );
    }

    #[test]
    fn ussd_with_line_breaks_is_joined() {
        let got =
            events(b"+CUSD: 1,\"Chon dich vu:\r\n1. Tra cuu ho so\r\n\r\n2. Thoat\",15\r\nOK\r\n");
        assert_eq!(
            got,
            vec![
                urc(Urc::Ussd {
                    status: 1,
                    text: Some("Chon dich vu:\n1. Tra cuu ho so\n2. Thoat".into()),
                    dcs: Some(15)
                }),
                ok()
            ]
        );
        // Expected: the joined text is one line.
        assert_eq!(
            expecting(&["+CUSD:"], b"+CUSD: 0,\"a\r\nb\",15\r\n"),
            vec![line("+CUSD: 0,\"a\nb\",15")]
        );
        // An unclosed quote ends at a final result, which is not eaten.
        assert_eq!(
            events(b"+CUSD: 1,\"open\r\nmore\r\nOK\r\n"),
            vec![
                urc(Urc::Ussd {
                    status: 1,
                    text: Some("open\nmore".into()),
                    dcs: None
                }),
                ok()
            ]
        );
        // And at the cap on lines.
        let mut bytes = b"+CUSD: 1,\"x\r\n".to_vec();
        for _ in 0..MAX_USSD_LINES + 5 {
            bytes.extend_from_slice(b"y\r\n");
        }
        let got = events(&bytes);
        assert_eq!(got.len(), 6, "{got:?}");
        assert!(matches!(
            &got[0],
            Got::Event(AtEvent::Unsolicited(Urc::Ussd { .. }))
        ));
        assert_eq!(got[1..], vec![line("y"); 5][..]);
    }

    #[test]
    fn too_long_line_is_dropped_and_decoding_goes_on() {
        let mut bytes = vec![b'A'; MAX_LINE_LEN + 10];
        bytes.extend_from_slice(b"\r\nOK\r\n");
        assert_eq!(events(&bytes), vec![Got::TooLong, ok()]);
        // Without a line end in the buffer yet.
        let mut codec = AtCodec::new();
        let got = run(
            &mut codec,
            &[&vec![b'B'; MAX_LINE_LEN + 1], &[b'B'; 100], b"\nOK\r\n"],
        );
        assert_eq!(got, vec![Got::TooLong, ok()]);
        // Exactly at the limit is fine (a PDU line of the longest kind is far below).
        let mut bytes = vec![b'C'; MAX_LINE_LEN];
        bytes.extend_from_slice(b"\r\n");
        assert_eq!(events(&bytes), vec![line(&"C".repeat(MAX_LINE_LEN))]);
        // A waiting +CMT header is given first.
        let mut bytes = b"+CMT: ,5\r\n".to_vec();
        bytes.extend_from_slice(&vec![b'0'; MAX_LINE_LEN + 2]);
        bytes.extend_from_slice(b"\r\nOK\r\n");
        assert_eq!(events(&bytes), vec![line("+CMT: ,5"), Got::TooLong, ok()]);
    }

    #[test]
    fn non_utf8_is_read_lossily() {
        assert_eq!(
            events(b"+CUSD: 0,\"\xff\xfe\",15\r\nOK\r\n"),
            vec![
                urc(Urc::Ussd {
                    status: 0,
                    text: Some("\u{fffd}\u{fffd}".into()),
                    dcs: Some(15)
                }),
                ok()
            ]
        );
    }

    #[test]
    fn unterminated_last_line_at_eof() {
        assert_eq!(events(b"OK\r\nERROR"), vec![ok(), fin(FinalResult::Error)]);
        assert_eq!(events(b">"), vec![prompt()]);
        assert_eq!(events(b"   "), vec![]);
    }

    /// A realistic stretch of a Huawei session, echo on.
    const TRANSCRIPT: &[u8] = b"ATE1\r\r\nOK\r\n\
        AT+CPIN?\r\r\n+CPIN: READY\r\n\r\nOK\r\n\
        \r\n^RSSI: 17\r\n\
        AT+CMGL=4\r\r\n+CMGL: 0,1,,24\r\n0791448720003023040C9148897006770000111011315214000BE474D81C0EBB5DE377\r\n\
        \r\n^BOOT:12345678,0,0,0,72\r\n\
        +CMGL: 3,0,,5\r\n0791448720\r\n\r\nOK\r\n\
        AT+CMGS=18\r\r\n> 0011000B914889\x1a\r\n+CMTI: \"SM\",4\r\n\r\n+CMGS: 77\r\n\r\nOK\r\n\
        \r\n+CMT: ,3\r\n00aabb\r\n\
        \r\n+CUSD: 1,\"Menu\r\n1. Mot\r\n2. Hai\",15\r\n\
        +CME ERROR: 3\r\n+CREG: 1,\"4CA\",\"81DE445\"\r\nRING\r\n";

    #[test]
    fn transcript_reads_as_expected() {
        let got = events(TRANSCRIPT);
        assert_eq!(got.len(), 24, "{got:#?}");
        assert!(got.iter().all(|g| matches!(g, Got::Event(_))));
        assert_eq!(
            got[3],
            urc(Urc::Other {
                name: "+CPIN".into(),
                value: "READY".into()
            })
        );
        assert_eq!(got[5], urc(Urc::SignalQuality(17)));
        assert_eq!(
            got[9],
            urc(Urc::Other {
                name: "^BOOT".into(),
                value: "12345678,0,0,0,72".into()
            })
        );
        assert_eq!(got[14], prompt());
        assert_eq!(got[16], cmti(4));
        assert_eq!(
            got[19],
            urc(Urc::Message {
                length: 3,
                pdu: vec![0, 0xaa, 0xbb]
            })
        );
        assert_eq!(
            got[20],
            urc(Urc::Ussd {
                status: 1,
                text: Some("Menu\n1. Mot\n2. Hai".into()),
                dcs: Some(15)
            })
        );
        assert_eq!(got[21], fin(FinalResult::CmeError(ErrorCode::Number(3))));
        assert_eq!(
            got[22],
            urc(Urc::Registration(Registration {
                stat: 1,
                lac: Some(0x4ca),
                cell_id: Some(0x081d_e445),
                act: None
            }))
        );
        assert_eq!(got[23], urc(Urc::Ring));
    }

    proptest! {
        #[test]
        fn any_split_gives_the_same_events(mut cuts in proptest::collection::vec(0..=TRANSCRIPT.len(), 0..20)) {
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut from = 0;
            for cut in cuts {
                chunks.push(&TRANSCRIPT[from..cut]);
                from = cut;
            }
            chunks.push(&TRANSCRIPT[from..]);
            prop_assert_eq!(run(&mut AtCodec::new(), &chunks), events(TRANSCRIPT));
        }

        #[test]
        fn arbitrary_bytes_never_panic_and_ok_is_read_after(
            data in proptest::collection::vec(any::<u8>(), 0..6000),
            cut in any::<usize>(),
            expect_creg in any::<bool>(),
        ) {
            let cut = cut % (data.len() + 1);
            let mut codec = AtCodec::new();
            if expect_creg {
                codec.expect(&["+CREG:", "+CUSD:"]);
            }
            let mut buf = BytesMut::new();
            for chunk in [&data[..cut], &data[cut..]] {
                buf.extend_from_slice(chunk);
                let mut n = 0;
                while !matches!(codec.decode(&mut buf), Ok(None)) {
                    n += 1;
                    prop_assert!(n < 100_000);
                }
            }
            codec.expect_nothing();
            buf.extend_from_slice(b"\r\n\"\r\nOK\r\n");
            let mut saw_ok = false;
            for _ in 0..8 {
                match codec.decode(&mut buf) {
                    Ok(Some(AtEvent::Final(FinalResult::Ok))) => saw_ok = true,
                    Ok(Some(_)) | Err(_) => {}
                    Ok(None) => break,
                }
            }
            prop_assert!(saw_ok);
        }

        #[test]
        fn noisy_lines_split_anywhere_give_the_same_events(
            lines in proptest::collection::vec(
                prop_oneof![
                    Just("OK".to_string()),
                    Just("> ".to_string()),
                    Just(">".to_string()),
                    Just("+CMT: ,2".to_string()),
                    Just("+CDS: 2".to_string()),
                    Just("0A0B".to_string()),
                    Just("+CUSD: 1,\"a".to_string()),
                    Just("b\",15".to_string()),
                    Just("^RSSI: 3".to_string()),
                    "[ -~]{0,12}",
                ],
                0..30,
            ),
            ends in proptest::collection::vec(prop_oneof![Just("\r\n"), Just("\r\r\n"), Just("\r"), Just("\n"), Just("")], 30),
            step in 1usize..7,
        ) {
            let mut bytes = Vec::new();
            for (l, e) in lines.iter().zip(ends.iter()) {
                bytes.extend_from_slice(l.as_bytes());
                bytes.extend_from_slice(e.as_bytes());
            }
            let chunks: Vec<&[u8]> = bytes.chunks(step).collect();
            prop_assert_eq!(run(&mut AtCodec::new(), &chunks), events(&bytes));
        }
    }

    #[test]
    fn byte_at_a_time_equals_all_at_once() {
        let chunks: Vec<&[u8]> = TRANSCRIPT.chunks(1).collect();
        assert_eq!(run(&mut AtCodec::new(), &chunks), events(TRANSCRIPT));
    }
}
