//! `motcua-sms core-sim`: a synthetic core serving the core feed protocol
//! (docs/core-feed.md) over an in-memory change log, for demos, tests and
//! benchmarks.
//!
//! It holds `dossiers` open dossiers in the official code layout that move
//! through the portal's statuses (registered → received → in progress →
//! supplement / fees → processed → returned, or refused, withdrawn, stopped)
//! at `changes_per_sec`. A finished dossier is replaced by a new one and kept
//! for a while; the oldest finished ones are purged (tombstones), and now and
//! then a dossier is deleted as entered in error. The log keeps the last
//! `retain` changes; an older cursor gets `410`.
//!
//! Besides the protocol's `/v1` endpoints it serves two admin endpoints
//! (same bearer token), for tests and demos:
//! - `POST /admin/reset-epoch`: a new epoch, an empty log (history reset);
//! - `POST /admin/step?n=K`: apply K changes at once (with
//!   `changes_per_sec` 0 the core changes only through this).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::NaiveDateTime;
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{
    digest, BucketDigest, ChangesPage, Cursor, Digest, DigestBucket, DigestEntry, ErrorKind,
    FeedError, FeedRecord, SnapshotPage, DEFAULT_BUCKETS, DEFAULT_CHANGES_LIMIT,
    DEFAULT_SNAPSHOT_LIMIT, MAX_BUCKETS, MAX_LIMIT, MAX_WAIT_SECS,
};
use crate::domain::DossierStatus;
use crate::loadgen::texts::SplitMix64;
use crate::portal_record::format_portal_time;

/// How the synthetic core runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Address to listen on (port 0: any free port).
    pub listen: SocketAddr,
    /// Open dossiers kept moving.
    pub dossiers: usize,
    /// Changes per second (0: only `POST /admin/step`).
    pub changes_per_sec: f64,
    /// Seed of the generator: the same seed, the same dossiers and changes.
    pub seed: u64,
    /// Bearer token required on every request; `None`: no auth.
    pub token: Option<String>,
    /// Changes the log keeps (at least 1).
    pub retain: usize,
}

/// Why the synthetic core cannot run.
#[derive(Debug, thiserror::Error)]
pub enum CoreSimError {
    /// A setting out of range.
    #[error("invalid setting: {0}")]
    Settings(String),
    /// The listening socket.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The HTTP server failed.
    #[error("serving the feed: {0}")]
    Serve(#[source] std::io::Error),
}

/// A bound synthetic core, ready to [`run`](CoreSim::run).
pub struct CoreSim {
    listener: TcpListener,
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    rate: f64,
}

impl CoreSim {
    /// Checks the settings, builds the initial dossiers and binds the socket.
    pub async fn bind(settings: Settings) -> Result<Self, CoreSimError> {
        if !(settings.changes_per_sec.is_finite() && settings.changes_per_sec >= 0.0) {
            return Err(CoreSimError::Settings(format!(
                "changes per second must be a number ≥ 0, got {}",
                settings.changes_per_sec
            )));
        }
        if settings.retain == 0 {
            return Err(CoreSimError::Settings("retain must be at least 1".into()));
        }
        let listener =
            TcpListener::bind(settings.listen)
                .await
                .map_err(|source| CoreSimError::Bind {
                    addr: settings.listen,
                    source,
                })?;
        let local_addr = listener.local_addr().map_err(|source| CoreSimError::Bind {
            addr: settings.listen,
            source,
        })?;
        let state = CoreState::new(settings.dossiers, settings.seed, settings.retain);
        let (head, _) = watch::channel((state.epoch_id, state.head));
        Ok(CoreSim {
            listener,
            local_addr,
            shared: Arc::new(Shared {
                state: Mutex::new(state),
                head,
                token: settings.token,
                stop: CancellationToken::new(),
            }),
            rate: settings.changes_per_sec,
        })
    }

