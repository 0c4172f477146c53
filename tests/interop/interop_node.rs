//! The gateway against npm's `smpp` 0.5.1 (node-smpp, an independent
//! JavaScript SMPP implementation) in both roles:
//!
//! - node-smpp as an ESME bound to the listener (`tests/peers/node/esme.js`):
//!   submit_sm of a found code (two UCS-2 parts, reassembled by node-smpp's
//!   own UDH and UCS-2 decoding), the owner's lookup, an unknown code, a help
//!   text, the longest reply (a shortened procedure name and the owner's
//!   name), a code sent as data_sm; unaccented GSM-7 replies; enquire_link;
//!   unbind; a refused bind.
//! - node-smpp as the carrier's SMSC the gateway binds to
//!   (`tests/peers/node/smsc.js`): deliver_sm of the same cases answered with
//!   submit_sm, a code and its receipt delivered as data_sm, a delivery
//!   receipt that is acknowledged and not answered, and
//!   the gateway binding again after the SMSC unbinds it and after the SMSC
//!   drops the connection.
//!
//! The scripts take commands and report events as JSON lines on
//! stdin/stdout. Runs when `TEST_NODE_SMPP_DIR` names the directory whose
//! `node_modules` holds smpp 0.5.1, with `node` on PATH (`.ci/run` runs
//! `npm ci` in `tests/peers/node` and sets it to that directory).

use serde_json::{json, Value};
use support::node_peer::{expect_bind, node_dir, node_esme, NodePeer, ENV, SMPP_VERSION};
use support::{
    spawn_app, spawn_app_with, AppOptions, KNOWN_CODE, PASSWORD, SERVICE_NUMBER, SYSTEM_ID,
};

/// A dossier whose procedure name is too long for two UCS-2 segments: the
/// reply is shortened to fit. Owner 0987654321, Trần Thị Bích Ngọc.
const LONG_CODE: &str = "000.00.30.H58-260208-0038";

/// Checks that the parts of a reassembled reply agree with each other and
/// with the addressing (to the citizen `to`, from the service number), and
/// returns the number of parts, their data_coding and the text node-smpp
/// decoded.
fn check_reply(message: &Value, to: &str) -> (usize, u64, String) {
    let parts = message["parts"].as_array().expect("parts");
    assert!(!parts.is_empty(), "{message}");
    assert_eq!(
        message["received"].as_u64(),
        Some(parts.len() as u64),
        "each part exactly once: {message}"
    );
    let coding = parts[0]["data_coding"].as_u64().expect("data_coding");
    for (i, part) in parts.iter().enumerate() {
        assert_eq!(part["destination_addr"], to, "{part}");
        assert_eq!(part["source_addr"], SERVICE_NUMBER, "{part}");
        assert_eq!(
            part["data_coding"].as_u64(),
            Some(coding),
            "one coding: {message}"
        );
        assert!(
            part["text"].is_string(),
            "node-smpp decoded the text: {part}"
        );
        assert_eq!(part["unknown_tlvs"], json!([]), "{part}");
        let esm_class = part["esm_class"].as_u64().expect("esm_class");
        if parts.len() == 1 {
            assert_eq!(esm_class & 0x40, 0, "a single part has no UDH: {part}");
            assert!(message["concat"].is_null(), "{message}");
        } else {
            assert_eq!(esm_class & 0x40, 0x40, "UDHI on every part: {part}");
            let ie = part["udh"]
                .as_array()
                .and_then(|ies| ies.iter().find_map(|ie| ie.as_str()?.strip_prefix("0003")))
                .unwrap_or_else(|| panic!("8-bit concatenation IE: {part}"));
            let reference = u64::from_str_radix(&ie[0..2], 16).unwrap();
            let total = u64::from_str_radix(&ie[2..4], 16).unwrap();
            let seq = u64::from_str_radix(&ie[4..6], 16).unwrap();
            assert_eq!(
                Some(reference),
                message["concat"]["ref"].as_u64(),
                "one reference: {message}"
            );
            assert_eq!(total, parts.len() as u64, "{message}");
            assert_eq!(seq, i as u64 + 1, "{message}");
        }
    }
    let text = message["text"].as_str().expect("text").to_owned();
    (parts.len(), coding, text)
}

fn is_reply_to(to: &str) -> impl Fn(&Value) -> bool + '_ {
    move |m: &Value| m["parts"][0]["destination_addr"] == to
}

