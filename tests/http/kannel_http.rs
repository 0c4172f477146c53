//! Kannel's get-url drop-in of a running gateway, on its own port, over a
//! real socket: the reply text with `X-Kannel-Coding`, the journal, the SMS
//! admission (rate limits, blocks); who may call (the allow list, the shared
//! secret in the query or a header); the public port, even behind its
//! reverse proxy, never answering it; and the start-up checks of the
//! callers' settings (`[kannel]`, `[ussd.http]`, the old `public.kannel` keys).

use std::path::Path;
use std::process::Command;

use motcua_sms::config::Config;
use support::{spawn_app_with, AppOptions, TestApp, KNOWN_CODE};

const SECRET: &str = "kannel-test-secret-0123";

fn kannel_on(config: &mut Config) {
    config.kannel.enabled = true;
}

fn kannel_with_secret(config: &mut Config) {
    kannel_on(config);
    config.kannel.secret = SECRET.to_owned();
}

async fn app(tweak: fn(&mut Config)) -> TestApp {
    spawn_app_with(AppOptions {
        tweak: Some(tweak),
        ..AppOptions::default()
    })
    .await
}

async fn get(app: &TestApp, path: &str) -> reqwest::Response {
    reqwest::get(format!("http://{}{path}", app.kannel.expect("kannel port")))
        .await
        .expect("the drop-in answers")
}

/// Messages in the journal.
async fn recorded(app: &TestApp) -> i64 {
    let pool = app.journal().await;
    let count = sqlx::query_scalar("SELECT COUNT(*) FROM messages")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    count
}

#[tokio::test]
async fn kannel_get_url_gets_the_reply_text_with_its_coding_and_it_is_journaled() {
    let app = app(kannel_on).await;
    let response = get(
        &app,
        &format!("/kannel?from=%2B84987000111&to=8058&text=TC%20{KNOWN_CODE}"),
    )
    .await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response.headers()["x-kannel-coding"],
        "2",
        "accented: UCS-2"
    );
    let reply = response.text().await.unwrap();
    assert!(reply.starts_with(&format!("HS {KNOWN_CODE}")), "{reply}");
    assert!(!reply.contains("Nguyễn"), "a stranger: {reply}");
    // The owner's number gets the name.
    let owner = get(
        &app,
        &format!("/kannel?from=0912345678&to=8058&text=TC%20{KNOWN_CODE}"),
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(owner.contains("Nguyễn Văn An"), "{owner}");

    let missing = get(&app, "/kannel?to=8058&text=TC").await;
    assert_eq!(missing.status().as_u16(), 400);
    assert!(missing.text().await.unwrap().contains("from=%p"));

    // The SMS rate limit applies: the fourth message in a burst gets the
    // notice, the fifth nothing (an empty body: Kannel's omit-empty).
    let mut bodies = Vec::new();
    for n in 0..5 {
        bodies.push(
            get(
                &app,
                &format!("/kannel?from=0987000222&to=8058&text=xin%20chao%20{n}"),
            )
            .await
            .text()
            .await
            .unwrap(),
        );
    }
    assert!(bodies[2].starts_with("Tra cứu hồ sơ"), "{}", bodies[2]);
    assert!(bodies[3].contains("thử lại"), "the notice: {}", bodies[3]);
    assert_eq!(bodies[4], "", "then silence");

    let pool = app.journal().await;
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT m.channel, r.outcome, r.state FROM messages m JOIN replies r ON r.message_id = m.id ORDER BY m.id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    assert_eq!(rows.len(), 7, "{rows:?}");
    assert_eq!(rows[0], ("kannel".into(), "found".into(), "sent".into()));
    assert_eq!(rows[6].2, "suppressed", "{rows:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_blocked_number_gets_an_empty_body() {
    let app = app(kannel_on).await;
    let pool = app.journal().await;
    let guard = motcua_sms::abuse::AbuseGuard::open(Default::default(), pool.clone())
        .await
        .unwrap();
    let owner = motcua_sms::domain::Msisdn::parse("0912345678").unwrap();
    guard.block(&owner, None, "test").await.unwrap();
    let response = get(
        &app,
        &format!("/kannel?from=0912345678&to=8058&text=TC%20{KNOWN_CODE}"),
    )
    .await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.text().await.unwrap(), "");
    let outcome: String = sqlx::query_scalar("SELECT outcome FROM replies")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    assert_eq!(outcome, "silenced: blocked");
    app.stop().await;
}

