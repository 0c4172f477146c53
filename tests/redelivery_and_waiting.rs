//! A message delivered twice is answered once (listener and carrier roles),
//! and a reply for a listener account with no receiving connection waits in
//! the journal until the account binds again. Either way the reply is
//! recorded with what it looked up and when it was sent (the admin
//! console's message log and statistics).

mod support;

use std::time::Duration;

use motcua_sms::admin::traffic::{Bucket, LoggedMessage, MessageQuery, StatsQuery, Traffic};
use support::peer_esme::PeerEsme;
use support::peer_smsc::PeerSmsc;
use support::transmitter::submit_on_a_transmitter;
use support::{spawn_app, spawn_app_with, AppOptions, TestApp, KNOWN_CODE, PASSWORD, SYSTEM_ID};

const WAIT: Duration = Duration::from_secs(10);

/// The message from `sender` (any spelling) asking for the known dossier,
/// once its reply is recorded as sent, and the app's traffic.
async fn logged_reply(app: &TestApp, sender: &str) -> (LoggedMessage, Traffic) {
    let traffic = Traffic::new(app.journal().await);
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

#[tokio::test]
async fn a_resubmitted_message_gets_the_same_id_and_one_reply() {
    let app = spawn_app().await;
    let mut peer = PeerEsme::bind_transceiver(app.listener, SYSTEM_ID, PASSWORD)
        .await
        .unwrap();
    let text = format!("TC {KNOWN_CODE}");
    let (s1, id1) = peer
        .submit("0987000222", "8058", 0, text.as_bytes())
        .await
        .unwrap();
    let (s2, id2) = peer
        .submit("0987000222", "8058", 0, text.as_bytes())
        .await
        .unwrap();
    assert_eq!((s1, s2), (0, 0));
    assert_eq!(id1, id2, "a redelivery is acknowledged with the first id");
    let first = peer.next_deliver(WAIT).await.expect("one reply");
    let total = if first.esm_class & 0x40 != 0 {
        first.short_message[4]
    } else {
        1
    };
    for _ in 1..total {
        peer.next_deliver(WAIT).await.expect("its other parts");
    }
    assert!(
        peer.next_deliver(Duration::from_millis(1500))
            .await
            .is_none(),
        "no second reply"
    );
    // A different text from the same number is a new message.
    let (_, id3) = peer
        .submit("0987000222", "8058", 0, b"xin chao")
        .await
        .unwrap();
    assert_ne!(id3, id1);
    // Stored as "0987000222", found in the international spelling.
    assert_found_and_sent(&app, "84987000222").await;
    peer.unbind().await;
    app.stop().await;
}

#[tokio::test]
async fn a_carrier_redelivery_is_not_answered_twice() {
    let smsc = PeerSmsc::start("motcua", "secret").await;
    let app = spawn_app_with(AppOptions {
        accents: false,
        smsc: vec![support::smsc_settings(smsc.local_addr().port())],
        ..AppOptions::default()
    })
    .await;
    assert!(smsc.wait_bound(WAIT).await);
    let text = format!("TC {KNOWN_CODE}");
    for _ in 0..3 {
        assert_eq!(
            smsc.deliver("84987000333", "8058", 0, 0, text.as_bytes())
                .await
                .unwrap(),
            0
        );
    }
    assert!(smsc.next_submit(WAIT).await.is_some(), "answered once");
    assert!(
        smsc.next_submit(Duration::from_millis(1500))
            .await
            .is_none(),
        "not answered again"
    );
    app.stop().await;
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
