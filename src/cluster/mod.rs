//! The gateways that share one state database, as a cluster of nodes: who
//! is alive, who answers which message, and who takes over a node that
//! stopped. On a SQLite state database there is one node (the file is one
//! host's); on PostgreSQL any number.
//!
//! Each node has a name (`[cluster] node`, the host's name by default) and
//! a row in `nodes` holding its *incarnation* and a *lease* it renews by
//! heartbeat (every fifth of `lease_ms`). Lease times are the database's
//! clock, so the nodes' own clocks need not agree.
//!
//! - A message is answered by the node in its `messages.node`: the one that
//!   recorded it.
//! - When a node's lease lapses (killed, frozen, cut off from the database),
//!   the first other node to notice takes it over in one transaction: the
//!   row's state becomes `taken` and its incarnation is bumped (only one
//!   taker can match), and its messages still waiting for an answer (no
//!   reply yet, or a reply still queued, received within the takeover
//!   window) move to the taker.
//! - A node sends only while its lease holds by its *own* monotonic clock
//!   ([`Lease::may_send`]): the deadline is counted from before the
//!   heartbeat that set the lease, less a margin, so it always ends before
//!   the lease the others see. A frozen node (SIGSTOP) that wakes finds its
//!   deadline passed before it can send anything, and its next heartbeat,
//!   which names its incarnation, matches nothing: it learns it was taken
//!   over ([`Lease::taken_over`]), forgets what it held in memory, and joins
//!   again with a new incarnation.
//! - A node that stops cleanly marks itself `stopped` with its lease ended,
//!   so the others take over at once whatever it could not finish.
//! - Each heartbeat also publishes the node's channels (links and modems)
//!   for the console of every node.

mod settings;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::Row;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::clock::now_ms;
use crate::db::StatePool;
use crate::on_state_pool;

pub use settings::{ClusterSettings, NodeName, NodeNameError};

/// Cluster failures.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The state database refused or failed a cluster query.
    #[error("cluster membership query failed: {0}")]
    Sql(#[from] sqlx::Error),
    /// Another live gateway has this node's name.
    #[error(
        "node name `{node}` is held by a live gateway (its lease ends in {remaining_ms} ms and \
         it keeps renewing it): give each gateway its own `cluster.node`"
    )]
    NameInUse {
        /// The name.
        node: String,
        /// How long the other's lease still runs.
        remaining_ms: i64,
    },
}

/// This node's right to send, as the outbox and the channels read it.
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct Lease {
    inner: Arc<LeaseInner>,
}

#[derive(Debug)]
struct LeaseInner {
    node: NodeName,
    /// The origin of `deadline_ms`.
    base: Instant,
    /// Milliseconds after `base` until which this node may send.
    deadline_ms: AtomicU64,
    incarnation: AtomicI64,
    /// Another node's lease held at the last heartbeat.
    others_alive: std::sync::atomic::AtomicBool,
    /// Counts the times another node took this one over.
    taken_over: watch::Sender<u64>,
}

impl Lease {
    fn new(node: NodeName, incarnation: i64) -> Lease {
        Lease {
            inner: Arc::new(LeaseInner {
                node,
                base: Instant::now(),
                deadline_ms: AtomicU64::new(0),
                incarnation: AtomicI64::new(incarnation),
                others_alive: std::sync::atomic::AtomicBool::new(true),
                taken_over: watch::Sender::new(0),
            }),
        }
    }

    /// This node's name.
    pub fn node(&self) -> &NodeName {
        &self.inner.node
    }

    /// The incarnation this process holds.
    pub fn incarnation(&self) -> i64 {
        self.inner.incarnation.load(Ordering::Acquire)
    }

    /// Whether this node may hand a reply to a channel now: its lease,
    /// counted on its own monotonic clock from before the heartbeat that
    /// set it, has not run out.
    pub fn may_send(&self) -> bool {
        let elapsed = self.inner.base.elapsed().as_millis() as u64;
        elapsed < self.inner.deadline_ms.load(Ordering::Acquire)
    }

