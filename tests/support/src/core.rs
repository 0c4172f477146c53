//! A synthetic core for sync tests (`motcua_sms::feed::synthetic`), driven
//! over HTTP like any core, and what tests check against it: its digest and
//! records, and a history of every dossier's (version, status) taken by
//! following its feed independently of the gateway.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use motcua_sms::domain::DossierStatus;
use motcua_sms::feed::synthetic::{CoreSim, Settings};
use motcua_sms::feed::{digest, BucketDigest, ChangesPage, Digest, FeedRecord, SnapshotPage};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The bearer token of test cores.
pub const TOKEN: &str = "sync-test-token";

/// A running synthetic core.
pub struct Core {
    pub addr: SocketAddr,
    token: Option<String>,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
    http: reqwest::Client,
}

impl Core {
    /// A core with `dossiers` open dossiers that changes only when stepped.
    pub async fn start(dossiers: usize, retain: usize) -> Core {
        Core::start_at("127.0.0.1:0".parse().unwrap(), dossiers, retain).await
    }

    /// The same, on `listen`.
    pub async fn start_at(listen: SocketAddr, dossiers: usize, retain: usize) -> Core {
        Core::with_settings(Settings {
            listen,
            dossiers,
            changes_per_sec: 0.0,
            seed: 7,
            token: Some(TOKEN.to_owned()),
            retain,
        })
        .await
    }

    /// A core with `settings` as they are (its own token, seed, pace).
    pub async fn with_settings(settings: Settings) -> Core {
        let token = settings.token.clone();
        let core = CoreSim::bind(settings).await.expect("core binds");
        let addr = core.local_addr();
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let task = tokio::spawn(async move { core.run(stop).await.expect("core serves") });
        Core {
            addr,
            token,
            shutdown,
            task,
            http: reqwest::Client::new(),
        }
    }

    /// The feed's base URL.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }

    /// Stops it, which must end within 10 s and without a panic.
    pub async fn stop_cleanly(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("core stops")
            .unwrap();
    }

    async fn post(&self, path_and_query: &str) -> serde_json::Value {
        let response = self
            .http
            .post(format!("http://{}{path_and_query}", self.addr))
            .bearer_auth(self.token.as_deref().unwrap_or_default())
            .send()
            .await
            .expect("core answers");
        assert!(
            response.status().is_success(),
            "{path_and_query}: {}",
            response.status()
        );
        response.json().await.expect("JSON")
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path_and_query: &str) -> T {
        let response = self
            .http
            .get(format!("http://{}{path_and_query}", self.addr))
            .bearer_auth(self.token.as_deref().unwrap_or_default())
            .send()
            .await
            .expect("core answers");
        assert!(
            response.status().is_success(),
            "{path_and_query}: {}",
            response.status()
        );
        response.json().await.expect("JSON")
    }

    /// `n` changes at once.
    pub async fn step(&self, n: u64) {
        self.post(&format!("/admin/step?n={n}")).await;
    }

    /// Changes `code` at the core without a change in its log (only the
    /// digest can tell); returns the new version.
    pub async fn silent_change(&self, code: &str) -> i64 {
        let answer = self
            .post(&format!("/admin/silent-change?code={code}"))
            .await;
        answer["version"].as_i64().expect("a version")
    }

    /// While `on`, every feed request gets `503` (the core is down).
    pub async fn outage(&self, on: bool) {
        self.post(&format!("/admin/outage?on={on}")).await;
    }

    /// A new epoch with an empty log.
    pub async fn reset_epoch(&self) {
        self.post("/admin/reset-epoch").await;
    }

    /// The core's digest.
    pub async fn digest(&self, buckets: u32) -> Digest {
        self.get(&format!("/v1/digest?buckets={buckets}")).await
    }