#[tokio::test]
async fn addresses_not_allowed_are_refused_naming_the_key() {
    fn only_elsewhere(config: &mut Config) {
        kannel_on(config);
        config.kannel.allow = vec!["10.9.8.7".parse().unwrap()];
    }
    let app = app(only_elsewhere).await;
    let response = get(
        &app,
        &format!("/kannel?from=0912345678&to=8058&text=TC%20{KNOWN_CODE}"),
    )
    .await;
    assert_eq!(response.status().as_u16(), 403);
    assert!(response.text().await.unwrap().contains("kannel.allow"));
    app.stop().await;
}

#[tokio::test]
async fn with_a_secret_only_requests_carrying_it_are_answered() {
    let app = app(kannel_with_secret).await;
    let ask = format!("from=0912345678&to=8058&text=TC%20{KNOWN_CODE}");
    for path in [
        format!("/kannel?{ask}"),
        format!("/kannel?{ask}&secret="),
        format!("/kannel?{ask}&secret=kannel-test-secret-0124"),
        format!("/kannel?{ask}&secret=kannel-test-secret-01234"),
    ] {
        let response = get(&app, &path).await;
        assert_eq!(response.status().as_u16(), 401, "{path}");
        let body = response.text().await.unwrap();
        assert!(!body.contains("Nguyễn"), "{path}: {body}");
        assert!(body.contains("kannel.secret"), "{path}: {body}");
    }
    let owner = get(&app, &format!("/kannel?secret={SECRET}&{ask}")).await;
    assert_eq!(owner.status().as_u16(), 200);
    assert!(owner.text().await.unwrap().contains("Nguyễn Văn An"));
    let by_header = reqwest::Client::new()
        .get(format!(
            "http://{}/kannel?from=0912345678&to=8058&text=HS%20{KNOWN_CODE}",
            app.kannel.expect("kannel port")
        ))
        .header("X-Motcua-Secret", SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(by_header.status().as_u16(), 200);
    // Refused requests were never recorded: only the two answered are.
    assert_eq!(recorded(&app).await, 2);
    app.stop().await;
}

#[tokio::test]
async fn the_public_port_behind_its_proxy_never_answers_for_kannel() {
    fn public_behind_proxy(config: &mut Config) {
        kannel_on(config);
        config.public.enabled = true;
        config.public.trust_forwarded_for = true;
    }
    let app = app(public_behind_proxy).await;
    assert_ne!(app.public, app.kannel, "a port of its own");
    // A visitor through the same-host reverse proxy: the socket's peer is
    // 127.0.0.1, which the drop-in allows; the public port must not serve it.
    let response = reqwest::Client::new()
        .get(format!(
            "http://{}/kannel?from=0912345678&to=8058&text=TC%20{KNOWN_CODE}",
            app.public.expect("public port")
        ))
        .header("X-Forwarded-For", "203.0.113.7")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
    let body = response.text().await.unwrap();
    assert!(!body.contains("Nguyễn"), "{body}");
    assert_eq!(recorded(&app).await, 0);
    app.stop().await;
}

fn run_with(dir: &Path, config: &str) -> (Option<i32>, String) {
    let path = dir.join("gateway.toml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_motcua-sms"))
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env_remove("MOTCUA_KANNEL__SECRET")
        .env_remove("MOTCUA_USSD__HTTP__SECRET")
        .arg("--config")
        .arg(&path)
        .arg("run")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn callers_settings_that_would_let_anyone_in_stop_the_gateway_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (config, key) in [
        (
            "[kannel]\nenabled = true\nbind = \"0.0.0.0:0\"\n",
            "kannel.secret",
        ),
        (
            "[kannel]\nenabled = true\nsecret = \"short\"\n",
            "kannel.secret",
        ),
        ("[kannel]\nenabled = true\nallow = []\n", "kannel.allow"),
        (
            "[ussd.http]\nenabled = true\nbind = \"0.0.0.0:0\"\n",
            "ussd.http.secret",
        ),
        ("[public]\nkannel = true\n", "public.kannel"),
        (
            "[public]\nkannel_allow = [\"127.0.0.1\"]\n",
            "public.kannel_allow",
        ),
    ] {
        let (code, stderr) = run_with(dir.path(), config);
        assert_eq!(code, Some(78), "{config}: {stderr}");
        assert!(stderr.contains(key), "{config}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    }
    let (_, moved) = run_with(dir.path(), "[public]\nkannel = true\n");
    assert!(moved.contains("[kannel]"), "says where it went: {moved}");
}
