//! The per-sender limits kept in Redis, shared by every gateway instance on
//! the same URL and key prefix: one hash per sender
//! (`<prefix><international number>`), updated atomically by the GCRA script
//! `gcra.lua` (run with EVALSHA, loaded again by the client when the server
//! lost it). Time comes from the caller, so in production each gateway's
//! clock decides; keep the gateways' clocks in sync (NTP).

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;

use super::gcra::{Tier, TIERS};
use super::AbuseError;
use crate::db::redact_url;

/// Time allowed to connect to Redis.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Time allowed for one answer: a stalled Redis must not stall replies.
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);
/// Reconnection attempts after the connection dropped.
const RECONNECT_RETRIES: usize = 3;

/// What the script decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Under every limit; charged.
    Allow,
    /// Over a limit.
    Deny {
        /// When every tier allows again (Unix ms).
        retry_at_ms: i64,
        /// This caller won the right to send the notice.
        noticed: bool,
        /// No new notice before then (Unix ms).
        noticed_until_ms: i64,
    },
}

/// See the module documentation.
#[derive(Clone)]
pub(crate) struct RedisLimiter {
    connection: ConnectionManager,
    script: Script,
    prefix: String,
    /// The URL with its password masked, for errors.
    url: String,
}

impl std::fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLimiter")
            .field("url", &self.url)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisLimiter {
    /// Connects and loads the script: fails when Redis cannot be reached.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, AbuseError> {
        let shown = redact_url(url);
        let error = |source| AbuseError::Redis {
            url: shown.clone(),
            source,
        };
        let client = redis::Client::open(url).map_err(error)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(RECONNECT_RETRIES);
        let mut connection = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(error)?;
        let script = Script::new(include_str!("gcra.lua"));
        script.load_async(&mut connection).await.map_err(error)?;
        Ok(RedisLimiter {
            connection,
            script,
            prefix: prefix.to_owned(),
            url: shown,
        })
    }

    /// Runs the limits of `sender` (international digits) at `now_ms`.
    pub async fn decide(
        &self,
        sender: &str,
        tiers: &[Tier; TIERS],
        notice_cooldown_ms: i64,
        now_ms: i64,
    ) -> Result<Outcome, AbuseError> {
        let mut invocation = self.script.key(self.key(sender));
        invocation.arg(now_ms).arg(notice_cooldown_ms);
        for tier in tiers {
            invocation.arg(tier.interval_ms).arg(tier.capacity);
        }
        let mut connection = self.connection.clone();
        let (allowed, retry_at_ms, noticed, noticed_until_ms): (i64, i64, i64, i64) = invocation
            .invoke_async(&mut connection)
            .await
            .map_err(|source| self.error(source))?;
        Ok(if allowed == 1 {
            Outcome::Allow
        } else {
            Outcome::Deny {
                retry_at_ms,
                noticed: noticed == 1,
                noticed_until_ms,
            }
        })
    }

    /// Forgets the sender's state (an admin unblocked it).
    pub async fn forget(&self, sender: &str) -> Result<(), AbuseError> {
        let mut connection = self.connection.clone();
        redis::cmd("DEL")
            .arg(self.key(sender))
            .exec_async(&mut connection)
            .await
            .map_err(|source| self.error(source))
    }

    fn key(&self, sender: &str) -> String {
        format!("{}{sender}", self.prefix)
    }

    fn error(&self, source: redis::RedisError) -> AbuseError {
        AbuseError::Redis {
            url: self.url.clone(),
            source,
        }
    }
}
