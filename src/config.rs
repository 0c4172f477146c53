//! `config.toml`: every key, its default, and loading with environment
//! overrides (`MOTCUA_DATABASE__URL` sets `database.url`). An unknown key, a
//! bad value or an unreadable file is one [`ConfigError`] naming the key and
//! the file; the binary exits with 78 (EX_CONFIG) on it.

use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::Deserialize;

use crate::reply::ReplySettings;
use crate::smpp::{ListenerSettings, SessionSettings, SmscSettings};

/// The file read when `--config` is not given (absent: all defaults).
pub const DEFAULT_CONFIG_PATH: &str = "config.toml";
/// Prefix of environment overrides; `__` separates nested keys.
pub const ENV_PREFIX: &str = "MOTCUA_";

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[database]`
    pub database: DatabaseConfig,
    /// `[journal]`
    pub journal: crate::journal::JournalSettings,
    /// `[cluster]`: this gateway among those sharing a state database.
    pub cluster: crate::cluster::ClusterSettings,
    /// `[rate_limit]`
    pub rate_limit: crate::abuse::RateLimitSettings,
    /// `[service]`
    pub service: ServiceConfig,
    /// `[reply]`
    pub reply: ReplyConfig,
    /// `[smpp]`
    pub smpp: SmppConfig,
    /// `[sync]`: keeping the read model in step with the one-stop core.
    pub sync: crate::sync::SyncSettings,
    /// `[http]`: the operations port (health, metrics, push webhook).
    pub http: crate::ops_http::HttpSettings,
    /// `[modem]`: GSM modems over AT commands (none by default).
    pub modem: crate::modem::ModemSettings,
    /// `[ussd]`: USSD dialogues over SMPP and the aggregators' HTTP callback.
    pub ussd: crate::ussd::UssdSettings,
    /// `[public]`: the lookup page and JSON for portals and kiosks.
    pub public: crate::public_http::PublicSettings,
    /// `[kannel]`: Kannel's get-url drop-in, on its own port.
    pub kannel: crate::kannel_http::KannelSettings,
    /// `[admin]`: the admin console (web UI and API).
    pub admin: crate::admin::http::AdminSettings,
    /// `[log]`
    pub log: LogConfig,
}

/// `[database]`: where the read model lives.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://path/to/file.db` (relative to the working directory), or
    /// `postgres://user:password@host:5432/database` for production.
    pub url: String,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: "sqlite://var/motcua.db".to_owned(),
        }
    }
}

/// `[service]`: how citizens reach the service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceConfig {
    /// The short number citizens text; shown in help replies.
    pub number: String,
    /// A hotline shown in replies when set.
    pub hotline: Option<String>,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            number: "8058".to_owned(),
            hotline: None,
        }
    }
}

/// `[reply]`: how replies are written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReplyConfig {
    /// true: Vietnamese with diacritics (UCS-2); false: unaccented (GSM-7).
    pub accents: bool,
    /// Folder of admin-edited templates; a missing file uses the built-in one.
    pub templates_dir: PathBuf,
    /// Segment budget of an unaccented reply.
    pub max_segments_gsm7: usize,
    /// Segment budget of an accented reply.
    pub max_segments_ucs2: usize,
}

impl Default for ReplyConfig {
    fn default() -> Self {
        ReplyConfig {
            accents: true,
            templates_dir: PathBuf::from("templates"),
            max_segments_gsm7: 1,
            max_segments_ucs2: 2,
        }
    }
}

/// `[smpp]`: the SMPP listener, carrier links, and session timings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmppConfig {
    /// `[smpp.session]`: timings and limits shared by every SMPP session.
    pub session: SessionSettings,
    /// `[smpp.listener]`: the gateway as an SMSC toward bound peers.
    pub listener: ListenerSettings,
    /// `[[smpp.smsc]]`: carrier SMSCs the gateway binds to.
    pub smsc: Vec<SmscSettings>,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[log]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A tracing filter (`info`, `motcua_sms=debug,sqlx=warn`); `RUST_LOG` wins.
    pub level: String,
    /// `text` or `json`.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".to_owned(),
            format: LogFormat::Text,
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file named with `--config` is missing or unreadable.
    #[error("{path}: cannot read the configuration file: {source}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Syntax error, unknown key or bad value.
    #[error("{origin}: {message}")]
    Invalid {
        /// The file (or environment variable) the bad value came from.
        origin: String,
        /// Which key and what is wrong.
        message: String,
    },
}

