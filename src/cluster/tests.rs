use std::time::Duration;

use super::*;
use crate::clock::now_ms;
use crate::db::GatewayDb;

const LEASE: Duration = Duration::from_millis(1_000);
const WINDOW: Duration = Duration::from_secs(24 * 3600);

fn name(node: &str) -> NodeName {
    NodeName::parse(node).unwrap()
}

async fn join(db: &GatewayDb, node: &str) -> Membership {
    Membership::join(db.pool().clone(), name(node), LEASE, WINDOW)
        .await
        .unwrap()
}

/// A message recorded by `node`, with a reply in `reply` state if any.
async fn message(db: &GatewayDb, node: &str, reply: Option<&str>) -> i64 {
    let now = now_ms();
    let id: i64 = on_state_pool!(db.pool(), p => sqlx::query_scalar(
        "INSERT INTO messages (channel, sender, sender_ton, sender_npi, recipient, recipient_ton, \
             recipient_npi, text, received_at, node) \
         VALUES ('smsc:viettel', '84912345678', 1, 1, '8099', 0, 1, 'TC 1', $1, $2) RETURNING id",
    )
    .bind(now)
    .bind(node)
    .fetch_one(p)
    .await
    .unwrap());
    if let Some(state) = reply {
        on_state_pool!(db.pool(), p => sqlx::query(
            "INSERT INTO replies (message_id, outcome, text, state, next_attempt_at, created_at, updated_at) \
             VALUES ($1, 'found', 'HS 1', $2, $3, $3, $3)",
        )
        .bind(id)
        .bind(state)
        .bind(now)
        .execute(p)
        .await
        .map(|_| ())
        .unwrap());
    }
    id
}

async fn owner(db: &GatewayDb, id: i64) -> String {
    on_state_pool!(db.pool(), p => sqlx::query_scalar("SELECT node FROM messages WHERE id = $1")
        .bind(id)
        .fetch_one(p)
        .await
        .unwrap())
}

/// Ends a node's lease as a kill would let it lapse.
async fn lapse(db: &GatewayDb, node: &str) {
    on_state_pool!(db.pool(), p => sqlx::query("UPDATE nodes SET lease_until = 0 WHERE name = $1")
        .bind(node)
        .execute(p)
        .await
        .map(|_| ())
        .unwrap());
}

