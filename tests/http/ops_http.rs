//! The operations port of a running gateway: alive (`/healthz`), ready
//! (`/readyz`: the read model and the journal answer; stale data reported).

use serde_json::Value;
use support::spawn_app;

#[tokio::test]
async fn a_running_gateway_is_alive_and_ready() {
    let app = spawn_app().await;
    let base = format!("http://{}", app.http.expect("ops port"));
    let alive = reqwest::get(format!("{base}/healthz")).await.unwrap();
    assert_eq!(alive.status().as_u16(), 200);
    let ready = reqwest::get(format!("{base}/readyz")).await.unwrap();
    assert_eq!(ready.status().as_u16(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["ready"], true, "{body}");
    assert_eq!(body["read_model"], "ok");
    assert_eq!(body["journal"], "ok");
    assert_eq!(body["data_stale"], false, "no sync configured: never stale");
    app.stop().await;
}