impl ReplyConfig {
    /// The renderer's settings.
    pub fn settings(&self, service: &ServiceConfig) -> ReplySettings {
        ReplySettings {
            accents: self.accents,
            max_segments_gsm7: self.max_segments_gsm7,
            max_segments_ucs2: self.max_segments_ucs2,
            service_number: service.number.clone(),
            hotline: service.hotline.clone(),
        }
    }
}

impl Config {
    /// Reads `path` (or `config.toml` when present), applies `MOTCUA_*`
    /// environment overrides, and checks the values.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let (path, explicit) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
        };
        let mut figment = Figment::new();
        let file_name = path.display().to_string();
        if explicit || path.exists() {
            // Read it ourselves first so that a missing or unreadable file is
            // an error, not silently an empty configuration.
            let text =
                std::fs::read_to_string(&path).map_err(|source| ConfigError::Unreadable {
                    path: path.clone(),
                    source,
                })?;
            figment = figment.merge(Toml::string(&text));
        }
        figment = figment.merge(Env::prefixed(ENV_PREFIX).split("__"));
        let config: Config = figment.extract().map_err(|e| describe(e, &file_name))?;
        config.validate(&file_name)?;
        Ok(config)
    }

    fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            origin: origin.to_owned(),
            message,
        };
        let supported = |url: &str| {
            ["sqlite:", "postgres://", "postgresql://"]
                .iter()
                .any(|scheme| url.starts_with(scheme))
        };
        let url = self.database.url.as_str();
        if !supported(url) {
            return Err(invalid(format!(
                "key `database.url`: {:?} is not supported; use sqlite://path/to/file.db or postgres://user@host/database",
                crate::db::redact_url(url)
            )));
        }
        if !supported(&self.journal.url) {
            return Err(invalid(format!(
                "key `journal.url`: {:?} is not supported; use sqlite://path/to/journal.db or postgres://user@host/database",
                crate::db::redact_url(&self.journal.url)
            )));
        }
        let problems = [
            self.journal.problems(),
            self.sync.problems(),
            self.ussd.problems(),
            self.kannel.problems(),
            self.public.problems(),
        ];
        if let Some((key, problem)) = problems.into_iter().flatten().next() {
            return Err(invalid(format!("key `{key}`: {problem}")));
        }
        if self.sync.push.enabled && !self.http.enabled {
            return Err(invalid(
                "key `sync.push.enabled`: the push webhook is served on the HTTP port; set http.enabled = true".into(),
            ));
        }
        for (port, limits) in [
            ("http", &self.http.limits),
            ("public", &self.public.limits),
            ("admin", &self.admin.limits),
            ("ussd.http", &self.ussd.http.limits),
            ("kannel", &self.kannel.limits),
        ] {
            if let Some((key, problem)) = limits.problem() {
                return Err(invalid(format!("key `{port}.limits.{key}`: {problem}")));
            }
        }
        if let Err(error) = crate::ussd::dial::ServiceCode::parse(&self.ussd.service_code) {
            return Err(invalid(format!("key `ussd.service_code`: {error}")));
        }
        if self.ussd.max_sessions == 0 {
            return Err(invalid(
                "key `ussd.max_sessions`: must be at least 1".into(),
            ));
        }
        if self.ussd.answer_within_ms > 14_000 {
            return Err(invalid(format!(
                "key `ussd.answer_within_ms`: {} ms is longer than USSD centres wait (about 15 s); use at most 14000",
                self.ussd.answer_within_ms
            )));
        }
        if self.ussd.http.enabled && !self.ussd.http.path.starts_with('/') {
            return Err(invalid(format!(
                "key `ussd.http.path`: {:?} must start with /",
                self.ussd.http.path
            )));
        }
        if self.service.number.trim().is_empty() {
            return Err(invalid("key `service.number`: must not be empty".into()));
        }
        let listener = &self.smpp.listener;
        let mut system_ids = std::collections::HashSet::new();
        for (i, account) in listener.accounts.iter().enumerate() {
            if account.system_id.is_empty() || account.system_id.len() > 15 {
                return Err(invalid(format!(
                    "key `smpp.listener.accounts[{i}].system_id`: must be 1 to 15 characters"
                )));
            }
            if !system_ids.insert(account.system_id.as_str()) {
                return Err(invalid(format!(
                    "key `smpp.listener.accounts[{i}].system_id`: {:?} is already used by another account",
                    account.system_id
                )));
            }
            if account.password.len() > 8 {
                return Err(invalid(format!(
                    "key `smpp.listener.accounts[{i}].password`: SMPP passwords are at most 8 characters"
                )));
            }
            if account.max_binds == 0 {
                return Err(invalid(format!(
                    "key `smpp.listener.accounts[{i}].max_binds`: must be at least 1"
                )));
            }
            if account.max_tps == Some(0) {
                return Err(invalid(format!(
                    "key `smpp.listener.accounts[{i}].max_tps`: must be at least 1; leave the key out for no cap"
                )));
            }
            let exposed = listener.enabled && !listener.bind.ip().is_loopback();
            if let Some(weakness) = exposed
                .then(|| weak_listener_password(&account.system_id, &account.password))
                .flatten()
            {
                return Err(invalid(format!(
                    "key `smpp.listener.accounts[{i}].password`: the password of account {:?} {weakness}, \
                     and smpp.listener.bind = {} is reachable from the network, where a bound peer \
                     is trusted as the citizen it names; choose 6 to 8 characters that are neither \
                     the account's name nor a common password, or bind to 127.0.0.1",
                    account.system_id, listener.bind
                )));
            }
        }
        for (key, value) in [
            ("bind_timeout_secs", listener.bind_timeout_secs),
            ("idle_timeout_secs", listener.idle_timeout_secs),
            ("lockout_window_secs", listener.lockout_window_secs),
            ("lockout_secs", listener.lockout_secs),
            (
                "lockout_max_addresses",
                listener.lockout_max_addresses as u64,
            ),
            ("max_connections", listener.max_connections as u64),
            (
                "max_connections_per_ip",
                listener.max_connections_per_ip as u64,
            ),
        ] {
            if value == 0 {
                return Err(invalid(format!(
                    "key `smpp.listener.{key}`: must be at least 1"
                )));
            }
        }
        if self.smpp.session.inbound_window == 0 {
            return Err(invalid(
                "key `smpp.session.inbound_window`: must be at least 1".into(),
            ));
        }
        let mut names = std::collections::HashSet::new();
        for (i, smsc) in self.smpp.smsc.iter().enumerate() {
            if smsc.name.is_empty() || !names.insert(smsc.name.as_str()) {
                return Err(invalid(format!(
                    "key `smpp.smsc[{i}].name`: {:?} must be non-empty and unique",
                    smsc.name
                )));
            }
            if smsc.system_id.len() > 15 || smsc.password.len() > 8 {
                return Err(invalid(format!(
                    "key `smpp.smsc[{i}]`: system_id is at most 15 and password at most 8 characters"
                )));
            }
            if smsc.connections == 0 || smsc.window == Some(0) {
                return Err(invalid(format!(
                    "key `smpp.smsc[{i}]`: connections and window must be at least 1"
                )));
            }
            for entry in &smsc.route_prefixes {
                let is_prefix =
                    (entry.starts_with('0') || entry.starts_with("84") || entry.starts_with("+84"))
                        && entry
                            .trim_start_matches('+')
                            .chars()
                            .all(|c| c.is_ascii_digit());
                if !is_prefix && crate::domain::msisdn::carrier_prefixes(entry).is_none() {
                    return Err(invalid(format!(
                        "key `smpp.smsc[{i}].route_prefixes`: {entry:?} is neither a number prefix \
                         (\"091\", \"8491\") nor a carrier (viettel, vinaphone, mobifone, \
                         vietnamobile, gmobile, itel, reddi)"
                    )));
                }
            }
        }
        if self.smpp.session.window == 0 {
            return Err(invalid(
                "key `smpp.session.window`: must be at least 1".into(),
            ));
        }
        if self.smpp.session.max_pdu_len < 1024 {
            return Err(invalid(
                "key `smpp.session.max_pdu_len`: must be at least 1024".into(),
            ));
        }
        Ok(())
    }
}

