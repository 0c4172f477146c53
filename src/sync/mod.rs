//! Keeping the read model in step with the one-stop core (docs/core-feed.md).
//!
//! - [`client`]: the feed protocol's HTTP client.
//! - [`follower`]: the sync worker, [`follower::FeedFollower`]: bootstrap
//!   from the snapshot, follow the change log, re-snapshot on `410` or a new
//!   epoch, compare digests and repair the buckets that differ, back off
//!   while the core is down. One writer; each batch is stored with its
//!   position in one transaction ([`crate::store::DossierWriter::apply`]).
//! - [`jetstream`]: fan-out over NATS JetStream for several gateways:
//!   `motcua-sms fanout` publishes the core's changes to a stream, and
//!   [`jetstream::follower::JetStreamFollower`] (`sync.mode = "jetstream"`)
//!   follows it with a durable consumer, acking after the local commit.
//! - [`push`]: the webhook a core that cannot be polled POSTs batches to
//!   (HMAC-signed, idempotent through the version guard).
//! - The sync marks [`crate::store::Freshness`] (when the read model was
//!   last known to match the core; past `sync.stale_after_secs` replies say
//!   when their data dates from), which lives beside the store it describes.
//! - [`SyncMetrics`]: what the sync did, for `/metrics`.
//!
//! Records the core sends that fail validation are logged with the reason,
//! counted, and left out; the others of the batch are applied.

pub mod client;
pub mod follower;
pub mod jetstream;
pub mod push;

use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Deserialize;

use crate::domain::DossierCode;
use crate::feed::FeedRecord;
use crate::portal_record::FieldWarning;
use crate::store::{ApplyReport, Change, Freshness};

/// `[sync]`: where the read model's changes come from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncSettings {
    /// `off` (the read model changes only by `motcua-sms import`), `feed`
    /// (follow a core feed over HTTP, `[sync.feed]`), or `jetstream` (follow
    /// the fan-out stream, `[sync.jetstream]`).
    pub mode: SyncMode,
    /// Past this many seconds without a successful exchange with the core,
    /// replies say when their data was last updated. 0: never.
    pub stale_after_secs: u64,
    /// `[sync.feed]`
    pub feed: FeedSettings,
    /// `[sync.jetstream]`
    pub jetstream: JetStreamSettings,
    /// `[sync.push]`
    pub push: PushSettings,
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            mode: SyncMode::Off,
            stale_after_secs: 900,
            feed: FeedSettings::default(),
            jetstream: JetStreamSettings::default(),
            push: PushSettings::default(),
        }
    }
}

impl SyncSettings {
    /// The staleness threshold; `None` when disabled.
    pub fn stale_after(&self) -> Option<Duration> {
        (self.stale_after_secs > 0).then(|| Duration::from_secs(self.stale_after_secs))
    }

    /// Checks values a type cannot: the key at fault and why.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if self.mode == SyncMode::Feed {
            if self.feed.url.trim().is_empty() {
                problems.push((
                    "sync.feed.url".into(),
                    "must name the core feed (http(s)://host:port/) when sync.mode = \"feed\""
                        .into(),
                ));
            } else if let Err(e) =
                client::FeedClient::new(&self.feed.url, None, Duration::from_secs(1))
            {
                problems.push(("sync.feed.url".into(), e.to_string()));
            }
        }
        let limit = crate::feed::MAX_LIMIT;
        if !(1..=limit).contains(&self.feed.batch) {
            problems.push(("sync.feed.batch".into(), format!("must be 1..={limit}")));
        }
        if !(1..=limit).contains(&self.feed.snapshot_page) {
            problems.push((
                "sync.feed.snapshot_page".into(),
                format!("must be 1..={limit}"),
            ));
        }
        if self.feed.wait_secs > crate::feed::MAX_WAIT_SECS {
            problems.push((
                "sync.feed.wait_secs".into(),
                format!("must be at most {}", crate::feed::MAX_WAIT_SECS),
            ));
        }
        if !(1..=crate::feed::MAX_BUCKETS).contains(&self.feed.digest_buckets) {
            problems.push((
                "sync.feed.digest_buckets".into(),
                format!("must be 1..={}", crate::feed::MAX_BUCKETS),
            ));
        }
        if self.feed.backoff_max_secs == 0 {
            problems.push((
                "sync.feed.backoff_max_secs".into(),
                "must be at least 1".into(),
            ));
        }
        if self.mode == SyncMode::Jetstream {
            problems.extend(self.jetstream.problems());
        }
        if self.push.enabled && self.push.secret.len() < 16 {
            problems.push((
                "sync.push.secret".into(),
                "must be at least 16 characters when sync.push.enabled = true".into(),
            ));
        }
        problems
    }
}

