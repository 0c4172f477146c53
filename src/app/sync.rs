//! The sync side of the wiring: how fresh the read model is, the sync
//! metrics, the follower of the configured `sync.mode` (the core feed or
//! NATS JetStream), and the push webhook the operations port serves.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::StartError;
use crate::config::Config;
use crate::store::{DossierWriter, Freshness, ReadModel};
use crate::sync::follower::FeedFollower;
use crate::sync::jetstream::follower::JetStreamFollower;
use crate::sync::push::PushEndpoint;
use crate::sync::{SyncMetrics, SyncMode};

/// Freshness and metrics, shared with the responders and the ports.
pub(super) struct SyncState {
    /// How fresh the read model is ("last updated", staleness).
    pub freshness: Arc<Freshness>,
    /// `motcua_sync_*`.
    pub metrics: SyncMetrics,
}

/// The follower `sync.mode` asks for, if any.
pub(super) struct Followers {
    feed: Option<FeedFollower<ReadModel>>,
    jetstream: Option<JetStreamFollower<ReadModel>>,
}

/// The freshness (from the last successful sync, when any sync runs), the
/// metrics and the follower of `config.sync`.
pub(super) async fn build(
    config: &Config,
    store: &ReadModel,
) -> Result<(SyncState, Followers), StartError> {
    let syncing = config.sync.mode != SyncMode::Off || config.sync.push.enabled;
    let freshness = Arc::new(if syncing {
        let last_ok = store
            .all_sync_status()
            .await?
            .iter()
            .filter_map(|s| s.last_ok_at_ms)
            .max();
        Freshness::new(config.sync.stale_after(), last_ok)
    } else {
        Freshness::always_fresh()
    });
    let metrics = SyncMetrics::default();
    let feed = match config.sync.mode {
        SyncMode::Off | SyncMode::Jetstream => None,
        SyncMode::Feed => Some(FeedFollower::new(
            store.clone(),
            config.sync.feed.clone(),
            freshness.clone(),
            metrics.clone(),
        )?),
    };
    let jetstream = (config.sync.mode == SyncMode::Jetstream).then(|| {
        JetStreamFollower::new(
            store.clone(),
            config.sync.jetstream.clone(),
            freshness.clone(),
            metrics.clone(),
        )
    });
    Ok((
        SyncState { freshness, metrics },
        Followers { feed, jetstream },
    ))
}

impl SyncState {
    /// The push webhook's routes, when `sync.push` is enabled.
    pub(super) fn push_router(&self, config: &Config, store: &ReadModel) -> Option<axum::Router> {
        config.sync.push.enabled.then(|| {
            PushEndpoint::new(
                store.clone(),
                &config.sync.push,
                self.freshness.clone(),
                self.metrics.clone(),
            )
            .router()
        })
    }
}

impl Followers {
    /// Runs the follower in `tasks` until `stop`.
    pub(super) fn spawn(self, tasks: &TaskTracker, stop: &CancellationToken) {
        if let Some(feed) = self.feed {
            tasks.spawn(feed.run(stop.clone()));
        }
        if let Some(jetstream) = self.jetstream {
            tasks.spawn(jetstream.run(stop.clone()));
        }
    }
}

/// The sync mode as the console shows it.
pub(super) fn mode_label(config: &Config) -> String {
    let mode = match config.sync.mode {
        SyncMode::Off => "off",
        SyncMode::Feed => "feed",
        SyncMode::Jetstream => "jetstream",
    };
    if config.sync.push.enabled {
        format!("{mode}+push")
    } else {
        mode.to_owned()
    }
}
