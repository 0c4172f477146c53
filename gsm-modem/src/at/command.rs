//! Typed commands and their responses, read the way real modems write
//! them (Huawei, ZTE, Wavecom, Telit, Pantech, D-Link variants). This
//! module owns the command texts (builders return them *without* the
//! trailing `\r`, which the session adds), the prefix each command's
//! response lines carry ([`response_prefix`]) and reading the information
//! lines of a response into typed values.
//!
//! The parse functions take the [`AtEvent::Line`](super::AtEvent::Line)s
//! the codec gave between the command and its final result code; lines that
//! belong to none of them (an echo the session did not filter, an odd
//! vendor line) are skipped. A required line that is missing or cannot be
//! read is an [`AtError::Unexpected`].

use super::text::{dec, split_fields, unquote};
use super::urc::{registration_response, Registration};
use super::AtError;

/// A message in the modem's storage, as `+CMGL` / `+CMGR` list it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPdu {
    /// Its index in the storage.
    pub index: u32,
    /// 0 received unread, 1 received read, 2 stored unsent, 3 stored sent (None when not given).
    pub status: Option<u8>,
    /// The TPDU length the modem gives.
    pub length: u16,
    /// The PDU octets (service centre address first).
    pub pdu: Vec<u8>,
}

/// Use of one message storage (`+CPMS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageUse {
    /// The memory name when given (`SM`, `ME`, `MT`); empty in the set form.
    pub memory: String,
    /// Messages in it.
    pub used: u32,
    /// Room for this many.
    pub total: u32,
}

impl StorageUse {
    /// True when no message fits any more.
    pub fn is_full(&self) -> bool {
        self.total > 0 && self.used >= self.total
    }
}

/// `+CSQ: <rssi>,<ber>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignalQuality {
    /// 0–31, 99 unknown.
    pub rssi: u8,
    /// 0–7, 99 unknown.
    pub ber: u8,
}

impl SignalQuality {
    /// dBm for a known rssi (−113 + 2·rssi).
    pub fn dbm(&self) -> Option<i16> {
        (self.rssi <= 31).then(|| -113 + 2 * i16::from(self.rssi))
    }
}

/// `+CPIN: <code>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinState {
    /// `READY`.
    Ready,
    /// `SIM PIN`: the PIN is wanted.
    SimPin,
    /// `SIM PUK`: the SIM is blocked.
    SimPuk,
    /// Anything else, as sent.
    Other(String),
}

/// Reads a `+CMGL` listing in PDU mode: header lines each followed by
/// their PDU line (`+CMGL: 0,1,,147`, Pantech `+CMGL: 17,3,35`, D-Link
/// `+CMGL: 1, 0,,23`). A header without a PDU line is skipped.
///
/// The header is `<index>,<stat>,[<alpha>],<length>`, or `<index>,<stat>,<length>`
/// (Pantech), or `<index>,<length>`: the first field is the index, the last
/// the length, the second (when three or more) the status. A header that
/// cannot be read is an error; lines that are neither headers nor the PDU
/// line right after one are skipped.
pub fn parse_cmgl(lines: &[String]) -> Result<Vec<StoredPdu>, AtError> {
    let mut stored = Vec::new();
    let mut lines = lines.iter().map(|l| l.trim()).peekable();
    while let Some(line) = lines.next() {
        let Some(value) = line.strip_prefix("+CMGL:") else {
            continue;
        };
        let header = message_header(value).ok_or_else(|| unexpected("+CMGL", line))?;
        let Some(pdu) = lines.peek().and_then(|next| super::text::decode_hex(next)) else {
            continue;
        };
        lines.next();
        stored.push(StoredPdu {
            index: header.index.unwrap_or_default(),
            status: header.status,
            length: header.length,
            pdu,
        });
    }
    Ok(stored)
}

/// The fields of a `+CMGL` / `+CMGR` header line.
struct Header {
    index: Option<u32>,
    status: Option<u8>,
    length: u16,
}

/// `<index>,<stat>,[<alpha>],<length>` and its shorter variants (`+CMGL`).
fn message_header(value: &str) -> Option<Header> {
    let fields = split_fields(value);
    if fields.len() < 2 {
        return None;
    }
    let status = if fields.len() >= 3 {
        optional(fields[1])?
    } else {
        None
    };
    Some(Header {
        index: Some(dec(fields[0])?),
        status,
        length: dec(fields[fields.len() - 1])?,
    })
}

