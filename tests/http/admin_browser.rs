//! The admin console's web UI in a real browser: the gateway with its
//! sample dossiers and console accounts, and `tests/peers/node/console.mjs`
//! driving Chromium headless through playwright-core (npm, the version
//! `tests/peers/node/package.json` pins): log in, the dashboard, the
//! `not_found` template edited with its live preview (encoding, segments,
//! an unknown variable shown on its line), saved and activated, the phone
//! simulator answering an unknown code with the new text, rolled back and
//! answered as before; the message log, lists, channels; the accounts page
//! creating an operator whose first password the browser then changes; a
//! viewer's read-only editor; the editor on a phone-sized screen; the
//! channel page re-reading itself every 30 s (on a page whose clock the
//! walk moves) until its switch is turned off. The server's own records are
//! checked afterwards.
//!
//! Runs when `TEST_CHROMIUM` names a Chromium binary (Debian's
//! `/usr/bin/chromium`) and `TEST_NODE_SMPP_DIR` the directory whose
//! `node_modules` holds playwright-core (`npm ci` in `tests/peers/node`),
//! with `node` on PATH. Set `SCREENSHOTS_DIR` to keep screenshots of the
//! main pages (1280×800, and the template editor at 390×844).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use motcua_sms::admin::accounts::Role;
use serde_json::Value;
use support::node_peer::{node_dir, ENV as NODE_ENV};
use support::peer_esme::PeerEsme;
use support::{spawn_app, KNOWN_CODE, PASSWORD, SERVICE_NUMBER, SYSTEM_ID};

const CHROMIUM_ENV: &str = "TEST_CHROMIUM";
/// The version `tests/peers/node/package.json` pins.
const PLAYWRIGHT_VERSION: &str = "1.64.1";
/// A well-formed code that no sample dossier has.
const UNKNOWN_CODE: &str = "000.00.12.H58-240315-9999";
/// The steps the walk must report, each `ok`.
const STEPS: &[&str] = &[
    "login-page",
    "login-operator",
    "dashboard",
    "language-switch",
    "templates-list",
    "edit-preview-marker",
    "unknown-variable",
    "save-version",
    "activate",
    "simulator-marker",
    "rollback",
    "simulator-after-rollback",
    "message-log",
    "lists",
    "channels",
    "operator-no-accounts",
    "logout-operator",
    "accounts",
    "forced-password-change",
    "login-viewer",
    "viewer-read-only",
    "phone-viewport",
    "auto-refresh",
    "done",
];
/// The whole walk, generously: the machine is shared.
const WALK_TIMEOUT: Duration = Duration::from_secs(300);