    /// The address actually listened on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves the feed and moves the dossiers until `shutdown` is cancelled;
    /// waiting long-polls then answer at once.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), CoreSimError> {
        let shared = self.shared.clone();
        let stop = shared.stop.clone();
        let generator = (self.rate > 0.0).then(|| {
            let shared = shared.clone();
            let stop = stop.clone();
            tokio::spawn(generate(shared, self.rate, stop))
        });
        let forward = {
            let stop = stop.clone();
            tokio::spawn(async move {
                shutdown.cancelled().await;
                stop.cancel();
            })
        };
        let app = router(shared);
        let served = axum::serve(self.listener, app)
            .with_graceful_shutdown(stop.clone().cancelled_owned())
            .await;
        stop.cancel();
        forward.abort();
        if let Some(generator) = generator {
            let _ = generator.await;
        }
        served.map_err(CoreSimError::Serve)
    }
}

/// Appends changes at `rate` per second until `stop`.
async fn generate(shared: Arc<Shared>, rate: f64, stop: CancellationToken) {
    let period = Duration::from_secs_f64((1.0 / rate).clamp(0.001, 0.05));
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let start = Instant::now();
    let mut produced: u64 = 0;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let due = (start.elapsed().as_secs_f64() * rate) as u64;
        if due <= produced {
            continue;
        }
        // After a stall, catch up at most a second's worth at once.
        let batch = (due - produced).min(rate.ceil().max(1.0) as u64);
        let mut state = shared.lock();
        let mut made = 0;
        while made < batch {
            made += state.step();
        }
        // A stall's backlog beyond the batch is dropped, not owed.
        produced = produced.max(due - batch) + made;
        let head = (state.epoch_id, state.head);
        drop(state);
        shared.head.send_replace(head);
    }
}

/// What the handlers share.
struct Shared {
    state: Mutex<CoreState>,
    /// (epoch id, head seq), sent after every change: wakes long-polls.
    head: watch::Sender<(u64, u64)>,
    token: Option<String>,
    stop: CancellationToken,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, CoreState> {
        // A panic while holding the lock leaves consistent data (every
        // mutation completes before the next), so keep serving.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn authorize(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(token) = &self.token else {
            return Ok(());
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let ok = given.is_some_and(|g| {
            use subtle::ConstantTimeEq;
            bool::from(g.as_bytes().ct_eq(token.as_bytes()))
        });
        if ok {
            Ok(())
        } else {
            let epoch = self.lock().epoch();
            Err(ApiError(
                FeedError::new(
                    ErrorKind::Unauthorized,
                    "a valid Authorization: Bearer token is required",
                )
                .with_epoch(&epoch),
            ))
        }
    }
}

/// A [`FeedError`] as an HTTP response.
struct ApiError(FeedError);

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

fn bad_request(message: impl Into<String>, epoch: &str) -> ApiError {
    ApiError(FeedError::new(ErrorKind::BadRequest, message).with_epoch(epoch))
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/changes", get(changes))
        .route("/v1/snapshot", get(snapshot))
        .route("/v1/digest", get(digest_all))
        .route("/v1/digest/{bucket}", get(digest_one))
        .route("/admin/reset-epoch", post(reset_epoch))
        .route("/admin/step", post(step))
        .fallback(not_found)
        .with_state(shared)
}

type Params = Result<Query<HashMap<String, String>>, QueryRejection>;

/// The query's parameters, or a 400 naming the problem.
fn params(query: Params, epoch: &str) -> Result<HashMap<String, String>, ApiError> {
    query
        .map(|Query(p)| p)
        .map_err(|e| bad_request(format!("malformed query string: {e}"), epoch))
}

/// An integer parameter in `min..=max`, or `default` when absent.
fn int_param(
    params: &HashMap<String, String>,
    name: &str,
    min: u64,
    max: u64,
    default: u64,
    epoch: &str,
) -> Result<u64, ApiError> {
    let Some(text) = params.get(name) else {
        return Ok(default);
    };
    text.trim()
        .parse::<u64>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| {
            bad_request(
                format!("{name} must be an integer from {min} to {max}, got {text:?}"),
                epoch,
            )
        })
}