/// node-smpp submits `text` from `from` (letting node-smpp choose the
/// data_coding) and returns the whole reply it received.
async fn esme_asks(peer: &mut NodePeer, from: &str, text: &str) -> Value {
    peer.send(
        json!({"cmd": "submit", "id": from, "from": from, "to": SERVICE_NUMBER, "text": text}),
    )
    .await;
    let resp = peer
        .expect_where("submit_sm_resp", |e| e["id"] == from)
        .await;
    assert_eq!(resp["status"], 0, "{resp}");
    assert!(
        !resp["message_id"].as_str().unwrap_or_default().is_empty(),
        "{resp}"
    );
    peer.expect_where("message", is_reply_to(from)).await
}

#[tokio::test]
#[cfg_attr(
    not(test_node_smpp_dir),
    ignore = "needs TEST_NODE_SMPP_DIR (npm smpp in tests/peers/node)"
)]
async fn node_smpp_esme_gets_found_not_found_help_and_long_replies() {
    let dir = node_dir();
    let app = spawn_app().await;
    let mut peer = node_esme(&dir, app.listener).await;

    peer.send(json!({"cmd": "bind", "system_id": SYSTEM_ID, "password": PASSWORD}))
        .await;
    let bind = peer.expect("bind_resp").await;
    assert_eq!(bind["status"], 0, "{bind}");
    assert!(
        !bind["system_id"].as_str().unwrap_or_default().is_empty(),
        "{bind}"
    );

    peer.send(json!({"cmd": "enquire_link"})).await;
    assert_eq!(peer.expect("enquire_link_resp").await["status"], 0);

    // Found, asked in Vietnamese (node-smpp picks UCS-2): two UCS-2 parts,
    // without the applicant's name for a stranger.
    let stranger = "84987000111";
    let reply = esme_asks(&mut peer, stranger, &format!("tra cứu hồ sơ {KNOWN_CODE}")).await;
    let (parts, coding, text) = check_reply(&reply, stranger);
    assert_eq!((parts, coding), (2, 8), "{text}");
    assert!(text.starts_with(&format!("HS {KNOWN_CODE}")), "{text}");
    assert!(text.contains("Cấp giấy phép xây dựng"), "{text}");
    assert!(
        text.contains("Đang xử lý, hẹn trả 29/03/2024 (trễ hạn)"),
        "{text}"
    );
    assert!(
        !text.contains("Nguyễn"),
        "name leaked to a stranger: {text}"
    );

    // The owner, in plain ASCII (node-smpp sends it as data_coding 1).
    let owner = "84912345678";
    let reply = esme_asks(&mut peer, owner, &format!("TC {KNOWN_CODE}")).await;
    let (_, _, text) = check_reply(&reply, owner);
    assert!(
        text.starts_with(&format!("HS {KNOWN_CODE}")) && text.contains("Đang xử lý"),
        "{text}"
    );
    assert!(text.contains("Nguyễn Văn An"), "{text}");

    // node-smpp sends plain text as GSM-7 septets labelled data_coding 1:
    // the underscores (0x11) still separate the code.
    let from = "84987000888";
    let reply = esme_asks(&mut peer, from, "TC 000_00_12_H58_240315_0007").await;
    let (_, _, text) = check_reply(&reply, from);
    assert!(text.starts_with(&format!("HS {KNOWN_CODE}")), "{text}");

    // Unknown code.
    let from = "84987000222";
    let reply = esme_asks(&mut peer, from, "TC 000.00.12.H58-240315-0099").await;
    let (_, _, text) = check_reply(&reply, from);
    assert!(
        text.starts_with("Không tìm thấy hồ sơ 000.00.12.H58-240315-0099"),
        "{text}"
    );

    // The request as data_sm (SMPP 3.4 §4.7, the text in message_payload):
    // taken like submit_sm, acknowledged with data_sm_resp and the
    // journal's id, answered with deliver_sm.
    let from = "84987000444";
    peer.send(json!({
        "cmd": "submit", "id": from, "from": from, "to": SERVICE_NUMBER,
        "text": format!("TC {KNOWN_CODE}"), "command": "data_sm",
    }))
    .await;
    let resp = peer.expect_where("data_sm_resp", |e| e["id"] == from).await;
    assert_eq!(resp["status"], 0, "{resp}");
    assert!(
        !resp["message_id"].as_str().unwrap_or_default().is_empty(),
        "{resp}"
    );
    let reply = peer.expect_where("message", is_reply_to(from)).await;
    let (_, _, text) = check_reply(&reply, from);
    assert!(text.starts_with(&format!("HS {KNOWN_CODE}")), "{text}");

    // No code: help.
    let from = "84987000333";
    let reply = esme_asks(&mut peer, from, "xin chào").await;
    let (_, _, text) = check_reply(&reply, from);
    assert!(
        text.contains(&format!("soạn TC <mã hồ sơ> gửi {SERVICE_NUMBER}")),
        "{text}"
    );

    // The longest reply: a procedure name shortened to fit two UCS-2
    // segments, and the owner's name.
    let owner = "84987654321";
    let reply = esme_asks(&mut peer, owner, &format!("HS {LONG_CODE}")).await;
    let (parts, coding, text) = check_reply(&reply, owner);
    assert_eq!((parts, coding), (2, 8), "{text}");
    assert!(text.starts_with(&format!("HS {LONG_CODE}")), "{text}");
    assert!(text.contains("Cấp Giấy chứng nhận"), "{text}");
    assert!(text.contains("Mới đăng ký"), "{text}");
    assert!(text.contains("Trần Thị Bích Ngọc"), "{text}");

    peer.send(json!({"cmd": "enquire_link"})).await;
    assert_eq!(peer.expect("enquire_link_resp").await["status"], 0);
    peer.send(json!({"cmd": "unbind"})).await;
    assert_eq!(peer.expect("unbind_resp").await["status"], 0);
    peer.expect("closed").await;
    peer.assert_no_trouble();
    app.stop().await;
}

