//! The read model behind a small trait: look a dossier up by code, and apply
//! a version-guarded upsert. The responder and the importer only see
//! [`DossierStore`]; SQLite is the embedded default ([`sqlite::SqliteStore`]).

pub mod sqlite;

use std::future::Future;

use crate::domain::{Dossier, DossierCode};

pub use sqlite::SqliteStore;

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
        /// The database URL (no credentials are ever put in it for SQLite).
        url: String,
        /// The cause.
        #[source]
        source: sqlx::Error,
    },
    /// Schema migration failed.
    #[error("cannot migrate the read model: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A query failed.
    #[error("read model query failed: {0}")]
    Query(#[from] sqlx::Error),
    /// A stored row no longer satisfies the domain rules.
    #[error("stored dossier {code} is corrupt: {reason}")]
    Corrupt {
        /// The row's code as stored.
        code: String,
        /// What is wrong.
        reason: String,
    },
}

/// The read model as the rest of the gateway sees it.
pub trait DossierStore: Send + Sync + 'static {
    /// The dossier with this code, if known.
    fn find(
        &self,
        code: &DossierCode,
    ) -> impl Future<Output = Result<Option<Dossier>, StoreError>> + Send;

    /// Stores these dossiers in one transaction; each is written only when
    /// its version is above the stored one. Outcomes are in input order.
    fn upsert_batch(
        &self,
        dossiers: &[Dossier],
    ) -> impl Future<Output = Result<Vec<UpsertOutcome>, StoreError>> + Send;
}
