//! The journal's single writer: a dedicated OS thread with its own
//! synchronous SQLite connection (rusqlite, cached prepared statements).
//! It takes every request queued meanwhile (up to [`MAX_BATCH`]), applies
//! them in one transaction, commits once (one fsync for the batch: group
//! commit), then answers each in order. A second thread copies the WAL back
//! into the file every second, so no commit pays for a checkpoint.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::{mpsc, oneshot, watch};

use super::receipts::{unmatched_receipts_exist, UnmatchedReceipts};
use super::requests::{Request, WriteError};
use super::{fragments, messages, receipts, replies, retention, Durability};
use crate::clock::now_ms;

/// Most operations committed in one transaction.
pub(super) const MAX_BATCH: usize = 512;

/// Requests queued for the writer before callers wait to queue theirs.
pub(super) const QUEUE: usize = 4096;

/// Statements the writer keeps prepared (it uses about 35).
const WRITER_STATEMENT_CACHE: usize = 64;

/// How often the WAL is copied back into the journal file.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

/// The running writer, as the journal's handles see it.
pub(super) struct Started {
    /// Where requests are queued.
    pub(super) writes: mpsc::Sender<Request>,
    /// Closed (its sender dropped) when the writer thread has ended.
    pub(super) writer_exited: watch::Receiver<()>,
}

/// Why the writer could not start.
pub(super) enum StartError {
    /// Its connection could not be opened or configured.
    Open(rusqlite::Error),
    /// A thread could not be spawned.
    Spawn(std::io::Error),
    /// Its thread ended before saying whether it opened.
    Stopped,
}

/// Starts the writer thread on the journal file at `path` (created and
/// migrated), and the checkpoint thread beside it.
pub(super) async fn start(
    path: &Path,
    durability: Durability,
    window_ms: i64,
) -> Result<Started, StartError> {
    // The writer has a connection and a thread of its own, so that
    // readers (recovery, abuse control) never make a commit wait for a
    // pooled connection, and a batch's statements never leave its thread.
    let (writes, queue) = mpsc::channel(QUEUE);
    let (ready, opened) = oneshot::channel();
    let (exit_signal, writer_exited) = watch::channel(());
    let filename = path.to_path_buf();
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
        .map_err(StartError::Spawn)?;
    match opened.await {
        Ok(Ok(())) => {}
        Ok(Err(source)) => return Err(StartError::Open(source)),
        Err(_) => return Err(StartError::Stopped),
    }
    let writer_alive = writer_exited.clone();
    let checkpoint_path: PathBuf = path.to_path_buf();
    std::thread::Builder::new()
        .name("journal-checkpoint".to_owned())
        .spawn(move || checkpoint_loop(&checkpoint_path, writer_alive))
        .map_err(StartError::Spawn)?;
    Ok(Started {
        writes,
        writer_exited,
    })
}

/// The writer's state beside its connection.
struct Writer {
    conn: Connection,
    unmatched: UnmatchedReceipts,
}

/// Opens the writer's connection to the journal file sqlx created and
/// migrated, with the pool's pragmas.
fn open_writer(path: &Path, durability: Durability) -> rusqlite::Result<Writer> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0))?;
    conn.pragma_update(None, "synchronous", durability.pragma())?;
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

/// Copies the WAL back into the journal file every second (a passive
/// checkpoint: it never blocks the writer or readers), until the writer
/// thread has ended. Taking this off the commit path keeps a long
/// checkpoint from stalling the acknowledgement of messages.
fn checkpoint_loop(path: &Path, writer_alive: watch::Receiver<()>) {
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

/// The single writer, on its own thread: takes every queued request,
/// applies them in one transaction, commits, then answers each. Ends when
/// every handle is gone or after a [`Request::Close`].
fn write_loop(mut writer: Writer, mut queue: mpsc::Receiver<Request>, window_ms: i64) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut closing = false;
    while !closing {
        let Some(first) = queue.blocking_recv() else {
            break;
        };
        closing = take_batch(first, &mut queue, &mut batch);
        if batch.is_empty() {
            continue;
        }
        let committed = writer
            .apply(&mut batch, window_ms)
            .map_err(WriteError::from);
        writer.settle_unmatched(committed.is_ok());
        answer_batch(&mut batch, committed);
    }
    // Requests still queued (sent after a close) are dropped with the
    // queue: their callers get `Stopped`.
}

