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
                    if quotes(&text) % 2 == 0 {
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