    /// Whether another node's lease held at this node's last heartbeat
    /// (true until the first heartbeat says otherwise): when none did, no
    /// other node holds messages this node's replies must wait for.
    pub fn others_alive(&self) -> bool {
        self.inner.others_alive.load(Ordering::Acquire)
    }

    /// Changes each time another node took this one over: whatever this
    /// process held in memory to send is no longer its to send.
    pub fn taken_over(&self) -> watch::Receiver<u64> {
        self.inner.taken_over.subscribe()
    }

    fn extend(&self, from: Instant, by: Duration) {
        let until = from.saturating_duration_since(self.inner.base) + by;
        self.inner
            .deadline_ms
            .store(until.as_millis() as u64, Ordering::Release);
    }

    fn revoke(&self) {
        self.inner.deadline_ms.store(0, Ordering::Release);
    }
}

/// One node that another took over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Takeover {
    /// The node taken over.
    pub node: String,
    /// Its messages that moved to this node (without a reply, or with one
    /// still queued), by id.
    pub message_ids: Vec<i64>,
}

/// A node as the `nodes` table shows it, for the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRow {
    /// Its name.
    pub name: String,
    /// `live`, `stopped` or `taken`.
    pub state: String,
    /// Its incarnation.
    pub incarnation: i64,
    /// When it started (Unix ms).
    pub started_at: i64,
    /// Its last heartbeat (the database's clock, Unix ms).
    pub heartbeat_at: i64,
    /// Its lease's end.
    pub lease_until: i64,
    /// The node that took it over, if one did.
    pub taken_by: Option<String>,
    /// Its channels as it last published them (JSON).
    pub channels: String,
    /// Whether its lease holds now by the database's clock.
    pub alive: bool,
}

/// This gateway's membership: joins, renews its lease, takes over lapsed
/// nodes, leaves. See the module's documentation.
pub struct Membership {
    pool: StatePool,
    lease: Lease,
    lease_length: Duration,
    takeover_window: Duration,
}

/// How much earlier than its lease a node stops sending: a fifth.
fn margin(lease_length: Duration) -> Duration {
    lease_length / 5
}

impl Membership {
    /// Joins the cluster as `node`: a new row, or the node's own row with
    /// its incarnation bumped. On PostgreSQL, when the row's lease still
    /// holds (the same name on a live gateway, or this node's previous
    /// process killed a moment ago) it waits for the lease to lapse, up to
    /// two lease lengths, then refuses. A SQLite file is one host's: the
    /// row is taken at once (the previous process is gone). Messages recorded before clustering (node
    /// `''`) become this node's. `takeover_window` bounds which messages
    /// move in a takeover (older ones have expired anyway).
    pub async fn join(
        pool: StatePool,
        node: NodeName,
        lease_length: Duration,
        takeover_window: Duration,
    ) -> Result<Membership, ClusterError> {
        let give_up = Instant::now() + lease_length * 2;
        let shared = i64::from(matches!(pool, StatePool::Postgres(_)));
        loop {
            let started = Instant::now();
            let now = database_now(&pool).await?;
            let lease_until = now + lease_length.as_millis() as i64;
            let joined: Option<i64> = on_state_pool!(&pool, p => sqlx::query_scalar(
                "INSERT INTO nodes (name, incarnation, state, started_at, heartbeat_at, lease_until) \
                 VALUES ($1, 1, 'live', $2, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET incarnation = nodes.incarnation + 1, \
                     state = 'live', started_at = $2, heartbeat_at = $2, lease_until = $3, \
                     taken_by = NULL, taken_at = NULL, channels = '{}' \
                 WHERE nodes.state <> 'live' OR nodes.lease_until < $2 OR $4 = 0 \
                 RETURNING incarnation",
            )
            .bind(node.as_str())
            .bind(now)
            .bind(lease_until)
            .bind(shared)
            .fetch_optional(p)
            .await?);
            if let Some(incarnation) = joined {
                let lease = Lease::new(node.clone(), incarnation);
                lease.extend(started, lease_length - margin(lease_length));
                // On a shared database, what waits for an answer among the
                // messages recorded before clustering (a copied SQLite
                // journal) is this node's. A SQLite file's messages are all
                // its one node's already ('').
                let adopted = match &pool {
                    StatePool::Postgres(p) => sqlx::query(
                        "UPDATE messages SET node = $1 WHERE node = '' AND received_at >= $2 \
                         AND purged = 0 AND NOT EXISTS (SELECT 1 FROM replies r \
                             WHERE r.message_id = messages.id AND r.state <> 'queued')",
                    )
                    .bind(node.as_str())
                    .bind(now - takeover_window.as_millis() as i64)
                    .execute(p)
                    .await?
                    .rows_affected(),
                    StatePool::Sqlite(_) => 0,
                };
                info!(
                    node = %node,
                    incarnation,
                    engine = pool.engine(),
                    adopted_messages = adopted,
                    "joined the cluster"
                );
                return Ok(Membership {
                    pool,
                    lease,
                    lease_length,
                    takeover_window,
                });
            }
            let remaining = on_state_pool!(&pool, p => sqlx::query_scalar::<_, i64>(
                "SELECT lease_until FROM nodes WHERE name = $1",
            )
            .bind(node.as_str())
            .fetch_one(p)
            .await?)
                - now;
            if Instant::now() >= give_up {
                return Err(ClusterError::NameInUse {
                    node: node.to_string(),
                    remaining_ms: remaining.max(0),
                });
            }
            info!(
                node = %node,
                remaining_ms = remaining,
                "waiting for this node name's lease to lapse (a previous process, or another gateway with the same name)"
            );
            let wait = Duration::from_millis(remaining.clamp(50, 500) as u64);
            tokio::time::sleep(wait).await;
        }
    }

