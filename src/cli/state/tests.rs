use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::*;
use crate::db::testing::TestDb;

/// Messages written by [`populate`] (ids 2, 4, … : gaps, so kept ids show).
const MESSAGES: i64 = 2500;

/// Rows in every table of a SQLite state database, some NULLs and
/// Vietnamese text among them; messages and replies in more than one copy
/// batch.
async fn populate(db: &GatewayDb) {
    let StatePool::Sqlite(pool) = db.pool() else {
        panic!("populate writes SQLite");
    };
    sqlx::raw_sql(&format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {MESSAGES})
         INSERT INTO messages (id, channel, peer_ref, sender, sender_ton, sender_npi, recipient,
             recipient_ton, recipient_npi, text, received_at, purged, ack_read_at)
         SELECT i * 2, 'listener:demo', CASE WHEN i % 3 = 0 THEN NULL ELSE 'ref-' || i END,
             '8491' || printf('%07d', i), 1, 1, '8058', 0, 1,
             'TC 000.00.12.H58-240315-0007 tra cứu hồ sơ ' || i, 1765000000000 + i, i % 2,
             CASE WHEN i % 5 = 0 THEN 1765000001000 + i END
         FROM n;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1200)
         INSERT INTO replies (message_id, outcome, text, state, attempts, next_attempt_at,
             last_error, peer_ids, created_at, updated_at, sent_at, part_reference)
         SELECT i * 2, 'found', 'Hồ sơ ' || i || ' đang xử lý',
             CASE i % 3 WHEN 0 THEN 'delivered' WHEN 1 THEN 'queued' ELSE 'expired' END,
             i % 4, 1765000002000 + i, CASE WHEN i % 7 = 0 THEN 'throttled' END,
             CASE WHEN i % 3 = 0 THEN 'a' || i || ' b' || i END, 1765000000500 + i,
             1765000003000 + i, CASE WHEN i % 3 = 0 THEN 1765000002500 + i END,
             CASE WHEN i % 11 = 0 THEN i % 256 END
         FROM n;
         INSERT INTO reply_parts VALUES (6, 1, 'listener:demo', 'a3', 'delivered', NULL, 1765000004000),
             (6, 2, 'listener:demo', 'b3', 'failed', 'expired at the SMSC', 1765000004001);
         INSERT INTO reply_lookups VALUES (2, '000.00.12.H58-240315-0007', 'Sở Tư pháp', 'Hộ tịch', '[[0,3]]'),
             (4, '000.00.12.H58-240315-0008', NULL, NULL, NULL);
         INSERT INTO unmatched_receipts VALUES (1, 'smsc:viettel', 'zz9', 'DELIVRD', 1, 1, NULL, 1765000005000);
         INSERT INTO fragments VALUES ('listener:demo', '84912345678', 1, 1, '8058', 0, 1, 7, 2, 1,
             'TC 000.00.12', 1765000006000, 0);
         INSERT INTO joined_parts VALUES ('listener:demo', '84912345679', '8058', 8, 2, 1, 'TC 000', 4, 1765000006500),
             ('listener:demo', '84912345679', '8058', 8, 2, 2, '.00.12', 4, 1765000006500);
         INSERT INTO fragment_refs VALUES ('listener:demo', 'p7', 1765000007000);
         INSERT INTO blocks VALUES ('84912000001', NULL, 'scanner', 1765000008000),
             ('84912000002', 1765990000000, 'loop', 1765000008001);
         INSERT INTO allow_list VALUES ('84912000003', 1765000009000);
         INSERT INTO rate_limited VALUES ('84912000004', 1765000010000, 1765000010500);
         INSERT INTO nodes VALUES ('gw-a', 3, 'live', 1765000000000, 1765000016000, 1765000021000,
             NULL, NULL, '{{\"smpp\":[]}}'),
             ('gw-b', 2, 'taken', 1765000000001, 1765000016001, 1765000016001, 'gw-a', 1765000022000, '{{}}');
         INSERT INTO accounts VALUES ('admin', 'administrator', '$argon2id$v=19$x', 0, 0, NULL, 0, 1765000011000, 1765000011000),
             ('lan.nguyen', 'viewer', '$argon2id$v=19$y', 1, 3, 1765000099000, 1, 1765000011001, 1765000011002);
         INSERT INTO admin_sessions VALUES ('h1', 'admin', 'cookie', 'c1', '', 1765000012000, 1765000012100, 1765000912000),
             ('h2', 'lan.nguyen', 'bearer', 'c2', 'ci', 1765000012001, 1765000012101, 1765000912001);
         INSERT INTO audit_log VALUES (5, 1765000013000, 'admin', 'account.create', 'lan.nguyen', 'viewer'),
             (9, 1765000013001, 'admin', 'template.activate', 'found', '');
         INSERT INTO template_versions VALUES (3, 'found', 'Hồ sơ {{{{ code }}}}', 'admin', 'first', 1765000014000),
             (4, 'found', 'HS {{{{ code }}}}', 'admin', '', 1765000014001);
         INSERT INTO template_activations VALUES (10, 'found', 3, 'admin', 1765000015000, NULL),
             (11, 'found', 4, 'admin', 1765000015001, NULL),
             (12, 'found', NULL, 'admin', 1765000015002, 11);"
    ))
    .execute(pool)
    .await
    .expect("populate every table");
}

