//! The gateway on a carrier's SMSC under the conditions carriers judge it
//! by: a link dropped with a window of replies in flight, a storm of
//! throttling answers under a TPS cap, a peer that stops answering
//! enquire_link, transmitter+receiver pairs, and the prefix table taking
//! over when a carrier's link is down. The SMSC is the scriptable one in
//! `support::script_smsc`, over real sockets.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use motcua_sms::abuse::RateLimitSettings;
use motcua_sms::smpp::pdu::{status, BindKind, ShortMessage};
use motcua_sms::smpp::text::{decode_text, DefaultAlphabet};
use motcua_sms::smpp::{BindMode, SmscSettings};
use support::script_smsc::{ScriptSmsc, Submit};
use support::{spawn_app_with, AppOptions};

const WAIT: Duration = Duration::from_secs(20);

/// Codes of the sample dossiers, in file order.
fn sample_codes() -> Vec<String> {
    std::fs::read_to_string(support::sample_file())
        .unwrap()
        .lines()
        .filter_map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).ok()?;
            Some(v["MaHoSo"].as_str()?.to_owned())
        })
        .collect()
}

fn link(name: &str, smsc: &ScriptSmsc) -> SmscSettings {
    SmscSettings {
        reconnect_delay_ms: 100,
        ..SmscSettings::new(name, "127.0.0.1", smsc.port(), "motcua", "secret")
    }
}

fn options(links: Vec<SmscSettings>) -> AppOptions {
    AppOptions {
        accents: false,
        smsc: links,
        rate_limit: RateLimitSettings {
            enabled: false,
            ..RateLimitSettings::default()
        },
        ..AppOptions::default()
    }
}

/// A citizen's message as a carrier delivers it (GSM-7, unpacked).
fn mo(from: &str, text: &str) -> ShortMessage {
    ShortMessage {
        source_addr_ton: 1,
        source_addr_npi: 1,
        source_addr: from.to_owned(),
        destination_addr: "8058".to_owned(),
        short_message: text.as_bytes().to_vec(),
        ..ShortMessage::default()
    }
}

/// The concatenation (reference, total, index) of a submitted part, from its UDH.
fn udh(sm: &ShortMessage) -> (u16, u8, u8) {
    // (reference, total, index); a message without UDH is (0, 1, 1).
    let d = &sm.short_message;
    if sm.esm_class & 0x40 == 0 || d.len() < 6 {
        return (0, 1, 1);
    }
    match d[1] {
        0x00 => (u16::from(d[3]), d[4], d[5]),
        0x08 => (u16::from_be_bytes([d[3], d[4]]), d[5], d[6]),
        _ => (0, 1, 1),
    }
}

/// Accepted replies per citizen, joined from their parts, in the order their
/// last part was accepted; panics on a part accepted twice.
fn accepted_replies(submits: &[Submit]) -> HashMap<String, Vec<String>> {
    // (citizen, reference, total) → index → (arrival, text)
    type Parts = BTreeMap<(String, usize, u8), BTreeMap<u8, (usize, String)>>;
    let mut parts = Parts::new();
    for (at, s) in submits.iter().enumerate() {
        if s.status != status::ESME_ROK {
            continue;
        }
        let (reference, total, index) = match udh(&s.sm) {
            // A single message is a reply of its own.
            (_, 1, _) => (usize::MAX - at, 1, 1),
            (reference, total, index) => (usize::from(reference), total, index),
        };
        let text = decode_text(&s.sm, DefaultAlphabet::default()).unwrap();
        let previous = parts
            .entry((s.sm.destination_addr.clone(), reference, total))
            .or_default()
            .insert(index, (at, text));
        assert!(
            previous.is_none(),
            "part {index} of reference {reference} to {} accepted twice",
            s.sm.destination_addr
        );
    }
    let mut complete: Vec<(usize, String, String)> = parts
        .into_iter()
        .filter(|((_, _, total), got)| got.len() == usize::from(*total))
        .map(|((to, _, _), got)| {
            let last = got.values().map(|(at, _)| *at).max().unwrap();
            let text: String = got.into_values().map(|(_, t)| t).collect();
            (last, to, text)
        })
        .collect();
    complete.sort();
    let mut by_citizen: HashMap<String, Vec<String>> = HashMap::new();
    for (_, to, text) in complete {
        by_citizen.entry(to).or_default().push(text);
    }
    by_citizen
}

