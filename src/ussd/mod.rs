//! USSD: a citizen dials a short code and reads the dossier's status in the
//! same session, free of charge, over SMPP (both roles, see
//! [`crate::smpp::ussd`], through the [`crate::channel`] room) or behind an aggregator's HTTP callback.
//!
//! - [`dial`]: dial strings, the service code, codes typed as digits. Pure.
//! - [`screens`]: the menus and texts from `templates/ussd/`, checked to fit a screen.
//! - [`sessions`]: the bounded table of dialogues waiting for input. Pure.
//! - [`service`]: the dialogue itself (menu → code → status), abuse
//!   control, the journal, the answer-within-2-seconds rule, releases.
//! - [`http`]: the aggregators' callback (`CON …` / `END …`).

pub mod dial;
pub mod http;
pub mod screens;
pub mod service;
pub mod sessions;

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use crate::client_addr::AllowedNet;

pub use service::{Releaser, UssdMetrics, UssdService};

/// `[ussd]` in config.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UssdSettings {
    /// Answer USSD turns (SMPP PDUs carrying `ussd_service_op`); when off,
    /// each USSD dialogue is closed at once with no text.
    pub enabled: bool,
    /// The service code as dialled, e.g. `*8058#`; `*8058*<code>#` looks up at once.
    pub service_code: String,
    /// Keep Vietnamese accents on screens that fit them (UCS-2: 80
    /// characters a screen); a screen that does not fit is sent unaccented
    /// (GSM-7: 182). Off: always unaccented.
    pub accents: bool,
    /// A dialogue waiting for input this long is released.
    pub session_timeout_secs: u64,
    /// Most dialogues waiting for input at once; beyond, the one nearest
    /// its deadline is dropped.
    pub max_sessions: usize,
    /// Most dialogues one phone number keeps waiting for input; a new one
    /// beyond drops that number's oldest (a handset has one USSD session at
    /// a time: the others were left behind).
    pub max_sessions_per_number: usize,
    /// Every turn is answered within this long: a slower lookup gets "try
    /// again later / send an SMS" (USSD centres give up after about 15 s).
    pub answer_within_ms: u64,
    /// Most dossiers offered when several share the digits typed.
    pub max_choices: u32,
    /// Invalid inputs allowed at one step before the dialogue closes with help.
    pub max_attempts: u8,
    /// The aggregators' HTTP callback.
    pub http: UssdHttpSettings,
}

impl Default for UssdSettings {
    fn default() -> Self {
        UssdSettings {
            enabled: true,
            service_code: "*8058#".to_owned(),
            accents: false,
            session_timeout_secs: 60,
            max_sessions: 20_000,
            max_sessions_per_number: 2,
            answer_within_ms: 2_000,
            max_choices: 5,
            max_attempts: 3,
            http: UssdHttpSettings::default(),
        }
    }
}

impl UssdSettings {
    /// [`Self::session_timeout_secs`] as a duration.
    pub fn session_timeout(&self) -> Duration {
        Duration::from_secs(self.session_timeout_secs.max(1))
    }

    /// [`Self::answer_within_ms`] as a duration.
    pub fn answer_within(&self) -> Duration {
        Duration::from_millis(self.answer_within_ms.max(1))
    }

    /// What is wrong with the settings, as (key, problem).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if self.max_sessions_per_number == 0 {
            problems.push((
                "ussd.max_sessions_per_number".into(),
                "must be at least 1".into(),
            ));
        }
        if self.enabled && self.http.enabled {
            problems.extend(crate::trusted_caller::problems(
                "ussd.http",
                self.http.bind,
                &self.http.allow,
                &self.http.secret,
            ));
            if self.http.max_sessions_per_address == 0 {
                problems.push((
                    "ussd.http.max_sessions_per_address".into(),
                    "must be at least 1".into(),
                ));
            }
        }
        problems
    }
}

/// `[ussd.http]`: the callback aggregators POST to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UssdHttpSettings {
    /// Serve the callback.
    pub enabled: bool,
    /// Address to listen on.
    pub bind: SocketAddr,
    /// The path aggregators POST to.
    pub path: String,
    /// Addresses or CIDR networks allowed to call (the aggregator's).
    pub allow: Vec<AllowedNet>,
    /// A shared secret the aggregator sends (the `X-Motcua-Secret` header,
    /// or `?secret=…` in the callback URL); empty: none asked. Required when
    /// `bind` is not a loopback address.
    pub secret: String,
    /// Most dialogues one calling address keeps waiting for input; a new
    /// one beyond drops that address's oldest.
    pub max_sessions_per_address: usize,
    /// `[ussd.http.limits]`: connections, timeouts, body size.
    pub limits: crate::http_server::HttpLimits,
}

impl Default for UssdHttpSettings {
    fn default() -> Self {
        UssdHttpSettings {
            enabled: false,
            bind: SocketAddr::from(([127, 0, 0, 1], 8090)),
            path: "/ussd".to_owned(),
            allow: crate::trusted_caller::loopback(),
            secret: String::new(),
            max_sessions_per_address: 10_000,
            limits: crate::http_server::HttpLimits::default(),
        }
    }
}