    /// Every live record, from a full snapshot.
    pub async fn records(&self) -> Vec<FeedRecord> {
        let mut all = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let query = match &token {
                Some(t) => format!("/v1/snapshot?limit=1000&page_token={t}"),
                None => "/v1/snapshot?limit=1000".to_owned(),
            };
            let page: SnapshotPage = self.get(&query).await;
            all.extend(page.records);
            match page.next_page_token {
                Some(next) => token = Some(next),
                None => return all,
            }
        }
    }

    /// The first snapshot page and its head.
    pub async fn first_page(&self, limit: usize) -> SnapshotPage {
        self.get(&format!("/v1/snapshot?limit={limit}")).await
    }

    /// Up to `n` codes of dossiers not yet in progress (status below 4),
    /// among the first `among` of the snapshot: they have states ahead.
    pub async fn open_codes(&self, among: usize, n: usize) -> Vec<String> {
        let codes: Vec<String> = self
            .first_page(among)
            .await
            .records
            .iter()
            .filter(|r| {
                r.fields
                    .get("TrangThaiHoSo")
                    .and_then(|v| v.as_u64())
                    .is_some_and(|s| s < 4)
            })
            .take(n)
            .map(|r| r.code.clone())
            .collect();
        assert!(codes.len() >= 3, "too few open dossiers: {codes:?}");
        codes
    }

    /// Steps the core by 20 every 50 ms (~400 changes/s) until `stop`;
    /// the task returns how many changes it asked for.
    pub fn keep_stepping(&self, stop: CancellationToken) -> JoinHandle<u64> {
        let addr = self.addr;
        let token = self.token.clone().unwrap_or_default();
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut steps = 0u64;
            while !stop.is_cancelled() {
                let _ = http
                    .post(format!("http://{addr}/admin/step?n=20"))
                    .bearer_auth(&token)
                    .send()
                    .await;
                steps += 20;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            steps
        })
    }

    /// Changes after `cursor` (no wait).
    pub async fn changes(&self, cursor: &str) -> ChangesPage {
        self.get(&format!("/v1/changes?after={cursor}&limit=1000&wait=0"))
            .await
    }
}

/// The digest of live `(code, version)` pairs as a gateway's store holds them.
pub fn local_digest(live: &[(String, i64)], buckets: u32) -> Vec<BucketDigest> {
    digest(live.iter().map(|(c, v)| (c.as_str(), *v)), buckets)
}

/// A dossier's states in version order; status 0 stands for "deleted".
pub type States = Vec<(i64, u8)>;

/// Every state each dossier went through, from a snapshot on, recorded by
/// following the feed.
#[derive(Clone, Default)]
pub struct History {
    inner: Arc<Mutex<HashMap<String, States>>>,
}

impl History {
    fn record(&self, r: &FeedRecord) {
        let status = if r.deleted {
            0
        } else {
            r.fields
                .get("TrangThaiHoSo")
                .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
                .unwrap_or(0) as u8
        };
        let mut map = self.inner.lock().unwrap();
        let states = map.entry(r.code.clone()).or_default();
        if states.last().is_none_or(|(v, _)| *v < r.version) {
            states.push((r.version, status));
        }
    }

    /// Records the whole snapshot, then follows the feed until `stop`;
    /// `caught_up` is notified whenever a poll returns nothing more.
    pub async fn follow(self, core: SocketAddr, stop: CancellationToken) -> Self {
        let http = reqwest::Client::new();
        let get = |path: String| {
            let http = http.clone();
            async move {
                http.get(format!("http://{core}{path}"))
                    .bearer_auth(TOKEN)
                    .send()
                    .await
                    .ok()?
                    .json::<serde_json::Value>()
                    .await
                    .ok()
            }
        };
        let mut token: Option<String> = None;
        let mut head = None;
        loop {
            let path = match &token {
                Some(t) => format!("/v1/snapshot?limit=1000&page_token={t}"),
                None => "/v1/snapshot?limit=1000".to_owned(),
            };
            let page: SnapshotPage =
                serde_json::from_value(get(path).await.expect("snapshot")).unwrap();
            head.get_or_insert(page.head_cursor.clone());
            for r in &page.records {
                self.record(r);
            }
            match page.next_page_token {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        let mut cursor = head.unwrap();
        while !stop.is_cancelled() {
            let page: ChangesPage =
                match get(format!("/v1/changes?after={cursor}&limit=1000&wait=1"))
                    .await
                    .and_then(|v| serde_json::from_value(v).ok())
                {
                    Some(p) => p,
                    None => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
            for r in &page.records {
                self.record(r);
            }
            cursor = page.next_cursor;
        }
        self
    }

    /// The states of `code`.
    pub fn of(&self, code: &str) -> States {
        self.inner
            .lock()
            .unwrap()
            .get(code)
            .cloned()
            .unwrap_or_default()
    }
}

/// The status a reply text shows (0: not found), by the longest label it contains.
pub fn status_in_reply(text: &str) -> Option<u8> {
    if text.contains("Không tìm thấy") {
        return Some(0);
    }
    DossierStatus::ALL
        .iter()
        .filter(|s| text.contains(s.label()))
        .max_by_key(|s| s.label().len())
        .map(|s| s.code())
}

/// Checks that `observed` statuses can be read off `states` in version
/// order, never going back. Returns the first observation that cannot.
pub fn first_step_back(states: &States, observed: &[u8]) -> Option<(usize, u8)> {
    let mut at = 0;
    for (i, &status) in observed.iter().enumerate() {
        match states[at..].iter().position(|(_, s)| *s == status) {
            Some(offset) => at += offset,
            None => return Some((i, status)),
        }
    }
    None
}
