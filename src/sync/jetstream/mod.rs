//! Fan-out of the core's changes over NATS JetStream, for several gateways
//! (docs/core-feed.md, "Fan-out over NATS JetStream").
//!
//! - [`publisher`]: `motcua-sms fanout`, [`publisher::JetStreamPublisher`]:
//!   follows any core feed (the relay, a core's own feed, `core-sim`) and
//!   publishes every record on a per-dossier subject of one stream that
//!   keeps the last message per subject.
//! - [`follower`]: `sync.mode = "jetstream"`, [`follower::JetStreamFollower`]:
//!   a gateway reads the stream with a durable pull consumer and acks after
//!   its local commit.
//!
//! What both sides agree on lives here: the subjects, the headers, the
//! control messages and the stream's configuration.
//!
//! Subjects, under a prefix (default `motcua`):
//!
//! - `<prefix>.dossier.<token>`: the dossier's latest record (the feed
//!   record's JSON, tombstones included). The token is the code made
//!   subject-safe by [`subject_token`]: `A-Z a-z 0-9 -` stay, `.` becomes
//!   `_`, any other byte (`_` and `=` included) becomes `=XX` (upper-case
//!   hex), so `000.00.12.H58-240315-0007` is `000_00_12_H58-240315-0007`
//!   and the mapping is reversible ([`code_of_token`]).
//! - `<prefix>.control.snapshot`: [`SnapshotMarker`], published after each
//!   complete snapshot the publisher took (the stream holds that snapshot
//!   and what followed it, nothing older).
//! - `<prefix>.control.publisher`: [`PublisherState`], the publisher's
//!   position in the core feed (where a restart resumes).
//!
//! Headers of a record message: `Nats-Msg-Id: <code>:<version>:<epoch>`
//! (the stream drops a message whose id it saw within its duplicate
//! window: a publisher that restarts and publishes again what it had
//! already published adds nothing) and `Motcua-Epoch: <epoch>`.

pub mod follower;
pub mod publisher;

use std::path::Path;
use std::time::Duration;

use async_nats::jetstream::stream;
use serde::{Deserialize, Serialize};

/// The sync source's name in the store.
pub const SOURCE: &str = "jetstream";
/// The stream's default name.
pub const DEFAULT_STREAM: &str = "MOTCUA_DOSSIERS";
/// The subjects' default prefix.
pub const DEFAULT_PREFIX: &str = "motcua";
/// The header carrying the core's epoch of a record or marker.
pub const EPOCH_HEADER: &str = "Motcua-Epoch";
/// The stream's default duplicate window.
pub const DEFAULT_DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// Why a fan-out exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum JetStreamError {
    /// The NATS server could not be reached or refused us.
    #[error("cannot connect to NATS at {url}: {source}")]
    Connect {
        /// The server URL as configured.
        url: String,
        /// The cause.
        #[source]
        source: async_nats::Error,
    },
    /// The credentials file could not be read.
    #[error("cannot read the NATS credentials file {path}: {source}")]
    Credentials {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A JetStream request failed.
    #[error("NATS JetStream: {what}: {source}")]
    Nats {
        /// What we were doing.
        what: &'static str,
        /// The cause.
        #[source]
        source: async_nats::Error,
    },
    /// The stream does not exist (yet).
    #[error("the stream {0} does not exist; start `motcua-sms fanout` first")]
    NoStream(String),
    /// Something in the stream is not what the fan-out writes.
    #[error("unexpected content in the stream: {0}")]
    Protocol(String),
    /// The core's feed failed (publisher).
    #[error(transparent)]
    Feed(#[from] crate::sync::client::FeedClientError),
    /// The read model failed (follower).
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl JetStreamError {
    /// Wraps a NATS error with what we were doing.
    pub(crate) fn nats(what: &'static str) -> impl FnOnce(async_nats::Error) -> JetStreamError {
        move |source| JetStreamError::Nats { what, source }
    }

    /// A short kind for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            JetStreamError::Connect { .. } | JetStreamError::Credentials { .. } => "unreachable",
            JetStreamError::Nats { .. } | JetStreamError::NoStream(_) => "nats",
            JetStreamError::Protocol(_) => "protocol",
            JetStreamError::Feed(_) => "feed",
            JetStreamError::Store(_) => "store",
        }
    }
}

