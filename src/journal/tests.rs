//! The journal's tests: recording and redelivery, replies from queued to
//! settled, receipts, fragments, expiry and retention, closing; also the
//! journal other rooms' tests open ([`journal`]).

use std::time::Duration;

use super::*;
use crate::clock::now_ms;
use crate::db::is_in_memory;
use crate::on_state_pool;

mod batches;
mod parts;

crate::on_both_engines!(
    records_survive_reopening_and_unanswered_ones_are_found,
    an_exchange_is_recorded_answered_with_its_lookup_and_never_reaches_the_outbox,
    a_reply_sent_part_by_part_is_recorded_as_it_goes_and_read_back,
    a_settled_reply_records_its_lookup_and_when_it_was_first_sent,
    redeliveries_are_recognised,
    a_copy_of_a_message_whose_acknowledgement_was_read_is_a_new_message,
    concurrent_records_are_group_committed,
    purge_erases_texts_and_numbers_but_keeps_outcomes,
    a_waiting_reply_expires_and_is_then_purged_like_the_rest,
    close_commits_what_came_before_and_stops_every_handle,
);

fn message(sender: &str, text: &str, at: i64) -> NewMessage {
    NewMessage {
        channel: "listener:demo".into(),
        peer_ref: None,
        peer_ref_lasting: false,
        sender: Address {
            addr: sender.into(),
            ton: 1,
            npi: 1,
        },
        recipient: Address {
            addr: "8058".into(),
            ton: 0,
            npi: 0,
        },
        text: text.into(),
        received_at: at,
    }
}

/// The journal's writer started on a test's database.
pub(crate) async fn start(db: &GatewayDb) -> Journal {
    Journal::start(db.clone(), JournalSettings::default())
        .await
        .unwrap()
}

/// The journal on a test's database again, after [`Journal::close`]
/// closed it: a new pool on the same database, and a new writer.
async fn reopen(db: &GatewayDb) -> Journal {
    let again = GatewayDb::open(&db.describe(), db.durability())
        .await
        .unwrap();
    start(&again).await
}

async fn records_survive_reopening_and_unanswered_ones_are_found(db: GatewayDb) {
    let j = start(&db).await;
    let Recorded::New(a) = j
        .record(message("84912345678", "TC 1", 1_000))
        .await
        .unwrap()
    else {
        panic!("new")
    };
    let Recorded::New(b) = j
        .record(message("84912345679", "TC 2", 1_000))
        .await
        .unwrap()
    else {
        panic!("new")
    };
    j.queue_reply(a, "found", "reply a", ReplyState::Queued)
        .await
        .unwrap();
    j.close().await;
    let j = reopen(&db).await;
    let unanswered = j.unanswered().await.unwrap();
    assert_eq!(unanswered.len(), 1);
    assert_eq!(unanswered[0].id, b);
    let due = j.due_replies(now_ms(), None, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].text, "reply a");
    assert_eq!(due[0].to.addr, "84912345678");
    assert_eq!(due[0].from.addr, "8058");
    j.update_reply(a, ReplyState::Sent, Some("x".into()), None, None)
        .await
        .unwrap();
    assert_eq!(j.reply_state(a).await.unwrap(), Some(ReplyState::Sent));
    assert!(j.due_replies(now_ms(), None, 10).await.unwrap().is_empty());
}

