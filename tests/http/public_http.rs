//! The public port of a running gateway over a real socket: the lookup page
//! and JSON for portals and kiosks (no name, no phone number; codes typed
//! loosely; bad input explained; per-address limits and the refusal of an
//! address asking for unknown codes). Kannel's get-url drop-in has a port
//! of its own: tests/kannel_http.rs.

use motcua_sms::config::Config;
use serde_json::Value;
use support::{spawn_app_with, AppOptions, TestApp, KNOWN_CODE};

fn public_on(config: &mut Config) {
    config.public.enabled = true;
    config.public.per_ip_burst = 6;
    config.public.misses_per_hour = 3;
}

async fn public_app() -> TestApp {
    spawn_app_with(AppOptions {
        tweak: Some(public_on),
        ..AppOptions::default()
    })
    .await
}

async fn get(app: &TestApp, path: &str) -> reqwest::Response {
    reqwest::get(format!("http://{}{path}", app.public.expect("public port")))
        .await
        .expect("the public port answers")
}

async fn json(app: &TestApp, path: &str) -> (u16, Value, reqwest::header::HeaderMap) {
    let response = get(app, path).await;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, response.json().await.expect("JSON"), headers)
}

#[tokio::test]
async fn the_json_lookup_shows_the_status_and_never_personal_data() {
    let app = public_app().await;
    let (status, body, headers) = json(
        &app,
        "/api/v1/lookup?code=tc%20000%2000%2012%20h58%20240315%207",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["code"], KNOWN_CODE);
    assert_eq!(body["status"], "Đang xử lý");
    assert_eq!(body["status_code"], 4);
    assert_eq!(body["appointment"], "29/03/2024");
    assert_eq!(body["procedure"], "Cấp giấy phép xây dựng nhà ở riêng lẻ");
    let text = body.to_string();
    assert!(!text.contains("Nguyễn"), "no name: {text}");
    assert!(!text.contains("0912345678"), "no phone: {text}");
    assert_eq!(headers["access-control-allow-origin"], "*");

    let (status, body, _) = json(&app, "/api/v1/lookup?code=000.00.12.H58-240315-0999").await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
    let (status, body, _) = json(&app, "/api/v1/lookup?code=xin%20chao").await;
    assert_eq!((status, body["error"].as_str()), (400, Some("no_code")));
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("000.00.12.H58-240315-0007"));
    let (status, body, _) = json(
        &app,
        "/api/v1/lookup?code=000.00.12.H58-240231-0007&lang=en",
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("impossible_date"))
    );
    assert!(
        body["message"].as_str().unwrap().starts_with("Code"),
        "{body}"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_page_renders_the_status_escaped_in_vietnamese_or_english() {
    let app = public_app().await;
    let response = get(&app, &format!("/?ma={KNOWN_CODE}")).await;
    assert_eq!(response.status().as_u16(), 200);
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let html = response.text().await.unwrap();
    assert!(html.contains("<html lang=\"vi\">"), "{html}");
    assert!(html.contains("Tra cứu hồ sơ thủ tục hành chính"));
    assert!(html.contains("Đang xử lý"));
    // minijinja's HTML escaping writes `/` as `&#x2f;`.
    let shown = html.replace("&#x2f;", "/");
    assert!(shown.contains("29/03/2024"), "{html}");
    assert!(!html.contains("Nguyễn"), "no name on the page");
    assert!(!html.contains("<script"), "no script");

    let english = get(&app, &format!("/?lang=en&ma={KNOWN_CODE}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(english.contains("Administrative dossier lookup"));
    assert!(english.contains("Due"));

    let hostile = get(&app, "/?ma=%3Cscript%3Ealert(1)%3C%2Fscript%3E").await;
    assert_eq!(hostile.status().as_u16(), 400);
    let html = hostile.text().await.unwrap();
    assert!(!html.contains("<script>alert"), "typed text is escaped");
    assert!(html.contains("&lt;script&gt;"), "{html}");

    let blank = get(&app, "/").await;
    assert_eq!(blank.status().as_u16(), 200);
    app.stop().await;
}

#[tokio::test]
async fn one_address_is_limited_and_refused_after_unknown_codes() {
    let app = public_app().await;
    // Three unknown codes exhaust misses_per_hour: the address is refused
    // (known codes too) with Retry-After.
    for n in 1..=3 {
        let (status, _, _) = json(
            &app,
            &format!("/api/v1/lookup?code=000.00.12.H58-240315-09{n:02}"),
        )
        .await;
        assert_eq!(status, 404);
    }
    let (status, body, headers) = json(&app, &format!("/api/v1/lookup?code={KNOWN_CODE}")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (429, Some("rate_limited")),
        "{body}"
    );
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry >= 60, "{retry}");
    app.stop().await;

    // A burst of known lookups past per_ip_burst is limited too.
    let app = public_app().await;
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(
            json(&app, &format!("/api/v1/lookup?code={KNOWN_CODE}"))
                .await
                .0,
        );
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 200, 429, 429]);
    app.stop().await;
}

#[tokio::test]
async fn behind_a_proxy_an_ipv6_visitor_is_limited_with_its_whole_64() {
    fn behind_proxy(config: &mut Config) {
        public_on(config);
        config.public.trust_forwarded_for = true;
    }
    let app = spawn_app_with(AppOptions {
        tweak: Some(behind_proxy),
        ..AppOptions::default()
    })
    .await;
    let client = reqwest::Client::new();
    let lookup = |visitor: &'static str| {
        client
            .get(format!(
                "http://{}/api/v1/lookup?code={KNOWN_CODE}",
                app.public.expect("public port")
            ))
            .header("x-forwarded-for", visitor)
            .send()
    };
    // per_ip_burst (6) lookups, each from another address of one /64.
    let hopping = [
        "2001:db8:1:2::1",
        "2001:db8:1:2::2",
        "2001:db8:1:2::3",
        "2001:db8:1:2:ffff::4",
        "2001:db8:1:2:aaaa:bbbb:cccc:5",
        "2001:db8:1:2::6",
        "2001:db8:1:2::7",
    ];
    let mut statuses = Vec::new();
    for visitor in hopping {
        statuses.push(lookup(visitor).await.unwrap().status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 200, 429]);
    // The next /64, and an IPv4 visitor, have limits of their own.
    assert_eq!(lookup("2001:db8:1:3::1").await.unwrap().status(), 200);
    assert_eq!(lookup("198.51.100.7").await.unwrap().status(), 200);
    app.stop().await;
}
