//! Shared by the core feed's integration tests (tests/sync/feed_synthetic.rs,
//! tests/sync/relay_postgres.rs): a minimal HTTP/1.1 client that insists on JSON
//! bodies, a feed client over it, and the version guard a reader applies.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use motcua_sms::feed::{ChangesPage, FeedRecord, SnapshotPage};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A minimal HTTP/1.1 exchange (one request per connection): status,
/// headers (names lowercase) and the JSON body.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    target: &str,
    token: Option<&str>,
) -> (u16, Vec<(String, String)>, Value) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let request = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}Content-Length: 0\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut raw))
        .await
        .expect("the core answers")
        .unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a full response");
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "content-type" && v.starts_with("application/json")),
        "{method} {target}: JSON expected, headers {headers:?}"
    );
    (status, headers, serde_json::from_str(body).unwrap())
}

/// Applies records with the version guard; returns how many applied.
pub fn apply(state: &mut BTreeMap<String, FeedRecord>, records: &[FeedRecord]) -> usize {
    let mut applied = 0;
    for r in records {
        let newer = state
            .get(&r.code)
            .is_none_or(|held| r.version > held.version);
        if newer {
            state.insert(r.code.clone(), r.clone());
            applied += 1;
        }
    }
    applied
}

/// A client of one core's feed.
#[derive(Debug, Clone)]
pub struct FeedClient {
    /// Where the core listens.
    pub addr: SocketAddr,
    /// The bearer token sent.
    pub token: String,
}

impl FeedClient {
    /// `method target` with the right token: (status, JSON body).
    pub async fn call(&self, method: &str, target: &str) -> (u16, Value) {
        let (status, _, body) = http(self.addr, method, target, Some(&self.token)).await;
        (status, body)
    }

    /// `GET target`, which must answer 200 with a `T`.
    pub async fn get<T: serde::de::DeserializeOwned>(&self, target: &str) -> T {
        let (status, body) = self.call("GET", target).await;
        assert_eq!(status, 200, "GET {target}: {body}");
        serde_json::from_value(body).unwrap()
    }

    /// Every page of a snapshot (pages of `limit`): epoch, head, records.
    pub async fn snapshot(&self, limit: usize) -> (String, String, Vec<FeedRecord>) {
        let first: SnapshotPage = self.get(&format!("/v1/snapshot?limit={limit}")).await;
        let (epoch, head) = (first.epoch.clone(), first.head_cursor.clone());
        let mut records = first.records;
        let mut token = first.next_page_token;
        while let Some(t) = token {
            let page: SnapshotPage = self
                .get(&format!("/v1/snapshot?limit={limit}&page_token={t}"))
                .await;
            assert_eq!(page.epoch, epoch);
            assert_eq!(
                page.head_cursor, head,
                "every page carries the start's head"
            );
            records.extend(page.records);
            token = page.next_page_token;
        }
        (epoch, head, records)
    }

    /// Follows the feed from `cursor` until it says nothing more is
    /// available now (pages of `limit`): the records and the last cursor.
    pub async fn follow(&self, mut cursor: String, limit: usize) -> (Vec<FeedRecord>, String) {
        let mut records = Vec::new();
        loop {
            let page: ChangesPage = self
                .get(&format!("/v1/changes?after={cursor}&limit={limit}"))
                .await;
            assert!(page.records.len() <= limit);
            records.extend(page.records);
            cursor = page.next_cursor;
            if !page.has_more {
                return (records, cursor);
            }
        }
    }
}
