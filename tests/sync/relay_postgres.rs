//! The relay (`motcua-sms relay`) against a real PostgreSQL: each test makes
//! a fresh database, installs migrations/core-postgres/ in it (the sample
//! dossier table included), writes dossiers as the core would and reads the
//! feed over HTTP as the gateway would, the relay connected as the
//! `motcua_relay` role.
//!
//! Runs only when `TEST_DATABASE_URL` names a server
//! (e.g. `postgres://postgres@127.0.0.1:5432`, a role that may create
//! databases and roles); otherwise each test says so and passes.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use motcua_sms::feed::{
    bucket_of, digest_records, ChangesPage, Digest, DigestBucket, FeedRecord, SnapshotPage,
};
use motcua_sms::relay::{Relay, RelayError, RelaySettings};
use serde_json::{Map, Value};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Executor, Postgres};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use support::feed::{apply, http, FeedClient};

const TOKEN: &str = "relay-test-token";
const MIGRATIONS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/core-postgres");

/// Installing the role is per cluster: one test at a time.
static INSTALL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The server under test.
fn server() -> PgConnectOptions {
    let url = support::service("TEST_DATABASE_URL");
    PgConnectOptions::from_str(&url).expect("TEST_DATABASE_URL is a postgres:// URL")
}

/// A fresh database, dropped (with its connections) when this is dropped.
struct Database {
    server: PgConnectOptions,
    name: String,
    /// The core's own connections (the database owner).
    owner: PgPool,
}

impl Database {
    async fn create(server: &PgConnectOptions) -> Database {
        static SERIAL: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        let name = format!(
            "motcua_relay_test_{:x}_{:x}_{}",
            nanos,
            std::process::id(),
            SERIAL.fetch_add(1, Ordering::Relaxed)
        );
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(server.clone().database("postgres"))
            .await
            .expect("TEST_DATABASE_URL's server is reachable");
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap();
        admin.close().await;
        let owner = PgPoolOptions::new()
            .max_connections(4)
            .connect_with(server.clone().database(&name))
            .await
            .unwrap();
        Database {
            server: server.clone(),
            name,
            owner,
        }
    }

    /// Runs the migrations/core-postgres/ files whose names pass `which`, in order.
    async fn install(&self, which: impl Fn(&str) -> bool) {
        let _one_at_a_time = INSTALL.lock().await;
        let mut files: Vec<_> = std::fs::read_dir(MIGRATIONS)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "sql"))
            .collect();
        files.sort();
        assert!(files.len() >= 6, "the SQL files are there: {files:?}");
        for file in files {
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            if which(&name) {
                let sql = std::fs::read_to_string(&file).unwrap();
                sqlx::raw_sql(&sql)
                    .execute(&self.owner)
                    .await
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
            }
        }
    }

    /// How the relay connects: as motcua_relay (the server trusts local logins).
    fn relay_options(&self) -> PgConnectOptions {
        self.server
            .clone()
            .database(&self.name)
            .username("motcua_relay")
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let server = self.server.clone();
        let name = self.name.clone();
        // Also on a failed test; a thread of its own, with a runtime of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let admin = PgPoolOptions::new()
                    .max_connections(1)
                    .connect_with(server.database("postgres"))
                    .await?;
                admin
                    .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                    .await?;
                admin.close().await;
                Ok::<(), sqlx::Error>(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}: {dropped:?}", self.name);
        }
    }
}

/// A database with the feed installed and a relay serving it.
struct Harness {
    feed: FeedClient,
    shutdown: CancellationToken,
    relay: Option<JoinHandle<()>>,
    // Dropped last: the relay stops first.
    db: Database,
}

