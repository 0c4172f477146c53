//! The running gateway, wired from a [`Config`]: read model, templates,
//! responder, SMPP listener and carrier links, all stopped by one
//! cancellation token. `main.rs` and the integration tests both start it
//! through [`Gateway::build`] and [`Gateway::run`].

use std::net::SocketAddr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

use crate::config::Config;
use crate::gateway::SmsGateway;
use crate::reply::{Renderer, TemplateError};
use crate::responder::Responder;
use crate::smpp::esme::EsmeClient;
use crate::smpp::listener::Listener;
use crate::store::{SqliteStore, StoreError};

/// Start-up failures.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The read model could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A template is broken.
    #[error(transparent)]
    Template(#[from] TemplateError),
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

type Handler = SmsGateway<SqliteStore>;

/// Everything the gateway runs.
pub struct Gateway {
    store: SqliteStore,
    listener: Option<Listener<Handler>>,
    carriers: Vec<EsmeClient<Handler>>,
}

impl Gateway {
    /// Opens the store, loads and checks the templates, binds the listener.
    pub async fn build(config: &Config) -> Result<Self, StartError> {
        let store = SqliteStore::open(&config.database.url).await?;
        let templates_dir = config.reply.templates_dir.as_path();
        let renderer = Renderer::load(
            templates_dir.is_dir().then_some(templates_dir),
            config.reply.settings(&config.service),
        )?;
        for (kind, origin) in renderer.sources() {
            tracing::debug!(template = kind.template_name(), %origin, "template loaded");
        }
        let handler = Arc::new(SmsGateway::new(Responder::new(
            store.clone(),
            Arc::new(renderer),
        )));
        let listener = if config.smpp.listener.enabled {
            let address = config.smpp.listener.bind;
            Some(
                Listener::bind(
                    config.smpp.listener.clone(),
                    config.smpp.session.clone(),
                    handler.clone(),
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
            .map(|smsc| EsmeClient::new(smsc.clone(), config.smpp.session.clone(), handler.clone()))
            .collect();
        Ok(Gateway {
            store,
            listener,
            carriers,
        })
    }

    /// The SMPP listener's address, when it runs.
    pub fn listener_addr(&self) -> Option<SocketAddr> {
        self.listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The read model.
    pub fn store(&self) -> &SqliteStore {
        &self.store
    }

    /// Runs until `shutdown`, then drains every channel and closes the store.
    pub async fn run(self, shutdown: CancellationToken) {
        let tasks = TaskTracker::new();
        if let Some(listener) = self.listener {
            tasks.spawn(listener.run(shutdown.clone()));
        }
        for carrier in self.carriers {
            tasks.spawn(carrier.run(shutdown.clone()));
        }
        tasks.close();
        let dossiers = self.store.count().await.unwrap_or(-1);
        info!(dossiers, "gateway running");
        tasks.wait().await;
        self.store.close().await;
        info!("gateway stopped");
    }
}
