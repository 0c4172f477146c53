//! The HTTP ports' side of the wiring: operations (`/healthz`, `/metrics`,
//! push), the USSD callback, the admin console, the public lookup and
//! Kannel's get-url drop-in, each bound when enabled.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::sync::{mode_label, SyncState};
use super::{Port, Shared, StartError};
use crate::admin::accounts::{Accounts, LockoutPolicy};
use crate::admin::http::{
    AdminHttp, AdminMetrics, AdminParts, AdminState, ChannelConfig, SyncConfig,
};
use crate::admin::sessions::Sessions;
use crate::admin::templates::TemplateVersions;
use crate::admin::traffic::Traffic;
use crate::config::Config;
use crate::kannel_http::KannelHttp;
use crate::modem::ModemBoard;
use crate::ops_http::{MetricsSource, OpsServer};
use crate::outbox::Outbox;
use crate::public_http::PublicHttp;
use crate::store::ReadModel;
use crate::ussd::http::UssdHttp;
use crate::ussd::UssdService;

/// The HTTP ports that run.
pub(super) struct Ports {
    ops: Option<OpsServer>,
    ussd_http: Option<UssdHttp>,
    public: Option<PublicHttp>,
    kannel: Option<KannelHttp>,
    admin: Option<AdminHttp>,
}

/// What the ports serve besides [`Shared`].
pub(super) struct Served<'a> {
    /// Freshness and sync metrics (readiness, `/metrics`, push).
    pub sync: &'a SyncState,
    /// The outbox (Kannel's drop-in answers through it; its metrics).
    pub outbox: &'a Arc<Outbox<ReadModel>>,
    /// The USSD service, when it runs.
    pub ussd: Option<&'a Arc<UssdService<ReadModel>>>,
    /// The template versions the console edits.
    pub versions: TemplateVersions,
    /// The modems' state.
    pub modems: &'a ModemBoard,
}

impl Ports {
    /// Binds every enabled port, in this order: USSD callback, operations,
    /// admin console, public lookup, Kannel drop-in.
    pub(super) async fn bind(
        config: &Config,
        shared: &Shared,
        served: Served<'_>,
    ) -> Result<Self, StartError> {
        let Served {
            sync,
            outbox,
            ussd,
            versions,
            modems,
        } = served;
        let ussd_http = match (ussd, config.ussd.http.enabled) {
            (Some(service), true) => {
                let address = config.ussd.http.bind;
                Some(
                    UssdHttp::bind(&config.ussd.http, service.clone())
                        .await
                        .map_err(|source| StartError::bind(Port::UssdCallback, address, source))?,
                )
            }
            _ => None,
        };
        let admin_metrics = AdminMetrics::default();
        let ops = if config.http.enabled {
            let readiness = crate::ops_http::readiness_router(
                shared.store.clone(),
                shared.journal.clone(),
                sync.freshness.clone(),
            );
            let push = sync.push_router(config, &shared.store);
            let metrics = MetricsSource::with_modems(
                sync.metrics.clone(),
                sync.freshness.clone(),
                Some(modems),
            )
            .with_admin(&admin_metrics)
            .with_answers(outbox.metrics())
            .with_links(shared.routes.clone());
            let metrics = match ussd {
                Some(service) => metrics.with_ussd(service.metrics()),
                None => metrics,
            };
            let routes = match push {
                Some(push) => readiness.merge(push),
                None => readiness,
            };
            let address = config.http.bind;
            Some(
                OpsServer::bind(&config.http, metrics, Some(routes))
                    .await
                    .map_err(|source| StartError::bind(Port::Ops, address, source))?,
            )
        } else {
            None
        };
        let admin = if config.admin.enabled {
            let state = AdminState::new(AdminParts {
                settings: config.admin.clone(),
                accounts: Accounts::new(shared.db.pool().clone(), LockoutPolicy::default()),
                sessions: Sessions::new(shared.db.pool().clone(), config.admin.session_policy()),
                guard: shared.guard.clone(),
                templates: versions,
                traffic: Traffic::new(shared.db.pool().clone()),
                responder: Arc::new(shared.responder()),
                store: shared.store.clone(),
                routes: shared.routes.clone(),
                modems: (!config.modem.devices.is_empty()).then(|| modems.clone()),
                freshness: sync.freshness.clone(),
                channel_config: ChannelConfig {
                    carriers: config.smpp.smsc.iter().map(|s| s.name.clone()).collect(),
                },
                sync_config: SyncConfig {
                    mode: mode_label(config),
                    stale_after_secs: config.sync.stale_after().map(|d| d.as_secs()),
                },
                metrics: admin_metrics,
                state_db: shared.db.pool().clone(),
                node_name: shared.node.clone(),
            });
            let address = config.admin.bind;
            Some(
                AdminHttp::bind(state)
                    .await
                    .map_err(|source| StartError::bind(Port::Admin, address, source))?,
            )
        } else {
            None
        };
        let public = if config.public.enabled {
            let address = config.public.bind;
            Some(
                PublicHttp::bind(config.public.clone(), Arc::new(shared.responder()))
                    .await
                    .map_err(|source| StartError::bind(Port::Public, address, source))?,
            )
        } else {
            None
        };
        let kannel = if config.kannel.enabled {
            let address = config.kannel.bind;
            Some(
                KannelHttp::bind(&config.kannel, shared.answering.clone())
                    .await
                    .map_err(|source| StartError::bind(Port::Kannel, address, source))?,
            )
        } else {
            None
        };
        Ok(Ports {
            ops,
            ussd_http,
            public,
            kannel,
            admin,
        })
    }

    /// The operations port's address, when it runs.
    pub(super) fn ops_addr(&self) -> Option<SocketAddr> {
        self.ops.as_ref().and_then(|o| o.local_addr().ok())
    }

    /// The USSD callback's address, when it runs.
    pub(super) fn ussd_http_addr(&self) -> Option<SocketAddr> {
        self.ussd_http.as_ref().and_then(|u| u.local_addr().ok())
    }

    /// The admin console's address, when it runs.
    pub(super) fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|a| a.local_addr().ok())
    }

    /// The public port's address, when it runs.
    pub(super) fn public_addr(&self) -> Option<SocketAddr> {
        self.public.as_ref().and_then(|p| p.local_addr().ok())
    }

    /// The Kannel drop-in's address, when it runs.
    pub(super) fn kannel_addr(&self) -> Option<SocketAddr> {
        self.kannel.as_ref().and_then(|k| k.local_addr().ok())
    }

    /// Serves every port in `tasks` until `stop`.
    pub(super) fn spawn(self, tasks: &TaskTracker, stop: &CancellationToken) {
        if let Some(ops) = self.ops {
            tasks.spawn(ops.run(stop.clone()));
        }
        if let Some(ussd_http) = self.ussd_http {
            tasks.spawn(ussd_http.run(stop.clone()));
        }
        if let Some(public) = self.public {
            tasks.spawn(public.run(stop.clone()));
        }
        if let Some(kannel) = self.kannel {
            tasks.spawn(kannel.run(stop.clone()));
        }
        if let Some(admin) = self.admin {
            tasks.spawn(admin.run(stop.clone()));
        }
    }
}
