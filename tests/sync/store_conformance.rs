//! The read model's conformance suite: the same scenarios, through
//! [`ReadModel`], against SQLite (a temporary file) and PostgreSQL (a fresh
//! database per test, created and dropped through the maintenance
//! connection `TEST_DATABASE_URL` names, e.g.
//! `postgres://postgres@127.0.0.1:5432`). Without that variable the
//! PostgreSQL half says so and passes; CI sets it.
//!
//! Each scenario is written once; `scenarios!` makes a `sqlite::NAME` and a
//! `postgres::NAME` test of it.

use support::temp_postgres;

use std::future::Future;

use chrono::{NaiveDate, NaiveDateTime};
use motcua_sms::domain::{Dossier, DossierCode, DossierStatus, Msisdn};
use motcua_sms::store::{
    ApplyMode, ApplyReport, Change, DossierLookup, DossierWriter, ReadModel, SyncCheckpoint,
    SyncStage, UpsertOutcome,
};
use tokio::task::JoinHandle;

/// A store under test, and the URL it was opened from (to reopen it).
struct Subject {
    store: ReadModel,
    url: String,
}

async fn with_sqlite<F, Fut>(scenario: F)
where
    F: FnOnce(Subject) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/read.db", dir.path().display());
    let store = ReadModel::open(&url).await.unwrap();
    assert_eq!(store.dialect(), "sqlite");
    scenario(Subject {
        store: store.clone(),
        url,
    })
    .await;
    store.close().await;
}

/// `spawn` starts the scenario on a task of its own (spawned where its type
/// is concrete: a generic `Send` bound on it trips the compiler's
/// higher-ranked lifetime check), so that a failing one still lets the
/// database be dropped.
async fn with_postgres(spawn: impl FnOnce(Subject) -> JoinHandle<()>) {
    let maintenance = support::service(temp_postgres::ENV);
    let db = temp_postgres::TempDatabase::create(&maintenance).await;
    let store = ReadModel::open(&db.url).await.unwrap();
    assert_eq!(store.dialect(), "postgres");
    let outcome = spawn(Subject {
        store: store.clone(),
        url: db.url.clone(),
    })
    .await;
    store.close().await;
    db.drop().await;
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}

macro_rules! scenarios {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::with_sqlite(super::$name).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[cfg_attr(not(test_database_url), ignore = "needs TEST_DATABASE_URL (a PostgreSQL server)")]
                async fn $name() {
                    super::with_postgres(|s| tokio::spawn(super::$name(s))).await;
                }
            )+
        }
    };
}

scenarios!(
    batches_apply_in_order,
    tombstones_keep_late_copies_out,
    snapshots_mark_what_they_list_and_finish,
    checkpoints_round_trip,
    live_versions_list_the_live_dossiers,
    find_returns_what_was_written,
    upsert_batch_reports_each_dossier,
    concurrent_appliers_keep_the_highest_version,
    reopening_keeps_the_data,
    keypad_digits_find_every_code_sharing_them,
);

fn code(n: u32) -> DossierCode {
    DossierCode::parse(&format!("000.00.12.H58-240315-{n:04}")).unwrap()
}

fn time(y: i32, m: u32, d: u32, h: u32, min: u32, s: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(y, m, d)
        .unwrap()
        .and_hms_opt(h, min, s)
        .unwrap()
}

/// Dossier `n` with every field set.
fn full(n: u32, status: i64, version: i64) -> Dossier {
    Dossier {
        code: code(n),
        procedure_name: Some("Cấp giấy phép xây dựng nhà ở riêng lẻ".into()),
        agency_name: Some("UBND huyện Đông Anh".into()),
        status: DossierStatus::from_code(status).unwrap(),
        received_at: Some(time(2024, 3, 15, 8, 30, 0)),
        appointment_at: Some(time(2024, 3, 29, 17, 0, 0)),
        finished_at: Some(time(2024, 3, 28, 23, 59, 59)),
        returned_at: Some(time(2024, 3, 29, 0, 0, 1)),
        owner_phone: Some(Msisdn::parse("0912345678").unwrap()),
        owner_name: Some("Nguyễn Văn An".into()),
        version,
    }
}

