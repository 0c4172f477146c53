//! The running gateway, wired from a [`Config`]: read model, journal,
//! templates, responder, outbox, and what [`Gateway::build`] wires room by
//! room: the channels (SMPP listener and carrier links, modems, USSD
//! dialogues, in [`channels`]), the HTTP ports (operations, public, admin,
//! Kannel drop-in, USSD callback, in [`ports`]) and the sync with the core
//! (feed follower, push, JetStream, in [`sync`]), all stopped by one
//! cancellation token; [`Reloader`] puts templates and settings in force on
//! SIGHUP. The binary (`motcua-sms run`) and the integration tests both
//! start it through [`Gateway::build`] and [`Gateway::run`].
//!
//! Shutdown order: channels stop taking messages and finish recording those
//! in flight; the outbox finishes the replies it is sending (the connections
//! are still up for their responses); then the channels unbind; last the
//! journal and the read model close. Whatever was not sent is in the journal
//! and goes out after the next start.

mod channels;
mod ports;
mod reloader;
mod sync;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

use crate::abuse::{AbuseError, AbuseGuard};
use crate::admin::templates::TemplateVersions;
use crate::answering::{AnswerMetrics, Answering};
use crate::channel::Routes;
use crate::cluster::{ClusterError, Membership, NodeNameError};
use crate::config::Config;
use crate::db::GatewayDb;
use crate::gateway::SmsGateway;
use crate::journal::{Journal, JournalError};
use crate::modem::ModemBoard;
use crate::outbox::Outbox;
use crate::reload::Swappable;
use crate::reply::{Renderer, TemplateError};
use crate::responder::Responder;
use crate::store::{Freshness, ReadModel, StoreError};
use crate::ussd::UssdService;

pub use reloader::{ReloadError, Reloader};

