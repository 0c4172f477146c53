//! The commands the simulated modem understands: basic ones (`ATE0`,
//! `ATI`), the extended ones of TS 27.007 / 27.005 and the vendors'
//! (`+CMGS`, `+CMGL`, `+CMGR`, `+CMGD`, `+CFUN`, `+CPIN`, `+CNMI`,
//! `^CURC`, ...), each answered as the profile's modem does.

use super::*;

impl Machine {
    /// Runs the body of one command line (after `AT`): its final result.
    pub(super) fn execute(&mut self, body: &str) -> Final {
        let body = body.trim();
        if body.is_empty() {
            return Final::Ok;
        }
        let first = body.as_bytes()[0];
        if !matches!(first, b'+' | b'^' | b'#' | b'$' | b'*') {
            return self.basic(body);
        }
        let split = body.find(['=', '?']).unwrap_or(body.len());
        let name = body[..split].to_ascii_uppercase();
        let rest = &body[split..];
        let form = if rest.is_empty() {
            Form::Exec
        } else if rest == "?" {
            Form::Read
        } else if rest == "=?" {
            Form::Test
        } else if let Some(args) = rest.strip_prefix('=') {
            Form::Set(args.trim().to_owned())
        } else {
            return self.unknown();
        };
        self.extended(&name, form)
    }

    fn unknown(&self) -> Final {
        if self.settings.profile == Profile::Huawei {
            Final::Raw("COMMAND NOT SUPPORT")
        } else {
            Final::Error
        }
    }

