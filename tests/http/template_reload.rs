//! Templates and configuration reloaded on SIGHUP while the gateway process
//! runs: an edited reply template is in use for the next message, with the
//! SMPP link kept; a broken one is refused (named in the log) and the set in
//! use stays; a changed `config.toml` (`[service]` hotline) reaches the
//! replies, and a bad value in it is refused by name.

use std::process::Command;
use std::time::{Duration, Instant};

use motcua_sms::import::import_json_lines;
use support::gateway::GatewayProcess;
use support::{sample_file, KNOWN_CODE};

fn hangup(gateway: &GatewayProcess) {
    let pid = gateway.pid().expect("running");
    let status = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

/// Asks until the reply satisfies `want` (the reload is asynchronous).
async fn answer_until(gateway: &GatewayProcess, want: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = gateway.answer(KNOWN_CODE).await;
        if want(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "last reply: {text}\n{}",
            gateway.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the gateway's log says `needle`.
async fn log_until(gateway: &GatewayProcess, needle: &str) {
    gateway
        .process
        .wait_for_log(needle, Duration::from_secs(15))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_templates_and_refuses_a_broken_set() {
    let dir = tempfile::tempdir().unwrap();
    let templates = dir.path().join("templates");
    std::fs::create_dir_all(&templates).unwrap();
    let templates_dir = templates.display().to_string();
    let mut gateway = GatewayProcess::new(
        dir.path(),
        "http://127.0.0.1:9/",
        &[
            ("MOTCUA_SYNC__MODE", "off"),
            ("MOTCUA_REPLY__TEMPLATES_DIR", templates_dir.as_str()),
        ],
    );
    let store = gateway.store().await;
    let file = std::fs::File::open(sample_file()).unwrap();
    import_json_lines(&store, std::io::BufReader::new(file))
        .await
        .unwrap();
    store.close().await;
    gateway.start();

    let before = gateway.answer(KNOWN_CODE).await;
    assert!(before.starts_with(&format!("HS {KNOWN_CODE}")), "{before}");

    std::fs::write(
        templates.join("found.j2"),
        "Ho so {{ code }}: {{ status }}{{ ', hen ' ~ appointment if appointment else '' }}",
    )
    .unwrap();
    hangup(&gateway);
    let after = answer_until(&gateway, |t| t.starts_with("Ho so ")).await;
    assert_eq!(
        after,
        format!("Ho so {KNOWN_CODE}: Đang xử lý, hen 29/03/2024")
    );

    // An unknown variable: refused, the edited set stays in use.
    std::fs::write(templates.join("found.j2"), "{{ cod }}").unwrap();
    hangup(&gateway);
    log_until(&gateway, "templates not reloaded").await;
    assert!(gateway.logs().contains("found.j2"), "{}", gateway.logs());
    let still = gateway.answer(KNOWN_CODE).await;
    assert!(still.starts_with("Ho so "), "{still}");

    // config.toml changed: the hotline ([service]) reaches the replies on
    // the next SIGHUP, with the templates reloaded under it.
    std::fs::write(
        templates.join("found.j2"),
        "Ho so {{ code }}: {{ status }}{{ ' - goi ' ~ hotline if hotline else '' }}",
    )
    .unwrap();
    let config = dir.path().join("config.toml");
    let original = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!("{original}\n[service]\nhotline = \"1900 8058\"\n"),
    )
    .unwrap();
    hangup(&gateway);
    let with_hotline = answer_until(&gateway, |t| t.contains("goi 1900 8058")).await;
    assert_eq!(
        with_hotline,
        format!("Ho so {KNOWN_CODE}: Đang xử lý - goi 1900 8058")
    );
    log_until(&gateway, "configuration reloaded").await;

    // A bad value: refused with its name, and what is in use stays.
    std::fs::write(
        &config,
        format!("{original}\n[service]\nhotline = \"1900 0000\"\n[rate_limit]\nburst = 0\n"),
    )
    .unwrap();
    hangup(&gateway);
    log_until(&gateway, "configuration not reloaded").await;
    assert!(gateway.logs().contains("burst"), "{}", gateway.logs());
    let kept = gateway.answer(KNOWN_CODE).await;
    assert!(kept.contains("goi 1900 8058"), "{kept}");
    gateway.stop();
}
