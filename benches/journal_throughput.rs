//! The journal alone under the SMPP listener's load: each citizen's message
//! is recorded, its reply settled as sent on the listener (with the lookup
//! it made), and the acknowledgement noted read, `in_flight` messages at a
//! time (the listener's connections × window). Prints messages per second
//! for the journal on a SQLite file (`synchronous` from
//! `BENCH_JOURNAL_SYNC`, default FULL) and, when `BENCH_JOURNAL_POSTGRES`
//! or `TEST_DATABASE_URL` names a PostgreSQL server, on a fresh database
//! there (dropped after; as durable as the server's `synchronous_commit`).
//! The ceiling the journal puts on `listener_throughput`'s MO→MT/s.
//!
//! `cargo bench --bench journal_throughput -- [messages] [in_flight]`

use std::sync::Arc;
use std::time::Instant;

use motcua_sms::address::Address;
use motcua_sms::journal::{
    Durability, Journal, JournalSettings, LookupNote, NewMessage, PendingReply, Recorded,
    ReplyState, Settlement,
};
use support::temp_postgres::TempDatabase;
use tokio::sync::Semaphore;

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let messages = args.first().copied().unwrap_or(20_000);
    let in_flight = args.get(1).copied().unwrap_or(200);
    let synchronous = match std::env::var("BENCH_JOURNAL_SYNC").as_deref() {
        Ok("off") => Durability::Off,
        Ok("normal") => Durability::Normal,
        _ => Durability::Full,
    };
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}/journal.db", dir.path().display());
    run("SQLite", &sqlite, synchronous, messages, in_flight).await;
    let server = std::env::var("BENCH_JOURNAL_POSTGRES")
        .ok()
        .or_else(support::temp_postgres::maintenance_url)
        .filter(|url| !url.trim().is_empty());
    if let Some(server) = server {
        let database = TempDatabase::create(&server).await;
        run(
            "PostgreSQL",
            &database.url,
            synchronous,
            messages,
            in_flight,
        )
        .await;
        database.drop().await;
    }
}

async fn run(engine: &str, url: &str, synchronous: Durability, messages: usize, in_flight: usize) {
    let journal = Journal::open(JournalSettings {
        url: url.to_owned(),
        synchronous,
        ..JournalSettings::default()
    })
    .await
    .unwrap();
    let slots = Arc::new(Semaphore::new(in_flight));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(messages);
    for i in 0..messages {
        let permit = slots.clone().acquire_owned().await.unwrap();
        let journal = journal.clone();
        tasks.push(tokio::spawn(async move {
            one_message(&journal, i).await;
            drop(permit);
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed();
    journal.close().await;
    println!(
        "journal_throughput on {engine}: {messages} messages, {in_flight} in flight: {:.0} messages/s over {:.2} s",
        messages as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );
}

/// What the listener asks of the journal for one message answered at once.
async fn one_message(journal: &Journal, i: usize) {
    let sender = Address::new(format!("849{:08}", i % 50_000), 1, 1);
    let message = NewMessage {
        channel: "listener:bench".into(),
        peer_ref: None,
        peer_ref_lasting: false,
        sender: sender.clone(),
        recipient: Address::new("8058", 0, 0),
        text: format!("TC 000.00.12.H58-240315-{:04}", i % 10_000),
        received_at: motcua_sms::clock::now_ms(),
    };
    let Recorded::New(id) = journal.record(message).await.unwrap() else {
        return;
    };
    let reply = PendingReply {
        message_id: id,
        channel: "listener:bench".into(),
        to: sender,
        from: Address::new("8058", 0, 0),
        text: "HS 000.00.12.H58-240315-0007: da tiep nhan".into(),
        outcome: "found".into(),
        attempts: 0,
        stored: false,
        lookup: Some(LookupNote {
            code: "000.00.12.H58-240315-0007".into(),
            agency: Some("UBND".into()),
            procedure: Some("procedure".into()),
            name_spans: Vec::new(),
        }),
    };
    let sent = Settlement {
        state: ReplyState::Sent,
        left_on: Some(("listener:bench".into(), vec![format!("{id:x}")])),
        error: None,
        next_attempt_at: None,
        counts: true,
    };
    journal.settle_reply(&reply, sent).await.unwrap();
    journal.acknowledgements_read(vec![id]).await.unwrap();
}