async fn changes(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    query: Params,
) -> Result<Json<ChangesPage>, ApiError> {
    shared.authorize(&headers)?;
    let epoch = shared.lock().epoch();
    let params = params(query, &epoch)?;
    let after = params
        .get("after")
        .ok_or_else(|| bad_request("after (a cursor) is required", &epoch))?;
    let cursor = Cursor::decode(after).map_err(|e| bad_request(format!("after: {e}"), &epoch))?;
    let limit = int_param(
        &params,
        "limit",
        1,
        MAX_LIMIT as u64,
        DEFAULT_CHANGES_LIMIT as u64,
        &epoch,
    )? as usize;
    let wait = int_param(&params, "wait", 0, MAX_WAIT_SECS, 0, &epoch)?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
    let mut heads = shared.head.subscribe();
    loop {
        heads.borrow_and_update();
        let page = shared.lock().changes_after(cursor, limit)?;
        if !page.records.is_empty() || tokio::time::Instant::now() >= deadline {
            return Ok(Json(page));
        }
        tokio::select! {
            _ = heads.changed() => {}
            _ = tokio::time::sleep_until(deadline) => {}
            _ = shared.stop.cancelled() => return Ok(Json(page)),
        }
    }
}

async fn snapshot(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    query: Params,
) -> Result<Json<SnapshotPage>, ApiError> {
    shared.authorize(&headers)?;
    let state = shared.lock();
    let epoch = state.epoch();
    let params = params(query, &epoch)?;
    let limit = int_param(
        &params,
        "limit",
        1,
        MAX_LIMIT as u64,
        DEFAULT_SNAPSHOT_LIMIT as u64,
        &epoch,
    )? as usize;
    let token = match params.get("page_token") {
        None => None,
        Some(text) => Some(
            PageToken::decode(text)
                .ok_or_else(|| bad_request("page_token: not a page token of this core", &epoch))?,
        ),
    };
    state.snapshot_page(token, limit).map(Json)
}

/// `buckets` from the query, 1–4096, default 256.
fn buckets_param(params: &HashMap<String, String>, epoch: &str) -> Result<u32, ApiError> {
    int_param(
        params,
        "buckets",
        1,
        u64::from(MAX_BUCKETS),
        u64::from(DEFAULT_BUCKETS),
        epoch,
    )
    .map(|n| n as u32)
}

async fn digest_all(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    query: Params,
) -> Result<Json<Digest>, ApiError> {
    shared.authorize(&headers)?;
    let state = shared.lock();
    let epoch = state.epoch();
    let params = params(query, &epoch)?;
    let buckets = buckets_param(&params, &epoch)?;
    let digests: Vec<BucketDigest> = digest(
        state
            .live
            .iter()
            .map(|(code, d)| (code.as_str(), d.version)),
        buckets,
    );
    Ok(Json(Digest {
        head_cursor: state.head_cursor(),
        epoch,
        buckets,
        digests,
    }))
}

async fn digest_one(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(bucket): Path<String>,
    query: Params,
) -> Result<Json<DigestBucket>, ApiError> {
    shared.authorize(&headers)?;
    let state = shared.lock();
    let epoch = state.epoch();
    let params = params(query, &epoch)?;
    let buckets = buckets_param(&params, &epoch)?;
    let bucket = bucket
        .parse::<u32>()
        .ok()
        .filter(|b| *b < buckets)
        .ok_or_else(|| {
            bad_request(
                format!(
                    "bucket must be an integer from 0 to {}, got {bucket:?}",
                    buckets - 1
                ),
                &epoch,
            )
        })?;
    let entries = state
        .live
        .iter()
        .filter(|(code, _)| super::bucket_of(code, buckets) == bucket)
        .map(|(code, d)| DigestEntry {
            code: code.clone(),
            version: d.version,
        })
        .collect();
    Ok(Json(DigestBucket {
        head_cursor: state.head_cursor(),
        epoch,
        buckets,
        bucket,
        entries,
    }))
}

async fn reset_epoch(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    shared.authorize(&headers)?;
    let mut state = shared.lock();
    state.reset_epoch();
    let body = json!({"epoch": state.epoch(), "head_cursor": state.head_cursor()});
    let head = (state.epoch_id, state.head);
    drop(state);
    shared.head.send_replace(head);
    Ok(Json(body))
}

