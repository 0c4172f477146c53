//! The sync worker: follows one core's feed into the read model.
//!
//! Bootstrap notes the log head with the snapshot's first page, copies the
//! snapshot page by page (each page stored with the next page's token, so a
//! restart resumes where it stopped), deletes what the snapshot did not
//! list, then follows `GET /v1/changes` from the head, long-polling when
//! caught up. Each batch is applied with the version guard in the same
//! transaction as the cursor it brings us to: a crash loses nothing and
//! replays nothing that could take a status backwards.
//!
//! `410 cursor_expired` starts a new snapshot under the version guard;
//! `410 epoch_changed`, or an answer from another epoch, starts one whose
//! records win whatever their versions (the core's history was reset).
//! While caught up, the digest is compared every `digest_interval_secs`;
//! buckets that differ twice in a row are listed, and the dossiers that
//! differ are re-read from a snapshot scan (or deleted, when the core no
//! longer has them). A core that cannot be reached is retried with
//! exponential backoff and jitter; replies keep coming from the read model,
//! labelled stale past the threshold ([`crate::store::Freshness`]).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::client::{FeedClient, FeedClientError};
use super::{
    changes_of, report_left_out, report_rejected, sleep_unless_shutdown, Backoff, FeedSettings,
    SyncMetrics, Validated,
};
use crate::clock::now_ms;
use crate::feed::{bucket_of, digest, FeedRecord};
use crate::store::{
    ApplyMode, Change, DossierWriter, Freshness, StoreError, SyncCheckpoint, SyncStage, SyncStatus,
};

/// The sync source's name in the store.
pub const SOURCE: &str = "feed";
/// Digest re-check after a first difference (changes may have been in flight).
const DIGEST_RECHECK: Duration = Duration::from_secs(2);

/// What stopped a sync step.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The core's feed failed.
    #[error(transparent)]
    Feed(#[from] FeedClientError),
    /// The read model failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SyncError {
    /// A short kind for metrics.
    fn kind(&self) -> &'static str {
        match self {
            SyncError::Feed(FeedClientError::Unreachable { .. }) => "unreachable",
            SyncError::Feed(FeedClientError::Unauthorized(_)) => "unauthorized",
            SyncError::Feed(FeedClientError::Gone { .. }) => "gone",
            SyncError::Feed(FeedClientError::Status { .. }) => "status",
            SyncError::Feed(FeedClientError::Protocol { .. } | FeedClientError::BadUrl { .. }) => {
                "protocol"
            }
            SyncError::Store(_) => "store",
        }
    }
}

/// Where the follower is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Position {
    /// Copying a snapshot of `generation`.
    Snapshot {
        /// Known after the first page.
        epoch: Option<String>,
        /// The epoch synchronised from before, if any: a snapshot of
        /// another epoch is authoritative.
        previous_epoch: Option<String>,
        head_cursor: Option<String>,
        page_token: Option<String>,
        authoritative: bool,
        generation: i64,
    },
    /// Following the log.
    Streaming {
        epoch: String,
        cursor: String,
        generation: i64,
    },
}

impl Position {
    fn from_status(status: Option<SyncStatus>) -> Position {
        let Some(status) = status else {
            return Position::Snapshot {
                epoch: None,
                previous_epoch: None,
                head_cursor: None,
                page_token: None,
                authoritative: false,
                generation: 1,
            };
        };
        let cp = status.checkpoint;
        match cp.stage {
            SyncStage::Snapshot {
                head_cursor,
                page_token,
                authoritative,
            } => Position::Snapshot {
                epoch: Some(cp.epoch.clone()),
                previous_epoch: Some(cp.epoch),
                head_cursor: Some(head_cursor),
                page_token,
                authoritative,
                generation: cp.generation,
            },
            SyncStage::Streaming { cursor } => Position::Streaming {
                epoch: cp.epoch,
                cursor,
                generation: cp.generation,
            },
        }
    }