/// Dossier `n` with nothing but its status and version.
fn bare(n: u32, status: i64, version: i64) -> Dossier {
    Dossier {
        code: code(n),
        procedure_name: None,
        agency_name: None,
        status: DossierStatus::from_code(status).unwrap(),
        received_at: None,
        appointment_at: None,
        finished_at: None,
        returned_at: None,
        owner_phone: None,
        owner_name: None,
        version,
    }
}

fn at(n: u32, status: i64, version: i64) -> Change {
    Change::Upsert(full(n, status, version))
}

fn gone(n: u32, version: i64) -> Change {
    Change::Delete {
        code: code(n),
        version,
    }
}

fn report(written: u64, deleted: u64, unchanged: u64) -> ApplyReport {
    ApplyReport {
        written,
        deleted,
        unchanged,
    }
}

fn streaming(source: &str, cursor: &str) -> SyncCheckpoint {
    SyncCheckpoint {
        source: source.into(),
        epoch: "e1".into(),
        stage: SyncStage::Streaming {
            cursor: cursor.into(),
        },
        generation: 1,
        pending: Some(3),
    }
}

async fn version_of(store: &ReadModel, n: u32) -> Option<i64> {
    store.find(&code(n)).await.unwrap().map(|d| d.version)
}

async fn sorted_live(store: &ReadModel) -> Vec<(String, i64)> {
    let mut live = store.live_versions().await.unwrap();
    live.sort();
    live
}

async fn batches_apply_in_order(s: Subject) {
    let store = &s.store;
    let done = store
        .apply(
            &[
                at(1, 2, 1),
                at(1, 4, 2),
                at(1, 3, 2),
                at(2, 2, 1),
                gone(2, 2),
                at(2, 4, 1),
                gone(3, 7),
                at(4, 2, 3),
                at(4, 5, 9),
                at(4, 6, 4),
            ],
            ApplyMode::Guarded,
            Some(&streaming("feed", "c1")),
        )
        .await
        .unwrap();
    // Written: 1 (v2) and 4 (v9); deleted: 2 and 3 (a tombstone only);
    // refused: 1@2 again, 2@1 after its deletion, 4@4 below 9.
    assert_eq!(done, report(2, 2, 3));
    let one = store.find(&code(1)).await.unwrap().unwrap();
    assert_eq!((one.version, one.status.code()), (2, 4));
    assert_eq!(store.find(&code(2)).await.unwrap(), None);
    assert_eq!(store.find(&code(3)).await.unwrap(), None);
    let four = store.find(&code(4)).await.unwrap().unwrap();
    assert_eq!((four.version, four.status.code()), (9, 5));
    // A replay of the whole batch changes nothing.
    let replay = store
        .apply(
            &[at(1, 2, 1), at(1, 4, 2), gone(2, 2), at(4, 5, 9)],
            ApplyMode::Guarded,
            None,
        )
        .await
        .unwrap();
    assert_eq!(replay, report(0, 0, 4));
    // Upsert, delete, upsert again within one batch: the last one stands.
    let again = store
        .apply(
            &[
                at(5, 2, 1),
                gone(5, 2),
                at(5, 9, 3),
                gone(1, 3),
                at(1, 10, 4),
            ],
            ApplyMode::Guarded,
            None,
        )
        .await
        .unwrap();
    assert_eq!(again, report(2, 0, 0));
    assert_eq!(version_of(store, 5).await, Some(3));
    assert_eq!(version_of(store, 1).await, Some(4));
    assert_eq!(store.count().await.unwrap(), 3);
    // An empty batch is nothing.
    assert_eq!(
        store.apply(&[], ApplyMode::Guarded, None).await.unwrap(),
        report(0, 0, 0)
    );
}

