//! The binary as an admin uses it: `import` (exit codes, line-numbered
//! errors, idempotence), configuration errors (exit 78, one line naming the
//! key and the file), and `run` + `sms send` end to end with SIGTERM drain.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_motcua-sms");

fn sample() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/sample-dossiers.jsonl")
}

fn motcua(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir).env_remove("RUST_LOG").env(
        "MOTCUA_DATABASE__URL",
        format!("sqlite://{}/read.db", dir.display()),
    );
    cmd
}

#[test]
fn import_reports_bad_lines_and_a_second_run_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = motcua(dir.path())
        .arg("import")
        .arg(sample())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("52 inserted, 0 updated, 0 unchanged, 0 bad line(s)"),
        "{stderr}"
    );

    let again = motcua(dir.path())
        .arg("import")
        .arg(sample())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success());
    assert!(
        stderr.contains("0 inserted, 0 updated, 52 unchanged"),
        "{stderr}"
    );

    let bad = dir.path().join("bad.jsonl");
    let mut f = std::fs::File::create(&bad).unwrap();
    writeln!(
        f,
        r#"{{"MaHoSo":"000.00.12.H58-240315-0007","TrangThaiHoSo":10,"version":4}}"#
    )
    .unwrap();
    writeln!(
        f,
        r#"{{"MaHoSo":"000.00.12.H58-241315-0001","TrangThaiHoSo":4}}"#
    )
    .unwrap();
    writeln!(f, r#"{{"TrangThaiHoSo":4}}"#).unwrap();
    writeln!(f, "not json").unwrap();
    drop(f);
    let out = motcua(dir.path()).arg("import").arg(&bad).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(65), "{stderr}");
    assert!(stderr.contains("bad.jsonl:2: MaHoSo"), "{stderr}");
    assert!(
        stderr.contains("bad.jsonl:3: MaHoSo is missing"),
        "{stderr}"
    );
    assert!(
        stderr.contains("bad.jsonl:4: not a valid JSON record"),
        "{stderr}"
    );
    assert!(
        stderr.contains("0 inserted, 1 updated, 0 unchanged, 3 bad line(s)"),
        "{stderr}"
    );
}

