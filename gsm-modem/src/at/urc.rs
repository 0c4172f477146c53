//! Unsolicited result codes: what a modem says without being asked.
//! This module owns reading one such line ([`Urc::parse`]) into a [`Urc`],
//! and the [`Registration`] shape shared with the `+CREG?` response.
//!
//! Whether a line *is* unsolicited depends on the command in progress
//! (`+CREG: 0,1` after `AT+CREG?` is a response); the codec decides that
//! with [`AtCodec::expect`](super::AtCodec::expect) and only asks
//! [`Urc::parse`] about lines no command expects.

use super::text::{dec, hex_u32, name_value, split_fields, unquote};

/// An unsolicited result code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Urc {
    /// `+CMTI: "SM",3`: a message was stored at `index` of `storage`.
    MessageStored {
        /// The memory (`SM`, `ME`, `MT`, ...).
        storage: String,
        /// Its index there.
        index: u32,
    },
    /// `+CDSI: "SM",4`: a status report was stored.
    StatusReportStored {
        /// The memory.
        storage: String,
        /// Its index there.
        index: u32,
    },
    /// `+CMT: [<alpha>],<length>` and the PDU line: a message handed over
    /// directly (it may or may not also be stored, depending on the modem).
    Message {
        /// The TPDU length the modem announced.
        length: u16,
        /// The PDU octets (service centre address first).
        pdu: Vec<u8>,
    },
    /// `+CDS: <length>` and the PDU line: a status report handed over directly.
    StatusReport {
        /// The TPDU length the modem announced.
        length: u16,
        /// The PDU octets.
        pdu: Vec<u8>,
    },
    /// `+CUSD: <m>[,<str>,<dcs>]`: a USSD answer or network-initiated USSD.
    Ussd {
        /// 0 no further action, 1 further action required, 2 terminated by network, ...
        status: u8,
        /// The string as sent (quotes removed; hex when the modem gives hex).
        text: Option<String>,
        /// Its data coding scheme, when given.
        dcs: Option<u8>,
    },
    /// `+CREG: <stat>[,<lac>,<ci>[,<act>]]` (also `+CGREG`, `+CEREG`).
    Registration(Registration),
    /// Huawei `^RSSI: <n>` (0–31, 99 unknown).
    SignalQuality(u8),
    /// A bare `RDY`, `+CFUN: 1` or `^SYSSTART`: lines modems print as they
    /// start. Evidence to check, not proof: [`crate::session`] initialises
    /// the modem again only when its settings are gone. (Huawei's `^BOOT:`
    /// is not one: sticks print it over and over in normal use; it is
    /// [`Urc::Other`].)
    Boot,
    /// `RING` / `+CRING`: an incoming call.
    Ring,
    /// Any other known unsolicited code (`^MODE`, `^SIMST`, `^SRVST`,
    /// `^DSFLOWRPT`, `^BOOT`, `^HCSQ`, `+ZDONR`, `+ZPASR`, ...), kept as
    /// name and value.
    Other {
        /// The code with its prefix, e.g. `^MODE`.
        name: String,
        /// What followed the colon, trimmed.
        value: String,
    },
}

impl std::fmt::Display for Urc {
    /// For logs: the code and what it tells, redacted ([`crate::redact`]);
    /// never a PDU, a USSD text or a number in full.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Urc::MessageStored { storage, index } => write!(f, "+CMTI {storage:?},{index}"),
            Urc::StatusReportStored { storage, index } => write!(f, "+CDSI {storage:?},{index}"),
            Urc::Message { length, .. } => write!(f, "+CMT (a PDU of {length} octets)"),
            Urc::StatusReport { length, .. } => write!(f, "+CDS (a PDU of {length} octets)"),
            Urc::Ussd { status, .. } => write!(f, "+CUSD {status}"),
            Urc::Registration(registration) => write!(f, "registration {}", registration.stat),
            Urc::SignalQuality(rssi) => write!(f, "^RSSI {rssi}"),
            Urc::Boot => f.write_str("start-up line"),
            Urc::Ring => f.write_str("RING"),
            Urc::Other { name, value } => {
                write!(f, "{name}: {}", crate::redact::redact(value))
            }
        }
    }
}

