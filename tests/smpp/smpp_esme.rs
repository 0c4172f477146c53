//! The ESME role bound to an independent SMSC (the smpp34 crate's server):
//! citizens' messages arrive as deliver_sm, replies leave as submit_sm on
//! the same link; delivery receipts are not answered; the client binds again
//! after the SMSC unbinds it.

use std::time::Duration;

use motcua_sms::smpp::SmscSettings;
use support::peer_smsc::PeerSmsc;
use support::{decode_parts, spawn_app_with, ucs2, AppOptions, KNOWN_CODE};

const WAIT: Duration = Duration::from_secs(10);

fn smsc_settings(smsc: &PeerSmsc) -> SmscSettings {
    support::smsc_settings(smsc.local_addr().port())
}

async fn collect_reply(smsc: &PeerSmsc) -> Vec<support::peer_esme::RawMessage> {
    let first = smsc.next_submit(WAIT).await.expect("a reply is submitted");
    let total = if first.esm_class & 0x40 != 0 {
        first.short_message[4] as usize
    } else {
        1
    };
    let mut parts = vec![first];
    while parts.len() < total {
        parts.push(
            smsc.next_submit(WAIT)
                .await
                .expect("every part is submitted"),
        );
    }
    parts
}

#[tokio::test]
async fn deliver_sm_is_answered_with_submit_sm_accented_and_unaccented() {
    for accents in [true, false] {
        let smsc = PeerSmsc::start("motcua", "secret").await;
        let app = spawn_app_with(AppOptions {
            accents,
            smsc: vec![smsc_settings(&smsc)],
            ..AppOptions::default()
        })
        .await;
        assert!(smsc.wait_bound(WAIT).await, "gateway binds to the SMSC");

        // Found.
        let status = smsc
            .deliver(
                "84987000111",
                "8058",
                8,
                0,
                &ucs2(&format!("Tra cứu {KNOWN_CODE}")),
            )
            .await
            .unwrap();
        assert_eq!(status, 0);
        let parts = collect_reply(&smsc).await;
        let text = decode_parts(&parts);
        assert_eq!(parts[0].destination_addr, "84987000111");
        assert_eq!(parts[0].source_addr, "8058");
        if accents {
            assert_eq!(parts.len(), 2, "two UCS-2 parts: {text}");
            assert!(parts
                .iter()
                .all(|p| p.data_coding == 8 && p.esm_class & 0x40 != 0));
            assert!(text.contains("Đang xử lý"), "{text}");
        } else {
            assert_eq!(parts.len(), 1, "{text}");
            assert_eq!(parts[0].data_coding, 0);
            assert!(text.contains("Dang xu ly"), "{text}");
        }
        assert!(text.contains(KNOWN_CODE), "{text}");
        assert!(!text.contains("Nguy"), "{text}");

        // Not found.
        smsc.deliver("84987000111", "8058", 0, 0, b"TC 000.00.12.H58-240315-0099")
            .await
            .unwrap();
        let text = decode_parts(&collect_reply(&smsc).await);
        assert!(text.contains("240315-0099"), "{text}");
        assert!(
            text.starts_with(if accents {
                "Không tìm thấy"
            } else {
                "Khong tim thay"
            }),
            "{text}"
        );

        // Help.
        smsc.deliver("84987000111", "8058", 3, 0, b"?")
            .await
            .unwrap();
        let text = decode_parts(&collect_reply(&smsc).await);
        assert!(text.contains("8058"), "{text}");
        assert!(
            text.contains(if accents { "mã hồ sơ" } else { "ma ho so" }),
            "{text}"
        );

        // A delivery receipt (esm_class 0x04) is acknowledged and not answered.
        smsc.deliver("84987000111", "8058", 0, 0x04, b"id:1 sub:001 dlvrd:001 submit date:2611271200 done date:2611271200 stat:DELIVRD err:000 text:")
            .await
            .unwrap();
        assert!(smsc.next_submit(Duration::from_millis(800)).await.is_none());
        app.stop().await;
    }
}

#[tokio::test]
async fn the_client_binds_again_after_the_smsc_unbinds_it() {
    let smsc = PeerSmsc::start("motcua", "secret").await;
    let app = spawn_app_with(AppOptions {
        smsc: vec![smsc_settings(&smsc)],
        ..AppOptions::default()
    })
    .await;
    assert!(smsc.wait_bound(WAIT).await);
    smsc.unbind();
    // Wait until the session is gone, then for the new bind.
    let deadline = tokio::time::Instant::now() + WAIT;
    while smsc.is_bound() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(smsc.wait_bound(WAIT).await, "gateway binds again");
    smsc.deliver(
        "0987000111",
        "8058",
        0,
        0,
        format!("TC {KNOWN_CODE}").as_bytes(),
    )
    .await
    .unwrap();
    assert!(!collect_reply(&smsc).await.is_empty());
    app.stop().await;
}
