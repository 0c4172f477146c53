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
//! The HTTP layer is [`super::server`]'s; this core is a [`FeedSource`].
//! Besides the protocol's `/v1` endpoints it serves admin endpoints (same
//! bearer token), for tests and demos:
//! - `POST /admin/reset-epoch`: a new epoch, an empty log (history reset);
//! - `POST /admin/step?n=K`: apply K changes at once (with
//!   `changes_per_sec` 0 the core changes only through this);
//! - `POST /admin/outage?on=true|false`: while on, every `/v1` request gets
//!   `503 unavailable` (the core is down);
//! - `POST /admin/silent-change?code=MaHoSo`: change a dossier's status and
//!   version without logging the change (only the digest can reveal it);
//! - `GET /admin/state?code=MaHoSo`: the dossier's current record.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::NaiveDateTime;
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::server::{
    self, bad_request, int_param, params, ApiError, ChangeSignal, ChangeWatch, FeedSource,
    ListenError, Params,
};
use super::{
    digest, BucketDigest, ChangesPage, Cursor, Digest, DigestBucket, DigestEntry, ErrorKind,
    FeedError, FeedRecord, SnapshotPage,
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
    #[error(transparent)]
    Listen(#[from] ListenError),
}

/// A bound synthetic core, ready to [`run`](CoreSim::run).
pub struct CoreSim {
    listener: TcpListener,
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    token: Option<String>,
    rate: f64,
    limits: crate::http_server::HttpLimits,
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
        let (listener, local_addr) = server::listen(settings.listen).await?;
        let state = CoreState::new(settings.dossiers, settings.seed, settings.retain);
        Ok(CoreSim {
            listener,
            local_addr,
            shared: Arc::new(Shared {
                state: Mutex::new(state),
                changed: ChangeSignal::new(),
                outage: AtomicBool::new(false),
            }),
            token: settings.token,
            rate: settings.changes_per_sec,
            limits: crate::http_server::HttpLimits::feed(),
        })
    }

    /// The address actually listened on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves within `limits` instead of [`HttpLimits::feed`](crate::http_server::HttpLimits::feed).
    ///
    /// # Errors
    ///
    /// [`CoreSimError::Settings`] naming the limit that cannot be used.
    pub fn with_limits(
        mut self,
        limits: crate::http_server::HttpLimits,
    ) -> Result<Self, CoreSimError> {
        if let Some((key, problem)) = limits.problem() {
            return Err(CoreSimError::Settings(format!("HTTP {key}: {problem}")));
        }
        self.limits = limits;
        Ok(self)
    }

    /// Serves the feed and moves the dossiers until `shutdown` is cancelled;
    /// waiting long-polls then answer at once.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), CoreSimError> {
        let shared = self.shared;
        // Cancelled on shutdown, and when serving fails (stops the generator).
        let stop = shutdown.child_token();
        let generator = (self.rate > 0.0).then(|| {
            let shared = shared.clone();
            let stop = stop.clone();
            tokio::spawn(generate(shared, self.rate, stop))
        });
        let app = server::router_with(
            shared.clone(),
            self.token,
            stop.clone(),
            admin_routes(shared),
        );
        crate::http_server::serve(self.listener, app, &self.limits, stop.clone()).await;
        stop.cancel();
        if let Some(generator) = generator {
            let _ = generator.await;
        }
        Ok(())
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
        drop(state);
        shared.changed.notify();
    }
}

/// What the handlers share: the core's state and how to wake long-polls.
struct Shared {
    state: Mutex<CoreState>,
    /// Notified after every change (and epoch reset): wakes long-polls.
    changed: ChangeSignal,
    /// `POST /admin/outage?on=true`: every `/v1` request gets `503`.
    outage: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, CoreState> {
        // A panic while holding the lock leaves consistent data (every
        // mutation completes before the next), so keep serving.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The core's state, unless it is "down" (`/admin/outage`).
    fn up(&self) -> Result<MutexGuard<'_, CoreState>, FeedError> {
        if self.outage.load(Ordering::Relaxed) {
            return Err(FeedError::new(
                ErrorKind::Unavailable,
                "the core is down (synthetic outage); retry with backoff",
            ));
        }
        Ok(self.lock())
    }
}

impl FeedSource for Shared {
    async fn epoch(&self) -> Result<String, FeedError> {
        Ok(self.up()?.epoch())
    }

    async fn changes(&self, after: &str, limit: usize) -> Result<ChangesPage, FeedError> {
        let state = self.up()?;
        let cursor = Cursor::decode(after).map_err(|e| bad_request(format!("after: {e}")))?;
        state.changes_after(cursor, limit)
    }

    fn subscribe(&self) -> ChangeWatch {
        self.changed.subscribe()
    }

    async fn snapshot(
        &self,
        page_token: Option<&str>,
        limit: usize,
    ) -> Result<SnapshotPage, FeedError> {
        let state = self.up()?;
        let token = match page_token {
            None => None,
            Some(text) => Some(
                PageToken::decode(text)
                    .ok_or_else(|| bad_request("page_token: not a page token of this core"))?,
            ),
        };
        state.snapshot_page(token, limit)
    }

    async fn digest(&self, buckets: u32) -> Result<Digest, FeedError> {
        let state = self.up()?;
        let digests: Vec<BucketDigest> = digest(
            state
                .live
                .iter()
                .map(|(code, d)| (code.as_str(), d.version)),
            buckets,
        );
        Ok(Digest {
            epoch: state.epoch(),
            head_cursor: state.head_cursor(),
            buckets,
            digests,
        })
    }

