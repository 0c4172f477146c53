//! The gateway's HTTP port for operations (`[http]`): `/healthz`,
//! `/metrics` in the Prometheus text format, and the sync push webhook
//! (`POST /v1/push`, [`crate::sync::push`]) when enabled. Bound to loopback
//! by default; put it behind the agency's reverse proxy to expose it.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus_client::registry::Registry;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::sync::{Freshness, SyncMetrics};

/// `[http]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// Serve the operations port.
    pub enabled: bool,
    /// Address to listen on.
    pub bind: SocketAddr,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            enabled: true,
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
        }
    }
}

/// What `/metrics` reads.
pub struct MetricsSource {
    registry: Registry,
    sync: SyncMetrics,
    freshness: Arc<Freshness>,
}

impl MetricsSource {
    /// A registry holding the sync metrics.
    pub fn new(sync: SyncMetrics, freshness: Arc<Freshness>) -> Self {
        Self::with_modems(sync, freshness, None)
    }

    /// A registry holding the sync metrics and, when given, the modems'.
    pub fn with_modems(
        sync: SyncMetrics,
        freshness: Arc<Freshness>,
        modems: Option<&crate::modem::ModemBoard>,
    ) -> Self {
        let mut registry = Registry::default();
        sync.register(&mut registry);
        if let Some(modems) = modems {
            modems.register(&mut registry);
        }
        MetricsSource {
            registry,
            sync,
            freshness,
        }
    }

    /// Adds the USSD metrics.
    pub fn with_ussd(mut self, ussd: &crate::ussd::UssdMetrics) -> Self {
        ussd.register(&mut self.registry);
        self
    }

    /// The text exposition, time-derived gauges brought up to date first.
    pub fn encode(&self) -> String {
        self.sync.refresh(&self.freshness, crate::store::now_ms());
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

/// The bound operations port.
pub struct OpsServer {
    listener: TcpListener,
    router: Router,
}

impl OpsServer {
    /// Binds `settings.bind`; `extra` routes (the push webhook) are merged in.
    pub async fn bind(
        settings: &HttpSettings,
        metrics: MetricsSource,
        extra: Option<Router>,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(settings.bind).await?;
        let mut router = Router::new()
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/metrics", get(metrics_text))
            .with_state(Arc::new(metrics));
        if let Some(extra) = extra {
            router = router.merge(extra);
        }
        Ok(OpsServer { listener, router })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let addr = self.listener.local_addr().ok();
        tracing::info!(address = ?addr, "operations HTTP port listening (/healthz, /metrics)");
        if let Err(error) = axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
        {
            tracing::error!(%error, "operations HTTP port failed");
        }
    }
}

async fn metrics_text(State(metrics): State<Arc<MetricsSource>>) -> impl IntoResponse {
    (
        [(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.encode(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sync_metrics_are_exposed_under_their_names() {
        let sync = SyncMetrics::default();
        let freshness = Arc::new(Freshness::new(
            Some(std::time::Duration::from_secs(1)),
            Some(1_000),
        ));
        sync.count(&crate::store::ApplyReport {
            written: 3,
            deleted: 1,
            unchanged: 0,
        });
        let text = MetricsSource::new(sync, freshness).encode();
        assert!(
            text.contains("motcua_sync_changes_applied_total{outcome=\"written\"} 3"),
            "{text}"
        );
        assert!(text.contains("motcua_sync_stale 1"), "{text}");
        assert!(
            text.contains("motcua_sync_last_success_timestamp_seconds 1"),
            "{text}"
        );
    }
}
