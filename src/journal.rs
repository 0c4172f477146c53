//! The durable journal: every citizen's message is recorded here before the
//! carrier or peer is acknowledged, and its reply is an outbox entry with a
//! state (queued → sent / accepted → delivered, or failed / suppressed, or
//! expired when it waited longer than `reply_expiry_secs` for its channel).
//! Writes go through one writer that commits whatever has queued up in a
//! single transaction (group commit), so an fsync is shared by every
//! message that arrived meanwhile. The writer is a dedicated OS thread with
//! its own synchronous SQLite connection (rusqlite, cached prepared
//! statements): a batch's statements run back to back on that thread,
//! instead of each being a round trip to a connection worker thread as an
//! async driver's are, which under load cost more CPU in thread wake-ups
//! than the SQL itself. Reads (recovery, due replies, abuse control) use an
//! sqlx pool on the same file, or for the abuse checks of every message
//! plain connections on the caller's thread (`crate::inline_reads`); WAL
//! lets them run beside the writer. A separate SQLite file from the read
//! model: the read model can be rebuilt from the core, the journal cannot.

use std::str::FromStr;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::Deserialize;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use tokio::sync::{mpsc, oneshot, watch};

/// Most operations committed in one transaction.
const MAX_BATCH: usize = 512;

/// `[journal]` in config.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JournalSettings {
    /// `sqlite://path/to/journal.db`.
    pub url: String,
    /// `full` (every commit reaches the disk before a message is acknowledged),
    /// `normal` (survives a gateway crash, not a power cut), `off` (benchmarks only).
    pub synchronous: Durability,
    /// A copy of a message (same channel, sender, text and peer reference)
    /// within this many seconds is a redelivery — acknowledged with the
    /// first one's id, not answered again — unless the peer was seen to
    /// read the first one's acknowledgement (then it is a new message).
    pub redelivery_window_secs: u64,
    /// Message texts and phone numbers are erased after this many days;
    /// outcomes and times are kept for statistics.
    pub retention_days: u64,
    /// A reply not handed to its channel within this many seconds of the
    /// message's arrival (its channel never came back, or the gateway was
    /// down) is not sent any more: recorded `expired`, then purged with the
    /// rest. At most `retention_days`.
    pub reply_expiry_secs: u64,
    /// A reply that could not be sent is retried this many times before it is failed.
    pub max_attempts: u32,
    /// A concatenated message still missing parts this many seconds after
    /// its first part arrived is answered from the parts it has.
    pub reassembly_timeout_secs: u64,
}

impl Default for JournalSettings {
    fn default() -> Self {
        JournalSettings {
            url: "sqlite://var/journal.db".to_owned(),
            synchronous: Durability::Full,
            redelivery_window_secs: 600,
            retention_days: 90,
            reply_expiry_secs: 86_400,
            max_attempts: 20,
            reassembly_timeout_secs: 30,
        }
    }
}

impl JournalSettings {
    /// The problems of these settings, as (key, problem).
    pub fn problems(&self) -> Vec<(String, String)> {
        let retention_secs = self.retention_days.saturating_mul(86_400);
        let mut problems = Vec::new();
        if self.reply_expiry_secs == 0 {
            problems.push((
                "journal.reply_expiry_secs".to_owned(),
                "must be at least 1".to_owned(),
            ));
        } else if self.reply_expiry_secs > retention_secs {
            problems.push((
                "journal.reply_expiry_secs".to_owned(),
                format!(
                    "{} s is longer than journal.retention_days ({} days = {retention_secs} s): a waiting reply would outlive the retention",
                    self.reply_expiry_secs, self.retention_days
                ),
            ));
        }
        problems
    }

    /// How long a reply may wait for its channel (`reply_expiry_secs`).
    pub fn reply_expiry(&self) -> Duration {
        Duration::from_secs(self.reply_expiry_secs)
    }
}

/// How hard a commit waits for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// fsync on every commit.
    Full,
    /// fsync at checkpoints (WAL): safe against process crashes.
    Normal,
    /// No fsync: for measuring the cost of durability only.
    Off,
}

/// Journal failures.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The journal database could not be opened or migrated.
    #[error("cannot open the journal at {url}: {source}")]
    Open {
        /// Its URL.
        url: String,
        /// The cause.
        #[source]
        source: sqlx::Error,
    },
    /// Schema migration failed.
    #[error("cannot migrate the journal: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The writer's own connection could not be opened or configured.
    #[error("cannot open the journal writer's connection to {url}: {source}")]
    OpenWriter {
        /// The journal's URL.
        url: String,
        /// The cause.
        #[source]
        source: rusqlite::Error,
    },
    /// A read failed.
    #[error("journal read failed: {0}")]
    Sql(#[from] sqlx::Error),
    /// A write failed: the operation's statement, or its batch's commit
    /// (then every operation of the batch gets the error).
    #[error("journal write failed: {0}")]
    Write(#[source] rusqlite::Error),
    /// The writer has stopped (shutdown).
    #[error("the journal writer has stopped")]
    Stopped,
}

pub use crate::address::Address;

/// A message to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// Where it came from: `listener:<account>` or `smsc:<name>`.
    pub channel: String,
    /// The peer's own id for it, when it gives one, or the channel's
    /// fingerprint of it (see `peer_ref_lasting`).
    pub peer_ref: Option<String>,
    /// `peer_ref` identifies the message for good (a GSM modem's
    /// fingerprint: sender, service-centre time, text), so a delivery with
    /// it is a redelivery however late. Otherwise (an SMPP peer's
    /// `user_message_reference`, a 16-bit number peers reuse) a copy is a
    /// redelivery only with the same sender and text, within the
    /// redelivery window, while its acknowledgement is not known to be
    /// read (see [`Journal::record`]).
    pub peer_ref_lasting: bool,
    /// The citizen.
    pub sender: Address,
    /// The number they texted.
    pub recipient: Address,
    /// The decoded text.
    pub text: String,
    /// Unix milliseconds.
    pub received_at: i64,
}

/// What recording did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// A new message, with its id.
    New(i64),
    /// A redelivery of the message with this id.
    Duplicate(i64),
}

/// One part of a citizen's concatenated message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFragment {
    /// The message as far as this part tells it (`text` is the part's text).
    pub message: NewMessage,
    /// The concatenation reference (8- or 16-bit).
    pub reference: u16,
    /// How many parts the message has.
    pub total: u8,
    /// This part's number, 1-based.
    pub part: u8,
    /// The part's lasting identity, when its channel gives one
    /// ([`crate::channel::IncomingSms::fingerprint`]).
    pub fingerprint: Option<String>,
}

/// What recording a part did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FragmentRecorded {
    /// Kept; the message waits for its other parts. The id is the part's own.
    Waiting(i64),
    /// This part was already recorded, or is a copy of the same part (number
    /// and text) of a message joined within the redelivery window.
    Duplicate,
    /// The last part: the message is joined and recorded.
    Joined(StoredMessage),
}

/// A delivery receipt to apply to the reply part it reports on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptUpdate {
    /// The channel it arrived on.
    pub channel: String,
    /// Every spelling of the reported id (hex and decimal); the first is the
    /// id as given.
    pub peer_ids: Vec<String>,
    /// The receipt's state (`delivered`, `undeliverable`, …).
    pub state: String,
    /// True when the state will not change any more.
    pub is_final: bool,
    /// True when the part reached the handset.
    pub success: bool,
    /// The receipt's error code, if any.
    pub error: Option<String>,
}

/// What a receipt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptApplied {
    /// It matched a part of this message's reply; the reply's state now.
    Matched {
        /// The answered message.
        message_id: i64,
        /// The reply's state after the receipt.
        reply: ReplyState,
    },
    /// No part has that id (yet): kept until one is recorded.
    Unmatched,
}

/// A reply's state in the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyState {
    /// Rendered, not yet acknowledged by the peer or SMSC.
    Queued,
    /// Acknowledged by a bound peer (listener role).
    Sent,
    /// Accepted by the carrier's SMSC (submit_sm_resp).
    Accepted,
    /// Delivered to the handset (delivery receipt).
    Delivered,
    /// Given up.
    Failed,
    /// Deliberately not answered (not a phone number, rate limited, …).
    Suppressed,
    /// Not handed to its channel within `reply_expiry_secs` of the message:
    /// never sent (the status would be stale).
    Expired,
}

impl ReplyState {
    /// Every state (the console has words for each).
    pub const ALL: [ReplyState; 7] = [
        ReplyState::Queued,
        ReplyState::Sent,
        ReplyState::Accepted,
        ReplyState::Delivered,
        ReplyState::Failed,
        ReplyState::Suppressed,
        ReplyState::Expired,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ReplyState::Queued => "queued",
            ReplyState::Sent => "sent",
            ReplyState::Accepted => "accepted",
            ReplyState::Delivered => "delivered",
            ReplyState::Failed => "failed",
            ReplyState::Suppressed => "suppressed",
            ReplyState::Expired => "expired",
        }
    }

    /// True once the reply has been handed to the channel (sent to a
    /// peer, accepted by an SMSC, delivered): when `replies.sent_at` is set.
    fn handed_over(self) -> bool {
        matches!(
            self,
            ReplyState::Sent | ReplyState::Accepted | ReplyState::Delivered
        )
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => ReplyState::Queued,
            "sent" => ReplyState::Sent,
            "accepted" => ReplyState::Accepted,
            "delivered" => ReplyState::Delivered,
            "failed" => ReplyState::Failed,
            "suppressed" => ReplyState::Suppressed,
            "expired" => ReplyState::Expired,
            _ => return None,
        })
    }
}

/// A recorded message, as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Its id.
    pub id: i64,
    /// What was recorded.
    pub message: NewMessage,
}

