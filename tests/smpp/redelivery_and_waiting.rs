//! A message delivered twice is answered once, and a citizen who asks again
//! is answered again (listener and carrier roles): a copy is a redelivery
//! only while the gateway has no evidence that the peer read the first
//! one's acknowledgement. A constant `user_message_reference` does not
//! merge different messages. A reply for a listener account with no
//! receiving connection waits in the journal until the account binds
//! again. Either way the reply is recorded with what it looked up and when
//! it was sent (the admin console's message log and statistics).

use std::time::Duration;

use motcua_sms::admin::traffic::{Bucket, LoggedMessage, MessageQuery, StatsQuery, Traffic};
use motcua_sms::db::StatePool;
use motcua_sms::smpp::pdu::{Bind, BindKind, Body, Pdu, ShortMessage};
use motcua_sms::smpp::session::{next_request, Connection};
use motcua_sms::smpp::SessionSettings;
use support::peer_esme::{PeerEsme, RawMessage};
use support::peer_smsc::PeerSmsc;
use support::transmitter::submit_on_a_transmitter;
use support::{spawn_app, spawn_app_with, AppOptions, TestApp, KNOWN_CODE, PASSWORD, SYSTEM_ID};

const WAIT: Duration = Duration::from_secs(10);

/// The message from `sender` (any spelling) asking for the known dossier,
/// once its reply is recorded as sent, and the app's traffic.
async fn logged_reply(app: &TestApp, sender: &str) -> (LoggedMessage, Traffic) {
    let traffic = Traffic::new(StatePool::Sqlite(app.journal().await));
    let query = MessageQuery {
        sender: Some(sender.into()),
        code: Some(KNOWN_CODE.to_lowercase()),
        ..MessageQuery::default()
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let page = traffic.search(&query).await.unwrap();
        if let Some(sent) = page.messages.into_iter().find(|m| m.sent_at.is_some()) {
            return (sent, traffic);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the reply to {sender} is never recorded as sent"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The reply looked the known dossier up, found it, and was sent.
async fn assert_found_and_sent(app: &TestApp, sender: &str) -> LoggedMessage {
    let (logged, traffic) = logged_reply(app, sender).await;
    assert_eq!(logged.outcome.as_deref(), Some("found"));
    assert_eq!(logged.state.as_deref(), Some("sent"));
    assert!(logged.latency_ms.unwrap() >= 0);
    let stats = traffic
        .stats(&StatsQuery {
            since_ms: Some(logged.received_at - 1),
            until_ms: Some(logged.received_at + 1),
            bucket: Bucket::Hour,
        })
        .await
        .unwrap();
    assert_eq!(stats.top_agencies[0].name, "UBND huyện Cái Bè");
    assert_eq!(
        stats.top_procedures[0].name,
        "Cấp giấy phép xây dựng nhà ở riêng lẻ"
    );
    assert_eq!(stats.latency_ms.samples, 1);
    logged
}

/// Reads every part of the next reply (8-bit UDH concatenation or a single
/// part); `None` when nothing comes within `wait`.
async fn next_reply(peer: &mut PeerEsme, wait: Duration) -> Option<Vec<RawMessage>> {
    let first = peer.next_deliver(wait).await?;
    let total = if first.esm_class & 0x40 != 0 {
        first.short_message[4]
    } else {
        1
    };
    let mut parts = vec![first];
    for _ in 1..total {
        parts.push(
            peer.next_deliver(WAIT)
                .await
                .expect("the reply's other parts"),
        );
    }
    Some(parts)
}

/// The messages the journal holds, oldest first: (id, sender, text).
async fn journaled(app: &TestApp) -> Vec<(i64, String, String)> {
    let pool = app.journal().await;
    let rows = sqlx::query_as("SELECT id, sender, text FROM messages ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    rows
}

/// A whole PDU from a raw socket (length-prefixed).
async fn read_frame(stream: &mut tokio::net::TcpStream) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await.unwrap();
    let mut frame = len.to_vec();
    frame.resize(u32::from_be_bytes(len) as usize, 0);
    stream.read_exact(&mut frame[4..]).await.unwrap();
    frame
}

#[tokio::test]
async fn a_copy_whose_acknowledgement_was_never_read_is_a_redelivery() {
    use tokio::io::AsyncWriteExt;
    let app = spawn_app().await;
    let text = format!("TC {KNOWN_CODE}");
    let submit = |sequence| {
        Pdu::new(
            sequence,
            Body::SubmitSm(ShortMessage {
                source_addr_ton: 1,
                source_addr_npi: 1,
                source_addr: "84987000222".into(),
                destination_addr: "8058".into(),
                short_message: text.clone().into_bytes(),
                ..ShortMessage::default()
            }),
        )
        .to_bytes()
    };
    // A peer that binds, submits, and dies before reading the
    // submit_sm_resp: for all it knows, the message was not taken.
    let mut stream = tokio::net::TcpStream::connect(app.listener).await.unwrap();
    stream
        .write_all(
            &Pdu::new(
                1,
                Body::Bind(Bind::new(BindKind::Transceiver, SYSTEM_ID, PASSWORD)),
            )
            .to_bytes(),
        )
        .await
        .unwrap();
    let bind_resp = read_frame(&mut stream).await;
    assert_eq!(&bind_resp[4..12], &[0x80, 0, 0, 9, 0, 0, 0, 0]);
    stream.write_all(&submit(2)).await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while journaled(&app).await.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "never recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(stream);

    // It submits the message again on a new connection: the same message.
    let mut peer = PeerEsme::bind_transceiver(app.listener, SYSTEM_ID, PASSWORD)
        .await
        .unwrap();
    let (status, id) = peer
        .submit("84987000222", "8058", 0, text.as_bytes())
        .await
        .unwrap();
    assert_eq!(status, 0);
    let recorded = journaled(&app).await;
    assert_eq!(recorded.len(), 1, "one message: {recorded:?}");
    assert_eq!(
        id,
        format!("{:x}", recorded[0].0),
        "acknowledged with the first id"
    );
    // Its one reply (it waited for a receiving connection) and no second.
    let reply = next_reply(&mut peer, WAIT).await.expect("one reply");
    assert_eq!(reply[0].destination_addr, "84987000222");
    assert!(
        next_reply(&mut peer, Duration::from_millis(1500))
            .await
            .is_none(),
        "no second reply"
    );
    peer.unbind().await;
    app.stop().await;
}

#[tokio::test]
async fn a_citizen_asking_again_after_the_acknowledgement_was_read_is_answered_again() {
    let app = spawn_app().await;
    let mut peer = PeerEsme::bind_transceiver(app.listener, SYSTEM_ID, PASSWORD)
        .await
        .unwrap();
    let text = format!("TC {KNOWN_CODE}");
    let (s1, id1) = peer
        .submit("0987000222", "8058", 0, text.as_bytes())
        .await
        .unwrap();
    let first = next_reply(&mut peer, WAIT).await.expect("the first reply");
    // The peer read the submit_sm_resp (and answered the reply written
    // after it): the same text again is the citizen asking again.
    let (s2, id2) = peer
        .submit("0987000222", "8058", 0, text.as_bytes())
        .await
        .unwrap();
    assert_eq!((s1, s2), (0, 0));
    assert_ne!(id1, id2, "a new message, not a redelivery");
    let second = next_reply(&mut peer, WAIT)
        .await
        .expect("the second ask is answered");
    assert_eq!(
        support::decode_parts(&first),
        support::decode_parts(&second)
    );
    // Stored as "0987000222", found in the international spelling.
    assert_found_and_sent(&app, "84987000222").await;
    peer.unbind().await;
    app.stop().await;
}

#[tokio::test]
async fn different_messages_under_one_user_message_reference_are_each_answered() {
    let app = spawn_app().await;
    let mut peer = PeerEsme::bind_transceiver(app.listener, SYSTEM_ID, PASSWORD)
        .await
        .unwrap();
    // A peer that sends every message with the same reference.
    let reference = vec![(0x0204u16, vec![0, 7])];
    let texts = [
        format!("TC {KNOWN_CODE}"),
        "TC 000.00.12.H58-240315-9999".to_owned(),
        "xin chao".to_owned(),
    ];
    let mut ids = Vec::new();
    for text in &texts {
        // Back to back: nothing has told the gateway yet that the peer
        // read the previous acknowledgement.
        let (status, id) = peer
            .submit_with_tlvs("0987000555", "8058", 0, 0, text.as_bytes(), &reference)
            .await
            .unwrap();
        assert_eq!(status, 0);
        ids.push(id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 3, "three messages: {ids:?}");
    let mut replies = Vec::new();
    for _ in 0..3 {
        let reply = next_reply(&mut peer, WAIT).await.expect("a reply to each");
        replies.push(support::decode_parts(&reply));
    }
    assert!(replies[0].contains(KNOWN_CODE), "{replies:?}");
    assert!(replies[1].contains("240315-9999"), "{replies:?}");
    assert_ne!(replies[2], replies[1], "{replies:?}");
    let recorded = journaled(&app).await;
    assert_eq!(recorded.len(), 3, "{recorded:?}");
    peer.unbind().await;
    app.stop().await;
}

#[tokio::test]
async fn a_citizen_asking_a_carrier_again_is_answered_again() {
    let smsc = PeerSmsc::start("motcua", "secret").await;
    let app = spawn_app_with(AppOptions {
        accents: false,
        smsc: vec![support::smsc_settings(smsc.local_addr().port())],
        ..AppOptions::default()
    })
    .await;
    assert!(smsc.wait_bound(WAIT).await);
    let text = format!("TC {KNOWN_CODE}");
    for ask in 1..=2 {
        // The SMSC read our deliver_sm_resp, and answered the reply's
        // submit_sm written after it: the second one is a new message.
        assert_eq!(
            smsc.deliver("84987000333", "8058", 0, 0, text.as_bytes())
                .await
                .unwrap(),
            0
        );
        assert!(smsc.next_submit(WAIT).await.is_some(), "ask {ask} answered");
    }
    assert!(
        smsc.next_submit(Duration::from_millis(1500))
            .await
            .is_none(),
        "answered once each"
    );
    app.stop().await;
}

/// The `ack_read_at` the journal holds for message `id` (hex, as acknowledged).
async fn ack_read_at(app: &TestApp, id: &str) -> Option<i64> {
    let pool = app.journal().await;
    let at = sqlx::query_scalar("SELECT ack_read_at FROM messages WHERE id = ?")
        .bind(i64::from_str_radix(id, 16).unwrap())
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    at
}

#[tokio::test]
async fn a_transmitter_that_answers_the_gateways_enquire_link_is_answered_when_it_asks_again() {
    let app = spawn_app().await;
    // Replies reach the account on a receiving connection of its own.
    let mut receiver = PeerEsme::bind_transceiver(app.listener, SYSTEM_ID, PASSWORD)
        .await
        .unwrap();
    // The citizen's messages come on a transmitter, which gets no reply
    // whose response could show it read the acknowledgement: only the
    // gateway's own enquire_link can.
    let stream = tokio::net::TcpStream::connect(app.listener).await.unwrap();
    let mut conn = Connection::new(stream, &SessionSettings::default()).unwrap();
    let link = conn.link.clone();
    let answering = conn.link.clone();
    let reader = tokio::spawn(async move {
        while let Some(pdu) = next_request(&mut conn).await {
            if pdu.body == Body::EnquireLink {
                let _ = answering
                    .send(Pdu::new(pdu.sequence_number, Body::EnquireLinkResp))
                    .await;
            }
        }
    });
    link.request(Body::Bind(Bind::new(
        BindKind::Transmitter,
        SYSTEM_ID,
        PASSWORD,
    )))
    .await
    .expect("bind_transmitter accepted");
    let submit = || {
        Body::SubmitSm(ShortMessage {
            source_addr_ton: 1,
            source_addr_npi: 1,
            source_addr: "84987000666".into(),
            destination_addr: "8058".into(),
            short_message: format!("TC {KNOWN_CODE}").into_bytes(),
            ..ShortMessage::default()
        })
    };
    let first = message_id(link.request(submit()).await.expect("submit accepted"));
    next_reply(&mut receiver, WAIT)
        .await
        .expect("the first reply");
    let deadline = tokio::time::Instant::now() + WAIT;
    while ack_read_at(&app, &first).await.is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the acknowledgement was never shown read"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let second = message_id(link.request(submit()).await.expect("submit accepted"));
    assert_ne!(first, second, "asked again: a new message");
    next_reply(&mut receiver, WAIT)
        .await
        .expect("the second ask is answered");
    reader.abort();
    receiver.unbind().await;
    app.stop().await;
}

fn message_id(resp: Pdu) -> String {
    match resp.body {
        Body::SubmitSmResp { message_id } => message_id,
        other => panic!("not a submit_sm_resp: {other:?}"),
    }
}

#[tokio::test]
async fn a_reply_waits_until_the_account_can_receive_again() {
    let app = spawn_app().await;
    // A transmitter-only connection: the account has nowhere to receive.
    let reader =
        submit_on_a_transmitter(app.listener, "84987000444", &format!("TC {KNOWN_CODE}")).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The account binds a receiving connection: the waiting reply arrives.
    let mut peer = PeerEsme::bind_transceiver(app.listener, SYSTEM_ID, PASSWORD)
        .await
        .unwrap();
    let reply = peer
        .next_deliver(WAIT)
        .await
        .expect("the reply that waited");
    assert_eq!(reply.destination_addr, "84987000444");
    // Looked up when the message came; sent_at when it finally left.
    let logged = assert_found_and_sent(&app, "0987000444").await;
    assert!(logged.latency_ms.unwrap() >= 500, "{logged:?}");
    peer.unbind().await;
    reader.abort();
    app.stop().await;
}

/// Part `index` of a two-part message under the 8-bit concatenation
/// reference `reference` (UDH, GSM default alphabet).
fn two_part(reference: u8, index: u8, text: &str) -> Vec<u8> {
    let mut sm = vec![5, 0, 3, reference, 2, index];
    sm.extend_from_slice(text.as_bytes());
    sm
}

#[tokio::test]
async fn long_messages_under_a_reused_concatenation_reference_are_each_answered_and_a_redelivered_part_is_not(
) {
    let app = spawn_app_with(AppOptions {
        // Parts left alone are joined (or dropped, when only copies) soon.
        tweak: Some(|config| config.journal.reassembly_timeout_secs = 1),
        ..AppOptions::default()
    })
    .await;
    let mut peer = PeerEsme::bind_transceiver(app.listener, SYSTEM_ID, PASSWORD)
        .await
        .unwrap();
    // A peer that gives every long message the same reference (or whose
    // 8-bit references wrapped): three different long messages, back to
    // back; the third starts with the same part as the second.
    let messages = [
        ["TC 000.00.12.H58-", "240315-0007"],
        ["tra cuu ho so 000.00.12.H58-", "240315-9999"],
        ["tra cuu ho so 000.00.12.H58-", "240315-0007"],
    ];
    let mut replies = Vec::new();
    for parts in &messages {
        for (index, text) in parts.iter().enumerate() {
            let (status, _) = peer
                .submit_with(
                    "0987000666",
                    "8058",
                    0x40,
                    0,
                    &two_part(7, index as u8 + 1, text),
                )
                .await
                .unwrap();
            assert_eq!(status, 0);
        }
        let reply = next_reply(&mut peer, WAIT)
            .await
            .unwrap_or_else(|| panic!("{parts:?} is answered (after {replies:?})"));
        replies.push(support::decode_parts(&reply));
    }
    assert!(replies[0].contains(KNOWN_CODE), "{replies:?}");
    assert!(replies[1].contains("240315-9999"), "{replies:?}");
    assert!(replies[2].contains(KNOWN_CODE), "{replies:?}");
    let texts: Vec<String> = journaled(&app).await.into_iter().map(|m| m.2).collect();
    assert_eq!(
        texts,
        messages.iter().map(|p| p.concat()).collect::<Vec<_>>()
    );
    // The peer delivers the last message's parts again, and then the
    // second part of the one before: acknowledged, answered never.
    for (index, text) in [
        (1, messages[2][0]),
        (2, messages[2][1]),
        (2, messages[1][1]),
    ] {
        let (status, _) = peer
            .submit_with("0987000666", "8058", 0x40, 0, &two_part(7, index, text))
            .await
            .unwrap();
        assert_eq!(status, 0);
    }
    // Past the reassembly timeout (1 s) and the outbox's next sweep.
    assert!(
        next_reply(&mut peer, Duration::from_secs(4))
            .await
            .is_none(),
        "a redelivered part is not answered again"
    );
    assert_eq!(journaled(&app).await.len(), 3);
    peer.unbind().await;
    app.stop().await;
}
