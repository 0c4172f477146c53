//! PostgreSQL statements for `reply_parts` and `unmatched_receipts`: a
//! reply's parts as the carrier numbered them (ids in one canonical
//! spelling), the receipts applied to them and the reply's state derived
//! from its parts, and receipts that overtook their part's submit response,
//! kept until the part is recorded.

use sqlx::PgConnection;

use crate::journal::receipts::UnmatchedReceipts;
use crate::journal::rules::{part_failure, reply_state_of_parts, stored_part_state};
use crate::journal::{canonical_peer_id, ReceiptApplied, ReceiptUpdate, ReplyState};

/// Whether `unmatched_receipts` holds any row.
pub(super) async fn unmatched_receipts_exist(c: &mut PgConnection) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM unmatched_receipts)")
        .fetch_one(&mut *c)
        .await
}

/// Records part `part` (1-based) of a reply, accepted with `id` on
/// `channel`, applying a receipt that arrived before it.
pub(super) async fn record_part(
    c: &mut PgConnection,
    unmatched: &mut UnmatchedReceipts,
    message_id: i64,
    part: i64,
    channel: &str,
    id: &str,
    now: i64,
) -> sqlx::Result<()> {
    let peer_id = canonical_peer_id(id);
    sqlx::query(
        "INSERT INTO reply_parts (message_id, part, channel, peer_id, state, updated_at) \
         VALUES ($1, $2, $3, $4, 'accepted', $5) ON CONFLICT (message_id, part) DO NOTHING",
    )
    .bind(message_id)
    .bind(part)
    .bind(channel)
    .bind(&peer_id)
    .bind(now)
    .execute(&mut *c)
    .await?;
    if !unmatched.may_exist {
        return Ok(());
    }
    // A receipt that overtook the submit_sm_resp.
    let early: Option<(i64, String, i64, i64, Option<String>)> = sqlx::query_as(
        "SELECT receipt, state, final, success, error FROM unmatched_receipts \
         WHERE channel = $1 AND peer_id = $2 ORDER BY final DESC, received_at DESC LIMIT 1",
    )
    .bind(channel)
    .bind(&peer_id)
    .fetch_optional(&mut *c)
    .await?;
    if let Some((receipt, state, is_final, success, error)) = early {
        sqlx::query("DELETE FROM unmatched_receipts WHERE receipt = $1")
            .bind(receipt)
            .execute(&mut *c)
            .await?;
        unmatched.recheck = true;
        set_part_state(
            c,
            (message_id, part),
            &state,
            (is_final != 0, success != 0),
            error.as_deref(),
            now,
        )
        .await?;
    }
    Ok(())
}

/// Applies a receipt's state to part `part` of a reply, then the state its
/// parts make to the reply; returns the reply's state.
async fn set_part_state(
    c: &mut PgConnection,
    (message_id, part): (i64, i64),
    state: &str,
    (is_final, success): (bool, bool),
    error: Option<&str>,
    now: i64,
) -> sqlx::Result<ReplyState> {
    sqlx::query(
        "UPDATE reply_parts SET state = $1, error = $2, updated_at = $3 \
         WHERE message_id = $4 AND part = $5 AND state NOT LIKE 'done:%' AND state NOT LIKE 'failed:%'",
    )
    .bind(stored_part_state(state, is_final, success))
    .bind(error)
    .bind(now)
    .bind(message_id)
    .bind(part)
    .execute(&mut *c)
    .await?;
    let (parts, done, failed): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE state LIKE 'done:%'), \
         count(*) FILTER (WHERE state LIKE 'failed:%') FROM reply_parts WHERE message_id = $1",
    )
    .bind(message_id)
    .fetch_one(&mut *c)
    .await?;
    if let Some(new_state) = reply_state_of_parts(parts, done, failed) {
        let error = (new_state == ReplyState::Failed).then(|| part_failure(part, state, error));
        sqlx::query(
            "UPDATE replies SET state = $1, last_error = coalesce($2, last_error), updated_at = $3 \
             WHERE message_id = $4 AND state = 'accepted'",
        )
        .bind(new_state.as_str())
        .bind(error)
        .bind(now)
        .bind(message_id)
        .execute(&mut *c)
        .await?;
    }
    let state: Option<String> =
        sqlx::query_scalar("SELECT state FROM replies WHERE message_id = $1")
            .bind(message_id)
            .fetch_optional(&mut *c)
            .await?;
    Ok(state
        .as_deref()
        .and_then(ReplyState::parse)
        .unwrap_or(ReplyState::Accepted))
}

/// Applies a delivery receipt (see
/// [`Journal::apply_receipt`](crate::journal::Journal::apply_receipt)).
pub(super) async fn apply_receipt(
    c: &mut PgConnection,
    unmatched: &mut UnmatchedReceipts,
    receipt: &ReceiptUpdate,
    now: i64,
) -> sqlx::Result<ReceiptApplied> {
    let spellings: Vec<String> = receipt
        .peer_ids
        .iter()
        .map(|id| canonical_peer_id(id))
        .collect();
    // The first spelling that names a part, in the receipt's order.
    let found: Option<(i64, i64)> = sqlx::query_as(
        "SELECT p.message_id, p.part FROM UNNEST($2::TEXT[]) WITH ORDINALITY AS s(peer_id, n) \
         CROSS JOIN LATERAL (SELECT message_id, part FROM reply_parts \
         WHERE channel = $1 AND peer_id = s.peer_id ORDER BY message_id DESC LIMIT 1) p \
         ORDER BY s.n LIMIT 1",
    )
    .bind(&receipt.channel)
    .bind(&spellings)
    .fetch_optional(&mut *c)
    .await?;
    let Some((message_id, part)) = found else {
        if !spellings.is_empty() {
            sqlx::query(
                "INSERT INTO unmatched_receipts (receipt, channel, peer_id, state, final, success, error, received_at) \
                 SELECT (SELECT coalesce(max(receipt), 0) + 1 FROM unmatched_receipts), $1, peer_id, $3, $4, $5, $6, $7 \
                 FROM UNNEST($2::TEXT[]) AS s(peer_id)",
            )
            .bind(&receipt.channel)
            .bind(&spellings)
            .bind(&receipt.state)
            .bind(i64::from(receipt.is_final))
            .bind(i64::from(receipt.success))
            .bind(&receipt.error)
            .bind(now)
            .execute(&mut *c)
            .await?;
            unmatched.may_exist = true;
        }
        return Ok(ReceiptApplied::Unmatched);
    };
    let reply = set_part_state(
        c,
        (message_id, part),
        &receipt.state,
        (receipt.is_final, receipt.success),
        receipt.error.as_deref(),
        now,
    )
    .await?;
    Ok(ReceiptApplied::Matched { message_id, reply })
}
