//! `[journal]` in config.toml: where the journal lives, how hard a commit
//! waits for the disk, and the windows its rules use (redelivery, retention,
//! reply expiry, reassembly, retries), with the checks config runs on them.

use std::time::Duration;

use serde::Deserialize;

pub use crate::db::Durability;

/// `[journal]` in config.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JournalSettings {
    /// `sqlite://path/to/journal.db`.
    pub url: String,
    /// `full` (every commit reaches the disk before a message is acknowledged),
    /// `normal` (survives a gateway crash, not a power cut), `off` (benchmarks only).
    pub synchronous: Durability,
    /// A copy of a message (same channel, sender, text and peer reference)
    /// within this many seconds is a redelivery — acknowledged with the
    /// first one's id, not answered again — unless the peer was seen to
    /// read the first one's acknowledgement (then it is a new message).
    pub redelivery_window_secs: u64,
    /// Message texts and phone numbers are erased after this many days;
    /// outcomes and times are kept for statistics.
    pub retention_days: u64,
    /// A reply not handed to its channel within this many seconds of the
    /// message's arrival (its channel never came back, or the gateway was
    /// down) is not sent any more: recorded `expired`, then purged with the
    /// rest. At most `retention_days`.
    pub reply_expiry_secs: u64,
    /// A reply that could not be sent is retried this many times before it is failed.
    pub max_attempts: u32,
    /// A concatenated message still missing parts this many seconds after
    /// its first part arrived is answered from the parts it has.
    pub reassembly_timeout_secs: u64,
}

impl Default for JournalSettings {
    fn default() -> Self {
        JournalSettings {
            url: "sqlite://var/journal.db".to_owned(),
            synchronous: Durability::Full,
            redelivery_window_secs: 600,
            retention_days: 90,
            reply_expiry_secs: 86_400,
            max_attempts: 20,
            reassembly_timeout_secs: 30,
        }
    }
}

impl JournalSettings {
    /// The problems of these settings, as (key, problem).
    pub fn problems(&self) -> Vec<(String, String)> {
        let retention_secs = self.retention_days.saturating_mul(86_400);
        let mut problems = Vec::new();
        if self.reply_expiry_secs == 0 {
            problems.push((
                "journal.reply_expiry_secs".to_owned(),
                "must be at least 1".to_owned(),
            ));
        } else if self.reply_expiry_secs > retention_secs {
            problems.push((
                "journal.reply_expiry_secs".to_owned(),
                format!(
                    "{} s is longer than journal.retention_days ({} days = {retention_secs} s): a waiting reply would outlive the retention",
                    self.reply_expiry_secs, self.retention_days
                ),
            ));
        }
        problems
    }

    /// How long a reply may wait for its channel (`reply_expiry_secs`).
    pub fn reply_expiry(&self) -> Duration {
        Duration::from_secs(self.reply_expiry_secs)
    }
}