/// The subjects of one fan-out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subjects {
    prefix: String,
}

/// What a subject of the stream carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectKind {
    /// A dossier's record; the decoded code.
    Dossier(String),
    /// A [`SnapshotMarker`].
    Snapshot,
    /// A [`PublisherState`].
    Publisher,
    /// Anything else.
    Other,
}

impl Subjects {
    /// The subjects under `prefix` (one or more subject tokens).
    pub fn new(prefix: &str) -> Self {
        Subjects {
            prefix: prefix.to_owned(),
        }
    }

    /// `<prefix>.dossier.<token>`.
    pub fn dossier(&self, code: &str) -> String {
        format!("{}.dossier.{}", self.prefix, subject_token(code))
    }

    /// `<prefix>.dossier.>`: every dossier.
    pub fn dossiers(&self) -> String {
        format!("{}.dossier.>", self.prefix)
    }

    /// `<prefix>.control.snapshot`.
    pub fn snapshot(&self) -> String {
        format!("{}.control.snapshot", self.prefix)
    }

    /// `<prefix>.control.publisher`.
    pub fn publisher(&self) -> String {
        format!("{}.control.publisher", self.prefix)
    }

    /// `<prefix>.>`: everything the stream holds.
    pub fn all(&self) -> String {
        format!("{}.>", self.prefix)
    }

    /// What `subject` carries.
    pub fn kind_of(&self, subject: &str) -> SubjectKind {
        let Some(rest) = subject
            .strip_prefix(self.prefix.as_str())
            .and_then(|r| r.strip_prefix('.'))
        else {
            return SubjectKind::Other;
        };
        if let Some(token) = rest.strip_prefix("dossier.") {
            return code_of_token(token).map_or(SubjectKind::Other, SubjectKind::Dossier);
        }
        match rest {
            "control.snapshot" => SubjectKind::Snapshot,
            "control.publisher" => SubjectKind::Publisher,
            _ => SubjectKind::Other,
        }
    }
}

/// A dossier code as one subject token (see the module's docs).
pub fn subject_token(code: &str) -> String {
    let mut token = String::with_capacity(code.len());
    for byte in code.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' => token.push(byte as char),
            b'.' => token.push('_'),
            other => token.push_str(&format!("={other:02X}")),
        }
    }
    if token.is_empty() {
        // An empty token would make an invalid subject.
        token.push('=');
    }
    token
}

/// The code a [`subject_token`] stands for; `None` when it is not one.
pub fn code_of_token(token: &str) -> Option<String> {
    if token == "=" {
        return Some(String::new());
    }
    let bytes = token.as_bytes();
    let mut code = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'_' => code.push(b'.'),
            b'=' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                code.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => code.push(b),
        }
        i += 1;
    }
    String::from_utf8(code).ok()
}

/// The `Nats-Msg-Id` of a record: `<code>:<version>:<epoch>`. The epoch is
/// part of it because a new epoch may reuse a (code, version) pair for
/// another state, which the stream must not drop as a duplicate.
pub fn message_id(code: &str, version: i64, epoch: &str) -> String {
    format!("{code}:{version}:{epoch}")
}

/// `<prefix>.control.snapshot`: the stream holds the complete snapshot of
/// `epoch` from stream sequence `from_seq` on (older dossier messages were
/// purged), and every change after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMarker {
    /// The core's epoch.
    pub epoch: String,
    /// The first stream sequence of the snapshot.
    pub from_seq: u64,
    /// Why the publisher took it (`bootstrap`, `cursor_expired`, `epoch_changed`).
    pub reason: String,
}

/// `<prefix>.control.publisher`: where the publisher is in the core feed.
/// Stored in the stream itself, so a stream that is recreated starts the
/// publisher from a new snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublisherState {
    /// The core's epoch.
    pub epoch: String,
    /// The feed cursor after the last change published (and acked).
    pub cursor: String,
    /// When the publisher last heard from the core (ms since the Unix
    /// epoch). Gateways take their freshness from it, so that a core that
    /// is down makes their replies say so even while NATS is up. Published
    /// with every position and at least every few seconds while the core
    /// answers. Absent from older publishers: then the message's arrival counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub core_ok_at_ms: Option<i64>,
}