/// What a reply looked up, recorded with the reply (table `reply_lookups`)
/// for the admin console's message log and statistics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupNote {
    /// The canonical dossier code found in the citizen's text.
    pub code: String,
    /// The dossier's agency, when it was found.
    pub agency: Option<String>,
    /// The dossier's procedure, when it was found.
    pub procedure: Option<String>,
    /// Where the applicant's name stands in the reply's text (character
    /// offsets, end exclusive; see [`spans_text`]); empty when it names nobody.
    pub name_spans: Vec<(usize, usize)>,
}

/// Name spans as `reply_lookups.name_spans` keeps them: `start-end`
/// joined by commas ('' for none).
pub fn spans_text(spans: &[(usize, usize)]) -> String {
    spans
        .iter()
        .map(|(start, end)| format!("{start}-{end}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Name spans read back from [`spans_text`]; `None` when the text is not
/// in that form.
pub fn spans_from_text(text: &str) -> Option<Vec<(usize, usize)>> {
    if text.is_empty() {
        return Some(Vec::new());
    }
    text.split(',')
        .map(|span| {
            let (start, end) = span.split_once('-')?;
            Some((start.parse().ok()?, end.parse().ok()?))
        })
        .collect()
}

/// A reply waiting to be sent, with where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingReply {
    /// The message it answers.
    pub message_id: i64,
    /// The channel it goes out on.
    pub channel: String,
    /// The citizen.
    pub to: Address,
    /// Our number.
    pub from: Address,
    /// The reply text.
    pub text: String,
    /// What the message earned (found, not_found, help, …).
    pub outcome: String,
    /// Tries so far.
    pub attempts: u32,
    /// True once the reply is in the journal (a fresh reply is sent first
    /// and recorded with the outcome of that first attempt).
    pub stored: bool,
    /// What the reply looked up, written with the reply when it is first
    /// stored; `None` when read back from the journal (already written).
    pub lookup: Option<LookupNote>,
}

/// Where one attempt to send a reply ended, to record in one write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    /// The state reached: sent / accepted, failed, or queued again.
    pub state: ReplyState,
    /// The channel it left on and the id the peer gave each part (accepted or sent).
    pub left_on: Option<(String, Vec<String>)>,
    /// Why the attempt failed.
    pub error: Option<String>,
    /// When to try again (queued).
    pub next_attempt_at: Option<i64>,
    /// Whether this attempt counts toward `max_attempts` (waiting for a
    /// channel to come up does not).
    pub counts: bool,
}

/// Where a reply sent one part at a time (a GSM modem) got to: its
/// parts' reference before the first leaves, then each part as it left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartRecord {
    /// The channel it leaves on.
    pub channel: String,
    /// The concatenation reference of the reply's parts.
    pub reference: u16,
    /// The part that left (1-based) and the id the channel gave it;
    /// `None` before the first part leaves.
    pub sent: Option<(u32, String)>,
}

/// How far a reply sent one part at a time had got, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedParts {
    /// The concatenation reference of its parts.
    pub reference: u16,
    /// (part, 1-based; the id the channel gave it) of each part that left.
    pub sent: Vec<(u32, String)>,
}

enum Op {
    Record(NewMessage, oneshot::Sender<Result<Recorded, JournalError>>),
    Exchange {
        message: NewMessage,
        outcome: String,
        text: String,
        state: ReplyState,
        lookup: Option<LookupNote>,
        done: oneshot::Sender<Result<Recorded, JournalError>>,
    },
    QueueReply {
        message_id: i64,
        outcome: String,
        text: String,
        state: ReplyState,
        done: oneshot::Sender<Result<(), JournalError>>,
    },
    Purge {
        cutoff: i64,
        done: oneshot::Sender<Result<u64, JournalError>>,
    },
    Update {
        message_id: i64,
        state: ReplyState,
        peer_ids: Option<String>,
        error: Option<String>,
        next_attempt_at: Option<i64>,
        done: oneshot::Sender<Result<(), JournalError>>,
    },
    Accepted {
        message_id: i64,
        channel: String,
        peer_ids: Vec<String>,
        done: oneshot::Sender<Result<(), JournalError>>,
    },
    Settle {
        message_id: i64,
        outcome: String,
        text: String,
        settlement: Settlement,
        lookup: Option<LookupNote>,
        done: oneshot::Sender<Result<(), JournalError>>,
    },
    PartSent {
        message_id: i64,
        outcome: String,
        text: String,
        lookup: Option<LookupNote>,
        part: PartRecord,
        done: oneshot::Sender<Result<(), JournalError>>,
    },
    Receipt(
        ReceiptUpdate,
        oneshot::Sender<Result<ReceiptApplied, JournalError>>,
    ),
    Fragment(
        NewFragment,
        oneshot::Sender<Result<FragmentRecorded, JournalError>>,
    ),
    JoinStale {
        received_before: i64,
        done: oneshot::Sender<Result<Vec<StoredMessage>, JournalError>>,
    },
    Expire {
        message_ids: Vec<i64>,
        done: oneshot::Sender<Result<u64, JournalError>>,
    },
    /// The peer read these messages' acknowledgements (nobody waits).
    AcksRead(Vec<i64>),
    /// Commit what came before, then stop.
    Close,
}

/// Handle to the journal; cheap to clone.
#[derive(Clone)]
pub struct Journal {
    pool: SqlitePool,
    writes: mpsc::Sender<Op>,
    /// Closed (its sender dropped) when the writer thread has ended.
    writer_exited: watch::Receiver<()>,
    settings: JournalSettings,
}