/// `sync.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    /// No sync: the read model changes only by import (and push, if enabled).
    #[default]
    Off,
    /// Follow a core feed over HTTP.
    Feed,
    /// Follow the fan-out stream on NATS JetStream (`motcua-sms fanout`).
    Jetstream,
}

/// `[sync.feed]`: the core feed to follow.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeedSettings {
    /// The feed's base URL (`/v1/changes` etc. are appended).
    pub url: String,
    /// The bearer token the core issued to this gateway.
    pub token: String,
    /// Long-poll wait when caught up, seconds (at most 60).
    pub wait_secs: u64,
    /// Changes asked for per request (at most 1000).
    pub batch: usize,
    /// Snapshot records per page (at most 1000).
    pub snapshot_page: usize,
    /// Seconds between digest comparisons (0: never).
    pub digest_interval_secs: u64,
    /// Buckets of the digest.
    pub digest_buckets: u32,
    /// Longest pause between attempts while the core is unreachable, seconds.
    pub backoff_max_secs: u64,
    /// Request timeout for non-long-poll requests, seconds.
    pub request_timeout_secs: u64,
}

impl Default for FeedSettings {
    fn default() -> Self {
        FeedSettings {
            url: String::new(),
            token: String::new(),
            wait_secs: 25,
            batch: 1000,
            snapshot_page: 1000,
            digest_interval_secs: 3600,
            digest_buckets: crate::feed::DEFAULT_BUCKETS,
            backoff_max_secs: 60,
            request_timeout_secs: 30,
        }
    }
}

/// `[sync.jetstream]`: the fan-out stream to follow.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JetStreamSettings {
    /// NATS server(s): `nats://host:port`, several separated by commas.
    pub url: String,
    /// The stream `motcua-sms fanout` publishes to.
    pub stream: String,
    /// The subjects' prefix (`fanout --subject-prefix`).
    pub subject_prefix: String,
    /// This gateway's name, unique among the gateways following the stream
    /// (two gateways sharing a consumer would each miss half the changes).
    pub gateway: String,
    /// The durable consumer's name; empty: `motcua-gw-<gateway>`.
    pub consumer: String,
    /// Messages applied per transaction at most.
    pub batch: usize,
    /// A NATS `.creds` file (JWT + NKey seed); empty: none.
    pub credentials: String,
    /// Longest pause between attempts while NATS is unreachable, seconds.
    pub backoff_max_secs: u64,
}

impl Default for JetStreamSettings {
    fn default() -> Self {
        JetStreamSettings {
            url: "nats://127.0.0.1:4222".into(),
            stream: jetstream::DEFAULT_STREAM.into(),
            subject_prefix: jetstream::DEFAULT_PREFIX.into(),
            gateway: String::new(),
            consumer: String::new(),
            batch: 500,
            credentials: String::new(),
            backoff_max_secs: 30,
        }
    }
}

impl JetStreamSettings {
    /// The durable consumer's name.
    pub fn consumer_name(&self) -> String {
        if self.consumer.is_empty() {
            format!("motcua-gw-{}", self.gateway)
        } else {
            self.consumer.clone()
        }
    }

    fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if let Err(e) = jetstream::check_url(&self.url) {
            problems.push((
                "sync.jetstream.url".into(),
                format!("must be nats://host:port (several separated by commas): {e}"),
            ));
        }
        if !jetstream::is_valid_name(&self.stream) {
            problems.push((
                "sync.jetstream.stream".into(),
                "must be letters, digits, '_' or '-'".into(),
            ));
        }
        if !jetstream::is_valid_prefix(&self.subject_prefix) {
            problems.push((
                "sync.jetstream.subject_prefix".into(),
                "must be dot-separated tokens of letters, digits, '_' or '-'".into(),
            ));
        }
        if self.gateway.is_empty() {
            problems.push((
                "sync.jetstream.gateway".into(),
                "must name this gateway, uniquely among those following the stream, when sync.mode = \"jetstream\"".into(),
            ));
        } else if !jetstream::is_valid_name(&self.consumer_name()) {
            let key = if self.consumer.is_empty() {
                "sync.jetstream.gateway"
            } else {
                "sync.jetstream.consumer"
            };
            problems.push((
                key.into(),
                "must be letters, digits, '_' or '-' (it names the durable consumer)".into(),
            ));
        }
        if !(1..=10_000).contains(&self.batch) {
            problems.push(("sync.jetstream.batch".into(), "must be 1..=10000".into()));
        }
        if self.backoff_max_secs == 0 {
            problems.push((
                "sync.jetstream.backoff_max_secs".into(),
                "must be at least 1".into(),
            ));
        }
        problems
    }
}

/// `[sync.push]`: the webhook for cores that push.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PushSettings {
    /// Accept pushed batches at `POST /v1/push` on the HTTP port.
    pub enabled: bool,
    /// The HMAC-SHA256 key shared with the core (at least 16 characters).
    pub secret: String,
    /// Largest clock difference accepted on a signed timestamp, seconds
    /// (0: the default, 300).
    pub max_skew_secs: u64,
}

impl Default for PushSettings {
    fn default() -> Self {
        PushSettings {
            enabled: false,
            secret: String::new(),
            max_skew_secs: push::DEFAULT_MAX_SKEW_SECS,
        }
    }
}

/// What the sync did, registered under `motcua_sync_*`.
#[derive(Debug, Clone, Default)]
pub struct SyncMetrics {
    /// Changes applied, by outcome (written, deleted, unchanged).
    pub applied: Family<Vec<(String, String)>, Counter>,
    /// Records refused because they fail validation.
    pub rejected: Counter,
    /// Optional fields left out of dossiers that were kept, by field.
    pub left_out: Family<Vec<(String, String)>, Counter>,
    /// Snapshots started, by reason.
    pub snapshots: Family<Vec<(String, String)>, Counter>,
    /// Dossiers corrected by digest repair.
    pub repaired: Counter,
    /// Failed exchanges with the core, by kind.
    pub errors: Family<Vec<(String, String)>, Counter>,
    /// Changes the core said it still had after our position.
    pub pending: Gauge,
    /// Unix time of the last successful exchange with the core.
    pub last_ok_timestamp: Gauge,
    /// Seconds since the last successful exchange (set when scraped).
    pub last_ok_age: Gauge,
    /// 1 while replies are labelled stale.
    pub stale: Gauge,
}