/// `<stat>,[<alpha>],<length>` and its variants (`+CMGR`): the last field
/// is the length, the first (when two or more) the status, possibly empty.
fn read_header(value: &str) -> Option<Header> {
    let fields = split_fields(value);
    let status = if fields.len() >= 2 {
        optional(fields[0])?
    } else {
        None
    };
    Some(Header {
        index: None,
        status,
        length: dec(fields[fields.len() - 1])?,
    })
}

/// An empty field is `Some(None)`, a number `Some(Some(n))`, anything else `None`.
fn optional<T: std::str::FromStr>(field: &str) -> Option<Option<T>> {
    if unquote(field).is_empty() {
        Some(None)
    } else {
        dec(field).map(Some)
    }
}

fn unexpected(command: &'static str, line: &str) -> AtError {
    AtError::Unexpected {
        command,
        line: line.to_owned(),
    }
}

/// The value after `prefix` on the first line that has it.
fn find<'a>(lines: &'a [String], prefix: &str) -> Option<(&'a str, &'a str)> {
    lines.iter().find_map(|l| {
        let l = l.trim();
        l.strip_prefix(prefix).map(|v| (l, v.trim()))
    })
}

/// The error for a response whose `prefix` line is missing.
fn missing(command: &'static str, lines: &[String]) -> AtError {
    unexpected(command, &lines.join("\n"))
}

/// Reads a `+CMGR` response for `index` (`+CMGR: 0,,27`, Telit
/// `+CMGR: 0,"",50`, `+CMGR: ,,27`, `+CMGR: 0,23`); `None` for an empty slot.
///
/// No `+CMGR` line at all (just `OK`), or a header announcing length 0 with
/// no PDU line after it, is an empty slot. A header that cannot be read, or
/// a non-zero length with no hex line after it, is an error.
pub fn parse_cmgr(index: u32, lines: &[String]) -> Result<Option<StoredPdu>, AtError> {
    let Some(at) = lines.iter().position(|l| l.trim().starts_with("+CMGR:")) else {
        return Ok(None);
    };
    let line = lines[at].trim();
    let header = read_header(&line["+CMGR:".len()..]).ok_or_else(|| unexpected("+CMGR", line))?;
    let pdu = lines
        .get(at + 1)
        .and_then(|next| super::text::decode_hex(next));
    match pdu {
        Some(pdu) => Ok(Some(StoredPdu {
            index,
            status: header.status,
            length: header.length,
            pdu,
        })),
        None if header.length == 0 => Ok(None),
        None => Err(unexpected(
            "+CMGR",
            lines.get(at + 1).map_or(line, |l| l.as_str()),
        )),
    }
}

/// The message reference of `+CMGS: <mr>[,<scts>]`.
pub fn parse_cmgs(lines: &[String]) -> Result<u8, AtError> {
    let (line, value) = find(lines, "+CMGS:").ok_or_else(|| missing("+CMGS", lines))?;
    dec(split_fields(value)[0]).ok_or_else(|| unexpected("+CMGS", line))
}

/// `+CPMS` in its query form (`+CPMS: "SM",3,20,"SM",3,20,...`) or set
/// form (`+CPMS: 3,20,3,20,3,20`): one entry per storage listed.
///
/// The form is told by the first field: a number is the set form (pairs of
/// used, total; `memory` empty), anything else the query form (triples of
/// memory, used, total; memory names unquoted). A trailing incomplete group
/// is an error.
pub fn parse_cpms(lines: &[String]) -> Result<Vec<StorageUse>, AtError> {
    let (line, value) = find(lines, "+CPMS:").ok_or_else(|| missing("+CPMS", lines))?;
    let bad = || unexpected("+CPMS", line);
    let fields = split_fields(value);
    let named = dec::<u32>(fields[0]).is_none();
    let group = if named { 3 } else { 2 };
    if !fields.len().is_multiple_of(group) {
        return Err(bad());
    }
    fields
        .chunks_exact(group)
        .map(|g| {
            let (memory, numbers) = if named {
                (unquote(g[0]).to_owned(), &g[1..])
            } else {
                (String::new(), g)
            };
            if named && memory.is_empty() {
                return Err(bad());
            }
            Ok(StorageUse {
                memory,
                used: dec(numbers[0]).ok_or_else(bad)?,
                total: dec(numbers[1]).ok_or_else(bad)?,
            })
        })
        .collect()
}