/// Current time in Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Journal {
    /// Opens (creating if needed) and migrates the journal, and starts its writer.
    pub async fn open(settings: JournalSettings) -> Result<Self, JournalError> {
        let url = settings.url.clone();
        let open_err = |source| JournalError::Open {
            url: url.clone(),
            source,
        };
        if is_in_memory(&url) {
            // The writer has a connection of its own, which would need
            // SQLite's shared cache (table locks that a busy timeout does not
            // wait out) to see an in-memory database; nothing opens one
            // anyway: a journal exists to outlive the process.
            return Err(open_err(sqlx::Error::Configuration(
                "the journal must be a file: an in-memory journal is not supported".into(),
            )));
        }
        let synchronous = match settings.synchronous {
            Durability::Full => SqliteSynchronous::Full,
            Durability::Normal => SqliteSynchronous::Normal,
            Durability::Off => SqliteSynchronous::Off,
        };
        let options = SqliteConnectOptions::from_str(&url)
            .map_err(open_err)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(synchronous)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let filename = options.get_filename().to_path_buf();
        let checkpoint_path = filename.clone();
        if let Some(dir) = filename.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| open_err(sqlx::Error::Io(e)))?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            // A local file's connection does not drop: no ping (one more
            // round trip to the connection's thread) before every query.
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .map_err(open_err)?;
        sqlx::migrate!("./migrations/journal").run(&pool).await?;
        // The writer has a connection and a thread of its own, so that
        // readers (recovery, abuse control) never make a commit wait for a
        // pooled connection, and a batch's statements never leave its thread.
        let (writes, queue) = mpsc::channel(4096);
        let (ready, opened) = oneshot::channel();
        let (exit_signal, writer_exited) = watch::channel(());
        let window_ms = (settings.redelivery_window_secs as i64).saturating_mul(1000);
        let durability = settings.synchronous;
        std::thread::Builder::new()
            .name("journal-writer".to_owned())
            .spawn(move || {
                // Dropped last, when the thread ends (even by a panic):
                // `close` waits for it.
                let _exit_signal = exit_signal;
                match open_writer(&filename, durability) {
                    Ok(writer) => {
                        let _ = ready.send(Ok(()));
                        write_loop(writer, queue, window_ms);
                    }
                    Err(error) => {
                        let _ = ready.send(Err(error));
                    }
                }
            })
            .map_err(|e| open_err(sqlx::Error::Io(e)))?;
        match opened.await {
            Ok(Ok(())) => {}
            Ok(Err(source)) => return Err(JournalError::OpenWriter { url, source }),
            Err(_) => return Err(JournalError::Stopped),
        }
        let writer_alive = writer_exited.clone();
        std::thread::Builder::new()
            .name("journal-checkpoint".to_owned())
            .spawn(move || checkpoint_loop(&checkpoint_path, writer_alive))
            .map_err(|e| open_err(sqlx::Error::Io(e)))?;
        Ok(Journal {
            pool,
            writes,
            writer_exited,
            settings,
        })
    }

    /// The journal's connection pool (for tables of other rooms that must survive restarts).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The settings in force.
    pub fn settings(&self) -> &JournalSettings {
        &self.settings
    }

    /// Records a message durably; returns when it is on disk (per `synchronous`).
    ///
    /// A copy of a recorded message is a redelivery ([`Recorded::Duplicate`]):
    /// with a lasting `peer_ref` (a modem's fingerprint), any message with
    /// that `peer_ref` on the channel; otherwise a message on the same
    /// channel with the same sender, text and `peer_ref` (both without one,
    /// or the same `user_message_reference`), received within
    /// `redelivery_window_secs` before it, whose acknowledgement is not
    /// known to have been read ([`Journal::acknowledgements_read`]). A copy
    /// of a message whose acknowledgement the peer read is a new message:
    /// the citizen asked again.
    pub async fn record(&self, message: NewMessage) -> Result<Recorded, JournalError> {
        self.call(|done| Op::Record(message, done)).await
    }

    /// Notes that the peer read the acknowledgements of these messages, so
    /// that their copies are new messages from now on. Returns once the
    /// note is queued: anything recorded after it sees it. A note lost to a
    /// crash only makes a later copy count as a redelivery.
    pub async fn acknowledgements_read(&self, message_ids: Vec<i64>) -> Result<(), JournalError> {
        if message_ids.is_empty() {
            return Ok(());
        }
        self.submit(Op::AcksRead(message_ids)).await
    }

    /// Records a message that was answered on the spot (a USSD turn, a
    /// Kannel get-url request: the peer cannot wait for the outbox) with its
    /// answer and `state` (sent, or suppressed), in one write, with what the
    /// answer looked up, if anything (`lookup`). A sent answer's `sent_at` is
    /// the time of the write. The outbox never sees it; the message log does.
    pub async fn record_exchange(
        &self,
        message: NewMessage,
        outcome: &str,
        text: &str,
        state: ReplyState,
        lookup: Option<LookupNote>,
    ) -> Result<Recorded, JournalError> {
        self.call(|done| Op::Exchange {
            message,
            outcome: outcome.to_owned(),
            text: text.to_owned(),
            state,
            lookup,
            done,
        })
        .await
    }

    /// Stores the reply a message earned (`Queued`), or that it gets none
    /// (`Suppressed`, with the reason as outcome).
    pub async fn queue_reply(
        &self,
        message_id: i64,
        outcome: &str,
        text: &str,
        state: ReplyState,
    ) -> Result<(), JournalError> {
        self.call(|done| Op::QueueReply {
            message_id,
            outcome: outcome.to_owned(),
            text: text.to_owned(),
            state,
            done,
        })
        .await
    }

    /// Records the outcome of a send: a final state with the peer's ids, or a
    /// retry at `next_attempt_at` with the error.
    pub async fn update_reply(
        &self,
        message_id: i64,
        state: ReplyState,
        peer_ids: Option<String>,
        error: Option<String>,
        next_attempt_at: Option<i64>,
    ) -> Result<(), JournalError> {
        self.call(|done| Op::Update {
            message_id,
            state,
            peer_ids,
            error,
            next_attempt_at,
            done,
        })
        .await
    }

    /// Records that the carrier accepted every part of a reply, with the id
    /// it gave each (in part order) on `channel`; receipts that came first
    /// are applied now.
    pub async fn reply_accepted(
        &self,
        message_id: i64,
        channel: &str,
        peer_ids: Vec<String>,
    ) -> Result<(), JournalError> {
        self.call(|done| Op::Accepted {
            message_id,
            channel: channel.to_owned(),
            peer_ids,
            done,
        })
        .await
    }

    /// Records how an attempt to send `reply` ended, in one write: the reply
    /// row is created if the reply was sent before it was ever stored (the
    /// fast path: computed, sent, then recorded once), or updated while it is
    /// still queued. Parts accepted by a carrier are recorded for receipts.
    /// The reply's lookup ([`PendingReply::lookup`]) is written with it, and
    /// `sent_at` the first time the reply is sent or accepted.
    pub async fn settle_reply(
        &self,
        reply: &PendingReply,
        settlement: Settlement,
    ) -> Result<(), JournalError> {
        self.call(|done| Op::Settle {
            message_id: reply.message_id,
            outcome: reply.outcome.clone(),
            text: reply.text.clone(),
            settlement,
            lookup: reply.lookup.clone(),
            done,
        })
        .await
    }

    /// Records how far `reply` got on a channel that sends one part at a
    /// time (a GSM modem): before its first part leaves, and after each
    /// part before the next. The reply is stored (still queued, with its
    /// lookup) if it was not, with the reference of its parts, and the part
    /// that left, if any, in `reply_parts` (receipts that came first are
    /// applied). After a crash the outbox resumes it from
    /// [`Journal::recorded_parts`].
    pub async fn record_part_sent(
        &self,
        reply: &PendingReply,
        part: PartRecord,
    ) -> Result<(), JournalError> {
        self.call(|done| Op::PartSent {
            message_id: reply.message_id,
            outcome: reply.outcome.clone(),
            text: reply.text.clone(),
            lookup: reply.lookup.clone(),
            part,
            done,
        })
        .await
    }

    /// The parts of a still queued reply recorded by
    /// [`Journal::record_part_sent`]; `None` when it has none.
    pub async fn recorded_parts(
        &self,
        message_id: i64,
    ) -> Result<Option<RecordedParts>, JournalError> {
        let reference: Option<i64> = sqlx::query_scalar(
            "SELECT part_reference FROM replies WHERE message_id = ? AND state = 'queued'",
        )
        .bind(message_id)
        .fetch_optional(&self.pool)
        .await?
        .flatten();
        let Some(reference) = reference else {
            return Ok(None);
        };
        let sent: Vec<(i64, String)> = sqlx::query_as(
            "SELECT part, peer_id FROM reply_parts WHERE message_id = ? ORDER BY part",
        )
        .bind(message_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(Some(RecordedParts {
            reference: reference as u16,
            sent: sent
                .into_iter()
                .map(|(part, id)| (part as u32, id))
                .collect(),
        }))
    }

    /// Applies a delivery receipt to the reply part it reports on.
    pub async fn apply_receipt(
        &self,
        receipt: ReceiptUpdate,
    ) -> Result<ReceiptApplied, JournalError> {
        self.call(|done| Op::Receipt(receipt, done)).await
    }

    /// Records one part of a concatenated message durably; joins the
    /// message when it is the last part missing.
    pub async fn record_fragment(
        &self,
        fragment: NewFragment,
    ) -> Result<FragmentRecorded, JournalError> {
        self.call(|done| Op::Fragment(fragment, done)).await
    }

    /// Joins every concatenated message whose first part arrived before
    /// `received_before` (Unix ms) from the parts it has, missing ones
    /// left out, and records it: the citizen is answered anyway.
    pub async fn join_stale_fragments(
        &self,
        received_before: i64,
    ) -> Result<Vec<StoredMessage>, JournalError> {
        self.call(|done| Op::JoinStale {
            received_before,
            done,
        })
        .await
    }

    /// The receipt states of a reply's parts, in part order.
    pub async fn part_states(&self, message_id: i64) -> Result<Vec<String>, JournalError> {
        Ok(
            sqlx::query_scalar("SELECT state FROM reply_parts WHERE message_id = ? ORDER BY part")
                .bind(message_id)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Hands the writer the operation `op` builds around its answer channel
    /// and waits for the answer.
    async fn call<T>(
        &self,
        op: impl FnOnce(oneshot::Sender<Result<T, JournalError>>) -> Op,
    ) -> Result<T, JournalError> {
        let (done, result) = oneshot::channel();
        self.submit(op(done)).await?;
        result.await.map_err(|_| JournalError::Stopped)?
    }

    async fn submit(&self, op: Op) -> Result<(), JournalError> {
        self.writes
            .send(op)
            .await
            .map_err(|_| JournalError::Stopped)
    }

    /// Messages recorded but not yet given a reply (after a crash), oldest first.
    pub async fn unanswered(&self) -> Result<Vec<StoredMessage>, JournalError> {
        let rows = sqlx::query(
            "SELECT m.* FROM messages m LEFT JOIN replies r ON r.message_id = m.id \
             WHERE r.message_id IS NULL AND m.purged = 0 ORDER BY m.id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(row_to_message).collect()
    }

    /// Queued replies due at `now` (Unix ms) on `channel` (or every channel), oldest first.
    pub async fn due_replies(
        &self,
        now: i64,
        channel: Option<&str>,
        limit: i64,
    ) -> Result<Vec<PendingReply>, JournalError> {
        let rows = sqlx::query(
            "SELECT r.message_id, r.text AS reply_text, r.outcome, r.attempts, m.channel, m.sender, \
             m.sender_ton, m.sender_npi, m.recipient, m.recipient_ton, m.recipient_npi \
             FROM replies r JOIN messages m ON m.id = r.message_id \
             WHERE r.state = 'queued' AND r.next_attempt_at <= ? AND (? IS NULL OR m.channel = ?) \
             ORDER BY r.message_id LIMIT ?",
        )
        .bind(now)
        .bind(channel)
        .bind(channel)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(PendingReply {
                    message_id: row.try_get("message_id")?,
                    channel: row.try_get("channel")?,
                    to: address(row, "sender")?,
                    from: address(row, "recipient")?,
                    text: row.try_get("reply_text")?,
                    outcome: row.try_get("outcome")?,
                    attempts: row.try_get::<i64, _>("attempts")? as u32,
                    stored: true,
                    lookup: None,
                })
            })
            .collect()
    }

    /// The state of a message's reply, if it has one.
    pub async fn reply_state(&self, message_id: i64) -> Result<Option<ReplyState>, JournalError> {
        let state: Option<String> =
            sqlx::query_scalar("SELECT state FROM replies WHERE message_id = ?")
                .bind(message_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(state.as_deref().and_then(ReplyState::parse))
    }

    /// Erases texts and phone numbers of messages received before `cutoff`
    /// (Unix ms), keeping channel, times, outcomes and states for statistics.
    /// The dossier code a reply looked up goes with the text (`reply_lookups.code`
    /// set to ''); the agency and procedure it found, which name no one, stay.
    /// Messages whose reply is still queued are kept whole. Returns how many
    /// messages were purged. Runs on the writer like every other write.
    pub async fn purge_before(&self, cutoff: i64) -> Result<u64, JournalError> {
        self.call(|done| Op::Purge { cutoff, done }).await
    }

    /// Queued replies whose message was received before `received_before`
    /// (Unix ms): those [`Journal::expire_replies`] should take, as
    /// (message id, citizen's address), oldest first.
    pub async fn overdue_replies(
        &self,
        received_before: i64,
    ) -> Result<Vec<(i64, String)>, JournalError> {
        Ok(sqlx::query_as(
            "SELECT r.message_id, m.sender FROM replies r JOIN messages m ON m.id = r.message_id \
             WHERE r.state = 'queued' AND m.received_at < ? ORDER BY r.message_id",
        )
        .bind(received_before)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Records that the messages `message_ids` will get no reply because it
    /// would come too late (`reply_expiry_secs`): a queued reply becomes
    /// `expired` (its text stays until the retention purge), a message
    /// without a reply gets an `expired` one. Replies in any other state
    /// are left alone. Returns how many replies expired.
    pub async fn expire_replies(&self, message_ids: Vec<i64>) -> Result<u64, JournalError> {
        if message_ids.is_empty() {
            return Ok(0);
        }
        self.call(|done| Op::Expire { message_ids, done }).await
    }

    /// Stops the writer once it has committed and answered everything
    /// submitted before, waits for its thread to end (without blocking the
    /// runtime), then closes the read pool. Writes submitted afterwards, by
    /// any handle, fail with [`JournalError::Stopped`].
    pub async fn close(&self) {
        // Fails only when the writer has already stopped.
        let _ = self.writes.send(Op::Close).await;
        let mut exited = self.writer_exited.clone();
        // Never sent to: returns once the thread dropped the sender.
        while exited.changed().await.is_ok() {}
        self.pool.close().await;
    }
}

/// The address stored in the columns `<column>`, `<column>_ton`, `<column>_npi`.
fn address(row: &sqlx::sqlite::SqliteRow, column: &str) -> Result<Address, sqlx::Error> {
    Ok(Address {
        addr: row.try_get(column)?,
        ton: row.try_get::<i64, _>(format!("{column}_ton").as_str())? as u8,
        npi: row.try_get::<i64, _>(format!("{column}_npi").as_str())? as u8,
    })
}

fn row_to_message(row: &sqlx::sqlite::SqliteRow) -> Result<StoredMessage, JournalError> {
    Ok(StoredMessage {
        id: row.try_get("id")?,
        message: NewMessage {
            channel: row.try_get("channel")?,
            peer_ref: row.try_get("peer_ref")?,
            peer_ref_lasting: false,
            sender: address(row, "sender")?,
            recipient: address(row, "recipient")?,
            text: row.try_get("text")?,
            received_at: row.try_get("received_at")?,
        },
    })
}

/// True for `sqlite::memory:` and `…?mode=memory` URLs.
fn is_in_memory(url: &str) -> bool {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let (database, params) = rest.split_once('?').unwrap_or((rest, ""));
    database == ":memory:" || params.split('&').any(|p| p == "mode=memory")
}

/// Statements the writer keeps prepared (it uses about 35).
const WRITER_STATEMENT_CACHE: usize = 64;

/// The writer's state beside its connection.
struct Writer {
    conn: Connection,
    unmatched: UnmatchedReceipts,
}

/// Whether `unmatched_receipts` may hold rows, so that recording a reply's
/// parts can skip looking for receipts that overtook them when none can
/// exist (the common case). Only the writer writes that table.
struct UnmatchedReceipts {
    /// False only when the table is known to be empty.
    may_exist: bool,
    /// Set when this batch deleted some (matched, or purged): the flag is
    /// recomputed once the batch has ended.
    recheck: bool,
}

/// Opens the writer's connection to the journal file sqlx created and
/// migrated, with the pool's pragmas.
fn open_writer(path: &std::path::Path, durability: Durability) -> rusqlite::Result<Writer> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0))?;
    let synchronous = match durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
        Durability::Off => "OFF",
    };
    conn.pragma_update(None, "synchronous", synchronous)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Checkpoints run on their own thread (`checkpoint_loop`), so a commit
    // never pays for copying the WAL back into the database file.
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    conn.set_prepared_statement_cache_capacity(WRITER_STATEMENT_CACHE);
    let may_exist = unmatched_receipts_exist(&conn)?;
    Ok(Writer {
        conn,
        unmatched: UnmatchedReceipts {
            may_exist,
            recheck: false,
        },
    })
}