impl SyncMetrics {
    /// Registers every metric in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        let sub = registry.sub_registry_with_prefix("motcua_sync");
        sub.register(
            "changes_applied",
            "Changes from the core applied to the read model, by outcome",
            self.applied.clone(),
        );
        sub.register(
            "records_rejected",
            "Records from the core refused by validation (logged with the reason)",
            self.rejected.clone(),
        );
        sub.register(
            "fields_left_out",
            "Unusable optional fields (a bad SoDienThoai, a date, ...) the dossiers from the core were kept without, by field",
            self.left_out.clone(),
        );
        sub.register(
            "snapshots",
            "Snapshots started, by reason",
            self.snapshots.clone(),
        );
        sub.register(
            "repaired_dossiers",
            "Dossiers corrected after a digest comparison",
            self.repaired.clone(),
        );
        sub.register(
            "errors",
            "Failed exchanges with the core, by kind",
            self.errors.clone(),
        );
        sub.register(
            "pending_changes",
            "Changes the core still had after the applied position (head minus applied)",
            self.pending.clone(),
        );
        sub.register(
            "last_success_timestamp_seconds",
            "Unix time of the last successful exchange with the core",
            self.last_ok_timestamp.clone(),
        );
        sub.register(
            "last_success_age_seconds",
            "Seconds since the last successful exchange with the core",
            self.last_ok_age.clone(),
        );
        sub.register(
            "stale",
            "1 while replies carry the 'last updated' label",
            self.stale.clone(),
        );
    }

    /// Counts an optional field a dossier was kept without.
    pub fn count_left_out(&self, warning: &FieldWarning) {
        self.left_out
            .get_or_create(&vec![("field".to_owned(), warning.field().to_owned())])
            .inc();
    }

    /// Counts a batch's outcome.
    pub fn count(&self, report: &ApplyReport) {
        for (outcome, n) in [
            ("written", report.written),
            ("deleted", report.deleted),
            ("unchanged", report.unchanged),
        ] {
            if n > 0 {
                self.applied
                    .get_or_create(&vec![("outcome".to_owned(), outcome.to_owned())])
                    .inc_by(n);
            }
        }
    }

    /// Counts a failure of `kind`.
    pub fn error(&self, kind: &str) {
        self.errors
            .get_or_create(&vec![("kind".to_owned(), kind.to_owned())])
            .inc();
    }

    /// Counts a snapshot started for `reason`.
    pub fn snapshot(&self, reason: &str) {
        self.snapshots
            .get_or_create(&vec![("reason".to_owned(), reason.to_owned())])
            .inc();
    }

    /// Brings the time-derived gauges up to `now_ms` (before a scrape).
    pub fn refresh(&self, freshness: &Freshness, now_ms: i64) {
        if let Some(last) = freshness.last_ok_ms() {
            self.last_ok_timestamp.set(last / 1000);
            self.last_ok_age
                .set(now_ms.saturating_sub(last).max(0) / 1000);
        }
        self.stale
            .set(i64::from(freshness.stale_as_of(now_ms).is_some()));
    }
}

/// `motcua-sms status`: the read model and every sync source, for people.
#[derive(Debug, Clone)]
pub struct StatusReport {
    dossiers: i64,
    sources: Vec<crate::store::SyncStatus>,
    stale_after: Option<Duration>,
    now_ms: i64,
}

impl StatusReport {
    /// A report at `now_ms`.
    pub fn new(
        dossiers: i64,
        sources: Vec<crate::store::SyncStatus>,
        stale_after: Option<Duration>,
        now_ms: i64,
    ) -> Self {
        StatusReport {
            dossiers,
            sources,
            stale_after,
            now_ms,
        }
    }

    /// The newest successful exchange of any source, ms.
    fn last_ok_ms(&self) -> Option<i64> {
        self.sources.iter().filter_map(|s| s.last_ok_at_ms).max()
    }

    /// True when replies would carry the "last updated" label now.
    pub fn is_stale(&self) -> bool {
        Freshness::new(self.stale_after, self.last_ok_ms())
            .stale_as_of(self.now_ms)
            .is_some()
    }
}

fn age(now_ms: i64, at_ms: Option<i64>) -> String {
    match at_ms {
        None => "never".to_owned(),
        Some(at) => {
            let secs = now_ms.saturating_sub(at).max(0) / 1000;
            let when = crate::clock::in_vietnam(at)
                .map(|t| t.format("%Y-%m-%d %H:%M:%S %:z").to_string())
                .unwrap_or_default();
            format!("{when} ({secs} s ago)")
        }
    }
}

