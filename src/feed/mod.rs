//! The core feed (docs/core-feed.md): the wire types a core serves and the
//! gateway reads ([`ChangesPage`], [`SnapshotPage`], [`Digest`],
//! [`DigestBucket`], [`FeedRecord`], [`FeedError`]), the reconciliation
//! digest as pure functions ([`bucket_of`], [`digest`], [`bucket_hash`]), the
//! cursor encoding the synthetic core uses ([`Cursor`]), the HTTP layer any
//! core implementation plugs into ([`server`]: the [`server::FeedSource`]
//! trait and its axum router), and the synthetic core itself ([`synthetic`],
//! `motcua-sms core-sim`). The PostgreSQL relay is [`crate::relay`].
//!
//! Cursors are opaque to clients: only the core that issued one parses it.

pub mod server;
pub mod synthetic;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

use crate::domain::Dossier;
use crate::portal_record::{Checked, PortalRecord, RecordError};

/// Most records in one changes or snapshot page.
pub const MAX_LIMIT: usize = 1000;
/// Default `limit` of `GET /v1/changes`.
pub const DEFAULT_CHANGES_LIMIT: usize = 100;
/// Default `limit` of `GET /v1/snapshot`.
pub const DEFAULT_SNAPSHOT_LIMIT: usize = 500;
/// Longest long-poll, seconds.
pub const MAX_WAIT_SECS: u64 = 60;
/// Most digest buckets.
pub const MAX_BUCKETS: u32 = 4096;
/// Default digest buckets.
pub const DEFAULT_BUCKETS: u32 = 256;

/// One change or snapshot record: the portal's record (every field but
/// `MaHoSo` kept as sent) plus `version` and, for a tombstone, `deleted`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedRecord {
    /// `MaHoSo`, the dossier code.
    #[serde(rename = "MaHoSo")]
    pub code: String,
    /// The dossier's version; grows with every change, deletion included.
    pub version: i64,
    /// A tombstone: the dossier no longer exists.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// The other portal fields (`TenTTHC`, `TrangThaiHoSo`, …), as sent.
    #[serde(flatten)]
    pub fields: Map<String, Value>,
}

impl FeedRecord {
    /// A tombstone for `code` at `version`.
    pub fn tombstone(code: impl Into<String>, version: i64) -> Self {
        FeedRecord {
            code: code.into(),
            version,
            deleted: true,
            fields: Map::new(),
        }
    }

    /// Validates a live record into a dossier, as `motcua-sms import` does
    /// with a JSON line, with the optional fields it is kept without. A
    /// tombstone has no dossier: `Ok(None)`.
    pub fn to_checked(&self) -> Result<Option<Checked>, RecordError> {
        if self.deleted {
            return Ok(None);
        }
        let mut object = self.fields.clone();
        object.insert("MaHoSo".to_owned(), Value::String(self.code.clone()));
        object.insert("version".to_owned(), Value::from(self.version));
        let record: PortalRecord = serde_json::from_value(Value::Object(object))?;
        record.into_checked().map(Some)
    }

    /// [`FeedRecord::to_checked`] without the warnings.
    pub fn to_dossier(&self) -> Result<Option<Dossier>, RecordError> {
        Ok(self.to_checked()?.map(|checked| checked.dossier))
    }
}

/// `GET /v1/changes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangesPage {
    /// The core's epoch.
    pub epoch: String,
    /// The changes after the request's cursor, in commit order.
    pub records: Vec<FeedRecord>,
    /// Where to continue from.
    pub next_cursor: String,
    /// More changes are available now.
    pub has_more: bool,
    /// Approximately how many changes follow `next_cursor` now (a client's
    /// lag); absent when the core does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<u64>,
}

/// `GET /v1/snapshot`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotPage {
    /// The core's epoch.
    pub epoch: String,
    /// The change log's head noted when the snapshot started.
    pub head_cursor: String,
    /// Live records, ordered by `MaHoSo`.
    pub records: Vec<FeedRecord>,
    /// The next page's token; `None` on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// One bucket's summary in a [`Digest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketDigest {
    /// The bucket number, `0..buckets`.
    pub bucket: u32,
    /// Live dossiers in it.
    pub count: u64,
    /// [`bucket_hash`] of its entries.
    pub hash: String,
}

