//! The journal's tests of a reply's parts and receipts (early, purged) and
//! of concatenated messages' parts (joined, stale, copies, lasting identity).

use super::*;

crate::on_both_engines!(
    a_receipt_that_overtakes_the_submit_response_is_applied_later,
    parts_of_a_message_join_once_and_stale_ones_join_anyway,
    a_new_part_takes_the_place_of_a_copy_under_a_reused_reference,
    a_part_with_an_identity_is_known_again_after_the_redelivery_window,
    a_receipt_stored_after_the_unmatched_ones_were_purged_still_matches,
);

async fn a_receipt_that_overtakes_the_submit_response_is_applied_later(db: GatewayDb) {
    let j = start(&db).await;
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

async fn parts_of_a_message_join_once_and_stale_ones_join_anyway(db: GatewayDb) {
    let j = start(&db).await;
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
    let FragmentRecorded::Joined(stored) = j.record_fragment(part(2, "B", 9)).await.unwrap() else {
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

async fn a_new_part_takes_the_place_of_a_copy_under_a_reused_reference(db: GatewayDb) {
    let j = start(&db).await;
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
    let FragmentRecorded::Joined(stored) = j.record_fragment(part(2, "Y")).await.unwrap() else {
        panic!("a new message under a reused reference is joined")
    };
    assert_eq!(stored.message.text, "XY");
}

async fn a_part_with_an_identity_is_known_again_after_the_redelivery_window(db: GatewayDb) {
    let j = start(&db).await;
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
    on_state_pool!(j.pool(), p => sqlx::query("DELETE FROM joined_parts")
        .execute(p)
        .await
        .map(|done| done.rows_affected()))
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

async fn a_receipt_stored_after_the_unmatched_ones_were_purged_still_matches(db: GatewayDb) {
    let j = start(&db).await;
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
