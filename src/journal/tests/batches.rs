//! The journal's tests of group commit: what one batch holds (copies of
//! each other and of recorded messages, exchanges beside plain records, a
//! request that fails) comes out as if each request ran alone.

use super::*;

crate::on_both_engines!(
    copies_recorded_in_one_batch_are_one_message,
    in_one_batch_each_exchange_keeps_its_own_reply_and_lookup,
    a_request_failing_on_its_own_leaves_the_rest_of_its_batch_committed,
);

/// A write in flight.
type Pending<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// Polls each future once, so that whatever it queues is queued now, in
/// order (the writer takes it in one batch while it is busy or has not
/// woken yet), then waits for them all.
async fn all_at_once<T>(futures: Vec<Pending<'_, T>>) -> Vec<T> {
    let mut futures = futures;
    let mut ready: Vec<Option<T>> = Vec::new();
    tokio::task::unconstrained(async {
        for future in &mut futures {
            ready.push(match futures::poll!(future.as_mut()) {
                std::task::Poll::Ready(done) => Some(done),
                std::task::Poll::Pending => None,
            });
        }
    })
    .await;
    let mut out = Vec::new();
    for (future, ready) in futures.into_iter().zip(ready) {
        out.push(match ready {
            Some(done) => done,
            None => future.await,
        });
    }
    out
}

/// The recording of the `i`th of many citizens' messages, not yet run.
fn record_ask(j: &Journal, i: u32) -> Pending<'_, Result<(), JournalError>> {
    Box::pin(async move {
        j.record(message(&format!("849{i:08}"), "TC", 1))
            .await
            .map(|_| ())
    })
}

async fn copies_recorded_in_one_batch_are_one_message(db: GatewayDb) {
    let j = start(&db).await;
    let Recorded::New(read) = j
        .record(message("84900000001", "TC 9", 1_000))
        .await
        .unwrap()
    else {
        panic!("new")
    };
    let mut fingerprinted = message("84900000002", "B", 5);
    fingerprinted.peer_ref = Some("sms:abc".into());
    fingerprinted.peer_ref_lasting = true;
    let mut later = fingerprinted.clone();
    later.received_at += 86_400_000;
    let copy = message("84912345678", "TC 1", 1_000);
    let exchange = NewMessage {
        channel: "kannel".into(),
        ..message("84912345678", "TC 1", 1_000)
    };
    let results = all_at_once(vec![
        Box::pin(j.record(copy.clone())),
        Box::pin(j.record(copy.clone())),
        Box::pin(j.record(fingerprinted)),
        Box::pin(j.record(later)),
        Box::pin(j.record(message("84900000001", "TC 9", 2_000))),
        Box::pin(async {
            j.acknowledgements_read(vec![read]).await.unwrap();
            Ok(Recorded::Duplicate(read))
        }),
        Box::pin(j.record(message("84900000001", "TC 9", 3_000))),
        Box::pin(j.record_exchange(exchange.clone(), "found", "HS 1", ReplyState::Sent, None)),
        Box::pin(j.record_exchange(exchange, "found", "HS 1", ReplyState::Sent, None)),
    ])
    .await;
    let results: Vec<Recorded> = results.into_iter().map(|r| r.unwrap()).collect();
    let Recorded::New(first) = results[0] else {
        panic!("new: {results:?}")
    };
    assert_eq!(results[1], Recorded::Duplicate(first));
    let Recorded::New(lasting) = results[2] else {
        panic!("new: {results:?}")
    };
    assert_eq!(results[3], Recorded::Duplicate(lasting));
    // Before the note that its first delivery's acknowledgement was read,
    // a copy; after it, a new message.
    assert_eq!(results[4], Recorded::Duplicate(read));
    assert!(
        matches!(results[6], Recorded::New(id) if id != read),
        "{results:?}"
    );
    // Answered on the spot: the same text again is asked again.
    let (Recorded::New(a), Recorded::New(b)) = (results[7], results[8]) else {
        panic!("new: {results:?}")
    };
    assert_ne!(a, b);
    assert_eq!(j.reply_state(b).await.unwrap(), Some(ReplyState::Sent));
    j.close().await;
}

