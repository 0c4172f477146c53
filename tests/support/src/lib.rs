//! Shared helpers for the integration tests (the binaries `tests/*/main.rs`):
//! a gateway on port 0 with a fresh database holding the sample dossiers,
//! the gateway binary as a process, synthetic cores, the feed client, and
//! independent SMPP peers built on the `smpp34` crate (code nobody here wrote).

pub mod core;
pub mod feed;
pub mod fixed_core;
pub mod gateway;
pub mod node_peer;
pub mod peer_esme;
pub mod peer_smsc;
pub mod private_postgres;
pub mod process;
pub mod raw_smpp;
pub mod script_smsc;
pub mod smsc_tally;
pub mod temp_postgres;
pub mod transmitter;
pub mod ussd_menu;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use motcua_sms::app::Gateway;
use motcua_sms::config::Config;
use motcua_sms::import::import_json_lines;
use motcua_sms::smpp::{ListenerAccount, ListenerSettings, SmscSettings};
use motcua_sms::store::SqliteStore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Account the test peers bind with.
pub const SYSTEM_ID: &str = "demo";
/// Its password.
pub const PASSWORD: &str = "demo";
/// The service number in replies.
pub const SERVICE_NUMBER: &str = "8058";
/// A dossier in the sample file: in progress, owner 0912345678, Nguyễn Văn An.
pub const KNOWN_CODE: &str = "000.00.12.H58-240315-0007";
/// The repository's root (docs/, migrations/, tests/peers/).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The sample file.
pub fn sample_file() -> PathBuf {
    repo_root().join("docs/sample-dossiers.jsonl")
}

/// The `motcua-sms` binary cargo built for the running test: beside the
/// test binary's `deps/` directory (cargo's own layout, what
/// `CARGO_BIN_EXE_motcua-sms` names in an integration test).
pub fn bin() -> PathBuf {
    if let Some(path) = std::env::var_os("CARGO_BIN_EXE_motcua-sms") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("a test binary lives in target/<profile>/deps");
    let bin = dir.join(format!("motcua-sms{}", std::env::consts::EXE_SUFFIX));
    assert!(bin.exists(), "{} is not built", bin.display());
    bin
}

/// A running gateway.
pub struct TestApp {
    /// The SMPP listener's address.
    pub listener: SocketAddr,
    /// The operations HTTP port (`/metrics`), when enabled.
    pub http: Option<SocketAddr>,
    /// The USSD callback, when enabled (`ussd.http.enabled`).
    pub ussd_http: Option<SocketAddr>,
    /// The public port (lookup page, JSON), when enabled.
    pub public: Option<SocketAddr>,
    /// Kannel's get-url drop-in, when enabled (`kannel.enabled`).
    pub kannel: Option<SocketAddr>,
    /// The admin console (always on in tests, plain HTTP cookies).
    pub admin: SocketAddr,
    /// The state database's URL (`journal.url`).
    pub state_url: String,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl TestApp {
    /// The journal's database, for checking what was recorded.
    pub async fn journal(&self) -> sqlx::SqlitePool {
        sqlx::SqlitePool::connect(&format!(
            "sqlite://{}/journal.db",
            self._dir.path().display()
        ))
        .await
        .expect("journal opens")
    }

    /// The read model, opened beside the running gateway (to change dossiers).
    pub async fn read_model(&self) -> motcua_sms::store::ReadModel {
        motcua_sms::store::ReadModel::open(&format!(
            "sqlite://{}/read.db",
            self._dir.path().display()
        ))
        .await
        .expect("read model opens")
    }

    /// The state of the reply to the message whose reply text contains `needle`.
    pub async fn reply_states(&self) -> Vec<(String, String, Option<String>)> {
        let pool = self.journal().await;
        let rows: Vec<(String, String, Option<String>)> =
            sqlx::query_as("SELECT text, state, last_error FROM replies ORDER BY message_id")
                .fetch_all(&pool)
                .await
                .expect("replies readable");
        pool.close().await;
        rows
    }

    /// Makes a console account ready to use (its first password already
    /// changed) and returns its password.
    pub async fn admin_account(
        &self,
        name: &str,
        role: motcua_sms::admin::accounts::Role,
    ) -> String {
        use motcua_sms::admin::accounts::{Accounts, LockoutPolicy, NewPassword, Username};
        let state = self.state_pool().await;
        let accounts = Accounts::new(state.clone(), LockoutPolicy::default());
        let username = Username::parse(name).expect("valid username");
        let first = "Tam-thoi-2026-abc".to_owned();
        let password = "Mat-khau-that-2026".to_owned();
        accounts
            .create(
                "test",
                &username,
                role,
                NewPassword::parse(&first, &username).expect("policy"),
                motcua_sms::clock::now_ms(),
            )
            .await
            .expect("account made");
        accounts
            .change_password(name, &first, &password, motcua_sms::clock::now_ms())
            .await
            .expect("password changed");
        state.close().await;
        password
    }

    /// A pool of its own on the state database, whichever engine it is.
    pub async fn state_pool(&self) -> motcua_sms::db::StatePool {
        if motcua_sms::db::is_postgres(&self.state_url) {
            motcua_sms::db::StatePool::Postgres(
                motcua_sms::db::open_postgres(&self.state_url, 2)
                    .await
                    .expect("state database opens"),
            )
        } else {
            motcua_sms::db::StatePool::Sqlite(self.journal().await)
        }
    }

    /// Stops the gateway and waits for it to drain.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("gateway drains within 20 s")
            .expect("gateway task did not panic");
    }
}