async fn tombstones_keep_late_copies_out(s: Subject) {
    let store = &s.store;
    store
        .apply(&[at(1, 2, 3)], ApplyMode::Guarded, None)
        .await
        .unwrap();
    assert_eq!(
        store
            .apply(&[gone(1, 5)], ApplyMode::Guarded, None)
            .await
            .unwrap(),
        report(0, 1, 0)
    );
    // Older or equal copies, and an older deletion, are refused.
    assert_eq!(
        store
            .apply(
                &[at(1, 4, 4), at(1, 4, 5), gone(1, 4)],
                ApplyMode::Guarded,
                None
            )
            .await
            .unwrap(),
        report(0, 0, 3)
    );
    assert_eq!(store.find(&code(1)).await.unwrap(), None);
    // Snapshot pages are guarded by tombstones too.
    assert_eq!(
        store
            .apply(&[at(1, 4, 5)], ApplyMode::Snapshot { generation: 1 }, None)
            .await
            .unwrap(),
        report(0, 0, 1)
    );
    assert_eq!(store.find(&code(1)).await.unwrap(), None);
    // A deletion of a dossier never seen leaves a tombstone all the same.
    store
        .apply(&[gone(2, 3)], ApplyMode::Guarded, None)
        .await
        .unwrap();
    assert_eq!(
        store
            .upsert_batch(&[full(2, 2, 2), full(2, 2, 3)])
            .await
            .unwrap(),
        vec![UpsertOutcome::Unchanged, UpsertOutcome::Unchanged]
    );
    // A later deletion raises the tombstone's version.
    store
        .apply(&[gone(1, 8)], ApplyMode::Guarded, None)
        .await
        .unwrap();
    assert_eq!(
        store
            .apply(&[at(1, 4, 7)], ApplyMode::Guarded, None)
            .await
            .unwrap(),
        report(0, 0, 1)
    );
    // Newer versions come back, and their tombstones go.
    assert_eq!(
        store
            .apply(&[at(1, 9, 9), at(2, 9, 4)], ApplyMode::Guarded, None)
            .await
            .unwrap(),
        report(2, 0, 0)
    );
    assert_eq!(version_of(store, 1).await, Some(9));
    assert_eq!(version_of(store, 2).await, Some(4));
    store
        .apply(&[gone(1, 10)], ApplyMode::Guarded, None)
        .await
        .unwrap();
    assert_eq!(
        store
            .apply(&[at(1, 2, 10), at(1, 2, 11)], ApplyMode::Guarded, None)
            .await
            .unwrap(),
        report(1, 0, 1)
    );
    // The authoritative word overrides a tombstone.
    store
        .apply(&[gone(2, 20)], ApplyMode::Guarded, None)
        .await
        .unwrap();
    assert_eq!(
        store
            .apply(
                &[at(2, 3, 1)],
                ApplyMode::Authoritative { generation: 5 },
                None
            )
            .await
            .unwrap(),
        report(1, 0, 0)
    );
    assert_eq!(version_of(store, 2).await, Some(1));
}