/// Network registration as `+CREG` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Registration {
    /// 0 not registered, 1 home, 2 searching, 3 denied, 4 unknown, 5 roaming.
    pub stat: u8,
    /// Location area code, when given.
    pub lac: Option<u32>,
    /// Cell id, when given.
    pub cell_id: Option<u32>,
    /// Access technology, when given.
    pub act: Option<u8>,
}

impl Registration {
    /// Registered, at home or roaming.
    pub fn is_registered(&self) -> bool {
        matches!(self.stat, 1 | 5)
    }
}

/// Names of unsolicited codes known to carry nothing the layer reads;
/// [`Urc::parse`] gives them as [`Urc::Other`].
const OTHER_CODES: &[&str] = &[
    // Huawei
    "^MODE",
    "^SIMST",
    "^SRVST",
    "^DSFLOWRPT",
    // Printed periodically in normal use (ModemManager ignores it too).
    "^BOOT",
    "^HCSQ",
    "^SYSINFOEX",
    "^RFSWITCH",
    "^CEND",
    "^ORIG",
    "^CONF",
    "^CONN",
    "^NWTIME",
    "^STIN",
    "^SMMEMFULL",
    // ZTE
    "+ZDONR",
    "+ZPASR",
    "+ZUSIMR",
    "+ZEND",
    // 27.007 and others
    "+PBREADY",
    "+CIEV",
    "+STIN",
    "+CPIN",
    "+CTZV",
    "+CTZE",
    "+CGEV",
    // A call's number (after `AT+CLIP=1` / `AT+CCWA=1`, or a modem's default):
    // read as a code, not as a line of the command in progress.
    "+CLIP",
    "+CCWA",
];

impl Urc {
    /// Reads `line` as an unsolicited result code, unless it is one of the
    /// two-line codes (`+CMT`, `+CDS`), which the codec reads itself.
    ///
    /// - `+CMTI` / `+CDSI`: storage (quotes removed) and index.
    /// - `+CUSD: <m>[,<str>[,<dcs>]]`: the string quoted (it may hold
    ///   commas, quotes and line breaks; it runs to the last quote) or
    ///   unquoted (Huawei E160: packed hex, no dcs; a last field that is a
    ///   number is taken as the dcs).
    /// - `+CREG` / `+CGREG` / `+CEREG`: read in the URC form
    ///   `<stat>[,<lac>,<ci>[,<act>...]]`. A line that cannot be the URC
    ///   form but is a valid response form `<n>,<stat>[,<lac>,<ci>[,<act>]]`
    ///   (two fields, e.g. `+CREG: 0,1`; LAC without cell id, e.g.
    ///   `+CREG: 2,1,,`; or a last field that is no access technology,
    ///   e.g. `+CREG: 2,1,4CA,81DE445`) is read as the response form, so a
    ///   response that slipped past `expect` still gives the right `stat`.
    /// - `^RSSI: n` → [`Urc::SignalQuality`]; `RDY`, `^SYSSTART`,
    ///   `+CFUN: 1` → [`Urc::Boot`]; `RING`, `+CRING…` → [`Urc::Ring`].
    /// - The codes of a fixed list (`^MODE`, `^SIMST`, `^SRVST`,
    ///   `^DSFLOWRPT`, `^BOOT`, `^HCSQ`, `^SYSINFOEX`, `^RFSWITCH`, `+ZDONR`,
    ///   `+ZPASR`, `+ZUSIMR`, `+PBREADY`, `+CIEV`, `+STIN`, `+CPIN`, a few
    ///   more) → [`Urc::Other`]. `+CPIN:` is also the response to
    ///   `AT+CPIN?`: the codec relies on `expect` to tell them apart.
    /// - A known code whose value cannot be read (`+CMTI: garbage`) is
    ///   [`Urc::Other`] too, so it is not mistaken for a response line.
    ///
    /// Anything else (responses, echoes, PDU lines, unknown codes) is `None`.
    pub fn parse(line: &str) -> Option<Urc> {
        let line = line.trim();
        match line {
            "RING" => return Some(Urc::Ring),
            "RDY" => return Some(Urc::Boot),
            _ => {}
        }
        if !line.starts_with('+') && !line.starts_with('^') {
            return None;
        }
        let (name, value) = name_value(line);
        let other = || {
            Some(Urc::Other {
                name: name.to_owned(),
                value: value.to_owned(),
            })
        };
        match name {
            "+CMT" | "+CDS" => None,
            "+CMTI" | "+CDSI" => match stored(value) {
                Some((storage, index)) if name == "+CMTI" => {
                    Some(Urc::MessageStored { storage, index })
                }
                Some((storage, index)) => Some(Urc::StatusReportStored { storage, index }),
                None => other(),
            },
            "+CUSD" => parse_cusd(value).or_else(other),
            "+CREG" | "+CGREG" | "+CEREG" => registration_urc(value)
                .or_else(|| registration_response(value))
                .map(Urc::Registration)
                .or_else(other),
            "^RSSI" => dec(value).map(Urc::SignalQuality).or_else(other),
            "^SYSSTART" => Some(Urc::Boot),
            "+CFUN" if value == "1" => Some(Urc::Boot),
            "+CFUN" => other(),
            "+CRING" => Some(Urc::Ring),
            _ if OTHER_CODES.contains(&name) => other(),
            _ => None,
        }
    }
}