async fn an_exchange_is_recorded_answered_with_its_lookup_and_never_reaches_the_outbox(
    db: GatewayDb,
) {
    let j = start(&db).await;
    let mut turn = message("84912345678", "*8058*0000012582403150007#", now_ms());
    turn.channel = "ussd:http".into();
    let Recorded::New(id) = j
        .record_exchange(
            turn,
            "found",
            "HS 000.00.12.H58-240315-0007 ...",
            ReplyState::Sent,
            Some(note("000.00.12.H58-240315-0007", Some("UBND"))),
        )
        .await
        .unwrap()
    else {
        panic!("new")
    };
    assert!(j.unanswered().await.unwrap().is_empty());
    assert!(j
        .due_replies(now_ms() + 1, None, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(j.reply_state(id).await.unwrap(), Some(ReplyState::Sent));
    assert_eq!(
        lookup_of(&j, id).await,
        Some((
            "000.00.12.H58-240315-0007".into(),
            Some("UBND".into()),
            Some("procedure".into())
        ))
    );
    assert!(sent_at(&j, id).await.is_some());
    // Retention erases the code with the text; agency and procedure stay.
    assert_eq!(j.purge_before(now_ms() + 1000).await.unwrap(), 1);
    assert_eq!(
        lookup_of(&j, id).await,
        Some((String::new(), Some("UBND".into()), Some("procedure".into())))
    );
}

fn note(code: &str, agency: Option<&str>) -> LookupNote {
    LookupNote {
        code: code.into(),
        agency: agency.map(Into::into),
        procedure: agency.map(|_| "procedure".into()),
        name_spans: Vec::new(),
    }
}

async fn lookup_of(j: &Journal, id: i64) -> Option<(String, Option<String>, Option<String>)> {
    on_state_pool!(j.pool(), p => sqlx::query_as("SELECT code, agency, procedure FROM reply_lookups WHERE message_id = $1")
        .bind(id)
        .fetch_optional(p)
        .await)
        .unwrap()
}

async fn sent_at(j: &Journal, id: i64) -> Option<i64> {
    on_state_pool!(j.pool(), p => sqlx::query_scalar("SELECT sent_at FROM replies WHERE message_id = $1")
        .bind(id)
        .fetch_one(p)
        .await)
        .unwrap()
}

async fn a_reply_sent_part_by_part_is_recorded_as_it_goes_and_read_back(db: GatewayDb) {
    let j = start(&db).await;
    let Recorded::New(id) = j
        .record(message("84912345678", "TC 1", now_ms()))
        .await
        .unwrap()
    else {
        panic!("new")
    };
    let reply = PendingReply {
        message_id: id,
        channel: "modem".into(),
        to: Address::new("84912345678", 1, 1),
        from: Address::new("8058", 0, 0),
        text: "a reply in three parts".into(),
        outcome: "found".into(),
        attempts: 0,
        stored: false,
        lookup: Some(note("000.00.12.H58-240315-0007", Some("UBND"))),
    };
    assert_eq!(j.recorded_parts(id).await.unwrap(), None);
    let progress = |sent| PartRecord {
        channel: "modem".into(),
        reference: 517,
        sent,
    };
    // Before the first part: the reply is stored, queued, with its reference.
    j.record_part_sent(&reply, progress(None)).await.unwrap();
    assert_eq!(j.reply_state(id).await.unwrap(), Some(ReplyState::Queued));
    assert!(lookup_of(&j, id).await.is_some());
    assert!(
        j.unanswered().await.unwrap().is_empty(),
        "not answered again"
    );
    assert_eq!(
        j.recorded_parts(id).await.unwrap(),
        Some(RecordedParts {
            reference: 517,
            sent: vec![]
        })
    );
    // Each part as it leaves.
    for part in 1..=2 {
        let sent = Some((part, format!("m1:{part}")));
        j.record_part_sent(&reply, progress(sent)).await.unwrap();
    }
    let recorded = j.recorded_parts(id).await.unwrap().unwrap();
    assert_eq!(
        recorded.sent,
        vec![(1, "m1:1".to_owned()), (2, "m1:2".to_owned())]
    );
    // Settled with the last part: every part once, nothing left to resume.
    let mut settled = reply.clone();
    settled.stored = true;
    j.settle_reply(
        &settled,
        Settlement {
            state: ReplyState::Accepted,
            left_on: Some((
                "modem".into(),
                vec!["m1:1".into(), "m1:2".into(), "m1:3".into()],
            )),
            error: None,
            next_attempt_at: None,
            counts: true,
        },
    )
    .await
    .unwrap();
    assert_eq!(j.recorded_parts(id).await.unwrap(), None);
    assert_eq!(
        j.part_states(id).await.unwrap(),
        vec!["accepted", "accepted", "accepted"]
    );
}

async fn a_settled_reply_records_its_lookup_and_when_it_was_first_sent(db: GatewayDb) {
    let j = start(&db).await;
    let record = |text: &'static str| {
        let j = j.clone();
        async move {
            let Recorded::New(id) = j
                .record(message("84912345678", text, now_ms()))
                .await
                .unwrap()
            else {
                panic!("new")
            };
            id
        }
    };
    let pending = |id: i64, lookup| PendingReply {
        message_id: id,
        channel: "smsc:c".into(),
        to: Address::new("84912345678", 1, 1),
        from: Address::new("8058", 0, 0),
        text: "reply".into(),
        outcome: "found".into(),
        attempts: 0,
        stored: false,
        lookup,
    };
    let settlement = |state, left_on: Option<(String, Vec<String>)>| Settlement {
        state,
        left_on,
        error: None,
        next_attempt_at: None,
        counts: true,
    };
    // Sent at the first attempt: the lookup and sent_at in the same write.
    let first = record("TC 1").await;
    j.settle_reply(
        &pending(first, Some(note("000.00.12.H58-240315-0007", Some("UBND")))),
        settlement(
            ReplyState::Accepted,
            Some(("smsc:c".into(), vec!["a".into()])),
        ),
    )
    .await
    .unwrap();
    assert!(lookup_of(&j, first).await.is_some());
    let sent = sent_at(&j, first).await.expect("sent_at set");
    // A receipt does not move it.
    j.apply_receipt(ReceiptUpdate {
        channel: "smsc:c".into(),
        peer_ids: vec!["a".into()],
        state: "delivered".into(),
        is_final: true,
        success: true,
        error: None,
    })
    .await
    .unwrap();
    assert_eq!(sent_at(&j, first).await, Some(sent));
    // Waiting for its channel: the lookup is written, sent_at only once sent.
    let second = record("TC 2").await;
    let reply = pending(second, Some(note("000.00.12.H58-240315-0008", None)));
    j.settle_reply(&reply, settlement(ReplyState::Queued, None))
        .await
        .unwrap();
    assert_eq!(sent_at(&j, second).await, None);
    assert_eq!(
        lookup_of(&j, second).await,
        Some(("000.00.12.H58-240315-0008".into(), None, None))
    );
    let mut retried = reply.clone();
    retried.stored = true;
    retried.lookup = None;
    j.settle_reply(
        &retried,
        settlement(ReplyState::Sent, Some(("listener:demo".into(), vec![]))),
    )
    .await
    .unwrap();
    assert!(sent_at(&j, second).await.is_some());
    assert!(lookup_of(&j, second).await.is_some(), "kept");
    // Failed: never sent.
    let third = record("TC 3").await;
    j.settle_reply(&pending(third, None), settlement(ReplyState::Failed, None))
        .await
        .unwrap();
    assert_eq!(sent_at(&j, third).await, None);
    assert_eq!(lookup_of(&j, third).await, None);
    // The other paths: accepted after queueing, update_reply.
    let fourth = record("TC 4").await;
    j.queue_reply(fourth, "found", "r", ReplyState::Queued)
        .await
        .unwrap();
    j.reply_accepted(fourth, "smsc:c", vec!["b".into()])
        .await
        .unwrap();
    assert!(sent_at(&j, fourth).await.is_some());
    let fifth = record("TC 5").await;
    j.queue_reply(fifth, "found", "r", ReplyState::Queued)
        .await
        .unwrap();
    j.update_reply(fifth, ReplyState::Queued, None, Some("x".into()), None)
        .await
        .unwrap();
    assert_eq!(sent_at(&j, fifth).await, None);
    j.update_reply(fifth, ReplyState::Sent, None, None, None)
        .await
        .unwrap();
    assert!(sent_at(&j, fifth).await.is_some());
}

async fn redeliveries_are_recognised(db: GatewayDb) {
    let j = start(&db).await;
    let first = j
        .record(message("84912345678", "TC 1", 1_000_000))
        .await
        .unwrap();
    let Recorded::New(id) = first else { panic!() };
    assert_eq!(
        j.record(message("84912345678", "TC 1", 1_200_000))
            .await
            .unwrap(),
        Recorded::Duplicate(id)
    );
    // Outside the window it is a new message.
    assert!(matches!(
        j.record(message("84912345678", "TC 1", 1_000_000 + 601_000))
            .await
            .unwrap(),
        Recorded::New(_)
    ));
    let mut with_ref = message("84900000000", "A", 5);
    with_ref.peer_ref = Some("7".into());
    let Recorded::New(r) = j.record(with_ref.clone()).await.unwrap() else {
        panic!()
    };
    assert_eq!(
        j.record(with_ref.clone()).await.unwrap(),
        Recorded::Duplicate(r)
    );
    // Peers reuse their 16-bit references: another text under the same
    // reference, another sender, the same text without the reference,
    // or the same one after the window, is a new message.
    let mut other_text = with_ref.clone();
    other_text.text = "different text, same peer reference".into();
    assert!(matches!(
        j.record(other_text).await.unwrap(),
        Recorded::New(_)
    ));
    let mut other_sender = with_ref.clone();
    other_sender.sender.addr = "84900000001".into();
    assert!(matches!(
        j.record(other_sender).await.unwrap(),
        Recorded::New(_)
    ));
    let mut no_ref = with_ref.clone();
    no_ref.peer_ref = None;
    assert!(matches!(j.record(no_ref).await.unwrap(), Recorded::New(_)));
    let mut much_later = with_ref.clone();
    much_later.received_at += 601_000;
    assert!(matches!(
        j.record(much_later).await.unwrap(),
        Recorded::New(_)
    ));
    // A lasting identity (a modem's fingerprint) has no window.
    let mut fingerprinted = message("84900000002", "B", 5);
    fingerprinted.peer_ref = Some("sms:abc".into());
    fingerprinted.peer_ref_lasting = true;
    let Recorded::New(f) = j.record(fingerprinted.clone()).await.unwrap() else {
        panic!()
    };
    fingerprinted.received_at += 86_400_000;
    assert_eq!(
        j.record(fingerprinted.clone()).await.unwrap(),
        Recorded::Duplicate(f)
    );
    // ... even once its acknowledgement was read.
    j.acknowledgements_read(vec![f]).await.unwrap();
    assert_eq!(
        j.record(fingerprinted).await.unwrap(),
        Recorded::Duplicate(f)
    );
}

async fn a_copy_of_a_message_whose_acknowledgement_was_read_is_a_new_message(db: GatewayDb) {
    let j = start(&db).await;
    let ask = message("84912345678", "TC 1", 1_000_000);
    let Recorded::New(first) = j.record(ask.clone()).await.unwrap() else {
        panic!()
    };
    // Not known to be read: a copy is the same message.
    let mut copy = ask.clone();
    copy.received_at += 20_000;
    assert_eq!(
        j.record(copy.clone()).await.unwrap(),
        Recorded::Duplicate(first)
    );
    // Read: the same text again is the citizen asking again...
    j.acknowledgements_read(vec![first]).await.unwrap();
    let Recorded::New(second) = j.record(copy.clone()).await.unwrap() else {
        panic!("a second ask is a new message")
    };
    // ... and a copy of that second ask, not yet known to be read, is
    // a redelivery of it.
    copy.received_at += 1_000;
    assert_eq!(
        j.record(copy.clone()).await.unwrap(),
        Recorded::Duplicate(second)
    );
    // The note survives a restart.
    j.acknowledgements_read(vec![second]).await.unwrap();
    j.close().await;
    let j = reopen(&db).await;
    assert!(matches!(j.record(copy).await.unwrap(), Recorded::New(_)));
    // An exchange (answered on the spot) is never redelivered.
    let kannel = NewMessage {
        channel: "kannel".into(),
        ..message("84912345678", "TC 1", 2_000_000)
    };
    for _ in 0..2 {
        assert!(matches!(
            j.record_exchange(kannel.clone(), "found", "HS 1", ReplyState::Sent, None)
                .await
                .unwrap(),
            Recorded::New(_)
        ));
    }
}

async fn concurrent_records_are_group_committed(db: GatewayDb) {
    let j = start(&db).await;
    let mut tasks = Vec::new();
    for i in 0..500 {
        let j = j.clone();
        tasks.push(tokio::spawn(async move {
            j.record(message(&format!("849{i:08}"), "TC", 1))
                .await
                .unwrap()
        }));
    }
    let mut ids = std::collections::HashSet::new();
    for t in tasks {
        let Recorded::New(id) = t.await.unwrap() else {
            panic!()
        };
        ids.insert(id);
    }
    assert_eq!(ids.len(), 500);
}

async fn purge_erases_texts_and_numbers_but_keeps_outcomes(db: GatewayDb) {
    let j = start(&db).await;
    let Recorded::New(old) = j
        .record(message("84912345678", "TC old", 1_000))
        .await
        .unwrap()
    else {
        panic!()
    };
    let Recorded::New(new) = j
        .record(message("84912345678", "TC new", now_ms()))
        .await
        .unwrap()
    else {
        panic!()
    };
    j.queue_reply(old, "found", "reply", ReplyState::Queued)
        .await
        .unwrap();
    j.update_reply(old, ReplyState::Sent, None, None, None)
        .await
        .unwrap();
    assert_eq!(j.purge_before(now_ms() - 1000).await.unwrap(), 1);
    let row = on_state_pool!(j.pool(), p => sqlx::query_as::<_, (String, String)>("SELECT sender, text FROM messages WHERE id = $1")
        .bind(old)
        .fetch_one(p)
        .await)
        .unwrap();
    assert_eq!(row.0, "");
    assert_eq!(row.1, "");
    let outcome: String = on_state_pool!(j.pool(), p => sqlx::query_scalar("SELECT outcome FROM replies WHERE message_id = $1")
        .bind(old)
        .fetch_one(p)
        .await)
        .unwrap();
    assert_eq!(outcome, "found");
    let kept: String =
        on_state_pool!(j.pool(), p => sqlx::query_scalar("SELECT text FROM messages WHERE id = $1")
        .bind(new)
        .fetch_one(p)
        .await)
        .unwrap();
    assert_eq!(kept, "TC new");
}

async fn a_waiting_reply_expires_and_is_then_purged_like_the_rest(db: GatewayDb) {
    let j = start(&db).await;
    let day = 86_400_000;
    let now = now_ms();
    let record = |sender: &'static str, text: &'static str, at: i64| {
        let j = j.clone();
        async move {
            match j.record(message(sender, text, at)).await.unwrap() {
                Recorded::New(id) => id,
                Recorded::Duplicate(_) => panic!("new"),
            }
        }
    };
    let waiting = record("84912345678", "TC waiting", now - 2 * day).await;
    let sent = record("84912345678", "TC sent", now - 2 * day).await;
    let unanswered = record("84912345679", "TC unanswered", now - 2 * day).await;
    let fresh = record("84912345678", "TC fresh", now).await;
    for id in [waiting, sent, fresh] {
        j.queue_reply(id, "found", "the status", ReplyState::Queued)
            .await
            .unwrap();
    }
    j.update_reply(sent, ReplyState::Sent, None, None, None)
        .await
        .unwrap();

    let cutoff = now - day;
    assert_eq!(
        j.overdue_replies(cutoff).await.unwrap(),
        vec![(waiting, "84912345678".to_owned())]
    );
    assert_eq!(
        j.expire_replies(vec![waiting, sent, unanswered])
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        j.reply_state(waiting).await.unwrap(),
        Some(ReplyState::Expired)
    );
    assert_eq!(j.reply_state(sent).await.unwrap(), Some(ReplyState::Sent));
    assert_eq!(
        j.reply_state(unanswered).await.unwrap(),
        Some(ReplyState::Expired)
    );
    assert!(j.overdue_replies(cutoff).await.unwrap().is_empty());
    assert!(j.unanswered().await.unwrap().is_empty());
    let due: Vec<i64> = j
        .due_replies(now + 1_000, None, 100)
        .await
        .unwrap()
        .iter()
        .map(|r| r.message_id)
        .collect();
    assert_eq!(due, vec![fresh]);
    // Expired is final: an attempt that ends later does not revive it.
    let late = PendingReply {
        message_id: waiting,
        channel: "listener:demo".into(),
        to: message("84912345678", "", 0).sender,
        from: message("84912345678", "", 0).recipient,
        text: "the status".into(),
        outcome: "found".into(),
        attempts: 0,
        stored: true,
        lookup: None,
    };
    let sent_late = Settlement {
        state: ReplyState::Sent,
        left_on: Some(("listener:demo".into(), vec![])),
        error: None,
        next_attempt_at: None,
        counts: true,
    };
    j.settle_reply(&late, sent_late).await.unwrap();
    assert_eq!(
        j.reply_state(waiting).await.unwrap(),
        Some(ReplyState::Expired)
    );

    // The retention purge now erases the expired reply's message too.
    assert_eq!(j.purge_before(cutoff).await.unwrap(), 3);
    let row = on_state_pool!(j.pool(), p => sqlx::query_as::<_, (String, String)>("SELECT sender, text FROM messages WHERE id = $1")
        .bind(waiting)
        .fetch_one(p)
        .await)
        .unwrap();
    assert_eq!(row.0, "");
    assert_eq!(row.1, "");
    let reply_text: String = on_state_pool!(j.pool(), p => sqlx::query_scalar("SELECT text FROM replies WHERE message_id = $1")
        .bind(waiting)
        .fetch_one(p)
        .await)
        .unwrap();
    assert_eq!(reply_text, "");
}

#[test]
fn the_reply_expiry_is_at_least_a_second_and_at_most_the_retention() {
    let settings = JournalSettings::default();
    assert!(settings.problems().is_empty());
    assert_eq!(settings.reply_expiry(), Duration::from_secs(86_400));
    for reply_expiry_secs in [0, 91 * 86_400] {
        let problems = JournalSettings {
            reply_expiry_secs,
            ..JournalSettings::default()
        }
        .problems();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].0, "journal.reply_expiry_secs");
    }
    let at_retention = JournalSettings {
        reply_expiry_secs: 90 * 86_400,
        ..JournalSettings::default()
    };
    assert!(at_retention.problems().is_empty());
}