/// Start-up failures.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The read model could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The journal could not be opened.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// `[cluster]` cannot be used.
    #[error(transparent)]
    ClusterSettings(#[from] NodeNameError),
    /// This gateway could not join the gateways sharing its state database.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// Abuse control could not start (settings, Redis).
    #[error(transparent)]
    Abuse(#[from] AbuseError),
    /// A template is broken.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// The core feed's settings cannot be used.
    #[error(transparent)]
    Feed(#[from] crate::sync::client::FeedClientError),
    /// The USSD service code cannot be used.
    #[error("key `ussd.service_code`: {0}")]
    ServiceCode(#[from] crate::ussd::dial::ServiceCodeError),
    /// The template versions could not be read.
    #[error(transparent)]
    TemplateVersions(#[from] crate::admin::templates::TemplateAdminError),
    /// A port could not be bound.
    #[error("cannot listen for {} on {address}{}: {source}", port.purpose(), port.key_note())]
    Bind {
        /// Which port.
        port: Port,
        /// The configured address.
        address: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl StartError {
    fn bind(port: Port, address: SocketAddr, source: std::io::Error) -> Self {
        StartError::Bind {
            port,
            address,
            source,
        }
    }
}

/// The ports the gateway listens on, as a failed bind names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    /// The operations HTTP port (`http.bind`).
    Ops,
    /// The USSD aggregators' callback (`ussd.http.bind`).
    UssdCallback,
    /// The admin console (`admin.bind`).
    Admin,
    /// The public lookup (`public.bind`).
    Public,
    /// Kannel's get-url drop-in (`kannel.bind`).
    Kannel,
    /// The SMPP listener (`smpp.listener.bind`).
    Smpp,
}

impl Port {
    /// What listens there, as the start-up error says it.
    pub fn purpose(self) -> &'static str {
        match self {
            Port::Ops => "HTTP",
            Port::UssdCallback => "the USSD callback",
            Port::Admin => "the admin console",
            Port::Public => "the public lookup",
            Port::Kannel => "Kannel's get-url",
            Port::Smpp => "SMPP",
        }
    }

    /// The configuration key of the address.
    pub fn key(self) -> &'static str {
        match self {
            Port::Ops => "http.bind",
            Port::UssdCallback => "ussd.http.bind",
            Port::Admin => "admin.bind",
            Port::Public => "public.bind",
            Port::Kannel => "kannel.bind",
            Port::Smpp => "smpp.listener.bind",
        }
    }

    /// " (key ...)" after the address in the start-up error; the SMPP
    /// listener's message has never named its key.
    fn key_note(self) -> String {
        match self {
            Port::Smpp => String::new(),
            port => format!(" (key {})", port.key()),
        }
    }
}

type Handler = SmsGateway<ReadModel>;

/// What the wiring's rooms share: the stores, the abuse guard, the route
/// table and the templates in use, with the read model's freshness, and the
/// answering policy built over them.
struct Shared {
    store: ReadModel,
    db: GatewayDb,
    /// This gateway's node name in the cluster.
    node: String,
    journal: Journal,
    guard: AbuseGuard,
    routes: Arc<Routes>,
    templates: Arc<Swappable<Renderer>>,
    freshness: Arc<Freshness>,
    /// The one answering policy of every channel: SMS, USSD, Kannel.
    answering: Arc<Answering<ReadModel>>,
}

impl Shared {
    /// A responder over the read model and the templates in use.
    fn responder(&self) -> Responder<ReadModel> {
        Responder::with_templates(self.store.clone(), self.templates.clone())
            .with_freshness(self.freshness.clone())
    }
}

/// Everything the gateway runs.
pub struct Gateway {
    store: ReadModel,
    journal: Journal,
    outbox: Arc<Outbox<ReadModel>>,
    channels: channels::Channels,
    followers: sync::Followers,
    ports: ports::Ports,
    ussd: Option<Arc<UssdService<ReadModel>>>,
    reloader: Reloader,
    membership: Membership,
    published: Published,
    /// Follows other gateways' template activations (PostgreSQL state).
    template_follower: Option<TemplateVersions>,
    drain_timeout: std::time::Duration,
}

/// What this node publishes with each heartbeat for every node's console:
/// its SMPP links and its modems.
struct Published {
    routes: Arc<Routes>,
    modems: ModemBoard,
}

impl Published {
    /// The links and modems as JSON (the `nodes.channels` column).
    fn to_json(&self) -> String {
        let links: Vec<serde_json::Value> = self
            .routes
            .links()
            .into_iter()
            .map(|link| {
                serde_json::json!({
                    "channel": link.channel,
                    "role": link.role,
                    "open": link.open,
                    "outstanding": link.outstanding,
                    "window": link.window,
                })
            })
            .collect();
        let mut modems: Vec<serde_json::Value> = self
            .modems
            .snapshot()
            .into_iter()
            .map(|(name, modem)| {
                serde_json::json!({
                    "name": name,
                    "up": modem.up,
                    "registered": modem.registered,
                    "signal": modem.rssi,
                })
            })
            .collect();
        modems.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        serde_json::json!({ "smpp": links, "modems": modems }).to_string()
    }
}

impl Gateway {
    /// Opens the store, loads and checks the templates, binds the ports
    /// and the listener.
    pub async fn build(config: &Config) -> Result<Self, StartError> {
        let store = ReadModel::open(&config.database.url).await?;
        let renderer = load_templates(config)?;
        let db = GatewayDb::open(&config.journal.url, config.journal.synchronous)
            .await
            .map_err(JournalError::from)?;
        let (node, lease) = config.cluster.validate()?;
        let membership = Membership::join(
            db.pool().clone(),
            node,
            lease,
            Duration::from_secs(config.journal.reply_expiry_secs),
        )
        .await?;
        // On a shared database the journal records and reads this node's
        // messages; a SQLite file is one node's.
        let db = match db.pool() {
            crate::db::StatePool::Postgres(_) => db.with_node(membership.lease().node().as_str()),
            crate::db::StatePool::Sqlite(_) => db,
        };
        let journal = Journal::start(db.clone(), config.journal.clone()).await?;
        let guard = AbuseGuard::open(config.rate_limit.clone(), db.pool().clone()).await?;
        let routes = channels::routes(config);
        let (sync_state, followers) = sync::build(config, &store).await?;
        let templates = Arc::new(Swappable::new(renderer));
        // Versions put in use from the console replace the files' texts
        // whether or not the console runs.
        let versions = TemplateVersions::open(
            db.pool().clone(),
            templates.clone(),
            config.reply.templates_dir.clone(),
            config.reply.settings(&config.service),
        )
        .await?;
        // Gateways sharing a PostgreSQL state database follow each other's
        // template activations.
        let template_follower =
            matches!(db.pool(), crate::db::StatePool::Postgres(_)).then(|| versions.clone());
        let mut reloader =
            Reloader::new(config, templates.clone(), versions.clone(), guard.clone());
        let answering = Arc::new(Answering::new(
            Arc::new(
                Responder::with_templates(store.clone(), templates.clone())
                    .with_freshness(sync_state.freshness.clone()),
            ),
            guard.clone(),
            journal.clone(),
            AnswerMetrics::default(),
        ));
        let shared = Shared {
            store,
            db,
            node: membership.lease().node().to_string(),
            journal,
            guard,
            routes,
            templates,
            freshness: sync_state.freshness.clone(),
            answering,
        };
        let ussd = channels::ussd(config, &shared, &mut reloader)?;
        let outbox = Outbox::for_node(
            shared.journal.clone(),
            shared.answering.clone(),
            shared.routes.clone(),
            membership.lease(),
        );
        let modem_board = ModemBoard::default();
        let published = Published {
            routes: shared.routes.clone(),
            modems: modem_board.clone(),
        };
        let served = ports::Served {
            sync: &sync_state,
            outbox: &outbox,
            ussd: ussd.as_ref(),
            versions,
            modems: &modem_board,
        };
        let ports = ports::Ports::bind(config, &shared, served).await?;
        let channels =
            channels::Channels::bind(config, &shared, &outbox, ussd.as_ref(), modem_board).await?;
        Ok(Gateway {
            store: shared.store,
            journal: shared.journal,
            outbox,
            channels,
            followers,
            ports,
            ussd,
            reloader,
            membership,
            published,
            template_follower,
            drain_timeout: config.smpp.session.drain_timeout(),
        })
    }

    /// The SMPP listener's address, when it runs.
    pub fn listener_addr(&self) -> Option<SocketAddr> {
        self.channels.listener_addr()
    }

    /// The operations HTTP port's address, when it runs.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.ports.ops_addr()
    }

    /// The USSD callback's address, when it runs.
    pub fn ussd_http_addr(&self) -> Option<SocketAddr> {
        self.ports.ussd_http_addr()
    }

    /// Reloads the templates while running (see [`Reloader`]).
    pub fn reloader(&self) -> Reloader {
        self.reloader.clone()
    }

    /// The admin console's address, when it runs.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.ports.admin_addr()
    }

    /// The public port's address, when it runs.
    pub fn public_addr(&self) -> Option<SocketAddr> {
        self.ports.public_addr()
    }

    /// The Kannel drop-in's address, when it runs.
    pub fn kannel_addr(&self) -> Option<SocketAddr> {
        self.ports.kannel_addr()
    }

    /// The USSD service, when enabled (its metrics and open dialogues).
    pub fn ussd(&self) -> Option<Arc<UssdService<ReadModel>>> {
        self.ussd.clone()
    }

    /// The read model.
    pub fn store(&self) -> &ReadModel {
        &self.store
    }

    /// The journal.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// Runs until `shutdown`, then drains (see the module's shutdown order).
    pub async fn run(self, shutdown: CancellationToken) {
        let release = CancellationToken::new();
        let channels = TaskTracker::new();
        self.channels.spawn(&channels, &shutdown, &release);
        channels.close();
        let outbox_stop = CancellationToken::new();
        let retries = tokio::spawn(self.outbox.clone().run(outbox_stop.clone()));
        let retention = tokio::spawn(purge_periodically(
            self.journal.clone(),
            outbox_stop.clone(),
        ));
        let cluster_stop = CancellationToken::new();
        let published = self.published;
        let adopter = self.outbox.clone();
        let membership = tokio::spawn(self.membership.run(
            cluster_stop.clone(),
            move || published.to_json(),
            move |taken| {
                let ids: Vec<i64> = taken
                    .iter()
                    .flat_map(|t| t.message_ids.iter().copied())
                    .collect();
                let outbox = adopter.clone();
                tokio::spawn(async move { outbox.adopt(&ids).await });
            },
        ));
        let background = TaskTracker::new();
        let sync_stop = CancellationToken::new();
        self.followers.spawn(&background, &sync_stop);
        if let Some(ussd) = self.ussd {
            background.spawn(ussd.run(sync_stop.clone()));
        }
        self.ports.spawn(&background, &sync_stop);
        if let Some(versions) = self.template_follower {
            background.spawn(versions.follow(sync_stop.clone()));
        }
        background.close();
        let dossiers = self.store.count().await.unwrap_or(-1);
        info!(dossiers, "gateway running");
        shutdown.cancelled().await;
        sync_stop.cancel();
        background.wait().await;
        outbox_stop.cancel();
        let _ = retries.await;
        let _ = retention.await;
        self.outbox.drain(self.drain_timeout).await;
        // Left only now: until the replies in flight are settled, no other
        // node may take this one's messages over.
        cluster_stop.cancel();
        let _ = membership.await;
        release.cancel();
        channels.wait().await;
        self.journal.close().await;
        self.store.close().await;
        info!("gateway stopped");
    }
}

/// Loads and checks the reply templates (`reply.templates_dir`, built-in
/// ones for what it lacks).
fn load_templates(config: &Config) -> Result<Renderer, TemplateError> {
    let templates_dir = config.reply.templates_dir.as_path();
    let renderer = Renderer::load(
        templates_dir.is_dir().then_some(templates_dir),
        config.reply.settings(&config.service),
    )?;
    for (kind, origin) in renderer.sources() {
        tracing::debug!(template = kind.template_name(), %origin, "template loaded");
    }
    Ok(renderer)
}

/// How often the retention purge runs.
const PURGE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3600);

