//! USSD over SMPP against npm's `smpp` 0.5.1 (node-smpp) in both roles,
//! with the scripted two-step menu of `support::ussd_menu` as the handler:
//!
//! - node-smpp as an ESME bound to the listener (`tests/peers/node/esme.js`)
//!   dials with a submit_sm carrying `ussd_service_op` 1 and
//!   `its_session_info`: the menu comes back as deliver_sm with op 2 (USSR
//!   request) and the same session number; its pick (op 18, USSR confirm)
//!   gets the final screen, op 17 (PSSR response) with the end bit. The same
//!   as data_sm, answered with data_sm. A release from the peer (end bit) is
//!   answered with nothing.
//! - node-smpp as the carrier's USSD centre (`tests/peers/node/smsc.js`)
//!   the gateway binds to: the same with deliver_sm answered by submit_sm,
//!   and data_sm answered by data_sm.
//!
//! Runs when `TEST_NODE_SMPP_DIR` names the directory whose `node_modules`
//! holds smpp 0.5.1, with `node` on PATH (as `tests/interop_node.rs`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use motcua_sms::channel::Routes;
use motcua_sms::channel::{TurnKind, UssdTurn};
use motcua_sms::smpp::esme::EsmeClient;
use motcua_sms::smpp::listener::Listener;
use motcua_sms::smpp::{ListenerAccount, ListenerSettings, SessionSettings, SmscSettings};
use serde_json::{json, Value};
use support::node_peer::{expect_bind, node_dir, node_esme, NodePeer, ENV, SMPP_VERSION};
use support::ussd_menu::Menu;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const SERVICE: &str = "*8058#";
/// Generous: the machine is shared.
const WAIT: Duration = Duration::from_secs(30);
/// How long to be sure nothing more is coming after a release.
const QUIET: Duration = Duration::from_millis(600);

async fn next_turn(seen: &mut mpsc::UnboundedReceiver<UssdTurn>) -> UssdTurn {
    support::ussd_menu::next_turn(seen, WAIT).await
}

/// A USSD command for a script: `cmd` "submit" (esme.js) or "deliver"
/// (smsc.js), as `command` (`None`: the script's usual PDU, or "data_sm").
fn ussd_command(
    cmd: &str,
    command: Option<&str>,
    from: &str,
    text: &str,
    op: u8,
    session: [u8; 2],
) -> Value {
    let mut c = json!({
        "cmd": cmd, "id": format!("{from}-{op}-{}", session[1]), "from": from, "to": SERVICE,
        "text": text, "service_type": "USSD", "ussd_service_op": op,
        "its_session_info": session,
    });
    if let Some(command) = command {
        c["command"] = json!(command);
    }
    c
}

/// Sends a turn and checks it is acknowledged at once (`resp`: the
/// response event's name); returns that event.
async fn send_turn(peer: &mut NodePeer, command: Value, resp: &str) -> Value {
    let id = command["id"].clone();
    peer.send(command).await;
    let ack = peer.expect_where(resp, |e| e["id"] == id).await;
    assert_eq!(ack["status"], 0, "{ack}");
    ack
}

/// The next PDU the gateway sent to `citizen`, as node-smpp read it;
/// checks the command, the addressing, the operation and the session octets,
/// and returns its text (short_message or message_payload).
async fn answer_to(
    peer: &mut NodePeer,
    citizen: &str,
    command: &str,
    op: u8,
    session: [u8; 2],
) -> String {
    let part = peer
        .expect_where("part", |e| e["destination_addr"] == citizen)
        .await;
    assert_eq!(part["command"], command, "{part}");
    assert_eq!(part["source_addr"], SERVICE, "{part}");
    assert_eq!(part["service_type"], "USSD", "{part}");
    assert_eq!(part["ussd_service_op"], op, "{part}");
    assert_eq!(part["its_session_info"], json!(session), "{part}");
    assert_eq!(part["unknown_tlvs"], json!([]), "{part}");
    let text = if command == "data_sm" {
        &part["message_payload"]
    } else {
        &part["text"]
    };
    text.as_str()
        .unwrap_or_else(|| panic!("node-smpp decoded the text: {part}"))
        .to_owned()
}

