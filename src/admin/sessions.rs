//! Logged-in sessions of the admin console: a browser's cookie session
//! (with its CSRF token) or a script's bearer token, both made by a
//! successful [`Accounts::login`](super::accounts::Accounts::login). Only the
//! SHA-256 of a secret is stored. Every use reads the account again, so a
//! role change or a disabled account counts from the next request; a
//! password change or reset ends the account's other sessions.

use argon2::password_hash::rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use sqlx::SqlitePool;

use super::accounts::{AccountError, Role};

/// How a session was made and is presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SessionKind {
    /// A browser's cookie; changes need the CSRF header.
    Cookie,
    /// A script's `Authorization: Bearer` token.
    Bearer,
}

impl SessionKind {
    fn as_str(self) -> &'static str {
        match self {
            SessionKind::Cookie => "cookie",
            SessionKind::Bearer => "bearer",
        }
    }
}

/// How long sessions last.
#[derive(Debug, Clone, Copy)]
pub struct SessionPolicy {
    /// A cookie session ends after this long unused (ms).
    pub idle_ms: i64,
    /// A cookie session ends this long after the login, used or not (ms).
    pub max_ms: i64,
    /// A bearer token ends this long after it was made (ms).
    pub token_ms: i64,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        SessionPolicy {
            idle_ms: 30 * 60 * 1000,
            max_ms: 12 * 60 * 60 * 1000,
            token_ms: 90 * 24 * 60 * 60 * 1000,
        }
    }
}

/// A session in force, with the account as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveSession {
    /// The account.
    pub username: String,
    /// Its role now.
    pub role: Role,
    /// It must change its password before anything else.
    pub must_change_password: bool,
    /// Cookie or bearer.
    pub kind: SessionKind,
    /// The token a cookie session's changes must carry (empty for bearer).
    pub csrf_token: String,
    /// When it ends at the latest (Unix ms).
    pub expires_at: i64,
    /// The stored hash, to end exactly this session.
    token_hash: String,
}

/// A session just made: the secret is shown once and never stored.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// The cookie value or bearer token.
    pub secret: String,
    /// The session.
    pub session: ActiveSession,
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    token_hash: String,
    username: String,
    kind: String,
    csrf_token: String,
    last_seen_at: i64,
    expires_at: i64,
    role: String,
    must_change: i64,
    disabled: i64,
}

/// The sessions table.
#[derive(Clone)]
pub struct Sessions {
    pool: SqlitePool,
    policy: SessionPolicy,
}