/// A table's rows in either engine, each value as text (`None`: NULL),
/// sorted: what "the same rows" means across engines. The columns are the
/// PostgreSQL schema's, in its order.
async fn dump(pool: &StatePool, columns: &[PgColumn], table: &str) -> Vec<Vec<Option<String>>> {
    let names: Vec<String> = columns.iter().map(|c| format!("\"{}\"", c.name)).collect();
    let select = format!("SELECT {} FROM \"{table}\"", names.join(", "));
    let read = |row: &dyn Fn(usize, bool) -> Option<String>| -> Vec<Option<String>> {
        columns
            .iter()
            .enumerate()
            .map(|(i, c)| row(i, c.integer))
            .collect()
    };
    let mut rows: Vec<Vec<Option<String>>> = crate::on_state_pool!(pool, p => {
        sqlx::query(&select)
            .fetch_all(p)
            .await
            .unwrap()
            .iter()
            .map(|row| {
                read(&|i, integer| {
                    if integer {
                        row.get::<Option<i64>, _>(i).map(|v| v.to_string())
                    } else {
                        row.get::<Option<String>, _>(i)
                    }
                })
            })
            .collect()
    });
    rows.sort();
    rows
}

/// Every table holds rows, the same in `copy` as in `original`.
async fn assert_same_rows(
    copy: &StatePool,
    original: &StatePool,
    tables: Vec<(&'static str, Vec<PgColumn>)>,
) {
    for (table, columns) in tables {
        let rows = dump(copy, &columns, table).await;
        assert!(!rows.is_empty(), "{table} holds rows");
        assert_eq!(rows, dump(original, &columns, table).await, "{table}");
    }
}

/// Every state table's columns, read from a migrated PostgreSQL database.
async fn state_columns(pg: &sqlx::PgPool) -> Vec<(&'static str, Vec<PgColumn>)> {
    let mut conn = pg.acquire().await.unwrap();
    let mut all = Vec::new();
    for table in STATE_TABLES {
        all.push((table, pg_columns(&mut conn, table).await.unwrap()));
    }
    all
}

/// Every state table's columns, read from a SQLite state database.
async fn sqlite_columns(pool: &sqlx::SqlitePool) -> Vec<(&'static str, Vec<PgColumn>)> {
    let mut all = Vec::new();
    for table in STATE_TABLES {
        let columns = sqlx::query("SELECT name, type FROM pragma_table_info($1) ORDER BY cid")
            .bind(table)
            .fetch_all(pool)
            .await
            .unwrap()
            .iter()
            .map(|row| PgColumn {
                name: row.get(0),
                integer: row.get::<String, _>(1) == "INTEGER",
                identity: false,
            })
            .collect();
        all.push((table, columns));
    }
    all
}

fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

#[tokio::test]
async fn a_backup_holds_every_row_of_every_table_and_verifies() {
    let source = TestDb::sqlite().await;
    populate(&source.db).await;
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join("state-backup.db");
    let path = source.db.path().unwrap().to_owned();
    let report = backup_file(&path, &to, false, 16, Duration::ZERO).unwrap();

    let rows = |name: &str| report.tables.iter().find(|(t, _)| t == name).unwrap().1;
    assert_eq!(rows("messages"), MESSAGES);
    assert_eq!(rows("replies"), 1200);
    assert_eq!(rows("template_activations"), 3);
    assert!(report.steps > 1, "{report:?}");
    assert!(!partial_name(&to).exists());
    assert!(!dir.path().join("state-backup.db-wal").exists());

    let verification = verify_file(&to).unwrap();
    assert!(verification.is_sound(), "{}", verification.describe());
    assert_eq!(verification.tables, report.tables);
    assert_eq!(
        verification.schema.as_ref().map(|s| s.0),
        Some(verification.binary_schema)
    );
    assert_eq!(verification.migrations, db::GATEWAY.iter().count());
    assert!(verification.describe().contains("integrity: ok"));

    // Opened by the gateway (no migration left to run), every row is there.
    let restored = GatewayDb::open(&sqlite_url(&to), db::Durability::Normal)
        .await
        .unwrap();
    let StatePool::Sqlite(pool) = source.db.pool() else {
        unreachable!()
    };
    assert_same_rows(
        restored.pool(),
        source.db.pool(),
        sqlite_columns(pool).await,
    )
    .await;
    restored.close().await;
    source.finish().await;
}

#[tokio::test]
async fn a_backup_during_commits_copies_the_snapshot_without_restarting() {
    let source = TestDb::sqlite().await;
    populate(&source.db).await;
    let path = source.db.path().unwrap().to_owned();
    let stop = Arc::new(AtomicBool::new(false));
    // Another connection commits one message at a time while the backup runs.
    let writer = {
        let (path, stop) = (path.clone(), stop.clone());
        std::thread::spawn(move || {
            let conn = Connection::open(&path).unwrap();
            conn.busy_timeout(BUSY_TIMEOUT).unwrap();
            let mut id = 1_000_001;
            let mut slowest = Duration::ZERO;
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                conn.execute(
                    "INSERT INTO messages (id, channel, sender, sender_ton, sender_npi, recipient, \
                     recipient_ton, recipient_npi, text, received_at) \
                     VALUES (?1, 'listener:demo', '84912345678', 1, 1, '8058', 0, 1, 'TC', 1)",
                    [id],
                )
                .unwrap();
                slowest = slowest.max(started.elapsed());
                id += 1;
            }
            (id - 1_000_001, slowest)
        })
    };
    // Wait until the writer is committing.
    let count = |conn: &Connection| -> i64 {
        conn.query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0))
            .unwrap()
    };
    let reader = Connection::open(&path).unwrap();
    while count(&reader) == MESSAGES {
        std::thread::sleep(Duration::from_millis(1));
    }
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join("copy.db");
    let before = count(&reader);
    let report = tokio::task::spawn_blocking({
        let (path, to) = (path.clone(), to.clone());
        move || backup_file(&path, &to, false, 1, Duration::from_millis(1))
    })
    .await
    .unwrap()
    .unwrap();
    let after = count(&reader);
    stop.store(true, Ordering::Relaxed);
    let (committed, slowest) = writer.join().unwrap();

    let in_copy = report
        .tables
        .iter()
        .find(|(t, _)| t == "messages")
        .unwrap()
        .1;
    println!(
        "backup: {} pages in {} steps over {:?}; writer: {committed} commits, slowest {slowest:?}; \
         messages before {before}, in the copy {in_copy}, after {after}",
        report.pages, report.steps, report.elapsed
    );
    assert!(
        after > before,
        "the writer committed while the backup ran ({before} → {after})"
    );
    assert!(
        (before..=after).contains(&in_copy),
        "{before} ≤ {in_copy} ≤ {after}"
    );
    // One step per page (plus the last): a commit never restarted the copy.
    assert!(report.steps as i32 <= report.pages + 1, "{report:?}");
    let verification = verify_file(&to).unwrap();
    assert!(verification.is_sound());
    assert_eq!(verification.tables, report.tables);
    source.finish().await;
}

