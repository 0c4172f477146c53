//! Abuse control seen from an SMPP peer: a flood from one number gets the
//! configured replies plus one notice, then silence; a scanner sending
//! random codes is silenced after the configured misses; two gateways share
//! one number's limit through Redis (runs when `TEST_REDIS_URL` names a
//! Redis server; `.ci/run` sets it).

use std::time::Duration;

use motcua_sms::abuse::RateLimitSettings;
use support::peer_esme::PeerEsme;
use support::{decode_parts, spawn_app_with, AppOptions, PASSWORD, SYSTEM_ID};

/// Collects every reply (parts joined) until none arrives for `quiet`.
async fn replies(peer: &mut PeerEsme, quiet: Duration) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(first) = peer.next_deliver(quiet).await {
        let total = if first.esm_class & 0x40 != 0 {
            first.short_message[4]
        } else {
            1
        };
        let mut parts = vec![first];
        for _ in 1..total {
            parts.push(
                peer.next_deliver(Duration::from_secs(5))
                    .await
                    .expect("part"),
            );
        }
        out.push(decode_parts(&parts));
    }
    out
}

fn unaccented(rate_limit: RateLimitSettings) -> AppOptions {
    AppOptions {
        accents: false,
        rate_limit,
        ..AppOptions::default()
    }
}

#[tokio::test]
async fn a_flood_gets_the_allowed_replies_one_notice_then_silence() {
    let app = spawn_app_with(unaccented(RateLimitSettings {
        burst: 3,
        per_hour: 20,
        ..RateLimitSettings::default()
    }))
    .await;
    let mut peer = PeerEsme::bind_transceiver(app.listener, SYSTEM_ID, PASSWORD)
        .await
        .unwrap();
    for i in 0..20 {
        let (status, _) = peer
            .submit("0987000555", "8058", 0, format!("xin chao {i}").as_bytes())
            .await
            .unwrap();
        assert_eq!(status, 0, "every message is still acknowledged");
    }
    let got = replies(&mut peer, Duration::from_millis(1500)).await;
    assert_eq!(got.len(), 4, "3 replies and one notice: {got:#?}");
    assert_eq!(
        got.iter().filter(|t| t.contains("qua nhieu lan")).count(),
        1,
        "{got:#?}"
    );
    // Another number is not affected.
    peer.submit("0987000666", "8058", 0, b"xin chao")
        .await
        .unwrap();
    assert_eq!(
        replies(&mut peer, Duration::from_millis(1000)).await.len(),
        1
    );
    peer.unbind().await;
    app.stop().await;
}

#[tokio::test]
async fn a_scanner_is_silenced_after_the_configured_misses() {
    let app = spawn_app_with(unaccented(RateLimitSettings {
        burst: 100,
        per_hour: 1000,
        per_day: 1000,
        failed_lookups_before_block: 8,
        ..RateLimitSettings::default()
    }))
    .await;
    let mut peer = PeerEsme::bind_transceiver(app.listener, SYSTEM_ID, PASSWORD)
        .await
        .unwrap();
    let mut seed: u64 = 0x5eed;
    let mut answered = Vec::new();
    for _ in 0..50 {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        let code = format!("TC 000.00.30.H58-240101-{:04}", 1000 + (seed >> 33) % 8999);
        peer.submit("0987000777", "8058", 0, code.as_bytes())
            .await
            .unwrap();
        // One code at a time, as a script walking through codes would: while
        // replies are expected, wait for each (its lookup is recorded before
        // the reply leaves); once silenced, a short wait shows nothing comes.
        let wait = if answered.len() < 8 { 5_000 } else { 300 };
        if let Some(reply) = peer.next_deliver(Duration::from_millis(wait)).await {
            answered.push(decode_parts(&[reply]));
        }
    }
    answered.extend(replies(&mut peer, Duration::from_millis(1000)).await);
    assert_eq!(
        answered.len(),
        8,
        "answered until the 8th unknown code: {answered:#?}"
    );
    assert!(answered.iter().all(|t| t.starts_with("Khong tim thay")));
    // Blocked: even a real dossier gets no answer now.
    peer.submit(
        "0987000777",
        "8058",
        0,
        format!("TC {}", support::KNOWN_CODE).as_bytes(),
    )
    .await
    .unwrap();
    assert!(replies(&mut peer, Duration::from_millis(1000))
        .await
        .is_empty());
    peer.unbind().await;
    app.stop().await;
}

#[tokio::test]
#[cfg_attr(not(test_redis_url), ignore = "needs TEST_REDIS_URL (Redis)")]
async fn two_gateways_share_a_number_s_limit_through_redis() {
    let url = support::service("TEST_REDIS_URL");
    let prefix = format!(
        "motcua-test:{}:",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let settings = RateLimitSettings {
        burst: 3,
        per_hour: 20,
        redis_url: Some(url),
        redis_key_prefix: prefix,
        ..RateLimitSettings::default()
    };
    let first = spawn_app_with(unaccented(settings.clone())).await;
    let second = spawn_app_with(unaccented(settings)).await;
    let mut a = PeerEsme::bind_transceiver(first.listener, SYSTEM_ID, PASSWORD)
        .await
        .unwrap();
    let mut b = PeerEsme::bind_transceiver(second.listener, SYSTEM_ID, PASSWORD)
        .await
        .unwrap();
    for i in 0..10 {
        let peer = if i % 2 == 0 { &mut a } else { &mut b };
        peer.submit("0987000999", "8058", 0, format!("alo {i}").as_bytes())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut got = replies(&mut a, Duration::from_millis(1000)).await;
    got.extend(replies(&mut b, Duration::from_millis(500)).await);
    assert_eq!(
        got.len(),
        4,
        "3 replies and one notice across both gateways: {got:#?}"
    );
    assert_eq!(
        got.iter().filter(|t| t.contains("qua nhieu lan")).count(),
        1
    );
    a.unbind().await;
    b.unbind().await;
    first.stop().await;
    second.stop().await;
}