async fn snapshots_mark_what_they_list_and_finish(s: Subject) {
    let store = &s.store;
    store
        .apply(
            &[at(1, 2, 5), at(2, 2, 1), at(3, 2, 1), at(4, 2, 2)],
            ApplyMode::Guarded,
            None,
        )
        .await
        .unwrap();
    // Generation 1, page 1: lists 1 (older: kept) and 2 (newer: written).
    let page = store
        .apply(
            &[at(1, 2, 4), at(2, 4, 2)],
            ApplyMode::Snapshot { generation: 1 },
            None,
        )
        .await
        .unwrap();
    assert_eq!(page, report(1, 0, 1));
    // Page 2 lists 5 (new) and 4 at its version (kept, but listed).
    let page = store
        .apply(
            &[at(5, 2, 1), at(4, 2, 2)],
            ApplyMode::Snapshot { generation: 1 },
            None,
        )
        .await
        .unwrap();
    assert_eq!(page, report(1, 0, 1));
    // A change streamed meanwhile (guarded) neither marks nor unmarks.
    store
        .apply(&[at(2, 5, 3), at(6, 2, 1)], ApplyMode::Guarded, None)
        .await
        .unwrap();
    let checkpoint = streaming("feed", "head");
    let deleted = store.finish_snapshot(1, false, &checkpoint).await.unwrap();
    // 3 and 6 were not listed.
    assert_eq!(deleted, 2);
    assert_eq!(
        sorted_live(store).await,
        vec![
            (code(1).to_string(), 5),
            (code(2).to_string(), 3),
            (code(4).to_string(), 2),
            (code(5).to_string(), 1),
        ]
    );
    let status = store.sync_status("feed").await.unwrap().unwrap();
    assert_eq!(status.checkpoint, checkpoint);
    assert_eq!(status.applied_total, 2);
    // Their tombstones keep their versions out.
    assert_eq!(
        store
            .apply(&[at(3, 4, 1), at(6, 4, 1)], ApplyMode::Guarded, None)
            .await
            .unwrap(),
        report(0, 0, 2)
    );
    // Every live dossier the next generation does not list goes, each
    // leaving a tombstone at its version; tombstones already there stay.
    store
        .apply(&[gone(7, 9)], ApplyMode::Guarded, None)
        .await
        .unwrap();
    store
        .apply(&[at(8, 2, 4)], ApplyMode::Guarded, None)
        .await
        .unwrap();
    assert_eq!(
        store.finish_snapshot(2, false, &checkpoint).await.unwrap(),
        5
    );
    assert!(store.live_versions().await.unwrap().is_empty());
    assert_eq!(
        store
            .apply(
                &[at(7, 2, 9), at(8, 2, 4), at(1, 2, 5), at(1, 2, 6)],
                ApplyMode::Guarded,
                None
            )
            .await
            .unwrap(),
        report(1, 0, 3)
    );
    // A new epoch's snapshot is the truth whatever its versions, and
    // finishing it drops every tombstone.
    store
        .apply(&[at(2, 2, 4)], ApplyMode::Guarded, None)
        .await
        .unwrap();
    let page = store
        .apply(
            &[at(1, 9, 1), at(3, 3, 1)],
            ApplyMode::Authoritative { generation: 3 },
            None,
        )
        .await
        .unwrap();
    assert_eq!(page, report(2, 0, 0));
    assert_eq!(
        store
            .finish_snapshot(3, true, &streaming("feed", "h3"))
            .await
            .unwrap(),
        1
    );
    let one = store.find(&code(1)).await.unwrap().unwrap();
    assert_eq!((one.version, one.status), (1, DossierStatus::Processed));
    assert_eq!(store.find(&code(2)).await.unwrap(), None);
    assert_eq!(
        store
            .apply(&[at(2, 2, 1), at(6, 2, 1)], ApplyMode::Guarded, None)
            .await
            .unwrap(),
        report(2, 0, 0)
    );
    // Deletions within a page count as such and list the dossier as gone.
    let page = store
        .apply(
            &[gone(2, 2), at(9, 2, 1)],
            ApplyMode::Snapshot { generation: 4 },
            None,
        )
        .await
        .unwrap();
    assert_eq!(page, report(1, 1, 0));
    assert_eq!(
        store
            .finish_snapshot(4, false, &streaming("feed", "h4"))
            .await
            .unwrap(),
        3
    );
    assert_eq!(sorted_live(store).await, vec![(code(9).to_string(), 1)]);
}

