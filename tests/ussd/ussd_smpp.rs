//! USSD over SMPP in both roles, against PDUs written and read by the smpp34
//! crate (code nobody here wrote), with a scripted handler serving a
//! two-step menu: a dial opens it ("1. A\n2. B", dialogue kept open), "1"
//! ends it with "A!", anything else with "Sai"; a release gets nothing.
//!
//! - listener role: a peer bound to the listener submits USSD turns as
//!   `submit_sm` (answered with `deliver_sm`) and as `data_sm` (answered
//!   with `data_sm`);
//! - ESME role: a carrier's USSD centre delivers them as `deliver_sm`
//!   (answered with `submit_sm`) and as `data_sm`.
//!
//! Each checks the operation, the echoed session number with its sequence
//! and end bit, the addressing, that a release from the peer is answered
//! with nothing, that USSD turns never reach the SMS journal, and that a
//! `data_sm` without `ussd_service_op` is a citizen's SMS (SMPP 3.4 §4.7),
//! journaled and acknowledged with `data_sm_resp`, while one from a peer
//! not yet bound is refused with ESME_RINVBNDSTS.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use motcua_sms::channel::Routes;
use motcua_sms::channel::{ServiceOp, TurnKind, UssdTurn};
use motcua_sms::smpp::esme::EsmeClient;
use motcua_sms::smpp::listener::Listener;
use motcua_sms::smpp::{ListenerAccount, ListenerSettings, SessionSettings, SmscSettings};
use smpp34::{bind_transceiver, data_sm, deliver_sm, submit_sm, CommandHeader, Tlv};
use support::raw_smpp::RawSmpp;
use support::ussd_menu::{Menu, SMS_ID};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(10);
/// How long a peer waits to be sure nothing is coming.
const QUIET: Duration = Duration::from_millis(600);
const SERVICE: &str = "*8058#";

const BIND_TRANSCEIVER: u32 = 0x0000_0009;
const SUBMIT_SM: u32 = 0x0000_0004;
const DELIVER_SM: u32 = 0x0000_0005;
const DATA_SM: u32 = 0x0000_0103;
const ENQUIRE_LINK: u32 = 0x0000_0015;
const RESP: u32 = 0x8000_0000;
const ESME_RINVBNDSTS: u32 = 0x04;
const USSD_SERVICE_OP: u16 = 0x0501;
const ITS_SESSION_INFO: u16 = 0x1383;
const MESSAGE_PAYLOAD: u16 = 0x0424;

async fn next_turn(seen: &mut mpsc::UnboundedReceiver<UssdTurn>) -> UssdTurn {
    support::ussd_menu::next_turn(seen, WAIT).await
}

/// One PDU as read: its header and all its bytes.
struct Received {
    header: CommandHeader,
    bytes: Vec<u8>,
}

/// A raw SMPP connection: PDUs are written with smpp34 and read whole
/// over the raw peer, their headers decoded by smpp34.
struct Wire {
    peer: RawSmpp,
    next_seq: u32,
}

impl Wire {
    fn new(stream: TcpStream) -> Self {
        Wire {
            peer: RawSmpp::new(stream),
            next_seq: 1,
        }
    }

    fn seq(&mut self) -> u32 {
        let s = self.next_seq;
        self.next_seq += 1;
        s
    }

    async fn write(&mut self, bytes: &[u8]) {
        self.peer.send(bytes).await;
    }

    async fn read_any(&mut self) -> Received {
        let bytes = self
            .peer
            .read_bytes(WAIT)
            .await
            .unwrap_or_else(|why| panic!("a PDU: {why:?}"));
        let header = CommandHeader::decode(&bytes).expect("a header");
        Received { header, bytes }
    }

    /// The next PDU other than enquire_link (which is answered).
    async fn next(&mut self) -> Received {
        tokio::time::timeout(WAIT, async {
            loop {
                let raw = self.read_any().await;
                if raw.header.command_id == ENQUIRE_LINK {
                    let resp = header(ENQUIRE_LINK | RESP, 0, raw.header.sequence_number);
                    self.write(&resp).await;
                    continue;
                }
                return raw;
            }
        })
        .await
        .expect("a PDU in time")
    }