/// Passwords anyone would try first on an SMPP port (compared in lower case).
const COMMON_PASSWORDS: &[&str] = &[
    "demo",
    "demo1234",
    "password",
    "passw0rd",
    "pass",
    "pass1234",
    "secret",
    "secret12",
    "smpp",
    "smpp1234",
    "smppclnt",
    "smppuser",
    "test",
    "test1234",
    "tester",
    "testing",
    "admin",
    "admin123",
    "root",
    "guest",
    "default",
    "changeme",
    "welcome",
    "letmein",
    "qwerty",
    "qwertyui",
    "abc123",
    "abcd1234",
    "iloveyou",
    "monkey",
    "dragon",
    "master",
    "motcua",
    "esme",
    "smsc",
    "kannel",
    "bearerbox",
    "viettel",
    "mobifone",
    "vinaphone",
    "123456",
    "1234567",
    "12345678",
    "123123",
    "654321",
    "111111",
    "000000",
    "888888",
];

/// Why `password` will not do for a listener account reachable from the
/// network, if it will not: shorter than 6 characters, the account's name
/// (or contains it), a common password, one character repeated, or a run
/// of consecutive letters or digits (`abcdef`, `876543`).
fn weak_listener_password(system_id: &str, password: &str) -> Option<&'static str> {
    let lower = password.to_lowercase();
    let id = system_id.to_lowercase();
    let bytes = lower.as_bytes();
    let steps: Vec<i16> = bytes
        .windows(2)
        .map(|pair| i16::from(pair[1]) - i16::from(pair[0]))
        .collect();
    if password.chars().count() < 6 {
        Some("is shorter than 6 characters")
    } else if !id.is_empty() && lower.contains(&id) {
        Some("contains the account's name")
    } else if COMMON_PASSWORDS.contains(&lower.as_str()) {
        Some("is a common password")
    } else if steps.iter().all(|&step| step == 0) {
        Some("is one character repeated")
    } else if steps.iter().all(|&step| step == 1) || steps.iter().all(|&step| step == -1) {
        Some("is a run of consecutive characters")
    } else {
        None
    }
}