/// How often the WAL is copied back into the journal file.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

/// Copies the WAL back into the journal file every second (a passive
/// checkpoint: it never blocks the writer or readers), until the writer
/// thread has ended. Taking this off the commit path keeps a long
/// checkpoint from stalling the acknowledgement of messages.
fn checkpoint_loop(path: &std::path::Path, writer_alive: watch::Receiver<()>) {
    let conn = match Connection::open(path) {
        Ok(conn) => conn,
        Err(error) => {
            tracing::error!(%error, "cannot open the journal for checkpoints; the WAL will grow until restart");
            return;
        }
    };
    let _ = conn.busy_timeout(Duration::from_secs(5));
    loop {
        std::thread::sleep(CHECKPOINT_INTERVAL);
        if writer_alive.has_changed().is_err() {
            break;
        }
        if let Err(error) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(%error, "journal checkpoint failed; retried in a second");
        }
    }
}

fn unmatched_receipts_exist(conn: &Connection) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM unmatched_receipts)")?
        .query_row([], |row| row.get(0))
}

/// The single writer, on its own thread: takes every queued operation,
/// applies them in one transaction, commits, then answers each. Ends when
/// every handle is gone or after a [`Op::Close`].
fn write_loop(mut writer: Writer, mut queue: mpsc::Receiver<Op>, window_ms: i64) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut closing = false;
    while !closing {
        let Some(first) = queue.blocking_recv() else {
            break;
        };
        match first {
            Op::Close => closing = true,
            op => batch.push(op),
        }
        while !closing && batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(Op::Close) => closing = true,
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            continue;
        }
        let applied = writer.apply(&batch, window_ms);
        writer.settle_unmatched(applied.is_ok());
        match applied {
            Ok(results) => {
                for (op, result) in batch.drain(..).zip(results) {
                    answer(op, result);
                }
            }
            Err(error) => {
                tracing::error!(%error, operations = batch.len(), "journal commit failed; the messages are not acknowledged");
                for op in batch.drain(..) {
                    answer(op, Err(duplicate(&error)));
                }
            }
        }
    }
    // Operations still queued (sent after a close) are dropped with the
    // queue: their callers get `Stopped`.
}

/// A copy of a commit's error for each operation of the batch
/// (`rusqlite::Error` is not `Clone`): SQLite's codes and message are kept.
fn duplicate(error: &rusqlite::Error) -> rusqlite::Error {
    match error {
        rusqlite::Error::SqliteFailure(code, message) => {
            rusqlite::Error::SqliteFailure(*code, message.clone())
        }
        other => rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(other.to_string()),
        ),
    }
}

/// What one operation produced inside the batch.
enum Produced {
    Recorded(Recorded),
    Purged(u64),
    Expired(u64),
    Receipt(ReceiptApplied),
    Fragment(FragmentRecorded),
    Joined(Vec<StoredMessage>),
    Done,
}

type OpResult = Result<Produced, rusqlite::Error>;

fn answer(op: Op, result: OpResult) {
    match op {
        Op::Record(_, done) | Op::Exchange { done, .. } => {
            let _ = done.send(match result {
                Ok(Produced::Recorded(r)) => Ok(r),
                Ok(_) => Err(JournalError::Stopped),
                Err(e) => Err(JournalError::Write(e)),
            });
        }
        Op::Purge { done, .. } | Op::Expire { done, .. } => {
            let _ = done.send(match result {
                Ok(Produced::Purged(n) | Produced::Expired(n)) => Ok(n),
                Ok(_) => Ok(0),
                Err(e) => Err(JournalError::Write(e)),
            });
        }
        Op::QueueReply { done, .. }
        | Op::Update { done, .. }
        | Op::Accepted { done, .. }
        | Op::Settle { done, .. }
        | Op::PartSent { done, .. } => {
            let _ = done.send(result.map(|_| ()).map_err(JournalError::Write));
        }
        Op::Receipt(_, done) => {
            let _ = done.send(match result {
                Ok(Produced::Receipt(r)) => Ok(r),
                Ok(_) => Err(JournalError::Stopped),
                Err(e) => Err(JournalError::Write(e)),
            });
        }
        Op::Fragment(_, done) => {
            let _ = done.send(match result {
                Ok(Produced::Fragment(r)) => Ok(r),
                Ok(_) => Err(JournalError::Stopped),
                Err(e) => Err(JournalError::Write(e)),
            });
        }
        Op::JoinStale { done, .. } => {
            let _ = done.send(match result {
                Ok(Produced::Joined(r)) => Ok(r),
                Ok(_) => Ok(Vec::new()),
                Err(e) => Err(JournalError::Write(e)),
            });
        }
        Op::AcksRead(ids) => {
            if let Err(error) = result {
                tracing::warn!(%error, messages = ids.len(), "cannot note acknowledgements read; copies of these messages stay redeliveries");
            }
        }
        Op::Close => {}
    }
}

