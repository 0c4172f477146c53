//! The admin console's API over a real socket, against a running gateway:
//! sessions (cookie + CSRF, bearer tokens), what each role may do, lockout,
//! the forced first password change, templates refused for an unknown
//! variable and for exceeding their segment budget, a version activated and
//! rolled back as the simulator shows, the lists, the log with numbers
//! masked for viewers, statistics, channels, sync and the OpenAPI document.

use std::net::SocketAddr;
use std::time::Duration;

use motcua_sms::admin::accounts::Role;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::peer_esme::PeerEsme;
use support::{spawn_app, PASSWORD, SYSTEM_ID};

/// A well-formed code that no sample dossier has.
const UNKNOWN_CODE: &str = "000.00.12.H58-240315-9999";
/// A sample dossier and its owner's number.
const KNOWN_CODE: &str = "000.00.12.H58-240315-0007";

/// A console client keeping its cookie and CSRF token by hand.
pub(crate) struct Console {
    base: String,
    http: reqwest::Client,
    pub(crate) cookie: Option<String>,
    pub(crate) csrf: Option<String>,
    bearer: Option<String>,
}

impl Console {
    pub(crate) fn new(addr: SocketAddr) -> Self {
        Console {
            base: format!("http://{addr}/api/v1"),
            http: reqwest::Client::new(),
            cookie: None,
            csrf: None,
            bearer: None,
        }
    }

    pub(crate) async fn login(addr: SocketAddr, user: &str, password: &str) -> Self {
        let mut console = Console::new(addr);
        let (status, body) = console.login_as(user, password).await;
        assert_eq!(status, StatusCode::OK, "{user} logs in: {body}");
        console
    }

    async fn login_as(&mut self, user: &str, password: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}/session", self.base))
            .json(&json!({"username": user, "password": password}))
            .send()
            .await
            .unwrap();
        let status = response.status();
        if let Some(cookie) = response.headers().get("set-cookie") {
            let cookie = cookie.to_str().unwrap().to_owned();
            assert!(cookie.contains("HttpOnly"), "{cookie}");
            assert!(cookie.contains("SameSite=Strict"), "{cookie}");
            self.cookie = Some(cookie.split(';').next().unwrap().to_owned());
        }
        let body: Value = response.json().await.unwrap();
        if status == StatusCode::OK {
            self.csrf = Some(body["csrf_token"].as_str().unwrap().to_owned());
        }
        (status, body)
    }

    /// A request with the session (cookie and CSRF, or bearer).
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call_with(method, path, body, true, None).await
    }

    async fn call_with(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        send_csrf: bool,
        origin: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", cookie);
        }
        if let (true, Some(csrf)) = (send_csrf, &self.csrf) {
            request = request.header("x-csrf-token", csrf);
        }
        if let Some(token) = &self.bearer {
            request = request.bearer_auth(token);
        }
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON body: {text}"))
        };
        (status, value)
    }

    pub(crate) async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    /// A GET whose answer is not JSON: status, content type, body.
    async fn get_text(&self, path: &str) -> (StatusCode, String, String) {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", cookie);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (status, content_type, response.text().await.unwrap())
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }
}

#[tokio::test]
async fn a_cookie_session_needs_its_csrf_token_for_changes_and_ends_at_logout() {
    let app = spawn_app().await;
    let password = app.admin_account("lan", Role::Operator).await;
    let console = Console::login(app.admin, "lan", &password).await;

    let (status, me) = console.get("/session").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["username"], "lan");
    assert_eq!(me["role"], "operator");
    assert_eq!(me["must_change_password"], false);

    let block = json!({"number": "0912000111", "reason": "thử", "minutes": 5});
    // No CSRF header: refused, and nothing changes.
    let (status, body) = console
        .call_with(
            Method::POST,
            "/lists/blocked",
            Some(block.clone()),
            false,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"], "csrf");
    // A wrong one: refused.
    let mut forged = Console::new(app.admin);
    forged.cookie = console.cookie.clone();
    forged.csrf = Some("0".repeat(64));
    let (status, body) = forged.post("/lists/blocked", block.clone()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("csrf"))
    );
    // The right token from another site's page: refused.
    let (status, body) = console
        .call_with(
            Method::POST,
            "/lists/blocked",
            Some(block.clone()),
            true,
            Some("https://evil.example"),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("csrf"))
    );
    let (_, lists) = console.get("/lists").await;
    assert_eq!(lists["blocked"].as_array().unwrap().len(), 0, "{lists}");
    // With it: done.
    let (status, body) = console.post("/lists/blocked", block).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, lists) = console.get("/lists").await;
    assert_eq!(lists["blocked"][0]["number"], "84912000111", "{lists}");

    let (status, _) = console.call(Method::DELETE, "/session", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = console.get("/session").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "not_logged_in");
    let (status, _) = Console::new(app.admin).get("/templates").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    app.stop().await;
}

