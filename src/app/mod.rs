//! The running gateway, wired from a [`Config`]: read model, journal,
//! templates, responder, outbox, SMPP listener and carrier links, modems,
//! USSD (dialogues and the aggregators' callback), all stopped
//! by one cancellation token. `main.rs` and the integration tests both start
//! it through [`Gateway::build`] and [`Gateway::run`].
//!
//! Shutdown order: channels stop taking messages and finish recording those
//! in flight; the outbox finishes the replies it is sending (the connections
//! are still up for their responses); then the channels unbind; last the
//! journal and the read model close. Whatever was not sent is in the journal
//! and goes out after the next start.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

use crate::abuse::{AbuseError, AbuseGuard};
use crate::admin::accounts::{Accounts, LockoutPolicy};
use crate::admin::http::{
    AdminHttp, AdminMetrics, AdminParts, AdminState, ChannelConfig, SyncConfig,
};
use crate::admin::sessions::Sessions;
use crate::admin::templates::TemplateVersions;
use crate::admin::traffic::Traffic;
use crate::config::Config;
use crate::gateway::SmsGateway;
use crate::journal::{Journal, JournalError};
use crate::kannel_http::KannelHttp;
use crate::modem::{ModemBoard, ModemChannel};
use crate::ops_http::{MetricsSource, OpsServer};
use crate::outbox::{AnswerMetrics, Outbox};
use crate::public_http::PublicHttp;
use crate::reload::Swappable;
use crate::reply::{Renderer, TemplateError};
use crate::responder::Responder;
use crate::smpp::esme::EsmeClient;
use crate::smpp::listener::Listener;
use crate::smpp::routes::Routes;
use crate::smpp::ussd::send_answer;
use crate::store::{DossierStore, ReadModel, StoreError};
use crate::sync::follower::FeedFollower;
use crate::sync::jetstream::follower::JetStreamFollower;
use crate::sync::push::PushEndpoint;
use crate::sync::{Freshness, SyncMetrics, SyncMode};
use crate::ussd::dial::ServiceCode;
use crate::ussd::http::UssdHttp;
use crate::ussd::screens::ScreenRenderer;
use crate::ussd::UssdService;

