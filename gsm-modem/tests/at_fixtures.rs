//! Whole multi-command transcripts, written in the styles of several modems
//! (Huawei E173, ZTE MF190, Wavecom, Telit, Pantech), read through
//! `FramedRead` and the typed response parsers, the way a session would:
//! set `expect` from the command, collect the lines up to the final result,
//! set the unsolicited codes aside.

use futures::StreamExt;
use gsm_modem::at::command::{self, PinState, SignalQuality, StorageUse, StoredPdu};
use gsm_modem::at::urc::Registration;
use gsm_modem::at::{AtCodec, AtEvent, ErrorCode, FinalResult, Urc};
use tokio::io::{AsyncRead, AsyncWriteExt};
use tokio_util::codec::FramedRead;

/// What one command got back.
#[derive(Debug)]
struct Reply {
    lines: Vec<String>,
    result: FinalResult,
}

/// A minimal stand-in for the session: one command at a time, against a
/// recorded modem output.
struct Modem<R> {
    framed: FramedRead<R, AtCodec>,
    urcs: Vec<Urc>,
}

impl<R: AsyncRead + Unpin> Modem<R> {
    fn new(reader: R) -> Self {
        Modem {
            framed: FramedRead::new(reader, AtCodec::new()),
            urcs: Vec::new(),
        }
    }

    async fn next(&mut self) -> AtEvent {
        self.framed
            .next()
            .await
            .expect("transcript ended early")
            .expect("decode error")
    }

    /// Reads the reply to `command` (echo dropped), up to its final result,
    /// or up to the prompt when `until_prompt`.
    async fn reply(&mut self, command: &str, until_prompt: bool) -> Reply {
        let prefixes: Vec<&str> = command::response_prefix(command).into_iter().collect();
        self.framed.decoder_mut().expect(&prefixes);
        let mut lines = Vec::new();
        loop {
            match self.next().await {
                AtEvent::Line(l) if l == command => {}
                AtEvent::Line(l) => lines.push(l),
                AtEvent::Unsolicited(u) => self.urcs.push(u),
                AtEvent::Prompt if until_prompt => {
                    return Reply {
                        lines,
                        result: FinalResult::Ok,
                    }
                }
                AtEvent::Prompt => panic!("unexpected prompt after {command}"),
                AtEvent::Final(result) => {
                    self.framed.decoder_mut().expect_nothing();
                    return Reply { lines, result };
                }
            }
        }
    }

    async fn ok(&mut self, command: &str) -> Vec<String> {
        let reply = self.reply(command, false).await;
        assert_eq!(reply.result, FinalResult::Ok, "{command}: {reply:?}");
        reply.lines
    }

    /// `AT+CMGS=<n>`, the prompt, the echoed PDU, `+CMGS: <mr>`.
    async fn send(&mut self, command: &str, echoed_pdu: &str) -> u8 {
        let before = self.reply(command, true).await;
        assert!(before.lines.is_empty(), "{before:?}");
        let mut after = self.ok(command).await;
        // The PDU echo (with its Ctrl-Z) is the session's to filter.
        assert_eq!(after.remove(0), echoed_pdu);
        command::parse_cmgs(&after).unwrap()
    }

    /// Everything after the last command.
    async fn rest(&mut self) -> Vec<AtEvent> {
        let mut out = Vec::new();
        while let Some(e) = self.framed.next().await {
            out.push(e.expect("decode error"));
        }
        out
    }
}

const DELIVER: &str = "07914889000000F0040B914889000000F00000621130915230820AC8329BFD0661916536";
const DELIVER_2: &str =
    "0791448720003023240DD0E474D81C0EBB010000111011315214000BE474D81C0EBB5DE3771B";
const SUBMIT: &str = "0011000B914889000000F00000AA0AC8329BFD0661916536";

fn bytes(hex: &str) -> Vec<u8> {
    command::decode_hex(hex).unwrap()
}