/// Checks that the gateway sent nothing to `citizen` (after the handler saw
/// the release, and a round trip that follows anything sent meanwhile).
async fn nothing_sent_to(peer: &mut NodePeer, citizen: &str, round_trip: Value, resp: &str) {
    tokio::time::sleep(QUIET).await;
    peer.send(round_trip).await;
    peer.expect(resp).await;
    assert_eq!(
        peer.parts_sent_to(citizen),
        0,
        "nothing answers a release\n{}",
        peer.report()
    );
}

#[tokio::test]
#[cfg_attr(
    not(test_node_smpp_dir),
    ignore = "needs TEST_NODE_SMPP_DIR (npm smpp in tests/peers/node)"
)]
async fn node_smpp_esme_gets_a_ussd_menu_over_submit_sm_and_data_sm() {
    let dir = node_dir();
    let (menu, mut seen) = Menu::new();
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
        menu.clone(),
        Arc::new(Routes::default()),
    )
    .await
    .expect("listener binds");
    let addr = listener.local_addr().unwrap();
    let (shutdown, release) = (CancellationToken::new(), CancellationToken::new());
    release.cancel();
    let running = tokio::spawn(listener.run(shutdown.clone(), release));

    let mut peer = node_esme(&dir, addr).await;
    peer.send(json!({"cmd": "bind", "system_id": "demo", "password": "demo"}))
        .await;
    assert_eq!(peer.expect("bind_resp").await["status"], 0);

    // Dial (PSSR indication, session 0x41, sequence 0): the menu, as a USSR
    // request with sequence 1.
    let citizen = "84912345678";
    let ack = send_turn(
        &mut peer,
        ussd_command("submit", None, citizen, SERVICE, 1, [0x41, 0]),
        "submit_sm_resp",
    )
    .await;
    assert!(
        ack["message_id"]
            .as_str()
            .is_some_and(|id| id.starts_with('u')),
        "{ack}"
    );
    let text = answer_to(&mut peer, citizen, "deliver_sm", 2, [0x41, 1 << 1]).await;
    assert_eq!(text, "1. A\n2. B");
    let open = next_turn(&mut seen).await;
    assert_eq!((open.kind, open.text.as_str()), (TurnKind::Open, SERVICE));

    // Pick 1 (USSR confirm, sequence 2): the final screen, PSSR response,
    // sequence 3 and the end bit.
    send_turn(
        &mut peer,
        ussd_command("submit", None, citizen, "1", 18, [0x41, 2 << 1]),
        "submit_sm_resp",
    )
    .await;
    let text = answer_to(&mut peer, citizen, "deliver_sm", 17, [0x41, (3 << 1) | 1]).await;
    assert_eq!(text, "A!");
    let pick = next_turn(&mut seen).await;
    assert_eq!((pick.kind, pick.text.as_str()), (TurnKind::Continue, "1"));
    assert_eq!(pick.dialogue, open.dialogue);

    // The same as data_sm, answered with data_sm; a wrong pick.
    let other = "84987000111";
    send_turn(
        &mut peer,
        ussd_command("submit", Some("data_sm"), other, SERVICE, 1, [0x42, 0]),
        "data_sm_resp",
    )
    .await;
    let text = answer_to(&mut peer, other, "data_sm", 2, [0x42, 1 << 1]).await;
    assert_eq!(text, "1. A\n2. B");
    send_turn(
        &mut peer,
        ussd_command("submit", Some("data_sm"), other, "2", 18, [0x42, 2 << 1]),
        "data_sm_resp",
    )
    .await;
    let text = answer_to(&mut peer, other, "data_sm", 17, [0x42, (3 << 1) | 1]).await;
    assert_eq!(text, "Sai");
    assert!(next_turn(&mut seen).await.ret.data_sm);
    let wrong = next_turn(&mut seen).await;
    assert_eq!((wrong.kind, wrong.text.as_str()), (TurnKind::Continue, "2"));

    // The citizen hangs up (end bit): acknowledged, nothing sent.
    let gone = "84987000222";
    send_turn(
        &mut peer,
        ussd_command("submit", None, gone, "", 18, [0x43, (2 << 1) | 1]),
        "submit_sm_resp",
    )
    .await;
    assert_eq!(next_turn(&mut seen).await.kind, TurnKind::Release);
    nothing_sent_to(
        &mut peer,
        gone,
        json!({"cmd": "enquire_link"}),
        "enquire_link_resp",
    )
    .await;
    assert_eq!(menu.sms_count(), 0, "USSD turns are not journaled");

    peer.send(json!({"cmd": "unbind"})).await;
    assert_eq!(peer.expect("unbind_resp").await["status"], 0);
    peer.expect("closed").await;
    peer.assert_no_trouble();
    shutdown.cancel();
    tokio::time::timeout(WAIT, running)
        .await
        .expect("the listener stops")
        .unwrap();
}

