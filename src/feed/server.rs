//! The core feed's HTTP layer (docs/core-feed.md), shared by every core
//! implementation: a [`FeedSource`] answers the protocol's questions (the
//! epoch, changes after a cursor, snapshot pages, digests) and [`router`]
//! serves it over axum with everything the protocol asks of the transport:
//! bearer auth (constant-time compare), parameter validation with the
//! protocol's ranges, long-poll, JSON error bodies stamped with the epoch,
//! and a JSON 404 for unknown paths.
//!
//! Cursors and page tokens pass through as text: only the source that issued
//! them parses them (and answers `400` naming `after` or `page_token` when
//! it cannot). A feed server's HTTP limits ([`HttpLimits::feed`]) are set
//! here, beside the long-poll they allow for.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::http_server::HttpLimits;

use super::{
    ChangesPage, Digest, DigestBucket, ErrorKind, FeedError, SnapshotPage, DEFAULT_BUCKETS,
    DEFAULT_CHANGES_LIMIT, DEFAULT_SNAPSHOT_LIMIT, MAX_BUCKETS, MAX_LIMIT, MAX_WAIT_SECS,
};

impl HttpLimits {
    /// The limits of a feed server (`relay`, `core-sim`): as the defaults,
    /// with requests allowed the longest long-poll wait and half a minute.
    pub fn feed() -> Self {
        HttpLimits {
            request_timeout_secs: MAX_WAIT_SECS + 30,
            ..HttpLimits::default()
        }
    }
}

/// What a core serves; [`router`] puts it on HTTP. Parameters arrive
/// validated (`limit` in 1–1000, `buckets` in 1–4096, `bucket < buckets`);
/// cursors and page tokens arrive as the client sent them.
///
/// Errors are [`FeedError`]s; the router stamps the epoch on those without
/// one. A source that cannot serve at all answers [`ErrorKind::Unavailable`].
pub trait FeedSource: Send + Sync + 'static {
    /// The current epoch (also used to stamp error bodies).
    fn epoch(&self) -> impl Future<Output = Result<String, FeedError>> + Send;

    /// At most `limit` changes after the cursor `after`, in commit order,
    /// without waiting. `next_cursor` equals `after` (or an equivalent
    /// cursor) when there are none. A cursor the source never issued is
    /// `BadRequest` with a message naming `after`.
    fn changes(
        &self,
        after: &str,
        limit: usize,
    ) -> impl Future<Output = Result<ChangesPage, FeedError>> + Send;

    /// A watch woken whenever changes may have arrived or the epoch may have
    /// moved; the long-poll subscribes before reading and re-reads when woken.
    fn subscribe(&self) -> ChangeWatch;

    /// One snapshot page of at most `limit` live records: the first when
    /// `page_token` is `None`. A token the source never issued is
    /// `BadRequest` naming `page_token`.
    fn snapshot(
        &self,
        page_token: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<SnapshotPage, FeedError>> + Send;

    /// Count and hash of every bucket among `buckets`.
    fn digest(&self, buckets: u32) -> impl Future<Output = Result<Digest, FeedError>> + Send;

    /// The (code, version) entries of `bucket` among `buckets`.
    fn digest_bucket(
        &self,
        buckets: u32,
        bucket: u32,
    ) -> impl Future<Output = Result<DigestBucket, FeedError>> + Send;
}

/// The sending side of a source's change notifications: [`notify`] after
/// every change (or whenever one may have become visible).
///
/// [`notify`]: ChangeSignal::notify
#[derive(Debug, Clone)]
pub struct ChangeSignal(Arc<watch::Sender<u64>>);

impl Default for ChangeSignal {
    fn default() -> Self {
        ChangeSignal(Arc::new(watch::Sender::new(0)))
    }
}