#[tokio::test]
async fn huawei_e173() {
    let transcript = format!(
        "\r\n^BOOT:27043391,0,0,0,72\r\n\r\n^RSSI:14\r\n\
         AT+CMGF=0\r\r\nOK\r\n\
         AT+CPIN?\r\r\n+CPIN: READY\r\n\r\nOK\r\n\
         AT+CSQ\r\r\n+CSQ: 17,99\r\n\r\nOK\r\n\
         AT+CREG?\r\r\n+CREG: 2,1,4CA,81DE445\r\n\r\nOK\r\n\
         \r\n^MODE:5,4\r\n\
         AT+CMGL=4\r\r\n+CMGL: 0,1,,35\r\n{DELIVER}\r\n\r\n^RSSI:15\r\n\
         +CMGL: 1,0,,38\r\n{DELIVER_2}\r\n\r\nOK\r\n\
         AT+CUSD=1,\"*101#\",15\r\r\nOK\r\n\
         \r\n+CUSD: 0,\"TK chinh: 12.345d,\r\nHSD: 31/12/2026\",15\r\n\
         AT^FOO\r\r\nCOMMAND NOT SUPPORT\r\n\
         \r\n^DSFLOWRPT:0000001E,00000000,00000000,0000000000000000,0000000000000000,0003E800,0003E800\r\n"
    );
    let mut m = Modem::new(transcript.as_bytes());
    m.ok(command::cmgf_pdu()).await;
    assert_eq!(
        command::parse_cpin(&m.ok(command::cpin_query()).await).unwrap(),
        PinState::Ready
    );
    assert_eq!(
        command::parse_csq(&m.ok(command::csq()).await).unwrap(),
        SignalQuality { rssi: 17, ber: 99 }
    );
    let reg = command::parse_creg(&m.ok(command::creg_query()).await).unwrap();
    assert_eq!(
        reg,
        Registration {
            stat: 1,
            lac: Some(0x4ca),
            cell_id: Some(0x081d_e445),
            act: None
        }
    );
    let listed = command::parse_cmgl(&m.ok(command::cmgl_all()).await).unwrap();
    assert_eq!(
        listed,
        vec![
            StoredPdu {
                index: 0,
                status: Some(1),
                length: 35,
                pdu: bytes(DELIVER)
            },
            StoredPdu {
                index: 1,
                status: Some(0),
                length: 38,
                pdu: bytes(DELIVER_2)
            }
        ]
    );
    let ussd = command::cusd("*101#", 15).unwrap();
    assert!(m.ok(&ussd).await.is_empty());
    let unknown = m.reply("AT^FOO", false).await;
    assert_eq!(
        unknown.result,
        FinalResult::NotSupported("COMMAND NOT SUPPORT".into())
    );
    assert_eq!(m.rest().await.len(), 1);
    assert_eq!(
        m.urcs,
        vec![
            Urc::Other {
                name: "^BOOT".into(),
                value: "27043391,0,0,0,72".into()
            },
            Urc::SignalQuality(14),
            Urc::Other {
                name: "^MODE".into(),
                value: "5,4".into()
            },
            Urc::SignalQuality(15),
            Urc::Ussd {
                status: 0,
                text: Some("TK chinh: 12.345d,\nHSD: 31/12/2026".into()),
                dcs: Some(15)
            },
        ]
    );
}

