//! The admin console's HTTP port (`[admin]`): the web UI at `/` and the
//! JSON API under `/api/v1/` (docs/admin-api.md), described by the OpenAPI
//! document at `/api/v1/openapi.json`, which is generated from the handlers
//! themselves. Who may do what is checked per handler from the caller's
//! role ([`auth::Caller`]).

pub mod accounts;
pub mod auth;
pub mod error;
pub mod lists;
pub mod status;
pub mod templates;
pub mod traffic;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::routing::{get, patch, post};
use axum::{Json, Router};
use governor::Quota;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::abuse::AbuseGuard;
use crate::admin::accounts::Accounts;
use crate::admin::sessions::{SessionPolicy, Sessions};
use crate::admin::templates::TemplateVersions;
use crate::admin::traffic::Traffic;
use crate::channel::Routes;
use crate::client_addr::{at_least_one, ClientLimiter};
use crate::modem::ModemBoard;
use crate::responder::Responder;
use crate::store::Freshness;
use crate::store::ReadModel;

use self::error::ApiError;

/// `[admin]` in config.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSettings {
    /// Serve the console.
    pub enabled: bool,
    /// Address to listen on (loopback: put the agency's reverse proxy with TLS in front).
    pub bind: SocketAddr,
    /// Mark the session cookie `Secure` (sent over HTTPS only). Turn off
    /// only for plain HTTP on loopback.
    pub cookie_secure: bool,
    /// A browser session ends after this many minutes unused.
    pub session_idle_minutes: u32,
    /// A browser session ends this many hours after the login.
    pub session_max_hours: u32,
    /// A script's bearer token lasts this many days.
    pub token_days: u32,
    /// Login attempts one client address may make per minute.
    pub logins_per_minute: u32,
    /// Take the client's address from the last `X-Forwarded-For` entry (set
    /// when the port sits behind the agency's reverse proxy, never otherwise:
    /// anyone can write that header), as `public.trust_forwarded_for`.
    pub trust_forwarded_for: bool,
    /// `[admin.limits]`: connections, timeouts, body size.
    pub limits: crate::http_server::HttpLimits,
}

impl Default for AdminSettings {
    fn default() -> Self {
        AdminSettings {
            enabled: false,
            bind: SocketAddr::from(([127, 0, 0, 1], 8089)),
            cookie_secure: true,
            session_idle_minutes: 30,
            session_max_hours: 12,
            token_days: 90,
            logins_per_minute: 20,
            trust_forwarded_for: false,
            limits: crate::http_server::HttpLimits::default(),
        }
    }
}

impl AdminSettings {
    /// The session lifetimes.
    pub fn session_policy(&self) -> SessionPolicy {
        SessionPolicy {
            idle_ms: i64::from(self.session_idle_minutes.max(1)) * 60_000,
            max_ms: i64::from(self.session_max_hours.max(1)) * 3_600_000,
            token_ms: i64::from(self.token_days.max(1)) * 86_400_000,
        }
    }
}

/// The console's own metrics (`motcua_admin_*`).
#[derive(Debug, Clone, Default)]
pub struct AdminMetrics {
    logins: Family<Vec<(String, String)>, Counter>,
}

impl AdminMetrics {
    /// Counts a login by result: ok, refused, locked, disabled.
    pub fn login(&self, result: &str) {
        self.logins
            .get_or_create(&vec![("result".to_owned(), result.to_owned())])
            .inc();
    }

    /// Registers `motcua_admin_logins_total`.
    pub fn register(&self, registry: &mut Registry) {
        registry.sub_registry_with_prefix("motcua_admin").register(
            "logins",
            "Console logins by result (ok, refused, locked, disabled)",
            self.logins.clone(),
        );
    }
}

/// What the channel view needs from the configuration.
#[derive(Debug, Clone, Default)]
pub struct ChannelConfig {
    /// The carrier links' names (`[[smpp.smsc]] name`).
    pub carriers: Vec<String>,
}