    /// The next PDU, which must be `command_id`.
    async fn expect(&mut self, command_id: u32) -> Received {
        let raw = self.next().await;
        assert_eq!(
            raw.header.command_id, command_id,
            "expected 0x{command_id:08x}, got {:?}",
            raw.header
        );
        raw
    }

    /// Checks that nothing but enquire_link arrives for a while.
    async fn expect_quiet(&mut self) {
        if let Ok(raw) = tokio::time::timeout(QUIET, self.read_any()).await {
            assert_eq!(
                raw.header.command_id, ENQUIRE_LINK,
                "nothing should have been sent: {:?}",
                raw.header
            );
        }
    }
}

fn header(command_id: u32, command_status: u32, sequence_number: u32) -> Vec<u8> {
    CommandHeader {
        command_length: 16,
        command_id,
        command_status,
        sequence_number,
    }
    .encode()
}

/// The message id of a response (the C-string after the header; empty for a bare header).
fn message_id(raw: &Received) -> String {
    let body = &raw.bytes[16..];
    let end = body.iter().position(|&b| b == 0).unwrap_or(body.len());
    String::from_utf8_lossy(&body[..end]).into_owned()
}

fn ussd_tlvs(op: u8, session: [u8; 2]) -> Vec<Tlv> {
    vec![
        Tlv::new(USSD_SERVICE_OP, vec![op]),
        Tlv::new(ITS_SESSION_INFO, session.to_vec()),
    ]
}

fn tlv(tlvs: &[Tlv], tag: u16) -> Option<&[u8]> {
    tlvs.iter()
        .find(|t| t.tag == tag)
        .map(|t| t.value.as_slice())
}

/// A submit_sm (`deliver`: a deliver_sm) from `citizen` to the service, GSM-7 text.
fn message_pdu(deliver: bool, seq: u32, citizen: &str, text: &str, tlvs: Vec<Tlv>) -> Vec<u8> {
    let fields = (
        seq,
        "USSD".to_string(),
        1,
        1,
        citizen.to_string(),
        0,
        1,
        SERVICE.to_string(),
    );
    if deliver {
        deliver_sm::new(
            fields.0,
            fields.1,
            fields.2,
            fields.3,
            fields.4,
            fields.5,
            fields.6,
            fields.7,
            0,
            0,
            0,
            String::new(),
            String::new(),
            0,
            0,
            0,
            0,
            text.as_bytes().to_vec(),
        )
        .with_tlvs(tlvs)
        .encode()
    } else {
        submit_sm::new(
            fields.0,
            fields.1,
            fields.2,
            fields.3,
            fields.4,
            fields.5,
            fields.6,
            fields.7,
            0,
            0,
            0,
            String::new(),
            String::new(),
            0,
            0,
            0,
            0,
            text.as_bytes().to_vec(),
        )
        .with_tlvs(tlvs)
        .encode()
    }
}

/// A data_sm from `citizen` to the service, the GSM-7 text in message_payload.
fn data_sm_pdu(seq: u32, citizen: &str, text: &str, mut tlvs: Vec<Tlv>) -> Vec<u8> {
    tlvs.push(Tlv::new(MESSAGE_PAYLOAD, text.as_bytes().to_vec()));
    data_sm::new(
        seq,
        "USSD".into(),
        1,
        1,
        citizen.into(),
        0,
        1,
        SERVICE.into(),
        0,
        0,
        0,
    )
    .with_tlvs(tlvs)
    .encode()
}

/// What the gateway sent as a USSD answer, whatever the command.
#[derive(Debug)]
struct Answer {
    service_type: String,
    source_addr: String,
    source_addr_ton: u8,
    destination_addr: String,
    dest_addr_ton: u8,
    data_coding: u8,
    text: Vec<u8>,
    tlvs: Vec<Tlv>,
}

impl Answer {
    fn op(&self) -> Option<u8> {
        tlv(&self.tlvs, USSD_SERVICE_OP).map(|v| v[0])
    }

    fn session(&self) -> Option<&[u8]> {
        tlv(&self.tlvs, ITS_SESSION_INFO)
    }