impl Harness {
    async fn start() -> Harness {
        let server = server();
        let db = Database::create(&server).await;
        db.install(|_| true).await;
        let mut settings =
            RelaySettings::new(db.relay_options(), "127.0.0.1:0".parse().unwrap(), TOKEN);
        settings.max_connections = 3;
        settings.recheck = Duration::from_millis(100);
        let relay = Relay::bind(settings).await.expect("relay binds");
        let addr = relay.local_addr();
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let task = tokio::spawn(async move { relay.run(stop).await.expect("relay serves") });
        Harness {
            feed: FeedClient {
                addr,
                token: TOKEN.to_owned(),
            },
            shutdown,
            relay: Some(task),
            db,
        }
    }

    fn core(&self) -> &PgPool {
        &self.db.owner
    }

    async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.relay.take() {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("relay stops")
                .unwrap();
        }
    }

    /// A snapshot whose head covers every change written so far. The safe
    /// horizon is server-wide: a transaction of another test (another
    /// database on the same server) holds the head back a moment, and a head
    /// taken then would serve this test's earlier writes again as changes.
    async fn settled_snapshot(&self, limit: usize) -> (String, String, Vec<FeedRecord>) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let settled: bool = sqlx::query_scalar(
                "SELECT coalesce((SELECT max(xid) FROM motcua_feed.changes) \
                 < pg_snapshot_xmin(pg_current_snapshot()), true)",
            )
            .fetch_one(self.core())
            .await
            .unwrap();
            if settled {
                break;
            }
            assert!(Instant::now() < deadline, "the safe horizon never passed");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.feed.snapshot(limit).await
    }

    /// Long-polls from `cursor` until the records so far satisfy `done`
    /// (a write transaction anywhere on the server holds rows back a moment).
    async fn collect_until(
        &self,
        mut cursor: String,
        done: impl Fn(&[FeedRecord]) -> bool,
    ) -> (Vec<FeedRecord>, String) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut records = Vec::new();
        while !done(&records) {
            assert!(
                Instant::now() < deadline,
                "the records expected did not come: {records:?}"
            );
            let page: ChangesPage = self
                .feed
                .get(&format!("/v1/changes?after={cursor}&limit=7&wait=2"))
                .await;
            records.extend(page.records);
            cursor = page.next_cursor;
        }
        (records, cursor)
    }

    /// Exactly `want` records from `cursor`, and then nothing more.
    async fn collect(&self, cursor: String, want: usize) -> (Vec<FeedRecord>, String) {
        let (records, cursor) = self.collect_until(cursor, |r| r.len() >= want).await;
        assert_eq!(records.len(), want, "{records:?}");
        let (more, cursor) = self.feed.follow(cursor, 100).await;
        assert!(more.is_empty(), "unexpected records: {more:?}");
        (records, cursor)
    }
}

/// Starts the harness.
macro_rules! harness {
    () => {
        Harness::start().await
    };
}

fn code(n: u32) -> String {
    format!("000.00.12.H58-240315-{n:04}")
}

/// Inserts dossier `n` with `status` as the core would.
async fn insert<'e>(core: impl Executor<'e, Database = Postgres>, n: u32, status: i16) {
    sqlx::query(
        "INSERT INTO public.dossiers (ma_ho_so, ten_tthc, don_vi_xu_ly, trang_thai_ho_so, \
         ngay_tiep_nhan, ngay_hen_tra, so_dien_thoai, chu_ho_so) \
         VALUES ($1, 'Đăng ký khai sinh', 'UBND phường Trúc Bạch', $2, \
         timestamp '2024-03-15 08:15:00', timestamp '2024-03-29 17:00:00', '0912345678', 'Nguyễn Văn An')",
    )
    .bind(code(n))
    .bind(status)
    .execute(core)
    .await
    .unwrap();
}

async fn set_status(core: &PgPool, n: u32, status: i16) {
    sqlx::query("UPDATE public.dossiers SET trang_thai_ho_so = $2 WHERE ma_ho_so = $1")
        .bind(code(n))
        .bind(status)
        .execute(core)
        .await
        .unwrap();
}