#[tokio::test]
#[cfg_attr(
    not(test_node_smpp_dir),
    ignore = "needs TEST_NODE_SMPP_DIR (npm smpp in tests/peers/node)"
)]
async fn node_smpp_esme_reads_unaccented_gsm7_replies_and_a_refused_bind() {
    let dir = node_dir();
    let app = spawn_app_with(AppOptions {
        accents: false,
        ..AppOptions::default()
    })
    .await;

    let mut refused = node_esme(&dir, app.listener).await;
    refused
        .send(json!({"cmd": "bind", "system_id": SYSTEM_ID, "password": "wrong"}))
        .await;
    assert_eq!(
        refused.expect("bind_resp").await["status"],
        0x0E,
        "ESME_RINVPASWD"
    );
    refused.assert_no_trouble();
    drop(refused);

    let mut peer = node_esme(&dir, app.listener).await;
    peer.send(json!({"cmd": "bind", "system_id": SYSTEM_ID, "password": PASSWORD}))
        .await;
    assert_eq!(peer.expect("bind_resp").await["status"], 0);

    // node-smpp reads data_coding 0 with its own GSM 03.38 table.
    let from = "84987000444";
    let reply = esme_asks(&mut peer, from, "HS 38.98.H29-210519-0003").await;
    let (parts, coding, text) = check_reply(&reply, from);
    assert_eq!((parts, coding), (1, 0), "{text}");
    assert!(text.starts_with("HS 38.98.H29-210519-0003"), "{text}");
    assert!(text.contains("Da tra ket qua"), "{text}");

    let reply = esme_asks(&mut peer, from, "alo").await;
    let (parts, coding, text) = check_reply(&reply, from);
    assert_eq!((parts, coding), (1, 0), "{text}");
    assert!(text.contains("TC <ma ho so>"), "{text}");

    peer.send(json!({"cmd": "unbind"})).await;
    assert_eq!(peer.expect("unbind_resp").await["status"], 0);
    peer.expect("closed").await;
    peer.assert_no_trouble();
    app.stop().await;
}

/// A handset's delivery receipt text saying the reply `id` was delivered.
fn delivered_receipt(id: &str) -> String {
    format!("id:{id} sub:001 dlvrd:001 submit date:2603291200 done date:2603291201 stat:DELIVRD err:000 text:")
}

/// The SMSC script delivers `text` from `from` (node-smpp chooses the
/// data_coding); returns the reply the gateway submitted.
async fn smsc_delivers(smsc: &mut NodePeer, from: &str, text: &str) -> Value {
    smsc.send(
        json!({"cmd": "deliver", "id": from, "from": from, "to": SERVICE_NUMBER, "text": text}),
    )
    .await;
    let resp = smsc
        .expect_where("deliver_sm_resp", |e| e["id"] == from)
        .await;
    assert_eq!(resp["status"], 0, "{resp}");
    smsc.expect_where("message", is_reply_to(from)).await
}