impl std::fmt::Display for StatusReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "read model: {} dossiers", self.dossiers)?;
        if self.sources.is_empty() {
            writeln!(
                f,
                "sync: never ran (sync.mode = \"off\", or not started yet)"
            )?;
        }
        for s in &self.sources {
            let cp = &s.checkpoint;
            writeln!(f, "sync source {}:", cp.source)?;
            writeln!(f, "  epoch:          {}", cp.epoch)?;
            match &cp.stage {
                crate::store::SyncStage::Snapshot {
                    head_cursor,
                    page_token,
                    authoritative,
                } => writeln!(
                    f,
                    "  stage:          snapshot (generation {}, head {head_cursor}, next page {}{})",
                    cp.generation,
                    page_token.as_deref().unwrap_or("first"),
                    if *authoritative { ", authoritative" } else { "" }
                )?,
                crate::store::SyncStage::Streaming { cursor } => writeln!(
                    f,
                    "  stage:          following changes (cursor {cursor}, generation {})",
                    cp.generation
                )?,
            }
            match cp.pending {
                Some(p) => writeln!(
                    f,
                    "  pending:        {p} changes at the core not yet applied"
                )?,
                None => writeln!(f, "  pending:        unknown (the core does not say)")?,
            }
            writeln!(f, "  last success:   {}", age(self.now_ms, s.last_ok_at_ms))?;
            writeln!(
                f,
                "  last change:    {}",
                age(self.now_ms, s.last_applied_at_ms)
            )?;
            writeln!(f, "  changes applied: {}", s.applied_total)?;
            if let Some(error) = &s.last_error {
                writeln!(f, "  last error:     {error}")?;
            }
        }
        match self.stale_after {
            Some(limit) if self.is_stale() => writeln!(
                f,
                "freshness: STALE: no success for more than {} s; replies say when their data was last updated",
                limit.as_secs()
            ),
            Some(limit) => writeln!(f, "freshness: fresh (stale after {} s without success)", limit.as_secs()),
            None => writeln!(f, "freshness: not checked (sync.stale_after_secs = 0)"),
        }
    }
}

/// Pauses between failed exchanges with the core or NATS: from half a
/// second, doubling up to a maximum, each ± 20 % so that many gateways do
/// not retry in step.
#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    const START: Duration = Duration::from_millis(500);

    /// Pauses growing up to `max`.
    pub(crate) fn new(max: Duration) -> Self {
        Backoff {
            next: Self::START,
            max,
        }
    }

    /// After a success: the next failure pauses briefly again.
    pub(crate) fn reset(&mut self) {
        self.next = Self::START;
    }

    /// The pause to take now (jittered); the one after is twice as long.
    pub(crate) fn next_pause(&mut self) -> Duration {
        let pause = jitter(self.next);
        self.next = (self.next * 2).min(self.max);
        pause
    }
}

/// Sleeps `pause`; false when `shutdown` came first.
pub(crate) async fn sleep_unless_shutdown(
    shutdown: &tokio_util::sync::CancellationToken,
    pause: Duration,
) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => false,
        _ = tokio::time::sleep(pause) => true,
    }
}

/// `pause` ± 20 %.
fn jitter(pause: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    let spread = (hasher.finish() % 401) as f64 / 1000.0 - 0.2;
    pause.mul_f64(1.0 + spread)
}

/// A record the core sent that cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedRecord {
    /// `MaHoSo` as sent.
    pub code: String,
    /// Why.
    pub reason: String,
}

/// An optional field a dossier from the core was applied without (or with
/// only part of): the dossier is kept, the field is logged and counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftOutField {
    /// The dossier's canonical code.
    pub code: String,
    /// What was left out and why (its `Display` never shows a number in full).
    pub warning: FieldWarning,
}