/// `+CSQ: <rssi>,<ber>`.
/// A missing `<ber>` reads as 99 (unknown).
pub fn parse_csq(lines: &[String]) -> Result<SignalQuality, AtError> {
    let (line, value) = find(lines, "+CSQ:").ok_or_else(|| missing("+CSQ", lines))?;
    let fields = split_fields(value);
    let rssi = dec(fields[0]).ok_or_else(|| unexpected("+CSQ", line))?;
    let ber = match fields.get(1) {
        None => 99,
        Some(f) => dec(f).ok_or_else(|| unexpected("+CSQ", line))?,
    };
    Ok(SignalQuality { rssi, ber })
}

/// The response to `AT+CREG?`: `+CREG: <n>,<stat>[,<lac>,<ci>[,<act>]]`
/// (LAC and cell id in hex, quoted or not, possibly empty).
///
/// `+CREG: 0,1`, `+CREG: 2,1,"4CA","81DE445",7`, `+CREG: 2,1,4CA,81DE445`,
/// `+CREG: 2,1,,` are all read. An unsolicited `+CREG` in the URC form that
/// arrived while the response was expected (so the codec gave it as a
/// line) is skipped in favour of a line in the response form; a lone
/// `+CREG: <stat>` (no `<n>`, which some modems send) is read as the stat
/// when nothing better is there. `+CGREG:` / `+CEREG:` responses are read
/// the same way.
pub fn parse_creg(lines: &[String]) -> Result<Registration, AtError> {
    let values: Vec<(&str, &str)> = lines
        .iter()
        .filter_map(|l| {
            let l = l.trim();
            ["+CREG:", "+CGREG:", "+CEREG:"]
                .iter()
                .find_map(|p| l.strip_prefix(p))
                .map(|v| (l, v.trim()))
        })
        .collect();
    if let Some(reg) = values.iter().find_map(|(_, v)| registration_response(v)) {
        return Ok(reg);
    }
    if let Some(reg) = values.iter().find_map(|(_, v)| {
        let fields = split_fields(v);
        (fields.len() == 1)
            .then(|| dec(fields[0]))
            .flatten()
            .map(|stat| Registration {
                stat,
                lac: None,
                cell_id: None,
                act: None,
            })
    }) {
        return Ok(reg);
    }
    Err(match values.first() {
        Some((line, _)) => unexpected("+CREG", line),
        None => missing("+CREG", lines),
    })
}

/// `+CPIN: READY` and friends (Wavecom sends it with no OK after it).
///
/// The code may be quoted (`+CPIN: "READY"`); it is compared without case
/// and with runs of spaces collapsed.
pub fn parse_cpin(lines: &[String]) -> Result<PinState, AtError> {
    let (_, value) = find(lines, "+CPIN:").ok_or_else(|| missing("+CPIN", lines))?;
    let code = unquote(value);
    let normal = code
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_uppercase();
    Ok(match normal.as_str() {
        "READY" => PinState::Ready,
        "SIM PIN" => PinState::SimPin,
        "SIM PUK" => PinState::SimPuk,
        _ => PinState::Other(code.to_owned()),
    })
}

/// The message format of `+CMGF: <mode>` (0 PDU, 1 text).
pub fn parse_cmgf(lines: &[String]) -> Result<u8, AtError> {
    let (line, value) = find(lines, "+CMGF:").ok_or_else(|| missing("+CMGF", lines))?;
    dec(value).ok_or_else(|| unexpected("+CMGF", line))
}

/// The settings of `+CNMI: <mode>,<mt>,<bm>,<ds>,<bfr>` as numbers, in
/// order (as many as given; a modem may give fewer). A field that is not a
/// number is an error.
pub fn parse_cnmi(lines: &[String]) -> Result<Vec<u8>, AtError> {
    let (line, value) = find(lines, "+CNMI:").ok_or_else(|| missing("+CNMI", lines))?;
    split_fields(value)
        .into_iter()
        .map(|field| dec(field).ok_or_else(|| unexpected("+CNMI", line)))
        .collect()
}

// ---- Command builders -------------------------------------------------

/// The Ctrl-Z that ends the PDU after the `> ` prompt.
pub const CTRL_Z: char = '\u{1a}';

/// `AT+CMGS=<tpdu_len>`: send an SMS in PDU mode. `tpdu_len` is the TPDU's
/// length in octets, the service centre address not counted. After the
/// `> ` prompt, write [`pdu_body`] of the whole PDU.
pub fn cmgs(tpdu_len: u16) -> String {
    format!("AT+CMGS={tpdu_len}")
}

/// What to write after the `+CMGS` prompt: the PDU (service centre address
/// first) in upper-case hex, then Ctrl-Z. No `\r`.
pub fn pdu_body(pdu: &[u8]) -> String {
    let mut body = encode_hex(pdu);
    body.push(CTRL_Z);
    body
}