#[tokio::test]
async fn each_role_gets_what_it_may_and_is_refused_the_rest() {
    let app = spawn_app().await;
    let admin_password = app.admin_account("quantri", Role::Administrator).await;
    let operator_password = app.admin_account("vanhanh", Role::Operator).await;
    let viewer_password = app.admin_account("xem", Role::Viewer).await;
    let admin = Console::login(app.admin, "quantri", &admin_password).await;
    let operator = Console::login(app.admin, "vanhanh", &operator_password).await;
    let viewer = Console::login(app.admin, "xem", &viewer_password).await;

    // A citizen's message in the log.
    let mut peer = PeerEsme::bind_transceiver(app.listener, SYSTEM_ID, PASSWORD)
        .await
        .unwrap();
    peer.submit(
        "0912345678",
        "8058",
        0,
        format!("TC {KNOWN_CODE}").as_bytes(),
    )
    .await
    .unwrap();
    assert!(peer.next_deliver(Duration::from_secs(5)).await.is_some());

    // Everyone reads.
    for console in [&admin, &operator, &viewer] {
        for path in [
            "/templates",
            "/templates/found",
            "/lists",
            "/channels",
            "/sync",
            "/stats",
        ] {
            let (status, body) = console.get(path).await;
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
        }
        let (status, body) = console
            .post(
                "/templates/found/preview",
                json!({"source": "HS {{ code }}"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // The log: numbers in full for operators, masked for viewers.
    // The citizen is the dossier's owner, so the reply names them.
    let (_, log) = operator.get(&format!("/messages?code={KNOWN_CODE}")).await;
    assert_eq!(log["messages"][0]["sender"], "0912345678", "{log}");
    let reply = log["messages"][0]["reply_text"].as_str().unwrap();
    let name = if reply.contains("Nguyễn Văn An") {
        "Nguyễn Văn An"
    } else {
        "Nguyen Van An"
    };
    assert!(reply.contains(name), "{log}");
    let (_, log) = viewer.get(&format!("/messages?code={KNOWN_CODE}")).await;
    let shown = log["messages"][0]["sender"].as_str().unwrap();
    assert!(!shown.contains("2345678") && shown.contains('*'), "{log}");
    let reply = log["messages"][0]["reply_text"].as_str().unwrap();
    assert!(
        !reply.contains(name) && reply.contains(&format!("{}***** V** A*", &name[..1])),
        "a viewer sees the applicant's initials only: {log}"
    );
    let (status, _) = viewer.get("/messages?sender=0912345678").await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a viewer cannot search by number"
    );

    // A viewer can't edit templates, lists or use the simulator.
    let (status, body) = viewer
        .post(
            "/templates/help/versions",
            json!({"source": "Nhan TC <ma>"}),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    let (status, _) = viewer
        .post("/lists/allowed", json!({"number": "0912000222"}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = viewer
        .post("/simulate", json!({"from": "0912000222", "text": "TC"}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = viewer.post("/templates/help/rollback", json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // An operator edits but can't manage accounts or read the audit log.
    let (status, body) = operator
        .post("/lists/allowed", json!({"number": "0912000222"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    for (method, path, body) in [
        (Method::GET, "/accounts", None),
        (Method::GET, "/audit", None),
        (
            Method::POST,
            "/accounts",
            Some(json!({"username": "moi", "role": "viewer", "password": "mot-hai-ba-bon-nam"})),
        ),
        (
            Method::PATCH,
            "/accounts/xem",
            Some(json!({"role": "administrator"})),
        ),
    ] {
        let (status, answer) = operator.call(method, path, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {answer}");
    }

    // An administrator manages accounts; every change is audited.
    let (status, body) = admin
        .post(
            "/accounts",
            json!({"username": "moi", "role": "viewer", "password": "mot-hai-ba-bon-nam"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["must_change_password"], true);
    let (status, body) = admin
        .call(
            Method::PATCH,
            "/accounts/xem",
            Some(json!({"role": "operator"})),
        )
        .await;
    assert_eq!(
        (status, body["role"].as_str()),
        (StatusCode::OK, Some("operator"))
    );
    // The viewer's session carries the new role at its next request.
    let (_, me) = viewer.get("/session").await;
    assert_eq!(me["role"], "operator");
    let (status, body) = admin
        .call(
            Method::PATCH,
            "/accounts/quantri",
            Some(json!({"role": "viewer"})),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("conflict")),
        "{body}"
    );
    let (status, body) = admin
        .call(
            Method::PATCH,
            "/accounts/xem",
            Some(json!({"role": "operator", "disabled": true})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "one change at a time: {body}"
    );
    let (_, audit) = admin.get("/audit?limit=50").await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in [
        "account.create",
        "account.role",
        "list.allow",
        "session.login",
    ] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
    // Disabling an account ends its sessions.
    let (status, _) = admin
        .call(
            Method::PATCH,
            "/accounts/vanhanh",
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = operator.get("/session").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    peer.unbind().await;
    app.stop().await;
}

#[tokio::test]
async fn repeated_wrong_passwords_lock_the_account_until_an_administrator_unlocks_it() {
    let app = spawn_app().await;
    let admin_password = app.admin_account("quantri", Role::Administrator).await;
    let password = app.admin_account("lan", Role::Operator).await;
    let mut console = Console::new(app.admin);
    for attempt in 1..=5 {
        let (status, body) = console.login_as("lan", "sai-mat-khau-roi").await;
        let expected = if attempt < 5 {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::LOCKED
        };
        assert!(
            status == expected || (attempt == 5 && status == StatusCode::UNAUTHORIZED),
            "attempt {attempt}: {status} {body}"
        );
    }
    // Locked: even the right password is refused.
    let (status, body) = console.login_as("lan", &password).await;
    assert_eq!(status, StatusCode::LOCKED, "{body}");
    assert_eq!(body["error"], "locked");
    // An unknown user is answered like a wrong password.
    let (status, body) = console.login_as("khongai", "sai-mat-khau-roi").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("wrong_credentials"))
    );

    let admin = Console::login(app.admin, "quantri", &admin_password).await;
    let (_, accounts) = admin.get("/accounts").await;
    let lan = accounts["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["username"] == "lan")
        .unwrap()
        .clone();
    assert!(lan["locked_until"].as_i64().is_some(), "{lan}");
    let (status, _) = admin
        .call(
            Method::PATCH,
            "/accounts/lan",
            Some(json!({"unlock": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = console.login_as("lan", &password).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, audit) = admin.get("/audit").await;
    let failed = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "session.login_failed")
        .count();
    assert!(failed >= 6, "{audit}");
    app.stop().await;
}

#[tokio::test]
async fn a_viewer_sees_the_name_a_reply_carried_masked_after_its_dossier_changed_or_went() {
    use motcua_sms::store::{ApplyMode, Change, DossierWriter};
    const OTHER_CODE: &str = "38.98.H29-210519-0003";
    let app = spawn_app().await;
    let viewer_password = app.admin_account("xem", Role::Viewer).await;
    let viewer = Console::login(app.admin, "xem", &viewer_password).await;
    // Each owner asks about their own dossier: the replies carry the names.
    let mut peer = PeerEsme::bind_transceiver(app.listener, SYSTEM_ID, PASSWORD)
        .await
        .unwrap();
    for (owner, code) in [("0912345678", KNOWN_CODE), ("0987654321", OTHER_CODE)] {
        peer.submit(owner, "8058", 0, format!("TC {code}").as_bytes())
            .await
            .unwrap();
        let first = peer.next_deliver(Duration::from_secs(5)).await.unwrap();
        assert_eq!(first.destination_addr, owner);
        // The other parts of a long reply.
        while let Some(part) = peer.next_deliver(Duration::from_millis(500)).await {
            assert_eq!(part.destination_addr, owner);
        }
    }
    // Then the applicant's name of one changes and the other dossier goes.
    let store = app.read_model().await;
    let renamed = format!(
        r#"{{"MaHoSo": "{KNOWN_CODE}", "TrangThaiHoSo": 4, "SoDienThoai": "0912345678", "ChuHoSo": "Lê Thị Hoa", "version": 50}}"#
    );
    let report = motcua_sms::import::import_json_lines(&store, std::io::Cursor::new(renamed))
        .await
        .unwrap();
    assert!(report.bad.is_empty(), "{:?}", report.bad);
    let gone = Change::Delete {
        code: motcua_sms::domain::DossierCode::parse(OTHER_CODE).unwrap(),
        version: 50,
    };
    store
        .apply(&[gone], ApplyMode::Guarded, None)
        .await
        .unwrap();
    store.close().await;

    let (status, log) = viewer.get("/messages").await;
    assert_eq!(status, StatusCode::OK, "{log}");
    let replies: Vec<&str> = log["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["reply_text"].as_str())
        .collect();
    assert_eq!(replies.len(), 2, "{log}");
    let all = replies.join("\n");
    for name in [
        "Nguyễn Văn An",
        "Nguyen Van An",
        "Trần Thị Bích Ngọc",
        "Tran Thi Bich Ngoc",
    ] {
        assert!(!all.contains(name), "a viewer reads {name:?}: {all}");
    }
    assert!(all.contains("N***** V** A*"), "{all}");
    assert!(all.contains("T*** T** B*** N***"), "{all}");
    app.stop().await;
}

/// A gateway whose configuration `tweak` changed.
async fn app_with(tweak: fn(&mut motcua_sms::config::Config)) -> support::TestApp {
    support::spawn_app_with(support::AppOptions {
        tweak: Some(tweak),
        ..support::AppOptions::default()
    })
    .await
}

/// A login attempt, from `forwarded` as the proxy says when given.
async fn login_status(
    admin: SocketAddr,
    forwarded: Option<&str>,
    user: &str,
    password: &str,
) -> StatusCode {
    let mut request = reqwest::Client::new()
        .post(format!("http://{admin}/api/v1/session"))
        .json(&json!({"username": user, "password": password}));
    if let Some(client) = forwarded {
        request = request.header("x-forwarded-for", client);
    }
    request.send().await.unwrap().status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_wrong_passwords_at_once_lock_the_account() {
    fn many_logins(config: &mut motcua_sms::config::Config) {
        config.admin.logins_per_minute = 100;
    }
    let app = app_with(many_logins).await;
    let password = app.admin_account("lan", Role::Operator).await;
    let guesses: Vec<_> = (0..20)
        .map(|n| {
            let admin = app.admin;
            tokio::spawn(
                async move { login_status(admin, None, "lan", &format!("doan-sai-{n}")).await },
            )
        })
        .collect();
    for guess in guesses {
        let status = guess.await.unwrap();
        assert!(
            status == StatusCode::UNAUTHORIZED || status == StatusCode::LOCKED,
            "{status}"
        );
    }
    assert_eq!(
        login_status(app.admin, None, "lan", &password).await,
        StatusCode::LOCKED,
        "20 wrong passwords at once count as 20: the account is locked"
    );
    app.stop().await;
}

#[tokio::test]
async fn behind_a_proxy_logins_are_limited_per_visitor_and_per_ipv6_64() {
    fn behind_proxy(config: &mut motcua_sms::config::Config) {
        config.admin.trust_forwarded_for = true;
        config.admin.logins_per_minute = 3;
    }
    let app = app_with(behind_proxy).await;
    let password = app.admin_account("lan", Role::Operator).await;
    let outsider = Some("203.0.113.5");
    for _ in 0..3 {
        let status = login_status(app.admin, outsider, "khongai", "doan-mo").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        login_status(app.admin, outsider, "khongai", "doan-mo").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Every connection comes from the proxy; the officer is another visitor.
    assert_eq!(
        login_status(app.admin, Some("198.51.100.7"), "lan", &password).await,
        StatusCode::OK,
        "one outsider locked everyone behind the proxy out"
    );
    // An IPv6 outsider hopping addresses inside its /64 shares one limit.
    for host in 1..=3 {
        let from = format!("2001:db8:1:2::{host}");
        let status = login_status(app.admin, Some(&from), "khongai", "doan-mo").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        login_status(app.admin, Some("2001:db8:1:2:ffff::9"), "lan", &password).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        login_status(app.admin, Some("2001:db8:1:3::1"), "lan", &password).await,
        StatusCode::OK
    );
    app.stop().await;
}

#[tokio::test]
async fn a_first_password_must_be_changed_before_anything_else() {
    let app = spawn_app().await;
    let admin_password = app.admin_account("quantri", Role::Administrator).await;
    let admin = Console::login(app.admin, "quantri", &admin_password).await;
    let (status, _) = admin
        .post(
            "/accounts",
            json!({"username": "hoa", "role": "operator", "password": "tam-thoi-12345"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let mut hoa = Console::new(app.admin);
    let (status, me) = hoa.login_as("hoa", "tam-thoi-12345").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["must_change_password"], true);
    let (status, body) = hoa.get("/templates").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("password_change_required"))
    );
    // No token for scripts either until it is changed.
    let (status, _) = hoa
        .post(
            "/tokens",
            json!({"username": "hoa", "password": "tam-thoi-12345"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A weak new password is refused with the reason.
    let (status, body) = hoa
        .post(
            "/session/password",
            json!({"current": "tam-thoi-12345", "new": "ngan"}),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("weak_password"))
    );
    let (status, body) = hoa
        .post(
            "/session/password",
            json!({"current": "sai-roi-nhe-123", "new": "Doi-moi-2026-xyz"}),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("wrong_password"))
    );
    let (status, body) = hoa
        .post(
            "/session/password",
            json!({"current": "tam-thoi-12345", "new": "Doi-moi-2026-xyz"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["must_change_password"], false);
    let (status, _) = hoa.get("/templates").await;
    assert_eq!(status, StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn a_template_with_an_unknown_variable_or_over_its_budget_is_refused_and_a_good_one_goes_live_and_back(
) {
    let app = spawn_app().await;
    let password = app.admin_account("lan", Role::Operator).await;
    let console = Console::login(app.admin, "lan", &password).await;
    let ask = json!({"from": "0912000333", "text": format!("TC {UNKNOWN_CODE}")});
    let (status, before) = console.post("/simulate", ask.clone()).await;
    assert_eq!(status, StatusCode::OK, "{before}");
    assert_eq!(before["kind"], "not_found");

    // An unknown variable, on line 2: refused with the line, by preview and save.
    let bad = "Ma {{ code }} khong co.\nGoi {{ hotlin }}";
    let (status, body) = console
        .post("/templates/not_found/preview", json!({"source": bad}))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_template")),
        "{body}"
    );
    assert_eq!(body["line"], 2, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("hotlin"),
        "{body}"
    );
    let (status, body) = console
        .post("/templates/not_found/versions", json!({"source": bad}))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_template"))
    );
    // A syntax error.
    let (status, body) = console
        .post(
            "/templates/not_found/preview",
            json!({"source": "Ma {{ code "}),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_template")),
        "{body}"
    );

    // Over its segment budget (2 UCS-2 parts): the preview shows it, saving refuses it.
    let long = format!(
        "Mã {{{{ code }}}} chưa có trong hệ thống. {}",
        "Xin vui lòng kiểm tra lại. ".repeat(8)
    );
    let (status, preview) = console
        .post("/templates/not_found/preview", json!({"source": long}))
        .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert!(preview["problem"].is_string(), "{preview}");
    let sample = &preview["samples"][0];
    assert_eq!(sample["encoding"], "UCS-2", "{preview}");
    assert_eq!(sample["fits"], false, "{preview}");
    assert!(sample["segments"].as_u64().unwrap() > sample["budget"].as_u64().unwrap());
    let (status, body) = console
        .post("/templates/not_found/versions", json!({"source": long}))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("over_budget")),
        "{body}"
    );
    let (_, detail) = console.get("/templates/not_found").await;
    assert_eq!(
        detail["versions"].as_array().unwrap().len(),
        0,
        "nothing refused was saved"
    );

    // A good one: saved, not yet in use; activated, the next reply uses it.
    let good = "Ma {{ code }}: KHONG TIM THAY (kiem tra lai ma tren giay hen).";
    let (status, version) = console
        .post(
            "/templates/not_found/versions",
            json!({"source": good, "note": "ngắn hơn"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{version}");
    assert_eq!(version["author"], "lan");
    assert_eq!(version["active"], false);
    let (_, reply) = console.post("/simulate", ask.clone()).await;
    assert_eq!(
        reply["text"], before["text"],
        "saving does not put it in use"
    );
    let id = version["id"].as_i64().unwrap();
    let (status, body) = console
        .post(
            &format!("/templates/not_found/versions/{id}/activate"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, reply) = console.post("/simulate", ask.clone()).await;
    assert_eq!(
        reply["text"],
        format!("Ma {UNKNOWN_CODE}: KHONG TIM THAY (kiem tra lai ma tren giay hen).")
    );
    assert_eq!(reply["encoding"], "GSM-7");
    assert_eq!(reply["segments"], 1);
    // Citizens get it too, over SMPP.
    let mut peer = PeerEsme::bind_transceiver(app.listener, SYSTEM_ID, PASSWORD)
        .await
        .unwrap();
    peer.submit(
        "0912000444",
        "8058",
        0,
        format!("TC {UNKNOWN_CODE}").as_bytes(),
    )
    .await
    .unwrap();
    let delivered = peer.next_deliver(Duration::from_secs(5)).await.unwrap();
    assert!(
        String::from_utf8_lossy(&delivered.short_message).contains("KHONG TIM THAY"),
        "{delivered:?}"
    );
    peer.unbind().await;
    let (_, list) = console.get("/templates").await;
    let entry = list["templates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "not_found")
        .unwrap()
        .clone();
    assert_eq!(entry["active_version"], id, "{entry}");
    assert_eq!(entry["updated_by"], "lan", "{entry}");

    // Rolled back: the built-in text again; nothing further to roll back to.
    let (status, body) = console
        .post("/templates/not_found/rollback", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["active_version"], Value::Null);
    let (_, reply) = console.post("/simulate", ask).await;
    assert_eq!(reply["text"], before["text"]);
    let (status, body) = console
        .post("/templates/not_found/rollback", json!({}))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("conflict")),
        "{body}"
    );
    let (status, body) = console.get("/templates/nonsense").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (status, _) = console
        .post("/templates/not_found/versions/999999/activate", json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    app.stop().await;
}

#[tokio::test]
async fn scripts_use_bearer_tokens_without_csrf_and_the_openapi_document_lists_every_endpoint() {
    let app = spawn_app().await;
    let password = app.admin_account("sao-luu", Role::Operator).await;
    let mut script = Console::new(app.admin);
    let (status, token) = script
        .post(
            "/tokens",
            json!({"username": "sao-luu", "password": password, "label": "backup script"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{token}");
    assert_eq!(token["token"].as_str().unwrap().len(), 64);
    script.bearer = Some(token["token"].as_str().unwrap().to_owned());
    let (status, body) = script
        .post(
            "/lists/blocked",
            json!({"number": "+84912000555", "reason": "spam"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["until"], Value::Null, "permanent");
    let (status, _) = script
        .call(Method::DELETE, "/lists/blocked/0912000555", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = script
        .post(
            "/lists/blocked",
            json!({"number": "không phải số", "reason": "x"}),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_number"))
    );
    let (status, body) = script.post("/lists/blocked", json!({"nonsense": 1})).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_request")),
        "{body}"
    );
    let (status, body) = script.get("/messages?since=abc").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_query")),
        "{body}"
    );
    let (status, body) = script.get("/stats?since=200&until=100").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_query")),
        "{body}"
    );
    let (status, body) = script.get("/no-such-thing").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    // A wrong token is not a session.
    let mut stranger = Console::new(app.admin);
    stranger.bearer = Some("f".repeat(64));
    let (status, _) = stranger.get("/templates").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, doc) = Console::new(app.admin).get("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/api/v1/session",
        "/api/v1/session/password",
        "/api/v1/tokens",
        "/api/v1/accounts",
        "/api/v1/accounts/{username}",
        "/api/v1/audit",
        "/api/v1/templates",
        "/api/v1/templates/{name}",
        "/api/v1/templates/{name}/preview",
        "/api/v1/templates/{name}/versions",
        "/api/v1/templates/{name}/versions/{id}/activate",
        "/api/v1/templates/{name}/rollback",
        "/api/v1/messages",
        "/api/v1/stats",
        "/api/v1/stats.csv",
        "/api/v1/simulate",
        "/api/v1/lists",
        "/api/v1/lists/blocked",
        "/api/v1/lists/blocked/{number}",
        "/api/v1/lists/allowed",
        "/api/v1/lists/allowed/{number}",
        "/api/v1/channels",
        "/api/v1/sync",
    ] {
        assert!(paths.contains_key(path), "{path} documented");
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    app.stop().await;
}

#[tokio::test]
async fn statistics_channels_and_sync_describe_the_traffic() {
    let app = spawn_app().await;
    let password = app.admin_account("lan", Role::Viewer).await;
    let console = Console::login(app.admin, "lan", &password).await;
    let mut peer = PeerEsme::bind_transceiver(app.listener, SYSTEM_ID, PASSWORD)
        .await
        .unwrap();
    for text in [
        format!("TC {KNOWN_CODE}"),
        format!("TC {UNKNOWN_CODE}"),
        "xin chao".to_owned(),
    ] {
        peer.submit("0912000666", "8058", 0, text.as_bytes())
            .await
            .unwrap();
        assert!(peer.next_deliver(Duration::from_secs(5)).await.is_some());
    }
    let (status, stats) = console.get("/stats?bucket=hour").await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    assert_eq!(stats["totals"]["messages"], 3, "{stats}");
    assert_eq!(stats["totals"]["found"], 1, "{stats}");
    assert_eq!(stats["totals"]["not_found"], 1, "{stats}");
    assert_eq!(stats["found_ratio"], 0.5, "{stats}");
    assert!(
        stats["latency_ms"]["samples"].as_i64().unwrap() >= 2,
        "{stats}"
    );
    // The same series as CSV for a spreadsheet: every message in a row.
    let (status, content_type, csv) = console.get_text("/stats.csv?bucket=hour").await;
    assert_eq!(status, StatusCode::OK, "{csv}");
    assert!(content_type.starts_with("text/csv"), "{content_type}");
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("bucket_start,channel,outcome,messages"));
    let mut counted = 0;
    for line in lines {
        let fields: Vec<&str> = line.split(',').collect();
        assert_eq!(fields.len(), 4, "{csv}");
        assert!(fields[0].ends_with("+07:00"), "Vietnam time: {csv}");
        counted += fields[3].parse::<i64>().unwrap();
    }
    assert_eq!(counted, 3, "{csv}");
    let (status, _, refused) = console.get_text("/stats.csv?since=5&until=1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert!(refused.contains("invalid_query"), "{refused}");
    let (status, _, _) = Console::new(app.admin).get_text("/stats.csv").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        !stats["top_agencies"].as_array().unwrap().is_empty(),
        "{stats}"
    );
    assert!(
        !stats["top_procedures"].as_array().unwrap().is_empty(),
        "{stats}"
    );
    let (status, day) = console.get("/stats?bucket=day").await;
    assert_eq!(status, StatusCode::OK, "{day}");
    assert_eq!(day["totals"]["messages"], 3);

    let (_, channels) = console.get("/channels").await;
    let listener = channels["smpp"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["role"] == "listener")
        .unwrap_or_else(|| panic!("the bound peer is listed: {channels}"))
        .clone();
    assert_eq!(listener["up"], true, "{listener}");
    assert_eq!(listener["sessions"], 1, "{listener}");
    assert_eq!(listener["received_last_hour"], 3, "{listener}");
    assert!(listener["window_size"].as_u64().unwrap() >= 1, "{listener}");
    // The gateway is a node of its cluster (alone, on SQLite): live, and
    // its links published with its heartbeat (every fifth of the lease).
    let nodes = channels["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 1, "{channels}");
    assert_eq!(nodes[0]["this_node"], true, "{channels}");
    assert_eq!(nodes[0]["state"], "live", "{channels}");
    assert_eq!(nodes[0]["alive"], true, "{channels}");
    assert!(
        nodes[0]["heartbeat_at"]
            .as_str()
            .unwrap()
            .ends_with("+07:00"),
        "{channels}"
    );
    let published_deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (_, channels) = console.get("/channels").await;
        let links = channels["nodes"][0]["smpp"].as_array().unwrap().clone();
        if links
            .iter()
            .any(|l| l["role"] == "listener" && l["open"] == true)
        {
            break;
        }
        assert!(
            std::time::Instant::now() < published_deadline,
            "the node never published its listener link: {channels}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let (status, sync) = console.get("/sync").await;
    assert_eq!(status, StatusCode::OK, "{sync}");
    assert_eq!(sync["mode"], "off");
    assert_eq!(sync["stale"], false);

    // The metrics show the link and the logins.
    let metrics = reqwest::get(format!("http://{}/metrics", app.http.unwrap()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("motcua_smpp_sessions{"), "{metrics}");
    assert!(
        metrics.contains("motcua_admin_logins_total{result=\"ok\"} 1"),
        "{metrics}"
    );
    peer.unbind().await;
    app.stop().await;
}