#[tokio::test]
async fn zte_mf190_send_with_urcs_before_the_prompt() {
    let transcript = format!(
        "\r\n+ZUSIMR:2\r\n\r\n+PBREADY\r\n\
         AT+CPMS=\"ME\",\"ME\",\"ME\"\r\r\n+CPMS: 0,100,0,100,0,100\r\n\r\nOK\r\n\
         AT+CPMS?\r\r\n+CPMS: \"ME\",0,100,\"ME\",0,100,\"ME\",0,100\r\n\r\nOK\r\n\
         AT+CMGS=24\r\r\n\r\n+ZDONR: \"45204\",1,1,\"CS_PS\",\"ROAM_OFF\"\r\n\r\n+ZPASR: \"UMTS\"\r\n\r\n> \
         {SUBMIT}\x1a\r\n+CMTI: \"ME\",0\r\n\r\n+CMGS: 42\r\n\r\nOK\r\n\
         AT+CMGR=0\r\r\n+CMGR: 0,,35\r\n{DELIVER}\r\n\r\nOK\r\n\
         AT+CMGD=0\r\r\nOK\r\n"
    );
    let mut m = Modem::new(transcript.as_bytes());
    let set = command::cpms("ME", "ME", "ME").unwrap();
    let su = |memory: &str| StorageUse {
        memory: memory.into(),
        used: 0,
        total: 100,
    };
    assert_eq!(
        command::parse_cpms(&m.ok(&set).await).unwrap(),
        vec![su(""), su(""), su("")]
    );
    assert_eq!(
        command::parse_cpms(&m.ok(command::cpms_query()).await).unwrap(),
        vec![su("ME"), su("ME"), su("ME")]
    );
    let echoed = command::pdu_body(&bytes(SUBMIT));
    assert_eq!(m.send(&command::cmgs(24), &echoed).await, 42);
    let read = command::parse_cmgr(0, &m.ok(&command::cmgr(0)).await).unwrap();
    assert_eq!(
        read,
        Some(StoredPdu {
            index: 0,
            status: Some(0),
            length: 35,
            pdu: bytes(DELIVER)
        })
    );
    assert!(m.ok(&command::cmgd(0)).await.is_empty());
    assert!(m.rest().await.is_empty());
    let names: Vec<&str> = m
        .urcs
        .iter()
        .map(|u| match u {
            Urc::Other { name, .. } => name.as_str(),
            Urc::MessageStored { .. } => "+CMTI",
            _ => "?",
        })
        .collect();
    assert_eq!(names, ["+ZUSIMR", "+PBREADY", "+ZDONR", "+ZPASR", "+CMTI"]);
}

#[tokio::test]
async fn wavecom_boot_and_direct_delivery() {
    // Echo off (ATE0 echoed once), +CPIN: READY on its own at start-up,
    // `+CMT` delivered directly, an empty slot, a numeric CMS error.
    let transcript = format!(
        "\r\n+CPIN: READY\r\n\
         ATE0\r\r\nOK\r\n\
         \r\n+CMT: ,35\r\n{DELIVER}\r\n\
         \r\nOK\r\n\
         \r\n+CREG: 0,1\r\n\r\nOK\r\n\
         \r\n+CMS ERROR: 321\r\n\
         \r\n+CDS: 25\r\n0006D60B911326880736F4111011719551401110117195714000\r\n\
         \r\n+CREG: 1\r\n"
    );
    let mut m = Modem::new(transcript.as_bytes());
    assert!(m.ok(command::echo_off()).await.is_empty());
    // AT+CMGR=9: an empty slot, just OK.
    assert_eq!(
        command::parse_cmgr(9, &m.ok(&command::cmgr(9)).await).unwrap(),
        None
    );
    let reg = command::parse_creg(&m.ok(command::creg_query()).await).unwrap();
    assert!(reg.is_registered());
    let failed = m.reply(&command::cmgr(40), false).await;
    assert_eq!(failed.result, FinalResult::CmsError(ErrorCode::Number(321)));
    assert!(m
        .rest()
        .await
        .iter()
        .all(|e| matches!(e, AtEvent::Unsolicited(_))));
    assert_eq!(m.urcs.len(), 2);
    assert_eq!(
        m.urcs[0],
        Urc::Other {
            name: "+CPIN".into(),
            value: "READY".into()
        }
    );
    assert_eq!(
        m.urcs[1],
        Urc::Message {
            length: 35,
            pdu: bytes(DELIVER)
        }
    );
}