/// Feed records validated into changes.
#[derive(Debug, Default)]
pub struct Validated {
    /// The changes to apply, in record order.
    pub changes: Vec<Change>,
    /// The records refused (a required field unusable).
    pub rejected: Vec<RejectedRecord>,
    /// The optional fields the applied dossiers were kept without.
    pub left_out: Vec<LeftOutField>,
}

/// Validates feed records into changes, in order; the invalid ones come
/// back apart, with the reason, and the optional fields left out of valid
/// ones are listed.
pub fn changes_of(records: &[FeedRecord]) -> Validated {
    let mut validated = Validated {
        changes: Vec::with_capacity(records.len()),
        ..Validated::default()
    };
    for record in records {
        let change = if record.deleted {
            DossierCode::parse(&record.code)
                .map(|code| Change::Delete {
                    code,
                    version: record.version,
                })
                .map_err(|e| e.to_string())
        } else {
            match record.to_checked() {
                Ok(Some(checked)) => {
                    let code = checked.dossier.code.to_string();
                    validated
                        .left_out
                        .extend(checked.warnings.into_iter().map(|warning| LeftOutField {
                            code: code.clone(),
                            warning,
                        }));
                    Ok(Change::Upsert(checked.dossier))
                }
                Ok(None) => Err("no dossier in a live record".to_owned()),
                Err(e) => Err(e.to_string()),
            }
        };
        match change {
            Ok(change) if change.version() >= 1 => validated.changes.push(change),
            Ok(_) => validated.rejected.push(RejectedRecord {
                code: record.code.clone(),
                reason: format!("version {} is below 1", record.version),
            }),
            Err(reason) => validated.rejected.push(RejectedRecord {
                code: record.code.chars().take(64).collect(),
                reason,
            }),
        }
    }
    validated
}

/// Logs and counts `rejected` records from `source`.
pub(crate) fn report_rejected(source: &str, rejected: &[RejectedRecord], metrics: &SyncMetrics) {
    for record in rejected {
        tracing::error!(
            source,
            dossier = %crate::privacy::mask_numbers_in(&record.code),
            reason = %record.reason,
            "record from the core refused; the rest of its batch is applied"
        );
        metrics.rejected.inc();
    }
}

/// Logs (at WARN, numbers redacted) and counts the optional fields
/// dossiers from `source` were kept without.
pub(crate) fn report_left_out(source: &str, left_out: &[LeftOutField], metrics: &SyncMetrics) {
    for field in left_out {
        log_left_out(source, &field.code, &field.warning);
        metrics.count_left_out(&field.warning);
    }
}