/// `AT+CMGR=<index>`: read one stored message.
pub fn cmgr(index: u32) -> String {
    format!("AT+CMGR={index}")
}

/// `AT+CMGD=<index>`: delete one stored message.
pub fn cmgd(index: u32) -> String {
    format!("AT+CMGD={index}")
}

/// `AT+CMGD=1,4`: delete every message in the read storage (the index is
/// ignored with delflag 4, but some modems want one).
pub fn cmgd_all() -> &'static str {
    "AT+CMGD=1,4"
}

/// `AT+CMGL=4`: list every stored message, in PDU mode (4 = all; listing
/// marks the unread ones read).
pub fn cmgl_all() -> &'static str {
    "AT+CMGL=4"
}

/// `AT+CMGF=0`: PDU mode, the only mode this crate speaks.
pub fn cmgf_pdu() -> &'static str {
    "AT+CMGF=0"
}

/// `AT+CMEE=1`: numeric `+CME ERROR` codes.
pub fn cmee_numeric() -> &'static str {
    "AT+CMEE=1"
}

/// `ATE0`: no echo (the session still copes with echoes).
pub fn echo_off() -> &'static str {
    "ATE0"
}

/// `AT+CPMS="<mem1>","<mem2>","<mem3>"`: the storages read/deleted from,
/// written/sent from, and where received messages go. `None` when a name is
/// not 1–8 ASCII letters (it is put in quotes as is).
pub fn cpms(mem1: &str, mem2: &str, mem3: &str) -> Option<String> {
    let ok = |m: &str| (1..=8).contains(&m.len()) && m.bytes().all(|b| b.is_ascii_alphabetic());
    (ok(mem1) && ok(mem2) && ok(mem3)).then(|| format!(r#"AT+CPMS="{mem1}","{mem2}","{mem3}""#))
}

/// `AT+CPMS?`: the storages in use and how full they are ([`parse_cpms`]).
pub fn cpms_query() -> &'static str {
    "AT+CPMS?"
}

/// `AT+CPIN?`: is a PIN wanted ([`parse_cpin`]).
pub fn cpin_query() -> &'static str {
    "AT+CPIN?"
}

/// `AT+CPIN="<pin>"`; `None` unless the PIN is 4–8 ASCII digits (so nothing
/// can break out of the quotes).
pub fn cpin_enter(pin: &str) -> Option<String> {
    pin_ok(pin).then(|| format!(r#"AT+CPIN="{pin}""#))
}

/// `AT+CPIN="<puk>","<new_pin>"`: unblock a SIM; `None` unless the PUK is
/// 8 digits and the PIN 4–8 digits.
pub fn cpin_puk(puk: &str, new_pin: &str) -> Option<String> {
    (puk.len() == 8 && puk.bytes().all(|b| b.is_ascii_digit()) && pin_ok(new_pin))
        .then(|| format!(r#"AT+CPIN="{puk}","{new_pin}""#))
}

fn pin_ok(pin: &str) -> bool {
    (4..=8).contains(&pin.len()) && pin.bytes().all(|b| b.is_ascii_digit())
}

/// `AT+CNMI=<mode>,<mt>,<bm>,<ds>,<bfr>`: how new messages are indicated.
pub fn cnmi(mode: u8, mt: u8, bm: u8, ds: u8, bfr: u8) -> String {
    format!("AT+CNMI={mode},{mt},{bm},{ds},{bfr}")
}

/// The recommended `AT+CNMI=2,1,0,2,0`:
///
/// - mode 2: indications are buffered in the modem while the link is busy
///   (e.g. during a command) and flushed afterwards, instead of being lost
///   or interleaved mid-response;
/// - mt 1: a received message is *stored* and only `+CMTI: <mem>,<index>`
///   is sent, so nothing is lost if we are not listening: the session reads
///   it with `AT+CMGR` and deletes it once handled (with mt 2 the message
///   would come as `+CMT` and, unacknowledged, might never be stored);
/// - bm 0: no cell broadcast indications;
/// - ds 2: a status report is stored and indicated by `+CDSI: <mem>,<index>`
///   (ds 1 would route it as `+CDS`, which needs `+CNMA` acknowledgement on
///   many modems);
/// - bfr 0: the buffered indications are flushed to us when mode 1–3 is
///   entered.
///
/// Some modems reject ds 2; fall back to [`cnmi`]`(2, 1, 0, 1, 0)` (status
/// reports as `+CDS`, which the codec reads) or `(2, 1, 0, 0, 0)`.
pub fn cnmi_recommended() -> &'static str {
    "AT+CNMI=2,1,0,2,0"
}

/// `AT+CNMI?`: how new messages are indicated now ([`parse_cnmi`]).
pub fn cnmi_query() -> &'static str {
    "AT+CNMI?"
}

/// `AT+CSQ`: signal quality ([`parse_csq`]).
pub fn csq() -> &'static str {
    "AT+CSQ"
}

/// `AT+CREG?`: network registration ([`parse_creg`]).
pub fn creg_query() -> &'static str {
    "AT+CREG?"
}