/// Exchanges between plain records and copies in one batch: each new
/// message's reply and lookup land on that message, not a neighbour's.
async fn in_one_batch_each_exchange_keeps_its_own_reply_and_lookup(db: GatewayDb) {
    let j = start(&db).await;
    let exchange = |sender: &str, at: i64| NewMessage {
        channel: "kannel".into(),
        ..message(sender, "TC 5", at)
    };
    let copy = message("84900000009", "TC 8", 1_000);
    let results = all_at_once(vec![
        Box::pin(j.record(copy.clone())),
        Box::pin(j.record_exchange(
            exchange("84900000001", 1_000),
            "found",
            "HS one",
            ReplyState::Sent,
            Some(note("CODE-1", Some("agency one"))),
        )),
        Box::pin(j.record(copy)),
        Box::pin(j.record(message("84900000003", "TC 7", 1_000))),
        Box::pin(j.record_exchange(
            exchange("84900000002", 1_000),
            "not_found",
            "HS two",
            ReplyState::Sent,
            None,
        )),
        Box::pin(j.record_exchange(
            exchange("84900000004", 1_000),
            "found",
            "HS three",
            ReplyState::Sent,
            Some(note("CODE-3", None)),
        )),
    ])
    .await;
    let ids: Vec<Recorded> = results.into_iter().map(|r| r.unwrap()).collect();
    let new = |i: usize| match ids[i] {
        Recorded::New(id) => id,
        other => panic!("message {i} recorded anew: {other:?} in {ids:?}"),
    };
    assert_eq!(ids[2], Recorded::Duplicate(new(0)));
    let reply_of = |id: i64| {
        let pool = j.pool().clone();
        async move {
            on_state_pool!(&pool, p => sqlx::query_as::<_, (String, String)>(
                "SELECT r.text, m.sender FROM replies r JOIN messages m ON m.id = r.message_id \
                 WHERE r.message_id = $1",
            )
            .bind(id)
            .fetch_optional(p)
            .await)
            .unwrap()
        }
    };
    assert_eq!(
        reply_of(new(1)).await,
        Some(("HS one".into(), "84900000001".into()))
    );
    assert_eq!(
        reply_of(new(4)).await,
        Some(("HS two".into(), "84900000002".into()))
    );
    assert_eq!(
        reply_of(new(5)).await,
        Some(("HS three".into(), "84900000004".into()))
    );
    assert_eq!(
        reply_of(new(0)).await,
        None,
        "a plain record has no reply yet"
    );
    assert_eq!(
        reply_of(new(3)).await,
        None,
        "a plain record has no reply yet"
    );
    assert_eq!(
        lookup_of(&j, new(1)).await,
        Some((
            "CODE-1".into(),
            Some("agency one".into()),
            Some("procedure".into())
        ))
    );
    assert_eq!(lookup_of(&j, new(4)).await, None);
    assert_eq!(
        lookup_of(&j, new(5)).await,
        Some(("CODE-3".into(), None, None))
    );
    j.close().await;
}

async fn a_request_failing_on_its_own_leaves_the_rest_of_its_batch_committed(db: GatewayDb) {
    let j = start(&db).await;
    let mut asks: Vec<Pending<'_, Result<(), JournalError>>> = Vec::new();
    for i in 0..20 {
        asks.push(record_ask(&j, i));
        if i == 10 {
            // No message 1_000_000 exists: its reply breaks a foreign key.
            asks.push(Box::pin(j.queue_reply(
                1_000_000,
                "found",
                "r",
                ReplyState::Queued,
            )));
        }
    }
    let results = all_at_once(asks).await;
    assert!(
        matches!(results[11], Err(JournalError::Write(_))),
        "{:?}",
        results[11]
    );
    let failed = results.iter().filter(|r| r.is_err()).count();
    assert_eq!(failed, 1, "{results:?}");
    let count: i64 =
        on_state_pool!(j.pool(), p => sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(p)
        .await)
        .unwrap();
    assert_eq!(count, 20);
    assert_eq!(j.reply_state(1_000_000).await.unwrap(), None);
    j.close().await;
}

/// On PostgreSQL, the writer refreshes the planner's statistics while a
/// fresh database grows (its statements keep generic plans: made on empty
/// tables they would scan them whole), without waiting for autovacuum.
#[tokio::test]
#[cfg_attr(
    not(test_database_url),
    ignore = "needs TEST_DATABASE_URL (a PostgreSQL server to create a database on)"
)]
async fn on_postgres_the_writer_analyzes_a_fresh_database_once_a_thousand_messages_are_recorded() {
    let test_db = crate::db::testing::TestDb::postgres().await;
    let j = start(&test_db.db).await;
    let analyzed = || async {
        on_state_pool!(j.pool(), p => sqlx::query_as::<_, (i64, f32)>(
            "SELECT s.analyze_count, c.reltuples FROM pg_stat_user_tables s \
             JOIN pg_class c ON c.oid = s.relid WHERE s.relname = 'messages'",
        )
        .fetch_one(p)
        .await)
        .unwrap()
    };
    let mut asks: Vec<Pending<'_, Result<(), JournalError>>> = Vec::new();
    for i in 0..999 {
        asks.push(record_ask(&j, i));
    }
    assert!(all_at_once(asks).await.iter().all(Result::is_ok));
    // The counts reach the statistics view a moment after the fact.
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    assert_eq!(analyzed().await.0, 0, "not before 1,000 messages");
    j.record(message("84900000999", "TC", 1)).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let (count, rows) = loop {
        let (count, rows) = analyzed().await;
        if count > 0 || std::time::Instant::now() > deadline {
            break (count, rows);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(count, 1, "one ANALYZE at 1,000 messages");
    assert!(rows >= 1_000.0, "the planner knows the rows: {rows}");
    j.close().await;
    test_db.finish().await;
}