impl Writer {
    /// Applies a batch in one transaction and commits it. An operation's
    /// own failure is its result (the others still commit); a failure to
    /// begin or commit is every operation's.
    fn apply(&mut self, batch: &[Op], window_ms: i64) -> rusqlite::Result<Vec<OpResult>> {
        // IMMEDIATE: take the write lock up front, so the reads inside (redelivery
        // checks) can never be invalidated by another writer's commit.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let unmatched = &mut self.unmatched;
        let mut results = Vec::with_capacity(batch.len());
        let now = now_ms();
        for op in batch {
            let result = match op {
                Op::Record(m, _) => record(&tx, m, window_ms).map(Produced::Recorded),
                Op::Exchange {
                    message,
                    outcome,
                    text,
                    state,
                    lookup,
                    ..
                } => record_exchange(
                    &tx,
                    message,
                    (outcome, text, *state),
                    lookup.as_ref(),
                    window_ms,
                    now,
                )
                .map(Produced::Recorded),
                Op::Purge { cutoff, .. } => {
                    unmatched.recheck = true;
                    purge(&tx, *cutoff).map(Produced::Purged)
                }
                Op::Accepted {
                    message_id,
                    channel,
                    peer_ids,
                    ..
                } => accepted(&tx, unmatched, *message_id, channel, peer_ids, now)
                    .map(|_| Produced::Done),
                Op::Settle {
                    message_id,
                    outcome,
                    text,
                    settlement,
                    lookup,
                    ..
                } => settle(
                    &tx,
                    unmatched,
                    *message_id,
                    (outcome, text),
                    settlement,
                    lookup.as_ref(),
                    now,
                )
                .map(|_| Produced::Done),
                Op::PartSent {
                    message_id,
                    outcome,
                    text,
                    lookup,
                    part,
                    ..
                } => part_sent(
                    &tx,
                    unmatched,
                    *message_id,
                    (outcome, text),
                    lookup.as_ref(),
                    part,
                    now,
                )
                .map(|_| Produced::Done),
                Op::Receipt(receipt, _) => {
                    apply_receipt(&tx, unmatched, receipt, now).map(Produced::Receipt)
                }
                Op::Fragment(fragment, _) => {
                    record_fragment(&tx, fragment, window_ms, now).map(Produced::Fragment)
                }
                Op::JoinStale {
                    received_before, ..
                } => join_stale(&tx, *received_before, window_ms, now).map(Produced::Joined),
                Op::Expire { message_ids, .. } => {
                    expire(&tx, message_ids, now).map(Produced::Expired)
                }
                Op::QueueReply {
                    message_id,
                    outcome,
                    text,
                    state,
                    ..
                } => tx
                    .prepare_cached(
                        "INSERT INTO replies (message_id, outcome, text, state, next_attempt_at, created_at, updated_at, sent_at) \
                         VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (message_id) DO NOTHING",
                    )
                    .and_then(|mut statement| {
                        statement.execute(params![
                            message_id,
                            outcome,
                            text,
                            state.as_str(),
                            now,
                            now,
                            now,
                            state.handed_over().then_some(now)
                        ])
                    })
                    .map(|_| Produced::Done),
                Op::Update {
                    message_id,
                    state,
                    peer_ids,
                    error,
                    next_attempt_at,
                    ..
                } => tx
                    .prepare_cached(
                        "UPDATE replies SET state = ?, peer_ids = COALESCE(?, peer_ids), last_error = ?, \
                         attempts = attempts + 1, next_attempt_at = COALESCE(?, next_attempt_at), updated_at = ?, \
                         sent_at = COALESCE(sent_at, ?) WHERE message_id = ?",
                    )
                    .and_then(|mut statement| {
                        statement.execute(params![
                            state.as_str(),
                            peer_ids,
                            error,
                            next_attempt_at,
                            now,
                            state.handed_over().then_some(now),
                            message_id
                        ])
                    })
                    .map(|_| Produced::Done),
                Op::AcksRead(ids) => acks_read(&tx, ids, now).map(|_| Produced::Done),
                Op::Close => Ok(Produced::Done),
            };
            results.push(result);
        }
        tx.commit()?;
        Ok(results)
    }

    /// Brings the "unmatched receipts may exist" flag up to date after a
    /// batch: recounted when the batch deleted some and committed, or when
    /// it rolled back (the rows it deleted are back).
    fn settle_unmatched(&mut self, committed: bool) {
        if self.unmatched.recheck || !committed {
            self.unmatched.recheck = false;
            self.unmatched.may_exist = unmatched_receipts_exist(&self.conn).unwrap_or(true);
        }
    }
}

/// A peer id as stored: trimmed, lowercased, leading zeros stripped.
pub fn canonical_peer_id(id: &str) -> String {
    let id = id.trim().to_ascii_lowercase();
    let stripped = id.trim_start_matches('0');
    if stripped.is_empty() && !id.is_empty() {
        "0".to_owned()
    } else {
        stripped.to_owned()
    }
}

/// Records what a reply looked up (once: a reply's first write carries it).
fn note_lookup(tx: &Connection, message_id: i64, lookup: &LookupNote) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO reply_lookups (message_id, code, agency, procedure, name_spans) \
         VALUES (?, ?, ?, ?, ?) ON CONFLICT (message_id) DO NOTHING",
    )?
    .execute(params![
        message_id,
        lookup.code,
        lookup.agency,
        lookup.procedure,
        spans_text(&lookup.name_spans)
    ])?;
    Ok(())
}

fn settle(
    tx: &Connection,
    unmatched: &mut UnmatchedReceipts,
    message_id: i64,
    (outcome, text): (&str, &str),
    settlement: &Settlement,
    lookup: Option<&LookupNote>,
    now: i64,
) -> rusqlite::Result<()> {
    let peer_ids = settlement.left_on.as_ref().map(|(_, ids)| ids.join(" "));
    tx.prepare_cached(
        "INSERT INTO replies (message_id, outcome, text, state, attempts, next_attempt_at, \
         last_error, peer_ids, created_at, updated_at, sent_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (message_id) DO UPDATE SET state = excluded.state, \
         attempts = replies.attempts + excluded.attempts, next_attempt_at = excluded.next_attempt_at, \
         last_error = excluded.last_error, peer_ids = coalesce(excluded.peer_ids, replies.peer_ids), \
         updated_at = excluded.updated_at, sent_at = coalesce(replies.sent_at, excluded.sent_at) \
         WHERE replies.state = 'queued'",
    )?
    .execute(params![
        message_id,
        outcome,
        text,
        settlement.state.as_str(),
        i64::from(settlement.counts),
        settlement.next_attempt_at.unwrap_or(now),
        settlement.error,
        peer_ids,
        now,
        now,
        settlement.state.handed_over().then_some(now)
    ])?;
    if let Some(lookup) = lookup {
        note_lookup(tx, message_id, lookup)?;
    }
    if let (ReplyState::Accepted, Some((channel, ids))) = (settlement.state, &settlement.left_on) {
        record_parts(tx, unmatched, message_id, channel, ids, now)?;
    }
    Ok(())
}

fn accepted(
    tx: &Connection,
    unmatched: &mut UnmatchedReceipts,
    message_id: i64,
    channel: &str,
    peer_ids: &[String],
    now: i64,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "UPDATE replies SET state = 'accepted', peer_ids = ?, last_error = NULL, \
         attempts = attempts + 1, updated_at = ?, sent_at = coalesce(sent_at, ?) \
         WHERE message_id = ? AND state = 'queued'",
    )?
    .execute(params![peer_ids.join(" "), now, now, message_id])?;
    record_parts(tx, unmatched, message_id, channel, peer_ids, now)
}

/// Records the parts of a reply accepted by a carrier, applying receipts
/// that arrived before them.
fn record_parts(
    tx: &Connection,
    unmatched: &mut UnmatchedReceipts,
    message_id: i64,
    channel: &str,
    peer_ids: &[String],
    now: i64,
) -> rusqlite::Result<()> {
    for (index, id) in peer_ids.iter().enumerate() {
        record_part(
            tx,
            unmatched,
            message_id,
            index as i64 + 1,
            channel,
            id,
            now,
        )?;
    }
    Ok(())
}

/// A reply sent one part at a time: the reply row (queued, with the
/// reference of its parts) and the part that left, if one did.
fn part_sent(
    tx: &Connection,
    unmatched: &mut UnmatchedReceipts,
    message_id: i64,
    (outcome, text): (&str, &str),
    lookup: Option<&LookupNote>,
    part: &PartRecord,
    now: i64,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO replies (message_id, outcome, text, state, attempts, next_attempt_at, \
         created_at, updated_at, part_reference) VALUES (?, ?, ?, 'queued', 0, ?, ?, ?, ?) \
         ON CONFLICT (message_id) DO UPDATE SET part_reference = excluded.part_reference, \
         updated_at = excluded.updated_at WHERE replies.state = 'queued'",
    )?
    .execute(params![
        message_id,
        outcome,
        text,
        now,
        now,
        now,
        i64::from(part.reference)
    ])?;
    if let Some(lookup) = lookup {
        note_lookup(tx, message_id, lookup)?;
    }
    match &part.sent {
        Some((number, id)) => record_part(
            tx,
            unmatched,
            message_id,
            i64::from(*number),
            &part.channel,
            id,
            now,
        ),
        None => Ok(()),
    }
}

/// Records part `part` (1-based) of a reply, accepted with `id` on
/// `channel`, applying a receipt that arrived before it.
fn record_part(
    tx: &Connection,
    unmatched: &mut UnmatchedReceipts,
    message_id: i64,
    part: i64,
    channel: &str,
    id: &str,
    now: i64,
) -> rusqlite::Result<()> {
    let peer_id = canonical_peer_id(id);
    tx.prepare_cached(
        "INSERT INTO reply_parts (message_id, part, channel, peer_id, state, updated_at) \
         VALUES (?, ?, ?, ?, 'accepted', ?) ON CONFLICT (message_id, part) DO NOTHING",
    )?
    .execute(params![message_id, part, channel, peer_id, now])?;
    if !unmatched.may_exist {
        return Ok(());
    }
    // A receipt that overtook the submit_sm_resp.
    let early: Option<(i64, String, i64, i64, Option<String>)> = tx
        .prepare_cached(
            "SELECT receipt, state, final, success, error FROM unmatched_receipts \
             WHERE channel = ? AND peer_id = ? ORDER BY final DESC, received_at DESC LIMIT 1",
        )?
        .query_row(params![channel, peer_id], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
            ))
        })
        .optional()?;
    if let Some((receipt, state, is_final, success, error)) = early {
        tx.prepare_cached("DELETE FROM unmatched_receipts WHERE receipt = ?")?
            .execute(params![receipt])?;
        unmatched.recheck = true;
        set_part_state(
            tx,
            message_id,
            part,
            &state,
            is_final != 0,
            success != 0,
            error.as_deref(),
            now,
        )?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn set_part_state(
    tx: &Connection,
    message_id: i64,
    part: i64,
    state: &str,
    is_final: bool,
    success: bool,
    error: Option<&str>,
    now: i64,
) -> rusqlite::Result<ReplyState> {
    let stored = if is_final && !success {
        format!("failed:{state}")
    } else if is_final {
        format!("done:{state}")
    } else {
        state.to_owned()
    };
    tx.prepare_cached(
        "UPDATE reply_parts SET state = ?, error = ?, updated_at = ? \
         WHERE message_id = ? AND part = ? AND state NOT LIKE 'done:%' AND state NOT LIKE 'failed:%'",
    )?
    .execute(params![stored, error, now, message_id, part])?;
    let (parts, done, failed): (i64, i64, i64) = tx
        .prepare_cached(
            "SELECT count(*), \
                coalesce(sum(state LIKE 'done:%'), 0), \
                coalesce(sum(state LIKE 'failed:%'), 0) \
         FROM reply_parts WHERE message_id = ?",
        )?
        .query_row(params![message_id], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })?;
    let new_state = if failed > 0 {
        Some(ReplyState::Failed)
    } else if done == parts {
        Some(ReplyState::Delivered)
    } else {
        None
    };
    if let Some(new_state) = new_state {
        let error = (new_state == ReplyState::Failed).then(|| {
            format!(
                "part {part}: {state}{}",
                error.map(|e| format!(" (err {e})")).unwrap_or_default()
            )
        });
        tx.prepare_cached(
            "UPDATE replies SET state = ?, last_error = coalesce(?, last_error), updated_at = ? \
             WHERE message_id = ? AND state = 'accepted'",
        )?
        .execute(params![new_state.as_str(), error, now, message_id])?;
    }
    let state: Option<String> = tx
        .prepare_cached("SELECT state FROM replies WHERE message_id = ?")?
        .query_row(params![message_id], |row| row.get(0))
        .optional()?;
    Ok(state
        .as_deref()
        .and_then(ReplyState::parse)
        .unwrap_or(ReplyState::Accepted))
}

