//! The public HTTP port (`[public]`): what anyone may reach without a login.
//!
//! - `GET /` — a small lookup page for the agencies' web portals and kiosks
//!   (the one-stop rules ask for the lookup to be linked into them): a form,
//!   the status under it; HTML without script, in Vietnamese (`?lang=en`:
//!   English captions), embeddable in an iframe.
//! - `GET /api/v1/lookup?code=…` — the same as JSON, for a portal's own
//!   page (CORS open).
//!
//! Kannel's `get-url` drop-in is not here: it names the citizen, so it has
//! a port of its own that only the smsbox may call ([`crate::kannel_http`]).
//!
//! The page and the JSON read the same read model as SMS with the same
//! privacy rule, stricter: never a name or a phone number. Each client
//! address is rate limited (`per_ip_burst`, `per_ip_per_hour`), and one that
//! asks for unknown codes past `misses_per_hour` is refused until its hour
//! is over, as an SMS scanner is.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use governor::Quota;
use minijinja::Environment;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::client_addr::{at_least_one, limit_key, ClientLimiter};
use crate::domain::{DossierCode, ExtractError};
use crate::reply::{ReplyContext, ReplyKind};
use crate::responder::Responder;
use crate::store::DossierLookup;

/// `[public]` in config.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PublicSettings {
    /// Serve the public port.
    pub enabled: bool,
    /// Address to listen on.
    pub bind: SocketAddr,
    /// Lookups one client address may make back to back.
    pub per_ip_burst: u32,
    /// Lookups one client address may make per hour, sustained.
    pub per_ip_per_hour: u32,
    /// Unknown codes one client address may ask for per hour; past that it
    /// is refused until the hour is over.
    pub misses_per_hour: u32,
    /// Take the client's address from the last `X-Forwarded-For` entry (set
    /// when the port sits behind the agency's reverse proxy, never otherwise:
    /// anyone can write that header).
    pub trust_forwarded_for: bool,
    /// Moved to `[kannel]` (its own port); set here, the gateway refuses to
    /// start saying so.
    #[doc(hidden)]
    pub kannel: Option<serde::de::IgnoredAny>,
    /// Moved to `kannel.allow`, as [`Self::kannel`].
    #[doc(hidden)]
    pub kannel_allow: Option<serde::de::IgnoredAny>,
    /// `[public.limits]`: connections, timeouts, body size.
    pub limits: crate::http_server::HttpLimits,
}

impl Default for PublicSettings {
    fn default() -> Self {
        PublicSettings {
            enabled: false,
            bind: SocketAddr::from(([127, 0, 0, 1], 8088)),
            per_ip_burst: 10,
            per_ip_per_hour: 120,
            misses_per_hour: 20,
            trust_forwarded_for: false,
            kannel: None,
            kannel_allow: None,
            limits: crate::http_server::HttpLimits::default(),
        }
    }
}

impl PublicSettings {
    /// What is wrong with the settings, as (key, problem).
    pub fn problems(&self) -> Vec<(String, String)> {
        let moved = [
            ("public.kannel", self.kannel.is_some(), "kannel.enabled"),
            (
                "public.kannel_allow",
                self.kannel_allow.is_some(),
                "kannel.allow",
            ),
        ];
        moved
            .into_iter()
            .filter(|(_, set, _)| *set)
            .map(|(key, _, now)| {
                (
                    key.to_owned(),
                    format!(
                        "the Kannel drop-in has a port of its own now, out of the public page's reach: \
                         remove this key, set {now} in [kannel] and point get-url at kannel.bind \
                         (docs/operations.md, \"The Kannel drop-in\")"
                    ),
                )
            })
            .collect()
    }
}

/// A lookup as the public sees it: no name, no phone number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicDossier {
    /// The canonical code.
    pub code: String,
    /// The procedure (TenTTHC).
    pub procedure: Option<String>,
    /// The processing agency.
    pub agency: Option<String>,
    /// The status label, Vietnamese.
    pub status: String,
    /// The status code 1–10.
    pub status_code: u8,
    /// `dd/mm/yyyy`.
    pub received: Option<String>,
    /// `dd/mm/yyyy`.
    pub appointment: Option<String>,
    /// `dd/mm/yyyy`.
    pub finished: Option<String>,
    /// "đúng hạn", "còn hạn", "trễ hạn".
    pub timeliness: Option<String>,
    /// Set while the read model is stale: when its data was last current.
    pub data_as_of: Option<String>,
}