async fn step(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    query: Params,
) -> Result<Json<Value>, ApiError> {
    shared.authorize(&headers)?;
    let mut state = shared.lock();
    let epoch = state.epoch();
    let params = params(query, &epoch)?;
    let n = int_param(&params, "n", 1, 100_000, 1, &epoch)?;
    let mut made = 0;
    while made < n {
        made += state.step();
    }
    let body = json!({"epoch": epoch, "head_cursor": state.head_cursor(), "applied": made});
    let head = (state.epoch_id, state.head);
    drop(state);
    shared.head.send_replace(head);
    Ok(Json(body))
}

async fn not_found(State(shared): State<Arc<Shared>>) -> ApiError {
    let epoch = shared.lock().epoch();
    ApiError(FeedError::new(ErrorKind::NotFound, "no such endpoint").with_epoch(&epoch))
}

/// Where a snapshot continues: its epoch, the head noted at its start, the
/// last code served. Text: `{epoch:x}-{head:x}-{hex(code)}`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PageToken {
    epoch: u64,
    head: u64,
    last_code: String,
}

impl PageToken {
    fn encode(&self) -> String {
        let code: String = self.last_code.bytes().map(|b| format!("{b:02x}")).collect();
        format!("{:x}-{:x}-{code}", self.epoch, self.head)
    }

    fn decode(text: &str) -> Option<Self> {
        let mut parts = text.splitn(3, '-');
        let cursor = Cursor::decode(&format!("{}-{}", parts.next()?, parts.next()?)).ok()?;
        let hex = parts.next()?;
        if hex.is_empty() || hex.len() % 2 != 0 || hex.len() > 512 {
            return None;
        }
        let bytes = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
            .collect::<Option<Vec<u8>>>()?;
        Some(PageToken {
            epoch: cursor.epoch,
            head: cursor.seq,
            last_code: String::from_utf8(bytes).ok()?,
        })
    }
}

/// One synthetic dossier's current state.
#[derive(Debug, Clone)]
struct SimDossier {
    version: i64,
    status: DossierStatus,
    procedure: usize,
    agency: usize,
    owner: usize,
    phone: String,
    received_at: Option<NaiveDateTime>,
    appointment_at: Option<NaiveDateTime>,
    finished_at: Option<NaiveDateTime>,
    returned_at: Option<NaiveDateTime>,
}

/// The core's data: live dossiers, the change log, the epoch.
struct CoreState {
    epoch_id: u64,
    /// Sequence number of the last change (0: none yet in this epoch).
    head: u64,
    /// The last `retain` changes, sequence numbers contiguous.
    log: VecDeque<(u64, FeedRecord)>,
    retain: usize,
    live: BTreeMap<String, SimDossier>,
    /// Codes still moving through statuses.
    active: Vec<String>,
    /// Finished dossiers, oldest first; purged beyond `capacity`.
    finished: VecDeque<String>,
    capacity: usize,
    rng: SplitMix64,
    next_serial: u64,
    /// The `YYMMDD` of codes made by this core (its start day).
    code_day: String,
}

/// Procedures (`TenTTHC`) with their processing days.
const PROCEDURES: [(&str, i64); 8] = [
    ("Đăng ký khai sinh", 2),
    ("Cấp giấy phép xây dựng nhà ở riêng lẻ", 15),
    ("Cấp phiếu lý lịch tư pháp cho công dân Việt Nam", 10),
    (
        "Cấp Giấy chứng nhận quyền sử dụng đất, quyền sở hữu nhà ở và tài sản khác gắn liền với đất lần đầu",
        30,
    ),
    ("Đăng ký kết hôn", 3),
    ("Chứng thực bản sao từ bản chính", 1),
    ("Cấp giấy chứng nhận đăng ký hộ kinh doanh", 3),
    ("Đăng ký thường trú", 7),
];

const AGENCIES: [&str; 6] = [
    "UBND huyện Cái Bè",
    "UBND phường Trúc Bạch",
    "Sở Tư pháp",
    "Văn phòng đăng ký đất đai - Chi nhánh Cai Lậy",
    "UBND xã Mỹ Phước Tây",
    "Bộ phận Một cửa UBND thị xã Cai Lậy",
];

