//! The read model behind a small trait: look a dossier up by code, apply
//! version-guarded changes (with tombstones for deletions) together with the
//! sync position they bring the model to, and list `(code, version)` pairs
//! for the reconciliation digest. Two traits split the read model by who
//! uses it: the responder sees only [`DossierLookup`] (what a reply needs),
//! the sync workers and the importer [`DossierWriter`] (changes,
//! positions, digests). SQLite is the embedded default
//! ([`sqlite::SqliteStore`]), PostgreSQL the production choice
//! ([`postgres::PostgresStore`]), and [`ReadModel`] opens either from
//! `database.url`. Both dialects share their row types and their version
//! decision (`rows`), so they behave alike.

pub mod freshness;
pub mod postgres;
pub mod read_model;
mod rows;
pub mod sqlite;

use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::domain::{Dossier, DossierCode};

pub use freshness::Freshness;
pub use postgres::PostgresStore;
pub use read_model::ReadModel;
pub use sqlite::SqliteStore;

/// One change from the core, full state.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// The dossier as it is at `version`.
    Upsert(Dossier),
    /// The dossier no longer exists as of `version`.
    Delete {
        /// Its code.
        code: DossierCode,
        /// The deletion's version.
        version: i64,
    },
}

impl Change {
    /// The dossier's code.
    pub fn code(&self) -> &DossierCode {
        match self {
            Change::Upsert(d) => &d.code,
            Change::Delete { code, .. } => code,
        }
    }

    /// The change's version.
    pub fn version(&self) -> i64 {
        match self {
            Change::Upsert(d) => d.version,
            Change::Delete { version, .. } => *version,
        }
    }
}

/// How [`DossierWriter::apply`] treats versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyMode {
    /// A change is written only when its version is above the one held for
    /// its dossier, live or deleted (the version guard).
    Guarded,
    /// A snapshot page: guarded, and every dossier of the batch is marked as
    /// listed in snapshot `generation` (written or not).
    Snapshot {
        /// The snapshot's generation.
        generation: i64,
    },
    /// The core's word is final whatever the versions: a new epoch's
    /// snapshot (versions may have been rewritten), or a digest repair of a
    /// dossier held at a version the core never had. Marks like `Snapshot`.
    Authoritative {
        /// The snapshot's generation.
        generation: i64,
    },
}

/// What a batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Dossiers inserted or replaced by a newer version.
    pub written: u64,
    /// Dossiers deleted (tombstones written).
    pub deleted: u64,
    /// Changes the version guard refused (replays, overlaps, stale copies).
    pub unchanged: u64,
}

impl ApplyReport {
    /// Changes that altered the read model.
    pub fn altered(&self) -> u64 {
        self.written + self.deleted
    }
}

/// Where a sync source's stream stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "stage", rename_all = "snake_case")]
pub enum SyncStage {
    /// Copying the core's snapshot, page by page.
    Snapshot {
        /// The change log head noted when the snapshot started: streaming
        /// resumes there.
        head_cursor: String,
        /// The next page to read; `None` for the first page.
        page_token: Option<String>,
        /// The core's records win whatever their versions (new epoch).
        authoritative: bool,
    },
    /// Following the change log.
    Streaming {
        /// The cursor to ask for changes after.
        cursor: String,
    },
}

/// The position a batch brings a sync source to, stored in the batch's
/// transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncCheckpoint {
    /// The source's name (`feed`, `jetstream`, `push`).
    pub source: String,
    /// The core's epoch.
    pub epoch: String,
    /// Snapshot or streaming, and where.
    pub stage: SyncStage,
    /// The current snapshot generation.
    pub generation: i64,
    /// Changes the core said it still had after this position, when it said.
    pub pending: Option<u64>,
}

/// A sync source's state as stored, for `motcua-sms status`, metrics and
/// the staleness label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncStatus {
    /// The position.
    pub checkpoint: SyncCheckpoint,
    /// Last successful exchange with the core, ms since the Unix epoch.
    pub last_ok_at_ms: Option<i64>,
    /// Last change applied, ms since the Unix epoch.
    pub last_applied_at_ms: Option<i64>,
    /// Changes that altered the read model, since the source was first used.
    pub applied_total: u64,
    /// The last failure, cleared by the next success.
    pub last_error: Option<String>,
}

/// What an upsert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpsertOutcome {
    /// The dossier was new.
    Inserted,
    /// A newer version replaced the stored one.
    Updated,
    /// The stored version is equal or newer; nothing changed.
    Unchanged,
}

