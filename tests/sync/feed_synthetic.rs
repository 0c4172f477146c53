//! The synthetic core (`motcua-sms core-sim`) over a real socket, against the
//! core feed protocol (docs/core-feed.md): snapshot + head, long-polled
//! changes in order without gaps, 410 for a cursor too old or of another
//! epoch, the digest, 400 and 401 with JSON error bodies.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use motcua_sms::feed::synthetic::Settings;
use motcua_sms::feed::{
    bucket_of, digest_records, ChangesPage, Cursor, Digest, DigestBucket, FeedError, FeedRecord,
    SnapshotPage,
};

use support::core::Core;
use support::feed::{apply, http, FeedClient};

const TOKEN: &str = "s3cret-token";

/// The synthetic core, with the feed client these tests read it through.
struct FedCore {
    core: Core,
    feed: FeedClient,
}

impl FedCore {
    async fn start(dossiers: usize, changes_per_sec: f64, retain: usize) -> FedCore {
        let core = Core::with_settings(Settings {
            listen: "127.0.0.1:0".parse().unwrap(),
            dossiers,
            changes_per_sec,
            seed: 42,
            token: Some(TOKEN.to_owned()),
            retain,
        })
        .await;
        let feed = FeedClient {
            addr: core.addr,
            token: TOKEN.to_owned(),
        };
        FedCore { core, feed }
    }