    /// Checks the addressing back to `citizen`, the operation, the session
    /// octets and the (GSM-7, here ASCII-only) text.
    fn check(&self, citizen: &str, op: u8, session: [u8; 2], text: &str) {
        assert_eq!(self.destination_addr, citizen, "{self:?}");
        assert_eq!(self.dest_addr_ton, 1, "{self:?}");
        assert_eq!(self.source_addr, SERVICE, "{self:?}");
        assert_eq!(self.source_addr_ton, 0, "{self:?}");
        assert_eq!(self.service_type, "USSD", "{self:?}");
        assert_eq!(self.op(), Some(op), "{self:?}");
        assert_eq!(self.session(), Some(&session[..]), "{self:?}");
        assert_eq!(self.data_coding, 0, "{self:?}");
        assert_eq!(self.text, text.as_bytes(), "{self:?}");
    }
}

/// Reads the gateway's answer (`command_id`: submit_sm, deliver_sm or
/// data_sm) and acknowledges it.
async fn answer_from(wire: &mut Wire, command_id: u32) -> Answer {
    let raw = wire.expect(command_id).await;
    let seq = raw.header.sequence_number;
    let answer = match command_id {
        SUBMIT_SM => {
            let sm = submit_sm::decode(raw.header, &raw.bytes).expect("submit_sm decodes");
            let answer = Answer {
                service_type: sm.service_type.clone(),
                source_addr: sm.source_addr.clone(),
                source_addr_ton: sm.source_addr_ton,
                destination_addr: sm.destination_addr.clone(),
                dest_addr_ton: sm.dest_addr_ton,
                data_coding: sm.data_coding,
                text: sm.short_message.clone(),
                tlvs: sm.tlvs.clone(),
            };
            wire.write(&sm.accept(format!("s{seq}")).encode()).await;
            answer
        }
        DELIVER_SM => {
            let sm = deliver_sm::decode(raw.header, &raw.bytes).expect("deliver_sm decodes");
            let answer = Answer {
                service_type: sm.service_type.clone(),
                source_addr: sm.source_addr.clone(),
                source_addr_ton: sm.source_addr_ton,
                destination_addr: sm.destination_addr.clone(),
                dest_addr_ton: sm.dest_addr_ton,
                data_coding: sm.data_coding,
                text: sm.short_message.clone(),
                tlvs: sm.tlvs.clone(),
            };
            wire.write(&sm.accept().encode()).await;
            answer
        }
        DATA_SM => {
            let sm = data_sm::decode(raw.header, &raw.bytes).expect("data_sm decodes");
            let answer = Answer {
                service_type: sm.service_type.clone(),
                source_addr: sm.source_addr.clone(),
                source_addr_ton: sm.source_addr_ton,
                destination_addr: sm.destination_addr.clone(),
                dest_addr_ton: sm.dest_addr_ton,
                data_coding: sm.data_coding,
                text: tlv(&sm.tlvs, MESSAGE_PAYLOAD)
                    .expect("the text in message_payload")
                    .to_vec(),
                tlvs: sm.tlvs.clone(),
            };
            wire.write(&sm.accept(format!("d{seq}")).encode()).await;
            answer
        }
        other => panic!("not a message: 0x{other:08x}"),
    };
    answer
}

/// Sends a turn and checks that it was acknowledged at once with ESME_ROK;
/// returns the message id given.
async fn send_turn(wire: &mut Wire, pdu: &[u8], command_id: u32) -> String {
    wire.write(pdu).await;
    let resp = wire.expect(command_id | RESP).await;
    assert_eq!(resp.header.command_status, 0, "{:?}", resp.header);
    message_id(&resp)
}

/// The listener with one account (`demo`/`demo`), served by `handler`.
async fn start_listener(handler: Arc<Menu>) -> (SocketAddr, CancellationToken) {
    let settings = ListenerSettings {
        bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        accounts: vec![ListenerAccount {
            system_id: "demo".into(),
            password: "demo".into(),
            ..ListenerAccount::default()
        }],
        ..ListenerSettings::default()
    };
    let listener = Listener::bind(
        settings,
        SessionSettings::default(),
        handler,
        Arc::new(Routes::default()),
    )
    .await
    .expect("listener binds");
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let release = CancellationToken::new();
    release.cancel();
    tokio::spawn(listener.run(shutdown.clone(), release));
    (addr, shutdown)
}