#[tokio::test]
async fn a_backup_refuses_an_existing_file_unless_forced() {
    let source = TestDb::sqlite().await;
    let path = source.db.path().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join("backup.db");
    std::fs::write(&to, "keep me").unwrap();
    let refused = backup_file(&path, &to, false, 64, Duration::ZERO).unwrap_err();
    assert!(matches!(refused, StateError::Exists(_)), "{refused}");
    assert!(refused.to_string().contains("--force"));
    assert_eq!(std::fs::read_to_string(&to).unwrap(), "keep me");

    backup_file(&path, &to, true, 64, Duration::ZERO).unwrap();
    assert!(verify_file(&to).unwrap().is_sound());
    source.finish().await;
}

#[test]
fn a_postgres_state_database_is_sent_to_the_documented_procedure() {
    let error = sqlite_file("postgres://motcua:s3cret@db.example/motcua", true).unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("docs/operations.md")
            && message.contains("\"Backing up the state database\"")
            && message.contains("PostgreSQL"),
        "{message}"
    );
    assert!(message.contains("motcua:***@db.example"), "{message}");
    assert!(!message.contains("s3cret"), "{message}");
    let operations =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/operations.md"))
            .unwrap();
    assert!(operations.contains("## Backing up the state database"));
    assert!(operations.contains("### PostgreSQL"));
    assert!(matches!(
        sqlite_file("sqlite::memory:", true),
        Err(StateError::InMemory(_))
    ));
}