const OWNERS: [&str; 8] = [
    "Nguyễn Văn An",
    "Trần Thị Bích Ngọc",
    "Lê Hoàng Phúc",
    "Phạm Minh Tuấn",
    "Võ Thị Thu Hà",
    "Đặng Quốc Bảo",
    "Huỳnh Ngọc Mai",
    "Bùi Thanh Sơn",
];

const PROVINCES: [&str; 4] = ["H58", "H29", "H79", "H48"];

const MOBILE_PREFIXES: [&str; 10] = [
    "090", "091", "093", "094", "096", "097", "098", "086", "035", "077",
];

/// Local time in Vietnam (UTC+7), as the portal writes it.
fn now_vn() -> NaiveDateTime {
    chrono::Utc::now().naive_utc() + chrono::Duration::hours(7)
}

impl CoreState {
    fn new(dossiers: usize, seed: u64, retain: usize) -> Self {
        let mut rng = SplitMix64::new(seed);
        let epoch_id = fresh_epoch_id(&mut rng);
        let mut state = CoreState {
            epoch_id,
            head: 0,
            log: VecDeque::new(),
            retain,
            live: BTreeMap::new(),
            active: Vec::with_capacity(dossiers),
            finished: VecDeque::new(),
            capacity: dossiers.max(1),
            rng,
            next_serial: 0,
            code_day: now_vn().format("%y%m%d").to_string(),
        };
        // The history before the log: each dossier a few steps along.
        for _ in 0..dossiers {
            let code = state.new_dossier();
            for _ in 0..state.rng.below(4) {
                let d = state.live.get_mut(&code).expect("just made");
                if let Some(next) = next_status(d.status, &mut state.rng) {
                    advance(d, next);
                }
            }
            state.active.push(code);
        }
        state
    }

    fn epoch(&self) -> String {
        format!("{:016x}", self.epoch_id)
    }

    fn head_cursor(&self) -> String {
        Cursor {
            epoch: self.epoch_id,
            seq: self.head,
        }
        .encode()
    }

    /// A new dossier, registered now, in `live` (not logged, not active).
    fn new_dossier(&mut self) -> String {
        let k = self.next_serial;
        self.next_serial += 1;
        let serial = k % 9999 + 1;
        let block = k / 9999;
        let province = PROVINCES[(block % PROVINCES.len() as u64) as usize];
        let rest = block / PROVINCES.len() as u64;
        let code = format!(
            "000.{:02}.{:02}.{province}-{}-{serial:04}",
            rest / 100 % 100,
            rest % 100,
            self.code_day
        );
        let prefix = *self.rng.pick(&MOBILE_PREFIXES);
        let phone = format!("{prefix}{:07}", self.rng.below(10_000_000));
        let dossier = SimDossier {
            version: 1,
            status: DossierStatus::Registered,
            procedure: self.rng.below(PROCEDURES.len() as u64) as usize,
            agency: self.rng.below(AGENCIES.len() as u64) as usize,
            owner: self.rng.below(OWNERS.len() as u64) as usize,
            phone,
            received_at: None,
            appointment_at: None,
            finished_at: None,
            returned_at: None,
        };
        self.live.insert(code.clone(), dossier);
        code
    }

    /// Applies one change of the simulation; returns the records appended (≥ 1).
    fn step(&mut self) -> u64 {
        let before = self.head;
        if self.active.is_empty() {
            let code = self.new_dossier();
            self.append_live(&code);
            self.active.push(code);
            return self.head - before;
        }
        let i = self.rng.below(self.active.len() as u64) as usize;
        let code = self.active[i].clone();
        if self.rng.chance(1) {
            // Entered in error: deleted while open, replaced by a new one.
            self.active.swap_remove(i);
            self.delete(&code);
            let fresh = self.new_dossier();
            self.append_live(&fresh);
            self.active.push(fresh);
            return self.head - before;
        }
        let d = self.live.get_mut(&code).expect("active dossiers are live");
        match next_status(d.status, &mut self.rng) {
            Some(next) => {
                advance(d, next);
                self.append_live(&code);
            }
            None => {
                // Finished: kept for a while, replaced by a new dossier.
                self.active.swap_remove(i);
                self.finished.push_back(code);
                let fresh = self.new_dossier();
                self.append_live(&fresh);
                self.active.push(fresh);
                while self.finished.len() > self.capacity {
                    if let Some(old) = self.finished.pop_front() {
                        self.delete(&old);
                    }
                }
            }
        }
        self.head - before
    }