/// bind_transceiver, SMPP 3.4 §4.1.5, written by hand (smpp34's
/// constructor is crate-private).
fn bind_pdu(seq: u32, system_id: &str, password: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for s in [system_id, password, ""] {
        body.extend_from_slice(s.as_bytes());
        body.push(0);
    }
    body.extend_from_slice(&[0x34, 0, 0, 0]);
    let mut pdu = CommandHeader {
        command_length: 16 + body.len() as u32,
        command_id: BIND_TRANSCEIVER,
        command_status: 0,
        sequence_number: seq,
    }
    .encode();
    pdu.extend_from_slice(&body);
    pdu
}

#[tokio::test]
async fn listener_serves_a_menu_over_submit_sm_and_data_sm() {
    let (menu, mut seen) = Menu::new();
    let (addr, shutdown) = start_listener(menu.clone()).await;
    let mut wire = Wire::new(TcpStream::connect(addr).await.unwrap());
    // Before the bind, a data_sm (SMS or USSD) is out of place.
    let seq = wire.seq();
    wire.write(&data_sm_pdu(seq, "84912345678", "TC 1", Vec::new()))
        .await;
    let early = wire.expect(DATA_SM | RESP).await;
    assert_eq!(early.header.command_status, ESME_RINVBNDSTS);
    let seq = wire.seq();
    wire.write(&bind_pdu(seq, "demo", "demo")).await;
    let bound = wire.expect(BIND_TRANSCEIVER | RESP).await;
    assert_eq!(bound.header.command_status, 0);

    // submit_sm: the dial opens the menu (USSR request, session 0x21, sequence 0 → 1).
    let citizen = "84912345678";
    let seq = wire.seq();
    let pdu = message_pdu(false, seq, citizen, SERVICE, ussd_tlvs(1, [0x21, 0]));
    let id = send_turn(&mut wire, &pdu, SUBMIT_SM).await;
    assert!(id.starts_with('u'), "{id}");
    answer_from(&mut wire, DELIVER_SM)
        .await
        .check(citizen, 2, [0x21, 1 << 1], "1. A\n2. B");
    let open = next_turn(&mut seen).await;
    assert_eq!(open.kind, TurnKind::Open);
    assert_eq!(open.op, ServiceOp::PssrIndication);
    assert_eq!(open.text, SERVICE);
    assert_eq!(open.ret.channel, "listener:demo");
    assert!(!open.ret.data_sm);

    // The citizen picks 1 (USSR confirm, sequence 2): the final screen
    // (PSSR response, sequence 3, end bit).
    let seq = wire.seq();
    let pdu = message_pdu(false, seq, citizen, "1", ussd_tlvs(18, [0x21, 2 << 1]));
    send_turn(&mut wire, &pdu, SUBMIT_SM).await;
    answer_from(&mut wire, DELIVER_SM)
        .await
        .check(citizen, 17, [0x21, (3 << 1) | 1], "A!");
    let pick = next_turn(&mut seen).await;
    assert_eq!(pick.kind, TurnKind::Continue);
    assert_eq!(pick.text, "1");
    assert_eq!(pick.dialogue, open.dialogue, "one dialogue");

    // The same dialogue as data_sm, answered with data_sm; a wrong pick ends it.
    let other = "84987000111";
    let seq = wire.seq();
    let pdu = data_sm_pdu(seq, other, SERVICE, ussd_tlvs(1, [0x22, 0]));
    let id = send_turn(&mut wire, &pdu, DATA_SM).await;
    assert!(id.starts_with('u'), "{id}");
    answer_from(&mut wire, DATA_SM)
        .await
        .check(other, 2, [0x22, 1 << 1], "1. A\n2. B");
    let seq = wire.seq();
    let pdu = data_sm_pdu(seq, other, "7", ussd_tlvs(18, [0x22, 2 << 1]));
    send_turn(&mut wire, &pdu, DATA_SM).await;
    answer_from(&mut wire, DATA_SM)
        .await
        .check(other, 17, [0x22, (3 << 1) | 1], "Sai");
    let turn = next_turn(&mut seen).await;
    assert!(turn.ret.data_sm && turn.kind == TurnKind::Open);
    let turn = next_turn(&mut seen).await;
    assert_eq!((turn.kind, turn.text.as_str()), (TurnKind::Continue, "7"));

    // The citizen hangs up (end bit): acknowledged, the handler sees a
    // release, nothing is sent.
    let seq = wire.seq();
    let pdu = message_pdu(false, seq, citizen, "", ussd_tlvs(18, [0x23, (2 << 1) | 1]));
    send_turn(&mut wire, &pdu, SUBMIT_SM).await;
    let release = next_turn(&mut seen).await;
    assert_eq!(release.kind, TurnKind::Release);
    wire.expect_quiet().await;

    // A data_sm that is not USSD is a citizen's SMS, journaled like a
    // submit_sm and acknowledged with the journal's id.
    assert_eq!(menu.sms_count(), 0, "USSD turns are not journaled");
    let seq = wire.seq();
    let pdu = data_sm_pdu(seq, citizen, "TC 1", Vec::new());
    assert_eq!(send_turn(&mut wire, &pdu, DATA_SM).await, SMS_ID);
    assert_eq!(menu.sms_count(), 1);
    assert_eq!(menu.sms_texts(), vec!["TC 1".to_owned()]);
    let seq = wire.seq();
    let pdu = message_pdu(false, seq, citizen, "TC 2", Vec::new());
    assert_eq!(send_turn(&mut wire, &pdu, SUBMIT_SM).await, SMS_ID);
    assert_eq!(menu.sms_count(), 2);
    assert!(seen.try_recv().is_err(), "no other USSD turn");
    shutdown.cancel();
}