    /// This node's lease, for the outbox and the channels.
    pub fn lease(&self) -> Lease {
        self.lease.clone()
    }

    /// Renews the lease and publishes `channels` (JSON). Returns false when
    /// the row no longer holds this incarnation (another node took this one
    /// over): the lease is revoked and [`Lease::taken_over`] changes; the
    /// caller joins again.
    pub async fn heartbeat(&self, channels: &str) -> Result<bool, ClusterError> {
        let started = Instant::now();
        let now = database_now(&self.pool).await?;
        let renewed = on_state_pool!(&self.pool, p => sqlx::query(
            "UPDATE nodes SET heartbeat_at = $1, lease_until = $2, channels = $3 \
             WHERE name = $4 AND incarnation = $5 AND state = 'live'",
        )
        .bind(now)
        .bind(now + self.lease_length.as_millis() as i64)
        .bind(channels)
        .bind(self.lease.node().as_str())
        .bind(self.lease.incarnation())
        .execute(p)
        .await?
        .rows_affected())
            == 1;
        if renewed {
            self.lease
                .extend(started, self.lease_length - margin(self.lease_length));
            let others: bool = on_state_pool!(&self.pool, p => sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM nodes WHERE name <> $1 AND state = 'live' \
                 AND lease_until >= $2)",
            )
            .bind(self.lease.node().as_str())
            .bind(now)
            .fetch_one(p)
            .await?);
            self.lease
                .inner
                .others_alive
                .store(others, Ordering::Release);
        } else {
            self.lease.revoke();
            self.lease.inner.taken_over.send_modify(|count| *count += 1);
            warn!(
                node = %self.lease.node(),
                incarnation = self.lease.incarnation(),
                "another node took this one over (its lease had lapsed): what it held is no longer its to send"
            );
        }
        Ok(renewed)
    }

    /// Joins again after a takeover, with a new incarnation.
    pub(crate) async fn rejoin(&self) -> Result<(), ClusterError> {
        let started = Instant::now();
        let now = database_now(&self.pool).await?;
        let incarnation: Option<i64> = on_state_pool!(&self.pool, p => sqlx::query_scalar(
            "UPDATE nodes SET incarnation = incarnation + 1, state = 'live', started_at = $1, \
                 heartbeat_at = $1, lease_until = $2, taken_by = NULL, taken_at = NULL \
             WHERE name = $3 AND state <> 'live' RETURNING incarnation",
        )
        .bind(now)
        .bind(now + self.lease_length.as_millis() as i64)
        .bind(self.lease.node().as_str())
        .fetch_optional(p)
        .await?);
        if let Some(incarnation) = incarnation {
            self.lease
                .inner
                .incarnation
                .store(incarnation, Ordering::Release);
            self.lease
                .extend(started, self.lease_length - margin(self.lease_length));
            info!(node = %self.lease.node(), incarnation, "joined the cluster again");
        }
        Ok(())
    }

    /// Takes over every other node whose lease lapsed (or that stopped and
    /// was not yet taken over): in one transaction, marks it taken (bumping
    /// its incarnation, so only one taker matches) and moves its messages
    /// still waiting for an answer to this node.
    pub async fn take_over_lapsed(&self) -> Result<Vec<Takeover>, ClusterError> {
        let now = database_now(&self.pool).await?;
        let since = now - self.takeover_window.as_millis() as i64;
        let me = self.lease.node().as_str();
        let taken = on_state_pool!(&self.pool, p => {
            let mut tx = p.begin().await?;
            let names: Vec<String> = sqlx::query_scalar(
                "UPDATE nodes SET incarnation = incarnation + 1, taken_by = $1, taken_at = $2, \
                     state = CASE WHEN state = 'live' THEN 'taken' ELSE state END \
                 WHERE name <> $1 AND ((state = 'live' AND lease_until < $2) \
                     OR (state = 'stopped' AND taken_at IS NULL)) \
                 RETURNING name",
            )
            .bind(me)
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
            let mut taken = Vec::with_capacity(names.len());
            for name in names {
                let mut moved: Vec<i64> = sqlx::query_scalar(
                    "UPDATE messages SET node = $1 WHERE node = $2 AND received_at >= $3 \
                     AND purged = 0 AND NOT EXISTS (SELECT 1 FROM replies r \
                         WHERE r.message_id = messages.id AND r.state <> 'queued') \
                     RETURNING id",
                )
                .bind(me)
                .bind(&name)
                .bind(since)
                .fetch_all(&mut *tx)
                .await?;
                moved.sort_unstable();
                taken.push(Takeover { node: name, message_ids: moved });
            }
            tx.commit().await?;
            taken
        });
        for takeover in &taken {
            warn!(
                node = %me,
                taken_node = %takeover.node,
                messages = takeover.message_ids.len(),
                "took over a node whose lease lapsed or that stopped: its waiting messages are answered here"
            );
        }
        Ok(taken)
    }

    /// Leaves the cluster: this node's lease ends now and its state is
    /// `stopped`, so another node takes over at once whatever is left.
    pub async fn leave(&self) -> Result<(), ClusterError> {
        self.lease.revoke();
        let now = database_now(&self.pool).await?;
        on_state_pool!(&self.pool, p => sqlx::query(
            "UPDATE nodes SET state = 'stopped', lease_until = $1, heartbeat_at = $1 \
             WHERE name = $2 AND incarnation = $3 AND state = 'live'",
        )
        .bind(now)
        .bind(self.lease.node().as_str())
        .bind(self.lease.incarnation())
        .execute(p)
        .await
        .map(|_| ())?);
        info!(node = %self.lease.node(), "left the cluster");
        Ok(())
    }

    /// Heartbeats every fifth of the lease, publishing what `channels`
    /// returns, takes over lapsed nodes (calling `took_over` with what moved,
    /// so the outbox looks at it at once), and leaves on `shutdown`.
    pub async fn run(
        self,
        shutdown: CancellationToken,
        channels: impl Fn() -> String + Send,
        took_over: impl Fn(&[Takeover]) + Send,
    ) {
        let mut ticker = tokio::time::interval(self.lease_length / 5);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = ticker.tick() => {}
            }
            match self.heartbeat(&channels()).await {
                Ok(true) => {}
                Ok(false) => {
                    if let Err(error) = self.rejoin().await {
                        warn!(%error, "cannot join the cluster again; retrying at the next heartbeat");
                    }
                }
                Err(error) => {
                    warn!(%error, "heartbeat failed: this node stops sending when its lease runs out");
                    continue;
                }
            }
            match self.take_over_lapsed().await {
                Ok(taken) if !taken.is_empty() => took_over(&taken),
                Ok(_) => {}
                Err(error) => warn!(%error, "takeover check failed"),
            }
        }
        if let Err(error) = self.leave().await {
            warn!(%error, "cannot mark this node stopped: the others take over when its lease lapses");
        }
    }
}

