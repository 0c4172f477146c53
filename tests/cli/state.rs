//! `motcua-sms state` as an admin runs it: `state backup` of a block the
//! binary recorded (an existing file kept without `--force`), `state verify`
//! of the backup and of a file that is no database (exit 65), and the block
//! moved into PostgreSQL by `state copy`, whose output names the target with
//! the password masked and which refuses a target holding rows.

use support::process::binary;
use support::temp_postgres::{maintenance_url, TempDatabase};

#[test]
fn backup_and_verify_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let blocked = binary(dir.path())
        .args(["block", "add", "0912345678", "--reason", "scanner"])
        .output()
        .unwrap();
    assert!(blocked.status.success(), "{blocked:?}");

    let backup = binary(dir.path())
        .args(["state", "backup", "--to", "state-backup.db"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&backup.stdout);
    assert!(backup.status.success(), "{backup:?}");
    assert!(stdout.contains("integrity ok"), "{stdout}");
    let again = binary(dir.path())
        .args(["state", "backup", "--to", "state-backup.db"])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));

    let verify = binary(dir.path())
        .args(["state", "verify", "state-backup.db"])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success(), "{report}");
    assert!(report.contains("integrity: ok"), "{report}");
    assert!(
        report
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["blocks", "1"]),
        "{report}"
    );
    std::fs::write(dir.path().join("junk.db"), "not a database".repeat(600)).unwrap();
    let junk = binary(dir.path())
        .args(["state", "verify", "junk.db"])
        .output()
        .unwrap();
    assert_eq!(junk.status.code(), Some(65), "{junk:?}");
}

#[tokio::test]
#[cfg_attr(
    not(test_database_url),
    ignore = "needs TEST_DATABASE_URL (a PostgreSQL server to create a database on)"
)]
async fn state_copy_through_the_binary_never_prints_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let blocked = binary(dir.path())
        .args(["block", "add", "0912345678"])
        .output()
        .unwrap();
    assert!(blocked.status.success(), "{blocked:?}");
    let target = TempDatabase::create(&maintenance_url().unwrap()).await;
    let with_password = target
        .url
        .replacen("://postgres@", "://postgres:s3cret@", 1);
    let copy = binary(dir.path())
        .args(["state", "copy", "--to", &with_password])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&copy.stdout);
    assert!(copy.status.success(), "{copy:?}");
    assert!(stdout.contains("postgres:***@"), "{stdout}");
    assert!(!stdout.contains("s3cret"), "{stdout}");
    let again = binary(dir.path())
        .args(["state", "copy", "--to", &with_password])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success());
    assert!(
        stderr.contains("already holds rows (table blocks: 1)"),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cret"), "{stderr}");
    target.drop().await;
}
