//! The journal's reads, on the state pool beside the writer (SQLite's WAL,
//! PostgreSQL's MVCC let them run while it commits), one text for both
//! engines: messages never answered (recovery after a crash), replies due
//! or overdue, a reply's state, and how far a reply sent part by part had
//! got.

use super::{
    Address, Journal, JournalError, NewMessage, PendingReply, RecordedParts, ReplyState,
    StoredMessage,
};
use crate::on_state_pool;

/// A message's columns as [`Journal::unanswered`] reads them.
type MessageRow = (
    i64,
    String,
    Option<String>,
    String,
    i64,
    i64,
    String,
    i64,
    i64,
    String,
    i64,
);

/// A due reply's columns, as [`Journal::due_replies`] reads them.
type DueRow = (
    i64,
    String,
    String,
    i64,
    String,
    String,
    i64,
    i64,
    String,
    i64,
    i64,
);

impl Journal {
    /// Messages recorded but not yet given a reply (after a crash), oldest first.
    pub async fn unanswered(&self) -> Result<Vec<StoredMessage>, JournalError> {
        let rows: Vec<MessageRow> = on_state_pool!(self.pool(), p => sqlx::query_as(
            "SELECT m.id, m.channel, m.peer_ref, m.sender, m.sender_ton, m.sender_npi, \
             m.recipient, m.recipient_ton, m.recipient_npi, m.text, m.received_at \
             FROM messages m LEFT JOIN replies r ON r.message_id = m.id \
             WHERE r.message_id IS NULL AND m.purged = 0 AND m.node = $1 ORDER BY m.id",
        )
        .bind(self.db().node())
        .fetch_all(p)
        .await?);
        Ok(rows.into_iter().map(stored_message).collect())
    }

    /// Those of `message_ids` recorded but without a reply yet (taken over
    /// from another node), oldest first.
    pub async fn unanswered_among(
        &self,
        message_ids: &[i64],
    ) -> Result<Vec<StoredMessage>, JournalError> {
        let mut ids = message_ids.to_vec();
        ids.sort_unstable();
        let mut found = Vec::new();
        for id in ids {
            let row: Option<MessageRow> = on_state_pool!(self.pool(), p => sqlx::query_as(
                "SELECT m.id, m.channel, m.peer_ref, m.sender, m.sender_ton, m.sender_npi, \
                 m.recipient, m.recipient_ton, m.recipient_npi, m.text, m.received_at \
                 FROM messages m LEFT JOIN replies r ON r.message_id = m.id \
                 WHERE m.id = $1 AND r.message_id IS NULL AND m.purged = 0 AND m.node = $2",
            )
            .bind(id)
            .bind(self.db().node())
            .fetch_optional(p)
            .await?);
            found.extend(row.map(stored_message));
        }
        Ok(found)
    }