/// `GET /v1/digest`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Digest {
    /// The core's epoch.
    pub epoch: String,
    /// The log head this digest reflects.
    pub head_cursor: String,
    /// Number of buckets.
    pub buckets: u32,
    /// One per bucket, in bucket order.
    pub digests: Vec<BucketDigest>,
}

/// One (code, version) pair of a bucket.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DigestEntry {
    /// `MaHoSo`.
    pub code: String,
    /// Its version.
    pub version: i64,
}

/// `GET /v1/digest/{bucket}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DigestBucket {
    /// The core's epoch.
    pub epoch: String,
    /// The log head this listing reflects.
    pub head_cursor: String,
    /// Number of buckets.
    pub buckets: u32,
    /// This bucket.
    pub bucket: u32,
    /// Its entries, sorted by code.
    pub entries: Vec<DigestEntry>,
}

/// The machine-readable kind of a [`FeedError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// 400: a parameter missing, malformed or out of range.
    BadRequest,
    /// 401: bearer token missing or wrong.
    Unauthorized,
    /// 404: unknown path.
    NotFound,
    /// 410: the cursor precedes the retained log.
    CursorExpired,
    /// 410: the cursor or page token belongs to another epoch.
    EpochChanged,
    /// 429: too many requests.
    RateLimited,
    /// 503: temporarily unable to serve.
    Unavailable,
    /// A kind this version does not know (the protocol may add kinds).
    #[serde(other)]
    Unknown,
}

impl ErrorKind {
    /// The HTTP status this kind is sent with.
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::BadRequest => 400,
            ErrorKind::Unauthorized => 401,
            ErrorKind::NotFound => 404,
            ErrorKind::CursorExpired | ErrorKind::EpochChanged => 410,
            ErrorKind::RateLimited => 429,
            ErrorKind::Unavailable => 503,
            ErrorKind::Unknown => 500,
        }
    }
}

/// The JSON body of every error response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{error:?}: {message}")]
pub struct FeedError {
    /// What went wrong, for programs.
    pub error: ErrorKind,
    /// What went wrong, for people (names the parameter at fault).
    pub message: String,
    /// The core's epoch, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<String>,
}

impl FeedError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        FeedError {
            error: kind,
            message: message.into(),
            epoch: None,
        }
    }

    /// The same error, stamped with `epoch`.
    pub fn with_epoch(mut self, epoch: &str) -> Self {
        self.epoch = Some(epoch.to_owned());
        self
    }
}

/// The bucket of `code` among `buckets` (> 0): the first four bytes of
/// SHA-256(code), big-endian, modulo `buckets`.
pub fn bucket_of(code: &str, buckets: u32) -> u32 {
    let hash = Sha256::digest(code.as_bytes());
    let first = u32::from_be_bytes([hash[0], hash[1], hash[2], hash[3]]);
    first % buckets.max(1)
}

/// Lowercase hex SHA-256 over `"code\tversion\n"` lines of `entries`
/// sorted by code (byte order). The order `entries` come in does not matter.
pub fn bucket_hash<'a>(entries: impl IntoIterator<Item = (&'a str, i64)>) -> String {
    let mut sorted: Vec<(&str, i64)> = entries.into_iter().collect();
    sorted.sort_unstable();
    let mut hasher = Sha256::new();
    for (code, version) in sorted {
        hash_line(&mut hasher, code, version);
    }
    to_hex(&hasher.finalize())
}

/// Per-bucket count and hash of live `(code, version)` pairs, every bucket
/// present, in bucket order. The same function serves the core and the client.
pub fn digest<'a>(
    entries: impl IntoIterator<Item = (&'a str, i64)>,
    buckets: u32,
) -> Vec<BucketDigest> {
    let mut sorted: Vec<(&str, i64)> = entries.into_iter().collect();
    sorted.sort_unstable();
    let mut builder = DigestBuilder::new(buckets);
    for (code, version) in sorted {
        builder
            .push(code, version)
            .expect("sorted entries are in order");
    }
    builder.finish()
}