/// `AT+CREG=<n>`: 0 no `+CREG` URCs, 1 `+CREG: <stat>`, 2 with LAC and cell id.
pub fn creg_set(n: u8) -> String {
    format!("AT+CREG={n}")
}

/// `AT+CUSD=1,"<request>",<dcs>`: send a USSD request (e.g. `*101#`, dcs 15);
/// `None` when the request is empty, longer than 160 characters, or holds a
/// quote or a control character.
pub fn cusd(request: &str, dcs: u8) -> Option<String> {
    let ok = !request.is_empty()
        && request.chars().count() <= 160
        && !request.chars().any(|c| c == '"' || c.is_control());
    ok.then(|| format!(r#"AT+CUSD=1,"{request}",{dcs}"#))
}

/// `AT+CUSD=2`: end the USSD session.
pub fn cusd_cancel() -> &'static str {
    "AT+CUSD=2"
}

/// Upper-case hex of `bytes` (PDU lines).
pub fn encode_hex(bytes: &[u8]) -> String {
    super::text::encode_hex(bytes)
}

/// The octets of a hex line (either case, even length, at least one octet).
pub fn decode_hex(text: &str) -> Option<Vec<u8>> {
    super::text::decode_hex(text)
}

/// Commands whose information lines carry a `+NAME:` / `^NAME:` prefix.
const PREFIXED: &[&str] = &[
    "+CREG:",
    "+CGREG:",
    "+CEREG:",
    "+CMGL:",
    "+CMGR:",
    "+CMGS:",
    "+CMGW:",
    "+CPMS:",
    "+CSQ:",
    "+CPIN:",
    "+CUSD:",
    "+CSCA:",
    "+CNMI:",
    "+CMGF:",
    "+CMEE:",
    "+CFUN:",
    "+COPS:",
    "+CSMS:",
    "+CSCS:",
    "+CMGD:",
    "+CNUM:",
    "+CCLK:",
    "+CPOL:",
    "+CLCK:",
    "+CPWD:",
    "+CGATT:",
    "+CGDCONT:",
    "+CBST:",
    "+CSDH:",
    "+CSMP:",
    "+CLIP:",
    "+CRC:",
    "+CIND:",
    "+CPBS:",
    "+CPBR:",
    "^SYSINFO:",
    "^SYSINFOEX:",
    "^SYSCFG:",
    "^SYSCFGEX:",
    "^HCSQ:",
    "^CPIN:",
    "^ICCID:",
    "+ZPAS:",
    "+ZSNT:",
];

/// The prefix the information lines of `command`'s response carry, for
/// [`AtCodec::expect`](super::AtCodec::expect): `"AT+CREG?"` → `"+CREG:"`,
/// `"AT+CMGL=4"` → `"+CMGL:"`, `"AT+CUSD=1,\"*101#\",15"` → `"+CUSD:"`.
///
/// Only the first command of a `;`-joined line is looked at. `None` for
/// commands whose response has no prefix (`AT+CGSN`, `AT+CIMI`, `ATI`,
/// `ATE0`, ...) and for commands this table does not know.
///
/// Note for `AT+CUSD=1,...`: most modems answer `OK` first and send the
/// `+CUSD:` later, when `expect` may already be cleared; it then arrives as
/// an unsolicited [`Urc::Ussd`](super::Urc::Ussd). A modem that sends it
/// before `OK` gives a `Line`, which [`Urc::parse`](super::Urc::parse)
/// reads as well.
pub fn response_prefix(command: &str) -> Option<&'static str> {
    let command = command.trim();
    let rest = command
        .get(..2)?
        .eq_ignore_ascii_case("AT")
        .then(|| &command[2..])?;
    let end = rest
        .find(|c: char| matches!(c, '=' | '?' | ';' | '\r' | '\n') || c.is_whitespace())
        .unwrap_or(rest.len());
    let name = &rest[..end];
    if !(name.starts_with('+') || name.starts_with('^')) || name.len() < 2 {
        return None;
    }
    PREFIXED.iter().copied().find(|p| {
        let p = &p[..p.len() - 1];
        p.eq_ignore_ascii_case(name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_owned).collect()
    }

    const PDU_A: &str = "07914889000000F0040B914889000000F00000621130915230820AC8329BFD0661916536";
    const PDU_B: &str =
        "0791448720003023240DD0E474D81C0EBB010000111011315214000BE474D81C0EBB5DE3771B";

    fn hex(s: &str) -> Vec<u8> {
        decode_hex(s).unwrap()
    }

    #[test]
    fn cmgl_variants() {
        // Huawei / Wavecom, with the echo the session may leave in.
        let got = parse_cmgl(&lines(&format!(
            "AT+CMGL=4\n+CMGL: 0,1,,147\n{PDU_A}\n+CMGL: 4,0,,30\n{PDU_B}"
        )))
        .unwrap();
        assert_eq!(
            got,
            vec![
                StoredPdu {
                    index: 0,
                    status: Some(1),
                    length: 147,
                    pdu: hex(PDU_A)
                },
                StoredPdu {
                    index: 4,
                    status: Some(0),
                    length: 30,
                    pdu: hex(PDU_B)
                },
            ]
        );
        // Pantech: no alpha field.
        let got = parse_cmgl(&lines(&format!("+CMGL: 17,3,35\n{PDU_A}"))).unwrap();
        assert_eq!(
            (got[0].index, got[0].status, got[0].length),
            (17, Some(3), 35)
        );
        // D-Link: spaces.
        let got = parse_cmgl(&lines(&format!("+CMGL: 1, 0,,23\n{PDU_B}"))).unwrap();
        assert_eq!(
            (got[0].index, got[0].status, got[0].length),
            (1, Some(0), 23)
        );
        // Quoted empty alpha.
        let got = parse_cmgl(&lines(&format!("+CMGL: 2,1,\"\",40\n{PDU_B}"))).unwrap();
        assert_eq!(
            (got[0].index, got[0].status, got[0].length),
            (2, Some(1), 40)
        );
        // Index and length only.
        let got = parse_cmgl(&lines(&format!("+CMGL: 9,40\n{PDU_B}"))).unwrap();
        assert_eq!((got[0].index, got[0].status, got[0].length), (9, None, 40));
    }

    #[test]
    fn cmgl_skips_headers_without_pdu_and_rejects_bad_headers() {
        let got = parse_cmgl(&lines(&format!(
            "+CMGL: 0,1,,147\n+CMGL: 1,1,,30\n{PDU_B}\n+CMGL: 2,1,,30"
        )))
        .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].index, 1);
        assert_eq!(parse_cmgl(&[]).unwrap(), vec![]);
        assert!(matches!(
            parse_cmgl(&lines("+CMGL: x,1,,30\n00")),
            Err(AtError::Unexpected {
                command: "+CMGL",
                ..
            })
        ));
    }

    #[test]
    fn cmgr_variants() {
        for (header, status, length) in [
            ("+CMGR: 0,,27", Some(0), 27),
            ("+CMGR: 0,\"\",50", Some(0), 50),
            ("+CMGR: ,,27", None, 27),
            ("+CMGR: 0,23", Some(0), 23),
            ("+CMGR: 1, ,30", Some(1), 30),
        ] {
            let got = parse_cmgr(7, &lines(&format!("{header}\n{PDU_B}"))).unwrap();
            assert_eq!(
                got,
                Some(StoredPdu {
                    index: 7,
                    status,
                    length,
                    pdu: hex(PDU_B)
                }),
                "{header}"
            );
        }
    }

    #[test]
    fn cmgr_empty_slot_and_errors() {
        assert_eq!(parse_cmgr(3, &[]).unwrap(), None);
        assert_eq!(parse_cmgr(3, &lines("AT+CMGR=3")).unwrap(), None);
        assert_eq!(parse_cmgr(3, &lines("+CMGR: 0,,0")).unwrap(), None);
        assert!(parse_cmgr(3, &lines("+CMGR: 0,,27")).is_err());
        assert!(parse_cmgr(3, &lines("+CMGR: 0,,27\nnot hex")).is_err());
        assert!(parse_cmgr(3, &lines("+CMGR: a,,b\n00")).is_err());
    }

    #[test]
    fn cmgs() {
        assert_eq!(parse_cmgs(&lines("+CMGS: 12")).unwrap(), 12);
        assert_eq!(
            parse_cmgs(&lines("+CMGS: 12,\"24/03/15,10:00:00+28\"")).unwrap(),
            12
        );
        assert_eq!(parse_cmgs(&lines("AT+CMGS=23\n+CMGS:255")).unwrap(), 255);
        assert!(parse_cmgs(&lines("+CMGS: 256")).is_err());
        assert!(parse_cmgs(&[]).is_err());
    }

    #[test]
    fn cpms_query_and_set_forms() {
        let su = |memory: &str, used, total| StorageUse {
            memory: memory.into(),
            used,
            total,
        };
        assert_eq!(
            parse_cpms(&lines("+CPMS: \"SM\",3,20,\"SM\",3,20,\"SM\",3,20")).unwrap(),
            vec![su("SM", 3, 20), su("SM", 3, 20), su("SM", 3, 20)]
        );
        assert_eq!(
            parse_cpms(&lines(
                "+CPMS: \"ME\", 0, 100, \"SM\", 20, 20, \"MT\", 20, 120"
            ))
            .unwrap(),
            vec![su("ME", 0, 100), su("SM", 20, 20), su("MT", 20, 120)]
        );
        assert!(parse_cpms(&lines("+CPMS: \"SM\",20,20"))
            .unwrap()
            .iter()
            .all(StorageUse::is_full));
        assert_eq!(
            parse_cpms(&lines("+CPMS: 3,20,3,20,3,20")).unwrap(),
            vec![su("", 3, 20), su("", 3, 20), su("", 3, 20)]
        );
        assert_eq!(
            parse_cpms(&lines("+CPMS: 0,50")).unwrap(),
            vec![su("", 0, 50)]
        );
        assert!(parse_cpms(&lines("+CPMS: \"SM\",3")).is_err());
        assert!(parse_cpms(&lines("+CPMS: 3,20,3")).is_err());
        assert!(parse_cpms(&lines("+CPMS: \"SM\",x,20")).is_err());
        assert!(parse_cpms(&lines("OK")).is_err());
    }

    #[test]
    fn csq() {
        let q = parse_csq(&lines("+CSQ: 14,99")).unwrap();
        assert_eq!(q, SignalQuality { rssi: 14, ber: 99 });
        assert_eq!(q.dbm(), Some(-85));
        assert_eq!(parse_csq(&lines("+CSQ: 99,99")).unwrap().dbm(), None);
        assert_eq!(
            parse_csq(&lines("+CSQ:31, 0")).unwrap(),
            SignalQuality { rssi: 31, ber: 0 }
        );
        assert!(parse_csq(&lines("+CSQ: ,")).is_err());
    }

    #[test]
    fn creg_responses() {
        let r = parse_creg(&lines("+CREG: 2,1,\"4CA\",\"81DE445\",7")).unwrap();
        assert_eq!(
            r,
            Registration {
                stat: 1,
                lac: Some(0x4ca),
                cell_id: Some(0x081d_e445),
                act: Some(7)
            }
        );
        assert!(r.is_registered());
        let r = parse_creg(&lines("+CREG: 0,1")).unwrap();
        assert_eq!((r.stat, r.lac, r.cell_id, r.act), (1, None, None, None));
        let r = parse_creg(&lines("+CREG: 2,1,,")).unwrap();
        assert_eq!((r.stat, r.lac, r.cell_id), (1, None, None));
        let r = parse_creg(&lines("+CREG: 2,5,4CA,81DE445")).unwrap();
        assert_eq!(
            (r.stat, r.lac, r.cell_id),
            (5, Some(0x4ca), Some(0x081d_e445))
        );
        let r = parse_creg(&lines("+CREG: 1,2")).unwrap();
        assert!(!r.is_registered());
        // A URC that slipped into the response is passed over.
        let r = parse_creg(&lines(
            "+CREG: 1,\"4CA\",\"81DE445\"\n+CREG: 2,3,\"4CA\",\"81DE445\"",
        ))
        .unwrap();
        assert_eq!(r.stat, 3);
        // A bare stat.
        assert_eq!(parse_creg(&lines("+CREG: 5")).unwrap().stat, 5);
        assert!(parse_creg(&lines("+CREG: x")).is_err());
        assert!(parse_creg(&[]).is_err());
    }

    #[test]
    fn cnmi_and_cmgf_answers() {
        assert_eq!(
            parse_cnmi(&lines("+CNMI: 2,1,0,2,0")).unwrap(),
            vec![2, 1, 0, 2, 0]
        );
        assert_eq!(parse_cnmi(&lines("+CNMI: 0,0")).unwrap(), vec![0, 0]);
        assert_eq!(parse_cmgf(&lines("+CMGF: 1")).unwrap(), 1);
        assert!(parse_cmgf(&lines("+CMGF: x")).is_err());
        assert!(parse_cnmi(&lines("+CNMI: 2,x")).is_err());
        assert!(parse_cnmi(&[]).is_err());
    }

    #[test]
    fn cpin() {
        assert_eq!(parse_cpin(&lines("+CPIN: READY")).unwrap(), PinState::Ready);
        assert_eq!(
            parse_cpin(&lines("+CPIN: \"READY\"")).unwrap(),
            PinState::Ready
        );
        assert_eq!(
            parse_cpin(&lines("+CPIN:SIM PIN")).unwrap(),
            PinState::SimPin
        );
        assert_eq!(
            parse_cpin(&lines("+CPIN: SIM PUK")).unwrap(),
            PinState::SimPuk
        );
        assert_eq!(
            parse_cpin(&lines("+CPIN: PH-SIM PIN")).unwrap(),
            PinState::Other("PH-SIM PIN".into())
        );
        assert!(parse_cpin(&[]).is_err());
    }

    #[test]
    fn builders() {
        assert_eq!(super::cmgs(23), "AT+CMGS=23");
        assert_eq!(pdu_body(&[0x00, 0x11, 0xab]), "0011AB\u{1a}");
        assert_eq!(cmgr(5), "AT+CMGR=5");
        assert_eq!(cmgd(5), "AT+CMGD=5");
        assert_eq!(cmgd_all(), "AT+CMGD=1,4");
        assert_eq!(cmgl_all(), "AT+CMGL=4");
        assert_eq!(
            cpms("SM", "SM", "ME").as_deref(),
            Some("AT+CPMS=\"SM\",\"SM\",\"ME\"")
        );
        assert_eq!(cpms("SM\"", "SM", "SM"), None);
        assert_eq!(cpin_enter("1234").as_deref(), Some("AT+CPIN=\"1234\""));
        assert_eq!(cpin_enter("12\"4"), None);
        assert_eq!(cpin_enter("123"), None);
        assert_eq!(
            cpin_puk("12345678", "0000").as_deref(),
            Some("AT+CPIN=\"12345678\",\"0000\"")
        );
        assert_eq!(cpin_puk("1234", "0000"), None);
        assert_eq!(cnmi(2, 1, 0, 2, 0), cnmi_recommended());
        assert_eq!(cusd("*101#", 15).as_deref(), Some("AT+CUSD=1,\"*101#\",15"));
        assert_eq!(cusd("*1\"#", 15), None);
        assert_eq!(cusd("", 15), None);
        assert_eq!(creg_set(2), "AT+CREG=2");
        for text in [
            cmgf_pdu(),
            cmee_numeric(),
            echo_off(),
            cpms_query(),
            cpin_query(),
            super::csq(),
            creg_query(),
            cusd_cancel(),
        ] {
            assert!(text.starts_with("AT") && !text.ends_with('\r'), "{text}");
        }
    }

    #[test]
    fn response_prefixes() {
        for (command, prefix) in [
            ("AT+CREG?", Some("+CREG:")),
            ("AT+CMGL=4", Some("+CMGL:")),
            ("AT+CPMS?", Some("+CPMS:")),
            ("AT+CPMS=\"SM\",\"SM\",\"SM\"", Some("+CPMS:")),
            ("AT+CSQ", Some("+CSQ:")),
            ("at+csq\r", Some("+CSQ:")),
            ("AT+CPIN?", Some("+CPIN:")),
            ("AT+CUSD=1,\"*101#\",15", Some("+CUSD:")),
            ("AT+CMGS=23", Some("+CMGS:")),
            ("AT+CMGR=3", Some("+CMGR:")),
            ("AT+CSQ;+CREG?", Some("+CSQ:")),
            ("AT^SYSINFO", Some("^SYSINFO:")),
            ("AT+CGSN", None),
            ("ATE0", None),
            ("ATI", None),
            ("AT", None),
            ("", None),
            ("+CSQ", None),
            ("AT+", None),
            ("Aé", None),
        ] {
            assert_eq!(response_prefix(command), prefix, "{command:?}");
        }
        // The prefixes match the commands' own builders.
        assert_eq!(response_prefix(&super::cmgs(20)), Some("+CMGS:"));
        assert_eq!(response_prefix(cmgl_all()), Some("+CMGL:"));
    }
}