    /// Whether an older message from `sender` than message `id`, recorded
    /// by another node of the cluster within `window_ms` of `now`, still
    /// waits for its reply (none yet, or one queued): the reply to `id`
    /// then waits too, so a citizen's replies leave in the order of their
    /// messages across nodes. Always false outside a shared database.
    pub async fn older_waiting_elsewhere(
        &self,
        sender: &str,
        id: i64,
        now: i64,
        window_ms: i64,
    ) -> Result<bool, JournalError> {
        Ok(on_state_pool!(self.pool(), p => sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM messages m LEFT JOIN replies r ON r.message_id = m.id \
             WHERE m.sender = $1 AND m.id < $2 AND m.node <> $3 AND m.received_at >= $4 \
             AND m.purged = 0 AND (r.message_id IS NULL OR r.state = 'queued'))",
        )
        .bind(sender)
        .bind(id)
        .bind(self.db().node())
        .bind(now - window_ms)
        .fetch_one(p)
        .await?))
    }

    /// Queued replies due at `now` (Unix ms) on `channel` (or every channel), oldest first.
    pub async fn due_replies(
        &self,
        now: i64,
        channel: Option<&str>,
        limit: i64,
    ) -> Result<Vec<PendingReply>, JournalError> {
        let rows: Vec<DueRow> = on_state_pool!(self.pool(), p => sqlx::query_as(
            "SELECT r.message_id, r.text, r.outcome, r.attempts, m.channel, m.sender, \
             m.sender_ton, m.sender_npi, m.recipient, m.recipient_ton, m.recipient_npi \
             FROM replies r JOIN messages m ON m.id = r.message_id \
             WHERE r.state = 'queued' AND r.next_attempt_at <= $1 \
             AND (CAST($2 AS TEXT) IS NULL OR m.channel = $2) AND m.node = $4 \
             ORDER BY r.message_id LIMIT $3",
        )
        .bind(now)
        .bind(channel)
        .bind(limit)
        .bind(self.db().node())
        .fetch_all(p)
        .await?);
        Ok(rows
            .into_iter()
            .map(
                |(
                    message_id,
                    text,
                    outcome,
                    attempts,
                    channel,
                    to,
                    to_ton,
                    to_npi,
                    from,
                    from_ton,
                    from_npi,
                )| {
                    PendingReply {
                        message_id,
                        channel,
                        to: address(to, to_ton, to_npi),
                        from: address(from, from_ton, from_npi),
                        text,
                        outcome,
                        attempts: attempts as u32,
                        stored: true,
                        lookup: None,
                    }
                },
            )
            .collect())
    }

    /// The state of a message's reply, if it has one.
    pub async fn reply_state(&self, message_id: i64) -> Result<Option<ReplyState>, JournalError> {
        let state: Option<String> = on_state_pool!(self.pool(), p => sqlx::query_scalar(
            "SELECT state FROM replies WHERE message_id = $1",
        )
        .bind(message_id)
        .fetch_optional(p)
        .await?);
        Ok(state.as_deref().and_then(ReplyState::parse))
    }

    /// Queued replies whose message was received before `received_before`
    /// (Unix ms): those [`Journal::expire_replies`] should take, as
    /// (message id, citizen's address), oldest first.
    pub async fn overdue_replies(
        &self,
        received_before: i64,
    ) -> Result<Vec<(i64, String)>, JournalError> {
        Ok(on_state_pool!(self.pool(), p => sqlx::query_as(
            "SELECT r.message_id, m.sender FROM replies r JOIN messages m ON m.id = r.message_id \
             WHERE r.state = 'queued' AND m.received_at < $1 AND m.node = $2 \
             ORDER BY r.message_id",
        )
        .bind(received_before)
        .bind(self.db().node())
        .fetch_all(p)
        .await?))
    }

    /// The parts of a still queued reply recorded by
    /// [`Journal::record_part_sent`]; `None` when it has none.
    pub async fn recorded_parts(
        &self,
        message_id: i64,
    ) -> Result<Option<RecordedParts>, JournalError> {
        let reference: Option<Option<i64>> = on_state_pool!(self.pool(), p => sqlx::query_scalar(
            "SELECT part_reference FROM replies WHERE message_id = $1 AND state = 'queued'",
        )
        .bind(message_id)
        .fetch_optional(p)
        .await?);
        let Some(reference) = reference.flatten() else {
            return Ok(None);
        };
        let sent: Vec<(i64, String)> = on_state_pool!(self.pool(), p => sqlx::query_as(
            "SELECT part, peer_id FROM reply_parts WHERE message_id = $1 ORDER BY part",
        )
        .bind(message_id)
        .fetch_all(p)
        .await?);
        Ok(Some(RecordedParts {
            reference: reference as u16,
            sent: sent
                .into_iter()
                .map(|(part, id)| (part as u32, id))
                .collect(),
        }))
    }

    /// The receipt states of a reply's parts, in part order.
    pub async fn part_states(&self, message_id: i64) -> Result<Vec<String>, JournalError> {
        Ok(on_state_pool!(self.pool(), p => sqlx::query_scalar(
            "SELECT state FROM reply_parts WHERE message_id = $1 ORDER BY part",
        )
        .bind(message_id)
        .fetch_all(p)
        .await?))
    }
}

fn address(addr: String, ton: i64, npi: i64) -> Address {
    Address {
        addr,
        ton: ton as u8,
        npi: npi as u8,
    }
}

fn stored_message(
    (
        id,
        channel,
        peer_ref,
        sender,
        sender_ton,
        sender_npi,
        recipient,
        recipient_ton,
        recipient_npi,
        text,
        received_at,
    ): MessageRow,
) -> StoredMessage {
    StoredMessage {
        id,
        message: NewMessage {
            channel,
            peer_ref,
            peer_ref_lasting: false,
            sender: address(sender, sender_ton, sender_npi),
            recipient: address(recipient, recipient_ton, recipient_npi),
            text,
            received_at,
        },
    }
}
