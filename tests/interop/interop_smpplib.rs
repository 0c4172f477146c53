//! The listener driven by PyPI's `smpplib` (an independent Python ESME):
//! found (two UCS-2 parts), not found and help replies, a refused bind.
//! Runs when `TEST_SMPPLIB_PYTHON` names a Python interpreter that has
//! `smpplib` installed (`.ci/run` installs it and sets the variable).

use std::process::Command;

use serde_json::Value;
use support::{spawn_app, KNOWN_CODE, PASSWORD, SERVICE_NUMBER, SYSTEM_ID};

const ENV: &str = "TEST_SMPPLIB_PYTHON";

/// A python3 with smpplib.
fn python() -> String {
    support::service(ENV)
}

/// Runs the Python peer and returns its JSON report.
async fn exchange(
    python: &str,
    addr: std::net::SocketAddr,
    password: &str,
    coding: u8,
    text: &str,
) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/smpplib_esme.py");
    let args = [
        script.to_owned(),
        addr.ip().to_string(),
        addr.port().to_string(),
        SYSTEM_ID.to_owned(),
        password.to_owned(),
        "84987000111".to_owned(),
        SERVICE_NUMBER.to_owned(),
        coding.to_string(),
        text.to_owned(),
    ];
    let python = python.to_owned();
    let out = tokio::task::spawn_blocking(move || Command::new(python).args(args).output())
        .await
        .unwrap()
        .expect("python runs");
    assert!(
        out.status.success(),
        "smpplib peer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("peer prints JSON")
}

/// Decodes the reply's parts in order.
fn reply_text(report: &Value) -> (usize, String) {
    let parts = report["parts"].as_array().expect("parts");
    let mut decoded: Vec<(u8, String)> = parts
        .iter()
        .map(|p| {
            let bytes: Vec<u8> = (0..p["short_message_hex"].as_str().unwrap().len())
                .step_by(2)
                .map(|i| {
                    u8::from_str_radix(&p["short_message_hex"].as_str().unwrap()[i..i + 2], 16)
                        .unwrap()
                })
                .collect();
            let (seq, data) = if p["esm_class"].as_u64().unwrap() & 0x40 != 0 {
                (bytes[5], bytes[1 + bytes[0] as usize..].to_vec())
            } else {
                (1, bytes)
            };
            let text = match p["data_coding"].as_u64().unwrap() {
                8 => String::from_utf16(
                    &data
                        .chunks_exact(2)
                        .map(|c| u16::from_be_bytes([c[0], c[1]]))
                        .collect::<Vec<_>>(),
                )
                .unwrap(),
                _ => String::from_utf8(data).unwrap(),
            };
            (seq, text)
        })
        .collect();
    decoded.sort_by_key(|(seq, _)| *seq);
    (parts.len(), decoded.into_iter().map(|(_, t)| t).collect())
}

#[tokio::test]
#[cfg_attr(
    not(test_smpplib_python),
    ignore = "needs TEST_SMPPLIB_PYTHON (PyPI smpplib)"
)]
async fn smpplib_gets_found_not_found_and_help_replies() {
    let python = python();
    let app = spawn_app().await;

    let report = exchange(
        &python,
        app.listener,
        PASSWORD,
        8,
        &format!("tra cứu {KNOWN_CODE}"),
    )
    .await;
    let (parts, text) = reply_text(&report);
    assert_eq!(parts, 2, "{text}");
    assert!(
        text.contains(KNOWN_CODE) && text.contains("Đang xử lý"),
        "{text}"
    );
    assert!(!text.contains("Nguyễn"), "{text}");
    assert_eq!(report["parts"][0]["destination_addr"], "84987000111");

    let report = exchange(
        &python,
        app.listener,
        PASSWORD,
        0,
        "TC 000.00.12.H58-240315-0099",
    )
    .await;
    let (_, text) = reply_text(&report);
    assert!(
        text.starts_with("Không tìm thấy hồ sơ 000.00.12.H58-240315-0099"),
        "{text}"
    );

    let report = exchange(&python, app.listener, PASSWORD, 0, "alo").await;
    let (_, text) = reply_text(&report);
    assert!(text.contains("TC <mã hồ sơ>"), "{text}");

    let report = exchange(&python, app.listener, "wrong", 0, "alo").await;
    assert_eq!(report["bind_error"], 0x0E, "ESME_RINVPASWD");
    app.stop().await;
}