    fn delete(&mut self, code: &str) {
        if let Some(d) = self.live.remove(code) {
            self.append(FeedRecord::tombstone(code, d.version + 1));
        }
    }

    fn append_live(&mut self, code: &str) {
        let record = record_of(code, &self.live[code]);
        self.append(record);
    }

    fn append(&mut self, record: FeedRecord) {
        self.head += 1;
        self.log.push_back((self.head, record));
        while self.log.len() > self.retain {
            self.log.pop_front();
        }
    }

    fn reset_epoch(&mut self) {
        self.epoch_id = fresh_epoch_id(&mut self.rng);
        self.head = 0;
        self.log.clear();
    }

    fn changes_after(&self, cursor: Cursor, limit: usize) -> Result<ChangesPage, ApiError> {
        let epoch = self.epoch();
        if cursor.epoch != self.epoch_id {
            return Err(ApiError(
                FeedError::new(
                    ErrorKind::EpochChanged,
                    "the cursor belongs to another epoch (history was reset); re-snapshot",
                )
                .with_epoch(&epoch),
            ));
        }
        if cursor.seq > self.head {
            return Err(bad_request(
                "after: cursor is ahead of the change log",
                &epoch,
            ));
        }
        let first = self.log.front().map_or(self.head + 1, |(seq, _)| *seq);
        if cursor.seq + 1 < first {
            return Err(ApiError(
                FeedError::new(
                    ErrorKind::CursorExpired,
                    "the cursor is older than the retained change log; re-snapshot",
                )
                .with_epoch(&epoch),
            ));
        }
        let skip = (cursor.seq + 1 - first) as usize;
        let records: Vec<FeedRecord> = self
            .log
            .iter()
            .skip(skip)
            .take(limit)
            .map(|(_, r)| r.clone())
            .collect();
        let last = cursor.seq + records.len() as u64;
        Ok(ChangesPage {
            epoch,
            next_cursor: Cursor {
                epoch: self.epoch_id,
                seq: last,
            }
            .encode(),
            has_more: last < self.head,
            records,
        })
    }

    fn snapshot_page(
        &self,
        token: Option<PageToken>,
        limit: usize,
    ) -> Result<SnapshotPage, ApiError> {
        let epoch = self.epoch();
        let (head, after) =
            match &token {
                None => (self.head, Bound::Unbounded),
                Some(t) if t.epoch != self.epoch_id => return Err(ApiError(
                    FeedError::new(
                        ErrorKind::EpochChanged,
                        "the page token belongs to another epoch (history was reset); re-snapshot",
                    )
                    .with_epoch(&epoch),
                )),
                Some(t) if t.head > self.head => {
                    return Err(bad_request(
                        "page_token: not a page token of this core",
                        &epoch,
                    ))
                }
                Some(t) => (t.head, Bound::Excluded(t.last_code.clone())),
            };
        let mut range = self.live.range::<String, _>((after, Bound::Unbounded));
        let records: Vec<FeedRecord> = range
            .by_ref()
            .take(limit)
            .map(|(code, d)| record_of(code, d))
            .collect();
        let next_page_token = match (range.next(), records.last()) {
            (Some(_), Some(last)) => Some(
                PageToken {
                    epoch: self.epoch_id,
                    head,
                    last_code: last.code.clone(),
                }
                .encode(),
            ),
            _ => None,
        };
        Ok(SnapshotPage {
            epoch,
            head_cursor: Cursor {
                epoch: self.epoch_id,
                seq: head,
            }
            .encode(),
            records,
            next_page_token,
        })
    }
}

