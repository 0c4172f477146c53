//! Abuse protection: whether a citizen's message gets an answer.
//!
//! Dossier codes are a date plus a daily counter, so anyone can guess them,
//! and a flood or a loop with another auto-responder could make the gateway
//! send SMS by the thousand. This module owns [`AbuseGuard`], which the
//! gateway asks before every lookup ([`AbuseGuard::check`]) and tells after
//! it ([`AbuseGuard::record_lookup`]), and the `[rate_limit]` settings
//! ([`RateLimitSettings`]). It decides, per sender:
//!
//! * our own service numbers are never answered; senders on the allow list
//!   always are; blocked senders are not;
//! * the same text again and again is an auto-responder loop: silence;
//! * per-sender rate limits (GCRA: `burst` back-to-back at `per_hour`, and
//!   `per_day`): over them, one polite [`Verdict::Notice`] saying when to
//!   try again, then silence — at most one notice per sender per hour;
//! * a sender looking up many unknown or many distinct codes is a scanner
//!   and is blocked for `block_minutes`;
//! * a code looked up by many numbers is flagged to admins ([`CodeFlag`]).
//!
//! Blocks, the allow list and "rate limited until" decisions are kept in the
//! gateway's state database (a SQLite file, or PostgreSQL shared by every
//! gateway on it), read on every check and never cached, so admin changes
//! and another gateway's decisions count from the next message and a restart
//! keeps silencing. With `redis_url` the rate limits themselves live in
//! Redis and are shared by every gateway instance. The rest (GCRA states when Redis is
//! not used, loop and scan history, per-code senders) is per-process memory,
//! bounded: entries are evicted once their window has passed.
//!
//! Every decision takes the time from the caller (`now`), so behaviour is
//! reproducible in tests; phone numbers appear in logs only redacted
//! (`Msisdn`'s `Display`).

mod gcra;
mod memory;
mod redis_limiter;
mod settings;
mod store;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use tracing::{debug, info, warn};

use crate::clock::VIETNAM_UTC_OFFSET_SECS;
use crate::db::StatePool;
use crate::domain::{DossierCode, Msisdn, MsisdnError};

use gcra::Decision;
use memory::{Memory, Trip, MAX_KEYS};
use redis_limiter::{Outcome, RedisLimiter};
use store::Store;

pub use settings::RateLimitSettings;

/// After a notice, no other notice goes to the same sender for this long
/// (or until its `retry_at`, when later).
const NOTICE_COOLDOWN_MS: i64 = 3_600_000;
/// How often, in guard time, expired rows are deleted from the database.
const PURGE_EVERY_MS: i64 = 600_000;
/// At most one warning a minute while Redis fails.
const REDIS_WARN_EVERY_MS: i64 = 60_000;

/// What to do with one incoming message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Answer normally; the sender is not on the allow list, so its
    /// lookups count toward the scan rules
    /// ([`AbuseGuard::record_checked_lookup`]).
    Allow,
    /// Answer normally: the sender is on the allow list (never limited,
    /// blocked or counted).
    Listed,
    /// Over a rate limit for the first time in this window: send ONE polite
    /// notice saying to try after `retry_at`, then silence. A sender gets at
    /// most one notice an hour: going over again within the hour is silence.
    Notice {
        /// When the sender may send again: local Vietnamese time (UTC+7),
        /// rounded up to the second.
        retry_at: NaiveDateTime,
    },
    /// Say nothing: already noticed in this window, a blocked sender, our own
    /// number, an auto-responder loop.
    Silence {
        /// Short and fixed, for logs and metrics: `"own number"`,
        /// `"blocked"`, `"loop"` or `"rate limited"`.
        reason: &'static str,
        /// For `"rate limited"`: when the sender may send again, as in
        /// [`Verdict::Notice`] (a channel that must show something, USSD,
        /// says it); `None` otherwise.
        retry_at: Option<NaiveDateTime>,
    },
}

/// What a lookup's recorder knows of its sender's place on the allow list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listing {
    /// Not known: the list is read.
    Unknown,
    /// Not on it: the message's check just read the list.
    NotListed,
}

/// A dossier code looked up by many different numbers within the scan
/// window: someone may be probing it. Admins are told; nobody is blocked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeFlag {
    /// The code.
    pub code: DossierCode,
    /// Distinct numbers that looked it up within the window.
    pub senders: u32,
}