/// Storage failures, with the underlying cause.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened or migrated.
    #[error("cannot open the read model at {url}: {source}")]
    Open {
        /// The database URL, its password replaced by `***` ([`crate::db::redact_url`]).
        url: String,
        /// The cause.
        #[source]
        source: sqlx::Error,
    },
    /// `database.url` names a database the read model cannot use.
    #[error(
        "the read model's database URL {}is not supported: use sqlite://path/to/file.db \
         or postgres://user@host/database (postgresql:// also works)",
        scheme_shown(.scheme.as_deref())
    )]
    UnsupportedUrl {
        /// The URL's scheme (the text before its first `:`), if it has one.
        scheme: Option<String>,
    },
    /// Schema migration failed.
    #[error("cannot migrate the read model: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A query failed.
    #[error("read model query failed: {0}")]
    Query(#[from] sqlx::Error),
    /// A stored sync position cannot be read back.
    #[error("stored sync state of {source_name} is corrupt: {reason}")]
    CorruptSyncState {
        /// The sync source.
        source_name: String,
        /// What is wrong.
        reason: String,
    },
    /// A stored row no longer satisfies the domain rules.
    #[error("stored dossier {code} is corrupt: {reason}")]
    Corrupt {
        /// The row's code as stored.
        code: String,
        /// What is wrong.
        reason: String,
    },
}

/// Why an exchange with the core failed, as [`DossierWriter::note_exchange`]
/// takes it: any error of the sync layer (the feed client's, JetStream's).
pub type ExchangeError = dyn std::error::Error + Send + Sync;

/// A stored code read back as a [`DossierCode`].
fn stored_code(code: String) -> Result<DossierCode, StoreError> {
    DossierCode::parse(&code).map_err(|error| StoreError::Corrupt {
        reason: error.to_string(),
        code,
    })
}

fn scheme_shown(scheme: Option<&str>) -> String {
    match scheme {
        Some(scheme) => format!("scheme `{scheme}:` "),
        None => "without a scheme ".to_owned(),
    }
}

/// The read model as a reply needs it: a dossier by its code, or the codes
/// a keypad's digits may mean. What the responder (and so every channel
/// answering citizens, the public page and the console's preview) uses.
pub trait DossierLookup: Send + Sync + 'static {
    /// The dossier with this code, if known.
    fn find(
        &self,
        code: &DossierCode,
    ) -> impl Future<Output = Result<Option<Dossier>, StoreError>> + Send;

    /// The codes of the dossiers whose digits are `digits` (the canonical
    /// code with its letters, dots and dashes left out, as a phone keypad
    /// types it), at most `limit`, in code order.
    fn find_by_digits(
        &self,
        digits: &str,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<DossierCode>, StoreError>> + Send;
}

/// The read model as its writers see it (the sync workers, the push
/// webhook, `import`): changes applied under the version guard with the
/// position they bring a sync source to, that position and the source's
/// health read back and noted, and the live versions the reconciliation
/// digest is computed from.
pub trait DossierWriter: Send + Sync + 'static {
    /// Stores these dossiers in one transaction; each is written only when
    /// its version is above the stored one. Outcomes are in input order.
    fn upsert_batch(
        &self,
        dossiers: &[Dossier],
    ) -> impl Future<Output = Result<Vec<UpsertOutcome>, StoreError>> + Send;

    /// Applies `changes` in one transaction, in order, as `mode` says, and
    /// stores `checkpoint` (when given) in the same transaction, clearing the
    /// source's last error and stamping its last success.
    fn apply(
        &self,
        changes: &[Change],
        mode: ApplyMode,
        checkpoint: Option<&SyncCheckpoint>,
    ) -> impl Future<Output = Result<ApplyReport, StoreError>> + Send;

    /// Ends snapshot `generation`: every live dossier it did not list is
    /// deleted (tombstoned, unless `authoritative`: then the old epoch's
    /// tombstones are dropped too, their versions no longer comparable).
    /// Stores `checkpoint` in the same transaction. Returns the deletions.
    fn finish_snapshot(
        &self,
        generation: i64,
        authoritative: bool,
        checkpoint: &SyncCheckpoint,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// The stored state of sync `source`, if it ever ran.
    fn sync_status(
        &self,
        source: &str,
    ) -> impl Future<Output = Result<Option<SyncStatus>, StoreError>> + Send;

    /// Every source's stored state, by name.
    fn all_sync_status(&self) -> impl Future<Output = Result<Vec<SyncStatus>, StoreError>> + Send;

    /// Notes an exchange with the core for `source` (which must have a
    /// state): on success, the time and the pending count, clearing the
    /// last error; on failure, the error (stored as its message). Changes
    /// no data.
    fn note_exchange(
        &self,
        source: &str,
        at_ms: i64,
        outcome: Result<Option<u64>, &ExchangeError>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Every live dossier's `(code, version)`, any order (for the digest).
    fn live_versions(&self) -> impl Future<Output = Result<Vec<(String, i64)>, StoreError>> + Send;
}