/// A new epoch id, never 0.
fn fresh_epoch_id(rng: &mut SplitMix64) -> u64 {
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    (rng.next_u64() ^ clock.rotate_left(17)).max(1)
}

/// The next status of a dossier, or `None` when it is final.
fn next_status(status: DossierStatus, rng: &mut SplitMix64) -> Option<DossierStatus> {
    use DossierStatus::*;
    let roll = rng.below(100);
    Some(match status {
        Registered if roll < 90 => Received,
        Registered => NotAccepted,
        Received => InProgress,
        InProgress if roll < 60 => Processed,
        InProgress if roll < 75 => SupplementRequested,
        InProgress if roll < 90 => FinancialObligation,
        InProgress if roll < 95 => Withdrawn,
        InProgress => Stopped,
        SupplementRequested if roll < 85 => InProgress,
        SupplementRequested => Withdrawn,
        FinancialObligation => InProgress,
        Processed => Returned,
        NotAccepted | Withdrawn | Stopped | Returned => return None,
    })
}

/// Moves `d` to `next` now, setting the dates the portal sets.
fn advance(d: &mut SimDossier, next: DossierStatus) {
    let now = now_vn();
    match next {
        DossierStatus::Received => {
            d.received_at = Some(now);
            d.appointment_at = Some(now + chrono::Duration::days(PROCEDURES[d.procedure].1));
        }
        DossierStatus::Processed => d.finished_at = Some(now),
        DossierStatus::Returned => d.returned_at = Some(now),
        _ => {}
    }
    d.status = next;
    d.version += 1;
}

/// The portal record of a live dossier.
fn record_of(code: &str, d: &SimDossier) -> FeedRecord {
    let time =
        |t: Option<NaiveDateTime>| Value::String(t.map(format_portal_time).unwrap_or_default());
    let mut fields = Map::new();
    fields.insert("TenTTHC".into(), PROCEDURES[d.procedure].0.into());
    fields.insert("DonViXuLy".into(), AGENCIES[d.agency].into());
    fields.insert("TrangThaiHoSo".into(), i64::from(d.status.code()).into());
    fields.insert("NgayTiepNhan".into(), time(d.received_at));
    fields.insert("NgayHenTra".into(), time(d.appointment_at));
    fields.insert("NgayKetThucXuLy".into(), time(d.finished_at));
    fields.insert("NgayTra".into(), time(d.returned_at));
    fields.insert("SoDienThoai".into(), d.phone.clone().into());
    fields.insert("ChuHoSo".into(), OWNERS[d.owner].into());
    FeedRecord {
        code: code.to_owned(),
        version: d.version,
        deleted: false,
        fields,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_valid_portal_records() {
        let mut state = CoreState::new(50, 7, 1000);
        for _ in 0..500 {
            state.step();
        }
        for (code, d) in &state.live {
            let dossier = record_of(code, d).to_dossier().unwrap().unwrap();
            assert_eq!(dossier.code.as_str(), code);
        }
        assert!(state.log.iter().any(|(_, r)| r.deleted));
    }

    #[test]
    fn versions_grow_per_dossier_and_seqs_are_contiguous() {
        let mut state = CoreState::new(20, 3, 10_000);
        for _ in 0..2000 {
            state.step();
        }
        let mut seen: HashMap<&str, i64> = HashMap::new();
        for (expected, (seq, r)) in (1..).zip(&state.log) {
            assert_eq!(*seq, expected);
            if let Some(v) = seen.insert(&r.code, r.version) {
                assert!(r.version > v, "{} went {v} → {}", r.code, r.version);
            }
        }
    }

    #[test]
    fn page_tokens_round_trip() {
        let t = PageToken {
            epoch: 0xdead,
            head: 42,
            last_code: "000.00.12.H58-240315-0007".into(),
        };
        assert_eq!(PageToken::decode(&t.encode()), Some(t));
        for bad in ["", "1-2", "1-2-", "1-2-0", "1-2-zz", "x-2-30"] {
            assert_eq!(PageToken::decode(bad), None, "{bad:?}");
        }
    }
}