/// The stream's configuration: every subject under the prefix, the last
/// message per subject, file storage, the duplicate window.
pub fn stream_config(
    name: &str,
    subjects: &Subjects,
    duplicate_window: Duration,
) -> stream::Config {
    stream::Config {
        name: name.to_owned(),
        description: Some(
            "motcua-sms: the one-stop core's dossiers, last record per dossier".into(),
        ),
        subjects: vec![subjects.all()],
        max_messages_per_subject: 1,
        duplicate_window,
        storage: stream::StorageType::File,
        num_replicas: 1,
        ..Default::default()
    }
}

/// Connects to `url` (`nats://host:port`, several separated by commas),
/// with a `.creds` file when given.
pub async fn connect(
    url: &str,
    credentials: Option<&Path>,
    name: &str,
) -> Result<async_nats::Client, JetStreamError> {
    let mut options = async_nats::ConnectOptions::new()
        .name(name)
        .connection_timeout(Duration::from_secs(5));
    if let Some(path) = credentials {
        options =
            options
                .credentials_file(path)
                .await
                .map_err(|source| JetStreamError::Credentials {
                    path: path.display().to_string(),
                    source,
                })?;
    }
    let servers: Vec<async_nats::ServerAddr> = url
        .split(',')
        .map(|s| s.trim().parse())
        .collect::<Result<_, _>>()
        .map_err(|e: std::io::Error| JetStreamError::Connect {
            url: url.to_owned(),
            source: Box::new(e),
        })?;
    options
        .connect(servers)
        .await
        .map_err(|e| JetStreamError::Connect {
            url: url.to_owned(),
            source: Box::new(e),
        })
}

/// Checks a NATS server URL list as [`connect`] reads it.
pub fn check_url(url: &str) -> Result<(), String> {
    if url.trim().is_empty() {
        return Err("is empty".into());
    }
    for part in url.split(',') {
        part.trim()
            .parse::<async_nats::ServerAddr>()
            .map_err(|e| format!("{part:?}: {e}"))?;
    }
    Ok(())
}

/// True for a usable stream or consumer name (no `.`, `*`, `>`, spaces).
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// True for a usable subject prefix: dot-separated tokens, no wildcards.
pub fn is_valid_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix.split('.').all(|token| {
            !token.is_empty()
                && token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_become_single_subject_tokens_and_back() {
        for code in [
            "000.00.12.H58-240315-0007",
            "38.98.H29-210519-0003",
            "odd_code=with spaces.*>",
            "",
            "Hồ sơ",
        ] {
            let token = subject_token(code);
            assert!(
                !token.is_empty() && !token.contains(['.', '*', '>', ' ']) && token.is_ascii(),
                "{token}"
            );
            assert_eq!(code_of_token(&token).as_deref(), Some(code), "{token}");
        }
        assert_eq!(
            subject_token("000.00.12.H58-240315-0007"),
            "000_00_12_H58-240315-0007"
        );
        assert_eq!(code_of_token("bad=Z"), None);
    }

    #[test]
    fn subjects_say_what_they_carry() {
        let s = Subjects::new("motcua.test");
        assert_eq!(
            s.dossier("38.98.H29-210519-0003"),
            "motcua.test.dossier.38_98_H29-210519-0003"
        );
        assert_eq!(
            s.kind_of(&s.dossier("38.98.H29-210519-0003")),
            SubjectKind::Dossier("38.98.H29-210519-0003".into())
        );
        assert_eq!(s.kind_of(&s.snapshot()), SubjectKind::Snapshot);
        assert_eq!(s.kind_of(&s.publisher()), SubjectKind::Publisher);
        assert_eq!(s.kind_of("motcua.other.x"), SubjectKind::Other);
        assert_eq!(s.kind_of("elsewhere.dossier.x"), SubjectKind::Other);
        assert_eq!(s.all(), "motcua.test.>");
    }

    #[test]
    fn names_and_urls_are_checked() {
        assert!(is_valid_name("MOTCUA_DOSSIERS"));
        assert!(!is_valid_name("a.b"));
        assert!(!is_valid_name(""));
        assert!(is_valid_prefix("motcua.hcm"));
        assert!(!is_valid_prefix("motcua.>"));
        assert!(!is_valid_prefix("motcua..x"));
        assert!(check_url("nats://127.0.0.1:4222").is_ok());
        assert!(check_url("nats://a:4222, nats://b:4222").is_ok());
        assert!(check_url("").is_err());
    }
}