impl PublicDossier {
    fn from_context(ctx: ReplyContext) -> Option<Self> {
        Some(PublicDossier {
            code: ctx.code?,
            procedure: ctx.procedure,
            agency: ctx.agency,
            status: ctx.status?,
            status_code: ctx.status_code?,
            received: ctx.received,
            appointment: ctx.appointment,
            finished: ctx.finished,
            timeliness: ctx.timeliness,
            data_as_of: ctx.data_as_of,
        })
    }
}

/// Why a lookup was not answered with a dossier.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Refusal {
    NoCode,
    ImpossibleDate(String),
    NotFound(String),
    Limited(Duration),
    Unavailable,
}

impl Refusal {
    fn status(&self) -> StatusCode {
        match self {
            Refusal::NoCode | Refusal::ImpossibleDate(_) => StatusCode::BAD_REQUEST,
            Refusal::NotFound(_) => StatusCode::NOT_FOUND,
            Refusal::Limited(_) => StatusCode::TOO_MANY_REQUESTS,
            Refusal::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error(&self) -> &'static str {
        match self {
            Refusal::NoCode => "no_code",
            Refusal::ImpossibleDate(_) => "impossible_date",
            Refusal::NotFound(_) => "not_found",
            Refusal::Limited(_) => "rate_limited",
            Refusal::Unavailable => "unavailable",
        }
    }

    fn message(&self, lang: Lang) -> String {
        match (self, lang) {
            (Refusal::NoCode, Lang::Vi) => "Không thấy mã hồ sơ. Mã có dạng 000.00.12.H58-240315-0007 (in trên giấy biên nhận).".into(),
            (Refusal::NoCode, Lang::En) => "No dossier code found. A code looks like 000.00.12.H58-240315-0007 (printed on the receipt).".into(),
            (Refusal::ImpossibleDate(code), Lang::Vi) => format!("Mã {code} có ngày tiếp nhận không tồn tại. Vui lòng kiểm tra lại."),
            (Refusal::ImpossibleDate(code), Lang::En) => format!("Code {code} has a receipt date that does not exist. Please check it."),
            (Refusal::NotFound(code), Lang::Vi) => format!("Không tìm thấy hồ sơ {code}. Kiểm tra lại mã trên giấy biên nhận."),
            (Refusal::NotFound(code), Lang::En) => format!("No dossier {code}. Please check the code on the receipt."),
            (Refusal::Limited(wait), Lang::Vi) => format!("Bạn đã tra cứu quá nhiều lần. Vui lòng thử lại sau {} phút.", wait.as_secs().div_ceil(60).max(1)),
            (Refusal::Limited(wait), Lang::En) => format!("Too many lookups. Please try again in {} min.", wait.as_secs().div_ceil(60).max(1)),
            (Refusal::Unavailable, Lang::Vi) => "Hệ thống tra cứu tạm gián đoạn. Vui lòng thử lại sau.".into(),
            (Refusal::Unavailable, Lang::En) => "The lookup is unavailable for a moment. Please try again later.".into(),
        }
    }
}

/// The page's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lang {
    Vi,
    En,
}

impl Lang {
    fn parse(lang: Option<&str>) -> Self {
        match lang {
            Some(l) if l.eq_ignore_ascii_case("en") => Lang::En,
            _ => Lang::Vi,
        }
    }

    fn code(self) -> &'static str {
        match self {
            Lang::Vi => "vi",
            Lang::En => "en",
        }
    }
}

/// Per-address limits: lookups, and unknown codes. An address is a
/// [`limit_key`]: an IPv6 visitor counts with its /64.
struct Limits {
    lookups: ClientLimiter,
    misses: ClientLimiter,
    /// Addresses refused until the instant, after too many unknown codes.
    refused: Mutex<HashMap<IpAddr, Instant>>,
    /// Requests since the last clean-up of `refused`.
    requests: std::sync::atomic::AtomicU64,
}

/// Requests between two clean-ups of the refused addresses.
const CLEANUP_EVERY: u64 = 4096;