    fn generation(&self) -> i64 {
        match self {
            Position::Snapshot { generation, .. } | Position::Streaming { generation, .. } => {
                *generation
            }
        }
    }

    fn epoch(&self) -> Option<&str> {
        match self {
            Position::Snapshot { epoch, .. } => epoch.as_deref(),
            Position::Streaming { epoch, .. } => Some(epoch),
        }
    }

    /// A new snapshot after this position; authoritative when the epoch changed.
    fn resnapshot(&self, epoch_changed: bool) -> Position {
        Position::Snapshot {
            epoch: None,
            previous_epoch: self.epoch().map(str::to_owned),
            head_cursor: None,
            page_token: None,
            authoritative: epoch_changed,
            generation: self.generation() + 1,
        }
    }
}

/// What a step achieved.
enum Progress {
    /// More is available now.
    More,
    /// Caught up with the core.
    CaughtUp,
}

/// The digest comparison's memory between two checks.
struct DigestWatch {
    next_at: Instant,
    /// Buckets that differed at the previous check.
    suspects: Option<BTreeSet<u32>>,
}

/// Follows a core's feed into the read model.
pub struct FeedFollower<S> {
    store: S,
    client: FeedClient,
    settings: FeedSettings,
    freshness: Arc<Freshness>,
    metrics: SyncMetrics,
}

impl<S: DossierWriter> FeedFollower<S> {
    /// A follower of `settings.url` writing into `store`.
    pub fn new(
        store: S,
        settings: FeedSettings,
        freshness: Arc<Freshness>,
        metrics: SyncMetrics,
    ) -> Result<Self, FeedClientError> {
        let client = FeedClient::new(
            &settings.url,
            Some(settings.token.clone()),
            Duration::from_secs(settings.request_timeout_secs.max(1)),
        )?;
        Ok(FeedFollower {
            store,
            client,
            settings,
            freshness,
            metrics,
        })
    }