/// Start-up failures.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The read model could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The journal could not be opened.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// Abuse control could not start (settings, Redis).
    #[error(transparent)]
    Abuse(#[from] AbuseError),
    /// A template is broken.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// The core feed's settings cannot be used.
    #[error(transparent)]
    Feed(#[from] crate::sync::client::FeedClientError),
    /// The operations HTTP port could not be bound.
    #[error("cannot listen for HTTP on {address} (key http.bind): {source}")]
    Http {
        /// The configured address.
        address: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The USSD service code cannot be used.
    #[error("key `ussd.service_code`: {0}")]
    ServiceCode(#[from] crate::ussd::dial::ServiceCodeError),
    /// The USSD callback port could not be bound.
    #[error("cannot listen for the USSD callback on {address} (key ussd.http.bind): {source}")]
    UssdHttp {
        /// The configured address.
        address: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The admin console's port could not be bound.
    #[error("cannot listen for the admin console on {address} (key admin.bind): {source}")]
    Admin {
        /// The configured address.
        address: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The template versions could not be read.
    #[error(transparent)]
    TemplateVersions(#[from] crate::admin::templates::TemplateAdminError),
    /// The public port could not be bound.
    #[error("cannot listen for the public lookup on {address} (key public.bind): {source}")]
    Public {
        /// The configured address.
        address: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The Kannel drop-in's port could not be bound.
    #[error("cannot listen for Kannel's get-url on {address} (key kannel.bind): {source}")]
    Kannel {
        /// The configured address.
        address: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The SMPP listener could not bind its port.
    #[error("cannot listen for SMPP on {address}: {source}")]
    Listen {
        /// The configured address.
        address: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

type Handler = SmsGateway<ReadModel>;

/// Everything the gateway runs.
pub struct Gateway {
    store: ReadModel,
    journal: Journal,
    outbox: Arc<Outbox<ReadModel>>,
    listener: Option<Listener<Handler>>,
    carriers: Vec<EsmeClient<Handler>>,
    modems: Option<ModemChannel<Handler>>,
    follower: Option<FeedFollower<ReadModel>>,
    jetstream: Option<JetStreamFollower<ReadModel>>,
    ops: Option<OpsServer>,
    ussd: Option<Arc<UssdService<ReadModel>>>,
    ussd_http: Option<UssdHttp>,
    public: Option<PublicHttp>,
    kannel: Option<KannelHttp>,
    admin: Option<AdminHttp>,
    reloader: Reloader,
    drain_timeout: std::time::Duration,
}

/// Reloads the SMS and USSD templates from disk while the gateway runs
/// (SIGHUP): both sets are loaded and checked first, and replace the ones in
/// use only if both pass; links, dialogues and queued replies are untouched.
/// With [`TemplateVersions`], the reply versions put in use in the admin
/// console stay in place of their files.
#[derive(Clone)]
pub struct Reloader {
    templates: Arc<Swappable<Renderer>>,
    screens: Option<Arc<Swappable<ScreenRenderer>>>,
    templates_dir: std::path::PathBuf,
    reply: crate::reply::ReplySettings,
    ussd_accents: bool,
    versions: Option<TemplateVersions>,
    guard: Option<AbuseGuard>,
}

/// Why a new configuration was not put in force on SIGHUP.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// A `[rate_limit]` value is wrong.
    #[error(transparent)]
    Limits(#[from] AbuseError),
    /// The templates fail their checks under the new `[reply]` settings.
    #[error(transparent)]
    Templates(#[from] TemplateError),
    /// `[log] level` is not a filter.
    #[error("{0}")]
    Log(String),
}

impl Reloader {
    /// Reloads the reply templates through `versions` (the admin console's
    /// versions in use kept) rather than from the files alone.
    pub fn with_versions(mut self, versions: TemplateVersions) -> Self {
        self.versions = Some(versions);
        self
    }

    fn load_screens(&self) -> Result<ScreenRenderer, TemplateError> {
        let dir = self.templates_dir.join("ussd");
        ScreenRenderer::load(dir.is_dir().then_some(dir.as_path()), self.ussd_accents)
    }

    /// Puts a re-read `config.toml` in force (SIGHUP): `[rate_limit]`
    /// (limits, not Redis or our own numbers), `[reply]` (accents, segment
    /// budgets, service number, hotline: the templates are reloaded and
    /// checked under them) and `[log] level`. Everything is checked before
    /// anything changes. Other sections (`reply.templates_dir` included)
    /// take effect at the next start.
    ///
    /// # Errors
    ///
    /// The first value or template that fails its checks; nothing changed.
    pub fn apply_config(&mut self, config: &Config) -> Result<(), ReloadError> {
        let level = config.log.level.clone();
        tracing_subscriber::EnvFilter::try_new(&level)
            .map_err(|e| ReloadError::Log(format!("[log] level {level:?}: {e}")))?;
        config.rate_limit.check()?;
        let reply = config.reply.settings(&config.service);
        let previous_reply = std::mem::replace(&mut self.reply, reply.clone());
        let reloaded = match &self.versions {
            Some(versions) => versions.reload_with(reply),
            None => Ok(()),
        }
        .and_then(|()| self.reload());
        if let Err(error) = reloaded {
            self.reply = previous_reply;
            if let Some(versions) = &self.versions {
                // The previous settings passed before; put them back.
                let _ = versions.reload_with(self.reply.clone());
            }
            return Err(error.into());
        }
        if let Some(guard) = &self.guard {
            guard.update_limits(&config.rate_limit)?;
        }
        let level_applied = crate::telemetry::set_level(&level).map_err(ReloadError::Log)?;
        info!(
            accents = self.reply.accents,
            max_segments_gsm7 = self.reply.max_segments_gsm7,
            max_segments_ucs2 = self.reply.max_segments_ucs2,
            rate_limits = config.rate_limit.enabled,
            log_level = if level_applied { level.as_str() } else { "RUST_LOG" },
            "configuration reloaded: [reply], [rate_limit], [log]; other sections at the next start"
        );
        Ok(())
    }

    /// Loads and checks every template again; on success the new sets are
    /// in use for the next message. On failure nothing changes.
    ///
    /// # Errors
    ///
    /// The first template that fails its checks, with its name and why.
    pub fn reload(&self) -> Result<(), TemplateError> {
        let dir = self.templates_dir.as_path();
        let screens = match &self.screens {
            Some(_) => Some(self.load_screens()?),
            None => None,
        };
        // The screens are not in use until the reply templates have passed.
        match &self.versions {
            Some(versions) => versions.reload()?,
            None => self.templates.replace(Renderer::load(
                dir.is_dir().then_some(dir),
                self.reply.clone(),
            )?),
        }
        let files = self
            .templates
            .current()
            .sources()
            .iter()
            .filter(|(_, origin)| origin != "built-in" && !origin.starts_with("version "))
            .count();
        if let (Some(held), Some(screens)) = (&self.screens, screens) {
            held.replace(screens);
        }
        info!(dir = %dir.display(), files, "templates reloaded");
        Ok(())
    }
}

impl Gateway {
    /// Opens the store, loads and checks the templates, binds the listener.
    pub async fn build(config: &Config) -> Result<Self, StartError> {
        let store = ReadModel::open(&config.database.url).await?;
        let templates_dir = config.reply.templates_dir.as_path();
        let renderer = Renderer::load(
            templates_dir.is_dir().then_some(templates_dir),
            config.reply.settings(&config.service),
        )?;
        for (kind, origin) in renderer.sources() {
            tracing::debug!(template = kind.template_name(), %origin, "template loaded");
        }
        let journal = Journal::open(config.journal.clone()).await?;
        let guard = AbuseGuard::open(config.rate_limit.clone(), journal.pool().clone()).await?;
        let routes = Arc::new(Routes::default());
        routes.set_prefix_routes(prefix_table(&config.smpp.smsc));
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
        let sync_metrics = SyncMetrics::default();
        let admin_metrics = AdminMetrics::default();
        let answer_metrics = AnswerMetrics::default();
        let modem_board = ModemBoard::default();
        let follower = match config.sync.mode {
            SyncMode::Off | SyncMode::Jetstream => None,
            SyncMode::Feed => Some(FeedFollower::new(
                store.clone(),
                config.sync.feed.clone(),
                freshness.clone(),
                sync_metrics.clone(),
            )?),
        };
        let jetstream = (config.sync.mode == SyncMode::Jetstream).then(|| {
            JetStreamFollower::new(
                store.clone(),
                config.sync.jetstream.clone(),
                freshness.clone(),
                sync_metrics.clone(),
            )
        });
        let templates = Arc::new(Swappable::new(renderer));
        // Versions put in use from the console replace the files' texts
        // whether or not the console runs.
        let versions = TemplateVersions::open(
            journal.pool().clone(),
            templates.clone(),
            config.reply.templates_dir.clone(),
            config.reply.settings(&config.service),
        )
        .await?;
        let mut reloader = Reloader {
            templates: templates.clone(),
            screens: None,
            templates_dir: config.reply.templates_dir.clone(),
            reply: config.reply.settings(&config.service),
            ussd_accents: config.ussd.accents,
            versions: Some(versions.clone()),
            guard: Some(guard.clone()),
        };
        let ussd = if config.ussd.enabled {
            let screens = reloader.load_screens()?;
            for (screen, origin) in screens.sources() {
                tracing::debug!(template = screen.template_name(), %origin, "USSD template loaded");
            }
            let screens = Arc::new(Swappable::new(screens));
            reloader.screens = Some(screens.clone());
            let service = UssdService::new(
                config.ussd.clone(),
                ServiceCode::parse(&config.ussd.service_code)?,
                Arc::new(
                    Responder::with_templates(store.clone(), templates.clone())
                        .with_freshness(freshness.clone()),
                ),
                screens,
                guard.clone(),
                journal.clone(),
            );
            let metrics = service.metrics().clone();
            let release_routes = routes.clone();
            let releaser: crate::ussd::Releaser = Arc::new(move |ret, answer| {
                let routes = release_routes.clone();
                let metrics = metrics.clone();
                tokio::spawn(async move {
                    if let Err(error) = send_answer(&routes, &ret, &answer).await {
                        metrics.release_failed();
                        tracing::debug!(%error, channel = %ret.channel, "USSD release not sent");
                    }
                });
            });
            Some(Arc::new(service.with_releaser(releaser)))
        } else {
            None
        };
        let ussd_http = match (&ussd, config.ussd.http.enabled) {
            (Some(service), true) => {
                let address = config.ussd.http.bind;
                Some(
                    UssdHttp::bind(&config.ussd.http, service.clone())
                        .await
                        .map_err(|source| StartError::UssdHttp { address, source })?,
                )
            }
            _ => None,
        };
        let ops = if config.http.enabled {
            let readiness = crate::ops_http::readiness_router(
                store.clone(),
                journal.clone(),
                freshness.clone(),
            );
            let push = config.sync.push.enabled.then(|| {
                PushEndpoint::new(
                    store.clone(),
                    &config.sync.push,
                    freshness.clone(),
                    sync_metrics.clone(),
                )
                .router()
            });
            let address = config.http.bind;
            Some(
                OpsServer::bind(
                    &config.http,
                    {
                        let metrics = MetricsSource::with_modems(
                            sync_metrics.clone(),
                            freshness.clone(),
                            Some(&modem_board),
                        );
                        let metrics = metrics
                            .with_admin(&admin_metrics)
                            .with_answers(&answer_metrics)
                            .with_links(routes.clone());
                        match &ussd {
                            Some(service) => metrics.with_ussd(service.metrics()),
                            None => metrics,
                        }
                    },
                    Some(match push {
                        Some(push) => readiness.merge(push),
                        None => readiness,
                    }),
                )
                .await
                .map_err(|source| StartError::Http { address, source })?,
            )
        } else {
            None
        };
        let public = if config.public.enabled {
            let address = config.public.bind;
            let responder = Arc::new(
                Responder::with_templates(store.clone(), templates.clone())
                    .with_freshness(freshness.clone()),
            );
            Some((address, responder))
        } else {
            None
        };
        let admin = if config.admin.enabled {
            let state = AdminState::new(AdminParts {
                settings: config.admin.clone(),
                accounts: Accounts::new(journal.pool().clone(), LockoutPolicy::default()),
                sessions: Sessions::new(journal.pool().clone(), config.admin.session_policy()),
                guard: guard.clone(),
                templates: versions,
                traffic: Traffic::new(journal.pool().clone()),
                responder: Arc::new(
                    Responder::with_templates(store.clone(), templates.clone())
                        .with_freshness(freshness.clone()),
                ),
                store: store.clone(),
                routes: routes.clone(),
                modems: (!config.modem.devices.is_empty()).then(|| modem_board.clone()),
                freshness: freshness.clone(),
                channel_config: ChannelConfig {
                    carriers: config.smpp.smsc.iter().map(|s| s.name.clone()).collect(),
                },
                sync_config: SyncConfig {
                    mode: sync_mode_label(config),
                    stale_after_secs: config.sync.stale_after().map(|d| d.as_secs()),
                },
                metrics: admin_metrics,
            });
            let address = config.admin.bind;
            Some(
                AdminHttp::bind(state)
                    .await
                    .map_err(|source| StartError::Admin { address, source })?,
            )
        } else {
            None
        };
        let outbox = Outbox::new(
            journal.clone(),
            Responder::with_templates(store.clone(), templates).with_freshness(freshness),
            guard,
            routes.clone(),
            answer_metrics,
        );
        let public = match public {
            Some((address, responder)) => Some(
                PublicHttp::bind(config.public.clone(), responder)
                    .await
                    .map_err(|source| StartError::Public { address, source })?,
            ),
            None => None,
        };
        let kannel = if config.kannel.enabled {
            let address = config.kannel.bind;
            Some(
                KannelHttp::bind(&config.kannel, outbox.clone())
                    .await
                    .map_err(|source| StartError::Kannel { address, source })?,
            )
        } else {
            None
        };
        let mut handler = SmsGateway::new(journal.clone(), outbox.clone());
        if let Some(service) = &ussd {
            handler = handler.with_ussd(service.clone());
        }
        let handler = Arc::new(handler);
        let listener = if config.smpp.listener.enabled {
            let address = config.smpp.listener.bind;
            Some(
                Listener::bind(
                    config.smpp.listener.clone(),
                    config.smpp.session.clone(),
                    handler.clone(),
                    routes.clone(),
                )
                .await
                .map_err(|source| StartError::Listen { address, source })?,
            )
        } else {
            None
        };
        let carriers = config
            .smpp
            .smsc
            .iter()
            .map(|smsc| {
                EsmeClient::new(
                    smsc.clone(),
                    config.smpp.session.clone(),
                    handler.clone(),
                    routes.clone(),
                )
            })
            .collect();
        let modems = (!config.modem.devices.is_empty()).then(|| {
            ModemChannel::new(
                config.modem.clone(),
                handler.clone(),
                routes.clone(),
                modem_board,
            )
        });
        Ok(Gateway {
            modems,
            store,
            journal,
            outbox,
            listener,
            carriers,
            follower,
            jetstream,
            ops,
            ussd,
            ussd_http,
            public,
            kannel,
            admin,
            reloader,
            drain_timeout: config.smpp.session.drain_timeout(),
        })
    }

    /// The SMPP listener's address, when it runs.
    pub fn listener_addr(&self) -> Option<SocketAddr> {
        self.listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The operations HTTP port's address, when it runs.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.ops.as_ref().and_then(|o| o.local_addr().ok())
    }

    /// The USSD callback's address, when it runs.
    pub fn ussd_http_addr(&self) -> Option<SocketAddr> {
        self.ussd_http.as_ref().and_then(|u| u.local_addr().ok())
    }

    /// Reloads the templates while running (see [`Reloader`]).
    pub fn reloader(&self) -> Reloader {
        self.reloader.clone()
    }

    /// The admin console's address, when it runs.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|a| a.local_addr().ok())
    }

    /// The public port's address, when it runs.
    pub fn public_addr(&self) -> Option<SocketAddr> {
        self.public.as_ref().and_then(|p| p.local_addr().ok())
    }

    /// The Kannel drop-in's address, when it runs.
    pub fn kannel_addr(&self) -> Option<SocketAddr> {
        self.kannel.as_ref().and_then(|k| k.local_addr().ok())
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
        if let Some(listener) = self.listener {
            channels.spawn(listener.run(shutdown.clone(), release.clone()));
        }
        for carrier in self.carriers {
            channels.spawn(carrier.run(shutdown.clone(), release.clone()));
        }
        if let Some(modems) = self.modems {
            channels.spawn(modems.run(shutdown.clone(), release.clone()));
        }
        channels.close();
        let outbox_stop = CancellationToken::new();
        let retries = tokio::spawn(self.outbox.clone().run(outbox_stop.clone()));
        let retention = tokio::spawn(purge_periodically(
            self.journal.clone(),
            outbox_stop.clone(),
        ));
        let background = TaskTracker::new();
        let sync_stop = CancellationToken::new();
        if let Some(follower) = self.follower {
            background.spawn(follower.run(sync_stop.clone()));
        }
        if let Some(jetstream) = self.jetstream {
            background.spawn(jetstream.run(sync_stop.clone()));
        }
        if let Some(ops) = self.ops {
            background.spawn(ops.run(sync_stop.clone()));
        }
        if let Some(ussd) = self.ussd {
            background.spawn(ussd.run(sync_stop.clone()));
        }
        if let Some(ussd_http) = self.ussd_http {
            background.spawn(ussd_http.run(sync_stop.clone()));
        }
        if let Some(public) = self.public {
            background.spawn(public.run(sync_stop.clone()));
        }
        if let Some(kannel) = self.kannel {
            background.spawn(kannel.run(sync_stop.clone()));
        }
        if let Some(admin) = self.admin {
            background.spawn(admin.run(sync_stop.clone()));
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
        release.cancel();
        channels.wait().await;
        self.journal.close().await;
        self.store.close().await;
        info!("gateway stopped");
    }
}

/// The sync mode as the console shows it.
fn sync_mode_label(config: &Config) -> String {
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

/// How often the retention purge runs.
const PURGE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3600);

/// Erases message texts and phone numbers older than the retention period,
/// at start and then hourly, until `stop`.
async fn purge_periodically(journal: Journal, stop: CancellationToken) {
    let retention_ms = (journal.settings().retention_days as i64).saturating_mul(86_400_000);
    loop {
        let cutoff = crate::journal::now_ms().saturating_sub(retention_ms);
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

/// The prefix table from every carrier link's `route_prefixes`, carrier
/// names expanded to their prefixes.
fn prefix_table(links: &[crate::smpp::SmscSettings]) -> Vec<(String, String)> {
    let mut table = Vec::new();
    for link in links {
        let channel = crate::smpp::esme::channel_of(&link.name);
        for entry in &link.route_prefixes {
            match crate::domain::msisdn::carrier_prefixes(entry) {
                Some(prefixes) => {
                    table.extend(prefixes.iter().map(|p| ((*p).to_owned(), channel.clone())))
                }
                None => table.push((entry.clone(), channel.clone())),
            }
        }
    }
    table
}