/// `"SM",3` → (`SM`, 3).
fn stored(value: &str) -> Option<(String, u32)> {
    let fields = split_fields(value);
    match fields.as_slice() {
        [storage, index, ..] => Some((unquote(storage).to_owned(), dec(index)?)),
        _ => None,
    }
}

/// The value of `+CUSD: <m>[,<str>[,<dcs>]]`.
fn parse_cusd(value: &str) -> Option<Urc> {
    let (status, rest) = match value.split_once(',') {
        Some((status, rest)) => (status, Some(rest.trim())),
        None => (value, None),
    };
    let status = dec(status)?;
    let Some(rest) = rest else {
        return Some(Urc::Ussd {
            status,
            text: None,
            dcs: None,
        });
    };
    let (text, dcs) = if let Some(quoted) = rest.strip_prefix('"') {
        match quoted.rfind('"') {
            Some(close) => {
                let after = quoted[close + 1..].trim();
                let dcs = after.strip_prefix(',').and_then(dec);
                (quoted[..close].to_owned(), dcs)
            }
            // An unclosed quote (the codec gave up joining lines): keep it all.
            None => (quoted.to_owned(), None),
        }
    } else {
        match rest.rsplit_once(',') {
            Some((text, dcs)) if dec::<u8>(dcs).is_some() => (text.trim().to_owned(), dec(dcs)),
            Some((text, dcs)) if dcs.trim().is_empty() => (text.trim().to_owned(), None),
            _ => (rest.to_owned(), None),
        }
    };
    Some(Urc::Ussd {
        status,
        text: Some(text),
        dcs,
    })
}

/// An access technology field: absent, empty or a small decimal number.
fn act_field(field: Option<&&str>) -> Result<Option<u8>, ()> {
    match field {
        None => Ok(None),
        Some(f) if unquote(f).is_empty() => Ok(None),
        Some(f) => match dec::<u8>(f) {
            Some(act) if act <= 15 => Ok(Some(act)),
            _ => Err(()),
        },
    }
}

/// `<lac>,<ci>`: both given or both empty.
fn lac_ci(lac: &str, ci: &str) -> Option<(Option<u32>, Option<u32>)> {
    let lac = hex_u32(lac).ok()?;
    let ci = hex_u32(ci).ok()?;
    (lac.is_some() == ci.is_some()).then_some((lac, ci))
}

/// The URC form `<stat>[,<lac>,<ci>[,<act>[,...]]]`.
pub(crate) fn registration_urc(value: &str) -> Option<Registration> {
    let fields = split_fields(value);
    let stat = dec(fields[0])?;
    match fields.len() {
        1 => Some(Registration {
            stat,
            lac: None,
            cell_id: None,
            act: None,
        }),
        2 => None,
        _ => {
            let (lac, cell_id) = lac_ci(fields[1], fields[2])?;
            let act = act_field(fields.get(3)).ok()?;
            Some(Registration {
                stat,
                lac,
                cell_id,
                act,
            })
        }
    }
}