/// The core's dossiers as records (by its own mapping), with the versions
/// `motcua_feed.current` holds.
async fn core_state(core: &PgPool) -> BTreeMap<String, (i64, Map<String, Value>)> {
    let rows: Vec<(String, i64, String)> = sqlx::query_as(
        "SELECT d.ma_ho_so, c.version, motcua_feed.record_of(d)::text \
         FROM public.dossiers d JOIN motcua_feed.current c ON c.code = d.ma_ho_so",
    )
    .fetch_all(core)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(code, version, json)| {
            let mut fields: Map<String, Value> = serde_json::from_str(&json).unwrap();
            fields.remove("MaHoSo");
            (code, (version, fields))
        })
        .collect()
}

fn codes(records: &[FeedRecord]) -> Vec<String> {
    records.iter().map(|r| r.code.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(test_database_url),
    ignore = "needs TEST_DATABASE_URL (a PostgreSQL server)"
)]
async fn overlapping_transactions_committing_out_of_order_skip_nothing() {
    let h = harness!();
    let (_, head, records) = h.settled_snapshot(100).await;
    assert!(records.is_empty());

    // T1 begins and writes A; T2 begins, writes B and commits first.
    let mut t1 = h.core().begin().await.unwrap();
    insert(&mut *t1, 1, 2).await;
    let mut t2 = h.core().begin().await.unwrap();
    insert(&mut *t2, 2, 2).await;
    t2.commit().await.unwrap();

    // B is committed, but A's transaction (older) still runs: serving B now
    // would move the cursor past A's position. The relay holds B back.
    let early: ChangesPage = h.feed.get(&format!("/v1/changes?after={head}")).await;
    assert!(
        early.records.is_empty(),
        "nothing is served past a running older transaction: {:?}",
        early.records
    );
    let quiet: ChangesPage = h
        .feed
        .get(&format!("/v1/changes?after={head}&wait=1"))
        .await;
    assert!(quiet.records.is_empty());
    let held_cursor = early.next_cursor;

    t1.commit().await.unwrap();
    // From the start and from the cursor handed out meanwhile: both, A first.
    let (from_head, end) = h.collect(head.clone(), 2).await;
    assert_eq!(codes(&from_head), vec![code(1), code(2)]);
    let (from_held, end_held) = h.collect(held_cursor, 2).await;
    assert_eq!(from_held, from_head);
    assert_eq!(end_held, end);

    // A transaction that begins, reads, and writes only after a later one
    // committed and was served: its xid is younger, it comes after.
    let mut t3 = h.core().begin().await.unwrap();
    sqlx::query("SELECT count(*) FROM public.dossiers")
        .execute(&mut *t3)
        .await
        .unwrap();
    insert(h.core(), 3, 2).await;
    let (c, after_c) = h.collect(end.clone(), 1).await;
    assert_eq!(codes(&c), vec![code(3)]);
    insert(&mut *t3, 4, 2).await;
    t3.commit().await.unwrap();
    let (d, _) = h.collect(after_c, 1).await;
    assert_eq!(codes(&d), vec![code(4)]);

    // Everything from the start: all four, each once.
    let (all, _) = h.collect(head, 4).await;
    let mut seen = codes(&all);
    seen.sort();
    assert_eq!(seen, vec![code(1), code(2), code(3), code(4)]);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(test_database_url),
    ignore = "needs TEST_DATABASE_URL (a PostgreSQL server)"
)]
async fn snapshot_and_head_then_changes_tombstones_and_the_digest() {
    let h = harness!();
    let mut t = h.core().begin().await.unwrap();
    for n in 1..=25 {
        insert(&mut *t, n, 2).await;
    }
    t.commit().await.unwrap();

    let (epoch, head, records) = h.settled_snapshot(7).await;
    assert_eq!(codes(&records), (1..=25).map(code).collect::<Vec<_>>());
    for r in &records {
        let dossier = r.to_dossier().expect("a portal record").expect("live");
        assert_eq!(dossier.code.as_str(), r.code);
        assert_eq!(dossier.status.code(), 2);
    }
    let mut state: BTreeMap<String, FeedRecord> =
        records.into_iter().map(|r| (r.code.clone(), r)).collect();

    // Updates, deletions, insertions, and an update the feed does not serve.
    for n in 1..=5 {
        set_status(h.core(), n, 4).await;
    }
    sqlx::query("DELETE FROM public.dossiers WHERE ma_ho_so IN ($1, $2)")
        .bind(code(6))
        .bind(code(7))
        .execute(h.core())
        .await
        .unwrap();
    for n in 26..=28 {
        insert(h.core(), n, 1).await;
    }
    set_status(h.core(), 8, 2).await; // no change
    let last = code(28);
    let (changes, _) = h
        .collect_until(head.clone(), |r| r.iter().any(|r| r.code == last))
        .await;
    // The head may have been noted while another transaction on the server
    // held the 25 insertions back: then they come again, and the version
    // guard drops them. The changes made after the snapshot all come.
    let tombstones: Vec<&FeedRecord> = changes.iter().filter(|r| r.deleted).collect();
    assert_eq!(
        tombstones
            .iter()
            .map(|r| r.code.clone())
            .collect::<Vec<_>>(),
        vec![code(6), code(7)]
    );
    assert!(tombstones.iter().all(|r| r.fields.is_empty()));
    let fresh = apply(&mut state, &changes);
    assert_eq!(
        fresh,
        5 + 2 + 3,
        "the changes since the snapshot, once each"
    );
    let (again, end) = h.feed.follow(head.clone(), 1000).await;
    assert_eq!(again, changes, "the same from the start");

    // The client's state is the core's.
    let core = core_state(h.core()).await;
    let live: BTreeMap<String, (i64, Map<String, Value>)> = state
        .values()
        .filter(|r| !r.deleted)
        .map(|r| (r.code.clone(), (r.version, r.fields.clone())))
        .collect();
    assert_eq!(live, core);

    // Pages and `pending`.
    let page: ChangesPage = h
        .feed
        .get(&format!("/v1/changes?after={head}&limit=3"))
        .await;
    assert_eq!(page.epoch, epoch);
    assert!(page.has_more);
    assert!(page.pending.unwrap() >= 1, "{page:?}");
    let idle: ChangesPage = h.feed.get(&format!("/v1/changes?after={end}")).await;
    assert_eq!(
        (idle.records.len(), idle.has_more, idle.pending),
        (0, false, Some(0))
    );
    assert_eq!(idle.next_cursor, end);

    // The digest equals the one computed from the records.
    let digest: Digest = h.feed.get("/v1/digest?buckets=16").await;
    assert_eq!(digest.epoch, epoch);
    assert_eq!(digest.head_cursor, end);
    assert_eq!(digest.digests, digest_records(state.values(), 16));
    assert_eq!(digest.digests.iter().map(|d| d.count).sum::<u64>(), 26);
    let bucket = bucket_of(&code(1), 16);
    let listing: DigestBucket = h.feed.get(&format!("/v1/digest/{bucket}?buckets=16")).await;
    let mine: Vec<(String, i64)> = state
        .values()
        .filter(|r| !r.deleted && bucket_of(&r.code, 16) == bucket)
        .map(|r| (r.code.clone(), r.version))
        .collect();
    let theirs: Vec<(String, i64)> = listing
        .entries
        .into_iter()
        .map(|e| (e.code, e.version))
        .collect();
    assert_eq!(theirs, mine);

    // A fresh snapshot is the same state, noted at the same head.
    let (_, again_head, again) = h.settled_snapshot(1000).await;
    assert_eq!(again_head, end);
    assert_eq!(digest_records(&again, 16), digest.digests);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(test_database_url),
    ignore = "needs TEST_DATABASE_URL (a PostgreSQL server)"
)]
async fn a_purged_log_answers_410_to_older_cursors() {
    let h = harness!();
    let (epoch, head, _) = h.settled_snapshot(100).await;
    for n in 1..=3 {
        insert(h.core(), n, 2).await;
    }
    sqlx::query("DELETE FROM public.dossiers WHERE ma_ho_so = $1")
        .bind(code(3))
        .execute(h.core())
        .await
        .unwrap();
    let (_, end) = h.collect(head.clone(), 4).await;

    let purged: i64 = sqlx::query_scalar("SELECT motcua_feed.purge(interval '0 seconds')")
        .fetch_one(h.core())
        .await
        .unwrap();
    assert_eq!(purged, 4);
    let tombstones: i64 =
        sqlx::query_scalar("SELECT count(*) FROM motcua_feed.current WHERE deleted")
            .fetch_one(h.core())
            .await
            .unwrap();
    assert_eq!(tombstones, 0, "purged tombstones leave current too");

    let (status, body) = h
        .feed
        .call("GET", &format!("/v1/changes?after={head}"))
        .await;
    assert_eq!(status, 410, "{body}");
    assert_eq!(body["error"], "cursor_expired");
    assert_eq!(body["epoch"], epoch.as_str());
    // A cursor at the last purged change is still good.
    let at_end: ChangesPage = h.feed.get(&format!("/v1/changes?after={end}")).await;
    assert!(at_end.records.is_empty());
    // A re-snapshot's head is usable, and the feed goes on.
    let (_, again_head, live) = h.settled_snapshot(100).await;
    assert_eq!(codes(&live), vec![code(1), code(2)]);
    insert(h.core(), 4, 1).await;
    let (more, _) = h.collect(again_head, 1).await;
    assert_eq!(codes(&more), vec![code(4)]);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(test_database_url),
    ignore = "needs TEST_DATABASE_URL (a PostgreSQL server)"
)]
async fn an_epoch_reset_is_visible_to_cursors_tokens_and_long_polls() {
    let h = harness!();
    for n in 1..=5 {
        insert(h.core(), n, 2).await;
    }
    let first: SnapshotPage = h.feed.get("/v1/snapshot?limit=2").await;
    let token = first.next_page_token.clone().expect("more pages");
    let (epoch, head, _) = h.settled_snapshot(100).await;
    assert_eq!(first.epoch, epoch);

    let poll = {
        let addr = h.feed.addr;
        let target = format!("/v1/changes?after={head}&wait=20");
        tokio::spawn(async move { http(addr, "GET", &target, Some(TOKEN)).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let new_epoch: String = sqlx::query_scalar("SELECT motcua_feed.reset_epoch()")
        .fetch_one(h.core())
        .await
        .unwrap();
    assert_ne!(new_epoch, epoch);
    let (status, _, body) = poll.await.unwrap();
    assert_eq!(status, 410, "{body}");
    assert_eq!(body["error"], "epoch_changed");
    assert_eq!(body["epoch"], new_epoch.as_str());

    let (status, body) = h
        .feed
        .call("GET", &format!("/v1/snapshot?limit=2&page_token={token}"))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (410, Some("epoch_changed"))
    );
    let (again_epoch, again_head, live) = h.settled_snapshot(2).await;
    assert_eq!(again_epoch, new_epoch);
    assert_eq!(live.len(), 5, "the state survives a history reset");
    set_status(h.core(), 1, 4).await;
    let (changes, _) = h.collect(again_head, 1).await;
    assert_eq!(changes[0].fields["TrangThaiHoSo"], 4);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(test_database_url),
    ignore = "needs TEST_DATABASE_URL (a PostgreSQL server)"
)]
async fn a_long_poll_wakes_on_a_commit_and_bad_requests_are_refused() {
    let h = harness!();
    let (_, head, _) = h.settled_snapshot(100).await;
    let poll = {
        let addr = h.feed.addr;
        let target = format!("/v1/changes?after={head}&wait=20");
        tokio::spawn(async move {
            let started = Instant::now();
            let (status, _, body) = http(addr, "GET", &target, Some(TOKEN)).await;
            (status, body, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let committed = Instant::now();
    insert(h.core(), 1, 1).await;
    let (status, body, waited) = poll.await.unwrap();
    assert_eq!(status, 200, "{body}");
    let page: ChangesPage = serde_json::from_value(body).unwrap();
    assert_eq!(codes(&page.records), vec![code(1)]);
    assert!(
        waited >= Duration::from_millis(400),
        "it waited: {waited:?}"
    );
    assert!(
        committed.elapsed() < Duration::from_secs(5),
        "woken by the commit, not the timeout"
    );
    eprintln!(
        "long-poll answered {:?} after the commit",
        committed.elapsed()
    );

    // The protocol's checks, as for any core.
    let ahead = format!("{}-ffffffffffff-1", page.epoch);
    for (target, names) in [
        ("/v1/changes?after=zzz".to_owned(), "after"),
        (format!("/v1/changes?after={ahead}"), "after"),
        (format!("/v1/changes?after={head}&limit=1001"), "limit"),
        ("/v1/snapshot?page_token=nope".to_owned(), "page_token"),
        ("/v1/digest/9?buckets=8".to_owned(), "bucket"),
    ] {
        let (status, body) = h.feed.call("GET", &target).await;
        assert_eq!(status, 400, "{target}: {body}");
        assert!(body["message"].as_str().unwrap().contains(names), "{body}");
        assert_eq!(body["epoch"], page.epoch.as_str());
    }
    let (status, headers, _) = http(h.feed.addr, "GET", "/v1/digest", Some("wrong")).await;
    assert_eq!(status, 401);
    assert!(headers
        .iter()
        .any(|(k, v)| k == "www-authenticate" && v == "Bearer"));
    let (status, body) = h.feed.call("GET", "/v1/nothing").await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(test_database_url),
    ignore = "needs TEST_DATABASE_URL (a PostgreSQL server)"
)]
async fn a_database_without_the_feed_says_which_sql_to_run() {
    let server = server();
    let db = Database::create(&server).await;
    let bind = |options: PgConnectOptions| async move {
        let settings = RelaySettings::new(options, "127.0.0.1:0".parse().unwrap(), TOKEN);
        match Relay::bind(settings).await {
            Ok(_) => panic!("the relay must refuse this database"),
            Err(error) => error,
        }
    };
    db.install(|name| name.starts_with("00")).await;
    let error = bind(server.clone().database(&db.name)).await;
    assert!(matches!(error, RelayError::SchemaMissing { .. }), "{error}");
    assert!(error.to_string().contains("01_feed_schema.sql"), "{error}");

    // Installed, but the relay's role has no grants in this database.
    db.install(|name| !name.starts_with("00") && !name.starts_with("04"))
        .await;
    {
        let _one_at_a_time = INSTALL.lock().await;
        sqlx::raw_sql(
            "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'motcua_relay') \
             THEN CREATE ROLE motcua_relay LOGIN; END IF; END $$",
        )
        .execute(&db.owner)
        .await
        .unwrap();
    }
    let error = bind(db.relay_options()).await;
    assert!(matches!(error, RelayError::NotGranted(_)), "{error}");
    assert!(error.to_string().contains("04_relay_role.sql"), "{error}");

    db.install(|name| name.starts_with("04")).await;
    let settings = RelaySettings::new(db.relay_options(), "127.0.0.1:0".parse().unwrap(), "");
    let error = Relay::bind(settings)
        .await
        .err()
        .expect("no token, no relay");
    assert!(error.to_string().contains("token"), "{error}");
}

/// End to end: the core's writers update dossiers in overlapping
/// transactions that commit out of order (some roll back), delete some,
/// while the gateway's sync worker follows the relay into a read model. When
/// the writers stop, the read model holds exactly the core's dossiers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(test_database_url),
    ignore = "needs TEST_DATABASE_URL (a PostgreSQL server)"
)]
async fn the_sync_worker_follows_a_postgresql_core_through_the_relay_exactly() {
    use motcua_sms::domain::DossierCode;
    use motcua_sms::store::Freshness;
    use motcua_sms::store::{DossierLookup, DossierWriter, SqliteStore};
    use motcua_sms::sync::follower::FeedFollower;
    use motcua_sms::sync::{FeedSettings, SyncMetrics};

    let h = harness!();
    // Receipt serials start at 1 (a code ending -0000 is not a dossier code).
    for n in 1..=200 {
        insert(h.core(), n, 1).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&format!("sqlite://{}/read.db", dir.path().display()))
        .await
        .unwrap();
    let follower = FeedFollower::new(
        store.clone(),
        FeedSettings {
            url: format!("http://{}/", h.feed.addr),
            token: TOKEN.to_owned(),
            wait_secs: 1,
            batch: 50,
            snapshot_page: 40,
            digest_interval_secs: 0,
            backoff_max_secs: 1,
            ..FeedSettings::default()
        },
        std::sync::Arc::new(Freshness::always_fresh()),
        SyncMetrics::default(),
    )
    .unwrap();
    let stop_sync = CancellationToken::new();
    let sync = tokio::spawn(follower.run(stop_sync.clone()));

    // Four writers, each transaction touching a few dossiers in an order of
    // its own and holding on a little, so that commits interleave and come
    // out of xid order; one transaction in ten rolls back.
    let writers: Vec<_> = (0..4u64)
        .map(|w| {
            let core = h.core().clone();
            tokio::spawn(async move {
                let mut x = w.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                let mut next = move || {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x
                };
                for _ in 0..60 {
                    let mut tx = core.begin().await.unwrap();
                    let mut touched: Vec<u32> = (0..3).map(|_| (next() % 200) as u32 + 1).collect();
                    touched.sort_unstable();
                    touched.dedup();
                    for n in touched {
                        let status = (next() % 10 + 1) as i16;
                        sqlx::query(
                            "UPDATE public.dossiers SET trang_thai_ho_so = $2 WHERE ma_ho_so = $1",
                        )
                        .bind(code(n))
                        .bind(status)
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                    }
                    if next() % 25 == 0 {
                        let victim = (next() % 200) as u32 + 1;
                        sqlx::query("DELETE FROM public.dossiers WHERE ma_ho_so = $1")
                            .bind(code(victim))
                            .execute(&mut *tx)
                            .await
                            .unwrap();
                    }
                    tokio::time::sleep(Duration::from_millis(next() % 15)).await;
                    if next() % 10 == 0 {
                        tx.rollback().await.unwrap();
                    } else {
                        tx.commit().await.unwrap();
                    }
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }

    let expected = core_state(h.core()).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut live = store.live_versions().await.unwrap();
        live.sort();
        let want: Vec<(String, i64)> = expected
            .iter()
            .map(|(code, (version, _))| (code.clone(), *version))
            .collect();
        if live == want {
            break;
        }
        if Instant::now() >= deadline {
            let held: BTreeMap<_, _> = live.into_iter().collect();
            let core: BTreeMap<_, _> = want.into_iter().collect();
            let differ: Vec<_> = core
                .keys()
                .chain(held.keys())
                .filter(|c| core.get(*c) != held.get(*c))
                .map(|c| (c.clone(), core.get(c).copied(), held.get(c).copied()))
                .collect();
            panic!("the read model did not converge; (code, core, held): {differ:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Field for field, as the core maps its rows.
    for (code, (version, fields)) in &expected {
        let mut record = fields.clone();
        record.insert("MaHoSo".into(), Value::String(code.clone()));
        record.insert("version".into(), Value::from(*version));
        let want =
            motcua_sms::portal_record::PortalRecord::from_json(&Value::Object(record).to_string())
                .unwrap()
                .into_dossier()
                .unwrap();
        let held = store
            .find(&DossierCode::parse(code).unwrap())
            .await
            .unwrap();
        assert_eq!(held.as_ref(), Some(&want), "dossier {code}");
    }
    stop_sync.cancel();
    sync.await.unwrap();
    store.close().await;
    h.stop().await;
}