fn apply_receipt(
    tx: &Connection,
    unmatched: &mut UnmatchedReceipts,
    receipt: &ReceiptUpdate,
    now: i64,
) -> rusqlite::Result<ReceiptApplied> {
    let spellings: Vec<String> = receipt
        .peer_ids
        .iter()
        .map(|id| canonical_peer_id(id))
        .collect();
    let mut found: Option<(i64, i64)> = None;
    for id in &spellings {
        let hit: Option<(i64, i64)> = tx
            .prepare_cached(
                "SELECT message_id, part FROM reply_parts WHERE channel = ? AND peer_id = ? \
                 ORDER BY message_id DESC LIMIT 1",
            )?
            .query_row(params![receipt.channel, id], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .optional()?;
        if hit.is_some() {
            found = hit;
            break;
        }
    }
    let Some((message_id, part)) = found else {
        let group: i64 = tx
            .prepare_cached("SELECT coalesce(max(receipt), 0) + 1 FROM unmatched_receipts")?
            .query_row([], |row| row.get(0))?;
        for id in &spellings {
            tx.prepare_cached(
                "INSERT INTO unmatched_receipts (receipt, channel, peer_id, state, final, success, error, received_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )?
            .execute(params![
                group,
                receipt.channel,
                id,
                receipt.state,
                i64::from(receipt.is_final),
                i64::from(receipt.success),
                receipt.error,
                now
            ])?;
            unmatched.may_exist = true;
        }
        return Ok(ReceiptApplied::Unmatched);
    };
    let reply = set_part_state(
        tx,
        message_id,
        part,
        &receipt.state,
        receipt.is_final,
        receipt.success,
        receipt.error.as_deref(),
        now,
    )?;
    Ok(ReceiptApplied::Matched { message_id, reply })
}

fn record_fragment(
    tx: &Connection,
    f: &NewFragment,
    window_ms: i64,
    now: i64,
) -> rusqlite::Result<FragmentRecorded> {
    let m = &f.message;
    if let Some(fingerprint) = &f.fingerprint {
        let first_time = tx
            .prepare_cached(
                "INSERT INTO fragment_refs (channel, peer_ref, recorded_at) VALUES (?, ?, ?) \
                 ON CONFLICT DO NOTHING",
            )?
            .execute(params![m.channel, fingerprint, now])?;
        if first_time == 0 {
            return Ok(FragmentRecorded::Duplicate);
        }
    }
    // The same part (number and text) of a message joined within the
    // window is a copy: kept aside, in case a new message begins or ends
    // with the same part. Any other part starts a new message.
    let copy: bool = tx
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM joined_parts WHERE channel = ? AND sender = ? \
             AND recipient = ? AND reference = ? AND total = ? AND part = ? AND text = ? \
             AND joined_at >= ?)",
        )?
        .query_row(
            params![
                m.channel,
                m.sender.addr,
                m.recipient.addr,
                i64::from(f.reference),
                i64::from(f.total),
                i64::from(f.part),
                m.text,
                now.saturating_sub(window_ms)
            ],
            |row| row.get(0),
        )?;
    // A part that is not a copy takes the place of a copy under its number.
    let part_id: Option<i64> = tx
        .prepare_cached(
            "INSERT INTO fragments (channel, sender, sender_ton, sender_npi, recipient, recipient_ton, \
             recipient_npi, reference, total, part, text, received_at, copy) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT DO UPDATE SET sender_ton = excluded.sender_ton, sender_npi = excluded.sender_npi, \
             recipient_ton = excluded.recipient_ton, recipient_npi = excluded.recipient_npi, \
             text = excluded.text, received_at = excluded.received_at, copy = 0 \
             WHERE fragments.copy = 1 AND excluded.copy = 0 RETURNING rowid",
        )?
        .query_row(
            params![
                m.channel,
                m.sender.addr,
                i64::from(m.sender.ton),
                i64::from(m.sender.npi),
                m.recipient.addr,
                i64::from(m.recipient.ton),
                i64::from(m.recipient.npi),
                i64::from(f.reference),
                i64::from(f.total),
                i64::from(f.part),
                m.text,
                m.received_at,
                copy
            ],
            |row| row.get(0),
        )
        .optional()?;
    let Some(part_id) = part_id else {
        return Ok(FragmentRecorded::Duplicate);
    };
    let have: i64 = tx
        .prepare_cached(
            "SELECT count(*) FROM fragments WHERE channel = ? AND sender = ? AND recipient = ? \
             AND reference = ? AND total = ?",
        )?
        .query_row(
            params![
                m.channel,
                m.sender.addr,
                m.recipient.addr,
                i64::from(f.reference),
                i64::from(f.total)
            ],
            |row| row.get(0),
        )?;
    if have < i64::from(f.total) {
        return Ok(if copy {
            FragmentRecorded::Duplicate
        } else {
            FragmentRecorded::Waiting(part_id)
        });
    }
    let key = GroupKey {
        channel: m.channel.clone(),
        sender: m.sender.addr.clone(),
        recipient: m.recipient.addr.clone(),
        reference: i64::from(f.reference),
        total: i64::from(f.total),
    };
    match join_group(tx, &key, window_ms, now)? {
        Some(stored) => Ok(FragmentRecorded::Joined(stored)),
        None => Ok(FragmentRecorded::Duplicate),
    }
}

#[derive(Debug, Clone)]
struct GroupKey {
    channel: String,
    sender: String,
    recipient: String,
    reference: i64,
    total: i64,
}

/// One stored part of a concatenated message.
struct StoredFragment {
    part: i64,
    text: String,
    /// A copy of a part joined within the redelivery window.
    copy: bool,
    received_at: i64,
    sender: Address,
    recipient: Address,
}

/// The address stored in the columns `<column>`, `<column>_ton`, `<column>_npi`.
fn stored_address(row: &rusqlite::Row<'_>, column: &str) -> rusqlite::Result<Address> {
    Ok(Address {
        addr: row.get(column)?,
        ton: row.get::<_, i64>(format!("{column}_ton").as_str())? as u8,
        npi: row.get::<_, i64>(format!("{column}_npi").as_str())? as u8,
    })
}

