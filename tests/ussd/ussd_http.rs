//! USSD behind an aggregator: the HTTP callback (`sessionId`, `serviceCode`,
//! `phoneNumber`, `text` with `*`-joined inputs → `CON …` / `END …`) of a
//! running gateway, over a real socket: menu navigation, direct dial,
//! keypad digits matching two dossiers, invalid input at each step,
//! retries, bad requests, rate limits, the journal, the release of an
//! abandoned dialogue, and a table that stays bounded under 10,000
//! abandoned dialogues.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use motcua_sms::config::Config;
use support::{spawn_app_with, AppOptions, TestApp, KNOWN_CODE};

/// The sample dossier's digits (000.00.12.H58-240315-0007).
const KNOWN_DIGITS: &str = "0000012582403150007";
/// The sample dossier's owner.
const OWNER: &str = "0912345678";
/// A stranger.
const STRANGER: &str = "0987000111";

fn ussd_on(config: &mut Config) {
    config.ussd.http.enabled = true;
    config.service.hotline = Some("0273 3 873 999".into());
}

async fn app_with(tweak: fn(&mut Config), extra: Vec<String>) -> TestApp {
    spawn_app_with(AppOptions {
        tweak: Some(tweak),
        extra_dossiers: extra,
        ..AppOptions::default()
    })
    .await
}

async fn app() -> TestApp {
    app_with(ussd_on, Vec::new()).await
}

/// The callback on, each number answered `burst` times back to back and
/// `per_hour` an hour.
async fn limited_app(burst: u32, per_hour: u32) -> TestApp {
    spawn_app_with(AppOptions {
        tweak: Some(ussd_on),
        rate_limit: motcua_sms::abuse::RateLimitSettings {
            burst,
            per_hour,
            ..Default::default()
        },
        ..AppOptions::default()
    })
    .await
}

/// One callback request: (status, body).
async fn post(addr: SocketAddr, session: &str, phone: &str, text: &str) -> (u16, String) {
    post_dialled(addr, session, "*8058#", phone, text).await
}

/// One callback request with `serviceCode` as the aggregator sends it.
async fn post_dialled(
    addr: SocketAddr,
    session: &str,
    service_code: &str,
    phone: &str,
    text: &str,
) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/ussd"))
        .form(&[
            ("sessionId", session),
            ("serviceCode", service_code),
            ("phoneNumber", phone),
            ("text", text),
            ("networkCode", "45204"),
        ])
        .send()
        .await
        .expect("callback answers");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// The screen for `text`, which must succeed.
async fn screen(app: &TestApp, session: &str, phone: &str, text: &str) -> String {
    let (status, body) = post(app.ussd_http.expect("callback on"), session, phone, text).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.starts_with("CON ") || body.starts_with("END "),
        "{body}"
    );
    body
}