#[tokio::test]
#[cfg_attr(
    not(test_node_smpp_dir),
    ignore = "needs TEST_NODE_SMPP_DIR (npm smpp in tests/peers/node)"
)]
async fn node_smpp_smsc_gets_ussd_answers_over_submit_sm_and_data_sm() {
    let dir = node_dir();
    let mut smsc = NodePeer::start(&dir, "smsc.js", &["motcua".into(), "secret".into()]).await;
    let listening = smsc.expect("listening").await;
    assert_eq!(
        listening["smpp_version"], SMPP_VERSION,
        "{ENV} holds the pinned smpp"
    );
    let port = listening["port"].as_u64().expect("port") as u16;
    let (menu, mut seen) = Menu::new();
    let client = EsmeClient::new(
        SmscSettings::new("node", "127.0.0.1", port, "motcua", "secret"),
        SessionSettings::default(),
        menu.clone(),
        Arc::new(Routes::default()),
    );
    let (shutdown, release) = (CancellationToken::new(), CancellationToken::new());
    release.cancel();
    let running = tokio::spawn(client.run(shutdown.clone(), release));
    expect_bind(&mut smsc).await;

    // deliver_sm: the menu and the final screen come as submit_sm.
    let citizen = "84912345678";
    send_turn(
        &mut smsc,
        ussd_command("deliver", None, citizen, SERVICE, 1, [0x51, 0]),
        "deliver_sm_resp",
    )
    .await;
    let text = answer_to(&mut smsc, citizen, "submit_sm", 2, [0x51, 1 << 1]).await;
    assert_eq!(text, "1. A\n2. B");
    send_turn(
        &mut smsc,
        ussd_command("deliver", None, citizen, "1", 18, [0x51, 2 << 1]),
        "deliver_sm_resp",
    )
    .await;
    let text = answer_to(&mut smsc, citizen, "submit_sm", 17, [0x51, (3 << 1) | 1]).await;
    assert_eq!(text, "A!");
    let open = next_turn(&mut seen).await;
    let pick = next_turn(&mut seen).await;
    assert_eq!((open.kind, pick.kind), (TurnKind::Open, TurnKind::Continue));
    assert_eq!(open.ret.channel, "smsc:node");
    assert_eq!(open.dialogue, pick.dialogue);

    // data_sm both ways.
    let other = "84987000111";
    let ack = send_turn(
        &mut smsc,
        ussd_command("deliver", Some("data_sm"), other, SERVICE, 1, [0x52, 0]),
        "data_sm_resp",
    )
    .await;
    assert!(
        ack["message_id"]
            .as_str()
            .is_some_and(|id| id.starts_with('u')),
        "{ack}"
    );
    let text = answer_to(&mut smsc, other, "data_sm", 2, [0x52, 1 << 1]).await;
    assert_eq!(text, "1. A\n2. B");
    send_turn(
        &mut smsc,
        ussd_command("deliver", Some("data_sm"), other, "1", 18, [0x52, 2 << 1]),
        "data_sm_resp",
    )
    .await;
    let text = answer_to(&mut smsc, other, "data_sm", 17, [0x52, (3 << 1) | 1]).await;
    assert_eq!(text, "A!");
    assert!(next_turn(&mut seen).await.ret.data_sm);
    assert_eq!(next_turn(&mut seen).await.kind, TurnKind::Continue);

    // A release from the network: nothing is sent.
    let gone = "84987000222";
    send_turn(
        &mut smsc,
        ussd_command("deliver", None, gone, "", 18, [0x53, (2 << 1) | 1]),
        "deliver_sm_resp",
    )
    .await;
    assert_eq!(next_turn(&mut seen).await.kind, TurnKind::Release);
    nothing_sent_to(
        &mut smsc,
        gone,
        json!({"cmd": "enquire_link"}),
        "enquire_link_resp",
    )
    .await;
    assert_eq!(menu.sms_count(), 0, "USSD turns are not journaled");

    shutdown.cancel();
    smsc.expect("unbind_received").await;
    tokio::time::timeout(WAIT, running)
        .await
        .expect("the link stops")
        .unwrap();
    smsc.assert_no_trouble();
}