/// Moves to this node the messages of `channel` — a listener peer's, now
/// bound here — that wait for an answer (no reply yet, or a reply still
/// queued, received within `window`) on another node where that peer is
/// not bound: as its heartbeat last published, or because that node is not
/// alive. A listener peer's waiting replies thus go to whichever node it
/// binds to next. Returns the ids moved, oldest first; nothing while this
/// node's own lease does not hold.
pub async fn claim_channel(
    pool: &StatePool,
    lease: &Lease,
    channel: &str,
    window: Duration,
) -> Result<Vec<i64>, ClusterError> {
    if !lease.may_send() {
        return Ok(Vec::new());
    }
    let since = database_now(pool).await? - window.as_millis() as i64;
    let me = lease.node().as_str();
    let mut claimed = Vec::new();
    for node in nodes(pool).await? {
        if node.name == me || (node.alive && publishes_open(&node.channels, channel)) {
            continue;
        }
        let ids: Vec<i64> = on_state_pool!(pool, p => sqlx::query_scalar(
            "UPDATE messages SET node = $1 WHERE node = $2 AND channel = $3 \
             AND received_at >= $4 AND purged = 0 AND NOT EXISTS (SELECT 1 FROM replies r \
                 WHERE r.message_id = messages.id AND r.state <> 'queued') \
             RETURNING id",
        )
        .bind(me)
        .bind(&node.name)
        .bind(channel)
        .bind(since)
        .fetch_all(p)
        .await?);
        if !ids.is_empty() {
            info!(
                node = %me,
                from_node = %node.name,
                %channel,
                messages = ids.len(),
                "the peer bound here: its waiting replies are sent from this node"
            );
        }
        claimed.extend(ids);
    }
    claimed.sort_unstable();
    Ok(claimed)
}