/// Waits until every citizen has `expected` complete replies.
async fn wait_replies(
    smsc: &ScriptSmsc,
    citizens: &[String],
    expected: usize,
) -> HashMap<String, Vec<String>> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let replies = accepted_replies(&smsc.submits());
        let done = citizens
            .iter()
            .all(|c| replies.get(c).map_or(0, Vec::len) >= expected);
        if done || tokio::time::Instant::now() > deadline {
            return replies;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_link_dropped_mid_window_loses_and_duplicates_nothing() {
    let smsc = ScriptSmsc::start().await;
    let app = spawn_app_with(options(vec![SmscSettings {
        window: Some(8),
        ..link("carrier", &smsc)
    }]))
    .await;
    smsc.wait_binds(WAIT, |b| !b.is_empty()).await;
    // The first replies' parts reach the SMSC but are never answered.
    smsc.hold_responses(6);
    let codes = sample_codes();
    let citizens: Vec<String> = (0..12).map(|i| format!("849120000{i:02}")).collect();
    for (citizen, code) in citizens.iter().zip(&codes) {
        let status = smsc.deliver(mo(citizen, &format!("TC {code}"))).await;
        assert_eq!(status, Ok(status::ESME_ROK));
    }
    let seen = smsc.wait_submits(12, WAIT).await;
    assert!(seen.len() >= 12, "replies reach the SMSC: {}", seen.len());
    let held = seen.iter().filter(|s| s.status == u32::MAX).count();
    assert_eq!(held, 6, "six parts in flight when the link drops");
    smsc.drop_connections();

    let replies = wait_replies(&smsc, &citizens, 1).await;
    for (citizen, code) in citizens.iter().zip(&codes) {
        let got = replies.get(citizen).cloned().unwrap_or_default();
        assert_eq!(got.len(), 1, "{citizen} gets exactly one reply: {got:?}");
        assert!(got[0].contains(code.as_str()), "{citizen}: {got:?}");
    }
    let binds = smsc.wait_binds(WAIT, |b| !b.is_empty()).await;
    assert!(
        binds.iter().all(|(n, _)| *n >= 2),
        "bound again after the drop"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_multipart_reply_cut_by_a_dropped_link_resumes_with_its_missing_parts() {
    let smsc = ScriptSmsc::start().await;
    let app = spawn_app_with(AppOptions {
        accents: true,
        ..options(vec![SmscSettings {
            window: Some(8),
            ..link("carrier", &smsc)
        }])
    })
    .await;
    smsc.wait_binds(WAIT, |b| !b.is_empty()).await;
    // Second parts reach the SMSC and are never answered; first parts are accepted.
    smsc.hold_responses_of(3, |sm| udh(sm).2 == 2);
    let codes = sample_codes();
    let citizens: Vec<String> = (0..3).map(|i| format!("849130000{i:02}")).collect();
    for (citizen, code) in citizens.iter().zip(&codes) {
        let status = smsc.deliver(mo(citizen, &format!("TC {code}"))).await;
        assert_eq!(status, Ok(status::ESME_ROK));
    }
    let seen = smsc.wait_submits(6, WAIT).await;
    assert!(seen.iter().all(|s| udh(&s.sm).1 == 2), "two-part replies");
    smsc.drop_connections();
    let replies = wait_replies(&smsc, &citizens, 1).await;
    for (citizen, code) in citizens.iter().zip(&codes) {
        let got = replies.get(citizen).cloned().unwrap_or_default();
        assert_eq!(got.len(), 1, "{citizen} gets exactly one reply: {got:?}");
        assert!(got[0].contains(code.as_str()), "{citizen}: {got:?}");
    }
    let first_parts = smsc.submits().iter().filter(|s| udh(&s.sm).2 == 1).count();
    assert_eq!(first_parts, 3, "accepted first parts are not sent again");
    app.stop().await;
}

#[tokio::test]
async fn a_throttling_storm_keeps_order_per_citizen_and_the_tps_cap() {
    const CAP: u32 = 25;
    let smsc = ScriptSmsc::start().await;
    // Every third part throttled, every seventh refused as queue full, for a while.
    smsc.script_statuses((0..90).map(|i| match i {
        i if i % 3 == 0 => status::ESME_RTHROTTLED,
        i if i % 7 == 0 => status::ESME_RMSGQFUL,
        _ => status::ESME_ROK,
    }));
    let app = spawn_app_with(options(vec![SmscSettings {
        max_tps: std::num::NonZeroU32::new(CAP),
        window: Some(10),
        ..link("carrier", &smsc)
    }]))
    .await;
    smsc.wait_binds(WAIT, |b| !b.is_empty()).await;
    let codes = sample_codes();
    let citizens: Vec<String> = (0..5).map(|i| format!("84983000{i:03}")).collect();
    let mut sent: HashMap<String, Vec<String>> = HashMap::new();
    // Four messages per citizen, interleaved, each with its own code.
    for round in 0..4 {
        for (c, citizen) in citizens.iter().enumerate() {
            let code = &codes[round * citizens.len() + c];
            let status = smsc.deliver(mo(citizen, &format!("HS {code}"))).await;
            assert_eq!(status, Ok(status::ESME_ROK));
            sent.entry(citizen.clone()).or_default().push(code.clone());
        }
    }
    let replies = wait_replies(&smsc, &citizens, 4).await;
    for citizen in &citizens {
        let got = replies.get(citizen).cloned().unwrap_or_default();
        let expected = &sent[citizen];
        assert_eq!(
            got.len(),
            expected.len(),
            "{citizen}: all answered: {got:?}"
        );
        for (reply, code) in got.iter().zip(expected) {
            assert!(
                reply.contains(code.as_str()),
                "{citizen}: replies in the order of the messages: {got:?} vs {expected:?}"
            );
        }
    }
    let submits = smsc.submits();
    let throttled = submits
        .iter()
        .filter(|s| s.status == status::ESME_RTHROTTLED || s.status == status::ESME_RMSGQFUL)
        .count();
    assert!(throttled >= 10, "the storm happened: {throttled} refusals");
    // Parts, retries included, never above the cap in any one-second window
    // (one more allowed for the jitter of measuring on arrival).
    for (i, first) in submits.iter().enumerate() {
        let in_window = submits[i..]
            .iter()
            .take_while(|s| s.at.duration_since(first.at) < Duration::from_secs(1))
            .count();
        assert!(
            in_window <= CAP as usize + 1,
            "{in_window} parts within one second (cap {CAP})"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_peer_that_stops_answering_enquire_link_is_left_and_bound_again() {
    let smsc = ScriptSmsc::start().await;
    let app = spawn_app_with(AppOptions {
        tweak: Some(|config| {
            config.smpp.session.enquire_link_interval_secs = 1;
            config.smpp.session.response_timeout_ms = 1_000;
        }),
        ..options(vec![link("carrier", &smsc)])
    })
    .await;
    let first = smsc.wait_binds(WAIT, |b| !b.is_empty()).await;
    assert_eq!(first.len(), 1);
    smsc.mute_enquire_link(true);
    let again = smsc
        .wait_binds(WAIT, |b| b.iter().any(|(n, _)| *n > first[0].0))
        .await;
    assert!(
        again.iter().any(|(n, _)| *n > first[0].0),
        "a new bind after the silent peer: {again:?}"
    );
    smsc.mute_enquire_link(false);
    let code = &sample_codes()[0];
    smsc.wait_binds(WAIT, |b| !b.is_empty()).await;
    assert_eq!(
        smsc.deliver(mo("84912345678", &format!("TC {code}"))).await,
        Ok(status::ESME_ROK)
    );
    let replies = wait_replies(&smsc, &["84912345678".to_owned()], 1).await;
    assert!(replies["84912345678"][0].contains(code.as_str()));
    app.stop().await;
}

#[tokio::test]
async fn transmitter_receiver_pairs_take_messages_in_and_replies_out() {
    let smsc = ScriptSmsc::start().await;
    let app = spawn_app_with(options(vec![SmscSettings {
        bind: BindMode::TransmitterReceiver,
        connections: 2,
        ..link("carrier", &smsc)
    }]))
    .await;
    let binds = smsc.wait_binds(WAIT, |b| b.len() == 4).await;
    let kinds = |k| binds.iter().filter(|(_, kind)| *kind == k).count();
    assert_eq!(kinds(BindKind::Transmitter), 2, "{binds:?}");
    assert_eq!(kinds(BindKind::Receiver), 2, "{binds:?}");
    let transmitters: Vec<u64> = binds
        .iter()
        .filter(|(_, k)| *k == BindKind::Transmitter)
        .map(|(n, _)| *n)
        .collect();
    let codes = sample_codes();
    let citizens: Vec<String> = (0..4).map(|i| format!("84961000{i:03}")).collect();
    for (citizen, code) in citizens.iter().zip(&codes) {
        assert_eq!(
            smsc.deliver(mo(citizen, &format!("TC {code}"))).await,
            Ok(status::ESME_ROK)
        );
    }
    let replies = wait_replies(&smsc, &citizens, 1).await;
    for (citizen, code) in citizens.iter().zip(&codes) {
        assert!(replies[citizen][0].contains(code.as_str()));
    }
    assert!(
        smsc.submits()
            .iter()
            .all(|s| transmitters.contains(&s.connection)),
        "replies leave on transmitters only"
    );
    app.stop().await;
}

#[tokio::test]
async fn when_a_carrier_link_is_down_the_prefix_table_routes_its_replies() {
    let home = ScriptSmsc::start().await;
    let other = ScriptSmsc::start().await;
    let app = spawn_app_with(options(vec![
        link("home", &home),
        SmscSettings {
            route_prefixes: vec!["091".into(), "094".into()],
            ..link("vinaphone", &other)
        },
    ]))
    .await;
    home.wait_binds(WAIT, |b| !b.is_empty()).await;
    other.wait_binds(WAIT, |b| !b.is_empty()).await;
    // The reply is in flight on the home link when that carrier goes away.
    home.hold_responses(10);
    let code = &sample_codes()[1];
    let citizen = "84912345678".to_owned();
    assert_eq!(
        home.deliver(mo(&citizen, &format!("TC {code}"))).await,
        Ok(status::ESME_ROK)
    );
    home.wait_submits(1, WAIT).await;
    drop(home);
    let replies = wait_replies(&other, std::slice::from_ref(&citizen), 1).await;
    let got = replies.get(&citizen).cloned().unwrap_or_default();
    assert_eq!(got.len(), 1, "the reply left through the fallback: {got:?}");
    assert!(got[0].contains(code.as_str()));
    app.stop().await;
}

/// UCS-2 bytes of `text`.
fn ucs2(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_be_bytes).collect()
}

/// `text` as concatenated UCS-2 parts with an 8-bit UDH reference.
fn ucs2_parts(from: &str, text: &str, reference: u8, per_part: usize) -> Vec<ShortMessage> {
    let chars: Vec<char> = text.chars().collect();
    let pieces: Vec<String> = chars.chunks(per_part).map(|c| c.iter().collect()).collect();
    let total = pieces.len() as u8;
    pieces
        .iter()
        .enumerate()
        .map(|(i, piece)| {
            let mut short_message = vec![0x05, 0x00, 0x03, reference, total, i as u8 + 1];
            short_message.extend(ucs2(piece));
            ShortMessage {
                esm_class: 0x40,
                data_coding: 0x08,
                short_message,
                ..mo(from, "")
            }
        })
        .collect()
}

#[tokio::test]
async fn a_five_part_ucs2_message_in_gets_a_three_part_reply_out() {
    let smsc = ScriptSmsc::start().await;
    let app = spawn_app_with(AppOptions {
        accents: true,
        tweak: Some(|config| config.reply.max_segments_ucs2 = 3),
        ..options(vec![link("carrier", &smsc)])
    })
    .await;
    smsc.wait_binds(WAIT, |b| !b.is_empty()).await;
    // The owner of the dossier with the longest procedure name: the full reply
    // needs three UCS-2 parts.
    let owner = "84987654321";
    let text =
        "Kính gửi bộ phận một cửa, tôi là người nộp hồ sơ cấp giấy chứng nhận quyền sử dụng \
         đất, xin tra cứu tình trạng giải quyết hồ sơ có mã số TC 000.00.30.H58-260208-0038 \
         như trên biên nhận. Tôi đã nộp đủ giấy tờ theo hướng dẫn và chờ kết quả từ tháng \
         trước. Xin cảm ơn quý cơ quan đã hỗ trợ người dân tra cứu nhanh chóng.";
    let mut parts = ucs2_parts(owner, text, 0x5a, 67);
    assert_eq!(parts.len(), 5, "the message is five parts");
    // Out of order, and one part delivered twice.
    parts.swap(0, 3);
    parts.push(parts[1].clone());
    for part in parts {
        assert_eq!(smsc.deliver(part).await, Ok(status::ESME_ROK));
    }
    let replies = wait_replies(&smsc, &[owner.to_owned()], 1).await;
    let got = replies.get(owner).cloned().unwrap_or_default();
    assert_eq!(got.len(), 1, "one reply to the joined message: {got:?}");
    assert!(got[0].contains("000.00.30.H58-260208-0038"), "{got:?}");
    let submits = smsc.submits();
    assert_eq!(submits.len(), 3, "the reply is three parts");
    assert!(submits
        .iter()
        .all(|s| udh(&s.sm).1 == 3 && s.sm.data_coding == 8));
    app.stop().await;
}

#[tokio::test]
async fn a_message_missing_a_part_is_answered_after_the_reassembly_timeout() {
    let smsc = ScriptSmsc::start().await;
    let app = spawn_app_with(AppOptions {
        tweak: Some(|config| config.journal.reassembly_timeout_secs = 1),
        ..options(vec![link("carrier", &smsc)])
    })
    .await;
    smsc.wait_binds(WAIT, |b| !b.is_empty()).await;
    let citizen = "84912000777";
    let code = &sample_codes()[0];
    let parts = ucs2_parts(citizen, &format!("TC {code} xin tra cứu giúp tôi ạ"), 7, 30);
    assert_eq!(parts.len(), 2);
    assert_eq!(smsc.deliver(parts[0].clone()).await, Ok(status::ESME_ROK));
    let replies = wait_replies(&smsc, &[citizen.to_owned()], 1).await;
    let got = replies.get(citizen).cloned().unwrap_or_default();
    assert_eq!(got.len(), 1, "answered from the part received: {got:?}");
    assert!(got[0].contains(code.as_str()));
    app.stop().await;
}

/// A delivery receipt for `id` as SMSCs write it (SMPP 3.4 Appendix B).
fn receipt(to: &str, id: &str, stat: &str, err: &str) -> ShortMessage {
    let text = format!(
        "id:{id} sub:001 dlvrd:001 submit date:2611271200 done date:2611271201 stat:{stat} err:{err} text:"
    );
    ShortMessage {
        source_addr: to.to_owned(),
        destination_addr: "8058".to_owned(),
        esm_class: 0x04,
        short_message: text.into_bytes(),
        ..ShortMessage::default()
    }
}

/// Waits until the reply whose text contains `needle` is in `state`.
async fn wait_reply_state(app: &support::TestApp, needle: &str, state: &str) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let states = app.reply_states().await;
        let found = states
            .iter()
            .find(|(text, _, _)| text.contains(needle))
            .map(|(_, s, _)| s.clone())
            .unwrap_or_default();
        if found == state || tokio::time::Instant::now() > deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn receipts_quoting_ids_in_hex_or_decimal_settle_every_part_of_a_reply() {
    let smsc = ScriptSmsc::start().await;
    let app = spawn_app_with(AppOptions {
        accents: true,
        ..options(vec![link("carrier", &smsc)])
    })
    .await;
    smsc.wait_binds(WAIT, |b| !b.is_empty()).await;
    let codes = sample_codes();
    // 1. The SMSC gives hex ids; its receipts quote them in decimal.
    smsc.set_id_style(support::script_smsc::IdStyle::Hex);
    let first = "84912000101";
    smsc.deliver(mo(first, &format!("TC {}", codes[0])))
        .await
        .unwrap();
    let parts = smsc.wait_submits(2, WAIT).await;
    assert_eq!(parts.len(), 2, "a two-part reply");
    assert_eq!(
        wait_reply_state(&app, &codes[0], "accepted").await,
        "accepted"
    );
    for part in &parts {
        assert!(
            part.sm.registered_delivery & 0x01 != 0,
            "a receipt is asked for"
        );
        let decimal = part.number.to_string();
        assert_ne!(decimal, part.id, "the receipt quotes another spelling");
        smsc.deliver(receipt(first, &decimal, "DELIVRD", "000"))
            .await
            .unwrap();
    }
    assert_eq!(
        wait_reply_state(&app, &codes[0], "delivered").await,
        "delivered"
    );

    // 2. Decimal ids; receipts in hex, zero-padded; one part undeliverable.
    smsc.set_id_style(support::script_smsc::IdStyle::Decimal);
    let second = "84912000102";
    smsc.deliver(mo(second, &format!("TC {}", codes[2])))
        .await
        .unwrap();
    let all = smsc.wait_submits(4, WAIT).await;
    let parts = &all[2..];
    assert_eq!(
        wait_reply_state(&app, &codes[2], "accepted").await,
        "accepted"
    );
    smsc.deliver(receipt(
        second,
        &format!("{:010X}", parts[0].number),
        "DELIVRD",
        "000",
    ))
    .await
    .unwrap();
    smsc.deliver(receipt(
        second,
        &format!("{:x}", parts[1].number),
        "UNDELIV",
        "034",
    ))
    .await
    .unwrap();
    assert_eq!(wait_reply_state(&app, &codes[2], "failed").await, "failed");
    let (_, _, error) = app
        .reply_states()
        .await
        .into_iter()
        .find(|(text, _, _)| text.contains(codes[2].as_str()))
        .unwrap();
    assert!(
        error.as_deref().unwrap_or_default().contains("034"),
        "the receipt's error is kept: {error:?}"
    );
    // Receipts are never answered as citizens' messages.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(smsc.submits().len(), 4, "no reply to a receipt");
    app.stop().await;
}