/// Puts `first` and every request queued behind it (up to [`MAX_BATCH`])
/// in `batch`; true when a [`Request::Close`] came, which ends the batch.
pub(super) fn take_batch(
    first: Request,
    queue: &mut mpsc::Receiver<Request>,
    batch: &mut Vec<Request>,
) -> bool {
    let mut closing = false;
    match first {
        Request::Close => closing = true,
        request => batch.push(request),
    }
    while !closing && batch.len() < MAX_BATCH {
        match queue.try_recv() {
            Ok(Request::Close) => closing = true,
            Ok(request) => batch.push(request),
            Err(_) => break,
        }
    }
    closing
}

/// Answers every request of a batch whose transaction ended: each with its
/// own result when it committed, all with the commit's error otherwise.
pub(super) fn answer_batch(batch: &mut Vec<Request>, committed: Result<(), WriteError>) {
    if let Err(error) = &committed {
        tracing::error!(%error, operations = batch.len(), "journal commit failed; the messages are not acknowledged");
    }
    let commit = committed.as_ref().map(|_| ());
    for request in batch.drain(..) {
        request.answer(commit);
    }
}

impl Writer {
    /// Applies a batch in one transaction and commits it. A request's own
    /// failure is its result (kept in it; the others still commit); a
    /// failure to begin or commit is every request's.
    fn apply(&mut self, batch: &mut [Request], window_ms: i64) -> rusqlite::Result<()> {
        // IMMEDIATE: take the write lock up front, so the reads inside (redelivery
        // checks) can never be invalidated by another writer's commit.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let unmatched = &mut self.unmatched;
        let now = now_ms();
        for request in batch.iter_mut() {
            match request {
                Request::Record(ask) => ask.run(|m| messages::record(&tx, m, window_ms)),
                Request::Exchange(ask) => ask.run(|e| {
                    messages::record_exchange(
                        &tx,
                        &e.message,
                        (&e.outcome, &e.text, e.state),
                        e.lookup.as_ref(),
                        window_ms,
                        now,
                    )
                }),
                Request::Purge(ask) => {
                    unmatched.recheck = true;
                    ask.run(|p| retention::purge(&tx, p.cutoff));
                }
                Request::Accepted(ask) => ask.run(|a| {
                    replies::accepted(&tx, unmatched, a.message_id, &a.channel, &a.peer_ids, now)
                }),
                Request::Settle(ask) => ask.run(|s| {
                    replies::settle(
                        &tx,
                        unmatched,
                        s.message_id,
                        (&s.outcome, &s.text),
                        &s.settlement,
                        s.lookup.as_ref(),
                        now,
                    )
                }),
                Request::PartSent(ask) => ask.run(|p| {
                    replies::part_sent(
                        &tx,
                        unmatched,
                        p.message_id,
                        (&p.outcome, &p.text),
                        p.lookup.as_ref(),
                        &p.part,
                        now,
                    )
                }),
                Request::Receipt(ask) => {
                    ask.run(|receipt| receipts::apply_receipt(&tx, unmatched, receipt, now))
                }
                Request::Fragment(ask) => {
                    ask.run(|fragment| fragments::record_fragment(&tx, fragment, window_ms, now))
                }
                Request::JoinStale(ask) => {
                    ask.run(|j| fragments::join_stale(&tx, j.received_before, window_ms, now))
                }
                Request::Expire(ask) => ask.run(|e| retention::expire(&tx, &e.message_ids, now)),
                Request::QueueReply(ask) => ask.run(|q| replies::queue(&tx, q, now)),
                Request::UpdateReply(ask) => ask.run(|u| replies::update(&tx, u, now)),
                Request::AcksRead(note) => note.run(|ids| messages::acks_read(&tx, ids, now)),
                Request::Close => {}
            }
        }
        tx.commit()
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