#[tokio::test]
async fn esme_serves_a_menu_over_deliver_sm_and_data_sm() {
    let (menu, mut seen) = Menu::new();
    let smsc = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = smsc.local_addr().unwrap().port();
    let client = EsmeClient::new(
        SmscSettings::new("vt", "127.0.0.1", port, "motcua", "secret"),
        SessionSettings::default(),
        menu.clone(),
        Arc::new(Routes::default()),
    );
    let shutdown = CancellationToken::new();
    let release = CancellationToken::new();
    release.cancel();
    tokio::spawn(client.run(shutdown.clone(), release));
    let (stream, _) = tokio::time::timeout(WAIT, smsc.accept())
        .await
        .expect("the gateway connects")
        .unwrap();
    let mut wire = Wire::new(stream);
    let bind = wire.expect(BIND_TRANSCEIVER).await;
    let bind = bind_transceiver::decode(bind.header, &bind.bytes).expect("bind decodes");
    assert_eq!(bind.system_id, "motcua");
    wire.write(&bind.accept("TestSmsc".into(), Some(0x34)).encode())
        .await;

    // deliver_sm: dial, menu as submit_sm (USSR request), pick 1, final screen.
    let citizen = "84912345678";
    let seq = wire.seq();
    let pdu = message_pdu(true, seq, citizen, SERVICE, ussd_tlvs(1, [0x31, 0]));
    send_turn(&mut wire, &pdu, DELIVER_SM).await;
    answer_from(&mut wire, SUBMIT_SM)
        .await
        .check(citizen, 2, [0x31, 1 << 1], "1. A\n2. B");
    let seq = wire.seq();
    let pdu = message_pdu(true, seq, citizen, "1", ussd_tlvs(18, [0x31, 2 << 1]));
    send_turn(&mut wire, &pdu, DELIVER_SM).await;
    answer_from(&mut wire, SUBMIT_SM)
        .await
        .check(citizen, 17, [0x31, (3 << 1) | 1], "A!");
    let open = next_turn(&mut seen).await;
    let pick = next_turn(&mut seen).await;
    assert_eq!((open.kind, pick.kind), (TurnKind::Open, TurnKind::Continue));
    assert_eq!(open.ret.channel, "smsc:vt");
    assert_eq!(open.dialogue, pick.dialogue);

    // data_sm both ways.
    let other = "84987000111";
    let seq = wire.seq();
    let pdu = data_sm_pdu(seq, other, SERVICE, ussd_tlvs(1, [0x32, 0]));
    let id = send_turn(&mut wire, &pdu, DATA_SM).await;
    assert!(id.starts_with('u'), "{id}");
    answer_from(&mut wire, DATA_SM)
        .await
        .check(other, 2, [0x32, 1 << 1], "1. A\n2. B");
    let seq = wire.seq();
    let pdu = data_sm_pdu(seq, other, "9", ussd_tlvs(18, [0x32, 2 << 1]));
    send_turn(&mut wire, &pdu, DATA_SM).await;
    answer_from(&mut wire, DATA_SM)
        .await
        .check(other, 17, [0x32, (3 << 1) | 1], "Sai");
    next_turn(&mut seen).await;
    let wrong = next_turn(&mut seen).await;
    assert!(wrong.ret.data_sm);
    assert_eq!((wrong.kind, wrong.text.as_str()), (TurnKind::Continue, "9"));

    // A release from the network: nothing is sent.
    let seq = wire.seq();
    let pdu = message_pdu(true, seq, citizen, "", ussd_tlvs(18, [0x33, (4 << 1) | 1]));
    send_turn(&mut wire, &pdu, DELIVER_SM).await;
    assert_eq!(next_turn(&mut seen).await.kind, TurnKind::Release);
    wire.expect_quiet().await;

    // A USSN confirm needs no answer either.
    let seq = wire.seq();
    let pdu = message_pdu(true, seq, citizen, "", ussd_tlvs(19, [0x34, 2 << 1]));
    send_turn(&mut wire, &pdu, DELIVER_SM).await;
    let confirm = next_turn(&mut seen).await;
    assert_eq!(
        (confirm.kind, confirm.op),
        (TurnKind::Release, ServiceOp::UssnConfirm)
    );
    wire.expect_quiet().await;

    // A data_sm that is not USSD is a citizen's SMS delivered that way:
    // journaled, then acknowledged.
    assert_eq!(menu.sms_count(), 0, "USSD turns are not journaled");
    let seq = wire.seq();
    wire.write(&data_sm_pdu(seq, citizen, "TC 1", Vec::new()))
        .await;
    let acknowledged = wire.expect(DATA_SM | RESP).await;
    assert_eq!(acknowledged.header.command_status, 0);
    assert_eq!(menu.sms_count(), 1);
    assert_eq!(menu.sms_texts(), vec!["TC 1".to_owned()]);
    shutdown.cancel();
}