#[test]
fn configuration_errors_exit_78_with_one_line_naming_key_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.toml");
    for (text, key) in [
        ("[smpp.listener]\nbindd = \"127.0.0.1:2775\"\n", "bindd"),
        ("[smpp.listener]\nbind = 12\n", "smpp.listener.bind"),
        ("[reply]\naccents = \"yes\"\n", "reply.accents"),
        ("[database\n", "gateway.toml"),
    ] {
        std::fs::write(&config, text).unwrap();
        let out = motcua(dir.path())
            .env_remove("MOTCUA_DATABASE__URL")
            .arg("--config")
            .arg(&config)
            .arg("run")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{text}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(stderr.contains("gateway.toml"), "{stderr}");
        assert!(stderr.contains(key), "{stderr}");
    }
    let out = motcua(dir.path())
        .args(["--config", "missing.toml", "import", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let out = motcua(dir.path())
        .env("MOTCUA_SMPP__LISTENER__ENABLED", "sometimes")
        .arg("run")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.contains("MOTCUA_SMPP__LISTENER__ENABLED"),
        "{stderr}"
    );
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `motcua-sms run` with `config`; its exit code and stderr, or `None`
/// when it was still running after 5 s (then it is killed).
fn run_briefly(dir: &Path, config: &str) -> Option<(Option<i32>, String)> {
    std::fs::write(dir.join("gateway.toml"), config).unwrap();
    let mut gateway = motcua(dir)
        .env(
            "MOTCUA_JOURNAL__URL",
            format!("sqlite://{}/journal.db", dir.display()),
        )
        .env("MOTCUA_HTTP__ENABLED", "false")
        .args(["--config", "gateway.toml", "run"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if gateway.try_wait().unwrap().is_some() {
            let out = gateway.wait_with_output().unwrap();
            return Some((
                out.status.code(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = gateway.kill();
    let _ = gateway.wait();
    None
}

#[test]
fn a_known_or_weak_listener_password_on_a_network_address_stops_the_gateway_with_78() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let listener = |bind: &str, accounts: &[(&str, &str)]| {
        let mut text = format!("[smpp.listener]\nbind = \"{bind}:{port}\"\n");
        for (system_id, password) in accounts {
            text.push_str(&format!(
                "[[smpp.listener.accounts]]\nsystem_id = \"{system_id}\"\npassword = \"{password}\"\n"
            ));
        }
        text
    };
    for (accounts, key) in [
        (vec![("demo", "demo")], "smpp.listener.accounts[0].password"),
        (
            vec![("agg", "Xk7#q9Lm"), ("carrier1", "carrier1")],
            "smpp.listener.accounts[1].password",
        ),
        (vec![("agg", "Xk7")], "smpp.listener.accounts[0].password"),
        (
            vec![("agg", "12345678")],
            "smpp.listener.accounts[0].password",
        ),
        (
            vec![("agg", "password")],
            "smpp.listener.accounts[0].password",
        ),
    ] {
        let config = listener("0.0.0.0", &accounts);
        let (code, stderr) = run_briefly(dir.path(), &config)
            .unwrap_or_else(|| panic!("the gateway started on 0.0.0.0 with {accounts:?}"));
        assert_eq!(code, Some(78), "{accounts:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(key), "{stderr}");
        assert!(stderr.contains("gateway.toml"), "{stderr}");
        for (system_id, password) in &accounts {
            assert!(
                password == system_id || !stderr.contains(&format!("{password:?}")),
                "the password is not repeated: {stderr}"
            );
        }
    }
    // A strong password on a network address, and the demo account on
    // loopback, start.
    for config in [
        listener("0.0.0.0", &[("agg", "Xk7#q9Lm")]),
        listener("127.0.0.1", &[("demo", "demo")]),
    ] {
        assert_eq!(run_briefly(dir.path(), &config), None, "{config}");
    }
}

/// `motcua-sms run --import` of the sample dossiers in `dir`, its listener
/// on a free port with the demo account, `env` added; the process and the
/// listener's address once it accepts connections.
fn run_gateway(dir: &Path, env: &[(&str, &str)]) -> (std::process::Child, String) {
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    std::fs::write(
        dir.join("config.toml"),
        format!(
            "[smpp.listener]\nbind = \"{bind}\"\n[[smpp.listener.accounts]]\nsystem_id = \"demo\"\npassword = \"demo\"\n"
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("gateway.log")).unwrap();
    let gateway = motcua(dir)
        .envs(env.iter().copied())
        .arg("run")
        .arg("--import")
        .arg(sample())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let started = Instant::now();
    while std::net::TcpStream::connect(&bind).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "gateway did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (gateway, bind)
}

#[test]
fn run_then_sms_send_then_sigterm_drains() {
    let dir = tempfile::tempdir().unwrap();
    let (mut gateway, _) = run_gateway(dir.path(), &[]);
    let out = motcua(dir.path())
        .args([
            "sms",
            "send",
            "--from",
            "0912345678",
            "TC 000.00.12.H58-240315-0007",
        ])
        .output()
        .unwrap();
    let reply = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(reply.contains("HS 000.00.12.H58-240315-0007"), "{reply}");
    assert!(reply.contains("Nguyễn Văn An"), "{reply}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("UCS-2"));

    // An admin blocks a number: a running gateway stops answering it at once.
    let admin = |args: &[&str]| {
        let out = motcua(dir.path()).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    admin(&["block", "add", "0987 000 111", "--reason", "test"]);
    assert!(admin(&["block", "list"]).contains("0987000111\tpermanent\ttest"));
    let blocked = motcua(dir.path())
        .args([
            "sms",
            "send",
            "--from",
            "0987000111",
            "--wait",
            "2",
            "TC 000.00.12.H58-240315-0007",
        ])
        .output()
        .unwrap();
    assert!(!blocked.status.success(), "a blocked number got a reply");
    assert!(String::from_utf8_lossy(&blocked.stderr).contains("no reply"));
    admin(&["block", "remove", "+84987000111"]);
    let unblocked = motcua(dir.path())
        .args([
            "sms",
            "send",
            "--from",
            "0987000111",
            "HS 38.98.H29-210519-0003",
        ])
        .output()
        .unwrap();
    assert!(
        unblocked.status.success(),
        "{}",
        String::from_utf8_lossy(&unblocked.stderr)
    );

    let status = Command::new("kill")
        .args(["-TERM", &gateway.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(exit) = gateway.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "gateway did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success());
    let log = std::fs::read_to_string(dir.path().join("gateway.log")).unwrap();
    assert!(log.contains("gateway stopped"), "{log}");
    assert!(log.contains("091****678"), "{log}");
    assert!(
        !log.contains("0912345678") && !log.contains("84912345678"),
        "{log}"
    );
}

/// `motcua-sms account …` with the password on standard input.
fn account(dir: &Path, args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut child = motcua(dir)
        .env(
            "MOTCUA_JOURNAL__URL",
            format!("sqlite://{}/journal.db", dir.display()),
        )
        .arg("account")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn accounts_are_managed_from_the_command_line_and_audited() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, err) = account(
        dir.path(),
        &["add", "boss", "--role", "administrator"],
        "Mot-cua-2026-chinh\n",
    );
    assert!(ok, "{err}");
    assert!(out.contains("created boss (administrator)"), "{out}");
    let (ok, _, err) = account(
        dir.path(),
        &["add", "an.nguyen", "--role", "viewer"],
        "short\n",
    );
    assert!(!ok);
    assert!(
        err.contains("password refused: at least 12 characters"),
        "{err}"
    );
    let (ok, _, err) = account(dir.path(), &["add", "an.nguyen", "--role", "root"], "");
    assert!(!ok);
    assert!(
        err.contains("not one of administrator, operator, viewer"),
        "{err}"
    );
    let (ok, _, err) = account(dir.path(), &["add", "an.nguyen", "--role", "viewer"], "");
    assert!(!ok);
    assert!(err.contains("no password on standard input"), "{err}");
    assert!(
        account(
            dir.path(),
            &["add", "an.nguyen", "--role", "viewer"],
            "Tra-cuu-ho-so-1\n"
        )
        .0
    );
    assert!(account(dir.path(), &["role", "an.nguyen", "operator"], "").0);
    let (ok, _, err) = account(dir.path(), &["role", "boss", "viewer"], "");
    assert!(!ok);
    assert!(err.contains("boss is the last administrator"), "{err}");
    let (_, list, _) = account(dir.path(), &["list"], "");
    assert_eq!(
        list,
        "an.nguyen\toperator\tmust change password\nboss\tadministrator\tmust change password\n"
    );
    let (_, audit, _) = account(dir.path(), &["audit"], "");
    let actions: Vec<String> = audit
        .lines()
        .map(|l| l.split('\t').skip(1).take(3).collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        actions,
        [
            "cli account.role an.nguyen",
            "cli account.create an.nguyen",
            "cli account.create boss",
        ]
    );
}

/// Two `sms send` at once on the same account, twenty rounds: each prints
/// the reply to its own message (matched by the citizen's number and the
/// reply's concatenation reference), never the other one's.
#[test]
fn concurrent_sms_sends_each_print_their_own_reply() {
    const ROUNDS: usize = 20;
    let dir = tempfile::tempdir().unwrap();
    let journal = format!("sqlite://{}/journal.db", dir.path().display());
    let (mut gateway, bind) = run_gateway(
        dir.path(),
        &[
            ("MOTCUA_JOURNAL__URL", journal.as_str()),
            ("MOTCUA_RATE_LIMIT__ENABLED", "false"),
        ],
    );
    // Two dossiers, two citizens per round: a two-part UCS-2 reply each.
    let asks = [
        (
            "0987100",
            "000.00.12.H58-240315-0007",
            "Cấp giấy phép xây dựng",
        ),
        ("0987200", "38.98.H29-210519-0003", "Đăng ký khai sinh"),
    ];
    let mut crossed = Vec::new();
    for round in 0..ROUNDS {
        let children: Vec<_> = asks
            .iter()
            .map(|(prefix, code, _)| {
                motcua(dir.path())
                    .args([
                        "sms",
                        "send",
                        "--addr",
                        &bind,
                        "--wait",
                        "10",
                        "--from",
                        &format!("{prefix}{round:03}"),
                        &format!("TC {code}"),
                    ])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for (child, (_, code, procedure)) in children.into_iter().zip(asks) {
            let out = child.wait_with_output().unwrap();
            let reply = String::from_utf8_lossy(&out.stdout).into_owned();
            if !out.status.success() {
                crossed.push(format!(
                    "round {round}, asked {code}, failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            } else if !(reply.contains(&format!("HS {code}")) && reply.contains(procedure)) {
                crossed.push(format!("round {round}, asked {code}, printed: {reply}"));
            }
        }
    }
    let _ = Command::new("kill")
        .args(["-TERM", &gateway.id().to_string()])
        .status();
    let _ = gateway.wait();
    assert!(
        crossed.is_empty(),
        "replies crossed:\n{}",
        crossed.join("\n")
    );
}

/// The default of `--listen` in `motcua-sms <command> --help`.
fn default_listen(command: &str) -> std::net::SocketAddr {
    let out = Command::new(BIN)
        .args([command, "--help"])
        .env_remove("MOTCUA_RELAY_LISTEN")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    let after = &help[help.find("--listen").expect("a --listen flag")..];
    let default = &after[after.find("[default: ").expect("a default") + "[default: ".len()..];
    default[..default.find(']').unwrap()].parse().unwrap()
}

#[test]
fn every_default_listening_address_has_a_port_of_its_own() {
    let config = motcua_sms::config::Config::default();
    let mut defaults = vec![
        ("[smpp.listener] bind".to_owned(), config.smpp.listener.bind),
        ("[http] bind".to_owned(), config.http.bind),
        ("[kannel] bind".to_owned(), config.kannel.bind),
        ("[public] bind".to_owned(), config.public.bind),
        ("[admin] bind".to_owned(), config.admin.bind),
        ("[ussd.http] bind".to_owned(), config.ussd.http.bind),
    ];
    for command in ["core-sim", "relay", "loadgen"] {
        defaults.push((format!("{command} --listen"), default_listen(command)));
    }
    for (i, (name, addr)) in defaults.iter().enumerate() {
        for (other, other_addr) in &defaults[i + 1..] {
            assert_ne!(
                addr.port(),
                other_addr.port(),
                "{name} and {other} both default to port {}",
                addr.port()
            );
        }
    }
}
