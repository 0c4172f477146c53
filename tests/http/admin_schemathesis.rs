//! PyPI `schemathesis` against the admin console's OpenAPI document: it
//! generates requests for every documented operation (valid and invalid
//! bodies, queries and paths) with an administrator's bearer token, and
//! fails on any server error or any response the document does not
//! describe (status code, content type, headers, body schema). Runs when
//! `TEST_SCHEMATHESIS` names the `schemathesis` command (`.ci/run` installs
//! it); ignored, with that reason, when it was unset at build time.

use std::process::Stdio;

use motcua_sms::admin::accounts::Role;
use serde_json::{json, Value};
use support::spawn_app;

#[tokio::test]
#[cfg_attr(
    not(test_schemathesis),
    ignore = "needs TEST_SCHEMATHESIS (schemathesis)"
)]
async fn schemathesis_finds_no_server_error_in_the_admin_api() {
    let schemathesis = support::service("TEST_SCHEMATHESIS");
    let app = spawn_app().await;
    let password = app.admin_account("kiemthu", Role::Administrator).await;
    let base = format!("http://{}", app.admin);
    let token: Value = reqwest::Client::new()
        .post(format!("{base}/api/v1/tokens"))
        .json(&json!({"username": "kiemthu", "password": password, "label": "schemathesis"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["token"].as_str().expect("a token").to_owned();
    let reports = tempfile::tempdir().unwrap();
    let output = tokio::process::Command::new(&schemathesis)
        .arg("run")
        .arg(format!("{base}/api/v1/openapi.json"))
        // Every response against the document: no server error, and a
        // documented status code, content type, headers and body schema.
        // (The request-side checks of `--checks all` report schema-valid
        // values the server refuses on meaning — numbers, dates — and its
        // `ignored_auth` counts the token given with --header as the
        // generated invalid one; neither is about the responses.)
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_headers_conformance,response_schema_conformance",
        ])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        // Logging out would end the token mid-run.
        .args(["--exclude-operation-id", "logout"])
        .args(["--max-examples", "40", "--seed", "8058"])
        .args(["--request-timeout", "20"])
        // "Mostly rejected generated data" (random strings are not phone
        // numbers or passwords) is not a server error.
        .args(["--warnings", "off"])
        .args(["--report", "junit", "--report-dir"])
        .arg(reports.path())
        // Its cache (.schemathesis/) goes to the temporary directory.
        .current_dir(reports.path())
        .env("SCHEMATHESIS_TELEMETRY", "false")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .await
        .expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{stdout}\n{stderr}"
    );
    // It did test the operations (not an empty run).
    assert!(
        stdout.contains("Tested: ") && !stdout.contains("Tested: 0"),
        "{stdout}"
    );
    assert!(stdout.contains(" passed"), "{stdout}");
    app.stop().await;
}