    async fn digest_bucket(&self, buckets: u32, bucket: u32) -> Result<DigestBucket, FeedError> {
        let state = self.up()?;
        let entries = state
            .live
            .iter()
            .filter(|(code, _)| super::bucket_of(code, buckets) == bucket)
            .map(|(code, d)| DigestEntry {
                code: code.clone(),
                version: d.version,
            })
            .collect();
        Ok(DigestBucket {
            epoch: state.epoch(),
            head_cursor: state.head_cursor(),
            buckets,
            bucket,
            entries,
        })
    }
}

/// The admin endpoints (tests and demos); [`server::router_with`] adds the
/// protocol, the bearer auth and the 404.
fn admin_routes(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/admin/reset-epoch", post(reset_epoch))
        .route("/admin/step", post(step))
        .route("/admin/outage", post(outage))
        .route("/admin/silent-change", post(silent_change))
        .route("/admin/state", get(dossier_state))
        .with_state(shared)
}

/// An admin error, stamped with the epoch as the protocol's are.
fn admin_error(state: &CoreState, error: FeedError) -> ApiError {
    ApiError(error.with_epoch(&state.epoch()))
}

/// The `code` parameter of an admin request: a dossier the core holds.
fn live_code(state: &CoreState, query: Params) -> Result<String, ApiError> {
    let params = params(query).map_err(|e| admin_error(state, e))?;
    let code = params
        .get("code")
        .ok_or_else(|| admin_error(state, bad_request("code (a MaHoSo) is required")))?;
    if state.live.contains_key(code) {
        Ok(code.clone())
    } else {
        Err(admin_error(
            state,
            FeedError::new(
                ErrorKind::NotFound,
                format!("no live dossier {code:?} in this core"),
            ),
        ))
    }
}

async fn reset_epoch(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let mut state = shared.lock();
    state.reset_epoch();
    let body = json!({"epoch": state.epoch(), "head_cursor": state.head_cursor()});
    drop(state);
    shared.changed.notify();
    Json(body)
}

async fn step(State(shared): State<Arc<Shared>>, query: Params) -> Result<Json<Value>, ApiError> {
    let mut state = shared.lock();
    let n = params(query)
        .and_then(|p| int_param(&p, "n", 1, 100_000, 1))
        .map_err(|e| admin_error(&state, e))?;
    let mut made = 0;
    while made < n {
        made += state.step();
    }
    let body = json!({"epoch": state.epoch(), "head_cursor": state.head_cursor(), "applied": made});
    drop(state);
    shared.changed.notify();
    Ok(Json(body))
}

async fn outage(State(shared): State<Arc<Shared>>, query: Params) -> Result<Json<Value>, ApiError> {
    let state = shared.lock();
    let on = params(query)
        .and_then(|p| match p.get("on").map(String::as_str) {
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            other => Err(bad_request(format!(
                "on must be true or false, got {other:?}"
            ))),
        })
        .map_err(|e| admin_error(&state, e))?;
    shared.outage.store(on, Ordering::Relaxed);
    let body = json!({"epoch": state.epoch(), "head_cursor": state.head_cursor(), "outage": on});
    drop(state);
    // Waiting long-polls re-read and meet the outage (or its end).
    shared.changed.notify();
    Ok(Json(body))
}

async fn silent_change(
    State(shared): State<Arc<Shared>>,
    query: Params,
) -> Result<Json<Value>, ApiError> {
    let mut state = shared.lock();
    let code = live_code(&state, query)?;
    let (version, status) = state.change_silently(&code);
    Ok(Json(
        json!({"code": code, "version": version, "status": status.code()}),
    ))
}

async fn dossier_state(
    State(shared): State<Arc<Shared>>,
    query: Params,
) -> Result<Json<FeedRecord>, ApiError> {
    let state = shared.lock();
    let code = live_code(&state, query)?;
    Ok(Json(record_of(&code, &state.live[&code])))
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
    crate::clock::vietnam_now()
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

    /// Changes a live dossier's status (when it has a next one) and version
    /// without logging it: the drift only the digest reveals.
    fn change_silently(&mut self, code: &str) -> (i64, DossierStatus) {
        let d = self.live.get_mut(code).expect("a live dossier");
        match next_status(d.status, &mut self.rng) {
            Some(next) => advance(d, next),
            None => d.version += 1,
        }
        (d.version, d.status)
    }

    fn changes_after(&self, cursor: Cursor, limit: usize) -> Result<ChangesPage, FeedError> {
        let epoch = self.epoch();
        if cursor.epoch != self.epoch_id {
            return Err(FeedError::new(
                ErrorKind::EpochChanged,
                "the cursor belongs to another epoch (history was reset); re-snapshot",
            )
            .with_epoch(&epoch));
        }
        if cursor.seq > self.head {
            return Err(bad_request("after: cursor is ahead of the change log").with_epoch(&epoch));
        }
        let first = self.log.front().map_or(self.head + 1, |(seq, _)| *seq);
        if cursor.seq + 1 < first {
            return Err(FeedError::new(
                ErrorKind::CursorExpired,
                "the cursor is older than the retained change log; re-snapshot",
            )
            .with_epoch(&epoch));
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
            pending: Some(self.head - last),
            records,
        })
    }

    fn snapshot_page(
        &self,
        token: Option<PageToken>,
        limit: usize,
    ) -> Result<SnapshotPage, FeedError> {
        let epoch = self.epoch();
        let (head, after) = match &token {
            None => (self.head, Bound::Unbounded),
            Some(t) if t.epoch != self.epoch_id => {
                return Err(FeedError::new(
                    ErrorKind::EpochChanged,
                    "the page token belongs to another epoch (history was reset); re-snapshot",
                )
                .with_epoch(&epoch))
            }
            Some(t) if t.head > self.head => {
                return Err(
                    bad_request("page_token: not a page token of this core").with_epoch(&epoch)
                )
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
    use std::collections::HashMap;

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