#[tokio::test]
async fn verify_finds_a_damaged_backup() {
    let source = TestDb::sqlite().await;
    populate(&source.db).await;
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join("backup.db");
    backup_file(source.db.path().unwrap(), &to, false, 64, Duration::ZERO).unwrap();
    // Page 1 (the header and the schema) intact, the rest overwritten.
    let mut bytes = std::fs::read(&to).unwrap();
    for byte in bytes.iter_mut().skip(4096) {
        *byte = 0x5a;
    }
    std::fs::write(&to, bytes).unwrap();
    let verification = verify_file(&to).unwrap();
    assert!(!verification.is_sound());
    assert!(!verification.problems.is_empty());
    assert!(verification.describe().contains("integrity: FAILED"));
    assert!(!verification.describe().contains("not a state database"));

    let not_a_database = dir.path().join("notes.txt");
    std::fs::write(&not_a_database, "x".repeat(8192)).unwrap();
    assert!(!verify_file(&not_a_database).unwrap().is_sound());
    assert!(matches!(
        verify_file(&dir.path().join("absent.db")),
        Err(StateError::Missing(_))
    ));
    source.finish().await;
}

#[test]
fn the_copied_tables_are_every_table_of_both_schemas() {
    let tables = |dir: &str| -> std::collections::BTreeSet<String> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        let mut created = std::collections::BTreeSet::new();
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for file in files {
            let sql = std::fs::read_to_string(file).unwrap();
            for line in sql.lines() {
                let words: Vec<&str> = line.split_whitespace().collect();
                match words.as_slice() {
                    ["CREATE", "TABLE", name, ..] => {
                        created.insert(name.to_string());
                    }
                    ["DROP", "TABLE", name, ..] => {
                        created.remove(name.trim_end_matches(';'));
                    }
                    ["ALTER", "TABLE", from, "RENAME", "TO", to, ..] => {
                        created.remove(*from);
                        created.insert(to.trim_end_matches(';').to_owned());
                    }
                    _ => {}
                }
            }
        }
        created
    };
    let listed: std::collections::BTreeSet<String> =
        STATE_TABLES.iter().map(|t| t.to_string()).collect();
    assert_eq!(tables("migrations/journal"), listed);
    assert_eq!(tables("migrations/state-postgres"), listed);
}

/// `TEST_DATABASE_URL`'s server with a password in the URL, which the
/// local server (trust) ignores and which must never be printed.
fn with_password(url: &str) -> String {
    url.replacen("://postgres@", "://postgres:s3cret@", 1)
}

#[tokio::test]
#[cfg_attr(
    not(test_database_url),
    ignore = "needs TEST_DATABASE_URL (a PostgreSQL server to create a database on)"
)]
async fn copy_moves_every_row_of_every_table_into_postgres() {
    let source = TestDb::sqlite().await;
    populate(&source.db).await;
    let maintenance = support::temp_postgres::maintenance_url().unwrap();
    let target = support::temp_postgres::TempDatabase::create(&maintenance).await;
    let url = with_password(&target.url);
    assert!(url.contains("s3cret"), "{url}");

    let report = copy_to_postgres(&sqlite_url(source.db.path().unwrap()), &url)
        .await
        .unwrap();
    assert!(report.target.contains("postgres:***@"), "{}", report.target);
    assert!(!format!("{report:?}").contains("s3cret"));
    assert_eq!(report.tables.len(), STATE_TABLES.len());
    // 2500 messages and 1200 replies: three and two batches; one per other table.
    assert_eq!(report.batches, 3 + 2 + 15);

    let copied = GatewayDb::open(&target.url, db::Durability::Normal)
        .await
        .unwrap();
    let StatePool::Postgres(pg) = copied.pool().clone() else {
        unreachable!()
    };
    assert_same_rows(copied.pool(), source.db.pool(), state_columns(&pg).await).await;
    // Identity sequences start past the copied ids.
    let next: i64 = sqlx::query_scalar(
        "INSERT INTO messages (channel, sender, sender_ton, sender_npi, recipient, recipient_ton, \
         recipient_npi, text, received_at) VALUES ('x', '1', 1, 1, '2', 0, 1, 't', 1) RETURNING id",
    )
    .fetch_one(&pg)
    .await
    .unwrap();
    assert_eq!(next, MESSAGES * 2 + 1);
    for (table, max) in [
        ("audit_log", 9),
        ("template_versions", 4),
        ("template_activations", 12),
    ] {
        let next: i64 = sqlx::query_scalar(&format!(
            "SELECT nextval(pg_get_serial_sequence('{table}', 'id'))"
        ))
        .fetch_one(&pg)
        .await
        .unwrap();
        assert_eq!(next, max + 1, "{table}");
    }

    // A second copy into the now filled database is refused, and changes nothing.
    let refused = copy_to_postgres(&sqlite_url(source.db.path().unwrap()), &url)
        .await
        .unwrap_err();
    assert!(
        matches!(refused, StateError::TargetNotEmpty { .. }),
        "{refused}"
    );
    assert!(refused.to_string().contains("postgres:***@"), "{refused}");
    assert!(!refused.to_string().contains("s3cret"));
    let messages: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages")
        .fetch_one(&pg)
        .await
        .unwrap();
    assert_eq!(messages, MESSAGES + 1);

    copied.close().await;
    target.drop().await;
    source.finish().await;
}