/// Erases message texts and phone numbers older than the retention period,
/// at start and then hourly, until `stop`.
async fn purge_periodically(journal: Journal, stop: CancellationToken) {
    let retention_ms = (journal.settings().retention_days as i64).saturating_mul(86_400_000);
    loop {
        let cutoff = crate::clock::now_ms().saturating_sub(retention_ms);
        match journal.purge_before(cutoff).await {
            Ok(0) => {}
            Ok(purged) => info!(
                purged,
                retention_days = journal.settings().retention_days,
                "old message texts and numbers erased"
            ),
            Err(error) => tracing::error!(%error, "retention purge failed"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(PURGE_INTERVAL) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_bind_names_its_port_and_key_as_before() {
        let address: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let message = |port| {
            let source = std::io::Error::from(std::io::ErrorKind::AddrInUse);
            StartError::bind(port, address, source).to_string()
        };
        let cause = std::io::Error::from(std::io::ErrorKind::AddrInUse).to_string();
        let expected = [
            (Port::Ops, "HTTP on 127.0.0.1:8080 (key http.bind)"),
            (
                Port::UssdCallback,
                "the USSD callback on 127.0.0.1:8080 (key ussd.http.bind)",
            ),
            (
                Port::Admin,
                "the admin console on 127.0.0.1:8080 (key admin.bind)",
            ),
            (
                Port::Public,
                "the public lookup on 127.0.0.1:8080 (key public.bind)",
            ),
            (
                Port::Kannel,
                "Kannel's get-url on 127.0.0.1:8080 (key kannel.bind)",
            ),
            (Port::Smpp, "SMPP on 127.0.0.1:8080"),
        ];
        for (port, text) in expected {
            assert_eq!(message(port), format!("cannot listen for {text}: {cause}"));
        }
    }
}