/// A sender that gets no answer, as the admin console lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The blocked number (its `Display` is redacted).
    pub sender: Msisdn,
    /// When the block ends; `None`: permanent.
    pub until: Option<DateTime<Utc>>,
    /// Why (written by an admin, or the scanner rule that tripped).
    pub reason: String,
    /// When the block was made.
    pub created_at: DateTime<Utc>,
}

/// Why the guard could not start or decide.
#[derive(Debug, thiserror::Error)]
pub enum AbuseError {
    /// A `[rate_limit]` value is out of range.
    #[error("rate_limit.{field}: {problem}")]
    Settings {
        /// The key.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// An entry of `rate_limit.service_numbers` is not a phone number.
    #[error("rate_limit.service_numbers: {number:?} is not a phone number (short codes cannot be senders; list only numbers): {source}")]
    ServiceNumber {
        /// The entry as written.
        number: String,
        /// The cause.
        #[source]
        source: MsisdnError,
    },
    /// The abuse tables are missing: the migrations were not run.
    #[error("the abuse tables are missing or unreadable (run the state database's migrations first: migrations/journal, or migrations/state-postgres on PostgreSQL): {source}")]
    Schema {
        /// The cause.
        #[source]
        source: sqlx::Error,
    },
    /// Redis cannot be reached, or failed a command.
    #[error("Redis at {url}: {source}")]
    Redis {
        /// `rate_limit.redis_url`, its password masked.
        url: String,
        /// The cause.
        #[source]
        source: redis::RedisError,
    },
    /// A query on the abuse tables failed.
    #[error("abuse tables query failed: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored row no longer satisfies the rules it was written with.
    #[error("stored {what} is corrupt: {problem}")]
    Corrupt {
        /// Which table.
        what: &'static str,
        /// What is wrong.
        problem: &'static str,
    },
    /// A time outside what the guard can represent (about ±262,000 years).
    #[error("time {ms} ms since 1970 is out of range")]
    TimeOutOfRange {
        /// Unix milliseconds.
        ms: i64,
    },
}

/// Decides which messages get an answer; see the module documentation.
///
/// Cheap to clone (an `Arc` inside); clones share their state.
#[derive(Clone)]
pub struct AbuseGuard {
    inner: Arc<Inner>,
}

struct Inner {
    /// Replaced whole by [`AbuseGuard::update_limits`] (SIGHUP).
    limits: std::sync::RwLock<settings::Limits>,
    /// Our own numbers, international digits.
    own: HashSet<String>,
    store: Store,
    memory: Mutex<Memory>,
    redis: Option<RedisLimiter>,
    last_purge_ms: AtomicI64,
    last_redis_warning_ms: AtomicI64,
}

impl fmt::Debug for AbuseGuard {
    /// Settings only: the state holds phone numbers.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AbuseGuard")
            .field("limits", &self.limits())
            .field("service_numbers", &self.inner.own.len())
            .field("redis", &self.inner.redis)
            .finish_non_exhaustive()
    }
}

impl AbuseGuard {
    /// Starts the guard on the gateway database's pool
    /// (`db::GatewayDb::pool`, either engine, migrated). Gateways whose
    /// pools are on one PostgreSQL database share their blocks, allow list
    /// and rate-limit decisions.
    ///
    /// Blocks, the allow list and rate-limit decisions are read from the
    /// database at every check; here their tables are only checked. When
    /// `settings.redis_url` is set (and `enabled`), connects to Redis.
    ///
    /// # Errors
    ///
    /// [`AbuseError::Settings`] or [`AbuseError::ServiceNumber`] for bad
    /// settings, [`AbuseError::Schema`] when the tables are missing,
    /// [`AbuseError::Redis`] (with the URL, password masked) when Redis
    /// cannot be reached.
    pub async fn open(
        settings: RateLimitSettings,
        pool: impl Into<StatePool>,
    ) -> Result<Self, AbuseError> {
        let (limits, own) = settings.validate()?;
        let store = Store::open(pool.into()).await?;
        let redis = match &settings.redis_url {
            Some(url) if limits.enabled => {
                Some(RedisLimiter::connect(url, &settings.redis_key_prefix).await?)
            }
            _ => None,
        };
        Ok(AbuseGuard {
            inner: Arc::new(Inner {
                memory: Mutex::new(Memory::new(limits, MAX_KEYS)),
                limits: std::sync::RwLock::new(limits),
                own,
                store,
                redis,
                last_purge_ms: AtomicI64::new(i64::MIN),
                last_redis_warning_ms: AtomicI64::new(i64::MIN),
            }),
        })
    }

