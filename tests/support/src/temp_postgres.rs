//! A throwaway PostgreSQL database for a test or a benchmark: created with
//! a random name through the maintenance connection `TEST_DATABASE_URL`
//! names (e.g. `postgres://postgres@127.0.0.1:5432`), dropped afterwards.
//! Included with `#[path]` by `tests/store_conformance.rs` and
//! `benches/apply_changes.rs`, so it needs nothing but sqlx.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::{Connection, Executor, PgConnection};

/// The environment variable naming the maintenance connection.
pub const ENV: &str = "TEST_DATABASE_URL";

/// The maintenance URL from [`ENV`], when set and not empty.
pub fn maintenance_url() -> Option<String> {
    std::env::var(ENV).ok().filter(|url| !url.trim().is_empty())
}

/// A database of its own, to be dropped with [`TempDatabase::drop`].
pub struct TempDatabase {
    maintenance: String,
    name: String,
    /// The URL of the new database.
    pub url: String,
}

impl TempDatabase {
    /// Creates a database with a fresh name on the server `maintenance` names.
    pub async fn create(maintenance: &str) -> TempDatabase {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "motcua_test_{}_{nanos}_{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let mut conn = PgConnection::connect(maintenance)
            .await
            .unwrap_or_else(|e| panic!("{ENV}: cannot connect to the maintenance database: {e}"));
        conn.execute(format!("CREATE DATABASE \"{name}\"").as_str())
            .await
            .unwrap_or_else(|e| panic!("cannot create database {name}: {e}"));
        conn.close().await.ok();
        TempDatabase {
            url: with_database(maintenance, &name),
            maintenance: maintenance.to_owned(),
            name,
        }
    }

    /// Drops the database, closing any connection still open to it.
    pub async fn drop(self) {
        let mut conn = PgConnection::connect(&self.maintenance)
            .await
            .unwrap_or_else(|e| panic!("{ENV}: cannot connect to the maintenance database: {e}"));
        conn.execute(format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name).as_str())
            .await
            .unwrap_or_else(|e| panic!("cannot drop database {}: {e}", self.name));
        conn.close().await.ok();
    }
}

/// `url` naming database `name` instead of its own (its query kept).
fn with_database(url: &str, name: &str) -> String {
    let (scheme, rest) = url
        .split_once("://")
        .unwrap_or_else(|| panic!("{ENV} must be a postgres:// URL"));
    let (before_query, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    let authority = match before_query.rfind('@') {
        Some(at) => {
            let host_end = before_query[at..]
                .find('/')
                .map_or(before_query.len(), |i| at + i);
            &before_query[..host_end]
        }
        None => before_query.split('/').next().unwrap_or(before_query),
    };
    match query {
        Some(query) => format!("{scheme}://{authority}/{name}?{query}"),
        None => format!("{scheme}://{authority}/{name}"),
    }
}