#[tokio::test]
async fn telit_verbose_errors_and_cmgr_with_quoted_alpha() {
    let transcript = format!(
        "AT+CMGR=1\r\r\n+CMGR: 0,\"\",35\r\n{DELIVER}\r\n\r\nOK\r\n\
         AT+CREG?\r\r\n+CREG: 2,1,\"4CA\",\"81DE445\",7\r\n\r\nOK\r\n\
         AT+CPIN?\r\r\n+CME ERROR: SIM not inserted\r\n\
         AT+CMGS=24\r\r\n> {SUBMIT}\x1a\r\n+CMGS: 12,\"24/03/15,10:00:00+28\"\r\n\r\nOK\r\n"
    );
    let mut m = Modem::new(transcript.as_bytes());
    let read = command::parse_cmgr(1, &m.ok(&command::cmgr(1)).await)
        .unwrap()
        .unwrap();
    assert_eq!((read.index, read.status, read.length), (1, Some(0), 35));
    let reg = command::parse_creg(&m.ok(command::creg_query()).await).unwrap();
    assert_eq!(reg.act, Some(7));
    let pin = m.reply(command::cpin_query(), false).await;
    assert_eq!(
        pin.result,
        FinalResult::CmeError(ErrorCode::Text("SIM not inserted".into()))
    );
    let echoed = command::pdu_body(&bytes(SUBMIT));
    assert_eq!(m.send(&command::cmgs(24), &echoed).await, 12);
    assert!(m.rest().await.is_empty());
    assert!(m.urcs.is_empty());
}

#[tokio::test]
async fn pantech_listing_over_a_duplex_in_small_writes() {
    // Pantech: no alpha field in +CMGL, `\r\r\n` everywhere, a +CMGL
    // header whose PDU line never came.
    let transcript = format!(
        "AT+CMGL=4\r\r\n+CMGL: 17,3,35\r\r\n{DELIVER}\r\r\n+CMGL: 18,1,38\r\r\n\
         +CMGL: 19,1,38\r\r\n{DELIVER_2}\r\r\n\r\r\nOK\r\r\n\
         AT+CSQ\r\r\n+CSQ: 99,99\r\r\n\r\r\nOK\r\r\n"
    )
    .into_bytes();
    let (mut tx, rx) = tokio::io::duplex(64);
    let writer = tokio::spawn(async move {
        for chunk in transcript.chunks(7) {
            tx.write_all(chunk).await.unwrap();
            tokio::task::yield_now().await;
        }
    });
    let mut m = Modem::new(rx);
    let listed = command::parse_cmgl(&m.ok(command::cmgl_all()).await).unwrap();
    let heads: Vec<_> = listed
        .iter()
        .map(|s| (s.index, s.status, s.length))
        .collect();
    assert_eq!(heads, [(17, Some(3), 35), (19, Some(1), 38)]);
    let q = command::parse_csq(&m.ok(command::csq()).await).unwrap();
    assert_eq!(q.dbm(), None);
    writer.await.unwrap();
    assert!(m.rest().await.is_empty());
}

#[tokio::test]
async fn dlink_listing_with_spaces_and_cusd_unquoted() {
    // D-Link: spaces after commas; an E160-style unquoted USSD answer
    // arriving before OK while +CUSD: is expected (a line, read with
    // Urc::parse).
    let transcript = format!(
        "AT+CMGL=4\r\n+CMGL: 1, 0,,35\r\n{DELIVER}\r\nOK\r\n\
         AT+CUSD=1,\"*101#\",15\r\n+CUSD: 0,D4F29C0E8AC966B3\r\nOK\r\n"
    );
    let mut m = Modem::new(transcript.as_bytes());
    let listed = command::parse_cmgl(&m.ok(command::cmgl_all()).await).unwrap();
    assert_eq!((listed[0].index, listed[0].status), (1, Some(0)));
    let lines = m.ok(&command::cusd("*101#", 15).unwrap()).await;
    assert_eq!(
        Urc::parse(&lines[0]),
        Some(Urc::Ussd {
            status: 0,
            text: Some("D4F29C0E8AC966B3".into()),
            dcs: None
        })
    );
}
