//! Kannel's `get-url` drop-in (`[kannel]`), on a port of its own: a site
//! already running Kannel points its catch-all `sms-service` at
//! `GET /kannel?from=%p&to=%P&text=%a` and gets the reply text as the body
//! (`X-Kannel-Coding: 2` when accented), so it gains the templates, the rate
//! limits and the read model without changing its carrier links.
//!
//! The caller names the citizen (`from`), and the reply may carry the
//! applicant's name, so the port trusts only the smsbox: a
//! [`TrustedCaller`] (the `allow` list, loopback by default, and the
//! optional `secret`, which Kannel sends as `&secret=…` in the get-url).
//! It is never on the public port, so the public page's reverse proxy
//! cannot reach it. Every message is answered by the answering policy
//! ([`Answering::answer_now`]) exactly as an SMS is: blocked numbers,
//! per-number rate limits, scanner blocks, the privacy rule and the journal
//! (channel `kannel`). At most `max_in_flight` requests are answered at
//! once; more wait their turn.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::address::Address;
use crate::answering::Answering;
use crate::client_addr::AllowedNet;
use crate::clock::now_ms;
use crate::journal::NewMessage;
use crate::store::DossierLookup;
use crate::trusted_caller::{plain, TrustedCaller};

/// The path Kannel's get-url calls.
pub const PATH: &str = "/kannel";

/// `[kannel]` in config.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KannelSettings {
    /// Serve the drop-in.
    pub enabled: bool,
    /// Address to listen on (its own port, never the public one).
    pub bind: SocketAddr,
    /// Addresses or CIDR networks allowed to call (the smsbox's host).
    pub allow: Vec<AllowedNet>,
    /// A shared secret the smsbox sends (`&secret=…` in the get-url, or the
    /// `X-Motcua-Secret` header); empty: none asked. Required when `bind`
    /// is not a loopback address.
    pub secret: String,
    /// Requests answered at once; more wait their turn.
    pub max_in_flight: usize,
    /// `[kannel.limits]`: connections, timeouts, body size.
    pub limits: crate::http_server::HttpLimits,
}

impl Default for KannelSettings {
    fn default() -> Self {
        KannelSettings {
            enabled: false,
            bind: SocketAddr::from(([127, 0, 0, 1], 8087)),
            allow: crate::trusted_caller::loopback(),
            secret: String::new(),
            max_in_flight: 32,
            limits: crate::http_server::HttpLimits::default(),
        }
    }
}

impl KannelSettings {
    /// What is wrong with the settings, as (key, problem); none when off.
    pub fn problems(&self) -> Vec<(String, String)> {
        if !self.enabled {
            return Vec::new();
        }
        let mut problems =
            crate::trusted_caller::problems("kannel", self.bind, &self.allow, &self.secret);
        if self.max_in_flight == 0 {
            problems.push(("kannel.max_in_flight".into(), "must be at least 1".into()));
        }
        problems
    }
}

#[derive(Debug, Deserialize)]
struct KannelQuery {
    from: Option<String>,
    to: Option<String>,
    text: Option<String>,
}

struct Shared<S> {
    answering: Arc<Answering<S>>,
    in_flight: Semaphore,
}

/// The drop-in's routes: `GET /kannel`, callers checked.
pub fn router<S: DossierLookup>(settings: &KannelSettings, answering: Arc<Answering<S>>) -> Router {
    let shared = Arc::new(Shared {
        answering,
        in_flight: Semaphore::new(settings.max_in_flight.max(1)),
    });
    let routes = Router::new()
        .route(PATH, get(kannel::<S>))
        .with_state(shared);
    TrustedCaller::new("kannel", &settings.allow, &settings.secret).guard(routes)
}

async fn kannel<S: DossierLookup>(
    State(shared): State<Arc<Shared<S>>>,
    Query(query): Query<KannelQuery>,
) -> Response {
    let Some(from) = query.from.filter(|f| !f.trim().is_empty()) else {
        return plain(
            StatusCode::BAD_REQUEST,
            "from is missing: set get-url to ...?from=%p&to=%P&text=%a".into(),
        );
    };
    let message = NewMessage {
        channel: "kannel".to_owned(),
        peer_ref: None,
        peer_ref_lasting: false,
        sender: Address::new(from.trim().to_owned(), 0, 0),
        recipient: Address::new(query.to.unwrap_or_default().trim().to_owned(), 0, 0),
        text: query.text.unwrap_or_default(),
        received_at: now_ms(),
    };
    let Ok(_permit) = shared.in_flight.acquire().await else {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "shutting down".into());
    };
    match shared.answering.answer_now(message).await {
        Ok(answer) => {
            let coding = if crate::sms_text::is_gsm7(&answer.text) {
                "0"
            } else {
                "2"
            };
            let mut response = plain(StatusCode::OK, answer.text);
            response
                .headers_mut()
                .insert("x-kannel-coding", HeaderValue::from_static(coding));
            response
        }
        Err(error) => {
            tracing::error!(%error, "Kannel drop-in: cannot record the message; no reply");
            plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "the journal cannot record the message now".into(),
            )
        }
    }
}

/// The drop-in's listener.
pub struct KannelHttp {
    listener: TcpListener,
    router: Router,
    limits: crate::http_server::HttpLimits,
}

impl KannelHttp {
    /// Binds `settings.bind`.
    ///
    /// # Errors
    ///
    /// The socket's, when the address cannot be bound.
    pub async fn bind<S: DossierLookup>(
        settings: &KannelSettings,
        answering: Arc<Answering<S>>,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(settings.bind).await?;
        Ok(KannelHttp {
            listener,
            router: router(settings, answering),
            limits: settings.limits.clone(),
        })
    }

    /// Where it listens.
    ///
    /// # Errors
    ///
    /// The socket's.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        crate::http_server::serve(self.listener, self.router, &self.limits, shutdown).await;
    }
}