/// A Chromium binary (/usr/bin/chromium); with [`NODE_ENV`] naming
/// tests/peers/node (npm ci there) the console is walked in it.
fn chromium() -> PathBuf {
    PathBuf::from(support::service(CHROMIUM_ENV))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(all(test_chromium, test_node_smpp_dir)),
    ignore = "needs TEST_CHROMIUM and TEST_NODE_SMPP_DIR (Chromium, playwright-core)"
)]
async fn the_console_walked_in_chromium() {
    let chromium = chromium();
    let dir = node_dir();
    let manifest = dir.join("node_modules/playwright-core/package.json");
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap_or_else(|e| {
            panic!("{}: {e} (npm ci in tests/peers/node)", manifest.display())
        }))
        .expect("playwright-core's package.json");
    assert_eq!(
        manifest["version"], PLAYWRIGHT_VERSION,
        "npm ci in tests/peers/node"
    );

    let app = spawn_app().await;
    let operator = app.admin_account("dieuhanh", Role::Operator).await;
    let viewer = app.admin_account("nguoixem", Role::Viewer).await;
    let admin = app.admin_account("quantri", Role::Administrator).await;

    // Some traffic for the dashboard, the log and the channels page: a
    // found dossier, an unknown code and a help request, from a peer that
    // stays bound through the walk.
    let mut peer = PeerEsme::bind_transceiver(app.listener, SYSTEM_ID, PASSWORD)
        .await
        .unwrap();
    for (from, text) in [
        ("0912345678", format!("TC {KNOWN_CODE}")),
        ("0987000111", format!("TC {UNKNOWN_CODE}")),
        ("0987000222", "xin chao".to_owned()),
    ] {
        peer.submit(from, SERVICE_NUMBER, 0, text.as_bytes())
            .await
            .unwrap();
        assert!(
            peer.next_deliver(Duration::from_secs(10)).await.is_some(),
            "a reply to {text:?}"
        );
    }

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/node/console.mjs");
    let child = tokio::process::Command::new("node")
        .arg(&script)
        .env("CHROMIUM", &chromium)
        .env("CONSOLE_URL", format!("http://{}/", app.admin))
        .env("OPERATOR_USER", "dieuhanh")
        .env("OPERATOR_PASSWORD", &operator)
        .env("VIEWER_USER", "nguoixem")
        .env("VIEWER_PASSWORD", &viewer)
        .env("ADMIN_USER", "quantri")
        .env("ADMIN_PASSWORD", &admin)
        .env("UNKNOWN_CODE", UNKNOWN_CODE)
        .env(NODE_ENV, &dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start node {}: {e}", script.display()));
    let output = tokio::time::timeout(WALK_TIMEOUT, child.wait_with_output())
        .await
        .expect("the walk ends within 5 minutes")
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    for line in stdout.lines() {
        eprintln!("{line}");
    }
    let report = || format!("stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(output.status.success(), "the walk failed: {}", report());

    let steps: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    for step in &steps {
        assert_eq!(step["ok"], true, "{step}");
    }
    let names: Vec<&str> = steps.iter().filter_map(|s| s["step"].as_str()).collect();
    assert_eq!(names, STEPS, "{}", report());
    let step = |name: &str| steps.iter().find(|s| s["step"] == name).unwrap();
    let marker = step("done")["marker"].as_str().expect("marker").to_owned();
    assert!(
        step("simulator-marker")["reply"]
            .as_str()
            .is_some_and(|r| r.contains(&marker) && r.contains(UNKNOWN_CODE)),
        "{}",
        step("simulator-marker")
    );
    assert_eq!(
        step("unknown-variable")["line"].as_u64().map(|l| l > 0),
        Some(true)
    );
    assert!(
        step("message-log")["rows"].as_u64() >= Some(3),
        "{}",
        step("message-log")
    );
    assert!(
        step("channels")["smpp_links"].as_u64() >= Some(1),
        "{}",
        step("channels")
    );
    let fresh = step("forced-password-change")["account"]
        .as_str()
        .expect("the account made in the browser")
        .to_owned();

    // What the browser did, as the server recorded it.
    let journal = app.journal().await;
    let versions: Vec<(i64, String, String, String)> = sqlx::query_as(
        "SELECT id, author, note, source FROM template_versions WHERE template = 'not_found'",
    )
    .fetch_all(&journal)
    .await
    .unwrap();
    assert_eq!(versions.len(), 1, "one version saved: {versions:?}");
    let (id, author, note, source) = &versions[0];
    assert_eq!(author, "dieuhanh");
    assert!(
        note.contains(&marker) && source.contains(&marker),
        "{versions:?}"
    );
    assert!(
        !source.contains("nonsense"),
        "the refused text was not saved"
    );
    let activations: Vec<(Option<i64>, String, Option<i64>)> = sqlx::query_as(
        "SELECT version_id, actor, undoes FROM template_activations \
         WHERE template = 'not_found' ORDER BY id",
    )
    .fetch_all(&journal)
    .await
    .unwrap();
    assert_eq!(
        activations.len(),
        2,
        "activated, then rolled back: {activations:?}"
    );
    assert_eq!(activations[0].0, Some(*id), "{activations:?}");
    assert_eq!(
        activations[1].0, None,
        "back to the built-in text: {activations:?}"
    );
    assert!(activations[1].2.is_some(), "a roll back: {activations:?}");
    assert!(
        activations.iter().all(|a| a.1 == "dieuhanh"),
        "{activations:?}"
    );
    let (role, must_change): (String, i64) =
        sqlx::query_as("SELECT role, must_change FROM accounts WHERE username = ?")
            .bind(&fresh)
            .fetch_one(&journal)
            .await
            .unwrap();
    assert_eq!(role, "operator");
    assert_eq!(
        must_change, 0,
        "the first password was changed in the browser"
    );
    journal.close().await;
    peer.unbind().await;
    app.stop().await;
}