/// What the sync view needs from the configuration.
#[derive(Debug, Clone, Default)]
pub struct SyncConfig {
    /// `off`, `feed`, `jetstream` (`+push` when the webhook is on).
    pub mode: String,
    /// `sync.stale_after_secs`.
    pub stale_after_secs: Option<u64>,
}

/// Everything the console reads and changes.
pub struct AdminParts {
    /// `[admin]`.
    pub settings: AdminSettings,
    /// Accounts and the audit log.
    pub accounts: Accounts,
    /// Sessions and tokens.
    pub sessions: Sessions,
    /// Rate limits and lists.
    pub guard: AbuseGuard,
    /// Template versions.
    pub templates: TemplateVersions,
    /// The message log and statistics.
    pub traffic: Traffic,
    /// Answers the simulator, with the templates in use.
    pub responder: Arc<Responder<ReadModel>>,
    /// The read model (sync positions, applicants' names to mask).
    pub store: ReadModel,
    /// The live SMPP connections.
    pub routes: Arc<Routes>,
    /// The modems, if any.
    pub modems: Option<ModemBoard>,
    /// The data's freshness.
    pub freshness: Arc<Freshness>,
    /// Configured channels.
    pub channel_config: ChannelConfig,
    /// Sync settings.
    pub sync_config: SyncConfig,
    /// The console's metrics.
    pub metrics: AdminMetrics,
    /// The state database (the cluster's nodes).
    pub state_db: crate::db::StatePool,
    /// This gateway's node name (`cluster.node`).
    pub node_name: String,
}

/// The handlers' shared state.
#[derive(Clone)]
pub struct AdminState {
    inner: Arc<StateInner>,
}

struct StateInner {
    parts: AdminParts,
    logins: ClientLimiter,
}

impl AdminState {
    /// State over `parts`.
    pub fn new(parts: AdminParts) -> Self {
        let per_minute = at_least_one(parts.settings.logins_per_minute);
        AdminState {
            inner: Arc::new(StateInner {
                parts,
                logins: ClientLimiter::new(Quota::per_minute(per_minute)),
            }),
        }
    }

    /// `[admin]`.
    pub fn settings(&self) -> &AdminSettings {
        &self.inner.parts.settings
    }
    /// Accounts.
    pub fn accounts(&self) -> &Accounts {
        &self.inner.parts.accounts
    }
    /// Sessions.
    pub fn sessions(&self) -> &Sessions {
        &self.inner.parts.sessions
    }
    /// Rate limits and lists.
    pub fn guard(&self) -> &AbuseGuard {
        &self.inner.parts.guard
    }
    /// The state database.
    pub fn state_db(&self) -> &crate::db::StatePool {
        &self.inner.parts.state_db
    }
    /// This gateway's node name.
    pub fn node_name(&self) -> &str {
        &self.inner.parts.node_name
    }
    /// Template versions.
    pub fn templates(&self) -> &TemplateVersions {
        &self.inner.parts.templates
    }
    /// The message log and statistics.
    pub fn traffic(&self) -> &Traffic {
        &self.inner.parts.traffic
    }
    /// The simulator's responder.
    pub fn responder(&self) -> &Responder<ReadModel> {
        &self.inner.parts.responder
    }
    /// The read model.
    pub fn store(&self) -> &ReadModel {
        &self.inner.parts.store
    }
    /// Live SMPP connections.
    pub fn routes(&self) -> &Routes {
        &self.inner.parts.routes
    }
    /// The modems.
    pub fn modems(&self) -> Option<&ModemBoard> {
        self.inner.parts.modems.as_ref()
    }
    /// Freshness of the data.
    pub fn freshness(&self) -> &Freshness {
        &self.inner.parts.freshness
    }
    /// Configured channels.
    pub fn channel_config(&self) -> &ChannelConfig {
        &self.inner.parts.channel_config
    }
    /// Sync settings.
    pub fn sync_config(&self) -> &SyncConfig {
        &self.inner.parts.sync_config
    }
    /// Metrics.
    pub fn metrics(&self) -> &AdminMetrics {
        &self.inner.parts.metrics
    }
    /// Takes a login attempt from client `ip` (an IPv6 client counts with
    /// its /64); true when it has used up its logins for now.
    pub fn login_limited(&self, ip: IpAddr) -> bool {
        self.inner.logins.check(ip).is_err()
    }
}

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                auth::COOKIE,
                "The browser session from POST /api/v1/session; changes also need X-CSRF-Token",
            ))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "motcua-sms admin console API",
        description = "Accounts, templates, traffic, abuse lists, channels and sync of a motcua-sms gateway. Errors are JSON {error, message}. See docs/admin-api.md."
    ),
    modifiers(&Security),
    paths(
        auth::login, auth::current, auth::logout, auth::change_password, auth::token,
        accounts::list, accounts::create, accounts::update, accounts::audit,
        lists::lists, lists::block, lists::unblock, lists::allow, lists::disallow,
        templates::list, templates::detail, templates::preview, templates::save,
        templates::activate, templates::rollback,
        traffic::messages, traffic::stats, traffic::stats_csv,
        status::simulate, status::channels, status::sync,
    ),
    tags(
        (name = "session", description = "Logging in and out, passwords, tokens"),
        (name = "accounts", description = "Accounts and the audit log (administrators)"),
        (name = "templates", description = "Reply templates and their versions"),
        (name = "traffic", description = "The message log, statistics, the simulator"),
        (name = "abuse", description = "Block and allow lists, rate-limited senders"),
        (name = "status", description = "Channels and sync"),
    )
)]
pub struct ApiDoc;

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