    /// Follows the feed until `shutdown`. A batch being applied when
    /// `shutdown` comes is rolled back whole, cursor included.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut position = loop {
            match self.store.sync_status(SOURCE).await {
                Ok(status) => {
                    if let Some(ok) = status.as_ref().and_then(|s| s.last_ok_at_ms) {
                        self.freshness.mark_ok(ok);
                    }
                    break Position::from_status(status);
                }
                Err(error) => {
                    error!(%error, "cannot read the sync position; retrying in 5 s");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                    }
                }
            }
        };
        info!(
            feed = %self.client.base(),
            position = ?position,
            "following the core feed"
        );
        if matches!(
            position,
            Position::Snapshot {
                page_token: None,
                ..
            }
        ) {
            self.metrics.snapshot("bootstrap");
        }
        let mut backoff = Backoff::new(Duration::from_secs(self.settings.backoff_max_secs));
        let mut caught_up = false;
        let mut watch = DigestWatch {
            next_at: Instant::now() + self.digest_interval().unwrap_or(Duration::MAX / 4),
            suspects: None,
        };
        while !shutdown.is_cancelled() {
            let step = async {
                if caught_up && self.digest_interval().is_some() && Instant::now() >= watch.next_at
                {
                    self.compare_digest(&mut position, &mut watch).await?;
                }
                self.step(&mut position, caught_up).await
            };
            let outcome = tokio::select! {
                _ = shutdown.cancelled() => break,
                outcome = step => outcome,
            };
            match outcome {
                Ok(progress) => {
                    backoff.reset();
                    caught_up = matches!(progress, Progress::CaughtUp);
                }
                Err(SyncError::Feed(FeedClientError::Gone {
                    epoch_changed,
                    body,
                })) => {
                    let reason = if epoch_changed {
                        "epoch_changed"
                    } else {
                        "cursor_expired"
                    };
                    warn!(reason, core_says = %body.message, "the core cannot continue from our position; taking a new snapshot");
                    self.metrics.snapshot(reason);
                    position = position.resnapshot(epoch_changed);
                    caught_up = false;
                }
                Err(error) => {
                    self.metrics.error(error.kind());
                    let pause = backoff.next_pause();
                    warn!(%error, retry_in_ms = pause.as_millis() as u64, "sync step failed; replies keep coming from the read model");
                    if let Err(store_error) = self
                        .store
                        .note_exchange(SOURCE, now_ms(), Err(&error))
                        .await
                    {
                        debug!(%store_error, "could not note the failure");
                    }
                    if !sleep_unless_shutdown(&shutdown, pause).await {
                        break;
                    }
                    caught_up = false;
                }
            }
        }
        info!("core feed follower stopped");
    }

    fn digest_interval(&self) -> Option<Duration> {
        (self.settings.digest_interval_secs > 0)
            .then(|| Duration::from_secs(self.settings.digest_interval_secs))
    }

    fn succeeded(&self, pending: Option<u64>) {
        let now = now_ms();
        self.freshness.mark_ok(now);
        if let Some(pending) = pending {
            self.metrics
                .pending
                .set(pending.min(i64::MAX as u64) as i64);
        }
    }

    async fn step(&self, position: &mut Position, caught_up: bool) -> Result<Progress, SyncError> {
        match position.clone() {
            Position::Snapshot {
                epoch,
                previous_epoch,
                head_cursor,
                page_token,
                authoritative,
                generation,
            } => {
                let page = self
                    .client
                    .snapshot(page_token.as_deref(), self.settings.snapshot_page)
                    .await?;
                let (epoch, head_cursor, authoritative) = match (epoch, head_cursor) {
                    (Some(epoch), Some(head)) if page_token.is_some() => {
                        if page.epoch != epoch {
                            // The core changed epoch between two pages.
                            *position = position.resnapshot(true);
                            return Ok(Progress::More);
                        }
                        (epoch, head, authoritative)
                    }
                    _ => {
                        let changed = previous_epoch.as_deref().is_some_and(|e| e != page.epoch);
                        info!(
                            epoch = %page.epoch,
                            authoritative = authoritative || changed,
                            generation,
                            "snapshot started"
                        );
                        (
                            page.epoch.clone(),
                            page.head_cursor.clone(),
                            authoritative || changed,
                        )
                    }
                };
                let mode = if authoritative {
                    ApplyMode::Authoritative { generation }
                } else {
                    ApplyMode::Snapshot { generation }
                };
                let Validated {
                    changes,
                    rejected,
                    left_out,
                } = changes_of(&page.records);
                report_rejected(SOURCE, &rejected, &self.metrics);
                report_left_out(SOURCE, &left_out, &self.metrics);
                let snapshot_stage = |token: Option<String>| SyncStage::Snapshot {
                    head_cursor: head_cursor.clone(),
                    page_token: token,
                    authoritative,
                };
                let checkpoint = |stage| SyncCheckpoint {
                    source: SOURCE.to_owned(),
                    epoch: epoch.clone(),
                    stage,
                    generation,
                    pending: None,
                };
                match page.next_page_token {
                    Some(next) => {
                        let report = self
                            .store
                            .apply(
                                &changes,
                                mode,
                                Some(&checkpoint(snapshot_stage(Some(next.clone())))),
                            )
                            .await?;
                        self.metrics.count(&report);
                        self.succeeded(None);
                        *position = Position::Snapshot {
                            epoch: Some(epoch),
                            previous_epoch,
                            head_cursor: Some(head_cursor),
                            page_token: Some(next),
                            authoritative,
                            generation,
                        };
                        Ok(Progress::More)
                    }
                    None => {
                        let report = self
                            .store
                            .apply(
                                &changes,
                                mode,
                                Some(&checkpoint(snapshot_stage(page_token))),
                            )
                            .await?;
                        self.metrics.count(&report);
                        let streaming = checkpoint(SyncStage::Streaming {
                            cursor: head_cursor.clone(),
                        });
                        let deleted = self
                            .store
                            .finish_snapshot(generation, authoritative, &streaming)
                            .await?;
                        self.succeeded(None);
                        info!(
                            epoch = %epoch,
                            generation,
                            deleted_unlisted = deleted,
                            "snapshot complete; following changes from its head"
                        );
                        *position = Position::Streaming {
                            epoch,
                            cursor: head_cursor,
                            generation,
                        };
                        Ok(Progress::More)
                    }
                }
            }
            Position::Streaming {
                epoch,
                cursor,
                generation,
            } => {
                let wait = if caught_up {
                    Duration::from_secs(self.settings.wait_secs)
                } else {
                    Duration::ZERO
                };
                let page = self
                    .client
                    .changes(&cursor, self.settings.batch, wait)
                    .await?;
                if page.epoch != epoch {
                    warn!(ours = %epoch, core = %page.epoch, "the core's epoch changed; taking a new snapshot");
                    self.metrics.snapshot("epoch_changed");
                    *position = position.resnapshot(true);
                    return Ok(Progress::More);
                }
                let Validated {
                    changes,
                    rejected,
                    left_out,
                } = changes_of(&page.records);
                report_rejected(SOURCE, &rejected, &self.metrics);
                report_left_out(SOURCE, &left_out, &self.metrics);
                let pending = page.pending;
                let checkpoint = SyncCheckpoint {
                    source: SOURCE.to_owned(),
                    epoch: epoch.clone(),
                    stage: SyncStage::Streaming {
                        cursor: page.next_cursor.clone(),
                    },
                    generation,
                    pending,
                };
                let report = self
                    .store
                    .apply(&changes, ApplyMode::Guarded, Some(&checkpoint))
                    .await?;
                self.metrics.count(&report);
                self.succeeded(pending);
                if report.altered() > 0 {
                    debug!(
                        written = report.written,
                        deleted = report.deleted,
                        unchanged = report.unchanged,
                        "changes applied"
                    );
                }
                *position = Position::Streaming {
                    epoch,
                    cursor: page.next_cursor,
                    generation,
                };
                Ok(if page.has_more {
                    Progress::More
                } else {
                    Progress::CaughtUp
                })
            }
        }
    }

    /// Compares the core's digest with ours; repairs buckets that differ at
    /// two checks in a row.
    async fn compare_digest(
        &self,
        position: &mut Position,
        watch: &mut DigestWatch,
    ) -> Result<(), SyncError> {
        let Position::Streaming {
            epoch, generation, ..
        } = position.clone()
        else {
            return Ok(());
        };
        let buckets = self.settings.digest_buckets;
        let theirs = self.client.digest(buckets).await?;
        if theirs.epoch != epoch {
            warn!(ours = %epoch, core = %theirs.epoch, "the core's epoch changed; taking a new snapshot");
            self.metrics.snapshot("epoch_changed");
            *position = position.resnapshot(true);
            return Ok(());
        }
        let local = self.store.live_versions().await?;
        let ours = digest(local.iter().map(|(c, v)| (c.as_str(), *v)), buckets);
        let differing: BTreeSet<u32> = ours
            .iter()
            .zip(&theirs.digests)
            .filter(|(a, b)| a.hash != b.hash || a.count != b.count)
            .map(|(a, _)| a.bucket)
            .collect();
        let interval = self.digest_interval().unwrap_or(Duration::MAX / 4);
        if differing.is_empty() {
            debug!(buckets, "digest matches the core");
            watch.suspects = None;
            watch.next_at = Instant::now() + interval;
            return Ok(());
        }
        let confirmed: BTreeSet<u32> = match watch.suspects.take() {
            None => {
                debug!(
                    differing = differing.len(),
                    "digest differs; checking again shortly"
                );
                watch.suspects = Some(differing);
                watch.next_at = Instant::now() + DIGEST_RECHECK;
                return Ok(());
            }
            Some(suspects) => differing.intersection(&suspects).copied().collect(),
        };
        watch.next_at = Instant::now() + interval;
        if confirmed.is_empty() {
            watch.suspects = Some(differing);
            watch.next_at = Instant::now() + DIGEST_RECHECK;
            return Ok(());
        }
        let repaired = self.repair(&confirmed, buckets, &local, generation).await?;
        warn!(
            buckets = confirmed.len(),
            repaired, "read model differed from the core; repaired from the core"
        );
        Ok(())
    }

    /// Brings the dossiers of `buckets` to the core's state.
    async fn repair(
        &self,
        buckets: &BTreeSet<u32>,
        of: u32,
        local: &[(String, i64)],
        generation: i64,
    ) -> Result<u64, SyncError> {
        let ours: HashMap<&str, i64> = local
            .iter()
            .filter(|(code, _)| buckets.contains(&bucket_of(code, of)))
            .map(|(c, v)| (c.as_str(), *v))
            .collect();
        let mut wanted: HashSet<String> = HashSet::new();
        let mut theirs: HashSet<String> = HashSet::new();
        for &bucket in buckets {
            let listing = self.client.digest_bucket(bucket, of).await?;
            for entry in listing.entries {
                if ours.get(entry.code.as_str()) != Some(&entry.version) {
                    wanted.insert(entry.code.clone());
                }
                theirs.insert(entry.code);
            }
        }
        let mut repaired = 0;
        // Dossiers the core no longer has.
        let gone: Vec<Change> = ours
            .iter()
            .filter(|(code, _)| !theirs.contains(**code))
            .filter_map(|(code, version)| {
                crate::domain::DossierCode::parse(code)
                    .ok()
                    .map(|code| Change::Delete {
                        code,
                        version: *version,
                    })
            })
            .collect();
        if !gone.is_empty() {
            let report = self
                .store
                .apply(&gone, ApplyMode::Authoritative { generation }, None)
                .await?;
            repaired += report.altered();
        }
        // Dossiers we lack or hold at another version: read from a snapshot scan.
        let mut token: Option<String> = None;
        while !wanted.is_empty() {
            let page = self
                .client
                .snapshot(token.as_deref(), self.settings.snapshot_page)
                .await?;
            let found: Vec<FeedRecord> = page
                .records
                .into_iter()
                .filter(|r| wanted.remove(&r.code))
                .collect();
            let Validated {
                changes,
                rejected,
                left_out,
            } = changes_of(&found);
            report_rejected(SOURCE, &rejected, &self.metrics);
            report_left_out(SOURCE, &left_out, &self.metrics);
            if !changes.is_empty() {
                let report = self
                    .store
                    .apply(&changes, ApplyMode::Authoritative { generation }, None)
                    .await?;
                repaired += report.altered();
            }
            match page.next_page_token {
                Some(next) => token = Some(next),
                None => break,
            }
        }
        self.metrics.repaired.inc_by(repaired);
        Ok(repaired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_snapshot_takes_the_next_generation_and_remembers_the_epoch() {
        let streaming = Position::Streaming {
            epoch: "e1".into(),
            cursor: "c".into(),
            generation: 3,
        };
        match streaming.resnapshot(true) {
            Position::Snapshot {
                previous_epoch,
                authoritative,
                generation,
                page_token,
                ..
            } => {
                assert_eq!(previous_epoch.as_deref(), Some("e1"));
                assert!(authoritative);
                assert_eq!(generation, 4);
                assert_eq!(page_token, None);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            Position::from_status(None),
            Position::Snapshot {
                epoch: None,
                previous_epoch: None,
                head_cursor: None,
                page_token: None,
                authoritative: false,
                generation: 1
            }
        );
    }
}