/// The log line for a dossier kept without an unusable optional field
/// (every path in: import, feed, push, JetStream).
pub fn log_left_out(source: &str, code: &str, warning: &FieldWarning) {
    tracing::warn!(
        source,
        dossier = %code,
        field = warning.field(),
        problem = %warning,
        "dossier kept without an unusable field"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_a_fifth() {
        for _ in 0..100 {
            let j = jitter(Duration::from_secs(10));
            assert!(
                j >= Duration::from_secs(8) && j <= Duration::from_secs(12),
                "{j:?}"
            );
        }
    }

    #[test]
    fn backoff_doubles_up_to_its_maximum_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(2));
        let pauses: Vec<Duration> = (0..4).map(|_| b.next_pause()).collect();
        let within = |d: Duration, base_ms: u64| {
            d >= Duration::from_millis(base_ms * 8 / 10)
                && d <= Duration::from_millis(base_ms * 12 / 10)
        };
        assert!(
            within(pauses[0], 500) && within(pauses[1], 1000),
            "{pauses:?}"
        );
        assert!(
            within(pauses[2], 2000) && within(pauses[3], 2000),
            "{pauses:?}"
        );
        b.reset();
        assert!(within(b.next_pause(), 500));
    }

    #[test]
    fn invalid_records_are_set_apart_with_their_reason() {
        let records: Vec<FeedRecord> = serde_json::from_str(
            r#"[{"MaHoSo":"000.00.12.H58-240315-0007","TrangThaiHoSo":4,"version":2},
                {"MaHoSo":"000.00.12.H58-240315-0008","TrangThaiHoSo":42,"version":2},
                {"MaHoSo":"not a code","version":3,"deleted":true},
                {"MaHoSo":"000.00.12.H58-240315-0009","version":3,"deleted":true},
                {"MaHoSo":"000.00.12.H58-240315-0010","TrangThaiHoSo":4,"version":0}]"#,
        )
        .unwrap();
        let Validated {
            changes, rejected, ..
        } = changes_of(&records);
        assert_eq!(changes.len(), 2);
        assert!(matches!(changes[1], Change::Delete { version: 3, .. }));
        assert_eq!(
            rejected.iter().map(|r| r.code.as_str()).collect::<Vec<_>>(),
            vec![
                "000.00.12.H58-240315-0008",
                "not a code",
                "000.00.12.H58-240315-0010"
            ]
        );
        assert!(
            rejected[0].reason.contains("TrangThaiHoSo"),
            "{:?}",
            rejected[0]
        );
    }

    #[test]
    fn a_record_with_an_unusable_phone_is_applied_without_it_and_counted() {
        let records: Vec<FeedRecord> = serde_json::from_str(
            r#"[{"MaHoSo":"000.00.12.H58-240315-0007","TrangThaiHoSo":4,"version":2,
                 "SoDienThoai":"0273 123 45","NgayHenTra":"29/03/2024"}]"#,
        )
        .unwrap();
        let validated = changes_of(&records);
        assert!(validated.rejected.is_empty(), "{:?}", validated.rejected);
        let [Change::Upsert(dossier)] = validated.changes.as_slice() else {
            panic!("{:?}", validated.changes);
        };
        assert_eq!(dossier.owner_phone, None);
        assert_eq!(dossier.appointment_at, None);
        let fields: Vec<&str> = validated
            .left_out
            .iter()
            .map(|f| f.warning.field())
            .collect();
        assert_eq!(fields, ["NgayHenTra", "SoDienThoai"]);
        assert_eq!(validated.left_out[0].code, "000.00.12.H58-240315-0007");
        let metrics = SyncMetrics::default();
        report_left_out("feed", &validated.left_out, &metrics);
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains(r#"motcua_sync_fields_left_out_total{field="SoDienThoai"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn settings_problems_name_their_keys() {
        let mut s = SyncSettings {
            mode: SyncMode::Feed,
            ..SyncSettings::default()
        };
        s.feed.batch = 0;
        s.push.enabled = true;
        let keys: Vec<String> = s.problems().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            vec!["sync.feed.url", "sync.feed.batch", "sync.push.secret"]
        );
        s.feed.url = "http://127.0.0.1:8091".into();
        s.feed.batch = 10;
        s.push.secret = "0123456789abcdef".into();
        assert!(s.problems().is_empty());
    }

    #[test]
    fn jetstream_settings_need_a_gateway_name_and_usable_names() {
        let mut s = SyncSettings {
            mode: SyncMode::Jetstream,
            ..SyncSettings::default()
        };
        let keys = |s: &SyncSettings| -> Vec<String> {
            s.problems().into_iter().map(|(k, _)| k).collect()
        };
        assert_eq!(keys(&s), vec!["sync.jetstream.gateway"]);
        s.jetstream.gateway = "hcm-1".into();
        assert!(s.problems().is_empty());
        assert_eq!(s.jetstream.consumer_name(), "motcua-gw-hcm-1");
        s.jetstream.url = "http://x".into();
        s.jetstream.stream = "a.b".into();
        s.jetstream.consumer = "with space".into();
        s.jetstream.batch = 0;
        assert_eq!(
            keys(&s),
            vec![
                "sync.jetstream.url",
                "sync.jetstream.stream",
                "sync.jetstream.consumer",
                "sync.jetstream.batch"
            ]
        );
    }
}