/// The gateway's own dialogue (not the scripted menu) to a peer bound to
/// its listener, with the peer's PDUs written by smpp34: menu navigation to
/// a status by the code's digits, invalid input at each step, a direct dial,
/// a release by the citizen, and a dialogue left unanswered released by the
/// gateway with the "ended" screen (PSSR response, end bit).
#[tokio::test]
async fn the_gateway_dialogue_over_smpp_from_dial_to_status_and_release() {
    fn ussd(config: &mut motcua_sms::config::Config) {
        config.ussd.session_timeout_secs = 1;
        config.rate_limit.burst = 20;
    }
    let app = support::spawn_app_with(support::AppOptions {
        tweak: Some(ussd),
        ..support::AppOptions::default()
    })
    .await;
    let mut wire = Wire::new(TcpStream::connect(app.listener).await.unwrap());
    let seq = wire.seq();
    wire.write(&bind_pdu(seq, support::SYSTEM_ID, support::PASSWORD))
        .await;
    assert_eq!(
        wire.expect(BIND_TRANSCEIVER | RESP)
            .await
            .header
            .command_status,
        0
    );
    let text = |answer: &Answer| String::from_utf8_lossy(&answer.text).into_owned();

    // Dial, pick 1, type the digits: the status, with the owner's name (the
    // citizen is the dossier's number).
    let citizen = "84912345678";
    let mut turn = |op: u8, session: [u8; 2], input: &str| {
        let seq = wire.seq();
        message_pdu(false, seq, citizen, input, ussd_tlvs(op, session))
    };
    let dial = turn(1, [0x31, 0], SERVICE);
    let pick = turn(18, [0x31, 2 << 1], "9");
    let pick_again = turn(18, [0x31, 4 << 1], "1");
    let bad_code = turn(18, [0x31, 6 << 1], "12345");
    let digits = turn(18, [0x31, 8 << 1], "0000012582403150007");
    send_turn(&mut wire, &dial, SUBMIT_SM).await;
    let menu = answer_from(&mut wire, DELIVER_SM).await;
    assert_eq!(
        (menu.op(), menu.session()),
        (Some(2), Some(&[0x31, 1 << 1][..]))
    );
    assert!(text(&menu).starts_with("Tra cuu ho so"), "{}", text(&menu));
    send_turn(&mut wire, &pick, SUBMIT_SM).await;
    let again = answer_from(&mut wire, DELIVER_SM).await;
    assert_eq!(again.op(), Some(2));
    assert!(
        text(&again).starts_with("Lua chon khong hop le"),
        "{}",
        text(&again)
    );
    send_turn(&mut wire, &pick_again, SUBMIT_SM).await;
    let ask = answer_from(&mut wire, DELIVER_SM).await;
    assert!(text(&ask).starts_with("Nhap cac chu so"), "{}", text(&ask));
    send_turn(&mut wire, &bad_code, SUBMIT_SM).await;
    let retry = answer_from(&mut wire, DELIVER_SM).await;
    assert_eq!(retry.op(), Some(2));
    assert!(text(&retry).starts_with("Ma chua dung"), "{}", text(&retry));
    send_turn(&mut wire, &digits, SUBMIT_SM).await;
    let status = answer_from(&mut wire, DELIVER_SM).await;
    assert_eq!(
        (status.op(), status.session()),
        (Some(17), Some(&[0x31, (9 << 1) | 1][..]))
    );
    let status = text(&status);
    assert!(
        status.starts_with("HS 000.00.12.H58-240315-0007"),
        "{status}"
    );
    assert!(status.contains("Nguyen Van An"), "{status}");

    // A direct dial as data_sm: the status at once, as data_sm.
    let seq = wire.seq();
    let direct = data_sm_pdu(
        seq,
        "84987000111",
        "*8058*0000012582403150007#",
        ussd_tlvs(1, [0x32, 0]),
    );
    send_turn(&mut wire, &direct, DATA_SM).await;
    let answer = answer_from(&mut wire, DATA_SM).await;
    assert_eq!(answer.op(), Some(17));
    assert!(
        text(&answer).starts_with("HS 000.00.12.H58"),
        "{}",
        text(&answer)
    );
    assert!(
        !text(&answer).contains("Nguyen"),
        "a stranger: {}",
        text(&answer)
    );

    // The citizen hangs up: nothing is sent.
    let seq = wire.seq();
    let open = message_pdu(false, seq, "84987000112", SERVICE, ussd_tlvs(1, [0x33, 0]));
    send_turn(&mut wire, &open, SUBMIT_SM).await;
    assert_eq!(answer_from(&mut wire, DELIVER_SM).await.op(), Some(2));
    let seq = wire.seq();
    let hang_up = message_pdu(
        false,
        seq,
        "84987000112",
        "",
        ussd_tlvs(18, [0x33, (2 << 1) | 1]),
    );
    send_turn(&mut wire, &hang_up, SUBMIT_SM).await;
    wire.expect_quiet().await;

    // Left unanswered past session_timeout_secs: released by the gateway.
    let seq = wire.seq();
    let open = message_pdu(false, seq, "84987000113", SERVICE, ussd_tlvs(1, [0x34, 0]));
    send_turn(&mut wire, &open, SUBMIT_SM).await;
    assert_eq!(answer_from(&mut wire, DELIVER_SM).await.op(), Some(2));
    let released = answer_from(&mut wire, DELIVER_SM).await;
    assert_eq!(released.destination_addr, "84987000113");
    assert_eq!(released.op(), Some(17));
    assert_eq!(
        released.session().map(|s| (s[0], s[1] & 1)),
        Some((0x34, 1))
    );
    assert!(
        text(&released).starts_with("Het thoi gian"),
        "{}",
        text(&released)
    );
    app.stop().await;
}