async fn checkpoints_round_trip(s: Subject) {
    let store = &s.store;
    assert_eq!(store.sync_status("feed").await.unwrap(), None);
    assert!(store.all_sync_status().await.unwrap().is_empty());
    // An exchange noted for a source without state stores nothing.
    store.note_exchange("feed", 1, Ok(Some(4))).await.unwrap();
    assert_eq!(store.sync_status("feed").await.unwrap(), None);

    let first_page = SyncCheckpoint {
        source: "feed".into(),
        epoch: "epoch-2024".into(),
        stage: SyncStage::Snapshot {
            head_cursor: "head-17".into(),
            page_token: None,
            authoritative: true,
        },
        generation: 2,
        pending: None,
    };
    // An empty batch still stores its checkpoint.
    store
        .apply(&[], ApplyMode::Guarded, Some(&first_page))
        .await
        .unwrap();
    let status = store.sync_status("feed").await.unwrap().unwrap();
    assert_eq!(status.checkpoint, first_page);
    assert_eq!(status.applied_total, 0);
    assert_eq!(status.last_applied_at_ms, None);
    assert_eq!(status.last_error, None);
    let first_ok = status.last_ok_at_ms.expect("stamped");

    let second_page = SyncCheckpoint {
        stage: SyncStage::Snapshot {
            head_cursor: "head-17".into(),
            page_token: Some("page 2 ✓".into()),
            authoritative: false,
        },
        pending: Some(u64::MAX),
        ..first_page.clone()
    };
    store
        .apply(
            &[at(1, 2, 1), at(2, 2, 1), at(1, 2, 1)],
            ApplyMode::Snapshot { generation: 2 },
            Some(&second_page),
        )
        .await
        .unwrap();
    let status = store.sync_status("feed").await.unwrap().unwrap();
    // Pending counts beyond what the database holds saturate.
    assert_eq!(
        status.checkpoint,
        SyncCheckpoint {
            pending: Some(i64::MAX as u64),
            ..second_page.clone()
        }
    );
    assert_eq!(status.applied_total, 2);
    assert!(status.last_ok_at_ms.unwrap() >= first_ok);
    let applied_at = status.last_applied_at_ms.expect("stamped");

    // A batch that alters nothing keeps the last application's time.
    let streaming_feed = streaming("feed", "c-42");
    store
        .apply(&[at(1, 2, 1)], ApplyMode::Guarded, Some(&streaming_feed))
        .await
        .unwrap();
    let status = store.sync_status("feed").await.unwrap().unwrap();
    assert_eq!(status.checkpoint, streaming_feed);
    assert_eq!(status.applied_total, 2);
    assert_eq!(status.last_applied_at_ms, Some(applied_at));

    // Failures are noted, and cleared by the next success or checkpoint.
    store
        .note_exchange(
            "feed",
            5,
            Err(&std::io::Error::other("core unreachable: 503")),
        )
        .await
        .unwrap();
    let status = store.sync_status("feed").await.unwrap().unwrap();
    assert_eq!(status.last_error.as_deref(), Some("core unreachable: 503"));
    assert_eq!(status.checkpoint, streaming_feed);
    store.note_exchange("feed", 7, Ok(None)).await.unwrap();
    let status = store.sync_status("feed").await.unwrap().unwrap();
    assert_eq!((status.last_error, status.last_ok_at_ms), (None, Some(7)));
    assert_eq!(status.checkpoint.pending, None);
    store.note_exchange("feed", 8, Ok(Some(12))).await.unwrap();
    store
        .note_exchange("feed", 9, Err(&std::io::Error::other("timeout")))
        .await
        .unwrap();
    let status = store.sync_status("feed").await.unwrap().unwrap();
    assert_eq!(status.last_ok_at_ms, Some(8));
    assert_eq!(status.checkpoint.pending, Some(12));
    store
        .apply(&[gone(1, 2)], ApplyMode::Guarded, Some(&streaming_feed))
        .await
        .unwrap();
    let status = store.sync_status("feed").await.unwrap().unwrap();
    assert_eq!(status.last_error, None);
    assert_eq!(status.applied_total, 3);

    // Sources are kept apart, listed by name.
    let push = SyncCheckpoint {
        epoch: "e9".into(),
        ..streaming("push", "p-1")
    };
    store.finish_snapshot(0, false, &push).await.unwrap();
    let all = store.all_sync_status().await.unwrap();
    let names: Vec<&str> = all.iter().map(|s| s.checkpoint.source.as_str()).collect();
    assert_eq!(names, ["feed", "push"]);
    assert_eq!(all[1].checkpoint, push);
    assert_eq!(all[1].applied_total, 0);
    assert_eq!(all[0].applied_total, 3);
}

