//! A core serving a fixed list of records over the feed protocol
//! (`motcua_sms::feed::server`), for tests that need records the synthetic
//! core never makes (fields a real core gets wrong). The change log is the
//! records in order: cursor `n` is "after the first n records".

use std::net::SocketAddr;
use std::sync::Arc;

use motcua_sms::feed::server::{router, ChangeSignal, ChangeWatch, FeedSource};
use motcua_sms::feed::{
    bucket_of, digest_records, ChangesPage, Digest, DigestBucket, DigestEntry, ErrorKind,
    FeedError, FeedRecord, SnapshotPage,
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::core::TOKEN;

const EPOCH: &str = "fixed-1";

struct Fixed {
    records: Vec<FeedRecord>,
    signal: ChangeSignal,
}

impl Fixed {
    /// The offset a cursor or page token names.
    fn offset(&self, text: &str, parameter: &str) -> Result<usize, FeedError> {
        text.parse::<usize>()
            .ok()
            .filter(|n| *n <= self.records.len())
            .ok_or_else(|| FeedError::new(ErrorKind::BadRequest, format!("{parameter}: unknown")))
    }

    fn page(&self, from: usize, limit: usize) -> (Vec<FeedRecord>, usize) {
        let to = (from + limit).min(self.records.len());
        (self.records[from..to].to_vec(), to)
    }
}

impl FeedSource for Fixed {
    async fn epoch(&self) -> Result<String, FeedError> {
        Ok(EPOCH.to_owned())
    }

    async fn changes(&self, after: &str, limit: usize) -> Result<ChangesPage, FeedError> {
        let (records, next) = self.page(self.offset(after, "after")?, limit);
        Ok(ChangesPage {
            epoch: EPOCH.to_owned(),
            records,
            next_cursor: next.to_string(),
            has_more: next < self.records.len(),
            pending: Some((self.records.len() - next) as u64),
        })
    }

    fn subscribe(&self) -> ChangeWatch {
        self.signal.subscribe()
    }

    async fn snapshot(
        &self,
        page_token: Option<&str>,
        limit: usize,
    ) -> Result<SnapshotPage, FeedError> {
        let from = match page_token {
            Some(token) => self.offset(token, "page_token")?,
            None => 0,
        };
        let (records, next) = self.page(from, limit);
        Ok(SnapshotPage {
            epoch: EPOCH.to_owned(),
            head_cursor: self.records.len().to_string(),
            records,
            next_page_token: (next < self.records.len()).then(|| next.to_string()),
        })
    }

    async fn digest(&self, buckets: u32) -> Result<Digest, FeedError> {
        Ok(Digest {
            epoch: EPOCH.to_owned(),
            head_cursor: self.records.len().to_string(),
            buckets,
            digests: digest_records(&self.records, buckets),
        })
    }

    async fn digest_bucket(&self, buckets: u32, bucket: u32) -> Result<DigestBucket, FeedError> {
        let mut entries: Vec<DigestEntry> = self
            .records
            .iter()
            .filter(|r| !r.deleted && bucket_of(&r.code, buckets) == bucket)
            .map(|r| DigestEntry {
                code: r.code.clone(),
                version: r.version,
            })
            .collect();
        entries.sort();
        Ok(DigestBucket {
            epoch: EPOCH.to_owned(),
            head_cursor: self.records.len().to_string(),
            buckets,
            bucket,
            entries,
        })
    }
}

/// A running fixed core (bearer token [`TOKEN`]).
pub struct FixedCore {
    pub addr: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl FixedCore {
    /// Serves `records` (each a record as the feed sends it) on a free port.
    pub async fn start(records: &[serde_json::Value]) -> FixedCore {
        let records = records
            .iter()
            .map(|r| serde_json::from_value(r.clone()).expect("a feed record"))
            .collect();
        let source = Arc::new(Fixed {
            records,
            signal: ChangeSignal::new(),
        });
        let stop = CancellationToken::new();
        let app = router(source, Some(TOKEN.to_owned()), stop.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let until = stop.clone();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(until.cancelled_owned())
                .await
                .expect("fixed core serves");
        });
        FixedCore { addr, stop, task }
    }

    /// The feed's base URL.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}
