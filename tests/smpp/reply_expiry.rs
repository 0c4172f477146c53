//! A reply waiting for a listener account that has no receiving connection
//! does not wait forever: once its message is older than
//! `journal.reply_expiry_secs` (a day by default) it is recorded `expired`
//! and never sent, so an account that binds again weeks later gets no stale
//! status, the citizen's next message is answered as usual, and the
//! retention purge erases the expired one like any other.

use std::time::Duration;

use motcua_sms::clock::now_ms;
use motcua_sms::journal::{Journal, JournalSettings};
use support::peer_esme::PeerEsme;
use support::transmitter::submit_on_a_transmitter;
use support::{spawn_app, TestApp, KNOWN_CODE, PASSWORD, SYSTEM_ID};

const WAIT: Duration = Duration::from_secs(10);
const DAY_MS: i64 = 86_400_000;
const CITIZEN: &str = "84987000555";

/// The state of the reply to the message whose text is `text`, if any.
async fn reply_state(app: &TestApp, text: &str) -> Option<String> {
    let pool = app.journal().await;
    let state = sqlx::query_scalar(
        "SELECT r.state FROM replies r JOIN messages m ON m.id = r.message_id WHERE m.text = ?",
    )
    .bind(text)
    .fetch_optional(&pool)
    .await
    .expect("journal readable");
    pool.close().await;
    state
}

/// Waits until the reply to `text` is in `state`.
async fn wait_for_state(app: &TestApp, text: &str, state: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = reply_state(app, text).await;
        if now.as_deref() == Some(state) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the reply to {text:?} is {now:?}, never {state}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_peer_that_binds_again_after_the_expiry_gets_no_stale_reply() {
    let app = spawn_app().await;
    let asked = format!("TC {KNOWN_CODE}");
    // A transmitter-only connection: the account has nowhere to receive.
    let transmitter = submit_on_a_transmitter(app.listener, CITIZEN, &asked).await;
    wait_for_state(&app, &asked, "queued").await;

    // Weeks pass (longer than the retention, too) with the account away.
    let pool = app.journal().await;
    sqlx::query("UPDATE messages SET received_at = received_at - ? WHERE text = ?")
        .bind(100 * DAY_MS)
        .bind(&asked)
        .execute(&pool)
        .await
        .unwrap();
    let path: String =
        sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
            .fetch_one(&pool)
            .await
            .unwrap();
    pool.close().await;

    // The account binds a receiving connection again: nothing stale arrives.
    let mut peer = PeerEsme::bind_transceiver(app.listener, SYSTEM_ID, PASSWORD)
        .await
        .unwrap();
    if let Some(stale) = peer.next_deliver(Duration::from_secs(3)).await {
        panic!(
            "a reply waiting 100 days was sent when the account bound again: {:?}",
            support::decode_parts(&[stale])
        );
    }
    wait_for_state(&app, &asked, "expired").await;

    // The citizen's next message is answered: nothing holds it back.
    let again = format!("tc {KNOWN_CODE} ạ");
    let (status, _) = peer
        .submit(CITIZEN, "8058", 8, &support::ucs2(&again))
        .await
        .unwrap();
    assert_eq!(status, 0);
    let reply = peer
        .next_deliver(WAIT)
        .await
        .expect("the new message is answered");
    assert_eq!(reply.destination_addr, CITIZEN);

    // The retention purge (90 days) erases the expired reply with its message.
    let journal = Journal::open(JournalSettings {
        url: format!("sqlite://{path}"),
        ..JournalSettings::default()
    })
    .await
    .unwrap();
    let purged = journal.purge_before(now_ms() - 90 * DAY_MS).await.unwrap();
    assert_eq!(purged, 1);
    let left: i64 = motcua_sms::on_state_pool!(journal.pool(), p => {
        sqlx::query_scalar(
            "SELECT count(*) FROM messages m JOIN replies r ON r.message_id = m.id \
             WHERE r.state = 'expired' AND m.purged = 1 AND m.text = '' AND m.sender = '' AND r.text = ''",
        )
        .fetch_one(p)
        .await
        .unwrap()
    });
    assert_eq!(left, 1, "the expired reply and its message are erased");
    journal.close().await;

    peer.unbind().await;
    transmitter.abort();
    app.stop().await;
}