async fn no_such_endpoint() -> ApiError {
    ApiError::not_found("no such endpoint (see /api/v1/openapi.json)")
}

/// The console's routes.
pub fn router(state: AdminState) -> Router {
    let api = Router::new()
        .route("/openapi.json", get(openapi))
        .route(
            "/session",
            post(auth::login).get(auth::current).delete(auth::logout),
        )
        .route("/session/password", post(auth::change_password))
        .route("/tokens", post(auth::token))
        .route("/accounts", get(accounts::list).post(accounts::create))
        .route("/accounts/{username}", patch(accounts::update))
        .route("/audit", get(accounts::audit))
        .route("/lists", get(lists::lists))
        .route("/lists/blocked", post(lists::block))
        .route(
            "/lists/blocked/{number}",
            axum::routing::delete(lists::unblock),
        )
        .route("/lists/allowed", post(lists::allow))
        .route(
            "/lists/allowed/{number}",
            axum::routing::delete(lists::disallow),
        )
        .route("/templates", get(templates::list))
        .route("/templates/{name}", get(templates::detail))
        .route("/templates/{name}/preview", post(templates::preview))
        .route("/templates/{name}/versions", post(templates::save))
        .route(
            "/templates/{name}/versions/{id}/activate",
            post(templates::activate),
        )
        .route("/templates/{name}/rollback", post(templates::rollback))
        .route("/messages", get(traffic::messages))
        .route("/stats", get(traffic::stats))
        .route("/stats.csv", get(traffic::stats_csv))
        .route("/simulate", post(status::simulate))
        .route("/channels", get(status::channels))
        .route("/sync", get(status::sync))
        .fallback(no_such_endpoint)
        .with_state(state);
    Router::new()
        .nest("/api/v1", api)
        .merge(crate::admin::web::router())
}

/// The console's port, bound.
pub struct AdminHttp {
    listener: TcpListener,
    router: Router,
    limits: crate::http_server::HttpLimits,
}

impl AdminHttp {
    /// Binds `settings.bind`.
    ///
    /// # Errors
    ///
    /// The port cannot be bound.
    pub async fn bind(state: AdminState) -> std::io::Result<Self> {
        let listener = TcpListener::bind(state.settings().bind).await?;
        Ok(AdminHttp {
            listener,
            limits: state.settings().limits.clone(),
            router: router(state),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        crate::http_server::serve(self.listener, self.router, &self.limits, shutdown).await;
    }
}
