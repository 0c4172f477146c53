//! The writer's SQL for `reply_parts` and `unmatched_receipts`: a reply's
//! parts as the carrier numbered them (ids in one canonical spelling), the
//! receipts applied to them and the reply's state derived from its parts,
//! and receipts that overtook their part's submit response, kept until the
//! part is recorded.

use rusqlite::{params, Connection, OptionalExtension};

use super::rules::{part_failure, reply_state_of_parts, stored_part_state};
use super::{ReceiptApplied, ReceiptUpdate, ReplyState};

/// Whether `unmatched_receipts` may hold rows, so that recording a reply's
/// parts can skip looking for receipts that overtook them when none can
/// exist (the common case). Only the writer writes that table.
pub(super) struct UnmatchedReceipts {
    /// False only when the table is known to be empty.
    pub(super) may_exist: bool,
    /// Set when this batch deleted some (matched, or purged): the flag is
    /// recomputed once the batch has ended.
    pub(super) recheck: bool,
}

/// Whether `unmatched_receipts` holds any row.
pub(super) fn unmatched_receipts_exist(conn: &Connection) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM unmatched_receipts)")?
        .query_row([], |row| row.get(0))
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

/// Records part `part` (1-based) of a reply, accepted with `id` on
/// `channel`, applying a receipt that arrived before it.
pub(super) fn record_part(
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
    let stored = stored_part_state(state, is_final, success);
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
    if let Some(new_state) = reply_state_of_parts(parts, done, failed) {
        let error = (new_state == ReplyState::Failed).then(|| part_failure(part, state, error));
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

/// Applies a delivery receipt (see
/// [`Journal::apply_receipt`](super::Journal::apply_receipt)).
pub(super) fn apply_receipt(
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