async fn keypad_digits_find_every_code_sharing_them(s: Subject) {
    let store = &s.store;
    let with_code = |text: &str, version| Dossier {
        code: DossierCode::parse(text).unwrap(),
        ..bare(1, 2, version)
    };
    // H58 and G58 share their digits; A0 holds a letter inside a group; the
    // three-group form has fewer digits.
    store
        .upsert_batch(&[
            with_code("000.00.12.H58-240315-0007", 1),
            with_code("000.00.12.G58-240315-0007", 1),
            with_code("000.A0.01.H26-210212-9090", 1),
            with_code("38.98.H29-210519-0003", 1),
            with_code("000.00.12.H58-240315-0008", 1),
        ])
        .await
        .unwrap();
    let found = |digits: &'static str, limit| async move {
        store
            .find_by_digits(digits, limit)
            .await
            .unwrap()
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        found("0000012582403150007", 10).await,
        ["000.00.12.G58-240315-0007", "000.00.12.H58-240315-0007"]
    );
    assert_eq!(
        found("0000012582403150007", 1).await,
        ["000.00.12.G58-240315-0007"]
    );
    assert_eq!(
        found("00000126210212909", 10).await.len(),
        0,
        "no prefix matching"
    );
    assert_eq!(
        found("000001262102129090", 10).await,
        ["000.A0.01.H26-210212-9090"]
    );
    assert_eq!(
        found("389829210519 0003".trim(), 10).await.len(),
        0,
        "digits only"
    );
    assert_eq!(
        found("3898292105190003", 10).await,
        ["38.98.H29-210519-0003"]
    );
    // A deleted dossier is no longer found.
    store
        .apply(&[gone(8, 2)], ApplyMode::Guarded, None)
        .await
        .unwrap();
    assert!(found("0000012582403150008", 10).await.is_empty());
}

async fn live_versions_list_the_live_dossiers(s: Subject) {
    let store = &s.store;
    assert!(store.live_versions().await.unwrap().is_empty());
    let changes: Vec<Change> = (1..=300)
        .map(|n| Change::Upsert(bare(n, 2, i64::from(n % 7) + 1)))
        .collect();
    assert_eq!(
        store
            .apply(&changes, ApplyMode::Guarded, None)
            .await
            .unwrap(),
        report(300, 0, 0)
    );
    let deletions: Vec<Change> = (1..=300).step_by(3).map(|n| gone(n, 100)).collect();
    store
        .apply(&deletions, ApplyMode::Guarded, None)
        .await
        .unwrap();
    let mut expected: Vec<(String, i64)> = (1..=300)
        .filter(|n| (n - 1) % 3 != 0)
        .map(|n| (code(n).to_string(), i64::from(n % 7) + 1))
        .collect();
    expected.sort();
    assert_eq!(sorted_live(store).await, expected);
    assert_eq!(store.count().await.unwrap(), 200);
}

