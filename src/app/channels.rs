//! The channels' side of the wiring: the route table over every outlet,
//! the USSD service (dialogues, releases sent back over SMPP), and the ways
//! messages come in: the SMPP listener, the carrier links (ESME) and the
//! modems, all handing what they receive to one [`SmsGateway`].

use std::net::SocketAddr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Handler, Port, Shared, StartError};
use crate::channel::Routes;
use crate::config::Config;
use crate::gateway::SmsGateway;
use crate::modem::{ModemBoard, ModemChannel};
use crate::outbox::Outbox;
use crate::reload::Swappable;
use crate::smpp::esme::EsmeClient;
use crate::smpp::listener::Listener;
use crate::store::ReadModel;
use crate::ussd::dial::ServiceCode;
use crate::ussd::UssdService;

use super::reloader::Reloader;

/// The route table, with the carrier links' `route_prefixes`.
pub(super) fn routes(config: &Config) -> Arc<Routes> {
    let routes = Arc::new(Routes::default());
    routes.set_prefix_routes(prefix_table(&config.smpp.smsc));
    routes
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

/// The USSD service when `ussd.enabled`: its screens loaded, checked and
/// handed to `reloader`, its releases sent over `shared.routes`.
pub(super) fn ussd(
    config: &Config,
    shared: &Shared,
    reloader: &mut Reloader,
) -> Result<Option<Arc<UssdService<ReadModel>>>, StartError> {
    if !config.ussd.enabled {
        return Ok(None);
    }
    let screens = reloader.load_screens()?;
    for (screen, origin) in screens.sources() {
        tracing::debug!(template = screen.template_name(), %origin, "USSD template loaded");
    }
    let screens = Arc::new(Swappable::new(screens));
    reloader.hold_screens(screens.clone());
    let service = UssdService::new(
        config.ussd.clone(),
        ServiceCode::parse(&config.ussd.service_code)?,
        shared.answering.clone(),
        screens,
    );
    let metrics = service.metrics().clone();
    let release_routes = shared.routes.clone();
    let releaser: crate::ussd::Releaser = Arc::new(move |ret, answer| {
        let routes = release_routes.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            if let Err(error) = routes.answer_ussd(&ret, &answer).await {
                metrics.release_failed();
                tracing::debug!(%error, channel = %ret.channel, "USSD release not sent");
            }
        });
    });
    Ok(Some(Arc::new(service.with_releaser(releaser))))
}

/// The ways messages come in.
pub(super) struct Channels {
    listener: Option<Listener<Handler>>,
    carriers: Vec<EsmeClient<Handler>>,
    modems: Option<ModemChannel<Handler>>,
}

impl Channels {
    /// Binds the SMPP listener (when enabled) and prepares the carrier
    /// links and the modems, all handing messages to one [`SmsGateway`]
    /// over `outbox` (and `ussd`, when it runs).
    pub(super) async fn bind(
        config: &Config,
        shared: &Shared,
        outbox: &Arc<Outbox<ReadModel>>,
        ussd: Option<&Arc<UssdService<ReadModel>>>,
        modem_board: ModemBoard,
    ) -> Result<Self, StartError> {
        let routes = &shared.routes;
        let mut handler = SmsGateway::new(shared.journal.clone(), outbox.clone());
        if let Some(service) = ussd {
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
                .map_err(|source| StartError::bind(Port::Smpp, address, source))?,
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
        Ok(Channels {
            listener,
            carriers,
            modems,
        })
    }

    /// The SMPP listener's address, when it runs.
    pub(super) fn listener_addr(&self) -> Option<SocketAddr> {
        self.listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Runs every channel in `tasks`: they stop taking messages on
    /// `shutdown` and unbind on `release`.
    pub(super) fn spawn(
        self,
        tasks: &TaskTracker,
        shutdown: &CancellationToken,
        release: &CancellationToken,
    ) {
        if let Some(listener) = self.listener {
            tasks.spawn(listener.run(shutdown.clone(), release.clone()));
        }
        for carrier in self.carriers {
            tasks.spawn(carrier.run(shutdown.clone(), release.clone()));
        }
        if let Some(modems) = self.modems {
            tasks.spawn(modems.run(shutdown.clone(), release.clone()));
        }
    }
}
