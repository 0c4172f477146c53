//! PostgreSQL statements for `messages`, one request at a time: the
//! redelivery rule of [`Journal::record`](crate::journal::Journal::record),
//! a message answered on the spot recorded with its answer,
//! acknowledgements read. (A batch's messages go in one statement each:
//! `batch`.)

use sqlx::PgConnection;

use super::replies::note_lookup;
use crate::journal::{LookupNote, NewMessage, Recorded, ReplyState};

/// The redelivery rule's query for a message with a lasting `peer_ref`.
pub(super) const BY_LASTING_REF: &str =
    "SELECT id FROM messages WHERE channel = $1 AND peer_ref = $2 LIMIT 1";

/// The rule of [`Journal::record`](crate::journal::Journal::record).
pub(super) async fn record(
    c: &mut PgConnection,
    m: &NewMessage,
    window_ms: i64,
) -> sqlx::Result<Recorded> {
    let existing: Option<i64> = if let (Some(peer_ref), true) = (&m.peer_ref, m.peer_ref_lasting) {
        sqlx::query_scalar(BY_LASTING_REF)
            .bind(&m.channel)
            .bind(peer_ref)
            .fetch_optional(&mut *c)
            .await?
    } else {
        sqlx::query_scalar(
            "SELECT id FROM messages WHERE channel = $1 AND sender = $2 AND text = $3 \
             AND peer_ref IS NOT DISTINCT FROM $4 AND received_at >= $5 AND ack_read_at IS NULL \
             ORDER BY id DESC LIMIT 1",
        )
        .bind(&m.channel)
        .bind(&m.sender.addr)
        .bind(&m.text)
        .bind(&m.peer_ref)
        .bind(m.received_at.saturating_sub(window_ms))
        .fetch_optional(&mut *c)
        .await?
    };
    if let Some(id) = existing {
        return Ok(Recorded::Duplicate(id));
    }
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO messages (channel, peer_ref, sender, sender_ton, sender_npi, recipient, \
         recipient_ton, recipient_npi, text, received_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
    )
    .bind(&m.channel)
    .bind(&m.peer_ref)
    .bind(&m.sender.addr)
    .bind(i64::from(m.sender.ton))
    .bind(i64::from(m.sender.npi))
    .bind(&m.recipient.addr)
    .bind(i64::from(m.recipient.ton))
    .bind(i64::from(m.recipient.npi))
    .bind(&m.text)
    .bind(m.received_at)
    .fetch_one(&mut *c)
    .await?;
    Ok(Recorded::New(id))
}

/// A message answered on the spot, with its answer (see
/// [`Journal::record_exchange`](crate::journal::Journal::record_exchange)).
pub(super) async fn record_exchange(
    c: &mut PgConnection,
    message: &NewMessage,
    (outcome, text, state): (&str, &str, ReplyState),
    lookup: Option<&LookupNote>,
    window_ms: i64,
    now: i64,
) -> sqlx::Result<Recorded> {
    let recorded = record(c, message, window_ms).await?;
    if let Recorded::New(id) = recorded {
        // Answered on the spot: nothing of it can come again as a
        // redelivery, so the same text later is the citizen asking again.
        acks_read(c, &[id], now).await?;
        sqlx::query(
            "INSERT INTO replies (message_id, outcome, text, state, attempts, next_attempt_at, \
             created_at, updated_at, sent_at) VALUES ($1, $2, $3, $4, 1, $5, $5, $5, $6) \
             ON CONFLICT (message_id) DO NOTHING",
        )
        .bind(id)
        .bind(outcome)
        .bind(text)
        .bind(state.as_str())
        .bind(now)
        .bind(state.handed_over().then_some(now))
        .execute(&mut *c)
        .await?;
        if let Some(lookup) = lookup {
            note_lookup(c, id, lookup).await?;
        }
    }
    Ok(recorded)
}

/// Marks acknowledgements as read (the first time only).
pub(super) async fn acks_read(c: &mut PgConnection, ids: &[i64], now: i64) -> sqlx::Result<()> {
    sqlx::query("UPDATE messages SET ack_read_at = $1 WHERE id = ANY($2) AND ack_read_at IS NULL")
        .bind(now)
        .bind(ids)
        .execute(&mut *c)
        .await?;
    Ok(())
}