    /// Basic commands, several on a line (`ATE0V1`).
    fn basic(&mut self, body: &str) -> Final {
        let upper = body.to_ascii_uppercase();
        let bytes = upper.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let mut letter = bytes[i];
            i += 1;
            if letter == b'&' && i < bytes.len() {
                letter = bytes[i].to_ascii_lowercase();
                i += 1;
            }
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            let number: u32 = upper[start..i].parse().unwrap_or(0);
            match letter {
                b'E' => self.echo = number != 0,
                b'V' | b'Q' | b'X' | b'w' | b'c' | b'd' => {}
                b'Z' | b'f' => {
                    self.echo = true;
                    self.cmee = 0;
                    self.text_mode = false;
                }
                b'I' => {
                    for line in self.identity() {
                        self.ident(&line);
                    }
                }
                b' ' => {}
                _ => return self.unknown(),
            }
        }
        Final::Ok
    }

    fn identity(&self) -> Vec<String> {
        let (maker, model, revision) = self.settings.profile.identity();
        vec![
            format!("Manufacturer: {maker}"),
            format!("Model: {model}"),
            format!("Revision: {revision}"),
            format!("IMEI: {IMEI}"),
            "+GCAP: +CGSM,+DS,+ES".to_owned(),
        ]
    }

    fn sms_ready(&self) -> Option<Final> {
        if !self.pin_ok {
            return Some(Final::Cme(11));
        }
        None
    }

    fn extended(&mut self, name: &str, form: Form) -> Final {
        let profile = self.settings.profile;
        match (name, form) {
            ("+CMEE", Form::Set(args)) => match args.as_str() {
                "0" | "1" | "2" => {
                    self.cmee = args.parse().unwrap_or(0);
                    Final::Ok
                }
                _ => Final::Cme(50),
            },
            ("+CMEE", Form::Read) => {
                self.info(&format!("+CMEE: {}", self.cmee));
                Final::Ok
            }
            ("+CMGF", Form::Set(args)) => match args.as_str() {
                "0" => {
                    self.text_mode = false;
                    Final::Ok
                }
                "1" => {
                    self.text_mode = true;
                    Final::Ok
                }
                _ => Final::Error,
            },
            ("+CMGF", Form::Read) => {
                self.info(&format!("+CMGF: {}", u8::from(self.text_mode)));
                Final::Ok
            }
            ("+CMGF", Form::Test) => {
                self.info("+CMGF: (0,1)");
                Final::Ok
            }
            ("+CNMI", Form::Set(args)) => {
                let values: Vec<u8> = args
                    .split(',')
                    .map(|v| v.trim().parse().unwrap_or(0))
                    .collect();
                self.cnmi_mt = values.get(1).copied().unwrap_or(0);
                self.cnmi_ds = values.get(3).copied().unwrap_or(0);
                Final::Ok
            }
            ("+CNMI", Form::Read) => {
                let mode = if self.indications() { 2 } else { 0 };
                self.info(&format!(
                    "+CNMI: {mode},{},0,{},0",
                    self.cnmi_mt, self.cnmi_ds
                ));
                Final::Ok
            }
            ("+CNMI", Form::Test) => {
                self.info("+CNMI: (0-2),(0-3),(0,2),(0-2),(0,1)");
                Final::Ok
            }
            ("+CPMS", form) => {
                if let Some(error) = self.sms_ready() {
                    return error;
                }
                let used = self.storage.len();
                let total = self.settings.slots;
                match form {
                    Form::Read => {
                        self.info(&format!(
                            "+CPMS: \"SM\",{used},{total},\"SM\",{used},{total},\"SM\",{used},{total}"
                        ));
                        Final::Ok
                    }
                    Form::Test => {
                        self.info("+CPMS: (\"SM\"),(\"SM\"),(\"SM\")");
                        Final::Ok
                    }
                    Form::Set(args) => {
                        let ok = args.split(',').all(|m| {
                            matches!(
                                m.trim().trim_matches('"').to_ascii_uppercase().as_str(),
                                "SM" | "ME" | "MT"
                            )
                        });
                        if !ok {
                            return Final::Cms(302);
                        }
                        self.info(&format!(
                            "+CPMS: {used},{total},{used},{total},{used},{total}"
                        ));
                        Final::Ok
                    }
                    Form::Exec => Final::Error,
                }
            }
            ("+CPIN", Form::Read) => {
                let state = if self.pin_ok { "READY" } else { "SIM PIN" };
                self.info(&format!("+CPIN: {state}"));
                if profile == Profile::Wavecom {
                    Final::Nothing
                } else {
                    Final::Ok
                }
            }
            ("+CPIN", Form::Set(args)) => {
                let given = args
                    .split(',')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .trim_matches('"');
                match &self.settings.pin {
                    None => Final::Ok,
                    Some(pin) if pin == given => {
                        self.pin_ok = true;
                        Final::Ok
                    }
                    Some(_) => Final::Cme(16),
                }
            }
            ("+CSQ", Form::Exec) => {
                let csq = if self.radio_on {
                    "+CSQ: 21,99"
                } else {
                    "+CSQ: 99,99"
                };
                self.ident(csq);
                Final::Ok
            }
            ("+CSQ", Form::Test) => {
                self.info("+CSQ: (0-31,99),(0-7,99)");
                Final::Ok
            }
            ("+CREG", Form::Set(args)) => match args.as_str() {
                "0" | "1" | "2" => {
                    self.creg_mode = args.parse().unwrap_or(0);
                    Final::Ok
                }
                _ => Final::Error,
            },
            ("+CREG", Form::Read) => {
                let stat = if self.registered() { 1 } else { 0 };
                let line = if self.creg_mode == 2 && stat == 1 {
                    format!("+CREG: 2,{stat},\"4CA\",\"81DE445\",2")
                } else {
                    format!("+CREG: {},{stat}", self.creg_mode)
                };
                self.info(&line);
                Final::Ok
            }
            ("+COPS", Form::Read) => {
                if self.registered() {
                    self.info("+COPS: 0,0,\"Viettel\",2");
                } else {
                    self.info("+COPS: 0");
                }
                Final::Ok
            }
            ("+COPS", Form::Set(_)) => Final::Ok,
            ("+CFUN", Form::Read) => {
                let on = if self.radio_on { 1 } else { 0 };
                self.info(&format!("+CFUN: {on}"));
                Final::Ok
            }
            ("+CFUN", Form::Test) => {
                self.info("+CFUN: (0,1,4),(0-1)");
                Final::Ok
            }
            ("+CFUN", Form::Set(args)) => self.cfun(&args),
            ("+CGMI" | "+GMI", Form::Exec) => {
                let line = profile.identity().0;
                self.ident(line);
                Final::Ok
            }
            ("+CGMM" | "+GMM", Form::Exec) => {
                let line = profile.identity().1;
                self.ident(line);
                Final::Ok
            }
            ("+CGMR" | "+GMR", Form::Exec) => {
                let line = profile.identity().2;
                self.ident(line);
                Final::Ok
            }
            ("+CGSN" | "+GSN", Form::Exec) => {
                self.ident(IMEI);
                Final::Ok
            }
            ("+CIMI", Form::Exec) => {
                if let Some(error) = self.sms_ready() {
                    return error;
                }
                self.ident("452040123456789");
                Final::Ok
            }
            ("+CNUM", Form::Exec) => {
                let own = self.settings.own_number.clone();
                let toa = if own.starts_with('+') { 145 } else { 129 };
                self.info(&format!("+CNUM: \"\",\"{own}\",{toa}"));
                Final::Ok
            }
            ("+CSCA", Form::Read) => {
                let smsc = self.settings.smsc.clone();
                self.info(&format!("+CSCA: \"{smsc}\",145"));
                Final::Ok
            }
            ("+CSCA", Form::Set(args)) => {
                let number = args
                    .split(',')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .trim_matches('"');
                if number.is_empty() {
                    return Final::Error;
                }
                self.settings.smsc = number.to_owned();
                Final::Ok
            }
            ("+CSMS", Form::Read) => {
                self.info("+CSMS: 0,1,1,1");
                Final::Ok
            }
            ("+CSMS", Form::Set(_)) => {
                self.info("+CSMS: 1,1,1");
                Final::Ok
            }
            ("+CSCS" | "+CMMS" | "+CSMP" | "+CLIP" | "+CGREG" | "+CRC", Form::Set(_)) => Final::Ok,
            ("^CURC", Form::Set(args)) if profile == Profile::Huawei => {
                self.curc = args != "0";
                Final::Ok
            }
            ("^CURC", Form::Read) if profile == Profile::Huawei => {
                self.info(&format!("^CURC: {}", u8::from(self.curc)));
                Final::Ok
            }
            ("+CMGL", form) => self.cmgl(form),
            ("+CMGR", Form::Set(args)) => self.cmgr(&args),
            ("+CMGD", Form::Set(args)) => self.cmgd(&args),
            ("+CMGD", Form::Test) => {
                let range = self.slot_range();
                self.info(&format!(
                    "+CMGD: ({}-{}),(0-4)",
                    range.start,
                    range.end.saturating_sub(1)
                ));
                Final::Ok
            }
            ("+CMGS", Form::Set(args)) => self.cmgs(&args),
            ("+CMGS", Form::Test) => Final::Ok,
            _ => self.unknown(),
        }
    }

    fn cfun(&mut self, args: &str) -> Final {
        let mut values = args.split(',').map(|v| v.trim());
        let fun = values.next().unwrap_or("");
        let reset = values.next() == Some("1");
        let was_hung = self.hang == Hang::UntilReset;
        match fun {
            "0" | "4" => {
                self.radio_on = false;
                self.hang = Hang::No;
                Final::Ok
            }
            "1" if reset => {
                // OK first, then the modem goes away and boots.
                self.out.extend_from_slice(b"\r\nOK\r\n");
                self.hang = Hang::Booting;
                self.timers
                    .push((Instant::now() + RESET_DOWNTIME, Timer::Boot));
                Final::Nothing
            }
            "1" => {
                self.radio_on = true;
                self.hang = Hang::No;
                if was_hung {
                    tracing::debug!("sim: AT+CFUN=1 recovered a hung send");
                }
                Final::Ok
            }
            _ => Final::Cme(50),
        }
    }

    fn cmgl(&mut self, form: Form) -> Final {
        if let Some(error) = self.sms_ready() {
            return error;
        }
        if self.text_mode {
            return Final::Cms(302);
        }
        let wanted: u8 = match form {
            Form::Exec => 0,
            Form::Set(args) => match args.parse() {
                Ok(stat @ 0..=4) => stat,
                _ => return Final::Cms(302),
            },
            Form::Test => {
                self.info("+CMGL: (0-4)");
                return Final::Ok;
            }
            Form::Read => return Final::Error,
        };
        let indexes: Vec<u32> = self
            .storage
            .iter()
            .filter(|(_, m)| wanted == 4 || m.stat == wanted)
            .map(|(i, _)| *i)
            .collect();
        let profile = self.settings.profile;
        for (n, index) in indexes.iter().enumerate() {
            let Some(message) = self.storage.get_mut(index) else {
                continue;
            };
            let stat = message.stat;
            let len = message.tpdu_len;
            let hex = message.hex.clone();
            message.stat = 1;
            let header = match profile {
                Profile::Telit => format!("+CMGL: {index},{stat},\"\",{len}"),
                Profile::Pantech => format!("+CMGL: {index},{stat},{len}"),
                _ => format!("+CMGL: {index},{stat},,{len}"),
            };
            self.info(&header);
            self.info(&hex);
            if profile == Profile::Huawei && self.curc && n == 0 && indexes.len() > 1 {
                // Huawei's status lines turn up anywhere, even mid-listing.
                self.out.extend_from_slice(b"\r\n^RSSI: 17\r\r\n");
            }
        }
        Final::Ok
    }

    fn cmgr(&mut self, args: &str) -> Final {
        if let Some(error) = self.sms_ready() {
            return error;
        }
        if self.text_mode {
            return Final::Cms(302);
        }
        let Ok(index) = args.trim().parse::<u32>() else {
            return Final::Cms(321);
        };
        if !self.slot_range().contains(&index) {
            return Final::Cms(321);
        }
        let profile = self.settings.profile;
        let Some(message) = self.storage.get_mut(&index) else {
            return Final::Ok;
        };
        let (stat, len, hex) = (message.stat, message.tpdu_len, message.hex.clone());
        message.stat = 1;
        let header = match profile {
            Profile::Telit => format!("+CMGR: {stat},\"\",{len}"),
            _ => format!("+CMGR: {stat},,{len}"),
        };
        self.info(&header);
        self.info(&hex);
        Final::Ok
    }

    fn cmgd(&mut self, args: &str) -> Final {
        if let Some(error) = self.sms_ready() {
            return error;
        }
        if self.refuse_delete {
            return Final::Cms(500);
        }
        let mut parts = args.split(',').map(|v| v.trim());
        let index: Option<u32> = parts.next().and_then(|v| v.parse().ok());
        let flag: u8 = match parts.next() {
            None => 0,
            Some(v) => match v.parse() {
                Ok(flag @ 0..=4) => flag,
                _ => return Final::Cms(302),
            },
        };
        match flag {
            0 => {
                let Some(index) = index.filter(|i| self.slot_range().contains(i)) else {
                    return Final::Cms(321);
                };
                self.storage.remove(&index);
            }
            // 1: read; 2: read and sent; 3: and unsent; 4: all. Only
            // received messages are stored here.
            1..=3 => self.storage.retain(|_, m| m.stat == 0),
            _ => self.storage.clear(),
        }
        // Room was made: the network's retries come in after the OK.
        Final::Ok
    }

    fn cmgs(&mut self, args: &str) -> Final {
        if let Some(error) = self.sms_ready() {
            return error;
        }
        if self.text_mode {
            return Final::Cms(302);
        }
        let len = match args.trim().parse::<usize>() {
            Ok(len @ 1..=255) => len,
            _ => return Final::Cms(304),
        };
        if self.settings.profile == Profile::Zte {
            self.out.extend_from_slice(b"\r\n+ZPASR: \"UMTS\"\r\n");
        }
        self.out.extend_from_slice(b"\r\n> ");
        if self.hang_after_sends == Some(0) {
            self.hang_after_sends = None;
            self.hang = Hang::UntilReset;
        } else {
            if let Some(sends) = &mut self.hang_after_sends {
                *sends -= 1;
            }
            self.input = Input::Prompt {
                len,
                hex: Vec::new(),
            };
        }
        Final::Nothing
    }

    /// The PDU after the prompt: checked, recorded, answered.
    pub(super) fn submit(&mut self, len: usize, hex: &[u8]) -> Final {
        if let Some((code, times)) = self.cms_on_send {
            self.cms_on_send = (times > 1).then_some((code, times - 1));
            return Final::Cms(code);
        }
        if !self.registered() {
            return Final::Cms(331);
        }
        let hex = String::from_utf8_lossy(hex).trim().to_owned();
        let Ok(bytes) = pdu::from_hex(&hex) else {
            return Final::Cms(304);
        };
        let Some(&smsc_len) = bytes.first() else {
            return Final::Cms(304);
        };
        let tpdu_len = bytes.len().checked_sub(1 + usize::from(smsc_len));
        if tpdu_len != Some(len) {
            return Final::Cms(304);
        }
        let submit = match pdu::decode(&bytes, Direction::FromMobile) {
            Ok(Pdu {
                tpdu: Tpdu::Submit(submit),
                ..
            }) => submit,
            _ => return Final::Cms(304),
        };
        let mr = self.mr;
        self.mr = self.mr.wrapping_add(1);
        let to = if submit.destination.is_international() {
            format!("+{}", submit.destination.number)
        } else {
            submit.destination.number.clone()
        };
        if submit.status_report_request {
            self.timers.push((
                Instant::now() + STATUS_REPORT_DELAY,
                Timer::StatusReport {
                    mr,
                    recipient: submit.destination.clone(),
                },
            ));
        }
        self.submitted.push(Submitted {
            mr,
            to,
            pdu: submit,
            hex: hex.to_ascii_uppercase(),
            at: Instant::now(),
        });
        self.submitted_tx.send_replace(self.submitted.len());
        if self.settings.profile == Profile::Zte {
            self.out
                .extend_from_slice(b"\r\n+ZDONR: \"Viettel\",452,4,\"CS_PS\",\"ROAM_OFF\"\r\n");
        }
        self.info(&format!("+CMGS: {mr}"));
        Final::Ok
    }
}

/// The form of an extended command.
#[derive(Debug, Clone)]
enum Form {
    /// `AT+X`
    Exec,
    /// `AT+X?`
    Read,
    /// `AT+X=?`
    Test,
    /// `AT+X=args`
    Set(String),
}

/// The simulated modem's IMEI.
const IMEI: &str = "867322031234567";