async fn find_returns_what_was_written(s: Subject) {
    let store = &s.store;
    let mut odd = full(3, 10, 7);
    odd.procedure_name = Some(String::new());
    odd.agency_name = Some("Sở Tư pháp — \"một cửa\" 'liên thông'; DROP TABLE dossiers; --".into());
    odd.owner_name = Some("Đặng Thị Ánh Tuyết 🌸 \\ %_".into());
    odd.owner_phone = Some(Msisdn::parse("+44 20 7183 8750").unwrap());
    odd.received_at = Some(time(2024, 2, 29, 0, 0, 0));
    odd.appointment_at = Some(time(2099, 12, 31, 23, 59, 59));
    odd.finished_at = None;
    odd.returned_at = Some(time(2000, 1, 1, 12, 0, 0));
    let mut landline = bare(4, 1, i64::MAX);
    landline.owner_phone = Some(Msisdn::parse("024 3825 3536").unwrap());
    landline.appointment_at = Some(time(2025, 1, 1, 7, 5, 9));
    let written = vec![full(1, 4, 1), bare(2, 9, 2), odd, landline];
    let changes: Vec<Change> = written.iter().cloned().map(Change::Upsert).collect();
    store
        .apply(&changes, ApplyMode::Guarded, None)
        .await
        .unwrap();
    for dossier in &written {
        assert_eq!(
            store.find(&dossier.code).await.unwrap().as_ref(),
            Some(dossier)
        );
    }
    // Every status code survives.
    let statuses: Vec<Change> = (1..=10)
        .map(|status| Change::Upsert(full(100 + status as u32, status, 1)))
        .collect();
    store
        .apply(&statuses, ApplyMode::Guarded, None)
        .await
        .unwrap();
    for status in 1..=10 {
        let found = store.find(&code(100 + status as u32)).await.unwrap();
        assert_eq!(found, Some(full(100 + status as u32, status, 1)));
    }
    // A newer version replaces every field, emptied ones included.
    store
        .upsert_batch(&[bare(1, 5, 2), full(2, 6, 3)])
        .await
        .unwrap();
    assert_eq!(store.find(&code(1)).await.unwrap(), Some(bare(1, 5, 2)));
    assert_eq!(store.find(&code(2)).await.unwrap(), Some(full(2, 6, 3)));
    assert_eq!(store.find(&code(9999)).await.unwrap(), None);
    // The code is found whatever case it was parsed from.
    let lower = DossierCode::parse("000.00.12.h58-240315-0001").unwrap();
    assert_eq!(store.find(&lower).await.unwrap(), Some(bare(1, 5, 2)));
}

async fn upsert_batch_reports_each_dossier(s: Subject) {
    let store = &s.store;
    use UpsertOutcome::{Inserted, Unchanged, Updated};
    assert_eq!(store.upsert_batch(&[]).await.unwrap(), vec![]);
    assert_eq!(
        store
            .upsert_batch(&[full(1, 2, 1), full(2, 2, 2), full(1, 3, 1)])
            .await
            .unwrap(),
        vec![Inserted, Inserted, Unchanged]
    );
    assert_eq!(
        store
            .upsert_batch(&[full(1, 4, 2), full(2, 4, 2), full(3, 2, 1)])
            .await
            .unwrap(),
        vec![Updated, Unchanged, Inserted]
    );
    assert_eq!(
        store
            .upsert_batch(&[full(1, 5, 1), full(1, 5, 3), full(1, 6, 2), full(1, 7, 4)])
            .await
            .unwrap(),
        vec![Unchanged, Updated, Unchanged, Updated]
    );
    assert_eq!(store.find(&code(1)).await.unwrap(), Some(full(1, 7, 4)));
    // A deleted dossier comes back as inserted, above its tombstone only.
    store
        .apply(&[gone(2, 5)], ApplyMode::Guarded, None)
        .await
        .unwrap();
    assert_eq!(
        store
            .upsert_batch(&[full(2, 2, 4), full(2, 2, 6), full(2, 3, 7)])
            .await
            .unwrap(),
        vec![Unchanged, Inserted, Updated]
    );
    assert_eq!(store.find(&code(2)).await.unwrap(), Some(full(2, 3, 7)));
    assert_eq!(store.count().await.unwrap(), 3);
    // An import writes no sync state.
    assert!(store.all_sync_status().await.unwrap().is_empty());
}