/// Whether a node's published channels (`nodes.channels`) show `channel`
/// open.
fn publishes_open(published: &str, channel: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(published)
        .ok()
        .and_then(|value| value["smpp"].as_array().cloned())
        .is_some_and(|links| {
            links
                .iter()
                .any(|link| link["channel"] == channel && link["open"] == true)
        })
}

/// Every node the state database knows, by name.
pub async fn nodes(pool: &StatePool) -> Result<Vec<NodeRow>, ClusterError> {
    let now = database_now(pool).await?;
    let rows = on_state_pool!(pool, p => sqlx::query(
        "SELECT name, state, incarnation, started_at, heartbeat_at, lease_until, taken_by, channels \
         FROM nodes ORDER BY name",
    )
    .fetch_all(p)
    .await?
    .iter()
    .map(|row| -> Result<NodeRow, sqlx::Error> {
        let state: String = row.try_get("state")?;
        let lease_until: i64 = row.try_get("lease_until")?;
        Ok(NodeRow {
            alive: state == "live" && lease_until >= now,
            name: row.try_get("name")?,
            state,
            incarnation: row.try_get("incarnation")?,
            started_at: row.try_get("started_at")?,
            heartbeat_at: row.try_get("heartbeat_at")?,
            lease_until,
            taken_by: row.try_get("taken_by")?,
            channels: row.try_get("channels")?,
        })
    })
    .collect::<Result<Vec<_>, _>>()?);
    Ok(rows)
}

/// The database's clock in Unix milliseconds: PostgreSQL's for a shared
/// database (the nodes' own clocks need not agree), this host's for SQLite.
async fn database_now(pool: &StatePool) -> Result<i64, sqlx::Error> {
    match pool {
        StatePool::Sqlite(_) => Ok(now_ms()),
        StatePool::Postgres(p) => {
            sqlx::query_scalar(
                "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
            )
            .fetch_one(p)
            .await
        }
    }
}

#[cfg(test)]
mod tests;