/// Sends a USSD `deliver_sm` turn from `citizen` and returns the gateway's
/// answer to it (see [`next_to`]).
async fn ask(peer: &mut NodePeer, citizen: &str, turn: Value) -> (String, u64, Value, String) {
    send_turn(peer, turn, "deliver_sm_resp").await;
    next_to(peer, citizen).await
}

/// Waits for the next PDU the gateway sends to `citizen` and returns
/// (command, op, session octets, text), whatever they are.
async fn next_to(peer: &mut NodePeer, citizen: &str) -> (String, u64, Value, String) {
    let part = peer
        .expect_where("part", |e| e["destination_addr"] == citizen)
        .await;
    let command = part["command"].as_str().unwrap_or_default().to_owned();
    let text = if command == "data_sm" {
        &part["message_payload"]
    } else {
        &part["text"]
    };
    (
        command,
        part["ussd_service_op"].as_u64().unwrap_or(u64::MAX),
        part["its_session_info"].clone(),
        text.as_str().unwrap_or_default().to_owned(),
    )
}

/// The gateway's own dialogue, bound as an ESME to node-smpp playing the
/// carrier's USSD centre: menu navigation with invalid input at each step,
/// the status by the code's digits, a choice between two dossiers sharing
/// them, a direct dial as data_sm, a release by the network, and a
/// dialogue left unanswered released by the gateway.
#[tokio::test]
#[cfg_attr(
    not(test_node_smpp_dir),
    ignore = "needs TEST_NODE_SMPP_DIR (npm smpp in tests/peers/node)"
)]
async fn the_gateway_dialogue_through_node_smpp_as_the_ussd_centre() {
    let dir = node_dir();
    let mut smsc = NodePeer::start(&dir, "smsc.js", &["motcua".into(), "secret".into()]).await;
    let port = smsc.expect("listening").await["port"]
        .as_u64()
        .expect("port") as u16;
    fn short_sessions(config: &mut motcua_sms::config::Config) {
        config.ussd.session_timeout_secs = 2;
        config.rate_limit.burst = 20;
    }
    let twin = r#"{"MaHoSo":"000.00.12.G58-240315-0007","TenTTHC":"Đăng ký khai sinh","TrangThaiHoSo":2,"version":1}"#;
    let app = support::spawn_app_with(support::AppOptions {
        smsc: vec![support::smsc_settings(port)],
        tweak: Some(short_sessions),
        extra_dossiers: vec![twin.to_owned()],
        ..support::AppOptions::default()
    })
    .await;
    expect_bind(&mut smsc).await;

    let citizen = "84987000111";
    let mut step = 0u8;
    let mut turn = |text: &str, op: u8| {
        let session = [0x61, step << 1];
        step += 2;
        ussd_command("deliver", None, citizen, text, op, session)
    };
    // Dial: the menu.
    let (command, op, session, text) = ask(&mut smsc, citizen, turn(SERVICE, 1)).await;
    assert_eq!((command.as_str(), op), ("submit_sm", 2));
    assert_eq!(session, json!([0x61, 1 << 1]));
    assert!(text.starts_with("Tra cuu ho so"), "{text}");
    // An invalid choice: the menu again, saying so.
    let (_, op, _, text) = ask(&mut smsc, citizen, turn("7", 18)).await;
    assert_eq!(op, 2);
    assert!(text.starts_with("Lua chon khong hop le"), "{text}");
    // 1: the code prompt; an impossible date: asked again.
    let (_, _, _, text) = ask(&mut smsc, citizen, turn("1", 18)).await;
    assert!(text.starts_with("Nhap cac chu so"), "{text}");
    let (_, op, _, text) = ask(&mut smsc, citizen, turn("0000012582402310007", 18)).await;
    assert_eq!(op, 2);
    assert!(text.starts_with("Ngay trong ma khong co that"), "{text}");
    // Digits two dossiers share: the choice; a wrong pick, then the right one.
    let (_, op, _, text) = ask(&mut smsc, citizen, turn("0000012582403150007", 18)).await;
    assert_eq!(op, 2);
    assert!(text.starts_with("Co 2 ho so trung so"), "{text}");
    let (_, _, _, text) = ask(&mut smsc, citizen, turn("5", 18)).await;
    assert!(text.starts_with("Lua chon khong hop le"), "{text}");
    let (_, op, session, text) = ask(&mut smsc, citizen, turn("2", 18)).await;
    assert_eq!(op, 17, "the final screen closes the dialogue");
    assert_eq!(session[1].as_u64().unwrap() & 1, 1, "end bit: {session}");
    assert!(text.starts_with("HS 000.00.12.H58-240315-0007"), "{text}");

    // A direct dial as data_sm, answered as data_sm.
    let other = "84987000222";
    send_turn(
        &mut smsc,
        ussd_command(
            "deliver",
            Some("data_sm"),
            other,
            "*8058*000*00*12*58*240315*0007#",
            1,
            [0x62, 0],
        ),
        "data_sm_resp",
    )
    .await;
    let (command, op, _, text) = next_to(&mut smsc, other).await;
    assert_eq!(
        (command.as_str(), op),
        ("data_sm", 2),
        "two dossiers share the digits"
    );
    assert!(text.starts_with("Co 2 ho so"), "{text}");

    // The network releases that dialogue: nothing more is sent to it.
    send_turn(
        &mut smsc,
        ussd_command(
            "deliver",
            Some("data_sm"),
            other,
            "",
            18,
            [0x62, (2 << 1) | 1],
        ),
        "data_sm_resp",
    )
    .await;

    // A dialogue left unanswered: released by the gateway after 2 s.
    let idle = "84987000333";
    send_turn(
        &mut smsc,
        ussd_command("deliver", None, idle, SERVICE, 1, [0x63, 0]),
        "deliver_sm_resp",
    )
    .await;
    let (_, op, _, _) = next_to(&mut smsc, idle).await;
    assert_eq!(op, 2);
    let (command, op, session, text) = next_to(&mut smsc, idle).await;
    assert_eq!((command.as_str(), op), ("submit_sm", 17));
    assert_eq!(session, json!([0x63, (1 << 1) | 1]));
    assert!(text.starts_with("Het thoi gian"), "{text}");
    let to_released = smsc
        .history
        .iter()
        .filter(|e| e["event"] == "part" && e["destination_addr"] == other)
        .count();
    assert_eq!(to_released, 1, "nothing after the network's release");
    app.stop().await;
    smsc.assert_no_trouble();
}