/// Options for [`spawn_app_with`].
pub struct AppOptions {
    /// Accented (UCS-2) or unaccented (GSM-7) replies.
    pub accents: bool,
    /// Carrier links to bind to.
    pub smsc: Vec<SmscSettings>,
    /// Partial-PDU timeout for the malformed-frame tests.
    pub partial_pdu_timeout_ms: u64,
    /// Abuse-control settings (default: the gateway's defaults).
    pub rate_limit: motcua_sms::abuse::RateLimitSettings,
    /// Any other change to the configuration, applied last.
    pub tweak: Option<fn(&mut Config)>,
    /// Changes to `[smpp.listener]`, applied after the test defaults (port 0,
    /// the demo account as `accounts[0]`); default: none.
    pub listener: Box<dyn FnOnce(&mut ListenerSettings) + Send>,
    /// Portal records (JSON lines) imported after the sample file.
    pub extra_dossiers: Vec<String>,
    /// A shared state database (`journal.url`, e.g. PostgreSQL) and this
    /// gateway's node name in it; default: a SQLite file of its own.
    pub shared_state: Option<(String, String)>,
}

impl Default for AppOptions {
    fn default() -> Self {
        AppOptions {
            accents: true,
            smsc: Vec::new(),
            partial_pdu_timeout_ms: 300,
            rate_limit: motcua_sms::abuse::RateLimitSettings::default(),
            tweak: None,
            listener: Box::new(|_| {}),
            extra_dossiers: Vec::new(),
            shared_state: None,
        }
    }
}

/// Starts a gateway with accented replies.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(AppOptions::default()).await
}

