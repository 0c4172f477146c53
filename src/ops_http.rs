//! The gateway's HTTP port for operations (`[http]`): `/healthz` (alive),
//! `/readyz` (the read model and the journal answer), `/metrics` in the
//! Prometheus text format, and the sync push webhook
//! (`POST /v1/push`, [`crate::sync::push`]) when enabled. Bound to loopback
//! by default; put it behind the agency's reverse proxy to expose it.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::store::Freshness;
use crate::sync::SyncMetrics;

/// `[http]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// Serve the operations port.
    pub enabled: bool,
    /// Address to listen on.
    pub bind: SocketAddr,
    /// `[http.limits]`: connections, timeouts, body size.
    pub limits: crate::http_server::HttpLimits,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            enabled: true,
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            limits: crate::http_server::HttpLimits::default(),
        }
    }
}

/// What `/metrics` reads.
pub struct MetricsSource {
    registry: Registry,
    sync: SyncMetrics,
    freshness: Arc<Freshness>,
    links: Option<(Arc<crate::channel::Routes>, LinkGauges)>,
}

type Labels = Vec<(String, String)>;

/// The SMPP connections' gauges, read from the routes when scraped.
#[derive(Debug, Clone, Default)]
struct LinkGauges {
    sessions: Family<Labels, Gauge>,
    window_in_use: Family<Labels, Gauge>,
    window_size: Family<Labels, Gauge>,
}

impl LinkGauges {
    fn register(&self, registry: &mut Registry) {
        let sub = registry.sub_registry_with_prefix("motcua_smpp");
        sub.register(
            "sessions",
            "SMPP connections up, by channel",
            self.sessions.clone(),
        );
        sub.register(
            "window_in_use",
            "Requests awaiting their response, by channel",
            self.window_in_use.clone(),
        );
        sub.register(
            "window_size",
            "Requests that may await their response at once, by channel",
            self.window_size.clone(),
        );
    }

    fn refresh(&self, routes: &crate::channel::Routes) {
        self.sessions.clear();
        self.window_in_use.clear();
        self.window_size.clear();
        for link in routes.links() {
            let labels = vec![
                ("channel".to_owned(), link.channel.clone()),
                ("role".to_owned(), link.role.to_owned()),
            ];
            self.sessions.get_or_create(&labels).inc();
            self.window_in_use
                .get_or_create(&labels)
                .inc_by(link.outstanding as i64);
            self.window_size
                .get_or_create(&labels)
                .inc_by(link.window as i64);
        }
    }
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
            links: None,
        }
    }

    /// Adds the admin console's metrics.
    pub fn with_admin(mut self, admin: &crate::admin::http::AdminMetrics) -> Self {
        admin.register(&mut self.registry);
        self
    }

    /// Adds the answers' counters and timing.
    pub fn with_answers(mut self, answers: &crate::answering::AnswerMetrics) -> Self {
        answers.register(&mut self.registry);
        self
    }

    /// Adds the SMPP connections' gauges (sessions, window use per channel).
    pub fn with_links(mut self, routes: Arc<crate::channel::Routes>) -> Self {
        let gauges = LinkGauges::default();
        gauges.register(&mut self.registry);
        self.links = Some((routes, gauges));
        self
    }

    /// Adds the USSD metrics.
    pub fn with_ussd(mut self, ussd: &crate::ussd::UssdMetrics) -> Self {
        ussd.register(&mut self.registry);
        self
    }

    /// The text exposition, time-derived gauges brought up to date first.
    pub fn encode(&self) -> String {
        self.sync.refresh(&self.freshness, crate::clock::now_ms());
        if let Some((routes, gauges)) = &self.links {
            gauges.refresh(routes);
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

/// `/readyz`: whether this gateway can answer citizens now. Ready when the
/// read model answers a lookup and the journal a query; stale data (the core
/// unreachable) does not make it unready, since it keeps answering with the
/// data's date, but is reported.
pub fn readiness_router<S: crate::store::DossierLookup>(
    store: S,
    journal: crate::journal::Journal,
    freshness: Arc<Freshness>,
) -> Router {
    let state = Arc::new((store, journal, freshness));
    Router::new()
        .route("/readyz", get(readiness::<S>))
        .with_state(state)
}

/// What `/readyz` found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Readiness {
    /// Every check passed.
    pub ready: bool,
    /// "ok", or why the read model failed.
    pub read_model: String,
    /// "ok", or why the journal failed.
    pub journal: String,
    /// The read model's data is older than `sync.stale_after_secs`.
    pub data_stale: bool,
}

impl Readiness {
    /// From the checks' outcomes.
    pub fn from_checks(
        read_model: Result<(), String>,
        journal: Result<(), String>,
        data_stale: bool,
    ) -> Self {
        let ok = |r: &Result<(), String>| r.as_ref().err().cloned().unwrap_or_else(|| "ok".into());
        Readiness {
            ready: read_model.is_ok() && journal.is_ok(),
            read_model: ok(&read_model),
            journal: ok(&journal),
            data_stale,
        }
    }
}

async fn readiness<S: crate::store::DossierLookup>(
    State(state): State<Arc<(S, crate::journal::Journal, Arc<Freshness>)>>,
) -> impl IntoResponse {
    let (store, journal, freshness) = &*state;
    let probe =
        crate::domain::DossierCode::parse("000.00.00.H00-000101-0001").expect("a valid probe code");
    let read_model = store
        .find(&probe)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string());
    let journal = crate::on_state_pool!(journal.pool(), p => {
        sqlx::query("SELECT 1").execute(p).await.map(|_| ())
    })
    .map_err(|e| format!("journal query failed: {e}"));
    let stale = freshness.stale_as_of(crate::clock::now_ms()).is_some();
    let report = Readiness::from_checks(read_model, journal, stale);
    let status = if report.ready {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(report))
}

/// The bound operations port.
pub struct OpsServer {
    listener: TcpListener,
    router: Router,
    limits: crate::http_server::HttpLimits,
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
            // Alive: the process answers. Readiness (/readyz) checks the stores.
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/metrics", get(metrics_text))
            .with_state(Arc::new(metrics));
        if let Some(extra) = extra {
            router = router.merge(extra);
        }
        Ok(OpsServer {
            listener,
            router,
            limits: settings.limits.clone(),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let addr = self.listener.local_addr().ok();
        tracing::info!(address = ?addr, "operations HTTP port listening (/healthz, /readyz, /metrics)");
        crate::http_server::serve(self.listener, self.router, &self.limits, shutdown).await;
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
    fn readiness_fails_on_either_store_and_reports_stale_data_without_failing() {
        let ok = Readiness::from_checks(Ok(()), Ok(()), true);
        assert!(ok.ready && ok.data_stale);
        let broken = Readiness::from_checks(Err("database is locked".into()), Ok(()), false);
        assert!(!broken.ready);
        assert_eq!(broken.read_model, "database is locked");
        assert_eq!(broken.journal, "ok");
        assert!(!Readiness::from_checks(Ok(()), Err("disk full".into()), false).ready);
    }

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