/// node-smpp as an aggregator's ESME bound to the gateway's listener: a
/// direct dial answered at once with the status, and the menu's help.
#[tokio::test]
#[cfg_attr(
    not(test_node_smpp_dir),
    ignore = "needs TEST_NODE_SMPP_DIR (npm smpp in tests/peers/node)"
)]
async fn the_gateway_dialogue_to_a_node_smpp_esme_on_the_listener() {
    let dir = node_dir();
    let app = support::spawn_app().await;
    let mut peer = node_esme(&dir, app.listener).await;
    peer.send(
        json!({"cmd": "bind", "system_id": support::SYSTEM_ID, "password": support::PASSWORD}),
    )
    .await;
    assert_eq!(peer.expect("bind_resp").await["status"], 0);
    let citizen = "84912345678";
    send_turn(
        &mut peer,
        ussd_command(
            "submit",
            None,
            citizen,
            "*8058*0000012582403150007#",
            1,
            [0x71, 0],
        ),
        "submit_sm_resp",
    )
    .await;
    let (command, op, session, text) = next_to(&mut peer, citizen).await;
    assert_eq!((command.as_str(), op), ("deliver_sm", 17));
    assert_eq!(session, json!([0x71, (1 << 1) | 1]));
    assert!(text.starts_with("HS 000.00.12.H58-240315-0007"), "{text}");
    assert!(text.contains("Nguyen Van An"), "the owner: {text}");

    send_turn(
        &mut peer,
        ussd_command("submit", None, citizen, SERVICE, 1, [0x72, 0]),
        "submit_sm_resp",
    )
    .await;
    let (_, op, _, _) = next_to(&mut peer, citizen).await;
    assert_eq!(op, 2);
    send_turn(
        &mut peer,
        ussd_command("submit", None, citizen, "2", 18, [0x72, 2 << 1]),
        "submit_sm_resp",
    )
    .await;
    let (_, op, _, text) = next_to(&mut peer, citizen).await;
    assert_eq!(op, 17);
    assert!(text.starts_with("Bam *8058*"), "{text}");
    peer.send(json!({"cmd": "unbind"})).await;
    assert_eq!(peer.expect("unbind_resp").await["status"], 0);
    peer.assert_no_trouble();
    app.stop().await;
}