#[tokio::test]
#[cfg_attr(
    not(test_node_smpp_dir),
    ignore = "needs TEST_NODE_SMPP_DIR (npm smpp in tests/peers/node)"
)]
async fn node_smpp_smsc_gets_replies_not_to_receipts_and_is_bound_again() {
    let dir = node_dir();
    let mut smsc = NodePeer::start(&dir, "smsc.js", &["motcua".into(), "secret".into()]).await;
    let listening = smsc.expect("listening").await;
    assert_eq!(
        listening["smpp_version"], SMPP_VERSION,
        "{ENV} holds the pinned smpp"
    );
    let port = listening["port"].as_u64().expect("port") as u16;
    let app = spawn_app_with(AppOptions {
        smsc: vec![support::smsc_settings(port)],
        ..AppOptions::default()
    })
    .await;
    let first = expect_bind(&mut smsc).await;

    smsc.send(json!({"cmd": "enquire_link"})).await;
    assert_eq!(smsc.expect("enquire_link_resp").await["status"], 0);

    // Found, in Vietnamese: the reply leaves as two UCS-2 submit_sm.
    let citizen = "84987000111";
    let reply = smsc_delivers(&mut smsc, citizen, &format!("Tra cứu {KNOWN_CODE}")).await;
    let (parts, coding, text) = check_reply(&reply, citizen);
    assert_eq!((parts, coding), (2, 8), "{text}");
    assert!(
        text.starts_with(&format!("HS {KNOWN_CODE}")) && text.contains("Đang xử lý"),
        "{text}"
    );
    assert!(!text.contains("Nguyễn"), "{text}");
    let first_reply_id = reply["parts"][0]["message_id"]
        .as_str()
        .expect("message id")
        .to_owned();

    // Unknown code, help, the longest reply.
    let from = "84987000222";
    let reply = smsc_delivers(&mut smsc, from, "TC 000.00.12.H58-240315-0099").await;
    let (_, _, text) = check_reply(&reply, from);
    assert!(
        text.starts_with("Không tìm thấy hồ sơ 000.00.12.H58-240315-0099"),
        "{text}"
    );
    let from = "84987000333";
    let reply = smsc_delivers(&mut smsc, from, "?").await;
    let (_, _, text) = check_reply(&reply, from);
    assert!(text.contains("TC <mã hồ sơ>"), "{text}");
    let owner = "84987654321";
    let reply = smsc_delivers(&mut smsc, owner, &format!("hs {LONG_CODE}")).await;
    let (parts, _, text) = check_reply(&reply, owner);
    assert_eq!(parts, 2, "{text}");
    assert!(
        text.contains(LONG_CODE) && text.contains("Trần Thị Bích Ngọc"),
        "{text}"
    );

    // The same request as data_sm (SMPP 3.4 §4.7, the text in
    // message_payload): acknowledged with data_sm_resp, answered with
    // submit_sm; then its receipt, as data_sm too, acknowledged and not
    // answered (checked at the end).
    let by_data_sm = "84987000444";
    smsc.send(json!({
        "cmd": "deliver", "id": by_data_sm, "from": by_data_sm, "to": SERVICE_NUMBER,
        "text": format!("TC {KNOWN_CODE}"), "command": "data_sm",
    }))
    .await;
    let resp = smsc
        .expect_where("data_sm_resp", |e| e["id"] == by_data_sm)
        .await;
    assert_eq!(resp["status"], 0, "{resp}");
    let reply = smsc.expect_where("message", is_reply_to(by_data_sm)).await;
    let (data_sm_parts, _, text) = check_reply(&reply, by_data_sm);
    assert!(text.starts_with(&format!("HS {KNOWN_CODE}")), "{text}");
    let reply_id = reply["parts"][0]["message_id"]
        .as_str()
        .expect("message id");
    smsc.send(json!({
        "cmd": "deliver", "id": "receipt-data-sm", "from": by_data_sm, "to": SERVICE_NUMBER,
        "esm_class": 0x04, "data_coding": 0, "command": "data_sm",
        "text": delivered_receipt(reply_id),
    }))
    .await;
    let resp = smsc
        .expect_where("data_sm_resp", |e| e["id"] == "receipt-data-sm")
        .await;
    assert_eq!(resp["status"], 0, "{resp}");

    // The handset's delivery receipt for the first reply: acknowledged, not
    // answered (checked at the end, after many later replies went out).
    smsc.send(json!({
        "cmd": "deliver", "id": "receipt", "from": citizen, "to": SERVICE_NUMBER,
        "esm_class": 0x04, "data_coding": 0,
        "text": delivered_receipt(&first_reply_id),
    }))
    .await;
    let resp = smsc
        .expect_where("deliver_sm_resp", |e| e["id"] == "receipt")
        .await;
    assert_eq!(resp["status"], 0, "{resp}");

    // The SMSC unbinds the gateway: it answers, closes, binds again.
    smsc.send(json!({"cmd": "unbind"})).await;
    assert_eq!(smsc.expect("unbind_resp").await["status"], 0);
    smsc.expect_where("disconnected", |e| e["session"] == first["session"])
        .await;
    let second = expect_bind(&mut smsc).await;
    assert_ne!(second["session"], first["session"]);
    let from = "84987000555";
    let reply = smsc_delivers(&mut smsc, from, "tc 000_00_12_h58_240315_0007").await;
    let text = check_reply(&reply, from).2;
    assert!(text.starts_with(&format!("HS {KNOWN_CODE}")), "{text}");

    // The SMSC drops the connection without a word: the gateway binds again.
    smsc.send(json!({"cmd": "drop"})).await;
    smsc.expect_where("disconnected", |e| e["session"] == second["session"])
        .await;
    let third = expect_bind(&mut smsc).await;
    assert_ne!(third["session"], second["session"]);
    let from = "84987000666";
    let reply = smsc_delivers(&mut smsc, from, &format!("TC {KNOWN_CODE}")).await;
    let text = check_reply(&reply, from).2;
    assert!(text.starts_with(&format!("HS {KNOWN_CODE}")), "{text}");

    // On shutdown the gateway unbinds.
    app.stop().await;
    smsc.expect_where("unbind_received", |e| e["session"] == third["session"])
        .await;
    smsc.assert_no_trouble();
    assert_eq!(
        smsc.parts_sent_to(citizen),
        2,
        "only the two parts of the first reply; the receipt was not answered\n{}",
        smsc.report()
    );
    assert_eq!(
        smsc.parts_sent_to(by_data_sm),
        data_sm_parts,
        "the data_sm receipt was not answered\n{}",
        smsc.report()
    );
}

