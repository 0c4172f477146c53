//! The journal's reads, on the sqlx pool beside the writer (WAL lets them
//! run while it commits): messages never answered (recovery after a crash),
//! replies due or overdue, a reply's state, and how far a reply sent part
//! by part had got.

use sqlx::Row;

use super::{
    Address, Journal, JournalError, NewMessage, PendingReply, RecordedParts, ReplyState,
    StoredMessage,
};

impl Journal {
    /// Messages recorded but not yet given a reply (after a crash), oldest first.
    pub async fn unanswered(&self) -> Result<Vec<StoredMessage>, JournalError> {
        let rows = sqlx::query(
            "SELECT m.* FROM messages m LEFT JOIN replies r ON r.message_id = m.id \
             WHERE r.message_id IS NULL AND m.purged = 0 ORDER BY m.id",
        )
        .fetch_all(self.pool().legacy_sqlite())
        .await?;
        rows.iter().map(row_to_message).collect()
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
            let row = sqlx::query(
                "SELECT m.* FROM messages m LEFT JOIN replies r ON r.message_id = m.id \
                 WHERE m.id = $1 AND r.message_id IS NULL AND m.purged = 0",
            )
            .bind(id)
            .fetch_optional(self.pool().legacy_sqlite())
            .await?;
            if let Some(row) = row {
                found.push(row_to_message(&row)?);
            }
        }
        Ok(found)
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
        .fetch_all(self.pool().legacy_sqlite())
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
                .fetch_optional(self.pool().legacy_sqlite())
                .await?;
        Ok(state.as_deref().and_then(ReplyState::parse))
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
        .fetch_all(self.pool().legacy_sqlite())
        .await?)
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
        .fetch_optional(self.pool().legacy_sqlite())
        .await?
        .flatten();
        let Some(reference) = reference else {
            return Ok(None);
        };
        let sent: Vec<(i64, String)> = sqlx::query_as(
            "SELECT part, peer_id FROM reply_parts WHERE message_id = ? ORDER BY part",
        )
        .bind(message_id)
        .fetch_all(self.pool().legacy_sqlite())
        .await?;
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
        Ok(
            sqlx::query_scalar("SELECT state FROM reply_parts WHERE message_id = ? ORDER BY part")
                .bind(message_id)
                .fetch_all(self.pool().legacy_sqlite())
                .await?,
        )
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
