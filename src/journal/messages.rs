//! The writer's SQL for `messages`: the redelivery rule of
//! [`Journal::record`](super::Journal::record), a message answered on the
//! spot recorded with its answer, acknowledgements read.

use rusqlite::{params, Connection, OptionalExtension};

use super::replies::note_lookup;
use super::{LookupNote, NewMessage, Recorded, ReplyState};

/// The rule of [`Journal::record`](super::Journal::record).
pub(super) fn record(
    tx: &Connection,
    m: &NewMessage,
    window_ms: i64,
) -> rusqlite::Result<Recorded> {
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

/// A message answered on the spot, with its answer (see
/// [`Journal::record_exchange`](super::Journal::record_exchange)).
pub(super) fn record_exchange(
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
pub(super) fn acks_read(tx: &Connection, ids: &[i64], now: i64) -> rusqlite::Result<()> {
    let mut statement = tx.prepare_cached(
        "UPDATE messages SET ack_read_at = ? WHERE id = ? AND ack_read_at IS NULL",
    )?;
    for id in ids {
        statement.execute(params![now, id])?;
    }
    Ok(())
}