    async fn stop(self) {
        self.core.stop_cleanly().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_then_long_polled_changes_without_gaps_and_matching_digest() {
    let core = FedCore::start(30, 0.0, 10_000).await;
    let (epoch, head, records) = core.feed.snapshot(7).await;
    assert_eq!(records.len(), 30);
    let codes: Vec<&str> = records.iter().map(|r| r.code.as_str()).collect();
    let mut sorted = codes.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(codes, sorted, "snapshot ordered by MaHoSo, each once");
    assert!(records.iter().all(|r| !r.deleted && r.to_dossier().is_ok()));
    let mut state: BTreeMap<String, FeedRecord> =
        records.into_iter().map(|r| (r.code.clone(), r)).collect();

    // Nothing after the head yet: a long-poll waits, then is woken by a change.
    let poll = {
        let addr = core.feed.addr;
        let target = format!("/v1/changes?after={head}&wait=20");
        tokio::spawn(async move {
            let started = Instant::now();
            let (status, _, body) = http(addr, "GET", &target, Some(TOKEN)).await;
            (status, body, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, stepped) = core.feed.call("POST", "/admin/step?n=120").await;
    assert_eq!(status, 200, "{stepped}");
    let total = stepped["applied"].as_u64().unwrap();
    let (status, body, waited) = poll.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(
        waited < Duration::from_secs(10),
        "woken by the change, not the timeout"
    );
    let first: ChangesPage = serde_json::from_value(body).unwrap();
    assert!(!first.records.is_empty());

    // Follow the feed from the head: every change, in order, no gaps.
    let mut cursor = head;
    let mut seen = 0u64;
    loop {
        let page: ChangesPage = core
            .feed
            .get(&format!("/v1/changes?after={cursor}&limit=25"))
            .await;
        assert_eq!(page.epoch, epoch);
        assert!(page.records.len() <= 25);
        for r in &page.records {
            // The synthetic core bumps a version by one per change: any
            // skipped change would show as a jump.
            let expected = state.get(&r.code).map_or(1, |held| held.version + 1);
            assert_eq!(r.version, expected, "{} jumped", r.code);
            assert_eq!(apply(&mut state, std::slice::from_ref(r)), 1);
        }
        seen += page.records.len() as u64;
        cursor = page.next_cursor;
        if !page.has_more {
            break;
        }
    }
    assert_eq!(seen, total);
    assert!(
        state.values().any(|r| r.deleted),
        "tombstones come through the feed"
    );

    // At the head, wait=0 answers at once with nothing and the same position.
    let idle: ChangesPage = core.feed.get(&format!("/v1/changes?after={cursor}")).await;
    assert!(idle.records.is_empty() && !idle.has_more);
    assert_eq!(idle.next_cursor, cursor);

    // A short long-poll with nothing to say: 200, empty, after about `wait`.
    let started = Instant::now();
    let quiet: ChangesPage = core
        .feed
        .get(&format!("/v1/changes?after={cursor}&wait=1"))
        .await;
    assert!(quiet.records.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(900));

    // The digest of what the client holds equals the core's.
    let digest: Digest = core.feed.get("/v1/digest?buckets=16").await;
    assert_eq!(digest.head_cursor, cursor);
    assert_eq!(digest.digests, digest_records(state.values(), 16));
    let live = state.values().filter(|r| !r.deleted).count() as u64;
    assert_eq!(digest.digests.iter().map(|d| d.count).sum::<u64>(), live);
    let bucket: DigestBucket = core.feed.get("/v1/digest/5?buckets=16").await;
    let mine: Vec<(&str, i64)> = state
        .values()
        .filter(|r| !r.deleted && bucket_of(&r.code, 16) == 5)
        .map(|r| (r.code.as_str(), r.version))
        .collect();
    let theirs: Vec<(&str, i64)> = bucket
        .entries
        .iter()
        .map(|e| (e.code.as_str(), e.version))
        .collect();
    assert_eq!(theirs, mine);

    // And a fresh snapshot's digest is the same.
    let (_, again_head, again) = core.feed.snapshot(1000).await;
    assert_eq!(again_head, cursor);
    assert_eq!(digest_records(&again, 16), digest.digests);
    core.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moving_core_streams_increasing_versions() {
    let core = FedCore::start(50, 400.0, 100_000).await;
    let (_, head, records) = core.feed.snapshot(500).await;
    let mut state: BTreeMap<String, FeedRecord> =
        records.into_iter().map(|r| (r.code.clone(), r)).collect();
    let mut last_seen: BTreeMap<String, i64> = BTreeMap::new();
    let mut cursor = head;
    let mut received = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while received < 200 {
        assert!(Instant::now() < deadline, "changes keep coming");
        let page: ChangesPage = core
            .feed
            .get(&format!("/v1/changes?after={cursor}&wait=5&limit=50"))
            .await;
        for r in &page.records {
            if let Some(v) = last_seen.insert(r.code.clone(), r.version) {
                assert!(r.version > v, "{} went {v} → {}", r.code, r.version);
            }
        }
        received += page.records.len();
        apply(&mut state, &page.records);
        cursor = page.next_cursor;
    }
    core.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_cursor_is_gone_and_an_epoch_reset_is_visible() {
    let core = FedCore::start(10, 0.0, 5).await;
    let (epoch, head, _) = core.feed.snapshot(100).await;
    let (status, _) = core.feed.call("POST", "/admin/step?n=20").await;
    assert_eq!(status, 200);
    let (status, body) = core
        .feed
        .call("GET", &format!("/v1/changes?after={head}"))
        .await;
    assert_eq!(status, 410, "{body}");
    let error: FeedError = serde_json::from_value(body).unwrap();
    assert_eq!(error.error.status(), 410);
    assert_eq!(serde_json::to_value(error.error).unwrap(), "cursor_expired");
    assert_eq!(error.epoch.as_deref(), Some(epoch.as_str()));

    // A cursor within the retained log still works.
    let digest: Digest = core.feed.get("/v1/digest").await;
    let recent: ChangesPage = core
        .feed
        .get(&format!("/v1/changes?after={}", digest.head_cursor))
        .await;
    assert!(recent.records.is_empty());

    // A long-poll waiting across a reset learns of it.
    let poll = {
        let addr = core.feed.addr;
        let target = format!("/v1/changes?after={}&wait=20", digest.head_cursor);
        tokio::spawn(async move { http(addr, "GET", &target, Some(TOKEN)).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, reset) = core.feed.call("POST", "/admin/reset-epoch").await;
    assert_eq!(status, 200);
    let new_epoch = reset["epoch"].as_str().unwrap().to_owned();
    assert_ne!(new_epoch, epoch);
    let (status, _, body) = poll.await.unwrap();
    assert_eq!(status, 410, "{body}");
    assert_eq!(body["error"], "epoch_changed");
    assert_eq!(body["epoch"], new_epoch.as_str());

    let (status, body) = core
        .feed
        .call("GET", &format!("/v1/changes?after={}", digest.head_cursor))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (410, Some("epoch_changed"))
    );

    // Re-snapshot: the new epoch, the same dossiers, a working head.
    let (again_epoch, again_head, records) = core.feed.snapshot(3).await;
    assert_eq!(again_epoch, new_epoch);
    assert_eq!(
        records.len() as u64,
        digest.digests.iter().map(|d| d.count).sum::<u64>()
    );
    let page: ChangesPage = core
        .feed
        .get(&format!("/v1/changes?after={again_head}"))
        .await;
    assert_eq!(page.epoch, new_epoch);
    core.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_parameters_get_400_and_bad_tokens_401() {
    let core = FedCore::start(5, 0.0, 100).await;
    let snapshot: SnapshotPage = core.feed.get("/v1/snapshot").await;
    let head = snapshot.head_cursor;
    // Cursors are opaque to clients; this test knows the core's encoding.
    let ahead = Cursor {
        seq: 1000,
        ..Cursor::decode(&head).unwrap()
    }
    .encode();
    for (target, names) in [
        ("/v1/changes".to_owned(), "after"),
        ("/v1/changes?after=zzz".to_owned(), "after"),
        (format!("/v1/changes?after={ahead}"), "after"),
        (format!("/v1/changes?after={head}&limit=0"), "limit"),
        (format!("/v1/changes?after={head}&limit=1001"), "limit"),
        (format!("/v1/changes?after={head}&limit=ten"), "limit"),
        (format!("/v1/changes?after={head}&wait=61"), "wait"),
        ("/v1/snapshot?limit=-1".to_owned(), "limit"),
        ("/v1/snapshot?page_token=nope".to_owned(), "page_token"),
        ("/v1/digest?buckets=0".to_owned(), "buckets"),
        ("/v1/digest?buckets=4097".to_owned(), "buckets"),
        ("/v1/digest/abc".to_owned(), "bucket"),
        ("/v1/digest/16?buckets=16".to_owned(), "bucket"),
    ] {
        let (status, body) = core.feed.call("GET", &target).await;
        assert_eq!(status, 400, "{target}: {body}");
        assert_eq!(body["error"], "bad_request", "{target}");
        assert!(
            body["message"].as_str().unwrap().contains(names),
            "{target}: the message names {names}: {body}"
        );
        assert_eq!(body["epoch"], snapshot.epoch.as_str());
    }

    for target in [
        "/v1/snapshot",
        "/v1/digest",
        "/v1/changes?after=zzz",
        "/admin/reset-epoch",
    ] {
        for token in [None, Some("wrong")] {
            let method = if target.starts_with("/admin") {
                "POST"
            } else {
                "GET"
            };
            let (status, headers, body) = http(core.feed.addr, method, target, token).await;
            assert_eq!(status, 401, "{target} with {token:?}: {body}");
            assert_eq!(body["error"], "unauthorized");
            assert!(headers
                .iter()
                .any(|(k, v)| k == "www-authenticate" && v == "Bearer"));
        }
    }

    let (status, body) = core.feed.call("GET", "/v2/changes").await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
    core.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_answers_503_until_it_ends() {
    let core = FedCore::start(10, 0.0, 1000).await;
    let (epoch, head, records) = core.feed.snapshot(100).await;

    // A long-poll waiting when the core goes down learns of it.
    let poll = {
        let addr = core.feed.addr;
        let target = format!("/v1/changes?after={head}&wait=20");
        tokio::spawn(async move { http(addr, "GET", &target, Some(TOKEN)).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, body) = core.feed.call("POST", "/admin/outage?on=true").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outage"], true);
    let (status, _, body) = poll.await.unwrap();
    assert_eq!((status, body["error"].as_str()), (503, Some("unavailable")));

    for target in [
        format!("/v1/changes?after={head}"),
        "/v1/changes?after=zzz".to_owned(),
        "/v1/snapshot".to_owned(),
        "/v1/digest".to_owned(),
        "/v1/digest/0?buckets=4".to_owned(),
        "/v1/elsewhere".to_owned(),
    ] {
        let (status, body) = core.feed.call("GET", &target).await;
        assert_eq!(status, 503, "{target}: {body}");
        assert_eq!(body["error"], "unavailable", "{target}");
    }
    // Down, but not open: a wrong token is still refused.
    let (status, _, body) = http(core.feed.addr, "GET", "/v1/snapshot", Some("wrong")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, body) = core.feed.call("POST", "/admin/outage?on=maybe").await;
    assert_eq!((status, body["error"].as_str()), (400, Some("bad_request")));
    assert!(body["message"].as_str().unwrap().contains("on"), "{body}");

    let (status, body) = core.feed.call("POST", "/admin/outage?on=false").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outage"], false);
    let (again_epoch, again_head, again) = core.feed.snapshot(100).await;
    assert_eq!((again_epoch, again_head), (epoch, head.clone()));
    assert_eq!(again, records, "nothing changed while down");
    let page: ChangesPage = core.feed.get(&format!("/v1/changes?after={head}")).await;
    assert!(page.records.is_empty());
    assert_eq!(page.pending, Some(0));
    core.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_change_shows_only_in_the_digest() {
    let core = FedCore::start(30, 0.0, 1000).await;
    let (_, head, records) = core.feed.snapshot(100).await;
    let mut state: BTreeMap<String, FeedRecord> =
        records.into_iter().map(|r| (r.code.clone(), r)).collect();
    let (status, _) = core.feed.call("POST", "/admin/step?n=10").await;
    assert_eq!(status, 200);
    let page: ChangesPage = core
        .feed
        .get(&format!("/v1/changes?after={head}&limit=4"))
        .await;
    assert_eq!(page.records.len(), 4);
    assert!(page.has_more);
    assert_eq!(page.pending, Some(6), "exactly the changes left");
    let (rest, cursor) = core.feed.follow(head, 100).await;
    apply(&mut state, &rest);
    let digest: Digest = core.feed.get("/v1/digest?buckets=8").await;
    assert_eq!(digest.digests, digest_records(state.values(), 8));

    let code = state.values().find(|r| !r.deleted).unwrap().code.clone();
    let held = state[&code].clone();
    let (status, state_body) = core
        .feed
        .call("GET", &format!("/admin/state?code={code}"))
        .await;
    assert_eq!(status, 200, "{state_body}");
    let before: FeedRecord = serde_json::from_value(state_body).unwrap();
    assert_eq!(before, held, "the core's record is the one the feed sent");

    let (status, changed) = core
        .feed
        .call("POST", &format!("/admin/silent-change?code={code}"))
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["code"], code.as_str());
    assert_eq!(changed["version"], held.version + 1);
    let (_, state_body) = core
        .feed
        .call("GET", &format!("/admin/state?code={code}"))
        .await;
    let after: FeedRecord = serde_json::from_value(state_body).unwrap();
    assert_eq!(after.version, held.version + 1);
    assert_eq!(after.fields["TrangThaiHoSo"], changed["status"]);

    // Not in the log ...
    let idle: ChangesPage = core.feed.get(&format!("/v1/changes?after={cursor}")).await;
    assert!(idle.records.is_empty());
    // ... but the digest differs, in exactly that dossier's bucket.
    let digest: Digest = core.feed.get("/v1/digest?buckets=8").await;
    let mine = digest_records(state.values(), 8);
    let differing: Vec<u32> = digest
        .digests
        .iter()
        .zip(&mine)
        .filter(|(theirs, mine)| theirs != mine)
        .map(|(theirs, _)| theirs.bucket)
        .collect();
    let bucket = bucket_of(&code, 8);
    assert_eq!(differing, vec![bucket]);
    let listing: DigestBucket = core
        .feed
        .get(&format!("/v1/digest/{bucket}?buckets=8"))
        .await;
    let entry = listing.entries.iter().find(|e| e.code == code).unwrap();
    assert_eq!(entry.version, held.version + 1);

    // Unknown or missing codes.
    for target in [
        "/admin/silent-change?code=000.00.00.H00-000000-0000",
        "/admin/state?code=000.00.00.H00-000000-0000",
    ] {
        let method = if target.contains("silent") {
            "POST"
        } else {
            "GET"
        };
        let (status, body) = core.feed.call(method, target).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (404, Some("not_found")),
            "{target}"
        );
    }
    let (status, body) = core.feed.call("GET", "/admin/state").await;
    assert_eq!((status, body["error"].as_str()), (400, Some("bad_request")));
    core.stop().await;
}