    /// The limits in force.
    fn limits(&self) -> settings::Limits {
        *self.inner.limits.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts new `[rate_limit]` values in force for the next message (SIGHUP),
    /// after checking them all. The senders' histories are kept. Our own
    /// numbers and the Redis connection stay as they were at start.
    ///
    /// # Errors
    ///
    /// [`AbuseError::Settings`] naming the first bad value; nothing changes then.
    pub fn update_limits(&self, settings: &RateLimitSettings) -> Result<(), AbuseError> {
        let (limits, _own) = settings.validate()?;
        *self.inner.limits.write().unwrap_or_else(|e| e.into_inner()) = limits;
        self.memory().set_limits(limits);
        Ok(())
    }

    /// Decides whether a message from `sender` gets an answer; call it before
    /// the lookup. `text` is the message (for loop detection), `now` the
    /// current time.
    ///
    /// In order: own number → silence; allow list → allow; blocked →
    /// silence; (when enabled) a loop → silence; silenced for a rate limit →
    /// silence; over a rate limit → the notice, once, then silence.
    ///
    /// If Redis fails during a check, the in-process limiter decides instead
    /// (and a warning is logged at most once a minute).
    ///
    /// # Errors
    ///
    /// [`AbuseError::Database`] when the database fails; the caller chooses
    /// whether to answer anyway.
    pub async fn check(
        &self,
        sender: &Msisdn,
        text: &str,
        now: DateTime<Utc>,
    ) -> Result<Verdict, AbuseError> {
        self.check_inner(sender, Some(text), now).await
    }

    /// As [`AbuseGuard::check`], for a USSD dial: the same lists, blocks
    /// and rate limits, but no auto-responder loop test (a handset dialling
    /// the same code again is a person, not a machine answering machines).
    ///
    /// # Errors
    ///
    /// [`AbuseError::Database`] when the database fails.
    pub async fn check_dial(
        &self,
        sender: &Msisdn,
        now: DateTime<Utc>,
    ) -> Result<Verdict, AbuseError> {
        self.check_inner(sender, None, now).await
    }

    async fn check_inner(
        &self,
        sender: &Msisdn,
        text: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Verdict, AbuseError> {
        let key = sender.as_international();
        if self.inner.own.contains(key) {
            return Ok(Verdict::Silence {
                reason: "own number",
                retry_at: None,
            });
        }
        let now_ms = now.timestamp_millis();
        self.housekeeping(now_ms).await?;
        let state = self.inner.store.sender_state(key, now_ms).await?;
        if state.allowed {
            return Ok(Verdict::Listed);
        }
        if state.blocked {
            return Ok(Verdict::Silence {
                reason: "blocked",
                retry_at: None,
            });
        }
        if !self.limits().enabled {
            return Ok(Verdict::Allow);
        }
        if text.is_some_and(|text| self.memory().is_loop(key, text, now_ms)) {
            debug!(sender = %sender, "auto-responder loop: not answered");
            return Ok(Verdict::Silence {
                reason: "loop",
                retry_at: None,
            });
        }
        if let Some(until) = state.limited_until.filter(|until| *until > now_ms) {
            return Ok(Verdict::Silence {
                reason: "rate limited",
                retry_at: Some(vietnam_local(until)?),
            });
        }
        self.rate_limit(sender, now_ms).await
    }

    /// Records the outcome of a lookup; call it after the lookup of a
    /// well-formed code, with `found` false when no such dossier exists.
    ///
    /// Counts the sender's unknown and distinct codes within the scan
    /// window; when one crosses its threshold the sender is blocked for
    /// `block_minutes` (persisted, logged as a warn event with the number
    /// redacted). Counts the distinct senders of `code`, and returns a
    /// [`CodeFlag`] (also logged as a warn event) the first time they reach
    /// `code_flag_senders` within the window. Allow-listed senders and our
    /// own numbers are not counted; nothing is counted when disabled.
    ///
    /// # Errors
    ///
    /// [`AbuseError::Database`] when the database fails.
    pub async fn record_lookup(
        &self,
        sender: &Msisdn,
        code: &DossierCode,
        found: bool,
        now: DateTime<Utc>,
    ) -> Result<Option<CodeFlag>, AbuseError> {
        self.record_code_lookup(sender, code, found, now, Listing::Unknown)
            .await
    }

    /// As [`AbuseGuard::record_lookup`], for the lookup of a message whose
    /// [`AbuseGuard::check`] just said [`Verdict::Allow`]: the sender is
    /// known not to be on the allow list, so the list is not read again
    /// (one database round trip fewer per message).
    ///
    /// # Errors
    ///
    /// [`AbuseError::Database`] when the database fails.
    pub async fn record_checked_lookup(
        &self,
        sender: &Msisdn,
        code: &DossierCode,
        found: bool,
        now: DateTime<Utc>,
    ) -> Result<Option<CodeFlag>, AbuseError> {
        self.record_code_lookup(sender, code, found, now, Listing::NotListed)
            .await
    }

    async fn record_code_lookup(
        &self,
        sender: &Msisdn,
        code: &DossierCode,
        found: bool,
        now: DateTime<Utc>,
        listing: Listing,
    ) -> Result<Option<CodeFlag>, AbuseError> {
        let senders = self
            .record_lookup_of(sender, code.as_str(), found, now, listing)
            .await?;
        Ok(senders.map(|senders| CodeFlag {
            code: code.clone(),
            senders,
        }))
    }

    /// Records the outcome of a lookup by a code's digits (a USSD keypad
    /// entry), counted like [`AbuseGuard::record_lookup`]: unknown digits
    /// count toward the sender's scan threshold, and the digits toward the
    /// code's distinct senders. Returns how many distinct senders asked for
    /// them the first time that crosses `code_flag_senders`.
    ///
    /// # Errors
    ///
    /// [`AbuseError::Database`] when the database fails.
    pub async fn record_keypad_lookup(
        &self,
        sender: &Msisdn,
        digits: &str,
        found: bool,
        now: DateTime<Utc>,
    ) -> Result<Option<u32>, AbuseError> {
        self.record_lookup_of(sender, digits, found, now, Listing::Unknown)
            .await
    }

    async fn record_lookup_of(
        &self,
        sender: &Msisdn,
        code: &str,
        found: bool,
        now: DateTime<Utc>,
        listing: Listing,
    ) -> Result<Option<u32>, AbuseError> {
        let key = sender.as_international();
        if !self.limits().enabled
            || self.inner.own.contains(key)
            || (listing == Listing::Unknown && self.inner.store.is_allowed(key).await?)
        {
            return Ok(None);
        }
        let now_ms = now.timestamp_millis();
        let (trip, flagged) = {
            let mut memory = self.memory();
            memory.maintain(now_ms);
            (
                memory.record_scan(key, code, found, now_ms),
                memory.record_code(code, key, now_ms),
            )
        };
        if let Some(trip) = trip {
            self.block_scanner(sender, trip, now_ms).await?;
        }
        Ok(flagged.map(|senders| {
            let senders = u32::try_from(senders).unwrap_or(u32::MAX);
            warn!(
                code,
                senders,
                window_minutes = self.limits().scan_window_minutes,
                "dossier code looked up by many numbers: possible probing"
            );
            senders
        }))
    }

    /// Blocks `sender` until `until` (`None`: permanently), replacing any
    /// block it had. Counts from the next message on.
    ///
    /// # Errors
    ///
    /// [`AbuseError::Database`] when the database fails.
    pub async fn block(
        &self,
        sender: &Msisdn,
        until: Option<DateTime<Utc>>,
        reason: &str,
    ) -> Result<(), AbuseError> {
        let until_ms = until.map(|t| t.timestamp_millis());
        self.inner
            .store
            .put_block(
                sender.as_international(),
                until_ms,
                reason,
                Utc::now().timestamp_millis(),
            )
            .await?;
        info!(sender = %sender, until = ?until, reason, "sender blocked by an admin");
        Ok(())
    }

    /// Lifts the sender's block and any rate-limit silence, and forgets its
    /// history (scans, loops, rate state, in Redis too): the next message is
    /// answered.
    ///
    /// # Errors
    ///
    /// [`AbuseError::Database`] when the database fails. A Redis failure is only
    /// logged: the Redis state expires by itself within a day.
    pub async fn unblock(&self, sender: &Msisdn) -> Result<(), AbuseError> {
        let key = sender.as_international();
        self.inner.store.clear_sender(key).await?;
        self.memory().forget_sender(key);
        if let Some(redis) = &self.inner.redis {
            if let Err(error) = redis.forget(key).await {
                warn!(sender = %sender, %error, "unblocked, but its shared rate state could not be cleared");
            }
        }
        info!(sender = %sender, "sender unblocked by an admin");
        Ok(())
    }

    /// Puts `sender` on the allow list: always answered, never rate limited
    /// or blocked.
    ///
    /// # Errors
    ///
    /// [`AbuseError::Database`] when the database fails.
    pub async fn allow(&self, sender: &Msisdn) -> Result<(), AbuseError> {
        self.inner
            .store
            .put_allowed(sender.as_international(), Utc::now().timestamp_millis())
            .await?;
        info!(sender = %sender, "sender added to the allow list");
        Ok(())
    }

    /// Takes `sender` off the allow list.
    ///
    /// # Errors
    ///
    /// [`AbuseError::Database`] when the database fails.
    pub async fn disallow(&self, sender: &Msisdn) -> Result<(), AbuseError> {
        self.inner
            .store
            .delete_allowed(sender.as_international())
            .await?;
        info!(sender = %sender, "sender removed from the allow list");
        Ok(())
    }

    /// The allow list, newest first: each sender and when it was added.
    ///
    /// # Errors
    ///
    /// [`AbuseError::Database`] when the database fails, [`AbuseError::Corrupt`]
    /// for a row that is not a phone number.
    pub async fn allowed(&self) -> Result<Vec<(Msisdn, DateTime<Utc>)>, AbuseError> {
        let rows = self.inner.store.allowed().await?;
        rows.into_iter()
            .map(|(sender, created_at)| {
                Ok((stored_sender(&sender, "allowed sender")?, utc(created_at)?))
            })
            .collect()
    }

    /// Senders silenced now for going over a rate limit, with when their
    /// silence ends (the database's record, which every gateway keeps).
    ///
    /// # Errors
    ///
    /// As [`AbuseGuard::allowed`].
    pub async fn silenced(&self) -> Result<Vec<(Msisdn, DateTime<Utc>)>, AbuseError> {
        let rows = self
            .inner
            .store
            .silenced(Utc::now().timestamp_millis())
            .await?;
        rows.into_iter()
            .map(|(sender, until)| {
                Ok((stored_sender(&sender, "rate-limited sender")?, utc(until)?))
            })
            .collect()
    }

    /// The blocks in force now (by the system clock), newest first, for the
    /// admin console.
    ///
    /// # Errors
    ///
    /// [`AbuseError::Database`] when the database fails, [`AbuseError::Corrupt`]
    /// for a row that is not a valid block.
    pub async fn blocks(&self) -> Result<Vec<Block>, AbuseError> {
        let rows = self
            .inner
            .store
            .blocks(Utc::now().timestamp_millis())
            .await?;
        rows.into_iter()
            .map(|row| {
                let sender = stored_sender(&row.sender, "block")?;
                Ok(Block {
                    sender,
                    until: row.until.map(utc).transpose()?,
                    reason: row.reason,
                    created_at: utc(row.created_at)?,
                })
            })
            .collect()
    }

    /// Runs the rate limits for a sender that is not silenced yet.
    async fn rate_limit(&self, sender: &Msisdn, now_ms: i64) -> Result<Verdict, AbuseError> {
        let key = sender.as_international();
        let (retry_at_ms, shared_notice) = match self.shared_decision(key, now_ms).await {
            Some(Outcome::Allow) => return Ok(Verdict::Allow),
            Some(Outcome::Deny {
                retry_at_ms,
                noticed,
                noticed_until_ms,
            }) => (retry_at_ms, Some((noticed, noticed_until_ms))),
            None => {
                let decision = self.memory().rate(key, now_ms);
                match decision {
                    Decision::Allow => return Ok(Verdict::Allow),
                    Decision::Deny { retry_at_ms } => (retry_at_ms, None),
                }
            }
        };
        let store = &self.inner.store;
        let claimed = match shared_notice {
            // Another gateway sends the notice; remember its window here too.
            Some((false, noticed_until_ms)) => {
                store
                    .extend_limit(key, retry_at_ms, noticed_until_ms)
                    .await?;
                false
            }
            // This gateway's own record has the last word: it survives a
            // restart of Redis and of the gateway.
            _ => {
                let noticed_until = retry_at_ms.max(now_ms.saturating_add(NOTICE_COOLDOWN_MS));
                store
                    .claim_notice(key, retry_at_ms, noticed_until, now_ms)
                    .await?
            }
        };
        if claimed {
            let retry_at = vietnam_local(retry_at_ms)?;
            info!(sender = %sender, %retry_at, "over the rate limit: one notice, then silence");
            Ok(Verdict::Notice { retry_at })
        } else {
            Ok(Verdict::Silence {
                reason: "rate limited",
                retry_at: Some(vietnam_local(retry_at_ms)?),
            })
        }
    }

    /// The Redis limiter's decision, or `None` when there is no Redis or it
    /// failed (the in-process limiter decides then).
    async fn shared_decision(&self, key: &str, now_ms: i64) -> Option<Outcome> {
        let redis = self.inner.redis.as_ref()?;
        match redis
            .decide(key, &self.limits().tiers, NOTICE_COOLDOWN_MS, now_ms)
            .await
        {
            Ok(outcome) => Some(outcome),
            Err(error) => {
                let last = self.inner.last_redis_warning_ms.load(Ordering::Relaxed);
                if now_ms.saturating_sub(last) >= REDIS_WARN_EVERY_MS
                    && self
                        .inner
                        .last_redis_warning_ms
                        .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok()
                {
                    warn!(%error, "shared rate limits unavailable: limiting in this process only");
                }
                None
            }
        }
    }

    async fn block_scanner(
        &self,
        sender: &Msisdn,
        trip: Trip,
        now_ms: i64,
    ) -> Result<(), AbuseError> {
        let key = sender.as_international();
        let limits = self.limits();
        let until_ms = now_ms.saturating_add(limits.block_ms);
        let window = limits.scan_window_minutes;
        let reason = match trip {
            Trip::Misses(n) => format!("{n} unknown dossier codes within {window} min"),
            Trip::Distinct(n) => format!("{n} distinct dossier codes within {window} min"),
        };
        let written = self
            .inner
            .store
            .auto_block(key, until_ms, &reason, now_ms)
            .await?;
        self.memory().forget_scans(key);
        if written {
            let until = utc(until_ms)?;
            warn!(sender = %sender, %until, %reason, "sender blocked as a dossier-code scanner");
        }
        Ok(())
    }

    /// Sweeps memory, and deletes expired rows every ten minutes.
    async fn housekeeping(&self, now_ms: i64) -> Result<(), AbuseError> {
        self.memory().maintain(now_ms);
        let last = self.inner.last_purge_ms.load(Ordering::Relaxed);
        let due = now_ms.abs_diff(last) >= PURGE_EVERY_MS.unsigned_abs();
        if due
            && self
                .inner
                .last_purge_ms
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.inner.store.purge_expired(now_ms).await?;
        }
        Ok(())
    }

    fn memory(&self) -> MutexGuard<'_, Memory> {
        // The state is counters: after a panic elsewhere it is still usable.
        self.inner
            .memory
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Entry counts of the in-memory maps.
    #[cfg(test)]
    fn memory_sizes(&self) -> memory::Sizes {
        self.memory().sizes()
    }
}

fn utc(ms: i64) -> Result<DateTime<Utc>, AbuseError> {
    DateTime::from_timestamp_millis(ms).ok_or(AbuseError::TimeOutOfRange { ms })
}

/// Unix milliseconds as Vietnamese local time, rounded up to the second.
fn vietnam_local(ms: i64) -> Result<NaiveDateTime, AbuseError> {
    let secs = ms.div_euclid(1000) + i64::from(ms.rem_euclid(1000) != 0);
    DateTime::from_timestamp(secs, 0)
        .and_then(|t| {
            t.naive_utc()
                .checked_add_signed(TimeDelta::seconds(VIETNAM_UTC_OFFSET_SECS.into()))
        })
        .ok_or(AbuseError::TimeOutOfRange { ms })
}

/// A sender as the abuse tables store it (international digits).
fn stored_sender(digits: &str, what: &'static str) -> Result<Msisdn, AbuseError> {
    Msisdn::parse(&format!("+{digits}")).map_err(|_| AbuseError::Corrupt {
        what,
        problem: "its sender is not a phone number",
    })
}