/// One line naming the key and the file (or variable) it came from.
fn describe(error: figment::Error, file: &str) -> ConfigError {
    let origin = error
        .metadata
        .as_ref()
        .map(|m| {
            if m.name.contains("environment") {
                let key = error.path.join("__").to_uppercase();
                format!("environment variable {ENV_PREFIX}{key}")
            } else {
                file.to_owned()
            }
        })
        .unwrap_or_else(|| file.to_owned());
    let key = error.path.join(".");
    let message = if key.is_empty() {
        error.kind.to_string()
    } else {
        format!("key `{key}`: {}", error.kind)
    };
    ConfigError::Invalid {
        origin,
        message: one_line(&message),
    }
}

/// Folds a multi-line parser message (TOML errors draw a caret under the
/// source line) into one line.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.contains('|') && !l.chars().all(|c| c == '^' || c == ' '))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Held by every test that loads configuration from the environment, so
    /// the test that sets MOTCUA_* variables cannot leak them into the others.
    static ENVIRONMENT: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn load_text(text: &str) -> Result<Config, ConfigError> {
        let _environment = ENVIRONMENT.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.toml");
        std::fs::write(&path, text).unwrap();
        Config::load(Some(&path))
    }

    #[test]
    fn the_minimal_file_works_and_everything_else_defaults() {
        let config = load_text(
            r#"
            [database]
            url = "sqlite://var/motcua.db"
            [smpp.listener]
            bind = "127.0.0.1:2775"
            [[smpp.listener.accounts]]
            system_id = "demo"
            password = "demo"
            "#,
        )
        .unwrap();
        assert_eq!(config.smpp.listener.accounts.len(), 1);
        assert!(config.reply.accents);
        assert_eq!(config.service.number, "8058");
        assert!(config.smpp.smsc.is_empty());
    }

    #[test]
    fn an_smsc_table_is_a_carrier_link() {
        let config = load_text(
            "[[smpp.smsc]]\nname = \"viettel\"\nhost = \"10.0.0.1\"\nport = 2776\nsystem_id = \"motcua\"\npassword = \"pw\"\n",
        )
        .unwrap();
        assert_eq!(config.smpp.smsc[0].port, 2776);
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key_and_the_file() {
        let err = load_text("[smpp.listener]\nbindd = \"127.0.0.1:2775\"\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("gateway.toml"), "{msg}");
        assert!(msg.contains("bindd"), "{msg}");
        let err = load_text("[smpp.listener]\nbind = \"nowhere\"\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("smpp.listener.bind"), "{msg}");
        let err = load_text("[reply]\naccents = \"maybe\"\n").unwrap_err();
        assert!(err.to_string().contains("reply.accents"), "{err}");
        let err = load_text("[database]\nurl = \"mysql://x\"\n").unwrap_err();
        assert!(err.to_string().contains("database.url"), "{err}");
        assert!(!err.to_string().contains('\n'));
    }

    #[test]
    fn the_state_database_is_sqlite_or_postgres_and_its_password_is_never_shown() {
        let config = load_text(
            "[journal]\nurl = \"postgres://motcua:s3cret@db:5432/state\"\n[cluster]\nnode = \"gw-a\"\n",
        )
        .unwrap();
        assert_eq!(config.journal.url, "postgres://motcua:s3cret@db:5432/state");
        assert_eq!(config.cluster.node, "gw-a");
        let err = load_text("[journal]\nurl = \"mysql://motcua:s3cret@db/state\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("journal.url"), "{err}");
        assert!(err.contains("postgres://"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
    }

    #[test]
    fn listener_hardening_keys_load_with_their_defaults() {
        let config = load_text(
            r#"
            [smpp.listener]
            allowed_ips = ["127.0.0.1", "10.20.0.0/16", "2001:db8::/32"]
            idle_timeout_secs = 60
            [[smpp.listener.accounts]]
            system_id = "agg"
            password = "pw"
            max_binds = 2
            max_tps = 50
            allowed_ips = ["10.20.30.40/32"]
            [[smpp.listener.accounts]]
            system_id = "demo"
            password = "demo"
            "#,
        )
        .unwrap();
        let listener = &config.smpp.listener;
        let nets: Vec<String> = listener.allowed_ips.iter().map(|n| n.to_string()).collect();
        assert_eq!(nets, ["127.0.0.1/32", "10.20.0.0/16", "2001:db8::/32"]);
        assert_eq!(listener.idle_timeout_secs, 60);
        assert_eq!(listener.bind_timeout_secs, 30);
        assert_eq!(listener.lockout_after_failures, 5);
        assert_eq!(listener.accounts[0].max_binds, 2);
        assert_eq!(listener.accounts[0].max_tps, Some(50));
        assert_eq!(listener.accounts[0].allowed_ips.len(), 1);
        assert_eq!(listener.accounts[1].max_binds, 10);
        assert_eq!(listener.accounts[1].max_tps, None);
        assert!(listener.accounts[1].allowed_ips.is_empty());
    }

    #[test]
    fn the_shipped_config_toml_documents_the_listener_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml");
        // The file alone, without MOTCUA_* variables (another test sets some).
        let text = std::fs::read_to_string(path).unwrap();
        let config: Config = Figment::new().merge(Toml::string(&text)).extract().unwrap();
        config.validate("config.toml").unwrap();
        let shipped = config.smpp.listener;
        let default = ListenerSettings::default();
        assert_eq!(shipped.allowed_ips, default.allowed_ips);
        assert_eq!(shipped.bind_timeout_secs, default.bind_timeout_secs);
        assert_eq!(shipped.idle_timeout_secs, default.idle_timeout_secs);
        assert_eq!(
            shipped.lockout_after_failures,
            default.lockout_after_failures
        );
        assert_eq!(shipped.lockout_window_secs, default.lockout_window_secs);
        assert_eq!(shipped.lockout_secs, default.lockout_secs);
        assert_eq!(shipped.lockout_max_addresses, default.lockout_max_addresses);
        assert_eq!(shipped.max_connections, default.max_connections);
        assert_eq!(
            shipped.max_connections_per_ip,
            default.max_connections_per_ip
        );
        let session = crate::smpp::SessionSettings::default();
        assert_eq!(config.smpp.session.inbound_window, session.inbound_window);
        assert_eq!(config.smpp.session.ack_deadline_ms, session.ack_deadline_ms);
        let demo = &shipped.accounts[0];
        let account = crate::smpp::ListenerAccount::default();
        assert_eq!(demo.max_binds, account.max_binds);
        assert_eq!(demo.max_tps, account.max_tps);
        assert_eq!(demo.allowed_ips, account.allowed_ips);
    }

    #[test]
    fn the_shipped_carrier_link_example_is_a_valid_link() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml");
        let text = std::fs::read_to_string(path).unwrap();
        // The commented [[smpp.smsc]] example, uncommented.
        let example: String = text
            .lines()
            .skip_while(|line| !line.starts_with("# [[smpp.smsc]]"))
            .take_while(|line| line.starts_with('#'))
            .map(|line| format!("{}\n", line.trim_start_matches('#').trim_start()))
            .collect();
        assert!(example.contains("route_prefixes"), "{example}");
        let config: Config = Figment::new()
            .merge(Toml::string(&text))
            .merge(Toml::string(&example))
            .extract()
            .unwrap();
        config.validate("config.toml").unwrap();
        let link = &config.smpp.smsc[0];
        assert_eq!(link.max_tps, std::num::NonZeroU32::new(50));
        assert_eq!(link.route_prefixes, vec!["viettel".to_owned()]);
        let default = crate::smpp::SmscSettings::new("x", "h", 1, "s", "p");
        assert_eq!(link.registered_delivery, default.registered_delivery);
        assert_eq!(link.connections, default.connections);
        assert_eq!(link.long_messages, default.long_messages);
        assert_eq!(link.bind, default.bind);
        assert_eq!(
            config.smpp.session.window,
            crate::smpp::SessionSettings::default().window
        );
        assert_eq!(
            config.journal.reassembly_timeout_secs,
            crate::journal::JournalSettings::default().reassembly_timeout_secs
        );
    }

    #[test]
    fn a_route_prefix_that_is_neither_a_prefix_nor_a_carrier_names_the_key() {
        let mut config = Config::default();
        let mut link = crate::smpp::SmscSettings::new("a", "h", 1, "s", "p");
        link.route_prefixes = vec!["viettelx".into()];
        config.smpp.smsc.push(link);
        let error = config.validate("config.toml").unwrap_err().to_string();
        assert!(error.contains("smpp.smsc[0].route_prefixes"), "{error}");
    }

    #[test]
    fn bad_listener_hardening_values_name_the_key() {
        let err = load_text("[smpp.listener]\nallowed_ips = [\"127.0.0.1\", \"10.0.0.0/33\"]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("smpp.listener.allowed_ips"), "{err}");
        assert!(err.contains("10.0.0.0/33"), "{err}");
        assert!(err.contains("gateway.toml"), "{err}");
        let err = load_text(
            "[[smpp.listener.accounts]]\nsystem_id = \"a\"\npassword = \"b\"\nallowed_ips = [\"office\"]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("allowed_ips"), "{err}");
        assert!(err.contains("office"), "{err}");
        let err = load_text(
            "[[smpp.listener.accounts]]\nsystem_id = \"a\"\npassword = \"b\"\nmax_tps = 0\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("smpp.listener.accounts[0].max_tps"), "{err}");
        let err = load_text(
            "[[smpp.listener.accounts]]\nsystem_id = \"a\"\npassword = \"b\"\nmax_binds = 0\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("smpp.listener.accounts[0].max_binds"), "{err}");
        let err = load_text("[smpp.listener]\nidle_timeout_secs = 0\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("smpp.listener.idle_timeout_secs"), "{err}");
        let err = load_text(
            "[[smpp.listener.accounts]]\nsystem_id = \"a\"\npassword = \"b\"\n[[smpp.listener.accounts]]\nsystem_id = \"a\"\npassword = \"c\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("smpp.listener.accounts[1].system_id"), "{err}");
    }

    #[test]
    fn http_limits_load_per_port_and_bad_ones_name_the_key() {
        let config = load_text(
            "[public.limits]\nmax_connections = 20\nmax_connections_per_ip = 4\n[ussd.http.limits]\nheader_read_timeout_secs = 3\n",
        )
        .unwrap();
        assert_eq!(config.public.limits.max_connections, 20);
        assert_eq!(config.public.limits.max_connections_per_ip, 4);
        assert_eq!(config.ussd.http.limits.header_read_timeout_secs, 3);
        let default = crate::http_server::HttpLimits::default();
        assert_eq!(
            config.public.limits.request_timeout_secs,
            default.request_timeout_secs
        );
        assert_eq!(config.admin.limits, default);
        assert_eq!(config.http.limits, default);
        let err = load_text("[admin.limits]\nrequest_timeout_secs = 0\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("admin.limits.request_timeout_secs"), "{err}");
        let err = load_text("[http.limits]\nmax_connections = 8\nmax_connections_per_ip = 9\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("http.limits.max_connections_per_ip"), "{err}");
        let err = load_text("[http.limits]\nmax_conections = 8\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_conections"), "{err}");
    }

    #[test]
    fn weak_listener_passwords_are_named_and_good_ones_pass() {
        for (id, password, why) in [
            ("demo", "demo", "shorter than 6"),
            ("agg", "ab12", "shorter than 6"),
            ("carrier1", "Carrier1", "account's name"),
            ("agg", "xagg99", "account's name"),
            ("agg", "Password", "common password"),
            ("agg", "12345678", "common password"),
            ("agg", "zzzzzzzz", "one character repeated"),
            ("agg", "abcdefg", "consecutive"),
            ("agg", "987654", "consecutive"),
        ] {
            let weakness = weak_listener_password(id, password).unwrap_or("none");
            assert!(weakness.contains(why), "{id}/{password}: {weakness}");
        }
        for (id, password) in [
            ("agg", "Xk7#q9Lm"),
            ("viettel", "v9T!k2pQ"),
            ("a", "h7Gm2x"),
        ] {
            assert_eq!(weak_listener_password(id, password), None, "{password}");
        }
    }

    #[test]
    fn a_weak_listener_password_is_refused_only_where_the_network_reaches_it() {
        let demo = "[[smpp.listener.accounts]]\nsystem_id = \"demo\"\npassword = \"demo\"\n";
        assert!(load_text(demo).is_ok(), "loopback, the default bind");
        let err = load_text(&format!("[smpp.listener]\nbind = \"0.0.0.0:2775\"\n{demo}"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("smpp.listener.accounts[0].password"), "{err}");
        assert!(err.contains("0.0.0.0:2775"), "{err}");
        let err = load_text(&format!("[smpp.listener]\nbind = \"[::]:2775\"\n{demo}"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("smpp.listener.accounts[0].password"), "{err}");
        let off = format!("[smpp.listener]\nenabled = false\nbind = \"0.0.0.0:2775\"\n{demo}");
        assert!(load_text(&off).is_ok(), "a listener that does not run");
    }

    /// One step of a key's path in config.toml: a key, or an array's index.
    #[derive(Debug, Clone, PartialEq)]
    enum Step {
        Key(String),
        Index(usize),
    }

    fn path_text(path: &[Step]) -> String {
        let mut text = String::new();
        for step in path {
            match step {
                Step::Key(key) if text.is_empty() => text.push_str(key),
                Step::Key(key) => text.push_str(&format!(".{key}")),
                Step::Index(index) => text.push_str(&format!("[{index}]")),
            }
        }
        text
    }

    /// Every value that is not a table, with its path.
    fn leaves(value: &figment::value::Value, path: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
        use figment::value::Value;
        match value {
            Value::Dict(_, dict) => {
                for (key, value) in dict {
                    path.push(Step::Key(key.clone()));
                    leaves(value, path, out);
                    path.pop();
                }
            }
            Value::Array(_, items)
                if items.iter().all(|v| matches!(v, Value::Dict(..))) && !items.is_empty() =>
            {
                for (index, item) in items.iter().enumerate() {
                    path.push(Step::Index(index));
                    leaves(item, path, out);
                    path.pop();
                }
            }
            _ => out.push(path.clone()),
        }
    }

    /// `value` without what `path` leads to.
    fn without(value: &figment::value::Value, path: &[Step]) -> figment::value::Value {
        use figment::value::Value;
        let mut value = value.clone();
        let mut at = &mut value;
        for (n, step) in path.iter().enumerate() {
            let last = n + 1 == path.len();
            match (step, at) {
                (Step::Key(key), Value::Dict(_, dict)) if last => {
                    dict.remove(key);
                    break;
                }
                (Step::Index(index), Value::Array(_, items)) if last => {
                    items.remove(*index);
                    break;
                }
                (Step::Key(key), Value::Dict(_, dict)) => at = dict.get_mut(key).unwrap(),
                (Step::Index(index), Value::Array(_, items)) => at = &mut items[*index],
                (step, other) => panic!("{step:?} in {other:?}"),
            }
        }
        value
    }

    /// The keys and tables config.toml marks `# changed (default: …)`, as paths.
    fn marked_as_changed(text: &str) -> Vec<String> {
        let mut table = String::new();
        let mut arrays: std::collections::HashMap<String, usize> = Default::default();
        let mut marked = Vec::new();
        for line in text.lines().map(str::trim) {
            let (code, comment) = line.split_once('#').unwrap_or((line, ""));
            let code = code.trim();
            let changed = comment.trim_start().starts_with("changed");
            if let Some(name) = code.strip_prefix("[[").and_then(|c| c.strip_suffix("]]")) {
                let index = arrays.entry(name.to_owned()).or_insert(0);
                table = format!("{name}[{index}]");
                *index += 1;
            } else if let Some(name) = code.strip_prefix('[').and_then(|c| c.strip_suffix(']')) {
                table = name.to_owned();
            } else if let Some((key, _)) = code.split_once('=') {
                if changed {
                    marked.push(format!("{table}.{}", key.trim()));
                }
                continue;
            } else {
                continue;
            }
            if changed {
                marked.push(table.clone());
            }
        }
        marked
    }

    #[test]
    fn every_value_config_toml_shows_is_the_built_in_default_unless_marked_changed() {
        use figment::providers::Serialized;
        use figment::value::Value;
        let text =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml"))
                .unwrap();
        let file: Value = Figment::new().merge(Toml::string(&text)).extract().unwrap();
        let loaded = |value: &Value| {
            Figment::from(Serialized::defaults(value))
                .extract::<Config>()
                .map(|config| format!("{config:?}"))
                .ok()
        };
        let shipped = loaded(&file).expect("config.toml loads");
        let marked = marked_as_changed(&text);
        let is_marked = |path: &str| {
            marked.iter().any(|m| {
                path == m
                    || path.starts_with(&format!("{m}."))
                    || path.starts_with(&format!("{m}["))
            })
        };
        let mut found = Vec::new();
        leaves(&file, &mut Vec::new(), &mut found);
        assert!(found.len() > 100, "{} keys", found.len());
        let mut problems = Vec::new();
        for path in &found {
            let key = path_text(path);
            let differs = loaded(&without(&file, path)).as_deref() != Some(shipped.as_str());
            if differs && !is_marked(&key) {
                problems.push(format!(
                    "`{key}` is shown as a default, but leaving it out changes the configuration"
                ));
            }
            if !differs && marked.contains(&key) {
                problems.push(format!(
                    "`{key}` is marked changed but is the built-in default"
                ));
            }
        }
        for table in marked.iter().filter(|m| m.ends_with(']')) {
            let (name, index) = table.trim_end_matches(']').rsplit_once('[').unwrap();
            let mut path: Vec<Step> = name.split('.').map(|k| Step::Key(k.into())).collect();
            path.push(Step::Index(index.parse().unwrap()));
            assert_ne!(
                loaded(&without(&file, &path)).as_deref(),
                Some(shipped.as_str()),
                "{table}"
            );
        }
        assert!(problems.is_empty(), "config.toml:\n{}", problems.join("\n"));
    }

    #[test]
    fn a_missing_named_file_is_an_error() {
        let err = Config::load(Some(Path::new("/nonexistent/motcua.toml"))).unwrap_err();
        assert!(
            err.to_string().starts_with("/nonexistent/motcua.toml"),
            "{err}"
        );
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns its own error type
    fn environment_overrides_keys() {
        let _environment = ENVIRONMENT.lock().unwrap_or_else(|e| e.into_inner());
        figment::Jail::expect_with(|jail| {
            jail.create_file("c.toml", "[database]\nurl = \"sqlite://a.db\"\n")?;
            jail.set_env("MOTCUA_DATABASE__URL", "sqlite://b.db");
            jail.set_env("MOTCUA_REPLY__ACCENTS", "false");
            let config = Config::load(Some(Path::new("c.toml"))).unwrap();
            assert_eq!(config.database.url, "sqlite://b.db");
            assert!(!config.reply.accents);
            jail.set_env("MOTCUA_REPLY__ACCENTS", "perhaps");
            let err = Config::load(Some(Path::new("c.toml"))).unwrap_err();
            assert!(err.to_string().contains("MOTCUA_REPLY__ACCENTS"), "{err}");
            Ok(())
        });
    }
}