async fn metrics(app: &TestApp) -> String {
    reqwest::get(format!("http://{}/metrics", app.http.expect("ops port")))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            let (key, value) = line.split_once(' ')?;
            (key == name).then(|| value.parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no {name} in metrics"))
}

#[tokio::test]
async fn the_menu_leads_to_the_status_and_the_name_only_for_the_owner() {
    let app = app().await;
    let menu = screen(&app, "s1", STRANGER, "").await;
    assert!(menu.starts_with("CON Tra cuu ho so"), "{menu}");
    assert!(menu.contains("1. Tra cuu theo ma ho so"), "{menu}");
    assert!(menu.contains("3. Duong day nong"), "{menu}");
    let ask = screen(&app, "s1", STRANGER, "1").await;
    assert!(ask.starts_with("CON Nhap cac chu so"), "{ask}");
    let status = screen(&app, "s1", STRANGER, &format!("1*{KNOWN_DIGITS}")).await;
    assert!(
        status.starts_with(&format!("END HS {KNOWN_CODE}")),
        "{status}"
    );
    assert!(status.contains("Dang xu ly"), "{status}");
    assert!(
        !status.contains("Nguyen"),
        "no name for a stranger: {status}"
    );

    screen(&app, "s2", OWNER, "").await;
    screen(&app, "s2", OWNER, "1").await;
    let own = screen(&app, "s2", OWNER, &format!("1*{KNOWN_CODE}")).await;
    assert!(own.starts_with("END HS"), "{own}");
    assert!(own.contains("Nguyen Van An"), "the owner's name: {own}");

    // Each finished dialogue is in the journal with its answer (written
    // once the answer has left).
    let pool = app.journal().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let rows = loop {
        let rows: Vec<(String, String, String, String)> = sqlx::query_as(
            "SELECT m.channel, m.text, r.outcome, r.state FROM messages m \
             JOIN replies r ON r.message_id = m.id ORDER BY m.id",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        if rows.len() >= 2 || Instant::now() > deadline {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0].0, "ussd:http");
    assert_eq!(rows[0].1, format!("*8058# > 1 > {KNOWN_DIGITS}"));
    assert_eq!((rows[0].2.as_str(), rows[0].3.as_str()), ("found", "sent"));
    // With what each looked up, and when it was answered.
    let lookups: Vec<(String, Option<String>, bool)> = sqlx::query_as(
        "SELECT l.code, l.agency, r.sent_at >= m.received_at FROM messages m \
         JOIN replies r ON r.message_id = m.id JOIN reply_lookups l ON l.message_id = m.id \
         ORDER BY m.id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    let found = (
        KNOWN_CODE.to_owned(),
        Some("UBND huyện Cái Bè".to_owned()),
        true,
    );
    assert_eq!(lookups, vec![found.clone(), found]);
    app.stop().await;
}

#[tokio::test]
async fn a_direct_dial_answers_at_once_whatever_separates_the_digits() {
    let app = app().await;
    // Each from its own number (the rate limit counts dials per number).
    for (session, phone, text) in [
        ("d1", "0987000201", KNOWN_DIGITS.to_owned()),
        ("d2", "0987000202", "000*00*12*58*240315*0007".to_owned()),
        ("d3", "0987000203", KNOWN_CODE.to_owned()),
    ] {
        let answer = screen(&app, session, phone, &text).await;
        assert!(
            answer.starts_with(&format!("END HS {KNOWN_CODE}")),
            "{text}: {answer}"
        );
    }
    let missing = screen(&app, "d4", STRANGER, "0000012582403159999").await;
    assert!(
        missing.starts_with("END Khong tim thay ho so 0000012582403159999"),
        "{missing}"
    );
    app.stop().await;
}

#[tokio::test]
async fn help_and_hotline_close_the_dialogue() {
    let app = app().await;
    screen(&app, "h1", STRANGER, "").await;
    let help = screen(&app, "h1", STRANGER, "2").await;
    assert!(help.starts_with("END Bam *8058*"), "{help}");
    screen(&app, "h2", STRANGER, "").await;
    let hotline = screen(&app, "h2", STRANGER, "3").await;
    assert_eq!(hotline, "END Duong day nong: 0273 3 873 999");
    app.stop().await;
}

#[tokio::test]
async fn two_dossiers_sharing_the_digits_are_offered_to_choose() {
    let twin = r#"{"MaHoSo":"000.00.12.G58-240315-0007","TenTTHC":"Đăng ký khai sinh","TrangThaiHoSo":9,"NgayHenTra":"20240320170000","NgayKetThucXuLy":"20240319100000","version":1}"#;
    let app = app_with(ussd_on, vec![twin.to_owned()]).await;
    screen(&app, "c1", STRANGER, "").await;
    screen(&app, "c1", STRANGER, "1").await;
    let choose = screen(&app, "c1", STRANGER, &format!("1*{KNOWN_DIGITS}")).await;
    assert!(choose.starts_with("CON Co 2 ho so trung so"), "{choose}");
    assert!(choose.contains("1. 000.00.12.G58-240315-0007"), "{choose}");
    assert!(choose.contains("2. 000.00.12.H58-240315-0007"), "{choose}");
    let bad = screen(&app, "c1", STRANGER, &format!("1*{KNOWN_DIGITS}*7")).await;
    assert!(bad.starts_with("CON Lua chon khong hop le"), "{bad}");
    assert!(bad.contains("2. 000.00.12.H58-240315-0007"), "{bad}");
    let picked = screen(&app, "c1", STRANGER, &format!("1*{KNOWN_DIGITS}*7*1")).await;
    assert!(
        picked.starts_with("END HS 000.00.12.G58-240315-0007"),
        "{picked}"
    );
    // A direct dial of the shared digits asks too.
    let direct = screen(&app, "c2", STRANGER, KNOWN_DIGITS).await;
    assert!(direct.starts_with("CON Co 2 ho so"), "{direct}");
    let second = screen(&app, "c2", STRANGER, &format!("{KNOWN_DIGITS}*2")).await;
    assert!(
        second.starts_with(&format!("END HS {KNOWN_CODE}")),
        "{second}"
    );
    app.stop().await;
}

#[tokio::test]
async fn invalid_input_at_each_step_is_asked_again_then_answered_with_help() {
    let app = app().await;
    // The menu.
    screen(&app, "i1", STRANGER, "").await;
    let again = screen(&app, "i1", STRANGER, "9").await;
    assert!(again.starts_with("CON Lua chon khong hop le"), "{again}");
    assert!(again.contains("1. Tra cuu theo ma ho so"), "{again}");
    screen(&app, "i1", STRANGER, "9*x").await;
    let gave_up = screen(&app, "i1", STRANGER, "9*x*").await;
    assert!(gave_up.starts_with("END Bam *8058*"), "{gave_up}");

    // The code: too short, an impossible date, order 0000, then help.
    screen(&app, "i2", STRANGER, "").await;
    screen(&app, "i2", STRANGER, "1").await;
    let short = screen(&app, "i2", STRANGER, "1*12345").await;
    assert!(short.starts_with("CON Ma chua dung"), "{short}");
    let date = screen(&app, "i2", STRANGER, "1*12345*0000012582402310007").await;
    assert!(
        date.starts_with("CON Ngay trong ma khong co that"),
        "{date}"
    );
    let third = screen(
        &app,
        "i2",
        STRANGER,
        "1*12345*0000012582402310007*0000012582403150000",
    )
    .await;
    assert!(third.starts_with("END Bam *8058*"), "{third}");

    // A direct dial of a bad code opens the code prompt to type it again.
    let direct = screen(&app, "i3", OWNER, "12345").await;
    assert!(direct.starts_with("CON Ma chua dung"), "{direct}");
    let fixed = screen(&app, "i3", OWNER, &format!("12345*{KNOWN_DIGITS}")).await;
    assert!(
        fixed.starts_with(&format!("END HS {KNOWN_CODE}")),
        "{fixed}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_retried_request_gets_the_same_screen_and_a_lost_dialogue_is_walked_again() {
    let app = app().await;
    let first = screen(&app, "r1", STRANGER, "").await;
    assert_eq!(screen(&app, "r1", STRANGER, "").await, first);
    let ask = screen(&app, "r1", STRANGER, "1").await;
    assert_eq!(screen(&app, "r1", STRANGER, "1").await, ask);
    // A session this gateway never saw (restart) with a menu walk in it.
    let resumed = screen(&app, "r2-unknown", STRANGER, &format!("1*{KNOWN_DIGITS}")).await;
    assert!(
        resumed.starts_with(&format!("END HS {KNOWN_CODE}")),
        "{resumed}"
    );
    app.stop().await;
}

#[tokio::test]
async fn bad_requests_are_refused_with_what_is_wrong() {
    let app = app().await;
    let addr = app.ussd_http.unwrap();
    let (status, body) = post(addr, "", STRANGER, "").await;
    assert_eq!(status, 400);
    assert!(body.contains("sessionId is missing"), "{body}");
    let (status, body) = post(addr, "x", "", "").await;
    assert_eq!(status, 400);
    assert!(body.contains("phoneNumber is missing"), "{body}");
    let (status, body) = post(addr, "x", STRANGER, &"1".repeat(2000)).await;
    assert_eq!(status, 400);
    assert!(body.contains("text is longer"), "{body}");
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/ussd"))
        .header("content-type", "application/json")
        .body(r#"{"sessionId":"x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let body = response.text().await.unwrap();
    assert!(body.contains("application/x-www-form-urlencoded"), "{body}");
    // A number that is not a phone number gets help, not an error.
    let help = screen(&app, "n1", "not-a-number", KNOWN_DIGITS).await;
    assert!(help.starts_with("END Bam *8058*"), "{help}");
    app.stop().await;
}

#[tokio::test]
async fn dials_over_the_rate_limit_get_the_notice() {
    let app = limited_app(2, 2).await;
    for n in 0..2 {
        let answer = screen(&app, &format!("l{n}"), STRANGER, KNOWN_DIGITS).await;
        assert!(answer.starts_with("END HS"), "{answer}");
    }
    let limited = screen(&app, "l3", STRANGER, KNOWN_DIGITS).await;
    assert!(
        limited.starts_with("END Ban da tra cuu qua nhieu lan"),
        "{limited}"
    );
    // Another citizen is not limited.
    let other = screen(&app, "l4", OWNER, KNOWN_DIGITS).await;
    assert!(other.starts_with("END HS"), "{other}");
    app.stop().await;
}

#[tokio::test]
async fn an_abandoned_dialogue_is_released_and_journaled() {
    fn short_sessions(config: &mut Config) {
        ussd_on(config);
        config.ussd.session_timeout_secs = 1;
    }
    let app = app_with(short_sessions, Vec::new()).await;
    screen(&app, "t1", STRANGER, "").await;
    screen(&app, "t1", STRANGER, "1").await;
    let text = metrics(&app).await;
    assert_eq!(metric(&text, "motcua_ussd_sessions_open"), 1.0);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = metrics(&app).await;
        if metric(&text, "motcua_ussd_sessions_expired_total") == 1.0 {
            assert_eq!(metric(&text, "motcua_ussd_sessions_open"), 0.0);
            break;
        }
        assert!(Instant::now() < deadline, "never expired: {text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pool = app.journal().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let outcome: Option<String> = sqlx::query_scalar(
            "SELECT r.outcome FROM messages m JOIN replies r ON r.message_id = m.id \
             WHERE m.channel = 'ussd:http'",
        )
        .fetch_optional(&pool)
        .await
        .unwrap();
        if let Some(outcome) = outcome {
            assert_eq!(outcome, "abandoned");
            break;
        }
        assert!(Instant::now() < deadline, "not journaled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    pool.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_abandoned_dialogues_leave_the_table_bounded() {
    fn bounded(config: &mut Config) {
        ussd_on(config);
        config.ussd.max_sessions = 2_000;
        config.ussd.session_timeout_secs = 3;
        // One aggregator sends 500 requests at once: room for them all, and
        // for the connections of the batch before that the client has not
        // put back in its pool yet (it opens new ones meanwhile).
        config.ussd.http.limits.max_connections = 5_000;
        config.ussd.http.limits.max_connections_per_ip = 5_000;
    }
    let app = app_with(bounded, Vec::new()).await;
    let addr = app.ussd_http.unwrap();
    let client = reqwest::Client::new();
    let mut most_open = 0.0f64;
    for batch in 0..20 {
        let mut requests = tokio::task::JoinSet::new();
        for i in 0..500 {
            let n = batch * 500 + i;
            let client = client.clone();
            requests.spawn(async move {
                let session = format!("abandon-{n}");
                let phone = format!("09{:08}", 10_000_000 + n);
                let response = client
                    .post(format!("http://{addr}/ussd"))
                    .form(&[
                        ("sessionId", session.as_str()),
                        ("serviceCode", "*8058#"),
                        ("phoneNumber", phone.as_str()),
                        ("text", ""),
                    ])
                    .send()
                    .await
                    .unwrap();
                let status = response.status();
                let body = response.text().await.unwrap();
                assert!(body.starts_with("CON Tra cuu"), "{status}: {body:?}");
            });
        }
        while let Some(done) = requests.join_next().await {
            done.expect("request task");
        }
        let open = metric(&metrics(&app).await, "motcua_ussd_sessions_open");
        assert!(open <= 2_000.0, "batch {batch}: {open} open");
        most_open = most_open.max(open);
    }
    let text = metrics(&app).await;
    let evicted = metric(&text, "motcua_ussd_sessions_evicted_total");
    let expired = metric(&text, "motcua_ussd_sessions_expired_total");
    assert_eq!(most_open, 2_000.0, "the table filled up to its capacity");
    assert_eq!(
        evicted + expired + metric(&text, "motcua_ussd_sessions_open"),
        10_000.0,
        "{text}"
    );
    // Then every one left is released after the timeout.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = metrics(&app).await;
        if metric(&text, "motcua_ussd_sessions_open") == 0.0 {
            let released = metric(&text, "motcua_ussd_sessions_evicted_total")
                + metric(&text, "motcua_ussd_sessions_expired_total");
            assert_eq!(released, 10_000.0);
            break;
        }
        assert!(Instant::now() < deadline, "not released: {text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn a_code_typed_with_stars_after_the_menu_is_one_entry() {
    let app = app().await;
    screen(&app, "g1", STRANGER, "").await;
    screen(&app, "g1", STRANGER, "1").await;
    let status = screen(&app, "g1", STRANGER, "1*000*00*12*58*240315*0007").await;
    assert!(
        status.starts_with(&format!("END HS {KNOWN_CODE}")),
        "{status}"
    );
    // The same after a bad first try, and with the code's letters.
    screen(&app, "g2", STRANGER, "").await;
    screen(&app, "g2", STRANGER, "1").await;
    let again = screen(&app, "g2", STRANGER, "1*12*345").await;
    assert!(again.starts_with("CON Ma chua dung"), "{again}");
    let status = screen(&app, "g2", STRANGER, "1*12*345*000*00*12*58*240315*0007").await;
    assert!(
        status.starts_with(&format!("END HS {KNOWN_CODE}")),
        "{status}"
    );
    // A lost dialogue walked again with the code in groups is answered too.
    let resumed = screen(&app, "g3-unknown", OWNER, "1*000*00*12*58*240315*0007").await;
    assert!(
        resumed.starts_with(&format!("END HS {KNOWN_CODE}")),
        "{resumed}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_direct_dial_sent_only_as_the_service_code_is_answered() {
    let twin = r#"{"MaHoSo":"000.00.12.G58-240315-0007","TenTTHC":"Đăng ký khai sinh","TrangThaiHoSo":9,"NgayHenTra":"20240320170000","NgayKetThucXuLy":"20240319100000","version":1}"#;
    let app = app_with(ussd_on, vec![twin.to_owned()]).await;
    let addr = app.ussd_http.unwrap();
    let (status, answer) =
        post_dialled(addr, "sc1", "*8058*000*00*12*58*240315*0007#", STRANGER, "").await;
    assert_eq!(status, 200);
    // Two dossiers share these digits: the citizen picks one.
    assert!(answer.starts_with("CON Co 2 ho so"), "{answer}");
    let (_, picked) = post_dialled(
        addr,
        "sc1",
        "*8058*000*00*12*58*240315*0007#",
        STRANGER,
        "2",
    )
    .await;
    assert!(
        picked.starts_with(&format!("END HS {KNOWN_CODE}")),
        "{picked}"
    );
    let (_, whole) = post_dialled(addr, "sc2", &format!("*8058*{KNOWN_CODE}#"), OWNER, "").await;
    assert!(
        whole.starts_with(&format!("END HS {KNOWN_CODE}")),
        "{whole}"
    );
    // The bare service code still opens the menu; another service's code too.
    let (_, menu) = post_dialled(addr, "sc3", "*8058#", STRANGER, "").await;
    assert!(menu.starts_with("CON Tra cuu ho so"), "{menu}");
    let (_, other) = post_dialled(addr, "sc4", "*384*99#", STRANGER, "").await;
    assert!(other.starts_with("CON Tra cuu ho so"), "{other}");
    app.stop().await;
}

/// Blocks `phone` in the running gateway's lists, as `motcua-sms block add` does.
async fn block(app: &TestApp, phone: &str) {
    let pool = app.journal().await;
    let guard = motcua_sms::abuse::AbuseGuard::open(Default::default(), pool.clone())
        .await
        .unwrap();
    let msisdn = motcua_sms::domain::Msisdn::parse(phone).unwrap();
    guard.block(&msisdn, None, "test").await.unwrap();
    pool.close().await;
}

#[tokio::test]
async fn a_blocked_numbers_menu_walk_is_refused_at_every_turn() {
    let app = app().await;
    block(&app, STRANGER).await;
    let dial = screen(&app, "b1", STRANGER, "").await;
    assert!(dial.starts_with("END "), "{dial}");
    // The aggregator may go on with the inputs the citizen typed anyway:
    // the next requests reach the gateway as a session it does not know.
    for text in ["1".to_owned(), format!("1*{KNOWN_DIGITS}")] {
        let answer = screen(&app, "b1", STRANGER, &text).await;
        assert!(answer.starts_with("END "), "{text}: {answer}");
        assert!(!answer.contains("HS "), "{text}: {answer}");
        assert!(!answer.contains("Dang xu ly"), "{text}: {answer}");
    }
    let walked = screen(&app, "b2-unknown", STRANGER, &format!("1*{KNOWN_CODE}")).await;
    assert!(!walked.contains("Dang xu ly"), "{walked}");
    app.stop().await;
}

#[tokio::test]
async fn menu_walks_of_lost_dialogues_count_against_the_rate_limit() {
    let app = limited_app(2, 2).await;
    let mut answers = Vec::new();
    for n in 0..4 {
        answers.push(
            screen(
                &app,
                &format!("w{n}"),
                STRANGER,
                &format!("1*{KNOWN_DIGITS}"),
            )
            .await,
        );
    }
    assert!(answers[0].starts_with("END HS"), "{answers:?}");
    assert!(answers[1].starts_with("END HS"), "{answers:?}");
    assert!(
        answers[2].starts_with("END Ban da tra cuu qua nhieu lan"),
        "{answers:?}"
    );
    assert!(!answers[3].contains("HS "), "{answers:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_refused_dial_says_blocked_or_the_time_never_none() {
    let app = limited_app(1, 1).await;
    let is_time = |screen: &str| {
        let tail = screen.trim_end_matches('.');
        let hhmm = &tail[tail.len().saturating_sub(5)..];
        hhmm.len() == 5
            && hhmm.as_bytes()[2] == b':'
            && hhmm.bytes().filter(u8::is_ascii_digit).count() == 4
    };
    screen(&app, "t0", STRANGER, KNOWN_DIGITS).await;
    // Over the limit: the notice with the time, then the same time again
    // (the SMS channel is silent then; a USSD screen must say something).
    for session in ["t1", "t2"] {
        let limited = screen(&app, session, STRANGER, KNOWN_DIGITS).await;
        assert!(
            limited.starts_with("END Ban da tra cuu qua nhieu lan"),
            "{limited}"
        );
        assert!(!limited.to_lowercase().contains("none"), "{limited}");
        assert!(is_time(&limited), "ends with HH:MM: {limited}");
    }
    block(&app, OWNER).await;
    let blocked = screen(&app, "t3", OWNER, "").await;
    assert!(blocked.starts_with("END "), "{blocked}");
    assert!(!blocked.to_lowercase().contains("none"), "{blocked}");
    assert!(blocked.contains("bi chan"), "says it is blocked: {blocked}");
    app.stop().await;
}

#[tokio::test]
async fn one_number_keeps_a_bounded_number_of_dialogues_open() {
    let app = limited_app(50, 100).await;
    // Another citizen's dialogue, waiting for input.
    screen(&app, "other", OWNER, "").await;
    for n in 0..10 {
        let menu = screen(&app, &format!("many-{n}"), STRANGER, "").await;
        assert!(menu.starts_with("CON "), "{menu}");
    }
    let text = metrics(&app).await;
    // The number's two newest, and the other citizen's.
    assert_eq!(metric(&text, "motcua_ussd_sessions_open"), 3.0, "{text}");
    let newest = screen(&app, "many-9", STRANGER, "1").await;
    assert!(newest.starts_with("CON Nhap"), "{newest}");
    let other = screen(&app, "other", OWNER, "1").await;
    assert!(other.starts_with("CON Nhap"), "{other}");
    app.stop().await;
}

const SECRET: &str = "aggregator-test-secret-0123";

#[tokio::test]
async fn only_an_allowed_caller_with_the_secret_is_answered() {
    fn with_secret(config: &mut Config) {
        ussd_on(config);
        config.ussd.http.secret = SECRET.to_owned();
    }
    let app = app_with(with_secret, Vec::new()).await;
    let addr = app.ussd_http.unwrap();
    let client = reqwest::Client::new();
    let form = [
        ("sessionId", "a1"),
        ("serviceCode", "*8058#"),
        ("phoneNumber", OWNER),
        ("text", KNOWN_DIGITS),
    ];
    for (url, header) in [
        (format!("http://{addr}/ussd"), None),
        (
            format!("http://{addr}/ussd"),
            Some("aggregator-test-secret-0124"),
        ),
        (format!("http://{addr}/ussd?secret=aggregator"), None),
    ] {
        let mut request = client.post(&url).form(&form);
        if let Some(header) = header {
            request = request.header("X-Motcua-Secret", header);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), 401, "{url} {header:?}");
        let body = response.text().await.unwrap();
        assert!(body.contains("ussd.http.secret"), "{body}");
        assert!(!body.contains("Nguyen"), "{body}");
    }
    let by_header = client
        .post(format!("http://{addr}/ussd"))
        .header("X-Motcua-Secret", SECRET)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(by_header.status().as_u16(), 200);
    let body = by_header.text().await.unwrap();
    assert!(
        body.starts_with("END HS") && body.contains("Nguyen Van An"),
        "{body}"
    );
    let in_url = client
        .post(format!("http://{addr}/ussd?secret={SECRET}"))
        .form(&[
            ("sessionId", "a2"),
            ("serviceCode", "*8058#"),
            ("phoneNumber", STRANGER),
            ("text", ""),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(in_url.status().as_u16(), 200);
    assert!(in_url.text().await.unwrap().starts_with("CON Tra cuu"));
    app.stop().await;

    fn elsewhere(config: &mut Config) {
        ussd_on(config);
        config.ussd.http.allow = vec!["192.0.2.0/24".parse().unwrap()];
    }
    let app = app_with(elsewhere, Vec::new()).await;
    let (status, body) = post(app.ussd_http.unwrap(), "a3", OWNER, KNOWN_DIGITS).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("ussd.http.allow"), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn one_calling_address_keeps_a_bounded_number_of_dialogues_open() {
    fn small_share(config: &mut Config) {
        ussd_on(config);
        config.ussd.http.max_sessions_per_address = 3;
    }
    let app = app_with(small_share, Vec::new()).await;
    for n in 0..5 {
        let menu = screen(&app, &format!("p{n}"), &format!("098700030{n}"), "").await;
        assert!(menu.starts_with("CON "), "{menu}");
    }
    let text = metrics(&app).await;
    assert_eq!(metric(&text, "motcua_ussd_sessions_open"), 3.0, "{text}");
    assert_eq!(metric(&text, "motcua_ussd_sessions_evicted_total"), 2.0);
    let newest = screen(&app, "p4", "0987000304", "1").await;
    assert!(newest.starts_with("CON Nhap"), "{newest}");
    app.stop().await;
}