async fn close_commits_what_came_before_and_stops_every_handle(db: GatewayDb) {
    let j = start(&db).await;
    let other = j.clone();
    // Poll each record once: it is queued, then waits for its commit.
    let mut records: Vec<_> = (0..100)
        .map(|i| Box::pin(j.record(message(&format!("849{i:08}"), "TC", 1))))
        .collect();
    let mut early = Vec::new();
    tokio::task::unconstrained(async {
        for record in &mut records {
            if let std::task::Poll::Ready(r) = futures::poll!(record.as_mut()) {
                early.push(r);
            }
        }
    })
    .await;
    // Queued after them: they are committed and answered first.
    j.close().await;
    let recorded = early
        .into_iter()
        .chain(futures::future::join_all(records).await);
    assert_eq!(
        recorded
            .filter(|r| matches!(r, Ok(Recorded::New(_))))
            .count(),
        100
    );
    assert!(matches!(
        other.record(message("84912345678", "TC", 2)).await,
        Err(JournalError::Stopped)
    ));
    // A second close (from another handle) returns too.
    other.close().await;
    let j = reopen(&db).await;
    let count: i64 =
        on_state_pool!(j.pool(), p => sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(p)
        .await)
        .unwrap();
    assert_eq!(count, 100);
}

#[tokio::test]
async fn an_in_memory_journal_is_refused() {
    for url in [
        "sqlite::memory:",
        "sqlite://journal.db?mode=memory&cache=shared",
    ] {
        let opened = Journal::open(JournalSettings {
            url: url.into(),
            ..JournalSettings::default()
        })
        .await;
        assert!(matches!(opened, Err(JournalError::Open { .. })), "{url}");
    }
    assert!(!is_in_memory("sqlite://var/journal.db"));
}