/// The response form `<n>,<stat>[,<lac>,<ci>[,<act>[,...]]]`.
pub(crate) fn registration_response(value: &str) -> Option<Registration> {
    let fields = split_fields(value);
    let n: u8 = dec(fields[0])?;
    if n > 5 || fields.len() < 2 || fields.len() == 3 {
        return None;
    }
    let stat = dec(fields[1])?;
    let (lac, cell_id) = if fields.len() >= 4 {
        lac_ci(fields[2], fields[3])?
    } else {
        (None, None)
    };
    let act = act_field(fields.get(4)).ok()?;
    Some(Registration {
        stat,
        lac,
        cell_id,
        act,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(stat: u8, lac: Option<u32>, cell_id: Option<u32>, act: Option<u8>) -> Option<Urc> {
        Some(Urc::Registration(Registration {
            stat,
            lac,
            cell_id,
            act,
        }))
    }

    #[test]
    fn message_and_report_stored() {
        assert_eq!(
            Urc::parse(r#"+CMTI: "SM",3"#),
            Some(Urc::MessageStored {
                storage: "SM".into(),
                index: 3
            })
        );
        assert_eq!(
            Urc::parse("+CMTI: ME, 12"),
            Some(Urc::MessageStored {
                storage: "ME".into(),
                index: 12
            })
        );
        assert_eq!(
            Urc::parse(r#"+CDSI: "SM",4"#),
            Some(Urc::StatusReportStored {
                storage: "SM".into(),
                index: 4
            })
        );
        assert_eq!(
            Urc::parse("+CMTI: junk"),
            Some(Urc::Other {
                name: "+CMTI".into(),
                value: "junk".into()
            })
        );
    }

    #[test]
    fn two_line_codes_are_left_to_the_codec() {
        assert_eq!(Urc::parse("+CMT: ,24"), None);
        assert_eq!(Urc::parse("+CDS: 25"), None);
    }

    #[test]
    fn ussd_variants() {
        assert_eq!(
            Urc::parse(r#"+CUSD: 0,"TK chinh: 10.000d, HSD 01/01/2027",15"#),
            Some(Urc::Ussd {
                status: 0,
                text: Some("TK chinh: 10.000d, HSD 01/01/2027".into()),
                dcs: Some(15)
            })
        );
        // Huawei E160: packed GSM-7 in hex, unquoted, no dcs.
        assert_eq!(
            Urc::parse("+CUSD: 0,D4F29C0E8AC966B3"),
            Some(Urc::Ussd {
                status: 0,
                text: Some("D4F29C0E8AC966B3".into()),
                dcs: None
            })
        );
        assert_eq!(
            Urc::parse("+CUSD: 1,D4F29C0E,15"),
            Some(Urc::Ussd {
                status: 1,
                text: Some("D4F29C0E".into()),
                dcs: Some(15)
            })
        );
        assert_eq!(
            Urc::parse("+CUSD: 2"),
            Some(Urc::Ussd {
                status: 2,
                text: None,
                dcs: None
            })
        );
        assert_eq!(
            Urc::parse("+CUSD: 1,\"1. Tra cuu\n2. Nap tien\",15"),
            Some(Urc::Ussd {
                status: 1,
                text: Some("1. Tra cuu\n2. Nap tien".into()),
                dcs: Some(15)
            })
        );
        assert_eq!(
            Urc::parse("+CUSD: 1,\"unclosed"),
            Some(Urc::Ussd {
                status: 1,
                text: Some("unclosed".into()),
                dcs: None
            })
        );
        assert_eq!(
            Urc::parse("+CUSD: x"),
            Some(Urc::Other {
                name: "+CUSD".into(),
                value: "x".into()
            })
        );
    }

    #[test]
    fn registration_urc_form() {
        assert_eq!(Urc::parse("+CREG: 1"), reg(1, None, None, None));
        assert_eq!(
            Urc::parse(r#"+CREG: 1,"4CA","81DE445""#),
            reg(1, Some(0x4ca), Some(0x081d_e445), None)
        );
        assert_eq!(
            Urc::parse("+CGREG: 5,4CA,81DE445,2"),
            reg(5, Some(0x4ca), Some(0x081d_e445), Some(2))
        );
        assert_eq!(
            Urc::parse(r#"+CEREG: 1,"00A1","0012AB01",7"#),
            reg(1, Some(0xa1), Some(0x0012_ab01), Some(7))
        );
        assert_eq!(Urc::parse("+CREG: 2,,"), reg(2, None, None, None));
    }

    #[test]
    fn registration_response_form_is_recognised() {
        // n=2 response: the last field cannot be an access technology.
        assert_eq!(
            Urc::parse("+CREG: 2,1,4CA,81DE445"),
            reg(1, Some(0x4ca), Some(0x081d_e445), None)
        );
        assert_eq!(
            Urc::parse(r#"+CREG: 2,1,"4CA","81DE445",7"#),
            reg(1, Some(0x4ca), Some(0x081d_e445), Some(7))
        );
        assert_eq!(Urc::parse("+CREG: 0,1"), reg(1, None, None, None));
        assert_eq!(Urc::parse("+CREG: 2,1,,"), reg(1, None, None, None));
    }

    #[test]
    fn huawei_and_boot_and_ring() {
        assert_eq!(Urc::parse("^RSSI: 14"), Some(Urc::SignalQuality(14)));
        assert_eq!(Urc::parse("^RSSI:99"), Some(Urc::SignalQuality(99)));
        assert_eq!(
            Urc::parse("^BOOT:12345678,0,0,0,72"),
            Some(Urc::Other {
                name: "^BOOT".into(),
                value: "12345678,0,0,0,72".into()
            })
        );
        assert_eq!(Urc::parse("RDY"), Some(Urc::Boot));
        assert_eq!(Urc::parse("^SYSSTART"), Some(Urc::Boot));
        assert_eq!(Urc::parse("+CFUN: 1"), Some(Urc::Boot));
        assert_eq!(Urc::parse("RING"), Some(Urc::Ring));
        assert_eq!(Urc::parse("+CRING: VOICE"), Some(Urc::Ring));
        assert_eq!(
            Urc::parse("+CFUN: 0"),
            Some(Urc::Other {
                name: "+CFUN".into(),
                value: "0".into()
            })
        );
    }

    #[test]
    fn other_codes() {
        for (line, name, value) in [
            ("^MODE: 5,4", "^MODE", "5,4"),
            ("^SIMST: 1", "^SIMST", "1"),
            ("^SRVST: 2", "^SRVST", "2"),
            (
                "^DSFLOWRPT: 0000001E,00000000",
                "^DSFLOWRPT",
                "0000001E,00000000",
            ),
            (r#"^HCSQ: "WCDMA",30,30,58"#, "^HCSQ", r#""WCDMA",30,30,58"#),
            ("^SYSINFOEX: 2,3,0,1,,3", "^SYSINFOEX", "2,3,0,1,,3"),
            ("^RFSWITCH: 1,1", "^RFSWITCH", "1,1"),
            ("+ZDONR: \"45204\"", "+ZDONR", "\"45204\""),
            ("+ZPASR: \"UMTS\"", "+ZPASR", "\"UMTS\""),
            ("+ZUSIMR:2", "+ZUSIMR", "2"),
            ("+PBREADY", "+PBREADY", ""),
            ("+CIEV: 1,4", "+CIEV", "1,4"),
            ("+STIN: 25", "+STIN", "25"),
            ("+CPIN: READY", "+CPIN", "READY"),
        ] {
            assert_eq!(
                Urc::parse(line),
                Some(Urc::Other {
                    name: name.into(),
                    value: value.into()
                }),
                "{line}"
            );
        }
    }

    #[test]
    fn non_urcs() {
        for line in [
            "OK",
            "AT+CMGL=4",
            "+CMGL: 0,1,,147",
            "+CSQ: 14,99",
            "0791448720003023240DD0E474D81C0EBB010000111011315214000BE474D81C0EBB5DE3771B",
            "^FOO: 1",
            "",
            "RINGING",
        ] {
            assert_eq!(Urc::parse(line), None, "{line}");
        }
    }
}
