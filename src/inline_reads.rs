//! Hot one-row lookups run on the calling thread with plain SQLite
//! connections (rusqlite), beside a file's sqlx pool.
//!
//! An sqlx query is a message to its connection's worker thread and back
//! (and a ping when the connection returns to the pool): several thread
//! wake-ups for a read that SQLite answers in microseconds. Under load those
//! wake-ups cost more CPU than the reads. The lookups done for every message
//! (the sender's abuse state, the dossier) are therefore run here, inline.
//!
//! Only for reads of a row or two by an index: they touch a handful of
//! cached pages, and in WAL mode a reader never waits for a writer. The
//! connections have no busy timeout, so the calling (runtime) thread never
//! sleeps in SQLite: in the rare moment a read cannot start at once (a WAL
//! being recovered or reset; a file not in WAL mode being written) it fails
//! at once, and the caller falls back to its sqlx query.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

/// Idle connections kept (one per runtime worker is plenty).
const MAX_IDLE: usize = 8;

/// Read-only connections to one SQLite file, opened on demand.
#[derive(Debug)]
pub(crate) struct InlineReads {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl InlineReads {
    /// For the database file at `path`, which sqlx has opened (and
    /// migrated): nothing is created. `None` when it cannot be opened, e.g.
    /// because it is one of sqlx's in-memory databases.
    pub(crate) fn new(path: &Path) -> Option<Self> {
        // sqlx names its in-memory databases `file:sqlx-in-memory-<n>`.
        if path.as_os_str() == ":memory:" || path.to_string_lossy().starts_with("file:") {
            return None;
        }
        let conn = open(path).ok()?;
        Some(InlineReads {
            path: path.to_owned(),
            idle: Mutex::new(vec![conn]),
        })
    }

    /// Runs `read` on an idle connection (opening one when none is).
    pub(crate) fn read<T>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        let taken = self.idle().pop();
        let conn = match taken {
            Some(conn) => conn,
            None => open(&self.path)?,
        };
        let result = read(&conn);
        let mut idle = self.idle();
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
        result
    }

    fn idle(&self) -> MutexGuard<'_, Vec<Connection>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // Fail at once rather than sleep on the runtime's thread (see above).
    conn.busy_timeout(Duration::ZERO)?;
    conn.pragma_update(None, "query_only", true)?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_file_and_refuses_memory_and_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let writer = Connection::open(&path).unwrap();
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL; CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (7);",
            )
            .unwrap();
        let reads = InlineReads::new(&path).unwrap();
        let v: i64 = reads
            .read(|c| c.query_row("SELECT v FROM t", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(v, 7);
        // Writes are refused.
        assert!(reads.read(|c| c.execute("DELETE FROM t", [])).is_err());
        // A write committed since is seen by the next read.
        writer.execute("UPDATE t SET v = 8", []).unwrap();
        let v: i64 = reads
            .read(|c| c.query_row("SELECT v FROM t", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(v, 8);
        assert!(InlineReads::new(Path::new("file:sqlx-in-memory-0")).is_none());
        assert!(InlineReads::new(Path::new(":memory:")).is_none());
        assert!(InlineReads::new(&dir.path().join("missing.db")).is_none());
    }
}