async fn concurrent_appliers_keep_the_highest_version(s: Subject) {
    const CODES: u32 = 100;
    const TOP: i64 = 60;
    // Two appliers write the same dossiers at interleaved versions (one the
    // odd ones, the other the even ones), a third imports every fifth
    // version, all at once: whatever the interleaving, each dossier ends at
    // the highest version any of them wrote.
    let writer = |store: ReadModel, first: i64, step: i64, import: bool| {
        tokio::spawn(async move {
            let mut version = first;
            while version <= TOP {
                let mut dossiers: Vec<Dossier> = (1..=CODES)
                    .map(|n| full(n, 2 + version % 8, version))
                    .collect();
                if version % 2 == 0 {
                    dossiers.reverse();
                }
                if import {
                    store.upsert_batch(&dossiers).await.unwrap();
                } else {
                    let changes: Vec<Change> = dossiers.into_iter().map(Change::Upsert).collect();
                    store
                        .apply(&changes, ApplyMode::Guarded, None)
                        .await
                        .unwrap();
                }
                version += step;
                tokio::task::yield_now().await;
            }
        })
    };
    let tasks = [
        writer(s.store.clone(), 1, 2, false),
        writer(s.store.clone(), 2, 2, false),
        writer(s.store.clone(), 5, 5, true),
    ];
    for task in tasks {
        task.await.unwrap();
    }
    let live = sorted_live(&s.store).await;
    assert_eq!(live.len(), CODES as usize);
    assert!(live.iter().all(|(_, v)| *v == TOP), "{live:?}");
    for n in [1, CODES / 2, CODES] {
        assert_eq!(
            s.store.find(&code(n)).await.unwrap(),
            Some(full(n, 2 + TOP % 8, TOP))
        );
    }
    // Deletions racing with late updates: the tombstones win.
    let deleter = {
        let store = s.store.clone();
        tokio::spawn(async move {
            let deletions: Vec<Change> = (1..=CODES).map(|n| gone(n, TOP + 10)).collect();
            store
                .apply(&deletions, ApplyMode::Guarded, None)
                .await
                .unwrap()
        })
    };
    let late = {
        let store = s.store.clone();
        tokio::spawn(async move {
            for version in TOP + 1..TOP + 10 {
                let changes: Vec<Change> = (1..=CODES).map(|n| at(n, 2, version)).collect();
                store
                    .apply(&changes, ApplyMode::Guarded, None)
                    .await
                    .unwrap();
            }
        })
    };
    assert_eq!(deleter.await.unwrap().deleted, u64::from(CODES));
    late.await.unwrap();
    assert!(s.store.live_versions().await.unwrap().is_empty());
}

async fn reopening_keeps_the_data(s: Subject) {
    s.store
        .apply(
            &[at(1, 2, 1), gone(2, 4)],
            ApplyMode::Snapshot { generation: 3 },
            Some(&streaming("feed", "c9")),
        )
        .await
        .unwrap();
    let again = ReadModel::open(&s.url).await.unwrap();
    assert_eq!(again.count().await.unwrap(), 1);
    assert_eq!(again.find(&code(1)).await.unwrap(), Some(full(1, 2, 1)));
    assert_eq!(
        again.sync_status("feed").await.unwrap().unwrap().checkpoint,
        streaming("feed", "c9")
    );
    // The tombstone and the snapshot marks were kept too.
    assert_eq!(
        again
            .apply(&[at(2, 2, 3)], ApplyMode::Guarded, None)
            .await
            .unwrap(),
        report(0, 0, 1)
    );
    assert_eq!(
        again
            .finish_snapshot(3, false, &streaming("feed", "c10"))
            .await
            .unwrap(),
        0
    );
    again.close().await;
}