/// Starts a gateway on port 0 with a fresh SQLite file holding the sample dossiers.
pub async fn spawn_app_with(options: AppOptions) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config::default();
    config.database.url = format!("sqlite://{}/read.db", dir.path().display());
    config.journal.url = format!("sqlite://{}/journal.db", dir.path().display());
    config.reply.accents = options.accents;
    // The repository's templates are the built-in ones; test the built-ins.
    config.reply.templates_dir = dir.path().join("no-templates");
    config.service.number = SERVICE_NUMBER.to_owned();
    config.smpp.listener.bind = "127.0.0.1:0".parse().unwrap();
    config.http.bind = "127.0.0.1:0".parse().unwrap();
    config.ussd.http.bind = "127.0.0.1:0".parse().unwrap();
    config.public.bind = "127.0.0.1:0".parse().unwrap();
    config.kannel.bind = "127.0.0.1:0".parse().unwrap();
    config.admin.enabled = true;
    config.admin.bind = "127.0.0.1:0".parse().unwrap();
    config.admin.cookie_secure = false;
    config.smpp.listener.accounts = vec![ListenerAccount {
        system_id: SYSTEM_ID.to_owned(),
        password: PASSWORD.to_owned(),
        ..ListenerAccount::default()
    }];
    config.smpp.session.partial_pdu_timeout_ms = options.partial_pdu_timeout_ms;
    config.smpp.session.enquire_link_interval_secs = 5;
    config.smpp.session.response_timeout_ms = 3_000;
    config.smpp.smsc = options.smsc;
    config.rate_limit = options.rate_limit;
    if let Some((url, node)) = options.shared_state {
        config.journal.url = url;
        config.cluster.node = node;
    }
    if let Some(tweak) = options.tweak {
        tweak(&mut config);
    }
    (options.listener)(&mut config.smpp.listener);

    let store = SqliteStore::open(&config.database.url).await.unwrap();
    let file = std::fs::File::open(sample_file()).unwrap();
    let report = import_json_lines(&store, std::io::BufReader::new(file))
        .await
        .unwrap();
    assert!(
        report.bad.is_empty(),
        "sample file has bad lines: {:?}",
        report.bad
    );
    if !options.extra_dossiers.is_empty() {
        let lines = options.extra_dossiers.join("\n");
        let report = import_json_lines(&store, std::io::Cursor::new(lines))
            .await
            .unwrap();
        assert!(
            report.bad.is_empty(),
            "bad extra dossiers: {:?}",
            report.bad
        );
    }
    store.close().await;

    let gateway = Gateway::build(&config).await.expect("gateway starts");
    let listener = gateway.listener_addr().expect("listener runs");
    let http = gateway.http_addr();
    let ussd_http = gateway.ussd_http_addr();
    let public = gateway.public_addr();
    let kannel = gateway.kannel_addr();
    let admin = gateway.admin_addr().expect("admin console runs");
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(gateway.run(shutdown.clone()));
    TestApp {
        state_url: config.journal.url.clone(),
        listener,
        http,
        ussd_http,
        public,
        kannel,
        admin,
        shutdown,
        task,
        _dir: dir,
    }
}

/// A carrier link to a test SMSC on `port` (account motcua/secret).
pub fn smsc_settings(port: u16) -> SmscSettings {
    SmscSettings {
        reconnect_delay_ms: 100,
        ..SmscSettings::new("carrier-test", "127.0.0.1", port, "motcua", "secret")
    }
}

/// Decodes a reply's parts (UDH stripped) the way a handset would.
pub fn decode_parts(parts: &[peer_esme::RawMessage]) -> String {
    let mut sorted: Vec<&peer_esme::RawMessage> = parts.iter().collect();
    sorted.sort_by_key(|m| {
        if m.esm_class & 0x40 != 0 {
            m.short_message.get(5).copied().unwrap_or(0)
        } else {
            0
        }
    });
    sorted
        .iter()
        .map(|m| {
            let data = if m.esm_class & 0x40 != 0 {
                let udhl = m.short_message[0] as usize;
                &m.short_message[udhl + 1..]
            } else {
                &m.short_message[..]
            };
            match m.data_coding {
                8 => {
                    let units: Vec<u16> = data
                        .chunks_exact(2)
                        .map(|p| u16::from_be_bytes([p[0], p[1]]))
                        .collect();
                    String::from_utf16(&units).expect("valid UTF-16")
                }
                0 => data.iter().map(|&b| gsm7_plain(b)).collect(),
                other => panic!("unexpected data_coding {other}"),
            }
        })
        .collect()
}

/// UCS-2 bytes of a text, for submitting accented messages.
pub fn ucs2(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_be_bytes).collect()
}

/// The GSM-7 septets that equal their ASCII character (all a reply uses);
/// anything else fails the test, so the check does not rely on the
/// gateway's own decoder.
fn gsm7_plain(septet: u8) -> char {
    match septet {
        0x0a => '\n',
        0x20..=0x23 | 0x25..=0x3f | 0x41..=0x5a | 0x61..=0x7a => char::from(septet),
        other => panic!("unexpected GSM-7 septet 0x{other:02x} in a reply"),
    }
}

/// The value of the `TEST_*` variable naming an outside service. A test
/// needing one is ignored when the variable was unset at build time
/// (`build.rs`); if it runs, the variable was set then, and unset now means
/// the binary was started by hand without it: that fails rather than
/// passing without the service.
pub fn service(var: &str) -> String {
    match std::env::var(var) {
        Ok(value) if !value.trim().is_empty() => value,
        _ => panic!(
            "{var} is unset, yet was set when this test was built (cargo test rebuilds \
             when it changes; README, \"Tests\", lists what each variable names)"
        ),
    }
}