impl Limits {
    fn new(settings: &PublicSettings) -> Self {
        let nz = at_least_one;
        let lookups =
            Quota::per_hour(nz(settings.per_ip_per_hour)).allow_burst(nz(settings.per_ip_burst));
        // The miss that finds no cell left refuses the address: after
        // `misses_per_hour` unknown codes it is refused.
        let misses = Quota::per_hour(nz(settings.misses_per_hour))
            .allow_burst(nz(settings.misses_per_hour.saturating_sub(1)));
        Limits {
            lookups: ClientLimiter::new(lookups),
            misses: ClientLimiter::new(misses),
            refused: Mutex::new(HashMap::new()),
            requests: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn refused(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Instant>> {
        self.refused.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `Err(wait)` when `ip` may not look up now.
    fn admit(&self, ip: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        let seen = self
            .requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if seen % CLEANUP_EVERY == CLEANUP_EVERY - 1 {
            self.refused().retain(|_, until| *until > now);
        }
        if let Some(until) = self.refused().get(&limit_key(ip)).copied() {
            if until > now {
                return Err(until - now);
            }
        }
        self.lookups.check(ip)
    }

    /// Counts an unknown code for `ip`; past the limit it is refused for the hour.
    fn missed(&self, ip: IpAddr) {
        if let Err(wait) = self.misses.check(ip) {
            let wait = wait.max(Duration::from_secs(60));
            let client = limit_key(ip);
            tracing::warn!(%client, "public lookup: too many unknown codes from one address; refused for a while");
            self.refused().insert(client, Instant::now() + wait);
        }
    }
}

/// What the handlers share.
struct Shared<S> {
    settings: PublicSettings,
    responder: Arc<Responder<S>>,
    limits: Limits,
    pages: Environment<'static>,
    service_number: String,
}

/// The public port's routes over `responder`.
pub fn router<S: DossierLookup>(settings: PublicSettings, responder: Arc<Responder<S>>) -> Router {
    let mut pages = Environment::new();
    pages.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    pages
        .add_template("lookup.html", include_str!("../templates/web/lookup.html"))
        .expect("the built-in lookup page compiles");
    let service_number = responder.base_context().service_number;
    let shared = Arc::new(Shared {
        limits: Limits::new(&settings),
        settings,
        responder,
        pages,
        service_number,
    });
    Router::new()
        .route("/", get(page::<S>))
        .route("/api/v1/lookup", get(lookup_json::<S>))
        .with_state(shared)
}

/// The client's address: the peer, or the last `X-Forwarded-For` entry when trusted.
fn client_ip(settings: &PublicSettings, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
    crate::client_addr::client_ip(settings.trust_forwarded_for, peer, headers)
}

impl<S: DossierLookup> Shared<S> {
    /// One public lookup of the code in `typed`, limits applied.
    async fn lookup(&self, ip: IpAddr, typed: &str) -> Result<PublicDossier, Refusal> {
        let code = match DossierCode::extract(typed) {
            Ok(code) => code,
            Err(ExtractError::NoCode) => return Err(Refusal::NoCode),
            Err(ExtractError::ImpossibleDate { found }) => {
                return Err(Refusal::ImpossibleDate(found))
            }
        };
        self.limits.admit(ip).map_err(Refusal::Limited)?;
        let lookup = self.responder.lookup(None, &code).await;
        match lookup.kind {
            ReplyKind::Found => {
                PublicDossier::from_context(lookup.context).ok_or(Refusal::Unavailable)
            }
            ReplyKind::NotFound => {
                self.limits.missed(ip);
                Err(Refusal::NotFound(code.to_string()))
            }
            _ => Err(Refusal::Unavailable),
        }
    }
}

#[derive(Debug, Deserialize)]
struct PageQuery {
    ma: Option<String>,
    lang: Option<String>,
}

#[derive(Serialize)]
struct PageResult {
    #[serde(flatten)]
    dossier: PublicDossier,
    late: bool,
}

async fn page<S: DossierLookup>(
    State(shared): State<Arc<Shared<S>>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<PageQuery>,
) -> Response {
    let lang = Lang::parse(query.lang.as_deref());
    let typed: String = query
        .ma
        .as_deref()
        .unwrap_or_default()
        .trim()
        .chars()
        .take(100)
        .collect();
    let (status, result, problem) = if typed.is_empty() {
        (StatusCode::OK, None, None)
    } else {
        let ip = client_ip(&shared.settings, peer, &headers);
        match shared.lookup(ip, &typed).await {
            Ok(dossier) => {
                let late = dossier
                    .timeliness
                    .as_deref()
                    .is_some_and(|t| t.contains("trễ"));
                (StatusCode::OK, Some(PageResult { dossier, late }), None)
            }
            Err(refusal) => (refusal.status(), None, Some(refusal.message(lang))),
        }
    };
    let captions = captions(lang);
    let rendered = shared.pages.get_template("lookup.html").and_then(|t| {
        t.render(minijinja::context! {
            lang => lang.code(),
            t => captions,
            typed => typed,
            result => result,
            problem => problem,
            service_number => shared.service_number.clone(),
        })
    });
    match rendered {
        Ok(html) => (
            status,
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (
                    header::CONTENT_SECURITY_POLICY,
                    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'",
                ),
                (header::REFERRER_POLICY, "no-referrer"),
            ],
            html,
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "public lookup page failed to render");
            (StatusCode::INTERNAL_SERVER_ERROR, "lookup page unavailable").into_response()
        }
    }
}

fn captions(lang: Lang) -> HashMap<&'static str, &'static str> {
    let pairs: &[(&str, &str, &str)] = &[
        (
            "title",
            "Tra cứu hồ sơ thủ tục hành chính",
            "Administrative dossier lookup",
        ),
        ("code", "Mã hồ sơ", "Dossier code"),
        ("search", "Tra cứu", "Look up"),
        (
            "hint",
            "Nhập mã hồ sơ in trên giấy biên nhận.",
            "Type the dossier code printed on the receipt.",
        ),
        ("procedure", "Thủ tục", "Procedure"),
        ("agency", "Cơ quan xử lý", "Agency"),
        ("status", "Trạng thái", "Status"),
        ("received", "Ngày tiếp nhận", "Received"),
        ("appointment", "Ngày hẹn trả", "Due"),
        ("finished", "Ngày hoàn thành", "Finished"),
        ("timeliness", "Tiến độ", "Timeliness"),
        ("stale", "Dữ liệu cập nhật lúc", "Data as of"),
        (
            "sms",
            "Tra cứu qua SMS: soạn TC <mã hồ sơ> gửi",
            "By SMS: text TC <code> to",
        ),
    ];
    pairs
        .iter()
        .map(|(key, vi, en)| (*key, if lang == Lang::Vi { *vi } else { *en }))
        .collect()
}

#[derive(Debug, Deserialize)]
struct JsonQuery {
    code: Option<String>,
    lang: Option<String>,
}

#[derive(Serialize)]
struct JsonError {
    error: &'static str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after_secs: Option<u64>,
}

async fn lookup_json<S: DossierLookup>(
    State(shared): State<Arc<Shared<S>>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<JsonQuery>,
) -> Response {
    let lang = Lang::parse(query.lang.as_deref());
    let ip = client_ip(&shared.settings, peer, &headers);
    let typed: String = query.code.unwrap_or_default().chars().take(100).collect();
    let mut response = match shared.lookup(ip, &typed).await {
        Ok(dossier) => (StatusCode::OK, Json(dossier)).into_response(),
        Err(refusal) => {
            let retry = match &refusal {
                Refusal::Limited(wait) => Some(wait.as_secs().max(1)),
                _ => None,
            };
            let mut response = (
                refusal.status(),
                Json(JsonError {
                    error: refusal.error(),
                    message: refusal.message(lang),
                    retry_after_secs: retry,
                }),
            )
                .into_response();
            if let Some(secs) = retry {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            response
        }
    };
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}

/// The public port's listener.
pub struct PublicHttp {
    listener: TcpListener,
    router: Router,
    limits: crate::http_server::HttpLimits,
}

impl PublicHttp {
    /// Binds `settings.bind`.
    ///
    /// # Errors
    ///
    /// The socket's, when the address cannot be bound.
    pub async fn bind<S: DossierLookup>(
        settings: PublicSettings,
        responder: Arc<Responder<S>>,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(settings.bind).await?;
        Ok(PublicHttp {
            listener,
            limits: settings.limits.clone(),
            router: router(settings, responder),
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