/// [`digest`] over entries that arrive already sorted by code (byte order),
/// one at a time: memory is per bucket, not per entry, so a core can stream
/// a million rows through it.
pub struct DigestBuilder {
    buckets: u32,
    hashers: Vec<(Sha256, u64)>,
    last: Option<String>,
}

/// An entry pushed into a [`DigestBuilder`] out of order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("digest entries out of order: {code:?} after {previous:?}")]
pub struct OutOfOrder {
    /// The code that came too late.
    pub code: String,
    /// The code before it.
    pub previous: String,
}

impl DigestBuilder {
    /// A builder of `buckets` (at least 1) buckets.
    pub fn new(buckets: u32) -> Self {
        let buckets = buckets.max(1);
        DigestBuilder {
            buckets,
            hashers: vec![(Sha256::new(), 0); buckets as usize],
            last: None,
        }
    }

    /// Adds one live entry; codes must come in byte order. One out of
    /// order is refused (nothing added): the digest would be wrong.
    pub fn push(&mut self, code: &str, version: i64) -> Result<(), OutOfOrder> {
        if let Some(previous) = &self.last {
            if code.as_bytes() < previous.as_bytes() {
                return Err(OutOfOrder {
                    code: code.to_owned(),
                    previous: previous.clone(),
                });
            }
        }
        let (hasher, count) = &mut self.hashers[bucket_of(code, self.buckets) as usize];
        hash_line(hasher, code, version);
        *count += 1;
        match &mut self.last {
            Some(last) => {
                last.clear();
                last.push_str(code);
            }
            None => self.last = Some(code.to_owned()),
        }
        Ok(())
    }

    /// The digest of every bucket, in bucket order.
    pub fn finish(self) -> Vec<BucketDigest> {
        self.hashers
            .into_iter()
            .enumerate()
            .map(|(bucket, (hasher, count))| BucketDigest {
                bucket: bucket as u32,
                count,
                hash: to_hex(&hasher.finalize()),
            })
            .collect()
    }
}

fn hash_line(hasher: &mut Sha256, code: &str, version: i64) {
    hasher.update(code.as_bytes());
    hasher.update(b"\t");
    hasher.update(version.to_string().as_bytes());
    hasher.update(b"\n");
}

/// The digest of records as a client holds them: tombstones skipped.
pub fn digest_records<'a>(
    records: impl IntoIterator<Item = &'a FeedRecord>,
    buckets: u32,
) -> Vec<BucketDigest> {
    digest(
        records
            .into_iter()
            .filter(|r| !r.deleted)
            .map(|r| (r.code.as_str(), r.version)),
        buckets,
    )
}

fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 0x0f)] as char);
    }
    out
}

/// The synthetic core's cursor: the epoch's serial and the sequence number
/// of the last change seen (0: before the first). Text `"{epoch:x}-{seq:x}"`,
/// lowercase hex; clients must treat it as opaque.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// The epoch's serial number.
    pub epoch: u64,
    /// The last change's sequence number included.
    pub seq: u64,
}

/// A cursor text the core never issued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a cursor of this core: {0:?}")]
pub struct BadCursor(pub String);

impl Cursor {
    /// The cursor's text.
    pub fn encode(self) -> String {
        format!("{:x}-{:x}", self.epoch, self.seq)
    }

    /// Parses a text made by [`Cursor::encode`].
    pub fn decode(text: &str) -> Result<Self, BadCursor> {
        let bad = || BadCursor(text.chars().take(64).collect());
        let (epoch, seq) = text.split_once('-').ok_or_else(bad)?;
        let hex = |s: &str| {
            if s.is_empty() || s.len() > 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            u64::from_str_radix(s, 16).ok()
        };
        Ok(Cursor {
            epoch: hex(epoch).ok_or_else(bad)?,
            seq: hex(seq).ok_or_else(bad)?,
        })
    }
}

#[cfg(test)]
mod tests;