impl ChangeSignal {
    /// A signal nobody listens to yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Wakes every waiting long-poll.
    pub fn notify(&self) {
        self.0.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A new listener; it has seen everything notified so far.
    pub fn subscribe(&self) -> ChangeWatch {
        ChangeWatch(self.0.subscribe())
    }
}

/// The receiving side of a [`ChangeSignal`].
#[derive(Debug)]
pub struct ChangeWatch(watch::Receiver<u64>);

impl ChangeWatch {
    /// Forgets the notifications so far: [`changed`](Self::changed) then
    /// waits for a newer one.
    pub fn mark_seen(&mut self) {
        self.0.borrow_and_update();
    }

    /// Waits for a notification not yet seen (forever once the signal is
    /// gone: nothing will change any more).
    pub async fn changed(&mut self) {
        if self.0.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// A [`FeedError`] as an HTTP response: its status, its JSON, and
/// `WWW-Authenticate: Bearer` on `401`.
#[derive(Debug)]
pub struct ApiError(pub FeedError);

impl From<FeedError> for ApiError {
    fn from(error: FeedError) -> Self {
        ApiError(error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.error.status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, Json(self.0)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

/// A `400 bad_request` error (its message names the parameter at fault).
pub fn bad_request(message: impl Into<String>) -> FeedError {
    FeedError::new(ErrorKind::BadRequest, message)
}

/// The query string as parameters, as the handlers extract it.
pub type Params = Result<Query<HashMap<String, String>>, QueryRejection>;

/// The query's parameters, or a 400 naming the problem.
pub fn params(query: Params) -> Result<HashMap<String, String>, FeedError> {
    query
        .map(|Query(p)| p)
        .map_err(|e| bad_request(format!("malformed query string: {e}")))
}

/// An integer parameter in `min..=max`, or `default` when absent.
pub fn int_param(
    params: &HashMap<String, String>,
    name: &str,
    min: u64,
    max: u64,
    default: u64,
) -> Result<u64, FeedError> {
    let Some(text) = params.get(name) else {
        return Ok(default);
    };
    text.trim()
        .parse::<u64>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| {
            bad_request(format!(
                "{name} must be an integer from {min} to {max}, got {text:?}"
            ))
        })
}

/// `error` with the source's epoch, unless it has one already. When even
/// the epoch cannot be read, that error (typically `503`: the core is down)
/// is the answer instead.
pub async fn stamp<S: FeedSource>(source: &S, error: FeedError) -> ApiError {
    if error.epoch.is_some() {
        return ApiError(error);
    }
    match source.epoch().await {
        Ok(epoch) => ApiError(error.with_epoch(&epoch)),
        Err(down) => ApiError(down),
    }
}

/// A socket the feed cannot listen on.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source}")]
pub struct ListenError {
    /// The address asked for.
    pub addr: SocketAddr,
    /// The cause.
    pub source: std::io::Error,
}

/// Binds `addr` (port 0: any free port): the listener and its actual address.
pub async fn listen(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), ListenError> {
    let fail = |source| ListenError { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(fail)?;
    let local = listener.local_addr().map_err(fail)?;
    Ok((listener, local))
}

/// What the handlers share.
struct Ctx<S> {
    source: Arc<S>,
    token: Option<String>,
    stop: CancellationToken,
}

/// The protocol's `/v1` routes over `source`, a JSON 404 for any other
/// path, and bearer auth on everything when `token` is set. Cancelling
/// `stop` answers waiting long-polls at once (for a graceful shutdown).
pub fn router<S: FeedSource>(
    source: Arc<S>,
    token: Option<String>,
    stop: CancellationToken,
) -> Router {
    router_with(source, token, stop, Router::new())
}

/// [`router`] plus `extra` routes (a core's admin endpoints), behind the same
/// bearer auth and 404 fallback. `extra` must have no fallback of its own.
pub fn router_with<S: FeedSource>(
    source: Arc<S>,
    token: Option<String>,
    stop: CancellationToken,
    extra: Router,
) -> Router {
    let ctx = Arc::new(Ctx {
        source,
        token,
        stop,
    });
    Router::new()
        .route("/v1/changes", get(changes::<S>))
        .route("/v1/snapshot", get(snapshot::<S>))
        .route("/v1/digest", get(digest_all::<S>))
        .route("/v1/digest/{bucket}", get(digest_one::<S>))
        .fallback(not_found::<S>)
        .with_state(ctx.clone())
        .merge(extra)
        .layer(middleware::from_fn_with_state(ctx, authorize::<S>))
}

/// Whether `headers` carry `Authorization: Bearer <token>` (constant-time).
pub fn bearer_matches(headers: &HeaderMap, token: &str) -> bool {
    use subtle::ConstantTimeEq;
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .is_some_and(|given| bool::from(given.as_bytes().ct_eq(token.as_bytes())))
}

async fn authorize<S: FeedSource>(
    State(ctx): State<Arc<Ctx<S>>>,
    request: Request,
    next: Next,
) -> Response {
    match &ctx.token {
        Some(token) if !bearer_matches(request.headers(), token) => {
            let mut error = FeedError::new(
                ErrorKind::Unauthorized,
                "a valid Authorization: Bearer token is required",
            );
            error.epoch = ctx.source.epoch().await.ok();
            ApiError(error).into_response()
        }
        _ => next.run(request).await,
    }
}

async fn changes<S: FeedSource>(
    State(ctx): State<Arc<Ctx<S>>>,
    query: Params,
) -> Result<Json<ChangesPage>, ApiError> {
    let source = &*ctx.source;
    let checked = (|| {
        let params = params(query)?;
        let after = params
            .get("after")
            .cloned()
            .ok_or_else(|| bad_request("after (a cursor) is required"))?;
        let limit = int_param(
            &params,
            "limit",
            1,
            MAX_LIMIT as u64,
            DEFAULT_CHANGES_LIMIT as u64,
        )? as usize;
        let wait = int_param(&params, "wait", 0, MAX_WAIT_SECS, 0)?;
        Ok((after, limit, wait))
    })();
    let (after, limit, wait) = match checked {
        Ok(checked) => checked,
        Err(error) => return Err(stamp(source, error).await),
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
    let mut watch = source.subscribe();
    loop {
        watch.mark_seen();
        let page = match source.changes(&after, limit).await {
            Ok(page) => page,
            Err(error) => return Err(stamp(source, error).await),
        };
        if !page.records.is_empty() || tokio::time::Instant::now() >= deadline {
            return Ok(Json(page));
        }
        tokio::select! {
            _ = watch.changed() => {}
            _ = tokio::time::sleep_until(deadline) => {}
            _ = ctx.stop.cancelled() => return Ok(Json(page)),
        }
    }
}

async fn snapshot<S: FeedSource>(
    State(ctx): State<Arc<Ctx<S>>>,
    query: Params,
) -> Result<Json<SnapshotPage>, ApiError> {
    let source = &*ctx.source;
    let result = async {
        let params = params(query)?;
        let limit = int_param(
            &params,
            "limit",
            1,
            MAX_LIMIT as u64,
            DEFAULT_SNAPSHOT_LIMIT as u64,
        )? as usize;
        source
            .snapshot(params.get("page_token").map(String::as_str), limit)
            .await
    }
    .await;
    match result {
        Ok(page) => Ok(Json(page)),
        Err(error) => Err(stamp(source, error).await),
    }
}

/// `buckets` from the query, 1–4096, default 256.
fn buckets_param(params: &HashMap<String, String>) -> Result<u32, FeedError> {
    int_param(
        params,
        "buckets",
        1,
        u64::from(MAX_BUCKETS),
        u64::from(DEFAULT_BUCKETS),
    )
    .map(|n| n as u32)
}

async fn digest_all<S: FeedSource>(
    State(ctx): State<Arc<Ctx<S>>>,
    query: Params,
) -> Result<Json<Digest>, ApiError> {
    let source = &*ctx.source;
    let result = async {
        let buckets = buckets_param(&params(query)?)?;
        source.digest(buckets).await
    }
    .await;
    match result {
        Ok(digest) => Ok(Json(digest)),
        Err(error) => Err(stamp(source, error).await),
    }
}

async fn digest_one<S: FeedSource>(
    State(ctx): State<Arc<Ctx<S>>>,
    Path(bucket): Path<String>,
    query: Params,
) -> Result<Json<DigestBucket>, ApiError> {
    let source = &*ctx.source;
    let result = async {
        let buckets = buckets_param(&params(query)?)?;
        let bucket = bucket
            .parse::<u32>()
            .ok()
            .filter(|b| *b < buckets)
            .ok_or_else(|| {
                bad_request(format!(
                    "bucket must be an integer from 0 to {}, got {bucket:?}",
                    buckets - 1
                ))
            })?;
        source.digest_bucket(buckets, bucket).await
    }
    .await;
    match result {
        Ok(entries) => Ok(Json(entries)),
        Err(error) => Err(stamp(source, error).await),
    }
}

async fn not_found<S: FeedSource>(State(ctx): State<Arc<Ctx<S>>>) -> ApiError {
    stamp(
        &*ctx.source,
        FeedError::new(ErrorKind::NotFound, "no such endpoint"),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_feed_server_lets_the_longest_long_poll_finish() {
        assert!(HttpLimits::feed().request_timeout_secs > MAX_WAIT_SECS);
    }

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn int_params_keep_to_their_range_and_name_themselves() {
        let q = query(&[("limit", "7"), ("wait", "61"), ("buckets", "x")]);
        assert_eq!(int_param(&q, "limit", 1, 1000, 100), Ok(7));
        assert_eq!(int_param(&q, "absent", 1, 1000, 100), Ok(100));
        let error = int_param(&q, "wait", 0, 60, 0).unwrap_err();
        assert_eq!(error.error, ErrorKind::BadRequest);
        assert!(error.message.contains("wait"), "{}", error.message);
        assert!(int_param(&q, "buckets", 1, 4096, 256).is_err());
    }

    #[test]
    fn only_the_exact_bearer_token_matches() {
        let mut headers = HeaderMap::new();
        assert!(!bearer_matches(&headers, "s3cret"));
        for (value, ok) in [
            ("Bearer s3cret", true),
            ("Bearer s3cret ", true),
            ("Bearer s3cre", false),
            ("Bearer s3cret2", false),
            ("bearer s3cret", false),
            ("s3cret", false),
        ] {
            headers.insert(header::AUTHORIZATION, value.parse().unwrap());
            assert_eq!(bearer_matches(&headers, "s3cret"), ok, "{value:?}");
        }
    }

    #[tokio::test]
    async fn a_watch_wakes_only_for_what_it_has_not_seen() {
        let signal = ChangeSignal::new();
        let mut watch = signal.subscribe();
        signal.notify();
        // Notified before waiting: not lost.
        tokio::time::timeout(Duration::from_secs(1), watch.changed())
            .await
            .expect("a pending notification wakes at once");
        signal.notify();
        watch.mark_seen();
        assert!(
            tokio::time::timeout(Duration::from_millis(50), watch.changed())
                .await
                .is_err(),
            "a seen notification does not wake"
        );
        drop(signal);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), watch.changed())
                .await
                .is_err(),
            "a gone signal waits forever, it does not spin"
        );
    }

    #[test]
    fn api_errors_carry_their_status_and_the_bearer_challenge() {
        let response =
            ApiError(FeedError::new(ErrorKind::Unauthorized, "no token")).into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
        let response = ApiError(bad_request("limit")).into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert!(!response.headers().contains_key(header::WWW_AUTHENTICATE));
    }
}