/// Joins a group's parts (in order) into a message, records it, and
/// remembers its parts as joined. `None` when the group holds only copies
/// of parts joined before (dropped) or the joined text is a redelivery of
/// a message already recorded.
fn join_group(
    tx: &Connection,
    key: &GroupKey,
    window_ms: i64,
    now: i64,
) -> rusqlite::Result<Option<StoredMessage>> {
    let group: [&dyn rusqlite::ToSql; 5] = [
        &key.channel,
        &key.sender,
        &key.recipient,
        &key.reference,
        &key.total,
    ];
    let parts = tx
        .prepare_cached(
            "SELECT * FROM fragments WHERE channel = ? AND sender = ? AND recipient = ? \
             AND reference = ? AND total = ? ORDER BY part",
        )?
        .query_map(&group[..], |row| {
            Ok(StoredFragment {
                part: row.get("part")?,
                text: row.get("text")?,
                copy: row.get("copy")?,
                received_at: row.get("received_at")?,
                sender: stored_address(row, "sender")?,
                recipient: stored_address(row, "recipient")?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    tx.prepare_cached(
        "DELETE FROM fragments WHERE channel = ? AND sender = ? AND recipient = ? \
         AND reference = ? AND total = ?",
    )?
    .execute(&group[..])?;
    let Some(first) = parts.first() else {
        return Ok(None);
    };
    if parts.iter().all(|p| p.copy) && delivered_again(tx, key, &parts, window_ms, now)? {
        return Ok(None);
    }
    let message = NewMessage {
        channel: key.channel.clone(),
        peer_ref: None,
        peer_ref_lasting: false,
        sender: first.sender.clone(),
        recipient: first.recipient.clone(),
        text: parts.iter().map(|p| p.text.as_str()).collect(),
        received_at: parts.iter().map(|p| p.received_at).max().unwrap_or(now),
    };
    let recorded = record(tx, &message, window_ms)?;
    let id = match recorded {
        Recorded::New(id) | Recorded::Duplicate(id) => id,
    };
    let mut remember = tx.prepare_cached(
        "INSERT INTO joined_parts (channel, sender, recipient, reference, total, part, text, \
         message_id, joined_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT DO UPDATE SET text = excluded.text, joined_at = excluded.joined_at",
    )?;
    for part in &parts {
        remember.execute(params![
            key.channel,
            key.sender,
            key.recipient,
            key.reference,
            key.total,
            part.part,
            part.text,
            id,
            now
        ])?;
    }
    Ok(match recorded {
        Recorded::New(id) => Some(StoredMessage { id, message }),
        Recorded::Duplicate(_) => None,
    })
}

/// Whether `parts` (copies each) are all parts of one message joined
/// within the window (not parts of different ones).
fn delivered_again(
    tx: &Connection,
    key: &GroupKey,
    parts: &[StoredFragment],
    window_ms: i64,
    now: i64,
) -> rusqlite::Result<bool> {
    let mut of_part = tx.prepare_cached(
        "SELECT message_id FROM joined_parts WHERE channel = ? AND sender = ? AND recipient = ? \
         AND reference = ? AND total = ? AND part = ? AND text = ? AND joined_at >= ?",
    )?;
    let mut common: Option<std::collections::HashSet<i64>> = None;
    for p in parts {
        let messages = of_part
            .query_map(
                params![
                    key.channel,
                    key.sender,
                    key.recipient,
                    key.reference,
                    key.total,
                    p.part,
                    p.text,
                    now.saturating_sub(window_ms)
                ],
                |row| row.get::<_, i64>(0),
            )?
            .collect::<rusqlite::Result<std::collections::HashSet<_>>>()?;
        let left: std::collections::HashSet<i64> = match common {
            None => messages,
            Some(common) => common.intersection(&messages).copied().collect(),
        };
        if left.is_empty() {
            return Ok(false);
        }
        common = Some(left);
    }
    Ok(common.is_some())
}

fn join_stale(
    tx: &Connection,
    received_before: i64,
    window_ms: i64,
    now: i64,
) -> rusqlite::Result<Vec<StoredMessage>> {
    let groups = tx
        .prepare_cached(
            "SELECT channel, sender, recipient, reference, total FROM fragments \
             GROUP BY channel, sender, recipient, reference, total HAVING min(received_at) < ? LIMIT 1000",
        )?
        .query_map(params![received_before], |row| {
            Ok(GroupKey {
                channel: row.get(0)?,
                sender: row.get(1)?,
                recipient: row.get(2)?,
                reference: row.get(3)?,
                total: row.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut joined = Vec::new();
    for key in groups {
        if let Some(stored) = join_group(tx, &key, window_ms, now)? {
            joined.push(stored);
        }
    }
    tx.prepare_cached("DELETE FROM joined_parts WHERE joined_at < ?")?
        .execute(params![now.saturating_sub(window_ms)])?;
    Ok(joined)
}

fn purge(tx: &Connection, cutoff: i64) -> rusqlite::Result<u64> {
    // Receipts for ids never given (or long forgotten) go with the retention.
    tx.prepare_cached("DELETE FROM unmatched_receipts WHERE received_at < ?")?
        .execute(params![cutoff])?;
    tx.prepare_cached("DELETE FROM fragment_refs WHERE recorded_at < ?")?
        .execute(params![cutoff])?;
    tx.prepare_cached(
        "UPDATE replies SET text = '' WHERE message_id IN \
         (SELECT id FROM messages WHERE received_at < ? AND purged = 0) \
         AND state <> 'queued'",
    )?
    .execute(params![cutoff])?;
    // The code was part of the text; agency and procedure name no one.
    tx.prepare_cached(
        "UPDATE reply_lookups SET code = '' WHERE message_id IN \
         (SELECT m.id FROM messages m JOIN replies r ON r.message_id = m.id \
          WHERE m.received_at < ? AND m.purged = 0 AND r.state <> 'queued')",
    )?
    .execute(params![cutoff])?;
    Ok(tx
        .prepare_cached(
            "UPDATE messages SET text = '', sender = '', recipient = '', peer_ref = NULL, purged = 1 \
             WHERE received_at < ? AND purged = 0 \
             AND NOT EXISTS (SELECT 1 FROM replies r WHERE r.message_id = messages.id AND r.state = 'queued')",
        )?
        .execute(params![cutoff])? as u64)
}

/// Expires the replies to `message_ids` (see [`Journal::expire_replies`]).
fn expire(tx: &Connection, message_ids: &[i64], now: i64) -> rusqlite::Result<u64> {
    let mut statement = tx.prepare_cached(
        "INSERT INTO replies (message_id, outcome, text, state, next_attempt_at, last_error, \
         created_at, updated_at) VALUES (?1, 'expired', '', 'expired', ?2, ?3, ?2, ?2) \
         ON CONFLICT (message_id) DO UPDATE SET state = 'expired', last_error = excluded.last_error, \
         updated_at = excluded.updated_at WHERE replies.state = 'queued'",
    )?;
    let mut expired = 0;
    for id in message_ids {
        expired += statement.execute(params![id, now, "not sent within reply_expiry_secs"])? as u64;
    }
    Ok(expired)
}

fn record_exchange(
    tx: &Connection,
    message: &NewMessage,
    (outcome, text, state): (&str, &str, ReplyState),
    lookup: Option<&LookupNote>,
    window_ms: i64,
    now: i64,
) -> rusqlite::Result<Recorded> {
    let recorded = record(tx, message, window_ms)?;
    if let Recorded::New(id) = recorded {
        // Answered on the spot: nothing of it can come again as a
        // redelivery, so the same text later is the citizen asking again.
        acks_read(tx, &[id], now)?;
        tx.prepare_cached(
            "INSERT INTO replies (message_id, outcome, text, state, attempts, next_attempt_at, \
             created_at, updated_at, sent_at) VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?) \
             ON CONFLICT (message_id) DO NOTHING",
        )?
        .execute(params![
            id,
            outcome,
            text,
            state.as_str(),
            now,
            now,
            now,
            state.handed_over().then_some(now)
        ])?;
        if let Some(lookup) = lookup {
            note_lookup(tx, id, lookup)?;
        }
    }
    Ok(recorded)
}

/// Marks acknowledgements as read (the first time only).
fn acks_read(tx: &Connection, ids: &[i64], now: i64) -> rusqlite::Result<()> {
    let mut statement = tx.prepare_cached(
        "UPDATE messages SET ack_read_at = ? WHERE id = ? AND ack_read_at IS NULL",
    )?;
    for id in ids {
        statement.execute(params![now, id])?;
    }
    Ok(())
}

/// The rule of [`Journal::record`].
fn record(tx: &Connection, m: &NewMessage, window_ms: i64) -> rusqlite::Result<Recorded> {
    let existing: Option<i64> = if let (Some(peer_ref), true) = (&m.peer_ref, m.peer_ref_lasting) {
        tx.prepare_cached("SELECT id FROM messages WHERE channel = ? AND peer_ref = ? LIMIT 1")?
            .query_row(params![m.channel, peer_ref], |row| row.get(0))
            .optional()?
    } else {
        // The same message (text included: peers reuse their references),
        // recently, whose acknowledgement the peer may not have read.
        tx.prepare_cached(
            "SELECT id FROM messages WHERE channel = ? AND sender = ? AND text = ? \
             AND peer_ref IS ? AND received_at >= ? AND ack_read_at IS NULL \
             ORDER BY id DESC LIMIT 1",
        )?
        .query_row(
            params![
                m.channel,
                m.sender.addr,
                m.text,
                m.peer_ref,
                m.received_at.saturating_sub(window_ms)
            ],
            |row| row.get(0),
        )
        .optional()?
    };
    if let Some(id) = existing {
        return Ok(Recorded::Duplicate(id));
    }
    tx.prepare_cached(
        "INSERT INTO messages (channel, peer_ref, sender, sender_ton, sender_npi, recipient, \
         recipient_ton, recipient_npi, text, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )?
    .execute(params![
        m.channel,
        m.peer_ref,
        m.sender.addr,
        i64::from(m.sender.ton),
        i64::from(m.sender.npi),
        m.recipient.addr,
        i64::from(m.recipient.ton),
        i64::from(m.recipient.npi),
        m.text,
        m.received_at
    ])?;
    Ok(Recorded::New(tx.last_insert_rowid()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

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

    /// A journal in `dir`, migrated (also for other modules' tests).
    pub(crate) async fn journal(dir: &tempfile::TempDir) -> Journal {
        Journal::open(JournalSettings {
            url: format!("sqlite://{}/journal.db", dir.path().display()),
            ..JournalSettings::default()
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn records_survive_reopening_and_unanswered_ones_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let j = journal(&dir).await;
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
        let j = journal(&dir).await;
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

    #[tokio::test]
    async fn an_exchange_is_recorded_answered_with_its_lookup_and_never_reaches_the_outbox() {
        let dir = tempfile::tempdir().unwrap();
        let j = journal(&dir).await;
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
        sqlx::query_as("SELECT code, agency, procedure FROM reply_lookups WHERE message_id = ?")
            .bind(id)
            .fetch_optional(j.pool())
            .await
            .unwrap()
    }

    async fn sent_at(j: &Journal, id: i64) -> Option<i64> {
        sqlx::query_scalar("SELECT sent_at FROM replies WHERE message_id = ?")
            .bind(id)
            .fetch_one(j.pool())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_reply_sent_part_by_part_is_recorded_as_it_goes_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let j = journal(&dir).await;
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

    #[tokio::test]
    async fn a_settled_reply_records_its_lookup_and_when_it_was_first_sent() {
        let dir = tempfile::tempdir().unwrap();
        let j = journal(&dir).await;
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

    #[tokio::test]
    async fn redeliveries_are_recognised() {
        let dir = tempfile::tempdir().unwrap();
        let j = journal(&dir).await;
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

    #[tokio::test]
    async fn a_copy_of_a_message_whose_acknowledgement_was_read_is_a_new_message() {
        let dir = tempfile::tempdir().unwrap();
        let j = journal(&dir).await;
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
        let j = journal(&dir).await;
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

    #[tokio::test]
    async fn concurrent_records_are_group_committed() {
        let dir = tempfile::tempdir().unwrap();
        let j = journal(&dir).await;
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

    #[tokio::test]
    async fn purge_erases_texts_and_numbers_but_keeps_outcomes() {
        let dir = tempfile::tempdir().unwrap();
        let j = journal(&dir).await;
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
        let row = sqlx::query("SELECT sender, text, purged FROM messages WHERE id = ?")
            .bind(old)
            .fetch_one(j.pool())
            .await
            .unwrap();
        assert_eq!(row.get::<String, _>("sender"), "");
        assert_eq!(row.get::<String, _>("text"), "");
        let outcome: String =
            sqlx::query_scalar("SELECT outcome FROM replies WHERE message_id = ?")
                .bind(old)
                .fetch_one(j.pool())
                .await
                .unwrap();
        assert_eq!(outcome, "found");
        let kept: String = sqlx::query_scalar("SELECT text FROM messages WHERE id = ?")
            .bind(new)
            .fetch_one(j.pool())
            .await
            .unwrap();
        assert_eq!(kept, "TC new");
    }

    #[tokio::test]
    async fn a_waiting_reply_expires_and_is_then_purged_like_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let j = journal(&dir).await;
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
        let row = sqlx::query("SELECT sender, text, purged FROM messages WHERE id = ?")
            .bind(waiting)
            .fetch_one(j.pool())
            .await
            .unwrap();
        assert_eq!(row.get::<String, _>("sender"), "");
        assert_eq!(row.get::<String, _>("text"), "");
        let reply_text: String =
            sqlx::query_scalar("SELECT text FROM replies WHERE message_id = ?")
                .bind(waiting)
                .fetch_one(j.pool())
                .await
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

    #[tokio::test]
    async fn a_receipt_that_overtakes_the_submit_response_is_applied_later() {
        let dir = tempfile::tempdir().unwrap();
        let j = journal(&dir).await;
        let Recorded::New(id) = j
            .record(message("84912345678", "TC 1", now_ms()))
            .await
            .unwrap()
        else {
            panic!("new")
        };
        j.queue_reply(id, "found", "reply", ReplyState::Queued)
            .await
            .unwrap();
        let receipt = |id: &str, state: &str, success| ReceiptUpdate {
            channel: "smsc:c".into(),
            peer_ids: crate::channel::id_spellings(id),
            state: state.into(),
            is_final: true,
            success,
            error: None,
        };
        // Receipt for part 2 (hex 0x2a = 42) before the parts are recorded.
        assert_eq!(
            j.apply_receipt(receipt("42", "delivered", true))
                .await
                .unwrap(),
            ReceiptApplied::Unmatched
        );
        j.reply_accepted(id, "smsc:c", vec!["0029".into(), "2A".into()])
            .await
            .unwrap();
        assert_eq!(j.reply_state(id).await.unwrap(), Some(ReplyState::Accepted));
        assert_eq!(
            j.apply_receipt(receipt("41", "delivered", true))
                .await
                .unwrap(),
            ReceiptApplied::Matched {
                message_id: id,
                reply: ReplyState::Delivered
            }
        );
        assert_eq!(
            j.part_states(id).await.unwrap(),
            vec!["done:delivered", "done:delivered"]
        );
    }

    #[tokio::test]
    async fn parts_of_a_message_join_once_and_stale_ones_join_anyway() {
        let dir = tempfile::tempdir().unwrap();
        let j = journal(&dir).await;
        let now = now_ms();
        let part = |n: u8, text: &str, reference: u16| NewFragment {
            message: message("84912345678", text, now),
            reference,
            total: 3,
            part: n,
            fingerprint: None,
        };
        assert!(matches!(
            j.record_fragment(part(3, "C", 9)).await.unwrap(),
            FragmentRecorded::Waiting(_)
        ));
        assert!(matches!(
            j.record_fragment(part(1, "A", 9)).await.unwrap(),
            FragmentRecorded::Waiting(_)
        ));
        assert_eq!(
            j.record_fragment(part(1, "A", 9)).await.unwrap(),
            FragmentRecorded::Duplicate
        );
        let FragmentRecorded::Joined(stored) = j.record_fragment(part(2, "B", 9)).await.unwrap()
        else {
            panic!("the last part joins the message")
        };
        assert_eq!(stored.message.text, "ABC");
        // Delivered again after joining: not a new message.
        assert_eq!(
            j.record_fragment(part(2, "B", 9)).await.unwrap(),
            FragmentRecorded::Duplicate
        );
        // A message whose part 2 never comes is joined after the timeout.
        j.record_fragment(part(1, "X", 10)).await.unwrap();
        j.record_fragment(part(3, "Z", 10)).await.unwrap();
        assert!(j.join_stale_fragments(now - 1).await.unwrap().is_empty());
        let joined = j.join_stale_fragments(now + 1).await.unwrap();
        assert_eq!(joined.len(), 1);
        assert_eq!(joined[0].message.text, "XZ");
    }

    #[tokio::test]
    async fn a_new_part_takes_the_place_of_a_copy_under_a_reused_reference() {
        let dir = tempfile::tempdir().unwrap();
        let j = journal(&dir).await;
        let now = now_ms();
        let part = |n: u8, text: &str| NewFragment {
            message: message("84912345678", text, now),
            reference: 9,
            total: 2,
            part: n,
            fingerprint: None,
        };
        j.record_fragment(part(1, "A")).await.unwrap();
        assert!(matches!(
            j.record_fragment(part(2, "B")).await.unwrap(),
            FragmentRecorded::Joined(_)
        ));
        // Part 1 again: a copy, acknowledged as such and kept aside.
        assert_eq!(
            j.record_fragment(part(1, "A")).await.unwrap(),
            FragmentRecorded::Duplicate
        );
        // A new message under the same reference: its part 1 replaces the copy.
        assert!(matches!(
            j.record_fragment(part(1, "X")).await.unwrap(),
            FragmentRecorded::Waiting(_)
        ));
        let FragmentRecorded::Joined(stored) = j.record_fragment(part(2, "Y")).await.unwrap()
        else {
            panic!("a new message under a reused reference is joined")
        };
        assert_eq!(stored.message.text, "XY");
    }

    #[tokio::test]
    async fn a_part_with_an_identity_is_known_again_after_the_redelivery_window() {
        let dir = tempfile::tempdir().unwrap();
        let j = journal(&dir).await;
        let now = now_ms();
        let part = |n: u8, text: &str, received_at: i64| NewFragment {
            message: message("84912345678", text, received_at),
            reference: 4,
            total: 2,
            part: n,
            fingerprint: Some(format!("sms:part{n}")),
        };
        j.record_fragment(part(1, "A", now)).await.unwrap();
        assert!(matches!(
            j.record_fragment(part(2, "B", now)).await.unwrap(),
            FragmentRecorded::Joined(_)
        ));
        // Read again from the SIM long after the redelivery window (the
        // joined message forgotten): still the same parts.
        sqlx::query("DELETE FROM joined_parts")
            .execute(j.pool())
            .await
            .unwrap();
        let later = now + 3_600_000;
        assert_eq!(
            j.record_fragment(part(1, "A", later)).await.unwrap(),
            FragmentRecorded::Duplicate
        );
        assert_eq!(
            j.record_fragment(part(2, "B", later)).await.unwrap(),
            FragmentRecorded::Duplicate
        );
    }

    #[tokio::test]
    async fn a_receipt_stored_after_the_unmatched_ones_were_purged_still_matches() {
        let dir = tempfile::tempdir().unwrap();
        let j = journal(&dir).await;
        let receipt = |id: &str| ReceiptUpdate {
            channel: "smsc:c".into(),
            peer_ids: vec![id.into()],
            state: "delivered".into(),
            is_final: true,
            success: true,
            error: None,
        };
        async fn reply(j: &Journal, text: &str) -> i64 {
            let Recorded::New(id) = j
                .record(message("84912345678", text, now_ms()))
                .await
                .unwrap()
            else {
                panic!("new")
            };
            j.queue_reply(id, "found", "reply", ReplyState::Queued)
                .await
                .unwrap();
            id
        }
        assert_eq!(
            j.apply_receipt(receipt("a1")).await.unwrap(),
            ReceiptApplied::Unmatched
        );
        // The purge empties unmatched_receipts: the writer knows none exist.
        j.purge_before(now_ms() + 1000).await.unwrap();
        let first = reply(&j, "TC 1").await;
        j.reply_accepted(first, "smsc:c", vec!["a1".into()])
            .await
            .unwrap();
        assert_eq!(j.part_states(first).await.unwrap(), vec!["accepted"]);
        // One stored afterwards is found again.
        assert_eq!(
            j.apply_receipt(receipt("b2")).await.unwrap(),
            ReceiptApplied::Unmatched
        );
        let second = reply(&j, "TC 2").await;
        j.reply_accepted(second, "smsc:c", vec!["b2".into()])
            .await
            .unwrap();
        assert_eq!(j.part_states(second).await.unwrap(), vec!["done:delivered"]);
        assert_eq!(
            j.reply_state(second).await.unwrap(),
            Some(ReplyState::Delivered)
        );
    }

    #[tokio::test]
    async fn close_commits_what_came_before_and_stops_every_handle() {
        let dir = tempfile::tempdir().unwrap();
        let j = journal(&dir).await;
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
        let j = journal(&dir).await;
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
            .fetch_one(j.pool())
            .await
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
}
