//! The read model `database.url` names: [`ReadModel::open`] picks SQLite
//! (`sqlite:…`, the embedded default) or PostgreSQL (`postgres://…` or
//! `postgresql://…`, for production) by the URL's scheme, and the result is
//! a [`DossierLookup`] and [`DossierWriter`] like either, so the gateway is written once for both.

use super::{
    ApplyMode, ApplyReport, Change, DossierLookup, DossierWriter, ExchangeError, PostgresStore,
    SqliteStore, StoreError, SyncCheckpoint, SyncStatus, UpsertOutcome,
};
use crate::domain::{Dossier, DossierCode};

/// The read model in whichever database `database.url` names.
#[derive(Clone)]
pub enum ReadModel {
    /// A SQLite file (or `sqlite::memory:`).
    Sqlite(SqliteStore),
    /// A PostgreSQL database.
    Postgres(PostgresStore),
}

/// Runs the same expression on whichever store `self` holds.
macro_rules! on_store {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            ReadModel::Sqlite($store) => $call,
            ReadModel::Postgres($store) => $call,
        }
    };
}

impl ReadModel {
    /// Opens and migrates the database `url` names: `sqlite://path/to/file.db`
    /// (or any `sqlite:` URL), or `postgres://user:password@host/database`
    /// (or `postgresql://…`). Another scheme is
    /// [`StoreError::UnsupportedUrl`]; errors never show a password.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(ReadModel::Sqlite(SqliteStore::open(url).await?))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(ReadModel::Postgres(PostgresStore::open(url).await?))
        } else {
            Err(StoreError::UnsupportedUrl {
                scheme: scheme_of(url).map(str::to_owned),
            })
        }
    }

    /// `sqlite` or `postgres`, for logs and `status`.
    pub fn dialect(&self) -> &'static str {
        match self {
            ReadModel::Sqlite(_) => "sqlite",
            ReadModel::Postgres(_) => "postgres",
        }
    }

    /// Number of dossiers stored.
    pub async fn count(&self) -> Result<i64, StoreError> {
        on_store!(self, store => store.count().await)
    }

    /// Closes the pool, waiting for connections to finish.
    pub async fn close(&self) {
        on_store!(self, store => store.close().await)
    }
}

/// The text before a URL's first `:`, when it looks like a scheme
/// (RFC 3986: a letter, then letters, digits, `+`, `-`, `.`).
fn scheme_of(url: &str) -> Option<&str> {
    let (scheme, _) = url.split_once(':')?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then_some(scheme)
}

impl DossierLookup for ReadModel {
    async fn find(&self, code: &DossierCode) -> Result<Option<Dossier>, StoreError> {
        on_store!(self, store => store.find(code).await)
    }

    async fn find_by_digits(
        &self,
        digits: &str,
        limit: u32,
    ) -> Result<Vec<DossierCode>, StoreError> {
        on_store!(self, store => store.find_by_digits(digits, limit).await)
    }
}

impl DossierWriter for ReadModel {
    async fn upsert_batch(&self, dossiers: &[Dossier]) -> Result<Vec<UpsertOutcome>, StoreError> {
        on_store!(self, store => store.upsert_batch(dossiers).await)
    }

    async fn apply(
        &self,
        changes: &[Change],
        mode: ApplyMode,
        checkpoint: Option<&SyncCheckpoint>,
    ) -> Result<ApplyReport, StoreError> {
        on_store!(self, store => store.apply(changes, mode, checkpoint).await)
    }

    async fn finish_snapshot(
        &self,
        generation: i64,
        authoritative: bool,
        checkpoint: &SyncCheckpoint,
    ) -> Result<u64, StoreError> {
        on_store!(self, store => store.finish_snapshot(generation, authoritative, checkpoint).await)
    }

    async fn sync_status(&self, source: &str) -> Result<Option<SyncStatus>, StoreError> {
        on_store!(self, store => store.sync_status(source).await)
    }

    async fn all_sync_status(&self) -> Result<Vec<SyncStatus>, StoreError> {
        on_store!(self, store => store.all_sync_status().await)
    }

    async fn note_exchange(
        &self,
        source: &str,
        at_ms: i64,
        outcome: Result<Option<u64>, &ExchangeError>,
    ) -> Result<(), StoreError> {
        on_store!(self, store => store.note_exchange(source, at_ms, outcome).await)
    }

    async fn live_versions(&self) -> Result<Vec<(String, i64)>, StoreError> {
        on_store!(self, store => store.live_versions().await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_scheme_picks_the_dialect() {
        let store = ReadModel::open("sqlite::memory:").await.unwrap();
        assert_eq!(store.dialect(), "sqlite");
        assert_eq!(store.count().await.unwrap(), 0);
        store.close().await;
    }

    #[tokio::test]
    async fn another_scheme_is_refused_by_name() {
        for (url, shown) in [
            ("mysql://root:hunter2@db/motcua", "scheme `mysql:`"),
            ("var/motcua.db", "without a scheme"),
        ] {
            let Err(error) = ReadModel::open(url).await else {
                panic!("{url} opened");
            };
            let text = error.to_string();
            assert!(matches!(error, StoreError::UnsupportedUrl { .. }), "{text}");
            assert!(text.contains(shown), "{text}");
            assert!(
                text.contains("sqlite://") && text.contains("postgres://"),
                "{text}"
            );
            assert!(!text.contains("hunter2"), "{text}");
        }
    }

    #[tokio::test]
    async fn a_failed_connection_does_not_show_the_password() {
        // Port 1 on the loopback: refused at once, no server needed.
        let url = "postgres://motcua:hunter2@127.0.0.1:1/motcua?password=hunter2&connect_timeout=2";
        let Err(error) = ReadModel::open(url).await else {
            panic!("connected to port 1");
        };
        let text = format!("{error} / {error:?}");
        assert!(matches!(error, StoreError::Open { .. }), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("motcua:***@127.0.0.1:1"), "{text}");
    }
}
