//! The listener role driven by an independent ESME (built on the smpp34
//! crate's codec): binds, citizens' messages as submit_sm, replies as
//! deliver_sm — found, not found, help; accented (UCS-2, two parts) and
//! unaccented (GSM-7, one part); the privacy rule; a refused bind.

use std::time::Duration;

use support::peer_esme::{PeerEsme, RawMessage};
use support::{
    decode_parts, spawn_app, spawn_app_with, ucs2, AppOptions, KNOWN_CODE, PASSWORD,
    SERVICE_NUMBER, SYSTEM_ID,
};

const WAIT: Duration = Duration::from_secs(10);

/// Collects the parts of one reply (all parts of a concatenated message).
async fn receive_reply(peer: &mut PeerEsme) -> Vec<RawMessage> {
    let first = peer.next_deliver(WAIT).await.expect("a reply arrives");
    let total = if first.esm_class & 0x40 != 0 {
        first.short_message[4] as usize
    } else {
        1
    };
    let mut parts = vec![first];
    while parts.len() < total {
        parts.push(peer.next_deliver(WAIT).await.expect("every part arrives"));
    }
    parts
}

#[tokio::test]
async fn found_reply_accented_arrives_as_two_ucs2_parts_without_the_name_for_strangers() {
    let app = spawn_app().await;
    let mut peer = PeerEsme::bind_transceiver(app.listener, SYSTEM_ID, PASSWORD)
        .await
        .expect("bind accepted");
    let (status, message_id) = peer
        .submit(
            "84987000111",
            SERVICE_NUMBER,
            0,
            b"tc 000 00 12 h58 240315 7",
        )
        .await
        .unwrap();
    assert_eq!(status, 0);
    assert!(!message_id.is_empty());

    let parts = receive_reply(&mut peer).await;
    assert_eq!(parts.len(), 2, "accented found reply is two UCS-2 segments");
    for (i, part) in parts.iter().enumerate() {
        assert_eq!(part.data_coding, 8);
        assert_eq!(part.esm_class & 0x40, 0x40);
        assert_eq!(part.short_message[..3], [0x05, 0x00, 0x03]);
        assert_eq!(part.short_message[4], 2);
        assert_eq!(part.short_message[5] as usize, i + 1);
        assert_eq!(part.destination_addr, "84987000111");
        assert_eq!(part.source_addr, SERVICE_NUMBER);
    }
    assert_eq!(
        parts[0].short_message[3], parts[1].short_message[3],
        "same reference"
    );
    let text = decode_parts(&parts);
    assert!(text.contains(KNOWN_CODE), "{text}");
    assert!(text.contains("Đang xử lý"), "{text}");
    assert!(text.contains("hẹn trả 29/03/2024"), "{text}");
    assert!(text.contains("trễ hạn"), "{text}");
    assert!(text.contains("Cấp giấy phép xây dựng"), "{text}");
    assert!(
        !text.contains("Nguyễn Văn An"),
        "name leaked to a stranger: {text}"
    );
    peer.unbind().await;
    app.stop().await;
}

#[tokio::test]
async fn the_owner_sees_the_name_and_accented_input_is_read() {
    let app = spawn_app().await;
    let mut peer = PeerEsme::bind_transceiver(app.listener, SYSTEM_ID, PASSWORD)
        .await
        .unwrap();
    peer.submit(
        "0912345678",
        SERVICE_NUMBER,
        8,
        &ucs2("tra cứu hồ sơ 000.00.12.H58–240315–0007 ạ"),
    )
    .await
    .unwrap();
    let text = decode_parts(&receive_reply(&mut peer).await);
    assert!(text.contains("Nguyễn Văn An"), "{text}");
    peer.unbind().await;
    app.stop().await;
}

#[tokio::test]
async fn unaccented_replies_fit_one_gsm7_segment() {
    let app = spawn_app_with(AppOptions {
        accents: false,
        ..AppOptions::default()
    })
    .await;
    let mut peer = PeerEsme::bind_transceiver(app.listener, SYSTEM_ID, PASSWORD)
        .await
        .unwrap();

    peer.submit("0987000111", SERVICE_NUMBER, 0, b"HS 38.98.H29-210519-0003")
        .await
        .unwrap();
    let parts = receive_reply(&mut peer).await;
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].data_coding, 0);
    assert_eq!(parts[0].esm_class & 0x40, 0);
    let text = decode_parts(&parts);
    assert!(text.contains("38.98.H29-210519-0003"), "{text}");
    assert!(text.contains("Da tra ket qua"), "{text}");
    assert!(text.contains("dung han"), "{text}");

    peer.submit(
        "0987000111",
        SERVICE_NUMBER,
        3,
        b"TC 000.00.12.H58-240315-0099",
    )
    .await
    .unwrap();
    let text = decode_parts(&receive_reply(&mut peer).await);
    assert!(
        text.starts_with("Khong tim thay ho so 000.00.12.H58-240315-0099"),
        "{text}"
    );

    peer.submit("0987000111", SERVICE_NUMBER, 0, b"xin chao")
        .await
        .unwrap();
    let parts = receive_reply(&mut peer).await;
    assert_eq!(parts.len(), 1);
    let text = decode_parts(&parts);
    assert!(text.contains("TC <ma ho so>"), "{text}");
    assert!(text.contains(SERVICE_NUMBER), "{text}");
    peer.unbind().await;
    app.stop().await;
}

#[tokio::test]
async fn accented_not_found_and_help_replies() {
    let app = spawn_app().await;
    let mut peer = PeerEsme::bind_transceiver(app.listener, SYSTEM_ID, PASSWORD)
        .await
        .unwrap();
    peer.submit(
        "0987000111",
        SERVICE_NUMBER,
        0,
        b"TC 000.00.12.H58-240315-0099",
    )
    .await
    .unwrap();
    let text = decode_parts(&receive_reply(&mut peer).await);
    assert!(
        text.starts_with("Không tìm thấy hồ sơ 000.00.12.H58-240315-0099"),
        "{text}"
    );
    peer.submit("0987000111", SERVICE_NUMBER, 0, b"hello")
        .await
        .unwrap();
    let text = decode_parts(&receive_reply(&mut peer).await);
    assert!(text.contains("soạn TC <mã hồ sơ> gửi 8058"), "{text}");
    peer.unbind().await;
    app.stop().await;
}

#[tokio::test]
async fn wrong_password_is_refused_and_alphanumeric_senders_get_no_reply() {
    let app = spawn_app().await;
    let refused = PeerEsme::bind_transceiver(app.listener, SYSTEM_ID, "nope").await;
    assert_eq!(
        refused.err().and_then(|e| e.status()),
        Some(0x0E),
        "ESME_RINVPASWD"
    );
    let unknown = PeerEsme::bind_transceiver(app.listener, "stranger", PASSWORD).await;
    assert_eq!(
        unknown.err().and_then(|e| e.status()),
        Some(0x0F),
        "ESME_RINVSYSID"
    );

    let mut peer = PeerEsme::bind_transceiver(app.listener, SYSTEM_ID, PASSWORD)
        .await
        .unwrap();
    let (status, _) = peer
        .submit(
            "VIETTEL",
            SERVICE_NUMBER,
            0,
            format!("TC {KNOWN_CODE}").as_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(status, 0, "accepted, just not answered");
    assert!(peer
        .next_deliver(Duration::from_millis(800))
        .await
        .is_none());
    assert_eq!(peer.enquire_link().await.unwrap(), 0);
    peer.unbind().await;
    app.stop().await;
}