async fn a_node_joins_renews_publishes_and_leaves(db: GatewayDb) {
    let a = join(&db, "gw-a").await;
    assert!(a.lease().may_send());
    assert!(a.heartbeat(r#"{"smpp":["smsc:viettel"]}"#).await.unwrap());
    assert!(!a.lease().others_alive(), "alone in the cluster");
    let b = join(&db, "gw-b").await;
    assert!(a.heartbeat(r#"{"smpp":["smsc:viettel"]}"#).await.unwrap());
    assert!(a.lease().others_alive(), "B's lease holds");
    b.leave().await.unwrap();
    assert!(a.heartbeat(r#"{"smpp":["smsc:viettel"]}"#).await.unwrap());
    assert!(!a.lease().others_alive(), "B left");
    let rows = nodes(db.pool()).await.unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].name, "gw-a");
    assert_eq!(rows[0].state, "live");
    assert_eq!(rows[0].incarnation, 1);
    assert!(rows[0].alive);
    assert_eq!(rows[0].channels, r#"{"smpp":["smsc:viettel"]}"#);
    a.leave().await.unwrap();
    assert!(!a.lease().may_send());
    let rows = nodes(db.pool()).await.unwrap();
    assert_eq!(rows[0].state, "stopped");
    assert!(!rows[0].alive);
}

async fn a_lapsed_node_is_taken_over_once_with_only_its_waiting_messages(db: GatewayDb) {
    let b = join(&db, "gw-b").await;
    let unanswered = message(&db, "gw-b", None).await;
    let queued = message(&db, "gw-b", Some("queued")).await;
    let sent = message(&db, "gw-b", Some("sent")).await;
    let others = message(&db, "gw-c", None).await;
    let a = join(&db, "gw-a").await;
    let c = join(&db, "gw-c").await;
    assert!(a.take_over_lapsed().await.unwrap().is_empty());
    lapse(&db, "gw-b").await;
    let (by_a, by_c) = tokio::join!(a.take_over_lapsed(), c.take_over_lapsed());
    let (by_a, by_c) = (by_a.unwrap(), by_c.unwrap());
    assert_eq!(by_a.len() + by_c.len(), 1, "{by_a:?} {by_c:?}");
    let (taker, takeover) = if by_a.is_empty() {
        ("gw-c", &by_c[0])
    } else {
        ("gw-a", &by_a[0])
    };
    assert_eq!(
        takeover,
        &Takeover {
            node: "gw-b".into(),
            message_ids: vec![unanswered, queued]
        }
    );
    assert_eq!(owner(&db, unanswered).await, taker);
    assert_eq!(owner(&db, queued).await, taker);
    assert_eq!(owner(&db, sent).await, "gw-b");
    assert_eq!(owner(&db, others).await, "gw-c");

    // The old process wakes: its lease is gone, its heartbeat finds it taken over.
    let taken_over = b.lease().taken_over();
    assert!(!b.heartbeat("{}").await.unwrap());
    assert!(!b.lease().may_send());
    assert!(taken_over.has_changed().unwrap());
    let row = nodes(db.pool()).await.unwrap();
    let row = row.iter().find(|n| n.name == "gw-b").unwrap();
    assert_eq!(row.state, "taken");
    assert_eq!(row.taken_by.as_deref(), Some(taker));
    // It joins again with a new incarnation and may send what it records from now on.
    b.rejoin().await.unwrap();
    assert!(b.lease().may_send());
    assert_eq!(b.lease().incarnation(), 3);
    assert!(b.heartbeat("{}").await.unwrap());
}

async fn a_node_that_stopped_is_taken_over_at_once(db: GatewayDb) {
    let b = join(&db, "gw-b").await;
    let left = message(&db, "gw-b", Some("queued")).await;
    b.leave().await.unwrap();
    let a = join(&db, "gw-a").await;
    let taken = a.take_over_lapsed().await.unwrap();
    assert_eq!(
        taken,
        vec![Takeover {
            node: "gw-b".into(),
            message_ids: vec![left]
        }]
    );
    assert_eq!(owner(&db, left).await, "gw-a");
    assert!(a.take_over_lapsed().await.unwrap().is_empty());
}

async fn a_restarted_node_on_sqlite_joins_at_once_and_keeps_its_messages(db: GatewayDb) {
    let first = join(&db, "gw-a").await;
    let waiting = message(&db, "gw-a", Some("queued")).await;
    drop(first); // killed: no leave
    let started = std::time::Instant::now();
    let second = join(&db, "gw-a").await;
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(second.lease().incarnation(), 2);
    assert_eq!(owner(&db, waiting).await, "gw-a");
}

async fn a_restarted_node_waits_out_its_old_lease_and_keeps_its_messages(db: GatewayDb) {
    let first = join(&db, "gw-a").await;
    let waiting = message(&db, "gw-a", Some("queued")).await;
    drop(first); // killed: no leave
    let started = std::time::Instant::now();
    let second = join(&db, "gw-a").await;
    assert!(started.elapsed() >= Duration::from_millis(500));
    assert_eq!(second.lease().incarnation(), 2);
    assert_eq!(owner(&db, waiting).await, "gw-a");
}

async fn messages_recorded_before_clustering_are_adopted(db: GatewayDb) {
    let waiting = message(&db, "", None).await;
    let answered = message(&db, "", Some("sent")).await;
    let _a = join(&db, "gw-a").await;
    assert_eq!(owner(&db, waiting).await, "gw-a");
    assert_eq!(owner(&db, answered).await, "");
}

async fn a_citizens_reply_waits_for_an_older_one_on_another_node(db: GatewayDb) {
    use crate::journal::{Journal, JournalSettings, ReplyState};
    let journal_b = Journal::start(db.clone().with_node("gw-b"), JournalSettings::default())
        .await
        .unwrap();
    let older = message(&db, "gw-a", None).await;
    let newer = message(&db, "gw-b", None).await;
    let window = 24 * 3_600_000;
    let waits = || journal_b.older_waiting_elsewhere("84912345678", newer, now_ms(), window);
    assert!(waits().await.unwrap(), "A's older message has no reply yet");
    on_state_pool!(db.pool(), p => sqlx::query(
        "INSERT INTO replies (message_id, outcome, text, state, next_attempt_at, created_at, updated_at) \
         VALUES ($1, 'found', 'HS 1', $2, 0, 0, 0)",
    )
    .bind(older)
    .bind(ReplyState::Queued.as_str())
    .execute(p)
    .await
    .map(|_| ())
    .unwrap());
    assert!(waits().await.unwrap(), "A's older reply is still queued");
    on_state_pool!(db.pool(), p => sqlx::query("UPDATE replies SET state = 'sent' WHERE message_id = $1")
        .bind(older)
        .execute(p)
        .await
        .map(|_| ())
        .unwrap());
    assert!(!waits().await.unwrap(), "A's older reply has left");
    // Its own older messages are the node's own order's business.
    assert!(!journal_b
        .older_waiting_elsewhere("84912345678", older, now_ms(), window)
        .await
        .unwrap());
    journal_b.close().await;
}

/// Two journals on one database as nodes A and B; A's message taken over
/// by B: A's writes about it change nothing and A's reads no longer list
/// it; B's do.
async fn a_node_that_was_taken_over_records_nothing_about_the_messages_it_lost(db: GatewayDb) {
    use crate::address::Address;
    use crate::journal::{Journal, JournalSettings, NewMessage, Recorded};
    let settings = JournalSettings::default();
    let journal_a = Journal::start(db.clone().with_node("gw-a"), settings.clone())
        .await
        .unwrap();
    let journal_b = Journal::start(db.clone().with_node("gw-b"), settings)
        .await
        .unwrap();
    let recorded = journal_a
        .record(NewMessage {
            channel: "smsc:viettel".into(),
            peer_ref: None,
            peer_ref_lasting: false,
            sender: Address::new("84912345678", 1, 1),
            recipient: Address::new("8058", 0, 1),
            text: "TC 1".into(),
            received_at: now_ms(),
        })
        .await
        .unwrap();
    let Recorded::New(id) = recorded else {
        panic!("recorded anew: {recorded:?}")
    };
    assert_eq!(owner(&db, id).await, "gw-a");
    assert_eq!(journal_a.unanswered().await.unwrap().len(), 1);
    assert!(journal_b.unanswered().await.unwrap().is_empty());
    // B takes it over; A, woken, tries to record its reply.
    on_state_pool!(db.pool(), p => sqlx::query("UPDATE messages SET node = 'gw-b' WHERE id = $1")
        .bind(id)
        .execute(p)
        .await
        .map(|_| ())
        .unwrap());
    journal_a
        .queue_reply(
            id,
            "found",
            "HS 1 (from A)",
            crate::journal::ReplyState::Queued,
        )
        .await
        .unwrap();
    assert_eq!(
        journal_a.reply_state(id).await.unwrap(),
        None,
        "A wrote nothing"
    );
    assert!(journal_a.unanswered().await.unwrap().is_empty());
    assert_eq!(journal_b.unanswered_among(&[id]).await.unwrap().len(), 1);
    journal_b
        .queue_reply(
            id,
            "found",
            "HS 1 (from B)",
            crate::journal::ReplyState::Queued,
        )
        .await
        .unwrap();
    assert_eq!(
        journal_b.reply_state(id).await.unwrap(),
        Some(crate::journal::ReplyState::Queued)
    );
    journal_a.close().await;
    journal_b.close().await;
}

async fn a_name_a_live_gateway_renews_is_refused(db: GatewayDb) {
    let live = join(&db, "gw-a").await;
    let stop = CancellationToken::new();
    let running = tokio::spawn(live.run(stop.clone(), || "{}".to_owned(), |_| {}));
    let error = Membership::join(db.pool().clone(), name("gw-a"), LEASE, WINDOW)
        .await
        .err()
        .expect("refused");
    assert!(matches!(error, ClusterError::NameInUse { .. }), "{error}");
    assert!(error.to_string().contains("cluster.node"), "{error}");
    stop.cancel();
    running.await.unwrap();
}

async fn a_node_stops_sending_before_the_others_may_take_it_over(db: GatewayDb) {
    let a = join(&db, "gw-a").await;
    assert!(a.lease().may_send());
    // No heartbeat: the node's own deadline ends a fifth before the lease.
    tokio::time::sleep(LEASE - margin(LEASE) + Duration::from_millis(20)).await;
    assert!(!a.lease().may_send());
    assert!(a.heartbeat("{}").await.unwrap());
    assert!(a.lease().may_send());
}

/// A message of a listener peer's channel recorded by `node`, with a reply in `reply` state if any.
async fn listener_message(db: &GatewayDb, node: &str, reply: Option<&str>) -> i64 {
    let id = message(db, node, reply).await;
    on_state_pool!(db.pool(), p => sqlx::query("UPDATE messages SET channel = 'listener:agg' WHERE id = $1")
        .bind(id)
        .execute(p)
        .await
        .map(|_| ())
        .unwrap());
    id
}

async fn a_listener_peers_waiting_replies_go_to_the_node_it_binds_to(db: GatewayDb) {
    let a = join(&db, "gw-a").await;
    let b = join(&db, "gw-b").await;
    let waiting = listener_message(&db, "gw-a", Some("queued")).await;
    let unanswered = listener_message(&db, "gw-a", None).await;
    let sent = listener_message(&db, "gw-a", Some("sent")).await;
    let carrier = message(&db, "gw-a", Some("queued")).await;
    // While A publishes the peer bound there, B claims nothing.
    a.heartbeat(
        r#"{"smpp":[{"channel":"listener:agg","role":"listener","open":true}],"modems":[]}"#,
    )
    .await
    .unwrap();
    let claimed = claim_channel(db.pool(), &b.lease(), "listener:agg", WINDOW)
        .await
        .unwrap();
    assert!(claimed.is_empty(), "{claimed:?}");
    // The peer left A and bound to B: B takes what waits for it.
    a.heartbeat(r#"{"smpp":[],"modems":[]}"#).await.unwrap();
    let claimed = claim_channel(db.pool(), &b.lease(), "listener:agg", WINDOW)
        .await
        .unwrap();
    assert_eq!(claimed, vec![waiting, unanswered]);
    assert_eq!(owner(&db, waiting).await, "gw-b");
    assert_eq!(owner(&db, sent).await, "gw-a");
    assert_eq!(owner(&db, carrier).await, "gw-a");
}

crate::on_both_engines!(
    a_listener_peers_waiting_replies_go_to_the_node_it_binds_to,
    a_node_joins_renews_publishes_and_leaves,
    a_lapsed_node_is_taken_over_once_with_only_its_waiting_messages,
    a_node_that_stopped_is_taken_over_at_once,
    a_node_stops_sending_before_the_others_may_take_it_over,
);

/// A SQLite file is one host's: only PostgreSQL is shared by live nodes,
/// so only there does a start wait for a lease to lapse.
mod one_engine {
    use crate::db::testing::TestDb;

    #[tokio::test]
    #[cfg_attr(
        not(test_database_url),
        ignore = "needs TEST_DATABASE_URL (a PostgreSQL server to create a database on)"
    )]
    async fn a_restarted_node_waits_out_its_old_lease_and_keeps_its_messages() {
        let test_db = TestDb::postgres().await;
        super::a_restarted_node_waits_out_its_old_lease_and_keeps_its_messages(test_db.db.clone())
            .await;
        test_db.finish().await;
    }

    #[tokio::test]
    #[cfg_attr(
        not(test_database_url),
        ignore = "needs TEST_DATABASE_URL (a PostgreSQL server to create a database on)"
    )]
    async fn a_name_a_live_gateway_renews_is_refused() {
        let test_db = TestDb::postgres().await;
        super::a_name_a_live_gateway_renews_is_refused(test_db.db.clone()).await;
        test_db.finish().await;
    }

    #[tokio::test]
    #[cfg_attr(
        not(test_database_url),
        ignore = "needs TEST_DATABASE_URL (a PostgreSQL server to create a database on)"
    )]
    async fn waiting_messages_recorded_before_clustering_are_adopted() {
        let test_db = TestDb::postgres().await;
        super::messages_recorded_before_clustering_are_adopted(test_db.db.clone()).await;
        test_db.finish().await;
    }

    #[tokio::test]
    #[cfg_attr(
        not(test_database_url),
        ignore = "needs TEST_DATABASE_URL (a PostgreSQL server to create a database on)"
    )]
    async fn a_node_that_was_taken_over_records_nothing_about_the_messages_it_lost() {
        let test_db = TestDb::postgres().await;
        super::a_node_that_was_taken_over_records_nothing_about_the_messages_it_lost(
            test_db.db.clone(),
        )
        .await;
        test_db.finish().await;
    }

    #[tokio::test]
    #[cfg_attr(
        not(test_database_url),
        ignore = "needs TEST_DATABASE_URL (a PostgreSQL server to create a database on)"
    )]
    async fn a_citizens_reply_waits_for_an_older_one_on_another_node() {
        let test_db = TestDb::postgres().await;
        super::a_citizens_reply_waits_for_an_older_one_on_another_node(test_db.db.clone()).await;
        test_db.finish().await;
    }

    #[tokio::test]
    async fn a_restarted_node_on_sqlite_joins_at_once_and_keeps_its_messages() {
        let test_db = TestDb::sqlite().await;
        super::a_restarted_node_on_sqlite_joins_at_once_and_keeps_its_messages(test_db.db.clone())
            .await;
        test_db.finish().await;
    }
}