#[tokio::test]
#[cfg_attr(
    not(test_node_smpp_dir),
    ignore = "needs TEST_NODE_SMPP_DIR (npm smpp in tests/peers/node)"
)]
async fn node_smpp_smsc_refusals_without_a_body_are_retried() {
    let dir = node_dir();
    // The SMSC first expects another password: node-smpp refuses the bind
    // with a bare header, and the gateway keeps trying.
    let mut smsc = NodePeer::start(&dir, "smsc.js", &["motcua".into(), "not-yet".into()]).await;
    let port = smsc.expect("listening").await["port"]
        .as_u64()
        .expect("port") as u16;
    let app = spawn_app_with(AppOptions {
        smsc: vec![support::smsc_settings(port)],
        ..AppOptions::default()
    })
    .await;
    smsc.expect("bind_refused").await;
    smsc.expect("bind_refused").await;
    smsc.send(json!({"cmd": "password", "password": "secret"}))
        .await;
    smsc.expect("password_set").await;
    expect_bind(&mut smsc).await;

    // Both parts of the reply are throttled (a bare ESME_RTHROTTLED header);
    // the gateway sends the reply again later and it is taken.
    smsc.send(json!({"cmd": "refuse_submits", "count": 2, "status": 0x58}))
        .await;
    smsc.expect("refusing").await;
    let from = "84987000777";
    let reply = smsc_delivers(&mut smsc, from, &format!("TC {KNOWN_CODE}")).await;
    let (parts, _, text) = check_reply(&reply, from);
    assert_eq!(parts, 2, "{text}");
    assert!(text.starts_with(&format!("HS {KNOWN_CODE}")), "{text}");
    let refused = smsc
        .history
        .iter()
        .filter(|e| e["event"] == "refused_part" && e["destination_addr"] == from)
        .count();
    assert_eq!(refused, 2, "{}", smsc.report());

    app.stop().await;
    smsc.expect("unbind_received").await;
    smsc.assert_no_trouble();
}