/// 32 random bytes as hex: a secret nobody can guess.
fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    hex(&bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn digest(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// Last-seen times are written at most this often per session.
const TOUCH_EVERY_MS: i64 = 60 * 1000;

impl Sessions {
    /// Sessions in the gateway database (`db::GatewayDb`, which migrated it).
    pub fn new(pool: SqlitePool, policy: SessionPolicy) -> Self {
        Sessions { pool, policy }
    }

    /// The policy in force.
    pub fn policy(&self) -> SessionPolicy {
        self.policy
    }

    /// Makes a session for an account that just logged in.
    ///
    /// # Errors
    ///
    /// [`AccountError::Database`].
    pub async fn start(
        &self,
        username: &str,
        role: Role,
        must_change_password: bool,
        kind: SessionKind,
        label: &str,
        now: i64,
    ) -> Result<NewSession, AccountError> {
        let secret = random_secret();
        let token_hash = digest(&secret);
        let csrf_token = match kind {
            SessionKind::Cookie => random_secret(),
            SessionKind::Bearer => String::new(),
        };
        let expires_at = now
            + match kind {
                SessionKind::Cookie => self.policy.max_ms,
                SessionKind::Bearer => self.policy.token_ms,
            };
        sqlx::query(
            "INSERT INTO admin_sessions (token_hash, username, kind, csrf_token, label, created_at, \
             last_seen_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&token_hash)
        .bind(username)
        .bind(kind.as_str())
        .bind(&csrf_token)
        .bind(label)
        .bind(now)
        .bind(now)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        sqlx::query("DELETE FROM admin_sessions WHERE expires_at <= ?")
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(NewSession {
            secret,
            session: ActiveSession {
                username: username.to_owned(),
                role,
                must_change_password,
                kind,
                csrf_token,
                expires_at,
                token_hash,
            },
        })
    }

    /// The session `secret` opens, if it is in force and its account is
    /// enabled; `None` otherwise (unknown, expired, idle too long, disabled).
    ///
    /// # Errors
    ///
    /// [`AccountError::Database`], or a stored role that is not one.
    pub async fn resolve(
        &self,
        secret: &str,
        now: i64,
    ) -> Result<Option<ActiveSession>, AccountError> {
        if secret.len() != 64 || !secret.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let token_hash = digest(secret);
        let row: Option<SessionRow> = sqlx::query_as(
            "SELECT s.token_hash, s.username, s.kind, s.csrf_token, s.last_seen_at, s.expires_at, \
                    a.role, a.must_change, a.disabled \
             FROM admin_sessions s JOIN accounts a ON a.username = s.username \
             WHERE s.token_hash = ?",
        )
        .bind(&token_hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let kind = if row.kind == "cookie" {
            SessionKind::Cookie
        } else {
            SessionKind::Bearer
        };
        let idle = kind == SessionKind::Cookie && row.last_seen_at + self.policy.idle_ms <= now;
        if row.disabled == 1 || row.expires_at <= now || idle {
            self.end_hash(&row.token_hash).await?;
            return Ok(None);
        }
        if now - row.last_seen_at >= (self.policy.idle_ms / 4).min(TOUCH_EVERY_MS) {
            sqlx::query("UPDATE admin_sessions SET last_seen_at = ? WHERE token_hash = ?")
                .bind(now)
                .bind(&row.token_hash)
                .execute(&self.pool)
                .await?;
        }
        Ok(Some(ActiveSession {
            username: row.username,
            role: Role::parse(&row.role)?,
            must_change_password: row.must_change == 1,
            kind,
            csrf_token: row.csrf_token,
            expires_at: row.expires_at,
            token_hash: row.token_hash,
        }))
    }

    /// Ends one session (log out).
    ///
    /// # Errors
    ///
    /// [`AccountError::Database`].
    pub async fn end(&self, session: &ActiveSession) -> Result<(), AccountError> {
        self.end_hash(&session.token_hash).await
    }

    async fn end_hash(&self, token_hash: &str) -> Result<(), AccountError> {
        sqlx::query("DELETE FROM admin_sessions WHERE token_hash = ?")
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Ends every session of `username` except `keep` (after a password
    /// change, a reset or a disable).
    ///
    /// # Errors
    ///
    /// [`AccountError::Database`].
    pub async fn end_others(
        &self,
        username: &str,
        keep: Option<&ActiveSession>,
    ) -> Result<u64, AccountError> {
        let keep = keep.map(|s| s.token_hash.as_str()).unwrap_or("");
        let done = sqlx::query("DELETE FROM admin_sessions WHERE username = ? AND token_hash <> ?")
            .bind(username)
            .bind(keep)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Sessions in force now, per account (for the console's account list).
    ///
    /// # Errors
    ///
    /// [`AccountError::Database`].
    pub async fn count_by_user(&self, now: i64) -> Result<Vec<(String, i64)>, AccountError> {
        Ok(sqlx::query_as(
            "SELECT username, count(*) FROM admin_sessions WHERE expires_at > ? GROUP BY username",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::accounts::{Accounts, LockoutPolicy, NewPassword, Username};
    use crate::db::{Durability, GatewayDb};

    async fn setup(
        dir: &tempfile::TempDir,
        policy: SessionPolicy,
    ) -> (Sessions, Accounts, GatewayDb) {
        let db = GatewayDb::open(
            &format!("sqlite://{}/journal.db", dir.path().display()),
            Durability::Full,
        )
        .await
        .unwrap();
        let accounts = Accounts::new(db.pool().legacy_sqlite().clone(), LockoutPolicy::default());
        let name = Username::parse("lan").unwrap();
        accounts
            .create(
                "cli",
                &name,
                Role::Operator,
                NewPassword::parse("mot-hai-ba-bon", &name).unwrap(),
                0,
            )
            .await
            .unwrap();
        (
            Sessions::new(db.pool().legacy_sqlite().clone(), policy),
            accounts,
            db,
        )
    }

    #[tokio::test]
    async fn a_session_resolves_by_its_secret_only_and_ends_on_logout() {
        let dir = tempfile::tempdir().unwrap();
        let (sessions, _accounts, _db) = setup(&dir, SessionPolicy::default()).await;
        let made = sessions
            .start("lan", Role::Operator, true, SessionKind::Cookie, "", 1_000)
            .await
            .unwrap();
        assert_eq!(made.secret.len(), 64);
        assert_eq!(made.session.csrf_token.len(), 64);
        assert_ne!(made.secret, made.session.csrf_token);
        let found = sessions
            .resolve(&made.secret, 2_000)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.username, "lan");
        assert_eq!(found.role, Role::Operator);
        assert!(found.must_change_password);
        assert_eq!(found.csrf_token, made.session.csrf_token);
        assert!(sessions
            .resolve(&"0".repeat(64), 2_000)
            .await
            .unwrap()
            .is_none());
        assert!(sessions.resolve("not hex", 2_000).await.unwrap().is_none());
        // Only the hash is stored.
        let stored: Vec<(String,)> = sqlx::query_as("SELECT token_hash FROM admin_sessions")
            .fetch_all(&sessions.pool)
            .await
            .unwrap();
        assert!(stored.iter().all(|(h,)| h != &made.secret));
        sessions.end(&found).await.unwrap();
        assert!(sessions
            .resolve(&made.secret, 3_000)
            .await
            .unwrap()
            .is_none());
    }

    #[tokio::test]
    async fn cookie_sessions_end_when_idle_or_old_and_tokens_when_due() {
        let dir = tempfile::tempdir().unwrap();
        let policy = SessionPolicy {
            idle_ms: 10_000,
            max_ms: 100_000,
            token_ms: 1_000_000,
        };
        let (sessions, _accounts, _db) = setup(&dir, policy).await;
        let cookie = sessions
            .start("lan", Role::Operator, false, SessionKind::Cookie, "", 0)
            .await
            .unwrap();
        let token = sessions
            .start(
                "lan",
                Role::Operator,
                false,
                SessionKind::Bearer,
                "backup",
                0,
            )
            .await
            .unwrap();
        assert!(token.session.csrf_token.is_empty());
        // Unused from the login on: idle past 10 s.
        assert!(sessions
            .resolve(&cookie.secret, 9_000)
            .await
            .unwrap()
            .is_some());
        assert!(sessions
            .resolve(&cookie.secret, 19_000)
            .await
            .unwrap()
            .is_none());
        // Gone for good, even if asked earlier again.
        assert!(sessions
            .resolve(&cookie.secret, 5_000)
            .await
            .unwrap()
            .is_none());
        let old = sessions
            .start("lan", Role::Operator, false, SessionKind::Cookie, "", 0)
            .await
            .unwrap();
        // Used every 5 s: alive until its 100 s are over, then gone.
        for at in (0..100_000).step_by(5_000) {
            assert!(
                sessions.resolve(&old.secret, at).await.unwrap().is_some(),
                "at {at}"
            );
        }
        assert!(sessions
            .resolve(&old.secret, 100_000)
            .await
            .unwrap()
            .is_none());
        // The bearer token lives on without use, until its end.
        assert!(sessions
            .resolve(&token.secret, 999_999)
            .await
            .unwrap()
            .is_some());
        assert!(sessions
            .resolve(&token.secret, 1_000_000)
            .await
            .unwrap()
            .is_none());
    }

    #[tokio::test]
    async fn a_disabled_account_or_a_password_change_ends_sessions() {
        let dir = tempfile::tempdir().unwrap();
        let (sessions, accounts, _db) = setup(&dir, SessionPolicy::default()).await;
        let a = sessions
            .start("lan", Role::Operator, false, SessionKind::Cookie, "", 0)
            .await
            .unwrap();
        let b = sessions
            .start("lan", Role::Operator, false, SessionKind::Bearer, "", 0)
            .await
            .unwrap();
        assert_eq!(
            sessions.end_others("lan", Some(&a.session)).await.unwrap(),
            1
        );
        assert!(sessions.resolve(&b.secret, 1).await.unwrap().is_none());
        assert!(sessions.resolve(&a.secret, 1).await.unwrap().is_some());
        accounts
            .update(
                "cli",
                &Username::parse("lan").unwrap(),
                crate::admin::accounts::AccountChange::Disabled(true),
                2,
            )
            .await
            .unwrap();
        assert!(sessions.resolve(&a.secret, 3).await.unwrap().is_none());
    }
}