#[tokio::test]
async fn copy_refuses_what_is_not_a_sqlite_source_or_a_postgres_target() {
    let source = TestDb::sqlite().await;
    let from = sqlite_url(source.db.path().unwrap());
    let not_postgres = copy_to_postgres(&from, "sqlite://elsewhere.db")
        .await
        .unwrap_err();
    assert!(
        matches!(not_postgres, StateError::NotPostgres(_)),
        "{not_postgres}"
    );
    let not_sqlite = copy_to_postgres("postgres://u:pw@h/db", "postgres://u:pw@h/other")
        .await
        .unwrap_err();
    assert!(
        matches!(not_sqlite, StateError::NotSqlite(_)),
        "{not_sqlite}"
    );
    assert!(!not_sqlite.to_string().contains("pw@"), "{not_sqlite}");
    source.finish().await;
}

/// docs/operations.md's PostgreSQL logical backup: `pg_dump -Fc` of a state
/// database, `pg_restore` into a fresh database, and the gateway opening it
/// finds every row (and its migrations already applied).
#[tokio::test]
#[cfg_attr(
    not(test_database_url),
    ignore = "needs TEST_DATABASE_URL (a PostgreSQL server to create a database on)"
)]
async fn a_pg_dump_of_the_state_restores_into_a_fresh_database() {
    let source = TestDb::sqlite().await;
    populate(&source.db).await;
    let maintenance = support::temp_postgres::maintenance_url().unwrap();
    let original = support::temp_postgres::TempDatabase::create(&maintenance).await;
    copy_to_postgres(&sqlite_url(source.db.path().unwrap()), &original.url)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dump_file = dir.path().join("state.dump");
    let status = std::process::Command::new("pg_dump")
        .arg("-Fc")
        .arg("-f")
        .arg(&dump_file)
        .arg(format!("--dbname={}", original.url))
        .status()
        .expect("pg_dump runs");
    assert!(status.success());

    let restored = support::temp_postgres::TempDatabase::create(&maintenance).await;
    let status = std::process::Command::new("pg_restore")
        .arg("--no-owner")
        .arg("--exit-on-error")
        .arg(format!("--dbname={}", restored.url))
        .arg(&dump_file)
        .status()
        .expect("pg_restore runs");
    assert!(status.success());

    let before = GatewayDb::open(&original.url, db::Durability::Normal)
        .await
        .unwrap();
    let after = GatewayDb::open(&restored.url, db::Durability::Normal)
        .await
        .unwrap();
    let StatePool::Postgres(pg) = after.pool().clone() else {
        unreachable!()
    };
    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(&pg)
        .await
        .unwrap();
    assert_eq!(applied, db::GATEWAY_POSTGRES.iter().count() as i64);
    assert_same_rows(after.pool(), before.pool(), state_columns(&pg).await).await;
    let next: i64 = sqlx::query_scalar("SELECT nextval(pg_get_serial_sequence('messages', 'id'))")
        .fetch_one(&pg)
        .await
        .unwrap();
    assert_eq!(next, MESSAGES * 2 + 1);
    before.close().await;
    after.close().await;
    original.drop().await;
    restored.drop().await;
    source.finish().await;
}
